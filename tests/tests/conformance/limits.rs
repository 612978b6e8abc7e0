//! Limits that protect the gateway: concurrent runs, queue depth (RESOURCE_EXHAUSTED
//! `QUEUE_FULL`), and request rate limits per credential and gateway-wide (RESOURCE_EXHAUSTED
//! `RATE_LIMITED` with RetryInfo; 429 + Retry-After on the hooks), per client address for
//! anonymous and own-key calls (device challenges, `/webhook/<path>`, `/webhooks/<id>`), and
//! the TCP connection cap.
//! The WebSocket connection cap is in ws.rs (`max_connections_closes_the_extra_socket_with_1013`).

use std::time::Duration;

use clawplane_proto::v1::{
    ChallengeRequest, ChatServiceSendRequest, CreateWebhookKeyRequest, GatewayServiceStatusRequest,
    GetRunRequest, RunState,
};
use tonic::Code;

use crate::harness::*;
use crate::http1;

async fn send(gw: &Gateway, session: &str, message: &str) -> Result<String, tonic::Status> {
    gw.chat()
        .await
        .send(ChatServiceSendRequest {
            session_key: session.into(),
            message: message.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().run_id)
}

/// Waits until the run is RUNNING (or later).
async fn until_running(gw: &Gateway, run_id: &str) {
    for _ in 0..400 {
        if gw.get_run(run_id).await.state() != RunState::Queued {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run_id} never started");
}

#[tokio::test]
async fn max_concurrent_runs_queue_the_rest() {
    // maxConcurrent is each process's capacity (a replica runs that many at once).
    let gw = Gateway::builder()
        .config("{ agents: { defaults: { maxConcurrent: 1 } } }")
        .one_process()
        .start()
        .await;
    let a = send(&gw, "s1", "/sleep 800 first").await.unwrap();
    until_running(&gw, &a).await;
    let b = send(&gw, "s2", "second").await.unwrap();
    assert_eq!(
        gw.get_run(&b).await.state(),
        RunState::Queued,
        "another session's run waits for the only slot"
    );
    assert_eq!(gw.status().await.queued_runs, 1);
    // That it kept waiting is shown by the record, not by sampling after a pause: its start
    // time is after the end of the run that held the slot.
    let (a, b) = (gw.wait_run(&a).await, gw.wait_run(&b).await);
    assert_eq!(b.state(), RunState::Succeeded);
    assert!(
        ts(&b.start_time, "b start") >= ts(&a.end_time, "a end"),
        "b started after a ended"
    );
}

#[tokio::test]
async fn a_full_queue_refuses_new_runs_and_stores_nothing() {
    // A session runs one run at a time, so a run behind a running one waits; the limits
    // count every replica's queue (the gauge, docs/scale-out.md).
    let gw = Gateway::start_with(
        "{ agents: { defaults: { maxQueuedRuns: 2, maxQueuedPerSession: 1 } } }",
    )
    .await;
    let a = send(&gw, "a", "/sleep 1500 busy").await.unwrap();
    let b = send(&gw, "b", "/sleep 1500 busy too").await.unwrap();
    until_running(&gw, &a).await;
    until_running(&gw, &b).await;
    // Per session: one waiting run in "a" is the limit.
    send(&gw, "a", "waits").await.unwrap();
    let err = send(&gw, "a", "one too many")
        .await
        .expect_err("session queue full");
    let md = assert_error(&err, Code::ResourceExhausted, "QUEUE_FULL");
    assert!(md["limit"].contains("maxQueuedPerSession"), "{md:?}");
    // Gateway-wide: two waiting runs is the limit.
    send(&gw, "b", "waits too").await.unwrap();
    let status = gw.status().await;
    assert_eq!(
        (status.queued_runs, status.running_runs),
        (2, 2),
        "{status:?}"
    );
    let err = send(&gw, "c", "refused")
        .await
        .expect_err("gateway queue full");
    let md = assert_error(&err, Code::ResourceExhausted, "QUEUE_FULL");
    assert!(md["limit"].contains("maxQueuedRuns = 2"), "{md:?}");
    let retry = tonic_types::StatusExt::get_error_details(&err)
        .retry_info()
        .cloned();
    assert!(retry.is_some(), "RetryInfo tells when to come back");
    assert_eq!(
        gw.list_runs("").await.len(),
        4,
        "refused runs are not stored"
    );
    // Once the queue drains, runs are accepted again.
    gw.wait_run(&a).await;
    gw.wait_run(&b).await;
    for _ in 0..200 {
        if gw.status().await.queued_runs == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(&gw, "c", "accepted now").await.expect("room again");
}

#[tokio::test]
async fn each_credential_has_its_own_request_budget() {
    let gw = Gateway::start_with(
        "{ hooks: { enabled: true, token: 'hook-secret' },
           gateway: { auth: { rateLimit: { perCredential: { requestsPerSecond: 0.2, burst: 3 } } } } }",
    )
    .await;
    let mut gateway = gw.gateway().await;
    for i in 0..3 {
        gateway
            .status(GatewayServiceStatusRequest {})
            .await
            .unwrap_or_else(|e| panic!("request {i} within the burst: {e:?}"));
    }
    let err = gateway
        .status(GatewayServiceStatusRequest {})
        .await
        .expect_err("over the burst");
    let md = assert_error(&err, Code::ResourceExhausted, "RATE_LIMITED");
    assert_eq!(md["scope"], "credential");
    let wait = tonic_types::StatusExt::get_error_details(&err)
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(wait > Duration::from_millis(100), "{wait:?}");

    // The hooks token has its own bucket: its calls still pass...
    let mut hooks = gw.agent_as(Token::bearer("hook-secret")).await;
    let s = hooks
        .get_run(GetRunRequest {
            run_id: "nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown run");
    assert_eq!(s.code(), Code::NotFound, "not rate limited: {s:?}");
    // ...until it spends them; then the hooks answer 429 with Retry-After.
    let addr = std::net::SocketAddr::new([127, 0, 0, 1].into(), gw.addr.port());
    let mut last = 0;
    for _ in 0..4 {
        let r = http1::request(
            addr,
            "POST",
            "/hooks/wake",
            &[("Authorization", "Bearer hook-secret")],
            br#"{"text":"ping"}"#,
        )
        .await;
        last = r.status;
        if r.status == 429 {
            assert!(r.header("retry-after").is_some(), "Retry-After");
            break;
        }
    }
    assert_eq!(last, 429, "the hooks credential ran out too");
}

#[tokio::test]
async fn the_global_budget_covers_every_caller() {
    let gw = Gateway::start_with(
        "{ hooks: { enabled: true, token: 'hook-secret' },
           gateway: { auth: { rateLimit: { global: { requestsPerSecond: 0.2, burst: 2 } } } } }",
    )
    .await;
    let mut gateway = gw.gateway().await;
    gateway
        .status(GatewayServiceStatusRequest {})
        .await
        .unwrap();
    let mut hooks = gw.agent_as(Token::bearer("hook-secret")).await;
    let s = hooks
        .get_run(GetRunRequest {
            run_id: "nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown run");
    assert_eq!(s.code(), Code::NotFound);
    let err = gateway
        .status(GatewayServiceStatusRequest {})
        .await
        .expect_err("the shared budget is spent");
    let md = assert_error(&err, Code::ResourceExhausted, "RATE_LIMITED");
    assert_eq!(md["scope"], "global");
}

/// A 429 with `Retry-After` (whole seconds).
#[track_caller]
fn retry_after_secs(r: &http1::Response) -> u64 {
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    r.header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds")
}

/// Anonymous calls and the calls that bring their own key (`/webhook/<path>`,
/// `/webhooks/<id>`) spend a bucket per client address (`perAddress`), counted before the
/// key is checked; past it RESOURCE_EXHAUSTED `RATE_LIMITED` (scope address) or 429 with
/// Retry-After, and after that wait the address is served again. Other addresses and the
/// gateway token are not charged.
#[tokio::test]
async fn anonymous_and_own_key_calls_have_a_budget_per_client_address() {
    let gw = Gateway::start_with(
        "{ gateway: { trustedProxies: ['127.0.0.1'],
                      auth: { rateLimit: { perAddress: { requestsPerSecond: 1, burst: 3 } } } },
           webhooks: { incoming: { enabled: true, secret: 'plain-secret-123',
                                   endpoints: [ { path: 'plain', message: 'got {{body.n}}' } ] } } }",
    )
    .await;
    let port = gw.addr.port();
    let addr = std::net::SocketAddr::new([127, 0, 0, 1].into(), port);

    // Anonymous gRPC (DeviceService/Challenge).
    let from = |ip: &str| Token::none().with_header("x-forwarded-for", ip);
    let mut anon = gw.devices_as(from("203.0.113.20")).await;
    for i in 0..3 {
        anon.challenge(ChallengeRequest {})
            .await
            .unwrap_or_else(|e| panic!("challenge {i} within the burst: {e:?}"));
    }
    let err = anon
        .challenge(ChallengeRequest {})
        .await
        .expect_err("over the address's burst");
    let md = assert_error(&err, Code::ResourceExhausted, "RATE_LIMITED");
    assert_eq!(md["scope"], "address");
    assert!(
        tonic_types::StatusExt::get_error_details(&err)
            .retry_info()
            .and_then(|r| r.retry_delay)
            .is_some_and(|d| !d.is_zero()),
        "RetryInfo: {err:?}"
    );
    // Another address has its own bucket; a credential is not charged per address.
    gw.devices_as(from("203.0.113.21"))
        .await
        .challenge(ChallengeRequest {})
        .await
        .expect("another address");
    gw.status().await;

    // Ingress: the right secret from one address, past the burst: 429, then served again.
    let ingest = |client: &'static str, n: u32| async move {
        let body = format!("{{\"n\":{n}}}");
        http1::request(
            addr,
            "POST",
            "/webhook/plain",
            &[
                ("X-Webhook-Secret", "plain-secret-123"),
                ("X-Forwarded-For", client),
            ],
            body.as_bytes(),
        )
        .await
    };
    for n in 0..3 {
        let r = ingest("198.51.100.30", n).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let wait = retry_after_secs(&ingest("198.51.100.30", 3).await);
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(
        ingest("198.51.100.31", 4).await.status,
        200,
        "another address"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(ingest("198.51.100.30", 5).await.status, 200, "recovered");

    // Sync webhooks: admission comes before the key, so wrong keys spend the budget too
    // and the right key past it is refused.
    let key = webhook_key(&gw, "ci", false).await;
    let instance = gw.status().await.instance_id;
    let call = |client: &'static str, key: String| {
        let instance = instance.clone();
        async move {
            let auth = format!("Bearer {key}");
            http1::request(
                addr,
                "POST",
                &format!("/webhooks/{instance}"),
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", auth.as_str()),
                    ("X-Forwarded-For", client),
                ],
                br#"{"session_name":"s","message":"hi"}"#,
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(call("198.51.100.40", "wrong".into()).await.status, 401);
    }
    let wait = retry_after_secs(&call("198.51.100.40", key.clone()).await);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = call("198.51.100.40", key).await;
    assert_eq!(
        r.status,
        200,
        "recovered: {}",
        String::from_utf8_lossy(&r.body)
    );
}

async fn webhook_key(gw: &Gateway, label: &str, private: bool) -> String {
    gw.webhooks()
        .await
        .create_webhook_key(CreateWebhookKeyRequest {
            label: label.into(),
            private,
        })
        .await
        .expect("CreateWebhookKey")
        .into_inner()
        .secret
}

/// A verified webhook API key is a credential with its own `perCredential` bucket: one key
/// past its burst gets 429 with Retry-After, another key is still served.
#[tokio::test]
async fn each_webhook_key_has_its_own_request_budget() {
    let gw = Gateway::start_with(
        "{ gateway: { auth: { rateLimit: { perCredential: { requestsPerSecond: 0.01, burst: 6 } } } } }",
    )
    .await;
    let addr = std::net::SocketAddr::new([127, 0, 0, 1].into(), gw.addr.port());
    let (a, b) = (
        webhook_key(&gw, "a", true).await,
        webhook_key(&gw, "b", true).await,
    );
    let instance = gw
        .webhooks()
        .await
        .list_webhook_keys(clawplane_proto::v1::ListWebhookKeysRequest {})
        .await
        .expect("ListWebhookKeys")
        .into_inner()
        .instance_id;
    let call = |key: String| {
        let path = format!("/webhooks/{instance}");
        async move {
            let auth = format!("Bearer {key}");
            http1::request(
                addr,
                "POST",
                &path,
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", auth.as_str()),
                ],
                br#"{"session_name":"s","message":"hi"}"#,
            )
            .await
        }
    };
    let mut refused = None;
    for _ in 0..8 {
        let r = call(a.clone()).await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = refused.expect("key a ran out of its burst");
    assert!(r.header("retry-after").is_some(), "Retry-After");
    let r = call(b).await;
    assert_eq!(r.status, 200, "key b: {}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn connections_past_the_tcp_cap_are_closed_until_one_frees_up() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Connection limits are each process's own (they bound its sockets).
    let gw = Gateway::builder()
        .config("{ gateway: { maxTcpConnections: 4 } }")
        .one_process()
        .start()
        .await;
    let addr = std::net::SocketAddr::new([127, 0, 0, 1].into(), gw.addr.port());
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // Let the server accept them all before the fifth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), fifth.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "the fifth connection is closed unanswered");

    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = http1::request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200, "a freed slot serves again");
}
