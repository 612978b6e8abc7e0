//! `sessions.list` and `sessions.send`: SessionService/List and Send as OpenClaw's rows and
//! run acknowledgement.

use super::{
    Answer, Ctx, Params,
    chat::{ack, conflict_or},
    err,
};
use crate::ws::frames::ts_ms;
use clawplane_proto::v1::{SessionServiceListRequest, SessionServiceSendRequest};
use serde_json::{Value as Json, json};
use tonic::Code;

pub(super) async fn sessions_list(ctx: &Ctx, p: Params<'_>) -> Answer {
    let limit = p.opt_u64("limit")?.unwrap_or(100).clamp(1, 1000) as i32;
    let r = ctx
        .s
        .sessions
        .list(ctx.caller.request(SessionServiceListRequest {
            agent_id: p.opt_str("agentId")?,
            page_size: limit,
            page_token: String::new(),
        }))
        .await
        .map_err(err)?
        .into_inner();
    let rows: Vec<Json> = r
        .sessions
        .iter()
        .map(|s| {
            let usage = s.usage.unwrap_or_default();
            json!({
                "key": s.session_key,
                "sessionId": s.session_id,
                "agentId": s.agent_id,
                "updatedAt": ts_ms(&s.update_time),
                "createdAt": ts_ms(&s.create_time),
                "hasActiveRun": !s.active_run_ids.is_empty(),
                "turnCount": s.turn_count,
                "messageCount": s.message_count,
                "lastChannel": s.last_channel,
                "lastTo": s.last_to,
                "inputTokens": usage.input_tokens,
                "outputTokens": usage.output_tokens,
                "totalTokens": usage.total_tokens,
            })
        })
        .collect();
    Ok(json!({
        "count": rows.len(),
        "totalCount": rows.len(),
        "limitApplied": limit,
        "offset": 0,
        "hasMore": !r.next_page_token.is_empty(),
        "sessions": rows,
    }))
}

pub(super) async fn sessions_send(ctx: &Ctx, p: Params<'_>) -> Answer {
    let key = p.req_str("key")?;
    let mut idem = p.opt_str("idempotencyKey")?;
    if idem.is_empty() {
        idem = uuid::Uuid::new_v4().to_string();
    }
    let r = ctx
        .s
        .sessions
        .send(ctx.caller.request(SessionServiceSendRequest {
            session_key: key.clone(),
            message: p.req_str("message")?,
            idempotency_key: idem.clone(),
            agent_id: p.opt_str("agentId")?,
            thinking: p.opt_str("thinking")?,
            timeout_seconds: p.opt_ms_as_secs("timeoutMs")?,
            ..Default::default()
        }))
        .await
        .map_err(|s| {
            if s.code() == Code::NotFound {
                let mut e = err(s);
                e.message = format!("session not found: {key}");
                e
            } else {
                conflict_or(s)
            }
        })?
        .into_inner();
    Ok(ack(idem, r.state, r.duplicate))
}
