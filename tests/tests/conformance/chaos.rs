//! Chaos: three replicas under sustained load (sends on every replica, watchers, egress,
//! the JetStream relay) while one replica is SIGKILLed, then nats-server restarts, then
//! PostgreSQL restarts. Every acknowledged run reaches its final state exactly once, a
//! watcher that moves to another replica sees no gap and no duplicate, the stream is the
//! log, and egress delivers every completion at least once under one stable `webhook-id`.
//! Runs in the PostgreSQL pass of the suite (it brings its own servers either way).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clawplane_proto::v1::event_service_watch_response::Frame;
use clawplane_proto::v1::{ChatServiceSendRequest, Event, RunState};
use clawplane_testkit::{NatsServer, PgServer};

use crate::fakes::receiver::Receiver;
use crate::harness::*;
use crate::nats::caught_up;
use crate::replicas::delivered;

/// A run's event is its final one: terminal, and not a first attempt's INTERRUPTED (that
/// one is retried).
fn is_final(e: &Event) -> Option<(&str, RunState)> {
    let r = run_of(e)?;
    let interrupted_first = r.state() == RunState::Interrupted && r.attempt < 2;
    (is_terminal(r.state()) && !interrupted_first).then_some((r.run_id.as_str(), r.state()))
}

/// Sends `n` messages on `gw` over four sessions `<prefix>-0..3`, each with an idempotency
/// key of its own (`<tag>-<i>`); a send refused (PostgreSQL down) is retried under the same
/// key until it is accepted.
async fn load(gw: &Gateway, prefix: &str, tag: &str, n: usize, message: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let key = format!("{tag}-{i}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut chat = gw.chat().await;
        loop {
            let sent = chat
                .send(ChatServiceSendRequest {
                    session_key: format!("{prefix}-{}", i % 4),
                    message: message.into(),
                    idempotency_key: key.clone(),
                    ..Default::default()
                })
                .await;
            match sent {
                Ok(r) => {
                    ids.push(r.into_inner().run_id);
                    break;
                }
                Err(s) => {
                    assert!(Instant::now() < deadline, "{key} never accepted: {s:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    chat = gw.chat().await;
                }
            }
        }
    }
    ids
}

/// Reads a watch until it ends (its replica died) or has reached `upto`.
async fn drain(feed: &mut Feed, upto: u64) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    while out.last().is_none_or(|e| e.seq < upto) {
        match feed.try_frame(PATIENCE).await {
            Ok(Some(Frame::Event(e))) => out.push(e),
            Ok(Some(Frame::Progress(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[tokio::test]
async fn replicas_survive_a_kill_a_nats_restart_and_a_postgres_restart_under_load() {
    if std::env::var("CLAWPLANE_TEST_STORE").as_deref() != Ok("postgres") {
        eprintln!("chaos: runs in the PostgreSQL pass (CLAWPLANE_TEST_STORE=postgres)");
        return;
    }
    let pg = PgServer::start();
    let nats = NatsServer::start();
    let rx = Receiver::start().await;
    let config = format!(
        "{{ storage: {{ postgres: {{ url: '{}', leaseMs: 3000 }} }}, events: {{ nats: {{ url: '{}' }} }}, gateway: {{ auth: {{ token: 'chaos-token' }} }}, webhooks: {{ outgoing: [{{ id: 'ops', event: 'run.completed', url: '{}' }}], egress: {{ allowPrivateTargets: true }} }} }}",
        pg.database(),
        nats.url(),
        rx.url("/hook"),
    );
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(Gateway::start_with(&config).await);
    }
    let mut watch_on_doomed = gws[1].watch_after(0, None).await;
    let mut acked = Vec::new();

    // Load on every replica; long runs on the replica about to die.
    let (a, b, c) = tokio::join!(
        load(&gws[0], "w0", "a", 12, "hello"),
        load(&gws[1], "w1", "b", 8, "/sleep 1500 slow"),
        load(&gws[2], "w2", "c", 12, "hello"),
    );
    acked.extend(a.into_iter().chain(b).chain(c));
    let running = Instant::now() + PATIENCE;
    while !gws[1]
        .list_runs("w1-0")
        .await
        .iter()
        .any(|r| r.state() == RunState::Running)
    {
        assert!(
            Instant::now() < running,
            "no run of the doomed replica started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gws[1].kill9().await;
    let seen = drain(&mut watch_on_doomed, u64::MAX).await;

    // The survivors keep accepting, also for the dead replica's sessions.
    let (a, b) = tokio::join!(
        load(&gws[0], "w1", "d", 4, "after the kill"),
        load(&gws[2], "k2", "e", 8, "after the kill"),
    );
    acked.extend(a.into_iter().chain(b));

    nats.restart();
    let (a, b) = tokio::join!(
        load(&gws[0], "n0", "f", 8, "after nats"),
        load(&gws[2], "n2", "g", 8, "after nats"),
    );
    acked.extend(a.into_iter().chain(b));

    pg.restart();
    let (a, b) = tokio::join!(
        load(&gws[0], "p0", "h", 8, "after postgres"),
        load(&gws[2], "p2", "i", 8, "after postgres"),
    );
    acked.extend(a.into_iter().chain(b));

    // Every acknowledged run ends, once, as SUCCEEDED (the killed replica's running runs
    // were interrupted and retried by a survivor).
    for id in &acked {
        let run = gws[2].wait_run(id).await;
        assert_eq!(run.state(), RunState::Succeeded, "{run:?}");
    }
    let head = gws[0].status().await.last_event_seq;
    let log = gws[0].events_until(head).await;
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>(),
        "the log has no gap and no duplicate"
    );
    let mut finals: HashMap<&str, usize> = HashMap::new();
    for (id, _) in log.iter().filter_map(is_final) {
        *finals.entry(id).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(finals.get(id.as_str()), Some(&1), "{id}: one final event");
    }

    // The watcher of the dead replica resumes on a survivor after its last seq: together,
    // exactly the log.
    let last = seen.last().map_or(0, |e| e.seq);
    let mut resumed = gws[2].watch_after(last, None).await;
    let rest = drain(&mut resumed, head).await;
    let joined: Vec<Event> = seen.into_iter().chain(rest).collect();
    assert_eq!(
        joined, log,
        "the moved watcher saw the log without gap or duplicate"
    );

    // The stream is the log.
    let stream = caught_up(&gws[0], &nats.url()).await;
    assert_eq!(stream, log, "JetStream holds exactly the log");

    // Egress: every completion at least once, always under the same webhook-id.
    for (run, ids) in delivered(&rx, &acked).await {
        assert_eq!(
            ids.len(),
            1,
            "{run} was delivered under several ids: {ids:?}"
        );
    }
}
