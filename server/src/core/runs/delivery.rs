//! Where a run's reply goes: routing a request to a session key (dmScope, identity links),
//! resolving its delivery route at acceptance, and sending the reply when the run ends.

use super::{NewRun, Runs};
use crate::channels::Outbound;
use clawplane_proto::keys;
use clawplane_proto::v1::{Delivery, DeliveryStatus, Run, Session};

/// A sent channel message and the run whose reply it carried, so receipts (WhatsApp
/// `statuses`) find their run.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SentMessage {
    pub channel: String,
    pub message_id: String,
    pub run_id: String,
}

impl SentMessage {
    /// The key of a sent message: `<channel>:<message id>`.
    pub fn key_of(channel: &str, message_id: &str) -> String {
        format!("{channel}:{message_id}")
    }
}

impl crate::store::Record for SentMessage {
    const KIND: &'static str = "channel.sent";
    const TIMED: bool = true; // pruned by `retention.sentMessages`
    fn key(&self) -> String {
        Self::key_of(&self.channel, &self.message_id)
    }
}

/// A delivery that cannot happen, with why.
fn no_route(mut d: Delivery, reason: &str, detail: String) -> Delivery {
    d.status = DeliveryStatus::NoRoute as i32;
    d.reason = reason.into();
    d.detail = detail;
    d
}

/// The static cause of a NO_ROUTE delivery reason (error metadata).
pub(crate) fn no_route_cause(reason: &str) -> &'static str {
    match reason {
        "CHANNEL_NOT_CONFIGURED" => "CHANNEL_NOT_CONFIGURED",
        "INVALID_TARGET" => "INVALID_TARGET",
        "CHANNEL_DISABLED" => "CHANNEL_DISABLED",
        _ => "NO_DELIVERY_ROUTE",
    }
}

/// Replies that are deliberately not sent.
pub(super) fn silent_reply(text: &str) -> bool {
    let t = text.trim();
    t.is_empty() || t == "HEARTBEAT_OK" || t == "NO_REPLY"
}

impl Runs {
    /// The session key of a conversation on `channel` with `to`, applying
    /// `session.identityLinks` (several identities, one peer) and `session.dmScope`.
    /// Returns the key and how it was derived.
    pub fn route_key(
        &self,
        agent: &str,
        channel: &str,
        to: &str,
        account_id: &str,
    ) -> Option<(String, String)> {
        let s = &self.session;
        let channel = channel.trim().to_ascii_lowercase();
        if let Some(keys::Peer::Direct(id)) = keys::parse_peer(&channel, to)
            && let Some(peer) = self.linked_peer(&channel, &id)
        {
            let (key, why) = keys::from_route(
                agent,
                &s.main_key,
                &s.dm_scope,
                &channel,
                &format!("user:{peer}"),
                account_id,
            )?;
            return Some((
                key,
                format!("{why}; linked to {peer:?} by session.identityLinks"),
            ));
        }
        keys::from_route(agent, &s.main_key, &s.dm_scope, &channel, to, account_id)
    }

    /// The canonical peer `session.identityLinks` maps `<channel>:<id>` to.
    fn linked_peer(&self, channel: &str, id: &str) -> Option<String> {
        let norm = |v: &str| v.trim().trim_start_matches('+').to_ascii_lowercase();
        let id = norm(id);
        self.session
            .identity_links
            .iter()
            .find(|(_, ids)| {
                ids.iter().any(|link| {
                    link.split_once(':')
                        .is_some_and(|(c, v)| c.eq_ignore_ascii_case(channel) && norm(v) == id)
                })
            })
            .map(|(peer, _)| peer.trim().to_ascii_lowercase())
    }

    /// Resolves the route a request's reply would take: an explicit channel + recipient,
    /// `last` (or no channel) from the session's last route, or the same channel as the
    /// last route without a recipient. Returns PENDING with the route, or NO_ROUTE with the
    /// reason (never touches the network).
    pub(crate) fn resolve_delivery(&self, req: &NewRun, session: Option<&Session>) -> Delivery {
        let mut d = Delivery {
            status: DeliveryStatus::Pending as i32,
            channel: req.channel.trim().to_ascii_lowercase(),
            to: req.to.trim().to_string(),
            account_id: req.account_id.trim().to_string(),
            thread_id: req.thread_id.trim().to_string(),
            ..Default::default()
        };
        let last = session.filter(|s| !s.last_channel.is_empty());
        if d.channel.is_empty() || d.channel == "last" {
            let Some(s) = last else {
                let which = session.map_or("this new session".to_string(), |s| {
                    format!("session {}", s.session_key)
                });
                return no_route(
                    d,
                    "NO_DELIVERY_ROUTE",
                    format!(
                        "no channel was given and {which} has no last route (it has not received a channel message)"
                    ),
                );
            };
            d.channel = s.last_channel.clone();
            if d.to.is_empty() {
                d.to = s.last_to.clone();
                d.account_id = s.last_account_id.clone();
                d.thread_id = s.last_thread_id.clone();
            }
        } else if d.to.is_empty() {
            // A job that names a channel other than the last one gets no recipient from it.
            match last.filter(|s| s.last_channel == d.channel) {
                Some(s) => {
                    d.to = s.last_to.clone();
                    if d.account_id.is_empty() {
                        d.account_id = s.last_account_id.clone();
                    }
                    if d.thread_id.is_empty() {
                        d.thread_id = s.last_thread_id.clone();
                    }
                }
                None => {
                    let detail = format!(
                        "channel {:?} needs a recipient: pass to (e.g. user:<id>, channel:<id>, +15551234567)",
                        d.channel
                    );
                    return no_route(d, "NO_DELIVERY_ROUTE", detail);
                }
            }
        }
        match self.channels.check(&d.channel, &d.to) {
            Some(e) => no_route(d, e.reason, e.detail),
            None => d,
        }
    }

    /// Where the reply of a just-accepted run would be delivered, as recorded at acceptance.
    pub fn planned_delivery(&self, run: &Run) -> Delivery {
        run.delivery.clone().unwrap_or_default()
    }

    /// Sends a finished run's reply along its resolved route and returns the outcome.
    pub(crate) async fn deliver(&self, run: &Run, reply: &str) -> Delivery {
        let mut d = run.delivery.clone().unwrap_or_default();
        if d.status != DeliveryStatus::Pending as i32 {
            return d;
        }
        if silent_reply(reply) {
            d.status = DeliveryStatus::Skipped as i32;
            d.reason = "EMPTY_REPLY".into();
            d.detail =
                "the reply was empty (or HEARTBEAT_OK / NO_REPLY), so nothing was sent".into();
            return d;
        }
        let sent = self
            .channels
            .send(Outbound {
                channel: d.channel.clone(),
                to: d.to.clone(),
                text: reply.to_string(),
                account_id: d.account_id.clone(),
                thread_id: d.thread_id.clone(),
                ..Default::default()
            })
            .await;
        match sent {
            Ok(sent) => {
                d.status = DeliveryStatus::Delivered as i32;
                d.message_id = sent.message_ids.first().cloned().unwrap_or_default();
                d.message_ids = sent.message_ids;
                d.attempts = sent.attempts;
                d.reason.clear();
                d.detail.clear();
            }
            Err(e) => {
                tracing::warn!(run_id = %run.run_id, channel = %d.channel, reason = e.reason, "delivery failed");
                d.status = DeliveryStatus::Failed as i32;
                d.reason = e.reason.into();
                d.detail = e.detail;
                d.attempts = e.attempts;
            }
        }
        d
    }
}

/// Records the delivery outcome of a run that ends without a reply to send.
pub(crate) fn settle_unsent(run: &mut Run) {
    let Some(d) = run.delivery.as_mut() else {
        return;
    };
    if d.status == DeliveryStatus::Pending as i32 {
        d.status = DeliveryStatus::Skipped as i32;
        d.reason = "RUN_NOT_SUCCEEDED".into();
        d.detail = "the run did not succeed, so there was nothing to deliver".into();
    }
}
