//! A plain Rust client of the OpenClaw WebSocket protocol at `/`: frames, requests and
//! responses, events, and the close code that ended a socket.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value as Json, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

use super::{Gateway, PATIENCE};

pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A test WebSocket client.
pub struct Ws {
    pub s: Stream,
    /// Events seen while waiting for responses.
    pub events: Vec<Json>,
}

/// What ended a socket: the close code and reason (1006 when it ended without a close).
#[derive(Debug)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl Ws {
    pub async fn open(gw: &Gateway) -> Ws {
        Self::open_path(gw, "/").await
    }

    pub async fn open_path(gw: &Gateway, path: &str) -> Ws {
        Self::open_with_headers(gw, path, &[]).await
    }

    /// Opens `path` sending extra handshake headers (e.g. `X-Forwarded-For`).
    pub async fn open_with_headers(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let url = format!("ws://{}{}", gw.addr, path);
        let mut req = url.as_str().into_client_request().expect("ws request");
        for (k, v) in headers {
            req.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                    .expect("header name"),
                v.parse().expect("header value"),
            );
        }
        let (s, _) = tokio::time::timeout(PATIENCE, connect_async(req))
            .await
            .unwrap_or_else(|_| panic!("ws connect {url} timed out"))
            .unwrap_or_else(|e| panic!("ws connect {url}: {e}"));
        Ws { s, events: vec![] }
    }

    /// Opens `path` expecting the upgrade to be refused; returns the HTTP status and the
    /// JSON body.
    pub async fn refused(gw: &Gateway, path: &str) -> (u16, Json) {
        let url = format!("ws://{}{}", gw.addr, path);
        let r = tokio::time::timeout(PATIENCE, connect_async(url.as_str()))
            .await
            .unwrap_or_else(|_| panic!("ws connect {url} timed out"));
        match r {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp.body().clone().unwrap_or_default();
                let v = serde_json::from_slice(&body).unwrap_or_else(|e| {
                    panic!(
                        "refusal body is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&body)
                    )
                });
                (resp.status().as_u16(), v)
            }
            Err(e) => panic!("ws connect {url}: {e}, not an HTTP refusal"),
            Ok(_) => panic!("ws connect {url} was accepted"),
        }
    }

    pub async fn send(&mut self, v: Json) {
        self.s
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    /// The next JSON frame; `Err` with the close when the socket ended.
    pub async fn next(&mut self) -> Result<Json, Closed> {
        loop {
            let m = tokio::time::timeout(PATIENCE, self.s.next())
                .await
                .expect("no ws frame in time");
            match m {
                Some(Ok(Message::Text(t))) => {
                    return Ok(serde_json::from_str(&t).expect("frame is JSON"));
                }
                Some(Ok(Message::Close(f))) => {
                    let (code, reason) = f
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    // Finish the close handshake.
                    while let Ok(Some(Ok(_))) =
                        tokio::time::timeout(Duration::from_secs(2), self.s.next()).await
                    {
                    }
                    return Err(Closed { code, reason });
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    return Err(Closed {
                        code: 1006,
                        reason: String::new(),
                    });
                }
            }
        }
    }

    pub async fn frame(&mut self) -> Json {
        match self.next().await {
            Ok(v) => v,
            Err(c) => panic!("socket closed unexpectedly: {c:?}"),
        }
    }

    /// Reads until the server closes; skips frames.
    pub async fn closed(&mut self) -> Closed {
        loop {
            if let Err(c) = self.next().await {
                return c;
            }
        }
    }

    /// Sends a request; returns its id.
    pub async fn req(&mut self, method: &str, params: Json) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.send(json!({"type": "req", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// The next response to `id` (events on the way are kept in `self.events`).
    pub async fn res(&mut self, id: &str) -> Json {
        loop {
            let f = self.frame().await;
            if f["type"] == "res" && f["id"] == id {
                return f;
            }
            if f["type"] == "event" {
                self.events.push(f);
            }
        }
    }

    /// `req` + `res`.
    pub async fn call(&mut self, method: &str, params: Json) -> Json {
        let id = self.req(method, params).await;
        self.res(&id).await
    }

    /// `call` that must succeed; returns the payload.
    pub async fn ok(&mut self, method: &str, params: Json) -> Json {
        let r = self.call(method, params.clone()).await;
        assert_eq!(r["ok"], true, "{method} {params} failed: {r}");
        r["payload"].clone()
    }

    /// Events (from `self.events`, then the socket) until `done` matches one.
    pub async fn event_until(&mut self, mut done: impl FnMut(&Json) -> bool) -> Vec<Json> {
        let mut out = Vec::new();
        for e in std::mem::take(&mut self.events) {
            let stop = done(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
        loop {
            let f = self.frame().await;
            if f["type"] != "event" {
                continue;
            }
            let stop = done(&f);
            out.push(f);
            if stop {
                return out;
            }
        }
    }
}

/// Connect params as the 2026.9.6 CLI sends them.
pub fn connect_params(token: Option<&str>, min: u64, max: u64) -> Json {
    let mut p = json!({
        "minProtocol": min,
        "maxProtocol": max,
        "client": {"id": "cli", "mode": "cli", "version": "2026.9.6", "platform": "linux", "instanceId": uuid::Uuid::new_v4().to_string()},
        "role": "operator",
        "scopes": ["operator.admin"],
    });
    if let Some(t) = token {
        p["auth"] = json!({"token": t});
    }
    p
}

/// Opens a socket, checks the challenge, sends `connect`; returns the socket, the
/// challenge and the connect response.
pub async fn handshake(gw: &Gateway, params: Json) -> (Ws, Json, Json) {
    let mut ws = Ws::open(gw).await;
    let challenge = ws.frame().await;
    assert_eq!(challenge["type"], "event", "{challenge}");
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    let id = ws.req("connect", params).await;
    let res = ws.res(&id).await;
    (ws, challenge, res)
}

/// A connected operator socket (protocol 4, the gateway token).
pub async fn operator(gw: &Gateway) -> (Ws, Json) {
    let (ws, _, res) = handshake(gw, connect_params(Some(&gw.token), 4, 4)).await;
    assert_eq!(res["ok"], true, "connect failed: {res}");
    (ws, res["payload"].clone())
}
