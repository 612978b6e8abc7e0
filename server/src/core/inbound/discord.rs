//! Discord inbound: the gateway WebSocket's `MESSAGE_CREATE`s — DMs to the bot and guild
//! messages that mention it — become inbound messages on the same path as WhatsApp and
//! Telegram (sender policy, bindings, one run per Discord message id). With replicas one
//! of them holds the connection (the `discord.gateway` duty); when the duty moves, the old
//! holder disconnects and the new one identifies.

use super::{Inbound, InboundChannels};
use crate::channels::discord_gateway::{Dispatched, Listener};
use clawplane_proto::v1::ChannelEvent;
use serde_json::Value as Json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The duty of holding the Discord connection.
const DUTY: &str = "discord.gateway";

/// A `MESSAGE_CREATE` as an inbound message; `None` for what is not for the bot (its own
/// or another bot's messages, guild messages that do not mention it, messages without
/// text).
fn message(d: &Json, bot_user_id: &str) -> Option<Inbound> {
    let author = &d["author"];
    let author_id = author["id"].as_str().unwrap_or_default();
    if author_id.is_empty() || author["bot"] == true || author_id == bot_user_id {
        return None;
    }
    let id = d["id"].as_str().filter(|s| !s.is_empty())?;
    let channel_id = d["channel_id"].as_str().unwrap_or_default();
    let in_guild = d["guild_id"].as_str().is_some_and(|g| !g.is_empty());
    let mut text = d["content"].as_str().unwrap_or_default().to_string();
    if in_guild {
        let mentioned = !bot_user_id.is_empty()
            && (d["mentions"]
                .as_array()
                .is_some_and(|m| m.iter().any(|u| u["id"].as_str() == Some(bot_user_id)))
                || text.contains(&format!("<@{bot_user_id}>"))
                || text.contains(&format!("<@!{bot_user_id}>")));
        if !mentioned {
            return None;
        }
        text = text
            .replace(&format!("<@!{bot_user_id}>"), "")
            .replace(&format!("<@{bot_user_id}>"), "");
    }
    let text = text.trim();
    if text.is_empty() || channel_id.is_empty() {
        return None;
    }
    let name = author["global_name"]
        .as_str()
        .or(author["username"].as_str())
        .unwrap_or_default();
    Some(Inbound {
        dedupe: id.to_string(),
        event: ChannelEvent {
            r#type: "message.received".into(),
            channel: "discord".into(),
            // A DM is answered in the user's DM (the session `…:discord:direct:<user>`, the
            // one `--channel discord --to user:<id>` names); a mention in its channel.
            from: if in_guild {
                format!("channel:{channel_id}")
            } else {
                format!("user:{author_id}")
            },
            sender_id: author_id.to_string(),
            chat_type: if in_guild { "channel" } else { "direct" }.into(),
            sender_name: name.to_string(),
            text: text.to_string(),
            message_id: id.to_string(),
            ..Default::default()
        },
        voice: None,
    })
}

impl InboundChannels {
    /// One `MESSAGE_CREATE` from Discord.
    async fn discord_dispatch(&self, d: Dispatched) {
        let Some(m) = message(&d.message, &d.bot_user_id) else {
            return;
        };
        let id = m.dedupe.clone();
        match self.accept_inbound("discord", m).await {
            Ok(Ok((run, duplicate))) => {
                tracing::debug!(message = %id, run = %run, duplicate, "discord message accepted")
            }
            Ok(Err(_refused)) => {} // logged by the sender policy
            Err(crate::error::Error::IdempotencyConflict { .. }) => {}
            Err(e) => tracing::warn!(message = %id, "discord message not accepted: {e}"),
        }
    }
}

/// Keeps the Discord connection while this replica holds the duty, until `shutdown`.
pub(crate) fn spawn(inbound: Arc<InboundChannels>, client: Listener, shutdown: CancellationToken) {
    let store = inbound.store.clone();
    store.want(DUTY);
    tokio::spawn(async move {
        let mut duties = store.duties_changed();
        loop {
            while !store.holds(DUTY) {
                tokio::select! {
                    r = duties.changed() => if r.is_err() { return },
                    () = shutdown.cancelled() => return,
                }
            }
            let stop = shutdown.child_token();
            let lost = {
                let (store, stop, mut duties) = (store.clone(), stop.clone(), duties.clone());
                tokio::spawn(async move {
                    while duties.changed().await.is_ok() {
                        if !store.holds(DUTY) {
                            stop.cancel();
                            return;
                        }
                    }
                })
            };
            let sink = inbound.clone();
            client
                .clone()
                .run(stop.clone(), move |d| {
                    let inbound = sink.clone();
                    async move { inbound.discord_dispatch(d).await }
                })
                .await;
            lost.abort();
            // A fatal close (logged by the client) or shutdown ends it; a lost duty waits
            // to get it back.
            if !stop.is_cancelled() || shutdown.is_cancelled() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dms_and_mentions_are_for_the_bot_and_nothing_else() {
        let dm = json!({"id": "9", "channel_id": "55", "content": "hi", "author": {"id": "7", "username": "ann"}});
        let m = message(&dm, "1000").expect("a DM");
        assert_eq!(m.event.from, "user:7");
        assert_eq!(m.event.chat_type, "direct");
        let mention = json!({"id": "10", "channel_id": "66", "guild_id": "1", "content": "<@1000> help", "mentions": [{"id": "1000"}], "author": {"id": "7", "username": "ann", "global_name": "Ann"}});
        let m = message(&mention, "1000").expect("a mention");
        assert_eq!(
            (m.event.from.as_str(), m.event.text.as_str()),
            ("channel:66", "help")
        );
        assert_eq!(m.event.sender_name, "Ann");
        let chatter = json!({"id": "11", "channel_id": "66", "guild_id": "1", "content": "hello all", "author": {"id": "7"}});
        assert!(message(&chatter, "1000").is_none());
        let own = json!({"id": "12", "channel_id": "55", "content": "reply", "author": {"id": "1000", "bot": true}});
        assert!(message(&own, "1000").is_none());
    }
}
