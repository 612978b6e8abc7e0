//! Fake Slack: Web API `POST /api/chat.postMessage` and `/api/auth.test` (HTTP 200 with
//! `{"ok":false,"error":...}` on errors, `invalid_auth` for a wrong bearer token), and an
//! incoming webhook at `/services/T000/B000/XXXX` answering plain-text `ok`.

use super::recorder::{Canned, Recorded, Recorder, Server, serve};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// The incoming-webhook path this fake serves.
pub const WEBHOOK_PATH: &str = "/services/T000/B000/XXXXXXXXXXXXXXXX";

struct Inner {
    token: String,
}

/// A running fake Slack.
#[derive(Clone)]
pub struct FakeSlack {
    /// `channels.slack.baseUrl` (`.../api`).
    pub base_url: String,
    /// `channels.slack.webhookUrl`.
    pub webhook_url: String,
    /// The server and its recorder.
    pub server: Server,
}

impl FakeSlack {
    /// Starts a fake that accepts bot token `token`.
    pub async fn start(token: &str) -> Self {
        let inner = Arc::new(Inner {
            token: token.into(),
        });
        let server = serve(inner, handle).await;
        let url = server.url.clone();
        FakeSlack {
            base_url: format!("{url}/api"),
            webhook_url: format!("{url}{WEBHOOK_PATH}"),
            server,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.rec.requests()
    }

    /// `chat.postMessage` requests.
    pub fn messages(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat.postMessage"))
            .collect()
    }

    /// Incoming-webhook requests.
    pub fn webhook_posts(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == WEBHOOK_PATH)
            .collect()
    }

    /// The next `n` requests get HTTP 429 + `Retry-After: <secs>`.
    pub fn rate_limit_next(&self, n: usize, retry_after: f64) {
        for _ in 0..n {
            self.server.rec.inject(
                "",
                Canned::json(429, json!({"ok": false, "error": "ratelimited"}))
                    .header("Retry-After", &retry_after.to_string()),
            );
        }
    }

    /// The next Web API call answers 200 `{"ok":false,"error":<code>}`, e.g.
    /// `channel_not_found`.
    pub fn error_next(&self, code: &str) {
        self.server.rec.inject(
            "/api/",
            Canned::json(200, json!({"ok": false, "error": code})),
        );
    }

    /// The next request matching `path_filter` gets this answer.
    pub fn inject(&self, path_filter: &str, c: Canned) {
        self.server.rec.inject(path_filter, c);
    }
}

async fn handle(inner: Arc<Inner>, recorder: Arc<Recorder>, rec: Recorded) -> Response {
    if rec.path == WEBHOOK_PATH {
        if let Some(c) = recorder.take(&rec.path) {
            return c.into_response();
        }
        return match rec.body.get("text").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Canned::text(200, "ok").into_response(),
            _ => Canned::text(400, "no_text").into_response(),
        };
    }
    let Some(api) = rec.path.strip_prefix("/api/") else {
        return Canned::text(404, "no_service").into_response();
    };
    if rec.header("authorization") != Some(format!("Bearer {}", inner.token).as_str()) {
        let error = if rec.header("authorization").is_none() {
            "not_authed"
        } else {
            "invalid_auth"
        };
        return Canned::json(200, json!({"ok": false, "error": error})).into_response();
    }
    if let Some(c) = recorder.take(&rec.path) {
        return c.into_response();
    }
    match api {
        "auth.test" => Canned::json(
            200,
            json!({"ok": true, "url": "https://fake.slack.com/", "team": "Fake Team", "user": "fakebot", "team_id": "T000", "user_id": "U000", "bot_id": "B000"}),
        )
        .into_response(),
        "chat.postMessage" => {
            let channel = rec.body.get("channel").and_then(Value::as_str).unwrap_or("");
            let text = rec.body.get("text").and_then(Value::as_str).unwrap_or("");
            if channel.is_empty() {
                return Canned::json(200, json!({"ok": false, "error": "channel_not_found"}))
                    .into_response();
            }
            if text.is_empty() {
                return Canned::json(200, json!({"ok": false, "error": "no_text"}))
                    .into_response();
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let ts = format!("{now}.{:06}", recorder.next());
            let mut message = json!({"type": "message", "text": text, "user": "U000", "bot_id": "B000", "ts": ts});
            if let Some(t) = rec.body.get("thread_ts") {
                message["thread_ts"] = t.clone();
            }
            Canned::json(
                200,
                json!({"ok": true, "channel": channel, "ts": ts, "message": message}),
            )
            .into_response()
        }
        _ => Canned::json(200, json!({"ok": false, "error": "unknown_method"})).into_response(),
    }
}
