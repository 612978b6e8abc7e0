//! Acceptance: validation, the session and route a run resolves to, and the durable write
//! (idempotency, transcript route, events) before the run is queued.

use super::{
    Accepted, MAX_MESSAGE_BYTES, MAX_TIMEOUT_SECONDS, NewRun, Runs, check_idempotency_key,
    check_session_key, fingerprint, idem_record_key, new_session, run_event, session_event,
};
use crate::{
    error::{Error, FieldViolation, Result},
    store::{IdemRecord, StoredRun, Txn},
};
use clawplane_proto::v1::{
    Delivery, DeliveryStatus, Event, EventKind, Run, RunOrigin, RunState, SessionChangeType,
    event::Payload,
};
use clawplane_proto::{keys, now_ts};
use std::sync::{Arc, atomic::Ordering};

/// How long a queue check near a limit waits for this replica's feed to catch up.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

impl Runs {
    /// The session whose current transcript generation is `id` (OpenClaw `sessionId`),
    /// else the new session `agent:<agent>:explicit:<id>`.
    fn session_of_id(&self, agent: &str, id: &str) -> Result<String> {
        let valid = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !valid {
            return Err(Error::field(
                "sessionId",
                "must be 1..128 characters of [A-Za-z0-9._:-]",
            ));
        }
        let found = self.store.read(|r| {
            Ok(r.sessions()?
                .into_iter()
                .find(|s| s.session_id == id)
                .map(|s| s.session_key))
        })?;
        Ok(found.unwrap_or_else(|| format!("agent:{agent}:explicit:{}", id.to_ascii_lowercase())))
    }

    /// Validates, resolves the session, writes the run durably, queues it, and answers.
    pub async fn accept(self: &Arc<Self>, mut req: NewRun) -> Result<Accepted> {
        if self.draining.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        if req.via_hooks {
            let agent = self.agent(&req.agent_id);
            self.hooks.check_agent(&agent)?;
            req.session_key =
                self.hooks
                    .run_session_key(&req.session_key, &agent, &req.idempotency_key)?;
            req.agent_id = agent;
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
            let agent = keys::agent_of(req.session_key.trim())
                .map(str::to_string)
                .unwrap_or_else(|| self.agent(&req.agent_id));
            self.models.agent_models(&agent).0
        } else {
            req.model.trim().to_string()
        };
        if let Err(e) = self.models.get(&model) {
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
        } else if !req.session_id.trim().is_empty() {
            self.session_of_id(&agent, req.session_id.trim())?
        } else if !req.to.trim().is_empty()
            && !req.channel.trim().is_empty()
            && req.channel != "last"
        {
            self.route_key(&agent, &req.channel, &req.to, &req.account_id)
                .map(|(k, _)| k)
                .unwrap_or_else(|| keys::main_session(&agent, &self.session.main_key))
        } else {
            keys::main_session(&agent, &self.session.main_key)
        };
        let agent = keys::agent_of(&session_key)
            .map(str::to_string)
            .unwrap_or(agent);
        let main_key = keys::main_session(&agent, &self.session.main_key);
        // Generated ids are time-ordered (v7) so new runs land at the right edge of the
        // run tables instead of dirtying random pages.
        // The server names every run; a caller's key only finds the run it started.
        let run_id = uuid::Uuid::now_v7().to_string();
        let keyed = !req.idempotency_key.is_empty();
        let record_key = keyed.then(|| {
            debug_assert!(!req.key_scope.is_empty(), "a keyed run names its key scope");
            idem_record_key(&req.key_scope, &req.idempotency_key)
        });
        let key = req.idempotency_key.clone();
        let fp = if keyed {
            fingerprint(&req, &session_key, &agent)
        } else {
            [0; 32]
        };
        let delivery = if req.deliver {
            use super::delivery::no_route_cause;
            let session = self.store.read(|r| r.session(&session_key))?;
            let mut d = self.resolve_delivery(&req.reply_route(), session.as_ref());
            if let Some(m) = &req.inbound {
                d.inbound_message_id = m.message_id.clone();
            }
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
            self.defaults.timeout_seconds
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
            summary_wake: req.summary_wake.clone(),
            ..Default::default()
        };
        let require_existing = req.require_existing_session;
        let runs = self.clone();
        // Queue in commit order (on the writer thread), so a session's runs execute in the
        // order they were acknowledged even when one group commit accepted several.
        // With replicas, the run is queued where its session is owned (here when `here`).
        let enqueue = move |(a, here): &(Accepted, bool)| {
            if !a.duplicate && *here {
                runs.scheduler.own(&a.run.session_key);
                runs.enqueue(&a.run.session_key, &a.run.run_id);
            }
        };
        let accepted = self
            .store
            .write_then(
                move |tx: &mut dyn Txn| {
                    if let Some(k) = &record_key
                        && let Some(rec) = tx.idempotency(k)?
                    {
                        let existing = tx.run(&rec.run_id)?.ok_or_else(|| {
                            Error::Internal(format!("run {} vanished", rec.run_id))
                        })?;
                        if rec.fingerprint != fp {
                            return Err(Error::IdempotencyConflict {
                                key,
                                run_id: rec.run_id,
                            });
                        }
                        return Ok((
                            Accepted {
                                run: existing.run,
                                duplicate: true,
                            },
                            false,
                        ));
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
                    if let Some(k) = &record_key {
                        tx.put_idempotency(
                            k,
                            &IdemRecord {
                                fingerprint: fp,
                                run_id: run_id.clone(),
                            },
                        )?;
                    }
                    tx.append_event(run_event(&run))?;
                    let here = tx.claim_session(&session_key)?;
                    Ok((
                        Accepted {
                            run,
                            duplicate: false,
                        },
                        here,
                    ))
                },
                enqueue,
            )
            .await?;
        Ok(accepted.0)
    }

    /// Refuses a new run when the gateway's or the session's queue is at its limit
    /// (`agents.defaults.maxQueuedRuns`, `maxQueuedPerSession`), so a flood cannot grow
    /// the queues without bound.
    fn check_queue_room(&self, session_key: &str) -> Result<()> {
        let d = &self.defaults;
        let (mut queued, mut in_session) = self.queue_depths(session_key);
        // With replicas the counts follow the feed a moment late: near a limit, catch up
        // first, so every run committed anywhere before this call counts (as on one process).
        let near = |n: u64, limit: u64| limit > 0 && n + (limit / 10).max(8) >= limit;
        if self.gauge.get().is_some()
            && (near(queued, d.max_queued_runs)
                || near(in_session as u64, d.max_queued_per_session as u64))
        {
            self.store.catch_up(CATCH_UP)?;
            (queued, in_session) = self.queue_depths(session_key);
        }
        if d.max_queued_runs > 0 && queued >= d.max_queued_runs {
            return Err(Error::QueueFull {
                queued,
                limit: format!("agents.defaults.maxQueuedRuns = {}", d.max_queued_runs),
            });
        }
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
}
