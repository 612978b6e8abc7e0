//! Direct sends (`ChannelService/SendMessage`): validation, `channel: "last"` through the
//! session, idempotency records, and the transcript mirror of what was sent.

use super::{MAX_MESSAGE_BYTES, Runs, check_idempotency_key, new_session, session_event};
use crate::channels::Outbound;
use crate::error::{Error, FieldViolation, Result};
use crate::store::{Record, Records, RecordsMut, Txn};
use clawplane_proto::v1::{
    Delivery, DeliveryStatus, Message, MessageRole, SendMessageRequest, SendMessageResponse,
    SessionChangeType,
};
use clawplane_proto::{keys, now_ts};
use sha2::{Digest, Sha256};

/// A SendMessage answer kept under its idempotency key: a retry gets it back, and the
/// fingerprint tells a retry from a different request under the same key.
#[derive(serde::Serialize, serde::Deserialize)]
struct SendRecord {
    idempotency_key: String,
    fingerprint: [u8; 32],
    response: SendMessageResponse,
}

/// Retention prunes SendMessage answers by `retention.idempotency`.
pub(crate) const SEND_RECORD_KIND: &str = SendRecord::KIND;

impl Record for SendRecord {
    const KIND: &'static str = "channel.send";
    const TIMED: bool = true;
    fn key(&self) -> String {
        self.idempotency_key.clone()
    }
}

/// Digest of what a SendMessage asks for, to tell a retry from a different request.
fn fingerprint(r: &SendMessageRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        &r.channel,
        &r.to,
        &r.message,
        &r.media_url,
        &r.account_id,
        &r.thread_id,
        &r.session_key,
        &r.reply_to,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

impl Runs {
    /// Validates a SendMessage, resolving `channel: "last"` through the session.
    fn resolve_send(&self, req: &SendMessageRequest) -> Result<(Outbound, String)> {
        let mut bad = Vec::new();
        let channel = req.channel.trim().to_ascii_lowercase();
        if channel.is_empty() {
            bad.push(FieldViolation {
                field: "channel",
                description: "required: a channel id (discord, telegram, whatsapp, slack, webhook), or `last` with sessionKey".into(),
            });
        }
        if req.message.trim().is_empty() && req.media_url.trim().is_empty() {
            bad.push(FieldViolation {
                field: "message",
                description: "required: the text to send (or set mediaUrl)".into(),
            });
        }
        if req.message.len() > MAX_MESSAGE_BYTES {
            bad.push(FieldViolation {
                field: "message",
                description: format!("at most {MAX_MESSAGE_BYTES} bytes"),
            });
        }
        if channel == "last" && req.session_key.trim().is_empty() {
            bad.push(FieldViolation {
                field: "sessionKey",
                description: "required with channel `last`: the session whose last route to use"
                    .into(),
            });
        }
        bad.extend(check_idempotency_key(&req.idempotency_key));
        if !bad.is_empty() {
            return Err(Error::InvalidFields(bad));
        }
        let session_key = if req.session_key.trim().is_empty() {
            String::new()
        } else {
            self.session_key(req.session_key.trim(), "")
        };
        let mut out = Outbound {
            channel,
            to: req.to.trim().to_string(),
            text: req.message.clone(),
            account_id: req.account_id.clone(),
            thread_id: req.thread_id.clone(),
            reply_to: req.reply_to.clone(),
            media_url: req.media_url.clone(),
        };
        if out.channel == "last" {
            let session = self
                .store
                .read(|r| r.session(&session_key))?
                .ok_or_else(|| Error::SessionNotFound(session_key.clone()))?;
            if session.last_channel.is_empty() || session.last_channel == "last" {
                return Err(Error::field(
                    "channel",
                    format!(
                        "session {session_key} has no last route yet; pass an explicit channel and to"
                    ),
                ));
            }
            out.channel = session.last_channel;
            if out.to.is_empty() {
                out.to = session.last_to;
                if out.account_id.is_empty() {
                    out.account_id = session.last_account_id;
                }
                if out.thread_id.is_empty() {
                    out.thread_id = session.last_thread_id;
                }
            }
        }
        Ok((out, session_key))
    }

    /// Sends (or replays) one `ChannelService/SendMessage`: validates it, resolves
    /// `channel: "last"`, answers a retry under the same idempotency key from its record,
    /// and mirrors the sent text into the session's transcript.
    /// `key_scope` is the caller's ([`crate::auth::Principal::key_scope`]): its keys
    /// answer only its own retries.
    pub async fn send_message(
        &self,
        req: SendMessageRequest,
        key_scope: &str,
    ) -> Result<SendMessageResponse> {
        let (out, session_key) = self.resolve_send(&req)?;
        // Config and grammar problems answer before the idempotency record is consulted:
        // they depend on this gateway's config, not on the earlier send.
        if let Some(e) = self.channels.check(&out.channel, &out.to) {
            return Err(Error::Channel(e));
        }
        let key = req.idempotency_key.clone();
        let record_key = format!("{key_scope}\u{1f}{key}");
        let fp = fingerprint(&req);
        let _guard = if key.is_empty() {
            None
        } else {
            let lock = self.channels.idempotency_lock(&record_key);
            let guard = lock.lock_owned().await;
            if let Some(stored) = self.store.read(|r| r.get::<SendRecord>(&record_key))? {
                let mut resp = stored.response;
                if stored.fingerprint != fp {
                    let id = resp
                        .delivery
                        .as_ref()
                        .map(|d| d.message_id.clone())
                        .unwrap_or_default();
                    return Err(Error::IdempotencyConflict { key, run_id: id });
                }
                resp.duplicate = true;
                return Ok(resp);
            }
            Some(guard)
        };
        let sent = self
            .channels
            .send(out.clone())
            .await
            .map_err(Error::Channel)?;
        let delivery = Delivery {
            status: DeliveryStatus::Delivered as i32,
            channel: out.channel.clone(),
            to: out.to.clone(),
            message_id: sent.message_ids.first().cloned().unwrap_or_default(),
            detail: match sent.message_ids.len() {
                1 => format!("delivered to {} {}", out.channel, out.to),
                n => format!("delivered to {} {} as {n} messages", out.channel, out.to),
            },
            account_id: out.account_id.clone(),
            thread_id: out.thread_id.clone(),
            message_ids: sent.message_ids,
            attempts: sent.attempts,
            ..Default::default()
        };
        let resp = SendMessageResponse {
            delivery: Some(delivery),
            duplicate: false,
        };
        let record = (!key.is_empty()).then(|| SendRecord {
            idempotency_key: record_key,
            fingerprint: fp,
            response: resp.clone(),
        });
        if record.is_none() && session_key.is_empty() {
            return Ok(resp);
        }
        let text = if out.media_url.trim().is_empty() {
            out.text.clone()
        } else if out.text.trim().is_empty() {
            out.media_url.trim().to_string()
        } else {
            format!("{}\n{}", out.text, out.media_url.trim())
        };
        let agent = keys::agent_of(&session_key)
            .map(str::to_string)
            .unwrap_or_else(|| self.agent(""));
        // The message is already out: the record and the transcript mirror commit together.
        let written = self
            .store
            .write(move |tx: &mut dyn Txn| {
                if let Some(record) = &record {
                    tx.put(record)?;
                }
                if session_key.is_empty() {
                    return Ok(());
                }
                let now = now_ts();
                let (mut s, created) = match tx.session(&session_key)? {
                    Some(s) => (s, false),
                    None => (new_session(&session_key, &agent), true),
                };
                let index = u64::from(s.message_count) + 1;
                tx.put_message(
                    &s.session_id,
                    &Message {
                        index,
                        role: MessageRole::Assistant as i32,
                        text,
                        create_time: Some(now),
                        ..Default::default()
                    },
                )?;
                s.message_count += 1;
                s.last_channel = out.channel;
                s.last_to = out.to;
                s.last_account_id = out.account_id;
                s.last_thread_id = out.thread_id;
                s.update_time = Some(now);
                tx.put_session(&s)?;
                if created {
                    tx.append_event(session_event(&s, SessionChangeType::Created))?;
                }
                tx.append_event(session_event(&s, SessionChangeType::Updated))?;
                Ok(())
            })
            .await;
        if let Err(e) = written {
            // The channel accepted the message; say so rather than inviting a resend.
            tracing::error!(error = %e, "message sent but its record could not be stored");
        }
        Ok(resp)
    }
}
