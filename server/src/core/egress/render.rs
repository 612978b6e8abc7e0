//! Matching and rendering: which events an endpoint receives (event types, filters,
//! expressions) and the body sent (the default envelope or the endpoint's template).

use super::config::{EndpointDef, environment};
use clawplane_proto::v1::{Event, RunState, event};
use serde_json::{Value as Json, json};

/// The egress type of an event, if it is one endpoints can receive.
fn event_type(ev: &Event) -> Option<&'static str> {
    match ev.payload.as_ref()? {
        event::Payload::Run(run) => match RunState::try_from(run.state).ok()? {
            RunState::Succeeded => Some("run.completed"),
            RunState::Failed | RunState::TimedOut => Some("run.failed"),
            _ => None,
        },
        event::Payload::Channel(c) => match c.r#type.as_str() {
            "message.received" => Some("channel.message.received"),
            "disconnected" => Some("channel.disconnected"),
            _ => None,
        },
        event::Payload::Security(_) => Some("security.alert"),
        event::Payload::Device(d) if d.r#type == "pair.requested" => Some("device.pair.requested"),
        _ => None,
    }
}

/// The payload as canonical proto JSON.
fn payload_json(ev: &Event) -> Json {
    let v = match &ev.payload {
        Some(event::Payload::Run(x)) => serde_json::to_value(x),
        Some(event::Payload::Channel(x)) => serde_json::to_value(x),
        Some(event::Payload::Security(x)) => serde_json::to_value(x),
        Some(event::Payload::Device(x)) => serde_json::to_value(x),
        Some(event::Payload::Webhook(x)) => serde_json::to_value(x),
        _ => Ok(Json::Null),
    };
    v.unwrap_or(Json::Null)
}

/// `event` as templates see it: the event itself plus the flat fields the "API & Webhooks"
/// guide's templates use (`{{event.task_name}}`, `{{event.result}}`, `{{event.message}}`,
/// `{{event.error}}`, `{{event.sender}}`, …), so its examples work as written.
fn template_event(ev: &Event, ty: &str) -> Json {
    let mut v = serde_json::to_value(ev).unwrap_or(Json::Null);
    let Some(m) = v.as_object_mut() else {
        return v;
    };
    let mut put = |k: &str, x: &str| {
        m.insert(k.into(), Json::String(x.to_string()));
    };
    put("type", ty);
    put("session_key", &ev.session_key);
    put("run_id", &ev.run_id);
    match &ev.payload {
        Some(event::Payload::Run(r)) => {
            put("task_name", &r.session_key);
            put("agent_id", &r.agent_id);
            put("message", &r.message);
            put("result", &r.reply_text);
            put(
                "status",
                if r.state == RunState::Succeeded as i32 {
                    "completed"
                } else {
                    "failed"
                },
            );
            put(
                "error",
                r.error
                    .as_ref()
                    .map(|e| e.message.as_str())
                    .unwrap_or_default(),
            );
            if let Some(d) = &r.delivery {
                put("channel", &d.channel);
                put("sender", &d.to);
            }
        }
        Some(event::Payload::Channel(c)) => {
            put("channel", &c.channel);
            put("message", &c.text);
            put(
                "sender",
                if c.sender_id.is_empty() {
                    &c.from
                } else {
                    &c.sender_id
                },
            );
            put("sender_name", &c.sender_name);
            put(
                "error",
                if c.r#type == "disconnected" {
                    &c.detail
                } else {
                    ""
                },
            );
        }
        Some(event::Payload::Security(a)) => {
            put("message", &a.detail);
            put("error", &a.reason);
            put("sender", &a.remote_addr);
        }
        _ => {}
    }
    v
}

/// The sender an event is from, for `filter.sender`.
fn sender_of(ev: &Event) -> Option<String> {
    match ev.payload.as_ref()? {
        event::Payload::Channel(c) => {
            let id = if c.sender_id.is_empty() {
                &c.from
            } else {
                &c.sender_id
            };
            Some(clawplane_proto::keys::normalize_sender(&c.channel, id))
        }
        event::Payload::Run(r) => {
            let d = r.delivery.as_ref()?;
            Some(clawplane_proto::keys::normalize_sender(&d.channel, &d.to))
        }
        _ => None,
    }
}

/// Renders every string leaf of `obj` as a template over `ctx`.
fn render_object(
    env: &minijinja::Environment<'static>,
    obj: &Json,
    ctx: &minijinja::Value,
) -> std::result::Result<Json, String> {
    Ok(match obj {
        Json::String(t) => Json::String(
            env.render_str(t, ctx)
                .map_err(|e| format!("transform failed on {t:?}: {e}"))?,
        ),
        Json::Array(a) => Json::Array(
            a.iter()
                .map(|x| render_object(env, x, ctx))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), render_object(env, x, ctx)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A definition ready to match and render events.
pub(super) struct Compiled<'a> {
    def: &'a EndpointDef,
    env: minijinja::Environment<'static>,
}

impl<'a> Compiled<'a> {
    pub(super) fn new(def: &'a EndpointDef) -> std::result::Result<Self, String> {
        let mut env = environment();
        if let Some(t) = &def.transform {
            env.add_template_owned("transform", t.clone())
                .map_err(|e| format!("transform: {e}"))?;
        }
        Ok(Compiled { def, env })
    }

    /// The type and rendered body when `ev` goes to this endpoint; None when it does not.
    pub(super) fn render(
        &self,
        ev: &Event,
    ) -> Option<(&'static str, std::result::Result<String, String>)> {
        let ty = event_type(ev)?;
        if !self.def.events.iter().any(|e| e == "*" || e == ty) {
            return None;
        }
        let data = payload_json(ev);
        if let Some(f) = &self.def.filter {
            let run = match &ev.payload {
                Some(event::Payload::Run(r)) => Some(r),
                _ => None,
            };
            if let Some(k) = &f.session_key
                && ev.session_key != *k
                && run.is_none_or(|r| r.session_key != *k)
            {
                return None;
            }
            if let Some(a) = &f.agent_id {
                let agent = run.map(|r| r.agent_id.clone()).unwrap_or_else(|| {
                    ev.session_key
                        .strip_prefix("agent:")
                        .and_then(|s| s.split(':').next())
                        .unwrap_or_default()
                        .to_string()
                });
                if agent != *a {
                    return None;
                }
            }
            if let Some(c) = &f.channel {
                let ch = match &ev.payload {
                    Some(event::Payload::Channel(x)) => x.channel.as_str(),
                    Some(event::Payload::Run(r)) => r
                        .delivery
                        .as_ref()
                        .map(|d| d.channel.as_str())
                        .unwrap_or(""),
                    _ => "",
                };
                if ch != c {
                    return None;
                }
            }
            if let Some(want) = &f.sender {
                let from = sender_of(ev)?;
                let channel = match &ev.payload {
                    Some(event::Payload::Channel(c)) => c.channel.clone(),
                    Some(event::Payload::Run(r)) => r
                        .delivery
                        .as_ref()
                        .map(|d| d.channel.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                if from.is_empty()
                    || clawplane_proto::keys::normalize_sender(&channel, want) != from
                {
                    return None;
                }
            }
            if let Some(x) = &f.expression {
                let ctx = json!({"event": template_event(ev, ty), "type": ty, "data": data});
                let truthy = self
                    .env
                    .compile_expression(x)
                    .and_then(|e| e.eval(minijinja::Value::from_serialize(&ctx)))
                    .map(|v| v.is_true());
                match truthy {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, seq = ev.seq, "webhook filter expression failed; event skipped");
                        return None;
                    }
                }
            }
        }
        let timestamp = ev
            .time
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Json::Null);
        if let Some(obj) = &self.def.transform_object {
            let ctx = json!({"event": template_event(ev, ty), "type": ty, "data": data, "timestamp": timestamp});
            let body = render_object(&self.env, obj, &minijinja::Value::from_serialize(&ctx))
                .and_then(|b| serde_json::to_string(&b).map_err(|e| e.to_string()));
            return Some((ty, body));
        }
        let body = match &self.def.transform {
            None => {
                serde_json::to_string(&json!({"type": ty, "timestamp": timestamp, "data": data}))
                    .map_err(|e| e.to_string())
            }
            Some(_) => {
                let ctx = json!({"event": template_event(ev, ty), "type": ty, "data": data, "timestamp": timestamp});
                self.env
                    .get_template("transform")
                    .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)))
                    .map_err(|e| format!("transform failed: {e}"))
                    .and_then(|s| {
                        serde_json::from_str::<Json>(&s)
                            .map(|_| s.trim().to_string())
                            .map_err(|e| format!("transform did not produce JSON: {e}"))
                    })
            }
        };
        Some((ty, body))
    }
}
