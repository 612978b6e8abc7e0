//! `device.pair.*` and `device.token.*`: DeviceService pairing and token RPCs, with the
//! device and pending-request views the feed's `device.pair.*` events share.

use super::{Answer, Ctx, Params, err};
use crate::ws::frames::{ErrorShape, now_ms, ts_ms};
use clawplane_proto::v1::{
    ApprovePairingRequest, ListDevicesRequest, RejectPairingRequest, RemoveDeviceRequest,
    RevokeTokenRequest, RotateTokenRequest,
};
use serde_json::{Value as Json, json};
use tonic::Status;

/// A pending request as OpenClaw shows it (`device.pair.requested`, `device.pair.list`).
pub(crate) fn pending_json(r: &clawplane_proto::v1::PairingRequest) -> Json {
    json!({
        "requestId": r.request_id,
        "deviceId": r.device_id,
        "publicKey": r.public_key,
        "displayName": r.display_name,
        "platform": r.platform,
        "deviceFamily": r.device_family,
        "clientId": r.client_id,
        "clientMode": r.client_mode,
        "role": r.role,
        "roles": [r.role],
        "scopes": r.scopes,
        "remoteIp": r.remote_ip,
        "reason": r.reason,
        "isRepair": r.reason != "not-paired",
        "ts": ts_ms(&r.create_time),
        "expiresAtMs": ts_ms(&r.expire_time),
    })
}

fn device_json(d: &clawplane_proto::v1::Device) -> Json {
    json!({
        "deviceId": d.device_id,
        "publicKey": d.public_key,
        "displayName": d.display_name,
        "platform": d.platform,
        "deviceFamily": d.device_family,
        "clientId": d.client_id,
        "clientMode": d.client_mode,
        "roles": d.roles.iter().map(|r| r.role.clone()).collect::<Vec<_>>(),
        "scopes": d.roles.iter().flat_map(|r| r.scopes.clone()).collect::<Vec<_>>(),
        "tokens": d.roles.iter().map(|r| json!({"role": r.role, "scopes": r.scopes, "activeTokens": r.active_tokens})).collect::<Vec<_>>(),
        "createdAtMs": ts_ms(&d.create_time),
        "approvedAtMs": ts_ms(&d.create_time),
        "updatedAtMs": ts_ms(&d.update_time),
        "connected": d.connected,
    })
}

/// `device.pair.list` answers everything (as upstream), so it reads every page.
pub(super) async fn pair_list(ctx: &Ctx) -> Answer {
    let (mut pending, mut paired) = (Vec::new(), Vec::new());
    let mut page_token = String::new();
    loop {
        let r = ctx
            .s
            .devices
            .list_devices(ctx.caller.request(ListDevicesRequest {
                page_size: 1000,
                page_token,
            }))
            .await
            .map_err(err)?
            .into_inner();
        pending.extend(r.pending.iter().map(pending_json));
        paired.extend(r.paired.iter().map(device_json));
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    Ok(json!({"pending": pending, "paired": paired}))
}

/// Unknown request ids read as upstream's `unknown requestId`.
fn unknown_request(s: Status) -> ErrorShape {
    let mut e = err(s);
    if e.details
        .as_ref()
        .and_then(|d| d.get("code"))
        .and_then(Json::as_str)
        == Some("PAIRING_REQUEST_NOT_FOUND")
    {
        e.message = format!("unknown requestId ({})", e.message);
    }
    e
}

pub(super) async fn pair_approve(ctx: &Ctx, p: Params<'_>) -> Answer {
    let request_id = p.req_str("requestId")?;
    let r = ctx
        .s
        .devices
        .approve_pairing(ctx.caller.request(ApprovePairingRequest {
            request_id: request_id.clone(),
        }))
        .await
        .map_err(unknown_request)?
        .into_inner();
    Ok(json!({"requestId": r.request_id, "device": r.device.as_ref().map(device_json)}))
}

pub(super) async fn pair_reject(ctx: &Ctx, p: Params<'_>) -> Answer {
    let request_id = p.req_str("requestId")?;
    let r = ctx
        .s
        .devices
        .reject_pairing(ctx.caller.request(RejectPairingRequest {
            request_id: request_id.clone(),
        }))
        .await
        .map_err(unknown_request)?
        .into_inner();
    let device_id = r.request.map(|q| q.device_id).unwrap_or_default();
    Ok(json!({"requestId": request_id, "deviceId": device_id, "decision": "rejected"}))
}

pub(super) async fn pair_remove(ctx: &Ctx, p: Params<'_>) -> Answer {
    let r = ctx
        .s
        .devices
        .remove_device(ctx.caller.request(RemoveDeviceRequest {
            device_id: p.req_str("deviceId")?,
        }))
        .await
        .map_err(err)?
        .into_inner();
    Ok(json!({"ok": true, "deviceId": r.device_id}))
}

pub(super) async fn token_rotate(ctx: &Ctx, p: Params<'_>) -> Answer {
    let r = ctx
        .s
        .devices
        .rotate_token(ctx.caller.request(RotateTokenRequest {
            device_id: p.req_str("deviceId")?,
            role: p.req_str("role")?,
            scopes: p.opt_strs("scopes")?,
        }))
        .await
        .map_err(err)?
        .into_inner();
    Ok(json!({
        "deviceId": r.device_id,
        "role": r.role,
        "scopes": r.scopes,
        "rotatedAtMs": now_ms(),
        "token": (!r.token.is_empty()).then_some(r.token),
        "tokenDelivery": r.token_delivery,
    }))
}

pub(super) async fn token_revoke(ctx: &Ctx, p: Params<'_>) -> Answer {
    let device_id = p.req_str("deviceId")?;
    let role = p.req_str("role")?;
    ctx.s
        .devices
        .revoke_token(ctx.caller.request(RevokeTokenRequest {
            device_id: device_id.clone(),
            role: role.clone(),
        }))
        .await
        .map_err(err)?;
    Ok(json!({"ok": true, "deviceId": device_id, "role": role, "revokedAtMs": now_ms()}))
}
