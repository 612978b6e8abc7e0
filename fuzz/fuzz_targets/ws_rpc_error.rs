//! The WebSocket shim's status → OpenClaw error mapping over arbitrary status details
//! (`grpc-status-details-bin` bytes are untrusted protobuf) never panics and always yields
//! a well-formed error object.
#![no_main]

use clawplane_bridge::ws::frames::{res_err, rpc_error};
use libfuzzer_sys::fuzz_target;
use tonic::{Code, Status};

fuzz_target!(|data: &[u8]| {
    let Some((&code, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let message = String::from_utf8_lossy(&rest[..split]).into_owned();
    let details = bytes::Bytes::copy_from_slice(rest.get(split + 1..).unwrap_or(&[]));
    let status = Status::with_details(Code::from_i32(i32::from(code % 18)), message, details);
    let e = rpc_error(&status);
    let frame: serde_json::Value = serde_json::from_str(&res_err("id", &e, None)).unwrap();
    assert!(frame["error"]["code"].is_string());
});
