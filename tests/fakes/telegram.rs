//! Fake Telegram Bot API: `/bot<token>/sendMessage`, `/bot<token>/getMe`,
//! `/bot<token>/setWebhook`. A wrong token answers 401 `Unauthorized`; text over 4096
//! characters answers 400 `message is too long`; 429s carry `parameters.retry_after`.
//! Plus [`text_update`], an inbound update builder.

use super::recorder::{Canned, Recorded, Recorder, Server, serve};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

struct Inner {
    token: String,
}

/// A running fake Telegram.
#[derive(Clone)]
pub struct FakeTelegram {
    /// `channels.telegram.baseUrl` (without `/bot<token>`).
    pub base_url: String,
    /// The server and its recorder.
    pub server: Server,
}

impl FakeTelegram {
    /// Starts a fake that accepts bot token `token`.
    pub async fn start(token: &str) -> Self {
        let inner = Arc::new(Inner {
            token: token.into(),
        });
        let server = serve(inner, handle).await;
        FakeTelegram {
            base_url: server.url.clone(),
            server,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.rec.requests()
    }

    /// `sendMessage` requests.
    pub fn messages(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/sendMessage"))
            .collect()
    }

    /// The next `n` requests get a 429 with `parameters.retry_after` (whole seconds, as
    /// Telegram sends them; 0 retries at once).
    pub fn rate_limit_next(&self, n: usize, retry_after: u64) {
        for _ in 0..n {
            self.server.rec.inject(
                "",
                Canned::json(
                    429,
                    json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {retry_after}"), "parameters": {"retry_after": retry_after}}),
                ),
            );
        }
    }

    /// The next `sendMessage` answers 403 "Forbidden: bot was blocked by the user".
    pub fn block_next(&self) {
        self.server.rec.inject(
            "/sendMessage",
            Canned::json(
                403,
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            ),
        );
    }

    /// The next request matching `path_filter` gets this answer.
    pub fn inject(&self, path_filter: &str, c: Canned) {
        self.server.rec.inject(path_filter, c);
    }
}

async fn handle(inner: Arc<Inner>, recorder: Arc<Recorder>, rec: Recorded) -> Response {
    let Some((token, api_method)) = rec
        .path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Canned::json(
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        )
        .into_response();
    };
    if token != inner.token {
        return Canned::json(
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        )
        .into_response();
    }
    // Typing actions are answered before any injected answer (those are for the sends).
    if api_method == "sendChatAction" {
        let ok = rec.body.get("chat_id").is_some_and(|c| !c.is_null())
            && rec.body.get("action").and_then(Value::as_str) == Some("typing");
        return if ok {
            Canned::json(200, json!({"ok": true, "result": true})).into_response()
        } else {
            Canned::json(400, json!({"ok": false, "error_code": 400, "description": "Bad Request: wrong parameter action in request"})).into_response()
        };
    }
    if let Some(c) = recorder.take(&rec.path) {
        return c.into_response();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match api_method {
        "getMe" => Canned::json(
            200,
            json!({"ok": true, "result": {"id": 777, "is_bot": true, "first_name": "Fake", "username": "fake_bot"}}),
        )
        .into_response(),
        "setWebhook" => Canned::json(
            200,
            json!({"ok": true, "result": true, "description": "Webhook was set"}),
        )
        .into_response(),
        "sendMessage" => {
            let text = rec.body.get("text").and_then(Value::as_str).unwrap_or("");
            let chat = rec.body.get("chat_id").cloned().unwrap_or(Value::Null);
            if text.is_empty() {
                return Canned::json(400, json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"})).into_response();
            }
            if text.chars().count() > 4096 {
                return Canned::json(400, json!({"ok": false, "error_code": 400, "description": "Bad Request: message is too long"})).into_response();
            }
            let chat_obj = match &chat {
                Value::Number(n) if n.as_i64().is_some_and(|i| i < 0) => {
                    json!({"id": n, "type": "supergroup", "title": "Fake group"})
                }
                Value::Number(n) => json!({"id": n, "type": "private", "first_name": "Ann"}),
                Value::String(s) => json!({"id": -1001234567890i64, "type": "channel", "username": s.trim_start_matches('@')}),
                _ => {
                    return Canned::json(400, json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"})).into_response();
                }
            };
            let mut result = json!({
                "message_id": recorder.next(),
                "from": {"id": 777, "is_bot": true, "first_name": "Fake", "username": "fake_bot"},
                "chat": chat_obj,
                "date": now,
                "text": text,
            });
            if let Some(t) = rec.body.get("message_thread_id") {
                result["message_thread_id"] = t.clone();
                result["is_topic_message"] = json!(true);
            }
            Canned::json(200, json!({"ok": true, "result": result})).into_response()
        }
        _ => Canned::json(404, json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}))
            .into_response(),
    }
}

/// A Telegram `Update` with a text message from user `from_id` in chat `chat_id`
/// (private when equal, else a group).
pub fn text_update(update_id: i64, chat_id: i64, from_id: i64, text: &str) -> String {
    let chat = if chat_id == from_id {
        json!({"id": chat_id, "type": "private", "first_name": "Ann"})
    } else {
        json!({"id": chat_id, "type": "group", "title": "Fake group"})
    };
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id + 1000,
            "from": {"id": from_id, "is_bot": false, "first_name": "Ann", "language_code": "en"},
            "chat": chat,
            "date": 1_700_000_000,
            "text": text,
        }
    })
    .to_string()
}
