//! State survives a graceful restart and a crash; in-flight runs drain on SIGTERM.

use clawplane_proto::v1::{
    EventKind, MessageRole, RunState, SessionServiceGetRequest, SessionServiceListRequest,
};

use crate::harness::*;

#[tokio::test]
async fn restart_keeps_sessions_runs_transcripts_and_events() {
    let mut gw = Gateway::start().await;
    let r1 = gw.send("keep", "first").await.run_id;
    gw.wait_run(&r1).await;
    let r2 = gw.send("keep", "second").await.run_id;
    gw.wait_run(&r2).await;

    let hist = gw.history("keep").await;
    let run1 = gw.get_run(&r1).await;
    let run2 = gw.get_run(&r2).await;
    let session = gw
        .sessions()
        .await
        .get(SessionServiceGetRequest {
            session_key: "keep".into(),
            ..Default::default()
        })
        .await
        .expect("SessionService/Get")
        .into_inner()
        .session
        .expect("session");
    let head = gw.status().await.last_event_seq;
    let events = gw.events_until(head).await;
    assert!(!events.is_empty());

    gw.restart().await;

    assert_eq!(
        gw.history("keep").await.messages,
        hist.messages,
        "transcript"
    );
    assert_eq!(gw.get_run(&r1).await, run1, "run 1");
    assert_eq!(gw.get_run(&r2).await, run2, "run 2");
    let listed = gw
        .sessions()
        .await
        .list(SessionServiceListRequest::default())
        .await
        .expect("SessionService/List")
        .into_inner()
        .sessions;
    let after = listed
        .iter()
        .find(|s| s.session_key == key("keep"))
        .unwrap_or_else(|| panic!("session keep listed after restart: {listed:?}"));
    assert_eq!(after.session_id, session.session_id);
    assert_eq!(after.turn_count, 2);
    assert_eq!(after.message_count, 4);
    let st = gw.status().await;
    assert!(st.last_event_seq >= head, "event head did not go back");
    assert_eq!(
        gw.events_until(head).await,
        events,
        "event log replays identically"
    );

    let r3 = gw.send("keep", "third").await.run_id;
    assert_eq!(
        gw.wait_run(&r3).await.reply_text,
        "You said: third (turn 3)",
        "the conversation continues after restart"
    );
    // New events continue the same sequence.
    let mut feed = gw.watch_after(head, None).await;
    assert_eq!(feed.next_event().await.seq, head + 1);
}

#[tokio::test]
async fn kill9_interrupts_then_retries_running_run_and_resumes_queue() {
    let mut gw = Gateway::start().await;
    let a = gw.send("crash", "/sleep 4000 first").await.run_id;
    let b = gw.send("crash", "second").await.run_id;
    let mut feed = gw.watch_after(0, run_filter(&a, &[EventKind::Run])).await;
    feed.collect_until(|e| is_run_event(e, &a, RunState::Running))
        .await;
    drop(feed);

    gw.kill9().await;
    gw.start_again().await;

    let ra = gw.wait_run(&a).await;
    assert_eq!(ra.state(), RunState::Succeeded, "{ra:?}");
    assert_eq!(ra.attempt, 2, "retried once as attempt 2: {ra:?}");
    assert_eq!(ra.reply_text, "You said: /sleep 4000 first (turn 1)");
    let rb = gw.wait_run(&b).await;
    assert_eq!(rb.state(), RunState::Succeeded, "{rb:?}");
    assert_eq!(rb.attempt, 1);
    assert_eq!(rb.reply_text, "You said: second (turn 2)");
    assert!(
        ts(&rb.start_time, "b start") >= ts(&ra.end_time, "a end"),
        "the queued run still waits for the retried one"
    );

    let mut feed = gw.watch_after(0, run_filter(&a, &[EventKind::Run])).await;
    let events = feed
        .collect_until(|e| is_run_event(e, &a, RunState::Succeeded))
        .await;
    let mut states = run_states(&events, &a);
    // A re-queue before the retry is allowed; compare without repeated QUEUED.
    let mut first_queued = true;
    states.retain(|s| {
        if *s == RunState::Queued {
            std::mem::replace(&mut first_queued, false)
        } else {
            true
        }
    });
    assert_eq!(
        states,
        vec![
            RunState::Queued,
            RunState::Running,
            RunState::Interrupted,
            RunState::Running,
            RunState::Succeeded
        ],
        "RUN events of the crashed run"
    );
    let interrupted = events
        .iter()
        .filter_map(run_of)
        .find(|r| r.state() == RunState::Interrupted)
        .unwrap();
    assert!(interrupted.error.is_some(), "{interrupted:?}");

    let hist = gw.history("crash").await;
    let got: Vec<(MessageRole, &str)> = hist
        .messages
        .iter()
        .map(|m| (m.role(), m.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (MessageRole::User, "/sleep 4000 first"),
            (
                MessageRole::Assistant,
                "You said: /sleep 4000 first (turn 1)"
            ),
            (MessageRole::User, "second"),
            (MessageRole::Assistant, "You said: second (turn 2)"),
        ],
        "the retry does not duplicate transcript entries"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_run_then_exits_zero() {
    let mut gw = Gateway::start().await;
    let a = gw.send("drain", "/sleep 1500 d").await.run_id;
    let mut feed = gw.watch_after(0, run_filter(&a, &[EventKind::Run])).await;
    feed.collect_until(|e| is_run_event(e, &a, RunState::Running))
        .await;
    // Keep the Watch stream open across shutdown: it must not block the exit.
    gw.sigterm();
    let status = gw.wait_exit().await;
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    drop(feed);

    gw.start_again().await;
    let run = gw.get_run(&a).await;
    assert_eq!(
        run.state(),
        RunState::Succeeded,
        "the in-flight run drained: {run:?}"
    );
    assert_eq!(run.attempt, 1, "no retry needed: {run:?}");
    assert_eq!(run.reply_text, "You said: /sleep 1500 d (turn 1)");
}

/// A reply is produced and sent at most once: the gateway is SIGKILLed after the channel
/// received the reply but before it answered. After the restart the run is settled from its
/// stored reply — SUCCEEDED, delivery UNKNOWN, attempt 1 — without running the model or
/// sending again.
#[tokio::test]
async fn kill9_while_sending_a_reply_settles_delivery_unknown_and_sends_once() {
    use crate::fakes::discord::FakeDiscord;
    use clawplane_proto::v1::{AgentServiceRunRequest, DeliveryStatus};

    let discord = FakeDiscord::start("bot").await;
    discord.server.rec.hold_next("/messages");
    let mut gw = Gateway::start_with(&format!(
        "{{ channels: {{ discord: {{ token: 'bot', baseUrl: '{}' }} }} }}",
        discord.base_url
    ))
    .await;
    let run = gw
        .agent_as(gw.auth())
        .await
        .run(AgentServiceRunRequest {
            message: "deliver me once".into(),
            session_key: "once".into(),
            deliver: true,
            channel: "discord".into(),
            to: "channel:42".into(),
            ..Default::default()
        })
        .await
        .expect("AgentService/Run")
        .into_inner();
    // The fake has the message and holds its answer: kill the gateway now.
    discord
        .server
        .rec
        .wait_until(PATIENCE, "the reply at Discord", |r| {
            r.iter().any(|r| r.path.ends_with("/messages"))
        })
        .await;
    gw.kill9().await;
    gw.start_again().await;

    let r = gw.wait_run(&run.run_id).await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.attempt, 1, "not retried: {r:?}");
    assert_eq!(r.reply_text, "You said: deliver me once (turn 1)");
    let d = r.delivery.clone().expect("delivery");
    assert_eq!(d.status(), DeliveryStatus::Unknown, "{d:?}");
    assert_eq!(d.reason, "DELIVERY_UNKNOWN");
    let h = gw.history("once").await;
    let replies = h
        .messages
        .iter()
        .filter(|m| m.role() == MessageRole::Assistant)
        .count();
    assert_eq!(replies, 1, "one reply in the transcript: {:?}", h.messages);
    // A later run of the session goes out normally and is the only other send: the held
    // reply was not sent again.
    let next = gw.send("once", "and again").await;
    let n = gw.wait_run(&next.run_id).await;
    assert_eq!(n.reply_text, "You said: and again (turn 2)", "{n:?}");
    assert_eq!(
        discord.messages().len(),
        1,
        "only the held message reached Discord (the next run does not deliver)"
    );
}
