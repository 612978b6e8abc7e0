//! The configuration: one JSON5 file with openclaw.json key names where the meaning is the
//! same. This crate is a leaf: data types per section, the checks that need nothing but the
//! data, the loader (`${VAR}` substitution per string, `CLAWPLANE_*` overrides, unknown keys
//! refused with a did-you-mean, type errors with their key path) and the key reference
//! (`docs/config.md`, `docs/config.schema.json`) generated from the types. What needs code to
//! check — templates, provider URLs, channel credentials — is compiled once when the gateway
//! opens, by the service that owns the section.

pub mod agents;
pub mod bindings;
pub mod channels;
pub mod events;
pub mod gateway;
pub mod hooks;
mod load;
pub mod models;
pub mod reference;
pub mod retention;
pub mod session;
pub mod storage;
pub mod webhooks;

pub use agents::*;
pub use events::{EventsConfig, NatsConfig};
pub use gateway::*;
pub use hooks::{HookMapping, HookMatch, HooksConfig};
pub use load::{Loaded, load, load_value};
pub use retention::RetentionConfig;
pub use session::SessionConfig;
pub use storage::{PostgresConfig, StorageConfig};
pub use webhooks::{IncomingAuth, IncomingConfig, IncomingEndpoint, WebhooksConfig};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(title = "clawplane configuration")]
pub struct Config {
    /// The listener, authentication, TLS, pairing and connection limits.
    pub gateway: GatewayConfig,
    /// Agents: run limits, the default model, the heartbeat, per-agent settings.
    pub agents: AgentsConfig,
    /// Which agent answers an inbound message (`bindings[]`: channel, account, peer).
    pub bindings: Vec<bindings::Binding>,
    /// How messages map to sessions.
    pub session: SessionConfig,
    /// Where durable state lives: redb under the data dir, or PostgreSQL.
    pub storage: StorageConfig,
    /// The durable event feed.
    pub events: EventsConfig,
    /// How long finished runs, idempotency answers and sent-message records are kept.
    pub retention: RetentionConfig,
    /// OpenClaw HTTP hooks (`/hooks/wake`, `/hooks/agent`, mappings).
    pub hooks: HooksConfig,
    /// Templated ingress (`webhooks.incoming`) and egress (`webhooks.outgoing`, `.egress`).
    pub webhooks: WebhooksConfig,
    /// Channels (`discord`, `telegram`, `whatsapp`, `slack`, `webhook`).
    pub channels: channels::ChannelsConfig,
    /// Model providers (`models.providers.<id>`).
    pub models: models::ModelsConfig,
    /// The JSON Schema an editor validates this file with; ignored by the gateway.
    #[serde(rename = "$schema", skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// A config problem that stops the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid JSON5: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "config key {key}: ${{{var}}} is not set in the environment (write $${{{var}}} for a literal)"
    )]
    MissingVar { key: String, var: String },
    #[error("unknown config key{} {}", if .keys.len() == 1 { "" } else { "s" }, .keys.join(", "))]
    UnknownKeys {
        /// Each key's path, with `(did you mean …?)` when a known key is close.
        keys: Vec<String>,
    },
    #[error("config key {key}: {message}")]
    Type { key: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl ConfigError {
    /// An invalid value at `key`.
    pub fn at(key: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        ConfigError::Invalid(format!("{key}: {message}"))
    }
}

impl Config {
    /// The checks that need nothing but the data; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.gateway.validate()?;
        self.agents.validate()?;
        bindings::validate(&self.bindings, &self.agents.list)?;
        self.session.validate()?;
        self.storage.validate()?;
        self.events.validate()?;
        self.retention.validate()?;
        self.hooks.validate().map_err(ConfigError::Invalid)?;
        self.channels
            .validate_inbound()
            .map_err(ConfigError::Invalid)?;
        self.webhooks
            .egress
            .validate()
            .map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The heartbeat interval; `None` when disabled.
    pub fn heartbeat_every(&self) -> Option<std::time::Duration> {
        self.agents.defaults.heartbeat_every()
    }

    /// The address `gateway.bind` names.
    pub fn bind_addr(&self) -> Result<std::net::IpAddr, ConfigError> {
        self.gateway.bind_addr()
    }
}
