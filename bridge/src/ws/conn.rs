//! One socket: the challenge, the first-frame dialect choice, the `connect` handshake with
//! its limits, then the request/event loop (OpenClaw) or the legacy loop.

use super::{
    MAX_PENDING_HANDSHAKE_FRAMES, MAX_PREAUTH_PAYLOAD, PROTOCOLS, Shim,
    events::Translator,
    frames::{ErrorShape, event, now_ms, res_err, res_ok, rpc_error},
    legacy, methods,
};
use crate::{Caller, EventStream};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use clawplane_proto::v1::{
    ChallengeRequest, ConnectDeviceRequest, ConnectDeviceResponse, EventServiceWatchRequest,
    GatewayServiceStatusRequest, GatewayServiceStatusResponse, event_service_watch_response::Frame,
};
use futures::{SinkExt as _, StreamExt as _, stream::SplitStream};
use serde_json::{Value as Json, json};
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{sync::mpsc, time::Instant};
use tonic::Code;

/// How long a closing socket waits for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// How long a socket beyond `gateway.maxConnections` may take to send its first frame.
const BUSY_GRACE: Duration = Duration::from_secs(2);

/// The write half, behind a queue with byte accounting (the slow-consumer policy).
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    buffered: Arc<AtomicUsize>,
    slow: Arc<AtomicBool>,
}

/// A queued frame and, for a pushed event, its per-connection seq.
struct Out {
    msg: Message,
    seq: u64,
}

impl Outbox {
    /// Queues a text frame; returns the bytes now waiting to be written.
    pub fn text(&self, s: String) -> usize {
        self.queue(s, 0)
    }

    /// Queues an event frame carrying per-connection `seq`; returns the bytes now waiting.
    pub fn event(&self, s: String, seq: u64) -> usize {
        self.queue(s, seq)
    }

    fn queue(&self, s: String, seq: u64) -> usize {
        let n = s.len();
        let now = self.buffered.fetch_add(n, Ordering::AcqRel) + n;
        let m = Out {
            msg: Message::Text(s.into()),
            seq,
        };
        if self.tx.send(m).is_err() {
            self.buffered.fetch_sub(n, Ordering::AcqRel);
        }
        now
    }

    /// Queues a close frame (the writer stops after it).
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.tx.send(Out {
            msg: close_frame(code, reason),
            seq: 0,
        });
    }

    /// The slow-consumer close: the writer finishes the frame it is writing, drops the rest
    /// of the queue and closes 1008 `slow consumer; last seq <n>`, where n is the seq of the
    /// last event actually written, so the client that reads up to the close has seen
    /// exactly events 1..=n.
    pub fn close_slow(&self) {
        self.slow.store(true, Ordering::Release);
        // Wakes the writer if the queue happens to be empty.
        let _ = self.tx.send(Out {
            msg: Message::Close(None),
            seq: 0,
        });
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    let mut r = reason.to_string();
    while r.len() > 123 {
        r.pop();
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(r),
    }))
}

async fn writer(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    buffered: Arc<AtomicUsize>,
    slow: Arc<AtomicBool>,
) {
    let mut last_seq = 0u64;
    while let Some(Out { msg, seq }) = rx.recv().await {
        if slow.load(Ordering::Acquire) {
            let reason = format!("slow consumer; last seq {last_seq}");
            let _ = sink.send(close_frame(1008, &reason)).await;
            break;
        }
        let len = match &msg {
            Message::Text(t) => t.len(),
            _ => 0,
        };
        let is_close = matches!(msg, Message::Close(_));
        let r = sink.send(msg).await;
        buffered.fetch_sub(len, Ordering::AcqRel);
        if r.is_err() || is_close {
            break;
        }
        if seq > 0 {
            last_seq = seq;
        }
    }
}

/// What the read half produced.
enum Incoming {
    Text(String),
    /// The client closed, or the socket failed.
    Gone,
    /// A frame above the transport limit (`policy.maxPayload`).
    TooBig,
    /// A control frame; nothing to do.
    Skip,
}

fn classify(m: Option<Result<Message, axum::Error>>) -> Incoming {
    match m {
        Some(Ok(Message::Text(t))) => Incoming::Text(t.to_string()),
        // Binary frames are read as text (invalid UTF-8 replaced), so they meet the same
        // pre-auth size limit and JSON checks as text frames instead of slipping past them.
        Some(Ok(Message::Binary(b))) => Incoming::Text(String::from_utf8_lossy(&b).into_owned()),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Skip,
        // The close reply is queued by the protocol layer; keep reading until the end.
        Some(Ok(Message::Close(_))) => Incoming::Skip,
        Some(Err(e)) if e.to_string().contains("too long") => Incoming::TooBig,
        Some(Err(_)) | None => Incoming::Gone,
    }
}

/// Reads until the client's side ends (or [`CLOSE_WAIT`] passes), so a close frame we sent
/// gets its reply instead of a dropped connection.
async fn linger(stream: &mut SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// A socket beyond `gateway.maxConnections`: it gets a challenge and a short grace for its
/// first frame so the answer speaks its dialect (legacy: `GATEWAY_BUSY`; OpenClaw: a
/// retryable `UNAVAILABLE`), then close 1013. A silent socket is closed 1013 after the grace.
async fn busy(stream: &mut SplitStream<WebSocket>, out: &Outbox) {
    const MESSAGE: &str =
        "gateway busy: too many connections (gateway.maxConnections); retry later";
    out.text(event(
        "connect.challenge",
        json!({"nonce": uuid::Uuid::new_v4().to_string(), "ts": now_ms(), "capabilities": ["model-catalog-snapshot"]}),
        None,
    ));
    let first = tokio::time::timeout(BUSY_GRACE, async {
        loop {
            match classify(stream.next().await) {
                Incoming::Text(t) => return Some(t),
                Incoming::Skip => continue,
                Incoming::TooBig | Incoming::Gone => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    if let Some(t) = first.filter(|t| t.len() <= MAX_PREAUTH_PAYLOAD) {
        let frame: Json = serde_json::from_str(&t).unwrap_or(Json::Null);
        let kind = frame.get("type").and_then(Json::as_str).unwrap_or("");
        let id = frame.get("id").cloned().unwrap_or(Json::Null);
        if legacy::is_legacy(kind) {
            out.text(
                json!({"type": "error", "id": id, "payload": {"code": "GATEWAY_BUSY", "message": MESSAGE}})
                    .to_string(),
            );
        } else if let ("req", Some(id)) = (kind, id.as_str()) {
            let mut e = ErrorShape::new("UNAVAILABLE", MESSAGE)
                .with_details(json!({"code": "GATEWAY_BUSY", "reason": "max-connections"}));
            e.retryable = true;
            e.retry_after_ms = Some(1000);
            out.text(res_err(id, &e, None));
        }
    }
    out.close(
        1013,
        "too many connections (gateway.maxConnections); retry later",
    );
}

/// The authenticated socket.
pub(crate) struct Session {
    pub caller: Caller,
    pub protocol: u64,
    pub device_id: Option<String>,
}

/// A refused connect: the error answer and the close code and reason.
pub(crate) struct Refusal {
    pub error: ErrorShape,
    pub close: u16,
    pub reason: String,
}

impl Refusal {
    fn policy(error: ErrorShape) -> Self {
        let reason = error.message.clone();
        Refusal {
            error,
            close: 1008,
            reason,
        }
    }
}

pub(super) async fn run(
    shim: Arc<Shim>,
    socket: WebSocket,
    peer: Option<SocketAddr>,
    forwarding: Vec<(http::HeaderName, http::HeaderValue)>,
    query_token: Option<String>,
    over_capacity: bool,
) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let buffered = Arc::new(AtomicUsize::new(0));
    let slow = Arc::new(AtomicBool::new(false));
    let out = Outbox {
        tx,
        buffered: buffered.clone(),
        slow: slow.clone(),
    };
    let mut writer = tokio::spawn(writer(sink, rx, buffered, slow));
    let end = |out: Outbox, code: u16, reason: &str| {
        out.close(code, reason);
    };

    if over_capacity {
        busy(&mut stream, &out).await;
        linger(&mut stream).await;
        let _ = writer.await;
        return;
    }

    // The nonce comes from DeviceService/Challenge (single use), so a device block signed
    // over it can be verified by DeviceService/ConnectDevice.
    let anonymous = Caller {
        token: None,
        peer,
        forwarding: forwarding.clone(),
    };
    let (nonce, ts) = match shim
        .s
        .devices
        .challenge(anonymous.request(ChallengeRequest {}))
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            (r.nonce, u64::try_from(r.ts).unwrap_or_else(|_| now_ms()))
        }
        Err(_) => (uuid::Uuid::new_v4().to_string(), now_ms()),
    };
    out.text(event(
        "connect.challenge",
        json!({"nonce": nonce, "ts": ts, "capabilities": ["model-catalog-snapshot"]}),
        None,
    ));
    let deadline = Instant::now() + shim.cfg.handshake_timeout;

    // The first frame chooses the dialect.
    let first = loop {
        let m = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(deadline) => {
                end(out, 1000, "handshake timeout");
                linger(&mut stream).await;
                let _ = writer.await;
                return;
            }
            _ = shim.cfg.shutdown.cancelled() => {
                end(out, 1012, "service restart");
                linger(&mut stream).await;
                let _ = writer.await;
                return;
            }
        };
        match classify(m) {
            Incoming::Text(t) => break t,
            Incoming::Skip => continue,
            Incoming::TooBig => {
                end(out, 1009, "preauth payload too large");
                let _ = writer.await;
                return;
            }
            Incoming::Gone => {
                drop(out);
                let _ = writer.await;
                return;
            }
        }
    };
    if first.len() > MAX_PREAUTH_PAYLOAD {
        end(out, 1009, "preauth payload too large");
        linger(&mut stream).await;
        let _ = writer.await;
        return;
    }
    let frame: Json = serde_json::from_str(&first).unwrap_or(Json::Null);
    let kind = frame.get("type").and_then(Json::as_str).unwrap_or("");
    if legacy::is_legacy(kind) {
        legacy::run(
            &shim,
            &mut stream,
            &out,
            frame,
            anonymous.clone(),
            query_token,
        )
        .await;
        if shim.cfg.shutdown.is_cancelled() {
            end(out, 1012, "service restart");
        } else {
            end(out, 1000, "bye");
        }
        linger(&mut stream).await;
        let _ = writer.await;
        return;
    }
    let id = frame
        .get("id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let method = frame.get("method").and_then(Json::as_str).unwrap_or("");
    let (Some(id), "req") = (id, kind) else {
        // Not a request at all: no response, close.
        end(
            out,
            1008,
            "invalid handshake: first request must be connect",
        );
        linger(&mut stream).await;
        let _ = writer.await;
        return;
    };
    if method != "connect" || !methods::closed_request(&frame) {
        let e = ErrorShape::invalid("invalid handshake: first request must be connect");
        out.text(res_err(&id, &e, None));
        end(out, 1008, &e.message);
        linger(&mut stream).await;
        let _ = writer.await;
        return;
    }

    // `connect`, while further frames queue (at most 15, each within the pre-auth limit).
    let params = frame.get("params").cloned().unwrap_or(Json::Null);
    let mut pending: VecDeque<String> = VecDeque::new();
    let outcome = {
        let fut = connect(&shim, params, &nonce, &anonymous);
        tokio::pin!(fut);
        loop {
            // Biased towards reading: frames that have already arrived are counted before
            // `connect`'s outcome is looked at, so the limit holds however fast the
            // credential check is (a flood starves `connect` for at most 16 frames).
            tokio::select! {
                biased;
                m = stream.next() => match classify(m) {
                    Incoming::Text(t) => {
                        if t.len() > MAX_PREAUTH_PAYLOAD {
                            end(out.clone(), 1009, "preauth payload too large");
                            break None;
                        }
                        pending.push_back(t);
                        if pending.len() > MAX_PENDING_HANDSHAKE_FRAMES {
                            end(out.clone(), 1008, "too many pending handshake frames");
                            break None;
                        }
                    }
                    Incoming::Skip => {}
                    Incoming::TooBig => {
                        end(out.clone(), 1009, "preauth payload too large");
                        break None;
                    }
                    Incoming::Gone => {
                        drop(out);
                        let _ = writer.await;
                        return;
                    }
                },
                r = &mut fut => break Some(r),
                _ = tokio::time::sleep_until(deadline) => {
                    end(out.clone(), 1000, "handshake timeout");
                    break None;
                }
            }
        }
    };
    let session = match outcome {
        None => {
            linger(&mut stream).await;
            let _ = writer.await;
            return;
        }
        Some(Err(refusal)) => {
            out.text(res_err(&id, &refusal.error, None));
            end(out, refusal.close, &refusal.reason);
            linger(&mut stream).await;
            let _ = writer.await;
            return;
        }
        Some(Ok((session, hello))) => {
            out.text(res_ok(&id, hello));
            session
        }
    };

    let closing = serve(&shim, &mut stream, &out, session, pending).await;
    linger(&mut stream).await;
    // A queued close frame goes out before the socket is dropped (the read side may have
    // ended at once, e.g. after an oversize frame); then the writer ends, since method tasks
    // may still hold the outbox (a long `agent` wait).
    if closing && tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_ok() {
        return;
    }
    writer.abort();
    let _ = writer.await;
}

/// Validates `connect` and authenticates it through the RPCs; returns the session and the
/// `hello-ok` payload.
async fn connect(
    shim: &Shim,
    params: Json,
    nonce: &str,
    origin: &Caller,
) -> Result<(Session, Json), Refusal> {
    let p = methods::ConnectParams::parse(&params).map_err(|e| {
        Refusal::policy(ErrorShape::invalid(format!("invalid connect params: {e}")))
    })?;

    // Protocol range first: it hides every later error (as upstream).
    let Some(protocol) = PROTOCOLS
        .iter()
        .copied()
        .find(|v| p.min_protocol <= *v && *v <= p.max_protocol)
    else {
        let error = ErrorShape::invalid("protocol mismatch").with_details(json!({
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": p.min_protocol,
            "clientMaxProtocol": p.max_protocol,
            "expectedProtocol": 4,
            "minimumProbeProtocol": 3,
            "supportedProtocols": PROTOCOLS,
        }));
        return Err(Refusal {
            error,
            close: 1002,
            reason: "protocol mismatch".into(),
        });
    };

    // The device block, when present, is verified by DeviceService/ConnectDevice (with the
    // presented credential, if any); it yields a device token.
    let mut issued: Option<ConnectDeviceResponse> = None;
    if let Some(dev) = &p.device {
        if !dev.nonce.is_empty() && dev.nonce != nonce {
            return Err(Refusal::policy(ErrorShape::invalid("device nonce mismatch").with_details(
                json!({"code": "DEVICE_AUTH_NONCE_MISMATCH", "reason": "device-nonce-mismatch"}),
            )));
        }
        let cred = Caller {
            token: p.token.clone().or_else(|| p.device_token.clone()),
            ..origin.clone()
        };
        let signed_token = p
            .token
            .clone()
            .or_else(|| p.device_token.clone())
            .or_else(|| p.bootstrap_token.clone())
            .unwrap_or_default();
        let req = ConnectDeviceRequest {
            device: Some(dev.clone()),
            client_id: p.client_id.clone(),
            client_mode: p.client_mode.clone(),
            role: p.role.clone(),
            scopes: p.scopes.clone(),
            platform: p.platform.clone(),
            device_family: p.device_family.clone(),
            display_name: p.display_name.clone(),
            token: signed_token,
        };
        match shim.s.devices.connect_device(cred.request(req)).await {
            Ok(r) => issued = Some(r.into_inner()),
            Err(s) => return Err(device_refusal(&s, &p)),
        }
    }

    let (token, method) = match (&p.token, &p.device_token, &issued) {
        (Some(t), _, _) => (t.clone(), "token"),
        (None, _, Some(i)) => (i.device_token.clone(), "device-token"),
        (None, Some(t), None) => (t.clone(), "device-token"),
        (None, None, None) => {
            return Err(Refusal::policy(
                ErrorShape::invalid(
                    "unauthorized: gateway token missing (send auth.token: the gateway token, e.g. OPENCLAW_GATEWAY_TOKEN, or auth.deviceToken)",
                )
                .with_details(json!({
                    "code": "AUTH_TOKEN_MISSING",
                    "authReason": "token_missing",
                    "canRetryWithDeviceToken": false,
                    "recommendedNextStep": "update_auth_configuration",
                })),
            ));
        }
    };
    let caller = Caller {
        token: Some(token),
        ..origin.clone()
    };

    // The credential check: GatewayService/Status answers with the caller's scopes (a
    // device without operator.read still connects, with the scopes it was issued).
    let status = match shim
        .s
        .gateway
        .status(caller.request(GatewayServiceStatusRequest {}))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == Code::PermissionDenied && method == "device-token" => {
            GatewayServiceStatusResponse {
                version: shim.cfg.version.clone(),
                default_agent_id: "main".into(),
                main_session_key: "agent:main:main".into(),
                caller_scopes: issued
                    .as_ref()
                    .map(|i| i.scopes.clone())
                    .unwrap_or_default(),
                ..Default::default()
            }
        }
        Err(s) => return Err(auth_refusal(&s, method)),
    };
    let main_key = status
        .main_session_key
        .rsplit_once(':')
        .map(|(_, k)| k.to_string())
        .unwrap_or_else(|| "main".into());
    let conn_id = uuid::Uuid::new_v4().to_string();
    let hello = json!({
        "type": "hello-ok",
        "protocol": protocol,
        "server": {"version": shim.cfg.version, "connId": conn_id},
        "features": {
            "methods": methods::METHODS,
            "events": super::events::EVENTS,
            "capabilities": [],
        },
        "snapshot": {
            "presence": [],
            "health": methods::health_snapshot(&status),
            "stateVersion": {"presence": 0, "health": 0},
            "uptimeMs": status.uptime_ms,
            "sessionDefaults": {
                "defaultAgentId": status.default_agent_id,
                "mainKey": main_key,
                "mainSessionKey": status.main_session_key,
                "scope": "per-sender",
            },
            "authMode": "token",
        },
        "auth": auth_json(method, &p.role, &status.caller_scopes, issued.as_ref()),
        "policy": {
            "maxPayload": super::MAX_PAYLOAD,
            "maxBufferedBytes": shim.cfg.max_buffered_bytes,
            "tickIntervalMs": shim.cfg.tick_interval.as_millis() as u64,
        },
    });
    Ok((
        Session {
            caller,
            protocol,
            device_id: issued.map(|i| i.device_id),
        },
        hello,
    ))
}

fn auth_json(
    method: &str,
    role: &str,
    scopes: &[String],
    issued: Option<&ConnectDeviceResponse>,
) -> Json {
    let mut v = json!({"method": method, "role": role, "scopes": scopes});
    if let Some(i) = issued {
        let now = now_ms();
        v["deviceToken"] = json!(i.device_token);
        v["issuedAtMs"] = json!(now);
        v["deviceTokens"] = json!([{
            "deviceToken": i.device_token,
            "role": i.role,
            "scopes": i.scopes,
            "issuedAtMs": now,
        }]);
    }
    v
}

/// A refused device block: pairing required (`NOT_PAIRED`) or a failed proof.
fn device_refusal(s: &tonic::Status, p: &methods::ConnectParams) -> Refusal {
    let (reason, md) = super::frames::error_info(s);
    let get = |k: &str| md.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    if reason == "PAIRING_REQUIRED" {
        let request_id = get("requestId");
        let why = get("reason");
        let message = s.message().to_string();
        let error = ErrorShape::new("NOT_PAIRED", message.clone()).with_details(json!({
            "code": "PAIRING_REQUIRED",
            "reason": if why.is_empty() { "not-paired".to_string() } else { why },
            "requestId": request_id,
            "remediationHint": message,
            "deviceId": get("deviceId"),
            "requestedRole": p.role,
            "requestedScopes": p.scopes,
            "recommendedNextStep": "wait_then_retry",
            "retryable": false,
            "pauseReconnect": true,
        }));
        return Refusal {
            error,
            close: 1008,
            reason: message,
        };
    }
    if reason.starts_with("DEVICE_AUTH_") {
        let message = s
            .message()
            .split(':')
            .next()
            .unwrap_or("device auth failed")
            .trim()
            .to_string();
        return Refusal::policy(ErrorShape::invalid(message).with_details(
            json!({"code": reason, "reason": get("reason"), "detail": s.message()}),
        ));
    }
    auth_refusal(
        s,
        if p.token.is_some() {
            "token"
        } else {
            "device-token"
        },
    )
}

fn auth_refusal(s: &tonic::Status, method: &str) -> Refusal {
    let mut e = rpc_error(s);
    match s.code() {
        Code::Unauthenticated => {
            let (code, msg) = if method == "device-token" {
                (
                    "AUTH_DEVICE_TOKEN_MISMATCH",
                    "unauthorized: device token mismatch (the token is unknown or revoked; pair again or rotate it with `clawplane devices rotate`)",
                )
            } else {
                (
                    "AUTH_TOKEN_MISMATCH",
                    "unauthorized: gateway token mismatch (use the gateway's token: gateway.auth.token, CLAWPLANE_GATEWAY_TOKEN, or <data-dir>/gateway.token)",
                )
            };
            e = ErrorShape::invalid(msg).with_details(json!({
                "code": code,
                "authReason": "token_mismatch",
                "canRetryWithDeviceToken": false,
                "recommendedNextStep": "update_auth_credentials",
                "detail": s.message(),
            }));
            Refusal::policy(e)
        }
        Code::ResourceExhausted => {
            e.code = "INVALID_REQUEST";
            e.message = format!("unauthorized: {}", s.message());
            if let Some(Json::Object(d)) = &mut e.details {
                d.insert("code".into(), json!("AUTH_RATE_LIMITED"));
                d.insert("recommendedNextStep".into(), json!("wait_then_retry"));
            }
            e.retryable = true;
            Refusal::policy(e)
        }
        Code::PermissionDenied => Refusal::policy(
            ErrorShape::invalid(format!("unauthorized: {}", s.message())).with_details(json!({
                "code": "AUTH_SCOPE_MISMATCH",
                "detail": s.message(),
            })),
        ),
        _ => Refusal {
            reason: "internal error during connect".into(),
            error: e,
            close: 1011,
        },
    }
}

/// Starts the socket's view of the event feed (follow-only, or resuming after `after`).
async fn watch(ctx: &methods::Ctx, after: u64) -> Option<EventStream> {
    let req = ctx.caller.request(EventServiceWatchRequest {
        after_seq: after,
        filter: None,
        follow_only: after == 0,
    });
    match ctx.s.events.watch(req).await {
        Ok(r) => Some(r.into_inner()),
        Err(s) => {
            tracing::debug!(status = %s.message(), "ws: no event feed for this socket");
            None
        }
    }
}

async fn next_feed(
    feed: &mut Option<EventStream>,
) -> Option<Result<clawplane_proto::v1::EventServiceWatchResponse, tonic::Status>> {
    match feed {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// The authenticated loop: requests (each answered by its own task), feed events with a
/// per-connection seq, ticks, and the close paths.
async fn serve(
    shim: &Shim,
    stream: &mut SplitStream<WebSocket>,
    out: &Outbox,
    session: Session,
    pending: VecDeque<String>,
) -> bool {
    let ctx = Arc::new(methods::Ctx {
        s: shim.s.clone(),
        caller: session.caller.clone(),
        out: out.clone(),
    });
    // Subscribe before handling any request so no event of those requests is missed.
    let mut feed = watch(&ctx, 0).await;
    let mut last_feed_seq = 0u64;
    let mut tr = Translator::new(session.protocol);
    let mut seq = 0u64;
    let tick_every = shim.cfg.tick_interval;
    let max_buffered = shim.cfg.max_buffered_bytes;
    let mut tick = tokio::time::interval_at(Instant::now() + tick_every, tick_every);
    for t in pending {
        methods::dispatch(&ctx, &t);
    }
    let close = |code: u16, reason: &str| out.close(code, reason);
    loop {
        tokio::select! {
            biased;
            _ = shim.cfg.shutdown.cancelled() => {
                seq += 1;
                out.event(event("shutdown", json!({"reason": "gateway stopping", "restartExpectedMs": null}), Some(seq)), seq);
                close(1012, "service restart");
                return true;
            }
            m = stream.next() => match classify(m) {
                Incoming::Text(t) => methods::dispatch(&ctx, &t),
                Incoming::Skip => {}
                Incoming::TooBig => {
                    close(1009, "payload too large (policy.maxPayload)");
                    return true;
                }
                Incoming::Gone => return false,
            },
            f = next_feed(&mut feed) => match f {
                Some(Ok(resp)) => match resp.frame {
                    Some(Frame::Event(ev)) => {
                        last_feed_seq = ev.seq;
                        if let Some(dev) = &session.device_id
                            && tr.revokes(&ev, dev)
                        {
                            close(4001, "device token revoked");
                            return true;
                        }
                        for (name, payload) in tr.translate(&ev) {
                            seq += 1;
                            if out.event(event(name, payload, Some(seq)), seq) > max_buffered {
                                out.close_slow();
                                return true;
                            }
                        }
                    }
                    Some(Frame::Progress(p)) => last_feed_seq = last_feed_seq.max(p.seq),
                    None => {}
                },
                Some(Err(s)) => match s.code() {
                    Code::Unavailable => {
                        // The feed ends with SHUTTING_DOWN when the gateway stops.
                        seq += 1;
                        out.event(event("shutdown", json!({"reason": "gateway stopping", "restartExpectedMs": null}), Some(seq)), seq);
                        close(1012, "service restart");
                        return true;
                    }
                    Code::Aborted => {
                        // This socket's watch lagged: resume from the log.
                        let after = super::frames::error_info(&s)
                            .1
                            .get("lastSeq")
                            .and_then(Json::as_str)
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(last_feed_seq);
                        feed = watch(&ctx, after.max(1)).await;
                    }
                    Code::Unauthenticated => {
                        close(4001, "credential revoked");
                        return true;
                    }
                    _ => feed = None,
                },
                None => feed = None,
            },
            _ = tick.tick() => {
                seq += 1;
                if out.event(event("tick", json!({"ts": now_ms()}), Some(seq)), seq) > max_buffered {
                    out.close_slow();
                    return true;
                }
            }
        }
    }
}
