//! GatewayService/Wake and heartbeat turns.

use clawplane_proto::v1::{
    EventFilter, EventKind, GatewayServiceWakeRequest, RunOrigin, RunState, WakeMode, WakeOutcome,
    event,
};

use crate::harness::*;

#[tokio::test]
async fn wake_queues_coalesces_and_now_runs_a_heartbeat() {
    let gw = Gateway::start().await;
    let head = gw.status().await.last_event_seq;
    let mut gateway = gw.gateway().await;
    let wake = |text: &str, mode: WakeMode| GatewayServiceWakeRequest {
        text: text.into(),
        mode: mode as i32,
        ..Default::default()
    };

    let q = gateway
        .wake(wake("disk full", WakeMode::NextHeartbeat))
        .await
        .expect("Wake")
        .into_inner();
    assert_eq!(q.outcome(), WakeOutcome::Queued);
    assert_eq!(q.session_key, "agent:main:main", "default session");
    assert_eq!(q.mode(), WakeMode::NextHeartbeat);
    assert!(q.run_id.is_empty(), "NEXT_HEARTBEAT starts no run: {q:?}");

    let c = gateway
        .wake(wake("disk full", WakeMode::NextHeartbeat))
        .await
        .expect("Wake again")
        .into_inner();
    assert_eq!(
        c.outcome(),
        WakeOutcome::Coalesced,
        "identical text coalesces"
    );

    let now = gateway
        .wake(wake("build done", WakeMode::Now))
        .await
        .expect("Wake NOW")
        .into_inner();
    assert_eq!(now.outcome(), WakeOutcome::Queued);
    assert_eq!(now.mode(), WakeMode::Now);
    assert!(!now.run_id.is_empty(), "mode NOW starts a heartbeat run");
    let run = gw.wait_run(&now.run_id).await;
    assert_eq!(run.state(), RunState::Succeeded, "{run:?}");
    assert_eq!(run.origin(), RunOrigin::Heartbeat);
    assert_eq!(run.session_key, "agent:main:main");
    assert_eq!(run.reply_text, "Noted: disk full; build done");

    let mut feed = gw
        .watch_after(
            head,
            Some(EventFilter {
                kinds: vec![EventKind::SystemEvent as i32],
                ..Default::default()
            }),
        )
        .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = feed.next_event().await;
        assert_eq!(e.kind(), EventKind::SystemEvent);
        assert_eq!(e.session_key, "agent:main:main");
        match e.payload {
            Some(event::Payload::SystemEvent(s)) => got.push((s.text.clone(), s.outcome())),
            other => panic!("SYSTEM_EVENT with payload {other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            ("disk full".to_string(), WakeOutcome::Queued),
            ("disk full".to_string(), WakeOutcome::Coalesced),
            ("build done".to_string(), WakeOutcome::Queued),
        ]
    );

    // The queue was drained by the heartbeat: the next one has nothing to note.
    let next = gateway
        .wake(wake("again", WakeMode::Now))
        .await
        .expect("Wake NOW again")
        .into_inner();
    let run = gw.wait_run(&next.run_id).await;
    assert_eq!(run.reply_text, "Noted: again");
}

#[tokio::test]
async fn scheduled_heartbeat_replies_heartbeat_ok() {
    let gw = Gateway::start_with("{ agents: { defaults: { heartbeat: { every: '1s' } } } }").await;
    assert_eq!(gw.status().await.heartbeat_interval_seconds, 1);
    let mut feed = gw
        .watch_after(0, session_filter("agent:main:main", &[EventKind::Run]))
        .await;
    let events = feed
        .collect_until(|e| {
            run_of(e).is_some_and(|r| {
                r.origin() == RunOrigin::Heartbeat && r.state() == RunState::Succeeded
            })
        })
        .await;
    let run = run_of(events.last().unwrap()).unwrap();
    assert_eq!(run.reply_text, "HEARTBEAT_OK", "{run:?}");
}
