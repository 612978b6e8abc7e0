//! The clawplane conformance suite: one test binary that starts the real gateway binary
//! (`clawplane-under-test`) on `127.0.0.1:0` per test and asserts `docs/behaviour.md` through
//! the public surfaces only.

mod harness;
mod http1;

mod auth;
mod chat;
mod cli;
mod config;
mod devices;
mod durability;
mod errors;
mod events;
mod hooks;
mod openclaw_cli;
mod runs;
mod sessions;
mod shutdown;
mod surfaces;
mod wake;
mod webhooks;
mod ws;
