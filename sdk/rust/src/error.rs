//! The SDK's error type: a gRPC status with its rich details, or a local problem
//! (bad URL, unreachable gateway, expired event cursor).

use std::error::Error as StdError;
use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;

/// Everything that can go wrong talking to a clawplane gateway.
///
/// Server errors arrive as [`Error::Rpc`]; every clawplane error carries a
/// `google.rpc.ErrorInfo` whose stable reason is available through [`Error::reason`].
/// [`Error::hint`] turns the common ones into a sentence that says how to fix them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gateway URL could not be parsed.
    #[error("invalid gateway URL {url:?}: {detail}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The token cannot be sent as gRPC metadata (it contains non-visible-ASCII characters).
    #[error("the token contains characters that cannot be sent in an HTTP header")]
    InvalidToken,
    /// The first connection to the gateway failed.
    #[error("the gateway at {url} is not reachable: {detail}")]
    Connect {
        /// The gateway URL.
        url: String,
        /// The transport error chain, flattened.
        detail: String,
        /// True when the connection was actively refused (nothing listens on the port).
        refused: bool,
    },
    /// The TLS connection to an `https://` gateway failed: its certificate was refused
    /// (untrusted, wrong host, or not the pinned fingerprint), or the TLS options are
    /// unusable (unreadable CA file, malformed fingerprint).
    #[error("TLS connection to {url} failed: {detail}")]
    Tls {
        /// The gateway URL.
        url: String,
        /// What was wrong, e.g. `certificate fingerprint mismatch: expected X, got Y`.
        detail: String,
    },
    /// The gateway (or the transport underneath) answered with a non-OK gRPC status.
    #[error("{}", describe_status(.0))]
    Rpc(Box<tonic::Status>),
    /// An event watch asked for events older than the gateway retains
    /// (OUT_OF_RANGE, reason `CURSOR_EXPIRED`).
    #[error(
        "event cursor {after_seq} has expired: the oldest retained event is {oldest_seq}; \
         resume from seq {resume} or later",
        resume = oldest_seq.saturating_sub(1)
    )]
    CursorExpired {
        /// The cursor that was refused.
        after_seq: u64,
        /// The oldest event seq the gateway still has (0 when the gateway did not say).
        oldest_seq: u64,
        /// The status as received.
        status: Box<tonic::Status>,
    },
    /// The gateway answered with something the SDK did not expect (a missing field).
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Rpc(Box::new(status))
    }
}

/// The `google.rpc.ErrorInfo` domain clawplane uses.
pub const ERROR_DOMAIN: &str = "clawplane.dev";

fn describe_status(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    if text.is_empty() {
        text = status.code().description().to_string();
    }
    // Transport errors carry the useful part (e.g. "Connection refused") in their source.
    if let Some(source) = StdError::source(status) {
        let chain = error_chain(source);
        if !chain.is_empty() && !text.contains(&chain) {
            text = format!("{text}: {chain}");
        }
    }
    text
}

/// Flattens an error and its sources into `a: b: c`, skipping repeated parts.
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// True when `err` or one of its sources is an I/O "connection refused".
pub(crate) fn chain_has_refused(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cur = e.source();
    }
    false
}

impl Error {
    /// The gRPC status, when the error is one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Rpc(s) => Some(s),
            Error::CursorExpired { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The gRPC code: the status's code, `UNAVAILABLE` for connection failures,
    /// `INVALID_ARGUMENT` for a bad URL or token, `INTERNAL` for protocol surprises.
    pub fn code(&self) -> Code {
        match self {
            Error::Rpc(s) => s.code(),
            Error::CursorExpired { .. } => Code::OutOfRange,
            Error::Connect { .. } | Error::Tls { .. } => Code::Unavailable,
            Error::InvalidUrl { .. } | Error::InvalidToken => Code::InvalidArgument,
            Error::Protocol(_) => Code::Internal,
        }
    }

    /// The `ErrorInfo` reason (e.g. `TOKEN_INVALID`, `RUN_NOT_FOUND`), when the gateway sent one.
    pub fn reason(&self) -> Option<String> {
        self.status()?
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone())
    }

    /// One `ErrorInfo` metadata value (e.g. `"oldestSeq"`, `"runId"`).
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.status()?
            .get_error_details()
            .error_info()
            .and_then(|info| info.metadata.get(key).cloned())
    }

    /// The `BadRequest` field violations as `(field, description)` pairs; field names are
    /// the JSON names (`message`, `sessionKey`, ...). Empty when there are none.
    pub fn bad_request_fields(&self) -> Vec<(String, String)> {
        let Some(status) = self.status() else {
            return Vec::new();
        };
        status
            .get_error_details()
            .bad_request()
            .map(|br| {
                br.field_violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How long the gateway asks the caller to wait before retrying (`RetryInfo`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.status()?
            .get_error_details()
            .retry_info()
            .and_then(|ri| ri.retry_delay)
    }

    /// True when the gateway could not be reached at all: the first connection failed, or a
    /// call failed with UNAVAILABLE from the transport (no `ErrorInfo` from a server).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Tls { .. } => true,
            Error::Rpc(s) => {
                // The gateway tags every error it sends with an ErrorInfo; an UNAVAILABLE
                // without one comes from the local transport (refused, reset, DNS...).
                s.code() == Code::Unavailable && s.get_error_details().error_info().is_none()
            }
            _ => false,
        }
    }

    /// True when a failed idempotent call may be retried as-is (AIP-194: only `UNAVAILABLE`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Rpc(s) if s.code() == Code::Unavailable)
    }

    /// A sentence saying how to fix the error, for people. `None` when there is nothing
    /// more useful to say than the message itself.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InvalidUrl { .. } => Some(
                "pass --url http://HOST:PORT or set CLAWPLANE_URL (default http://127.0.0.1:18789)"
                    .into(),
            ),
            Error::InvalidToken => Some(
                "the token must be printable ASCII; check --token / CLAWPLANE_TOKEN or the \
                 gateway.token file"
                    .into(),
            ),
            Error::Connect { .. } => Some(UNREACHABLE_HINT.into()),
            Error::Tls { .. } => Some(
                "pin the gateway's certificate with --tls-fingerprint / CLAWPLANE_TLS_FINGERPRINT \
                 (its SHA-256 is in `clawplane status` and the gateway's log), or trust its CA \
                 with --tls-ca FILE / CLAWPLANE_TLS_CA"
                    .into(),
            ),
            Error::CursorExpired { oldest_seq, .. } => Some(format!(
                "start again from a retained seq, e.g. --after {}, or follow only new events",
                oldest_seq.saturating_sub(1)
            )),
            Error::Protocol(_) => {
                Some("the gateway and this client may be different versions; upgrade both".into())
            }
            Error::Rpc(status) => self.rpc_hint(status),
        }
    }

    fn rpc_hint(&self, status: &tonic::Status) -> Option<String> {
        let reason = self.reason();
        let reason = reason.as_deref().unwrap_or("");
        let hint = match (status.code(), reason) {
            (Code::Unauthenticated, "TOKEN_MISSING") => format!("no token was sent: {TOKEN_HINT}"),
            (Code::Unauthenticated, "TOKEN_INVALID") => {
                format!("the gateway rejected the token: {TOKEN_HINT}")
            }
            (Code::Unauthenticated, _) => TOKEN_HINT.to_string(),
            (Code::ResourceExhausted, "AUTH_RATE_LIMITED") => {
                let wait = self
                    .retry_after()
                    .map(|d| format!("wait {}s", d.as_secs().max(1)))
                    .unwrap_or_else(|| "wait a minute".into());
                format!(
                    "too many failed logins from this address; {wait}, then retry with the \
                     right token ({TOKEN_HINT})"
                )
            }
            (Code::PermissionDenied, _) => {
                "this token lacks the scope the call needs; use the gateway token (full \
                 operator scopes) or approve a device with more scopes"
                    .into()
            }
            (Code::InvalidArgument, _) => {
                let fields = self.bad_request_fields();
                if fields.is_empty() {
                    return None;
                }
                let list: Vec<String> = fields.iter().map(|(f, d)| format!("{f}: {d}")).collect();
                format!("fix the request: {}", list.join("; "))
            }
            (Code::NotFound, "SESSION_NOT_FOUND") => {
                "list sessions with `clawplane sessions list`; `clawplane agent -m TEXT \
                 --session-key KEY` creates a session"
                    .into()
            }
            (Code::NotFound, "RUN_NOT_FOUND") => {
                "list recent runs with `clawplane runs list`".into()
            }
            (Code::AlreadyExists, "IDEMPOTENCY_KEY_CONFLICT") => {
                "this idempotency key was used for a different request; use a new key, or \
                 resend exactly the original request to get its run"
                    .into()
            }
            (Code::FailedPrecondition, "SESSION_BUSY") => {
                "the session has queued or running runs; wait for them or cancel them with \
                 `clawplane runs cancel RUN_ID`"
                    .into()
            }
            (Code::OutOfRange, "CURSOR_EXPIRED") => {
                let oldest = self
                    .metadata("oldestSeq")
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(1);
                format!(
                    "start again from a retained seq, e.g. --after {}",
                    oldest.saturating_sub(1)
                )
            }
            (Code::Aborted, "SUBSCRIBER_LAGGED") => {
                "the watch fell behind the live feed; resume it from its last seq".into()
            }
            (Code::Unavailable, "SHUTTING_DOWN") => {
                "the gateway is shutting down; retry once it is running again".into()
            }
            (Code::Unavailable, _) if self.is_unreachable() => UNREACHABLE_HINT.into(),
            (Code::Unavailable, _) => "the gateway is temporarily unavailable; retry".into(),
            (Code::Unimplemented, _) => {
                "this gateway does not implement that call yet; upgrade the gateway".into()
            }
            (Code::DeadlineExceeded, _) | (Code::Cancelled, _)
                if status.message().contains("imeout") =>
            {
                "the call timed out; retry with a longer timeout".into()
            }
            (Code::Internal, _) | (Code::Unknown, _) | (Code::DataLoss, _) => {
                "this is a gateway bug or an unexpected transport failure; check the gateway \
                 log (stderr of `clawplane serve`)"
                    .into()
            }
            _ => return None,
        };
        Some(hint)
    }
}

const TOKEN_HINT: &str = "pass --token or set CLAWPLANE_TOKEN; the local gateway writes its \
     token to ~/.clawplane/gateway.token (or <data-dir>/gateway.token with --data-dir / \
     CLAWPLANE_DATA_DIR)";

const UNREACHABLE_HINT: &str = "start it with `clawplane serve`, or point --url / CLAWPLANE_URL \
     at the running gateway";

/// True when a status on a streaming call is worth reconnecting for: `UNAVAILABLE`, or a
/// transport-level failure detected locally (it has a source error; statuses sent by the
/// server never do).
pub(crate) fn is_transient_stream_error(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal | Code::Cancelled => {
            StdError::source(status).is_some() && status.get_error_details().error_info().is_none()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    fn with_reason(code: Code, reason: &str, meta: &[(&str, &str)]) -> tonic::Status {
        let md: std::collections::HashMap<String, String> = meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, md);
        tonic::Status::with_error_details(code, "boom", details)
    }

    #[test]
    fn reason_and_metadata() {
        let e = Error::from(with_reason(
            Code::NotFound,
            "RUN_NOT_FOUND",
            &[("runId", "r1")],
        ));
        assert_eq!(e.reason().as_deref(), Some("RUN_NOT_FOUND"));
        assert_eq!(e.metadata("runId").as_deref(), Some("r1"));
        assert!(e.hint().is_some_and(|h| h.contains("runs list")));
    }

    #[test]
    fn unauthenticated_hint_mentions_token() {
        let e = Error::from(with_reason(Code::Unauthenticated, "TOKEN_INVALID", &[]));
        let hint = e.hint().unwrap_or_default();
        assert!(hint.contains("--token"));
        assert!(hint.contains("CLAWPLANE_TOKEN"));
        assert!(hint.contains("gateway.token"));
    }

    #[test]
    fn bad_request_fields_and_retry_info() {
        let mut details = ErrorDetails::with_error_info(
            "INVALID_FIELD",
            ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        details.add_bad_request_violation("message", "must not be empty");
        let e = Error::from(tonic::Status::with_error_details(
            Code::InvalidArgument,
            "bad",
            details,
        ));
        assert_eq!(
            e.bad_request_fields(),
            vec![("message".to_string(), "must not be empty".to_string())]
        );
        assert!(
            e.hint()
                .is_some_and(|h| h.contains("message: must not be empty"))
        );

        let mut details = ErrorDetails::with_error_info(
            "AUTH_RATE_LIMITED",
            ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        details.set_retry_info(Some(Duration::from_secs(42)));
        let e = Error::from(tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            details,
        ));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(42)));
        assert!(e.hint().is_some_and(|h| h.contains("42s")));
    }

    #[test]
    fn retryable_is_only_unavailable() {
        assert!(Error::from(tonic::Status::unavailable("x")).is_retryable());
        assert!(!Error::from(tonic::Status::aborted("x")).is_retryable());
        assert!(!Error::from(tonic::Status::invalid_argument("x")).is_retryable());
    }
}
