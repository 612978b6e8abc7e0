//! Cancelling, waiting, reading and listing runs; crash recovery at start.

use super::{Runs, execute::Outcome, is_final, is_terminal, run_event};
use crate::models::ModelReply;
use crate::{
    error::{Error, Result},
    store::Txn,
};
use clawplane_proto::now_ts;
use clawplane_proto::v1::{DeliveryStatus, Run, RunError, RunState, event::Payload};
use clawplane_util::sync::lock;
use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use tokio::sync::broadcast::error::RecvError;

impl Runs {
    /// Cancels a run: a queued run is cancelled in place, a running one is signalled and
    /// awaited (briefly). Terminal runs are returned unchanged.
    pub async fn cancel(self: &Arc<Self>, run_id: &str) -> Result<Run> {
        let run = self.get_run(run_id)?;
        if is_terminal(run.state) {
            return Ok(run);
        }
        let id = run_id.to_string();
        let cancelled = self
            .store
            .write(move |tx: &mut dyn Txn| {
                let Some(mut stored) = tx.run(&id)? else {
                    return Err(Error::RunNotFound(id));
                };
                if stored.run.state != RunState::Queued as i32 {
                    return Ok(None);
                }
                stored.run.state = RunState::Cancelled as i32;
                stored.run.end_time = Some(now_ts());
                stored.run.error = Some(RunError {
                    reason: "RUN_CANCELLED".into(),
                    message: "the run was cancelled before it started".into(),
                });
                super::delivery::settle_unsent(&mut stored.run);
                tx.put_run(&stored)?;
                tx.append_event(run_event(&stored.run))?;
                Ok(Some(stored.run))
            })
            .await?;
        if let Some(run) = cancelled {
            return Ok(run);
        }
        if !self.scheduler.cancel(run_id) && self.store.shared() {
            // Running on another replica: tell it (see `follow_replicas`).
            self.store.signal(&format!("{CANCEL}{run_id}"))?;
        }
        Ok(self.wait(run_id, Duration::from_secs(10)).await?.0)
    }

    /// Cancels every queued and running run of a session (or just `only`).
    pub async fn abort_session(
        self: &Arc<Self>,
        session_key: &str,
        only: &str,
    ) -> Result<Vec<String>> {
        let active = self.store.read(|r| r.active_runs())?;
        let mut ids = Vec::new();
        for s in active
            .into_iter()
            .filter(|s| s.run.session_key == session_key)
        {
            if !only.is_empty() && s.run.run_id != only {
                continue;
            }
            let run = self.cancel(&s.run.run_id).await?;
            if run.state == RunState::Cancelled as i32 {
                ids.push(run.run_id);
            }
        }
        Ok(ids)
    }

    /// Returns a run.
    pub fn get_run(&self, run_id: &str) -> Result<Run> {
        let id = run_id.strip_prefix("runs/").unwrap_or(run_id);
        self.store
            .read(|r| r.run(id))?
            .map(|s| s.run)
            .ok_or_else(|| Error::RunNotFound(id.to_string()))
    }

    /// The id of the run `scope` started with idempotency key `key`.
    pub fn run_id_for_key(&self, scope: &str, key: &str) -> Result<String> {
        let record = super::idem_record_key(scope, key);
        let found = self
            .store
            .read(|r| r.idempotency(&record))?
            .map(|rec| rec.run_id);
        found.ok_or_else(|| Error::KeyNotFound(key.to_string()))
    }

    /// Waits until the run is terminal or `limit` passes; returns (run, done).
    pub async fn wait(&self, run_id: &str, limit: Duration) -> Result<(Run, bool)> {
        let mut live = self.store.feed.live.subscribe();
        let mut run = self.get_run(run_id)?;
        let deadline = tokio::time::Instant::now() + limit;
        while !is_final(&run) {
            match tokio::time::timeout_at(deadline, live.recv()).await {
                Err(_) => return Ok((run, false)),
                Ok(Ok(ev)) => {
                    if ev.run_id == run.run_id
                        && let Some(Payload::Run(r)) = &ev.payload
                    {
                        run = r.clone();
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => run = self.get_run(run_id)?,
                Ok(Err(RecvError::Closed)) => return Ok((self.get_run(run_id)?, false)),
            }
        }
        Ok((run, true))
    }

    /// Lists runs newest first. `page_token` is the order to continue below.
    pub fn list_runs(
        &self,
        session_key: Option<&str>,
        states: &[i32],
        page_size: usize,
        page_token: &str,
    ) -> Result<(Vec<Run>, String)> {
        let before = if page_token.is_empty() {
            u64::MAX
        } else {
            page_token.parse::<u64>().map_err(|_| {
                Error::field(
                    "pageToken",
                    "is not a token from a previous ListRuns response",
                )
            })?
        };
        let mut keep = |r: &Run| states.is_empty() || states.contains(&r.state);
        let rows = self
            .store
            .read(|r| r.runs_desc(session_key, before, page_size + 1, &mut keep))?;
        let next = if rows.len() > page_size {
            rows[page_size - 1].order.to_string()
        } else {
            String::new()
        };
        Ok((
            rows.into_iter().take(page_size).map(|s| s.run).collect(),
            next,
        ))
    }

    /// Counts for Status: the cluster's with replicas.
    pub fn run_counts(&self) -> (u64, u64) {
        match self.gauge.get() {
            Some(g) => lock(g).counts(),
            None => self.scheduler.counts(),
        }
    }

    /// Runs waiting (queued, not running) across the gateway and in one session: the
    /// cluster's with replicas, as of this replica's feed.
    pub(super) fn queue_depths(&self, session_key: &str) -> (u64, usize) {
        match self.gauge.get() {
            Some(g) => {
                let g = lock(g);
                (g.counts().0, g.queued_in(session_key))
            }
            None => (
                self.scheduler.queued(),
                self.scheduler.queued_in(session_key),
            ),
        }
    }

    /// At start: a RUNNING run whose stored reply was being sent is settled as SUCCEEDED with
    /// delivery UNKNOWN (the model is not run again, the reply not sent again); other
    /// RUNNING runs become INTERRUPTED and are retried once; QUEUED runs resume in
    /// acceptance order. With replicas, the same happens to the runs of sessions this
    /// replica takes over, at every heartbeat (see [`Runs::beat`]); at start it takes
    /// those of replicas whose lease ran out and those nobody owns.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        if self.store.shared() {
            self.follow_replicas()?;
            self.beat().await?;
            let runs = self.clone();
            tokio::spawn(async move { runs.heartbeats().await });
            return Ok(());
        }
        let runs = self.clone();
        let unsure = self
            .store
            .write_then(
                |tx: &mut dyn Txn| recover_runs(tx, |_| true),
                move |(resume, _)| runs.resume(resume),
            )
            .await?
            .1;
        self.settle_unsure(unsure).await
    }

    /// Queues recovered runs, in acceptance order, on the writer thread (so runs accepted
    /// for the same sessions after this commit queue behind them).
    fn resume(self: &Arc<Self>, resume: &[(String, String)]) {
        if !resume.is_empty() {
            tracing::info!(runs = resume.len(), "resuming runs another process left");
        }
        for (key, id) in resume {
            self.scheduler.own(key);
            self.enqueue(key, id);
        }
    }

    async fn settle_unsure(self: &Arc<Self>, unsure: Vec<Run>) -> Result<()> {
        for run in unsure {
            tracing::warn!(run_id = %run.run_id, "the gateway stopped while sending this run's reply; its delivery is UNKNOWN");
            let reply = ModelReply {
                text: run.reply_text.clone(),
                usage: run.usage.unwrap_or_default(),
                model: run.model.clone(),
            };
            let mut d = run.delivery.clone().unwrap_or_default();
            d.status = DeliveryStatus::Unknown as i32;
            d.reason = "DELIVERY_UNKNOWN".into();
            d.detail = format!(
                "the gateway stopped while sending the reply to {}; {} may or may not have it, and it was not sent again",
                d.channel, d.channel
            );
            self.finish(run, Outcome::Succeeded(reply), Some(d)).await?;
        }
        Ok(())
    }

    /// Runs accepted on other replicas for sessions owned here are queued here; runs
    /// cancelled there while running here are cancelled; every replica's runs are counted
    /// (the gauge, from the active runs stored and then every run event).
    fn follow_replicas(self: &Arc<Self>) -> Result<()> {
        let weak = Arc::downgrade(self);
        self.store.follow_all(
            |r| {
                let mut g = super::gauge::Gauge::default();
                for s in r.active_runs()? {
                    g.apply(&s.run.run_id, &s.run.session_key, s.run.state());
                }
                let _ = self.gauge.set(std::sync::Mutex::new(g));
                Ok(())
            },
            Box::new(move |ev| {
                if let Some(Payload::Run(r)) = &ev.payload
                    && let Some(runs) = weak.upgrade()
                    && let Some(g) = runs.gauge.get()
                {
                    lock(g).apply(&r.run_id, &r.session_key, r.state());
                }
            }),
        )?;
        let weak = Arc::downgrade(self);
        self.store.on_signal(Box::new(move |message| {
            if let (Some(runs), Some(id)) = (weak.upgrade(), message.strip_prefix(CANCEL)) {
                runs.scheduler.cancel(id);
            }
        }));
        let weak = Arc::downgrade(self);
        self.store.on_foreign(Box::new(move |ev| {
            let Some(runs) = weak.upgrade() else { return };
            if let Some(Payload::Run(r)) = &ev.payload
                && r.state == RunState::Queued as i32
                && runs.scheduler.owns(&r.session_key)
            {
                runs.enqueue(&r.session_key, &r.run_id);
            }
        }));
        Ok(())
    }

    /// The heartbeat loop of a replica (every tenth of the lease) until shutdown.
    async fn heartbeats(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.lease / 10);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.shutdown.cancelled() => return,
            }
            if self.draining.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, "replica heartbeat failed");
            }
        }
    }

    /// One heartbeat: stay a member, take over the sessions of replicas whose lease ran
    /// out (recovering their runs as a restart would), and let go of everything if this
    /// replica was itself declared dead.
    async fn beat(self: &Arc<Self>) -> Result<()> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let wanted = self.store.wanted();
        let runs = self.clone();
        let unsure = self
            .store
            .write_then(
                move |tx: &mut dyn Txn| {
                    let beat = tx.heartbeat(lease_ms)?;
                    let held = tx.hold(&wanted)?;
                    let taken: HashSet<String> = beat.taken.into_iter().collect();
                    let (resume, unsure) = if taken.is_empty() {
                        Default::default()
                    } else {
                        recover_runs(tx, |r| taken.contains(&r.session_key))?
                    };
                    Ok((beat.evicted, taken, resume, unsure, held))
                },
                move |(evicted, taken, resume, _, held)| {
                    if *evicted {
                        tracing::warn!(
                            "this replica missed its lease; its runs are recovered here or taken over by others"
                        );
                        runs.scheduler.disown_all();
                    }
                    if !taken.is_empty() {
                        tracing::info!(
                            sessions = taken.len(),
                            "took over sessions another replica left"
                        );
                    }
                    for key in taken {
                        runs.scheduler.own(key);
                    }
                    runs.resume(resume);
                    runs.store.set_held(held.iter().cloned());
                },
            )
            .await?
            .3;
        self.settle_unsure(unsure).await
    }

    /// Graceful stop of a replica: its sessions are left for the others (their queued runs
    /// run there).
    pub async fn leave(&self) {
        if self.store.shared()
            && let Err(e) = self.store.write(|tx: &mut dyn Txn| tx.leave()).await
        {
            tracing::warn!(error = %e, "cannot leave the replica set; the lease will expire");
        }
    }

    /// True when a heartbeat run for the session is queued and not yet started; marks one
    /// as pending otherwise.
    pub(crate) fn claim_heartbeat(&self, session_key: &str) -> bool {
        self.scheduler.claim_heartbeat(session_key)
    }

    pub(crate) fn release_heartbeat(&self, session_key: &str) {
        self.scheduler.release_heartbeat(session_key);
    }
}

/// The signal that asks the replica running a run to cancel it.
const CANCEL: &str = "cancel:";

/// Recovers the active runs `keep` selects (see [`Runs::recover`]): returns the runs to
/// queue (session, run id) in acceptance order and the runs whose reply may have been sent.
#[allow(clippy::type_complexity)]
fn recover_runs(
    tx: &mut dyn Txn,
    keep: impl Fn(&Run) -> bool,
) -> Result<(Vec<(String, String)>, Vec<Run>)> {
    let mut resume = Vec::new();
    let mut unsure = Vec::new();
    for mut stored in tx.active_runs()? {
        if !keep(&stored.run) {
            continue;
        }
        let sending = stored
            .run
            .delivery
            .as_ref()
            .is_some_and(|d| d.status == DeliveryStatus::Sending as i32);
        if stored.run.state == RunState::Running as i32 && sending {
            // The reply was stored and being sent: settle it, never regenerate or resend it.
            unsure.push(stored.run);
            continue;
        }
        if stored.run.state == RunState::Running as i32 {
            stored.run.state = RunState::Interrupted as i32;
            stored.run.error = Some(RunError {
                reason: "RUN_INTERRUPTED".into(),
                message: "the gateway stopped while this run was running".into(),
            });
            let retry = stored.run.attempt < 2;
            if !retry {
                stored.run.end_time = Some(now_ts());
                super::delivery::settle_unsent(&mut stored.run);
            }
            tx.put_run(&stored)?;
            tx.append_event(run_event(&stored.run))?;
            if !retry {
                continue;
            }
            // The INTERRUPTED event above records what happened; the retry starts clean.
            stored.run.state = RunState::Queued as i32;
            stored.run.error = None;
            stored.run.attempt += 1;
            stored.run.start_time = None;
            tx.put_run(&stored)?;
            tx.append_event(run_event(&stored.run))?;
        }
        resume.push((stored.run.session_key.clone(), stored.run.run_id.clone()));
    }
    Ok((resume, unsure))
}
