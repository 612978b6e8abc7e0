//! `chat.send`, `chat.history` and `chat.abort`: ChatService/Send, History and Abort, plus
//! the run acknowledgement `sessions.send` shares.

use super::{Answer, Ctx, Params, err};
use crate::ws::frames::{ErrorShape, ts_ms};
use clawplane_proto::v1::{
    ChatServiceAbortRequest, ChatServiceHistoryRequest, ChatServiceSendRequest, MessageRole,
    RunState,
};
use serde_json::{Value as Json, json};
use tonic::Status;

pub(super) fn conflict_or(s: Status) -> ErrorShape {
    let mut e = err(s);
    if e.details
        .as_ref()
        .and_then(|d| d.get("code"))
        .and_then(Json::as_str)
        == Some("IDEMPOTENCY_KEY_CONFLICT")
        && let Some(Json::Object(d)) = &mut e.details
    {
        d.insert("reason".into(), json!("chat-request-conflict"));
    }
    e
}

/// The acknowledgement of a run: `runId` is the caller's idempotency key, as in OpenClaw.
pub(super) fn ack(run_id: String, state: i32, duplicate: bool) -> Json {
    let state = RunState::try_from(state).unwrap_or(RunState::Unspecified);
    let status = if duplicate && !state.is_terminal() {
        "in_flight"
    } else {
        "started"
    };
    json!({"runId": run_id, "status": status})
}

pub(super) async fn chat_send(ctx: &Ctx, p: Params<'_>) -> Answer {
    let req = ChatServiceSendRequest {
        session_key: p.req_str("sessionKey")?,
        message: p.opt_str("message")?,
        idempotency_key: p.req_str("idempotencyKey")?,
        agent_id: p.opt_str("agentId")?,
        deliver: p.opt_bool("deliver")?,
        channel: p.opt_str("originatingChannel")?,
        to: p.opt_str("originatingTo")?,
        thinking: p.opt_str("thinking")?,
        timeout_seconds: p.opt_ms_as_secs("timeoutMs")?,
        ..Default::default()
    };
    let key = req.idempotency_key.clone();
    let r = ctx
        .s
        .chat
        .send(ctx.caller.request(req))
        .await
        .map_err(conflict_or)?
        .into_inner();
    Ok(ack(key, r.state, r.duplicate))
}

fn message_json(m: &clawplane_proto::v1::Message) -> Json {
    let role = match m.role() {
        MessageRole::User => "user",
        MessageRole::Assistant => "assistant",
        MessageRole::System => "system",
        MessageRole::Unspecified => "user",
    };
    json!({
        "role": role,
        "content": [{"type": "text", "text": m.text}],
        "timestamp": ts_ms(&m.create_time),
        "runId": m.run_id,
        "index": m.index,
    })
}

pub(super) async fn chat_history(ctx: &Ctx, p: Params<'_>) -> Answer {
    let limit = p.opt_u64("limit")?.unwrap_or(200).clamp(1, 1000) as i32;
    let r = ctx
        .s
        .chat
        .history(ctx.caller.request(ChatServiceHistoryRequest {
            session_key: p.req_str("sessionKey")?,
            agent_id: p.opt_str("agentId")?,
            page_size: limit,
            page_token: p.opt_str("cursor")?,
        }))
        .await
        .map_err(err)?
        .into_inner();
    let session = r.session.unwrap_or_default();
    Ok(json!({
        "sessionKey": session.session_key,
        "sessionId": session.session_id,
        "messages": r.messages.iter().map(message_json).collect::<Vec<_>>(),
        "pendingInputs": [],
        "defaults": {},
        "sessionInfo": {
            "hasActiveRun": !session.active_run_ids.is_empty(),
            "activeRunIds": session.active_run_ids,
        },
        "thinkingLevel": "off",
        "verboseLevel": "off",
        "hasMore": !r.next_page_token.is_empty(),
        "nextCursor": r.next_page_token,
        "totalMessages": session.message_count,
    }))
}

pub(super) async fn chat_abort(ctx: &Ctx, p: Params<'_>) -> Answer {
    let wire = p.opt_str("runId")?;
    let run_id = if wire.is_empty() {
        wire
    } else {
        super::resolve_run(ctx, &wire).await.map_err(err)?
    };
    let r = ctx
        .s
        .chat
        .abort(ctx.caller.request(ChatServiceAbortRequest {
            session_key: p.req_str("sessionKey")?,
            agent_id: p.opt_str("agentId")?,
            run_id,
        }))
        .await
        .map_err(err)?
        .into_inner();
    let wire = p.opt_str("runId")?;
    let ids = if wire.is_empty() {
        r.run_ids
    } else {
        r.run_ids.iter().map(|_| wire.clone()).collect()
    };
    Ok(json!({"ok": true, "aborted": r.aborted, "runIds": ids}))
}
