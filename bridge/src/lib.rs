//! HTTP translators into the clawplane services. Each route parses the legacy request,
//! calls the v1 RPC in-process with the caller's credential and peer address (the service
//! layer authorizes), and maps the answer back to the legacy wire format. No domain logic
//! lives here.

pub mod hooks;
pub mod webhooks;

use clawplane_proto::v1::{
    agent_service_server::AgentService, gateway_service_server::GatewayService,
};
use std::{net::SocketAddr, sync::Arc};

/// The services the bridge translates into (the generated tonic traits; the server passes
/// its one implementation of each).
#[derive(Clone)]
pub struct Services {
    pub agent: Arc<dyn AgentService>,
    pub gateway: Arc<dyn GatewayService>,
}

/// What every forwarded call carries: the credential the HTTP caller presented and its
/// address.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The presented token, forwarded as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The peer address, forwarded as the request's `ConnectInfo`.
    pub peer: Option<SocketAddr>,
}

impl Caller {
    /// A tonic request for `msg` carrying this caller's credential and address.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = &self.token
            && let Ok(v) = format!("Bearer {t}").parse()
        {
            req.metadata_mut().insert("authorization", v);
        }
        if let Some(peer) = self.peer {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        req
    }
}
