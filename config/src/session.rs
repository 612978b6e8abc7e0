//! `session.*`: how messages map to sessions.

use crate::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SessionConfig {
    /// Direct-message scope: `main` | `per-peer` | `per-channel-peer` |
    /// `per-account-channel-peer`.
    pub dm_scope: String,
    /// The main session key suffix (`agent:<id>:<mainKey>`).
    pub main_key: String,
    /// Canonical peer -> identities (`discord:123`, `telegram:42`, `whatsapp:+1555…`) that
    /// are the same person: their direct messages share the canonical peer's session.
    pub identity_links: BTreeMap<String, Vec<String>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            dm_scope: "per-channel-peer".into(),
            main_key: "main".into(),
            identity_links: Default::default(),
        }
    }
}

/// The values `session.dmScope` takes.
pub const DM_SCOPES: [&str; 4] = [
    "main",
    "per-peer",
    "per-channel-peer",
    "per-account-channel-peer",
];

impl SessionConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !DM_SCOPES.contains(&self.dm_scope.as_str()) {
            return Err(ConfigError::at(
                "session.dmScope",
                format!("{:?} is not one of {}", self.dm_scope, DM_SCOPES.join(", ")),
            ));
        }
        Ok(())
    }
}
