//! How values are encoded in every backend: protobuf resources, a run as its acceptance
//! order (8 bytes, big-endian) followed by the protobuf `Run`.

use super::StoredRun;
use crate::error::{Error, Result};
use clawplane_proto::v1::RunState;
use prost::Message as _;

pub(super) fn se(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

pub(super) fn decode<M: prost::Message + Default>(bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(se)
}

pub(super) fn encode_run(r: &StoredRun) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8 + r.run.encoded_len());
    buf.extend_from_slice(&r.order.to_be_bytes());
    buf.extend_from_slice(&r.run.encode_to_vec());
    buf
}

pub(super) fn decode_run(bytes: &[u8]) -> Result<StoredRun> {
    if bytes.len() < 8 {
        return Err(se("corrupt run record"));
    }
    let mut order = [0u8; 8];
    order.copy_from_slice(&bytes[..8]);
    Ok(StoredRun {
        order: u64::from_be_bytes(order),
        run: decode(&bytes[8..])?,
    })
}

/// Queued or running: what recovery and the active index track.
pub(super) fn is_active(state: i32) -> bool {
    state == RunState::Queued as i32 || state == RunState::Running as i32
}

/// Milliseconds since the epoch of a timestamp (0 when unset).
pub(super) fn ts_ms(t: &Option<clawplane_proto::pbjson_types::Timestamp>) -> i64 {
    t.as_ref()
        .map(|t| t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000))
        .unwrap_or(0)
}
