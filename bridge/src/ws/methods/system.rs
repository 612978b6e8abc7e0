//! `health`, `status`, `agents.list` and `wake`: GatewayService/Status and Wake as OpenClaw's
//! snapshots and answers.

use super::{Answer, Ctx, Params, err};
use crate::ws::frames::{now_ms, ts_ms};
use clawplane_proto::v1::{
    GatewayServiceStatusRequest, GatewayServiceStatusResponse, GatewayServiceWakeRequest, WakeMode,
    WakeOutcome,
};
use serde_json::{Value as Json, json};
use tonic::{Code, Status};

/// A HealthSnapshot built from GatewayService/Status (all fields optional upstream).
pub(crate) fn health_snapshot(s: &GatewayServiceStatusResponse) -> Json {
    json!({
        "ok": true,
        "ts": now_ms(),
        "durationMs": 0,
        "channels": {},
        "channelOrder": [],
        "heartbeatSeconds": s.heartbeat_interval_seconds,
        "defaultAgentId": s.default_agent_id,
        "agents": [{
            "agentId": s.default_agent_id,
            "isDefault": true,
            "heartbeat": {"everySeconds": s.heartbeat_interval_seconds},
            "sessions": {"count": s.session_count, "recent": []},
        }],
        "sessions": {"count": s.session_count},
        "queues": {"queuedRuns": s.queued_runs, "runningRuns": s.running_runs},
        "version": s.version,
        "uptimeMs": s.uptime_ms,
    })
}

pub(super) async fn gateway_status(ctx: &Ctx) -> Result<GatewayServiceStatusResponse, Status> {
    ctx.s
        .gateway
        .status(ctx.caller.request(GatewayServiceStatusRequest {}))
        .await
        .map(|r| r.into_inner())
}

/// `health` needs no scope: a caller without `operator.read` gets the bare snapshot.
pub(super) async fn health(ctx: &Ctx) -> Answer {
    let started = std::time::Instant::now();
    match gateway_status(ctx).await {
        Ok(s) => {
            let mut h = health_snapshot(&s);
            h["durationMs"] = json!(started.elapsed().as_millis() as u64);
            Ok(h)
        }
        Err(s) if s.code() == Code::PermissionDenied => {
            Ok(json!({"ok": true, "ts": now_ms(), "durationMs": 0}))
        }
        Err(s) => Err(err(s)),
    }
}

/// `system-presence`: who is connected, as OpenClaw lists it. The gateway's own entry (this
/// process); clients' presence beacons are not kept.
pub(super) async fn system_presence(ctx: &Ctx) -> Answer {
    let s = gateway_status(ctx).await.map_err(err)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "clawplane".into());
    Ok(json!([{
        "host": host,
        "version": s.version,
        "platform": std::env::consts::OS,
        "mode": "gateway",
        "reason": "self",
        "text": format!("Gateway: {host} · clawplane {}", s.version),
        "ts": now_ms(),
        "instanceId": super::super::handshake::boot_id(),
    }]))
}

pub(super) async fn status(ctx: &Ctx) -> Answer {
    let s = gateway_status(ctx).await.map_err(err)?;
    Ok(json!({
        "ok": true,
        "version": s.version,
        "startedAt": ts_ms(&s.start_time),
        "uptimeMs": s.uptime_ms,
        "defaultAgentId": s.default_agent_id,
        "mainSessionKey": s.main_session_key,
        "defaultModel": s.default_model,
        "sessionCount": s.session_count,
        "queuedRuns": s.queued_runs,
        "runningRuns": s.running_runs,
        "lastEventSeq": s.last_event_seq,
        "oldestEventSeq": s.oldest_event_seq,
        "heartbeatSeconds": s.heartbeat_interval_seconds,
        "dmScope": s.dm_scope,
        "dataDir": s.data_dir,
        "callerScopes": s.caller_scopes,
        "instanceId": s.instance_id,
        "health": health_snapshot(&s),
    }))
}

pub(super) async fn agents_list(ctx: &Ctx) -> Answer {
    let s = gateway_status(ctx).await.map_err(err)?;
    let main_key = s
        .main_session_key
        .rsplit_once(':')
        .map(|(_, k)| k.to_string())
        .unwrap_or_else(|| "main".into());
    Ok(json!({
        "defaultId": s.default_agent_id,
        "mainKey": main_key,
        "scope": "per-sender",
        "ownership": "sole",
        "selectionRequired": false,
        "agents": [{"id": s.default_agent_id, "name": s.default_agent_id, "kind": "agent", "isDefault": true}],
    }))
}

pub(super) async fn wake(ctx: &Ctx, p: Params<'_>) -> Answer {
    let mode = match p.opt_str("mode")?.as_str() {
        "" | "now" => WakeMode::Now,
        "next-heartbeat" => WakeMode::NextHeartbeat,
        other => {
            return Err(p.bad(format!(
                "mode must be \"now\" or \"next-heartbeat\" (got {other:?})"
            )));
        }
    };
    let r = ctx
        .s
        .gateway
        .wake(ctx.caller.request(GatewayServiceWakeRequest {
            text: p.req_str("text")?,
            mode: mode as i32,
            session_key: p.opt_str("sessionKey")?,
            agent_id: p.opt_str("agentId")?,
        }))
        .await
        .map_err(err)?
        .into_inner();
    let outcome = match WakeOutcome::try_from(r.outcome).unwrap_or(WakeOutcome::Unspecified) {
        WakeOutcome::Coalesced => "coalesced",
        _ => "queued",
    };
    Ok(json!({
        "ok": true,
        "mode": if mode == WakeMode::NextHeartbeat { "next-heartbeat" } else { "now" },
        "eventOutcome": outcome,
        "sessionKey": r.session_key,
        "runId": (!r.run_id.is_empty()).then_some(r.run_id),
    }))
}
