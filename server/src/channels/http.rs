//! One provider HTTP call with the shared retry rules: 429 waits for the provider's
//! `retry_after` / `Retry-After` (bounded by `maxRetryAfterSeconds`), 5xx and refused
//! connections back off briefly, everything within `maxRetries`; other 4xx are rejections
//! carrying the provider's own message.

use super::{Limits, SendError};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// Which provider dialect to read errors and rate-limit hints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Discord,
    Telegram,
    WhatsApp,
    Slack,
    Webhook,
}

impl Dialect {
    pub(crate) fn id(self) -> &'static str {
        match self {
            Dialect::Discord => "discord",
            Dialect::Telegram => "telegram",
            Dialect::WhatsApp => "whatsapp",
            Dialect::Slack => "slack",
            Dialect::Webhook => "webhook",
        }
    }

    /// Seconds the provider asks us to wait on a 429.
    fn retry_after(self, headers: &HeaderMap, body: &Value) -> Option<f64> {
        let from_body = match self {
            Dialect::Discord => body.get("retry_after").and_then(Value::as_f64),
            Dialect::Telegram => body
                .pointer("/parameters/retry_after")
                .and_then(Value::as_f64),
            _ => None,
        };
        from_body.or_else(|| {
            headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
    }

    /// The provider's own error text.
    pub(crate) fn error_message(self, status: u16, body: &Value, text: &str) -> String {
        let msg = match self {
            Dialect::Discord => body.get("message").and_then(Value::as_str).map(|m| {
                match body.get("code").and_then(Value::as_i64) {
                    Some(c) if c != 0 => format!("{m} (code {c})"),
                    _ => m.to_string(),
                }
            }),
            Dialect::Telegram => body
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            Dialect::WhatsApp => body.get("error").map(|e| {
                let mut m = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string();
                if let Some(c) = e.get("code").and_then(Value::as_i64) {
                    m.push_str(&format!(" (code {c})"));
                }
                if let Some(d) = e.pointer("/error_data/details").and_then(Value::as_str) {
                    m.push_str(&format!(": {d}"));
                }
                m
            }),
            Dialect::Slack => body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string),
            Dialect::Webhook => None,
        };
        let msg = msg.unwrap_or_else(|| {
            let t = text.trim();
            if t.is_empty() {
                "no error text".into()
            } else {
                t.to_string()
            }
        });
        format!("HTTP {status}: {}", clip(&msg, 300))
    }
}

/// Cuts `s` to at most `max` characters.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A 2xx answer.
pub(crate) struct Reply {
    pub json: Value,
    pub text: String,
}

/// How a failed call bears on the channel's connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailKind {
    /// 401/403 or the provider's own "bad credentials" answer.
    Auth,
    /// No connection, timeout, or 5xx after the retries.
    Unreachable,
    /// Anything else (a rejection of this message, rate limits).
    Other,
}

/// A failed call.
#[derive(Debug)]
pub(crate) struct CallError {
    pub err: SendError,
    pub kind: FailKind,
}

impl CallError {
    pub(crate) fn new(channel: &str, reason: &'static str, detail: String, kind: FailKind) -> Self {
        CallError {
            err: SendError {
                reason,
                detail,
                attempts: 0,
                channel: channel.to_string(),
            },
            kind,
        }
    }
}

/// Runs `build()` until it gets a 2xx or gives up. `retries` counts retries made so far in
/// the whole send (every part shares one count for `Sent.attempts`); each call may retry
/// up to `limits.max_retries` times. `what` names the operation in errors (never a URL:
/// Telegram URLs carry the token).
pub(crate) async fn call(
    dialect: Dialect,
    limits: &Limits,
    retries: &mut u32,
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, CallError> {
    let id = dialect.id();
    let timeout = Duration::from_secs(limits.timeout_seconds.max(1));
    let mut tried = 0u32;
    loop {
        let can_retry = tried < limits.max_retries;
        let resp = build().timeout(timeout).send().await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                // `without_url`: the URL may contain a bot token.
                let e = e.without_url();
                if e.is_connect() && can_retry {
                    tracing::debug!(channel = id, what, error = %e, "connection failed, retrying");
                    tried += 1;
                    *retries += 1;
                    tokio::time::sleep(backoff(tried)).await;
                    continue;
                }
                let detail = if e.is_timeout() {
                    format!(
                        "{id} did not answer {what} within {} s (channels.{id}.timeoutSeconds)",
                        timeout.as_secs()
                    )
                } else {
                    format!("{id} is unreachable ({what}): {}", error_chain(&e))
                };
                return Err(CallError::new(
                    id,
                    "CHANNEL_UNREACHABLE",
                    detail,
                    FailKind::Unreachable,
                ));
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return Err(CallError::new(
                    id,
                    "CHANNEL_UNREACHABLE",
                    format!(
                        "{id} answer to {what} could not be read: {}",
                        error_chain(&e.without_url())
                    ),
                    FailKind::Unreachable,
                ));
            }
        };
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(Reply { json, text });
        }
        if status == 429 {
            let wait = dialect.retry_after(&headers, &json).unwrap_or(1.0).max(0.0);
            if wait > limits.max_retry_after_seconds as f64 {
                return Err(CallError::new(
                    id,
                    "CHANNEL_RATE_LIMITED",
                    format!(
                        "{id} is rate limiting {what} and asks to wait {wait:.1} s, longer than channels.{id}.maxRetryAfterSeconds ({} s); retry after {wait:.1} s",
                        limits.max_retry_after_seconds
                    ),
                    FailKind::Other,
                ));
            }
            if !can_retry {
                return Err(CallError::new(
                    id,
                    "CHANNEL_RATE_LIMITED",
                    format!(
                        "{id} is still rate limiting {what} after {} retries (channels.{id}.maxRetries); it asks to wait {wait:.1} s",
                        limits.max_retries
                    ),
                    FailKind::Other,
                ));
            }
            tracing::info!(channel = id, what, wait_s = wait, "rate limited, waiting");
            tried += 1;
            *retries += 1;
            tokio::time::sleep(clawplane_util::time::saturating_secs(wait)).await;
            continue;
        }
        if status >= 500 {
            if can_retry {
                tracing::debug!(channel = id, what, status, "server error, retrying");
                tried += 1;
                *retries += 1;
                tokio::time::sleep(backoff(tried)).await;
                continue;
            }
            return Err(CallError::new(
                id,
                "CHANNEL_UNREACHABLE",
                format!(
                    "{id} failed {what}: {}",
                    dialect.error_message(status, &json, &text)
                ),
                FailKind::Unreachable,
            ));
        }
        let kind = if status == 401 || (status == 403 && is_auth_403(dialect, &json)) {
            FailKind::Auth
        } else {
            FailKind::Other
        };
        let mut detail = format!(
            "{id} rejected {what}: {}",
            dialect.error_message(status, &json, &text)
        );
        if kind == FailKind::Auth {
            detail.push_str(&format!(" (check the credentials in channels.{id})"));
        }
        return Err(CallError::new(id, "CHANNEL_REJECTED", detail, kind));
    }
}

/// A 403 that means "this token may not do this at all" rather than "not to this
/// recipient" (Discord 50007 or Telegram "bot was blocked" are per-recipient).
fn is_auth_403(dialect: Dialect, body: &Value) -> bool {
    match dialect {
        Dialect::Discord => body.get("code").and_then(Value::as_i64) == Some(0),
        Dialect::Telegram => false,
        Dialect::WhatsApp => matches!(
            body.pointer("/error/code").and_then(Value::as_i64),
            Some(190 | 10 | 200)
        ),
        Dialect::Slack | Dialect::Webhook => true,
    }
}

/// 250 ms, 500 ms, 1 s, ... capped at 4 s.
fn backoff(tried: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << tried.saturating_sub(1).min(4)))
}

/// An error with its sources, e.g. "error sending request: connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
