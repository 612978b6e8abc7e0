//! Templates on minijinja, with OpenClaw's conventions: `{{payload.x}}` or plain
//! `{{x}}`, `{{headers.x-event-type}}` (hyphenated names work), `{{query.x}}`, `{{path}}`,
//! `{{now}}`; missing values render as "", objects and arrays as JSON.

use minijinja::{Environment, UndefinedBehavior, Value, value::ValueKind};
use serde_json::{Map, Value as Json};

/// A minijinja environment with the hook conventions.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_formatter(|out, state, value| {
        if value.is_undefined() || value.is_none() {
            return Ok(());
        }
        match value.kind() {
            ValueKind::Map | ValueKind::Seq | ValueKind::Iterable => {
                let json = serde_json::to_string(value).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                })?;
                out.write_str(&json).map_err(minijinja::Error::from)
            }
            // As in JSON and OpenClaw's `String(value)`, not minijinja's Python-style `True`.
            ValueKind::Bool => out
                .write_str(if value.is_true() { "true" } else { "false" })
                .map_err(minijinja::Error::from),
            _ => minijinja::escape_formatter(out, state, value),
        }
    });
    env
}

/// True when the text has template expressions (a templated, not static, value).
pub fn is_templated(src: &str) -> bool {
    src.contains("{{") || src.contains("{%")
}

/// Rewrites simple paths with names minijinja cannot parse (`headers.x-event-type`,
/// `x-foo`) into subscript form (`headers["x-event-type"]`, `payload["x-foo"]`). Everything
/// else is left to minijinja.
pub fn rewrite(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let inner = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        match subscript_form(inner.trim()) {
            Some(expr) => {
                out.push_str("{{ ");
                out.push_str(&expr);
                out.push_str(" }}");
            }
            None => {
                out.push_str("{{");
                out.push_str(inner);
                out.push_str("}}");
            }
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '$'))
}

/// `a.b-c[0].d` → `a["b-c"][0].d` when some name is not an identifier; `None` when the
/// expression is not a simple path or needs no rewrite.
fn subscript_form(expr: &str) -> Option<String> {
    let mut parts: Vec<(bool, &str)> = Vec::new(); // (is_index, text)
    let mut rest = expr;
    let first_end = rest.find(['.', '[']).unwrap_or(rest.len());
    let first = &rest[..first_end];
    if !is_name(first) || first.starts_with('-') {
        return None;
    }
    parts.push((false, first));
    rest = &rest[first_end..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if !is_name(&r[..end]) {
                return None;
            }
            parts.push((false, &r[..end]));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            if r[..end].is_empty() || !r[..end].bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts.push((true, &r[..end]));
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    if parts.iter().all(|(idx, p)| *idx || is_ident(p)) {
        return None;
    }
    let mut out = String::new();
    for (i, (idx, p)) in parts.iter().enumerate() {
        if *idx {
            out.push_str(&format!("[{p}]"));
        } else if i == 0 && is_ident(p) {
            out.push_str(p);
        } else if i == 0 {
            out.push_str(&format!("payload[{p:?}]"));
        } else if is_ident(p) {
            out.push('.');
            out.push_str(p);
        } else {
            out.push_str(&format!("[{p:?}]"));
        }
    }
    Some(out)
}

/// What a template sees: the payload's own keys at the top, then `payload`, `headers`,
/// `query`, `path` and `now` (which win over payload keys of the same name).
pub fn context(
    payload: &Json,
    headers: &Map<String, Json>,
    query: &Map<String, Json>,
    path: &str,
    now: &str,
) -> Value {
    let mut m = payload.as_object().cloned().unwrap_or_default();
    m.insert("payload".into(), payload.clone());
    m.insert("headers".into(), template_headers(headers));
    m.insert("query".into(), Json::Object(query.clone()));
    m.insert("path".into(), Json::String(path.into()));
    m.insert("now".into(), Json::String(now.into()));
    Value::from_serialize(Json::Object(m))
}

/// Request headers that carry credentials; templates never see them (a rendered message
/// lands in transcripts, model prompts and deliveries): the gateway's own token headers
/// (`Authorization`, `X-OpenClaw-Token`, `X-Webhook-Secret`, Telegram's secret token),
/// provider signatures (`X-Hub-Signature*`, `Stripe-Signature`, `webhook-signature`,
/// `X-Signature-*`), cookies, proxy credentials and API-key headers.
pub fn is_credential_header(name: &str) -> bool {
    const EXACT: [&str; 10] = [
        "authorization",
        "proxy-authorization",
        "x-openclaw-token",
        "x-webhook-secret",
        "x-telegram-bot-api-secret-token",
        "stripe-signature",
        "webhook-signature",
        "cookie",
        "set-cookie",
        "x-api-key",
    ];
    let n = name.trim().to_ascii_lowercase();
    EXACT.contains(&n.as_str()) || n.starts_with("x-hub-signature") || n.starts_with("x-signature")
}

/// The headers a template may read: all but [`is_credential_header`].
fn template_headers(headers: &Map<String, Json>) -> Json {
    Json::Object(
        headers
            .iter()
            .filter(|(k, _)| !is_credential_header(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// A set of named templates with the hook conventions, for other surfaces (the
/// `/webhook/<path>` ingress renders `{{body}}`, `{{body.a.b}}`, `{{headers.x-y}}`,
/// `{{path}}`, `{{now}}`).
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates { env: environment() }
    }
}

impl Templates {
    /// Compiles `src` under `name`.
    pub fn add(&mut self, name: &str, src: &str) -> Result<(), String> {
        self.env
            .add_template_owned(name.to_string(), rewrite(src))
            .map_err(|e| e.to_string())
    }

    /// Renders `name` over `{body, payload (= body), headers, path, now}` plus the body's
    /// top-level members.
    pub fn render(
        &self,
        name: &str,
        body: &Json,
        headers: &Map<String, Json>,
        path: &str,
        now: &str,
    ) -> Result<String, String> {
        let mut m = body.as_object().cloned().unwrap_or_default();
        m.insert("body".into(), body.clone());
        m.insert("payload".into(), body.clone());
        m.insert("headers".into(), template_headers(headers));
        m.insert("path".into(), Json::String(path.into()));
        m.insert("now".into(), Json::String(now.into()));
        let ctx = Value::from_serialize(Json::Object(m));
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod credential_header_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_never_see_credential_headers() {
        let mut headers = Map::new();
        for (k, v) in [
            ("authorization", "Bearer s3cret"),
            ("x-openclaw-token", "s3cret"),
            ("x-webhook-secret", "s3cret"),
            ("x-hub-signature-256", "sha256=s3cret"),
            ("x-hub-signature", "sha1=s3cret"),
            ("stripe-signature", "t=1,v1=s3cret"),
            ("webhook-signature", "v1,s3cret"),
            ("x-signature-ed25519", "s3cret"),
            ("cookie", "sid=s3cret"),
            ("set-cookie", "sid=s3cret"),
            ("x-telegram-bot-api-secret-token", "s3cret"),
            ("x-event-type", "push"),
        ] {
            headers.insert(k.into(), json!(v));
        }
        let src = "{{ headers }}|{{ headers.authorization }}|{{ headers['x-hub-signature-256'] }}|{{ headers.x-event-type }}";
        let mut t = Templates::default();
        t.add("t", src).unwrap();
        let out = t.render("t", &json!({}), &headers, "p", "now").unwrap();
        assert!(!out.contains("s3cret"), "{out}");
        assert!(out.ends_with("||push"), "{out}");
        let mut env = environment();
        env.add_template_owned("h", rewrite(src)).unwrap();
        let ctx = context(&json!({}), &headers, &Map::new(), "p", "now");
        let out = env.get_template("h").unwrap().render(ctx).unwrap();
        assert!(!out.contains("s3cret") && out.ends_with("||push"), "{out}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, payload: Json) -> String {
        let mut env = environment();
        env.add_template_owned("t", rewrite(src)).unwrap();
        let mut headers = Map::new();
        headers.insert("x-event-type".into(), "push".into());
        let mut query = Map::new();
        query.insert("kind".into(), "k1".into());
        let ctx = context(
            &payload,
            &headers,
            &query,
            "github",
            "2026-01-01T00:00:00.000Z",
        );
        env.get_template("t").unwrap().render(ctx).unwrap()
    }

    #[test]
    fn openclaw_conventions() {
        let p = serde_json::json!({"a": {"b": 1}, "x": "X", "messages": [{"subject": "S"}], "x-y": 2, "n": null});
        assert_eq!(render("{{payload.x}}/{{x}}", p.clone()), "X/X");
        assert_eq!(render("{{headers.x-event-type}}", p.clone()), "push");
        assert_eq!(render("{{ headers[\"x-event-type\"] }}", p.clone()), "push");
        assert_eq!(
            render("{{query.kind}} {{path}} {{now}}", p.clone()),
            "k1 github 2026-01-01T00:00:00.000Z"
        );
        assert_eq!(render("{{messages[0].subject}}", p.clone()), "S");
        assert_eq!(
            render("[{{missing}}][{{a.c.d}}][{{n}}]", p.clone()),
            "[][][]"
        );
        assert_eq!(render("{{a}}", p.clone()), r#"{"b":1}"#);
        assert_eq!(render("{{x-y}}", p.clone()), "2");
        assert_eq!(render("{{ x | upper }}", p), "X");
    }

    #[test]
    fn rewrite_leaves_other_expressions() {
        assert_eq!(rewrite("a {{ x - 1 }} b"), "a {{ x - 1 }} b");
        assert_eq!(rewrite("{{-x}}"), "{{-x}}");
        assert_eq!(rewrite("{{ a.b }}"), "{{ a.b }}");
        assert_eq!(rewrite("{{a.b-c[1]}}"), "{{ a[\"b-c\"][1] }}");
    }
}
