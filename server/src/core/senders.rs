//! Who may talk to the bot: every inbound channel message passes [`Senders::admit`] before
//! it can start a model turn. `channels.<id>.dmPolicy` / `allowFrom` and `groupPolicy` /
//! `groupAllowFrom` decide; under `pairing` an unknown sender gets one reply with a pairing
//! code and nothing runs until an operator approves the code (`ApproveSenderPairing`).
//! Pending requests and approvals are store records, so every replica sees the same ones;
//! each change is an event on the feed. `bindings[]` names the agent that answers.

use super::devices::{ms_ts, ts_ms};
use super::runs::Runs;
use crate::{
    config::{
        Config,
        bindings::{self, Binding},
        channels::{ChannelsConfig, DmPolicy, GroupPolicy, SenderPolicy},
    },
    error::{Error, Result},
    store::{Record, Records, RecordsMut, Store, Txn},
};
use clawplane_proto::v1::{
    ApprovedSender, ChannelEvent, Delivery, DeliveryStatus, Event, EventKind,
    ListSenderPairingsResponse, SendMessageRequest, SenderPairing, SenderPairingChange,
    event::Payload,
};
use clawplane_util::time::now_ms;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A pending request lives this long (OpenClaw: one hour).
pub const PAIRING_TTL_MS: i64 = 3_600_000;
/// Pending requests kept per channel; further unknown senders are ignored until one
/// expires or is decided.
pub const PENDING_PER_CHANNEL: usize = 3;
/// Pairing codes: uppercase letters and digits without the ambiguous 0, O, 1, I.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;

/// A pending request, keyed `<channel>\x1f<code>`.
#[derive(Serialize, Deserialize)]
struct Pending(SenderPairing);

impl Record for Pending {
    const KIND: &'static str = "senders.pending";
    fn key(&self) -> String {
        pending_key(&self.0.channel, &self.0.code)
    }
}

/// An approval, keyed `<channel>\x1f<sender id>`.
#[derive(Serialize, Deserialize)]
struct Approved(ApprovedSender);

impl Record for Approved {
    const KIND: &'static str = "senders.approved";
    fn key(&self) -> String {
        approved_key(&self.0.channel, &self.0.sender_id)
    }
}

fn pending_key(channel: &str, code: &str) -> String {
    format!("{channel}\u{1f}{code}")
}

fn approved_key(channel: &str, sender: &str) -> String {
    format!("{channel}\u{1f}{sender}")
}

/// What becomes of an inbound message.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// It may run, answered by this agent (empty: the default agent).
    Admit { agent_id: String },
    /// It does not run; why (for the webhook's `ignored` list and the log).
    Refuse(String),
}

pub use clawplane_proto::keys::normalize_sender;

fn listed(channel: &str, list: &[crate::config::channels::SenderId], ids: &[&str]) -> bool {
    list.iter().any(|entry| {
        let entry = normalize_sender(channel, &entry.text());
        entry == "*" || ids.iter().any(|id| !id.is_empty() && *id == entry)
    })
}

fn change_event(kind: &str, request: SenderPairing) -> Event {
    Event {
        kind: EventKind::SenderPairing as i32,
        payload: Some(Payload::SenderPairing(SenderPairingChange {
            r#type: kind.into(),
            request: Some(request),
        })),
        ..Default::default()
    }
}

fn new_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// The pending requests of `channel` (expired ones too), in code order.
fn channel_pending(r: &(impl Records + ?Sized), channel: &str) -> Result<Vec<SenderPairing>> {
    let prefix = pending_key(channel, "");
    let mut out = Vec::new();
    let mut after = prefix.clone();
    loop {
        let page = r.scan::<Pending>(&after, 64)?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = last.key();
        for p in page {
            if p.0.channel != channel {
                return Ok(out);
            }
            out.push(p.0);
        }
    }
}

fn expired(p: &SenderPairing, now: i64) -> bool {
    ts_ms(p.expire_time.as_ref()) <= now
}

/// The sender policy, pairing requests and approvals, and the bindings.
pub struct Senders {
    channels: ChannelsConfig,
    bindings: Vec<Binding>,
    store: Store,
    runs: Arc<Runs>,
}

/// The reply that tells an unknown sender their code.
fn pairing_text(p: &SenderPairing) -> String {
    format!(
        "This bot does not know you yet, so your message was not passed on.\n\nYour {} id: {}\nPairing code: {}\n\nAsk the bot's owner to approve you with:\nclawplane pairing approve {} {}\n\nThe code expires in one hour.",
        p.channel, p.sender_id, p.code, p.channel, p.code
    )
}

const APPROVED_TEXT: &str = "You are approved: send a message to start talking to this bot.";

impl Senders {
    pub fn new(config: &Config, store: Store, runs: Arc<Runs>) -> Senders {
        Senders {
            channels: config.channels.clone(),
            bindings: config.bindings.clone(),
            store,
            runs,
        }
    }

    fn policy(&self, channel: &str) -> Result<&SenderPolicy> {
        self.channels.sender_policy(channel).ok_or_else(|| {
            Error::field(
                "channel",
                format!(
                    "{channel:?} has no inbound sender policy; pairing applies to whatsapp, telegram and discord when configured (channels.<id>)"
                ),
            )
        })
    }

    /// Decides whether an inbound message may run, and under `pairing` makes the request
    /// (and sends its code) for an unknown sender.
    pub async fn admit(&self, e: &ChannelEvent) -> Result<Admission> {
        let channel = e.channel.as_str();
        let Ok(policy) = self.policy(channel) else {
            return Ok(Admission::Admit {
                agent_id: self.agent_for(e),
            });
        };
        let sender = normalize_sender(
            channel,
            if e.sender_id.is_empty() {
                &e.from
            } else {
                &e.sender_id
            },
        );
        let admit = || Admission::Admit {
            agent_id: self.agent_for(e),
        };
        if matches!(e.chat_type.as_str(), "group" | "channel") {
            let group = normalize_sender(channel, &e.from);
            return Ok(match policy.group_policy {
                GroupPolicy::Open => admit(),
                GroupPolicy::Disabled => Admission::Refuse(format!(
                    "group messages are disabled (channels.{channel}.groupPolicy)"
                )),
                GroupPolicy::Allowlist => {
                    let list = if policy.group_allow_from.is_empty() {
                        &policy.allow_from
                    } else {
                        &policy.group_allow_from
                    };
                    if listed(channel, list, &[&sender, &group]) {
                        admit()
                    } else {
                        Admission::Refuse(format!(
                            "sender {sender} in group {group} is not in channels.{channel}.groupAllowFrom"
                        ))
                    }
                }
            });
        }
        match policy.dm_policy {
            DmPolicy::Disabled => {
                return Ok(Admission::Refuse(format!(
                    "direct messages are disabled (channels.{channel}.dmPolicy)"
                )));
            }
            DmPolicy::Open => return Ok(admit()),
            DmPolicy::Allowlist | DmPolicy::Pairing => {}
        }
        if listed(channel, &policy.allow_from, &[&sender]) {
            return Ok(admit());
        }
        let key = approved_key(channel, &sender);
        if self.store.read(|r| r.contains::<Approved>(&key))? {
            return Ok(admit());
        }
        if policy.dm_policy == DmPolicy::Allowlist {
            return Ok(Admission::Refuse(format!(
                "sender {sender} is not in channels.{channel}.allowFrom (dmPolicy allowlist)"
            )));
        }
        Ok(Admission::Refuse(self.request(e, sender).await?))
    }

    /// The agent of the most specific binding for `e`, empty for the default agent.
    fn agent_for(&self, e: &ChannelEvent) -> String {
        let chat_type = if e.chat_type.is_empty() {
            "direct"
        } else {
            e.chat_type.as_str()
        };
        let peer = if chat_type == "direct" && !e.sender_id.is_empty() {
            normalize_sender(&e.channel, &e.sender_id)
        } else {
            normalize_sender(&e.channel, &e.from)
        };
        bindings::route(
            &self.bindings,
            &bindings::Route {
                channel: &e.channel,
                account_id: &e.account_id,
                chat_type,
                peer_id: &peer,
            },
        )
        .unwrap_or_default()
        .to_string()
    }

    /// Makes a pairing request for an unknown sender unless one is pending or the channel
    /// has its fill; a new one is answered with its code. Returns why nothing runs.
    async fn request(&self, e: &ChannelEvent, sender: String) -> Result<String> {
        let channel = e.channel.clone();
        let (account, name, reply_to) =
            (e.account_id.clone(), e.sender_name.clone(), e.from.clone());
        let who = sender.clone();
        let made = self
            .store
            .write(move |tx: &mut dyn Txn| {
                let now = now_ms();
                let mut live = Vec::new();
                for p in channel_pending(tx, &channel)? {
                    if expired(&p, now) {
                        tx.delete::<Pending>(&pending_key(&channel, &p.code))?;
                    } else {
                        live.push(p);
                    }
                }
                if let Some(p) = live.iter().find(|p| p.sender_id == who) {
                    return Ok(Err(format!(
                        "sender {who} is not approved; their pairing request {} is pending",
                        p.request_id
                    )));
                }
                if live.len() >= PENDING_PER_CHANNEL {
                    return Ok(Err(format!(
                        "sender {who} is not approved, and {channel} already has {PENDING_PER_CHANNEL} pending pairing requests: ignored until one expires or is decided"
                    )));
                }
                let code = loop {
                    let c = new_code();
                    if !live.iter().any(|p| p.code == c) {
                        break c;
                    }
                };
                let request_id = uuid::Uuid::new_v4().simple().to_string();
                let p = SenderPairing {
                    name: format!("channels/{channel}/senderPairings/{request_id}"),
                    request_id,
                    channel: channel.clone(),
                    account_id: account,
                    sender_id: who,
                    sender_name: name,
                    code,
                    create_time: Some(ms_ts(now)),
                    expire_time: Some(ms_ts(now + PAIRING_TTL_MS)),
                    reply_to,
                };
                tx.put(&Pending(p.clone()))?;
                tx.append_event(change_event("requested", p.clone()))?;
                Ok(Ok(p))
            })
            .await?;
        let p = match made {
            Ok(p) => p,
            Err(why) => return Ok(why),
        };
        tracing::info!(channel = %p.channel, sender = %p.sender_id, request = %p.request_id, "pairing requested");
        let why = format!(
            "sender {sender} is not approved: pairing request {} made and its code sent",
            p.request_id
        );
        // The code goes out after the request is durable; the webhook is not held on the
        // provider's send (its outcome is logged).
        let runs = self.runs.clone();
        tokio::spawn(async move {
            let d = notify(&runs, &p, pairing_text(&p), "code").await;
            if d.status != DeliveryStatus::Delivered as i32 {
                tracing::warn!(channel = %p.channel, sender = %p.sender_id, "the pairing code could not be sent: {}", d.detail);
            }
        });
        Ok(why)
    }

    /// Pending (not expired) requests, oldest first, and approvals; of one channel or all.
    pub fn list(&self, channel: &str) -> Result<ListSenderPairingsResponse> {
        let channel = channel.trim().to_ascii_lowercase();
        if !channel.is_empty() {
            self.policy(&channel)?;
        }
        let now = now_ms();
        let (mut requests, mut approved) = (Vec::new(), Vec::new());
        self.store.read(|r| {
            r.each::<Pending>(|p| {
                if (channel.is_empty() || p.0.channel == channel) && !expired(&p.0, now) {
                    requests.push(p.0);
                }
            })?;
            r.each::<Approved>(|a| {
                if channel.is_empty() || a.0.channel == channel {
                    approved.push(a.0);
                }
            })
        })?;
        requests.sort_by_key(|p| ts_ms(p.create_time.as_ref()));
        Ok(ListSenderPairingsResponse {
            requests,
            approved,
            pending_per_channel: PENDING_PER_CHANNEL as u32,
            ttl_seconds: (PAIRING_TTL_MS / 1000) as u32,
        })
    }

    /// Takes the pending request named by code or id out of the store (for approve and
    /// reject), with `then` writing what the decision adds.
    async fn decide<F>(
        &self,
        channel: &str,
        code: &str,
        request_id: &str,
        kind: &'static str,
        then: F,
    ) -> Result<SenderPairing>
    where
        F: FnOnce(&mut dyn Txn, &SenderPairing) -> Result<()> + Send + 'static,
    {
        let channel = channel.trim().to_ascii_lowercase();
        self.policy(&channel)?;
        let code = code.trim().to_ascii_uppercase();
        let request_id = request_id.trim().to_string();
        if code.is_empty() && request_id.is_empty() {
            return Err(Error::field(
                "code",
                "required: the pairing code the sender was given (or requestId)",
            ));
        }
        self.store
            .write(move |tx: &mut dyn Txn| {
                let now = now_ms();
                let found = channel_pending(tx, &channel)?.into_iter().find(|p| {
                    !expired(p, now)
                        && ((!code.is_empty() && p.code == code)
                            || (!request_id.is_empty() && p.request_id == request_id))
                });
                let Some(p) = found else {
                    return Err(Error::PairingCodeNotFound {
                        channel,
                        code: if code.is_empty() { request_id } else { code },
                    });
                };
                tx.delete::<Pending>(&pending_key(&channel, &p.code))?;
                then(tx, &p)?;
                tx.append_event(change_event(kind, p.clone()))?;
                Ok(p)
            })
            .await
    }

    /// Approves a pending request; with `notify` the sender is told on the channel.
    pub async fn approve(
        &self,
        channel: &str,
        code: &str,
        request_id: &str,
        notify_sender: bool,
    ) -> Result<(SenderPairing, ApprovedSender, Option<Delivery>)> {
        let p = self
            .decide(channel, code, request_id, "approved", |tx, p| {
                tx.put(&Approved(approval_of(p)))
            })
            .await?;
        tracing::info!(channel = %p.channel, sender = %p.sender_id, "pairing approved");
        let notification = if notify_sender {
            Some(notify(&self.runs, &p, APPROVED_TEXT.into(), "approved").await)
        } else {
            None
        };
        let a = approval_of(&p);
        Ok((p, a, notification))
    }

    pub async fn reject(
        &self,
        channel: &str,
        code: &str,
        request_id: &str,
    ) -> Result<SenderPairing> {
        self.decide(channel, code, request_id, "rejected", |_, _| Ok(()))
            .await
    }

    /// Withdraws an approval.
    pub async fn revoke(&self, channel: &str, sender: &str) -> Result<ApprovedSender> {
        let channel = channel.trim().to_ascii_lowercase();
        self.policy(&channel)?;
        let sender = normalize_sender(&channel, sender);
        if sender.is_empty() {
            return Err(Error::field(
                "senderId",
                "required: the approved sender's id",
            ));
        }
        self.store
            .write(move |tx: &mut dyn Txn| {
                let key = approved_key(&channel, &sender);
                let Some(Approved(a)) = tx.get::<Approved>(&key)? else {
                    return Err(Error::ApprovedSenderNotFound { channel, sender });
                };
                tx.delete::<Approved>(&key)?;
                tx.append_event(change_event(
                    "revoked",
                    SenderPairing {
                        channel: a.channel.clone(),
                        account_id: a.account_id.clone(),
                        sender_id: a.sender_id.clone(),
                        sender_name: a.sender_name.clone(),
                        code: a.code.clone(),
                        ..Default::default()
                    },
                ))?;
                Ok(a)
            })
            .await
    }
}

fn approval_of(p: &SenderPairing) -> ApprovedSender {
    ApprovedSender {
        channel: p.channel.clone(),
        account_id: p.account_id.clone(),
        sender_id: p.sender_id.clone(),
        sender_name: p.sender_name.clone(),
        approve_time: Some(clawplane_proto::now_ts()),
        code: p.code.clone(),
    }
}

/// Sends `text` to the requester through the one send path (limits, retries), once per
/// request and purpose (the idempotency key), and answers the delivery either way.
async fn notify(runs: &Runs, p: &SenderPairing, text: String, purpose: &str) -> Delivery {
    let req = SendMessageRequest {
        channel: p.channel.clone(),
        to: p.reply_to.clone(),
        message: text,
        account_id: p.account_id.clone(),
        idempotency_key: format!("pairing-{purpose}-{}", p.request_id),
        ..Default::default()
    };
    match runs
        .send_message(req, &format!("channel:{}", p.channel))
        .await
    {
        Ok(r) => r.delivery.unwrap_or_default(),
        Err(e) => Delivery {
            status: DeliveryStatus::Failed as i32,
            channel: p.channel.clone(),
            to: p.reply_to.clone(),
            reason: e.reason().into(),
            detail: e.to_string(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_unambiguous_uppercase_characters() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), 8);
            assert!(
                c.chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()),
                "{c}"
            );
            assert!(!c.contains(['0', 'O', '1', 'I']), "{c}");
        }
    }

    #[test]
    fn sender_ids_are_compared_as_the_channel_spells_them() {
        assert_eq!(
            normalize_sender("whatsapp", "+1 (555) 010-2030"),
            "15550102030"
        );
        assert_eq!(
            normalize_sender("whatsapp", "whatsapp:+15550102030"),
            "15550102030"
        );
        assert_eq!(normalize_sender("telegram", "tg:42"), "42");
        assert_eq!(normalize_sender("telegram", "telegram:42"), "42");
        assert_eq!(normalize_sender("discord", "user:123"), "123");
        assert_eq!(normalize_sender("discord", "<@!123>"), "123");
        assert_eq!(normalize_sender("whatsapp", "*"), "*");
    }
}
