//! What the outbox keeps durably: endpoints (definition, cursor, health) and messages
//! (body rendered once, status, attempt log), both as typed store records.

use super::config::EndpointDef;
use crate::store::Record;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An endpoint as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct EndpointRec {
    pub(super) id: String,
    pub(super) def: EndpointDef,
    /// Defined in `webhooks.outgoing` (removed when it leaves the config).
    pub(super) config: bool,
    pub(super) create_ms: i64,
    /// Every event with seq <= cursor has been considered.
    pub(super) cursor: u64,
    pub(super) disabled: bool,
    pub(super) disabled_reason: String,
    pub(super) disable_ms: i64,
    pub(super) consecutive_failures: u32,
    pub(super) failing_since_ms: Option<i64>,
    pub(super) last_error: String,
}

/// Where a message stands: PENDING until delivered or given up on (FAILED, kept for
/// manual redelivery).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(super) enum Status {
    Pending,
    Delivered,
    Failed,
}

/// One delivery attempt as logged in its message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AttemptRec {
    pub(super) n: u32,
    pub(super) at_ms: i64,
    pub(super) status: u16,
    pub(super) error: String,
    pub(super) latency_ms: u64,
    pub(super) ok: bool,
    pub(super) response: String,
}

impl Record for EndpointRec {
    const KIND: &'static str = "egress.endpoint";
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// A message: one event for one endpoint, its body rendered once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MsgRec {
    pub(super) id: String,
    pub(super) endpoint: String,
    pub(super) event_type: String,
    pub(super) seq: u64,
    pub(super) status: Status,
    pub(super) create_ms: i64,
    pub(super) next_ms: i64,
    /// Attempts made in all.
    pub(super) tries: u32,
    /// Attempts of the current schedule round (a redelivery starts a new round).
    pub(super) round: u32,
    /// Bumped by redelivery, so an attempt in flight does not overwrite it.
    pub(super) generation: u32,
    pub(super) attempts: Vec<AttemptRec>,
    pub(super) body: String,
}

/// Keyed by message id, which orders by event seq.
impl Record for MsgRec {
    const KIND: &'static str = "egress.msg";
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// The id of the message of event `seq` for `endpoint`: deterministic, so re-reading events
/// after a crash finds the messages it already made, and sent as `webhook-id` on every
/// attempt; ordered by seq.
pub(super) fn message_id(seq: u64, endpoint: &str) -> String {
    let h = Sha256::digest(endpoint.as_bytes());
    format!("msg_{seq:012}_{}", &clawplane_util::crypto::hex(h)[..8])
}
