//! Channels: outbound delivery to Discord, Telegram, WhatsApp Cloud, Slack and a generic
//! webhook through each provider's real HTTP API (base URL configurable), with message
//! splitting, 429 handling and per-channel send limits. Inbound webhooks (WhatsApp,
//! Telegram) are parsed by the bridge and enter the core through `Gateway::inbound`.
//!
//! Health (`Channel.healthy`, `lastError`) follows the last send or probe; a channel that
//! starts failing on bad credentials or an unreachable provider gets a `disconnected`
//! channel event on the feed, and `connected` when it works again.

mod discord;
pub mod discord_gateway;
mod http;
mod slack;
pub mod split;
mod telegram;
mod webhook;
mod whatsapp;

use crate::store::SendRefusal;
use clawplane_proto::now_ts;
use clawplane_proto::pbjson_types::Timestamp;
use clawplane_proto::v1::{Channel, ChannelEvent, ChannelHealth, Event, EventKind, event};
use http::{CallError, FailKind};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use clawplane_config::channels::*;

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    pub channel: String,
    pub to: String,
    pub text: String,
    pub account_id: String,
    pub thread_id: String,
    /// The channel message id this answers, when the channel supports replies.
    pub reply_to: String,
    pub media_url: String,
}

/// `limits` without retries: for what is worth one attempt (typing indicators).
fn once(limits: &Limits) -> Limits {
    Limits {
        max_retries: 0,
        ..limits.clone()
    }
}

/// A send the channel accepted.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// One id per message (a long text is split), first = the main id.
    pub message_ids: Vec<String>,
    /// Attempts made, retries included.
    pub attempts: u32,
}

/// Why a send did not happen or was refused.
#[derive(Debug, Clone, Default, thiserror::Error)]
#[error("{detail}")]
pub struct SendError {
    /// CHANNEL_NOT_CONFIGURED, INVALID_TARGET, CHANNEL_RATE_LIMITED, CHANNEL_REJECTED,
    /// CHANNEL_UNREACHABLE, CHANNEL_COOLDOWN.
    pub reason: &'static str,
    /// The channel's own answer or what is wrong, naming the config key / target grammar.
    pub detail: String,
    pub attempts: u32,
    /// The channel id (lowercase) the error is about.
    pub channel: String,
}

impl SendError {
    fn new(channel: &str, reason: &'static str, detail: String) -> Self {
        SendError {
            reason,
            detail,
            attempts: 0,
            channel: channel.to_string(),
        }
    }
}

/// Every channel id this gateway has a client for, in display order.
const IDS: [&str; 5] = ["discord", "telegram", "whatsapp", "slack", "webhook"];

/// One provider client.
enum Client {
    Discord(discord::Discord),
    Telegram(telegram::Telegram),
    WhatsApp(whatsapp::WhatsApp),
    Slack(slack::Slack),
    Webhook(webhook::Webhook),
}

/// A parsed recipient.
enum Target {
    Discord(discord::Target),
    Telegram(telegram::Target),
    WhatsApp(String),
    Slack(slack::Target),
    Webhook,
}

impl Client {
    fn enabled(&self) -> bool {
        match self {
            Client::Discord(c) => c.cfg.enabled,
            Client::Telegram(c) => c.cfg.enabled,
            Client::WhatsApp(c) => c.cfg.enabled,
            Client::Slack(c) => c.cfg.enabled,
            Client::Webhook(c) => c.cfg.enabled,
        }
        .unwrap_or(true)
    }

    fn limits(&self) -> &Limits {
        match self {
            Client::Discord(c) => &c.cfg.limits,
            Client::Telegram(c) => &c.cfg.limits,
            Client::WhatsApp(c) => &c.cfg.limits,
            Client::Slack(c) => &c.cfg.limits,
            Client::Webhook(c) => &c.cfg.limits,
        }
    }

    /// The config key that must be set before anything can be sent.
    fn missing_key(&self) -> Option<&'static str> {
        let empty = |s: &str| s.trim().is_empty();
        match self {
            Client::Discord(c) if empty(&c.cfg.token) => Some("token"),
            Client::Telegram(c) if empty(&c.cfg.bot_token) => Some("botToken"),
            Client::WhatsApp(c) if empty(&c.cfg.access_token) => Some("accessToken"),
            Client::WhatsApp(c) if empty(&c.cfg.phone_number_id) => Some("phoneNumberId"),
            Client::Slack(c) if c.bot_token().is_none() && c.webhook_url().is_none() => {
                Some("botToken (or webhookUrl)")
            }
            Client::Webhook(c) if empty(&c.cfg.url) => Some("url"),
            _ => None,
        }
    }

    /// The provider base URL for display (webhook URLs are secrets: origin only).
    fn base_url(&self) -> String {
        match self {
            Client::Discord(c) => c.base.clone(),
            Client::Telegram(c) => c.base.clone(),
            Client::WhatsApp(c) => c.base.clone(),
            Client::Slack(c) if c.bot_token().is_some() => c.base.clone(),
            Client::Slack(c) => c.webhook_url().map(origin).unwrap_or_default(),
            Client::Webhook(c) => origin(&c.cfg.url),
        }
    }

    fn limit(&self) -> usize {
        match self {
            Client::Discord(_) => discord::LIMIT,
            Client::Telegram(_) => telegram::LIMIT,
            Client::WhatsApp(_) => whatsapp::LIMIT,
            Client::Slack(_) => slack::LIMIT,
            Client::Webhook(_) => webhook::LIMIT,
        }
    }

    fn parse(&self, to: &str) -> Result<Target, String> {
        Ok(match self {
            Client::Discord(_) => Target::Discord(discord::parse_target(to)?),
            Client::Telegram(_) => Target::Telegram(telegram::parse_target(to)?),
            Client::WhatsApp(_) => Target::WhatsApp(whatsapp::parse_target(to)?),
            Client::Slack(_) => Target::Slack(slack::parse_target(to)?),
            Client::Webhook(_) => Target::Webhook,
        })
    }

    /// Shows that a reply is being written; `None` for channels without an indicator.
    async fn typing(&self, target: &Target, msg: &Outbound) -> Option<Result<(), CallError>> {
        Some(match (self, target) {
            (Client::Discord(c), Target::Discord(t)) => c.typing(t, msg).await,
            (Client::Telegram(c), Target::Telegram(t)) => c.typing(t, msg).await,
            (Client::WhatsApp(c), Target::WhatsApp(_)) => c.typing(msg).await,
            _ => return None,
        })
    }

    /// How long the channel shows one indicator (so it is renewed a bit sooner).
    fn typing_lasts(&self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Client::Telegram(_) => 5,
            Client::Discord(_) => 10,
            _ => 25,
        })
    }

    async fn send_part(
        &self,
        target: &Target,
        text: &str,
        msg: &Outbound,
        retries: &mut u32,
    ) -> Result<String, CallError> {
        match (self, target) {
            (Client::Discord(c), Target::Discord(t)) => c.send_part(t, text, msg, retries).await,
            (Client::Telegram(c), Target::Telegram(t)) => c.send_part(t, text, msg, retries).await,
            (Client::WhatsApp(c), Target::WhatsApp(t)) => c.send_part(t, text, msg, retries).await,
            (Client::Slack(c), Target::Slack(t)) => c.send_part(t, text, msg, retries).await,
            (Client::Webhook(c), Target::Webhook) => c.send_part(text, msg, retries).await,
            _ => Err(CallError::new(
                &msg.channel,
                "INVALID_TARGET",
                "the target does not belong to this channel".into(),
                FailKind::Other,
            )),
        }
    }

    /// A cheap credential check; `None` when the channel cannot be checked without sending.
    async fn probe(&self) -> Option<Result<String, CallError>> {
        match self {
            Client::Discord(c) => Some(c.probe().await),
            Client::Telegram(c) => Some(c.probe().await),
            Client::WhatsApp(c) => Some(c.probe().await),
            Client::Slack(c) => c.probe().await,
            Client::Webhook(_) => None,
        }
    }
}

/// `scheme://host[:port]/…` of a URL.
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) => format!("{}/…", u.origin().ascii_serialization()),
        Err(_) => String::new(),
    }
}

/// Checks a configured base URL and strips its trailing slash.
fn base(configured: Option<&str>, default: &str, key: &str) -> Result<String, String> {
    let b = configured
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(default);
    match reqwest::Url::parse(b) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(b.trim_end_matches('/').to_string()),
        // Webhook URLs carry their secret in the path: never echo them.
        _ if key.contains("webhook") => Err(format!("{key}: not an http(s) URL")),
        _ => Err(format!("{key}: {b:?} is not an http(s) URL")),
    }
}

/// Last observed health of one channel.
#[derive(Default, Clone)]
struct Health {
    /// `None` until a send or probe talked to the provider.
    ok: Option<bool>,
    last_error: String,
    /// Connection state for `disconnected` / `connected` events: credentials accepted and
    /// provider reachable.
    connected: Option<bool>,
    checked: Option<Timestamp>,
}

/// Send counters for `maxMessagesPerHour` and `cooldownSeconds`.
#[derive(Default)]
struct Usage {
    /// When each message of the last hour was sent (oldest first).
    sent: VecDeque<Instant>,
    /// Recipient -> when it last got a message.
    last_to: HashMap<String, Instant>,
}

const HOUR: Duration = Duration::from_secs(3600);

/// A counted send, undone when nothing was delivered.
enum Reservation {
    Local {
        at: Instant,
        to: String,
        prev_last: Option<Instant>,
    },
    /// A row of the replicas' shared send log.
    Shared(i64),
}

/// `maxMessagesPerHour` is reached: `sent` went out in the last hour, one more can go in
/// `free`.
fn per_hour_refusal(id: &str, max: usize, sent: usize, free: Duration) -> SendError {
    SendError::new(
        id,
        "CHANNEL_RATE_LIMITED",
        format!(
            "channels.{id}.maxMessagesPerHour ({max}) is reached: {sent} messages went out in the last hour; the next one can go in {} s",
            free.as_secs().max(1)
        ),
    )
}

/// `cooldownSeconds` has not passed since recipient `key` got a message `ago` ago.
fn cooldown_refusal(
    id: &str,
    key: &str,
    cooldown: Duration,
    ago: Duration,
    left: Duration,
) -> SendError {
    SendError::new(
        id,
        "CHANNEL_COOLDOWN",
        format!(
            "channels.{id}.cooldownSeconds is {} s: {key} got a message {} s ago; the next one can go in {} s",
            cooldown.as_secs(),
            ago.as_secs(),
            left.as_secs_f64().ceil() as u64
        ),
    )
}

/// Locks a std mutex, recovering from poisoning (plain counters stay consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The configured channels.
pub struct Channels {
    cfg: ChannelsConfig,
    /// For `channel.*` state events (disconnected / connected).
    store: crate::store::Store,
    clients: HashMap<&'static str, Client>,
    health: Mutex<HashMap<&'static str, Health>>,
    usage: Mutex<HashMap<&'static str, Usage>>,
    /// Serialises sends that share an idempotency key (see [`Channels::idempotency_lock`]).
    idem_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The Discord Gateway client, when Discord is configured with inbound on.
    discord_gateway: Option<discord_gateway::Listener>,
    http: reqwest::Client,
}

impl Channels {
    /// Builds the clients; errors name the config key.
    pub fn new(cfg: &ChannelsConfig, store: crate::store::Store) -> Result<Channels, String> {
        // Proxy variables (HTTP_PROXY, ALL_PROXY, …) are ignored: sends go where the
        // config says, never through whatever the process environment names.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("channels: cannot build the HTTP client: {e}"))?;
        let mut clients = HashMap::new();
        let mut discord_gateway = None;
        if let Some(c) = &cfg.discord {
            let b = base(
                c.base_url.as_deref(),
                discord::DEFAULT_BASE,
                "channels.discord.baseUrl",
            )?;
            if c.gateway_enabled() {
                discord_gateway = Some(discord_gateway::Listener {
                    token: c.token.clone(),
                    rest_base: b.clone(),
                    url: c.gateway.url.clone(),
                    intents: c
                        .gateway
                        .intents
                        .unwrap_or(discord_gateway::DEFAULT_INTENTS),
                    http: http.clone(),
                });
            }
            clients.insert(
                "discord",
                Client::Discord(discord::Discord::new(c.clone(), b, http.clone())),
            );
        }
        if let Some(c) = &cfg.telegram {
            let b = base(
                c.base_url.as_deref(),
                telegram::DEFAULT_BASE,
                "channels.telegram.baseUrl",
            )?;
            clients.insert(
                "telegram",
                Client::Telegram(telegram::Telegram::new(c.clone(), b, http.clone())),
            );
        }
        if let Some(c) = &cfg.whatsapp {
            let b = base(
                c.base_url.as_deref(),
                whatsapp::DEFAULT_BASE,
                "channels.whatsapp.baseUrl",
            )?;
            let version = c
                .api_version
                .as_deref()
                .map(|v| v.trim().trim_matches('/'))
                .filter(|v| !v.is_empty())
                .unwrap_or(whatsapp::DEFAULT_VERSION);
            if !version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
            {
                return Err(format!(
                    "channels.whatsapp.apiVersion: {version:?} is not a Graph API version like v21.0"
                ));
            }
            clients.insert(
                "whatsapp",
                Client::WhatsApp(whatsapp::WhatsApp::new(
                    c.clone(),
                    format!("{b}/{version}"),
                    http.clone(),
                )),
            );
        }
        if let Some(c) = &cfg.slack {
            let b = base(
                c.base_url.as_deref(),
                slack::DEFAULT_BASE,
                "channels.slack.baseUrl",
            )?;
            if let Some(u) = c.webhook_url.as_deref().filter(|u| !u.trim().is_empty()) {
                base(Some(u), "", "channels.slack.webhookUrl")?;
            }
            clients.insert(
                "slack",
                Client::Slack(slack::Slack::new(c.clone(), b, http.clone())),
            );
        }
        if let Some(c) = &cfg.webhook {
            if !c.url.trim().is_empty() {
                base(Some(&c.url), "", "channels.webhook.url")?;
            }
            clients.insert(
                "webhook",
                Client::Webhook(webhook::Webhook::new(c.clone(), http.clone())?),
            );
        }
        Ok(Channels {
            cfg: cfg.clone(),
            store,
            clients,
            health: Mutex::default(),
            usage: Mutex::default(),
            idem_locks: Mutex::default(),
            discord_gateway,
            http,
        })
    }

    /// Downloads an inbound WhatsApp media object (a voice note): its bytes and MIME type.
    pub async fn whatsapp_media(
        &self,
        media_id: &str,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<(Vec<u8>, String), String> {
        match self.clients.get("whatsapp") {
            Some(Client::WhatsApp(c)) => c.media(media_id, max_bytes, timeout).await,
            _ => Err("whatsapp is not configured".into()),
        }
    }

    /// The HTTP client of the channels (no proxies, a connect timeout).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The Discord Gateway client (inbound DMs and mentions), when it is wanted.
    pub fn discord_gateway(&self) -> Option<discord_gateway::Listener> {
        self.discord_gateway.clone()
    }

    /// The config this registry was built from.
    pub fn config(&self) -> &ChannelsConfig {
        &self.cfg
    }

    /// The client of a (lowercase) channel id.
    fn client(&self, channel: &str) -> Option<(&'static str, &Client)> {
        let id = channel.trim().to_ascii_lowercase();
        self.clients
            .get_key_value(id.as_str())
            .map(|(k, c)| (*k, c))
    }

    /// Why `channel` + `to` cannot be sent to, checked without network: the channel is not
    /// configured / disabled, or `to` does not parse in its grammar. `None` when sendable.
    pub fn check(&self, channel: &str, to: &str) -> Option<SendError> {
        self.target(channel, to).err()
    }

    fn target(
        &self,
        channel: &str,
        to: &str,
    ) -> Result<(&'static str, &Client, Target), SendError> {
        let id = channel.trim().to_ascii_lowercase();
        let Some((id, client)) = self.client(&id) else {
            let known = if IDS.contains(&id.as_str()) {
                String::new()
            } else {
                format!(" (channels clawplane can send to: {})", IDS.join(", "))
            };
            return Err(SendError::new(
                &id,
                "CHANNEL_NOT_CONFIGURED",
                format!(
                    "channel {channel:?} is not configured on this gateway: add channels.{id} to the config{known}"
                ),
            ));
        };
        if !client.enabled() {
            return Err(SendError::new(
                id,
                "CHANNEL_NOT_CONFIGURED",
                format!("channel {id} is disabled (channels.{id}.enabled is false)"),
            ));
        }
        if let Some(key) = client.missing_key() {
            return Err(SendError::new(
                id,
                "CHANNEL_NOT_CONFIGURED",
                format!("channel {id} is not usable: set channels.{id}.{key}"),
            ));
        }
        if to.trim().is_empty() {
            let grammar = match client {
                Client::Discord(_) => discord::GRAMMAR,
                Client::Telegram(_) => telegram::GRAMMAR,
                Client::WhatsApp(_) => whatsapp::GRAMMAR,
                Client::Slack(_) => slack::GRAMMAR,
                Client::Webhook(_) => "the webhook channel takes any non-empty recipient",
            };
            return Err(SendError::new(
                id,
                "INVALID_TARGET",
                format!("{id} needs a recipient (`to`): {grammar}"),
            ));
        }
        match client.parse(to) {
            Ok(t) => Ok((id, client, t)),
            Err(why) => Err(SendError::new(id, "INVALID_TARGET", why)),
        }
    }

    /// A lock that serialises work under one idempotency key, so a repeat that arrives
    /// while the first send is still running waits for its answer instead of sending again.
    pub fn idempotency_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.idem_locks);
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(key.to_string()).or_default().clone()
    }

    /// Counts a send against `maxMessagesPerHour` and `cooldownSeconds`, or refuses it. With
    /// replicas the counts are the cluster's ([`crate::store::Ephemeral::reserve_send`]).
    fn reserve(
        &self,
        id: &'static str,
        to: &str,
        limits: &Limits,
    ) -> Result<Reservation, SendError> {
        let key = to.trim().to_string();
        let max = limits.max_messages_per_hour as usize;
        let cooldown = Duration::from_secs(limits.cooldown_seconds);
        if let Some(eph) = self.store.ephemeral() {
            let per_hour = u32::try_from(max).unwrap_or(u32::MAX);
            let cool_ms = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
            return match eph.reserve_send(id, &key, per_hour, cool_ms) {
                Ok(Ok(rid)) => Ok(Reservation::Shared(rid)),
                Ok(Err(SendRefusal::PerHour { sent, free_ms })) => Err(per_hour_refusal(
                    id,
                    max,
                    sent as usize,
                    Duration::from_millis(free_ms.max(0) as u64),
                )),
                Ok(Err(SendRefusal::Cooldown { ago_ms, left_ms })) => Err(cooldown_refusal(
                    id,
                    &key,
                    cooldown,
                    Duration::from_millis(ago_ms.max(0) as u64),
                    Duration::from_millis(left_ms.max(0) as u64),
                )),
                Err(e) => Err(SendError::new(
                    id,
                    "STORAGE_FAILURE",
                    format!(
                        "nothing was sent: the cluster's send limits of channel {id} cannot be read: {e}"
                    ),
                )),
            };
        }
        let now = Instant::now();
        let mut usage = lock(&self.usage);
        let u = usage.entry(id).or_default();
        while u
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            u.sent.pop_front();
        }
        if max > 0 && u.sent.len() >= max {
            let free = u
                .sent
                .front()
                .map(|t| HOUR.saturating_sub(now.duration_since(*t)))
                .unwrap_or(Duration::ZERO);
            return Err(per_hour_refusal(id, max, u.sent.len(), free));
        }
        if let Some(last) = u.last_to.get(&key)
            && !cooldown.is_zero()
            && now.duration_since(*last) < cooldown
        {
            let ago = now.duration_since(*last);
            return Err(cooldown_refusal(
                id,
                &key,
                cooldown,
                ago,
                cooldown.saturating_sub(ago),
            ));
        }
        u.sent.push_back(now);
        let prev_last = u.last_to.insert(key.clone(), now);
        Ok(Reservation::Local {
            at: now,
            to: key,
            prev_last,
        })
    }

    /// Undoes a reservation for a send that delivered nothing.
    fn release(&self, id: &'static str, r: Reservation) {
        let (at, to, prev_last) = match r {
            Reservation::Local { at, to, prev_last } => (at, to, prev_last),
            Reservation::Shared(rid) => {
                if let Some(eph) = self.store.ephemeral()
                    && let Err(e) = eph.release_send(rid)
                {
                    tracing::warn!(channel = id, "a failed send stays counted: {e}");
                }
                return;
            }
        };
        let mut usage = lock(&self.usage);
        let Some(u) = usage.get_mut(id) else { return };
        if let Some(pos) = u.sent.iter().position(|t| *t == at) {
            u.sent.remove(pos);
        }
        if u.last_to.get(&to) == Some(&at) {
            match prev_last {
                Some(p) => u.last_to.insert(to, p),
                None => u.last_to.remove(&to),
            };
        }
    }

    /// Sends a message (split at the channel's limit), retrying 429 / 5xx within limits.
    /// Keeps the channel's typing indicator up for `msg`'s conversation until the returned
    /// guard is dropped (a reply is being written). Best effort: failures are logged at
    /// debug level and never touch the channel's health or send limits.
    pub fn typing(self: &Arc<Self>, msg: Outbound) -> Option<tokio::task::JoinHandle<()>> {
        let (_, client, _) = self.target(&msg.channel, &msg.to).ok()?;
        if !matches!(
            client,
            Client::Discord(_) | Client::Telegram(_) | Client::WhatsApp(_)
        ) {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            loop {
                let Ok((id, client, target)) = me.target(&msg.channel, &msg.to) else {
                    return;
                };
                match client.typing(&target, &msg).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        tracing::debug!(channel = id, error = %e.err.detail, "typing indicator not shown");
                    }
                    None => return,
                }
                let renew = client.typing_lasts().mul_f64(0.8);
                tokio::time::sleep(renew).await;
            }
        }))
    }

    pub async fn send(&self, msg: Outbound) -> Result<Sent, SendError> {
        let (id, client, target) = self.target(&msg.channel, &msg.to)?;
        let reservation = self.reserve(id, &msg.to, client.limits())?;
        let media = msg.media_url.trim();
        // Channels without a media field get the URL as a line of text (they unfurl it).
        let text = if media.is_empty() || matches!(client, Client::Webhook(_)) {
            msg.text.clone()
        } else if msg.text.trim().is_empty() {
            media.to_string()
        } else {
            format!("{}\n{media}", msg.text)
        };
        let parts = split::split(&text, client.limit());
        let mut retries = 0u32;
        let mut ids = Vec::with_capacity(parts.len());
        for part in &parts {
            match client.send_part(&target, part, &msg, &mut retries).await {
                Ok(mid) => ids.push(mid),
                Err(e) => {
                    if ids.is_empty() {
                        self.release(id, reservation);
                    }
                    let mut err = e.err;
                    err.attempts = retries + 1;
                    err.channel = id.to_string();
                    if !ids.is_empty() {
                        err.detail.push_str(&format!(
                            " (after {} of {} parts were delivered: {})",
                            ids.len(),
                            parts.len(),
                            ids.join(", ")
                        ));
                    }
                    tracing::warn!(channel = id, reason = err.reason, error = %err.detail, "channel send failed");
                    self.observe(id, Err((&err.detail, e.kind))).await;
                    return Err(err);
                }
            }
        }
        tracing::debug!(channel = id, parts = ids.len(), "channel send delivered");
        self.observe(id, Ok(())).await;
        Ok(Sent {
            message_ids: ids,
            attempts: retries + 1,
        })
    }

    /// Records the outcome of a send or probe; appends `disconnected` / `connected` events
    /// when the connection state flips.
    async fn observe(&self, id: &'static str, outcome: Result<(), (&str, FailKind)>) {
        let (ok, last_error, connected) = match outcome {
            Ok(()) => (true, "", Some(true)),
            Err((detail, kind)) => (
                false,
                detail,
                matches!(kind, FailKind::Auth | FailKind::Unreachable).then_some(false),
            ),
        };
        let was = self.mark(id, ok, last_error, connected);
        let change = match connected {
            Some(true) => (was == Some(false)).then(|| ("connected", String::new())),
            Some(false) => (was != Some(false)).then(|| ("disconnected", last_error.to_string())),
            None => None,
        };
        let Some((ty, detail)) = change else { return };
        tracing::info!(channel = id, state = ty, "channel connection state changed");
        let ev = Event {
            kind: EventKind::Channel as i32,
            payload: Some(event::Payload::Channel(ChannelEvent {
                r#type: ty.into(),
                channel: id.into(),
                detail,
                ..Default::default()
            })),
            ..Default::default()
        };
        if let Err(e) = self.store.write(move |tx| tx.append_event(ev)).await {
            tracing::warn!(channel = id, error = %e, "cannot record the channel state event");
        }
    }

    /// Stores a channel's health (the replicas': the cluster's); returns the connection
    /// state it had.
    fn mark(
        &self,
        id: &'static str,
        ok: bool,
        last_error: &str,
        connected: Option<bool>,
    ) -> Option<bool> {
        if let Some(eph) = self.store.ephemeral() {
            match eph.mark_channel(id, ok, last_error, connected) {
                Ok(was) => return was,
                Err(e) => tracing::warn!(
                    channel = id,
                    "the cluster's channel health cannot be written, this replica keeps it: {e}"
                ),
            }
        }
        let mut all = lock(&self.health);
        let h = all.entry(id).or_default();
        h.checked = Some(now_ts());
        h.ok = Some(ok);
        h.last_error = last_error.to_string();
        let was = h.connected;
        if connected.is_some() {
            h.connected = connected;
        }
        was
    }

    /// A channel's health and the messages it sent in the last hour (the cluster's with
    /// replicas).
    fn health_of(&self, id: &'static str) -> (Health, u32) {
        if let Some(eph) = self.store.ephemeral() {
            match eph.channel_state(id) {
                Ok((mark, sent)) => {
                    let h = mark.map_or_else(Health::default, |m| Health {
                        ok: Some(m.ok),
                        last_error: m.last_error,
                        connected: m.connected,
                        checked: Some(Timestamp {
                            seconds: m.checked_ms.div_euclid(1000),
                            nanos: (m.checked_ms.rem_euclid(1000) * 1_000_000) as i32,
                        }),
                    });
                    return (h, sent);
                }
                Err(e) => tracing::warn!(
                    channel = id,
                    "the cluster's channel health cannot be read, this replica's answers: {e}"
                ),
            }
        }
        let h = lock(&self.health).get(id).cloned().unwrap_or_default();
        let sent = lock(&self.usage)
            .get(id)
            .map(|u| u.sent.iter().filter(|t| t.elapsed() < HOUR).count() as u32)
            .unwrap_or(0);
        (h, sent)
    }

    fn channel_of(&self, id: &'static str, client: &Client) -> Channel {
        let (h, sent_last_hour) = self.health_of(id);
        let config_problem = if !client.enabled() {
            format!("disabled (channels.{id}.enabled is false)")
        } else if let Some(key) = client.missing_key() {
            format!("not usable: set channels.{id}.{key}")
        } else {
            String::new()
        };
        let health = match h.ok {
            None => ChannelHealth::Unknown,
            Some(true) => ChannelHealth::Ok,
            Some(false) => ChannelHealth::Failing,
        };
        let last_error = if h.last_error.is_empty() {
            config_problem
        } else {
            h.last_error
        };
        Channel {
            name: format!("channels/{id}"),
            channel_id: id.into(),
            enabled: client.enabled(),
            healthy: health == ChannelHealth::Ok,
            last_error,
            base_url: client.base_url(),
            health: health as i32,
            last_check_time: h.checked,
            sent_last_hour,
        }
    }

    /// Every configured channel with its last known health.
    pub fn list(&self) -> Vec<Channel> {
        IDS.iter()
            .filter_map(|id| self.clients.get_key_value(id))
            .map(|(id, c)| self.channel_of(id, c))
            .collect()
    }

    /// One channel's status; `probe` checks credentials against the provider now.
    pub async fn status(&self, channel: &str, probe: bool) -> Option<Channel> {
        let (id, client) = self.client(channel)?;
        if probe && client.enabled() && client.missing_key().is_none() {
            match client.probe().await {
                Some(Ok(who)) => {
                    tracing::debug!(channel = id, who, "channel probe ok");
                    self.observe(id, Ok(())).await;
                }
                Some(Err(e)) => self.observe(id, Err((&e.err.detail, e.kind))).await,
                None => {}
            }
        }
        Some(self.channel_of(id, client))
    }
}
