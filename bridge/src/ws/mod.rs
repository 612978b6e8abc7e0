//! The OpenClaw WebSocket protocol at `GET /` on the one listener (spec §1–§3): protocol v4
//! (and v3) frames, the `connect.challenge` / `connect` / `hello-ok` handshake, methods,
//! events, and the legacy `{type:"chat"|…}` dialect.
//!
//! A translator like the rest of the bridge: the connect credential is checked by calling
//! the v1 RPCs with it, every method is one (or a few) v1 RPC calls made with the socket's
//! credential and peer address (the service layer authorizes), and every pushed event is
//! read from the one event feed (`EventService/Watch`). No domain logic lives here.

mod conn;
mod events;
pub mod frames;
mod gate;
mod handshake;
mod incoming;
mod legacy;
mod methods;
mod outbox;

use crate::Services;
use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, State},
    http::{Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{MethodFilter, on},
};
use clawplane_proto::v1::GetCallerRequest;
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::sync::Notify;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::sync::CancellationToken;

/// Protocol versions this shim speaks; a connect range must contain one of them.
pub const PROTOCOLS: [u64; 2] = [4, 3];
/// `MAX_PREAUTH_PAYLOAD_BYTES`: the largest frame before `connect` succeeds.
pub const MAX_PREAUTH_PAYLOAD: usize = 64 * 1024;
/// Frames that may queue while `connect` is being processed.
pub const MAX_PENDING_HANDSHAKE_FRAMES: usize = 15;
/// `policy.maxPayload`.
pub const MAX_PAYLOAD: usize = 26_214_400;
/// `policy.maxBufferedBytes`: outbound bytes a client may leave unread before it is closed
/// as a slow consumer.
pub const MAX_BUFFERED_BYTES: usize = 52_428_800;
/// `policy.tickIntervalMs`.
pub const TICK_INTERVAL: Duration = Duration::from_secs(30);
/// Pre-auth handshake timeout (`gateway.ws.handshakeTimeoutMs`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// One accepted socket: tungstenite over the upgraded connection, behind the pre-auth gate.
pub(crate) type Socket =
    WebSocketStream<gate::Gate<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>>;

/// What the server tells the shim.
#[derive(Clone)]
pub struct WsConfig {
    /// `server.version` in `hello-ok`.
    pub version: String,
    /// `gateway.maxConnections`: open sockets beyond this are closed with 1013.
    pub max_connections: usize,
    /// `gateway.ws.maxBufferedBytes` (`policy.maxBufferedBytes`): unread outbound bytes
    /// beyond this close the socket as a slow consumer.
    pub max_buffered_bytes: usize,
    /// Cancelled when the gateway stops: every socket gets `shutdown`, then close 1012.
    pub shutdown: CancellationToken,
    /// `gateway.ws.handshakeTimeoutMs`: how long a socket may stay unauthenticated.
    pub handshake_timeout: Duration,
    pub tick_interval: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            version: String::new(),
            max_connections: 20_000,
            max_buffered_bytes: MAX_BUFFERED_BYTES,
            shutdown: CancellationToken::new(),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            tick_interval: TICK_INTERVAL,
        }
    }
}

pub(crate) struct Shim {
    pub s: Services,
    pub cfg: WsConfig,
    open: AtomicUsize,
}

/// Sockets open in this process (all shims), for [`wait_closed`].
static OPEN: AtomicUsize = AtomicUsize::new(0);
static CLOSED: Notify = Notify::const_new();

/// Counts a socket as open until dropped.
pub(crate) struct OpenGuard(Arc<Shim>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        if OPEN.fetch_sub(1, Ordering::AcqRel) == 1 {
            CLOSED.notify_waiters();
        }
    }
}

/// Waits (at most `limit`) until every WebSocket of this process has finished its close
/// handshake; the server calls it after cancelling the shutdown token so the `shutdown`
/// event and the 1012 close reach the clients before the process exits.
pub async fn wait_closed(limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        loop {
            let notified = CLOSED.notified();
            if OPEN.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    })
    .await;
}

/// `GET /`: the WebSocket upgrade (anything else at `/` gets 426).
pub fn ws_router(services: Services, cfg: WsConfig) -> Router {
    let shim = Arc::new(Shim {
        s: services,
        cfg,
        open: AtomicUsize::new(0),
    });
    // `/ws` too: the path OpenClaw's "API & Webhooks" guide proxies (its nginx block).
    let socket = || on(MethodFilter::GET.or(MethodFilter::CONNECT), upgrade);
    Router::new()
        .route("/", socket())
        .route("/ws", socket())
        .with_state(shim)
}

/// A JSON refusal of the upgrade request.
fn refuse(status: StatusCode, error: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"ok": false, "error": error})),
    )
        .into_response()
}

fn header_has(req: &http::request::Parts, name: &str, token: &str) -> bool {
    req.headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The upgrade, done here rather than by axum's `WebSocketUpgrade` so the socket's IO can
/// carry the pre-auth gate ([`gate`]). HTTP/1.1 `GET` with `Upgrade: websocket` (101) and
/// HTTP/2 extended `CONNECT` with `:protocol websocket` (200) are accepted; anything else
/// at `/` gets 426. A legacy `?token=` is checked here: a wrong one is refused with 401
/// (429 while the client is locked out) before any frame.
async fn upgrade(State(shim): State<Arc<Shim>>, req: Request<Body>) -> Response {
    let (mut parts, _) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let forwarding = crate::forwarding_headers(&parts.headers);
    let query_token = parts.uri.query().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
    });
    let h2 = parts.method == http::Method::CONNECT
        && parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    let h1 = parts.method == http::Method::GET
        && header_has(&parts, "connection", "upgrade")
        && header_has(&parts, "upgrade", "websocket");
    let version_ok = parts
        .headers
        .get("sec-websocket-version")
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = parts.headers.get("sec-websocket-key").cloned();
    let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let (Some(on_upgrade), true, true) =
        (on_upgrade, h1 || h2, version_ok && (h2 || key.is_some()))
    else {
        let mut r = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this is the OpenClaw WebSocket endpoint: connect with a WebSocket client (ws://host:port/)",
        );
        r.headers_mut()
            .insert("upgrade", http::HeaderValue::from_static("websocket"));
        return r;
    };
    if let Some(token) = &query_token {
        // Any valid credential passes (GetCaller); what it may do is decided per frame.
        let caller = crate::Caller {
            token: Some(token.clone()),
            peer,
            forwarding: forwarding.clone(),
        };
        if let Err(s) = shim
            .s
            .gateway
            .get_caller(caller.request(GetCallerRequest {}))
            .await
        {
            let status = match s.code() {
                tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    StatusCode::UNAUTHORIZED
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return refuse(status, &format!("?token= refused: {}", s.message()));
        }
    }
    shim.open.fetch_add(1, Ordering::AcqRel);
    OPEN.fetch_add(1, Ordering::AcqRel);
    let guard = OpenGuard(shim.clone());
    let over = shim.open.load(Ordering::Acquire) > shim.cfg.max_connections;
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let (io, lift) =
            gate::Gate::new(hyper_util::rt::TokioIo::new(upgraded), MAX_PREAUTH_PAYLOAD);
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_PAYLOAD);
        config.max_frame_size = Some(MAX_PAYLOAD);
        config.read_buffer_size = 4 * 1024;
        config.write_buffer_size = 0;
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        conn::run(shim, socket, lift, peer, forwarding, query_token, over).await;
        drop(guard);
    });
    if h2 {
        return Response::new(Body::empty());
    }
    let accept = key
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("connection", http::HeaderValue::from_static("upgrade"));
    h.insert("upgrade", http::HeaderValue::from_static("websocket"));
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}
