//! Hostile input over every HTTP/WebSocket route, on raw TCP against 127.0.0.1: truncated
//! bodies, invalid UTF-8, deep JSON nesting, huge headers, slow (trickled) bodies and headers,
//! thousands of idle connections, and bad WebSocket frames. Each is answered with the right
//! 4xx or a close within a bounded time, the gateway keeps serving, its memory stays bounded,
//! and nothing is written (no run, session or event).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clawplane_proto::v1::{CreateWebhookKeyRequest, ListRunsRequest, ListWebhookCallsRequest};
use futures::{SinkExt as _, StreamExt as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::harness::*;
use crate::http1;

const HOOK_TOKEN: &str = "hostile-hook-token";
const INGRESS_SECRET: &str = "hostile-ingress-secret";
const APP_SECRET: &str = "hostile-app-secret";
/// How long any refusal may take (generous: debug build, 2 cores, parallel tests).
const BOUND: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------ helpers

/// A gateway with every HTTP surface on: hooks, ingress, the WhatsApp inbound webhook, and a
/// synchronous-webhook key.
struct Hostile {
    gw: Gateway,
    webhook_key: String,
    instance_id: String,
}

async fn hostile_gateway() -> Hostile {
    let gw = Gateway::start_with(&format!(
        r#"{{
          hooks: {{ enabled: true, token: '{HOOK_TOKEN}' }},
          webhooks: {{ incoming: {{ enabled: true, secret: '{INGRESS_SECRET}', endpoints: [{{ path: 'in', message: '{{{{body}}}}' }}] }} }},
          channels: {{ whatsapp: {{ accessToken: 'wa', phoneNumberId: '1', baseUrl: 'http://127.0.0.1:9', appSecret: '{APP_SECRET}', verifyToken: 'v' }} }},
        }}"#
    ))
    .await;
    let mut wh = gw.webhooks().await;
    let key = wh
        .create_webhook_key(CreateWebhookKeyRequest {
            label: "hostile".into(),
            private: false,
        })
        .await
        .expect("CreateWebhookKey")
        .into_inner();
    let instance_id = gw.status().await.instance_id;
    Hostile {
        gw,
        webhook_key: key.secret,
        instance_id,
    }
}

/// One POST surface: its path and the headers a legitimate caller sends (credentials); the
/// WhatsApp route also signs the body.
struct Route {
    name: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    sign_whatsapp: bool,
    grpc_web: bool,
}

impl Route {
    /// The request head (with `Content-Length: len`) for `body`.
    fn head(&self, addr: SocketAddr, body: &[u8], len: usize) -> String {
        let mut h = format!(
            "POST {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {len}\r\n",
            self.path
        );
        for (k, v) in &self.headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.sign_whatsapp {
            let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
            mac.update(body);
            let sig = hex::encode(mac.finalize().into_bytes());
            h.push_str(&format!("X-Hub-Signature-256: sha256={sig}\r\n"));
        }
        h
    }
}

fn routes(h: &Hostile) -> Vec<Route> {
    let json = || ("Content-Type".to_string(), "application/json".to_string());
    let bearer = |t: &str| ("Authorization".to_string(), format!("Bearer {t}"));
    vec![
        Route {
            name: "hooks/agent",
            path: "/hooks/agent".into(),
            headers: vec![json(), bearer(HOOK_TOKEN)],
            sign_whatsapp: false,
            grpc_web: false,
        },
        Route {
            name: "hooks/wake",
            path: "/hooks/wake".into(),
            headers: vec![json(), bearer(HOOK_TOKEN)],
            sign_whatsapp: false,
            grpc_web: false,
        },
        Route {
            name: "webhook ingress",
            path: "/webhook/in".into(),
            headers: vec![json(), ("X-Webhook-Secret".into(), INGRESS_SECRET.into())],
            sign_whatsapp: false,
            grpc_web: false,
        },
        Route {
            name: "sync webhook",
            path: format!("/webhooks/{}", h.instance_id),
            headers: vec![json(), bearer(&h.webhook_key)],
            sign_whatsapp: false,
            grpc_web: false,
        },
        Route {
            name: "whatsapp inbound",
            path: "/channels/whatsapp/webhook".into(),
            headers: vec![json()],
            sign_whatsapp: true,
            grpc_web: false,
        },
        Route {
            name: "grpc-web ChatService/Send",
            path: "/clawplane.v1.ChatService/Send".into(),
            headers: vec![
                ("Content-Type".into(), "application/grpc-web+proto".into()),
                ("X-Grpc-Web".into(), "1".into()),
                bearer(&h.gw.token),
            ],
            sign_whatsapp: false,
            grpc_web: true,
        },
    ]
}

/// What came back on a raw connection.
#[derive(Debug)]
struct Outcome {
    /// The HTTP status, when a response head arrived.
    status: Option<u16>,
    /// Everything read.
    raw: Vec<u8>,
    /// The connection ended (EOF or reset) within the bound.
    closed: bool,
    took: Duration,
}

impl Outcome {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
    /// The `grpc-status` of a gRPC-Web answer (trailers frame, or a trailers-only header).
    fn grpc_status(&self) -> Option<u32> {
        let t = self.text();
        t.split(['\r', '\n'])
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("grpc-status"))
            .and_then(|(_, v)| v.trim().parse().ok())
    }
}

/// Writes `chunks` (pausing `gap` between them), optionally half-closes, then reads until the
/// server ends the connection or `within` passes.
async fn exchange(
    addr: SocketAddr,
    chunks: &[&[u8]],
    gap: Duration,
    half_close: bool,
    within: Duration,
) -> Outcome {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("tcp connect");
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 && !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        if s.write_all(c).await.is_err() {
            break;
        }
    }
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        let left = within.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let status = std::str::from_utf8(&raw[..raw.len().min(64)])
        .ok()
        .or_else(|| std::str::from_utf8(&raw[..raw.len().min(12)]).ok())
        .and_then(|t| t.strip_prefix("HTTP/1.1 "))
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok());
    Outcome {
        status,
        raw,
        closed,
        took: start.elapsed(),
    }
}

/// Everything a refused request must leave untouched.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    runs: usize,
    sessions: u64,
    last_event_seq: u64,
    webhook_calls: usize,
}

async fn written(gw: &Gateway) -> Written {
    let runs = gw
        .agent()
        .await
        .list_runs(ListRunsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListRuns")
        .into_inner()
        .runs
        .len();
    let st = gw.status().await;
    let webhook_calls = gw
        .webhooks()
        .await
        .list_webhook_calls(ListWebhookCallsRequest {})
        .await
        .expect("ListWebhookCalls")
        .into_inner()
        .calls
        .len();
    Written {
        runs,
        sessions: st.session_count,
        last_event_seq: st.last_event_seq,
        webhook_calls,
    }
}

/// The gateway's resident memory in KiB.
fn rss_kib(gw: &Gateway) -> u64 {
    let pid = gw.pid().expect("gateway running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The gateway still answers a plain request quickly.
async fn still_serving(gw: &Gateway) {
    let r = tokio::time::timeout(BOUND, http1::request(gw.addr, "GET", "/healthz", &[], b""))
        .await
        .expect("/healthz answered in time");
    assert_eq!(r.status, 200, "{r:?}");
}

/// A gRPC-Web frame header declaring `len` bytes.
fn grpc_web_prefix(len: u32) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&len.to_be_bytes());
    v
}

/// `ChatServiceSendRequest{session_key: "hostile", message: <bytes>}` encoded by hand, so the
/// message may be invalid UTF-8.
fn send_request_with_raw_message(message: &[u8]) -> Vec<u8> {
    let mut m = vec![0x0a, 7];
    m.extend_from_slice(b"hostile");
    m.push(0x12);
    assert!(message.len() < 128);
    m.push(message.len() as u8);
    m.extend_from_slice(message);
    m
}

/// A protobuf body of `depth` nested start-group tags of an unknown field (decoders recurse
/// to skip groups).
fn deep_groups(depth: usize) -> Vec<u8> {
    // field 99, wire type 3 (start group): (99 << 3) | 3 = 795 = varint 0x9b 0x06.
    [0x9bu8, 0x06].repeat(depth)
}

#[track_caller]
fn assert_refused(what: &str, route: &Route, o: &Outcome, allowed: &[u16]) {
    eprintln!(
        "{} / {what}: status {:?}, grpc-status {:?}, closed {}, {:?}",
        route.name,
        o.status,
        o.grpc_status(),
        o.closed,
        o.took
    );
    assert!(
        o.took < BOUND + Duration::from_secs(1),
        "{} / {what}: no answer or close within {BOUND:?} ({o:?})",
        route.name
    );
    if route.grpc_web {
        // gRPC-Web answers HTTP 200 with a non-OK grpc-status, or a 4xx, or closes.
        if let Some(code) = o.grpc_status() {
            assert_ne!(code, 0, "{} / {what}: accepted: {}", route.name, o.text());
            return;
        }
        if let Some(s) = o.status {
            assert!(
                (400..500).contains(&s),
                "{} / {what}: status {s}: {}",
                route.name,
                o.text()
            );
        } else {
            assert!(
                o.closed,
                "{} / {what}: neither answered nor closed",
                route.name
            );
        }
        return;
    }
    match o.status {
        Some(s) => assert!(
            allowed.contains(&s),
            "{} / {what}: expected one of {allowed:?}, got {s}: {}",
            route.name,
            o.text()
        ),
        None => assert!(
            o.closed,
            "{} / {what}: neither answered nor closed: {o:?}",
            route.name
        ),
    }
}

// -------------------------------------------------------------------------------- tests

#[tokio::test]
async fn truncated_bodies_bad_utf8_and_deep_nesting_are_refused_on_every_route() {
    let h = hostile_gateway().await;
    let gw = &h.gw;
    let addr = gw.addr;
    let before = written(gw).await;
    let rss_before = rss_kib(gw);

    for route in routes(&h) {
        // 1. Content-Length promises more than is sent, then the client half-closes.
        let body: &[u8] = if route.grpc_web {
            &[0, 0, 0, 0, 50, 0x0a]
        } else {
            br#"{"message": "trunc"#
        };
        let head = route.head(addr, body, 1000);
        let o = exchange(
            addr,
            &[format!("{head}\r\n").as_bytes(), body],
            Duration::ZERO,
            true,
            BOUND,
        )
        .await;
        assert_refused("truncated body", &route, &o, &[400, 408]);

        // 2. Invalid UTF-8 inside a JSON string (or a protobuf string field).
        let body: Vec<u8> = if route.grpc_web {
            let msg = send_request_with_raw_message(b"bad \xff\xfe\xc0 utf8");
            let mut b = grpc_web_prefix(msg.len() as u32);
            b.extend_from_slice(&msg);
            b
        } else {
            let mut b = br#"{"message": "bad "#.to_vec();
            b.extend_from_slice(b"\xff\xfe\xc0");
            b.extend_from_slice(br#"", "text": "x", "session_name": "s", "object": "whatsapp_business_account", "entry": []}"#);
            b
        };
        let head = route.head(addr, &body, body.len());
        let o = exchange(
            addr,
            &[format!("{head}\r\n").as_bytes(), &body],
            Duration::ZERO,
            false,
            BOUND,
        )
        .await;
        assert_refused("invalid UTF-8", &route, &o, &[400]);

        // 3. 100k nested arrays (JSON) / 100k nested groups (protobuf).
        let body: Vec<u8> = if route.grpc_web {
            let msg = deep_groups(100_000);
            let mut b = grpc_web_prefix(msg.len() as u32);
            b.extend_from_slice(&msg);
            b
        } else {
            vec![b'['; 100_000]
        };
        let head = route.head(addr, &body, body.len());
        let o = exchange(
            addr,
            &[format!("{head}\r\n").as_bytes(), &body],
            Duration::ZERO,
            false,
            BOUND,
        )
        .await;
        assert_refused("deep nesting", &route, &o, &[400]);

        // 4. A gRPC-Web frame longer than the body (complete HTTP body, truncated frame).
        if route.grpc_web {
            let mut body = grpc_web_prefix(1000);
            body.extend_from_slice(&[0x0a, 1, b'x']);
            let head = route.head(addr, &body, body.len());
            let o = exchange(
                addr,
                &[format!("{head}\r\n").as_bytes(), &body],
                Duration::ZERO,
                false,
                BOUND,
            )
            .await;
            assert_refused("truncated gRPC-Web frame", &route, &o, &[400]);
        }
    }

    still_serving(gw).await;
    assert_eq!(written(gw).await, before, "bad input wrote something");
    let rss_after = rss_kib(gw);
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[tokio::test]
async fn a_one_mebibyte_header_is_refused_on_every_route() {
    let h = hostile_gateway().await;
    let gw = &h.gw;
    let before = written(gw).await;
    let rss_before = rss_kib(gw);
    let huge = format!("X-Huge: {}\r\n", "a".repeat(1024 * 1024));
    for route in routes(&h) {
        let body = br#"{"message":"hi","text":"hi"}"#;
        let head = route.head(gw.addr, body, body.len());
        let o = exchange(
            gw.addr,
            &[head.as_bytes(), huge.as_bytes(), b"\r\n", body],
            Duration::ZERO,
            false,
            BOUND,
        )
        .await;
        // hyper refuses a head over its buffer with 431 and closes; a reset is fine too.
        assert!(o.took < BOUND, "{}: not refused in time: {o:?}", route.name);
        match o.status {
            Some(s) => assert_eq!(s, 431, "{}: {}", route.name, o.text()),
            None => assert!(o.closed, "{}: {o:?}", route.name),
        }
    }
    // Many header lines (each small) are bounded too.
    let many: String = (0..20_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let o = exchange(
        gw.addr,
        &[
            format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", gw.addr).as_bytes(),
            many.as_bytes(),
            b"\r\n",
        ],
        Duration::ZERO,
        false,
        BOUND,
    )
    .await;
    assert!(
        o.status.is_some_and(|s| s == 431) || (o.status.is_none() && o.closed),
        "20000 header lines: {o:?}"
    );
    still_serving(gw).await;
    assert_eq!(written(gw).await, before);
    let rss_after = rss_kib(gw);
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// A body trickled one byte a second is cut with 408 after the 30 s body timeout on every
/// route that reads a JSON body (they share the hooks' reader), and meanwhile the gateway
/// serves others.
#[tokio::test]
async fn a_trickled_body_is_cut_with_408() {
    let h = hostile_gateway().await;
    let gw = &h.gw;
    let before = written(gw).await;
    let addr = gw.addr;
    let mut tasks = Vec::new();
    for route in routes(&h).into_iter().filter(|r| !r.grpc_web) {
        let body = br#"{"message": "slow"}"#;
        let head = format!("{}\r\n", route.head(addr, body, 64));
        tasks.push(tokio::spawn(async move {
            let bytes: Vec<Vec<u8>> = std::iter::once(head.into_bytes())
                .chain(body.iter().map(|b| vec![*b]))
                .chain((0..64).map(|_| vec![b' ']))
                .collect();
            let chunks: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
            // The trickle outlasts the 30 s body timeout; the answer must come by ~31 s.
            let o = exchange(
                addr,
                &chunks,
                Duration::from_millis(700),
                false,
                Duration::from_secs(40),
            )
            .await;
            (route.name, o)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_serving(gw).await;
    for t in tasks {
        let (name, o) = t.await.unwrap();
        assert_eq!(o.status, Some(408), "{name}: {o:?}");
        assert!(
            o.took < Duration::from_secs(36),
            "{name}: cut only after {:?}",
            o.took
        );
    }
    assert_eq!(written(gw).await, before);
}

/// Slowloris on the request head: `gateway.headerReadTimeoutMs` (default 30 s; 2 s here)
/// closes a connection whose head is still incomplete, on the plain and TLS listener alike.
#[tokio::test]
async fn a_trickled_request_head_is_cut() {
    let gw = Gateway::start_with("{ gateway: { headerReadTimeoutMs: 2000 } }").await;
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", gw.addr);
    let mut bytes: Vec<Vec<u8>> = vec![head.into_bytes()];
    // 40 header lines, one every 250 ms: 10 s, well past the 2 s limit.
    bytes.extend((0..40).map(|i| format!("X-{i}: y\r\n").into_bytes()));
    let chunks: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let o = exchange(
        gw.addr,
        &chunks,
        Duration::from_millis(250),
        false,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        o.closed,
        "a request head trickled for 10 s was never cut: {o:?}"
    );
    assert!(
        o.took < Duration::from_secs(8),
        "cut near the 2 s limit, not at the end: {o:?}"
    );
}

/// 2000 idle connections (half silent, half with an unfinished request head) do not starve a
/// normal request, and cost bounded memory.
#[tokio::test]
async fn two_thousand_idle_connections_then_a_normal_request_is_answered() {
    let h = hostile_gateway().await;
    let gw = &h.gw;
    let before = written(gw).await;
    let rss_before = rss_kib(gw);
    let mut conns = Vec::with_capacity(2000);
    for i in 0..2000 {
        let mut s = TcpStream::connect(gw.addr).await.expect("tcp connect");
        if i % 2 == 1 {
            s.write_all(b"POST /hooks/agent HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        conns.push(s);
    }
    let start = Instant::now();
    still_serving(gw).await;
    let r = http1::request(
        gw.addr,
        "POST",
        "/hooks/wake",
        &[("Authorization", &format!("Bearer {HOOK_TOKEN}"))],
        br#"{"text": "still here", "mode": "next-heartbeat"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    let st = gw.status().await;
    assert!(st.uptime_ms > 0);
    let rss_with = rss_kib(gw);
    eprintln!("2000 idle connections: RSS {rss_before} KiB -> {rss_with} KiB");
    assert!(
        rss_with < rss_before + 256 * 1024,
        "2000 idle connections: RSS {rss_before} KiB -> {rss_with} KiB"
    );
    drop(conns);
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_serving(gw).await;
    // The wake queued a system event (and its event); nothing else was written.
    let after = written(gw).await;
    assert_eq!(after.runs, before.runs);
    assert_eq!(after.webhook_calls, before.webhook_calls);
}

// ---------------------------------------------------------------------------- WebSocket

async fn ws_open(
    gw: &Gateway,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let url = format!("ws://{}/", gw.addr);
    let (mut s, _) = tokio::time::timeout(BOUND, connect_async(&url))
        .await
        .expect("ws connect in time")
        .expect("ws connect");
    // connect.challenge
    let first = tokio::time::timeout(BOUND, s.next())
        .await
        .expect("challenge");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
    s
}

/// The close code the server ends the socket with (1006 when it ended without a close).
async fn ws_close_code(
    s: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> (u16, Vec<String>) {
    let mut frames = Vec::new();
    let deadline = Instant::now() + BOUND + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.next()).await {
            Err(_) => panic!("socket neither closed nor answered in time; frames {frames:?}"),
            Ok(Some(Ok(Message::Close(f)))) => {
                let code = f.map(|f: CloseFrame| u16::from(f.code)).unwrap_or(1005);
                return (code, frames);
            }
            Ok(Some(Ok(Message::Text(t)))) => frames.push(t.to_string()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return (1006, frames),
        }
    }
}

#[tokio::test]
async fn bad_websocket_frames_and_handshakes_close_with_the_documented_codes() {
    // The close codes must reach the client straight from the process that refused the
    // frame (a TCP relay in between may reset before relaying the close).
    let gw = Gateway::builder().one_process().start().await;
    let before = written(&gw).await;

    // A binary frame that is not UTF-8 meets the same pre-auth size limit as text: 70 KiB of
    // binary garbage closes 1009 at once. Runs concurrently with the rest.
    let mut s = ws_open(&gw).await;
    let binary = tokio::spawn(async move {
        s.send(Message::Binary(vec![0xffu8; 70 * 1024].into()))
            .await
            .unwrap();
        ws_close_code(&mut s).await.0
    });

    // Not JSON, JSON that is not an object, deep nesting under the pre-auth limit, a request
    // with a wrong type for `params`: no handshake, close 1008.
    let deep = "[".repeat(60_000);
    let firsts: Vec<String> = vec![
        "{{{{ not json".into(),
        "42".into(),
        "null".into(),
        deep,
        r#"{"type":"req","id":7,"method":"connect","params":"x"}"#.into(),
        r#"{"type":"req","id":"1","method":"connect","params":{"minProtocol":4,"maxProtocol":4,"client":{"id":"test","mode":"test","version":"1","platform":"linux"},"auth":{"token":{"nested":[[[[]]]]}}}}"#.into(),
    ];
    for first in firsts {
        let mut s = ws_open(&gw).await;
        s.send(Message::Text(first.clone().into())).await.unwrap();
        let (code, frames) = ws_close_code(&mut s).await;
        assert_eq!(
            code,
            1008,
            "first frame {:?}: {frames:?}",
            &first[..first.len().min(80)]
        );
    }

    // A pre-auth frame over 64 KiB: 1009, whatever it holds.
    let mut s = ws_open(&gw).await;
    s.send(Message::Text("\u{1F980}".repeat(17 * 1024).into()))
        .await
        .unwrap();
    let (code, _) = ws_close_code(&mut s).await;
    assert_eq!(code, 1009, "70 KiB of non-JSON text before the handshake");
    // A frame over 25 MiB after the handshake: 1009, or a reset while the client still
    // writes (docs/behaviour.md); the gateway keeps serving either way.
    let mut s = ws_open(&gw).await;
    let connect = serde_json::json!({"type": "req", "id": "c", "method": "connect",
        "params": crate::harness::ws::connect_params(Some(&gw.token), 4, 4)});
    s.send(Message::Text(connect.to_string().into()))
        .await
        .unwrap();
    let hello = loop {
        match tokio::time::timeout(BOUND, s.next())
            .await
            .expect("hello-ok in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "res" {
                    break v;
                }
            }
            other => panic!("no connect answer: {other:?}"),
        }
    };
    assert_eq!(hello["ok"], true, "{hello}");
    let big = serde_json::json!({"type": "req", "id": "big", "method": "health", "params": {"pad": "a".repeat(26 * 1024 * 1024)}});
    let sent = s.send(Message::Text(big.to_string().into())).await;
    if sent.is_ok() {
        let (code, frames) = ws_close_code(&mut s).await;
        assert!(
            code == 1009 || code == 1006,
            "26 MiB frame: close {code}, frames {frames:?}"
        );
        assert!(
            frames.iter().all(|f| !f.contains("\"id\":\"big\"")),
            "the oversized request was answered: {frames:?}"
        );
    }

    // Bad upgrade requests: missing key / wrong version are HTTP errors, not upgrades.
    for (what, extra) in [
        ("no key", "Sec-WebSocket-Version: 13\r\n"),
        (
            "version 8",
            "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        ),
    ] {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\r\n",
            gw.addr
        );
        // The answer keeps the connection open (keep-alive); its head is all we need.
        let o = exchange(
            gw.addr,
            &[req.as_bytes()],
            Duration::ZERO,
            false,
            Duration::from_secs(2),
        )
        .await;
        let s = o
            .status
            .unwrap_or_else(|| panic!("{what}: no answer: {o:?}"));
        assert!(
            (400..500).contains(&s),
            "{what}: expected a 4xx, got {s}: {}",
            o.text()
        );
    }

    let code = binary.await.unwrap();
    assert_eq!(code, 1009, "binary garbage pre-auth");

    still_serving(&gw).await;
    assert_eq!(written(&gw).await, before, "bad frames wrote something");
}

/// Hundreds of pre-auth misbehaviours at once: WebSockets that never authenticate (closed at
/// the handshake deadline), WebSockets announcing a 1 MiB frame (closed 1009 from the frame
/// header), a flood of device challenges (capped per address), and HTTP heads trickled a
/// byte at a time. Meanwhile a normal client is served, the RSS stays bounded, and nothing is
/// written.
#[tokio::test]
async fn a_crowd_of_pre_auth_misbehaviours_at_once_stays_bounded() {
    let gw = Gateway::start_with("{ gateway: { ws: { handshakeTimeoutMs: 3000 } } }").await;
    let before = written(&gw).await;
    let rss_before = rss_kib(&gw);

    let mut silent = Vec::new();
    for _ in 0..150 {
        silent.push(ws_open(&gw).await);
    }
    let mut oversize = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(gw.addr).await.expect("tcp connect");
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("upgrade request");
        // A masked text frame header announcing 1 MiB (64-bit length), and a little payload.
        let mut frame = vec![0x81u8, 0x80 | 127];
        frame.extend_from_slice(&(1u64 << 20).to_be_bytes());
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.extend_from_slice(&[b'x'; 512]);
        s.write_all(&frame).await.expect("frame header");
        oversize.push(s);
    }
    let mut trickled = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(gw.addr).await.expect("tcp connect");
        s.write_all(b"POST /hooks/agent HTTP/1.1\r\nHo")
            .await
            .expect("partial head");
        trickled.push(s);
    }
    let mut refused_challenges = 0;
    let mut devices = gw.devices_as(Token::none()).await;
    for _ in 0..400 {
        match devices
            .challenge(clawplane_proto::v1::ChallengeRequest {})
            .await
        {
            Ok(_) => {}
            Err(s) => {
                assert_error(&s, tonic::Code::ResourceExhausted, "CHALLENGES_EXHAUSTED");
                refused_challenges += 1;
            }
        }
    }
    assert!(refused_challenges > 0, "the challenge flood met its cap");

    // A normal client: gRPC, HTTP and a WebSocket that authenticates with the token.
    still_serving(&gw).await;
    assert!(gw.status().await.uptime_ms > 0);
    let (_ws, hello) = crate::harness::ws::operator(&gw).await;
    assert!(
        hello.is_object(),
        "a token client connects amid the crowd: {hello}"
    );

    let rss_with = rss_kib(&gw);
    eprintln!("pre-auth crowd: RSS {rss_before} KiB -> {rss_with} KiB");
    assert!(
        rss_with < rss_before + 128 * 1024,
        "pre-auth crowd: RSS {rss_before} KiB -> {rss_with} KiB"
    );

    // The oversize frames were refused from their header: 1009 on each socket.
    for mut s in oversize {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(BOUND, s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 101"), "upgraded: {text:?}");
        let close = buf.windows(2).rposition(|w| w == [0x03, 0xf1]).is_some();
        assert!(
            close,
            "closed 1009 (0x03f1): {:?}",
            &buf[buf.len().saturating_sub(32)..]
        );
    }
    // The silent sockets are closed at the handshake deadline.
    for mut s in silent {
        let (code, _) = ws_close_code(&mut s).await;
        assert_eq!(code, 1000, "closed at the handshake deadline");
    }
    drop(trickled);
    still_serving(&gw).await;
    let after = written(&gw).await;
    assert_eq!(after.runs, before.runs);
    assert_eq!(after.webhook_calls, before.webhook_calls);
}
