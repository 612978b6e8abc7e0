//! Fake Discord Gateway (the bot WebSocket, API v10, JSON encoding), following the
//! published protocol: Hello (op 10) with `heartbeat_interval`; Identify (op 2) checked
//! against the bot token (else close 4004) and answered with READY (`session_id`,
//! `resume_gateway_url`, the bot user); Heartbeat (op 1) answered with op 11 (unless told
//! not to); Resume (op 6) replays the session's dispatches after `seq` then RESUMED, or an
//! unknown session gets Invalid Session (op 9, `d: false`); a frame before Identify closes
//! 4003. The test drives it: dispatch messages, ask to reconnect (op 7), invalidate the
//! session, close with a code, stop acknowledging heartbeats.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

/// The bot's user id in READY.
pub const BOT_USER_ID: &str = "1000";

enum Cmd {
    Send(Value),
    Raw(String),
    Close(u16, String),
}

#[derive(Default)]
struct Session {
    /// Every dispatch of the session, with its seq.
    sent: Vec<(u64, Value)>,
    /// The connection the session is live on.
    conn: Option<mpsc::UnboundedSender<Cmd>>,
}

/// What a client sent, in order.
#[derive(Debug, Clone)]
pub struct Received {
    pub op: u64,
    pub d: Value,
}

struct State {
    token: String,
    url: String,
    heartbeat_ms: AtomicU64,
    ack: AtomicBool,
    sessions: Mutex<HashMap<String, Session>>,
    received: Mutex<Vec<Received>>,
    connections: AtomicU64,
    changed: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake Gateway.
#[derive(Clone)]
pub struct FakeGateway {
    /// `ws://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<State>,
}

impl FakeGateway {
    /// Starts a Gateway that accepts `token`, asking for heartbeats every `heartbeat_ms`.
    pub async fn start(token: &str, heartbeat_ms: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake gateway: bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(State {
            token: token.into(),
            url: url.clone(),
            heartbeat_ms: AtomicU64::new(heartbeat_ms),
            ack: AtomicBool::new(true),
            sessions: Mutex::default(),
            received: Mutex::default(),
            connections: AtomicU64::new(0),
            changed: watch::channel(0).0,
        });
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        connection(s, ws).await;
                    }
                });
            }
        });
        FakeGateway { url, state }
    }

    /// Every frame clients sent so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// The payloads of the frames with `op`.
    pub fn sent_with(&self, op: u64) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.op == op)
            .map(|r| r.d)
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Sessions with a live connection now.
    pub fn live(&self) -> usize {
        lock(&self.state.sessions)
            .values()
            .filter(|s| s.conn.as_ref().is_some_and(|c| !c.is_closed()))
            .count()
    }

    /// Waits until `done` holds (panics after `within`, naming `what`).
    pub async fn wait(&self, within: Duration, what: &str, done: impl Fn(&FakeGateway) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        let mut changed = self.state.changed.subscribe();
        loop {
            changed.mark_unchanged();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                panic!(
                    "fake gateway: expected {what} within {within:?}; received {:#?}",
                    self.received()
                );
            }
        }
    }

    /// Waits until `n` Identify frames arrived and the last session is live.
    pub async fn wait_identified(&self, n: usize) {
        self.wait(
            Duration::from_secs(30),
            &format!("{n} identifies, live"),
            |g| g.sent_with(2).len() >= n && g.live() == 1,
        )
        .await;
    }

    /// Heartbeats are not acknowledged from now on (`false`) or again (`true`).
    pub fn acknowledge_heartbeats(&self, ack: bool) {
        self.state.ack.store(ack, Ordering::SeqCst);
    }

    /// The one session that is (or was last) live.
    fn current(&self) -> Option<String> {
        let sessions = lock(&self.state.sessions);
        sessions
            .iter()
            .find(|(_, s)| s.conn.as_ref().is_some_and(|c| !c.is_closed()))
            .or_else(|| sessions.iter().max_by_key(|(_, s)| s.sent.len()))
            .map(|(id, _)| id.clone())
    }

    /// Dispatches an event to the current session (buffered for a resume when it is not
    /// connected right now); returns its seq.
    pub fn dispatch(&self, t: &str, d: Value) -> u64 {
        let id = self.current().expect("a session to dispatch to");
        let mut sessions = lock(&self.state.sessions);
        let s = sessions.get_mut(&id).expect("session");
        let seq = s.sent.last().map_or(1, |(q, _)| q + 1);
        let frame = json!({"op": 0, "t": t, "s": seq, "d": d});
        s.sent.push((seq, frame.clone()));
        if let Some(c) = &s.conn {
            let _ = c.send(Cmd::Send(frame));
        }
        seq
    }

    /// A direct message from `user` in DM channel `channel`; answers the message id.
    pub fn dm(&self, user: &str, channel: &str, text: &str) -> String {
        let id = format!("{}", 1_300_000_000_000_000_000u64 + rand_id());
        self.dispatch(
            "MESSAGE_CREATE",
            json!({"id": id, "channel_id": channel, "content": text, "type": 0, "mentions": [],
                   "author": {"id": user, "username": format!("user{user}"), "global_name": "Ann", "discriminator": "0"}}),
        );
        id
    }

    /// A guild message in `channel` from `user`; `mention` makes it mention the bot.
    pub fn guild_message(
        &self,
        guild: &str,
        channel: &str,
        user: &str,
        text: &str,
        mention: bool,
    ) -> String {
        let id = format!("{}", 1_300_000_000_000_000_000u64 + rand_id());
        let (content, mentions) = if mention {
            (
                format!("<@{BOT_USER_ID}> {text}"),
                json!([{"id": BOT_USER_ID, "username": "fakebot", "bot": true}]),
            )
        } else {
            (text.to_string(), json!([]))
        };
        self.dispatch(
            "MESSAGE_CREATE",
            json!({"id": id, "channel_id": channel, "guild_id": guild, "content": content, "type": 0, "mentions": mentions,
                   "author": {"id": user, "username": format!("user{user}"), "discriminator": "0"}}),
        );
        id
    }

    fn to_live(&self, cmd: Cmd) {
        let id = self.current().expect("a live session");
        if let Some(c) = lock(&self.state.sessions)
            .get(&id)
            .and_then(|s| s.conn.clone())
        {
            let _ = c.send(cmd);
        }
    }

    /// Sends `text` as it is (a frame the protocol does not define) on the live connection.
    pub fn send_raw(&self, text: &str) {
        self.to_live(Cmd::Raw(text.into()));
    }

    /// Op 7: the client should reconnect and resume.
    pub fn ask_reconnect(&self) {
        self.to_live(Cmd::Send(json!({"op": 7, "d": null})));
    }

    /// Op 9 with `d: resumable`; a session that may not resume is forgotten.
    pub fn invalidate_session(&self, resumable: bool) {
        let id = self.current().expect("a live session");
        self.to_live(Cmd::Send(json!({"op": 9, "d": resumable})));
        if !resumable {
            lock(&self.state.sessions).remove(&id);
        }
    }

    /// Closes the live connection with `code`.
    pub fn close(&self, code: u16, reason: &str) {
        self.to_live(Cmd::Close(code, reason.into()));
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::SeqCst) + (std::process::id() as u64) * 1_000_000
}

async fn connection(
    state: Arc<State>,
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) {
    state.connections.fetch_add(1, Ordering::SeqCst);
    state.changed.send_modify(|n| *n += 1);
    let (mut tx, mut rx) = ws.split();
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Cmd>();
    let hello =
        json!({"op": 10, "d": {"heartbeat_interval": state.heartbeat_ms.load(Ordering::SeqCst)}});
    if tx.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let mut session: Option<String> = None;
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        }))
    };
    loop {
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd {
                Some(Cmd::Send(v)) => { if tx.send(Message::text(v.to_string())).await.is_err() { break } }
                Some(Cmd::Raw(t)) => { if tx.send(Message::text(t)).await.is_err() { break } }
                Some(Cmd::Close(code, reason)) => { let _ = tx.send(close(code, &reason)).await; break }
                None => break,
            },
            frame = rx.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    let _ = tx.send(close(4002, "Error while decoding payload.")).await;
                    break;
                };
                let op = v["op"].as_u64().unwrap_or(u64::MAX);
                lock(&state.received).push(Received { op, d: v["d"].clone() });
                state.changed.send_modify(|n| *n += 1);
                match op {
                    1 => {
                        let ack = state.ack.load(Ordering::SeqCst);
                        let sent = if ack { tx.send(Message::text(json!({"op": 11}).to_string())).await } else { Ok(()) };
                        if sent.is_err() {
                            break;
                        }
                    }
                    2 => {
                        if v["d"]["token"].as_str() != Some(state.token.as_str()) {
                            let _ = tx.send(close(4004, "Authentication failed.")).await;
                            break;
                        }
                        let id = format!("fake-session-{}", rand_id());
                        let ready = json!({"op": 0, "t": "READY", "s": 1, "d": {
                            "v": 10, "session_id": id, "resume_gateway_url": state.url,
                            "user": {"id": BOT_USER_ID, "username": "fakebot", "bot": true, "discriminator": "0"},
                            "guilds": [], "application": {"id": BOT_USER_ID, "flags": 0}}});
                        lock(&state.sessions).insert(id.clone(), Session { sent: vec![(1, ready.clone())], conn: Some(cmd_tx.clone()) });
                        session = Some(id);
                        if tx.send(Message::text(ready.to_string())).await.is_err() { break }
                        state.changed.send_modify(|n| *n += 1);
                    }
                    6 => {
                        let id = v["d"]["session_id"].as_str().unwrap_or_default().to_string();
                        let after = v["d"]["seq"].as_u64().unwrap_or(0);
                        let replay = {
                            let mut sessions = lock(&state.sessions);
                            match sessions.get_mut(&id) {
                                Some(s) if v["d"]["token"].as_str() == Some(state.token.as_str()) => {
                                    s.conn = Some(cmd_tx.clone());
                                    let next = s.sent.last().map_or(1, |(q, _)| q + 1);
                                    let mut frames: Vec<Value> = s.sent.iter().filter(|(q, _)| *q > after).map(|(_, f)| f.clone()).collect();
                                    let resumed = json!({"op": 0, "t": "RESUMED", "s": next, "d": {}});
                                    s.sent.push((next, resumed.clone()));
                                    frames.push(resumed);
                                    Some(frames)
                                }
                                _ => None,
                            }
                        };
                        match replay {
                            Some(frames) => {
                                session = Some(id);
                                for f in frames {
                                    if tx.send(Message::text(f.to_string())).await.is_err() { break }
                                }
                            }
                            None => {
                                if tx.send(Message::text(json!({"op": 9, "d": false}).to_string())).await.is_err() { break }
                            }
                        }
                        state.changed.send_modify(|n| *n += 1);
                    }
                    _ if session.is_none() => {
                        let _ = tx.send(close(4003, "Not authenticated.")).await;
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(id) = session
        && let Some(s) = lock(&state.sessions).get_mut(&id)
        && s.conn.as_ref().is_some_and(|c| c.same_channel(&cmd_tx))
    {
        s.conn = None;
    }
    state.changed.send_modify(|n| *n += 1);
}
