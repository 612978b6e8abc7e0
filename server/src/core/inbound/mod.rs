//! Inbound channel messages: provider webhooks (WhatsApp Cloud, Telegram) verified on the
//! raw bytes, deduplicated by the provider's message id (as the run's idempotency key),
//! routed to the sender's session, and answered on the same channel. WhatsApp `statuses`
//! callbacks update the delivery receipt of the run whose reply they concern. Discord
//! messages come over Discord's gateway WebSocket instead (`discord.rs`), the same path on.

mod discord;
pub(crate) use discord::spawn as spawn_discord;

use super::runs::{NewRun, Runs, delivery::SentMessage};
use crate::{
    auth::ClientKey,
    config::{RateLimitConfig, channels::ChannelsConfig},
    error::{Error, Result},
    store::{Records, Store, Txn},
};
use clawplane_proto::v1::{
    ChannelEvent, DeliveryStatus, Event, EventKind, IngestChannelWebhookRequest,
    IngestChannelWebhookResponse, RunOrigin, SecurityAlert, SendMessageRequest, event::Payload,
};
use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use subtle::ConstantTimeEq;

/// One message taken from a provider payload.
struct Inbound {
    /// The provider's id for dedupe (wamid, `update_id`).
    dedupe: String,
    event: ChannelEvent,
    /// A WhatsApp voice note's media id: its transcript becomes the text.
    voice: Option<String>,
}

/// An idempotency key for a provider message id (any bytes) within the key grammar.
fn dedupe_key(channel: &str, id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    format!("{channel}:{}", hex::encode(&digest[..16]))
}

fn str_at<'a>(v: &'a Json, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or_default()
}

/// Receipt statuses in the order they happen; a late `sent` never overwrites `read`.
fn receipt_rank(status: &str) -> u8 {
    match status {
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        "failed" => 4,
        _ => 0,
    }
}

/// The inbound channels service: the channels' webhook secrets (`channels.*`), the store
/// for receipts and security events, the runs that messages become, and the limiter of
/// its BAD_SIGNATURE alerts.
pub struct InboundChannels {
    cfg: ChannelsConfig,
    store: Store,
    runs: Arc<Runs>,
    senders: Arc<super::senders::Senders>,
    /// For voice notes: the media download and the transcription provider's HTTP client.
    channels: Arc<crate::channels::Channels>,
    alerts: Mutex<AlertLimiter>,
}

/// At most one BAD_SIGNATURE alert per client address (IPv6: /64) and channel per window
/// (`gateway.auth.rateLimit.windowMs`): a flood of bad signatures appends one event, and
/// the next one after the window says how many were suppressed. An LRU of
/// `maxTrackedClients` entries, so a flood of addresses cannot grow it.
struct AlertLimiter {
    window: Duration,
    seen: lru::LruCache<(Option<ClientKey>, &'static str), AlertWindow>,
}

struct AlertWindow {
    start: Instant,
    suppressed: u64,
}

impl AlertLimiter {
    fn new(limits: &RateLimitConfig) -> AlertLimiter {
        AlertLimiter {
            window: Duration::from_millis(limits.window_ms),
            seen: lru::LruCache::new(
                std::num::NonZeroUsize::new(limits.max_tracked_clients.max(1))
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            ),
        }
    }

    /// `Some(n)` when an alert is due (n refusals were suppressed since the last one),
    /// `None` when this one is suppressed.
    fn admit(
        &mut self,
        remote: Option<IpAddr>,
        channel: &'static str,
        now: Instant,
    ) -> Option<u64> {
        let key = (remote.map(ClientKey::of), channel);
        match self.seen.get_mut(&key) {
            Some(w) if now.saturating_duration_since(w.start) < self.window => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                let n = w.suppressed;
                *w = AlertWindow {
                    start: now,
                    suppressed: 0,
                };
                Some(n)
            }
            None => {
                self.seen.put(
                    key,
                    AlertWindow {
                        start: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

impl InboundChannels {
    pub fn new(
        cfg: &ChannelsConfig,
        limits: &RateLimitConfig,
        store: Store,
        runs: Arc<Runs>,
        senders: Arc<super::senders::Senders>,
        channels: Arc<crate::channels::Channels>,
    ) -> InboundChannels {
        InboundChannels {
            cfg: cfg.clone(),
            store,
            runs,
            senders,
            channels,
            alerts: Mutex::new(AlertLimiter::new(limits)),
        }
    }

    /// Verifies and takes one provider webhook request.
    pub async fn ingest(
        &self,
        req: IngestChannelWebhookRequest,
        remote: Option<IpAddr>,
    ) -> Result<IngestChannelWebhookResponse> {
        let header = |name: &str| req.headers.get(name).map(String::as_str);
        let (messages, statuses) = match req.channel.as_str() {
            "whatsapp" => {
                let Some(cfg) = self.cfg.whatsapp.as_ref() else {
                    return Err(Error::field(
                        "channel",
                        "whatsapp is not configured (channels.whatsapp)",
                    ));
                };
                if req.method.eq_ignore_ascii_case("GET") {
                    return self.whatsapp_verify(&req, cfg.verify_token.as_deref());
                }
                let signature = header("x-hub-signature-256").unwrap_or_default();
                if let Err(why) =
                    verify_hub_signature(cfg.app_secret.as_deref(), signature, &req.body)
                {
                    return Err(self.bad_signature("whatsapp", why, remote).await);
                }
                let payload = parse(&req.body)?;
                whatsapp_payload(&payload)
            }
            "telegram" => {
                let Some(cfg) = self.cfg.telegram.as_ref() else {
                    return Err(Error::field(
                        "channel",
                        "telegram is not configured (channels.telegram)",
                    ));
                };
                let given = header("x-telegram-bot-api-secret-token").unwrap_or_default();
                let why = match cfg.webhook_secret.as_deref() {
                    None | Some("") => Some(
                        "channels.telegram.webhookSecret is not set, so updates cannot be verified",
                    ),
                    Some(secret) if !bool::from(secret.as_bytes().ct_eq(given.as_bytes())) => {
                        Some("X-Telegram-Bot-Api-Secret-Token is missing or wrong")
                    }
                    Some(_) => None,
                };
                if let Some(why) = why {
                    return Err(self.bad_signature("telegram", why.into(), remote).await);
                }
                (telegram_update(&parse(&req.body)?), Vec::new())
            }
            other => {
                return Err(Error::field(
                    "channel",
                    format!("{other:?} has no inbound webhook; use whatsapp or telegram"),
                ));
            }
        };
        let mut out = IngestChannelWebhookResponse::default();
        for m in messages {
            match m {
                Ok(m) => match self.accept_inbound(&req.channel, m).await {
                    Ok(Err(refused)) => out.ignored.push(refused),
                    Ok(Ok((run_id, duplicate))) => {
                        if duplicate {
                            out.duplicates += 1;
                        } else {
                            out.run_ids.push(run_id);
                        }
                    }
                    Err(Error::IdempotencyConflict { .. }) => out.duplicates += 1,
                    Err(e) => return Err(e),
                },
                Err(why) => out.ignored.push(why),
            }
        }
        for (wamid, status, detail) in statuses {
            if self
                .record_receipt(&req.channel, wamid, status, detail)
                .await?
            {
                out.receipts += 1;
            }
        }
        Ok(out)
    }

    fn whatsapp_verify(
        &self,
        req: &IngestChannelWebhookRequest,
        expected: Option<&str>,
    ) -> Result<IngestChannelWebhookResponse> {
        let q = |k: &str| req.query.get(k).map(String::as_str).unwrap_or_default();
        let Some(expected) = expected.filter(|t| !t.is_empty()) else {
            return Err(Error::VerifyTokenMismatch(
                "channels.whatsapp.verifyToken is not set".into(),
            ));
        };
        if q("hub.mode") != "subscribe" {
            return Err(Error::VerifyTokenMismatch(
                "hub.mode must be subscribe".into(),
            ));
        }
        if !bool::from(expected.as_bytes().ct_eq(q("hub.verify_token").as_bytes())) {
            return Err(Error::VerifyTokenMismatch(
                "hub.verify_token does not match channels.whatsapp.verifyToken".into(),
            ));
        }
        Ok(IngestChannelWebhookResponse {
            challenge: q("hub.challenge").to_string(),
            ..Default::default()
        })
    }

    /// Whether a BAD_SIGNATURE alert is due (see [`AlertLimiter`]); with replicas the
    /// windows are the cluster's, so N replicas still raise one alert per window.
    fn alert_due(&self, remote: Option<IpAddr>, channel: &'static str) -> Option<u64> {
        if let Some(eph) = self.store.ephemeral() {
            let window = super::lock(&self.alerts).window;
            let client = remote.map(|a| ClientKey::of(a).to_string());
            let key = format!("bad-signature:{channel}:{}", client.unwrap_or_default());
            match eph.admit_alert(&key, i64::try_from(window.as_millis()).unwrap_or(i64::MAX)) {
                Ok(due) => return due,
                Err(e) => tracing::warn!(
                    "the cluster's alert windows cannot be read, this replica's decide: {e}"
                ),
            }
        }
        super::lock(&self.alerts).admit(remote, channel, Instant::now())
    }

    /// Records a failed verification as a security alert (rate limited per address and
    /// channel; appended without waiting for the writer, so a flood never holds requests on
    /// the store) and returns the error to answer.
    async fn bad_signature(
        &self,
        surface: &'static str,
        why: String,
        remote: Option<IpAddr>,
    ) -> Error {
        let due = self.alert_due(remote, surface);
        let Some(suppressed) = due else {
            tracing::debug!(channel = surface, remote = ?remote, "inbound webhook refused (alert suppressed): {why}");
            return Error::SignatureInvalid(why);
        };
        tracing::warn!(channel = surface, remote = ?remote, suppressed, "inbound webhook refused: {why}");
        let detail = if suppressed == 0 {
            why.clone()
        } else {
            format!("{why} ({suppressed} more refused from this address since the last alert)")
        };
        let ev = Event {
            kind: EventKind::Security as i32,
            payload: Some(Payload::Security(SecurityAlert {
                reason: "BAD_SIGNATURE".into(),
                detail,
                remote_addr: remote.map(|a| a.to_string()).unwrap_or_default(),
                surface: surface.into(),
            })),
            ..Default::default()
        };
        // Queued, not committed, before the answer: the refusal never waits on the writer.
        self.store
            .write_detached(move |tx: &mut dyn Txn| tx.append_event(ev).map(|_| ()))
            .await;
        Error::SignatureInvalid(why)
    }

    /// Starts the run for one inbound message (or finds the one a redelivery started), if
    /// the sender policy lets it run; else why not.
    async fn accept_inbound(
        &self,
        channel: &str,
        m: Inbound,
    ) -> Result<std::result::Result<(String, bool), String>> {
        let mut m = m;
        let agent_id = match self.senders.admit(&m.event).await? {
            super::senders::Admission::Admit { agent_id } => agent_id,
            super::senders::Admission::Refuse(why) => {
                tracing::info!(channel, sender = %m.event.sender_id, "inbound message not run: {why}");
                return Ok(Err(why));
            }
        };
        if let Some(media) = m.voice.take() {
            match self.voice_text(&media).await {
                Ok(text) => {
                    m.event.text = text;
                    m.event.detail = "voice note (transcribed)".into();
                }
                Err(why) => {
                    tracing::warn!(channel, message = %m.event.message_id, "voice note not transcribed: {why}");
                    self.answer_voice(&m.event, &why);
                    return Ok(Err(format!(
                        "voice note {} not transcribed: {why}",
                        m.event.message_id
                    )));
                }
            }
        }
        let e = &m.event;
        let a = self
            .runs
            .accept(NewRun {
                agent_id,
                origin: RunOrigin::Channel as i32,
                message: e.text.clone(),
                idempotency_key: dedupe_key(channel, &m.dedupe),
                key_scope: format!("channel:{channel}"),
                deliver: true,
                // The channel may be inbound-only (no send credentials): the message still
                // runs and the run's delivery says why no reply went out.
                best_effort_deliver: true,
                channel: channel.into(),
                to: e.from.clone(),
                account_id: e.account_id.clone(),
                thread_id: e.thread_id.clone(),
                inbound: Some(m.event),
                ..Default::default()
            })
            .await?;
        Ok(Ok((a.run.run_id, a.duplicate)))
    }

    /// The transcript of a WhatsApp voice note (`channels.whatsapp.transcription`).
    async fn voice_text(&self, media_id: &str) -> std::result::Result<String, String> {
        let Some(t) = self
            .cfg
            .whatsapp
            .as_ref()
            .and_then(|w| w.transcription.as_ref())
        else {
            return Err(
                "this gateway has no transcription provider (channels.whatsapp.transcription)"
                    .into(),
            );
        };
        let timeout = Duration::from_secs(t.timeout_seconds.max(1));
        let (audio, mime) = self
            .channels
            .whatsapp_media(media_id, t.max_bytes, timeout)
            .await?;
        crate::models::transcription::transcribe(t, &self.channels.http(), audio, &mime).await
    }

    /// Tells the sender their voice note could not be heard, instead of silence (once per
    /// note: the idempotency key), after the webhook is answered.
    fn answer_voice(&self, e: &ChannelEvent, why: &str) {
        let req = SendMessageRequest {
            channel: e.channel.clone(),
            to: e.from.clone(),
            account_id: e.account_id.clone(),
            message: format!(
                "Sorry, I could not listen to your voice message ({why}). Please send it as text."
            ),
            idempotency_key: format!("voice-{}", dedupe_key(&e.channel, &e.message_id)),
            ..Default::default()
        };
        let (runs, scope) = (self.runs.clone(), format!("channel:{}", e.channel));
        tokio::spawn(async move {
            if let Err(err) = runs.send_message(req, &scope).await {
                tracing::warn!("the voice note answer could not be sent: {err}");
            }
        });
    }

    /// Applies a receipt to the run whose reply carried `message_id`; false when unknown
    /// or not newer than what is recorded.
    async fn record_receipt(
        &self,
        channel: &str,
        message_id: String,
        status: String,
        detail: String,
    ) -> Result<bool> {
        let channel = channel.to_string();
        self.store
            .write(move |tx: &mut dyn Txn| {
                let key = SentMessage::key_of(&channel, &message_id);
                let Some(SentMessage { run_id, .. }) = tx.get(&key)? else {
                    return Ok(false);
                };
                let Some(mut stored) = tx.run(&run_id)? else {
                    return Ok(false);
                };
                let Some(d) = stored.run.delivery.as_mut() else {
                    return Ok(false);
                };
                if receipt_rank(&status) <= receipt_rank(&d.receipt) {
                    return Ok(false);
                }
                d.receipt = status.clone();
                if status == "failed" {
                    d.status = DeliveryStatus::Failed as i32;
                    d.reason = "CHANNEL_REJECTED".into();
                    d.detail = format!("{channel} reported the message failed: {detail}");
                }
                tx.put_run(&stored)?;
                let run = stored.run;
                tx.append_event(Event {
                    session_key: run.session_key.clone(),
                    run_id: run.run_id.clone(),
                    kind: EventKind::Channel as i32,
                    payload: Some(Payload::Channel(ChannelEvent {
                        r#type: "delivery.receipt".into(),
                        channel: channel.clone(),
                        message_id,
                        detail: status,
                        ..Default::default()
                    })),
                    ..Default::default()
                })?;
                tx.append_event(Event {
                    session_key: run.session_key.clone(),
                    run_id: run.run_id.clone(),
                    kind: EventKind::Run as i32,
                    payload: Some(Payload::Run(run)),
                    ..Default::default()
                })?;
                Ok(true)
            })
            .await
    }
}

fn parse(body: &[u8]) -> Result<Json> {
    serde_json::from_slice(body)
        .map_err(|e| Error::field("body", format!("is not valid JSON: {e}")))
}

/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`.
fn verify_hub_signature(
    secret: Option<&str>,
    header: &str,
    body: &[u8],
) -> std::result::Result<(), String> {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(
            "channels.whatsapp.appSecret is not set, so messages cannot be verified".into(),
        );
    };
    let Some(sig) = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return Err("X-Hub-Signature-256 is missing or not sha256=<hex>".into());
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| format!("bad app secret: {e}"))?;
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| {
        "X-Hub-Signature-256 does not match the body (check channels.whatsapp.appSecret)".into()
    })
}

type Receipt = (String, String, String);

/// Messages and receipts of a WhatsApp Cloud API webhook payload.
fn whatsapp_payload(p: &Json) -> (Vec<std::result::Result<Inbound, String>>, Vec<Receipt>) {
    let (mut messages, mut receipts) = (Vec::new(), Vec::new());
    let empty = Vec::new();
    for entry in p["entry"].as_array().unwrap_or(&empty) {
        for change in entry["changes"].as_array().unwrap_or(&empty) {
            let v = &change["value"];
            if change["field"].as_str() != Some("messages") {
                messages.push(Err(format!(
                    "change field {:?} is not handled",
                    change["field"].as_str().unwrap_or_default()
                )));
                continue;
            }
            let account = str_at(v, &["metadata", "phone_number_id"]).to_string();
            let name_of = |wa_id: &str| {
                v["contacts"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .find(|c| c["wa_id"].as_str() == Some(wa_id))
                    .map(|c| str_at(c, &["profile", "name"]).to_string())
                    .unwrap_or_default()
            };
            for m in v["messages"].as_array().unwrap_or(&empty) {
                let (id, from) = (str_at(m, &["id"]), str_at(m, &["from"]));
                let voice = match m["type"].as_str() {
                    Some("audio") => {
                        Some(str_at(m, &["audio", "id"]).to_string()).filter(|v| !v.is_empty())
                    }
                    _ => None,
                };
                let text = match m["type"].as_str() {
                    Some("text") => str_at(m, &["text", "body"]),
                    // Media with a caption still carries the user's words.
                    Some(t) => m[t]["caption"].as_str().unwrap_or_default(),
                    None => "",
                };
                if id.is_empty() || from.is_empty() || (text.trim().is_empty() && voice.is_none()) {
                    messages.push(Err(format!(
                        "message {id:?} of type {:?} has no text",
                        m["type"].as_str().unwrap_or_default()
                    )));
                    continue;
                }
                messages.push(Ok(Inbound {
                    dedupe: id.to_string(),
                    event: ChannelEvent {
                        r#type: "message.received".into(),
                        channel: "whatsapp".into(),
                        account_id: account.clone(),
                        from: from.to_string(),
                        sender_id: from.to_string(),
                        chat_type: "direct".into(),
                        sender_name: name_of(from),
                        text: text.to_string(),
                        message_id: id.to_string(),
                        ..Default::default()
                    },
                    voice,
                }));
            }
            for s in v["statuses"].as_array().unwrap_or(&empty) {
                let errors = s["errors"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["code"],
                            e["title"]
                                .as_str()
                                .or(e["message"].as_str())
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                receipts.push((
                    str_at(s, &["id"]).to_string(),
                    str_at(s, &["status"]).to_string(),
                    errors,
                ));
            }
        }
    }
    (messages, receipts)
}

/// The message of a Telegram update (`message`, or `channel_post`).
fn telegram_update(u: &Json) -> Vec<std::result::Result<Inbound, String>> {
    let Some(update_id) = u["update_id"].as_i64() else {
        return vec![Err("update_id is missing".into())];
    };
    let m = if u["message"].is_object() {
        &u["message"]
    } else if u["channel_post"].is_object() {
        &u["channel_post"]
    } else {
        return vec![Err(format!("update {update_id} carries no message"))];
    };
    let text = m["text"]
        .as_str()
        .or(m["caption"].as_str())
        .unwrap_or_default();
    let Some(chat) = m["chat"]["id"].as_i64() else {
        return vec![Err(format!("update {update_id} has no chat id"))];
    };
    if text.trim().is_empty() {
        return vec![Err(format!("update {update_id} has no text"))];
    }
    let from = &m["from"];
    let chat_type = match m["chat"]["type"].as_str() {
        Some("group" | "supergroup") => "group",
        Some("channel") => "channel",
        _ => "direct",
    };
    // A channel post has no `from`: the channel itself is the sender.
    let sender_id = from["id"]
        .as_i64()
        .map(|i| i.to_string())
        .unwrap_or_else(|| chat.to_string());
    let sender = [
        from["first_name"].as_str(),
        from["username"].as_str().map(|u| u.trim_start_matches('@')),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" @");
    vec![Ok(Inbound {
        dedupe: update_id.to_string(),
        event: ChannelEvent {
            r#type: "message.received".into(),
            channel: "telegram".into(),
            from: chat.to_string(),
            sender_id,
            chat_type: chat_type.into(),
            sender_name: sender,
            text: text.to_string(),
            message_id: m["message_id"]
                .as_i64()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            thread_id: m["message_thread_id"]
                .as_i64()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            ..Default::default()
        },
        voice: None,
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_signature() {
        // GitHub's documented vector: the same scheme as Meta's X-Hub-Signature-256.
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_hub_signature(Some("It's a Secret to Everybody"), good, body).is_ok());
        assert!(verify_hub_signature(Some("other"), good, body).is_err());
        assert!(verify_hub_signature(None, good, body).is_err());
        assert!(verify_hub_signature(Some("x"), "md5=00", body).is_err());
    }

    #[test]
    fn alerts_are_limited_per_address_and_channel_and_count_what_they_suppress() {
        let mut l = AlertLimiter::new(&RateLimitConfig {
            window_ms: 1000,
            max_tracked_clients: 4,
            ..RateLimitConfig::default()
        });
        let (a, b) = (
            Some("192.0.2.1".parse().unwrap()),
            Some("192.0.2.2".parse().unwrap()),
        );
        let t0 = Instant::now();
        assert_eq!(l.admit(a, "whatsapp", t0), Some(0));
        for i in 1..=5 {
            assert_eq!(l.admit(a, "whatsapp", t0 + Duration::from_millis(i)), None);
        }
        // Another address, another channel: their own windows.
        assert_eq!(l.admit(b, "whatsapp", t0), Some(0));
        assert_eq!(l.admit(a, "telegram", t0), Some(0));
        // After the window the next alert carries the suppressed count.
        let later = t0 + Duration::from_millis(1000);
        assert_eq!(l.admit(a, "whatsapp", later), Some(5));
        assert_eq!(l.admit(a, "whatsapp", later), None);
        // Bounded: a flood of addresses keeps at most max_tracked_clients entries.
        for i in 0..100u32 {
            let ip = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            l.admit(ip, "telegram", t0);
        }
        assert!(l.seen.len() <= 4);
    }

    #[test]
    fn dedupe_keys_fit_the_idempotency_grammar() {
        let k = dedupe_key(
            "whatsapp",
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        );
        assert!(
            crate::core::runs::check_idempotency_key(&k).is_none(),
            "{k}"
        );
    }
}
