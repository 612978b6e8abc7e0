//! Wake and heartbeat: system events queued on a session (coalescing identical text),
//! heartbeat turns now or on the configured schedule.

use super::{MAX_MESSAGE_BYTES, NewRun, Runs, check_session_key, new_session, session_event};
use crate::{
    error::{Error, Result},
    store::Txn,
};
use clawplane_proto::v1::{
    Event, EventKind, RunOrigin, SessionChangeType, SystemEvent, WakeMode, WakeOutcome,
    event::Payload,
};
use std::sync::Arc;

/// At most this many system events wait on a session; the oldest is dropped.
const MAX_QUEUED: usize = 20;

/// What Wake did.
pub struct Woken {
    pub outcome: WakeOutcome,
    pub session_key: String,
    pub mode: WakeMode,
    pub run_id: String,
}

impl Runs {
    /// Queues `text` on the session and, for mode NOW, starts a heartbeat turn.
    pub async fn wake(
        self: &Arc<Self>,
        text: &str,
        mode: WakeMode,
        session_key: &str,
        agent_id: &str,
        via_hooks: bool,
    ) -> Result<Woken> {
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(Error::field("text", "must not be empty"));
        }
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::field("text", "is larger than 256 KiB"));
        }
        if let Some(v) = check_session_key(session_key) {
            return Err(Error::InvalidFields(vec![v]));
        }
        let mode = if mode == WakeMode::Unspecified {
            WakeMode::Now
        } else {
            mode
        };
        let agent = self.agent(agent_id);
        let key = if via_hooks {
            self.hooks.check_agent(&agent)?;
            let key = self.hooks.wake_session_key(session_key, &agent)?;
            self.session_key(&key, &agent)
        } else {
            self.session_key(session_key, &agent)
        };
        let k = key.clone();
        let outcome = self
            .store
            .write(move |tx: &mut dyn Txn| {
                let mut queue = tx.system_events(&k)?;
                let outcome = if queue.last() == Some(&text) {
                    WakeOutcome::Coalesced
                } else {
                    queue.push(text.clone());
                    if queue.len() > MAX_QUEUED {
                        queue.remove(0);
                    }
                    WakeOutcome::Queued
                };
                if tx.session(&k)?.is_none() {
                    let s = new_session(&k, &agent);
                    tx.put_session(&s)?;
                    tx.append_event(session_event(&s, SessionChangeType::Created))?;
                }
                if outcome == WakeOutcome::Queued {
                    tx.put_system_events(&k, &queue)?;
                }
                tx.append_event(Event {
                    session_key: k.clone(),
                    kind: EventKind::SystemEvent as i32,
                    payload: Some(Payload::SystemEvent(SystemEvent {
                        text,
                        outcome: outcome as i32,
                        mode: mode as i32,
                    })),
                    ..Default::default()
                })?;
                Ok(outcome)
            })
            .await?;
        let run_id = if mode == WakeMode::Now {
            self.heartbeat(&key).await?.unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Woken {
            outcome,
            session_key: key,
            mode,
            run_id,
        })
    }

    /// Starts a heartbeat turn on the session unless one is already waiting to start
    /// (that one will drain the queued events). Returns the new run id.
    pub async fn heartbeat(self: &Arc<Self>, session_key: &str) -> Result<Option<String>> {
        if !self.claim_heartbeat(session_key) {
            return Ok(None);
        }
        let accepted = self
            .accept(NewRun {
                origin: RunOrigin::Heartbeat as i32,
                session_key: session_key.to_string(),
                message: "(heartbeat)".into(),
                ..Default::default()
            })
            .await;
        match accepted {
            Ok(a) => Ok(Some(a.run.run_id)),
            Err(e) => {
                self.release_heartbeat(session_key);
                Err(e)
            }
        }
    }

    /// Runs the heartbeat schedule of the default agent's main session until shutdown.
    pub fn spawn_heartbeat_schedule(self: &Arc<Self>) {
        let Some(every) = self.defaults.heartbeat_every() else {
            tracing::info!("heartbeat schedule disabled (agents.defaults.heartbeat.every)");
            return;
        };
        // With replicas, one of them (the holder of the duty) runs the schedule.
        self.store.want(SCHEDULE);
        let runs = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = runs.shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        if !runs.store.holds(SCHEDULE) {
                            continue;
                        }
                        let key = runs.main_session_key();
                        if let Err(e) = runs.heartbeat(&key).await {
                            tracing::warn!(error = %e, "scheduled heartbeat not started");
                        }
                    }
                }
            }
        });
    }
}

/// The duty of running the heartbeat schedule.
const SCHEDULE: &str = "heartbeat-schedule";
