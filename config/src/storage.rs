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

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PostgresConfig {
    /// A libpq URL, e.g. `postgres://clawplane@127.0.0.1:5432/clawplane` (`serve --store`
    /// sets it too). Empty: redb under the data dir. The schema is created on first start.
    /// One gateway process per database for now: a second one is refused at start.
    pub url: String,
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
        Ok(())
    }

    /// The PostgreSQL URL, when PostgreSQL is the store.
    pub fn postgres_url(&self) -> Option<&str> {
        Some(self.postgres.url.trim()).filter(|u| !u.is_empty())
    }
}
