//! `POST <hooks>/wake` → GatewayService/Wake.

use super::{
    Hooks,
    reply::{outcome_name, wake_mode_name, with_warnings},
    request::{HookRequest, agent_field, str_field, unknown_fields},
};
use crate::{
    Caller,
    respond::{Answer, bad, json, reject},
    status::hooks_error,
};
use axum::{http::StatusCode, response::Response};
use clawplane_proto::keys::normalize_agent_id;
use clawplane_proto::v1::{GatewayServiceWakeRequest, WakeMode};
use serde_json::{Value as Json, json};

const WAKE_FIELDS: &[&str] = &["text", "mode", "agentId", "sessionKey"];

impl Hooks {
    /// `POST <hooks>/wake` → GatewayService/Wake.
    pub(super) async fn wake(&self, r: HookRequest) -> Answer<Response> {
        let p = r.payload.as_object().cloned().unwrap_or_default();
        let mut warnings = r.warnings;
        unknown_fields(&p, WAKE_FIELDS, &mut warnings);
        let text = str_field(&p, "text").ok_or_else(|| bad("text required"))?;
        let mode = match p.get("mode").and_then(Json::as_str) {
            Some("next-heartbeat") => WakeMode::NextHeartbeat,
            Some("now") | None => WakeMode::Now,
            Some(other) => {
                warnings.push(format!(
                    "mode {other:?} is not now or next-heartbeat; using now"
                ));
                WakeMode::Now
            }
        };
        let agent = agent_field(&p)?;
        let session_key = str_field(&p, "sessionKey");
        if p.contains_key("sessionKey") && session_key.is_none() {
            return reject(bad("sessionKey must be a non-empty string"));
        }
        if mode == WakeMode::NextHeartbeat && session_key.is_some() {
            return reject(bad("sessionKey requires mode=now"));
        }
        // `hooks.*` (allowed agents, session keys) is the core's to apply.
        let req = GatewayServiceWakeRequest {
            text: text.to_string(),
            mode: mode as i32,
            session_key: session_key.unwrap_or_default().to_string(),
            agent_id: agent.map(normalize_agent_id).unwrap_or_default(),
        };
        self.send_wake(&r.caller, req, warnings).await
    }

    /// GatewayService/Wake → `{ok, mode, eventOutcome}` (plus the warnings).
    pub(super) async fn send_wake(
        &self,
        caller: &Caller,
        req: GatewayServiceWakeRequest,
        warnings: Vec<String>,
    ) -> Answer<Response> {
        let mode = WakeMode::try_from(req.mode).unwrap_or(WakeMode::Now);
        let w = self
            .s
            .gateway
            .wake(caller.request(req))
            .await
            .map_err(|s| hooks_error(&s))?
            .into_inner();
        Ok(json(
            StatusCode::OK,
            with_warnings(
                json!({"ok": true, "mode": wake_mode_name(mode), "eventOutcome": outcome_name(w.outcome)}),
                warnings,
            ),
        ))
    }
}
