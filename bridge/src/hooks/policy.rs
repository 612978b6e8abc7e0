//! The hook policies applied to every action: `hooks.allowedAgentIds`,
//! `allowRequestSessionKey`, `defaultSessionKey` and `allowedSessionKeyPrefixes`.

use super::compile::{Compiled, KeySource};
use crate::respond::{Answer, bad, reject};
use clawplane_config::hooks::prefix_allowed;
use clawplane_proto::keys::normalize_agent_id;
use sha2::{Digest as _, Sha256};

const SESSION_KEY_POLICY: &str = "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable";
const AGENT_POLICY: &str = "agentId is not allowed by hooks.allowedAgentIds";

impl Compiled {
    fn prefix_error(&self) -> String {
        format!(
            "sessionKey must start with one of: {}",
            self.prefixes.as_deref().unwrap_or_default().join(", ")
        )
    }

    fn check_prefix(&self, key: &str) -> Answer<()> {
        match &self.prefixes {
            Some(p) if !prefix_allowed(key, p) => reject(bad(self.prefix_error())),
            _ => Ok(()),
        }
    }

    /// The agent a hook targets (`agentId` or the default), under `hooks.allowedAgentIds`.
    pub(super) fn target_agent(&self, requested: Option<&str>) -> Answer<String> {
        let agent = requested.map_or_else(|| self.default_agent.clone(), normalize_agent_id);
        match &self.allowed_agents {
            Some(allowed) if !allowed.contains(&agent) => reject(bad(AGENT_POLICY)),
            _ => Ok(agent),
        }
    }

    /// The session key to dispatch under: the requested key (subject to
    /// `allowRequestSessionKey` and the prefixes), else `hooks.defaultSessionKey`, else a
    /// generated `hook:<uuid>`. An agent-prefixed key is re-scoped to the target agent.
    pub(super) fn session_key(
        &self,
        source: KeySource,
        requested: Option<&str>,
        agent: &str,
        idempotency_key: Option<&str>,
    ) -> Answer<String> {
        let key = if let Some(k) = requested {
            if source != KeySource::MappingStatic && !self.allow_request_session_key {
                return reject(bad(SESSION_KEY_POLICY));
            }
            self.check_prefix(k)?;
            k.to_string()
        } else if let Some(d) = &self.default_session_key {
            d.clone()
        } else {
            let g = generated_session_key(idempotency_key);
            self.check_prefix(&g)?;
            g
        };
        let key = match key.strip_prefix("agent:").and_then(|r| r.split_once(':')) {
            Some((_, rest)) if !rest.is_empty() => format!("agent:{agent}:{rest}"),
            _ => key,
        };
        self.check_prefix(&key)?;
        Ok(key)
    }
}

/// `hook:<uuid>`: random, or derived from the idempotency key so a replay lands on the same
/// session (and so is recognised as the same run).
fn generated_session_key(idempotency_key: Option<&str>) -> String {
    let id = match idempotency_key {
        Some(k) => {
            let h = Sha256::digest(format!("clawplane-hook-session:{k}").as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[..16]);
            uuid::Builder::from_random_bytes(b).into_uuid()
        }
        None => uuid::Uuid::new_v4(),
    };
    format!("hook:{id}")
}
