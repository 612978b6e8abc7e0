//! The clawplane v1 contract: prost message types with canonical proto3 JSON (pbjson),
//! tonic clients and servers, and the encoded descriptor set that feeds reflection.

/// Package `clawplane.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("clawplane.v1");
    include!(concat!(env!("OUT_DIR"), "/clawplane.v1.serde.rs"));

    /// Encoded `FileDescriptorSet` of every clawplane proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("clawplane_descriptor");
}

pub use pbjson_types;

/// The current wall-clock time as a protobuf `Timestamp`.
pub fn now_ts() -> pbjson_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or_default(),
    }
}

impl v1::RunState {
    /// True for the states a run does not leave by itself: SUCCEEDED, FAILED, CANCELLED,
    /// TIMED_OUT, INTERRUPTED (an INTERRUPTED first attempt is re-queued at the next start).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::TimedOut | Self::Interrupted
        )
    }
}

/// Session-key grammar shared by the server and the bridge (part of the contract: the
/// canonical shapes are documented on `Session.session_key`).
pub mod keys;

/// The typed RPC names (`Rpc::ChatSend` is `clawplane.v1.ChatService/Send`).
pub mod rpc {
    include!(concat!(env!("OUT_DIR"), "/rpc.rs"));
}
pub use rpc::Rpc;

/// OpenClaw device identity (Ed25519 proof, payload v3/v2, verification order), shared by
/// the server's `DeviceService` and the WebSocket shim.
pub mod device_auth;
