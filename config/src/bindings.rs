//! `bindings[]`: which agent answers an inbound message, matched on the channel, its
//! account and the peer (OpenClaw's route bindings). The most specific match wins: a peer
//! match over an account match over a channel-wide one; otherwise the default agent.

use crate::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One `bindings[]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Binding {
    /// `route` (the default). OpenClaw's `acp` bindings are refused.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The agent that answers matching messages.
    pub agent_id: String,
    /// Free text.
    pub comment: Option<String>,
    /// What the message must match.
    #[serde(rename = "match")]
    pub matches: BindingMatch,
    /// OpenClaw's per-binding session scoping: refused (use `session.dmScope`).
    pub session: Option<serde_json::Value>,
}

/// `bindings[].match`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BindingMatch {
    /// Channel id, e.g. `telegram`. Required.
    pub channel: String,
    /// Channel account; omitted or `"*"` matches every account of the channel.
    pub account_id: Option<String>,
    /// One conversation.
    pub peer: Option<PeerMatch>,
    /// Discord guild / Slack team / Discord roles: refused (not matched yet).
    pub guild_id: Option<String>,
    pub team_id: Option<String>,
    pub roles: Option<Vec<String>>,
}

/// `bindings[].match.peer`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PeerMatch {
    /// `direct`, `group` or `channel`.
    pub kind: String,
    /// The sender id (direct) or the group / channel id.
    pub id: String,
}

/// A message as bindings see it.
pub struct Route<'a> {
    pub channel: &'a str,
    pub account_id: &'a str,
    /// `direct`, `group` or `channel`.
    pub chat_type: &'a str,
    /// The sender (direct) or the group / channel id.
    pub peer_id: &'a str,
}

impl Binding {
    /// How specific a match this binding is for `r` (higher wins), `None` when it does not
    /// match.
    fn rank(&self, r: &Route) -> Option<u8> {
        let m = &self.matches;
        if !m.channel.eq_ignore_ascii_case(r.channel) {
            return None;
        }
        let account = m.account_id.as_deref().map(str::trim).unwrap_or("");
        if !(account.is_empty() || account == "*" || account == r.account_id) {
            return None;
        }
        match &m.peer {
            Some(p) if p.kind == r.chat_type && p.id.trim() == r.peer_id => Some(3),
            Some(_) => None,
            None if !account.is_empty() && account != "*" => Some(2),
            None => Some(1),
        }
    }
}

/// The agent of the most specific binding matching `r` (the first of equals), if any.
pub fn route<'a>(bindings: &'a [Binding], r: &Route) -> Option<&'a str> {
    let mut best: Option<(u8, &Binding)> = None;
    for b in bindings {
        if let Some(rank) = b.rank(r)
            && best.is_none_or(|(top, _)| rank > top)
        {
            best = Some((rank, b));
        }
    }
    best.map(|(_, b)| b.agent_id.as_str())
}

pub(crate) fn validate(
    bindings: &[Binding],
    agents: &[crate::AgentEntry],
) -> Result<(), ConfigError> {
    for (i, b) in bindings.iter().enumerate() {
        let at = |k: &str| format!("bindings[{i}].{k}");
        match b.kind.as_deref() {
            None | Some("route") => {}
            Some(other) => {
                return Err(ConfigError::at(
                    at("type"),
                    format!(
                        "{other:?} bindings are not supported; only \"route\" bindings (agentId + match) are"
                    ),
                ));
            }
        }
        if b.agent_id.trim().is_empty() {
            return Err(ConfigError::at(
                at("agentId"),
                "required: the agent that answers",
            ));
        }
        if !agents.is_empty() && !agents.iter().any(|a| a.id == b.agent_id) {
            return Err(ConfigError::at(
                at("agentId"),
                format!("{:?} is not in agents.list", b.agent_id),
            ));
        }
        if b.session.is_some() {
            return Err(ConfigError::at(
                at("session"),
                "per-binding session scoping is not supported; set session.dmScope",
            ));
        }
        let m = &b.matches;
        if m.channel.trim().is_empty() {
            return Err(ConfigError::at(
                at("match.channel"),
                "required, e.g. \"telegram\"",
            ));
        }
        for (k, set) in [
            ("guildId", m.guild_id.is_some()),
            ("teamId", m.team_id.is_some()),
            ("roles", m.roles.is_some()),
        ] {
            if set {
                return Err(ConfigError::at(
                    at(&format!("match.{k}")),
                    "is not matched by clawplane yet; match on channel, accountId and peer",
                ));
            }
        }
        if let Some(p) = &m.peer {
            if !matches!(p.kind.as_str(), "direct" | "group" | "channel") {
                return Err(ConfigError::at(
                    at("match.peer.kind"),
                    format!("{:?} must be direct, group or channel", p.kind),
                ));
            }
            if p.id.trim().is_empty() {
                return Err(ConfigError::at(at("match.peer.id"), "required"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(agent: &str, account: Option<&str>, peer: Option<(&str, &str)>) -> Binding {
        Binding {
            agent_id: agent.into(),
            matches: BindingMatch {
                channel: "telegram".into(),
                account_id: account.map(Into::into),
                peer: peer.map(|(k, id)| PeerMatch {
                    kind: k.into(),
                    id: id.into(),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_most_specific_binding_wins() {
        let all = [
            b("wide", None, None),
            b("acct", Some("bot2"), None),
            b("alice", None, Some(("direct", "42"))),
        ];
        let r = |account, kind, peer| Route {
            channel: "telegram",
            account_id: account,
            chat_type: kind,
            peer_id: peer,
        };
        assert_eq!(route(&all, &r("", "direct", "42")), Some("alice"));
        assert_eq!(route(&all, &r("bot2", "direct", "7")), Some("acct"));
        assert_eq!(route(&all, &r("", "group", "42")), Some("wide"));
        let other = Route {
            channel: "whatsapp",
            ..r("", "direct", "42")
        };
        assert_eq!(route(&all, &other), None);
    }
}
