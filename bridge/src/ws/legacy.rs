//! The legacy dialect of OpenClaw's API & Webhooks guide, chosen by a first frame of
//! `{type:"chat"|"skill_invoke"|"heartbeat_trigger"|"status", id, payload}`: the token comes
//! from `?token=` (accepted for this dialect only), answers are
//! `{type:"response"|"heartbeat_status"|"status"|"error", id, payload}`, errors carry
//! `AUTH_REQUIRED`, `AUTH_INVALID`, `RATE_LIMITED`, `SKILL_NOT_FOUND`, `GATEWAY_BUSY`.
//! Every frame is translated into the same v1 RPCs.

use super::{
    Shim, Socket,
    incoming::{Incoming, classify},
    outbox::Outbox,
};
use crate::{Caller, Services, status::legacy_error_code};
use clawplane_proto::v1::{
    AgentServiceWaitRequest, ChatServiceSendRequest, GatewayServiceStatusRequest,
    GatewayServiceWakeRequest, Run, RunState, WakeMode, WakeOutcome,
};

/// A heartbeat reply that only acknowledges (OpenClaw: `HEARTBEAT_OK` at its start or end
/// with at most 300 other characters).
fn is_heartbeat_ok(reply: &str) -> bool {
    let t = reply.trim();
    let rest = t
        .strip_prefix("HEARTBEAT_OK")
        .or_else(|| t.strip_suffix("HEARTBEAT_OK"));
    t.is_empty() || rest.is_some_and(|r| r.trim().chars().count() <= 300)
}
use futures::{StreamExt as _, stream::SplitStream};
use serde_json::{Value as Json, json};

const TYPES: &[&str] = &["chat", "skill_invoke", "heartbeat_trigger", "status"];

pub(crate) fn is_legacy(kind: &str) -> bool {
    TYPES.contains(&kind)
}

/// Every frame carries the time it was sent (ISO 8601, UTC), as the guide's frames do.
fn reply(out: &Outbox, kind: &str, id: &Json, payload: Json) {
    out.text(
        json!({"type": kind, "id": id, "payload": payload, "timestamp": crate::hooks::reply::now_iso()})
            .to_string(),
    );
}

fn error(out: &Outbox, id: &Json, code: &str, message: &str) {
    reply(out, "error", id, json!({"code": code, "message": message}));
}

/// Serves the legacy dialect until the client leaves or the gateway stops. A socket
/// without `?token=` is never authenticated: it is answered `AUTH_REQUIRED` and closed
/// 1000 `handshake timeout` once `gateway.ws.handshakeTimeoutMs` has passed since it opened.
pub(crate) async fn run(
    shim: &Shim,
    stream: &mut SplitStream<Socket>,
    out: &Outbox,
    first: Json,
    origin: Caller,
    token: Option<String>,
    opened: tokio::time::Instant,
) {
    let authed = token.is_some();
    let caller = Caller { token, ..origin };
    let deadline = async {
        if authed {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep_until(opened + shim.cfg.handshake_timeout).await;
    };
    tokio::pin!(deadline);
    spawn(&shim.s, &caller, out, first);
    loop {
        tokio::select! {
            _ = shim.cfg.shutdown.cancelled() => return,
            _ = &mut deadline => {
                out.close(1000, "handshake timeout");
                return;
            }
            m = stream.next() => match classify(m) {
                Incoming::Text(t) => {
                    let v: Json = serde_json::from_str(&t).unwrap_or(Json::Null);
                    spawn(&shim.s, &caller, out, v);
                }
                Incoming::Skip => {}
                Incoming::TooBig => {
                    if authed {
                        out.close(1009, "payload too large (policy.maxPayload)");
                    } else {
                        out.close(1009, "preauth payload too large");
                    }
                    return;
                }
                Incoming::Gone => return,
            }
        }
    }
}

fn spawn(s: &Services, caller: &Caller, out: &Outbox, frame: Json) {
    let (s, caller, out) = (s.clone(), caller.clone(), out.clone());
    tokio::spawn(async move { handle(&s, &caller, &out, frame).await });
}

/// Waits (AgentService/Wait, repeatedly) until the run is terminal (the `agent` method's
/// final answer waits the same way).
pub(crate) async fn finished(
    s: &Services,
    caller: &Caller,
    run_id: &str,
) -> Result<Run, tonic::Status> {
    loop {
        let r = s
            .agent
            .wait(caller.request(AgentServiceWaitRequest {
                run_id: run_id.to_string(),
                timeout_ms: 60_000,
                ..Default::default()
            }))
            .await?
            .into_inner();
        if r.done
            && let Some(run) = r.run
        {
            return Ok(run);
        }
    }
}

fn tokens(run: &Run) -> u64 {
    run.usage.as_ref().map_or(0, |u| u.total_tokens)
}

async fn handle(s: &Services, caller: &Caller, out: &Outbox, frame: Json) {
    // A frame without an id gets one, so its answer can still be matched.
    let id = match frame.get("id") {
        Some(v) if !v.is_null() => v.clone(),
        _ => Json::String(format!("msg_{}", uuid::Uuid::new_v4().simple())),
    };
    let kind = frame.get("type").and_then(Json::as_str).unwrap_or("");
    let payload = frame.get("payload").cloned().unwrap_or(json!({}));
    let field = |k: &str| {
        payload
            .get(k)
            .and_then(Json::as_str)
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    if caller.token.is_none() {
        return error(
            out,
            &id,
            "AUTH_REQUIRED",
            "authentication required: connect with ?token=<gateway token>",
        );
    }
    match kind {
        "chat" => {
            let mut message = field("message");
            if message.is_empty() {
                message = field("text");
            }
            let mut session = field("sessionKey");
            if session.is_empty() {
                session = field("session");
            }
            if session.is_empty() {
                session = "main".into();
            }
            let model = payload
                .pointer("/options/model")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .trim()
                .to_string();
            let sent = s
                .chat
                .send(caller.request(ChatServiceSendRequest {
                    session_key: session,
                    message,
                    agent_id: field("agentId"),
                    idempotency_key: field("idempotencyKey"),
                    model,
                    ..Default::default()
                }))
                .await;
            let sent = match sent {
                Ok(r) => r.into_inner(),
                Err(st) => return error(out, &id, legacy_error_code(&st), st.message()),
            };
            let run = match finished(s, caller, &sent.run_id).await {
                Ok(run) => run,
                Err(st) => return error(out, &id, legacy_error_code(&st), st.message()),
            };
            if run.state() != RunState::Succeeded {
                let msg = run
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "the agent run did not complete".into());
                return error(out, &id, "AGENT_ERROR", &msg);
            }
            reply(
                out,
                "response",
                &id,
                json!({
                    "text": run.reply_text,
                    // The built-in and configured models call no tools yet.
                    "tool_calls": [],
                    "tokens_used": tokens(&run),
                    "model": run.model,
                    "runId": super::frames::wire_run_id(&run),
                    "sessionKey": run.session_key,
                    "agentId": run.agent_id,
                }),
            );
        }
        "heartbeat_trigger" => {
            let mut text = field("text");
            if text.is_empty() {
                text = "heartbeat".into();
            }
            let mode = if field("mode") == "next-heartbeat" {
                WakeMode::NextHeartbeat
            } else {
                WakeMode::Now
            };
            if payload.get("dry_run").and_then(Json::as_bool) == Some(true) {
                // Checked like a real trigger (the credential), then nothing is queued or run.
                if let Err(st) = s
                    .gateway
                    .status(caller.request(GatewayServiceStatusRequest {}))
                    .await
                {
                    return error(out, &id, legacy_error_code(&st), st.message());
                }
                let would = if mode == WakeMode::Now {
                    format!("would queue {text:?} on the main session and run a heartbeat turn now")
                } else {
                    format!("would queue {text:?} for the next scheduled heartbeat")
                };
                return reply(
                    out,
                    "heartbeat_status",
                    &id,
                    json!({"ok": true, "status": "DRY_RUN", "dry_run": true, "actions_taken": [], "would": [would], "tokens_used": 0}),
                );
            }
            let woken = match s
                .gateway
                .wake(caller.request(GatewayServiceWakeRequest {
                    text,
                    mode: mode as i32,
                    session_key: field("sessionKey"),
                    agent_id: field("agentId"),
                }))
                .await
            {
                Ok(r) => r.into_inner(),
                Err(st) => return error(out, &id, legacy_error_code(&st), st.message()),
            };
            let queued = if woken.outcome == WakeOutcome::Coalesced as i32 {
                "coalesced"
            } else {
                "queued"
            };
            let mut actions = vec![format!("system event {queued} on {}", woken.session_key)];
            if woken.run_id.is_empty() {
                // next-heartbeat: the turn runs on the schedule, not now.
                return reply(
                    out,
                    "heartbeat_status",
                    &id,
                    json!({"ok": true, "status": queued, "actions_taken": actions, "tokens_used": 0, "sessionKey": woken.session_key, "runId": ""}),
                );
            }
            // mode now: the answer waits for the heartbeat turn.
            let run = match finished(s, caller, &woken.run_id).await {
                Ok(run) => run,
                Err(st) => return error(out, &id, legacy_error_code(&st), st.message()),
            };
            actions.push(format!("heartbeat turn {}", run.run_id));
            let status = if run.state() != RunState::Succeeded {
                let msg = run
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                return error(out, &id, "AGENT_ERROR", &msg);
            } else if is_heartbeat_ok(&run.reply_text) {
                "HEARTBEAT_OK".to_string()
            } else {
                run.reply_text.clone()
            };
            if let Some(d) = &run.delivery
                && d.status == clawplane_proto::v1::DeliveryStatus::Delivered as i32
            {
                actions.push(format!("reply delivered to {} {}", d.channel, d.to));
            }
            reply(
                out,
                "heartbeat_status",
                &id,
                json!({"ok": true, "status": status, "actions_taken": actions, "tokens_used": tokens(&run), "sessionKey": run.session_key, "runId": run.run_id}),
            );
        }
        "status" => match s
            .gateway
            .status(caller.request(GatewayServiceStatusRequest {}))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                reply(
                    out,
                    "status",
                    &id,
                    json!({
                        "ok": true,
                        "version": r.version,
                        "uptimeMs": r.uptime_ms,
                        "defaultAgentId": r.default_agent_id,
                        "sessions": r.session_count,
                        "queuedRuns": r.queued_runs,
                        "runningRuns": r.running_runs,
                    }),
                );
            }
            Err(st) => error(out, &id, legacy_error_code(&st), st.message()),
        },
        "skill_invoke" => {
            // Check the credential first so a bad token is reported as such.
            if let Err(st) = s
                .gateway
                .status(caller.request(GatewayServiceStatusRequest {}))
                .await
            {
                return error(out, &id, legacy_error_code(&st), st.message());
            }
            let skill = field("skill");
            error(
                out,
                &id,
                "SKILL_NOT_FOUND",
                &format!(
                    "skill not found: {skill:?} (this gateway has no skills; use type \"chat\")"
                ),
            );
        }
        other => error(
            out,
            &id,
            "INVALID_REQUEST",
            &format!("unknown frame type: {other:?}"),
        ),
    }
}
