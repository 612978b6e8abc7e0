//! OpenClaw frame shapes (spec §1.2) and the one mapping from a gRPC status to an OpenClaw
//! `ErrorShape` (§1.9; the code itself comes from the WS table in `crate::status`).

use clawplane_proto::pbjson_types::Timestamp;
use serde_json::{Map, Value as Json, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone)]
pub struct ErrorShape {
    pub code: &'static str,
    pub message: String,
    pub details: Option<Json>,
    pub retryable: bool,
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: false,
            retry_after_ms: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("INVALID_REQUEST", message)
    }

    pub fn with_details(mut self, details: Json) -> Self {
        self.details = Some(details);
        self
    }

    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("code".into(), json!(self.code));
        m.insert("message".into(), json!(self.message));
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        if self.retryable {
            m.insert("retryable".into(), json!(true));
        }
        if let Some(ms) = self.retry_after_ms {
            m.insert("retryAfterMs".into(), json!(ms));
        }
        Json::Object(m)
    }
}

/// The keys a request frame may carry.
const REQUEST_KEYS: &[&str] = &[
    "type",
    "id",
    "method",
    "params",
    "traceparent",
    "expectedProfileId",
];

/// The request frame is a closed object (spec §1.2).
pub(crate) fn closed_request(frame: &Json) -> bool {
    frame
        .as_object()
        .is_some_and(|m| m.keys().all(|k| REQUEST_KEYS.contains(&k.as_str())))
}

/// `{type:"res", id, ok:true, payload}`.
pub fn res_ok(id: &str, payload: Json) -> String {
    json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string()
}

/// `{type:"res", id, ok:false, error}` (plus a payload when the method has one for errors).
pub fn res_err(id: &str, err: &ErrorShape, payload: Option<Json>) -> String {
    let mut v = json!({"type": "res", "id": id, "ok": false, "error": err.to_json()});
    if let Some(p) = payload {
        v["payload"] = p;
    }
    v.to_string()
}

/// `{type:"event", event, payload, seq?}`.
pub fn event(name: &str, payload: Json, seq: Option<u64>) -> String {
    let mut v = json!({"type": "event", "event": name, "payload": payload});
    if let Some(s) = seq {
        v["seq"] = json!(s);
    }
    v.to_string()
}

/// Milliseconds since the epoch, now.
/// The `runId` OpenClaw clients know a run by: the idempotency key they chose for `agent`,
/// `chat.send` and `sessions.send` (OpenClaw's run id is that key), else the server's id.
pub fn wire_run_id(run: &clawplane_proto::v1::Run) -> &str {
    use clawplane_proto::v1::RunOrigin;
    let keyed = matches!(
        run.origin(),
        RunOrigin::Agent | RunOrigin::Chat | RunOrigin::Session
    );
    if keyed && !run.idempotency_key.is_empty() {
        &run.idempotency_key
    } else {
        &run.run_id
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A protobuf timestamp as epoch milliseconds.
pub fn ts_ms(t: &Option<Timestamp>) -> Option<u64> {
    t.as_ref()
        .map(|t| (t.seconds.max(0) as u64) * 1000 + (t.nanos.max(0) as u64) / 1_000_000)
}

/// The ErrorInfo reason and metadata of a status, when it carries one.
pub fn error_info(s: &Status) -> (String, Map<String, Json>) {
    let details = s.get_error_details();
    match details.error_info() {
        Some(info) => (
            info.reason.clone(),
            info.metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        ),
        None => (String::new(), Map::new()),
    }
}

/// The one mapping of an RPC failure onto the OpenClaw error shape: PERMISSION_DENIED ->
/// `FORBIDDEN` + `MISSING_SCOPE`, caller mistakes -> `INVALID_REQUEST`, everything else ->
/// `UNAVAILABLE` (retryable when the gateway said so). `details` always carries the
/// clawplane reason as `code`, the gRPC code and the ErrorInfo metadata.
pub fn rpc_error(s: &Status) -> ErrorShape {
    let (reason, mut md) = error_info(s);
    let retry_after = s
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.as_millis() as u64)
        .or_else(|| {
            md.get("retryAfterMs")
                .and_then(Json::as_str)
                .and_then(|v| v.parse().ok())
        });
    let grpc = format!("{:?}", s.code());
    md.insert("grpcCode".into(), json!(grpc));
    let (code, retryable) = crate::status::ws_error_code(s.code());
    if s.code() == Code::PermissionDenied {
        let missing = md
            .get("missingScope")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_default();
        let required: Vec<Json> = md
            .get("requiredScopes")
            .and_then(Json::as_str)
            .map(|r| {
                r.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| json!(x))
                    .collect()
            })
            .filter(|v: &Vec<Json>| !v.is_empty())
            .unwrap_or_else(|| {
                if missing.is_empty() {
                    vec![]
                } else {
                    vec![json!(missing)]
                }
            });
        md.insert(
            "code".into(),
            json!(if reason.is_empty() {
                "MISSING_SCOPE"
            } else {
                reason.as_str()
            }),
        );
        md.insert("missingScope".into(), json!(missing));
        md.insert("requiredScopes".into(), Json::Array(required));
        let mut e = ErrorShape::new(code, s.message().to_string());
        e.details = Some(Json::Object(md));
        return e;
    }
    if !reason.is_empty() {
        md.insert("code".into(), json!(reason));
    }
    ErrorShape {
        code,
        message: s.message().to_string(),
        details: Some(Json::Object(md)),
        retryable: retryable || retry_after.is_some(),
        retry_after_ms: retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scope_maps_to_forbidden() {
        let s = Status::with_error_details(
            Code::PermissionDenied,
            "missing scope: operator.write",
            tonic_types::ErrorDetails::with_error_info(
                "MISSING_SCOPE",
                "clawplane.dev",
                [("missingScope".to_string(), "operator.write".to_string())],
            ),
        );
        let e = rpc_error(&s).to_json();
        assert_eq!(e["code"], "FORBIDDEN");
        assert_eq!(e["message"], "missing scope: operator.write");
        assert_eq!(e["details"]["code"], "MISSING_SCOPE");
        assert_eq!(e["details"]["requiredScopes"], json!(["operator.write"]));
    }

    #[test]
    fn unimplemented_is_unavailable_with_reason() {
        let s = Status::with_error_details(
            Code::Unimplemented,
            "x is not implemented yet",
            tonic_types::ErrorDetails::with_error_info(
                "NOT_IMPLEMENTED",
                "clawplane.dev",
                std::collections::HashMap::<String, String>::new(),
            ),
        );
        let e = rpc_error(&s).to_json();
        assert_eq!(e["code"], "UNAVAILABLE");
        assert_eq!(e["details"]["code"], "NOT_IMPLEMENTED");
        assert_eq!(e["details"]["grpcCode"], "Unimplemented");
    }
}

#[cfg(test)]
#[path = "frames_proptest.rs"]
mod proptests;
