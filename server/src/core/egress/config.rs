//! Endpoint definitions: `webhooks.outgoing[]` compiled at start (errors name the config
//! key) and the same checks for endpoints created by RPC (errors name the request field).

use super::{signing::secret_key, ssrf};
use clawplane_config::webhooks::{EgressConfig, FilterConfig, OutgoingWebhook, Transform};
use clawplane_proto::keys;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The event types an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "run.completed",
    "run.failed",
    "channel.message.received",
    "channel.disconnected",
    "security.alert",
    "device.pair.requested",
];

/// Checks `webhooks.outgoing` and `webhooks.egress`; errors name the config key.
pub fn validate(
    outgoing: &[OutgoingWebhook],
    cfg: &EgressConfig,
) -> std::result::Result<(), String> {
    configured(outgoing, cfg, "main").map(|_| ())
}

/// The `webhooks.outgoing` endpoints with their ids (given, or derived from URL and events so
/// that an unchanged entry keeps its cursor across restarts).
pub(super) fn configured(
    outgoing: &[OutgoingWebhook],
    cfg: &EgressConfig,
    main_key: &str,
) -> std::result::Result<Vec<(String, EndpointDef)>, String> {
    cfg.validate()?;
    let mut out: Vec<(String, EndpointDef)> = Vec::new();
    for (i, o) in outgoing.iter().enumerate() {
        let at = |f: &str| format!("webhooks.outgoing[{i}].{f}");
        let def = EndpointDef {
            url: o.url.trim().to_string(),
            events: o.event.list(),
            headers: o.headers.clone(),
            filter: o.filter.clone().map(|f| canonical_filter(f, main_key)),
            transform: match &o.transform {
                Some(Transform::Template(t)) if !t.trim().is_empty() => Some(t.clone()),
                _ => None,
            },
            transform_object: match &o.transform {
                Some(Transform::Object(m)) => Some(serde_json::Value::Object(m.clone())),
                _ => None,
            },
            secret: o.secret.clone().filter(|s| !s.is_empty()),
        };
        let def = check_def(def, cfg.allow_private_targets)
            .map_err(|(f, e)| format!("{}: {e}", at(f)))?;
        let id = match o.id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => {
                if id.len() > 64
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(format!(
                        "{}: {id:?} must be 1..64 of A-Z a-z 0-9 _ -",
                        at("id")
                    ));
                }
                id.to_string()
            }
            None => {
                let h = Sha256::digest(format!("{}\n{}", def.url, def.events.join(",")));
                format!("cfg_{}", &clawplane_util::crypto::hex(h)[..16])
            }
        };
        if out.iter().any(|(x, _)| *x == id) {
            return Err(format!(
                "{}: endpoint id {id:?} is used twice (set distinct `id`s)",
                at("id")
            ));
        }
        out.push((id, def));
    }
    Ok(out)
}

pub(super) fn canonical_filter(mut f: FilterConfig, main_key: &str) -> FilterConfig {
    let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    f.agent_id = clean(f.agent_id).map(|a| keys::normalize_agent_id(&a));
    f.session_key = clean(f.session_key).map(|k| {
        let agent = f.agent_id.clone().unwrap_or_else(|| "main".into());
        keys::canonical(&k, &agent, main_key)
    });
    f.channel = clean(f.channel);
    f.expression = clean(f.expression);
    f
}

/// The canonical name of a configured event name (OpenClaw aliases accepted).
fn event_name(s: &str) -> Option<&'static str> {
    match s.trim() {
        "*" => Some("*"),
        "agent.task.completed" => Some("run.completed"),
        "agent.error" => Some("run.failed"),
        other => EVENT_TYPES.iter().find(|t| **t == other).copied(),
    }
}

/// Checks a definition; the error names the offending field (config/JSON name).
pub(super) fn check_def(
    mut def: EndpointDef,
    allow_private: bool,
) -> std::result::Result<EndpointDef, (&'static str, String)> {
    if def.events.is_empty() {
        return Err((
            "event",
            format!("name at least one event: {}, or *", EVENT_TYPES.join(", ")),
        ));
    }
    let mut events = Vec::new();
    for e in &def.events {
        let Some(n) = event_name(e) else {
            return Err((
                "event",
                format!(
                    "unknown event {e:?}; known: {}, agent.task.completed, agent.error, *",
                    EVENT_TYPES.join(", ")
                ),
            ));
        };
        if !events.iter().any(|x: &String| x == n) {
            events.push(n.to_string());
        }
    }
    def.events = events;
    let url = reqwest::Url::parse(&def.url)
        .map_err(|e| ("url", format!("{:?} is not a URL: {e}", def.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err((
            "url",
            format!("{:?} must be an http or https URL with a host", def.url),
        ));
    }
    if !allow_private && ssrf::names_private_host(&url) {
        return Err((
            "url",
            format!(
                "{:?} is a loopback or private address; webhooks are not sent there unless webhooks.egress.allowPrivateTargets is true",
                def.url
            ),
        ));
    }
    for (name, value) in &def.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(("headers", format!("{name:?} is not a valid HTTP header")));
        }
        if name.to_ascii_lowercase().starts_with("webhook-") {
            return Err(("headers", format!("{name:?} is set by the gateway")));
        }
    }
    if let Some(s) = &def.secret {
        secret_key(s).map_err(|e| ("secret", e))?;
    }
    let env = environment();
    if let Some(t) = &def.transform {
        env.template_from_str(t)
            .map_err(|e| ("transform", format!("not a valid template: {e}")))?;
    }
    if let Some(obj) = &def.transform_object {
        let mut leaves = Vec::new();
        string_leaves(obj, &mut leaves);
        for t in leaves {
            env.template_from_str(t)
                .map_err(|e| ("transform", format!("{t:?} is not a valid template: {e}")))?;
        }
    }
    if let Some(x) = def.filter.as_ref().and_then(|f| f.expression.as_deref()) {
        env.compile_expression(x)
            .map_err(|e| ("filter.expression", format!("not a valid expression: {e}")))?;
    }
    Ok(def)
}

/// Every string in a JSON value, keys excepted.
pub(super) fn string_leaves<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| string_leaves(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| string_leaves(x, out)),
        _ => {}
    }
}

pub(super) fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

/// What an endpoint sends where (stored for RPC-created ones; from the config otherwise).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct EndpointDef {
    pub(super) url: String,
    pub(super) events: Vec<String>,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) filter: Option<FilterConfig>,
    pub(super) transform: Option<String>,
    /// The object form of `transform` (every string leaf a template); config only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) transform_object: Option<serde_json::Value>,
    pub(super) secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawplane_config::webhooks::EventNames;

    #[test]
    fn config_errors_name_the_key() {
        let cfg = EgressConfig::default();
        let o = |url: &str, ev: &str| OutgoingWebhook {
            url: url.into(),
            event: EventNames::One(ev.into()),
            ..Default::default()
        };
        let e = validate(&[o("http://127.0.0.1:9/x", "run.completed")], &cfg).unwrap_err();
        assert!(
            e.contains("webhooks.outgoing[0].url") && e.contains("allowPrivateTargets"),
            "{e}"
        );
        let e = validate(&[o("https://example.com/", "run.done")], &cfg).unwrap_err();
        assert!(e.contains("webhooks.outgoing[0].event"), "{e}");
        let e = validate(&[o("nope", "*")], &cfg).unwrap_err();
        assert!(e.contains("webhooks.outgoing[0].url"), "{e}");
        let mut bad = o("https://example.com/", "agent.error");
        bad.transform = Some(Transform::Template("{{ x".into()));
        let e = validate(&[bad], &cfg).unwrap_err();
        assert!(e.contains("webhooks.outgoing[0].transform"), "{e}");
        assert!(validate(&[o("https://example.com/", "agent.task.completed")], &cfg).is_ok());
    }
}
