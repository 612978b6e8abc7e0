//! HTTP translators into the clawplane services. Each route parses the legacy request,
//! calls the v1 RPC in-process with the caller's credential and peer address (the service
//! layer authorizes), and maps the answer back to the legacy wire format. No domain logic
//! lives here.

mod body;
pub mod channels;
pub mod hooks;
mod respond;
mod status;
pub mod webhooks;
pub mod ws;

use clawplane_proto::v1::{
    agent_service_server::AgentService, channel_service_server::ChannelService,
    chat_service_server::ChatService, device_service_server::DeviceService,
    event_service_server::EventService, gateway_service_server::GatewayService,
    session_service_server::SessionService,
};
use std::{net::SocketAddr, sync::Arc};

/// The services the bridge translates into (the generated tonic traits; the server passes
/// its one implementation of each).
#[derive(Clone)]
pub struct Services {
    pub agent: Arc<dyn AgentService>,
    pub gateway: Arc<dyn GatewayService>,
    pub chat: Arc<dyn ChatService>,
    pub sessions: Arc<dyn SessionService>,
    pub events: Arc<dyn EventService<WatchStream = EventStream>>,
    pub devices: Arc<dyn DeviceService>,
    pub channels: Arc<dyn ChannelService>,
}

/// The stream type of `EventService/Watch` as the bridge consumes it.
pub type EventStream = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<clawplane_proto::v1::EventServiceWatchResponse, tonic::Status>,
            > + Send,
    >,
>;

/// What every forwarded call carries: the credential the HTTP caller presented and its
/// address.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The presented token, forwarded as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The peer address, forwarded as the request's `ConnectInfo`.
    pub peer: Option<SocketAddr>,
    /// The HTTP request's proxy headers (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`), copied
    /// into the metadata: the service layer decides whether to believe them
    /// (`gateway.trustedProxies`) and never treats a proxied caller as local.
    pub forwarding: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// The proxy headers a caller may send.
pub use clawplane_util::net::PROXY_HEADERS as FORWARDING_HEADERS;

/// The proxy headers of an HTTP request (repeated headers joined with `, `).
pub fn forwarding_headers(headers: &http::HeaderMap) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut out = Vec::new();
    for name in FORWARDING_HEADERS {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            continue;
        }
        if let Ok(v) = http::HeaderValue::from_str(&values.join(", ")) {
            out.push((http::HeaderName::from_static(name), v));
        }
    }
    out
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
        for (name, value) in &self.forwarding {
            if let (Ok(k), Ok(v)) = (
                tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
                value.to_str().map(tonic::metadata::MetadataValue::try_from),
            ) && let Ok(v) = v
            {
                req.metadata_mut().insert(k, v);
            }
        }
        req
    }
}
