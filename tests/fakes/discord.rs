//! Fake Discord bot REST API (`/api/v10`): `POST /users/@me/channels` (DM channel),
//! `POST /channels/{id}/messages`, `GET /users/@me`. Checks `Authorization: Bot <token>`,
//! issues snowflakes, enforces the 2000-character content limit, and can answer the next
//! requests with a 429 (`retry_after` body + `Retry-After` header) or an error.
//!
//! Also home of the request recorder the other channel fakes share.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    pub raw: String,
}

impl Recorded {
    /// A header value by (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A canned answer for the next request.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub content_type: &'static str,
}

impl Canned {
    pub fn json(status: u16, body: Value) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            content_type: "application/json",
        }
    }
    pub fn text(status: u16, body: &str) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            content_type: "text/plain",
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

impl IntoResponse for Canned {
    fn into_response(self) -> Response {
        let mut r = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", self.content_type)],
            self.body,
        )
            .into_response();
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                axum::http::HeaderValue::from_str(&v),
            ) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }
}

/// Recorder + injection queue shared by the fakes.
#[derive(Default)]
pub struct Recorder {
    requests: Mutex<Vec<Recorded>>,
    injected: Mutex<VecDeque<(String, Canned)>>,
    counter: AtomicU64,
}

impl Recorder {
    /// Records a request.
    pub fn record(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Recorded {
        let raw = String::from_utf8_lossy(body).into_owned();
        let rec = Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        v.to_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
        };
        self.requests.lock().unwrap().push(rec.clone());
        rec
    }

    /// The first injected answer whose path filter matches `path` (an empty filter matches
    /// any path), removed from the queue.
    pub fn take(&self, path: &str) -> Option<Canned> {
        let mut q = self.injected.lock().unwrap();
        let pos = q
            .iter()
            .position(|(filter, _)| filter.is_empty() || path.contains(filter.as_str()));
        pos.and_then(|i| q.remove(i)).map(|(_, c)| c)
    }

    /// Answers the next request whose path contains `path_filter` ("" = any) with `c`.
    pub fn inject(&self, path_filter: &str, c: Canned) {
        self.injected
            .lock()
            .unwrap()
            .push_back((path_filter.into(), c));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// A fresh number (1, 2, 3, ...).
    pub fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Binds `127.0.0.1:0`, serves `app` in the background, returns `http://127.0.0.1:<port>`.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake");
    let addr = listener.local_addr().expect("fake addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

struct Inner {
    token: String,
    rec: Recorder,
    epoch_ms: u64,
}

/// A running fake Discord.
#[derive(Clone)]
pub struct FakeDiscord {
    /// The API base to configure as `channels.discord.baseUrl` (`.../api/v10`).
    pub base_url: String,
    inner: Arc<Inner>,
}

impl FakeDiscord {
    /// Starts a fake that accepts bot token `token`.
    pub async fn start(token: &str) -> Self {
        let inner = Arc::new(Inner {
            token: token.into(),
            rec: Recorder::default(),
            epoch_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let url = serve(app).await;
        FakeDiscord {
            base_url: format!("{url}/api/v10"),
            inner,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.rec.requests()
    }

    /// Requests whose path ends with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect()
    }

    /// `POST /channels/{id}/messages` requests.
    pub fn messages(&self) -> Vec<Recorded> {
        self.requests_to("/messages")
    }

    /// The next `n` requests get a 429 asking to wait `retry_after` seconds.
    pub fn rate_limit_next(&self, n: usize, retry_after: f64) {
        for _ in 0..n {
            self.inner.rec.inject(
                "",
                Canned::json(
                    429,
                    json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}),
                )
                .header("Retry-After", &format!("{}", retry_after.ceil() as u64))
                .header("X-RateLimit-Global", "false")
                .header("X-RateLimit-Scope", "user"),
            );
        }
    }

    /// The next message send answers 403 `{"code":50007,"message":"Cannot send messages to
    /// this user"}`.
    pub fn reject_next_message(&self) {
        self.inner.rec.inject(
            "/messages",
            Canned::json(
                403,
                json!({"code": 50007, "message": "Cannot send messages to this user"}),
            ),
        );
    }

    /// The next request matching `path_filter` gets this answer.
    pub fn inject(&self, path_filter: &str, c: Canned) {
        self.inner.rec.inject(path_filter, c);
    }

    fn snowflake(inner: &Inner) -> String {
        let ms = inner.epoch_ms.saturating_sub(1_420_070_400_000);
        ((ms << 22) | inner.rec.next()).to_string()
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = inner.rec.record(&method, &uri, &headers, &body);
    if rec.header("authorization") != Some(format!("Bot {}", inner.token).as_str()) {
        return Canned::json(401, json!({"message": "401: Unauthorized", "code": 0}))
            .into_response();
    }
    if let Some(c) = inner.rec.take(&rec.path) {
        return c.into_response();
    }
    let path = rec.path.strip_prefix("/api/v10").unwrap_or(&rec.path);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (rec.method.as_str(), segs.as_slice()) {
        ("GET", ["users", "@me"]) => Canned::json(
            200,
            json!({"id": "1000", "username": "fakebot", "bot": true, "discriminator": "0"}),
        )
        .into_response(),
        ("POST", ["users", "@me", "channels"]) => {
            let Some(user) = rec.body.get("recipient_id").and_then(Value::as_str) else {
                return Canned::json(400, json!({"code": 50035, "message": "Invalid Form Body"}))
                    .into_response();
            };
            Canned::json(
                200,
                json!({"id": FakeDiscord::snowflake(&inner), "type": 1, "recipients": [{"id": user}]}),
            )
            .into_response()
        }
        ("POST", ["channels", channel, "messages"]) => {
            let content = rec
                .body
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or("");
            if content.is_empty() || content.chars().count() > 2000 {
                return Canned::json(
                    400,
                    json!({"code": 50035, "message": "Invalid Form Body", "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}),
                )
                .into_response();
            }
            Canned::json(
                200,
                json!({"id": FakeDiscord::snowflake(&inner), "channel_id": channel, "content": content, "type": 0}),
            )
            .into_response()
        }
        _ => Canned::json(404, json!({"message": "404: Not Found", "code": 0})).into_response(),
    }
}
