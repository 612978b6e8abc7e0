//! The outbox: each endpoint's durable cursor over the event log. Every matching event
//! becomes a message in the same transaction that advances the cursor, so a restart neither
//! loses nor duplicates messages, and events appended while the gateway was down are
//! picked up.

use super::{
    DUTY, Egress, duty,
    records::{AttemptRec, EndpointRec, MsgRec, Status, message_id},
    render::Compiled,
};
use crate::{
    error::Result,
    store::{Records, RecordsMut},
};
use clawplane_util::{sync::lock, time::now_ms};
use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

/// Events read per outbox step.
const PAGE: usize = 256;
/// An unproductive cursor advance is persisted only after this many events (re-reading a
/// few events after a crash is harmless: message ids are deterministic).
const CURSOR_PERSIST_GAP: u64 = 256;

impl Egress {
    /// Makes the stored config endpoints match `webhooks.outgoing`: new ones start at the
    /// head of the log, changed ones keep their cursor and health, removed ones go.
    pub(super) async fn sync_configured(&self) -> Result<()> {
        let configured = self.configured.clone();
        let now = now_ms();
        let feed = self.store.feed.clone();
        self.store
            .write(move |t| {
                let existing = t.scan::<EndpointRec>("", usize::MAX)?;
                for old in existing.iter().filter(|e| e.config) {
                    if !configured.iter().any(|(id, _)| *id == old.id) {
                        t.delete::<EndpointRec>(&old.id)?;
                    }
                }
                for (id, def) in &configured {
                    let rec = match existing.iter().find(|e| e.id == *id) {
                        Some(e) => EndpointRec {
                            def: def.clone(),
                            config: true,
                            ..e.clone()
                        },
                        // A new endpoint starts at the head: it receives what happens from now on.
                        None => EndpointRec {
                            id: id.clone(),
                            def: def.clone(),
                            config: true,
                            create_ms: now,
                            cursor: feed.head.load(Ordering::Acquire),
                            ..Default::default()
                        },
                    };
                    t.put(&rec)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Schedules the stored pending messages of the endpoints this process delivers
    /// (`only`; all when `None`) and counts the finished ones (for pruning).
    pub(super) fn load_pending(&self, only: Option<&HashSet<String>>) -> Result<()> {
        let mut finished = 0;
        let mut pending = Vec::new();
        self.store.read(|r| {
            r.each(|m: MsgRec| match m.status {
                Status::Pending => {
                    if only.is_none_or(|o| o.contains(&m.endpoint)) {
                        pending.push((m.next_ms, m.id));
                    }
                }
                _ => finished += 1,
            })
        })?;
        self.finished.store(finished, Ordering::Relaxed);
        self.schedule_all(pending);
        Ok(())
    }

    /// With replicas: each endpoint is delivered by the holder of its duty. When this
    /// process takes endpoints over (another replica left), it schedules their pending
    /// messages; every minute it schedules them again, so a redelivery asked of another
    /// replica whose signal was lost still goes out.
    pub(super) async fn follow_duties(self: Arc<Self>) {
        let mut duties = self.store.duties_changed();
        let mut mine: HashSet<String> = HashSet::new();
        let mut sweep = tokio::time::interval(Duration::from_secs(60));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let swept = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = duties.changed() => { if r.is_err() { return } false }
                _ = sweep.tick() => true,
            };
            let endpoints = match self.store.read(|r| r.scan::<EndpointRec>("", usize::MAX)) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the webhook endpoints");
                    continue;
                }
            };
            let now: HashSet<String> = endpoints
                .into_iter()
                .map(|e| e.id)
                .filter(|id| self.store.holds(&duty(id)))
                .collect();
            let load: HashSet<String> = if swept {
                now.clone()
            } else {
                now.difference(&mine).cloned().collect()
            };
            if !swept && !load.is_empty() {
                tracing::info!(
                    endpoints = load.len(),
                    "delivering webhook endpoints another replica left"
                );
            }
            mine = now;
            if !load.is_empty() {
                if let Err(e) = self.load_pending(Some(&load)) {
                    tracing::warn!(error = %e, "cannot load pending webhook messages");
                }
                self.wake_outbox.notify_one();
            }
        }
    }

    /// Follows the event feed and makes messages until shutdown.
    pub(super) async fn outbox(self: Arc<Self>) {
        let mut live = self.store.feed.live.subscribe();
        loop {
            let more = match self.outbox_pass().await {
                Ok(more) => more,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox pass failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            if more {
                continue;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.wake_outbox.notified() => {}
                r = live.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return;
                    }
                    // Coalesce a burst (streamed deltas) into one pass.
                    while live.try_recv().is_ok() {}
                }
            }
        }
    }

    /// One step of every enabled endpoint; true when some endpoint has more to read.
    async fn outbox_pass(&self) -> Result<bool> {
        let head = self.store.head();
        let endpoints = self.store.read(|r| r.scan::<EndpointRec>("", usize::MAX))?;
        self.store
            .want_only(DUTY, endpoints.iter().map(|e| duty(&e.id)));
        let mut more = false;
        for ep in endpoints
            .into_iter()
            .filter(|e| !e.disabled && self.store.holds(&duty(&e.id)))
        {
            let mem = lock(&self.cursors).get(&ep.id).copied().unwrap_or(0);
            let cursor = ep.cursor.max(mem);
            if cursor >= head {
                continue;
            }
            let events = self.store.read(|r| r.events_after(cursor, PAGE))?;
            if events.len() == PAGE {
                more = true;
            }
            if let Some(first) = events.first()
                && first.seq > cursor + 1
            {
                tracing::warn!(endpoint = %ep.id, from = cursor + 1, to = first.seq - 1,
                "events were pruned from the log before the webhook outbox read them");
            }
            let last = events.last().map(|e| e.seq).unwrap_or(head);
            let compiled = match Compiled::new(&ep.def) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(endpoint = %ep.id, error = %e, "webhook endpoint cannot be compiled");
                    continue;
                }
            };
            let now = now_ms();
            let mut msgs = Vec::new();
            for ev in &events {
                let Some((ty, body)) = compiled.render(ev) else {
                    continue;
                };
                let (status, body, attempts) = match body {
                    Ok(b) => (Status::Pending, b, Vec::new()),
                    // A body that cannot be rendered is never sent; it is logged as failed.
                    Err(e) => (
                        Status::Failed,
                        String::new(),
                        vec![AttemptRec {
                            n: 0,
                            at_ms: now,
                            status: 0,
                            error: e,
                            latency_ms: 0,
                            ok: false,
                            response: String::new(),
                        }],
                    ),
                };
                msgs.push(MsgRec {
                    id: message_id(ev.seq, &ep.id),
                    endpoint: ep.id.clone(),
                    event_type: ty.into(),
                    seq: ev.seq,
                    status,
                    create_ms: now,
                    next_ms: now,
                    tries: 0,
                    round: 0,
                    generation: 0,
                    attempts,
                    body,
                });
            }
            if msgs.is_empty() && last - ep.cursor < CURSOR_PERSIST_GAP {
                lock(&self.cursors).insert(ep.id.clone(), last);
                continue;
            }
            let id = ep.id.clone();
            let created: Vec<(i64, String)> = self
                .store
                .write(move |t| {
                    let Some(mut rec) = t.get::<EndpointRec>(&id)? else {
                        return Ok(Vec::new()); // deleted meanwhile
                    };
                    // The fence: a replica that lost the endpoint makes no messages for it.
                    if rec.cursor >= last || rec.disabled || t.hold(&[duty(&id)])?.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut created = Vec::new();
                    for m in &msgs {
                        if !t.contains::<MsgRec>(&m.id)? {
                            t.put(m)?;
                            if m.status == Status::Pending {
                                created.push((m.next_ms, m.id.clone()));
                            }
                        }
                    }
                    rec.cursor = last;
                    t.put(&rec)?;
                    Ok(created)
                })
                .await?;
            lock(&self.cursors).insert(ep.id.clone(), last);
            if !created.is_empty() {
                self.schedule_all(created);
            }
        }
        Ok(more)
    }
}
