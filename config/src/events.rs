//! `events.*`: the durable event feed.

use crate::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct EventsConfig {
    /// Events kept in the log; older ones are pruned.
    pub retention: u64,
    /// Idle interval after which a watcher gets a progress frame.
    pub progress_interval_ms: u64,
    /// Live events buffered per subscriber; one that falls further behind is ended with
    /// SUBSCRIBER_LAGGED and resumes from the log.
    pub live_buffer: usize,
    /// Relay of the committed log to a NATS JetStream stream.
    pub nats: NatsConfig,
}

/// `events.nats.*`: every committed event is published, in seq order, to a JetStream stream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct NatsConfig {
    /// `nats://HOST:PORT` (`serve --events` sets it too). Empty: no relay. The server
    /// should run JetStream with `sync_interval: always`, or an acknowledged event may be
    /// lost from the stream on a power loss (the store's log keeps it either way).
    pub url: String,
    /// The stream, created when missing (file storage, 2-minute duplicate window).
    pub stream: String,
    /// The subject events are published on; `Nats-Msg-Id` is the event's seq.
    pub subject: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: String::new(),
            stream: "CLAWPLANE_EVENTS".into(),
            subject: "clawplane.events".into(),
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention: 1_000_000,
            progress_interval_ms: 5000,
            live_buffer: 16 * 1024,
            nats: NatsConfig::default(),
        }
    }
}

impl EventsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.live_buffer == 0 {
            return Err(ConfigError::at("events.liveBuffer", "must be at least 1"));
        }
        let url = self.nats.url.trim();
        if !url.is_empty() && !url.starts_with("nats://") {
            return Err(ConfigError::at("events.nats.url", "must be a nats:// URL"));
        }
        if self.nats.stream.trim().is_empty() || self.nats.subject.trim().is_empty() {
            return Err(ConfigError::at(
                "events.nats",
                "stream and subject must not be empty",
            ));
        }
        Ok(())
    }
}
