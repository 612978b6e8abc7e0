//! Assertions on gRPC statuses: code, `google.rpc.ErrorInfo` reason and metadata, and
//! `google.rpc.BadRequest` field violations.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{BadRequest, ErrorInfo, StatusExt};

/// The ErrorInfo of a status (panics when missing).
pub fn error_info(status: &Status) -> ErrorInfo {
    status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("status has no google.rpc.ErrorInfo: {status:?}"))
}

/// The BadRequest of a status (panics when missing).
pub fn bad_request(status: &Status) -> BadRequest {
    status
        .get_error_details()
        .bad_request()
        .cloned()
        .unwrap_or_else(|| panic!("status has no google.rpc.BadRequest: {status:?}"))
}

/// The field names of the BadRequest violations.
pub fn violated_fields(status: &Status) -> Vec<String> {
    bad_request(status)
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Asserts code, ErrorInfo domain `clawplane.dev` and reason; returns the ErrorInfo metadata.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) -> HashMap<String, String> {
    assert_eq!(
        status.code(),
        code,
        "expected {code:?} {reason}, got {status:?}"
    );
    let info = error_info(status);
    assert_eq!(info.reason, reason, "ErrorInfo reason of {status:?}");
    assert_eq!(
        info.domain, "clawplane.dev",
        "ErrorInfo domain of {status:?}"
    );
    info.metadata
}

/// Asserts INVALID_ARGUMENT / INVALID_FIELD naming `field` among the BadRequest violations.
#[track_caller]
pub fn assert_invalid_field(status: &Status, field: &str) {
    assert_error(status, Code::InvalidArgument, "INVALID_FIELD");
    let fields = violated_fields(status);
    assert!(
        fields.iter().any(|f| f == field),
        "BadRequest should name field {field:?}, got {fields:?} ({status:?})"
    );
}

/// Unwraps an expected error.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(r: Result<tonic::Response<T>, Status>, what: &str) -> Status {
    match r {
        Ok(resp) => panic!("{what} should fail, got {:?}", resp.into_inner()),
        Err(s) => s,
    }
}
