//! A webhook receiver: axum on `127.0.0.1:0` that records every request (method, path,
//! lowercased headers, raw body, the status it answered) and answers from a script — e.g.
//! one `500`, a `429` with `Retry-After`, or `410` — then its default (200 unless changed).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How to answer one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    /// A plain answer with this status.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            retry_after: None,
            body: String::new(),
        }
    }
    /// This status with a `Retry-After` header.
    pub fn retry_after(status: u16, after: &str) -> Self {
        Reply {
            status,
            retry_after: Some(after.into()),
            body: String::new(),
        }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lowercased names; the last value of a repeated header.
    pub headers: HashMap<String, String>,
    /// The raw body bytes.
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub answered: u16,
    pub at: Instant,
}

impl Received {
    /// A header value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or("")
    }
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "receiver: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
}

/// The running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Receiver {
    /// Binds `127.0.0.1:0` and serves every path and method.
    pub async fn start() -> Receiver {
        let state = Arc::new(State::default());
        let s = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(&s, method, uri, headers, body) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("receiver: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("receiver: local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these replies, in order (after earlier scripted ones).
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.script).extend(replies);
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.then((0..n).map(|_| Reply::status(status)));
    }

    /// What unscripted requests get (200 by default).
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.state.default) = Some(reply);
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Waits until at least `n` requests arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "receiver: expected {n} requests within {within:?}, got {}: {got:#?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn handle(s: &State, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let reply = lock(&s.script)
        .pop_front()
        .or_else(|| lock(&s.default).clone())
        .unwrap_or_else(|| Reply::status(200));
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    lock(&s.received).push(Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
        answered: reply.status,
        at: Instant::now(),
    });
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, reply.body).into_response();
    if let Some(ra) = reply.retry_after
        && let Ok(v) = ra.parse()
    {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}
