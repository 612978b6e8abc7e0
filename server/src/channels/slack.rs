//! Slack: Web API `chat.postMessage` with the bot token (probe `auth.test`), or an incoming
//! webhook (plain-text `ok` answer) when there is no bot token or the target is `webhook`.

use super::http::{CallError, Dialect, FailKind, call};
use super::{Outbound, SlackConfig};
use serde_json::{Value, json};

pub(crate) const DEFAULT_BASE: &str = "https://slack.com/api";
/// `chat.postMessage` truncates `text` beyond 40,000 characters.
pub(crate) const LIMIT: usize = 40_000;
pub(crate) const GRAMMAR: &str = "Slack targets are `channel:<id>`, `user:<id>`, a bare id (a channel), or `webhook` (the incoming webhook)";

/// A parsed Slack target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A channel or user id for `chat.postMessage`.
    Id(String),
    /// The configured incoming webhook.
    Webhook,
}

fn slack_id(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| s.to_string())
}

pub(crate) fn parse_target(to: &str) -> Result<Target, String> {
    let t = to.trim();
    let t = t.strip_prefix("slack:").unwrap_or(t);
    let parsed = if t == "webhook" {
        Some(Target::Webhook)
    } else if let Some(id) = t
        .strip_prefix("channel:")
        .or_else(|| t.strip_prefix("user:"))
    {
        slack_id(id).map(Target::Id)
    } else {
        slack_id(t).map(Target::Id)
    };
    parsed.ok_or_else(|| format!("{to:?} is not a Slack target: {GRAMMAR}"))
}

/// Slack `error` codes that mean the token itself is bad.
fn auth_error(code: &str) -> bool {
    matches!(
        code,
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "token_expired"
    )
}

pub(crate) struct Slack {
    pub cfg: SlackConfig,
    pub base: String,
    http: reqwest::Client,
}

impl Slack {
    pub(crate) fn new(cfg: SlackConfig, base: String, http: reqwest::Client) -> Self {
        Slack { cfg, base, http }
    }

    pub(crate) fn bot_token(&self) -> Option<&str> {
        self.cfg
            .bot_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    pub(crate) fn webhook_url(&self) -> Option<&str> {
        self.cfg
            .webhook_url
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// A Web API call answered `{"ok":false,"error":...}` with HTTP 200.
    async fn api(&self, method: &str, body: &Value, retries: &mut u32) -> Result<Value, CallError> {
        let url = format!("{}/{method}", self.base);
        let token = self.bot_token().unwrap_or_default().to_string();
        let reply = call(Dialect::Slack, &self.cfg.limits, retries, method, || {
            self.http.post(&url).bearer_auth(&token).json(body)
        })
        .await?;
        if reply.json.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(reply.json);
        }
        let code = reply
            .json
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error");
        let kind = if auth_error(code) {
            FailKind::Auth
        } else {
            FailKind::Other
        };
        let mut detail = format!("slack rejected {method}: {code}");
        if kind == FailKind::Auth {
            detail.push_str(" (check channels.slack.botToken)");
        }
        Err(CallError::new("slack", "CHANNEL_REJECTED", detail, kind))
    }

    pub(crate) async fn send_part(
        &self,
        target: &Target,
        text: &str,
        msg: &Outbound,
        retries: &mut u32,
    ) -> Result<String, CallError> {
        let channel = match target {
            Target::Id(id) if self.bot_token().is_some() => id,
            _ => return self.send_webhook(text, retries).await,
        };
        let mut body = json!({ "channel": channel, "text": text });
        let thread = msg.thread_id.trim();
        if !thread.is_empty() {
            body["thread_ts"] = json!(thread);
        }
        let answer = self.api("chat.postMessage", &body, retries).await?;
        answer
            .get("ts")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                CallError::new(
                    "slack",
                    "CHANNEL_REJECTED",
                    "slack answered chat.postMessage without ts".into(),
                    FailKind::Other,
                )
            })
    }

    /// Incoming webhooks answer `ok` and give no message id; the id is generated here.
    async fn send_webhook(&self, text: &str, retries: &mut u32) -> Result<String, CallError> {
        let Some(url) = self.webhook_url() else {
            return Err(CallError::new(
                "slack",
                "CHANNEL_NOT_CONFIGURED",
                "slack target `webhook` needs channels.slack.webhookUrl".into(),
                FailKind::Other,
            ));
        };
        let body = json!({ "text": text });
        let reply = call(
            Dialect::Slack,
            &self.cfg.limits,
            retries,
            "the incoming webhook",
            || self.http.post(url).json(&body),
        )
        .await?;
        if reply.text.trim() != "ok" {
            return Err(CallError::new(
                "slack",
                "CHANNEL_REJECTED",
                format!(
                    "slack incoming webhook answered {:?} instead of ok",
                    super::http::clip(reply.text.trim(), 200)
                ),
                FailKind::Other,
            ));
        }
        Ok(format!("webhook-{}", uuid::Uuid::new_v4()))
    }

    /// `auth.test`; `None` for a webhook-only configuration (nothing to check without
    /// posting a message).
    pub(crate) async fn probe(&self) -> Option<Result<String, CallError>> {
        self.bot_token()?;
        let mut retries = 0;
        Some(
            self.api("auth.test", &json!({}), &mut retries)
                .await
                .map(|v| {
                    format!(
                        "bot {} in {}",
                        v.get("user").and_then(Value::as_str).unwrap_or("?"),
                        v.get("team").and_then(Value::as_str).unwrap_or("?")
                    )
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("channel:C1"), Ok(Target::Id("C1".into())));
        assert_eq!(parse_target("user:U1"), Ok(Target::Id("U1".into())));
        assert_eq!(parse_target("C1"), Ok(Target::Id("C1".into())));
        assert_eq!(parse_target("webhook"), Ok(Target::Webhook));
        assert!(parse_target("#general").is_err());
    }
}
