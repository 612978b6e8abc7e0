//! Replicas: several gateways on one PostgreSQL database answer as one. Calls go to any of
//! them; a session's runs execute one at a time in acceptance order wherever they were
//! accepted; every replica's feed is the one log in seq order; a replica that dies has its
//! sessions taken over once its lease runs out (its running run is interrupted and retried
//! once, as after a crash); one that stops gracefully hands them over at once.

use std::time::{Duration, Instant};

use clawplane_proto::v1::{EventKind, RunOrigin, RunState};
use clawplane_testkit::PgServer;

use crate::fakes::receiver::Receiver;
use crate::harness::*;

/// `n` replicas of one gateway: one database, one token, a short lease.
async fn replicas(n: usize, lease_ms: u64) -> Vec<Gateway> {
    replicas_with(n, lease_ms, "").await
}

/// The config of replicas of one gateway, with `extra` top-level keys (JSON5 text).
fn replica_config(lease_ms: u64, extra: &str) -> String {
    let url = PgServer::shared().database();
    let token = format!("replicas-{}", uuid::Uuid::new_v4().simple());
    format!(
        "{{ storage: {{ postgres: {{ url: '{url}', leaseMs: {lease_ms} }} }}, gateway: {{ auth: {{ token: '{token}' }} }}, {extra} }}"
    )
}

async fn replicas_with(n: usize, lease_ms: u64, extra: &str) -> Vec<Gateway> {
    let config = replica_config(lease_ms, extra);
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Gateway::start_with(&config).await);
    }
    out
}

#[tokio::test]
async fn replicas_answer_as_one_gateway() {
    let gws = replicas(3, 3000).await;
    // One session's runs accepted round robin: they run one at a time, in acceptance order.
    let mut sent = Vec::new();
    for i in 0..6 {
        let gw = &gws[i % 3];
        sent.push(gw.send("shared", &format!("m{i}")).await.run_id);
    }
    for (i, id) in sent.iter().enumerate() {
        // Waited for on another replica than the one that accepted it.
        let run = gws[(i + 1) % 3].wait_run(id).await;
        assert_eq!(run.state(), RunState::Succeeded, "{run:?}");
        assert_eq!(run.reply_text, format!("You said: m{i} (turn {})", i + 1));
        assert_eq!(run.attempt, 1);
    }
    // Any replica reads the same state.
    for gw in &gws {
        let runs = gw.list_runs("shared").await;
        assert_eq!(runs.len(), 6, "{runs:?}");
        assert_eq!(gw.get_run(&sent[0]).await, gws[0].get_run(&sent[0]).await);
    }
    let history = gws[2].history("shared").await;
    assert_eq!(history.messages.len(), 12, "six turns, in order");

    // Every replica's feed is the one log: seq 1..=head without gap or duplicate, the same
    // events everywhere.
    let head = gws[0].status().await.last_event_seq;
    let deadline = Instant::now() + PATIENCE;
    for gw in &gws {
        while gw.status().await.last_event_seq < head {
            assert!(
                Instant::now() < deadline,
                "a replica's feed stopped short of {head}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let logs = futures::future::join_all(gws.iter().map(|g| g.events_until(head))).await;
    let seqs: Vec<u64> = logs[0].iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
}

#[tokio::test]
async fn a_live_watch_on_one_replica_sees_runs_executed_on_another() {
    let gws = replicas(2, 3000).await;
    let head = gws[1].status().await.last_event_seq;
    let mut feed = gws[1].watch_after(head, None).await;
    let run = gws[0].send("watched", "hello").await.run_id;
    let events = feed
        .collect_until(|e| is_run_event(e, &run, RunState::Succeeded))
        .await;
    assert_eq!(
        run_states(&events, &run),
        [RunState::Queued, RunState::Running, RunState::Succeeded]
    );
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gap in the live feed");
    }
    assert!(events.iter().any(|e| e.kind() == EventKind::Delta));
}

#[tokio::test]
async fn a_killed_replicas_sessions_are_taken_over_after_its_lease() {
    let mut gws = replicas(2, 2000).await;
    // Accepted on A: A owns the session and runs it; a second run waits behind it.
    let first = gws[0].send("takeover", "/sleep 3000 first").await.run_id;
    let deadline = Instant::now() + PATIENCE;
    while gws[1].get_run(&first).await.state() != RunState::Running {
        assert!(Instant::now() < deadline, "the first run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = gws[1].send("takeover", "second").await.run_id;
    assert_eq!(gws[1].get_run(&second).await.state(), RunState::Queued);
    let head = gws[1].status().await.last_event_seq;
    let mut feed = gws[1].watch_after(head, None).await;

    gws[0].kill9().await;
    let events = feed
        .collect_until(|e| is_run_event(e, &second, RunState::Succeeded))
        .await;
    assert_eq!(
        run_states(&events, &first),
        [
            RunState::Interrupted,
            RunState::Queued,
            RunState::Running,
            RunState::Succeeded
        ],
        "interrupted once, retried on the survivor"
    );
    let first = gws[1].get_run(&first).await;
    assert_eq!(
        (first.attempt, first.reply_text.as_str()),
        (2, "You said: /sleep 3000 first (turn 1)")
    );
    let second = gws[1].get_run(&second).await;
    assert_eq!(
        second.reply_text, "You said: second (turn 2)",
        "after the first, in order"
    );
    assert!(
        gws[1]
            .stderr()
            .contains("took over sessions another replica left"),
        "{}",
        gws[1].stderr()
    );
}

#[tokio::test]
async fn a_replica_that_stops_hands_its_queued_runs_over_at_once() {
    let mut gws = replicas(2, 60_000).await;
    let first = gws[0].send("handover", "/sleep 1500 first").await.run_id;
    let second = gws[0].send("handover", "second").await.run_id;
    // A graceful stop waits for the running run; the queued one is left to the other
    // replica, well before the (long) lease would expire.
    gws[0].sigterm();
    gws[0].wait_exit().await;
    let run = gws[1].wait_run(&second).await;
    assert_eq!(run.state(), RunState::Succeeded);
    assert_eq!(run.reply_text, "You said: second (turn 2)");
    assert_eq!(
        gws[1].get_run(&first).await.attempt,
        1,
        "the running run finished there"
    );
}

#[tokio::test]
async fn a_run_running_on_one_replica_is_cancelled_from_another() {
    use clawplane_proto::v1::CancelRunRequest;
    let gws = replicas(2, 3000).await;
    let run = gws[0].send("cancel-far", "/sleep 20000 long").await.run_id;
    let deadline = Instant::now() + PATIENCE;
    while gws[1].get_run(&run).await.state() != RunState::Running {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled = gws[1]
        .agent()
        .await
        .cancel_run(CancelRunRequest {
            run_id: run.clone(),
        })
        .await
        .expect("CancelRun on the other replica")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(cancelled.state(), RunState::Cancelled, "{cancelled:?}");
    assert_eq!(gws[0].get_run(&run).await.state(), RunState::Cancelled);
}

/// The webhook-ids `rx` answered for each run of `runs` (data.runId), once all arrived.
pub(crate) async fn delivered(rx: &Receiver, runs: &[String]) -> Vec<(String, Vec<String>)> {
    let got = rx
        .wait_until(PATIENCE, "a delivery of every run", |got| {
            runs.iter().all(|id| {
                got.iter()
                    .any(|r| r.answered != 0 && r.body["data"]["runId"].as_str() == Some(id))
            })
        })
        .await;
    runs.iter()
        .map(|id| {
            let mut ids: Vec<String> = got
                .iter()
                .filter(|r| r.answered != 0 && r.body["data"]["runId"].as_str() == Some(id))
                .map(|r| r.header_str("webhook-id").to_string())
                .collect();
            ids.sort();
            ids.dedup();
            (id.clone(), ids)
        })
        .collect()
}

#[tokio::test]
async fn one_replica_delivers_a_webhook_endpoint_and_another_takes_over() {
    let rx = Receiver::start().await;
    let config = replica_config(
        3000,
        &format!(
            "webhooks: {{ outgoing: [{{ id: 'ops', event: 'run.completed', url: '{}' }}], egress: {{ allowPrivateTargets: true }} }}",
            rx.url("/hook")
        ),
    );
    // The first replica takes the endpoint (it delivers the first run) before the others start.
    let mut gws = vec![Gateway::start_with(&config).await];
    let first = gws[0].send("egress-0", "first").await.run_id;
    delivered(&rx, std::slice::from_ref(&first)).await;
    gws.push(Gateway::start_with(&config).await);
    gws.push(Gateway::start_with(&config).await);

    // Runs accepted and executed on every replica: each completion is delivered once (one
    // message, one webhook-id, one request), by the endpoint's one deliverer.
    let mut runs = Vec::new();
    for i in 0..6 {
        runs.push(
            gws[i % 3]
                .send(&format!("egress-{i}"), "hello")
                .await
                .run_id,
        );
    }
    for (run, ids) in delivered(&rx, &runs).await {
        assert_eq!(ids.len(), 1, "{run}: {ids:?}");
    }
    let requests = rx.requests().len();
    assert_eq!(requests, 7, "one request per completed run");

    // The deliverer dies: after its lease another replica delivers, including what was
    // accepted meanwhile.
    gws[0].kill9().await;
    let mut later = Vec::new();
    for i in 0..4 {
        later.push(
            gws[1 + i % 2]
                .send(&format!("egress-late-{i}"), "hi")
                .await
                .run_id,
        );
    }
    for (run, ids) in delivered(&rx, &later).await {
        assert_eq!(ids.len(), 1, "{run}: {ids:?}");
    }
    let took_over = gws[1..].iter().any(|g| {
        g.stderr()
            .contains("delivering webhook endpoints another replica left")
    });
    assert!(took_over, "no replica took the endpoint over");
}

#[tokio::test]
async fn the_heartbeat_schedule_runs_on_one_replica() {
    let gws = replicas_with(
        3,
        3000,
        "agents: { defaults: { heartbeat: { every: '1s' } } }",
    )
    .await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let heartbeats = gws[0]
        .list_runs("agent:main:main")
        .await
        .into_iter()
        .filter(|r| r.origin() == RunOrigin::Heartbeat)
        .count() as u64;
    let window = started.elapsed().as_secs() + 1;
    assert!(heartbeats >= 1, "no scheduled heartbeat ran");
    // Three schedules would start about three a second.
    assert!(
        heartbeats <= window + 1,
        "{heartbeats} heartbeats in {window}s: more than one schedule runs"
    );
}

#[tokio::test]
async fn replicas_without_a_configured_token_share_the_first_ones() {
    let url = PgServer::shared().database();
    let config = format!("{{ storage: {{ postgres: {{ url: '{url}' }} }} }}");
    let a = Gateway::builder()
        .config(&config)
        .without_token()
        .start()
        .await;
    let b = Gateway::builder()
        .config(&config)
        .without_token()
        .start()
        .await;
    let read = |gw: &Gateway| std::fs::read_to_string(gw.data_dir.join("gateway.token")).unwrap();
    assert_eq!(
        read(&a),
        read(&b),
        "the second replica adopts the first one's token"
    );
    // Either token file opens either replica.
    let run = a.send("token", "hello").await.run_id;
    assert_eq!(b.wait_run(&run).await.state(), RunState::Succeeded);
}

/// A synchronous webhook call forwarded (by a trusted proxy on 127.0.0.1) for `client`.
async fn webhook_call(gw: &Gateway, id: &str, key: &str, client: &str) -> u16 {
    crate::edges::call_for(gw, id, key, client).await.status
}

#[tokio::test]
async fn failed_attempts_count_and_lock_out_across_replicas() {
    use clawplane_proto::v1::CreateWebhookKeyRequest;
    let url = PgServer::shared().database();
    let token = format!("replicas-{}", uuid::Uuid::new_v4().simple());
    let config = format!(
        "{{ storage: {{ postgres: {{ url: '{url}', leaseMs: 3000 }} }}, gateway: {{ trustedProxies: ['127.0.0.1'], auth: {{ token: '{token}', rateLimit: {{ maxAttempts: 3, lockoutMs: 600000 }} }} }} }}"
    );
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(Gateway::start_with(&config).await);
    }
    let id = gws[0].status().await.instance_id;
    let key = gws[0]
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
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    // One guess per replica: each is the address's first there, but the cluster counts three.
    for gw in &gws {
        assert_eq!(webhook_call(gw, &id, "wrong", "203.0.113.7").await, 401);
        settle().await;
    }
    assert_eq!(
        webhook_call(&gws[0], &id, "wrong", "203.0.113.7").await,
        429,
        "the fourth guess, wherever it lands, locks the address out"
    );
    settle().await;
    for gw in &gws {
        assert_eq!(
            webhook_call(gw, &id, &key, "203.0.113.7").await,
            429,
            "locked out on every replica"
        );
    }
    assert_eq!(
        webhook_call(&gws[2], &id, &key, "203.0.113.8").await,
        200,
        "another address is not"
    );
}

#[tokio::test]
async fn a_replica_frozen_past_its_lease_gives_its_run_up_when_it_wakes() {
    let gws = replicas(2, 2000).await;
    let run = gws[0].send("frozen", "/sleep 4000 slow").await.run_id;
    let deadline = Instant::now() + PATIENCE;
    while gws[1].get_run(&run).await.state() != RunState::Running {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut feed = gws[1]
        .watch_after(0, run_filter(&run, &[EventKind::Run]))
        .await;
    // Frozen (not dead: its sockets stay open) until the other replica took the run over.
    gws[0].signal(libc::SIGSTOP);
    while gws[1].get_run(&run).await.attempt < 2 {
        assert!(Instant::now() < deadline, "the run was never taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gws[0].signal(libc::SIGCONT);
    let events = feed
        .collect_until(|e| is_run_event(e, &run, RunState::Succeeded))
        .await;
    // The woken replica's first attempt is void: no second outcome, no cancel.
    let finished = gws[1].get_run(&run).await;
    assert_eq!(
        (finished.state(), finished.attempt),
        (RunState::Succeeded, 2),
        "{finished:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let states = run_states(
        &gws[1]
            .events_until(gws[1].status().await.last_event_seq)
            .await,
        &run,
    );
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == RunState::Succeeded || **s == RunState::Cancelled)
            .count(),
        1,
        "one outcome: {states:?} (seen live: {:?})",
        run_states(&events, &run)
    );
    // The woken replica knows it was declared dead, and serves on as a member.
    let deadline = Instant::now() + PATIENCE;
    while !gws[0].stderr().contains("missed its lease") {
        assert!(
            Instant::now() < deadline,
            "the woken replica never noticed: {}",
            gws[0].stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = gws[0].send("after-freeze", "hello").await.run_id;
    assert_eq!(gws[1].wait_run(&after).await.state(), RunState::Succeeded);
}
