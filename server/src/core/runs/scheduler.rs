//! The run scheduler's state: per-session queues (runs of one session execute one at a time
//! in acceptance order), the executor slots (`agents.defaults.maxConcurrent`), cancellation
//! handles of running runs, pending heartbeats and the counts `Status` reports. It knows run
//! ids and session keys only; what a run does is `runs.rs`.

use clawplane_util::sync::lock;
use futures::FutureExt as _;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Per-session run queue.
#[derive(Default)]
struct SessionQueue {
    driving: bool,
    queue: VecDeque<String>,
}

pub struct Scheduler {
    queues: Mutex<HashMap<String, SessionQueue>>,
    /// Cancellation handles of running runs.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Sessions with a heartbeat run queued and not yet started.
    pending_heartbeats: Mutex<HashSet<String>>,
    /// Sessions whose runs this process executes (with replicas, the store's
    /// `claim_session` decides; runs accepted elsewhere for them are queued here).
    owned: Mutex<HashSet<String>>,
    slots: Arc<Semaphore>,
    queued: AtomicU64,
    running_count: AtomicU64,
}

impl Scheduler {
    pub fn new(max_concurrent: usize) -> Scheduler {
        Scheduler {
            queues: Mutex::default(),
            running: Mutex::default(),
            pending_heartbeats: Mutex::default(),
            owned: Mutex::default(),
            slots: Arc::new(Semaphore::new(max_concurrent)),
            queued: AtomicU64::new(0),
            running_count: AtomicU64::new(0),
        }
    }

    /// Runs waiting across the gateway.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs waiting in one session's queue.
    pub fn queued_in(&self, session_key: &str) -> usize {
        lock(&self.queues)
            .get(session_key)
            .map_or(0, |q| q.queue.len())
    }

    /// (queued, running) for `Status`.
    pub fn counts(&self) -> (u64, u64) {
        (self.queued(), self.running_count.load(Ordering::Relaxed))
    }

    /// Puts a run at the back of its session's queue; true when the session has no driver
    /// yet and the caller must start one.
    pub fn push(&self, session_key: &str, run_id: &str) -> bool {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let mut queues = lock(&self.queues);
        let q = queues.entry(session_key.to_string()).or_default();
        q.queue.push_back(run_id.to_string());
        !std::mem::replace(&mut q.driving, true)
    }

    /// The session's next run; `None` ends its driver (the queue is removed when empty).
    pub fn pop(&self, session_key: &str) -> Option<String> {
        let mut queues = lock(&self.queues);
        let q = queues.get_mut(session_key)?;
        let next = q.queue.pop_front();
        if next.is_none() {
            queues.remove(session_key);
        }
        next
    }

    /// A session's driver: pops its runs one at a time, waits for an executor slot, and
    /// hands each to `exec`. A panic in `exec` is logged and the driver carries on with the
    /// next run; if the driver itself ends early (draining, a panic outside `exec`), the
    /// session is released, so the next accepted run starts a new driver that drains the
    /// rest. Either way the session is never left marked busy with nobody driving it.
    pub async fn drive<F, Fut>(&self, session_key: &str, draining: &AtomicBool, mut exec: F)
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut guard = DriverGuard {
            scheduler: self,
            session_key,
            armed: true,
        };
        loop {
            if draining.load(Ordering::Acquire) {
                // Shutting down: queued runs stay QUEUED and resume on the next start.
                return;
            }
            let Some(next) = self.pop(session_key) else {
                guard.armed = false; // `pop` removed the queue: a new push starts a driver
                return;
            };
            // Still queued while it waits for an executor slot.
            let Some(permit) = self.slot().await else {
                self.requeue_front(session_key, next);
                return;
            };
            if draining.load(Ordering::Acquire) {
                // Still QUEUED in the store: resumes on the next start.
                self.requeue_front(session_key, next);
                return;
            }
            self.dequeued();
            let run_id = next.clone();
            if let Err(panic) = AssertUnwindSafe(exec(next)).catch_unwind().await {
                tracing::error!(run_id = %run_id, panic = %panic_message(&*panic), "run driver caught a panic");
            }
            drop(permit);
        }
    }

    /// Puts a popped run back at the head of its queue (the driver stops before it).
    fn requeue_front(&self, session_key: &str, run_id: String) {
        lock(&self.queues)
            .entry(session_key.to_string())
            .or_default()
            .queue
            .push_front(run_id);
    }

    /// Notes that this process executes the session's runs.
    pub fn own(&self, session_key: &str) {
        lock(&self.owned).insert(session_key.to_string());
    }

    /// Notes that it no longer does (released, or taken over by another replica).
    pub fn disown(&self, session_key: &str) {
        lock(&self.owned).remove(session_key);
    }

    pub fn owns(&self, session_key: &str) -> bool {
        lock(&self.owned).contains(session_key)
    }

    /// Forgets every owned session and cancels every running run: this replica was
    /// declared dead and others have taken its sessions over.
    pub fn disown_all(&self) {
        lock(&self.owned).clear();
        for token in lock(&self.running).values() {
            token.cancel();
        }
    }

    /// True while the session has queued runs or a driver.
    pub fn busy(&self, session_key: &str) -> bool {
        lock(&self.queues).contains_key(session_key)
    }

    /// An executor slot; the run still counts as queued while it waits for one.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// The run left the queue for execution.
    pub fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// Registers a running run's cancellation handle until the guard drops.
    pub fn start(&self, run_id: &str) -> (CancellationToken, RunningGuard<'_>) {
        let token = CancellationToken::new();
        lock(&self.running).insert(run_id.to_string(), token.clone());
        (
            token,
            RunningGuard {
                scheduler: self,
                run_id: run_id.to_string(),
            },
        )
    }

    /// Cancels a running run; false when it is not running here.
    pub fn cancel(&self, run_id: &str) -> bool {
        match lock(&self.running).get(run_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Counts a run as executing (model and delivery) while the guard lives.
    pub fn executing(&self) -> ExecutingGuard<'_> {
        self.running_count.fetch_add(1, Ordering::Relaxed);
        ExecutingGuard(self)
    }

    /// True when a heartbeat run for the session is queued and not yet started; marks one
    /// as pending otherwise.
    pub fn claim_heartbeat(&self, session_key: &str) -> bool {
        lock(&self.pending_heartbeats).insert(session_key.to_string())
    }

    pub fn release_heartbeat(&self, session_key: &str) {
        lock(&self.pending_heartbeats).remove(session_key);
    }
}

/// Releases a session whose driver ends before its queue is empty (see
/// [`Scheduler::drive`]). While armed, the session's queue entry and its `driving` flag
/// belong to this driver, so clearing the flag cannot race another driver.
struct DriverGuard<'a> {
    scheduler: &'a Scheduler,
    session_key: &'a str,
    armed: bool,
}

impl Drop for DriverGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(q) = lock(&self.scheduler.queues).get_mut(self.session_key)
        {
            q.driving = false;
        }
    }
}

/// What a panic carried, for the log.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

/// Removes a run's cancellation handle however execution ends.
pub struct RunningGuard<'a> {
    scheduler: &'a Scheduler,
    run_id: String,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        lock(&self.scheduler.running).remove(&self.run_id);
    }
}

/// Ends a run's "executing" count however execution ends.
pub struct ExecutingGuard<'a>(&'a Scheduler);

impl Drop for ExecutingGuard<'_> {
    fn drop(&mut self) {
        self.0.running_count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_keep_acceptance_order_per_session() {
        let s = Scheduler::new(1);
        assert!(s.push("a", "1"), "the first run starts a driver");
        assert!(!s.push("a", "2"), "one driver per session");
        assert!(s.push("b", "3"));
        assert_eq!((s.queued(), s.queued_in("a")), (3, 2));
        assert_eq!(s.pop("a").as_deref(), Some("1"));
        s.dequeued();
        assert_eq!(s.pop("a").as_deref(), Some("2"));
        s.dequeued();
        assert_eq!(s.pop("a"), None);
        assert!(s.push("a", "4"), "an emptied session needs a new driver");
        let (token, guard) = s.start("4");
        assert!(s.cancel("4") && token.is_cancelled());
        drop(guard);
        assert!(!s.cancel("4"));
        let e = s.executing();
        assert_eq!(s.counts().1, 1);
        drop(e);
        assert_eq!(s.counts().1, 0);
        assert!(s.claim_heartbeat("a") && !s.claim_heartbeat("a"));
        s.release_heartbeat("a");
        assert!(s.claim_heartbeat("a"));
    }

    #[tokio::test]
    async fn a_panicking_run_does_not_stop_its_session() {
        let s = Scheduler::new(1);
        let draining = AtomicBool::new(false);
        assert!(s.push("a", "1") && !s.push("a", "2"));
        let ran = Mutex::new(Vec::new());
        s.drive("a", &draining, |id| {
            let ran = &ran;
            async move {
                if id == "1" {
                    panic!("a bug while executing run 1");
                }
                lock(ran).push(id);
            }
        })
        .await;
        assert_eq!(*lock(&ran), ["2"], "the next run in the session still ran");
        assert_eq!(s.counts(), (0, 0));
        assert!(s.push("a", "3"), "the emptied session gets a new driver");
    }

    #[tokio::test]
    async fn a_driver_that_stops_early_releases_its_session() {
        let s = Scheduler::new(1);
        let draining = AtomicBool::new(true);
        assert!(s.push("a", "1"));
        s.drive("a", &draining, |_| async { unreachable!("draining") })
            .await;
        assert_eq!(s.queued_in("a"), 1, "the run stays queued");
        assert!(s.push("a", "2"), "the released session gets a new driver");
        draining.store(false, Ordering::Release);
        let ran = Mutex::new(Vec::new());
        s.drive("a", &draining, |id| {
            let ran = &ran;
            async move { lock(ran).push(id) }
        })
        .await;
        assert_eq!(*lock(&ran), ["1", "2"], "in acceptance order");
    }
}
