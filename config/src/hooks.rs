//! `hooks.*` configuration (openclaw.json keys) and its data checks. The mapping templates
//! are compiled by the hooks bridge when the gateway opens.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `hooks.*`: OpenClaw-compatible HTTP hooks on the gateway's port.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct HooksConfig {
    /// Serve the hooks routes. Needs `token`.
    pub enabled: bool,
    /// The hooks token, presented as `Authorization: Bearer <token>` or `x-openclaw-token`.
    /// It grants only the hook operations; it should differ from `gateway.auth.token`.
    pub token: Option<String>,
    /// Base path; default `/hooks`. A leading `/` is added and trailing slashes removed.
    pub path: Option<String>,
    /// Agents hooks may target; absent or containing `"*"` allows all, `[]` denies all.
    pub allowed_agent_ids: Option<Vec<String>>,
    /// Session key for hook runs that name none (otherwise `hook:<uuid>` per request).
    pub default_session_key: Option<String>,
    /// Allow `sessionKey` from request bodies and templated mapping keys.
    pub allow_request_session_key: bool,
    /// Case-insensitive prefixes every hook session key must start with.
    pub allowed_session_key_prefixes: Option<Vec<String>>,
    /// `POST <path>/<name>` mappings, first match wins.
    pub mappings: Vec<HookMapping>,
}

/// One `hooks.mappings[]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct HookMapping {
    pub id: Option<String>,
    #[serde(rename = "match")]
    pub match_rule: Option<HookMatch>,
    /// `agent` (default) or `wake`.
    pub action: Option<String>,
    /// `now` (default) or `next-heartbeat`.
    pub wake_mode: Option<String>,
    pub name: Option<String>,
    pub agent_id: Option<String>,
    /// Static or templated session key.
    pub session_key: Option<String>,
    /// `isolated` (default) or `persistent`.
    pub session_mode: Option<String>,
    /// The agent message (action `agent`), a minijinja template.
    pub message_template: Option<String>,
    /// The wake text (action `wake`), a minijinja template.
    pub text_template: Option<String>,
    /// A top-level array key of the payload: one action per item (at most 200), each
    /// item rendered as `payload`.
    pub for_each: Option<String>,
    /// Deliver the reply (default true).
    pub deliver: Option<bool>,
    /// Delivery channel (default `last`).
    pub channel: Option<String>,
    /// Recipient (templated).
    pub to: Option<String>,
    pub account_id: Option<String>,
    pub model: Option<String>,
    pub thinking: Option<String>,
    pub timeout_seconds: Option<f64>,
    /// OpenClaw JS transforms are not supported; present only to refuse them clearly.
    pub transform: Option<serde_json::Value>,
}

/// `hooks.mappings[].match`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct HookMatch {
    /// The sub-path after the base path, slashes trimmed.
    pub path: Option<String>,
    /// Exact match on the payload's `source` string.
    pub source: Option<String>,
}

/// Trimmed, non-empty.
pub fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

impl HooksConfig {
    /// The hooks token when one is set.
    pub fn token(&self) -> Option<&str> {
        non_empty(self.token.as_deref())
    }

    /// The normalised base path.
    pub fn base_path(&self) -> Result<String, String> {
        let raw = non_empty(self.path.as_deref()).unwrap_or("/hooks");
        let with_slash = if raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("/{raw}")
        };
        let trimmed = with_slash.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err("hooks.path may not be \"/\"".into());
        }
        if !trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
            || trimmed.contains("//")
        {
            return Err(format!(
                "hooks.path {raw:?} may contain only letters, digits, '/', '-', '_', '.' and '~'"
            ));
        }
        // The gateway's own routes live on the same port: a hooks path on top of them would
        // shadow them (and the router refuses overlapping routes).
        for reserved in ["/webhook", "/webhooks", "/healthz", "/readyz"] {
            if trimmed == reserved || trimmed.starts_with(&format!("{reserved}/")) {
                return Err(format!(
                    "hooks.path {raw:?} overlaps the gateway's own {reserved} route; pick another path (default /hooks)"
                ));
            }
        }
        Ok(trimmed.to_string())
    }

    /// Lowercased non-empty prefixes, `None` when unrestricted.
    pub fn prefixes(&self) -> Option<Vec<String>> {
        let list: Vec<String> = self
            .allowed_session_key_prefixes
            .iter()
            .flatten()
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        (!list.is_empty()).then_some(list)
    }

    /// Checks what the data alone can tell. Nothing is checked while hooks are disabled.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.token().is_none() {
            return Err(
                "hooks.enabled requires hooks.token (a secret for Authorization: Bearer <token>)"
                    .into(),
            );
        }
        self.base_path()?;
        let prefixes = self.prefixes();
        let default_key = non_empty(self.default_session_key.as_deref());
        if let (Some(key), Some(prefixes)) = (default_key, &prefixes)
            && !prefix_allowed(key, prefixes)
        {
            return Err(
                "hooks.defaultSessionKey must match hooks.allowedSessionKeyPrefixes".into(),
            );
        }
        if default_key.is_none()
            && let Some(prefixes) = &prefixes
            && !prefix_allowed("hook:example", prefixes)
        {
            return Err(
                "hooks.allowedSessionKeyPrefixes must include 'hook:' when hooks.defaultSessionKey is unset"
                    .into(),
            );
        }
        Ok(())
    }
}

/// True when `key` starts with one of the (lowercased) `prefixes`, case-insensitively.
pub fn prefix_allowed(key: &str, prefixes: &[String]) -> bool {
    let key = key.trim().to_ascii_lowercase();
    !key.is_empty() && prefixes.iter().any(|p| key.starts_with(p.as_str()))
}

#[cfg(test)]
mod tests {
    use super::HooksConfig;

    fn with_path(path: &str) -> HooksConfig {
        serde_json::from_value(serde_json::json!({"enabled": true, "token": "t", "path": path}))
            .expect("hooks config")
    }

    #[test]
    fn hooks_path_may_not_shadow_gateway_routes() {
        for bad in ["/webhooks", "/webhook/", "webhook/x", "/healthz", "/"] {
            assert!(with_path(bad).validate().is_err(), "{bad} must be refused");
        }
        for ok in ["/hooks", "/webhookish", "/api/hooks/"] {
            assert!(with_path(ok).validate().is_ok(), "{ok} is fine");
        }
        assert_eq!(
            with_path("/api/hooks/").base_path().as_deref(),
            Ok("/api/hooks")
        );
    }
}
