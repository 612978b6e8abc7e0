//! The clawplane conformance suite: one test binary that starts the real gateway binary
//! (`clawplane-under-test`) on `127.0.0.1:0` per test and asserts `docs/behaviour.md` through
//! the public surfaces only.

#[path = "../../fakes/mod.rs"]
mod fakes;
mod harness;
use harness::http as http1;

mod auth;
mod channels;
mod chaos;
mod chat;
mod cli;
mod config;
mod crash;
mod devices;
mod discord_inbound;
mod durability;
mod edges;
mod egress;
mod errors;
mod events;
mod files;
mod hooks;
mod hostile;
mod inbound;
mod limits;
mod models;
mod nats;
mod openclaw_cli;
mod postgres;
mod replicas;
mod retention;
mod routing;
mod runs;
mod sdk_rust;
mod senders;
mod sessions;
mod shutdown;
mod surfaces;
mod tls;
mod wake;
mod webhooks;
mod ws;
