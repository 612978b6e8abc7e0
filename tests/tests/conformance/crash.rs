//! Crash safety under load: gRPC (`ChatService/Send`, `AgentService/Run`), `/hooks/agent`,
//! `/webhook/<path>` ingress and webhook egress all busy while the gateway is SIGKILLed at
//! random points, several times. Afterwards every acknowledged run exists and ended exactly
//! once (INTERRUPTED → retry as documented), the event log has no lost or reused seq, every
//! `run.completed` reached the receiver at least once with one stable `webhook-id`, and the
//! store opened cleanly each time.
//!
//! Also: a watcher during each round records seq → event digest, compared with the final log
//! (a seq handed out live and reused after a crash shows up there); every run ListRuns knows
//! (acknowledged or not) ends exactly once; after each restart the sends that were not
//! acknowledged are sent again with their idempotency keys and resolve to one run; at least
//! one run was interrupted; and no transcript holds a turn twice.
//!
//! The kill points come from a seeded RNG; the seed is printed and `CLAWPLANE_CRASH_SEED=<n>`
//! replays a failing schedule.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clawplane_proto::v1::event_service_watch_response::Frame;
use clawplane_proto::v1::{
    AgentServiceRunRequest, ChatServiceSendRequest, Event, EventServiceWatchRequest, MessageRole,
    RunState,
};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::fakes::receiver::Receiver;
use crate::harness::*;

const HOOK_TOKEN: &str = "crash-hook-token";
const INGRESS_SECRET: &str = "crash-ingress-secret";
const EGRESS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROUNDS: usize = 4;

/// splitmix64: a tiny deterministic RNG, enough for a reproducible kill schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Which surface acknowledged a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Surface {
    Chat,
    Agent,
    Hooks,
    Ingress,
}

type Acks = Arc<Mutex<BTreeMap<String, Surface>>>;

fn ack(acks: &Acks, run_id: &str, surface: Surface) {
    assert!(
        !run_id.is_empty(),
        "{surface:?} acknowledged an empty run id"
    );
    acks.lock().unwrap().insert(run_id.to_string(), surface);
}

/// A keyed send, kept until it is acknowledged so that it can be sent again after a crash.
#[derive(Clone, Debug)]
enum Send {
    Chat(ChatServiceSendRequest),
    Agent(Box<AgentServiceRunRequest>),
    Hooks { key: String, message: String },
}

impl Send {
    fn key(&self) -> &str {
        match self {
            Send::Chat(r) => &r.idempotency_key,
            Send::Agent(r) => &r.idempotency_key,
            Send::Hooks { key, .. } => key,
        }
    }
}

/// Keyed sends in flight (sent, not yet acknowledged), by idempotency key.
type Pending = Arc<Mutex<BTreeMap<String, Send>>>;

/// Sends `s` once more; returns the run id it resolves to and whether the gateway called it
/// a duplicate (gRPC says so; `/hooks/agent`, in OpenClaw's shape, does not).
async fn resend(gw: &Gateway, s: &Send) -> (String, Option<bool>) {
    match s {
        Send::Chat(r) => {
            let resp = gw.send_req(r.clone()).await;
            (resp.run_id, Some(resp.duplicate))
        }
        Send::Agent(r) => {
            let resp = gw
                .agent()
                .await
                .run((**r).clone())
                .await
                .unwrap_or_else(|e| panic!("AgentService/Run {r:?} after the restart: {e:?}"))
                .into_inner();
            (resp.run_id, Some(resp.duplicate))
        }
        Send::Hooks { key, message } => {
            let resp = reqwest::Client::new()
                .post(format!("{}/hooks/agent", gw.url))
                .bearer_auth(HOOK_TOKEN)
                .header("X-OpenClaw-Idempotency-Key", key)
                .json(&serde_json::json!({ "message": message }))
                .send()
                .await
                .expect("/hooks/agent after the restart");
            assert_eq!(resp.status(), 200, "/hooks/agent retry of {key}");
            let body: serde_json::Value = resp.json().await.expect("JSON");
            let run_id = body["runId"].as_str().unwrap_or_default().to_string();
            (run_id, None)
        }
    }
}

/// What the round watchers saw: seq → (round, SHA-256 of the encoded event).
type Seen = Arc<Mutex<BTreeMap<u64, (usize, [u8; 32])>>>;

fn digest(e: &Event) -> [u8; 32] {
    Sha256::digest(e.encode_to_vec()).into()
}

/// Watches every event after `after_seq` until the gateway dies (`killed`), resuming after
/// a lag-ended stream; records each event's digest in `seen` and keeps `running` (the runs
/// last seen RUNNING) current.
fn start_watcher(
    gw: &Gateway,
    round: usize,
    after_seq: u64,
    seen: &Seen,
    running: &Arc<Mutex<HashSet<String>>>,
    killed: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let events = gw.sdk().events();
    let (seen, running, killed) = (seen.clone(), running.clone(), killed.clone());
    tokio::spawn(async move {
        let mut last = after_seq;
        while !killed.load(Ordering::SeqCst) {
            let req = EventServiceWatchRequest {
                after_seq: last,
                filter: None,
                follow_only: false,
            };
            let Ok(resp) = events.clone().watch(req).await else {
                return;
            };
            let mut stream = resp.into_inner();
            while let Ok(Some(msg)) = stream.message().await {
                let Some(Frame::Event(e)) = msg.frame else {
                    continue;
                };
                last = e.seq;
                if let Some(r) = run_of(&e) {
                    let mut running = running.lock().unwrap();
                    if r.state() == RunState::Running {
                        running.insert(r.run_id.clone());
                    } else {
                        running.remove(&r.run_id);
                    }
                }
                let d = digest(&e);
                let mut seen = seen.lock().unwrap();
                if let Some((r, prev)) = seen.insert(e.seq, (round, d)) {
                    assert_eq!(
                        prev, d,
                        "seq {} was handed out twice with different events (rounds {r} and {round}): {e:?}",
                        e.seq
                    );
                }
            }
        }
    })
}

/// A message for the built-in model that takes `ms` before replying.
fn slow(ms: u64, tag: &str) -> String {
    format!("/sleep {ms} {tag}")
}

/// Starts one load task per surface against the running gateway; each sends requests back to
/// back (a short pause between them) and records every acknowledged run id. Errors (the
/// gateway was killed) end the task quietly.
async fn start_load(
    gw: &Gateway,
    round: usize,
    seed: u64,
    acks: &Acks,
    pending: &Pending,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut chat = gw.chat().await;
    let mut agent = gw.agent().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = gw.url.clone();

    let (a, p) = (acks.clone(), pending.clone());
    tasks.push(tokio::spawn(async move {
        let mut rng = Rng(seed ^ 0xC4A7 ^ round as u64);
        for i in 0.. {
            let req = ChatServiceSendRequest {
                session_key: format!("crash-chat-{}", i % 6),
                message: slow(rng.range(0, 250), &format!("c{round}.{i}")),
                idempotency_key: format!("chat-{round}-{i}"),
                ..Default::default()
            };
            let key = req.idempotency_key.clone();
            p.lock()
                .unwrap()
                .insert(key.clone(), Send::Chat(req.clone()));
            match chat.send(req).await {
                Ok(r) => {
                    ack(&a, &r.into_inner().run_id, Surface::Chat);
                    p.lock().unwrap().remove(&key);
                }
                Err(_) => return,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }));

    let (a, p) = (acks.clone(), pending.clone());
    tasks.push(tokio::spawn(async move {
        let mut rng = Rng(seed ^ 0xA6E7 ^ round as u64);
        for i in 0.. {
            let req = AgentServiceRunRequest {
                session_key: format!("crash-agent-{}", i % 6),
                message: slow(rng.range(0, 250), &format!("a{round}.{i}")),
                idempotency_key: format!("agent-{round}-{i}"),
                ..Default::default()
            };
            let key = req.idempotency_key.clone();
            p.lock()
                .unwrap()
                .insert(key.clone(), Send::Agent(Box::new(req.clone())));
            match agent.run(req).await {
                Ok(r) => {
                    ack(&a, &r.into_inner().run_id, Surface::Agent);
                    p.lock().unwrap().remove(&key);
                }
                Err(_) => return,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }));

    for surface in [Surface::Hooks, Surface::Ingress] {
        let (a, p) = (acks.clone(), pending.clone());
        let http = http.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ 0x4003 ^ round as u64 ^ (surface as u64) << 8);
            for i in 0.. {
                let msg = slow(rng.range(0, 250), &format!("{surface:?}{round}.{i}"));
                let key = format!("hooks-{round}-{i}");
                let req = match surface {
                    Surface::Hooks => {
                        p.lock().unwrap().insert(
                            key.clone(),
                            Send::Hooks {
                                key: key.clone(),
                                message: msg.clone(),
                            },
                        );
                        http.post(format!("{base}/hooks/agent"))
                            .bearer_auth(HOOK_TOKEN)
                            .header("X-OpenClaw-Idempotency-Key", &key)
                            .json(&serde_json::json!({ "message": msg }))
                    }
                    _ => http
                        .post(format!("{base}/webhook/load"))
                        .header("X-Webhook-Secret", INGRESS_SECRET)
                        .json(&serde_json::json!({ "m": msg })),
                };
                let Ok(resp) = req.send().await else { return };
                let status = resp.status();
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    return;
                };
                assert_eq!(
                    status, 200,
                    "{surface:?} refused a well-formed request: {body}"
                );
                let run_id = body["runId"].as_str().unwrap_or_default().to_string();
                ack(&a, &run_id, surface);
                p.lock().unwrap().remove(&key);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tasks
}

/// Ends the load tasks; a task that panicked (a refused well-formed request) fails the test.
async fn stop_load(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        if let Err(e) = t.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

fn terminal_done(s: RunState) -> bool {
    matches!(
        s,
        RunState::Succeeded | RunState::Failed | RunState::Cancelled | RunState::TimedOut
    )
}

#[tokio::test]
async fn sigkill_under_load_loses_nothing_and_finishes_every_run_once() {
    let seed = std::env::var("CLAWPLANE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed: {seed} (replay with CLAWPLANE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    let receiver = Receiver::start().await;
    // A few failures first so that retries (and kills during them) happen too.
    receiver.fail_next(3, 503);
    let mut gw = Gateway::builder()
        .config(&format!(
            r#"{{
              hooks: {{ enabled: true, token: '{HOOK_TOKEN}' }},
              webhooks: {{
                incoming: {{ enabled: true, secret: '{INGRESS_SECRET}', endpoints: [{{ path: 'load', message: '{{{{body.m}}}}' }}] }},
                outgoing: [{{ id: 'rx', event: 'run.completed', url: '{}', secret: '{EGRESS_SECRET}' }}],
                egress: {{ allowPrivateTargets: true, retrySchedule: [0.2, 0.2, 0.5, 1, 1, 1] }},
              }},
            }}"#,
            receiver.url("/rx")
        ))
        .start()
        .await;

    let acks: Acks = Arc::default();
    let pending: Pending = Arc::default();
    let seen: Seen = Arc::default();
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Idempotency key -> the one run it resolved to after a restart.
    let mut retried: BTreeMap<String, String> = BTreeMap::new();
    let mut kill_points = Vec::new();
    for round in 0..ROUNDS {
        let killed = Arc::new(AtomicBool::new(false));
        let head = gw.status().await.last_event_seq;
        let watcher = start_watcher(&gw, round, head, &seen, &running, &killed);
        let tasks = start_load(&gw, round, seed, &acks, &pending).await;
        let delay = rng.range(50, 400);
        kill_points.push(delay);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        // Kill while a run is RUNNING (as the watcher saw it), so that each round interrupts one.
        let deadline = Instant::now() + Duration::from_secs(5);
        while running.lock().unwrap().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        killed.store(true, Ordering::SeqCst);
        gw.kill9().await;
        stop_load(tasks).await;
        watcher.await.expect("watcher");
        running.lock().unwrap().clear();
        gw.start_again().await;
        // The sends the crash left unanswered, once more with their keys: each resolves to one
        // run, and a second repeat is a duplicate of it.
        let unanswered: Vec<Send> = std::mem::take(&mut *pending.lock().unwrap())
            .into_values()
            .collect();
        for s in &unanswered {
            let (run_id, _) = resend(&gw, s).await;
            assert!(!run_id.is_empty(), "{s:?} resolved to no run");
            let (again, duplicate) = resend(&gw, s).await;
            assert_eq!(again, run_id, "{s:?}: two runs for one key (seed {seed})");
            assert_ne!(
                duplicate,
                Some(false),
                "{s:?}: the repeat is a duplicate (seed {seed})"
            );
            let surface = match s {
                Send::Chat(_) => Surface::Chat,
                Send::Agent(_) => Surface::Agent,
                Send::Hooks { .. } => Surface::Hooks,
            };
            ack(&acks, &run_id, surface);
            retried.insert(s.key().to_string(), run_id);
        }
    }
    let acked: BTreeMap<String, Surface> = acks.lock().unwrap().clone();
    let per_surface: HashMap<Surface, usize> = acked.values().fold(HashMap::new(), |mut m, s| {
        *m.entry(*s).or_default() += 1;
        m
    });
    eprintln!(
        "crash test: kills at {kill_points:?} ms into each round; {} acknowledged runs {per_surface:?}; {} unanswered sends retried",
        acked.len(),
        retried.len()
    );
    for s in [
        Surface::Chat,
        Surface::Agent,
        Surface::Hooks,
        Surface::Ingress,
    ] {
        assert!(
            per_surface.get(&s).copied().unwrap_or(0) > 0,
            "no {s:?} run was acknowledged at all (seed {seed}); the load did not run"
        );
    }

    // Every run the gateway knows, acknowledged or not, ends; the acknowledged ones are
    // among them.
    let listed = gw.list_runs("").await;
    let listed_ids: HashSet<&str> = listed.iter().map(|r| r.run_id.as_str()).collect();
    for id in acked.keys() {
        assert!(
            listed_ids.contains(id.as_str()),
            "acknowledged run {id} is missing from ListRuns (seed {seed})"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finals = HashMap::new();
    for id in &listed_ids {
        assert!(Instant::now() < deadline, "runs did not finish in time");
        let run = gw.wait_run(id).await;
        finals.insert(id.to_string(), run);
    }
    // A retried key names exactly one run.
    for (key, run_id) in &retried {
        let with_key: Vec<&str> = listed
            .iter()
            .filter(|r| r.idempotency_key == *key)
            .map(|r| r.run_id.as_str())
            .collect();
        assert_eq!(
            with_key,
            [run_id.as_str()],
            "idempotency key {key} (seed {seed})"
        );
    }

    // The whole log: strictly increasing, contiguous seqs from the oldest retained.
    let status = gw.status().await;
    let events = gw.events_until(status.last_event_seq).await;
    assert!(!events.is_empty());
    let oldest = status.oldest_event_seq.max(1);
    assert_eq!(
        events[0].seq, oldest,
        "replay starts at the oldest retained seq"
    );
    for w in events.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "event seqs must be contiguous and strictly increasing (seed {seed})"
        );
    }
    assert_eq!(events.last().unwrap().seq, status.last_event_seq);

    // What the watchers saw live is what the log kept: no seq handed out before a crash
    // and then reused for another event.
    let logged: HashMap<u64, &Event> = events.iter().map(|e| (e.seq, e)).collect();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the watchers saw no event");
    eprintln!(
        "crash test: {} events seen live by the round watchers, checked against the log",
        seen.len()
    );
    for (seq, (round, d)) in &seen {
        if *seq < oldest {
            continue;
        }
        let e = logged.get(seq).unwrap_or_else(|| {
            panic!("seq {seq} seen live in round {round} is not in the log (seed {seed})")
        });
        assert_eq!(
            digest(e),
            *d,
            "seq {seq} seen live in round {round} differs from the log's event {e:?} (seed {seed})"
        );
    }

    // Terminal RUN events: exactly one per run. An INTERRUPTED with attempt < 2 is followed by
    // the retry; an INTERRUPTED of attempt 2 is final (docs/behaviour.md, "Crash").
    let mut by_run: HashMap<&str, Vec<(RunState, u32)>> = HashMap::new();
    for e in &events {
        if let Some(r) = run_of(e) {
            by_run
                .entry(r.run_id.as_str())
                .or_default()
                .push((r.state(), r.attempt));
        }
    }
    let mut interrupted = 0;
    for (id, run) in &finals {
        let states = by_run
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged run {id} has no RUN event (seed {seed})"));
        let is_final = |(s, attempt): &(RunState, u32)| {
            terminal_done(*s) || (*s == RunState::Interrupted && *attempt >= 2)
        };
        let n_final = states.iter().filter(|s| is_final(s)).count();
        assert_eq!(
            n_final, 1,
            "run {id} must reach a terminal state exactly once, RUN events: {states:?} (seed {seed})"
        );
        let last = states.last().unwrap();
        assert!(
            is_final(last),
            "the terminal event of {id} must be its last RUN event: {states:?} (seed {seed})"
        );
        assert_eq!(
            last.0,
            run.state(),
            "GetRun of {id} agrees with the log: {states:?}"
        );
        let retries: Vec<usize> = states
            .iter()
            .enumerate()
            .filter(|(_, (s, a))| *s == RunState::Interrupted && *a < 2)
            .map(|(i, _)| i)
            .collect();
        assert!(
            retries.len() <= 1,
            "{id} retried more than once: {states:?}"
        );
        for i in retries {
            interrupted += 1;
            assert!(
                states[i + 1..]
                    .iter()
                    .any(|(s, a)| *s == RunState::Queued && *a == 2),
                "{id}: INTERRUPTED without the retry (attempt 2): {states:?}"
            );
        }
        assert!(
            matches!(run.state(), RunState::Succeeded | RunState::Interrupted),
            "{id} ({:?}) ended {:?}: {run:?}",
            acked.get(id),
            run.state()
        );
    }
    eprintln!("crash test: {interrupted} runs were interrupted and retried");
    assert!(
        interrupted > 0 || finals.values().any(|r| r.state() == RunState::Interrupted),
        "no run was interrupted by {ROUNDS} kills under load (seed {seed})"
    );

    // Transcripts: a run adds its user turn and its reply at most once, whatever the crashes.
    let sessions: HashSet<&str> = finals.values().map(|r| r.session_key.as_str()).collect();
    for session in sessions {
        let history = gw.history(session).await;
        let mut turns: HashMap<(&str, i32), usize> = HashMap::new();
        for m in &history.messages {
            if matches!(m.role(), MessageRole::User | MessageRole::Assistant) {
                *turns.entry((m.run_id.as_str(), m.role)).or_default() += 1;
            }
        }
        for ((run_id, role), n) in turns {
            assert_eq!(
                n,
                1,
                "{session}: run {run_id} has {n} {:?} turns (seed {seed}): {:#?}",
                MessageRole::try_from(role),
                history.messages
            );
        }
    }

    // Egress: every run.completed of an acknowledged run reached the receiver, and every
    // delivery of one message carries the same webhook-id.
    let succeeded: HashSet<&str> = finals
        .iter()
        .filter(|(_, r)| r.state() == RunState::Succeeded)
        .map(|(id, _)| id.as_str())
        .collect();
    let mut delivered: HashMap<String, HashSet<String>> = HashMap::new();
    receiver
        .wait_until(
            Duration::from_secs(30),
            "a delivery of every run.completed",
            |got| {
                delivered.clear();
                for r in got {
                    if r.answered != 200 && r.answered != 503 {
                        continue;
                    }
                    let body = r.json();
                    assert_eq!(body["type"], "run.completed", "{body}");
                    let run_id = body["data"]["runId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    delivered
                        .entry(run_id)
                        .or_default()
                        .insert(r.header_str("webhook-id").to_string());
                }
                succeeded.iter().all(|id| delivered.contains_key(*id))
            },
        )
        .await;
    let requests = receiver.requests();
    eprintln!(
        "crash test: {} run.completed messages, {} deliveries to the receiver",
        delivered.len(),
        requests.len()
    );
    let mut seen_ids = HashSet::new();
    for (run_id, ids) in &delivered {
        assert_eq!(
            ids.len(),
            1,
            "deliveries of {run_id}'s run.completed carry different webhook-ids: {ids:?}"
        );
        let id = ids.iter().next().unwrap();
        assert!(id.starts_with("msg_"), "webhook-id {id:?}");
        assert!(
            seen_ids.insert(id.clone()),
            "webhook-id {id} was used for two runs"
        );
    }

    // The store opened cleanly every time: no corruption or panic in any start's log.
    let log = gw.stderr();
    for l in log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
    {
        eprintln!("crash test: gateway log: {l}");
    }
    // Every process of the gateway (each replica, in a clustered run) started each round.
    let starts = log.matches("===== harness: start #").count();
    let processes = log.matches("===== harness: start #1 =====").count();
    assert_eq!(starts, (ROUNDS + 1) * processes);
    for bad in [
        "panicked",
        "corrupt",
        "Corrupt",
        "invalid database",
        "repair failed",
    ] {
        assert!(
            !log.contains(bad),
            "gateway stderr mentions {bad:?} (seed {seed}):\n{log}"
        );
    }
}
