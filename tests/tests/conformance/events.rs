//! EventService/Watch: resume without gap or duplicate, cursor expiry, progress heartbeats.

use clawplane_proto::v1::event_service_watch_response::Frame;
use clawplane_proto::v1::{Event, EventKind, EventServiceWatchRequest, RunState, event};
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn watch_resumes_after_disconnect_without_gap_or_duplicate() {
    let gw = Gateway::start().await;
    let r1 = gw.send("feed", "/sleep 400 alpha beta gamma").await.run_id;

    // Watch from 0, read until r1 is RUNNING, then drop the stream mid-run.
    let mut feed = gw.watch_after(0, None).await;
    let mut seen = feed
        .collect_until(|e| is_run_event(e, &r1, RunState::Running))
        .await;
    drop(feed);
    let last = seen.last().unwrap().seq;

    // While disconnected r1 finishes (replayed later); r2 then streams live after resume.
    assert_eq!(gw.wait_run(&r1).await.state(), RunState::Succeeded);
    let r2 = gw.send("feed", "/sleep 300 delta epsilon").await.run_id;
    let mut feed = gw.watch_after(last, None).await;
    let rest = feed
        .collect_until(|e| is_run_event(e, &r2, RunState::Succeeded))
        .await;
    seen.extend(rest);

    let oldest = gw.status().await.oldest_event_seq;
    assert_eq!(
        seen[0].seq, oldest,
        "Watch from 0 starts at the oldest retained event"
    );
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    for w in seqs.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "seqs must be consecutive (no gap, no duplicate): {seqs:?}"
        );
    }

    for id in [&r1, &r2] {
        let run = gw.get_run(id).await;
        assert_eq!(run.state(), RunState::Succeeded);
        assert_eq!(
            run_states(&seen, id),
            vec![RunState::Queued, RunState::Running, RunState::Succeeded],
            "RUN events of {id}"
        );
        let deltas: Vec<&Event> = seen
            .iter()
            .filter(|e| e.run_id == *id && e.kind() == EventKind::Delta)
            .collect();
        assert!(!deltas.is_empty(), "run {id} streamed DELTA events");
        for (i, d) in deltas.iter().enumerate() {
            match &d.payload {
                Some(event::Payload::Delta(delta)) => {
                    assert_eq!(
                        delta.index as usize,
                        i + 1,
                        "delta index is 1-based, in order"
                    )
                }
                other => panic!("DELTA event with payload {other:?}"),
            }
            assert_eq!(d.session_key, key("feed"));
        }
        assert_eq!(
            delta_text(&seen, id),
            run.reply_text,
            "deltas concatenate to the reply"
        );
        for e in seen
            .iter()
            .filter(|e| e.kind() == EventKind::Run && e.run_id == *id)
        {
            assert!(run_of(e).is_some(), "RUN event carries the Run: {e:?}");
            assert_eq!(e.session_key, key("feed"));
        }
    }
    assert_eq!(
        gw.get_run(&r1).await.reply_text,
        "You said: /sleep 400 alpha beta gamma (turn 1)"
    );
}

#[tokio::test]
async fn watch_with_expired_cursor_is_out_of_range() {
    let gw = Gateway::start_with("{ events: { retention: 5 } }").await;
    for m in ["one", "two"] {
        let id = gw.send("ret", m).await.run_id;
        assert_eq!(gw.wait_run(&id).await.state(), RunState::Succeeded);
    }
    let st = gw.status().await;
    assert!(
        st.last_event_seq >= 7,
        "two runs make more than 5 events: {st:?}"
    );
    assert!(
        st.last_event_seq - st.oldest_event_seq < 5,
        "at most 5 events are retained: {st:?}"
    );

    let err = gw
        .watch_error(EventServiceWatchRequest {
            after_seq: 1,
            ..Default::default()
        })
        .await;
    let md = assert_error(&err, Code::OutOfRange, "CURSOR_EXPIRED");
    let oldest: u64 = md
        .get("oldestSeq")
        .unwrap_or_else(|| panic!("metadata oldestSeq missing: {md:?}"))
        .parse()
        .expect("oldestSeq is a number");
    assert!(oldest > 2, "oldestSeq {oldest} is past the cursor");

    // Resuming from just before the oldest retained event works.
    let mut feed = gw.watch_after(oldest - 1, None).await;
    assert_eq!(feed.next_event().await.seq, oldest);
    // And afterSeq 0 replays from the oldest retained event.
    let mut feed = gw.watch_after(0, None).await;
    assert!(feed.next_event().await.seq >= oldest);
}

#[tokio::test]
async fn idle_watch_gets_progress_with_head_seq() {
    let gw = Gateway::start_with("{ events: { progressIntervalMs: 200 } }").await;
    let id = gw.send("prog", "hi").await.run_id;
    gw.wait_run(&id).await;

    // A follow-only stream with nothing happening.
    let mut feed = gw
        .watch(EventServiceWatchRequest {
            follow_only: true,
            ..Default::default()
        })
        .await;
    expect_progress_at_head(&gw, &mut feed).await;

    // A replaying stream whose filter matches nothing still advances to the head.
    let mut feed = gw
        .watch_after(0, session_filter("agent:main:nobody", &[]))
        .await;
    expect_progress_at_head(&gw, &mut feed).await;
}

async fn expect_progress_at_head(gw: &Gateway, feed: &mut Feed) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        match feed.frame(PATIENCE).await {
            Frame::Progress(p) => {
                let head = gw.status().await.last_event_seq;
                assert!(head > 0);
                assert!(p.seq <= head, "progress seq {} beyond head {head}", p.seq);
                if p.seq == head {
                    return;
                }
                last = Some((p.seq, head));
            }
            Frame::Event(e) => {
                assert_ne!(
                    e.session_key, "agent:main:nobody",
                    "filter should match nothing"
                );
            }
        }
    }
    panic!("no progress frame carrying the head seq; last (progress, head) = {last:?}");
}

#[tokio::test]
async fn lagging_subscriber_is_ended_with_its_cursor_and_resumes_without_gap() {
    use clawplane_proto::v1::{GatewayServiceWakeRequest, WakeMode};
    let gw = Gateway::start_with("{ events: { liveBuffer: 8 } }").await;
    let start = gw.status().await.last_event_seq;
    // A follow-only watcher that reads nothing while thousands of events are committed:
    // its HTTP/2 window fills, it stops polling the live channel and falls behind.
    let mut slow = gw
        .watch(EventServiceWatchRequest {
            follow_only: true,
            ..Default::default()
        })
        .await;
    let wake = gw.gateway().await;
    for chunk in 0..60 {
        let calls = (0..50).map(|i| {
            let mut wake = wake.clone();
            async move {
                wake.wake(GatewayServiceWakeRequest {
                    text: format!("lag {chunk}-{i}"),
                    mode: WakeMode::NextHeartbeat as i32,
                    ..Default::default()
                })
                .await
                .expect("Wake")
            }
        });
        futures::future::join_all(calls).await;
    }
    let head = gw.status().await.last_event_seq;
    assert!(head >= start + 3000, "3000 wakes committed");

    let mut seen: Vec<Event> = Vec::new();
    let status = loop {
        match slow.try_frame(PATIENCE).await {
            Ok(Some(Frame::Event(e))) => seen.push(e),
            Ok(Some(Frame::Progress(_))) => {}
            Ok(None) => panic!("stream ended without an error after {} events", seen.len()),
            Err(s) => break s,
        }
    };
    let md = assert_error(&status, Code::Aborted, "SUBSCRIBER_LAGGED");
    let last: u64 = md["lastSeq"].parse().expect("lastSeq is a number");
    assert_eq!(
        last,
        seen.last().map_or(start, |e| e.seq),
        "lastSeq is the last event delivered"
    );
    assert!(last < head, "the subscriber really fell behind");

    // Resume from lastSeq: the log fills the gap, nothing is skipped or repeated.
    let mut feed = gw.watch_after(last, None).await;
    seen.extend(feed.collect_until(|e| e.seq >= head).await);
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.first(), Some(&(start + 1)));
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "no gap and no duplicate across the resume");
    }
}
