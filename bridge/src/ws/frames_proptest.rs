//! Property tests for the WebSocket frame layer: the status → ErrorShape mapping, the frame
//! builders and the `connect` params / request-frame checks are total on arbitrary input and
//! always produce well-formed JSON frames.

use super::super::handshake::ConnectParams;
use super::{ErrorShape, closed_request, event, res_err, res_ok, rpc_error};
use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};
use tonic::{Code, Status};

fn code() -> impl Strategy<Value = Code> {
    (0i32..=17).prop_map(Code::from_i32)
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        // Floats that print and parse back exactly.
        (-100_000i32..100_000).prop_map(|n| json!(f64::from(n) / 8.0)),
        any::<String>().prop_map(Json::String),
        Just(json!("test")),
        Just(json!("operator")),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        let key = prop_oneof![
            Just("minProtocol".to_string()),
            Just("maxProtocol".to_string()),
            Just("client".to_string()),
            Just("id".to_string()),
            Just("mode".to_string()),
            Just("version".to_string()),
            Just("platform".to_string()),
            Just("role".to_string()),
            Just("scopes".to_string()),
            Just("auth".to_string()),
            Just("token".to_string()),
            Just("device".to_string()),
            Just("signedAt".to_string()),
            Just("publicKey".to_string()),
            Just("signature".to_string()),
            Just("nonce".to_string()),
            Just("type".to_string()),
            Just("method".to_string()),
            Just("params".to_string()),
            any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|kv| Json::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn status() -> impl Strategy<Value = Status> {
    (
        code(),
        any::<String>(),
        proptest::option::of((
            any::<String>(),
            prop::collection::hash_map(
                prop_oneof![
                    Just("missingScope".to_string()),
                    Just("requiredScopes".to_string()),
                    Just("retryAfterMs".to_string()),
                    Just("code".to_string()),
                    any::<String>(),
                ],
                any::<String>(),
                0..5,
            ),
        )),
        proptest::option::of(0u64..10_000_000),
    )
        .prop_map(|(code, message, info, retry)| {
            let mut details = tonic_types::ErrorDetails::new();
            if let Some((reason, md)) = info {
                details.set_error_info(reason, "clawplane.dev", md);
            }
            if let Some(ms) = retry {
                details.set_retry_info(Some(std::time::Duration::from_millis(ms)));
            }
            use tonic_types::StatusExt as _;
            Status::with_error_details(code, message, details)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rpc_error_is_total_and_well_formed(s in status()) {
        let e = rpc_error(&s);
        let j = e.to_json();
        prop_assert!(["FORBIDDEN", "INVALID_REQUEST", "UNAVAILABLE"].contains(&e.code), "{:?}", e);
        prop_assert_eq!(j["message"].as_str(), Some(s.message()));
        let details = j["details"].as_object().expect("details object");
        prop_assert!(details.get("grpcCode").is_some_and(Json::is_string));
        if s.code() == Code::PermissionDenied {
            prop_assert_eq!(e.code, "FORBIDDEN");
            prop_assert!(details.get("requiredScopes").is_some_and(Json::is_array));
        }
        if e.retry_after_ms.is_some() {
            prop_assert!(e.retryable);
        }
        // The frame carrying it is valid JSON with the id intact.
        let frame: Json = serde_json::from_str(&res_err("id-1", &e, None)).unwrap();
        prop_assert_eq!(&frame["error"], &j);
    }

    #[test]
    fn frames_round_trip_any_id_and_payload(id in any::<String>(), name in any::<String>(), payload in json_value(), seq in proptest::option::of(any::<u64>())) {
        let ok: Json = serde_json::from_str(&res_ok(&id, payload.clone())).unwrap();
        prop_assert_eq!(ok["type"].as_str(), Some("res"));
        prop_assert_eq!(ok["id"].as_str(), Some(id.as_str()));
        prop_assert_eq!(&ok["payload"], &payload);
        let err: Json = serde_json::from_str(&res_err(&id, &ErrorShape::invalid("x"), Some(payload.clone()))).unwrap();
        prop_assert_eq!(err["ok"].as_bool(), Some(false));
        prop_assert_eq!(&err["payload"], &payload);
        let ev: Json = serde_json::from_str(&event(&name, payload.clone(), seq)).unwrap();
        prop_assert_eq!(ev["event"].as_str(), Some(name.as_str()));
        prop_assert_eq!(ev.get("seq").and_then(Json::as_u64), seq);
    }

    #[test]
    fn connect_params_and_request_checks_are_total(params in json_value(), frame in json_value()) {
        let _ = closed_request(&frame);
        if let Ok(p) = ConnectParams::parse(&params) {
            prop_assert!(p.min_protocol >= 1 && p.max_protocol >= 1);
            prop_assert!(["operator", "node", "worker"].contains(&p.role.as_str()));
            prop_assert!(!p.client_id.is_empty() && !p.client_mode.is_empty());
        }
    }

    #[test]
    fn connect_params_parse_from_arbitrary_text(text in any::<String>()) {
        if let Ok(v) = serde_json::from_str::<Json>(&text) {
            let _ = ConnectParams::parse(&v);
            let _ = closed_request(&v);
        }
    }
}
