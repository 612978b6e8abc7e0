//! DeviceService: challenges, device connect (proof, pairing, tokens), and the pairing and
//! token administration RPCs. Logic lives in `core::devices`.

use super::Api;
use super::Rpc;
use crate::{
    auth,
    core::devices::{Caller, ConnectInput},
    error::Error,
};
use clawplane_proto::{device_auth::DeviceProof, v1::*};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl device_service_server::DeviceService for Api {
    async fn challenge(
        &self,
        req: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        self.authorize(&req, Rpc::DeviceChallenge)?;
        let (nonce, ts) = self.gw.devices.challenge(self.client_ip(&req))?;
        Ok(Response::new(ChallengeResponse { nonce, ts }))
    }

    async fn connect_device(
        &self,
        req: Request<ConnectDeviceRequest>,
    ) -> Result<Response<ConnectDeviceResponse>, Status> {
        let principal = self.authorize(&req, Rpc::DeviceConnectDevice)?;
        let md = req.metadata();
        let header = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
        let presented = auth::bearer(header("authorization"), header("x-openclaw-token"));
        let who = self.client(&req);
        let peer = who.ip;
        let r = req.into_inner();
        let Some(d) = r.device else {
            return Err(Error::field(
                "device",
                "required: {id, publicKey, signature, signedAt, nonce} signed over a DeviceService/Challenge nonce",
            )
            .into());
        };
        let input = ConnectInput {
            proof: DeviceProof {
                id: d.id,
                public_key: d.public_key,
                signature: d.signature,
                signed_at_ms: d.signed_at,
                nonce: d.nonce,
            },
            client_id: r.client_id,
            client_mode: r.client_mode,
            role: r.role,
            scopes: r.scopes,
            platform: r.platform,
            device_family: r.device_family,
            display_name: r.display_name,
            token: r.token,
        };
        let c = self
            .gw
            .devices
            .connect_device(
                input,
                Caller {
                    principal,
                    presented,
                    client: who.ip,
                    local: who.local,
                },
            )
            .await
            .map_err(|e| match e {
                // Failed proofs count in the per-address failure limiter.
                e @ Error::DeviceProof(_) => self.auth.failed(peer, e),
                e => e,
            })?;
        Ok(Response::new(ConnectDeviceResponse {
            device_token: c.device_token,
            role: c.role,
            scopes: c.scopes,
            device_id: c.device_id,
        }))
    }

    async fn list_devices(
        &self,
        req: Request<ListDevicesRequest>,
    ) -> Result<Response<ListDevicesResponse>, Status> {
        let who = self.authorize(&req, Rpc::DeviceListDevices)?;
        let r = req.into_inner();
        let size = crate::core::devices::page_size(r.page_size)?;
        let page = self.gw.devices.list_devices(&who, size, &r.page_token)?;
        Ok(Response::new(ListDevicesResponse {
            pending: page.pending,
            paired: page.paired,
            next_page_token: page.next_page_token,
        }))
    }

    async fn approve_pairing(
        &self,
        req: Request<ApprovePairingRequest>,
    ) -> Result<Response<ApprovePairingResponse>, Status> {
        let who = self.authorize(&req, Rpc::DeviceApprovePairing)?;
        let r = req.into_inner();
        let (request_id, device) = self.gw.devices.approve_pairing(&r.request_id, &who).await?;
        Ok(Response::new(ApprovePairingResponse {
            request_id,
            device: Some(device),
        }))
    }

    async fn reject_pairing(
        &self,
        req: Request<RejectPairingRequest>,
    ) -> Result<Response<RejectPairingResponse>, Status> {
        self.authorize(&req, Rpc::DeviceRejectPairing)?;
        let r = req.into_inner();
        let request = self.gw.devices.reject_pairing(&r.request_id).await?;
        Ok(Response::new(RejectPairingResponse {
            request: Some(request),
        }))
    }

    async fn remove_device(
        &self,
        req: Request<RemoveDeviceRequest>,
    ) -> Result<Response<RemoveDeviceResponse>, Status> {
        let who = self.authorize(&req, Rpc::DeviceRemoveDevice)?;
        let r = req.into_inner();
        self.gw.devices.remove_device(&r.device_id, &who).await?;
        Ok(Response::new(RemoveDeviceResponse {
            device_id: r.device_id,
        }))
    }

    async fn rename_device(
        &self,
        req: Request<RenameDeviceRequest>,
    ) -> Result<Response<RenameDeviceResponse>, Status> {
        self.authorize(&req, Rpc::DeviceRenameDevice)?;
        let r = req.into_inner();
        let device = self
            .gw
            .devices
            .rename_device(&r.device_id, &r.display_name)
            .await?;
        Ok(Response::new(RenameDeviceResponse {
            device: Some(device),
        }))
    }

    async fn rotate_token(
        &self,
        req: Request<RotateTokenRequest>,
    ) -> Result<Response<RotateTokenResponse>, Status> {
        let who = self.authorize(&req, Rpc::DeviceRotateToken)?;
        let r = req.into_inner();
        let rotated = self
            .gw
            .devices
            .rotate_token(&r.device_id, &r.role, &r.scopes, &who)
            .await?;
        let delivery = if rotated.token.is_some() {
            "in-band"
        } else {
            "withheld-cross-device"
        };
        Ok(Response::new(RotateTokenResponse {
            device_id: r.device_id,
            role: r.role,
            scopes: rotated.scopes,
            token: rotated.token.unwrap_or_default(),
            token_delivery: delivery.into(),
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let who = self.authorize(&req, Rpc::DeviceRevokeToken)?;
        let r = req.into_inner();
        let device = self
            .gw
            .devices
            .revoke_token(&r.device_id, &r.role, &who)
            .await?;
        Ok(Response::new(RevokeTokenResponse {
            device: Some(device),
        }))
    }

    async fn request_scope_upgrade(
        &self,
        req: Request<RequestScopeUpgradeRequest>,
    ) -> Result<Response<RequestScopeUpgradeResponse>, Status> {
        let who = self.authorize(&req, Rpc::DeviceRequestScopeUpgrade)?;
        let client = self.client_ip(&req);
        let r = req.into_inner();
        let request_id = self
            .gw
            .devices
            .request_scope_upgrade(&who, &r.scopes, client)
            .await?;
        Ok(Response::new(RequestScopeUpgradeResponse { request_id }))
    }
}
