//! Why a `connect` is refused, in OpenClaw's terms: the error answer (with the
//! `details.code` clients act on, e.g. `PAIRING_REQUIRED`, `AUTH_TOKEN_MISMATCH`) and the
//! close code and reason that follow it.

use super::ConnectParams;
use crate::ws::frames::{ErrorShape, error_info, rpc_error};
use serde_json::{Value as Json, json};
use tonic::{Code, Status};

/// A refused connect: the error answer and the close code and reason.
pub(crate) struct Refusal {
    pub error: ErrorShape,
    pub close: u16,
    pub reason: String,
}

impl Refusal {
    /// Closed 1008 (policy violation), the error's message as the reason.
    pub(super) fn policy(error: ErrorShape) -> Self {
        let reason = error.message.clone();
        Refusal {
            error,
            close: 1008,
            reason,
        }
    }
}

/// No credential: OpenClaw checks the shared secret before anything else (a device block
/// without one cannot file a pairing request either). `detail` is the RPC's own message.
pub(super) fn token_missing(detail: Option<&str>) -> Refusal {
    let mut details = json!({
        "code": "AUTH_TOKEN_MISSING",
        "authReason": "token_missing",
        "canRetryWithDeviceToken": false,
        "recommendedNextStep": "update_auth_configuration",
    });
    if let Some(d) = detail {
        details["detail"] = json!(d);
    }
    Refusal::policy(
        ErrorShape::invalid(
            "unauthorized: gateway token missing (send auth.token: the gateway token, e.g. OPENCLAW_GATEWAY_TOKEN, or auth.deviceToken)",
        )
        .with_details(details),
    )
}

/// A refused device block: pairing required (`NOT_PAIRED`), a failed proof, no credential
/// to file a request with, or a pairing limit (retry later).
pub(super) fn device_refusal(s: &Status, p: &ConnectParams) -> Refusal {
    let (reason, md) = error_info(s);
    if reason == "PAIRING_CREDENTIAL_REQUIRED" {
        return token_missing(Some(s.message()));
    }
    if matches!(
        reason.as_str(),
        "CHALLENGES_EXHAUSTED" | "PAIRING_REQUESTS_EXHAUSTED"
    ) {
        // UNAVAILABLE (retryable) with the reason as details.code; 1013: try again later.
        let reason = if reason == "CHALLENGES_EXHAUSTED" {
            "too many outstanding challenges; retry later"
        } else {
            "too many pending pairing requests; retry later"
        };
        return Refusal {
            error: rpc_error(s),
            close: 1013,
            reason: reason.into(),
        };
    }
    let get = |k: &str| md.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    if reason == "PAIRING_REQUIRED" {
        let request_id = get("requestId");
        let why = get("reason");
        let message = s.message().to_string();
        let error = ErrorShape::new("NOT_PAIRED", message.clone()).with_details(json!({
            "code": "PAIRING_REQUIRED",
            "reason": if why.is_empty() { "not-paired".to_string() } else { why },
            "requestId": request_id,
            "remediationHint": message,
            "deviceId": get("deviceId"),
            "requestedRole": p.role,
            "requestedScopes": p.scopes,
            "recommendedNextStep": "wait_then_retry",
            "retryable": false,
            "pauseReconnect": true,
        }));
        return Refusal {
            error,
            close: 1008,
            reason: message,
        };
    }
    if reason.starts_with("DEVICE_AUTH_") {
        let message = s
            .message()
            .split(':')
            .next()
            .unwrap_or("device auth failed")
            .trim()
            .to_string();
        return Refusal::policy(ErrorShape::invalid(message).with_details(
            json!({"code": reason, "reason": get("reason"), "detail": s.message()}),
        ));
    }
    auth_refusal(
        s,
        if p.token.is_some() {
            "token"
        } else {
            "device-token"
        },
    )
}

/// A failed credential check: a mismatched token, too many failures, or a missing scope
/// close 1008 with OpenClaw's remediation; anything else closes 1011.
pub(super) fn auth_refusal(s: &Status, method: &str) -> Refusal {
    let mut e = rpc_error(s);
    match s.code() {
        Code::Unauthenticated => {
            let (code, msg) = if method == "device-token" {
                (
                    "AUTH_DEVICE_TOKEN_MISMATCH",
                    "unauthorized: device token mismatch (the token is unknown or revoked; pair again or rotate it with `clawplane devices rotate`)",
                )
            } else {
                (
                    "AUTH_TOKEN_MISMATCH",
                    "unauthorized: gateway token mismatch (use the gateway's token: gateway.auth.token, CLAWPLANE_GATEWAY_TOKEN, or <data-dir>/gateway.token)",
                )
            };
            e = ErrorShape::invalid(msg).with_details(json!({
                "code": code,
                "authReason": "token_mismatch",
                "canRetryWithDeviceToken": false,
                "recommendedNextStep": "update_auth_credentials",
                "detail": s.message(),
            }));
            Refusal::policy(e)
        }
        Code::ResourceExhausted => {
            e.code = "INVALID_REQUEST";
            e.message = format!("unauthorized: {}", s.message());
            if let Some(Json::Object(d)) = &mut e.details {
                d.insert("code".into(), json!("AUTH_RATE_LIMITED"));
                d.insert("recommendedNextStep".into(), json!("wait_then_retry"));
            }
            e.retryable = true;
            Refusal::policy(e)
        }
        Code::PermissionDenied => Refusal::policy(
            ErrorShape::invalid(format!("unauthorized: {}", s.message())).with_details(json!({
                "code": "AUTH_SCOPE_MISMATCH",
                "detail": s.message(),
            })),
        ),
        _ => Refusal {
            reason: "internal error during connect".into(),
            error: e,
            close: 1011,
        },
    }
}
