//! `channels.*`: the channel clients' credentials, base URLs, inbound webhook paths and
//! send limits.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `channels.*`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ChannelsConfig {
    pub discord: Option<DiscordConfig>,
    pub telegram: Option<TelegramConfig>,
    pub whatsapp: Option<WhatsAppConfig>,
    pub slack: Option<SlackConfig>,
    pub webhook: Option<WebhookChannelConfig>,
}

impl ChannelsConfig {
    /// Ids of the channels present in the config (enabled or not).
    pub fn configured_ids(&self) -> Vec<String> {
        [
            ("discord", self.discord.is_some()),
            ("telegram", self.telegram.is_some()),
            ("whatsapp", self.whatsapp.is_some()),
            ("slack", self.slack.is_some()),
            ("webhook", self.webhook.is_some()),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(id, _)| id.to_string())
        .collect()
    }
}

/// Default inbound webhook paths.
pub const WHATSAPP_WEBHOOK_PATH: &str = "/channels/whatsapp/webhook";
pub const TELEGRAM_WEBHOOK_PATH: &str = "/channels/telegram/webhook";

impl ChannelsConfig {
    /// Checks the inbound webhook paths (they become routes).
    pub fn validate_inbound(&self) -> Result<(), String> {
        if let Some(t) = self
            .whatsapp
            .as_ref()
            .and_then(|w| w.transcription.as_ref())
        {
            let base = t.base_url.trim();
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(format!(
                    "channels.whatsapp.transcription.baseUrl: {base:?} must be an http(s) URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1"
                ));
            }
            if t.model.trim().is_empty() || t.max_bytes == 0 || t.timeout_seconds == 0 {
                return Err("channels.whatsapp.transcription: model, maxBytes and timeoutSeconds must not be empty or 0".into());
            }
        }
        for id in ["whatsapp", "telegram", "discord"] {
            if let Some(p) = self.sender_policy(id) {
                p.validate(id)?;
            }
        }
        for (channel, path) in self.inbound_paths() {
            let ok = path.starts_with('/')
                && path.len() > 1
                && !path.contains(['{', '}', '*', '?', '#'])
                && ![
                    "/hooks",
                    "/webhook",
                    "/webhooks",
                    "/healthz",
                    "/readyz",
                    "/clawplane.",
                ]
                .iter()
                .any(|p| path.starts_with(p));
            if !ok {
                return Err(format!(
                    "channels.{channel}.webhookPath: {path:?} must be an absolute path like /channels/{channel}/webhook, without {{}}*?# and outside /hooks, /webhook(s), /healthz, /readyz"
                ));
            }
        }
        Ok(())
    }

    /// The sender policy of an inbound channel (`None` for outbound-only channels).
    pub fn sender_policy(&self, channel: &str) -> Option<&SenderPolicy> {
        match channel {
            "whatsapp" => self.whatsapp.as_ref().map(|c| &c.senders),
            "telegram" => self.telegram.as_ref().map(|c| &c.senders),
            "discord" => self.discord.as_ref().map(|c| &c.senders),
            _ => None,
        }
    }

    /// (channel, path) of every inbound webhook to serve: WhatsApp and Telegram when
    /// configured and not disabled.
    pub fn inbound_paths(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(w) = self.whatsapp.as_ref().filter(|c| c.enabled != Some(false)) {
            out.push((
                "whatsapp",
                w.webhook_path
                    .clone()
                    .unwrap_or_else(|| WHATSAPP_WEBHOOK_PATH.into()),
            ));
        }
        if let Some(t) = self.telegram.as_ref().filter(|c| c.enabled != Some(false)) {
            out.push((
                "telegram",
                t.webhook_path
                    .clone()
                    .unwrap_or_else(|| TELEGRAM_WEBHOOK_PATH.into()),
            ));
        }
        out
    }
}

/// Send limits shared by every channel.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Limits {
    /// Messages per rolling hour; 0 = unlimited.
    pub max_messages_per_hour: u32,
    /// Minimum seconds between two messages to the same recipient; 0 = none.
    pub cooldown_seconds: u64,
    /// Retries after a 429 / 5xx before the send fails.
    pub max_retries: u32,
    /// Longest wait honoured from a Retry-After / retry_after before giving up.
    pub max_retry_after_seconds: u64,
    /// Per-request timeout.
    pub timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_messages_per_hour: 0,
            cooldown_seconds: 0,
            max_retries: 3,
            max_retry_after_seconds: 60,
            timeout_seconds: 30,
        }
    }
}

/// Who may talk to the bot on an inbound channel (`dmPolicy`, `allowFrom`, `groupPolicy`,
/// `groupAllowFrom`, as OpenClaw configures them).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SenderPolicy {
    /// Direct messages: `pairing` (default: an unknown sender gets a pairing code and
    /// nothing runs until `clawplane pairing approve`), `allowlist` (only `allowFrom` and
    /// approved senders), `open` (anyone; needs `"*"` in `allowFrom`), `disabled`.
    pub dm_policy: DmPolicy,
    /// Sender ids allowed without pairing (`"*"`: everyone).
    pub allow_from: Vec<SenderId>,
    /// Group messages: `allowlist` (default: only `groupAllowFrom`, else `allowFrom`),
    /// `open`, `disabled`.
    pub group_policy: GroupPolicy,
    /// Sender or group ids allowed in groups; empty falls back to `allowFrom`.
    pub group_allow_from: Vec<SenderId>,
}

/// `dmPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    #[default]
    Pairing,
    Allowlist,
    Open,
    Disabled,
}

/// `groupPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    Open,
    #[default]
    Allowlist,
    Disabled,
}

/// A sender id as written in `allowFrom`: a string, or a number (Telegram ids).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SenderId {
    Text(String),
    Number(i64),
}

impl SenderId {
    pub fn text(&self) -> String {
        match self {
            SenderId::Text(s) => s.trim().to_string(),
            SenderId::Number(n) => n.to_string(),
        }
    }
}

impl SenderPolicy {
    fn validate(&self, channel: &str) -> Result<(), String> {
        let wildcard = self.allow_from.iter().any(|s| s.text() == "*");
        if self.dm_policy == DmPolicy::Open && !wildcard {
            return Err(format!(
                "channels.{channel}.dmPolicy \"open\" lets anyone start model turns: it needs \"*\" in channels.{channel}.allowFrom to say so (or use \"pairing\" / \"allowlist\")"
            ));
        }
        if let Some(bad) = self
            .allow_from
            .iter()
            .chain(&self.group_allow_from)
            .find(|s| s.text().is_empty() || s.text().len() > 128)
        {
            return Err(format!(
                "channels.{channel}.allowFrom: {:?} is not a sender id (1 to 128 characters)",
                bad.text()
            ));
        }
        Ok(())
    }
}

/// `channels.discord`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct DiscordConfig {
    pub enabled: Option<bool>,
    /// Bot token (`Authorization: Bot <token>`).
    pub token: String,
    /// Default `https://discord.com/api/v10`.
    pub base_url: Option<String>,
    /// Inbound: the Discord Gateway connection that receives DMs and mentions.
    pub gateway: DiscordGatewayConfig,
    #[serde(flatten)]
    pub senders: SenderPolicy,
    #[serde(flatten)]
    pub limits: Limits,
}

/// `channels.discord.gateway`: DMs to the bot and messages mentioning it arrive over the
/// Discord Gateway (a WebSocket the bot keeps open) and run like any inbound message.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct DiscordGatewayConfig {
    /// Connect to the Gateway (default true when `token` is set).
    pub enabled: Option<bool>,
    /// Gateway URL (`wss://…`); default: the one `GET <baseUrl>/gateway/bot` answers.
    pub url: Option<String>,
    /// Gateway intents; default GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES (4609): DMs and
    /// mentions carry their content without the privileged MESSAGE_CONTENT intent.
    pub intents: Option<u64>,
}

impl DiscordConfig {
    /// Whether the Gateway connection is wanted.
    pub fn gateway_enabled(&self) -> bool {
        self.enabled != Some(false)
            && self.gateway.enabled != Some(false)
            && !self.token.trim().is_empty()
    }
}

/// `channels.telegram`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct TelegramConfig {
    pub enabled: Option<bool>,
    pub bot_token: String,
    /// Default `https://api.telegram.org`.
    pub base_url: Option<String>,
    /// Expected `X-Telegram-Bot-Api-Secret-Token` on inbound updates (required to accept
    /// the webhook).
    pub webhook_secret: Option<String>,
    /// Inbound path, default `/channels/telegram/webhook`.
    pub webhook_path: Option<String>,
    #[serde(flatten)]
    pub senders: SenderPolicy,
    #[serde(flatten)]
    pub limits: Limits,
}

/// `channels.whatsapp` (WhatsApp Cloud API).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct WhatsAppConfig {
    pub enabled: Option<bool>,
    pub access_token: String,
    pub phone_number_id: String,
    /// Graph API version in the URL, default `v21.0`.
    pub api_version: Option<String>,
    /// Default `https://graph.facebook.com`.
    pub base_url: Option<String>,
    /// App secret: verifies `X-Hub-Signature-256` on inbound POSTs (required to accept them).
    pub app_secret: Option<String>,
    /// Token echoed by the `GET` verification handshake.
    pub verify_token: Option<String>,
    /// Inbound path, default `/channels/whatsapp/webhook`.
    pub webhook_path: Option<String>,
    /// Voice notes: an OpenAI-compatible `/audio/transcriptions` provider; without one a
    /// voice note is answered with a message saying it cannot be transcribed.
    pub transcription: Option<TranscriptionConfig>,
    #[serde(flatten)]
    pub senders: SenderPolicy,
    #[serde(flatten)]
    pub limits: Limits,
}

/// `channels.whatsapp.transcription`: where voice notes are transcribed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct TranscriptionConfig {
    /// OpenAI-compatible API base, e.g. `https://api.openai.com/v1` (the request goes to
    /// `<baseUrl>/audio/transcriptions`). Required.
    pub base_url: String,
    /// Bearer key, when the provider needs one.
    pub api_key: Option<String>,
    /// Model, default `whisper-1`.
    pub model: String,
    /// Largest voice note downloaded, in bytes (default 25 MB, OpenAI's limit).
    pub max_bytes: u64,
    /// Timeout of the download and of the transcription, each (default 30).
    pub timeout_seconds: u64,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        TranscriptionConfig {
            base_url: String::new(),
            api_key: None,
            model: "whisper-1".into(),
            max_bytes: 25 << 20,
            timeout_seconds: 30,
        }
    }
}

/// `channels.slack`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SlackConfig {
    pub enabled: Option<bool>,
    /// Bot token for `chat.postMessage`.
    pub bot_token: Option<String>,
    /// Default `https://slack.com/api`.
    pub base_url: Option<String>,
    /// Incoming-webhook URL; used when there is no bot token (or for target `webhook`).
    pub webhook_url: Option<String>,
    #[serde(flatten)]
    pub limits: Limits,
}

/// `channels.webhook`: POST `{to, text, ...}` JSON to a URL.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct WebhookChannelConfig {
    pub enabled: Option<bool>,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    #[serde(flatten)]
    pub limits: Limits,
}
