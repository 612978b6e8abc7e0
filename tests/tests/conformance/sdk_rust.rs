//! The Rust SDK (`clawplane-sdk`) against the live gateway: every verb the other SDKs offer
//! (chat send, sessions send, agent run with streamed deltas, wait, cancel, an event watch
//! that resumes across a gateway restart, devices list/approve, typed errors).

use std::time::{Duration, Instant};

use clawplane_proto::v1::{
    AgentServiceRunRequest, ChatServiceSendRequest, EventFilter, EventKind, RunState,
    SessionServiceSendRequest,
};
use clawplane_sdk::{Client, DEFAULT_WAIT, RunUpdate, WatchItem};
use futures::StreamExt;
use tonic::Code;

use crate::harness::*;

async fn client(gw: &Gateway) -> Client {
    Client::connect(&gw.url, Some(gw.token.clone()))
        .await
        .expect("SDK connects")
}

#[tokio::test]
async fn wait_timeout_and_per_call_timeout() {
    assert_eq!(
        DEFAULT_WAIT,
        Duration::from_secs(30),
        "the same as the other SDKs"
    );
    let gw = Gateway::start().await;
    let c = client(&gw).await;
    let slow = c
        .agent_run(AgentServiceRunRequest {
            message: "/sleep 5000 slow".into(),
            ..Default::default()
        })
        .await
        .expect("slow run");

    // The wait's own timeout returns the run as it stands.
    let t0 = Instant::now();
    let now = slow.wait(Duration::from_millis(300)).await.expect("wait");
    let took = t0.elapsed();
    assert!(
        !clawplane_sdk::is_terminal(&now),
        "still going: {:?}",
        now.state()
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A client's time limit is a hard one: DEADLINE_EXCEEDED, and the run goes on.
    let bounded = c.with_timeout(Duration::from_millis(300));
    assert_eq!(bounded.timeout(), Some(Duration::from_millis(300)));
    let t0 = Instant::now();
    let err = bounded
        .wait_run(&slow.run_id, Duration::from_secs(20))
        .await
        .expect_err("past the time limit");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(
        c.get_run(&slow.run_id).await.expect("get").state(),
        RunState::Running
    );
    bounded
        .status()
        .await
        .expect("a quick call fits in the limit");

    // A zero limit fails before anything is sent.
    let err = c
        .with_timeout(Duration::ZERO)
        .chat_send(ChatServiceSendRequest {
            session_key: "rs-too-late".into(),
            message: "hi".into(),
            ..Default::default()
        })
        .await
        .expect_err("zero time limit");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let err = c.sessions_get("rs-too-late").await.expect_err("no session");
    assert_eq!(err.reason().as_deref(), Some("SESSION_NOT_FOUND"));
    slow.cancel().await.expect("cancel");
}

#[tokio::test]
async fn runs_stream_wait_and_cancel() {
    let gw = Gateway::start().await;
    let c = client(&gw).await;

    let run = c
        .agent_run(AgentServiceRunRequest {
            message: "stream me please".into(),
            ..Default::default()
        })
        .await
        .expect("agent run");
    let mut text = String::new();
    let mut stream = run.stream();
    let mut done = None;
    while let Some(u) = stream.next().await {
        match u.expect("stream item") {
            RunUpdate::Delta(d) => text.push_str(&d),
            RunUpdate::State(_) => {}
            RunUpdate::Done(r) => done = Some(r),
        }
    }
    let done = done.expect("a final run");
    assert_eq!(done.state(), RunState::Succeeded);
    assert_eq!(text, done.reply_text, "the deltas make the reply");
    assert_eq!(text, "You said: stream me please (turn 1)");

    let sent = c
        .chat_send(ChatServiceSendRequest {
            session_key: "sdk".into(),
            message: "one".into(),
            ..Default::default()
        })
        .await
        .expect("chat send");
    let r = sent.wait(Duration::from_secs(30)).await.expect("wait");
    assert_eq!(r.reply_text, "You said: one (turn 1)");
    let again = c
        .sessions_send(SessionServiceSendRequest {
            session_key: "sdk".into(),
            message: "two".into(),
            ..Default::default()
        })
        .await
        .expect("sessions send");
    let r = again.wait(Duration::from_secs(30)).await.expect("wait");
    assert_eq!(r.reply_text, "You said: two (turn 2)");

    let slow = c
        .agent_run(AgentServiceRunRequest {
            message: "/sleep 20000 slow".into(),
            ..Default::default()
        })
        .await
        .expect("slow run");
    let cancelled = slow.cancel().await.expect("cancel");
    assert_eq!(cancelled.state(), RunState::Cancelled);

    // Typed errors: the same key with different content.
    let key = "sdk-conflict-1";
    c.chat_send(ChatServiceSendRequest {
        session_key: "sdk".into(),
        message: "a".into(),
        idempotency_key: key.into(),
        ..Default::default()
    })
    .await
    .expect("first");
    let err = c
        .chat_send(ChatServiceSendRequest {
            session_key: "sdk".into(),
            message: "b".into(),
            idempotency_key: key.into(),
            ..Default::default()
        })
        .await
        .expect_err("conflict");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(err.reason().as_deref(), Some("IDEMPOTENCY_KEY_CONFLICT"));
    assert_eq!(err.metadata("idempotencyKey").as_deref(), Some(key));
    let first = c.get_run_by_key(key).await.expect("the run by its key");
    assert_eq!(first.message, "a");
    assert_eq!(err.metadata("runId"), Some(first.run_id));
}

#[tokio::test]
async fn the_watch_resumes_across_a_gateway_restart() {
    let mut gw = Gateway::start().await;
    gw.keep_port();
    let c = client(&gw).await;
    let filter = EventFilter {
        kinds: vec![EventKind::Run as i32],
        ..Default::default()
    };
    let mut watch = c.watch(0, filter);
    let first = c
        .chat_send(ChatServiceSendRequest {
            session_key: "w".into(),
            message: "before".into(),
            ..Default::default()
        })
        .await
        .expect("send")
        .wait(Duration::from_secs(30))
        .await
        .expect("wait");
    let mut seqs = Vec::new();
    let mut terminal = 0;
    while terminal < 1 {
        if let WatchItem::Event(e) = watch.next().await.expect("item").expect("event") {
            seqs.push(e.seq);
            if run_of(&e).is_some_and(|r| r.run_id == first.run_id && is_terminal(r.state())) {
                terminal += 1;
            }
        }
    }
    gw.restart().await;
    let second = c
        .chat_send(ChatServiceSendRequest {
            session_key: "w".into(),
            message: "after".into(),
            ..Default::default()
        })
        .await
        .expect("send after the restart (UNAVAILABLE is retried)")
        .wait(Duration::from_secs(30))
        .await
        .expect("wait");
    loop {
        let item = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("the watch resumed")
            .expect("item")
            .expect("event");
        if let WatchItem::Event(e) = item {
            seqs.push(e.seq);
            if run_of(&e).is_some_and(|r| r.run_id == second.run_id && is_terminal(r.state())) {
                break;
            }
        }
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no duplicate or reordered seq: {seqs:?}"
    );
    assert!(watch.last_seq() >= *seqs.last().unwrap());
}

#[tokio::test]
async fn devices_list_and_approve() {
    let gw = Gateway::start_with("{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}").await;
    let c = client(&gw).await;
    assert!(c.devices_list().await.expect("list").pending.is_empty());

    // A device asks to pair (Ed25519 proof over the challenge nonce).
    let dev = crate::harness::Dev::new();
    let err = crate::harness::devices::connect(&gw, &dev, &gw.token, &["operator.read"])
        .await
        .expect_err("pairing required");
    let md = assert_error(&err, Code::FailedPrecondition, "PAIRING_REQUIRED");

    let pending = c.devices_list().await.expect("list").pending;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].request_id, md["requestId"]);
    let device = c
        .devices_approve(&pending[0].request_id)
        .await
        .expect("approve");
    assert_eq!(device.device_id, dev.id);
    let listed = c.devices_list().await.expect("list");
    assert!(listed.pending.is_empty());
    assert_eq!(listed.paired.len(), 1);

    let err = c
        .devices_approve("no-such-request")
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.reason().as_deref(), Some("PAIRING_REQUEST_NOT_FOUND"));
}
