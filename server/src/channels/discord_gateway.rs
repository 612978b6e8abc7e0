//! The Discord Gateway client: the WebSocket a bot keeps open to receive messages
//! (<https://discord.com/developers/docs/events/gateway>). Hello → Identify (or Resume) →
//! READY; heartbeats at the interval Hello gives, a missed ack closes the zombie connection
//! and resumes; op 7 Reconnect resumes at `resume_gateway_url`; op 9 Invalid Session
//! resumes or identifies anew as its `d` says; close codes that cannot get better (4004
//! authentication failed, 4010–4014 shard / version / intents) stop the client. Only the
//! transport lives here: each `MESSAGE_CREATE` goes to the sink, which is the core's.

use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Value as Json, json};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};
use tokio_util::sync::CancellationToken;

/// GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES: DMs and mentions carry their content without
/// the privileged MESSAGE_CONTENT intent.
pub const DEFAULT_INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 12);
/// The API version of the Gateway URL (`?v=10&encoding=json`).
const VERSION: u32 = 10;
/// Hello must come this soon after the connect.
const HELLO_WITHIN: Duration = Duration::from_secs(20);
/// Frames of the Gateway are at most 4096 bytes from us; theirs can be large (READY).
const MAX_MESSAGE: usize = 16 << 20;

/// What the client needs.
#[derive(Clone)]
pub struct Listener {
    /// Bot token.
    pub token: String,
    /// REST base (for `GET /gateway/bot`), e.g. `https://discord.com/api/v10`.
    pub rest_base: String,
    /// A fixed Gateway URL instead of the discovered one.
    pub url: Option<String>,
    pub intents: u64,
    pub http: reqwest::Client,
}

/// A message for the sink: the `MESSAGE_CREATE` payload and the bot's own user id (from
/// READY), so mentions can be recognised and the bot's own messages skipped.
pub struct Dispatched {
    pub message: Json,
    pub bot_user_id: String,
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// Reconnect at once and resume the session (op 7, a resumable close, a zombie
    /// connection).
    Resume(String),
    /// The connection could not be made: try again after a backoff (resuming if possible).
    Retry(String),
    /// Reconnect and identify anew (op 9 false, close 4007 / 4009).
    Identify(String),
    /// Stop: retrying cannot help (bad token, disallowed intents).
    Fatal(String),
    /// Asked to stop (shutdown, or the duty moved to another replica).
    Stopped,
}

/// A session to resume.
#[derive(Default, Clone)]
struct Session {
    id: String,
    seq: Option<u64>,
    resume_url: String,
    bot_user_id: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Socket = WebSocketStream<Box<dyn Io>>;

/// `wss://gateway.discord.gg` → `wss://gateway.discord.gg/?v=10&encoding=json`.
fn gateway_url(base: &str) -> String {
    let base = base.trim();
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let has_path = base[after_scheme..].contains(['/', '?']);
    let base = if has_path {
        base.to_string()
    } else {
        format!("{base}/")
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}v={VERSION}&encoding=json")
}

impl Listener {
    /// Keeps a Gateway session until `stop` is cancelled (or a fatal close), reconnecting
    /// with backoff; each message goes to `sink`.
    pub async fn run<F, Fut>(self, stop: CancellationToken, sink: F)
    where
        F: Fn(Dispatched) -> Fut + Send + Sync,
        Fut: Future<Output = ()> + Send,
    {
        let mut session = Session::default();
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            let end = tokio::select! {
                end = self.connect_once(&mut session, &sink) => end,
                () = stop.cancelled() => End::Stopped,
            };
            let wait = match end {
                End::Stopped => return,
                End::Fatal(why) => {
                    tracing::error!(
                        "discord gateway: {why}; not reconnecting (fix channels.discord and restart)"
                    );
                    return;
                }
                End::Resume(why) => {
                    tracing::info!("discord gateway: {why}; resuming");
                    backoff = Duration::from_secs(1);
                    // A server that closes at once is not hammered.
                    if started.elapsed() < Duration::from_secs(1) {
                        Duration::from_millis(250)
                    } else {
                        Duration::ZERO
                    }
                }
                End::Identify(why) => {
                    tracing::info!("discord gateway: {why}; identifying anew");
                    session = Session::default();
                    backoff = Duration::from_secs(1);
                    // Discord asks for a random 1–5 s wait before identifying again.
                    Duration::from_millis(rand::rng().random_range(1000..5000))
                }
                End::Retry(why) => {
                    tracing::warn!("discord gateway: {why}; retrying in {backoff:?}");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// The URL to connect to: the session's resume URL, the configured one, or discovery.
    async fn url(&self, session: &Session) -> Result<String, String> {
        if !session.id.is_empty() && !session.resume_url.is_empty() {
            return Ok(gateway_url(&session.resume_url));
        }
        if let Some(u) = self.url.as_deref().filter(|u| !u.trim().is_empty()) {
            return Ok(gateway_url(u.trim()));
        }
        let url = format!("{}/gateway/bot", self.rest_base.trim_end_matches('/'));
        let r = self
            .http
            .get(&url)
            .header("Authorization", format!("Bot {}", self.token.trim()))
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = r.status();
        let body: Json = r.json().await.unwrap_or(Json::Null);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(format!("fatal: GET {url}: 401 (the bot token is wrong)"));
        }
        match body["url"].as_str() {
            Some(u) if status.is_success() => Ok(gateway_url(u)),
            _ => Err(format!("GET {url}: {status} {body}")),
        }
    }

    async fn open(url: &str) -> Result<Socket, String> {
        let uri: tokio_tungstenite::tungstenite::http::Uri =
            url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("{url:?} has no host"))?
            .to_string();
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(format!("{url:?} is not a ws:// or wss:// URL")),
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if tls {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("{host}: {e}"))?;
            let s = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS to {host}: {e}"))?;
            Box::new(s)
        } else {
            Box::new(tcp)
        };
        let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE));
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, io, Some(cfg))
            .await
            .map_err(|e| format!("WebSocket handshake with {url}: {e}"))?;
        Ok(ws)
    }

    /// One connection: Hello, Identify or Resume, then heartbeats and dispatches until it
    /// ends.
    async fn connect_once<F, Fut>(&self, session: &mut Session, sink: &F) -> End
    where
        F: Fn(Dispatched) -> Fut,
        Fut: Future<Output = ()>,
    {
        let url = match self.url(session).await {
            Ok(u) => u,
            Err(e) => match e.strip_prefix("fatal: ") {
                Some(fatal) => return End::Fatal(fatal.to_string()),
                None => return End::Retry(e),
            },
        };
        let mut ws = match Self::open(&url).await {
            Ok(ws) => ws,
            Err(e) => {
                // The resume URL may be gone: the next attempt discovers anew.
                session.resume_url.clear();
                return End::Retry(e);
            }
        };
        let interval = match timeout(HELLO_WITHIN, next_json(&mut ws)).await {
            Ok(Ok(v)) if v["op"] == 10 => Duration::from_millis(
                v["d"]["heartbeat_interval"]
                    .as_u64()
                    .unwrap_or(41_250)
                    .max(100),
            ),
            Ok(Ok(v)) => return End::Resume(format!("expected Hello, got {v}")),
            Ok(Err(end)) => return end,
            Err(_) => return End::Resume("no Hello within 20 s".into()),
        };
        let first = if session.id.is_empty() {
            json!({"op": 2, "d": {
                "token": self.token.trim(),
                "intents": self.intents,
                "properties": {"os": std::env::consts::OS, "browser": "clawplane", "device": "clawplane"},
            }})
        } else {
            json!({"op": 6, "d": {"token": self.token.trim(), "session_id": session.id, "seq": session.seq}})
        };
        if let Err(e) = ws.send(Message::text(first.to_string())).await {
            return End::Resume(format!("send: {e}"));
        }
        // The first heartbeat after interval × jitter, then every interval.
        let jitter = rand::rng().random_range(0.0..1.0);
        let mut next_beat = Instant::now() + interval.mul_f64(jitter);
        let mut acked = true;
        loop {
            tokio::select! {
                () = sleep_until(next_beat) => {
                    if !acked {
                        let _ = ws.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "heartbeat not acknowledged".into() })).await;
                        return End::Resume("no heartbeat ack (zombie connection)".into());
                    }
                    acked = false;
                    if let Err(e) = ws.send(Message::text(json!({"op": 1, "d": session.seq}).to_string())).await {
                        return End::Resume(format!("send: {e}"));
                    }
                    next_beat = Instant::now() + interval;
                }
                v = next_json(&mut ws) => {
                    let v = match v { Ok(v) => v, Err(end) => return end };
                    if let Some(s) = v["s"].as_u64() {
                        session.seq = Some(s);
                    }
                    match v["op"].as_u64() {
                        Some(0) => match v["t"].as_str() {
                            Some("READY") => {
                                let d = &v["d"];
                                session.id = d["session_id"].as_str().unwrap_or_default().into();
                                session.resume_url = d["resume_gateway_url"].as_str().unwrap_or_default().into();
                                session.bot_user_id = d["user"]["id"].as_str().unwrap_or_default().into();
                                tracing::info!(bot = %session.bot_user_id, "discord gateway: ready");
                            }
                            Some("RESUMED") => tracing::info!("discord gateway: resumed"),
                            Some("MESSAGE_CREATE") => {
                                sink(Dispatched { message: v["d"].clone(), bot_user_id: session.bot_user_id.clone() }).await;
                            }
                            _ => {}
                        },
                        // The Gateway asks for a heartbeat now.
                        Some(1) => {
                            if let Err(e) = ws.send(Message::text(json!({"op": 1, "d": session.seq}).to_string())).await {
                                return End::Resume(format!("send: {e}"));
                            }
                        }
                        Some(7) => {
                            let _ = ws.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "reconnect".into() })).await;
                            return End::Resume("the gateway asked to reconnect (op 7)".into());
                        }
                        Some(9) => {
                            let _ = ws.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "invalid session".into() })).await;
                            return if v["d"] == true && !session.id.is_empty() {
                                End::Resume("invalid session (resumable)".into())
                            } else {
                                End::Identify("invalid session".into())
                            };
                        }
                        Some(11) => acked = true,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The next JSON frame, or how the connection ended.
async fn next_json(ws: &mut Socket) -> Result<Json, End> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<Json>(t.as_str()) {
                Ok(v) => return Ok(v),
                Err(e) => tracing::debug!("discord gateway: not JSON ({e})"),
            },
            Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(End::Resume(format!("connection lost: {e}"))),
            None => return Err(End::Resume("connection closed".into())),
        }
    }
}

/// What a close code means for the client (Discord's gateway close event codes).
fn closed(frame: Option<CloseFrame>) -> End {
    let (code, reason) = frame
        .map(|f| (u16::from(f.code), f.reason.to_string()))
        .unwrap_or((1005, String::new()));
    let why = format!("closed {code} {reason}");
    match code {
        4004 => End::Fatal(format!(
            "{why}: authentication failed (channels.discord.token)"
        )),
        4010..=4012 => End::Fatal(format!("{why}: invalid shard or API version")),
        4013 | 4014 => End::Fatal(format!(
            "{why}: the intents are invalid or not enabled for this bot (channels.discord.gateway.intents; the Developer Portal's privileged intents)"
        )),
        4007 | 4009 => End::Identify(why),
        _ => End::Resume(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_version_and_encoding() {
        assert_eq!(
            gateway_url("wss://gateway.discord.gg"),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
        assert_eq!(
            gateway_url("ws://127.0.0.1:1/gw?x=1"),
            "ws://127.0.0.1:1/gw?x=1&v=10&encoding=json"
        );
    }

    #[test]
    fn close_codes() {
        let c = |code: u16| {
            closed(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
        };
        assert!(matches!(c(4004), End::Fatal(_)));
        assert!(matches!(c(4014), End::Fatal(_)));
        assert!(matches!(c(4009), End::Identify(_)));
        assert!(matches!(c(4000), End::Resume(_)));
        assert!(matches!(c(1001), End::Resume(_)));
    }
}
