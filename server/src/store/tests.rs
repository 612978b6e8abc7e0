//! The writer queue, the writer's failure, and retention.

use super::*;
use clawplane_proto::v1::{EventKind, RunState};
use clawplane_util::time::now_ms;
use futures::FutureExt as _;
use std::time::Duration;

/// A store of each backend: redb in a temp dir, PostgreSQL in a fresh database of the
/// test process's server.
fn temp_store(backend: &str) -> Store {
    let mut storage = crate::config::StorageConfig::default();
    if backend == "postgres" {
        storage.postgres.url = clawplane_testkit::PgServer::shared().database();
    }
    let dir = std::env::temp_dir().join(format!("clawplane-store-{}", uuid::Uuid::new_v4()));
    open(&storage, &dir, 0, 16).unwrap()
}

/// Every contract test runs on both backends: `<name>::redb` and `<name>::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn redb() {
                    super::$name(super::temp_store("redb")).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name(super::temp_store("postgres")).await
                }
            }
        )*
    };
}

/// Holds the writer inside a transaction until the returned sender is dropped or sent to.
async fn hold_writer(
    store: &Store,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<()>>,
) {
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let s = store.clone();
    let held = tokio::spawn(async move {
        s.write(move |_| {
            let _ = entered_tx.send(());
            let _ = gate_rx.recv();
            Ok(())
        })
        .await
    });
    tokio::task::spawn_blocking(move || entered_rx.recv())
        .await
        .unwrap()
        .unwrap();
    (gate_tx, held)
}

fn note(text: &str) -> Event {
    Event {
        kind: EventKind::Security as i32,
        session_key: text.to_string(),
        ..Default::default()
    }
}

async fn a_full_queue_makes_async_writers_wait_without_blocking_and_keeps_fifo(store: Store) {
    let (gate, held) = hold_writer(&store).await;
    // Fill the queue while the writer is busy: each enqueue completes at once.
    for i in 0..QUEUE {
        let ev = note(&i.to_string());
        // Unconstrained: tokio's cooperative budget would otherwise yield after 128 sends.
        let queued = tokio::task::unconstrained(
            store.write_detached(move |t: &mut dyn Txn| t.append_event(ev).map(|_| ())),
        )
        .now_or_never();
        assert!(
            queued.is_some(),
            "enqueue {i} of {QUEUE} waited with room left"
        );
    }
    // Full: the next one is pending (a blocking send would hang this runtime thread).
    let last = note("last");
    let mut pending = Box::pin(tokio::task::unconstrained(
        store.write_detached(move |t: &mut dyn Txn| t.append_event(last).map(|_| ())),
    ));
    assert!(
        (&mut pending).now_or_never().is_none(),
        "a full queue must make the caller wait"
    );
    gate.send(()).unwrap();
    held.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("the waiting write proceeds once the writer drains");
    let seq = store
        .write(|t| t.append_event(note("acked")))
        .await
        .unwrap();
    let events = store.read(|r| r.events_after(0, QUEUE + 10)).unwrap();
    let order: Vec<_> = events.iter().map(|e| e.session_key.clone()).collect();
    let expect: Vec<_> = (0..QUEUE)
        .map(|i| i.to_string())
        .chain(["last".to_string(), "acked".to_string()])
        .collect();
    assert_eq!(order, expect, "writes commit in the order they were queued");
    assert_eq!(seq, QUEUE as u64 + 2);
}

async fn a_panicking_write_fails_its_batch_and_every_later_write_and_is_reported(store: Store) {
    let (gate, held) = hold_writer(&store).await;
    // Queued behind the held transaction, so the three share the next batch.
    let s = store.clone();
    let before = tokio::spawn(async move { s.write(|t| t.put_setting("before", "1")).await });
    let s = store.clone();
    let panics = tokio::spawn(async move {
        s.write(|_| -> Result<()> { panic!("a bug in a transaction closure") })
            .await
    });
    let s = store.clone();
    let after = tokio::spawn(async move { s.write(|t| t.put_setting("after", "1")).await });
    while store.jobs.capacity() > QUEUE - 3 {
        tokio::task::yield_now().await;
    }
    gate.send(()).unwrap();
    held.await.unwrap().unwrap();
    let within = Duration::from_secs(30);
    let failure = tokio::time::timeout(within, store.failed())
        .await
        .expect("the failure is reported");
    assert!(
        failure.contains("a bug in a transaction closure"),
        "{failure}"
    );
    for (what, task) in [("before", before), ("panicking", panics), ("after", after)] {
        let err = tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("the {what} write hangs"))
            .unwrap()
            .expect_err(what);
        assert!(
            matches!(&err, Error::Storage(m) if m.contains("panick")),
            "{what}: {err}"
        );
    }
    // Nothing of the panicking batch was committed.
    assert_eq!(store.read(|r| r.setting("before")).unwrap(), None);
    let later = store
        .write(|t| t.put_setting("later", "1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&later, Error::Storage(m) if m.contains("a bug in a transaction closure")),
        "{later}"
    );
}

async fn a_panicking_commit_hook_stops_the_writer_after_the_commit(store: Store) {
    let err = store
        .write_then(|t| t.put_setting("k", "v"), |_| panic!("hook bug"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Storage(m) if m.contains("panick")),
        "{err}"
    );
    assert!(store.failed().await.contains("hook bug"));
    // The batch was durable before the hook ran.
    assert_eq!(
        store.read(|r| r.setting("k")).unwrap().as_deref(),
        Some("v")
    );
    assert!(store.write(|t| t.put_setting("k", "w")).await.is_err());
}

fn ts(ms: i64) -> Option<clawplane_proto::pbjson_types::Timestamp> {
    Some(clawplane_proto::pbjson_types::Timestamp {
        seconds: ms / 1000,
        nanos: 0,
    })
}

async fn put_run(store: &Store, id: &str, state: RunState, created: i64, ended: Option<i64>) {
    let run = Run {
        run_id: id.into(),
        session_key: "agent:main:main".into(),
        state: state as i32,
        idempotency_key: id.into(),
        create_time: ts(created),
        end_time: ended.and_then(ts),
        ..Default::default()
    };
    let id = id.to_string();
    store
        .write(move |t| {
            let order = t.next_run_order()?;
            t.put_run(&StoredRun { order, run })?;
            // A record key unlike the run id, as the core writes them (scope, origin, key).
            t.put_idempotency(
                &format!("scope\u{1f}{id}"),
                &IdemRecord {
                    fingerprint: [7; 32],
                    run_id: id.clone(),
                },
            )
        })
        .await
        .unwrap();
}

async fn pruning_deletes_only_old_finished_runs_with_their_keys_in_bounded_batches(store: Store) {
    let hour = 3_600_000;
    let old = now_ms() - 3 * hour;
    put_run(&store, "old-running", RunState::Running, old, None).await;
    for i in 0..5 {
        put_run(
            &store,
            &format!("old-{i}"),
            RunState::Succeeded,
            old,
            Some(old),
        )
        .await;
    }
    put_run(&store, "old-queued", RunState::Queued, old, None).await;
    put_run(&store, "long-run", RunState::Failed, old, Some(now_ms())).await;
    put_run(&store, "new", RunState::Cancelled, now_ms(), Some(now_ms())).await;

    // One bounded batch: two deletions, and where to resume.
    let cutoff = now_ms() - hour;
    let (n, resume) = store
        .write(move |t| t.prune_runs(cutoff, 0, 2))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(resume.is_some());

    let retention = Retention {
        runs: Some(Duration::from_millis(hour as u64)),
        records: Vec::new(),
        every: Duration::from_secs(60),
        batch: 1,
    };
    let pruned = store.prune(&retention).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            runs: 3,
            records: 0
        }
    );
    store
        .read(|r| {
            for i in 0..5 {
                let id = format!("old-{i}");
                assert!(r.run(&id)?.is_none(), "{id} pruned");
                let key = format!("scope\u{1f}{id}");
                assert!(r.idempotency(&key)?.is_none(), "{id}'s key is free again");
            }
            let left: Vec<_> = r
                .runs_desc(Some("agent:main:main"), u64::MAX, 100, &mut |_| true)?
                .into_iter()
                .map(|s| s.run.run_id)
                .collect();
            assert_eq!(left, ["new", "long-run", "old-queued", "old-running"]);
            let all = r.runs_desc(None, u64::MAX, 100, &mut |_| true)?;
            assert_eq!(all.len(), 4);
            let active: Vec<_> = r.active_runs()?.into_iter().map(|s| s.run.run_id).collect();
            assert_eq!(active, ["old-running", "old-queued"]);
            assert!(r.idempotency("scope\u{1f}long-run")?.is_some());
            Ok(())
        })
        .unwrap();
    assert_eq!(store.prune(&retention).await.unwrap(), Pruned::default());
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Receipt(String);
impl Record for Receipt {
    const KIND: &'static str = "test.receipt";
    const TIMED: bool = true;
    fn key(&self) -> String {
        self.0.clone()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kept(String);
impl Record for Kept {
    const KIND: &'static str = "test.kept";
    fn key(&self) -> String {
        self.0.clone()
    }
}

async fn timed_records_expire_by_their_last_write_and_older_rows_are_backfilled(store: Store) {
    store
        .write(|t| {
            t.put(&Receipt("a".into()))?;
            t.put(&Kept("a".into()))?;
            // A row written before its kind was timed: it has no write time yet.
            t.raw_put(
                Receipt::KIND,
                "legacy",
                &Encoded(b"\"legacy\"".to_vec()),
                false,
            )
        })
        .await
        .unwrap();
    // A cutoff before the writes deletes nothing.
    let past = now_ms() - 60_000;
    let n = store
        .write(move |t| t.prune_records(Receipt::KIND, past, 10))
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A pass with a long age backfills the legacy row and deletes nothing.
    let retention = Retention {
        runs: None,
        records: vec![(Receipt::KIND, Duration::from_secs(3600))],
        every: Duration::from_secs(60),
        batch: 1,
    };
    assert_eq!(store.prune(&retention).await.unwrap(), Pruned::default());
    // A cutoff in the future expires every timed row, the backfilled one included; the
    // untimed kind is untouched, and deleting a record forgets its time.
    let future = now_ms() + 60_000;
    let n = store
        .write(move |t| t.prune_records(Receipt::KIND, future, 10))
        .await
        .unwrap();
    assert_eq!(n, 2);
    store
        .read(|r| {
            assert!(!r.contains::<Receipt>("a")? && !r.contains::<Receipt>("legacy")?);
            assert!(r.contains::<Kept>("a")?);
            Ok(())
        })
        .unwrap();
    store
        .write(|t| {
            t.put(&Receipt("b".into()))?;
            t.delete::<Receipt>("b").map(|_| ())
        })
        .await
        .unwrap();
    let n = store
        .write(move |t| t.prune_records(Receipt::KIND, future, 10))
        .await
        .unwrap();
    assert_eq!(n, 0);
}

on_both_backends!(
    a_full_queue_makes_async_writers_wait_without_blocking_and_keeps_fifo,
    a_panicking_write_fails_its_batch_and_every_later_write_and_is_reported,
    a_panicking_commit_hook_stops_the_writer_after_the_commit,
    pruning_deletes_only_old_finished_runs_with_their_keys_in_bounded_batches,
    timed_records_expire_by_their_last_write_and_older_rows_are_backfilled,
);

/// Two stores on one PostgreSQL database, as two replicas see it: one seq order, each
/// other's commits published (with the foreign hook) before their own and while idle,
/// sessions owned by one replica at a time and taken over when its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_feed_and_hand_sessions_over() {
    let mut storage = crate::config::StorageConfig::default();
    storage.postgres.url = clawplane_testkit::PgServer::shared().database();
    let dir = std::env::temp_dir();
    let a = open(&storage, &dir, 0, 1024).unwrap();
    let b = open(&storage, &dir, 0, 1024).unwrap();
    assert!(a.shared() && b.shared());
    let seen_by_b = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_log = seen_by_b.clone();
    b.on_foreign(Box::new(move |ev| hook_log.lock().unwrap().push(ev.seq)));
    let mut b_live = b.feed.live.subscribe();

    // An idle B follows A's commits.
    for i in 0..3 {
        let ev = note(&format!("a{i}"));
        a.write(move |t| t.append_event(ev).map(|_| ()))
            .await
            .unwrap();
    }
    for want in 1..=3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), b_live.recv())
            .await
            .expect("B follows A's commits")
            .unwrap();
        assert_eq!(ev.seq, want);
    }
    assert_eq!(b.head(), 3);
    // B's own commit after more of A's: A's come first, in order, then B's own.
    let ev = note("a3");
    a.write(move |t| t.append_event(ev).map(|_| ()))
        .await
        .unwrap();
    let ev = note("b0");
    let seq = b.write(move |t| t.append_event(ev)).await.unwrap();
    assert_eq!(seq, 5);
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(b_live.recv().await.unwrap());
    }
    assert_eq!(
        got.iter()
            .map(|e| (e.seq, e.session_key.as_str()))
            .collect::<Vec<_>>(),
        [(4, "a3"), (5, "b0")]
    );
    assert_eq!(
        *seen_by_b.lock().unwrap(),
        [1, 2, 3, 4],
        "the hook saw A's events only"
    );

    // Ownership: the first claimer owns; the other cannot claim; release needs an idle session.
    assert!(a.write(|t| t.claim_session("s")).await.unwrap());
    assert!(!b.write(|t| t.claim_session("s")).await.unwrap());
    assert!(a.write(|t| t.claim_session("s")).await.unwrap());
    let run = StoredRun {
        order: 1,
        run: Run {
            run_id: "r1".into(),
            session_key: "s".into(),
            state: RunState::Queued as i32,
            ..Default::default()
        },
    };
    let r = run.clone();
    a.write(move |t| t.put_run(&r)).await.unwrap();
    assert!(
        !a.write(|t| t.release_session("s")).await.unwrap(),
        "a queued run keeps it"
    );

    // A goes silent (nothing heartbeats it here): after the lease B takes "s" over.
    b.write(|t| t.heartbeat(60_000)).await.unwrap();
    assert!(
        b.write(|t| t.heartbeat(60_000))
            .await
            .unwrap()
            .taken
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let beat = b.write(|t| t.heartbeat(200)).await.unwrap();
    assert_eq!(beat.taken, ["s"]);
    assert!(!beat.evicted);
    assert!(b.write(|t| t.claim_session("s")).await.unwrap());
    assert!(
        !a.write(|t| t.claim_session("s")).await.unwrap(),
        "A lost it"
    );
    let beat = a.write(|t| t.heartbeat(60_000)).await.unwrap();
    assert!(beat.evicted, "A learns it was declared dead");

    // B leaves: its sessions with active runs are anyone's, and A's next beat takes them.
    b.write(|t| t.leave()).await.unwrap();
    assert_eq!(a.write(|t| t.heartbeat(60_000)).await.unwrap().taken, ["s"]);
    let mut done = run;
    done.run.state = RunState::Succeeded as i32;
    a.write(move |t| t.put_run(&done)).await.unwrap();
    assert!(a.write(|t| t.release_session("s")).await.unwrap());
    assert!(
        b.write(|t| t.claim_session("s")).await.unwrap(),
        "released: the next claimer owns it"
    );
}

/// The replicas' shared channel counters and alert windows, on two stores of one database:
/// concurrent reservations admit exactly the hourly limit, a cooldown holds per recipient,
/// a release gives the slot back; one alert per window wherever it is asked; a connection
/// state flip is reported by one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_channel_limits_health_and_alert_windows() {
    let mut storage = crate::config::StorageConfig::default();
    storage.postgres.url = clawplane_testkit::PgServer::shared().database();
    let dir = std::env::temp_dir();
    let a = open(&storage, &dir, 0, 1024).unwrap();
    let b = open(&storage, &dir, 0, 1024).unwrap();

    // 40 reservations to 40 recipients from both stores at once: 25 fit the hour.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::task::spawn_blocking(move || {
                let eph = s.ephemeral().expect("shared");
                eph.reserve_send("discord", &format!("to-{i}"), 25, 0)
                    .unwrap()
            })
        })
        .collect();
    let mut ok = Vec::new();
    for t in tasks {
        if let Ok(id) = t.await.unwrap() {
            ok.push(id);
        }
    }
    assert_eq!(ok.len(), 25, "exactly the hourly limit");
    let (ea, eb) = (a.ephemeral().unwrap(), b.ephemeral().unwrap());
    match eb.reserve_send("discord", "to-x", 25, 0).unwrap() {
        Err(SendRefusal::PerHour { sent: 25, free_ms }) => assert!(free_ms > 3_500_000),
        other => panic!("{other:?}"),
    }
    assert_eq!(ea.channel_state("discord").unwrap(), (None, 25));
    ea.release_send(ok[0]).unwrap();
    assert!(eb.reserve_send("discord", "to-x", 25, 0).unwrap().is_ok());
    // Another channel has its own hour; the cooldown is per recipient.
    assert!(ea.reserve_send("slack", "C1", 0, 60_000).unwrap().is_ok());
    match eb.reserve_send("slack", "C1", 0, 60_000).unwrap() {
        Err(SendRefusal::Cooldown { left_ms, .. }) => assert!(left_ms > 50_000),
        other => panic!("{other:?}"),
    }
    assert!(eb.reserve_send("slack", "C2", 0, 60_000).unwrap().is_ok());
    // Without limits a send is only recorded (no lock), and still counted for the hour.
    let w1 = ea
        .reserve_send("webhook", "x", 0, 0)
        .unwrap()
        .expect("recorded");
    eb.reserve_send("webhook", "x", 0, 0)
        .unwrap()
        .expect("recorded");
    assert_eq!(eb.channel_state("webhook").unwrap().1, 2);
    ea.release_send(w1).unwrap();
    assert_eq!(eb.channel_state("webhook").unwrap().1, 1);

    // Health: the flip to disconnected is seen by the first observer only.
    assert_eq!(
        ea.mark_channel("slack", false, "401", Some(false)).unwrap(),
        None
    );
    assert_eq!(
        eb.mark_channel("slack", false, "401", Some(false)).unwrap(),
        Some(false)
    );
    assert_eq!(
        eb.mark_channel("slack", false, "503", None).unwrap(),
        Some(false)
    );
    let (mark, sent) = ea.channel_state("slack").unwrap();
    let mark = mark.expect("observed");
    assert_eq!(
        (mark.ok, mark.last_error.as_str(), mark.connected, sent),
        (false, "503", Some(false), 2)
    );
    assert_eq!(
        ea.mark_channel("slack", true, "", Some(true)).unwrap(),
        Some(false)
    );

    // Alerts: one per window across both, the next window reports the suppressed ones.
    assert_eq!(ea.admit_alert("k", 300).unwrap(), Some(0));
    assert_eq!(eb.admit_alert("k", 300).unwrap(), None);
    assert_eq!(ea.admit_alert("k", 300).unwrap(), None);
    assert_eq!(eb.admit_alert("other", 300).unwrap(), Some(0));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(eb.admit_alert("k", 300).unwrap(), Some(2));
    assert_eq!(ea.admit_alert("k", 300).unwrap(), None);
}
