//! A fake Anthropic Messages API: `POST /v1/messages` streaming `message_start`,
//! `content_block_start`, `content_block_delta` (`text_delta`), `content_block_stop`,
//! `message_delta` (usage), `message_stop` (or one `message` object without `stream`), and
//! `GET /v1/models`. Requires `x-api-key` (401 `authentication_error` otherwise) and
//! `anthropic-version` (400), errors in Anthropic's shape, records every request, and plays
//! queued replies before the default one.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use super::openai::{Recorded, Reply};
use super::openai::{Shared, serve, sse_body};
use super::recorder::Server;

/// The fake Anthropic server.
pub struct FakeAnthropic {
    /// `http://127.0.0.1:<port>` (what goes in `baseUrl`).
    pub base_url: String,
    pub state: Arc<Shared>,
    /// The server and its recorder.
    pub server: Server,
}

impl FakeAnthropic {
    pub async fn start(key: &str) -> FakeAnthropic {
        let state = Shared::new(key);
        let server = serve(
            state.clone(),
            &[
                ("POST", "/v1/messages", |s, r| Box::pin(messages(s, r))),
                ("GET", "/v1/models", |s, r| Box::pin(models(s, r))),
            ],
        )
        .await;
        FakeAnthropic {
            base_url: server.url.clone(),
            state,
            server,
        }
    }
    pub fn push(&self, r: Reply) -> &Self {
        self.state.script.lock().unwrap().push_back(r);
        self
    }
    pub fn set_default(&self, r: Reply) {
        *self.state.default.lock().unwrap() = Some(r);
    }
    /// Messages requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server
            .rec
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v1/messages")
            .collect()
    }
}

fn error_body(status: u16, kind: &str, message: &str, retry_after: Option<f64>) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

fn check(state: &Shared, req: &Recorded) -> Option<Response> {
    let key = req.header("x-api-key");
    if key != Some(state.key.as_str()) {
        return Some(error_body(
            401,
            "authentication_error",
            "invalid x-api-key",
            None,
        ));
    }
    if req.header("anthropic-version").is_none() {
        return Some(error_body(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
            None,
        ));
    }
    None
}

async fn models(state: Arc<Shared>, req: Recorded) -> Response {
    if let Some(r) = check(&state, &req) {
        return r;
    }
    axum::Json(json!({"data": [
        {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"}
    ], "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"}))
    .into_response()
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

async fn messages(state: Arc<Shared>, req: Recorded) -> Response {
    if let Some(r) = check(&state, &req) {
        return r;
    }
    let body = req.body;
    if !body["max_tokens"].is_u64() {
        return error_body(
            400,
            "invalid_request_error",
            "max_tokens: Field required",
            None,
        );
    }
    let model = body["model"].as_str().unwrap_or("").to_string();
    let Some(msgs) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error_body(
            400,
            "invalid_request_error",
            "messages: at least one message is required",
            None,
        );
    };
    if msgs[0]["role"] != "user" {
        return error_body(
            400,
            "invalid_request_error",
            "messages: first message must use the \"user\" role",
            None,
        );
    }
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let start = |input: u64| {
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message",
                   "role": "assistant", "model": model, "content": [], "stop_reason": null,
                   "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
        )
    };
    let block_start = event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    let delta = |t: &str| {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
        )
    };
    let mut reply = state.next(&model, &last_user);
    if let Reply::Stall(d) = reply {
        tokio::time::sleep(d).await;
        reply = Reply::text(&format!("{model} says: {last_user}"), state.usage);
    }
    match reply {
        Reply::Stall(_) => unreachable!("replaced above"),
        Reply::Error {
            status,
            kind,
            message,
            retry_after,
        } => error_body(status, &kind, &message, retry_after),
        Reply::Text { pieces, usage } if !stream => axum::Json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": pieces.concat()}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": usage.0, "output_tokens": usage.1}
        }))
        .into_response(),
        Reply::Text { pieces, usage } => {
            let mut frames = vec![
                start(usage.0),
                block_start,
                event("ping", json!({"type": "ping"})),
            ];
            frames.extend(pieces.iter().map(|p| delta(p)));
            frames.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            frames.push(event(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                       "usage": {"output_tokens": usage.1}}),
            ));
            frames.push(event("message_stop", json!({"type": "message_stop"})));
            sse_body(frames)
        }
        Reply::BreakAfter { pieces } => {
            let mut frames = vec![start(state.usage.0), block_start];
            frames.extend(pieces.iter().map(|p| delta(p)));
            frames.push(event(
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ));
            sse_body(frames)
        }
    }
}
