//! A fake OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama all speak this):
//! `POST /v1/chat/completions` (SSE `chat.completion.chunk`s with a final usage chunk and
//! `data: [DONE]` when `stream` is true, else one `chat.completion`) and `GET /v1/models`.
//! Checks `Authorization: Bearer <key>` (401 in OpenAI's error shape otherwise), records
//! every request, and plays queued replies (429 with Retry-After, 5xx, a stream that breaks
//! midway) before the default one.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

pub use super::recorder::Recorded;
use super::recorder::{Canned, Recorder, Server};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Stream these text pieces, then usage `(input, output)`.
    Text {
        pieces: Vec<String>,
        usage: (u64, u64),
    },
    /// An error status with the provider's error body and an optional `Retry-After` (s).
    Error {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<f64>,
    },
    /// Stream these pieces, then an error event instead of finishing.
    BreakAfter { pieces: Vec<String> },
    /// Wait this long before answering with the default text.
    Stall(Duration),
}

impl Reply {
    /// A text reply split into word pieces (each with its trailing space).
    pub fn text(text: &str, usage: (u64, u64)) -> Reply {
        Reply::Text {
            pieces: split_words(text),
            usage,
        }
    }
    /// An error status.
    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::Error {
            status,
            kind: kind.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429 with `Retry-After: <secs>`.
    pub fn rate_limited(secs: f64) -> Reply {
        Reply::Error {
            status: 429,
            kind: "rate_limit_error".into(),
            message: "Rate limit reached, slow down".into(),
            retry_after: Some(secs),
        }
    }
}

/// `"a b c"` -> `["a ", "b ", "c"]`.
pub fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            cur.push(c);
        } else {
            if cur.ends_with(char::is_whitespace) {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// State shared by the fakes.
pub struct Shared {
    pub key: String,
    pub script: Mutex<VecDeque<Reply>>,
    /// When set, the default reply; else `"<model> says: <last user text>"`.
    pub default: Mutex<Option<Reply>>,
    pub usage: (u64, u64),
}

impl Shared {
    pub fn new(key: &str) -> Arc<Shared> {
        Arc::new(Shared {
            key: key.into(),
            script: Mutex::default(),
            default: Mutex::default(),
            usage: (11, 7),
        })
    }

    /// The next scripted reply, else the default for `model` / `last_user`.
    pub fn next(&self, model: &str, last_user: &str) -> Reply {
        if let Some(r) = self.script.lock().unwrap().pop_front() {
            return r;
        }
        if let Some(r) = self.default.lock().unwrap().clone() {
            return r;
        }
        Reply::text(&format!("{model} says: {last_user}"), self.usage)
    }
}

/// Serves `routes` (method, path, handler) on the shared recorder; other paths answer 404
/// and other methods 405, like an axum router.
pub async fn serve(state: Arc<Shared>, routes: &'static [Route]) -> Server {
    super::recorder::serve(
        state,
        move |state, _rec: Arc<Recorder>, req: Recorded| async move {
            let mut path_known = false;
            for (method, path, handler) in routes {
                if req.path == *path {
                    path_known = true;
                    if req.method == *method {
                        return handler(state, req).await;
                    }
                }
            }
            Canned::status(if path_known { 405 } else { 404 }).into_response()
        },
    )
    .await
}

/// One route of a model fake.
pub type Route = (
    &'static str,
    &'static str,
    fn(Arc<Shared>, Recorded) -> futures::future::BoxFuture<'static, Response>,
);

/// A stream of SSE frames, a few milliseconds apart (so they arrive as separate chunks).
pub fn sse_body(frames: Vec<String>) -> Response {
    let stream = futures::stream::iter(frames).then(|f| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, Infallible>(f)
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// The fake OpenAI-compatible server.
pub struct FakeOpenAi {
    /// `http://127.0.0.1:<port>/v1` (what goes in `baseUrl`).
    pub base_url: String,
    pub state: Arc<Shared>,
    /// The server and its recorder.
    pub server: Server,
}

impl FakeOpenAi {
    /// Starts a fake accepting `key` (an empty key accepts any or none, like Ollama).
    pub async fn start(key: &str) -> FakeOpenAi {
        let state = Shared::new(key);
        let server = serve(
            state.clone(),
            &[
                ("POST", "/v1/chat/completions", |s, r| {
                    Box::pin(completions(s, r))
                }),
                ("GET", "/v1/models", |s, r| Box::pin(models(s, r))),
            ],
        )
        .await;
        FakeOpenAi {
            base_url: format!("{}/v1", server.url),
            state,
            server,
        }
    }
    /// Queues a one-shot reply.
    pub fn push(&self, r: Reply) -> &Self {
        self.state.script.lock().unwrap().push_back(r);
        self
    }
    /// Replaces the default reply.
    pub fn set_default(&self, r: Reply) {
        *self.state.default.lock().unwrap() = Some(r);
    }
    /// Chat completion requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server
            .rec
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .collect()
    }
}

fn error_body(status: u16, kind: &str, message: &str, retry_after: Option<f64>) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": kind}}),
        ),
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

fn authorized(state: &Shared, req: &Recorded) -> bool {
    state.key.is_empty()
        || req
            .header("authorization")
            .is_some_and(|v| v == format!("Bearer {}", state.key))
}

async fn models(state: Arc<Shared>, req: Recorded) -> Response {
    if !authorized(&state, &req) {
        return error_body(401, "invalid_api_key", "Incorrect API key provided", None);
    }
    axum::Json(json!({"object": "list", "data": [
        {"id": "llama3", "object": "model", "created": 0, "owned_by": "fake"},
        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "fake"}
    ]}))
    .into_response()
}

async fn completions(state: Arc<Shared>, req: Recorded) -> Response {
    if !authorized(&state, &req) {
        return error_body(401, "invalid_api_key", "Incorrect API key provided", None);
    }
    let body = req.body;
    let model = body["model"].as_str().unwrap_or("").to_string();
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error_body(400, "invalid_request_error", "messages is required", None);
    };
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                   "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
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
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": pieces.concat()},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1,
                      "total_tokens": usage.0 + usage.1}
        }))
        .into_response(),
        Reply::Text { pieces, usage } => {
            let mut frames = vec![chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )];
            frames.extend(
                pieces
                    .iter()
                    .map(|p| chunk(json!({"content": p}), Value::Null)),
            );
            frames.push(chunk(json!({}), json!("stop")));
            if body["stream_options"]["include_usage"] == true {
                frames.push(format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                           "model": model, "choices": [],
                           "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1,
                                     "total_tokens": usage.0 + usage.1}})
                ));
            }
            frames.push("data: [DONE]\n\n".into());
            sse_body(frames)
        }
        Reply::BreakAfter { pieces } => {
            let mut frames: Vec<String> = pieces
                .iter()
                .map(|p| chunk(json!({"content": p}), Value::Null))
                .collect();
            frames.push(format!(
                "data: {}\n\n",
                json!({"error": {"message": "The server had an error while processing your request", "type": "server_error", "code": null}})
            ));
            sse_body(frames)
        }
    }
}
