//! Responses of the hooks routes: OpenClaw's fixed answers (404, 405) and the JSON views of
//! a run (state, completion, delivery outcome).

use crate::respond::text;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use clawplane_proto::{
    pbjson_types::Timestamp,
    v1::{Delivery, DeliveryStatus, Run, RunState, WakeMode, WakeOutcome},
};
use serde_json::{Value as Json, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not Found")
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn state_name(state: i32) -> &'static str {
    match RunState::try_from(state).unwrap_or(RunState::Unspecified) {
        RunState::Unspecified => "unspecified",
        RunState::Queued => "queued",
        RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
        RunState::TimedOut => "timed_out",
        RunState::Interrupted => "interrupted",
    }
}

fn delivery_status(d: &Delivery) -> DeliveryStatus {
    DeliveryStatus::try_from(d.status).unwrap_or(DeliveryStatus::Unspecified)
}

/// The wire name of a delivery status (the hooks' JSON and the WebSocket shim's).
pub(crate) fn delivery_status_name(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Unspecified => "unspecified",
        DeliveryStatus::NotRequested => "not_requested",
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Skipped => "skipped",
        DeliveryStatus::NoRoute => "no_route",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Sending => "sending",
        DeliveryStatus::Unknown => "unknown",
    }
}

/// True when the delivery record says nothing will be sent (the "ok but nothing was sent"
/// trap), with the reason.
pub(crate) fn no_route(d: Option<&Delivery>) -> Option<&str> {
    d.filter(|d| delivery_status(d) == DeliveryStatus::NoRoute)
        .map(|d| d.detail.as_str())
}

/// `{status, channel?, to?, messageId?, detail?}`.
pub(crate) fn delivery_json(d: Option<&Delivery>) -> Json {
    let Some(d) = d else {
        return json!({"status": "unspecified"});
    };
    let mut m = serde_json::Map::new();
    m.insert(
        "status".into(),
        delivery_status_name(delivery_status(d)).into(),
    );
    for (k, v) in [
        ("channel", &d.channel),
        ("to", &d.to),
        ("messageId", &d.message_id),
        ("reason", &d.reason),
        ("detail", &d.detail),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), v.clone().into());
        }
    }
    Json::Object(m)
}

/// The completion of a terminal run, OpenClaw's `completion` plus the reply, the error and
/// the delivery outcome.
pub(crate) fn completion_json(run: &Run) -> Json {
    let state = RunState::try_from(run.state).unwrap_or(RunState::Unspecified);
    let status = match state {
        RunState::Succeeded => "ok",
        RunState::Cancelled => "skipped",
        _ => "error",
    };
    let reply = run.reply_text.trim();
    let disposition = if reply.is_empty() {
        "empty"
    } else if reply == "NO_REPLY" || reply == "HEARTBEAT_OK" {
        "silent"
    } else {
        "visible"
    };
    let d = run.delivery.as_ref();
    let ds = d.map_or(DeliveryStatus::Unspecified, delivery_status);
    let mut c = json!({
        "status": status,
        "state": state_name(run.state),
        "replyDisposition": disposition,
        "delivered": ds == DeliveryStatus::Delivered,
        "deliveryAttempted": matches!(
            ds,
            DeliveryStatus::Delivered | DeliveryStatus::Failed | DeliveryStatus::Unknown
        ),
        "reply": run.reply_text,
        "delivery": delivery_json(d),
    });
    if ds == DeliveryStatus::Failed {
        c["deliveryError"] = "delivery-failed".into();
    }
    if ds == DeliveryStatus::Unknown {
        c["deliveryError"] = "delivery-unknown".into();
    }
    let suppressed = match ds {
        DeliveryStatus::NotRequested => Some("not_requested"),
        DeliveryStatus::NoRoute => Some("no_delivery_target"),
        DeliveryStatus::Skipped => Some("skipped"),
        _ => None,
    };
    if let Some(reason) = suppressed {
        c["deliverySuppressionReason"] = reason.into();
    }
    if let Some(e) = &run.error {
        c["error"] = json!({"reason": e.reason, "message": e.message});
    }
    c
}

/// A timestamp as ISO 8601 (milliseconds, UTC).
pub(crate) fn time(t: Option<&Timestamp>) -> Option<String> {
    let t = t?;
    let at = UNIX_EPOCH
        + Duration::from_secs(u64::try_from(t.seconds).ok()?)
        + Duration::from_nanos(u64::try_from(t.nanos).ok()?);
    Some(humantime::format_rfc3339_millis(at).to_string())
}

/// The current time as OpenClaw's `{{now}}` (ISO 8601, milliseconds, UTC).
pub(crate) fn now_iso() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `GET <hooks>/runs/<runId>`: the run's state, reply, error and delivery outcome, plus the
/// completion once it is terminal.
pub(crate) fn run_json(run: &Run, done: bool) -> Json {
    let mut r = json!({
        "ok": true,
        "runId": run.run_id,
        "sessionKey": run.session_key,
        "agentId": run.agent_id,
        "state": state_name(run.state),
        "done": done,
        "model": run.model,
        "reply": run.reply_text,
        "delivery": delivery_json(run.delivery.as_ref()),
    });
    if let Some(e) = &run.error {
        r["error"] = json!({"reason": e.reason, "message": e.message});
    }
    for (k, t) in [
        ("createTime", &run.create_time),
        ("startTime", &run.start_time),
        ("endTime", &run.end_time),
    ] {
        if let Some(s) = time(t.as_ref()) {
            r[k] = s.into();
        }
    }
    if done {
        r["completion"] = completion_json(run);
    }
    r
}

pub(crate) fn wake_mode_name(m: WakeMode) -> &'static str {
    if m == WakeMode::NextHeartbeat {
        "next-heartbeat"
    } else {
        "now"
    }
}

pub(crate) fn outcome_name(o: i32) -> &'static str {
    if o == WakeOutcome::Coalesced as i32 {
        "coalesced"
    } else {
        "queued"
    }
}

pub(crate) fn with_warnings(mut body: Json, warnings: Vec<String>) -> Json {
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    body
}
