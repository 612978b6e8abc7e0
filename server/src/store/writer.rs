//! The group-commit writer every backend shares: one thread takes the queued write jobs,
//! runs everything queued while the previous commit was syncing in one transaction of the
//! backend's [`Engine`], publishes the committed events, then answers the callers in commit
//! order. A panic in a write closure or a commit hook stops it for good (see
//! [`stop_after_panic`]).

use super::{Backend, Completion, Feed, Health, Job, QUEUE, Store};
use crate::error::{Error, Result};
use clawplane_proto::v1::Event;
use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, atomic::Ordering},
};
use tokio::sync::mpsc;

/// One storage engine's write side.
pub(super) trait Engine: Send + 'static {
    /// Runs the jobs of `batch` (front first) in one transaction and commits it durably,
    /// pushing each job's completion and the events it appended. A shared backend also
    /// pushes to `foreign` the events other replicas committed after the feed's head and
    /// before this batch. Returns the feed's new head, oldest retained seq and session
    /// count. On error nothing was committed.
    fn commit_batch(
        &mut self,
        feed: &Feed,
        batch: &mut VecDeque<Job>,
        completions: &mut Vec<Completion>,
        foreign: &mut Vec<Arc<Event>>,
        published: &mut Vec<Arc<Event>>,
    ) -> Result<(u64, u64, u64)>;
}

/// Starts the writer thread for `engine` and returns the store around it.
pub(super) fn spawn_writer(
    engine: impl Engine,
    feed: Arc<Feed>,
    backend: Arc<dyn Backend>,
) -> Result<Store> {
    let (jobs, rx) = mpsc::channel::<Job>(QUEUE);
    let health = Arc::new(Health::default());
    let (writer_feed, writer_health) = (feed.clone(), health.clone());
    std::thread::Builder::new()
        .name("clawplane-store-writer".into())
        .spawn(move || writer(engine, writer_feed, rx, writer_health))
        .map_err(|e| Error::Storage(e.to_string()))?;
    Ok(Store {
        jobs,
        backend,
        feed,
        health,
        leases: Arc::default(),
        archive: Arc::default(),
    })
}

/// What a panic carried, for the log and the callers' error.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

fn writer(
    mut engine: impl Engine,
    feed: Arc<Feed>,
    mut rx: mpsc::Receiver<Job>,
    health: Arc<Health>,
) {
    const MAX_BATCH: usize = 4096;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = VecDeque::from([first]);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push_back(job),
                Err(_) => break,
            }
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let mut published: Vec<Arc<Event>> = Vec::new();
        let mut foreign: Vec<Arc<Event>> = Vec::new();
        // Held until the completions ran: events from other replicas (a follower) wait, so
        // every subscriber and every commit hook sees one seq order.
        let publishing = feed.publishing();
        // The jobs not yet run stay in `batch` if one panics, so they are failed with the
        // recorded failure rather than dropped mid-unwind.
        let result = catch_unwind(AssertUnwindSafe(|| {
            engine.commit_batch(
                &feed,
                &mut batch,
                &mut completions,
                &mut foreign,
                &mut published,
            )
        }));
        let result = match result {
            Ok(r) => r,
            Err(panic) => {
                // Nothing of this batch was committed: the transaction unwound unfinished.
                let failure = format!("a write transaction panicked: {}", panic_message(&*panic));
                return stop_after_panic(&health, failure, rx, batch, completions);
            }
        };
        match &result {
            Ok((head, oldest, sessions)) => {
                feed.publish_foreign(foreign);
                feed.head.store(*head, Ordering::Release);
                feed.oldest.store(*oldest, Ordering::Release);
                feed.sessions.store(*sessions, Ordering::Release);
                feed.publish_own(published);
            }
            Err(e) => tracing::error!(error = %e, "group commit failed"),
        }
        let outcome = result.map(|_| ());
        let mut completions = completions.into_iter();
        let hooks = catch_unwind(AssertUnwindSafe(|| {
            for done in completions.by_ref() {
                done(
                    outcome
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| Error::Storage(e.to_string())),
                );
            }
        }));
        if let Err(panic) = hooks {
            // The batch is durable; callers whose hook had not run yet get an error for
            // committed work (a retry finds it through its idempotency key).
            let failure = format!("a commit hook panicked: {}", panic_message(&*panic));
            drop(publishing);
            return stop_after_panic(&health, failure, rx, VecDeque::new(), completions.collect());
        }
        drop(publishing);
    }
}

/// The writer's end after a panic: logs it, records it (so every caller — pending, queued
/// or later — gets a Storage error naming it), and wakes [`Store::failed`], on which the
/// gateway stops. It does not carry on: a panic is a bug, and the in-memory state that
/// commit hooks keep (session queues) may no longer follow the store.
fn stop_after_panic(
    health: &Health,
    failure: String,
    mut rx: mpsc::Receiver<Job>,
    unrun: VecDeque<Job>,
    uncompleted: Vec<Completion>,
) {
    tracing::error!(
        failure = %failure,
        "the store writer stopped: every pending and later write fails; the gateway stops"
    );
    health.fail(failure);
    rx.close();
    for done in uncompleted {
        done(Err(health.error()));
    }
    drop(unrun);
    while rx.try_recv().is_ok() {}
}
