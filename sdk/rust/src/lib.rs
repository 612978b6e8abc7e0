//! Typed Rust client for clawplane.
//!
//! - [`Client`] connects to a gateway (`http://host:port`, bearer token) and exposes every
//!   generated tonic client ([`Client::chat`], [`Client::agent`], [`Client::events`], ...)
//!   plus typed convenience calls ([`Client::status`], [`Client::agent_run`],
//!   [`Client::chat_send`], [`Client::sessions_list`], [`Client::wait_run`], ...).
//! - [`RunHandle`] waits for, cancels or streams one run.
//! - [`EventWatch`] is an `EventService/Watch` that resumes by itself after disconnects,
//!   gateway restarts and `SUBSCRIBER_LAGGED`, without gaps or duplicates.
//! - [`Error`] wraps `tonic::Status` with the clawplane error details (`ErrorInfo` reason,
//!   `BadRequest` fields, `RetryInfo`) and a human [`Error::hint`].
//! - [`discover`] finds the local gateway URL and token the way the `clawplane` CLI does.
//!
//! Retries follow AIP-194: idempotent unary calls are retried on `UNAVAILABLE` only; run
//! submissions are made idempotent by generating an idempotency key when none is given.

#![warn(missing_docs)]

mod client;
mod discover;
mod error;
mod run;
pub mod tls;
mod watch;

pub use client::{Auth, AuthChannel, Client, DEFAULT_WAIT};
pub use discover::{
    DEFAULT_URL, Discovered, TLS_CERT_FILE, TOKEN_FILE, TokenSource, discover, discover_detailed,
    is_loopback_url, normalize_url,
};
pub use error::{ERROR_DOMAIN, Error};
pub use run::{RunHandle, RunStream, RunUpdate, is_terminal};
pub use tls::TlsOptions;
pub use watch::{EventWatch, WatchItem};

/// The generated contract crate.
pub use clawplane_proto;
/// The generated clawplane v1 types and clients (`clawplane_proto::v1`).
pub use clawplane_proto::v1 as pb;
/// The tonic version the SDK is built on.
pub use tonic;
