//! `POST <hooks>/agent` → AgentService/Run (and Wait with `waitForCompletion`), with
//! OpenClaw's direct-delivery rules.

use super::{
    Hooks,
    compile::SessionMode,
    reply::{self, with_warnings},
    request::{HookRequest, agent_field, str_field, unknown_fields},
};
use crate::{
    Caller,
    respond::{Answer, bad, json, reject},
    status::hooks_error,
};
use axum::{http::StatusCode, response::Response};
use clawplane_proto::keys::normalize_agent_id;
use clawplane_proto::v1::{AgentServiceRunRequest, AgentServiceWaitRequest, SummaryWake};
use serde_json::{Map, Value as Json, json};
use std::time::{Duration, Instant};

const AGENT_FIELDS: &[&str] = &[
    "message",
    "name",
    "agentId",
    "idempotencyKey",
    "wakeMode",
    "sessionKey",
    "sessionMode",
    "deliver",
    "channel",
    "to",
    "accountId",
    "model",
    "thinking",
    "timeoutSeconds",
    "waitForCompletion",
];

impl Hooks {
    /// Direct-path delivery fields (OpenClaw's `normalizeHookAgentDelivery`): returns
    /// (deliver, channel, to, accountId).
    pub(super) fn direct_delivery(
        &self,
        p: &Map<String, Json>,
        warnings: &mut Vec<String>,
    ) -> Answer<(bool, String, String, String)> {
        let deliver = p.get("deliver") != Some(&Json::Bool(false));
        let (has_channel, has_to, has_account) = (
            p.contains_key("channel"),
            p.contains_key("to"),
            p.contains_key("accountId"),
        );
        if !deliver {
            if has_channel || has_to || has_account {
                warnings
                    .push("channel, to and accountId are ignored because deliver is false".into());
            }
            return Ok((false, String::new(), String::new(), String::new()));
        }
        let channel = match p.get("channel") {
            None => "last".to_string(),
            Some(Json::String(s)) => self.c.channel(s).map_err(bad)?,
            Some(_) => return reject(bad(self.c.channel_error())),
        };
        let to = str_field(p, "to");
        let account = str_field(p, "accountId");
        if !has_channel && !has_to && !has_account {
            return Ok((true, channel, String::new(), String::new()));
        }
        if has_to && to.is_none() {
            return reject(bad("to must be a non-empty string for hook delivery"));
        }
        if has_account && account.is_none() {
            return reject(bad(
                "accountId must be a non-empty string for hook delivery",
            ));
        }
        if has_account && (!has_channel || to.is_none()) {
            return reject(bad("accountId requires channel and to for hook delivery"));
        }
        let Some(to) = to.filter(|_| has_channel) else {
            return reject(bad("channel and to must be set together for hook delivery"));
        };
        if channel == "last" {
            return reject(bad(
                "channel must name a concrete channel for hook delivery",
            ));
        }
        Ok((
            true,
            channel,
            to.to_string(),
            account.unwrap_or_default().to_string(),
        ))
    }

    /// `POST <hooks>/agent` → AgentService/Run (and Wait with `waitForCompletion`).
    pub(super) async fn agent(&self, r: HookRequest) -> Answer<Response> {
        let p = r.payload.as_object().cloned().unwrap_or_default();
        let mut warnings = r.warnings;
        unknown_fields(&p, AGENT_FIELDS, &mut warnings);
        let wait = match p.get("waitForCompletion") {
            None => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => return reject(bad("waitForCompletion must be boolean")),
        };
        let message = str_field(&p, "message").ok_or_else(|| bad("message required"))?;
        let name = str_field(&p, "name").unwrap_or("Hook");
        let agent = agent_field(&p)?;
        // The run's summary goes to the main session when it ends; `now` runs a heartbeat.
        let now = match p.get("wakeMode") {
            None => true,
            Some(Json::String(m)) if m == "now" => true,
            Some(Json::String(m)) if m == "next-heartbeat" => false,
            Some(other) => {
                warnings.push(format!(
                    "wakeMode {other} is not now or next-heartbeat; using now"
                ));
                true
            }
        };
        let session_key = str_field(&p, "sessionKey");
        let mode = match p.get("sessionMode") {
            None => SessionMode::Isolated,
            Some(Json::String(m)) if m == "isolated" => SessionMode::Isolated,
            Some(Json::String(m)) if m == "persistent" => SessionMode::Persistent,
            Some(_) => return reject(bad("sessionMode must be isolated or persistent")),
        };
        let (deliver, channel, to, account_id) = self.direct_delivery(&p, &mut warnings)?;
        let model = match p.get("model") {
            None => "",
            Some(_) => str_field(&p, "model").ok_or_else(|| bad("model required"))?,
        };
        let thinking = str_field(&p, "thinking").unwrap_or_default();
        let timeout_seconds = match p.get("timeoutSeconds") {
            None => 0,
            Some(t) => match t.as_f64().filter(|t| t.is_finite() && *t >= 1.0) {
                Some(t) => t.floor().min(f64::from(u32::MAX)) as u32,
                None => {
                    warnings.push(format!(
                        "timeoutSeconds {t} ignored: not a positive number of seconds"
                    ));
                    0
                }
            },
        };
        if mode == SessionMode::Persistent && session_key.is_none() {
            return reject(bad("sessionKey is required when sessionMode is persistent"));
        }
        // A persistent session needs prefixes; when request keys are off altogether, the
        // core's refusal of the key is the answer (OpenClaw checks the key first).
        if mode == SessionMode::Persistent
            && self.c.prefixes.is_none()
            && self.c.allow_request_session_key
        {
            return reject(bad(
                "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent",
            ));
        }
        let run = AgentServiceRunRequest {
            message: message.to_string(),
            idempotency_key: r.idempotency_key.clone().unwrap_or_default(),
            // `hooks.*` (allowed agents, session keys) is the core's to apply.
            agent_id: agent.map(normalize_agent_id).unwrap_or_default(),
            session_key: session_key.unwrap_or_default().to_string(),
            // Only the default route (`last`) is best effort; a named channel + recipient
            // that cannot be delivered to is refused.
            best_effort_deliver: channel == "last",
            channel,
            to,
            account_id,
            deliver,
            model: model.to_string(),
            thinking: thinking.to_string(),
            timeout_seconds,
            label: name.to_string(),
            summary_wake: Some(SummaryWake {
                name: if name == "Hook" {
                    name.to_string()
                } else {
                    format!("Hook {name}")
                },
                now,
            }),
            ..Default::default()
        };
        let (mut body, run_warnings) = self.run(&r.caller, run).await?;
        warnings.extend(run_warnings);
        if wait {
            let run_id = body["runId"].as_str().unwrap_or_default().to_string();
            body["completion"] = self.complete(&r.caller, &run_id).await?;
        }
        Ok(json(StatusCode::OK, with_warnings(body, warnings)))
    }

    /// AgentService/Run → `{ok, runId, sessionKey}` plus a warning when the reply will not
    /// be delivered anywhere.
    pub(super) async fn run(
        &self,
        caller: &Caller,
        req: AgentServiceRunRequest,
    ) -> Answer<(Json, Vec<String>)> {
        let deliver = req.deliver;
        let resp = self
            .s
            .agent
            .run(caller.request(req))
            .await
            .map_err(|s| hooks_error(&s))?
            .into_inner();
        let mut warnings = Vec::new();
        if deliver && let Some(why) = reply::no_route(resp.delivery.as_ref()) {
            warnings.push(format!(
                "deliver is true but the reply will not be delivered anywhere: {why}"
            ));
        }
        Ok((
            json!({"ok": true, "runId": resp.run_id, "sessionKey": resp.session_key}),
            warnings,
        ))
    }

    /// Waits (AgentService/Wait, repeatedly) until the run is terminal; its completion.
    pub(super) async fn complete(&self, caller: &Caller, run_id: &str) -> Answer<Json> {
        loop {
            let started = Instant::now();
            let w = self
                .s
                .agent
                .wait(caller.request(AgentServiceWaitRequest {
                    run_id: run_id.to_string(),
                    timeout_ms: 30_000,
                    ..Default::default()
                }))
                .await
                .map_err(|s| hooks_error(&s))?
                .into_inner();
            let run = w.run.unwrap_or_default();
            if w.done {
                return Ok(reply::completion_json(&run));
            }
            if started.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
