//! One mapping action rendered from its templates and checked against the hook policies,
//! before anything is dispatched (bad input in any item dispatches nothing).

use super::{
    Hooks,
    compile::{Action, Mapping, SessionMode},
};
use crate::respond::{Answer, bad, fail, reject};
use axum::http::StatusCode;
use clawplane_proto::keys::normalize_agent_id;
use clawplane_proto::v1::{AgentServiceRunRequest, GatewayServiceWakeRequest, WakeMode};

/// One prepared action of a mapping.
pub(super) enum Prepared {
    Agent(Box<AgentServiceRunRequest>),
    Wake(GatewayServiceWakeRequest),
}

impl Hooks {
    /// Renders a template as is (messages and texts, as OpenClaw does).
    pub(super) fn render_raw(
        &self,
        name: Option<&String>,
        ctx: &minijinja::Value,
    ) -> Answer<Option<String>> {
        let Some(name) = name else {
            return Ok(None);
        };
        self.c
            .env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| {
                tracing::warn!(template = %name, error = %e, "hook mapping failed");
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("hook mapping failed: {e}"),
                )
            })
            .map(Some)
            .map_err(Box::new)
    }

    /// Renders a template, trimmed; `None` when absent or empty.
    pub(super) fn render(
        &self,
        name: Option<&String>,
        ctx: &minijinja::Value,
    ) -> Answer<Option<String>> {
        Ok(self
            .render_raw(name, ctx)?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    }

    /// Renders one action of a mapping and applies the hook policies.
    pub(super) fn prepare(
        &self,
        m: &Mapping,
        ctx: &minijinja::Value,
        idempotency_key: Option<String>,
    ) -> Answer<Prepared> {
        // `hooks.*` (allowed agents, session keys) is the core's to apply: the mapping's
        // agent and rendered key go as they are.
        let agent = m
            .agent_id
            .as_deref()
            .map(normalize_agent_id)
            .unwrap_or_default();
        let session_key = match &m.session_key {
            None => None,
            Some((tpl, templated)) => match self.render(Some(tpl), ctx)? {
                Some(k) => Some((k, *templated)),
                None if *templated => {
                    return reject(bad("hook mapping sessionKey template rendered empty"));
                }
                None => None,
            },
        };
        let requested = session_key.as_ref().map(|(k, _)| k.as_str());
        match m.action {
            Action::Wake => {
                let text = self
                    .render_raw(m.text.as_ref(), ctx)?
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| bad("hook mapping requires text"))?;
                if requested.is_some() && m.wake_mode == WakeMode::NextHeartbeat {
                    return reject(bad("hook mapping sessionKey requires wakeMode=now"));
                }
                Ok(Prepared::Wake(GatewayServiceWakeRequest {
                    text,
                    mode: m.wake_mode as i32,
                    session_key: requested.unwrap_or_default().to_string(),
                    agent_id: agent,
                }))
            }
            Action::Agent => {
                let message = self
                    .render_raw(m.message.as_ref(), ctx)?
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| bad("hook mapping requires message"))?;
                if m.session_mode == SessionMode::Persistent
                    && requested.is_none()
                    && self.c.default_session_key.is_none()
                {
                    return reject(bad(
                        "sessionKey or hooks.defaultSessionKey is required when mapped hook sessionMode is persistent",
                    ));
                }
                let name = self.render(m.name.as_ref(), ctx)?;
                let (channel, to, account_id) = if m.deliver {
                    (
                        m.channel.clone(),
                        self.render(m.to.as_ref(), ctx)?.unwrap_or_default(),
                        m.account_id.clone(),
                    )
                } else {
                    Default::default()
                };
                let best_effort = channel.is_empty() || channel == "last";
                Ok(Prepared::Agent(Box::new(AgentServiceRunRequest {
                    message,
                    idempotency_key: idempotency_key.unwrap_or_default(),
                    agent_id: agent,
                    session_key: requested.unwrap_or_default().to_string(),
                    channel,
                    to,
                    account_id,
                    // OpenClaw's default route is the session's last one; a hook whose
                    // session has none still runs (the answer carries a warning).
                    best_effort_deliver: best_effort,
                    deliver: m.deliver,
                    model: self.render(m.model.as_ref(), ctx)?.unwrap_or_default(),
                    thinking: self.render(m.thinking.as_ref(), ctx)?.unwrap_or_default(),
                    timeout_seconds: m.timeout_seconds,
                    label: name.unwrap_or_else(|| "Hook".into()),
                    ..Default::default()
                })))
            }
        }
    }
}
