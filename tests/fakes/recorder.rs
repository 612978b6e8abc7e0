//! The one recorder every fake is built on: [`serve`] starts an axum app on `127.0.0.1:0`
//! whose every request (method, path, query, lowercased headers, body, the status it was
//! answered with, arrival time) is recorded, and hands each request to the fake's handler.
//! Tests wait for requests with [`Recorder::wait_for`] / [`Recorder::wait_until`] (woken on
//! each arrival, no polling) and script answers with [`Recorder::inject`] (the next request
//! whose path matches gets a canned response, e.g. a 429 or a 500) and
//! [`Recorder::set_default`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Header names lowercased; the last value of a repeated header.
    pub headers: HashMap<String, String>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The body as (lossy) text.
    pub raw: String,
    /// The body bytes as received.
    pub bytes: Vec<u8>,
    /// The status the fake answered (0 while the handler is still working on it).
    pub answered: u16,
    /// When the request arrived.
    pub at: Instant,
}

impl Recorded {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    /// A header value, "" when absent.
    pub fn header_str(&self, name: &str) -> &str {
        self.header(name).unwrap_or("")
    }
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("fake: body is not JSON ({e}): {}", self.raw))
    }
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub content_type: &'static str,
}

impl Canned {
    /// A JSON body with this status.
    pub fn json(status: u16, body: Value) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            content_type: "application/json",
        }
    }
    /// A plain-text body with this status.
    pub fn text(status: u16, body: &str) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            content_type: "text/plain",
        }
    }
    /// This status with an empty body.
    pub fn status(status: u16) -> Self {
        Self::text(status, "")
    }
    /// This status with a `Retry-After` header.
    pub fn retry_after(status: u16, after: &str) -> Self {
        Self::status(status).header("Retry-After", after)
    }
    /// An extra header.
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a fake received, plus the answers scripted for it.
pub struct Recorder {
    requests: Mutex<Vec<Recorded>>,
    injected: Mutex<VecDeque<(String, Canned)>>,
    default: Mutex<Option<Canned>>,
    /// Path filters of requests to record and then never answer (see [`Recorder::hold_next`]).
    held: Mutex<Vec<String>>,
    counter: AtomicU64,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            requests: Mutex::default(),
            injected: Mutex::default(),
            default: Mutex::default(),
            held: Mutex::default(),
            counter: AtomicU64::new(0),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Recorder {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> usize {
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
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
            bytes: body.to_vec(),
            answered: 0,
            at: Instant::now(),
        };
        let mut reqs = lock(&self.requests);
        reqs.push(rec);
        let idx = reqs.len() - 1;
        drop(reqs);
        self.changed.send_modify(|n| *n += 1);
        idx
    }

    fn answered(&self, idx: usize, status: u16) {
        if let Some(r) = lock(&self.requests).get_mut(idx) {
            r.answered = status;
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// The first injected answer whose path filter matches `path` (an empty filter matches
    /// any path), removed from the queue.
    pub fn take(&self, path: &str) -> Option<Canned> {
        let mut q = lock(&self.injected);
        let pos = q
            .iter()
            .position(|(filter, _)| filter.is_empty() || path.contains(filter.as_str()));
        pos.and_then(|i| q.remove(i)).map(|(_, c)| c)
    }

    /// [`Self::take`], else the default answer (see [`Self::set_default`]).
    pub fn take_or_default(&self, path: &str) -> Option<Canned> {
        self.take(path).or_else(|| lock(&self.default).clone())
    }

    /// Answers the next request whose path contains `path_filter` ("" = any) with `c`.
    pub fn inject(&self, path_filter: &str, c: Canned) {
        lock(&self.injected).push_back((path_filter.into(), c));
    }

    /// Records the next request whose path contains `path_filter` ("" = any) and never
    /// answers it: the caller is left waiting, as when the provider took a message and the
    /// caller dies before hearing so.
    pub fn hold_next(&self, path_filter: &str) {
        lock(&self.held).push(path_filter.into());
    }

    fn take_hold(&self, path: &str) -> bool {
        let mut held = lock(&self.held);
        match held
            .iter()
            .position(|f| f.is_empty() || path.contains(f.as_str()))
        {
            Some(i) => {
                held.remove(i);
                true
            }
            None => false,
        }
    }

    /// What requests get when nothing is injected for them (fakes that use
    /// [`Self::take_or_default`]).
    pub fn set_default(&self, c: Canned) {
        *lock(&self.default) = Some(c);
    }

    /// Every request so far (including ones still being answered).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }

    /// A fresh number (1, 2, 3, ...), for ids the fake issues.
    pub fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Waits until at least `n` requests arrived and were answered (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        self.wait_until(within, &format!("{n} answered requests"), |got| {
            got.iter().filter(|r| r.answered != 0).count() >= n
        })
        .await
    }

    /// Waits until `done` holds for the requests so far (panics after `within`, naming
    /// `what`); returns them.
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        mut done: impl FnMut(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        let mut changed = self.changed.subscribe();
        loop {
            changed.mark_unchanged();
            let got = self.requests();
            if done(&got) {
                return got;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                let got = self.requests();
                panic!(
                    "fake: expected {what} within {within:?}, got {}: {got:#?}",
                    got.len()
                );
            }
        }
    }
}

/// A running fake: its address, base URL and recorder. Serves until the test process
/// ends unless [`Server::stop`] is called.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub rec: Arc<Recorder>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Stops serving (open connections end).
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Binds `127.0.0.1:0` and serves every method and path: each request is recorded, then
/// answered by `handler(state, recorder, request)`, and its status noted.
pub async fn serve<S, F, Fut>(state: Arc<S>, handler: F) -> Server
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Arc<Recorder>, Recorded) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let rec = Arc::new(Recorder::default());
    let r = rec.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (rec, state, handler) = (r.clone(), state.clone(), handler.clone());
            async move {
                let idx = rec.record(&method, &uri, &headers, &body);
                let req = lock(&rec.requests)[idx].clone();
                if rec.take_hold(&req.path) {
                    std::future::pending::<()>().await;
                }
                let resp = handler(state, rec.clone(), req).await;
                rec.answered(idx, resp.status().as_u16());
                resp
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("fake: bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("fake: local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        addr,
        url: format!("http://{addr}"),
        rec,
        task: Arc::new(task),
    }
}
