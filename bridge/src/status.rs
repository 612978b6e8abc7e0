//! Where a v1 status becomes a legacy error: one table per dialect, so every route of a
//! dialect answers the same failure the same way and a change of mapping is made once.
//!
//! - HTTP ([`http_status`]): the gRPC → HTTP mapping every HTTP route uses, with
//!   `{ok:false, error}` bodies ([`plain_error`]; the webhooks add `Retry-After`,
//!   [`webhook_error`]; the synchronous webhooks answer a failed agent 502,
//!   [`sync_webhook_error`]).
//! - OpenClaw hooks ([`hooks_error`]): where OpenClaw fixes the answer (401 `Unauthorized`,
//!   429 `Too Many Requests`), its text; otherwise the HTTP table.
//! - OpenClaw WebSocket ([`ws_error_code`]): the `ErrorShape.code` and whether it is
//!   retryable; the legacy WebSocket frames have their own codes ([`legacy_error_code`]).

use crate::respond::{fail, text};
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The HTTP status of a gRPC code.
pub(crate) const fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Ok | Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// `Retry-After` seconds for a rate-limited status: its RetryInfo rounded up, at least 1.
fn retry_after(s: &Status) -> HeaderValue {
    let secs = s
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .map_or(1, |d| d.as_millis().div_ceil(1000).max(1) as u64);
    HeaderValue::from(secs)
}

/// `{ok:false, error}` with the status's HTTP code (the inbound channel webhooks).
pub(crate) fn plain_error(s: &Status) -> Response {
    fail(http_status(s.code()), s.message())
}

/// [`plain_error`], a 429 carrying `Retry-After` (`/webhook/<path>`, `/webhooks/<id>`).
pub(crate) fn webhook_error(s: &Status) -> Response {
    let mut r = plain_error(s);
    if s.code() == Code::ResourceExhausted {
        r.headers_mut().insert(header::RETRY_AFTER, retry_after(s));
    }
    r
}

/// `/webhooks/<id>` (the Claworc contract): an agent that failed (UNKNOWN) is a 502 with
/// the error as `text/plain`; everything else is [`webhook_error`].
pub(crate) fn sync_webhook_error(s: &Status) -> Response {
    match s.code() {
        Code::Unknown => text(StatusCode::BAD_GATEWAY, s.message()),
        _ => webhook_error(s),
    }
}

/// OpenClaw's hook answers: 401 `Unauthorized` and 429 `Too Many Requests` (with
/// `Retry-After`) as OpenClaw sends them, `text/plain`; a call the core's hooks policy
/// refused (PERMISSION_DENIED with a `HOOK_*` reason) is OpenClaw's 400 with the policy's
/// words; everything else is [`plain_error`].
pub(crate) fn hooks_error(s: &Status) -> Response {
    let hook_policy = s
        .get_details_error_info()
        .is_some_and(|i| i.reason.starts_with("HOOK_"));
    match s.code() {
        Code::PermissionDenied if hook_policy => fail(StatusCode::BAD_REQUEST, s.message()),
        Code::Unauthenticated => text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Code::ResourceExhausted => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            r.headers_mut().insert(header::RETRY_AFTER, retry_after(s));
            r
        }
        _ => plain_error(s),
    }
}

/// The OpenClaw `ErrorShape.code` of a gRPC code and whether the failure is retryable:
/// a missing scope is `FORBIDDEN`, caller mistakes are `INVALID_REQUEST`, the rest
/// `UNAVAILABLE` (retryable where waiting helps).
pub(crate) const fn ws_error_code(code: Code) -> (&'static str, bool) {
    match code {
        Code::PermissionDenied => ("FORBIDDEN", false),
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unauthenticated => ("INVALID_REQUEST", false),
        Code::ResourceExhausted | Code::Unavailable | Code::Aborted => ("UNAVAILABLE", true),
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => ("UNAVAILABLE", false),
    }
}

/// The legacy WebSocket dialect's error code (`{type:"error", payload:{code}}`); a missing
/// token (ErrorInfo `TOKEN_MISSING`) is `AUTH_REQUIRED`, any other bad one `AUTH_INVALID`.
pub(crate) fn legacy_error_code(s: &Status) -> &'static str {
    match s.code() {
        Code::Unauthenticated
            if s.get_details_error_info().map(|i| i.reason).as_deref() == Some("TOKEN_MISSING") =>
        {
            "AUTH_REQUIRED"
        }
        Code::Unauthenticated => "AUTH_INVALID",
        Code::ResourceExhausted => "RATE_LIMITED",
        Code::PermissionDenied => "FORBIDDEN",
        Code::Unavailable => "GATEWAY_BUSY",
        Code::InvalidArgument | Code::NotFound | Code::AlreadyExists => "INVALID_REQUEST",
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => "INTERNAL_ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    fn rate_limited(ms: u64) -> Status {
        Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(ms))),
        )
    }

    #[test]
    fn hooks_policy_refusals_are_openclaws_400() {
        let refused = Status::with_error_details(
            Code::PermissionDenied,
            "agentId is not allowed by hooks.allowedAgentIds",
            tonic_types::ErrorDetails::with_error_info("HOOK_AGENT_NOT_ALLOWED", "clawplane", []),
        );
        assert_eq!(hooks_error(&refused).status(), StatusCode::BAD_REQUEST);
        let scope = Status::with_error_details(
            Code::PermissionDenied,
            "missing scope",
            tonic_types::ErrorDetails::with_error_info("MISSING_SCOPE", "clawplane", []),
        );
        assert_eq!(hooks_error(&scope).status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn http_table() {
        let expected = [
            500, 500, 500, 400, 504, 404, 409, 403, 429, 409, 409, 400, 501, 500, 503, 500, 401,
        ];
        for (code, want) in ALL.into_iter().zip(expected) {
            assert_eq!(http_status(code).as_u16(), want, "{code:?}");
            assert_eq!(
                plain_error(&Status::new(code, "x")).status().as_u16(),
                want,
                "{code:?}"
            );
        }
    }

    #[test]
    fn webhook_answers() {
        let r = webhook_error(&rate_limited(1500));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = webhook_error(&Status::resource_exhausted("no retry info"));
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = webhook_error(&Status::unavailable("x"));
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        // Only the synchronous webhooks make a failed agent a 502.
        let failed = Status::unknown("the model failed");
        assert_eq!(
            sync_webhook_error(&failed).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            webhook_error(&failed).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            sync_webhook_error(&Status::not_found("x")).status(),
            StatusCode::NOT_FOUND
        );
        // The inbound channel webhooks answer 429 without Retry-After.
        let r = plain_error(&rate_limited(1500));
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn hooks_table() {
        for code in ALL {
            let r = hooks_error(&Status::new(code, "x"));
            assert_eq!(r.status(), http_status(code), "{code:?}");
            let plain_text = r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain");
            assert_eq!(
                plain_text,
                matches!(code, Code::Unauthenticated | Code::ResourceExhausted),
                "{code:?}"
            );
        }
        let r = hooks_error(&rate_limited(2500));
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn ws_table() {
        use Code::*;
        let expected = [
            (Ok, "UNAVAILABLE", false),
            (Cancelled, "UNAVAILABLE", false),
            (Unknown, "UNAVAILABLE", false),
            (InvalidArgument, "INVALID_REQUEST", false),
            (DeadlineExceeded, "UNAVAILABLE", false),
            (NotFound, "INVALID_REQUEST", false),
            (AlreadyExists, "INVALID_REQUEST", false),
            (PermissionDenied, "FORBIDDEN", false),
            (ResourceExhausted, "UNAVAILABLE", true),
            (FailedPrecondition, "INVALID_REQUEST", false),
            (Aborted, "UNAVAILABLE", true),
            (OutOfRange, "INVALID_REQUEST", false),
            (Unimplemented, "UNAVAILABLE", false),
            (Internal, "UNAVAILABLE", false),
            (Unavailable, "UNAVAILABLE", true),
            (DataLoss, "UNAVAILABLE", false),
            (Unauthenticated, "INVALID_REQUEST", false),
        ];
        for (code, name, retryable) in expected {
            assert_eq!(ws_error_code(code), (name, retryable), "{code:?}");
        }
    }

    #[test]
    fn legacy_table() {
        use Code::*;
        let expected = [
            (Ok, "INTERNAL_ERROR"),
            (Cancelled, "INTERNAL_ERROR"),
            (Unknown, "INTERNAL_ERROR"),
            (InvalidArgument, "INVALID_REQUEST"),
            (DeadlineExceeded, "INTERNAL_ERROR"),
            (NotFound, "INVALID_REQUEST"),
            (AlreadyExists, "INVALID_REQUEST"),
            (PermissionDenied, "FORBIDDEN"),
            (ResourceExhausted, "RATE_LIMITED"),
            (FailedPrecondition, "INTERNAL_ERROR"),
            (Aborted, "INTERNAL_ERROR"),
            (OutOfRange, "INTERNAL_ERROR"),
            (Unimplemented, "INTERNAL_ERROR"),
            (Internal, "INTERNAL_ERROR"),
            (Unavailable, "GATEWAY_BUSY"),
            (DataLoss, "INTERNAL_ERROR"),
            (Unauthenticated, "AUTH_INVALID"),
        ];
        for (code, name) in expected {
            assert_eq!(legacy_error_code(&Status::new(code, "x")), name, "{code:?}");
        }
        let missing = Status::with_error_details(
            Code::Unauthenticated,
            "no token",
            tonic_types::ErrorDetails::with_error_info(
                "TOKEN_MISSING",
                "clawplane.dev",
                std::collections::HashMap::<String, String>::new(),
            ),
        );
        assert_eq!(legacy_error_code(&missing), "AUTH_REQUIRED");
    }
}
