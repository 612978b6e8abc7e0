//! The domain core: sessions and transcripts, runs (durable acceptance, per-session
//! queues, execution, cancellation, timeouts, idempotency), the event feed, and wake.

pub mod devices;
pub mod egress;
pub mod events;
pub mod inbound;
pub use clawplane_proto::keys;
pub mod runs;
pub mod senders;
pub mod webhooks;

use crate::{config::Config, error::Result, models::Models, store::Store};
use clawplane_proto::pbjson_types::Timestamp;
use std::{path::PathBuf, sync::Arc, time::Instant};
use tokio_util::sync::CancellationToken;

/// The current time as a protobuf Timestamp.
pub use clawplane_proto::now_ts;

/// The gateway: everything the API layer calls.
pub struct Gateway {
    pub config: Arc<Config>,
    pub store: Store,
    pub data_dir: PathBuf,
    pub models: Arc<Models>,
    /// Outbound channel clients.
    pub channels: Arc<crate::channels::Channels>,
    /// Sessions, runs, delivery, wake and heartbeats.
    pub runs: Arc<runs::Runs>,
    /// The stable instance id (a UUID kept in the store), `/webhooks/<instance_id>`.
    pub instance_id: String,
    /// `/webhook/<path>` ingress (`webhooks.incoming`).
    pub ingress: webhooks::Ingress,
    /// WhatsApp and Telegram inbound webhooks.
    pub inbound: Arc<inbound::InboundChannels>,
    /// Who may talk to the bot: sender policy, pairing requests, approvals, bindings.
    pub senders: Arc<senders::Senders>,
    /// `/webhooks/<instance id>`: keys, calls log, one turn per call.
    pub sync_webhooks: webhooks::SyncWebhooks,
    /// Webhook egress (`webhooks.outgoing`, the outbox and the dispatcher).
    pub egress: Arc<egress::Egress>,
    /// Cancelled when shutdown starts: ends watch streams and refuses new runs.
    pub shutdown: CancellationToken,
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
            &config.storage,
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
        let channels = crate::channels::Channels::new(&config.channels, store.clone())
            .map_err(|e| crate::error::Error::Internal(format!("invalid config: {e}")))?;
        let channels = Arc::new(channels);
        let models = Arc::new(Models::new(&config.models, &config.agents));
        let shutdown = CancellationToken::new();
        if !config.events.nats.url.trim().is_empty() {
            crate::store::spawn_relay(store.clone(), &config.events.nats, shutdown.clone());
        }
        let runs = Arc::new(
            runs::Runs::new(
                store.clone(),
                models.clone(),
                channels.clone(),
                &config.agents.defaults,
                &config.session,
                &config.hooks,
                shutdown.clone(),
            )
            .with_lease(config.storage.lease()),
        );
        let ingress = webhooks::Ingress::new(&config.webhooks.incoming, runs.clone())
            .map_err(|e| crate::error::Error::Internal(format!("invalid config: {e}")))?;
        let senders = Arc::new(senders::Senders::new(&config, store.clone(), runs.clone()));
        let inbound = Arc::new(inbound::InboundChannels::new(
            &config.channels,
            &config.gateway.auth.rate_limit,
            store.clone(),
            runs.clone(),
            senders.clone(),
            channels.clone(),
        ));
        let sync_webhooks = webhooks::SyncWebhooks::new(store.clone(), runs.clone(), &instance_id);
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
            sync_webhooks,
            inbound,
            senders,
            runs,
            config: Arc::new(config),
            store,
            data_dir,
            models,
            shutdown,
            started: Instant::now(),
            start_time: now_ts(),
            devices,
            tls: std::sync::OnceLock::new(),
        });
        if gw.store.shared() {
            gw.devices.follow_replicas();
        }
        gw.runs.recover().await?;
        gw.egress.start().await?;
        if let Some(client) = gw.channels.discord_gateway() {
            inbound::spawn_discord(gw.inbound.clone(), client, gw.shutdown.clone());
        }
        crate::store::spawn_pruner(
            gw.store.clone(),
            runs::retention(&gw.config.retention),
            gw.shutdown.clone(),
        );
        Ok(gw)
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
pub(crate) use clawplane_util::sync::lock;
