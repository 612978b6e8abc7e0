//! Gateway token auth, brute-force rate limit, generated token.

use clawplane_proto::v1::{EventServiceWatchRequest, GatewayServiceStatusRequest};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::harness::*;

#[tokio::test]
async fn missing_or_wrong_token_is_unauthenticated() {
    let gw = Gateway::start().await;

    let missing = expect_err(
        gw.gateway_as(Token::none())
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "Status without a token",
    );
    assert_error(&missing, Code::Unauthenticated, "TOKEN_MISSING");
    let msg = missing.message();
    assert!(
        [
            "gateway.token",
            "gateway.auth.token",
            "CLAWPLANE_GATEWAY_TOKEN"
        ]
        .iter()
        .any(|hint| msg.contains(hint)),
        "the message says where the token comes from: {msg:?}"
    );

    let wrong = expect_err(
        gw.gateway_as(Token::bearer("not-the-token"))
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "Status with a wrong token",
    );
    assert_error(&wrong, Code::Unauthenticated, "TOKEN_INVALID");

    let wrong_openclaw = expect_err(
        gw.gateway_as(Token::openclaw("not-the-token"))
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "Status with a wrong x-openclaw-token",
    );
    assert_error(&wrong_openclaw, Code::Unauthenticated, "TOKEN_INVALID");

    // Streaming calls are guarded too.
    let mut events = gw.events_as(Token::none()).await;
    let stream_err = match events.watch(EventServiceWatchRequest::default()).await {
        Err(s) => s,
        Ok(resp) => match resp.into_inner().message().await {
            Err(s) => s,
            Ok(m) => panic!("Watch without token should fail, got {m:?}"),
        },
    };
    assert_error(&stream_err, Code::Unauthenticated, "TOKEN_MISSING");

    // Both credential forms work.
    gw.gateway_as(Token::bearer(&gw.token))
        .await
        .status(GatewayServiceStatusRequest {})
        .await
        .expect("bearer token works");
    gw.gateway_as(Token::openclaw(&gw.token))
        .await
        .status(GatewayServiceStatusRequest {})
        .await
        .expect("x-openclaw-token works");

    // Health needs no token.
    let health = gw
        .health()
        .await
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health without token")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited() {
    let gw = Gateway::start().await;
    let mut bad = gw.gateway_as(Token::bearer("wrong")).await;
    let mut good = gw.gateway().await;
    // Opened before the lockout (which refuses every credential from the address).
    let mut feed = gw
        .watch(clawplane_proto::v1::EventServiceWatchRequest {
            follow_only: true,
            ..Default::default()
        })
        .await;

    // A success resets the failure counter.
    for i in 1..=15 {
        let s = expect_err(
            bad.status(GatewayServiceStatusRequest {}).await,
            "bad token",
        );
        assert_eq!(s.code(), Code::Unauthenticated, "failure {i}: {s:?}");
    }
    good.status(GatewayServiceStatusRequest {})
        .await
        .expect("the right token before the limit");

    for _ in 1..=20 {
        let s = expect_err(
            bad.status(GatewayServiceStatusRequest {}).await,
            "bad token",
        );
        assert_error(&s, Code::Unauthenticated, "TOKEN_INVALID");
    }
    let limited = expect_err(
        bad.status(GatewayServiceStatusRequest {}).await,
        "21st failure",
    );
    assert_error(&limited, Code::ResourceExhausted, "AUTH_RATE_LIMITED");
    let details = tonic_types::StatusExt::get_error_details(&limited);
    let retry = details
        .retry_info()
        .unwrap_or_else(|| panic!("RetryInfo missing: {limited:?}"));
    assert!(
        retry.retry_delay.is_some_and(|d| !d.is_zero()),
        "RetryInfo has a delay: {retry:?}"
    );
    // The lockout is a security alert on the feed (and for egress webhooks).
    let events = feed
        .collect_until(|e| e.kind() == clawplane_proto::v1::EventKind::Security)
        .await;
    let Some(clawplane_proto::v1::event::Payload::Security(alert)) =
        &events.last().unwrap().payload
    else {
        panic!("a security alert")
    };
    assert_eq!(alert.reason, "AUTH_LOCKOUT");
    assert_eq!(alert.remote_addr, "127.0.0.1");

    // Health needs no token, so it is not locked out.
    let health = gw
        .health()
        .await
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health during lockout")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn generated_token_is_persisted_and_reused() {
    let mut gw = Gateway::start_without_token().await;
    let path = gw.data_dir.join("gateway.token");
    let first = std::fs::read_to_string(&path).expect("gateway.token written");
    assert!(!first.trim().is_empty(), "a non-empty token");
    assert_eq!(gw.token, first.trim());
    gw.status().await; // works with the generated token

    let wrong = expect_err(
        gw.gateway_as(Token::bearer("nope"))
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "wrong token with a generated token",
    );
    assert_error(&wrong, Code::Unauthenticated, "TOKEN_INVALID");

    gw.restart().await;
    let second = std::fs::read_to_string(&path).expect("gateway.token kept");
    assert_eq!(
        second.trim(),
        first.trim(),
        "the token is reused after restart"
    );
    gw.status().await;
}

#[tokio::test]
async fn get_caller_names_the_credential_and_its_scopes() {
    use clawplane_proto::v1::GetCallerRequest;
    let gw = Gateway::start_with("{ hooks: { enabled: true, token: 'hooks-secret-1' } }").await;
    let me = gw
        .gateway()
        .await
        .get_caller(GetCallerRequest {})
        .await
        .expect("GetCaller with the gateway token")
        .into_inner();
    assert_eq!(me.credential, "gateway-token");
    for s in ["operator.admin", "operator.read", "operator.write"] {
        assert!(me.scopes.iter().any(|x| x == s), "{s} in {:?}", me.scopes);
    }
    let hook = gw
        .gateway_as(Token::bearer("hooks-secret-1"))
        .await
        .get_caller(GetCallerRequest {})
        .await
        .expect("GetCaller with the hooks token")
        .into_inner();
    assert_eq!(hook.credential, "hooks-token");
    assert_eq!(hook.scopes, vec!["hooks".to_string()]);
    let none = expect_err(
        gw.gateway_as(Token::none())
            .await
            .get_caller(GetCallerRequest {})
            .await,
        "GetCaller without a token",
    );
    assert_error(&none, Code::Unauthenticated, "TOKEN_MISSING");
}

/// Failures count once wherever they land. Each client below is a connection of its own,
/// so with replicas the balancer hands each to another replica: the lockout still comes
/// right after `maxAttempts` failures in all, and there is one AUTH_LOCKOUT alert.
#[tokio::test]
async fn guesses_over_several_connections_meet_one_count_and_one_alert() {
    let gw = Gateway::start_with(
        "{ gateway: { auth: { rateLimit: { maxAttempts: 5, lockoutMs: 1500 } } } }",
    )
    .await;
    let head = gw.status().await.last_event_seq;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(gw.gateway_as(Token::bearer("wrong")).await);
    }
    for i in 0..5 {
        let s = expect_err(
            clients[i % 3].status(GatewayServiceStatusRequest {}).await,
            "bad token",
        );
        assert_error(&s, Code::Unauthenticated, "TOKEN_INVALID");
    }
    for i in 5..8 {
        let s = expect_err(
            clients[i % 3].status(GatewayServiceStatusRequest {}).await,
            "a guess past the limit",
        );
        assert_error(&s, Code::ResourceExhausted, "AUTH_RATE_LIMITED");
    }
    // Once the lockout is over the right token works again; the log then holds one alert.
    let deadline = std::time::Instant::now() + PATIENCE;
    let now = loop {
        match gw.sdk().status().await {
            Ok(s) => break s.last_event_seq,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still locked out: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let alerts = gw
        .events_until(now)
        .await
        .into_iter()
        .filter(|e| e.seq > head)
        .filter_map(|e| match e.payload {
            Some(clawplane_proto::v1::event::Payload::Security(a)) => Some(a.reason),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(alerts, ["AUTH_LOCKOUT"]);
}
