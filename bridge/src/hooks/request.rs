//! A hook request as OpenClaw reads it: the credential, the idempotency key, the headers
//! and query for templates, and the payload's typed fields.

use crate::{
    Caller,
    respond::{Answer, bad},
};
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value as Json};

/// Longest idempotency key taken from a hook request (longer ones are ignored).
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 256;

/// A parsed, authenticated hook request.
pub(super) struct HookRequest {
    pub(super) caller: Caller,
    pub(super) sub: String,
    pub(super) payload: Json,
    pub(super) headers: Map<String, Json>,
    pub(super) query: Map<String, Json>,
    pub(super) idempotency_key: Option<String>,
    pub(super) warnings: Vec<String>,
}

/// The credential as OpenClaw extracts it: `Authorization: Bearer <t>` (scheme
/// case-insensitive, non-empty) wins, else `x-openclaw-token`.
pub(super) fn credential(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            let t = v[7..].trim();
            if !t.is_empty() {
                return Some(t.to_string());
            }
        }
    }
    headers
        .get("x-openclaw-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

pub(super) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}

/// Header names lowercased; repeated headers joined with ", ".
pub(super) fn header_map(headers: &HeaderMap) -> Map<String, Json> {
    let mut m = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        m.insert(name.as_str().to_ascii_lowercase(), joined.into());
    }
    m
}

/// `Idempotency-Key`, then `X-OpenClaw-Idempotency-Key`, then the body's `idempotencyKey`
/// (trimmed; longer than 256 characters is ignored, with a warning).
pub(super) fn idempotency_key(
    headers: &HeaderMap,
    payload: &Json,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let candidates = [
        (
            "Idempotency-Key header",
            headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
        ),
        (
            "X-OpenClaw-Idempotency-Key header",
            headers
                .get("x-openclaw-idempotency-key")
                .and_then(|v| v.to_str().ok()),
        ),
        (
            "idempotencyKey",
            payload.get("idempotencyKey").and_then(Json::as_str),
        ),
    ];
    for (what, v) in candidates {
        let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        if v.chars().count() > MAX_IDEMPOTENCY_KEY {
            warnings.push(format!(
                "{what} ignored: longer than {MAX_IDEMPOTENCY_KEY} characters"
            ));
            continue;
        }
        return Some(v.to_string());
    }
    None
}

/// A trimmed, non-empty string field.
pub(super) fn str_field<'a>(p: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    p.get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `agentId`: absent, or a non-empty string.
pub(super) fn agent_field(p: &Map<String, Json>) -> Answer<Option<&str>> {
    match p.get("agentId") {
        None => Ok(None),
        Some(_) => str_field(p, "agentId")
            .map(Some)
            .ok_or_else(|| Box::new(bad("agentId must be a non-empty string"))),
    }
}

pub(super) fn unknown_fields(p: &Map<String, Json>, known: &[&str], warnings: &mut Vec<String>) {
    for k in p.keys().filter(|k| !known.contains(&k.as_str())) {
        warnings.push(format!("unknown field {k:?} ignored"));
    }
}
