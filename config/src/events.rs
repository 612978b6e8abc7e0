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
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention: 1_000_000,
            progress_interval_ms: 5000,
            live_buffer: 16 * 1024,
        }
    }
}

impl EventsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.live_buffer == 0 {
            return Err(ConfigError::at("events.liveBuffer", "must be at least 1"));
        }
        Ok(())
    }
}
