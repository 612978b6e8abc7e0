//! Execution: session drivers draining their queue, one run at a time; the model call
//! with failover, deltas and the time limit; the terminal write with the delivery outcome.

use super::{HISTORY_WINDOW, Runs, new_session, run_event, session_event};
use crate::{
    error::Result,
    models::{ModelReply, ModelRequest},
    store::{RecordsMut, Txn},
};
use clawplane_proto::now_ts;
use clawplane_proto::v1::{
    Delivery, DeliveryStatus, Event, EventKind, Message, MessageRole, ModelDelta, Run, RunError,
    RunOrigin, RunState, SessionChangeType, SummaryWake, WakeMode, event::Payload,
};
use std::{sync::Arc, time::Duration};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

impl Runs {
    /// Puts a run at the back of its session's queue and starts the session driver.
    pub(crate) fn enqueue(self: &Arc<Self>, session_key: &str, run_id: &str) {
        if self.scheduler.push(session_key, run_id) {
            let runs = self.clone();
            let key = session_key.to_string();
            self.tasks
                .spawn_on(async move { runs.drive(key).await }, &self.runtime);
        }
    }

    /// Runs a session's queue to empty, one run at a time; with replicas, then gives the
    /// session up (unless runs came in meanwhile), so whichever replica accepts its next
    /// run executes it.
    async fn drive(self: Arc<Self>, session_key: String) {
        let runs = self.clone();
        self.scheduler
            .drive(&session_key, &self.draining, move |run_id| {
                let runs = runs.clone();
                async move { runs.run_one(run_id).await }
            })
            .await;
        if self.store.shared()
            && !self.scheduler.busy(&session_key)
            && !self.draining.load(std::sync::atomic::Ordering::Acquire)
        {
            let (key, runs) = (session_key.clone(), self.clone());
            let released = self
                .store
                .write_then(
                    move |tx: &mut dyn Txn| tx.release_session(&key),
                    move |released: &bool| {
                        if *released {
                            runs.scheduler.disown(&session_key);
                        }
                    },
                )
                .await;
            if let Err(e) = released {
                tracing::warn!(error = %e, "cannot release a session; it stays owned here");
            }
        }
    }

    /// Executes a run; when execution fails (a store error) or panics, the run is failed
    /// with EXECUTION_FAILED rather than left RUNNING (and its waiters waiting) until the
    /// next start.
    async fn run_one(self: Arc<Self>, run_id: String) {
        use futures::FutureExt as _;
        let why = match std::panic::AssertUnwindSafe(self.execute(&run_id))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                tracing::error!(run_id = %run_id, error = %e, "run execution failed");
                e.to_string()
            }
            Err(panic) => {
                let what = super::scheduler::panic_message(&*panic);
                tracing::error!(run_id = %run_id, panic = %what, "run execution panicked");
                format!("execution panicked: {what}")
            }
        };
        if let Err(e) = self.abandon(&run_id, why).await {
            tracing::error!(run_id = %run_id, error = %e, "cannot mark the failed run FAILED");
        }
    }

    /// Fails a run whose execution broke off, unless it already ended.
    async fn abandon(&self, run_id: &str, why: String) -> Result<()> {
        let heartbeat_of = self
            .write_retrying(run_id, || {
                let (id, why) = (run_id.to_string(), why.clone());
                move |tx: &mut dyn Txn| {
                    let Some(mut stored) = tx.run(&id)? else {
                        return Ok(None);
                    };
                    if super::is_terminal(stored.run.state) {
                        return Ok(None);
                    }
                    let r = &mut stored.run;
                    r.state = RunState::Failed as i32;
                    r.error = Some(RunError {
                        reason: "EXECUTION_FAILED".into(),
                        message: format!("the gateway could not finish the run: {why}"),
                    });
                    r.end_time = Some(now_ts());
                    super::delivery::settle_unsent(r);
                    tx.put_run(&stored)?;
                    tx.append_event(run_event(&stored.run))?;
                    let heartbeat = stored.run.origin == RunOrigin::Heartbeat as i32;
                    Ok(heartbeat.then_some(stored.run.session_key))
                }
            })
            .await?;
        if let Some(key) = heartbeat_of {
            self.scheduler.release_heartbeat(&key);
        }
        Ok(())
    }

    /// Executes one run: RUNNING, model, terminal state, transcript, delivery outcome.
    async fn execute(self: &Arc<Self>, run_id: &str) -> Result<()> {
        let (token, _guard) = self.scheduler.start(run_id);
        let started = self
            .write_retrying(run_id, || {
                let id = run_id.to_string();
                move |tx: &mut dyn Txn| {
                    let Some(mut stored) = tx.run(&id)? else {
                        return Ok(None);
                    };
                    if stored.run.state != RunState::Queued as i32 {
                        return Ok(None); // cancelled while queued
                    }
                    let key = stored.run.session_key.clone();
                    if !tx.claim_session(&key)? {
                        // Another replica took this session over (this one was declared dead);
                        // it runs the run.
                        return Ok(None);
                    }
                    let mut session = match tx.session(&key)? {
                        Some(s) => s,
                        None => new_session(&key, &stored.run.agent_id),
                    };
                    let heartbeat = stored.run.origin == RunOrigin::Heartbeat as i32;
                    let system_events = tx.system_events(&key)?;
                    let now = now_ts();
                    let mut next_index = u64::from(session.message_count) + 1;
                    let mut put =
                        |tx: &mut dyn Txn, role: MessageRole, text: String| -> Result<()> {
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
                }
            })
            .await?;
        let Some((run, turn, system_events, history)) = started else {
            return Ok(());
        };
        if run.origin == RunOrigin::Heartbeat as i32 {
            self.scheduler.release_heartbeat(&run.session_key);
        }
        let executing = self.scheduler.executing();
        let typing = self.typing(&run);
        let outcome = self
            .call_model(&run, turn, system_events, history, &token)
            .await;
        if let Some(t) = typing {
            t.abort();
        }
        // Deliver before the terminal write, so a finished run always carries its outcome.
        let delivery = match &outcome {
            Outcome::Succeeded(reply) => Some(self.send_reply(&run, reply).await?),
            _ => None,
        };
        drop(executing);
        let summary = summary_of(&outcome, delivery.as_ref());
        let wake = run.summary_wake.clone();
        let (agent, session) = (run.agent_id.clone(), run.session_key.clone());
        self.finish(run, outcome, delivery).await?;
        if let Some(w) = wake {
            self.post_summary(&w, &agent, &session, summary).await;
        }
        Ok(())
    }

    /// Queues a finished run's summary on its agent's main session (and with `now` runs a
    /// heartbeat there), as OpenClaw does after a `/hooks/agent` run.
    async fn post_summary(
        self: &Arc<Self>,
        w: &SummaryWake,
        agent: &str,
        session: &str,
        summary: Result<String, String>,
    ) {
        let main = clawplane_proto::keys::main_session(agent, &self.session.main_key);
        if session == main {
            return; // the run was in the main session: its transcript already has it
        }
        let name = if w.name.trim().is_empty() {
            "Hook"
        } else {
            w.name.trim()
        };
        let text = match summary {
            Ok(reply) => format!("{name}: {reply}"),
            Err(why) => format!("{name} (error): {why}"),
        };
        let mode = if w.now {
            WakeMode::Now
        } else {
            WakeMode::NextHeartbeat
        };
        if let Err(e) = self.wake(&text, mode, &main, agent, false).await {
            tracing::warn!(session = %main, "the run's summary could not be queued: {e}");
        }
    }

    /// The typing indicator of a run answering an inbound channel message, while the
    /// model works.
    fn typing(&self, run: &Run) -> Option<tokio::task::JoinHandle<()>> {
        let d = run.delivery.as_ref()?;
        if run.origin != RunOrigin::Channel as i32 || d.status != DeliveryStatus::Pending as i32 {
            return None;
        }
        self.channels.typing(crate::channels::Outbound {
            channel: d.channel.clone(),
            to: d.to.clone(),
            account_id: d.account_id.clone(),
            thread_id: d.thread_id.clone(),
            reply_to: d.inbound_message_id.clone(),
            ..Default::default()
        })
    }

    /// Sends a reply along the run's route. A reply that will be sent is first stored with
    /// the run and its delivery marked SENDING, durably: a crash from here on settles the
    /// run from the stored reply as delivery UNKNOWN at the next start (see `recover`), so a
    /// reply is produced at most once and never sent twice.
    async fn send_reply(&self, run: &Run, reply: &ModelReply) -> Result<Delivery> {
        let pending = run
            .delivery
            .as_ref()
            .is_some_and(|d| d.status == DeliveryStatus::Pending as i32);
        if pending && !super::delivery::silent_reply(&reply.text) {
            let (id, reply) = (run.run_id.clone(), reply.clone());
            self.store
                .write(move |tx: &mut dyn Txn| {
                    let Some(mut stored) = tx.run(&id)? else {
                        return Ok(());
                    };
                    let r = &mut stored.run;
                    r.reply_text = reply.text;
                    r.usage = Some(reply.usage);
                    if !reply.model.is_empty() {
                        r.model = reply.model;
                    }
                    if let Some(d) = r.delivery.as_mut() {
                        d.status = DeliveryStatus::Sending as i32;
                    }
                    tx.put_run(&stored)?;
                    tx.append_event(run_event(&stored.run)).map(|_| ())
                })
                .await?;
        }
        Ok(self.deliver(run, &reply.text).await)
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
        let chain = self.models.chain(&run.agent_id, &run.model);
        let (models, run_id) = (&self.models, run.run_id.as_str());
        // Failover: the run's model, then the agent's fallbacks, until one answers; each
        // failure is kept for the run's error. Never after a model streamed part of a reply
        // (the next one would repeat it).
        let fut = async move {
            let mut reasons = Vec::new();
            for name in chain {
                let model = match models.get(&name) {
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
        // before the terminal RUN event. A full store queue makes the pump wait (deltas
        // then buffer in the model's channel, bounded by the reply and the time limit).
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
                store
                    .write_detached(move |tx: &mut dyn Txn| tx.append_event(ev).map(|_| ()))
                    .await;
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

    pub(super) async fn finish(
        &self,
        run: Run,
        outcome: Outcome,
        delivery: Option<Delivery>,
    ) -> Result<()> {
        self.write_retrying(&run.run_id, || {
            let (outcome, delivery) = (outcome.clone(), delivery.clone());
            self.finish_txn(&run, outcome, delivery)
        })
        .await
    }

    /// Runs the transaction `make` builds until the store takes it: while the store cannot
    /// write (PostgreSQL restarting), it is tried again with backoff until shutdown (then
    /// recovery at the next start settles the run).
    async fn write_retrying<R, F>(&self, run_id: &str, make: impl Fn() -> F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Txn) -> Result<R> + Send + 'static,
    {
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            match self.store.write(make()).await {
                Err(crate::error::Error::Storage(e)) if !self.shutdown.is_cancelled() => {
                    tracing::warn!(run_id, error = %e, "cannot record the run's progress yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// The transaction that records how a run ended.
    fn finish_txn(
        &self,
        run: &Run,
        outcome: Outcome,
        delivery: Option<Delivery>,
    ) -> impl FnOnce(&mut dyn Txn) -> Result<()> + Send + 'static {
        let (id, attempt) = (run.run_id.clone(), run.attempt);
        move |tx: &mut dyn Txn| {
            let Some(mut stored) = tx.run(&id)? else {
                return Ok(());
            };
            if stored.run.state != RunState::Running as i32 || stored.run.attempt != attempt {
                // Taken over meanwhile (this replica was declared dead): the run was
                // interrupted and retried elsewhere; this attempt's outcome is void.
                tracing::warn!(run_id = %id, attempt, "run taken over by another replica; outcome dropped");
                return Ok(());
            }
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
        }
    }
}

/// How a run ended.
#[derive(Clone)]
pub(super) enum Outcome {
    Succeeded(crate::models::ModelReply),
    Failed(&'static str, String),
    TimedOut(u32),
    Cancelled,
}

/// What a finished run says in one line: its reply, or why it has none.
fn summary_of(outcome: &Outcome, delivery: Option<&Delivery>) -> Result<String, String> {
    const MAX: usize = 2000;
    let cut = |t: &str| match t.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    };
    match outcome {
        Outcome::Succeeded(_)
            if delivery.is_some_and(|d| d.status == DeliveryStatus::Failed as i32) =>
        {
            Err(format!(
                "the reply could not be delivered: {}",
                delivery.map(|d| d.detail.as_str()).unwrap_or_default()
            ))
        }
        Outcome::Succeeded(reply) if reply.text.trim().is_empty() => {
            Ok("completed (no reply)".into())
        }
        Outcome::Succeeded(reply) => Ok(cut(reply.text.trim())),
        Outcome::Failed(_, message) => Err(cut(message)),
        Outcome::TimedOut(secs) => Err(format!("timed out after {secs} s")),
        Outcome::Cancelled => Err("cancelled".into()),
    }
}
