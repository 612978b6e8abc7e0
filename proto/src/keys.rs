//! Session keys: canonical shapes (`agent:<agentId>:<rest>`), agent-id normalisation, and
//! deriving a key from a channel route under `session.dmScope`.

/// Lowercase, `[a-z0-9_-]` only (others become `-`), at most 64 chars, fallback `main`.
pub fn normalize_agent_id(id: &str) -> String {
    let id: String = id
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() { "main".into() } else { id }
}

/// The agent id of a canonical key, if it has one.
pub fn agent_of(key: &str) -> Option<&str> {
    key.strip_prefix("agent:")?.split(':').next()
}

/// Canonicalises a session key: `agent:…` verbatim, `main`/the main key → the agent's main
/// session, any other bare key scoped to the agent.
pub fn canonical(key: &str, agent_id: &str, main_key: &str) -> String {
    let key = key.trim();
    if key == "global" || key == "unknown" {
        return key.to_string();
    }
    if key.starts_with("agent:") {
        return fold_direct_prefix(key);
    }
    if key == "main" || key == main_key || key.is_empty() {
        return main_session(agent_id, main_key);
    }
    fold_direct_prefix(&format!("agent:{agent_id}:{key}"))
}

/// `…:direct:user:<id>` (and `dm:`), as people write the key of a DM after the target
/// `user:<id>`, is the session `…:direct:<id>` that routing that target derives.
fn fold_direct_prefix(key: &str) -> String {
    let mut out = key.to_string();
    for prefix in [":direct:user:", ":direct:dm:"] {
        if let Some(at) = out.find(prefix) {
            out.replace_range(at..at + prefix.len(), ":direct:");
        }
    }
    out
}

/// `agent:<agentId>:<mainKey>`.
pub fn main_session(agent_id: &str, main_key: &str) -> String {
    format!("agent:{agent_id}:{main_key}")
}

/// What kind of conversation a recipient names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Direct(String),
    Group(String),
    Channel(String),
}

/// Parses a recipient in the channel's grammar (OpenClaw `docs/cli/message.md`). `None` when
/// there is no recipient, or the prefix names no id (`user:`, `<@ >`).
pub fn parse_peer(channel: &str, to: &str) -> Option<Peer> {
    let peer = match parse_peer_raw(channel, to)? {
        Peer::Direct(id) => Peer::Direct(id.trim().to_string()),
        Peer::Group(id) => Peer::Group(id.trim().to_string()),
        Peer::Channel(id) => Peer::Channel(id.trim().to_string()),
    };
    match &peer {
        Peer::Direct(id) | Peer::Group(id) | Peer::Channel(id) if id.is_empty() => None,
        _ => Some(peer),
    }
}

fn parse_peer_raw(channel: &str, to: &str) -> Option<Peer> {
    let to = to.trim();
    if to.is_empty() {
        return None;
    }
    let lower = to.to_ascii_lowercase();
    for (prefix, direct) in [
        ("user:", true),
        ("dm:", true),
        ("channel:", false),
        ("room:", false),
    ] {
        if let Some(id) = lower.strip_prefix(prefix) {
            return Some(if direct {
                Peer::Direct(id.to_string())
            } else {
                Peer::Channel(id.to_string())
            });
        }
    }
    if let Some(id) = lower.strip_prefix("group:") {
        return Some(Peer::Group(id.to_string()));
    }
    if let Some(id) = to.strip_prefix("<@").and_then(|s| s.strip_suffix('>')) {
        return Some(Peer::Direct(id.trim_start_matches('!').to_string()));
    }
    match channel {
        "whatsapp" if lower.ends_with("@g.us") => Some(Peer::Group(lower)),
        "whatsapp" => Some(Peer::Direct(lower.trim_start_matches('+').to_string())),
        "telegram" if lower.starts_with('-') => Some(Peer::Group(lower)),
        "telegram" => Some(Peer::Direct(lower)),
        // A bare id means a channel on Discord and Slack.
        _ => Some(Peer::Channel(lower)),
    }
}

/// Derives the session key of a conversation on `channel` with `to`.
pub fn from_route(
    agent_id: &str,
    main_key: &str,
    dm_scope: &str,
    channel: &str,
    to: &str,
    account_id: &str,
) -> Option<(String, String)> {
    let channel = channel.trim().to_ascii_lowercase();
    let peer = parse_peer(&channel, to)?;
    Some(match peer {
        Peer::Direct(id) => match dm_scope {
            "per-peer" => (
                format!("agent:{agent_id}:direct:{id}"),
                "direct message, session.dmScope=per-peer".into(),
            ),
            "per-channel-peer" => (
                format!("agent:{agent_id}:{channel}:direct:{id}"),
                "direct message, session.dmScope=per-channel-peer".into(),
            ),
            "per-account-channel-peer" => {
                let account = if account_id.trim().is_empty() {
                    "default".to_string()
                } else {
                    account_id.trim().to_ascii_lowercase()
                };
                (
                    format!("agent:{agent_id}:{channel}:{account}:direct:{id}"),
                    "direct message, session.dmScope=per-account-channel-peer".into(),
                )
            }
            _ => (
                main_session(agent_id, main_key),
                "direct message, session.dmScope=main (all DMs share the main session; set session.dmScope=per-channel-peer to separate them)".into(),
            ),
        },
        Peer::Group(id) => (
            format!("agent:{agent_id}:{channel}:group:{id}"),
            "group conversation".into(),
        ),
        Peer::Channel(id) => (
            format!("agent:{agent_id}:{channel}:channel:{id}"),
            "channel conversation".into(),
        ),
    })
}

/// A sender id as the channel spells it, whatever form `allowFrom` or a caller wrote it
/// in: WhatsApp numbers without `+` or separators, Telegram / Discord ids without their
/// `telegram:` / `tg:` / `discord:` / `user:` / `<@…>` decorations.
pub fn normalize_sender(channel: &str, id: &str) -> String {
    let id = id.trim();
    let id = id.strip_prefix(&format!("{channel}:")).unwrap_or(id).trim();
    match channel {
        "whatsapp" => {
            if id == "*" {
                return id.into();
            }
            id.chars().filter(char::is_ascii_digit).collect()
        }
        "telegram" => id.strip_prefix("tg:").unwrap_or(id).to_string(),
        "discord" => {
            let id = id
                .strip_prefix("user:")
                .or_else(|| id.strip_prefix("channel:"))
                .unwrap_or(id);
            id.trim_start_matches("<@")
                .trim_start_matches('!')
                .trim_end_matches('>')
                .to_string()
        }
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys() {
        assert_eq!(canonical("main", "main", "main"), "agent:main:main");
        assert_eq!(canonical("support", "ops", "main"), "agent:ops:support");
        assert_eq!(canonical("agent:x:y", "main", "main"), "agent:x:y");
        assert_eq!(normalize_agent_id(" Ops Team "), "ops-team");
        // The key as people write it after the target `user:<id>`.
        assert_eq!(
            canonical("agent:main:discord:direct:user:42", "main", "main"),
            "agent:main:discord:direct:42"
        );
        assert_eq!(
            canonical("discord:direct:dm:42", "ops", "main"),
            "agent:ops:discord:direct:42"
        );
        assert_eq!(
            canonical("agent:main:discord:channel:user:42", "main", "main"),
            "agent:main:discord:channel:user:42",
            "only a direct peer folds"
        );
    }

    #[test]
    fn routes_follow_dm_scope() {
        let k = |scope| {
            from_route("main", "main", scope, "discord", "user:42", "")
                .unwrap()
                .0
        };
        assert_eq!(k("main"), "agent:main:main");
        assert_eq!(k("per-peer"), "agent:main:direct:42");
        assert_eq!(k("per-channel-peer"), "agent:main:discord:direct:42");
        assert_eq!(
            from_route("main", "main", "main", "discord", "123", "")
                .unwrap()
                .0,
            "agent:main:discord:channel:123"
        );
    }
}

#[cfg(test)]
#[path = "keys_proptest.rs"]
mod proptests;
