//! `agent` and `agent.wait`: AgentService/Run and Wait, answered with OpenClaw's
//! `accepted` / final payloads (the final of `agent` comes on the same request id).

use super::{Answer, Ctx, Params, answer, err};
use crate::ws::frames::{ErrorShape, now_ms, res_err, res_ok, ts_ms, wire_run_id};
use clawplane_proto::v1::{
    AgentServiceRunRequest, AgentServiceWaitRequest, Delivery, DeliveryStatus, Run, RunState,
};
use serde_json::{Map, Value as Json, json};

pub(super) fn delivery_json(d: &Option<Delivery>) -> Json {
    let Some(d) = d else {
        return json!({"status": "not_requested"});
    };
    let status = match d.status() {
        DeliveryStatus::Unspecified => "not_requested",
        s => crate::hooks::reply::delivery_status_name(s),
    };
    let mut m = Map::new();
    m.insert("status".into(), json!(status));
    for (k, v) in [
        ("channel", &d.channel),
        ("to", &d.to),
        ("messageId", &d.message_id),
        ("detail", &d.detail),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    }
    Json::Object(m)
}

/// The final `agent` payload of a terminal run; `false` when it is an error answer.
fn agent_final(run: &Run) -> (bool, Json) {
    let (ok, status, summary) = match run.state() {
        RunState::Succeeded => (true, "ok", "completed".to_string()),
        RunState::TimedOut => (true, "timeout", "timed out".to_string()),
        RunState::Cancelled => (false, "error", "aborted".to_string()),
        _ => (
            false,
            "error",
            run.error
                .as_ref()
                .map(|e| e.message.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "failed".into()),
        ),
    };
    let duration = match (ts_ms(&run.start_time), ts_ms(&run.end_time)) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    };
    let delivery = delivery_json(&run.delivery);
    let payloads = if run.reply_text.is_empty() {
        vec![]
    } else {
        vec![json!({"text": run.reply_text})]
    };
    let mut v = json!({
        "runId": wire_run_id(run),
        "status": status,
        "summary": summary,
        "sessionKey": run.session_key,
        "agentId": run.agent_id,
        "result": {
            "payloads": payloads,
            "meta": {
                "durationMs": duration,
                "agentMeta": {
                    "sessionKey": run.session_key,
                    "agentId": run.agent_id,
                    "model": run.model,
                    "usage": run.usage.as_ref().map(|u| json!({
                        "input": u.input_tokens,
                        "output": u.output_tokens,
                        "total": u.total_tokens,
                    })),
                },
            },
            "deliveryStatus": delivery,
        },
        "deliveryStatus": delivery,
    });
    if let Some(e) = &run.error {
        v["stopReason"] = json!(e.reason);
    }
    (ok, v)
}

/// Answers the final of a terminal run on `id`.
fn send_final(ctx: &Ctx, id: &str, run: &Run) {
    let (ok, payload) = agent_final(run);
    if ok {
        ctx.out.text(res_ok(id, payload));
    } else {
        let msg = payload["summary"].as_str().unwrap_or("failed").to_string();
        let e = ErrorShape::new("UNAVAILABLE", msg).with_details(json!({
            "code": run.error.as_ref().map(|e| e.reason.as_str()).unwrap_or("RUN_FAILED"),
            "runId": wire_run_id(run),
        }));
        ctx.out.text(res_err(id, &e, Some(payload)));
    }
}

/// `agent`: AgentService/Run (OpenClaw's runId is the idempotencyKey; the run's own id stays
/// the server's), answered `accepted`, then the final
/// on the same id after AgentService/Wait. A duplicate of a running run gets one
/// `in_flight`; a duplicate of a finished one gets the final again.
pub(super) async fn agent(ctx: &Ctx, id: &str, p: Params<'_>) {
    let req = (|| {
        Ok::<_, ErrorShape>(AgentServiceRunRequest {
            message: p.req_str("message")?,
            idempotency_key: p.req_str("idempotencyKey")?,
            agent_id: p.opt_str("agentId")?,
            session_key: p.opt_str("sessionKey")?,
            channel: p.opt_str("channel")?,
            to: p.opt_str("to")?,
            account_id: p.opt_str("accountId")?,
            thread_id: p.opt_str("threadId")?,
            deliver: p.opt_bool("deliver")?,
            model: p.opt_str("model")?,
            thinking: p.opt_str("thinking")?,
            timeout_seconds: p.opt_u64("timeout")?.unwrap_or(0).min(u32::MAX as u64) as u32,
            extra_system_prompt: p.opt_str("extraSystemPrompt")?,
            label: p.opt_str("label")?,
            best_effort_deliver: p.opt_bool("bestEffortDeliver")?,
            session_id: p.opt_str("sessionId")?,
            reply_channel: p.opt_str("replyChannel")?,
            reply_to: p.opt_str("replyTo")?,
            reply_account_id: p.opt_str("replyAccountId")?,
            summary_wake: None,
        })
    })();
    let req = match req {
        Ok(r) => r,
        Err(e) => return answer(ctx, id, Err(e)),
    };
    let key = req.idempotency_key.clone();
    let accepted = match ctx.s.agent.run(ctx.caller.request(req)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return answer(ctx, id, Err(err(s))),
    };
    let state = RunState::try_from(accepted.state).unwrap_or(RunState::Unspecified);
    if accepted.duplicate && !state.is_terminal() {
        return answer(
            ctx,
            id,
            Ok(json!({
                "runId": key,
                "status": "in_flight",
                "sessionKey": accepted.session_key,
                "agentId": accepted.agent_id,
            })),
        );
    }
    if !accepted.duplicate {
        ctx.out.text(res_ok(
            id,
            json!({
                "runId": key,
                "sessionKey": accepted.session_key,
                "agentId": accepted.agent_id,
                "status": "accepted",
                "acceptedAt": ts_ms(&accepted.accept_time).unwrap_or_else(now_ms),
            }),
        ));
    }
    match crate::ws::legacy::finished(&ctx.s, &ctx.caller, &accepted.run_id).await {
        Ok(run) => send_final(ctx, id, &run),
        Err(s) => answer(ctx, id, Err(err(s))),
    }
}

pub(super) async fn agent_wait(ctx: &Ctx, p: Params<'_>) -> Answer {
    let wire = p.req_str("runId")?;
    let run_id = super::resolve_run(ctx, &wire).await.map_err(err)?;
    let timeout_ms = p
        .opt_u64("timeoutMs")?
        .unwrap_or(30_000)
        .clamp(1, u32::MAX as u64) as u32;
    let r = ctx
        .s
        .agent
        .wait(ctx.caller.request(AgentServiceWaitRequest {
            run_id,
            timeout_ms,
            ..Default::default()
        }))
        .await
        .map_err(err)?
        .into_inner();
    let Some(run) = r.run.filter(|_| r.done) else {
        return Ok(json!({"runId": wire, "status": "timeout"}));
    };
    let status = match run.state() {
        RunState::Succeeded => "ok",
        RunState::TimedOut => "timeout",
        _ => "error",
    };
    let mut v = json!({
        "runId": wire_run_id(&run),
        "status": status,
        "startedAt": ts_ms(&run.start_time),
        "endedAt": ts_ms(&run.end_time),
        "terminalReply": run.reply_text,
        "terminalDelivery": delivery_json(&run.delivery),
    });
    if let Some(e) = &run.error {
        v["error"] = json!(e.message);
        v["stopReason"] = json!(e.reason);
    }
    Ok(v)
}
