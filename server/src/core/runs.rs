//! Runs: durable acceptance with idempotency, per-session queues, execution with
//! timeouts and cancellation, waiting, listing, and crash recovery.

use super::{Gateway, now_ts};
use crate::{
    error::{Error, FieldViolation, Result},
    models::ModelRequest,
    store::{IdemRecord, RecordsMut, StoredRun, Txn},
};
use clawplane_proto::v1::{
    Delivery, DeliveryStatus, Event, EventKind, Message, MessageRole, ModelDelta, Run, RunError,
    RunOrigin, RunState, Session, SessionChange, SessionChangeType, event::Payload,
};
use sha2::{Digest, Sha256};
use std::{sync::Arc, sync::atomic::Ordering, time::Duration};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_util::sync::CancellationToken;

/// Largest accepted user message.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Transcript messages handed to the model as context (the most recent ones).
const HISTORY_WINDOW: u64 = 200;
/// Longest run time limit a caller may ask for (48 h, OpenClaw's default turn limit).
pub const MAX_TIMEOUT_SECONDS: u32 = 48 * 3600;

/// A request for a new run, as every surface describes it.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub origin: i32,
    /// As given by the caller (bare or full); empty means "derive".
    pub session_key: String,
    pub agent_id: String,
    pub message: String,
    pub idempotency_key: String,
    pub deliver: bool,
    pub channel: String,
    pub to: String,
    pub account_id: String,
    pub thread_id: String,
    /// With `deliver`: accept even when no route resolves (delivery NO_ROUTE) instead of
    /// refusing with NO_DELIVERY_ROUTE.
    pub best_effort_deliver: bool,
    pub model: String,
    pub thinking: String,
    pub timeout_seconds: u32,
    /// `SessionService/Send`: the session must already exist.
    pub require_existing_session: bool,
    /// An inbound channel message: becomes the session's last route, and its
    /// `channel.message.received` event is appended with the run.
    pub inbound: Option<clawplane_proto::v1::ChannelEvent>,
}

/// The answer to an accepted run.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub run: Run,
    pub duplicate: bool,
}

pub fn is_terminal(state: i32) -> bool {
    RunState::try_from(state).is_ok_and(RunState::is_terminal)
}

/// Validates the idempotency key grammar.
pub fn check_idempotency_key(key: &str) -> Option<FieldViolation> {
    if key.is_empty() {
        return None;
    }
    let ok = key.len() <= 256
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    (!ok).then(|| FieldViolation {
        field: "idempotencyKey",
        description: "must be 1..256 characters of A-Z a-z 0-9 . _ : - (a UUID works)".into(),
    })
}

pub fn check_session_key(key: &str) -> Option<FieldViolation> {
    (key.len() > 512 || key.chars().any(|c| c.is_control())).then(|| FieldViolation {
        field: "sessionKey",
        description: "must be at most 512 characters without control characters".into(),
    })
}

fn run_event(run: &Run) -> Event {
    Event {
        session_key: run.session_key.clone(),
        run_id: run.run_id.clone(),
        kind: EventKind::Run as i32,
        payload: Some(Payload::Run(run.clone())),
        ..Default::default()
    }
}

pub(crate) fn session_event(session: &Session, change: SessionChangeType) -> Event {
    Event {
        session_key: session.session_key.clone(),
        kind: EventKind::Session as i32,
        payload: Some(Payload::Session(SessionChange {
            r#type: change as i32,
            session: (change != SessionChangeType::Deleted).then(|| session.clone()),
        })),
        ..Default::default()
    }
}

/// A fresh session record.
pub(crate) fn new_session(key: &str, agent_id: &str) -> Session {
    let now = now_ts();
    Session {
        name: format!("sessions/{key}"),
        session_key: key.to_string(),
        session_id: uuid::Uuid::now_v7().to_string(),
        agent_id: agent_id.to_string(),
        create_time: Some(now),
        update_time: Some(now),
        ..Default::default()
    }
}

fn fingerprint(r: &NewRun, session_key: &str, agent: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        &r.origin.to_string(),
        session_key,
        agent,
        &r.message,
        &r.deliver.to_string(),
        &r.channel,
        &r.to,
        &r.account_id,
        &r.thread_id,
        &r.model,
        &r.thinking,
        &r.timeout_seconds.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

impl Gateway {
    /// Validates, resolves the session, writes the run durably, queues it, and answers.
    pub async fn accept(self: &Arc<Self>, req: NewRun) -> Result<Accepted> {
        if self.draining.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let mut bad = Vec::new();
        let is_heartbeat = req.origin == RunOrigin::Heartbeat as i32;
        if !is_heartbeat && req.message.trim().is_empty() {
            bad.push(FieldViolation {
                field: "message",
                description: "must not be empty".into(),
            });
        }
        if req.message.len() > MAX_MESSAGE_BYTES {
            bad.push(FieldViolation {
                field: "message",
                description: format!(
                    "is {} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (256 KiB)",
                    req.message.len()
                ),
            });
        }
        bad.extend(check_idempotency_key(&req.idempotency_key));
        bad.extend(check_session_key(&req.session_key));
        if req.timeout_seconds > MAX_TIMEOUT_SECONDS {
            bad.push(FieldViolation {
                field: "timeoutSeconds",
                description: format!("must be at most {MAX_TIMEOUT_SECONDS} (48 h)"),
            });
        }
        if !matches!(
            req.thinking.as_str(),
            "" | "off" | "minimal" | "low" | "medium" | "high" | "xhigh"
        ) {
            bad.push(FieldViolation {
                field: "thinking",
                description: "must be one of off, minimal, low, medium, high, xhigh".into(),
            });
        }
        // The agent's primary model unless the run names one (the agent as the session key
        // will decide it below).
        let model = if req.model.is_empty() {
            let agent = super::keys::agent_of(req.session_key.trim())
                .map(str::to_string)
                .unwrap_or_else(|| self.agent(&req.agent_id));
            crate::models::Models::agent_models(&self.config, &agent).0
        } else {
            req.model.trim().to_string()
        };
        if let Err(e) = self.models.get(&self.config, &model) {
            bad.push(FieldViolation {
                field: "model",
                description: e,
            });
        }
        if req.channel.len() > 64 || req.to.len() > 512 {
            bad.push(FieldViolation {
                field: if req.channel.len() > 64 {
                    "channel"
                } else {
                    "to"
                },
                description: "is too long".into(),
            });
        }
        if !bad.is_empty() {
            return Err(Error::InvalidFields(bad));
        }

        let agent = self.agent(&req.agent_id);
        let session_key = if !req.session_key.trim().is_empty() {
            self.session_key(&req.session_key, &agent)
        } else if !req.to.trim().is_empty()
            && !req.channel.trim().is_empty()
            && req.channel != "last"
        {
            self.route_key(&agent, &req.channel, &req.to, &req.account_id)
                .map(|(k, _)| k)
                .unwrap_or_else(|| super::keys::main_session(&agent, &self.config.session.main_key))
        } else {
            super::keys::main_session(&agent, &self.config.session.main_key)
        };
        let agent = super::keys::agent_of(&session_key)
            .map(str::to_string)
            .unwrap_or(agent);
        let main_key = super::keys::main_session(&agent, &self.config.session.main_key);
        // Generated ids are time-ordered (v7) so new runs land at the right edge of the
        // run tables instead of dirtying random pages.
        let keyed = !req.idempotency_key.is_empty();
        let run_id = if !keyed {
            uuid::Uuid::now_v7().to_string()
        } else {
            req.idempotency_key.clone()
        };
        let fp = if keyed {
            fingerprint(&req, &session_key, &agent)
        } else {
            [0; 32]
        };
        let delivery = if req.deliver {
            use super::delivery::no_route_cause;
            let session = self.store.read(|r| r.session(&session_key))?;
            let d = self.resolve_delivery(&req, session.as_ref());
            if d.status == DeliveryStatus::NoRoute as i32 && !req.best_effort_deliver {
                return Err(Error::NoDeliveryRoute {
                    cause: no_route_cause(&d.reason),
                    channel: d.channel,
                    to: d.to,
                    detail: d.detail,
                });
            }
            d
        } else {
            Delivery {
                status: DeliveryStatus::NotRequested as i32,
                ..Default::default()
            }
        };
        self.check_queue_room(&session_key)?;
        let inbound = req.inbound.clone();
        let timeout = if req.timeout_seconds == 0 {
            self.config.agents.defaults.timeout_seconds
        } else {
            req.timeout_seconds
        };
        let run = Run {
            name: format!("runs/{run_id}"),
            run_id: run_id.clone(),
            session_key: session_key.clone(),
            agent_id: agent.clone(),
            state: RunState::Queued as i32,
            origin: req.origin,
            message: req.message.clone(),
            model,
            delivery: Some(delivery),
            timeout_seconds: timeout,
            idempotency_key: req.idempotency_key.clone(),
            attempt: 1,
            create_time: Some(now_ts()),
            thinking: req.thinking.clone(),
            ..Default::default()
        };
        let require_existing = req.require_existing_session;
        let gw = self.clone();
        // Queue in commit order (on the writer thread), so a session's runs execute in the
        // order they were acknowledged even when one group commit accepted several.
        let enqueue = move |a: &Accepted| {
            if !a.duplicate {
                gw.enqueue(&a.run.session_key, &a.run.run_id);
            }
        };
        let accepted = self
            .store
            .write_then(
                move |tx: &mut dyn Txn| {
                    if let Some(rec) = tx.idempotency(&run_id)? {
                        let existing = tx.run(&rec.run_id)?.ok_or_else(|| {
                            Error::Internal(format!("run {} vanished", rec.run_id))
                        })?;
                        if rec.fingerprint != fp {
                            return Err(Error::IdempotencyConflict {
                                key: run_id,
                                run_id: rec.run_id,
                            });
                        }
                        return Ok(Accepted {
                            run: existing.run,
                            duplicate: true,
                        });
                    }
                    if keyed && tx.run(&run_id)?.is_some() {
                        // A caller-chosen key equal to the id of a keyless run.
                        return Err(Error::IdempotencyConflict {
                            key: run_id.clone(),
                            run_id,
                        });
                    }
                    let session = tx.session(&session_key)?;
                    if session.is_none() && require_existing && session_key != main_key {
                        return Err(Error::SessionNotFound(session_key));
                    }
                    // Checks done; mutate.
                    let created = session.is_none();
                    let mut session = session.unwrap_or_else(|| new_session(&session_key, &agent));
                    if let Some(msg) = &inbound {
                        // The conversation's route: replies and `channel: "last"` use it.
                        session.last_channel = msg.channel.clone();
                        session.last_to = msg.from.clone();
                        session.last_account_id = msg.account_id.clone();
                        session.last_thread_id = msg.thread_id.clone();
                        session.update_time = Some(now_ts());
                    }
                    if created || inbound.is_some() {
                        tx.put_session(&session)?;
                        let change = if created {
                            SessionChangeType::Created
                        } else {
                            SessionChangeType::Updated
                        };
                        tx.append_event(session_event(&session, change))?;
                    }
                    if let Some(msg) = inbound {
                        tx.append_event(Event {
                            session_key: session_key.clone(),
                            run_id: run_id.clone(),
                            kind: EventKind::Channel as i32,
                            payload: Some(Payload::Channel(msg)),
                            ..Default::default()
                        })?;
                    }
                    let order = tx.next_run_order()?;
                    // Stamped in the transaction so create_time follows commit order.
                    let mut run = run;
                    run.create_time = Some(now_ts());
                    tx.put_run(&StoredRun {
                        order,
                        run: run.clone(),
                    })?;
                    // Only a caller-chosen key can be repeated; a generated id needs no record.
                    if keyed {
                        tx.put_idempotency(
                            &run_id,
                            &IdemRecord {
                                fingerprint: fp,
                                run_id: run_id.clone(),
                            },
                        )?;
                    }
                    tx.append_event(run_event(&run))?;
                    Ok(Accepted {
                        run,
                        duplicate: false,
                    })
                },
                enqueue,
            )
            .await?;
        Ok(accepted)
    }

    /// Refuses a new run when the gateway's or the session's queue is at its limit
    /// (`agents.defaults.maxQueuedRuns`, `maxQueuedPerSession`), so a flood cannot grow
    /// the queues without bound.
    fn check_queue_room(&self, session_key: &str) -> Result<()> {
        let d = &self.config.agents.defaults;
        let queued = self.scheduler.queued();
        if d.max_queued_runs > 0 && queued >= d.max_queued_runs {
            return Err(Error::QueueFull {
                queued,
                limit: format!("agents.defaults.maxQueuedRuns = {}", d.max_queued_runs),
            });
        }
        let in_session = self.scheduler.queued_in(session_key);
        if d.max_queued_per_session > 0 && in_session >= d.max_queued_per_session {
            return Err(Error::QueueFull {
                queued: in_session as u64,
                limit: format!(
                    "agents.defaults.maxQueuedPerSession = {} for {session_key}",
                    d.max_queued_per_session
                ),
            });
        }
        Ok(())
    }

    /// Puts a run at the back of its session's queue and starts the session driver.
    pub(crate) fn enqueue(self: &Arc<Self>, session_key: &str, run_id: &str) {
        if self.scheduler.push(session_key, run_id) {
            let gw = self.clone();
            let key = session_key.to_string();
            self.tasks
                .spawn_on(async move { gw.drive(key).await }, &self.runtime);
        }
    }

    /// Runs a session's queue to empty, one run at a time.
    async fn drive(self: Arc<Self>, session_key: String) {
        loop {
            if self.draining.load(Ordering::Acquire) {
                // Shutting down: queued runs stay QUEUED and resume on the next start.
                return;
            }
            let Some(next) = self.scheduler.pop(&session_key) else {
                return;
            };
            // Still queued while it waits for an executor slot.
            let Some(permit) = self.scheduler.slot().await else {
                return;
            };
            if self.draining.load(Ordering::Acquire) {
                return; // still QUEUED in the store: resumes on the next start
            }
            self.scheduler.dequeued();
            if let Err(e) = self.execute(&next).await {
                tracing::error!(run_id = %next, error = %e, "run execution failed");
            }
            drop(permit);
        }
    }

    /// Executes one run: RUNNING, model, terminal state, transcript, delivery outcome.
    async fn execute(self: &Arc<Self>, run_id: &str) -> Result<()> {
        let (token, _guard) = self.scheduler.start(run_id);
        let id = run_id.to_string();
        let started = self
            .store
            .write(move |tx: &mut dyn Txn| {
                let Some(mut stored) = tx.run(&id)? else {
                    return Ok(None);
                };
                if stored.run.state != RunState::Queued as i32 {
                    return Ok(None); // cancelled while queued
                }
                let key = stored.run.session_key.clone();
                let mut session = match tx.session(&key)? {
                    Some(s) => s,
                    None => new_session(&key, &stored.run.agent_id),
                };
                let heartbeat = stored.run.origin == RunOrigin::Heartbeat as i32;
                let system_events = tx.system_events(&key)?;
                let now = now_ts();
                let mut next_index = u64::from(session.message_count) + 1;
                let mut put = |tx: &mut dyn Txn, role: MessageRole, text: String| -> Result<()> {
                    tx.put_message(
                        &session.session_id,
                        &Message {
                            index: next_index,
                            role: role as i32,
                            text,
                            run_id: id.clone(),
                            create_time: Some(now),
                        },
                    )?;
                    next_index += 1;
                    Ok(())
                };
                for text in &system_events {
                    put(tx, MessageRole::System, text.clone())?;
                }
                if !system_events.is_empty() {
                    tx.put_system_events(&key, &[])?;
                }
                // A retried run already has its user message in the transcript.
                let already = tx
                    .last_message(&session.session_id)?
                    .is_some_and(|m| m.run_id == id && m.role == MessageRole::User as i32);
                if !heartbeat && !already {
                    put(tx, MessageRole::User, stored.run.message.clone())?;
                    session.turn_count += 1;
                }
                session.message_count = (next_index - 1) as u32;
                session.update_time = Some(now);
                tx.put_session(&session)?;
                stored.run.state = RunState::Running as i32;
                stored.run.start_time = Some(now);
                tx.put_run(&stored)?;
                tx.append_event(run_event(&stored.run))?;
                let history = tx
                    .messages(
                        &session.session_id,
                        u64::from(session.message_count).saturating_sub(HISTORY_WINDOW),
                        HISTORY_WINDOW as usize,
                    )?
                    .into_iter()
                    .map(|m| (m.role, m.text))
                    .collect::<Vec<_>>();
                Ok(Some((
                    stored.run,
                    session.turn_count,
                    system_events,
                    history,
                )))
            })
            .await?;
        let Some((run, turn, system_events, history)) = started else {
            return Ok(());
        };
        if run.origin == RunOrigin::Heartbeat as i32 {
            self.scheduler.release_heartbeat(&run.session_key);
        }
        let executing = self.scheduler.executing();
        let outcome = self
            .call_model(&run, turn, system_events, history, &token)
            .await;
        // Deliver before the terminal write, so a finished run always carries its outcome.
        let delivery = match &outcome {
            Outcome::Succeeded(reply) => Some(self.deliver(&run, &reply.text).await),
            _ => None,
        };
        drop(executing);
        self.finish(run, outcome, delivery).await
    }

    async fn call_model(
        &self,
        run: &Run,
        turn: u32,
        system_events: Vec<String>,
        history: Vec<(i32, String)>,
        token: &CancellationToken,
    ) -> Outcome {
        let heartbeat = run.origin == RunOrigin::Heartbeat as i32;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let base = ModelRequest {
            model: String::new(),
            message: if heartbeat {
                String::new()
            } else {
                run.message.clone()
            },
            turn,
            heartbeat,
            system_events,
            history,
            thinking: run.thinking.clone(),
        };
        let chain = crate::models::Models::chain(&self.config, &run.agent_id, &run.model);
        let (models, config, run_id) = (&self.models, &self.config, run.run_id.as_str());
        // Failover: the run's model, then the agent's fallbacks, until one answers; each
        // failure is kept for the run's error. Never after a model streamed part of a reply
        // (the next one would repeat it).
        let fut = async move {
            let mut reasons = Vec::new();
            for name in chain {
                let model = match models.get(config, &name) {
                    Ok(m) => m,
                    Err(e) => {
                        reasons.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                let (atx, mut arx) = mpsc::unbounded_channel();
                let req = ModelRequest {
                    model: name.clone(),
                    ..base.clone()
                };
                let forward = async {
                    let mut streamed = false;
                    while let Some(d) = arx.recv().await {
                        streamed = true;
                        let _ = tx.send(d);
                    }
                    streamed
                };
                let (res, streamed) = tokio::join!(model.generate(req, atx), forward);
                match res {
                    Ok(mut reply) => {
                        reply.model = name;
                        return Ok(reply);
                    }
                    Err(e) => {
                        tracing::warn!(run_id, model = %name, error = %e, streamed, "model failed");
                        reasons.push(format!("{name}: {}", e.message));
                        if streamed {
                            reasons.push("failed mid-reply, so no failover".into());
                            break;
                        }
                    }
                }
            }
            Err(crate::models::ModelError {
                message: reasons.join("; "),
            })
        };
        let limit = Duration::from_secs(u64::from(run.timeout_seconds.max(1)));
        let store = self.store.clone();
        let (key, id) = (run.session_key.clone(), run.run_id.clone());
        // Deltas become events in arrival order; the writer is FIFO so they stay ordered
        // before the terminal RUN event.
        let pump = async move {
            let mut index = 0u32;
            while let Some(text) = rx.recv().await {
                index += 1;
                let ev = Event {
                    session_key: key.clone(),
                    run_id: id.clone(),
                    kind: EventKind::Delta as i32,
                    payload: Some(Payload::Delta(ModelDelta { text, index })),
                    ..Default::default()
                };
                store.write_detached(move |tx: &mut dyn Txn| tx.append_event(ev).map(|_| ()));
            }
        };
        let work = async { tokio::join!(fut, pump).0 };
        tokio::select! {
            r = tokio::time::timeout(limit, work) => match r {
                Ok(Ok(reply)) => Outcome::Succeeded(reply),
                Ok(Err(e)) => Outcome::Failed("MODEL_FAILED", e.message),
                Err(_) => Outcome::TimedOut(run.timeout_seconds),
            },
            _ = token.cancelled() => Outcome::Cancelled,
        }
    }

    async fn finish(&self, run: Run, outcome: Outcome, delivery: Option<Delivery>) -> Result<()> {
        let id = run.run_id.clone();
        self.store
            .write(move |tx: &mut dyn Txn| {
                let Some(mut stored) = tx.run(&id)? else {
                    return Ok(());
                };
                let now = now_ts();
                let r = &mut stored.run;
                let mut session = tx.session(&r.session_key)?;
                match outcome {
                    Outcome::Succeeded(reply) => {
                        r.state = RunState::Succeeded as i32;
                        if !reply.model.is_empty() {
                            r.model = reply.model.clone();
                        }
                        r.reply_text = reply.text.clone();
                        r.usage = Some(reply.usage);
                        if let Some(s) = session.as_mut() {
                            let index = u64::from(s.message_count) + 1;
                            tx.put_message(
                                &s.session_id,
                                &Message {
                                    index,
                                    role: MessageRole::Assistant as i32,
                                    text: reply.text,
                                    run_id: id.clone(),
                                    create_time: Some(now),
                                },
                            )?;
                            s.message_count += 1;
                            let u = s.usage.get_or_insert_with(Default::default);
                            u.input_tokens += reply.usage.input_tokens;
                            u.output_tokens += reply.usage.output_tokens;
                            u.total_tokens += reply.usage.total_tokens;
                        }
                    }
                    Outcome::Failed(reason, message) => {
                        r.state = RunState::Failed as i32;
                        r.error = Some(RunError {
                            reason: reason.into(),
                            message,
                        });
                    }
                    Outcome::TimedOut(secs) => {
                        r.state = RunState::TimedOut as i32;
                        r.error = Some(RunError {
                            reason: "RUN_TIMED_OUT".into(),
                            message: format!(
                                "the run exceeded its time limit of {secs} s (timeoutSeconds)"
                            ),
                        });
                    }
                    Outcome::Cancelled => {
                        r.state = RunState::Cancelled as i32;
                        r.error = Some(RunError {
                            reason: "RUN_CANCELLED".into(),
                            message: "the run was cancelled".into(),
                        });
                    }
                }
                r.end_time = Some(now);
                if let Some(d) = delivery {
                    if d.status == DeliveryStatus::Failed as i32 {
                        r.state = RunState::Failed as i32;
                        r.error = Some(RunError {
                            reason: "DELIVERY_FAILED".into(),
                            message: format!(
                                "the reply was produced but {} did not take it: {}",
                                d.channel, d.detail
                            ),
                        });
                    }
                    if d.status == DeliveryStatus::Delivered as i32 {
                        for m in &d.message_ids {
                            tx.put(&super::delivery::SentMessage {
                                channel: d.channel.clone(),
                                message_id: m.clone(),
                                run_id: id.clone(),
                            })?;
                        }
                        if let Some(s) = session.as_mut() {
                            s.last_channel = d.channel.clone();
                            s.last_to = d.to.clone();
                            s.last_account_id = d.account_id.clone();
                            s.last_thread_id = d.thread_id.clone();
                        }
                    }
                    r.delivery = Some(d);
                }
                super::delivery::settle_unsent(r);
                tx.put_run(&stored)?;
                tx.append_event(run_event(&stored.run))?;
                if let Some(mut s) = session {
                    s.update_time = Some(now);
                    tx.put_session(&s)?;
                    tx.append_event(session_event(&s, SessionChangeType::Updated))?;
                }
                Ok(())
            })
            .await
    }

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
        self.scheduler.cancel(run_id);
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

    /// Waits until the run is terminal or `limit` passes; returns (run, done).
    pub async fn wait(&self, run_id: &str, limit: Duration) -> Result<(Run, bool)> {
        let mut live = self.store.feed.live.subscribe();
        let mut run = self.get_run(run_id)?;
        let deadline = tokio::time::Instant::now() + limit;
        while !is_terminal(run.state) {
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

    /// Counts for Status.
    pub fn run_counts(&self) -> (u64, u64) {
        self.scheduler.counts()
    }

    /// At start: RUNNING runs become INTERRUPTED and are retried once; QUEUED runs resume
    /// in acceptance order.
    pub(super) async fn recover(self: &Arc<Self>) -> Result<()> {
        let recovered = self
            .store
            .write(|tx: &mut dyn Txn| {
                let mut resume = Vec::new();
                for mut stored in tx.active_runs()? {
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
                        // The INTERRUPTED event above records what happened; the retry
                        // starts clean.
                        stored.run.state = RunState::Queued as i32;
                        stored.run.error = None;
                        stored.run.attempt += 1;
                        stored.run.start_time = None;
                        tx.put_run(&stored)?;
                        tx.append_event(run_event(&stored.run))?;
                    }
                    resume.push((stored.run.session_key.clone(), stored.run.run_id.clone()));
                }
                Ok(resume)
            })
            .await?;
        if !recovered.is_empty() {
            tracing::info!(
                runs = recovered.len(),
                "resuming runs from before the last stop"
            );
        }
        for (key, id) in recovered {
            self.enqueue(&key, &id);
        }
        Ok(())
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

/// How a run ended.
enum Outcome {
    Succeeded(crate::models::ModelReply),
    Failed(&'static str, String),
    TimedOut(u32),
    Cancelled,
}
