//! Discord bot REST: `POST /channels/{id}/messages`, DMs through `POST /users/@me/channels`
//! (the DM channel id is cached per user), probe `GET /users/@me`.

use super::http::{CallError, Dialect, FailKind, call};
use super::{DiscordConfig, Outbound};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) const DEFAULT_BASE: &str = "https://discord.com/api/v10";
/// Discord's `content` limit.
pub(crate) const LIMIT: usize = 2000;
const USER_AGENT: &str = concat!(
    "DiscordBot (https://github.com/clawplane/clawplane, ",
    env!("CARGO_PKG_VERSION"),
    ")"
);
pub(crate) const GRAMMAR: &str =
    "Discord targets are `user:<id>` (a direct message), `channel:<id>`, or a mention `<@id>`";

/// A parsed Discord target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Channel(String),
    User(String),
}

fn snowflake(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.into())
}

pub(crate) fn parse_target(to: &str) -> Result<Target, String> {
    let t = to.trim();
    let t = t.strip_prefix("discord:").unwrap_or(t);
    let parsed = if let Some(id) = t.strip_prefix("user:") {
        snowflake(id).map(Target::User)
    } else if let Some(id) = t.strip_prefix("channel:") {
        snowflake(id).map(Target::Channel)
    } else if let Some(inner) = t.strip_prefix("<@").and_then(|r| r.strip_suffix('>')) {
        snowflake(inner.strip_prefix('!').unwrap_or(inner)).map(Target::User)
    } else if let Some(id) = snowflake(t) {
        // A Discord id names a user or a channel alike: guessing sent DMs to channels.
        return Err(format!(
            "{to:?} is ambiguous: a Discord id names a user or a channel; write `user:{id}` for a direct message or `channel:{id}`"
        ));
    } else {
        None
    };
    parsed.ok_or_else(|| format!("{to:?} is not a Discord target: {GRAMMAR}"))
}

pub(crate) struct Discord {
    pub cfg: DiscordConfig,
    pub base: String,
    http: reqwest::Client,
    /// user id -> DM channel id.
    dm_channels: Mutex<HashMap<String, String>>,
}

impl Discord {
    pub(crate) fn new(cfg: DiscordConfig, base: String, http: reqwest::Client) -> Self {
        Discord {
            cfg,
            base,
            http,
            dm_channels: Mutex::default(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bot {}", self.cfg.token.trim()))
            .header("User-Agent", USER_AGENT)
    }

    /// The channel to post in: the target channel, a thread when `threadId` is set, or the
    /// (cached) DM channel of a user.
    async fn channel_for(
        &self,
        target: &Target,
        msg: &Outbound,
        retries: &mut u32,
    ) -> Result<String, CallError> {
        if let Some(thread) = snowflake(&msg.thread_id) {
            return Ok(thread);
        }
        let user = match target {
            Target::Channel(id) => return Ok(id.clone()),
            Target::User(id) => id,
        };
        if let Some(ch) = super::lock(&self.dm_channels).get(user) {
            return Ok(ch.clone());
        }
        let body = json!({ "recipient_id": user });
        let reply = call(
            Dialect::Discord,
            &self.cfg.limits,
            retries,
            "opening the DM channel",
            || {
                self.req(reqwest::Method::POST, "/users/@me/channels")
                    .json(&body)
            },
        )
        .await?;
        let id = id_of(&reply.json, "DM channel")?;
        super::lock(&self.dm_channels).insert(user.clone(), id.clone());
        Ok(id)
    }

    /// `POST /channels/{id}/typing` (shown for 10 s or until the next message).
    pub(crate) async fn typing(&self, target: &Target, msg: &Outbound) -> Result<(), CallError> {
        let mut retries = 0;
        let channel = self.channel_for(target, msg, &mut retries).await?;
        let path = format!("/channels/{channel}/typing");
        call(
            Dialect::Discord,
            &super::once(&self.cfg.limits),
            &mut retries,
            "the typing indicator",
            || self.req(reqwest::Method::POST, &path),
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn send_part(
        &self,
        target: &Target,
        text: &str,
        msg: &Outbound,
        retries: &mut u32,
    ) -> Result<String, CallError> {
        let channel = self.channel_for(target, msg, retries).await?;
        let mut body = json!({ "content": text });
        if let Some(id) = snowflake(&msg.reply_to) {
            body["message_reference"] = json!({ "message_id": id, "fail_if_not_exists": false });
        }
        let path = format!("/channels/{channel}/messages");
        let reply = call(
            Dialect::Discord,
            &self.cfg.limits,
            retries,
            "the message",
            || self.req(reqwest::Method::POST, &path).json(&body),
        )
        .await;
        if reply.is_err()
            && let Target::User(user) = target
        {
            // A stale DM channel must not stick; the next send opens it again.
            super::lock(&self.dm_channels).remove(user);
        }
        id_of(&reply?.json, "message")
    }

    pub(crate) async fn probe(&self) -> Result<String, CallError> {
        let mut retries = 0;
        let reply = call(
            Dialect::Discord,
            &self.cfg.limits,
            &mut retries,
            "GET /users/@me",
            || self.req(reqwest::Method::GET, "/users/@me"),
        )
        .await?;
        let name = reply.json.get("username").and_then(Value::as_str);
        Ok(format!("bot {}", name.unwrap_or("?")))
    }
}

fn id_of(v: &Value, what: &str) -> Result<String, CallError> {
    v.get("id")
        .and_then(|i| {
            i.as_str()
                .map(str::to_string)
                .or_else(|| Some(i.to_string()))
        })
        .filter(|s| !s.is_empty() && s != "null")
        .ok_or_else(|| {
            CallError::new(
                "discord",
                "CHANNEL_REJECTED",
                format!("discord answered without a {what} id"),
                FailKind::Other,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("user:123"), Ok(Target::User("123".into())));
        assert_eq!(parse_target("<@123>"), Ok(Target::User("123".into())));
        assert_eq!(parse_target("<@!123>"), Ok(Target::User("123".into())));
        assert_eq!(parse_target("channel:9"), Ok(Target::Channel("9".into())));
        let bare = parse_target("9").unwrap_err();
        assert!(
            bare.contains("user:9") && bare.contains("channel:9"),
            "{bare}"
        );
        assert!(parse_target("#general").is_err());
        assert!(parse_target("user:abc").is_err());
    }
}
