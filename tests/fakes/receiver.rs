//! A webhook receiver on the shared recorder: records every request (method, path,
//! lowercased headers, raw body, the status it answered) and answers from a script — e.g.
//! one `500`, a `429` with `Retry-After`, or `410` — then its default (200 unless changed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};

pub use super::recorder::Recorded as Received;
use super::recorder::{Canned, Recorded, Recorder, Server, serve};

/// How to answer one request: [`Reply::status`] or [`Reply::retry_after`].
pub type Reply = Canned;

/// The running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    pub server: Server,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.stop();
    }
}

async fn handle(_: Arc<()>, rec: Arc<Recorder>, req: Recorded) -> Response {
    rec.take_or_default(&req.path)
        .unwrap_or_else(|| Reply::status(200))
        .into_response()
}

impl Receiver {
    /// Binds `127.0.0.1:0` and serves every path and method.
    pub async fn start() -> Receiver {
        let server = serve(Arc::new(()), handle).await;
        Receiver {
            addr: server.addr,
            server,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// Answers the next requests with these replies, in order (after earlier scripted ones).
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        for r in replies {
            self.server.rec.inject("", r);
        }
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.then((0..n).map(|_| Reply::status(status)));
    }

    /// What unscripted requests get (200 by default).
    pub fn set_default(&self, reply: Reply) {
        self.server.rec.set_default(reply);
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.server.rec.requests()
    }

    /// Waits until at least `n` requests arrived and were answered (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        self.server.rec.wait_for(n, within).await
    }

    /// Waits until `done` holds for the requests so far (panics after `within`).
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        self.server.rec.wait_until(within, what, done).await
    }
}
