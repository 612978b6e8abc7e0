//! `DeviceService/ConnectDevice`: the proof, whether the device is paired for what it asks,
//! silent local approval, and otherwise a pending request.

use super::{Devices, ScopesRef, check_scopes, ms_ts, now_ms, tokens::ApproveInput};
use crate::{
    auth::{Kind, Principal, scope_covers},
    error::{Error, Result},
};
use clawplane_proto::{
    device_auth::{self, DeviceProof, SignedFields},
    v1::PairingRequest,
};
use std::net::IpAddr;

const ROLES: [&str; 3] = ["operator", "node", "worker"];

/// A `ConnectDevice` request, decoded.
#[derive(Debug, Clone, Default)]
pub struct ConnectInput {
    pub proof: DeviceProof,
    pub client_id: String,
    pub client_mode: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub platform: String,
    pub device_family: String,
    pub display_name: String,
    /// The token that was signed.
    pub token: String,
}

/// Who is connecting, from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The credential the caller presented (to hand a device its own token back).
    pub presented: Option<String>,
    /// The client address (`clawplane_util::net::client`): the peer, or the forwarded client
    /// behind a trusted proxy (the pending-request limit per address counts it).
    pub client: Option<IpAddr>,
    /// A loopback peer without proxy headers (`clawplane_util::net::Client::local`).
    pub local: bool,
}

/// A successful connect.
#[derive(Debug, Clone)]
pub struct Connected {
    pub device_token: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub device_id: String,
}

impl Devices {
    /// `DeviceService/ConnectDevice`: verifies the proof, then returns a token when the
    /// device is paired (or is approved silently), else files a pending request and fails
    /// with `PAIRING_REQUIRED`.
    pub async fn connect_device(&self, input: ConnectInput, caller: Caller) -> Result<Connected> {
        let role = if input.role.trim().is_empty() {
            "operator".to_string()
        } else {
            input.role.trim().to_string()
        };
        if !ROLES.contains(&role.as_str()) {
            return Err(Error::field(
                "role",
                format!("invalid role {role:?}; use operator, node or worker"),
            ));
        }
        let requested = check_scopes("scopes", &input.scopes)?;
        let fields = SignedFields {
            device_id: &input.proof.id,
            client_id: &input.client_id,
            client_mode: &input.client_mode,
            role: &role,
            scopes: &input.scopes,
            signed_at_ms: input.proof.signed_at_ms,
            token: &input.token,
            nonce: &input.proof.nonce,
            platform: &input.platform,
            device_family: &input.device_family,
        };
        // A store that cannot say whether the nonce was live answers as itself (UNAVAILABLE),
        // not as a mismatch.
        let mut unknown = None;
        let verified = device_auth::verify(&input.proof, &fields, now_ms(), &mut |n| {
            self.take_nonce(n).unwrap_or_else(|e| {
                unknown = Some(e);
                false
            })
        });
        if let Some(e) = unknown {
            return Err(e);
        }
        let (public_key, device_id) = verified.map_err(Error::DeviceProof)?;
        let platform = device_auth::normalize_meta(&input.platform);
        let family = device_auth::normalize_meta(&input.device_family);

        let existing = self.store.read(|r| r.device(&device_id))?;
        let reason = match &existing {
            None => Some("not-paired"),
            Some(d) if d.public_key != public_key => Some("not-paired"),
            Some(d) => match d.roles.iter().find(|r| r.role == role) {
                None => Some("role-upgrade"),
                Some(r) if !requested.iter().all(|s| scope_covers(&r.scopes_ref(), s)) => {
                    Some("scope-upgrade")
                }
                Some(_) if d.platform != platform || d.device_family != family => {
                    Some("metadata-upgrade")
                }
                Some(_) => None,
            },
        };

        // The device's own live token for this role, presented again: hand it back.
        if reason.is_none()
            && let (
                Kind::Device {
                    device_id: d,
                    role: r,
                    ..
                },
                Some(tok),
            ) = (&caller.principal.kind, &caller.presented)
            && *d == device_id
            && *r == role
        {
            return Ok(Connected {
                device_token: tok.clone(),
                role,
                scopes: caller
                    .principal
                    .scopes
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                device_id,
            });
        }

        let local = caller.local;
        let silent = match reason {
            None | Some("metadata-upgrade") => true,
            Some(_) => self.cfg.auto_approve_local && local && caller.principal.is_gateway_token(),
        };
        if silent {
            let approve = reason.is_some() && reason != Some("metadata-upgrade");
            let request_id = if approve {
                uuid::Uuid::new_v4().to_string()
            } else {
                String::new()
            };
            let (token, scopes) = self
                .approve_and_mint(ApproveInput {
                    existing,
                    device_id: device_id.clone(),
                    public_key,
                    display_name: input.display_name.clone(),
                    platform,
                    device_family: family,
                    client_id: input.client_id.clone(),
                    client_mode: input.client_mode.clone(),
                    role: role.clone(),
                    scopes: requested,
                    request_id,
                })
                .await?;
            return Ok(Connected {
                device_token: token,
                role,
                scopes,
                device_id,
            });
        }

        // Filing needs a shared credential, as OpenClaw checks the shared secret before the
        // device: an anonymous proof (or the hooks token) cannot queue requests.
        if !matches!(caller.principal.kind, Kind::Device { .. })
            && !caller.principal.is_gateway_token()
        {
            return Err(Error::PairingCredentialRequired);
        }
        let reason = reason.unwrap_or("not-paired");
        let now = now_ms();
        let req = PairingRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            device_id: device_id.clone(),
            public_key,
            display_name: input.display_name.clone(),
            platform,
            device_family: family,
            client_id: input.client_id.clone(),
            client_mode: input.client_mode.clone(),
            role,
            scopes: requested,
            remote_ip: caller.client.map(|p| p.to_string()).unwrap_or_default(),
            reason: reason.into(),
            create_time: Some(ms_ts(now)),
            expire_time: Some(ms_ts(now + self.pending_ttl())),
        };
        let request_id = self.file_pending(req).await?;
        Err(Error::PairingRequired {
            request_id,
            reason,
            device_id,
        })
    }
}
