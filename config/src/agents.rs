//! `agents.*`: run limits, the default model and its fallbacks, the heartbeat, and
//! per-agent settings (`agents.list[]`).

use crate::ConfigError;
use crate::models::ModelChoice;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentsConfig {
    /// Settings every agent starts from.
    pub defaults: AgentDefaults,
    /// Per-agent settings (`agents.list[]`).
    pub list: Vec<AgentEntry>,
}

/// One `agents.list[]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentEntry {
    /// The agent id (`agent:<id>:…` session keys).
    pub id: String,
    /// Accepted for openclaw.json compatibility.
    pub name: Option<String>,
    /// Accepted for openclaw.json compatibility.
    pub default: bool,
    /// `"provider/model"` or `{ primary, fallbacks }`; unset parts come from the defaults.
    pub model: Option<ModelChoice>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentDefaults {
    /// Runs executing at once across sessions.
    pub max_concurrent: usize,
    /// Runs waiting (queued, not yet running) across the gateway at most; more are refused
    /// with RESOURCE_EXHAUSTED `QUEUE_FULL`.
    pub max_queued_runs: u64,
    /// Runs waiting in one session's queue at most.
    pub max_queued_per_session: usize,
    /// Default run time limit.
    pub timeout_seconds: u32,
    /// The default model: `"provider/model"` or `{ primary, fallbacks }` (tried in order
    /// when the primary fails).
    pub model: ModelChoice,
    /// The heartbeat schedule.
    pub heartbeat: HeartbeatConfig,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            max_concurrent: 16,
            max_queued_runs: 100_000,
            max_queued_per_session: 1_000,
            timeout_seconds: 600,
            model: ModelChoice {
                primary: Some(DEFAULT_MODEL.into()),
                fallbacks: None,
            },
            heartbeat: HeartbeatConfig::default(),
        }
    }
}

/// The built-in offline model, the default when nothing else is configured.
pub const DEFAULT_MODEL: &str = "builtin/echo";

impl AgentDefaults {
    /// The heartbeat interval (`heartbeat.every`), `None` when off.
    pub fn heartbeat_every(&self) -> Option<std::time::Duration> {
        clawplane_util::time::parse_interval(&self.heartbeat.every).filter(|d| !d.is_zero())
    }

    /// The default model's `provider/model` name.
    pub fn model_name(&self) -> &str {
        self.model.primary.as_deref().unwrap_or(DEFAULT_MODEL)
    }

    /// The default fallbacks, in order.
    pub fn fallbacks(&self) -> &[String] {
        self.model.fallbacks.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct HeartbeatConfig {
    /// Interval such as `30m`, `1h30m`, `10s`, `500ms`; a bare number is minutes; `0m`
    /// disables the schedule.
    pub every: String,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            every: "30m".into(),
        }
    }
}

impl AgentsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.defaults;
        if clawplane_util::time::parse_interval(&d.heartbeat.every).is_none() {
            return Err(ConfigError::at(
                "agents.defaults.heartbeat.every",
                format!(
                    "{:?} is not an interval like \"30m\", \"1h\", \"10s\" or \"0m\"",
                    d.heartbeat.every
                ),
            ));
        }
        if d.max_concurrent == 0 {
            return Err(ConfigError::at(
                "agents.defaults.maxConcurrent",
                "must be at least 1",
            ));
        }
        for (i, a) in self.list.iter().enumerate() {
            if a.id.trim().is_empty() {
                return Err(ConfigError::at(
                    format!("agents.list[{i}].id"),
                    "is required",
                ));
            }
        }
        Ok(())
    }
}
