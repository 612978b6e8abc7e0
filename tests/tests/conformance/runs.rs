//! Run scheduling and lifecycle: per-session ordering, cross-session parallelism, cancel,
//! abort, timeout, model failure.

use std::collections::{HashMap, HashSet};

use clawplane_proto::v1::{
    AgentServiceRunRequest, CancelRunRequest, ChatServiceAbortRequest, ChatServiceSendRequest,
    EventKind, Run, RunState,
};
use futures::future::join_all;

use crate::harness::*;

#[tokio::test]
async fn one_session_runs_one_at_a_time_in_acceptance_order() {
    let gw = Gateway::start().await;
    let head = gw.status().await.last_event_seq;
    let chat = gw.chat().await;
    let accepted = join_all((0..12).map(|i| {
        let mut chat = chat.clone();
        async move {
            chat.send(ChatServiceSendRequest {
                session_key: "order".into(),
                message: format!("/sleep 20 m{i}"),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("concurrent Send m{i}: {s:?}"))
            .into_inner()
        }
    }))
    .await;
    let ids: HashSet<String> = accepted.iter().map(|a| a.run_id.clone()).collect();
    assert_eq!(ids.len(), 12, "12 distinct runs");

    let mut runs: HashMap<String, Run> = HashMap::new();
    for id in &ids {
        let run = gw.wait_run(id).await;
        assert_eq!(run.state(), RunState::Succeeded, "{run:?}");
        runs.insert(id.clone(), run);
    }

    // Acceptance order = the order of the runs' QUEUED events in the log.
    let mut feed = gw
        .watch_after(head, session_filter(&key("order"), &[EventKind::Run]))
        .await;
    let mut done = 0;
    let events = feed
        .collect_until(|e| {
            if run_of(e).is_some_and(|r| is_terminal(r.state())) {
                done += 1;
            }
            done == 12
        })
        .await;
    let order_of = |state: RunState| -> Vec<String> {
        events
            .iter()
            .filter_map(run_of)
            .filter(|r| r.state() == state)
            .map(|r| r.run_id.clone())
            .collect()
    };
    let queued = order_of(RunState::Queued);
    let running = order_of(RunState::Running);
    assert_eq!(queued.len(), 12, "one QUEUED event per run: {queued:?}");
    assert_eq!(running, queued, "runs start in acceptance order");
    assert_eq!(order_of(RunState::Succeeded), queued, "and finish in it");

    let ordered: Vec<&Run> = queued.iter().map(|id| &runs[id]).collect();
    for (i, run) in ordered.iter().enumerate() {
        assert_eq!(
            run.reply_text,
            format!("You said: {} (turn {})", run.message, i + 1),
            "turn numbers follow acceptance order"
        );
    }
    for pair in ordered.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        assert!(
            ts(&prev.create_time, "create_time") <= ts(&next.create_time, "create_time"),
            "create_time follows acceptance order: {prev:?} then {next:?}"
        );
        assert!(
            ts(&next.start_time, "start_time") >= ts(&prev.end_time, "end_time"),
            "runs of one session must not overlap: {prev:?} then {next:?}"
        );
    }
}

#[tokio::test]
async fn different_sessions_run_in_parallel() {
    let gw = Gateway::start().await;
    let head = gw.status().await.last_event_seq;
    let a = gw.send("par-a", "/sleep 1500 a").await.run_id;
    let b = gw.send("par-b", "/sleep 1500 b").await.run_id;

    let mut feed = gw.watch_after(head, None).await;
    let mut running: HashSet<String> = HashSet::new();
    let mut terminal: HashSet<String> = HashSet::new();
    let mut max_running = 0;
    feed.collect_until(|e| {
        if let Some(r) = run_of(e) {
            if r.state() == RunState::Running {
                running.insert(r.run_id.clone());
            } else if is_terminal(r.state()) {
                running.remove(&r.run_id);
                terminal.insert(r.run_id.clone());
            }
            max_running = max_running.max(running.len());
        }
        terminal.contains(&a) && terminal.contains(&b)
    })
    .await;
    assert_eq!(
        max_running, 2,
        "both sessions' runs were RUNNING at the same time"
    );

    let (ra, rb) = (gw.get_run(&a).await, gw.get_run(&b).await);
    assert_eq!(ra.state(), RunState::Succeeded);
    assert_eq!(rb.state(), RunState::Succeeded);
    assert!(
        ts(&ra.start_time, "start") < ts(&rb.end_time, "end")
            && ts(&rb.start_time, "start") < ts(&ra.end_time, "end"),
        "run intervals overlap: {ra:?} {rb:?}"
    );
}

/// Waits until `run_id` has a RUNNING event in the feed.
async fn until_running(gw: &Gateway, run_id: &str) {
    let mut feed = gw
        .watch_after(0, run_filter(run_id, &[EventKind::Run]))
        .await;
    feed.collect_until(|e| is_run_event(e, run_id, RunState::Running))
        .await;
}

#[tokio::test]
async fn cancel_queued_and_running_runs() {
    let gw = Gateway::start().await;
    let a = gw.send("cancel", "/sleep 20000 a").await.run_id;
    let b = gw.send("cancel", "/sleep 20000 b").await.run_id;
    until_running(&gw, &a).await;
    assert_eq!(
        gw.get_run(&b).await.state(),
        RunState::Queued,
        "b waits behind a"
    );

    let mut agent = gw.agent().await;
    agent
        .cancel_run(CancelRunRequest { run_id: b.clone() })
        .await
        .expect("CancelRun queued");
    let rb = gw.wait_run(&b).await;
    assert_eq!(rb.state(), RunState::Cancelled, "{rb:?}");
    assert!(
        rb.error.is_some(),
        "a cancelled run carries an error: {rb:?}"
    );
    assert!(
        rb.start_time.is_none(),
        "a run cancelled while queued never started"
    );

    agent
        .cancel_run(CancelRunRequest {
            run_id: format!("runs/{a}"),
        })
        .await
        .expect("CancelRun running (by resource name)");
    let ra = gw.wait_run(&a).await;
    assert_eq!(ra.state(), RunState::Cancelled, "{ra:?}");
    assert!(ra.error.is_some(), "{ra:?}");
    assert!(ra.end_time.is_some());

    // Cancelling a terminal run returns it unchanged.
    let again = agent
        .cancel_run(CancelRunRequest { run_id: a.clone() })
        .await
        .expect("CancelRun terminal")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(again, ra, "cancelling a terminal run changes nothing");

    // The session is not stuck.
    let c = gw.send("cancel", "c").await.run_id;
    let rc = gw.wait_run(&c).await;
    assert_eq!(rc.state(), RunState::Succeeded);
    assert!(rc.reply_text.starts_with("You said: c (turn "), "{rc:?}");
}

#[tokio::test]
async fn chat_abort_cancels_a_session_or_one_run() {
    let gw = Gateway::start().await;
    let mut chat = gw.chat().await;

    let e = gw.send("abort", "/sleep 20000 e").await.run_id;
    let f = gw.send("abort", "/sleep 20000 f").await.run_id;
    until_running(&gw, &e).await;
    let only_f = chat
        .abort(ChatServiceAbortRequest {
            session_key: "abort".into(),
            run_id: f.clone(),
            ..Default::default()
        })
        .await
        .expect("Abort one run")
        .into_inner();
    assert!(only_f.aborted);
    assert_eq!(only_f.run_ids, vec![f.clone()]);
    assert_eq!(gw.wait_run(&f).await.state(), RunState::Cancelled);
    assert_eq!(
        gw.get_run(&e).await.state(),
        RunState::Running,
        "e untouched"
    );

    let g = gw.send("abort", "/sleep 20000 g").await.run_id;
    let all = chat
        .abort(ChatServiceAbortRequest {
            session_key: "abort".into(),
            ..Default::default()
        })
        .await
        .expect("Abort session")
        .into_inner();
    assert!(all.aborted);
    let got: HashSet<String> = all.run_ids.into_iter().collect();
    assert_eq!(got, HashSet::from([e.clone(), g.clone()]));
    for id in [&e, &g] {
        let r = gw.wait_run(id).await;
        assert_eq!(r.state(), RunState::Cancelled, "{r:?}");
    }

    let nothing = chat
        .abort(ChatServiceAbortRequest {
            session_key: "abort".into(),
            ..Default::default()
        })
        .await
        .expect("Abort idle session")
        .into_inner();
    assert!(!nothing.aborted);
    assert!(nothing.run_ids.is_empty());
}

#[tokio::test]
async fn run_timeout_and_model_failure() {
    let gw = Gateway::start().await;
    let t = gw
        .send_req(ChatServiceSendRequest {
            session_key: "limits".into(),
            message: "/sleep 5000 slow".into(),
            timeout_seconds: 1,
            ..Default::default()
        })
        .await
        .run_id;
    let rt = gw.wait_run(&t).await;
    assert_eq!(rt.state(), RunState::TimedOut, "{rt:?}");
    assert_eq!(rt.timeout_seconds, 1);
    assert!(rt.error.is_some(), "{rt:?}");

    let f = gw.send("limits", "please /fail now").await.run_id;
    let rf = gw.wait_run(&f).await;
    assert_eq!(rf.state(), RunState::Failed, "{rf:?}");
    assert_eq!(
        rf.error.as_ref().map(|e| e.reason.as_str()),
        Some("MODEL_FAILED"),
        "{rf:?}"
    );

    // AgentService/Run with its own timeout, on the agent's main session.
    let resp = gw
        .agent()
        .await
        .run(AgentServiceRunRequest {
            message: "/sleep 5000 agent".into(),
            timeout_seconds: 1,
            ..Default::default()
        })
        .await
        .expect("AgentService/Run")
        .into_inner();
    assert_eq!(resp.session_key, "agent:main:main");
    assert_eq!(resp.agent_id, "main");
    let ra = gw.wait_run(&resp.run_id).await;
    assert_eq!(ra.state(), RunState::TimedOut, "{ra:?}");
}
