//! Property tests for the hooks' pure parts: mapping templates (rewrite, compile, render) and
//! request parsing (credential, idempotency key, headers, query) never panic on arbitrary
//! input, and rendering inserts payload values verbatim (no escaping, no re-evaluation).

use super::request::{MAX_IDEMPOTENCY_KEY, credential, header_map, idempotency_key, query_pairs};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use clawplane_config::hooks::prefix_allowed;
use clawplane_util::template::{Templates, context, environment, rewrite};
use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};

/// Template-ish text: arbitrary strings and fragments of the syntax the rewriter looks at.
fn template_src() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{%".to_string()),
        Just("%}".to_string()),
        Just("{#".to_string()),
        Just("payload.".to_string()),
        Just("headers.x-event-type".to_string()),
        Just("[0]".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(".".to_string()),
        Just("-".to_string()),
        Just(" | upper".to_string()),
        Just(" | tojson".to_string()),
        Just("x-y".to_string()),
        Just("a.b-c[1].d".to_string()),
        "[a-z_$-]{1,6}",
        "[ -~]{0,6}",
        any::<String>(),
    ];
    prop::collection::vec(fragment, 0..12).prop_map(|v| v.concat())
}

/// JSON without floats (whose formatting may legitimately differ).
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map("[a-z][a-z0-9_-]{0,6}", inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        "(Bearer |bearer |BEARER |Basic |bearer)[ -~]{0,20}".prop_map(String::into_bytes),
        "[ -~]{0,300}".prop_map(String::into_bytes),
    ]
}

fn headers_from(pairs: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            h.append(n, v);
        }
    }
    h
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("authorization".to_string()),
        Just("x-openclaw-token".to_string()),
        Just("idempotency-key".to_string()),
        Just("x-openclaw-idempotency-key".to_string()),
        Just("X-Event-Type".to_string()),
        "[A-Za-z0-9-]{1,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rewrite_is_total_and_keeps_plain_text(src in template_src()) {
        let out = rewrite(&src);
        if !src.contains("{{") {
            prop_assert_eq!(out, src);
        }
    }

    #[test]
    fn compile_and_render_never_panic(src in template_src(), payload in json_value(), path in any::<String>()) {
        let mut t = Templates::default();
        if t.add("t", &src).is_ok() {
            let mut headers = Map::new();
            headers.insert("x-event-type".into(), json!("push"));
            let _ = t.render("t", &payload, &headers, &path, "2026-01-01T00:00:00.000Z");
        }
        // The hooks' own environment, over the hooks' context.
        let mut env = environment();
        if env.add_template_owned("m", rewrite(&src)).is_ok() {
            let ctx = context(&payload, &Map::new(), &Map::new(), &path, "now");
            let _ = env.get_template("m").unwrap().render(ctx);
        }
    }

    #[test]
    fn strings_render_verbatim_without_escaping_or_evaluation(s in any::<String>(), h in "[ -~]{0,40}") {
        let mut t = Templates::default();
        t.add("t", "{{ body.x }}|{{x}}|{{ headers.x-y }}").unwrap();
        let mut headers = Map::new();
        headers.insert("x-y".into(), json!(h));
        let out = t.render("t", &json!({"x": s}), &headers, "p", "now").unwrap();
        prop_assert_eq!(out, format!("{s}|{s}|{h}"));
    }

    #[test]
    fn objects_and_arrays_render_as_json_that_parses_back(v in json_value()) {
        let mut t = Templates::default();
        t.add("t", "{{ body.v }}").unwrap();
        let out = t.render("t", &json!({"v": v}), &Map::new(), "p", "now").unwrap();
        match &v {
            Json::Null => prop_assert_eq!(out, ""),
            Json::String(s) => prop_assert_eq!(&out, s),
            Json::Array(_) | Json::Object(_) => {
                let back: Json = serde_json::from_str(&out).map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
                prop_assert_eq!(back, v.clone());
            }
            other => prop_assert_eq!(&out, &other.to_string(), "rendered {:?}", out),
        }
    }

    #[test]
    fn credential_is_total_and_trimmed(pairs in prop::collection::vec((header_name(), header_value()), 0..5)) {
        let h = headers_from(&pairs);
        if let Some(t) = credential(&h) {
            prop_assert!(!t.is_empty());
            prop_assert_eq!(t.trim(), t.as_str());
        }
    }

    #[test]
    fn bearer_tokens_round_trip(token in "[!-~]{1,64}") {
        let h = headers_from(&[("authorization".into(), format!("Bearer {token}").into_bytes())]);
        prop_assert_eq!(credential(&h), Some(token));
    }

    #[test]
    fn idempotency_key_is_total_and_bounded(
        pairs in prop::collection::vec((header_name(), header_value()), 0..5),
        payload in json_value(),
        body_key in any::<String>(),
    ) {
        let h = headers_from(&pairs);
        let mut payload = payload;
        if let Json::Object(m) = &mut payload {
            m.insert("idempotencyKey".into(), json!(body_key));
        }
        let mut warnings = Vec::new();
        if let Some(k) = idempotency_key(&h, &payload, &mut warnings) {
            prop_assert!(!k.is_empty() && k.chars().count() <= MAX_IDEMPOTENCY_KEY);
            prop_assert_eq!(k.trim(), k.as_str());
        }
    }

    #[test]
    fn header_map_and_query_pairs_are_total(
        pairs in prop::collection::vec((header_name(), header_value()), 0..8),
        query in prop_oneof![any::<String>(), "([a-z%=&+]|%[0-9A-Fa-f]{0,2}){0,30}"],
    ) {
        let h = headers_from(&pairs);
        let m = header_map(&h);
        prop_assert!(m.keys().all(|k| k.to_ascii_lowercase() == *k));
        prop_assert!(m.len() <= h.keys_len());
        let _ = query_pairs(Some(&query));
    }

    #[test]
    fn prefix_allowed_is_total(key in any::<String>(), prefixes in prop::collection::vec(any::<String>(), 0..4)) {
        if prefix_allowed(&key, &prefixes) {
            prop_assert!(!key.trim().is_empty());
        }
    }
}
