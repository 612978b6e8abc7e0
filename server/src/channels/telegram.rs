//! Telegram Bot API: `POST /bot<token>/sendMessage`, probe `getMe`. The token is part of
//! the URL, so URLs never appear in errors or logs.

use super::http::{CallError, Dialect, FailKind, call};
use super::{Outbound, TelegramConfig};
use serde_json::{Value, json};

pub(crate) const DEFAULT_BASE: &str = "https://api.telegram.org";
/// `sendMessage` text limit.
pub(crate) const LIMIT: usize = 4096;
pub(crate) const GRAMMAR: &str = "Telegram targets are a chat id (negative for groups), `@username`, or `<chatId>:topic:<topicId>`";

/// A parsed Telegram target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// An integer chat id or `@username`.
    pub chat: Value,
    pub topic: Option<i64>,
}

fn username(s: &str) -> bool {
    let name = s.trim_start_matches('@');
    s.starts_with('@')
        && (4..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn parse_target(to: &str) -> Result<Target, String> {
    let t = to.trim();
    let t = t
        .strip_prefix("telegram:")
        .or_else(|| t.strip_prefix("tg:"))
        .unwrap_or(t);
    let (chat, topic) = match t.split_once(":topic:") {
        Some((c, topic)) => match topic.parse::<i64>() {
            Ok(n) if n > 0 => (c, Some(n)),
            _ => {
                return Err(format!(
                    "{to:?}: the topic id must be a positive integer; {GRAMMAR}"
                ));
            }
        },
        None => (t, None),
    };
    let chat = if let Ok(id) = chat.parse::<i64>() {
        json!(id)
    } else if username(chat) {
        json!(chat)
    } else {
        return Err(format!("{to:?} is not a Telegram target: {GRAMMAR}"));
    };
    Ok(Target { chat, topic })
}

pub(crate) struct Telegram {
    pub cfg: TelegramConfig,
    pub base: String,
    http: reqwest::Client,
}

impl Telegram {
    pub(crate) fn new(cfg: TelegramConfig, base: String, http: reqwest::Client) -> Self {
        Telegram { cfg, base, http }
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base, self.cfg.bot_token.trim())
    }

    /// `sendChatAction typing` (shown for 5 s or until the next message).
    pub(crate) async fn typing(&self, target: &Target, msg: &Outbound) -> Result<(), CallError> {
        let mut body = json!({ "chat_id": target.chat, "action": "typing" });
        if let Some(t) = target.topic.or_else(|| msg.thread_id.trim().parse().ok()) {
            body["message_thread_id"] = json!(t);
        }
        let url = self.url("sendChatAction");
        call(
            Dialect::Telegram,
            &super::once(&self.cfg.limits),
            &mut 0,
            "the typing action",
            || self.http.post(&url).json(&body),
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
        let mut body = json!({ "chat_id": target.chat, "text": text });
        let thread = target.topic.or_else(|| msg.thread_id.trim().parse().ok());
        if let Some(t) = thread {
            body["message_thread_id"] = json!(t);
        }
        if let Ok(id) = msg.reply_to.trim().parse::<i64>() {
            body["reply_parameters"] =
                json!({ "message_id": id, "allow_sending_without_reply": true });
        }
        let url = self.url("sendMessage");
        let reply = call(
            Dialect::Telegram,
            &self.cfg.limits,
            retries,
            "sendMessage",
            || self.http.post(&url).json(&body),
        )
        .await?;
        ok_result(&reply.json)?
            .get("message_id")
            .and_then(Value::as_i64)
            .map(|id| id.to_string())
            .ok_or_else(|| {
                CallError::new(
                    "telegram",
                    "CHANNEL_REJECTED",
                    "telegram answered sendMessage without result.message_id".into(),
                    FailKind::Other,
                )
            })
    }

    pub(crate) async fn probe(&self) -> Result<String, CallError> {
        let mut retries = 0;
        let url = self.url("getMe");
        let reply = call(
            Dialect::Telegram,
            &self.cfg.limits,
            &mut retries,
            "getMe",
            || self.http.get(&url),
        )
        .await?;
        let me = ok_result(&reply.json)?;
        Ok(format!(
            "bot @{}",
            me.get("username").and_then(Value::as_str).unwrap_or("?")
        ))
    }
}

/// `result` of an `{"ok":true,"result":...}` answer.
fn ok_result(v: &Value) -> Result<&Value, CallError> {
    if v.get("ok").and_then(Value::as_bool) != Some(true) {
        let why = v
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("ok is not true");
        return Err(CallError::new(
            "telegram",
            "CHANNEL_REJECTED",
            format!("telegram rejected the request: {why}"),
            FailKind::Other,
        ));
    }
    Ok(v.get("result").unwrap_or(&Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("42").unwrap().chat, json!(42));
        assert_eq!(parse_target("-1001").unwrap().chat, json!(-1001));
        assert_eq!(parse_target("@my_chan").unwrap().chat, json!("@my_chan"));
        let t = parse_target("-100:topic:7").unwrap();
        assert_eq!((t.chat, t.topic), (json!(-100), Some(7)));
        assert!(parse_target("hello").is_err());
        assert!(parse_target("1:topic:x").is_err());
    }
}
