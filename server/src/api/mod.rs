//! tonic service implementations: thin. Each handler authorizes, converts the request,
//! calls the core, and maps errors once (`From<Error> for Status`).

mod agent;
mod channels;
mod chat;
mod devices;
mod events;
mod gateway;
mod models;
mod sessions;
mod webhooks;

use crate::{
    auth::{self, Auth, Principal, Scope},
    core::Gateway,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tonic::{Request, Status};

/// The API: one value implements every service.
#[derive(Clone)]
pub struct Api {
    pub gw: Arc<Gateway>,
    pub auth: Arc<Auth>,
}

/// Every RPC and the scope it needs: the one place authorization is declared. Keys are full
/// gRPC method names; a handler passes its own name to [`Api::authorize`].
pub const REQUIRED_SCOPES: &[(&str, Scope)] = &[
    ("clawplane.v1.ChatService/Send", Scope::Write),
    ("clawplane.v1.ChatService/History", Scope::Read),
    ("clawplane.v1.ChatService/Abort", Scope::Write),
    ("clawplane.v1.SessionService/Send", Scope::Write),
    ("clawplane.v1.SessionService/List", Scope::Read),
    ("clawplane.v1.SessionService/Get", Scope::Read),
    ("clawplane.v1.SessionService/Resolve", Scope::Read),
    ("clawplane.v1.SessionService/Reset", Scope::Admin),
    ("clawplane.v1.SessionService/Delete", Scope::Admin),
    ("clawplane.v1.AgentService/Run", Scope::HookWrite),
    ("clawplane.v1.AgentService/Wait", Scope::HookWrite),
    ("clawplane.v1.AgentService/GetRun", Scope::HookRead),
    ("clawplane.v1.AgentService/CancelRun", Scope::Write),
    ("clawplane.v1.AgentService/ListRuns", Scope::Read),
    ("clawplane.v1.EventService/Watch", Scope::Read),
    ("clawplane.v1.GatewayService/Status", Scope::Read),
    ("clawplane.v1.ModelService/ListModels", Scope::Read),
    ("clawplane.v1.GatewayService/Wake", Scope::HookWrite),
    (
        "clawplane.v1.GatewayService/GetCaller",
        Scope::Authenticated,
    ),
    ("clawplane.v1.ChannelService/ListChannels", Scope::Read),
    ("clawplane.v1.ChannelService/GetChannel", Scope::Read),
    ("clawplane.v1.ChannelService/SendMessage", Scope::Write),
    // The credential is the provider's signature / secret, verified by the core on the raw
    // body.
    (
        "clawplane.v1.ChannelService/IngestChannelWebhook",
        Scope::Public,
    ),
    ("clawplane.v1.WebhookService/CreateWebhookKey", Scope::Admin),
    ("clawplane.v1.WebhookService/ListWebhookKeys", Scope::Admin),
    ("clawplane.v1.WebhookService/RevokeWebhookKey", Scope::Admin),
    ("clawplane.v1.WebhookService/RotateWebhookKey", Scope::Admin),
    ("clawplane.v1.WebhookService/ListWebhookCalls", Scope::Admin),
    (
        "clawplane.v1.WebhookService/CallWebhook",
        Scope::OwnCredential,
    ),
    (
        "clawplane.v1.WebhookService/IngestWebhook",
        Scope::OwnCredential,
    ),
    (
        "clawplane.v1.WebhookService/CreateWebhookEndpoint",
        Scope::Admin,
    ),
    (
        "clawplane.v1.WebhookService/ListWebhookEndpoints",
        Scope::Admin,
    ),
    (
        "clawplane.v1.WebhookService/DeleteWebhookEndpoint",
        Scope::Admin,
    ),
    (
        "clawplane.v1.WebhookService/EnableWebhookEndpoint",
        Scope::Admin,
    ),
    (
        "clawplane.v1.WebhookService/ListWebhookDeliveries",
        Scope::Admin,
    ),
    ("clawplane.v1.WebhookService/RedeliverWebhook", Scope::Admin),
    ("clawplane.v1.DeviceService/Challenge", Scope::Public),
    ("clawplane.v1.DeviceService/ConnectDevice", Scope::Public),
    ("clawplane.v1.DeviceService/ListDevices", Scope::Pairing),
    ("clawplane.v1.DeviceService/ApprovePairing", Scope::Pairing),
    ("clawplane.v1.DeviceService/RejectPairing", Scope::Pairing),
    ("clawplane.v1.DeviceService/RemoveDevice", Scope::Pairing),
    ("clawplane.v1.DeviceService/RenameDevice", Scope::Pairing),
    ("clawplane.v1.DeviceService/RotateToken", Scope::Pairing),
    ("clawplane.v1.DeviceService/RevokeToken", Scope::Pairing),
    // Any authenticated device may ask; the approver's scopes must cover the request.
    (
        "clawplane.v1.DeviceService/RequestScopeUpgrade",
        Scope::OwnCredential,
    ),
];

/// The scope `method` (`package.Service/Method`) needs.
pub fn required_scope(method: &str) -> Option<Scope> {
    REQUIRED_SCOPES
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, s)| *s)
}

impl Api {
    /// The one gate every handler passes first: resolves the caller (gateway token, hooks
    /// token or device token) and demands the scope [`REQUIRED_SCOPES`] lists for
    /// `method`. [`Scope::Public`] calls accept a missing credential (but not a wrong
    /// one).
    pub fn authorize<T>(
        &self,
        req: &Request<T>,
        method: &'static str,
    ) -> Result<Principal, Status> {
        let Some(need) = required_scope(method) else {
            return Err(
                crate::error::Error::Internal(format!("{method} declares no scope")).into(),
            );
        };
        let md = req.metadata();
        let header = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
        let token = auth::bearer(header("authorization"), header("x-openclaw-token"));
        if token.is_none() && need == Scope::Public {
            let anonymous = Principal::anonymous();
            self.auth.admit(&anonymous)?;
            return Ok(anonymous);
        }
        // Failures count per client address: the peer, or the forwarded client when the
        // peer is a trusted proxy (a spoofed header from anyone else is ignored).
        let peer = self.client_ip(req);
        let principal = self
            .auth
            .check(token.as_deref(), peer, need, Some(&self.gw.devices))?;
        self.auth.admit(&principal)?;
        Ok(principal)
    }
}

impl Api {
    /// The client address: the peer, or — when the peer is one of `gateway.trustedProxies`
    /// — the address its `X-Forwarded-For` / `Forwarded: for=` names.
    pub fn client_ip<T>(&self, req: &Request<T>) -> Option<std::net::IpAddr> {
        let md = req.metadata();
        let header = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
        clawplane_util::net::client_address_from(
            peer_of(req).map(|a| a.ip()),
            header("x-forwarded-for"),
            header("forwarded"),
            &self.gw.config.gateway.trusted_proxies,
        )
    }
}

/// The caller's socket address (the bridge sets it as `ConnectInfo`).
pub fn peer_of<T>(req: &Request<T>) -> Option<SocketAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| req.remote_addr())
}

/// The caller's remaining deadline from `grpc-timeout`, if it sent one.
pub fn deadline<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    /// Every RPC of every clawplane service is in the scope table, and nothing else is.
    #[test]
    fn every_rpc_declares_its_scope() {
        let set = prost_types::FileDescriptorSet::decode(clawplane_proto::v1::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut methods = Vec::new();
        for f in &set.file {
            for s in &f.service {
                for m in &s.method {
                    methods.push(format!("{}.{}/{}", f.package(), s.name(), m.name()));
                }
            }
        }
        for m in &methods {
            assert!(super::required_scope(m).is_some(), "{m} has no scope");
        }
        for (m, _) in super::REQUIRED_SCOPES {
            assert!(methods.iter().any(|x| x == m), "{m} is not an RPC");
        }
    }
}
