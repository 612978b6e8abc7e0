//! OpenClaw methods, each mapped onto v1 RPCs called with the socket's credential (the
//! service layer authorizes; PERMISSION_DENIED becomes `FORBIDDEN "missing scope: …"`).

use super::{
    conn::Outbox,
    frames::{ErrorShape, now_ms, res_err, res_ok, rpc_error, ts_ms},
};
use crate::{Caller, Services};
use clawplane_proto::v1::{
    AgentServiceRunRequest, AgentServiceWaitRequest, ApprovePairingRequest, Channel,
    ChatServiceAbortRequest, ChatServiceHistoryRequest, ChatServiceSendRequest, Delivery,
    DeliveryStatus, EventServiceWatchRequest, GatewayServiceStatusRequest,
    GatewayServiceStatusResponse, GatewayServiceWakeRequest, GetChannelRequest,
    ListChannelsRequest, ListDevicesRequest, MessageRole, RejectPairingRequest,
    RemoveDeviceRequest, RevokeTokenRequest, RotateTokenRequest, Run, RunState, SendMessageRequest,
    SessionServiceListRequest, SessionServiceSendRequest, WakeMode, WakeOutcome,
    event_service_watch_response::Frame,
};
use futures::StreamExt as _;
use serde_json::{Map, Value as Json, json};
use std::{sync::Arc, time::Duration};
use tonic::{Code, Status};

/// `hello-ok.features.methods`: every method this shim answers.
pub const METHODS: &[&str] = &[
    "health",
    "status",
    "agent",
    "agent.wait",
    "agents.list",
    "chat.send",
    "chat.history",
    "chat.abort",
    "sessions.list",
    "sessions.send",
    "wake",
    "send",
    "channels.status",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.token.rotate",
    "device.token.revoke",
    "logs.tail",
];

/// What a method task needs.
pub(crate) struct Ctx {
    pub s: Services,
    pub caller: Caller,
    pub out: Outbox,
}

const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];
const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];
const REQUEST_KEYS: &[&str] = &[
    "type",
    "id",
    "method",
    "params",
    "traceparent",
    "expectedProfileId",
];

/// The request frame is a closed object (spec §1.2).
pub(crate) fn closed_request(frame: &Json) -> bool {
    frame
        .as_object()
        .is_some_and(|m| m.keys().all(|k| REQUEST_KEYS.contains(&k.as_str())))
}

/// The `connect` params this shim uses, validated against the closed schema (§1.4).
pub(crate) struct ConnectParams {
    pub min_protocol: u64,
    pub max_protocol: u64,
    pub role: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub client_mode: String,
    pub platform: String,
    pub device_family: String,
    pub display_name: String,
    pub token: Option<String>,
    pub device_token: Option<String>,
    pub bootstrap_token: Option<String>,
    pub device: Option<clawplane_proto::v1::DeviceProof>,
}

impl ConnectParams {
    pub fn parse(p: &Json) -> Result<ConnectParams, String> {
        let obj = p.as_object().ok_or("params must be an object")?;
        const KEYS: &[&str] = &[
            "minProtocol",
            "maxProtocol",
            "client",
            "role",
            "scopes",
            "caps",
            "commands",
            "permissions",
            "pathEnv",
            "computerUse",
            "workerRuns",
            "modelCatalog",
            "auth",
            "device",
            "locale",
            "userAgent",
        ];
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("must NOT have additional properties ({k})"));
        }
        let proto = |k: &str| -> Result<u64, String> {
            obj.get(k)
                .and_then(Json::as_u64)
                .filter(|v| *v >= 1)
                .ok_or_else(|| format!("{k} must be an integer >= 1"))
        };
        let min_protocol = proto("minProtocol")?;
        let max_protocol = proto("maxProtocol")?;
        let client = obj
            .get("client")
            .and_then(Json::as_object)
            .ok_or("must have required property 'client'")?;
        let cs = |k: &str| client.get(k).and_then(Json::as_str);
        match cs("id") {
            Some(id) if CLIENT_IDS.contains(&id) => {}
            Some(id) => {
                return Err(format!(
                    "client.id must be equal to one of the allowed values (got {id:?})"
                ));
            }
            None => return Err("client must have required property 'id'".into()),
        }
        match cs("mode") {
            Some(m) if CLIENT_MODES.contains(&m) => {}
            Some(m) => {
                return Err(format!(
                    "client.mode must be equal to one of the allowed values (got {m:?})"
                ));
            }
            None => return Err("client must have required property 'mode'".into()),
        }
        for k in ["version", "platform"] {
            if cs(k).is_none_or(|v| v.is_empty()) {
                return Err(format!("client.{k} must be a non-empty string"));
            }
        }
        let role = match obj.get("role") {
            None | Some(Json::Null) => "operator".to_string(),
            Some(Json::String(r)) if ["operator", "node", "worker"].contains(&r.as_str()) => {
                r.clone()
            }
            Some(_) => return Err("invalid role".into()),
        };
        if let Some(s) = obj.get("scopes")
            && !s.as_array().is_some_and(|a| a.iter().all(Json::is_string))
        {
            return Err("scopes must be an array of strings".into());
        }
        let scopes: Vec<String> = obj
            .get("scopes")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut token = None;
        let mut device_token = None;
        let mut bootstrap_token = None;
        if let Some(a) = obj.get("auth") {
            let a = a.as_object().ok_or("auth must be an object")?;
            const AUTH_KEYS: &[&str] = &[
                "token",
                "bootstrapToken",
                "deviceToken",
                "password",
                "approvalRuntimeToken",
                "agentRuntimeIdentityToken",
            ];
            for (k, v) in a {
                if !AUTH_KEYS.contains(&k.as_str()) {
                    return Err(format!("auth must NOT have additional properties ({k})"));
                }
                if !v.is_string() {
                    return Err(format!("auth.{k} must be a string"));
                }
            }
            let s = |k: &str| {
                a.get(k)
                    .and_then(Json::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            token = s("token");
            device_token = s("deviceToken");
            bootstrap_token = s("bootstrapToken");
        }
        let mut device = None;
        if let Some(d) = obj.get("device") {
            let d = d.as_object().ok_or("device must be an object")?;
            for k in ["id", "publicKey", "signature", "nonce"] {
                if !d.get(k).is_some_and(Json::is_string) {
                    return Err(format!("device must have required property '{k}'"));
                }
            }
            let Some(signed_at) = d.get("signedAt").and_then(Json::as_u64) else {
                return Err("device must have required property 'signedAt' (integer >= 0)".into());
            };
            if let Some(k) = d.keys().find(|k| {
                !["id", "publicKey", "signature", "signedAt", "nonce"].contains(&k.as_str())
            }) {
                return Err(format!("device must NOT have additional properties ({k})"));
            }
            let ds = |k: &str| d.get(k).and_then(Json::as_str).unwrap_or("").to_string();
            device = Some(clawplane_proto::v1::DeviceProof {
                id: ds("id"),
                public_key: ds("publicKey"),
                signature: ds("signature"),
                signed_at: signed_at.min(i64::MAX as u64) as i64,
                nonce: ds("nonce").trim().to_string(),
            });
        }
        let cstr = |k: &str| {
            client
                .get(k)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        Ok(ConnectParams {
            min_protocol,
            max_protocol,
            role,
            scopes,
            client_id: cstr("id"),
            client_mode: cstr("mode"),
            platform: cstr("platform"),
            device_family: cstr("deviceFamily"),
            display_name: cstr("displayName"),
            token,
            device_token,
            bootstrap_token,
            device,
        })
    }
}

/// Parses one frame and starts its method (an answer always comes, possibly later).
pub(crate) fn dispatch(ctx: &Arc<Ctx>, text: &str) {
    let frame: Json = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return, // not a frame; upstream ignores it too
    };
    let id = frame.get("id").and_then(Json::as_str).unwrap_or("");
    if frame.get("type").and_then(Json::as_str) != Some("req") || id.is_empty() {
        return;
    }
    let id = id.to_string();
    let method = frame
        .get("method")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    if !closed_request(&frame) || method.is_empty() {
        ctx.out.text(res_err(
            &id,
            &ErrorShape::invalid("invalid request frame"),
            None,
        ));
        return;
    }
    let params = frame.get("params").cloned().unwrap_or(Json::Null);
    let ctx = ctx.clone();
    tokio::spawn(async move { call(ctx, id, method, params).await });
}

type Answer = Result<Json, ErrorShape>;

async fn call(ctx: Arc<Ctx>, id: String, method: String, params: Json) {
    let p = Params {
        method: &method,
        v: &params,
    };
    let r: Answer = match method.as_str() {
        "health" => health(&ctx).await,
        "status" => status(&ctx).await,
        "agent" => return agent(&ctx, &id, p).await,
        "agent.wait" => agent_wait(&ctx, p).await,
        "agents.list" => agents_list(&ctx).await,
        "chat.send" => chat_send(&ctx, p).await,
        "chat.history" => chat_history(&ctx, p).await,
        "chat.abort" => chat_abort(&ctx, p).await,
        "sessions.list" => sessions_list(&ctx, p).await,
        "sessions.send" => sessions_send(&ctx, p).await,
        "wake" => wake(&ctx, p).await,
        "send" => send(&ctx, p).await,
        "channels.status" => channels_status(&ctx, p).await,
        "device.pair.list" => pair_list(&ctx).await,
        "device.pair.approve" => pair_approve(&ctx, p).await,
        "device.pair.reject" => pair_reject(&ctx, p).await,
        "device.pair.remove" => pair_remove(&ctx, p).await,
        "device.token.rotate" => token_rotate(&ctx, p).await,
        "device.token.revoke" => token_revoke(&ctx, p).await,
        "logs.tail" => logs_tail(&ctx, p).await,
        "connect" => Err(ErrorShape::invalid(
            "connect is only valid as the first request",
        )),
        other => Err(ErrorShape::invalid(format!("unknown method: {other}"))),
    };
    answer(&ctx, &id, r);
}

fn answer(ctx: &Ctx, id: &str, r: Answer) {
    match r {
        Ok(p) => ctx.out.text(res_ok(id, p)),
        Err(e) => ctx.out.text(res_err(id, &e, None)),
    };
}

/// Typed access to `params` with OpenClaw's error text.
#[derive(Clone, Copy)]
struct Params<'a> {
    method: &'a str,
    v: &'a Json,
}

impl Params<'_> {
    fn bad(&self, what: impl std::fmt::Display) -> ErrorShape {
        ErrorShape::invalid(format!("invalid {} params: {what}", self.method))
    }
    fn opt_str(&self, k: &str) -> Result<String, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.trim().to_string()),
            Some(_) => Err(self.bad(format!("{k} must be a string"))),
        }
    }
    fn req_str(&self, k: &str) -> Result<String, ErrorShape> {
        let s = self.opt_str(k)?;
        if s.is_empty() {
            return Err(self.bad(format!("must have required property '{k}'")));
        }
        Ok(s)
    }
    fn opt_u64(&self, k: &str) -> Result<Option<u64>, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .map(Some)
                .ok_or_else(|| self.bad(format!("{k} must be a non-negative number"))),
        }
    }
    fn opt_bool(&self, k: &str) -> Result<bool, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(_) => Err(self.bad(format!("{k} must be a boolean"))),
        }
    }
    fn opt_strs(&self, k: &str) -> Result<Vec<String>, ErrorShape> {
        match self.v.get(k) {
            None | Some(Json::Null) => Ok(vec![]),
            Some(Json::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.bad(format!("{k} must be an array of strings")))
                })
                .collect(),
            Some(_) => Err(self.bad(format!("{k} must be an array of strings"))),
        }
    }
}

fn err(s: Status) -> ErrorShape {
    rpc_error(&s)
}

/// `channels.status {probe?}`: ChannelService/ListChannels (GetChannel with probe per channel),
/// as OpenClaw's snapshot `{ts, channelOrder, channels{id: …}, channelAccounts{id: [account]}}`.
async fn channels_status(ctx: &Ctx, p: Params<'_>) -> Answer {
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

// ------------------------------------------------------------------------------------------
// health, status, agents.list
// ------------------------------------------------------------------------------------------

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

async fn gateway_status(ctx: &Ctx) -> Result<GatewayServiceStatusResponse, Status> {
    ctx.s
        .gateway
        .status(ctx.caller.request(GatewayServiceStatusRequest {}))
        .await
        .map(|r| r.into_inner())
}

/// `health` needs no scope: a caller without `operator.read` gets the bare snapshot.
async fn health(ctx: &Ctx) -> Answer {
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

async fn status(ctx: &Ctx) -> Answer {
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

async fn agents_list(ctx: &Ctx) -> Answer {
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

// ------------------------------------------------------------------------------------------
// agent, agent.wait
// ------------------------------------------------------------------------------------------

fn delivery_json(d: &Option<Delivery>) -> Json {
    let Some(d) = d else {
        return json!({"status": "not_requested"});
    };
    let status = match d.status() {
        DeliveryStatus::Unspecified | DeliveryStatus::NotRequested => "not_requested",
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Skipped => "skipped",
        DeliveryStatus::NoRoute => "no_route",
        DeliveryStatus::Failed => "failed",
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
pub(crate) fn agent_final(run: &Run) -> (bool, Json) {
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
        "runId": run.run_id,
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
            "runId": run.run_id,
        }));
        ctx.out.text(res_err(id, &e, Some(payload)));
    }
}

/// Waits (AgentService/Wait, repeatedly) until the run is terminal.
async fn wait_terminal(ctx: &Ctx, run_id: &str) -> Result<Run, Status> {
    loop {
        let r = ctx
            .s
            .agent
            .wait(ctx.caller.request(AgentServiceWaitRequest {
                run_id: run_id.into(),
                timeout_ms: 60_000,
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

/// `agent`: AgentService/Run (idempotencyKey = runId), answered `accepted`, then the final
/// on the same id after AgentService/Wait. A duplicate of a running run gets one
/// `in_flight`; a duplicate of a finished one gets the final again.
async fn agent(ctx: &Ctx, id: &str, p: Params<'_>) {
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
        })
    })();
    let req = match req {
        Ok(r) => r,
        Err(e) => return answer(ctx, id, Err(e)),
    };
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
                "runId": accepted.run_id,
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
                "runId": accepted.run_id,
                "sessionKey": accepted.session_key,
                "agentId": accepted.agent_id,
                "status": "accepted",
                "acceptedAt": ts_ms(&accepted.accept_time).unwrap_or_else(now_ms),
            }),
        ));
    }
    match wait_terminal(ctx, &accepted.run_id).await {
        Ok(run) => send_final(ctx, id, &run),
        Err(s) => answer(ctx, id, Err(err(s))),
    }
}

async fn agent_wait(ctx: &Ctx, p: Params<'_>) -> Answer {
    let run_id = p.req_str("runId")?;
    let timeout_ms = p
        .opt_u64("timeoutMs")?
        .unwrap_or(30_000)
        .clamp(1, u32::MAX as u64) as u32;
    let r = ctx
        .s
        .agent
        .wait(ctx.caller.request(AgentServiceWaitRequest {
            run_id: run_id.clone(),
            timeout_ms,
        }))
        .await
        .map_err(err)?
        .into_inner();
    let Some(run) = r.run.filter(|_| r.done) else {
        return Ok(json!({"runId": run_id, "status": "timeout"}));
    };
    let status = match run.state() {
        RunState::Succeeded => "ok",
        RunState::TimedOut => "timeout",
        _ => "error",
    };
    let mut v = json!({
        "runId": run.run_id,
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

// ------------------------------------------------------------------------------------------
// chat.*, sessions.*
// ------------------------------------------------------------------------------------------

fn conflict_or(s: Status) -> ErrorShape {
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

fn ack(run_id: String, state: i32, duplicate: bool) -> Json {
    let state = RunState::try_from(state).unwrap_or(RunState::Unspecified);
    let status = if duplicate && !state.is_terminal() {
        "in_flight"
    } else {
        "started"
    };
    json!({"runId": run_id, "status": status})
}

async fn chat_send(ctx: &Ctx, p: Params<'_>) -> Answer {
    let req = ChatServiceSendRequest {
        session_key: p.req_str("sessionKey")?,
        message: p.opt_str("message")?,
        idempotency_key: p.req_str("idempotencyKey")?,
        agent_id: p.opt_str("agentId")?,
        deliver: p.opt_bool("deliver")?,
        channel: p.opt_str("originatingChannel")?,
        to: p.opt_str("originatingTo")?,
        thinking: p.opt_str("thinking")?,
        timeout_seconds: p
            .opt_u64("timeoutMs")?
            .map(|ms| ms.div_ceil(1000).min(u32::MAX as u64) as u32)
            .unwrap_or(0),
        ..Default::default()
    };
    let r = ctx
        .s
        .chat
        .send(ctx.caller.request(req))
        .await
        .map_err(conflict_or)?
        .into_inner();
    Ok(ack(r.run_id, r.state, r.duplicate))
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

async fn chat_history(ctx: &Ctx, p: Params<'_>) -> Answer {
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

async fn chat_abort(ctx: &Ctx, p: Params<'_>) -> Answer {
    let r = ctx
        .s
        .chat
        .abort(ctx.caller.request(ChatServiceAbortRequest {
            session_key: p.req_str("sessionKey")?,
            agent_id: p.opt_str("agentId")?,
            run_id: p.opt_str("runId")?,
        }))
        .await
        .map_err(err)?
        .into_inner();
    Ok(json!({"ok": true, "aborted": r.aborted, "runIds": r.run_ids}))
}

async fn sessions_list(ctx: &Ctx, p: Params<'_>) -> Answer {
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

async fn sessions_send(ctx: &Ctx, p: Params<'_>) -> Answer {
    let key = p.req_str("key")?;
    let mut idem = p.opt_str("idempotencyKey")?;
    if idem.is_empty() {
        idem = uuid::Uuid::new_v4().to_string();
    }
    let r = ctx
        .s
        .sessions
        .send(
            ctx.caller.request(SessionServiceSendRequest {
                session_key: key.clone(),
                message: p.req_str("message")?,
                idempotency_key: idem,
                agent_id: p.opt_str("agentId")?,
                thinking: p.opt_str("thinking")?,
                timeout_seconds: p
                    .opt_u64("timeoutMs")?
                    .map(|ms| ms.div_ceil(1000).min(u32::MAX as u64) as u32)
                    .unwrap_or(0),
                ..Default::default()
            }),
        )
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
    Ok(ack(r.run_id, r.state, r.duplicate))
}

// ------------------------------------------------------------------------------------------
// wake, send
// ------------------------------------------------------------------------------------------

async fn wake(ctx: &Ctx, p: Params<'_>) -> Answer {
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

async fn send(ctx: &Ctx, p: Params<'_>) -> Answer {
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

// ------------------------------------------------------------------------------------------
// device.*
// ------------------------------------------------------------------------------------------

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

async fn pair_list(ctx: &Ctx) -> Answer {
    let r = ctx
        .s
        .devices
        .list_devices(ctx.caller.request(ListDevicesRequest {}))
        .await
        .map_err(err)?
        .into_inner();
    Ok(json!({
        "pending": r.pending.iter().map(pending_json).collect::<Vec<_>>(),
        "paired": r.paired.iter().map(device_json).collect::<Vec<_>>(),
    }))
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

async fn pair_approve(ctx: &Ctx, p: Params<'_>) -> Answer {
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

async fn pair_reject(ctx: &Ctx, p: Params<'_>) -> Answer {
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

async fn pair_remove(ctx: &Ctx, p: Params<'_>) -> Answer {
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

async fn token_rotate(ctx: &Ctx, p: Params<'_>) -> Answer {
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

async fn token_revoke(ctx: &Ctx, p: Params<'_>) -> Answer {
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

// ------------------------------------------------------------------------------------------
// logs.tail: the event feed as log lines (cursor = event seq)
// ------------------------------------------------------------------------------------------

async fn logs_tail(ctx: &Ctx, p: Params<'_>) -> Answer {
    let limit = p.opt_u64("limit")?.unwrap_or(200).clamp(1, 5000);
    let max_bytes = p
        .opt_u64("maxBytes")?
        .unwrap_or(250_000)
        .clamp(1, 1_000_000) as usize;
    let cursor = p.opt_u64("cursor")?;
    let head = gateway_status(ctx).await.map_err(err)?.last_event_seq;
    let mut reset = false;
    let after = match cursor {
        Some(c) if c <= head => c,
        Some(_) => {
            reset = true;
            head.saturating_sub(limit)
        }
        None => head.saturating_sub(limit),
    };
    let mut lines: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let mut last = after;
    if head > after {
        let watch = |after_seq: u64| {
            ctx.s
                .events
                .watch(ctx.caller.request(EventServiceWatchRequest {
                    after_seq,
                    filter: None,
                    follow_only: false,
                }))
        };
        let mut stream = match watch(after).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::OutOfRange => {
                reset = true;
                watch(0).await.map_err(err)?.into_inner()
            }
            Err(s) => return Err(err(s)),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while last < head {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            let Ok(Some(Ok(frame))) = next else { break };
            match frame.frame {
                Some(Frame::Event(ev)) => {
                    last = ev.seq;
                    let line = serde_json::to_string(&ev).unwrap_or_default();
                    if lines.len() as u64 >= limit || bytes + line.len() > max_bytes {
                        truncated = true;
                        last = ev.seq - 1;
                        break;
                    }
                    bytes += line.len() + 1;
                    lines.push(line);
                }
                Some(Frame::Progress(pr)) => last = last.max(pr.seq),
                None => {}
            }
        }
    }
    Ok(json!({
        "file": "clawplane event feed (EventService/Watch)",
        "cursor": last,
        "size": head,
        "lines": lines,
        "truncated": truncated,
        "reset": reset,
    }))
}
