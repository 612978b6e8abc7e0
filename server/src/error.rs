//! The one error type of the gateway core. Each variant knows its gRPC code and a stable
//! UPPER_SNAKE reason; `From<Error> for tonic::Status` is the only mapping to the wire.

use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo domain of every clawplane error.
pub const DOMAIN: &str = "clawplane.dev";

/// A field problem reported as a `google.rpc.BadRequest` violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// JSON name of the field, e.g. `idempotencyKey`.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub description: String,
}

/// Everything that can go wrong, as the caller should see it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {}", summary(.0))]
    InvalidFields(Vec<FieldViolation>),
    #[error(
        "session not found: {0}. Create it with ChatService/Send, or list sessions with `clawplane sessions list`"
    )]
    SessionNotFound(String),
    #[error("run not found: {0}. List runs with `clawplane runs list` or AgentService/ListRuns")]
    RunNotFound(String),
    #[error(
        "no run of this caller has idempotency key {0:?} (keys belong to the credential that presented them); look runs up by runId"
    )]
    KeyNotFound(String),
    #[error(
        "idempotency key {key:?} was already used for different input (run {run_id}); use a new key for a new request"
    )]
    IdempotencyConflict { key: String, run_id: String },
    #[error("session {0} has queued or running runs; abort them first (ChatService/Abort)")]
    SessionBusy(String),
    #[error(
        "missing credentials: send `authorization: Bearer <token>` (or `x-openclaw-token`). This gateway's token is {0}; the CLI takes it from --token or CLAWPLANE_TOKEN"
    )]
    TokenMissing(String),
    #[error(
        "invalid token: it matches neither this gateway's token, which is {0}, nor a live device token (revoked or rotated device tokens stop working; reconnect with DeviceService/ConnectDevice)"
    )]
    TokenInvalid(String),
    #[error("too many failed authentication attempts from {addr}; retry in {} s", .retry_after.as_secs().max(1))]
    RateLimited { addr: String, retry_after: Duration },
    /// A run or wake asked for with the hooks token that `hooks.*` does not allow.
    #[error("{message}")]
    HookPolicy {
        reason: &'static str,
        message: String,
        config_key: &'static str,
    },
    #[error(
        "missing scope: {missing} (this call needs {}). Use the gateway token, or approve a device with more scopes (`clawplane devices approve <requestId>` after DeviceService/RequestScopeUpgrade)", required.join(", ")
    )]
    MissingScope {
        missing: String,
        required: Vec<String>,
    },
    #[error(
        "missing scope: operator.admin ({action} another device needs operator.admin; operator.pairing covers only the caller's own device)"
    )]
    OtherDeviceNeedsAdmin {
        action: &'static str,
        device_id: String,
    },
    #[error(
        "filing a pairing request needs the gateway token or a live device token: send `authorization: Bearer <token>` with ConnectDevice (the gateway token is gateway.auth.token, CLAWPLANE_GATEWAY_TOKEN or <data-dir>/gateway.token); a paired device may connect with its proof alone"
    )]
    PairingCredentialRequired,
    #[error(
        "too many pending pairing requests ({} limit {limit}, gateway.nodes.pairing.{key}); approve or reject some with `clawplane devices list` / `approve` / `reject`, or retry after they expire", if *.per_address { "per-address" } else { "gateway-wide" }
    )]
    PairingRequestsExhausted {
        per_address: bool,
        limit: usize,
        key: &'static str,
    },
    #[error(
        "too many outstanding device challenges ({} limit {limit}, gateway.nodes.pairing.{key}); use the nonces you have or retry after they expire (120 s)", if *.per_address { "per-address" } else { "gateway-wide" }
    )]
    ChallengesExhausted {
        per_address: bool,
        limit: usize,
        key: &'static str,
    },
    #[error("pairing required: run `clawplane devices approve {request_id}` on the gateway host")]
    PairingRequired {
        request_id: String,
        reason: &'static str,
        device_id: String,
    },
    #[error(
        "{}: check the device key, sign the v3 payload over a fresh DeviceService/Challenge nonce with signedAt within 120 s of the gateway clock", .0.message()
    )]
    DeviceProof(clawplane_proto::device_auth::ProofError),
    #[error(
        "unknown requestId {0}: it was approved, rejected, superseded or expired (5 minutes); list pending requests with `clawplane devices list`"
    )]
    PairingRequestNotFound(String),
    #[error("device not found: {0}. List devices with `clawplane devices list`")]
    DeviceNotFound(String),
    #[error(
        "no pending {channel} pairing request has code or id {code:?} (it was approved, rejected or expired after 1 hour); list them with `clawplane pairing list {channel}`"
    )]
    PairingCodeNotFound { channel: String, code: String },
    #[error(
        "{channel} sender {sender:?} is not approved; list approved senders with `clawplane pairing list {channel}`"
    )]
    ApprovedSenderNotFound { channel: String, sender: String },
    #[error(
        "device {device_id} has no approved role {role}; reconnect with DeviceService/ConnectDevice to request it"
    )]
    RoleNotApproved { device_id: String, role: String },
    #[error(
        "the device token was revoked or rotated; reconnect with DeviceService/ConnectDevice for a new one (an operator may need to approve the device again)"
    )]
    TokenRevoked,
    #[error(
        "{0} needs a device token (`authorization: Bearer <deviceToken>` from DeviceService/ConnectDevice)"
    )]
    DeviceTokenRequired(&'static str),
    #[error(
        "cursor {requested} is older than the oldest retained event {oldest}; resume from {oldest} or use followOnly"
    )]
    CursorExpired { requested: u64, oldest: u64 },
    #[error("subscriber too slow for the live feed; resume with afterSeq={last_seq}")]
    SubscriberLagged { last_seq: u64 },
    #[error("the gateway is shutting down; retry against the restarted gateway")]
    ShuttingDown,
    #[error("no such webhook")]
    WebhookNotFound,
    #[error("webhook key not found: {0}. List keys with `clawplane webhooks keys list`")]
    WebhookKeyNotFound(String),
    #[error(
        "the API key is missing or does not match a key of this webhook; send `Authorization: Bearer <key>` with a key from `clawplane webhooks keys add --label <label>`"
    )]
    WebhookKeyInvalid,
    #[error("webhook authentication failed: {0}")]
    SignatureInvalid(String),
    #[error("{0}")]
    AgentFailed(String),
    #[error("too many requests ({scope} limit, gateway.auth.rateLimit.{key}); retry in {} ms", .retry_after.as_millis().max(1))]
    RequestRateLimited {
        scope: &'static str,
        key: &'static str,
        retry_after: Duration,
    },
    #[error("the run queue is full: {queued} runs are waiting ({limit}); retry later")]
    QueueFull { queued: u64, limit: String },
    #[error(
        "no delivery route: {detail}. Pass channel and to, use a session that has received a channel message, or set bestEffortDeliver to run without delivery"
    )]
    NoDeliveryRoute {
        /// The sub-reason, e.g. NO_DELIVERY_ROUTE, CHANNEL_NOT_CONFIGURED, INVALID_TARGET.
        cause: &'static str,
        channel: String,
        to: String,
        detail: String,
    },
    #[error("webhook verification failed: {0}")]
    VerifyTokenMismatch(String),
    #[error("{0} is not implemented yet")]
    NotImplemented(&'static str),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{0}")]
    Channel(crate::channels::SendError),
}

fn summary(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One invalid field.
    pub fn field(field: &'static str, description: impl Into<String>) -> Self {
        Error::InvalidFields(vec![FieldViolation {
            field,
            description: description.into(),
        }])
    }

    /// The gRPC status code.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidFields(_) => Code::InvalidArgument,
            Error::SessionNotFound(_) | Error::RunNotFound(_) | Error::KeyNotFound(_) => {
                Code::NotFound
            }
            Error::IdempotencyConflict { .. } => Code::AlreadyExists,
            Error::SessionBusy(_) => Code::FailedPrecondition,
            Error::TokenMissing(_) | Error::TokenInvalid(_) => Code::Unauthenticated,
            Error::RateLimited { .. }
            | Error::RequestRateLimited { .. }
            | Error::QueueFull { .. } => Code::ResourceExhausted,
            Error::MissingScope { .. }
            | Error::OtherDeviceNeedsAdmin { .. }
            | Error::HookPolicy { .. } => Code::PermissionDenied,
            Error::PairingCredentialRequired => Code::Unauthenticated,
            Error::PairingRequestsExhausted { .. } | Error::ChallengesExhausted { .. } => {
                Code::ResourceExhausted
            }
            Error::PairingRequired { .. } => Code::FailedPrecondition,
            Error::DeviceProof(_) => Code::Unauthenticated,
            Error::PairingRequestNotFound(_)
            | Error::DeviceNotFound(_)
            | Error::PairingCodeNotFound { .. }
            | Error::ApprovedSenderNotFound { .. } => Code::NotFound,
            Error::RoleNotApproved { .. } | Error::DeviceTokenRequired(_) => {
                Code::FailedPrecondition
            }
            Error::TokenRevoked => Code::Unauthenticated,
            Error::CursorExpired { .. } => Code::OutOfRange,
            Error::SubscriberLagged { .. } => Code::Aborted,
            Error::ShuttingDown => Code::Unavailable,
            Error::NotImplemented(_) => Code::Unimplemented,
            Error::WebhookNotFound | Error::WebhookKeyNotFound(_) => Code::NotFound,
            Error::WebhookKeyInvalid | Error::SignatureInvalid(_) => Code::Unauthenticated,
            Error::AgentFailed(_) => Code::Unknown,
            Error::NoDeliveryRoute { .. } => Code::FailedPrecondition,
            Error::VerifyTokenMismatch(_) => Code::PermissionDenied,
            Error::Storage(_) | Error::Internal(_) => Code::Internal,
            Error::Channel(e) => match e.reason {
                "INVALID_TARGET" => Code::InvalidArgument,
                "CHANNEL_RATE_LIMITED" | "CHANNEL_COOLDOWN" => Code::ResourceExhausted,
                "CHANNEL_UNREACHABLE" => Code::Unavailable,
                "STORAGE_FAILURE" => Code::Internal,
                _ => Code::FailedPrecondition,
            },
        }
    }

    /// The stable ErrorInfo reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidFields(_) => "INVALID_FIELD",
            Error::SessionNotFound(_) => "SESSION_NOT_FOUND",
            Error::RunNotFound(_) | Error::KeyNotFound(_) => "RUN_NOT_FOUND",
            Error::IdempotencyConflict { .. } => "IDEMPOTENCY_KEY_CONFLICT",
            Error::SessionBusy(_) => "SESSION_BUSY",
            Error::TokenMissing(_) => "TOKEN_MISSING",
            Error::TokenInvalid(_) => "TOKEN_INVALID",
            Error::RateLimited { .. } => "AUTH_RATE_LIMITED",
            Error::MissingScope { .. } | Error::OtherDeviceNeedsAdmin { .. } => "MISSING_SCOPE",
            Error::PairingCredentialRequired => "PAIRING_CREDENTIAL_REQUIRED",
            Error::PairingRequestsExhausted { .. } => "PAIRING_REQUESTS_EXHAUSTED",
            Error::ChallengesExhausted { .. } => "CHALLENGES_EXHAUSTED",
            Error::HookPolicy { reason, .. } => reason,
            Error::PairingRequired { .. } => "PAIRING_REQUIRED",
            Error::DeviceProof(e) => e.code(),
            Error::PairingRequestNotFound(_) => "PAIRING_REQUEST_NOT_FOUND",
            Error::DeviceNotFound(_) => "DEVICE_NOT_FOUND",
            Error::PairingCodeNotFound { .. } => "PAIRING_CODE_NOT_FOUND",
            Error::ApprovedSenderNotFound { .. } => "APPROVED_SENDER_NOT_FOUND",
            Error::RoleNotApproved { .. } => "ROLE_NOT_APPROVED",
            Error::TokenRevoked => "TOKEN_REVOKED",
            Error::DeviceTokenRequired(_) => "DEVICE_TOKEN_REQUIRED",
            Error::CursorExpired { .. } => "CURSOR_EXPIRED",
            Error::SubscriberLagged { .. } => "SUBSCRIBER_LAGGED",
            Error::ShuttingDown => "SHUTTING_DOWN",
            Error::NotImplemented(_) => "NOT_IMPLEMENTED",
            Error::WebhookNotFound => "WEBHOOK_NOT_FOUND",
            Error::WebhookKeyNotFound(_) => "WEBHOOK_KEY_NOT_FOUND",
            Error::WebhookKeyInvalid => "WEBHOOK_KEY_INVALID",
            Error::SignatureInvalid(_) => "WEBHOOK_SIGNATURE_INVALID",
            Error::AgentFailed(_) => "AGENT_FAILED",
            Error::RequestRateLimited { .. } => "RATE_LIMITED",
            Error::QueueFull { .. } => "QUEUE_FULL",
            Error::NoDeliveryRoute { .. } => "NO_DELIVERY_ROUTE",
            Error::VerifyTokenMismatch(_) => "VERIFY_TOKEN_MISMATCH",
            Error::Storage(_) => "STORAGE_FAILURE",
            Error::Internal(_) => "INTERNAL",
            Error::Channel(e) => e.reason,
        }
    }

    fn metadata(&self) -> Vec<(String, String)> {
        let kv = |k: &str, v: String| (k.to_string(), v);
        match self {
            Error::SessionNotFound(k) | Error::SessionBusy(k) => vec![kv("sessionKey", k.clone())],
            Error::RunNotFound(r) => vec![kv("runId", r.clone())],
            Error::PairingCodeNotFound { channel, .. }
            | Error::ApprovedSenderNotFound { channel, .. } => {
                vec![kv("channel", channel.clone())]
            }
            Error::KeyNotFound(k) => vec![kv("idempotencyKey", k.clone())],
            Error::IdempotencyConflict { key, run_id } => {
                vec![
                    kv("idempotencyKey", key.clone()),
                    kv("runId", run_id.clone()),
                ]
            }
            Error::RateLimited { addr, retry_after } => vec![
                kv("clientAddress", addr.clone()),
                kv("retryAfterMs", retry_after.as_millis().to_string()),
            ],
            Error::HookPolicy { config_key, .. } => vec![kv("configKey", config_key.to_string())],
            Error::MissingScope { missing, required } => vec![
                kv("missingScope", missing.clone()),
                kv("requiredScopes", required.join(",")),
            ],
            Error::OtherDeviceNeedsAdmin { device_id, .. } => vec![
                kv("missingScope", "operator.admin".into()),
                kv("requiredScopes", "operator.admin".into()),
                kv("deviceId", device_id.clone()),
            ],
            Error::PairingRequestsExhausted {
                per_address, limit, ..
            }
            | Error::ChallengesExhausted {
                per_address, limit, ..
            } => vec![
                kv(
                    "scope",
                    if *per_address { "address" } else { "global" }.into(),
                ),
                kv("limit", limit.to_string()),
            ],
            Error::PairingRequired {
                request_id,
                reason,
                device_id,
            } => vec![
                kv("requestId", request_id.clone()),
                kv("reason", reason.to_string()),
                kv("deviceId", device_id.clone()),
            ],
            Error::DeviceProof(e) => vec![kv("reason", e.reason().to_string())],
            Error::PairingRequestNotFound(id) => vec![kv("requestId", id.clone())],
            Error::DeviceNotFound(id) => vec![kv("deviceId", id.clone())],
            Error::RoleNotApproved { device_id, role } => {
                vec![kv("deviceId", device_id.clone()), kv("role", role.clone())]
            }
            Error::CursorExpired { requested, oldest } => vec![
                kv("afterSeq", requested.to_string()),
                kv("oldestSeq", oldest.to_string()),
            ],
            Error::SubscriberLagged { last_seq } => vec![kv("lastSeq", last_seq.to_string())],
            Error::NotImplemented(what) => vec![kv("method", what.to_string())],
            Error::WebhookKeyNotFound(id) => vec![kv("keyId", id.clone())],
            Error::RequestRateLimited {
                scope, retry_after, ..
            } => vec![
                kv("scope", scope.to_string()),
                kv("retryAfterMs", retry_after.as_millis().max(1).to_string()),
            ],
            Error::QueueFull { queued, limit } => {
                vec![kv("queued", queued.to_string()), kv("limit", limit.clone())]
            }
            Error::NoDeliveryRoute {
                cause, channel, to, ..
            } => vec![
                kv("cause", cause.to_string()),
                kv("channel", channel.clone()),
                kv("to", to.clone()),
            ],
            Error::TokenMissing(p) | Error::TokenInvalid(p) => vec![kv("tokenSource", p.clone())],
            Error::Channel(e) => vec![
                kv("channel", e.channel.clone()),
                kv("attempts", e.attempts.to_string()),
            ],
            _ => vec![],
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        // Internal and storage failures answer a generic message with an id; the detail
        // (paths, engine messages) goes to the log only, under the same id.
        let error_id = matches!(e, Error::Storage(_) | Error::Internal(_)).then(|| {
            let id = uuid::Uuid::now_v7().simple().to_string();
            tracing::error!(error_id = %id, error = %e, "request failed");
            id
        });
        let mut metadata = e
            .metadata()
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>();
        if let Some(id) = &error_id {
            metadata.insert("errorId".into(), id.clone());
        }
        let mut details = ErrorDetails::with_error_info(e.reason(), DOMAIN, metadata);
        if let Error::InvalidFields(v) = &e {
            for f in v {
                details.add_bad_request_violation(f.field, f.description.clone());
            }
        }
        match &e {
            Error::RateLimited { retry_after, .. }
            | Error::RequestRateLimited { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            Error::QueueFull { .. } => {
                details.set_retry_info(Some(Duration::from_secs(1)));
            }
            _ => {}
        }
        let message = match (&e, &error_id) {
            (Error::Storage(_), Some(id)) => {
                format!("storage failure (error id {id}); the gateway's log has the detail")
            }
            (_, Some(id)) => {
                format!("internal error (error id {id}); the gateway's log has the detail")
            }
            _ => e.to_string(),
        };
        Status::with_error_details(e.code(), message, details)
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_failures_answer_an_id_not_the_detail() {
        for e in [
            Error::Storage("redb: /home/op/.clawplane/clawplane.redb is corrupt".into()),
            Error::Internal("secret-looking detail".into()),
        ] {
            let reason = e.reason();
            let st = Status::from(e);
            assert_eq!(st.code(), Code::Internal);
            assert!(
                !st.message().contains("redb") && !st.message().contains("secret"),
                "{}",
                st.message()
            );
            let info = st.get_details_error_info().expect("ErrorInfo");
            assert_eq!(info.reason, reason);
            let id = &info.metadata["errorId"];
            assert!(st.message().contains(id.as_str()), "{}", st.message());
        }
        let st = Status::from(Error::RunNotFound("r1".into()));
        assert!(
            st.message().contains("r1"),
            "other errors keep their message"
        );
    }
}
