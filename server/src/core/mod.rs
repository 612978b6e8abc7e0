//! The domain core: sessions and transcripts, runs (durable acceptance, per-session
//! queues, execution, cancellation, timeouts, idempotency), the event feed, and wake.

pub mod delivery;
pub mod devices;
pub mod egress;
pub mod events;
pub mod inbound;
pub use clawplane_proto::keys;
pub mod runs;
pub mod scheduler;
pub mod sessions;
pub mod wake;
pub mod webhooks;

use crate::{config::Config, error::Result, models::Models, store::Store};
use clawplane_proto::pbjson_types::Timestamp;
use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The current time as a protobuf Timestamp.
pub use clawplane_proto::now_ts;

/// The gateway: everything the API layer calls.
pub struct Gateway {
    pub config: Arc<Config>,
    pub store: Store,
    pub data_dir: PathBuf,
    pub models: Models,
    /// Outbound channel clients.
    pub channels: crate::channels::Channels,
    pub default_agent: String,
    /// The stable instance id (a UUID kept in the store), `/webhooks/<instance_id>`.
    pub instance_id: String,
    /// The compiled `webhooks.incoming` endpoints, when enabled.
    pub ingress: Option<webhooks::Ingress>,
    /// Webhook egress (`webhooks.outgoing`, the outbox and the dispatcher).
    pub egress: Arc<egress::Egress>,
    /// Run queues, executor slots, cancellation handles.
    pub scheduler: scheduler::Scheduler,
    /// Tracks run drivers so shutdown can drain them.
    pub tasks: TaskTracker,
    /// The runtime run drivers are spawned on (enqueueing happens on the store writer thread).
    runtime: tokio::runtime::Handle,
    /// Cancelled when shutdown starts: ends watch streams and refuses new runs.
    pub shutdown: CancellationToken,
    pub draining: AtomicBool,
    pub started: Instant,
    pub start_time: Timestamp,
    /// Devices and pairing (challenges, pending requests, device tokens).
    pub devices: Arc<devices::Devices>,
    /// The served TLS certificate (set by `serve` when TLS is on).
    pub tls: std::sync::OnceLock<Arc<crate::tls::CertResolver>>,
}

impl Gateway {
    /// Opens the store and recovers runs that were queued or running when the process last
    /// stopped.
    pub async fn open(config: Config, data_dir: PathBuf) -> Result<Arc<Gateway>> {
        let store = crate::store::open(
            &data_dir,
            config.events.retention,
            config.events.live_buffer,
        )?;
        let instance_id = match store.read(|r| r.setting("instance_id"))? {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                let v = id.clone();
                store
                    .write(move |t| t.put_setting("instance_id", &v))
                    .await?;
                id
            }
        };
        let ingress = if config.webhooks.incoming.enabled {
            Some(
                webhooks::Ingress::compile(&config.webhooks.incoming)
                    .map_err(|e| crate::error::Error::Internal(format!("invalid config: {e}")))?,
            )
        } else {
            None
        };
        let channels = crate::channels::Channels::new(&config.channels, store.clone())
            .map_err(|e| crate::error::Error::Internal(format!("invalid config: {e}")))?;
        let shutdown = CancellationToken::new();
        let egress = egress::Egress::new(
            &config.webhooks,
            &config.session.main_key,
            store.clone(),
            shutdown.clone(),
        )
        .map_err(|e| crate::error::Error::Internal(format!("invalid config: {e}")))?;
        let devices = Arc::new(devices::Devices::open(
            &config.gateway.nodes.pairing,
            store.clone(),
        )?);
        let gw = Arc::new(Gateway {
            egress: Arc::new(egress),
            channels,
            instance_id,
            ingress,
            scheduler: scheduler::Scheduler::new(config.agents.defaults.max_concurrent),
            config: Arc::new(config),
            store,
            data_dir,
            models: Models::new(),
            default_agent: "main".into(),
            tasks: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
            shutdown,
            draining: AtomicBool::new(false),
            started: Instant::now(),
            start_time: now_ts(),
            devices,
            tls: std::sync::OnceLock::new(),
        });
        gw.recover().await?;
        gw.egress.start().await?;
        Ok(gw)
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
        keys::canonical(key, &agent, &self.config.session.main_key)
    }

    /// The default agent's main session key.
    pub fn main_session_key(&self) -> String {
        keys::main_session(&self.default_agent, &self.config.session.main_key)
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
pub(crate) use clawplane_util::sync::lock;
