//! Property tests for the config loader: arbitrary JSON5 text, arbitrary values at every
//! known key and arbitrary `CLAWPLANE_*` overrides never panic — `load` answers `Ok` or a
//! `ConfigError`.

use clawplane_server::config::load;
use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};
use std::sync::atomic::{AtomicU64, Ordering};

static N: AtomicU64 = AtomicU64::new(0);

/// Writes `text` to a fresh file and loads it with `env` for `${VAR}` and `vars` overrides.
fn load_text(text: &str, vars: &[(String, String)]) {
    let dir = std::env::temp_dir().join(format!(
        "clawplane-config-proptest-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json5");
    std::fs::write(&path, text).unwrap();
    let env = |k: &str| (k == "SET").then(|| "value".to_string());
    let _ = load(Some(&path), &env, vars);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys the config knows (and a few it does not), to build plausible documents.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("gateway"),
        Just("port"),
        Just("bind"),
        Just("auth"),
        Just("token"),
        Just("rateLimit"),
        Just("maxAttempts"),
        Just("windowMs"),
        Just("trustedProxies"),
        Just("maxConnections"),
        Just("ws"),
        Just("maxBufferedBytes"),
        Just("nodes"),
        Just("pairing"),
        Just("webhooks"),
        Just("incoming"),
        Just("outgoing"),
        Just("egress"),
        Just("endpoints"),
        Just("path"),
        Just("message"),
        Just("secret"),
        Just("scheme"),
        Just("retrySchedule"),
        Just("agents"),
        Just("defaults"),
        Just("maxConcurrent"),
        Just("timeoutSeconds"),
        Just("model"),
        Just("heartbeat"),
        Just("every"),
        Just("list"),
        Just("id"),
        Just("models"),
        Just("providers"),
        Just("api"),
        Just("session"),
        Just("dmScope"),
        Just("identityLinks"),
        Just("channels"),
        Just("discord"),
        Just("telegram"),
        Just("whatsapp"),
        Just("slack"),
        Just("events"),
        Just("retention"),
        Just("hooks"),
        Just("enabled"),
        Just("mappings"),
        Just("tls"),
        Just("bogus"),
    ]
    .prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        any::<String>().prop_map(Json::String),
        "[a-z0-9./:${}_-]{0,12}".prop_map(Json::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Json::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn env_var() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            Just("CLAWPLANE_GATEWAY_PORT".to_string()),
            Just("CLAWPLANE_GATEWAY_BIND".to_string()),
            Just("CLAWPLANE_SESSION__DM_SCOPE".to_string()),
            "CLAWPLANE_[A-Z_]{0,24}",
            any::<String>(),
        ],
        any::<String>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in prop_oneof![
        any::<String>(),
        "[{}\\[\\]:,'\"a-z0-9 /*\\n$]{0,80}",
    ]) {
        load_text(&text, &[]);
    }

    #[test]
    fn arbitrary_documents_never_panic(doc in value(), vars in prop::collection::vec(env_var(), 0..3)) {
        load_text(&doc.to_string(), &vars);
    }

    #[test]
    fn arbitrary_values_under_known_sections_never_panic(
        section in key(), sub in key(), v in value(), vars in prop::collection::vec(env_var(), 0..2),
    ) {
        let doc = json!({ section: { sub: v } });
        load_text(&doc.to_string(), &vars);
    }
}
