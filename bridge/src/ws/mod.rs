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
mod handshake;
mod incoming;
mod legacy;
mod methods;
mod outbox;

use crate::Services;
use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, FromRequestParts, State, ws::WebSocketUpgrade},
    http::{Request, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::sync::Notify;
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
/// Pre-auth handshake timeout.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

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
    Router::new().route("/", get(upgrade)).with_state(shim)
}

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
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(_) => {
            return (
                StatusCode::UPGRADE_REQUIRED,
                [("upgrade", "websocket")],
                axum::Json(serde_json::json!({
                    "ok": false,
                    "error": "this is the OpenClaw WebSocket endpoint: connect with a WebSocket client (ws://host:port/)",
                })),
            )
                .into_response();
        }
    };
    shim.open.fetch_add(1, Ordering::AcqRel);
    OPEN.fetch_add(1, Ordering::AcqRel);
    let guard = OpenGuard(shim.clone());
    let over = shim.open.load(Ordering::Acquire) > shim.cfg.max_connections;
    ws.max_message_size(MAX_PAYLOAD)
        .max_frame_size(MAX_PAYLOAD)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            conn::run(shim, socket, peer, forwarding, query_token, over).await;
            drop(guard);
        })
}
