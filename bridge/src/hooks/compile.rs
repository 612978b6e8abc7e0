//! `hooks.*` compiled once when the gateway opens: the policies resolved, every mapping's
//! templates added to one environment and its enums parsed, so a request only matches and
//! renders, and a config mistake is found by `clawplane config validate`.

use super::HooksContext;
use clawplane_config::hooks::{HookMapping, HooksConfig, non_empty};
use clawplane_proto::v1::WakeMode;
use clawplane_util::template;
use serde_json::Value as Json;

/// What a mapping dispatches (`action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Agent,
    Wake,
}

/// A fresh session per hook, or the one named (`sessionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionMode {
    Isolated,
    Persistent,
}

/// A mapping ready to match and render; templates live in [`Compiled::env`] under these
/// names.
pub(super) struct Mapping {
    pub(super) id: String,
    pub(super) match_path: Option<String>,
    pub(super) match_source: Option<String>,
    pub(super) action: Action,
    pub(super) wake_mode: WakeMode,
    pub(super) session_mode: SessionMode,
    pub(super) agent_id: Option<String>,
    pub(super) for_each: Option<String>,
    pub(super) deliver: bool,
    pub(super) channel: String,
    pub(super) account_id: String,
    pub(super) timeout_seconds: u32,
    pub(super) message: Option<String>,
    pub(super) text: Option<String>,
    pub(super) name: Option<String>,
    pub(super) session_key: Option<(String, bool)>,
    pub(super) to: Option<String>,
    pub(super) model: Option<String>,
    pub(super) thinking: Option<String>,
}

impl Mapping {
    pub(super) fn matches(&self, sub: &str, payload: &Json) -> bool {
        if let Some(p) = &self.match_path
            && p != sub.trim_matches('/')
        {
            return false;
        }
        if let Some(s) = &self.match_source
            && payload.get("source").and_then(Json::as_str) != Some(s.as_str())
        {
            return false;
        }
        true
    }
}

/// Resolved `hooks.*`.
pub(crate) struct Compiled {
    pub(super) base: String,
    pub(super) default_session_key: Option<String>,
    /// Only to order the answers as OpenClaw does; the core enforces the switch.
    pub(super) allow_request_session_key: bool,
    pub(super) prefixes: Option<Vec<String>>,
    pub(super) channels: Option<Vec<String>>,
    pub(super) mappings: Vec<Mapping>,
    pub(super) env: minijinja::Environment<'static>,
}

impl Compiled {
    pub(crate) fn new(cfg: &HooksConfig, ctx: &HooksContext) -> Result<Compiled, String> {
        let mut c = Compiled {
            base: cfg.base_path()?,
            default_session_key: non_empty(cfg.default_session_key.as_deref()).map(str::to_string),
            allow_request_session_key: cfg.allow_request_session_key,
            prefixes: cfg.prefixes(),
            channels: ctx.channels.clone(),
            mappings: Vec::new(),
            env: template::environment(),
        };
        for (i, m) in cfg.mappings.iter().enumerate() {
            let mapping = c.compile_mapping(i, m)?;
            c.mappings.push(mapping);
        }
        Ok(c)
    }

    fn compile_mapping(&mut self, i: usize, m: &HookMapping) -> Result<Mapping, String> {
        let at = |field: &str| format!("hooks.mappings[{i}].{field}");
        if m.transform.is_some() {
            return Err(format!(
                "{}: JS transforms are not supported; build the action with messageTemplate or textTemplate",
                at("transform")
            ));
        }
        let action = match non_empty(m.action.as_deref()) {
            None | Some("agent") => Action::Agent,
            Some("wake") => Action::Wake,
            Some(other) => return Err(format!("{}: {other:?} is not agent or wake", at("action"))),
        };
        let wake_mode = match non_empty(m.wake_mode.as_deref()) {
            None | Some("now") => WakeMode::Now,
            Some("next-heartbeat") => WakeMode::NextHeartbeat,
            Some(other) => {
                return Err(format!(
                    "{}: {other:?} is not now or next-heartbeat",
                    at("wakeMode")
                ));
            }
        };
        let session_mode = match non_empty(m.session_mode.as_deref()) {
            None | Some("isolated") => SessionMode::Isolated,
            Some("persistent") => SessionMode::Persistent,
            Some(other) => {
                return Err(format!(
                    "{}: {other:?} is not isolated or persistent",
                    at("sessionMode")
                ));
            }
        };
        let channel = match non_empty(m.channel.as_deref()) {
            None => "last".to_string(),
            Some(ch) => self
                .channel(ch)
                .map_err(|e| format!("{}: {e}", at("channel")))?,
        };
        let timeout_seconds = match m.timeout_seconds {
            None => 0,
            Some(t) if t.is_finite() && t >= 1.0 => t.floor().min(f64::from(u32::MAX)) as u32,
            Some(t) => {
                return Err(format!(
                    "{}: {t} is not a positive number",
                    at("timeoutSeconds")
                ));
            }
        };
        let mut add = |field: &str, src: Option<&String>| -> Result<Option<String>, String> {
            let Some(src) = src.filter(|s| !s.trim().is_empty()) else {
                return Ok(None);
            };
            let name = format!("{i}.{field}");
            self.env
                .add_template_owned(name.clone(), template::rewrite(src))
                .map_err(|e| format!("{}: {e}", at(field)))?;
            Ok(Some(name))
        };
        let message = add("messageTemplate", m.message_template.as_ref())?;
        let text = add("textTemplate", m.text_template.as_ref())?;
        let name = add("name", m.name.as_ref())?;
        let session_key = add("sessionKey", m.session_key.as_ref())?.map(|n| {
            (
                n,
                template::is_templated(m.session_key.as_deref().unwrap_or("")),
            )
        });
        let to = add("to", m.to.as_ref())?;
        let model = add("model", m.model.as_ref())?;
        let thinking = add("thinking", m.thinking.as_ref())?;
        let match_rule = m.match_rule.clone().unwrap_or_default();
        Ok(Mapping {
            id: non_empty(m.id.as_deref())
                .map_or_else(|| format!("mapping-{}", i + 1), str::to_string),
            match_path: non_empty(match_rule.path.as_deref())
                .map(|p| p.trim_matches('/').to_string())
                .filter(|p| !p.is_empty()),
            match_source: non_empty(match_rule.source.as_deref()).map(str::to_string),
            action,
            wake_mode,
            session_mode,
            agent_id: non_empty(m.agent_id.as_deref()).map(str::to_string),
            for_each: non_empty(m.for_each.as_deref()).map(str::to_string),
            deliver: m.deliver.unwrap_or(true),
            channel,
            account_id: non_empty(m.account_id.as_deref())
                .unwrap_or_default()
                .to_string(),
            timeout_seconds,
            message,
            text,
            name,
            session_key,
            to,
            model,
            thinking,
        })
    }

    /// A channel id as OpenClaw accepts it: `last` or a configured channel.
    pub(super) fn channel(&self, raw: &str) -> Result<String, String> {
        let ch = raw.trim().to_ascii_lowercase();
        if ch == "last" {
            return Ok(ch);
        }
        let known = match &self.channels {
            Some(list) => list.iter().any(|c| c.eq_ignore_ascii_case(&ch)),
            None => {
                !ch.is_empty()
                    && ch
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }
        };
        if known {
            Ok(ch)
        } else {
            Err(self.channel_error())
        }
    }

    pub(super) fn channel_error(&self) -> String {
        let mut ids = vec!["last".to_string()];
        ids.extend(self.channels.iter().flatten().cloned());
        format!("channel must be {}", ids.join("|"))
    }
}
