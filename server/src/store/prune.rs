//! Retention: a periodic task that deletes finished runs (with their idempotency keys) and
//! timed records (sent-message receipts, SendMessage answers) past their age. Each batch is
//! one bounded write transaction, so the writer serves other writes between batches.

use super::{Store, Txn};
use crate::error::Result;
use clawplane_util::time::now_ms;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What to prune and how often (from `retention.*`).
#[derive(Debug, Clone)]
pub struct Retention {
    /// Terminal runs that ended longer ago than this are deleted; `None` keeps them.
    pub runs: Option<Duration>,
    /// Timed record kinds ([`super::Record::TIMED`]) and their ages.
    pub records: Vec<(&'static str, Duration)>,
    /// Time between passes.
    pub every: Duration,
    /// Most deletions per transaction.
    pub batch: usize,
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub runs: usize,
    pub records: usize,
}

/// The setting that marks a timed kind's pre-existing records as given a write time.
fn backfilled(kind: &str) -> String {
    format!("retention.timed.{kind}")
}

fn cutoff(age: Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// One pass: batches until nothing past its age is left.
    pub async fn prune(&self, r: &Retention) -> Result<Pruned> {
        let batch = r.batch.max(1);
        let mut pruned = Pruned::default();
        if let Some(age) = r.runs {
            let cutoff = cutoff(age);
            let mut after = 0;
            loop {
                let (n, next) = self
                    .write(move |tx: &mut dyn Txn| tx.prune_runs(cutoff, after, batch))
                    .await?;
                pruned.runs += n;
                match next {
                    Some(order) => after = order,
                    None => break,
                }
            }
        }
        for &(kind, age) in &r.records {
            self.backfill(kind, batch).await?;
            let cutoff = cutoff(age);
            loop {
                let n = self
                    .write(move |tx: &mut dyn Txn| tx.prune_records(kind, cutoff, batch))
                    .await?;
                pruned.records += n;
                if n < batch {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    /// Records a kind held before it was timed get a write time of now (once per kind), so
    /// they expire one age from the upgrade instead of never.
    async fn backfill(&self, kind: &'static str, batch: usize) -> Result<()> {
        if self.read(|r| r.setting(&backfilled(kind)))?.is_some() {
            return Ok(());
        }
        let mut after = String::new();
        loop {
            let from = std::mem::take(&mut after);
            let next = self
                .write(move |tx: &mut dyn Txn| {
                    let next = tx.backfill_record_times(kind, &from, now_ms(), batch)?;
                    if next.is_none() {
                        tx.put_setting(&backfilled(kind), "1")?;
                    }
                    Ok(next)
                })
                .await?;
            match next {
                Some(k) => after = k,
                None => return Ok(()),
            }
        }
    }
}

/// The duty of pruning.
const PRUNER: &str = "retention";

/// Prunes at start and then every `r.every` until `shutdown`. A failed pass is logged and
/// retried on the next tick.
pub fn spawn_pruner(store: Store, r: Retention, shutdown: CancellationToken) {
    if r.runs.is_none() && r.records.is_empty() {
        return;
    }
    // With replicas, the holder of the duty prunes (deleting twice is harmless, but wasted).
    store.want(PRUNER);
    tokio::spawn(async move {
        loop {
            let pass = if store.holds(PRUNER) {
                store.prune(&r).await
            } else {
                Ok(Pruned::default())
            };
            match pass {
                Ok(p) if p != Pruned::default() => {
                    tracing::info!(runs = p.runs, records = p.records, "retention: pruned")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention: pruning failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(r.every) => {}
            }
        }
    });
}
