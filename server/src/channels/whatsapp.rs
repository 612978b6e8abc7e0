//! WhatsApp Cloud API (Meta Graph): `POST /{version}/{phoneNumberId}/messages`, probe
//! `GET /{version}/{phoneNumberId}?fields=id`.

use super::http::{CallError, Dialect, FailKind, call};
use super::{Outbound, WhatsAppConfig};
use serde_json::{Value, json};

pub(crate) const DEFAULT_BASE: &str = "https://graph.facebook.com";
pub(crate) const DEFAULT_VERSION: &str = "v21.0";
/// Text body limit.
pub(crate) const LIMIT: usize = 4096;
pub(crate) const GRAMMAR: &str = "WhatsApp Cloud targets are a phone number in E.164 (`+15551234567`) or a wa_id (`15551234567`); group and newsletter JIDs need the WhatsApp Web channel";

/// The `to` of a Cloud API message: digits only.
pub(crate) fn parse_target(to: &str) -> Result<String, String> {
    let t = to.trim();
    let t = t.strip_prefix("whatsapp:").unwrap_or(t);
    let digits: String = t
        .strip_prefix('+')
        .unwrap_or(t)
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(format!("{to:?} is not a WhatsApp target: {GRAMMAR}"))
    }
}

/// Graph error codes that mean throttling even though they come without HTTP 429.
fn throttled(code: Option<i64>) -> bool {
    matches!(code, Some(4 | 80007 | 130429 | 131048 | 131056))
}

pub(crate) struct WhatsApp {
    pub cfg: WhatsAppConfig,
    /// `<baseUrl>/<apiVersion>`.
    pub base: String,
    http: reqwest::Client,
}

impl WhatsApp {
    pub(crate) fn new(cfg: WhatsAppConfig, base: String, http: reqwest::Client) -> Self {
        WhatsApp { cfg, base, http }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/{}{tail}", self.base, self.cfg.phone_number_id.trim())
    }

    /// Marks the inbound message read and shows the typing indicator (up to 25 s or until
    /// the reply): `POST /messages {status: read, message_id, typing_indicator: {type: text}}`.
    pub(crate) async fn typing(&self, msg: &Outbound) -> Result<(), CallError> {
        let id = msg.reply_to.trim();
        if id.is_empty() {
            return Ok(()); // the indicator belongs to an inbound message
        }
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": id,
            "typing_indicator": { "type": "text" },
        });
        let url = self.url("/messages");
        let token = self.cfg.access_token.trim().to_string();
        call(
            Dialect::WhatsApp,
            &super::once(&self.cfg.limits),
            &mut 0,
            "the typing indicator",
            || self.http.post(&url).bearer_auth(&token).json(&body),
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn send_part(
        &self,
        to: &str,
        text: &str,
        msg: &Outbound,
        retries: &mut u32,
    ) -> Result<String, CallError> {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "body": text, "preview_url": false },
        });
        if !msg.reply_to.trim().is_empty() {
            body["context"] = json!({ "message_id": msg.reply_to.trim() });
        }
        let url = self.url("/messages");
        let token = self.cfg.access_token.trim().to_string();
        let reply = call(
            Dialect::WhatsApp,
            &self.cfg.limits,
            retries,
            "the message",
            || self.http.post(&url).bearer_auth(&token).json(&body),
        )
        .await
        .map_err(|mut e| {
            if e.err.reason == "CHANNEL_REJECTED" && throttled(code_of(&e.err.detail)) {
                e.err.reason = "CHANNEL_RATE_LIMITED";
            }
            e
        })?;
        reply
            .json
            .pointer("/messages/0/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                CallError::new(
                    "whatsapp",
                    "CHANNEL_REJECTED",
                    "whatsapp answered without messages[0].id".into(),
                    FailKind::Other,
                )
            })
    }

    /// Downloads an inbound media object: `GET /{media-id}` names its URL, which is then
    /// fetched with the same bearer token (at most `max_bytes`). Answers the bytes and
    /// their MIME type.
    pub(crate) async fn media(
        &self,
        media_id: &str,
        max_bytes: u64,
        timeout: std::time::Duration,
    ) -> Result<(Vec<u8>, String), String> {
        let token = self.cfg.access_token.trim();
        let meta_url = format!("{}/{}", self.base, media_id.trim());
        let meta = self
            .http
            .get(&meta_url)
            .bearer_auth(token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("GET media {media_id}: {}", e.without_url()))?;
        let status = meta.status();
        let meta: Value = meta.json().await.unwrap_or(Value::Null);
        let Some(url) = meta
            .get("url")
            .and_then(Value::as_str)
            .filter(|_| status.is_success())
        else {
            return Err(format!("GET media {media_id}: {status} {meta}"));
        };
        if meta
            .get("file_size")
            .and_then(Value::as_u64)
            .is_some_and(|n| n > max_bytes)
        {
            return Err(format!("media {media_id} is larger than {max_bytes} bytes"));
        }
        let mime = meta
            .get("mime_type")
            .and_then(Value::as_str)
            .unwrap_or("audio/ogg")
            .to_string();
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("downloading media {media_id}: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("downloading media {media_id}: {}", resp.status()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("downloading media {media_id}: {}", e.without_url()))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                return Err(format!("media {media_id} is larger than {max_bytes} bytes"));
            }
        }
        Ok((bytes, mime))
    }

    pub(crate) async fn probe(&self) -> Result<String, CallError> {
        let mut retries = 0;
        let url = self.url("");
        let token = self.cfg.access_token.trim().to_string();
        let reply = call(
            Dialect::WhatsApp,
            &self.cfg.limits,
            &mut retries,
            "GET phone number",
            || {
                self.http
                    .get(&url)
                    .query(&[("fields", "id")])
                    .bearer_auth(&token)
            },
        )
        .await?;
        Ok(format!(
            "phone number {}",
            reply.json.get("id").and_then(Value::as_str).unwrap_or("?")
        ))
    }
}

/// The Graph error code in a detail built by `Dialect::error_message` ("... (code N)").
fn code_of(detail: &str) -> Option<i64> {
    let rest = &detail[detail.find("(code ")? + 6..];
    rest[..rest.find(')')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("+15551234567").unwrap(), "15551234567");
        assert_eq!(parse_target("15551234567").unwrap(), "15551234567");
        assert!(parse_target("123@g.us").is_err());
        assert!(parse_target("+1").is_err());
        assert_eq!(
            code_of("HTTP 400: (#130429) x (code 130429): y"),
            Some(130429)
        );
    }
}
