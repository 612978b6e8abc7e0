//! Durable state. Core code sees only the [`Txn`] and [`Reader`] traits and the [`Store`]
//! handle; `redb.rs` and `postgres.rs` are the only places that name their engines, and
//! `writer.rs` is the group-commit loop both run.
//!
//! Writes go through one writer thread that runs every queued write closure inside one
//! transaction and commits them together (group commit): one fsync acknowledges a whole
//! batch. Events appended in a write get their `seq` inside that transaction and are
//! published to live subscribers only after the commit is durable.
//!
//! The job queue is a bounded tokio channel: async callers await room in it (backpressure
//! without blocking a runtime worker), the writer thread takes jobs with `blocking_recv`.
//! If a write closure (or a commit hook) panics, the writer stops for good: the batch it
//! was building is rolled back, every pending and later write fails with a Storage error,
//! and [`Store::failed`] resolves so the process can stop loudly instead of serving with a
//! store that can no longer write.

mod codec;
mod jetstream;
mod leases;
mod postgres;
mod prune;
mod records;
mod redb;
mod writer;

use crate::error::{Error, Result};
use clawplane_proto::v1::{
    Device, Event, Message, PairingRequest, Run, Session, WebhookCall, WebhookKey,
};
use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicU64, Ordering},
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use self::jetstream::spawn_relay;
pub use self::prune::{Pruned, Retention, spawn_pruner};
pub use self::records::{Encoded, Record, Records, RecordsMut};
/// Opens the configured store: PostgreSQL when `storage.postgres.url` is set, else redb
/// under `data_dir`. `retention` bounds the number of events kept.
pub fn open(
    storage: &crate::config::StorageConfig,
    data_dir: &std::path::Path,
    retention: u64,
    live_capacity: usize,
) -> Result<Store> {
    match storage.postgres_url() {
        Some(url) => postgres::open(url, data_dir, retention, live_capacity),
        None => redb::open(data_dir, retention, live_capacity),
    }
}

/// A run as stored: its global acceptance order plus the resource.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub order: u64,
    pub run: Run,
}

/// An idempotency record: a digest of the request and the run it created.
#[derive(Debug, Clone)]
pub struct IdemRecord {
    pub fingerprint: [u8; 32],
    pub run_id: String,
}

/// A webhook API key as stored: the SHA-256 digest of its secret plus the resource.
#[derive(Debug, Clone)]
pub struct StoredWebhookKey {
    pub digest: [u8; 32],
    pub key: WebhookKey,
}

/// A device token as stored: only its SHA-256 digest, who holds it and what it carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredDeviceToken {
    pub digest: [u8; 32],
    pub device_id: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub create_ms: i64,
}

/// Reads shared by write transactions and read snapshots.
pub trait Reader {
    /// The stored bytes of a keyed record (features use the typed [`Records`] methods).
    fn raw_get(&self, kind: &str, key: &str) -> Result<Option<Encoded>>;
    /// Keyed records of `kind` with keys greater than `after` (all when empty), in key
    /// order (features use [`Records::scan`] and [`Records::each`]).
    fn raw_scan(&self, kind: &str, after: &str, limit: usize) -> Result<Vec<(String, Encoded)>>;
    fn run(&self, run_id: &str) -> Result<Option<StoredRun>>;
    fn session(&self, key: &str) -> Result<Option<Session>>;
    fn idempotency(&self, key: &str) -> Result<Option<IdemRecord>>;
    fn system_events(&self, session_key: &str) -> Result<Vec<String>>;
    /// Transcript messages of a generation with index > `after`, at most `limit`.
    fn messages(&self, session_id: &str, after: u64, limit: usize) -> Result<Vec<Message>>;
    /// The last message of a generation.
    fn last_message(&self, session_id: &str) -> Result<Option<Message>>;
    /// Events with seq > `after`, at most `limit`, oldest first.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>>;
    /// Number of sessions.
    fn session_count(&self) -> Result<u64>;
    /// All sessions (unordered).
    fn sessions(&self) -> Result<Vec<Session>>;
    /// Runs newest first, optionally of one session, starting below `before_order`.
    fn runs_desc(
        &self,
        session_key: Option<&str>,
        before_order: u64,
        limit: usize,
        keep: &mut dyn FnMut(&Run) -> bool,
    ) -> Result<Vec<StoredRun>>;
    /// Queued and running runs in acceptance order.
    fn active_runs(&self) -> Result<Vec<StoredRun>>;
    /// A gateway setting (e.g. the instance id).
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Every webhook API key, in id order.
    fn webhook_keys(&self) -> Result<Vec<StoredWebhookKey>>;
    /// The webhook calls log, newest first, at most `limit`.
    fn webhook_calls(&self, limit: usize) -> Result<Vec<WebhookCall>>;
    /// A paired device.
    fn device(&self, device_id: &str) -> Result<Option<Device>>;
    /// Every paired device, in id order.
    fn devices(&self) -> Result<Vec<Device>>;
    /// Every pending pairing request (expired ones included), in id order.
    fn pairing_requests(&self) -> Result<Vec<PairingRequest>>;
    /// Every live device token.
    fn device_tokens(&self) -> Result<Vec<StoredDeviceToken>>;
    /// The live device token with this SHA-256 digest.
    fn device_token(&self, digest: &[u8; 32]) -> Result<Option<StoredDeviceToken>>;
}

/// Mutations, available inside [`Store::write`]. A closure must finish its checks before
/// it mutates: batched closures share one transaction, so an error returned after a
/// mutation would not undo it.
pub trait Txn: Reader {
    /// Allocates the next global run order.
    fn next_run_order(&mut self) -> Result<u64>;
    /// Inserts or replaces a run; keeps the session index and the active set in step.
    fn put_run(&mut self, run: &StoredRun) -> Result<()>;
    fn put_idempotency(&mut self, key: &str, rec: &IdemRecord) -> Result<()>;
    fn put_session(&mut self, session: &Session) -> Result<()>;
    fn delete_session(&mut self, key: &str, session_id: &str) -> Result<()>;
    fn put_message(&mut self, session_id: &str, msg: &Message) -> Result<()>;
    fn put_system_events(&mut self, session_key: &str, texts: &[String]) -> Result<()>;
    /// Appends an event; `seq` and `time` are assigned here. Returns the seq.
    fn append_event(&mut self, event: Event) -> Result<u64>;
    fn put_setting(&mut self, key: &str, value: &str) -> Result<()>;
    /// Stores a keyed record (features use [`RecordsMut::put`]); `timed` also notes when,
    /// so retention can prune the kind by age.
    fn raw_put(&mut self, kind: &str, key: &str, value: &Encoded, timed: bool) -> Result<()>;
    /// Deletes a keyed record; true when it existed (features use [`RecordsMut::delete`]).
    fn raw_delete(&mut self, kind: &str, key: &str) -> Result<bool>;
    /// Inserts or replaces a webhook API key (by `key.key_id`).
    fn put_webhook_key(&mut self, key: &StoredWebhookKey) -> Result<()>;
    /// Deletes a webhook API key; true when it existed.
    fn delete_webhook_key(&mut self, key_id: &str) -> Result<bool>;
    /// Appends to the webhook calls log, keeping only the newest `keep` entries.
    fn append_webhook_call(&mut self, call: &WebhookCall, keep: usize) -> Result<()>;
    /// Inserts or replaces a paired device (by `device_id`).
    fn put_device(&mut self, device: &Device) -> Result<()>;
    /// Deletes a paired device; true when it existed.
    fn delete_device(&mut self, device_id: &str) -> Result<bool>;
    /// Inserts or replaces a pending pairing request (by `request_id`).
    fn put_pairing_request(&mut self, request: &PairingRequest) -> Result<()>;
    /// Deletes a pending pairing request; true when it existed.
    fn delete_pairing_request(&mut self, request_id: &str) -> Result<bool>;
    /// Stores a device token (by digest).
    fn put_device_token(&mut self, token: &StoredDeviceToken) -> Result<()>;
    /// Deletes one device token by digest.
    fn delete_device_token(&mut self, digest: &[u8; 32]) -> Result<()>;
    /// Deletes every token of a device role (`None`: every role); returns how many.
    fn delete_device_tokens(&mut self, device_id: &str, role: Option<&str>) -> Result<usize>;
    /// Makes this process the executor of the session's runs unless another live replica
    /// is; true when this process owns it now. Called with every accept and before a run
    /// starts (the fence against a replica that lost its sessions). On redb, always true.
    fn claim_session(&mut self, session_key: &str) -> Result<bool>;
    /// Gives up this process's ownership of a session that has no queued or running run;
    /// true when it is released (or was not owned here), false while runs are active.
    fn release_session(&mut self, session_key: &str) -> Result<bool>;
    /// This replica's heartbeat: marks it alive, drops replicas silent for `lease_ms`, and
    /// takes over their sessions and those whose runs have no owner (a replica that left).
    fn heartbeat(&mut self, lease_ms: i64) -> Result<Beat>;
    /// Ends this replica's membership (graceful stop): its sessions are left to the others.
    fn leave(&mut self) -> Result<()>;
    /// Takes or keeps the duties (see `leases`) free or already held by this replica;
    /// returns those held now. On redb, all of them.
    fn hold(&mut self, duties: &[String]) -> Result<Vec<String>>;
    /// Deletes at most `limit` terminal runs that ended before `cutoff_ms`, with their
    /// idempotency records, visiting runs in acceptance order after `after` (0: from the
    /// oldest). Queued and running runs are never deleted. Returns how many were deleted
    /// and where the next batch resumes (`None`: the pass reached runs too new to expire).
    fn prune_runs(
        &mut self,
        cutoff_ms: i64,
        after: u64,
        limit: usize,
    ) -> Result<(usize, Option<u64>)>;
    /// Deletes at most `limit` timed records of `kind` last written before `cutoff_ms`;
    /// returns how many.
    fn prune_records(&mut self, kind: &str, cutoff_ms: i64, limit: usize) -> Result<usize>;
    /// Notes a write time (`now_ms`) for up to `limit` records of `kind` that have none
    /// (written before the kind was timed), resuming after `after`; returns the last key
    /// visited, `None` when the kind is done.
    fn backfill_record_times(
        &mut self,
        kind: &str,
        after: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Option<String>>;
}

/// What a replica's heartbeat found.
#[derive(Debug, Default)]
pub struct Beat {
    /// This replica had been declared dead: it must stop treating its sessions as its own
    /// and abandon what it was executing; those nobody took yet are back in `taken`.
    pub evicted: bool,
    /// Sessions this replica now owns whose runs must be recovered: left by another
    /// replica, or its own from before a restart or an eviction.
    pub taken: Vec<String>,
}

/// Called with every event another replica committed, in seq order, before it is
/// published to this process's subscribers (and before any later commit of this process
/// completes). Hooks keep in-memory state in step with the shared store; they must not
/// wait for a write.
pub type ForeignHook = Box<dyn Fn(&Event) + Send + Sync>;

/// Called with every event published, this process's and other replicas', in seq order
/// (see [`Store::follow_all`]); like a [`ForeignHook`] it must not wait for a write.
pub type EventHook = ForeignHook;

/// Called with every [`Store::signal`] another replica sent.
pub type SignalHook = Box<dyn Fn(&str) + Send + Sync>;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&mut dyn Txn) -> Completion + Send>;

/// Jobs queued for the writer; bounded so a stalled disk pushes back on callers (they
/// await room) instead of growing memory.
const QUEUE: usize = 16 * 1024;

/// Whether the writer is alive; set once when it stops after a panic.
#[derive(Default)]
pub(crate) struct Health {
    failure: OnceLock<String>,
    failed: CancellationToken,
}

impl Health {
    /// Records the writer's failure (first one wins) and wakes [`Store::failed`].
    fn fail(&self, message: String) {
        let _ = self.failure.set(message);
        self.failed.cancel();
    }

    /// The error every write gets once the writer has stopped.
    fn error(&self) -> Error {
        match self.failure.get() {
            Some(m) => Error::Storage(format!("the store writer stopped after a panic: {m}")),
            None if std::thread::panicking() => Error::Storage(
                "the store writer panicked during this write; the store has stopped".into(),
            ),
            None => Error::Storage("the store writer has stopped".into()),
        }
    }
}

/// A write's answer. Dropped unanswered (its job was dropped by a stopping writer, or
/// unwound by a panic) it answers the writer's failure, so no caller waits forever.
struct Reply<R> {
    tx: Option<oneshot::Sender<Result<R>>>,
    health: Arc<Health>,
}

impl<R> Reply<R> {
    fn send(mut self, out: Result<R>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(out);
        }
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(self.health.error()));
        }
    }
}

/// Live feed shared by the writer and the watchers.
pub struct Feed {
    /// Last committed seq.
    pub head: AtomicU64,
    /// Oldest retained seq (head + 1 when the log is empty).
    pub oldest: AtomicU64,
    /// Number of sessions as of the last commit (Status reads it without a snapshot).
    pub sessions: AtomicU64,
    pub live: broadcast::Sender<Arc<Event>>,
    /// Held while events are published (by the writer, from its commit, or by a backend's
    /// follower, from other replicas' commits), so subscribers see one seq order.
    publish: std::sync::Mutex<()>,
    foreign: std::sync::RwLock<Vec<ForeignHook>>,
    every: std::sync::RwLock<Vec<EventHook>>,
    signals: std::sync::RwLock<Vec<SignalHook>>,
}

impl Feed {
    pub(crate) fn new(head: u64, oldest: u64, sessions: u64, live_capacity: usize) -> Feed {
        Feed {
            head: head.into(),
            oldest: oldest.into(),
            sessions: sessions.into(),
            live: broadcast::channel(live_capacity).0,
            publish: std::sync::Mutex::new(()),
            foreign: std::sync::RwLock::default(),
            every: std::sync::RwLock::default(),
            signals: std::sync::RwLock::default(),
        }
    }

    /// Hands a signal from another replica to the signal hooks.
    fn signalled(&self, message: &str) {
        for hook in self
            .signals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            hook(message);
        }
    }

    /// Publishes events another replica committed (seq order, after the head) to the
    /// foreign hooks and the subscribers. The caller holds [`Feed::publishing`].
    fn publish_foreign(&self, events: Vec<Arc<Event>>) {
        if events.is_empty() {
            return;
        }
        let hooks = self.foreign.read().unwrap_or_else(|p| p.into_inner());
        let every = self.every.read().unwrap_or_else(|p| p.into_inner());
        for ev in events {
            if ev.seq <= self.head.load(Ordering::Acquire) {
                continue;
            }
            for hook in hooks.iter().chain(every.iter()) {
                hook(&ev);
            }
            self.head.store(ev.seq, Ordering::Release);
            let _ = self.live.send(ev);
        }
    }

    /// Publishes this process's committed events to the event hooks and the subscribers.
    /// The caller holds [`Feed::publishing`].
    fn publish_own(&self, events: Vec<Arc<Event>>) {
        let every = self.every.read().unwrap_or_else(|p| p.into_inner());
        for ev in events {
            for hook in every.iter() {
                hook(&ev);
            }
            let _ = self.live.send(ev);
        }
    }

    fn publishing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.publish.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to the store: cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    backend: Arc<dyn Backend>,
    pub feed: Arc<Feed>,
    health: Arc<Health>,
    leases: Arc<leases::Leases>,
    /// The JetStream stream replays read first (set by [`spawn_relay`]).
    archive: Arc<std::sync::OnceLock<jetstream::Archive>>,
}

/// What a storage engine provides to [`Store`].
pub trait Backend: Send + Sync {
    /// A consistent read snapshot.
    fn snapshot(&self) -> Result<Box<dyn Reader + '_>>;
    /// True when other processes share this store (replicas on PostgreSQL).
    fn shared(&self) -> bool {
        false
    }
    /// Sends `message` to the other replicas' signal hooks (no other process: nothing).
    fn signal(&self, _message: &str) -> Result<()> {
        Ok(())
    }
    /// The replicas' [`Ephemeral`] state; None for a store of one process, whose callers
    /// keep that state in their own memory.
    fn ephemeral(&self) -> Option<&dyn Ephemeral> {
        None
    }
    /// The seq of the last event any process committed (None: only this process writes,
    /// so the feed is never behind).
    fn committed_head(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Short-lived state every replica must see the same, kept out of the durable log (lost
/// with the database's crash, which only refills buckets and voids challenges). Each call
/// is one atomic statement or transaction on the shared database, on that database's
/// clock.
pub trait Ephemeral: Send + Sync {
    /// Spends one request of bucket `key`: `rate` per second sustained, `burst` at once.
    /// `Ok(Err(wait))` when it is empty.
    fn spend(
        &self,
        key: &str,
        rate: f64,
        burst: u32,
    ) -> Result<std::result::Result<(), std::time::Duration>>;
    /// Records challenge `nonce`, live for `ttl_ms`, counted against `scope` (a client
    /// address) — unless `total` challenges are outstanding (`Ok(Err(false))`) or
    /// `per_scope` of that scope (`Ok(Err(true))`).
    fn issue_challenge(
        &self,
        nonce: &str,
        scope: Option<&str>,
        ttl_ms: i64,
        total: usize,
        per_scope: usize,
    ) -> Result<std::result::Result<(), bool>>;
    /// Consumes a challenge: true when it was outstanding and live.
    fn take_challenge(&self, nonce: &str) -> Result<bool>;
    /// Counts a failure under `key` in a window of `window_ms`: the count in the window.
    fn count_failure(&self, key: &str, window_ms: i64) -> Result<u32>;
    /// Forgets the failures under `key`.
    fn clear_failures(&self, key: &str) -> Result<()>;
    /// Reserves one send on `channel` to recipient `to`: at most `per_hour` sends in any
    /// hour on the channel (0: no limit) and `cooldown_ms` between two to one recipient
    /// (0: none). The reservation's id, to release when nothing was delivered.
    fn reserve_send(
        &self,
        channel: &str,
        to: &str,
        per_hour: u32,
        cooldown_ms: i64,
    ) -> Result<std::result::Result<i64, SendRefusal>>;
    /// Undoes a reservation of [`Ephemeral::reserve_send`].
    fn release_send(&self, id: i64) -> Result<()>;
    /// One alert under `key` per window of `window_ms`: `Some(n)` when this one is due (n
    /// were suppressed in the window before), None when it is suppressed.
    fn admit_alert(&self, key: &str, window_ms: i64) -> Result<Option<u64>>;
    /// Records the outcome of a send or probe on `channel` (`connected` None: unchanged);
    /// returns the connection state it had, so one replica reports each flip.
    fn mark_channel(
        &self,
        channel: &str,
        ok: bool,
        last_error: &str,
        connected: Option<bool>,
    ) -> Result<Option<bool>>;
    /// A channel's last observed health and the sends of its last hour.
    fn channel_state(&self, channel: &str) -> Result<(Option<ChannelMark>, u32)>;
}

/// A channel's last observed health, as the replicas share it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelMark {
    /// Whether the last send or probe succeeded.
    pub ok: bool,
    pub last_error: String,
    /// Credentials accepted and provider reachable (None: not known yet).
    pub connected: Option<bool>,
    /// When it was observed, in ms since the epoch.
    pub checked_ms: i64,
}

/// Why [`Ephemeral::reserve_send`] refused a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefusal {
    /// `sent` went out in the last hour; the oldest of them leaves it in `free_ms`.
    PerHour { sent: u64, free_ms: i64 },
    /// The recipient got a message `ago_ms` ago; the cooldown ends in `left_ms`.
    Cooldown { ago_ms: i64, left_ms: i64 },
}

impl Store {
    /// Runs `f` in the next group commit; resolves after the commit is durable.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Txn) -> Result<R> + Send + 'static,
    {
        self.write_then(f, |_| {}).await
    }

    /// Like [`Store::write`], and runs `on_commit` on the writer thread right after the
    /// commit, in commit order, before the caller resumes. Use it for in-memory state that
    /// must follow commit order (a session's run queue).
    pub async fn write_then<R, F, H>(&self, f: F, on_commit: H) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Txn) -> Result<R> + Send + 'static,
        H: FnOnce(&R) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let reply = Reply {
            tx: Some(tx),
            health: self.health.clone(),
        };
        let job: Job = Box::new(move |txn| {
            let out = f(txn);
            Box::new(move |committed: Result<()>| {
                let out = committed.and(out);
                if let Ok(r) = &out {
                    on_commit(r);
                }
                reply.send(out);
            })
        });
        self.jobs.send(job).await.map_err(|_| self.health.error())?;
        rx.await.map_err(|_| self.health.error())?
    }

    /// Queues `f` for the next group commit without waiting for the commit (streamed
    /// deltas: nobody needs their acknowledgement). It awaits only room in the queue, so a
    /// full queue slows the caller (the delta pump) instead of blocking a runtime worker
    /// or dropping the write; jobs are FIFO, so writes queued after it (the run's
    /// terminal event) commit after it.
    pub async fn write_detached<F>(&self, f: F)
    where
        F: FnOnce(&mut dyn Txn) -> Result<()> + Send + 'static,
    {
        if self.jobs.send(detached(f)).await.is_err() {
            tracing::warn!(error = %self.health.error(), "a detached write was dropped");
        }
    }

    /// [`Store::write_detached`] for synchronous code (callbacks): queued at once when
    /// there is room, else from a spawned task, so its order relative to later writes is
    /// not kept. For independent appends only (security alerts).
    pub fn spawn_write_detached<F>(&self, f: F)
    where
        F: FnOnce(&mut dyn Txn) -> Result<()> + Send + 'static,
    {
        match self.jobs.try_send(detached(f)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                let (jobs, health) = (self.jobs.clone(), self.health.clone());
                let send = async move {
                    if jobs.send(job).await.is_err() {
                        tracing::warn!(error = %health.error(), "a detached write was dropped");
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn(send)),
                    Err(_) => tracing::warn!(
                        "store queue full outside a runtime; a detached write was dropped"
                    ),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!(error = %self.health.error(), "a detached write was dropped");
            }
        }
    }

    /// Resolves when the writer has stopped after a panic, with what it panicked with.
    /// The gateway stops on it: a store that cannot write must not keep serving.
    pub async fn failed(&self) -> String {
        self.health.failed.cancelled().await;
        self.health.failure.get().cloned().unwrap_or_default()
    }

    /// Up to `limit` events after `after`, in seq order: from the JetStream stream while it
    /// holds them (`events.nats.url`), else from the log. Either way the same events.
    pub async fn replay(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        if let Some(archive) = self.archive.get()
            && let Some(page) = archive.events_after(after, limit).await
            && !page.is_empty()
        {
            return Ok(page);
        }
        self.read(|r| r.events_after(after, limit))
    }

    /// Runs `f` against a read snapshot.
    pub fn read<R>(&self, f: impl FnOnce(&dyn Reader) -> Result<R>) -> Result<R> {
        let snap = self.backend.snapshot()?;
        f(snap.as_ref())
    }

    /// True when other gateway processes (replicas) share this store: runs, the feed and
    /// the limits are then coordinated through it.
    pub fn shared(&self) -> bool {
        self.backend.shared()
    }

    /// Waits (at most `patience`) until this process's feed has applied every event
    /// committed anywhere before the call, so in-memory indexes kept in step by
    /// [`ForeignHook`]s are as fresh as the store. For a lookup that missed and may have
    /// missed only because another replica's change is still on its way; immediate for
    /// a store of one process.
    pub fn catch_up(&self, patience: std::time::Duration) -> Result<()> {
        let Some(head) = self.backend.committed_head()? else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + patience;
        let wait = || {
            while self.feed.head.load(Ordering::Acquire) < head
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
        Ok(())
    }

    /// The replicas' shared short-lived state (None: one process; see [`Ephemeral`]).
    pub fn ephemeral(&self) -> Option<&dyn Ephemeral> {
        self.backend.ephemeral()
    }

    /// Registers a [`ForeignHook`].
    pub fn on_foreign(&self, hook: ForeignHook) {
        self.feed
            .foreign
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Keeps state in step with every event: `init` reads a snapshot, then `hook` gets
    /// every event published after the feed's head at that moment, in seq order. Events the
    /// snapshot already holds may come again (it can be ahead of the feed); a hook that
    /// sets what an event says converges all the same.
    pub fn follow_all(
        &self,
        init: impl FnOnce(&dyn Reader) -> Result<()>,
        hook: EventHook,
    ) -> Result<()> {
        let _publishing = self.feed.publishing();
        self.read(init)?;
        self.feed
            .every
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
        Ok(())
    }

    /// Registers a [`SignalHook`].
    pub fn on_signal(&self, hook: SignalHook) {
        self.feed
            .signals
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Tells the other replicas something that needs no record (e.g. "cancel this running
    /// run"): best effort, at most once, not durable; a replica that is reconnecting misses it.
    pub fn signal(&self, message: &str) -> Result<()> {
        self.backend.signal(message)
    }

    /// Last published event seq.
    pub fn head(&self) -> u64 {
        self.feed.head.load(Ordering::Acquire)
    }

    /// Number of sessions as of the last commit.
    pub fn session_count(&self) -> u64 {
        self.feed.sessions.load(Ordering::Acquire)
    }

    /// Oldest retained event seq.
    pub fn oldest(&self) -> u64 {
        self.feed.oldest.load(Ordering::Acquire)
    }
}

fn detached<F>(f: F) -> Job
where
    F: FnOnce(&mut dyn Txn) -> Result<()> + Send + 'static,
{
    Box::new(move |txn| {
        let out = f(txn);
        Box::new(move |committed: Result<()>| {
            if let Err(e) = committed.and(out) {
                tracing::warn!(error = %e, "detached write failed");
            }
        })
    })
}

#[cfg(test)]
mod tests;
