//! Runs: an owned service holding sessions and transcripts, durable acceptance with
//! idempotency, per-session queues, execution with timeouts and cancellation, delivery of
//! replies, wake and heartbeats, waiting, listing, and crash recovery. It is given the
//! store, the model and channel clients, and its config sections (`agents`, `session`);
//! it names neither the gateway holder nor the rest of the core (checked by `layers.rs`).

mod accept;
mod control;
pub mod delivery;
mod execute;
mod gauge;
pub mod policy;
pub mod scheduler;
mod send;
pub mod sessions;
pub mod wake;

use crate::{
    channels::Channels,
    config::{AgentDefaults, HooksConfig, SessionConfig},
    error::FieldViolation,
    models::Models,
    store::Store,
};
use clawplane_proto::v1::{
    Event, EventKind, Run, RunState, Session, SessionChange, SessionChangeType, event::Payload,
};
use clawplane_proto::{keys, now_ts};
use scheduler::Scheduler;
use sha2::{Digest, Sha256};
use std::sync::{Arc, atomic::AtomicBool};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The runs service.
pub struct Runs {
    store: Store,
    models: Arc<Models>,
    channels: Arc<Channels>,
    defaults: AgentDefaults,
    session: SessionConfig,
    /// `hooks.*` for runs and wakes asked for with the hooks token.
    hooks: policy::HooksPolicy,
    /// The agent of requests that name none.
    pub default_agent: String,
    /// Run queues, executor slots, cancellation handles.
    scheduler: Scheduler,
    /// Tracks run drivers so shutdown can drain them.
    pub tasks: TaskTracker,
    /// The runtime run drivers are spawned on (enqueueing happens on the store writer thread).
    runtime: tokio::runtime::Handle,
    /// Cancelled when shutdown starts: ends the heartbeat schedule.
    shutdown: CancellationToken,
    /// Set when shutdown starts: new runs are refused and drivers stop between runs.
    pub draining: AtomicBool,
    /// With replicas: how long a silent replica keeps its sessions (`storage.postgres.leaseMs`).
    lease: std::time::Duration,
    /// With replicas: the cluster's run counts (set by [`Runs::recover`]).
    gauge: std::sync::OnceLock<std::sync::Mutex<gauge::Gauge>>,
}

impl Runs {
    pub fn new(
        store: Store,
        models: Arc<Models>,
        channels: Arc<Channels>,
        defaults: &AgentDefaults,
        session: &SessionConfig,
        hooks: &HooksConfig,
        shutdown: CancellationToken,
    ) -> Runs {
        Runs {
            store,
            models,
            channels,
            scheduler: Scheduler::new(defaults.max_concurrent),
            defaults: defaults.clone(),
            session: session.clone(),
            hooks: policy::HooksPolicy::new(hooks),
            default_agent: "main".into(),
            tasks: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
            shutdown,
            draining: AtomicBool::new(false),
            lease: std::time::Duration::from_secs(10),
            gauge: std::sync::OnceLock::new(),
        }
    }

    /// With replicas: how long a silent replica keeps its sessions.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Runs {
        self.lease = lease;
        self
    }

    /// The agent id to use for a request field (normalised; default agent when empty).
    pub fn agent(&self, agent_id: &str) -> String {
        if agent_id.trim().is_empty() {
            self.default_agent.clone()
        } else {
            keys::normalize_agent_id(agent_id)
        }
    }

    /// Canonical key for a request's `sessionKey` + `agentId`.
    pub fn session_key(&self, key: &str, agent_id: &str) -> String {
        let agent = self.agent(agent_id);
        keys::canonical(key, &agent, &self.session.main_key)
    }

    /// The default agent's main session key.
    pub fn main_session_key(&self) -> String {
        keys::main_session(&self.default_agent, &self.session.main_key)
    }
}

/// What retention prunes: finished runs (their idempotency keys go with them) and the
/// timed records runs own — sent-message receipts and SendMessage answers.
pub fn retention(r: &crate::config::RetentionConfig) -> crate::store::Retention {
    use crate::store::Record;
    let records = [
        (delivery::SentMessage::KIND, r.sent_messages_age()),
        (send::SEND_RECORD_KIND, r.idempotency_age()),
    ];
    crate::store::Retention {
        runs: r.runs_age(),
        records: records
            .into_iter()
            .filter_map(|(kind, age)| Some((kind, age?)))
            .collect(),
        every: r.prune_every(),
        batch: r.prune_batch,
    }
}

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
    /// Who presented `idempotency_key` (a credential, or an internal surface such as
    /// `channel:telegram`): keys are unique per scope, never globally.
    pub key_scope: String,
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
    /// Asked for with the hooks token: `hooks.*` decides the agent and the session key.
    pub via_hooks: bool,
    /// The transcript generation to continue (OpenClaw `sessionId`), when no key is given.
    pub session_id: String,
    /// A delivery route apart from the session's routing (`--reply-channel`, `--reply-to`,
    /// `--reply-account`); each empty one falls back to `channel` / `to` / `account_id`.
    pub reply_channel: String,
    pub reply_to: String,
    pub reply_account_id: String,
    /// Once the run ends, its summary goes to the agent's main session.
    pub summary_wake: Option<clawplane_proto::v1::SummaryWake>,
}

impl NewRun {
    /// The request as delivery sees it: the reply route where one is given.
    pub(crate) fn reply_route(&self) -> std::borrow::Cow<'_, NewRun> {
        if self.reply_channel.is_empty()
            && self.reply_to.is_empty()
            && self.reply_account_id.is_empty()
        {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut r = self.clone();
        if !self.reply_channel.trim().is_empty() {
            r.channel = self.reply_channel.clone();
        }
        if !self.reply_to.trim().is_empty() {
            r.to = self.reply_to.clone();
        }
        if !self.reply_account_id.trim().is_empty() {
            r.account_id = self.reply_account_id.clone();
        }
        std::borrow::Cow::Owned(r)
    }
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

/// True when a run seen on the feed will not change any more: an INTERRUPTED first
/// attempt is on its way back to QUEUED (recovery writes both in one commit).
pub fn is_final(run: &Run) -> bool {
    is_terminal(run.state) && !(run.state == RunState::Interrupted as i32 && run.attempt < 2)
}

/// The idempotency record key of `key` presented by `scope`. One namespace per scope: a
/// caller's key names one run whatever kind of call started it (reused for another kind
/// with other input, it is a conflict, as the fingerprint covers the origin).
pub fn idem_record_key(scope: &str, key: &str) -> String {
    format!("{scope}\u{1f}{key}")
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
