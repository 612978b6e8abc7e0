//! The hooks token's policy (`hooks.allowedAgentIds`, `allowRequestSessionKey`,
//! `defaultSessionKey`, `allowedSessionKeyPrefixes`), applied here to every run and wake
//! asked for with that token — whichever surface carried it (gRPC, gRPC-Web, the HTTP hooks,
//! the WebSocket shim) — so no caller can skip it by going around the hooks bridge.

use crate::config::hooks::{HooksConfig, non_empty, prefix_allowed};
use crate::error::{Error, Result};
use clawplane_proto::keys::normalize_agent_id;
use clawplane_util::template::is_templated;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// OpenClaw's wording for a refused request key (the hooks bridge answers it verbatim).
pub const SESSION_KEY_POLICY: &str = "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable";
/// OpenClaw's wording for a refused agent.
pub const AGENT_POLICY: &str = "agentId is not allowed by hooks.allowedAgentIds";

/// `hooks.*` as the core enforces it.
#[derive(Debug, Default)]
pub struct HooksPolicy {
    /// `None`: every agent (no list, or `*` in it).
    allowed_agents: Option<HashSet<String>>,
    default_session_key: Option<String>,
    allow_request_session_key: bool,
    prefixes: Option<Vec<String>>,
    /// Keys that `hooks.mappings[].sessionKey` names verbatim (no template): the operator
    /// chose them, so they are allowed without `allowRequestSessionKey`.
    static_keys: HashSet<String>,
}

impl HooksPolicy {
    pub fn new(cfg: &HooksConfig) -> HooksPolicy {
        let allowed_agents = cfg.allowed_agent_ids.as_ref().and_then(|ids| {
            (!ids.iter().any(|i| i.trim() == "*"))
                .then(|| ids.iter().map(|i| normalize_agent_id(i)).collect())
        });
        let static_keys = cfg
            .mappings
            .iter()
            .filter_map(|m| non_empty(m.session_key.as_deref()))
            .filter(|k| !is_templated(k))
            .map(|k| k.trim().to_string())
            .collect();
        HooksPolicy {
            allowed_agents,
            default_session_key: non_empty(cfg.default_session_key.as_deref())
                .map(|k| k.trim().to_string()),
            allow_request_session_key: cfg.allow_request_session_key,
            prefixes: cfg.prefixes(),
            static_keys,
        }
    }

    /// The agent a hooks-token call targets (already defaulted), under
    /// `hooks.allowedAgentIds`.
    pub fn check_agent(&self, agent: &str) -> Result<()> {
        match &self.allowed_agents {
            Some(allowed) if !allowed.contains(agent) => Err(Error::HookPolicy {
                reason: "HOOK_AGENT_NOT_ALLOWED",
                message: AGENT_POLICY.into(),
                config_key: "hooks.allowedAgentIds",
            }),
            _ => Ok(()),
        }
    }

    /// The session key a hooks-token run goes to: the requested key (subject to
    /// `allowRequestSessionKey`, unless a mapping names it verbatim, and to the prefixes),
    /// else `hooks.defaultSessionKey`, else `hook:<uuid>` (derived from the idempotency key,
    /// so a replay lands on the same session). An agent-prefixed key is re-scoped to `agent`.
    pub fn run_session_key(
        &self,
        requested: &str,
        agent: &str,
        idempotency_key: &str,
    ) -> Result<String> {
        let requested = requested.trim();
        let key = if !requested.is_empty() {
            if !self.allow_request_session_key && !self.static_keys.contains(requested) {
                return Err(Error::HookPolicy {
                    reason: "HOOK_SESSION_KEY_NOT_ALLOWED",
                    message: SESSION_KEY_POLICY.into(),
                    config_key: "hooks.allowRequestSessionKey",
                });
            }
            self.check_prefix(requested)?;
            requested.to_string()
        } else if let Some(d) = &self.default_session_key {
            d.clone()
        } else {
            generated_session_key(idempotency_key)
        };
        let key = match key.strip_prefix("agent:").and_then(|r| r.split_once(':')) {
            Some((_, rest)) if !rest.is_empty() => format!("agent:{agent}:{rest}"),
            _ => key,
        };
        self.check_prefix(&key)?;
        Ok(key)
    }

    /// The session key of a hooks-token wake: none means the main session (as OpenClaw's
    /// `/hooks/wake`); a named one follows the same rules as a run's.
    pub fn wake_session_key(&self, requested: &str, agent: &str) -> Result<String> {
        if requested.trim().is_empty() {
            return Ok(String::new());
        }
        self.run_session_key(requested, agent, "")
    }

    fn check_prefix(&self, key: &str) -> Result<()> {
        match &self.prefixes {
            Some(p) if !prefix_allowed(key, p) => Err(Error::HookPolicy {
                reason: "HOOK_SESSION_KEY_PREFIX",
                message: format!("sessionKey must start with one of: {}", p.join(", ")),
                config_key: "hooks.allowedSessionKeyPrefixes",
            }),
            _ => Ok(()),
        }
    }
}

/// `hook:<uuid>`: random, or derived from the idempotency key.
fn generated_session_key(idempotency_key: &str) -> String {
    let id = if idempotency_key.is_empty() {
        uuid::Uuid::new_v4()
    } else {
        let h = Sha256::digest(format!("clawplane-hook-session:{idempotency_key}").as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        uuid::Builder::from_random_bytes(b).into_uuid()
    };
    format!("hook:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> HooksPolicy {
        HooksPolicy::new(&serde_json::from_value(json).expect("hooks config"))
    }

    #[test]
    fn request_keys_need_the_switch_unless_a_mapping_names_them() {
        let p = policy(serde_json::json!({
            "mappings": [{ "sessionKey": "hook:github" }, { "sessionKey": "hook:{{ payload.x }}" }]
        }));
        let e = p
            .run_session_key("agent:main:main", "main", "")
            .unwrap_err();
        assert_eq!(e.reason(), "HOOK_SESSION_KEY_NOT_ALLOWED");
        assert_eq!(
            p.run_session_key("hook:github", "main", "").unwrap(),
            "hook:github"
        );
        assert!(
            p.run_session_key("hook:{{ payload.x }}", "main", "")
                .is_err()
        );
        let g = p.run_session_key("", "main", "k1").unwrap();
        assert!(g.starts_with("hook:"), "{g}");
        assert_eq!(
            g,
            p.run_session_key("", "main", "k1").unwrap(),
            "derived from the key"
        );
    }

    #[test]
    fn prefixes_and_agents() {
        let p = policy(serde_json::json!({
            "allowRequestSessionKey": true,
            "allowedSessionKeyPrefixes": ["hook:", "agent:"],
            "allowedAgentIds": ["ops"]
        }));
        assert_eq!(
            p.check_agent("main").unwrap_err().reason(),
            "HOOK_AGENT_NOT_ALLOWED"
        );
        assert!(p.check_agent("ops").is_ok());
        assert_eq!(
            p.run_session_key("crm:1", "ops", "").unwrap_err().reason(),
            "HOOK_SESSION_KEY_PREFIX"
        );
        assert_eq!(
            p.run_session_key("agent:main:hook:x", "ops", "").unwrap(),
            "agent:ops:hook:x",
            "re-scoped to the target agent, then checked"
        );
        assert_eq!(p.wake_session_key("", "ops").unwrap(), "");
    }
}
