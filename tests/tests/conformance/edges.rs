//! The gateway's edges under hostile callers: who a caller is behind a trusted proxy (IPv6
//! lockouts per /64), the per-client connection cap, HTTP/2 settings, keep-alive pings and
//! the idle timeout, proxy variables that must not redirect egress, and credential headers
//! that templates must never see.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clawplane_proto::v1::{CreateWebhookKeyRequest, ListWebhookCallsRequest, SendMessageRequest};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use crate::fakes::receiver::Receiver;
use crate::fakes::recorder::Canned;
use crate::harness::ws::{Ws, operator};
use crate::harness::*;
use crate::http1::{self, Response};

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

// ------------------------------------------------------------------ who is calling

/// A synchronous webhook call that a proxy on 127.0.0.1 forwards for `client`.
pub(crate) async fn call_for(gw: &Gateway, id: &str, key: &str, client: &str) -> Response {
    let auth = format!("Bearer {key}");
    let body = json!({"session_name": "edge", "message": "hi"}).to_string();
    http1::request(
        gw.addr,
        "POST",
        &format!("/webhooks/{id}"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("X-Forwarded-For", &format!("198.51.100.1, {client}")),
        ],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn failures_from_a_forwarded_ipv6_client_lock_out_its_whole_64() {
    let gw = Gateway::start_with(
        "{ gateway: { trustedProxies: ['127.0.0.1'], auth: { rateLimit: { maxAttempts: 3, lockoutMs: 600000 } } } }",
    )
    .await;
    let id = gw.status().await.instance_id;
    let key = gw
        .webhooks()
        .await
        .create_webhook_key(CreateWebhookKeyRequest {
            label: "pub".into(),
            private: false,
        })
        .await
        .expect("CreateWebhookKey")
        .into_inner()
        .secret;
    // The rightmost untrusted hop, bracketed with a port, is the client.
    let attacker = "[2001:db8:1:2::10]:443";
    for i in 0..3 {
        let r = call_for(&gw, &id, "wrong-key", attacker).await;
        assert_eq!(r.status, 401, "guess {i}: {}", text(&r));
    }
    // The failure past `maxAttempts` locks the client out.
    let r = call_for(&gw, &id, "wrong-key", attacker).await;
    assert_eq!(r.status, 429, "guess 4: {}", text(&r));
    let r = call_for(&gw, &id, &key, attacker).await;
    assert_eq!(r.status, 429, "the client is locked out: {}", text(&r));
    let r = call_for(&gw, &id, &key, "2001:db8:1:2::99").await;
    assert_eq!(r.status, 429, "its /64 too: {}", text(&r));
    let r = call_for(&gw, &id, &key, "2001:db8:1:3::10").await;
    assert_eq!(r.status, 200, "another /64 is not: {}", text(&r));
    // The proxy itself (no forwarding header) is not locked out either.
    let r = http1::request(
        gw.addr,
        "POST",
        &format!("/webhooks/{id}"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {key}")),
        ],
        json!({"session_name": "edge", "message": "hi"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    // The calls log shows the decided client address, not the proxy's.
    let calls = gw
        .webhooks()
        .await
        .list_webhook_calls(ListWebhookCallsRequest {})
        .await
        .expect("ListWebhookCalls")
        .into_inner()
        .calls;
    let ips: Vec<&str> = calls.iter().map(|c| c.source_ip.as_str()).collect();
    assert!(ips.contains(&"2001:db8:1:2::10"), "{ips:?}");
    assert!(ips.contains(&"2001:db8:1:3::10"), "{ips:?}");
}

// ------------------------------------------------------------------ connections

/// A TCP connection to the gateway from the loopback address `source` (127/8 is all ours,
/// so each test client has an address of its own, apart from the harness's connections).
async fn connect_from(source: [u8; 4], gw: &Gateway) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(SocketAddr::new(IpAddr::from(source), 0))
        .expect("bind source");
    s.connect(gw.addr).await.expect("connect")
}

/// Sends `GET /healthz` on a kept-alive connection; true when the gateway answered 200,
/// false when it closed the connection unanswered.
async fn healthz(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        match timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                let t = String::from_utf8_lossy(&got);
                if t.contains("\r\n\r\n") && t.contains("\"ok\":true") {
                    return t.starts_with("HTTP/1.1 200");
                }
            }
            Err(_) => panic!("no answer and no close within {PATIENCE:?}"),
        }
    }
}

#[tokio::test]
async fn connections_per_client_are_capped_and_freed_on_close() {
    // Connection limits are each process's own, and the callers' source addresses must
    // reach it unchanged (not through the harness's balancer).
    let gw = Gateway::builder()
        .config("{ gateway: { limits: { maxConnectionsPerClient: 3, exemptLoopback: false } } }")
        .one_process()
        .start()
        .await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut s = connect_from([127, 0, 0, 2], &gw).await;
        assert!(healthz(&mut s).await, "connection {i} within the cap");
        held.push(s);
    }
    let mut over = connect_from([127, 0, 0, 2], &gw).await;
    assert!(!healthz(&mut over).await, "the 4th is closed unanswered");
    // The cap is per client: another address is served meanwhile.
    let mut other = connect_from([127, 0, 0, 3], &gw).await;
    assert!(healthz(&mut other).await);
    // Closing one frees its slot (the gateway notices the close asynchronously).
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut s = connect_from([127, 0, 0, 2], &gw).await;
        if healthz(&mut s).await {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The held connections still work.
    for s in &mut held {
        assert!(healthz(s).await);
    }
}

// ------------------------------------------------------------------ HTTP/2

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

struct Frame {
    kind: u8,
    flags: u8,
    payload: Vec<u8>,
}

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// The next frame, or `None` once the gateway closed the connection.
async fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).await.ok()?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: h[3],
        flags: h[4],
        payload,
    })
}

/// Opens an h2c connection (preface, empty SETTINGS) and returns the server's SETTINGS.
async fn h2_open(gw: &Gateway) -> (TcpStream, Vec<(u16, u32)>) {
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&frame(SETTINGS, 0, &[])).await.unwrap();
    let f = timeout(PATIENCE, read_frame(&mut s))
        .await
        .expect("server SETTINGS in time")
        .expect("server SETTINGS");
    assert_eq!(f.kind, SETTINGS);
    let settings = f
        .payload
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    s.write_all(&frame(SETTINGS, ACK, &[])).await.unwrap();
    (s, settings)
}

#[tokio::test]
async fn http2_settings_keep_alive_pings_and_their_timeout() {
    let gw = Gateway::start_with(
        "{ gateway: { limits: { idleTimeoutMs: 0, http2: { maxConcurrentStreams: 7, maxHeaderListSize: 4096, keepAliveIntervalMs: 150, keepAliveTimeoutMs: 300 } } } }",
    )
    .await;
    let (mut alive, settings) = h2_open(&gw).await;
    assert!(
        settings.contains(&(0x3, 7)),
        "MAX_CONCURRENT_STREAMS: {settings:?}"
    );
    assert!(
        settings.contains(&(0x6, 4096)),
        "MAX_HEADER_LIST_SIZE: {settings:?}"
    );
    // A peer that answers the pings keeps getting them (and stays open).
    let mut pings = 0;
    while pings < 5 {
        let f = timeout(PATIENCE, read_frame(&mut alive))
            .await
            .expect("a frame in time")
            .unwrap_or_else(|| panic!("closed after {pings} answered pings"));
        if f.kind == PING && f.flags & ACK == 0 {
            pings += 1;
            alive
                .write_all(&frame(PING, ACK, &f.payload))
                .await
                .unwrap();
        }
    }
    // A peer that does not answer is dropped once a ping goes unanswered.
    let (mut silent, _) = h2_open(&gw).await;
    let started = Instant::now();
    let mut saw_ping = false;
    let closed = timeout(PATIENCE, async {
        while let Some(f) = read_frame(&mut silent).await {
            saw_ping |= f.kind == PING && f.flags & ACK == 0;
        }
    })
    .await;
    assert!(closed.is_ok(), "an unanswered ping closes the connection");
    assert!(saw_ping, "the gateway pinged before closing");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_idle_http2_connection_gets_goaway() {
    let gw = Gateway::start_with(
        "{ gateway: { limits: { idleTimeoutMs: 400, http2: { keepAliveIntervalMs: 100, keepAliveTimeoutMs: 5000 } } } }",
    )
    .await;
    let (mut s, _) = h2_open(&gw).await;
    let started = Instant::now();
    let mut goaway = false;
    let closed = timeout(PATIENCE, async {
        while let Some(f) = read_frame(&mut s).await {
            match f.kind {
                // Answered pings are traffic, not requests: the connection is still idle.
                PING if f.flags & ACK == 0 => {
                    let _ = s.write_all(&frame(PING, ACK, &f.payload)).await;
                }
                GOAWAY => goaway = true,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection was closed");
    assert!(goaway, "with a GOAWAY first");
    assert!(started.elapsed() >= Duration::from_millis(350));
    // A connection with a request in flight is not idle: a Wait longer than the idle
    // timeout completes on its connection.
    let r = gw
        .agent()
        .await
        .wait(clawplane_proto::v1::AgentServiceWaitRequest {
            run_id: gw.send("idle", "/sleep 1200 slow").await.run_id,
            timeout_ms: 10_000,
            ..Default::default()
        })
        .await
        .expect("Wait across the idle timeout");
    assert!(r.into_inner().done);
}

// ------------------------------------------------------------------ egress and proxies

#[tokio::test]
async fn proxy_variables_do_not_redirect_egress_or_channel_sends() {
    // A port nothing listens on: a request sent through this "proxy" fails at once.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = format!("http://{dead}");
    let egress = Receiver::start().await;
    let channel = Receiver::start().await;
    channel.set_default(Canned::json(200, json!({"messageId": "ext-1"})));
    let mut b = Gateway::builder().config(&format!(
        "{{ webhooks: {{ outgoing: [{{ id: 'ops', event: 'run.completed', url: '{}' }}], egress: {{ allowPrivateTargets: true }} }},
           channels: {{ webhook: {{ url: '{}' }} }} }}",
        egress.url("/hook"),
        channel.url("/chan")
    ));
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        b = b.env(k, &proxy);
    }
    let gw = b.env("NO_PROXY", "").env("no_proxy", "").start().await;
    let sent = gw
        .channels()
        .await
        .send_message(SendMessageRequest {
            channel: "webhook".into(),
            to: "ops-room".into(),
            message: "direct".into(),
            ..Default::default()
        })
        .await
        .expect("the channel send reached the local fake, not the proxy")
        .into_inner();
    assert_eq!(sent.delivery.expect("delivery").message_id, "ext-1");
    assert_eq!(channel.requests().len(), 1);
    let run = gw.send("egress", "hello").await.run_id;
    gw.wait_run(&run).await;
    let got = egress.wait_for(1, PATIENCE).await;
    assert_eq!(got[0].json()["data"]["runId"], run.as_str());
}

// ------------------------------------------------------------------ templates

#[tokio::test]
async fn templates_never_see_credential_headers() {
    let gw = Gateway::start_with(
        r#"{ hooks: { enabled: true, token: 'hook-secret-1', mappings: [
              { match: { path: 'leak' }, sessionKey: 'hook:leak',
                messageTemplate: 'auth=[{{ headers.authorization }}] tok=[{{ headers.x-openclaw-token }}] sig=[{{ headers["x-hub-signature-256"] }}] cookie=[{{ headers.cookie }}] all=[{{ headers }}] ev=[{{ headers.x-event }}]' } ] },
            webhooks: { incoming: { enabled: true, secret: 'ingress-secret-1', endpoints: [
              { path: 'in', message: 'secret=[{{ headers.x-webhook-secret }}] ev=[{{ headers.x-event }}]' } ] } } }"#,
    )
    .await;
    let r = http1::request(
        gw.addr,
        "POST",
        "/hooks/leak",
        &[
            ("Authorization", "Bearer hook-secret-1"),
            ("X-OpenClaw-Token", "hook-secret-1"),
            ("X-Hub-Signature-256", "sha256=sig-secret-1"),
            ("Cookie", "sid=cookie-secret-1"),
            ("X-Event", "push"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let msg = gw.wait_run(v["runId"].as_str().unwrap()).await.message;
    assert!(!msg.contains("secret-1"), "{msg}");
    assert!(
        msg.starts_with("auth=[] tok=[] sig=[] cookie=[] all=[") && msg.ends_with("ev=[push]"),
        "{msg}"
    );

    let r = http1::request(
        gw.addr,
        "POST",
        "/webhook/in",
        &[
            ("Content-Type", "application/json"),
            ("X-Webhook-Secret", "ingress-secret-1"),
            ("X-Event", "push"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let msg = gw.wait_run(v["runId"].as_str().unwrap()).await.message;
    assert_eq!(msg, "secret=[] ev=[push]");
}

// ------------------------------------------------------------------ WebSocket pre-auth

/// A raw WebSocket upgrade on TCP, so a test can send a frame header without its payload.
async fn raw_ws(gw: &Gateway) -> TcpStream {
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.expect("upgrade response");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455's example accept key: {head}"
    );
    s
}

/// Reads server frames (unmasked) until a close; returns its code, or `None` on EOF.
async fn raw_close_code(s: &mut TcpStream) -> Option<u16> {
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).await.ok()?;
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).await.ok()?;
                u64::from(u16::from_be_bytes(l))
            }
            127 => {
                let mut l = [0u8; 8];
                s.read_exact(&mut l).await.ok()?;
                u64::from_be_bytes(l)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload).await.ok()?;
        if h[0] & 0x0f == 0x8 {
            return Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

#[tokio::test]
async fn an_oversize_pre_auth_frame_is_refused_from_its_header() {
    let gw = Gateway::start().await;
    let mut s = raw_ws(&gw).await;
    // A text frame announcing 20 MiB, of which only 1,000 bytes are ever sent: the gate
    // refuses it from the header (1009), without waiting for (or buffering) the payload.
    let mut f = vec![0x81, 0x80 | 127];
    f.extend_from_slice(&(20u64 << 20).to_be_bytes());
    f.extend_from_slice(&[7, 7, 7, 7]);
    f.extend(std::iter::repeat_n(b'x' ^ 7, 1000));
    s.write_all(&f).await.unwrap();
    let started = Instant::now();
    let code = timeout(PATIENCE, raw_close_code(&mut s))
        .await
        .expect("a close in time");
    assert_eq!(code, Some(1009));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once, not at the 15 s handshake timeout"
    );

    // After `connect` the limit is `policy.maxPayload`: a 100 KiB frame is served.
    let (mut ws, _) = operator(&gw).await;
    let big = "y".repeat(100 * 1024);
    let r = ws
        .call(
            "chat.send",
            json!({"sessionKey": "big", "message": big, "idempotencyKey": "big-1"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
}

#[tokio::test]
async fn every_dialect_has_a_pre_auth_deadline() {
    let gw = Gateway::start_with("{ gateway: { ws: { handshakeTimeoutMs: 300 } } }").await;
    // OpenClaw: no connect at all.
    let mut silent = Ws::open(&gw).await;
    let challenge = silent.frame().await;
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    let started = Instant::now();
    let c = silent.closed().await;
    assert_eq!((c.code, c.reason.as_str()), (1000, "handshake timeout"));
    assert!(started.elapsed() < Duration::from_secs(10));
    // Legacy without `?token=`: answered AUTH_REQUIRED, then closed at the deadline.
    let mut legacy = Ws::open(&gw).await;
    legacy.frame().await;
    legacy
        .send(json!({"type": "status", "id": "s1", "payload": {}}))
        .await;
    let r = legacy.frame().await;
    assert_eq!(r["payload"]["code"], "AUTH_REQUIRED", "{r}");
    let c = legacy.closed().await;
    assert_eq!((c.code, c.reason.as_str()), (1000, "handshake timeout"));
    // Authenticated sockets outlive the deadline: a legacy one with a valid `?token=` and
    // an OpenClaw one after hello-ok are served after twice the deadline has passed.
    let mut authed = Ws::open_path(&gw, &format!("/?token={}", gw.token)).await;
    authed.frame().await;
    let (mut op, _) = operator(&gw).await;
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        authed
            .send(json!({"type": "status", "id": "s2", "payload": {}}))
            .await;
        assert_eq!(authed.frame().await["type"], "status");
        op.ok("health", json!({})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
