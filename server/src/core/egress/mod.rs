//! Webhook egress: events of the durable log delivered to HTTP endpoints as Standard
//! Webhooks (`webhooks.outgoing[]` and `WebhookService/CreateWebhookEndpoint`).
//!
//! - **Outbox.** Each endpoint has a durable cursor over the event log. The outbox task reads
//!   events after it, and for every matching one durably creates a message (stable id
//!   `msg_<seq>_<endpoint hash>`, sent as `webhook-id` on every attempt, body rendered once)
//!   in the same transaction that advances the cursor — so a restart neither loses nor
//!   duplicates messages, and events appended while the gateway was down are picked up.
//! - **Dispatcher.** Due messages are POSTed concurrently (bounded by
//!   `webhooks.egress.concurrency`). Success is 2xx only (redirects are not followed);
//!   `410` disables the endpoint; `429/502/503/504` honour `Retry-After` (delta seconds)
//!   clamped to [base, 2×base] (as Svix), and timeouts and `429` wait at least
//!   `throttleMinSeconds`; otherwise the next attempt follows `retrySchedule` with ±20 %
//!   jitter. After the schedule the message is FAILED and kept for manual redelivery.
//!   Every attempt is logged durably in the message record (bounded).
//! - **Disable.** An endpoint whose attempts all fail for `disableAfterSeconds` (or
//!   `disableAfterFailures` in a row, when set) is disabled and an `EVENT_KIND_WEBHOOK`
//!   `disabled` event is appended; a success after failures appends `recovered`. A disabled
//!   endpoint's cursor stands still, so enabling it delivers what happened meanwhile.
//! - **SSRF guard.** Loopback, private, link-local, unique-local, shared and unspecified
//!   targets are refused (at config load, on create, and again at delivery against the
//!   address actually connected to) unless `webhooks.egress.allowPrivateTargets`.
//!
//! The parts: `config` compiles endpoint definitions (`webhooks.outgoing`, and the same
//! checks for RPC-created ones), `signing` holds the `whsec_` keys and `v1,` signatures,
//! `ssrf` resolves and checks targets, `render` matches events to endpoints and renders
//! bodies, `records` and `outbox` make durable messages from the event log, `dispatch`
//! delivers them, and `api` answers the WebhookService endpoint and delivery RPCs.
//!
//! Egress is an owned service: it holds its state here and depends only on the store (and
//! its event feed), the utilities, the error type and its config section.

mod api;
mod config;
mod dispatch;
mod outbox;
mod records;
mod render;
mod signing;
mod ssrf;

pub use api::NewEndpoint;
pub use config::{EVENT_TYPES, validate};
pub use signing::{new_secret, sign};

use crate::{error::Result, store::Store};
use clawplane_config::webhooks::{EgressConfig, WebhooksConfig};
use clawplane_proto::v1::{Event, EventKind, WebhookEndpointChange, event};
use clawplane_util::{sync::lock, time::now_ms};
use config::EndpointDef;
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex, atomic::AtomicUsize},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The egress service: its config, the store it keeps the outbox in, and the in-memory
/// schedule of the outbox and dispatcher tasks.
pub struct Egress {
    store: Store,
    /// Cancelled when the gateway shuts down: the outbox and dispatcher tasks end.
    shutdown: CancellationToken,
    cfg: EgressConfig,
    configured: Vec<(String, EndpointDef)>,
    /// `session.mainKey`, to canonicalise filter session keys.
    main_key: String,
    /// Pending messages by due time.
    due: Mutex<BTreeSet<(i64, String)>>,
    inflight: Mutex<HashSet<String>>,
    /// In-memory cursors ahead of the stored ones (unproductive advances).
    cursors: Mutex<HashMap<String, u64>>,
    finished: AtomicUsize,
    wake_dispatch: Notify,
    wake_outbox: Notify,
}

impl Egress {
    /// Compiles `webhooks.outgoing` (errors name the config key). Nothing runs until
    /// [`Egress::start`].
    pub fn new(
        webhooks: &WebhooksConfig,
        main_key: &str,
        store: Store,
        shutdown: CancellationToken,
    ) -> std::result::Result<Egress, String> {
        Ok(Egress {
            configured: config::configured(&webhooks.outgoing, &webhooks.egress, main_key)?,
            cfg: webhooks.egress.clone(),
            main_key: main_key.to_string(),
            store,
            shutdown,
            due: Mutex::default(),
            inflight: Mutex::default(),
            cursors: Mutex::default(),
            finished: AtomicUsize::new(0),
            wake_dispatch: Notify::new(),
            wake_outbox: Notify::new(),
        })
    }

    /// Syncs the configured endpoints into the store, loads pending messages and starts the
    /// outbox and dispatcher tasks (they stop when the shutdown token is cancelled).
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        self.sync_configured().await?;
        if self.store.shared() {
            // Nothing is held before the first heartbeat; `follow_duties` loads what is.
            self.load_pending(Some(&HashSet::new()))?;
            let weak = Arc::downgrade(self);
            self.store.on_signal(Box::new(move |message| {
                if let (Some(egress), Some(id)) = (weak.upgrade(), message.strip_prefix(DUTY)) {
                    egress.schedule(now_ms(), id.to_string());
                }
            }));
            let c = self.clone();
            tokio::spawn(async move { c.follow_duties().await });
        } else {
            self.load_pending(None)?;
        }
        let (a, b) = (self.clone(), self.clone());
        tokio::spawn(async move { a.outbox().await });
        tokio::spawn(async move { b.dispatcher().await });
        Ok(())
    }

    /// Puts a message on the dispatcher's schedule.
    fn schedule(&self, at: i64, id: String) {
        lock(&self.due).insert((at, id));
        self.wake_dispatch.notify_one();
    }

    /// Puts due messages on the schedule at once.
    fn schedule_all(&self, due: impl IntoIterator<Item = (i64, String)>) {
        lock(&self.due).extend(due);
        self.wake_dispatch.notify_one();
    }
}

/// The duties of delivering endpoints are named `egress:<endpoint id>`; a signal
/// `egress:<message id>` asks the holder to send a message now (a redelivery asked here).
const DUTY: &str = "egress:";

fn duty(endpoint: &str) -> String {
    format!("{DUTY}{endpoint}")
}

/// The feed event of an endpoint change (`disabled`, `recovered`, `enabled`).
fn webhook_event(change: WebhookEndpointChange) -> Event {
    Event {
        kind: EventKind::Webhook as i32,
        payload: Some(event::Payload::Webhook(change)),
        ..Default::default()
    }
}
