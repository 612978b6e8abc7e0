//! `channels.pairing.*`: the DM access requests of unknown senders (`dmPolicy: pairing`),
//! ChannelService/ListSenderPairings, ApproveSenderPairing and RejectSenderPairing in the
//! shapes OpenClaw's `openclaw pairing` commands read.

use super::{Answer, Ctx, Params, err};
use crate::hooks::reply::time;
use crate::ws::frames::ErrorShape;
use clawplane_proto::v1::{
    ApproveSenderPairingRequest, DeliveryStatus, ListSenderPairingsRequest,
    RejectSenderPairingRequest, SenderPairing,
};
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use tonic::Status;

/// Every inbound channel can send its approval notice.
const NOTIFY_SUPPORTED: bool = true;

fn label(channel: &str) -> String {
    match channel {
        "whatsapp" => "WhatsApp".into(),
        "telegram" => "Telegram".into(),
        "discord" => "Discord".into(),
        other => other.into(),
    }
}

fn account(p: &SenderPairing) -> &str {
    if p.account_id.is_empty() {
        "default"
    } else {
        &p.account_id
    }
}

fn request_json(p: &SenderPairing) -> Json {
    let created = time(p.create_time.as_ref());
    json!({
        "requestId": p.request_id,
        "channel": p.channel,
        "channelLabel": label(&p.channel),
        "accountId": account(p),
        "senderId": p.sender_id,
        "senderLabel": if p.sender_name.is_empty() { p.sender_id.clone() } else { p.sender_name.clone() },
        "code": p.code,
        "createdAt": created,
        "lastSeenAt": created,
        "expiresAt": time(p.expire_time.as_ref()),
        "notifySupported": NOTIFY_SUPPORTED,
    })
}

/// `channels.pairing.list {channel?, accountId?}`.
pub(super) async fn list(ctx: &Ctx, p: Params<'_>) -> Answer {
    let channel = p.opt_str("channel")?;
    let account_id = p.opt_str("accountId")?;
    let r = ctx
        .s
        .channels
        .list_sender_pairings(ctx.caller.request(ListSenderPairingsRequest {
            channel: channel.clone(),
        }))
        .await
        .map_err(err)?
        .into_inner();
    let requests: Vec<&SenderPairing> = r
        .requests
        .iter()
        .filter(|q| account_id.is_empty() || account(q) == account_id)
        .collect();
    let mut accounts: BTreeSet<(String, String)> = requests
        .iter()
        .map(|q| (q.channel.clone(), account(q).to_string()))
        .collect();
    if !channel.is_empty() {
        let a = if account_id.is_empty() {
            "default".to_string()
        } else {
            account_id
        };
        accounts.insert((channel.to_ascii_lowercase(), a));
    }
    Ok(json!({
        "accounts": accounts.iter().map(|(c, a)| json!({
            "channel": c,
            "channelLabel": label(c),
            "accountId": a,
            "notifySupported": NOTIFY_SUPPORTED,
        })).collect::<Vec<_>>(),
        "requests": requests.into_iter().map(request_json).collect::<Vec<_>>(),
        "commandOwnerConfigured": false,
        "limits": {
            "pendingPerAccount": r.pending_per_channel,
            "ttlMs": u64::from(r.ttl_seconds) * 1000,
        },
    }))
}

/// An unknown request reads as upstream's "no longer exists".
fn gone(s: Status) -> ErrorShape {
    let mut e = err(s);
    if e.details
        .as_ref()
        .and_then(|d| d.get("code"))
        .and_then(Json::as_str)
        == Some("PAIRING_CODE_NOT_FOUND")
    {
        e.message = format!("pending DM access request no longer exists ({})", e.message);
    }
    e
}

/// `channels.pairing.approve {channel, accountId?, requestId | code, notify?}`.
pub(super) async fn approve(ctx: &Ctx, p: Params<'_>) -> Answer {
    let notify = p.opt_bool("notify")?;
    let r = ctx
        .s
        .channels
        .approve_sender_pairing(ctx.caller.request(ApproveSenderPairingRequest {
            channel: p.req_str("channel")?,
            code: p.opt_str("code")?,
            request_id: p.opt_str("requestId")?,
            notify,
        }))
        .await
        .map_err(gone)?
        .into_inner();
    let q = r.request.unwrap_or_default();
    let notification = match &r.notification {
        None => "not-requested",
        Some(d) if d.status == DeliveryStatus::Delivered as i32 => "sent",
        Some(_) => "failed",
    };
    Ok(json!({
        "requestId": q.request_id,
        "senderId": q.sender_id,
        "notification": notification,
        "commandOwnerBootstrap": "not-requested",
    }))
}

/// `channels.pairing.dismiss {channel, accountId?, requestId | code}`.
pub(super) async fn dismiss(ctx: &Ctx, p: Params<'_>) -> Answer {
    let r = ctx
        .s
        .channels
        .reject_sender_pairing(ctx.caller.request(RejectSenderPairingRequest {
            channel: p.req_str("channel")?,
            code: p.opt_str("code")?,
            request_id: p.opt_str("requestId")?,
        }))
        .await
        .map_err(gone)?
        .into_inner();
    let q = r.request.unwrap_or_default();
    Ok(json!({"requestId": q.request_id, "senderId": q.sender_id}))
}
