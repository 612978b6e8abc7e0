//! The generic webhook channel: POST `{id, channel, to, text, threadId, accountId,
//! mediaUrl}` JSON to `channels.webhook.url` with the configured headers.

use super::http::{CallError, Dialect, call};
use super::{Outbound, WebhookChannelConfig};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// No provider limit; keep parts a reasonable size.
pub(crate) const LIMIT: usize = 64 * 1024;

pub(crate) struct Webhook {
    pub cfg: WebhookChannelConfig,
    headers: HeaderMap,
    http: reqwest::Client,
}

impl Webhook {
    pub(crate) fn new(cfg: WebhookChannelConfig, http: reqwest::Client) -> Result<Webhook, String> {
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("channels.webhook.headers: {k:?} is not a header name"))?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                format!("channels.webhook.headers.{k}: the value is not a valid header value")
            })?;
            headers.insert(name, value);
        }
        Ok(Webhook { cfg, headers, http })
    }

    /// The id is ours (sent as `id`) unless the receiver answers with its own `messageId`
    /// or `id`.
    pub(crate) async fn send_part(
        &self,
        text: &str,
        msg: &Outbound,
        retries: &mut u32,
    ) -> Result<String, CallError> {
        let id = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "id": id,
            "channel": "webhook",
            "to": msg.to,
            "text": text,
            "threadId": msg.thread_id,
            "accountId": msg.account_id,
            "mediaUrl": msg.media_url,
        });
        let reply = call(
            Dialect::Webhook,
            &self.cfg.limits,
            retries,
            "the webhook POST",
            || {
                self.http
                    .post(self.cfg.url.trim())
                    .headers(self.headers.clone())
                    .json(&body)
            },
        )
        .await?;
        let theirs = ["messageId", "id"].iter().find_map(|k| {
            reply
                .json
                .get(*k)
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        Ok(theirs.unwrap_or(id))
    }
}
