//! `webhooks.*`: templated ingress (`webhooks.incoming`, `/webhook/<path>`) and egress
//! (`webhooks.outgoing` endpoints, `webhooks.egress` delivery settings). Endpoint URLs,
//! secrets and templates are compiled by the egress service when the gateway opens.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `webhooks.*`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct WebhooksConfig {
    pub incoming: IncomingConfig,
    /// Egress endpoints: events delivered as Standard Webhooks (`core::egress`).
    pub outgoing: Vec<OutgoingWebhook>,
    /// Egress delivery settings (retry schedule, timeout, SSRF guard, disabling).
    pub egress: EgressConfig,
}

/// `webhooks.incoming`: templated ingress at `/webhook/<path>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IncomingConfig {
    pub enabled: bool,
    /// The default `X-Webhook-Secret` of endpoints without their own `auth`.
    pub secret: Option<String>,
    pub endpoints: Vec<IncomingEndpoint>,
}

/// One ingress endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IncomingEndpoint {
    /// The path under `/webhook/` (e.g. `github` or `ci/builds`).
    pub path: String,
    /// The message template (minijinja): `{{body}}`, `{{body.a.b}}`, `{{headers.x-y}}`.
    pub message: String,
    pub agent_id: Option<String>,
    /// Session key (may be a template); default a fresh `webhook:<path>:<uuid>` per delivery.
    pub session_key: Option<String>,
    pub deliver: Option<bool>,
    pub channel: Option<String>,
    pub to: Option<String>,
    pub auth: Option<IncomingAuth>,
}

/// How an ingress endpoint authenticates its sender.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IncomingAuth {
    /// `secret` (`X-Webhook-Secret`), `github`, `stripe` or `standard-webhooks`.
    pub scheme: String,
    pub secret: String,
    /// Replay window of the timestamped schemes (default 300 s).
    pub tolerance_seconds: Option<u64>,
}

/// One entry of `webhooks.outgoing`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct OutgoingWebhook {
    /// Stable id (`[A-Za-z0-9_-]`, ≤ 64); default derived from `url` and `event`, so editing
    /// either starts a new endpoint at the head of the log.
    pub id: Option<String>,
    /// Event type, or a list of them; `*` for all.
    pub event: EventNames,
    /// Destination (http or https).
    pub url: String,
    /// Extra request headers (`${ENV}` is substituted by the config loader).
    pub headers: BTreeMap<String, String>,
    /// Which events of the type are sent.
    pub filter: Option<FilterConfig>,
    /// The JSON body: a minijinja template of it (a string), or an object whose every
    /// string leaf is a template (the "API & Webhooks" guide's form), over `event` (with
    /// `task_name`, `result`, `message`, `error`, `sender`, …), `type`, `data`, `timestamp`.
    pub transform: Option<Transform>,
    /// `whsec_<base64>` signing secret; unsigned when absent.
    pub secret: Option<String>,
}

/// `transform`: a template of the whole body, or an object of templates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Transform {
    Template(String),
    Object(serde_json::Map<String, serde_json::Value>),
}

/// `event`: one name or a list.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum EventNames {
    One(String),
    Many(Vec<String>),
}

impl Default for EventNames {
    fn default() -> Self {
        EventNames::Many(Vec::new())
    }
}

impl EventNames {
    pub fn list(&self) -> Vec<String> {
        match self {
            EventNames::One(s) => vec![s.clone()],
            EventNames::Many(v) => v.clone(),
        }
    }
}

/// `webhooks.outgoing[].filter`: every set field must match.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct FilterConfig {
    /// Only events of this session (bare keys are taken under the default agent).
    pub session_key: Option<String>,
    /// Only events of this agent.
    pub agent_id: Option<String>,
    /// Only events of this channel (channel events; runs by their delivery channel).
    pub channel: Option<String>,
    /// A minijinja expression over `event`, `type`, `data`; sent when truthy.
    pub expression: Option<String>,
    /// Only events from this sender (channel messages by sender id; runs by the recipient
    /// of their reply).
    pub sender: Option<String>,
}

/// `webhooks.egress`: delivery settings shared by every endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct EgressConfig {
    /// Delays (seconds) before attempts 2, 3, …; Svix's schedule by default.
    pub retry_schedule: Vec<f64>,
    /// Per-attempt timeout.
    pub timeout_seconds: f64,
    /// Allow loopback / private / link-local targets (tests, LAN setups).
    pub allow_private_targets: bool,
    /// Disable an endpoint whose attempts have all failed for this long (0: never).
    pub disable_after_seconds: u64,
    /// Also disable after this many failed attempts in a row (0: off).
    pub disable_after_failures: u32,
    /// After a timeout or a `429`, wait at least this long (Svix: 60 s).
    pub throttle_min_seconds: f64,
    /// Finished (delivered or failed) messages kept with their attempt log.
    pub max_attempt_log: usize,
    /// Deliveries in flight at once, across endpoints.
    pub concurrency: usize,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            retry_schedule: vec![5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
            timeout_seconds: 15.0,
            allow_private_targets: false,
            disable_after_seconds: 5 * 24 * 3600,
            disable_after_failures: 0,
            throttle_min_seconds: 60.0,
            max_attempt_log: 1000,
            concurrency: 8,
        }
    }
}

impl EgressConfig {
    /// Checks the delivery settings; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self
            .retry_schedule
            .iter()
            .any(|s| !s.is_finite() || *s < 0.0 || *s > 7.0 * 86400.0)
        {
            return Err(
                "webhooks.egress.retrySchedule: delays must be seconds between 0 and 604800".into(),
            );
        }
        if !self.timeout_seconds.is_finite()
            || self.timeout_seconds <= 0.0
            || self.timeout_seconds > 300.0
        {
            return Err(
                "webhooks.egress.timeoutSeconds: must be more than 0 and at most 300".into(),
            );
        }
        if !self.throttle_min_seconds.is_finite() || self.throttle_min_seconds < 0.0 {
            return Err("webhooks.egress.throttleMinSeconds: must be 0 or more seconds".into());
        }
        if self.concurrency == 0 {
            return Err("webhooks.egress.concurrency must be at least 1".into());
        }
        Ok(())
    }
}
