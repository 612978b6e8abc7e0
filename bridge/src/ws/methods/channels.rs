//! `channels.status` and `send`: ChannelService/ListChannels, GetChannel and SendMessage as
//! OpenClaw's channel snapshot and outbound-send answer.

use super::{Answer, Ctx, Params, agent::delivery_json, err};
use crate::ws::frames::now_ms;
use clawplane_proto::v1::{Channel, GetChannelRequest, ListChannelsRequest, SendMessageRequest};
use serde_json::{Map, Value as Json, json};

/// `channels.status {probe?}`: ChannelService/ListChannels (GetChannel with probe per channel),
/// as OpenClaw's snapshot `{ts, channelOrder, channels{id: …}, channelAccounts{id: [account]}}`.
pub(super) async fn channels_status(ctx: &Ctx, p: Params<'_>) -> Answer {
    let probe = p.opt_bool("probe")?;
    let mut list = ctx
        .s
        .channels
        .list_channels(ctx.caller.request(ListChannelsRequest {}))
        .await
        .map_err(err)?
        .into_inner()
        .channels;
    if probe {
        for c in list.iter_mut() {
            let r = ctx
                .s
                .channels
                .get_channel(ctx.caller.request(GetChannelRequest {
                    channel_id: c.channel_id.clone(),
                    probe: true,
                }))
                .await
                .map_err(err)?
                .into_inner();
            if let Some(fresh) = r.channel {
                *c = fresh;
            }
        }
    }
    let snapshot = |c: &Channel| {
        json!({
            "accountId": "default",
            "enabled": c.enabled,
            "configured": true,
            "running": c.enabled,
            "connected": c.healthy,
            "lastError": if c.last_error.is_empty() { Json::Null } else { c.last_error.clone().into() },
            "probe": if probe { json!({"ok": c.healthy, "error": if c.healthy { Json::Null } else { c.last_error.clone().into() }}) } else { Json::Null },
        })
    };
    let mut channels = Map::new();
    let mut accounts = Map::new();
    for c in &list {
        channels.insert(c.channel_id.clone(), snapshot(c));
        accounts.insert(c.channel_id.clone(), json!([snapshot(c)]));
    }
    Ok(json!({
        "ts": now_ms(),
        "channelOrder": list.iter().map(|c| c.channel_id.clone()).collect::<Vec<_>>(),
        "channels": channels,
        "channelAccounts": accounts,
    }))
}

pub(super) async fn send(ctx: &Ctx, p: Params<'_>) -> Answer {
    let message = p.opt_str("message")?;
    let media = p.opt_str("mediaUrl")?;
    let media = if media.is_empty() {
        p.opt_strs("mediaUrls")?
            .into_iter()
            .next()
            .unwrap_or_default()
    } else {
        media
    };
    if message.is_empty() && media.is_empty() {
        return Err(p.bad("text or media is required"));
    }
    let channel = p.opt_str("channel")?;
    if channel == "webchat" {
        return Err(p.bad("channel \"webchat\" is internal-only"));
    }
    let idem = p.req_str("idempotencyKey")?;
    let r = ctx
        .s
        .channels
        .send_message(ctx.caller.request(SendMessageRequest {
            channel: channel.clone(),
            to: p.req_str("to")?,
            message,
            media_url: media,
            account_id: p.opt_str("accountId")?,
            thread_id: p.opt_str("threadId")?,
            session_key: p.opt_str("sessionKey")?,
            idempotency_key: idem.clone(),
            reply_to: p.opt_str("replyTo")?,
        }))
        .await
        .map_err(err)?
        .into_inner();
    let d = r.delivery.unwrap_or_default();
    Ok(json!({
        "runId": idem,
        "messageId": d.message_id,
        "channel": if d.channel.is_empty() { channel } else { d.channel.clone() },
        "delivery": delivery_json(&Some(d)),
    }))
}
