//! Starts the real `clawplane` binary on `127.0.0.1:0` in a temporary data dir and drives it
//! through its public surfaces. Every test owns its own [`Gateway`]. One module per surface;
//! everything is re-exported here so tests `use crate::harness::*`.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

pub mod balancer;
pub mod devices;
pub mod errors;
pub mod events;
pub mod gateway;
pub mod grpc;
pub mod http;
pub mod tls;
pub mod ws;

pub use devices::{Dev, new_device_key};
pub use errors::*;
pub use events::*;
pub use gateway::*;
pub use grpc::*;
pub use tls::*;

/// The binary under test: the same entry point as the real `clawplane`.
pub const BIN: &str = env!("CARGO_BIN_EXE_clawplane-under-test");
/// How long the gateway may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the gateway may take to exit after a signal.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Generic upper bound for "this should happen soon" (never a performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Canonical key of a bare session key under the default agent.
pub fn key(bare: &str) -> String {
    format!("agent:main:{bare}")
}

/// POSTs a WhatsApp Cloud webhook `body` to the gateway's default inbound path, signed with
/// `app_secret` (`X-Hub-Signature-256`), from 127.0.0.1.
pub async fn post_whatsapp_signed(gw: &Gateway, app_secret: &str, body: &str) -> http::Response {
    let sig = crate::fakes::whatsapp::sign(app_secret, body);
    let addr = std::net::SocketAddr::new([127, 0, 0, 1].into(), gw.addr.port());
    http::request(
        addr,
        "POST",
        "/channels/whatsapp/webhook",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &sig),
        ],
        body.as_bytes(),
    )
    .await
}
