//! `storage.*`: where durable state lives. redb under the data dir unless
//! `storage.postgres.url` names a PostgreSQL database.

use crate::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct StorageConfig {
    /// PostgreSQL as the system of record instead of the embedded redb file.
    pub postgres: PostgresConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PostgresConfig {
    /// A libpq URL, e.g. `postgres://clawplane@127.0.0.1:5432/clawplane` (`serve --store`
    /// sets it too). Empty: redb under the data dir. The schema is created on first start.
    /// Any number of gateway processes (replicas) may serve one database.
    pub url: String,
    /// How long a replica that stopped heartbeating keeps its sessions before another
    /// replica takes them over (its running runs are then interrupted and retried once).
    /// Heartbeats go every tenth of it. 1000..=600000.
    pub lease_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: String::new(),
            lease_ms: 10_000,
        }
    }
}

impl StorageConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let url = self.postgres.url.trim();
        let known = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !url.is_empty() && !known {
            return Err(ConfigError::at(
                "storage.postgres.url",
                "must be a postgres:// (or postgresql://) URL",
            ));
        }
        if !(1000..=600_000).contains(&self.postgres.lease_ms) {
            return Err(ConfigError::at(
                "storage.postgres.leaseMs",
                "must be between 1000 and 600000 (milliseconds)",
            ));
        }
        Ok(())
    }

    /// How long a silent replica keeps its sessions.
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.postgres.lease_ms)
    }

    /// The PostgreSQL URL, when PostgreSQL is the store.
    pub fn postgres_url(&self) -> Option<&str> {
        Some(self.postgres.url.trim()).filter(|u| !u.is_empty())
    }
}
