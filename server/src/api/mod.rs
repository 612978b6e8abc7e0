//! tonic service implementations: thin. Each handler authorizes, converts the request,
//! calls the core, and maps errors once (`From<Error> for Status`).

mod agent;
mod channels;
mod chat;
mod convert;
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
pub use clawplane_proto::Rpc;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tonic::{Request, Status};

/// The API: one value implements every service.
#[derive(Clone)]
pub struct Api {
    pub gw: Arc<Gateway>,
    pub auth: Arc<Auth>,
}

/// Every RPC and the scope it needs: the one place authorization is declared. The match is
/// exhaustive over the generated [`Rpc`], so a new RPC cannot compile without a scope and a
/// handler cannot name a method that does not exist.
pub fn required_scope(rpc: Rpc) -> Scope {
    match rpc {
        Rpc::ChatSend
        | Rpc::ChatAbort
        | Rpc::SessionSend
        | Rpc::AgentCancelRun
        | Rpc::ChannelSendMessage => Scope::Write,
        Rpc::ChatHistory
        | Rpc::SessionList
        | Rpc::SessionGet
        | Rpc::SessionResolve
        | Rpc::AgentListRuns
        | Rpc::EventWatch
        | Rpc::GatewayStatus
        | Rpc::ModelListModels
        | Rpc::ChannelListChannels
        | Rpc::ChannelGetChannel => Scope::Read,
        Rpc::SessionReset
        | Rpc::SessionDelete
        | Rpc::WebhookCreateWebhookKey
        | Rpc::WebhookListWebhookKeys
        | Rpc::WebhookRevokeWebhookKey
        | Rpc::WebhookRotateWebhookKey
        | Rpc::WebhookListWebhookCalls
        | Rpc::WebhookCreateWebhookEndpoint
        | Rpc::WebhookListWebhookEndpoints
        | Rpc::WebhookDeleteWebhookEndpoint
        | Rpc::WebhookEnableWebhookEndpoint
        | Rpc::WebhookListWebhookDeliveries
        | Rpc::WebhookRedeliverWebhook => Scope::Admin,
        Rpc::AgentRun | Rpc::AgentWait | Rpc::GatewayWake => Scope::HookWrite,
        Rpc::AgentGetRun => Scope::HookRead,
        Rpc::GatewayGetCaller => Scope::Authenticated,
        // No credential needed (a wrong one still fails): the channel webhook's credential is the
        // provider's signature, verified by the core on the raw body; devices prove a key.
        Rpc::ChannelIngestChannelWebhook | Rpc::DeviceChallenge | Rpc::DeviceConnectDevice => {
            Scope::Public
        }
        // The presented credential is the endpoint's own key (sync webhooks, ingress) or, for
        // a scope upgrade, any device whose approver's scopes must cover the request.
        Rpc::WebhookCallWebhook | Rpc::WebhookIngestWebhook | Rpc::DeviceRequestScopeUpgrade => {
            Scope::OwnCredential
        }
        Rpc::DeviceListDevices
        | Rpc::DeviceApprovePairing
        | Rpc::DeviceRejectPairing
        | Rpc::DeviceRemoveDevice
        | Rpc::DeviceRenameDevice
        | Rpc::DeviceRotateToken
        | Rpc::DeviceRevokeToken
        | Rpc::ChannelListSenderPairings
        | Rpc::ChannelApproveSenderPairing
        | Rpc::ChannelRejectSenderPairing
        | Rpc::ChannelRevokeApprovedSender => Scope::Pairing,
    }
}

impl Api {
    /// The one gate every handler passes first: resolves the caller (gateway token, hooks
    /// token or device token) and demands the scope [`required_scope`] gives `rpc`. [`Scope::Public`] calls accept a missing credential (but not a wrong
    /// one).
    pub fn authorize<T>(&self, req: &Request<T>, rpc: Rpc) -> Result<Principal, Status> {
        let need = required_scope(rpc);
        let md = req.metadata();
        let header = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
        let token = auth::bearer(header("authorization"), header("x-openclaw-token"));
        // Failures and anonymous requests count per client address: the peer, or the
        // forwarded client when the peer is a trusted proxy (a spoofed header from anyone
        // else is ignored).
        let peer = self.client_ip(req);
        if token.is_none() && need == Scope::Public {
            let anonymous = Principal::anonymous();
            self.auth.admit(&anonymous, peer)?;
            return Ok(anonymous);
        }
        let principal =
            self.auth
                .check(token.as_deref(), peer, need, Some(self.gw.devices.index()))?;
        self.auth.admit(&principal, peer)?;
        Ok(principal)
    }

    /// The admission of the calls that bring their own key ([`Scope::OwnCredential`]: sync
    /// webhooks, ingress): one request of the client address's bucket and of the global
    /// bucket, spent before the key is checked. Returns the client address.
    pub fn admit_own_key<T>(&self, req: &Request<T>) -> Result<Option<std::net::IpAddr>, Status> {
        let client = self.client_ip(req);
        self.auth.admit_client(client)?;
        Ok(client)
    }
}

impl Api {
    /// Who is calling ([`clawplane_util::net::client`]): the client address (the peer, or
    /// behind `gateway.trustedProxies` the rightmost untrusted forwarded hop) and whether
    /// the caller is local (a loopback peer without any proxy header).
    pub fn client<T>(&self, req: &Request<T>) -> clawplane_util::net::Client {
        let headers = req.metadata().iter().filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => Some((k.as_str(), v.to_str().ok()?)),
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        });
        clawplane_util::net::client(
            peer_of(req).map(|a| a.ip()),
            headers,
            &self.gw.config.gateway.trusted_proxies,
        )
    }

    /// The client address of [`Api::client`].
    pub fn client_ip<T>(&self, req: &Request<T>) -> Option<std::net::IpAddr> {
        self.client(req).ip
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
    use super::Rpc;
    use prost::Message as _;

    /// The generated `Rpc` names exactly the methods of the descriptor set.
    #[test]
    fn rpc_enum_matches_the_contract() {
        let set = prost_types::FileDescriptorSet::decode(clawplane_proto::v1::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut methods = Vec::new();
        for f in set.file.iter().filter(|f| f.package() == "clawplane.v1") {
            for s in &f.service {
                for m in &s.method {
                    methods.push(format!("{}.{}/{}", f.package(), s.name(), m.name()));
                }
            }
        }
        methods.sort();
        let names: Vec<&str> = Rpc::ALL.iter().map(|r| r.full_name()).collect();
        assert_eq!(names, methods);
        for r in Rpc::ALL {
            assert_eq!(Rpc::from_full_name(r.full_name()), Some(*r));
        }
    }

    /// Each handler authorizes as itself: `async fn cancel_run` passes `Rpc::…CancelRun` (a
    /// copy-pasted handler that kept its neighbour's `Rpc` fails here).
    #[test]
    fn every_handler_authorizes_as_itself() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let mut seen: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("api dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            let mut current: Option<String> = None;
            for line in text.lines() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("async fn ") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| *c == '_' || c.is_alphanumeric())
                        .collect();
                    current = Some(
                        name.split('_')
                            .map(|w| {
                                let mut c = w.chars();
                                c.next()
                                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                                    .unwrap_or_default()
                            })
                            .collect(),
                    );
                }
                if let (Some(want), Some(i)) = (&current, line.find("authorize(&req, Rpc::")) {
                    let rpc: String = line[i + "authorize(&req, Rpc::".len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric())
                        .collect();
                    assert!(
                        rpc.ends_with(want.as_str()),
                        "{}: `async fn` {want} authorizes as Rpc::{rpc}",
                        path.display()
                    );
                    seen.push(rpc);
                    current = None;
                }
            }
        }
        // These two authenticate with the endpoint's own key inside the core (the key is
        // the path's credential), after `Api::admit_own_key` (request buckets) and
        // `Auth::gate` (the lockout).
        let own_gate = [Rpc::WebhookCallWebhook, Rpc::WebhookIngestWebhook];
        for r in Rpc::ALL {
            let name = format!("{r:?}");
            assert_eq!(
                seen.contains(&name),
                !own_gate.contains(r),
                "{name}: every handler but {own_gate:?} calls `authorize` once"
            );
        }
    }
}
