//! OpenClaw hooks (`hooks.*`, spec §4.1): black-box HTTP/1.1 against the real gateway.
//! Status codes and bodies, `/hooks/wake`, `/hooks/agent` with its fields, idempotency,
//! `waitForCompletion`, `GET /hooks/runs/<id>`, mapped hooks, and the one auth gate.

use std::time::Duration;

use clawplane_proto::v1::{
    AgentServiceRunRequest, ChatServiceSendRequest, DeliveryStatus, EventKind,
    EventServiceWatchRequest, GatewayServiceStatusRequest, GatewayServiceWakeRequest,
    GetRunRequest, ListRunsRequest, RunOrigin, RunState, WakeMode, event,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::fakes::discord::FakeDiscord;
use crate::harness::*;
use crate::http1::{self, Response};

const HOOK_TOKEN: &str = "hook-secret-1";
const NO_ROUTE: &str = "deliver is true but the reply will not be delivered anywhere";

/// A gateway with hooks enabled and `extra` merged into `hooks` (JSON5 object members).
async fn hooks_gateway(extra: &str) -> Gateway {
    hooks_gateway_with(extra, "").await
}

/// Like [`hooks_gateway`], with extra top-level members too.
async fn hooks_gateway_with(hooks_extra: &str, top_extra: &str) -> Gateway {
    Gateway::start_with(&format!(
        "{{ hooks: {{ enabled: true, token: '{HOOK_TOKEN}', {hooks_extra} }}, {top_extra} }}"
    ))
    .await
}

/// A hooks gateway whose `discord` channel talks to a local fake Discord.
async fn hooks_gateway_with_discord(hooks_extra: &str) -> (Gateway, FakeDiscord) {
    let discord = FakeDiscord::start("bot-token").await;
    let gw = hooks_gateway_with(
        hooks_extra,
        &format!(
            "channels: {{ discord: {{ token: 'bot-token', baseUrl: '{}' }} }}",
            discord.base_url
        ),
    )
    .await;
    (gw, discord)
}

/// `POST path` with the hooks token in `Authorization: Bearer`.
async fn post(gw: &Gateway, path: &str, body: &str) -> Response {
    post_with(
        gw,
        path,
        &[("Authorization", &format!("Bearer {HOOK_TOKEN}"))],
        body,
    )
    .await
}

async fn post_with(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    http1::request(gw.addr, "POST", path, headers, body.as_bytes()).await
}

fn body_text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[track_caller]
fn body_json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {:?} ({})",
            body_text(r),
            r.status_line
        )
    })
}

/// Asserts a status and a JSON body; returns the body.
#[track_caller]
fn expect_json(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{} {}", r.status_line, body_text(r));
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    body_json(r)
}

/// Asserts `400 {ok:false, error}` with exactly this error.
#[track_caller]
fn expect_400(r: &Response, error: &str) {
    let v = expect_json(r, 400);
    assert_eq!(v, json!({"ok": false, "error": error}), "{}", body_text(r));
}

/// Asserts a text/plain answer.
#[track_caller]
fn expect_text(r: &Response, status: u16, body: &str) {
    assert_eq!(r.status, status, "{} {}", r.status_line, body_text(r));
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "content-type {ct:?}");
    assert_eq!(body_text(r), body);
}

fn warnings(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| w.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Configuration and composition
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn hooks_config_is_checked_at_start() {
    let e = refuses_to_start("{ hooks: { enabled: true } }").await;
    assert!(e.contains("hooks.enabled requires hooks.token"), "{e}");
    let e = refuses_to_start("{ hooks: { enabled: true, token: 't', path: '/' } }").await;
    assert!(e.contains("hooks.path"), "{e}");
    let e = refuses_to_start(
        "{ hooks: { enabled: true, token: 't', mappings: [{ transform: { module: 'x.mjs' } }] } }",
    )
    .await;
    assert!(
        e.contains("hooks.mappings[0].transform") && e.contains("not supported"),
        "{e}"
    );
    let e = refuses_to_start(
        "{ hooks: { enabled: true, token: 't', mappings: [{ messageTemplate: 'Hi {{ payload.x' }] } }",
    )
    .await;
    assert!(e.contains("hooks.mappings[0].messageTemplate"), "{e}");
    let e = refuses_to_start(
        "{ hooks: { enabled: true, token: 't', allowedSessionKeyPrefixes: ['crm:'] } }",
    )
    .await;
    assert!(e.contains("must include 'hook:'"), "{e}");
}

#[tokio::test]
async fn hooks_token_equal_to_gateway_token_warns_and_unknown_keys_are_refused() {
    let gw = Gateway::start_with(
        "{ gateway: { auth: { token: 'same-secret' } }, hooks: { enabled: true, token: 'same-secret' } }",
    )
    .await;
    let log = gw.stderr();
    assert!(
        log.contains("hooks.token equals the gateway token"),
        "startup warns about a shared token:\n{log}"
    );
    let err = refuses_to_start(
        "{ hooks: { enabled: true, token: 't', bogusKey: 1, allowedAgentIDs: [] } }",
    )
    .await;
    assert!(
        err.contains("unknown config keys ")
            && err.contains("hooks.bogusKey")
            && err.contains("hooks.allowedAgentIDs (did you mean hooks.allowedAgentIds?)"),
        "unknown hooks keys stop the start, each named:\n{err}"
    );
}

#[tokio::test]
async fn hooks_disabled_fall_through_to_normal_routing() {
    let gw = Gateway::start().await;
    let r = post(&gw, "/hooks/agent", r#"{"message":"hi"}"#).await;
    let v = expect_json(&r, 404);
    assert_eq!(v["ok"], false);
    assert!(
        v["error"].as_str().unwrap().contains("no route"),
        "the gateway's own 404, not the hooks one: {v}"
    );
}

#[tokio::test]
async fn custom_path_is_normalised_and_served_on_the_one_port() {
    let gw = hooks_gateway("path: 'ingest/'").await;
    let r = post(&gw, "/ingest/agent", r#"{"message":"via ingest"}"#).await;
    let v = expect_json(&r, 200);
    assert_eq!(v["ok"], true);
    let r = post(&gw, "/hooks/agent", r#"{"message":"hi"}"#).await;
    assert_eq!(r.status, 404, "{}", body_text(&r));
    // gRPC still answers on the same listener.
    assert!(!gw.status().await.version.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Request handling order and status codes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn token_in_query_is_refused_before_anything_else() {
    let gw = hooks_gateway("").await;
    let auth = format!("Bearer {HOOK_TOKEN}");
    // Even with a valid header, and even for a wrong method.
    for (method, path) in [
        ("POST", format!("/hooks/agent?token={HOOK_TOKEN}")),
        ("GET", "/hooks/wake?x=1&token=abc".to_string()),
    ] {
        let r = http1::request(gw.addr, method, &path, &[("Authorization", &auth)], b"{}").await;
        assert_eq!(r.status, 400, "{method} {path}: {}", body_text(&r));
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        assert!(
            body_text(&r).starts_with(
                "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header"
            ),
            "{}",
            body_text(&r)
        );
    }
}

#[tokio::test]
async fn non_post_is_405_with_allow() {
    let gw = hooks_gateway("").await;
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = http1::request(gw.addr, method, "/hooks/agent", &[], b"").await;
        assert_eq!(r.status, 405, "{method}: {}", body_text(&r));
        assert_eq!(r.header("allow"), Some("POST"), "{method}");
    }
    // Before authentication: no token needed to learn the method.
    let r = http1::request(gw.addr, "GET", "/hooks", &[], b"").await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn token_by_header_only_and_wrong_or_missing_is_401() {
    let gw = hooks_gateway("").await;
    let msg = r#"{"message":"auth check"}"#;
    expect_text(
        &post_with(&gw, "/hooks/agent", &[], msg).await,
        401,
        "Unauthorized",
    );
    for headers in [
        vec![("Authorization", "Bearer wrong")],
        vec![("x-openclaw-token", "wrong")],
        vec![("Authorization", "Basic aG9vazpzZWNyZXQ=")],
        vec![("Authorization", "Bearer ")],
    ] {
        let r = post_with(&gw, "/hooks/agent", &headers, msg).await;
        expect_text(&r, 401, "Unauthorized");
    }
    // Authentication comes before the body and before the sub-path.
    expect_text(
        &post_with(&gw, "/hooks/agent", &[], "{not json").await,
        401,
        "Unauthorized",
    );
    expect_text(
        &post_with(&gw, "/hooks", &[], "{}").await,
        401,
        "Unauthorized",
    );

    let lower = format!("bearer {HOOK_TOKEN}");
    for headers in [
        vec![("Authorization", lower.as_str())],
        vec![("X-OpenClaw-Token", HOOK_TOKEN)],
        // Bearer wins over x-openclaw-token.
        vec![
            ("Authorization", &format!("Bearer {HOOK_TOKEN}")),
            ("x-openclaw-token", "wrong"),
        ],
    ] {
        let r = post_with(&gw, "/hooks/agent", &headers, msg).await;
        assert_eq!(expect_json(&r, 200)["ok"], true, "{headers:?}");
    }
    // The operator (gateway) token satisfies the hook operations too.
    let gw_auth = format!("Bearer {}", gw.token);
    let r = post_with(&gw, "/hooks/agent", &[("Authorization", &gw_auth)], msg).await;
    assert_eq!(expect_json(&r, 200)["ok"], true);
}

#[tokio::test]
async fn twenty_failures_then_429_with_retry_after_and_a_success_resets() {
    let gw = hooks_gateway("").await;
    let bad = [("Authorization", "Bearer nope")];
    for i in 0..19 {
        let r = post_with(&gw, "/hooks/wake", &bad, r#"{"text":"x"}"#).await;
        assert_eq!(r.status, 401, "failure {}", i + 1);
    }
    // A valid request resets the counter.
    let r = post(&gw, "/hooks/wake", r#"{"text":"reset"}"#).await;
    assert_eq!(expect_json(&r, 200)["ok"], true);
    for i in 0..20 {
        let r = post_with(&gw, "/hooks/wake", &bad, r#"{"text":"x"}"#).await;
        assert_eq!(r.status, 401, "failure {} after the reset", i + 1);
    }
    let r = post_with(&gw, "/hooks/wake", &bad, r#"{"text":"x"}"#).await;
    expect_text(&r, 429, "Too Many Requests");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Missing tokens count too and are also limited now.
    let r = post_with(&gw, "/hooks/agent", &[], r#"{"message":"x"}"#).await;
    assert_eq!(r.status, 429);
    // One limiter: the same address is limited on gRPC as well.
    let s = expect_err(
        gw.gateway()
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "Status while locked out",
    );
    assert_error(&s, Code::ResourceExhausted, "AUTH_RATE_LIMITED");
}

#[tokio::test]
async fn base_path_itself_is_404_after_auth() {
    let gw = hooks_gateway("").await;
    expect_text(&post(&gw, "/hooks", "{}").await, 404, "Not Found");
    expect_text(&post(&gw, "/hooks/", "{}").await, 404, "Not Found");
}

#[tokio::test]
async fn body_limit_bad_json_empty_body_and_no_content_type() {
    let gw = hooks_gateway("").await;
    // 256 KiB + 1 byte.
    let big = format!(r#"{{"message":"{}"}}"#, "a".repeat(256 * 1024));
    let r = post(&gw, "/hooks/agent", &big).await;
    let v = expect_json(&r, 413);
    assert_eq!(v, json!({"ok": false, "error": "payload too large"}));
    // Exactly 256 KiB is accepted.
    let pad = 256 * 1024 - r#"{"message":"x","name":""}"#.len();
    let exact = format!(r#"{{"message":"x","name":"{}"}}"#, " ".repeat(pad));
    assert_eq!(exact.len(), 256 * 1024);
    assert_eq!(
        expect_json(&post(&gw, "/hooks/agent", &exact).await, 200)["ok"],
        true
    );

    let r = post(&gw, "/hooks/agent", r#"{"message": "x",}"#).await;
    let v = expect_json(&r, 400);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("JSON"), "{v}");

    // An empty body is `{}`.
    expect_400(&post(&gw, "/hooks/agent", "").await, "message required");
    expect_400(&post(&gw, "/hooks/wake", "").await, "text required");

    // No Content-Type (http1 sends none), or a wrong one, is fine.
    let auth = format!("Bearer {HOOK_TOKEN}");
    let r = post_with(
        &gw,
        "/hooks/wake",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        r#"{"text":"plain"}"#,
    )
    .await;
    assert_eq!(expect_json(&r, 200)["ok"], true);
}

#[tokio::test]
async fn slow_body_gets_408_after_30_seconds() {
    let gw = hooks_gateway("").await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /hooks/agent HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {HOOK_TOKEN}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"message\":",
        gw.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut raw))
        .await
        .expect("an answer within 60 s")
        .expect("read");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains(r#"{"error":"request body timeout","ok":false}"#),
        "{text}"
    );
    assert!(
        elapsed >= Duration::from_secs(29),
        "the read timeout is 30 s, answered after {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// POST /hooks/wake
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wake_queues_and_coalesces_through_gateway_wake() {
    let gw = hooks_gateway("allowedAgentIds: ['main']").await;
    let head = gw.status().await.last_event_seq;
    let r = post(
        &gw,
        "/hooks/wake",
        r#"{"text":"disk full","mode":"next-heartbeat"}"#,
    )
    .await;
    assert_eq!(
        expect_json(&r, 200),
        json!({"ok": true, "mode": "next-heartbeat", "eventOutcome": "queued"})
    );
    let r = post(
        &gw,
        "/hooks/wake",
        r#"{"text":"  disk full ","mode":"next-heartbeat"}"#,
    )
    .await;
    assert_eq!(
        expect_json(&r, 200),
        json!({"ok": true, "mode": "next-heartbeat", "eventOutcome": "coalesced"})
    );
    let r = post(&gw, "/hooks/wake", r#"{"text":"build done"}"#).await;
    assert_eq!(
        expect_json(&r, 200),
        json!({"ok": true, "mode": "now", "eventOutcome": "queued"})
    );
    // Visible in the event feed as system events on the main session.
    let mut feed = gw
        .watch_after(
            head,
            session_filter("agent:main:main", &[EventKind::SystemEvent]),
        )
        .await;
    let texts: Vec<String> = [
        feed.next_event().await,
        feed.next_event().await,
        feed.next_event().await,
    ]
    .iter()
    .map(|e| match &e.payload {
        Some(event::Payload::SystemEvent(s)) => s.text.clone(),
        other => panic!("not a system event: {other:?}"),
    })
    .collect();
    assert_eq!(texts, ["disk full", "disk full", "build done"]);
    // Mode now started a heartbeat that drained both texts.
    let runs = gw.list_runs("agent:main:main").await;
    let hb = runs
        .iter()
        .find(|r| r.origin() == RunOrigin::Heartbeat)
        .expect("a heartbeat run");
    let hb = gw.wait_run(&hb.run_id).await;
    assert_eq!(hb.reply_text, "Noted: disk full; build done");

    // Errors, all 400 {ok:false, error}; nothing queued.
    expect_400(
        &post(&gw, "/hooks/wake", r#"{"text":"   "}"#).await,
        "text required",
    );
    expect_400(
        &post(&gw, "/hooks/wake", r#"{"text":5}"#).await,
        "text required",
    );
    expect_400(
        &post(&gw, "/hooks/wake", r#"{"text":"x","sessionKey":""}"#).await,
        "sessionKey must be a non-empty string",
    );
    expect_400(
        &post(
            &gw,
            "/hooks/wake",
            r#"{"text":"x","sessionKey":"hook:a","mode":"next-heartbeat"}"#,
        )
        .await,
        "sessionKey requires mode=now",
    );
    expect_400(
        &post(&gw, "/hooks/wake", r#"{"text":"x","sessionKey":"hook:a"}"#).await,
        "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable",
    );
    expect_400(
        &post(&gw, "/hooks/wake", r#"{"text":"x","agentId":"ops"}"#).await,
        "agentId is not allowed by hooks.allowedAgentIds",
    );
    expect_400(
        &post(&gw, "/hooks/wake", r#"{"text":"x","agentId":""}"#).await,
        "agentId must be a non-empty string",
    );
}

#[tokio::test]
async fn wake_session_key_follows_the_policy() {
    let gw =
        hooks_gateway("allowRequestSessionKey: true, allowedSessionKeyPrefixes: ['hook:']").await;
    let r = post(
        &gw,
        "/hooks/wake",
        r#"{"text":"ping","sessionKey":"hook:ops","mode":"now"}"#,
    )
    .await;
    assert_eq!(expect_json(&r, 200)["eventOutcome"], "queued");
    assert!(
        !gw.list_runs("agent:main:hook:ops").await.is_empty(),
        "mode now woke that session"
    );
    expect_400(
        &post(
            &gw,
            "/hooks/wake",
            r#"{"text":"ping","sessionKey":"crm:1"}"#,
        )
        .await,
        "sessionKey must start with one of: hook:",
    );
}

// ---------------------------------------------------------------------------------------------
// POST /hooks/agent
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn agent_run_is_a_run_visible_through_getrun_the_event_feed_and_hooks_runs() {
    let gw = hooks_gateway("").await;
    let head = gw.status().await.last_event_seq;
    let r = post(
        &gw,
        "/hooks/agent",
        r#"{"message":"hello from CI","name":"CI"}"#,
    )
    .await;
    let v = expect_json(&r, 200);
    assert_eq!(v["ok"], true);
    let run_id = v["runId"].as_str().expect("runId").to_string();
    uuid::Uuid::parse_str(&run_id).expect("without an idempotency key the runId is a UUID");
    let key = v["sessionKey"].as_str().unwrap().to_string();
    let uuid = key
        .strip_prefix("agent:main:hook:")
        .unwrap_or_else(|| panic!("isolated session agent:main:hook:<uuid>, got {key}"));
    uuid::Uuid::parse_str(uuid).expect("hook:<uuid>");
    assert!(
        warnings(&v).iter().any(|w| w.starts_with(NO_ROUTE)),
        "a fresh session has no route: {v}"
    );

    // AgentService/GetRun (one code path with gRPC callers).
    let run = gw.get_run(&run_id).await;
    assert_eq!(run.session_key, key);
    assert_eq!(run.origin(), RunOrigin::Agent);
    assert_eq!(run.message, "hello from CI");
    let run = gw.wait_run(&run_id).await;
    assert_eq!(run.state(), RunState::Succeeded, "{run:?}");
    assert_eq!(run.reply_text, "You said: hello from CI (turn 1)");
    assert_eq!(
        run.delivery.as_ref().unwrap().status(),
        DeliveryStatus::NoRoute
    );

    // The event feed.
    let events = gw.events_until(gw.status().await.last_event_seq).await;
    let states = run_states(
        &events[events.iter().position(|e| e.seq > head).unwrap()..],
        &run_id,
    );
    assert_eq!(
        states,
        [RunState::Queued, RunState::Running, RunState::Succeeded],
        "RUN events of the hook run"
    );
    assert_eq!(
        delta_text(&events, &run_id),
        "You said: hello from CI (turn 1)"
    );

    // Isolated: each request gets a fresh session.
    let r2 = post(&gw, "/hooks/agent", r#"{"message":"again"}"#).await;
    assert_ne!(expect_json(&r2, 200)["sessionKey"], key.as_str());

    // GET /hooks/runs/<runId>.
    let auth = format!("Bearer {HOOK_TOKEN}");
    let r = http1::request(
        gw.addr,
        "GET",
        &format!("/hooks/runs/{run_id}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    let v = expect_json(&r, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(v["runId"], run_id.as_str());
    assert_eq!(v["sessionKey"], key.as_str());
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["done"], true);
    assert_eq!(v["reply"], "You said: hello from CI (turn 1)");
    assert_eq!(v["delivery"]["status"], "no_route");
    assert_eq!(v["delivery"]["reason"], "NO_DELIVERY_ROUTE");
    assert!(
        v["delivery"]["detail"]
            .as_str()
            .unwrap()
            .contains("no last route")
    );
    assert_eq!(v["completion"]["status"], "ok");
    assert!(v["endTime"].as_str().unwrap().ends_with('Z'));
    // Unknown → 404; no token → 401; POST → 405 Allow: GET.
    let r = http1::request(
        gw.addr,
        "GET",
        "/hooks/runs/no-such-run",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(expect_json(&r, 404)["ok"], false);
    let r = http1::request(gw.addr, "GET", &format!("/hooks/runs/{run_id}"), &[], b"").await;
    expect_text(&r, 401, "Unauthorized");
    let r = post(&gw, &format!("/hooks/runs/{run_id}"), "{}").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test]
async fn failed_run_is_reported_by_hooks_runs() {
    let gw = hooks_gateway("").await;
    let v = expect_json(
        &post(&gw, "/hooks/agent", r#"{"message":"please /fail"}"#).await,
        200,
    );
    let run_id = v["runId"].as_str().unwrap();
    gw.wait_run(run_id).await;
    let auth = format!("Bearer {HOOK_TOKEN}");
    let r = http1::request(
        gw.addr,
        "GET",
        &format!("/hooks/runs/{run_id}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    let v = expect_json(&r, 200);
    assert_eq!(v["state"], "failed");
    assert_eq!(v["error"]["reason"], "MODEL_FAILED");
    assert_eq!(
        v["delivery"]["status"], "no_route",
        "the default route was unresolved"
    );
    assert_eq!(v["completion"]["status"], "error");
}

#[tokio::test]
async fn agent_fields_reach_the_run() {
    let (gw, discord) = hooks_gateway_with_discord("").await;
    let r = post(
        &gw,
        "/hooks/agent",
        r#"{"message":"fields","name":"Zap","agentId":"Ops","model":"builtin/echo","thinking":"low",
            "timeoutSeconds":12.7,"wakeMode":"next-heartbeat","channel":"discord","to":"user:42",
            "accountId":"acct1","channelId":"123","extra":true}"#,
    )
    .await;
    let v = expect_json(&r, 200);
    let key = v["sessionKey"].as_str().unwrap();
    assert!(
        key.starts_with("agent:ops:hook:"),
        "agentId scopes the session: {key}"
    );
    let w = warnings(&v);
    assert!(
        w.contains(&r#"unknown field "channelId" ignored"#.to_string()),
        "{w:?}"
    );
    assert!(
        w.contains(&r#"unknown field "extra" ignored"#.to_string()),
        "{w:?}"
    );
    assert!(
        !w.iter().any(|x| x.starts_with(NO_ROUTE)),
        "a configured channel with a recipient has a route: {w:?}"
    );
    let run = gw.wait_run(v["runId"].as_str().unwrap()).await;
    assert_eq!(run.agent_id, "ops");
    assert_eq!(run.model, "builtin/echo");
    assert_eq!(run.thinking, "low");
    assert_eq!(run.timeout_seconds, 12, "timeoutSeconds is floored");
    let d = run.delivery.unwrap();
    assert_eq!((d.channel.as_str(), d.to.as_str()), ("discord", "user:42"));
    assert_eq!(d.status(), DeliveryStatus::Delivered, "{d:?}");
    let dm = discord.requests_to("/users/@me/channels");
    assert_eq!(
        dm[0].body["recipient_id"], "42",
        "a DM opens the user's DM channel"
    );
    assert_eq!(
        discord.messages()[0].body["content"],
        run.reply_text.as_str()
    );

    // deliver:false opts out: NOT_REQUESTED and no delivery warning.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"quiet","deliver":false}"#,
        )
        .await,
        200,
    );
    assert!(warnings(&v).is_empty(), "{v}");
    let run = gw.wait_run(v["runId"].as_str().unwrap()).await;
    assert_eq!(run.delivery.unwrap().status(), DeliveryStatus::NotRequested);
    // deliver defaults to true (anything but false).
    let v = expect_json(
        &post(&gw, "/hooks/agent", r#"{"message":"loud","deliver":"no"}"#).await,
        200,
    );
    assert!(warnings(&v).iter().any(|w| w.starts_with(NO_ROUTE)), "{v}");
    // A non-positive timeout is ignored, with a warning.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"t","timeoutSeconds":-3}"#,
        )
        .await,
        200,
    );
    assert!(
        warnings(&v).iter().any(|w| w.contains("timeoutSeconds")),
        "{v}"
    );
    let run = gw.get_run(v["runId"].as_str().unwrap()).await;
    assert_eq!(run.timeout_seconds, 600, "the gateway default");
}

#[tokio::test]
async fn agent_validation_errors_are_400_and_start_nothing() {
    let (gw, _discord) = hooks_gateway_with_discord("allowedAgentIds: ['main', 'ops']").await;
    let before = gw.status().await.last_event_seq;
    for (body, error) in [
        (r#"{}"#, "message required"),
        (r#"{"message":"   "}"#, "message required"),
        (r#"{"message":7}"#, "message required"),
        (
            r#"{"message":"x","waitForCompletion":"yes"}"#,
            "waitForCompletion must be boolean",
        ),
        (
            r#"{"message":"x","sessionMode":"shared"}"#,
            "sessionMode must be isolated or persistent",
        ),
        (r#"{"message":"x","model":""}"#, "model required"),
        (
            r#"{"message":"x","agentId":"sales"}"#,
            "agentId is not allowed by hooks.allowedAgentIds",
        ),
        (
            r#"{"message":"x","agentId":5}"#,
            "agentId must be a non-empty string",
        ),
        (
            r#"{"message":"x","channel":"last","to":"1"}"#,
            "channel must name a concrete channel for hook delivery",
        ),
        (
            r#"{"message":"x","channel":"discord"}"#,
            "channel and to must be set together for hook delivery",
        ),
        (
            r#"{"message":"x","to":"user:1"}"#,
            "channel and to must be set together for hook delivery",
        ),
        (
            r#"{"message":"x","channel":"discord","to":""}"#,
            "to must be a non-empty string for hook delivery",
        ),
        (
            r#"{"message":"x","accountId":"a","to":"user:1"}"#,
            "accountId requires channel and to for hook delivery",
        ),
        (
            r#"{"message":"x","channel":"telegram","to":"1"}"#,
            "channel must be last|discord",
        ),
        (
            r#"{"message":"x","channel":3,"to":"1"}"#,
            "channel must be last|discord",
        ),
        (
            r#"{"message":"x","sessionMode":"persistent"}"#,
            "sessionKey is required when sessionMode is persistent",
        ),
    ] {
        expect_400(&post(&gw, "/hooks/agent", body).await, error);
    }
    // The service layer's own validation maps to 400 too.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","model":"nope/model"}"#,
        )
        .await,
        400,
    );
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("model"), "{v}");
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","thinking":"extreme"}"#,
        )
        .await,
        400,
    );
    assert!(v["error"].as_str().unwrap().contains("thinking"), "{v}");
    // Nothing was written.
    assert_eq!(
        gw.status().await.last_event_seq,
        before,
        "bad input writes nothing"
    );
}

#[tokio::test]
async fn request_session_keys_need_the_policy() {
    // Default: request keys are disabled.
    let gw = hooks_gateway("").await;
    let policy = "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable";
    expect_400(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","sessionKey":"hook:crm:1"}"#,
        )
        .await,
        policy,
    );
    expect_400(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","sessionKey":"hook:crm:1","sessionMode":"persistent"}"#,
        )
        .await,
        policy,
    );

    // Allowed, but no prefixes: persistent is refused, isolated uses the key.
    let gw = hooks_gateway("allowRequestSessionKey: true").await;
    expect_400(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","sessionKey":"hook:crm:1","sessionMode":"persistent"}"#,
        )
        .await,
        "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent",
    );
    let v = expect_json(
        &post(&gw, "/hooks/agent", r#"{"message":"x","sessionKey":"crm"}"#).await,
        200,
    );
    assert_eq!(v["sessionKey"], "agent:main:crm");
    // An agent-prefixed key is re-scoped to the target agent.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","sessionKey":"agent:ops:inbox"}"#,
        )
        .await,
        200,
    );
    assert_eq!(v["sessionKey"], "agent:main:inbox");
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","sessionKey":"agent:main:inbox","agentId":"ops"}"#,
        )
        .await,
        200,
    );
    assert_eq!(v["sessionKey"], "agent:ops:inbox");
}

#[tokio::test]
async fn persistent_sessions_continue_under_the_prefix_policy() {
    let gw =
        hooks_gateway("allowRequestSessionKey: true, allowedSessionKeyPrefixes: ['HOOK:', 'crm:']")
            .await;
    let body = r#"{"message":"remember","sessionKey":"hook:crm:42","sessionMode":"persistent"}"#;
    let a = expect_json(&post(&gw, "/hooks/agent", body).await, 200);
    let b = expect_json(&post(&gw, "/hooks/agent", body).await, 200);
    assert_eq!(a["sessionKey"], "agent:main:hook:crm:42");
    assert_eq!(b["sessionKey"], a["sessionKey"]);
    gw.wait_run(a["runId"].as_str().unwrap()).await;
    let run = gw.wait_run(b["runId"].as_str().unwrap()).await;
    assert_eq!(
        run.reply_text, "You said: remember (turn 2)",
        "the session continued"
    );
    expect_400(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","sessionKey":"sales:1","sessionMode":"persistent"}"#,
        )
        .await,
        "sessionKey must start with one of: hook:, crm:",
    );
}

#[tokio::test]
async fn default_session_key_is_used_when_none_is_given() {
    let gw = hooks_gateway("defaultSessionKey: 'hook:inbox'").await;
    let a = expect_json(
        &post(&gw, "/hooks/agent", r#"{"message":"one"}"#).await,
        200,
    );
    let b = expect_json(
        &post(&gw, "/hooks/agent", r#"{"message":"two"}"#).await,
        200,
    );
    assert_eq!(a["sessionKey"], "agent:main:hook:inbox");
    assert_eq!(b["sessionKey"], "agent:main:hook:inbox");
}

#[tokio::test]
async fn idempotent_replay_returns_the_same_run() {
    let gw = hooks_gateway("").await;
    let body = r#"{"message":"deploy finished"}"#;
    let a = expect_json(
        &post_with(
            &gw,
            "/hooks/agent",
            &[
                ("Authorization", &format!("Bearer {HOOK_TOKEN}")),
                ("Idempotency-Key", "deploy-77"),
            ],
            body,
        )
        .await,
        200,
    );
    // As in OpenClaw, the answer names the server's run id; the key is kept on the run.
    let id = a["runId"].as_str().expect("runId").to_string();
    assert_ne!(id, "deploy-77", "the run id is the server's");
    assert_eq!(gw.get_run(&id).await.idempotency_key, "deploy-77");
    let b = expect_json(
        &post_with(
            &gw,
            "/hooks/agent",
            &[
                ("Authorization", &format!("Bearer {HOOK_TOKEN}")),
                ("Idempotency-Key", "deploy-77"),
            ],
            body,
        )
        .await,
        200,
    );
    assert_eq!(b["runId"], id.as_str(), "a replay answers the first run");
    assert_eq!(
        b["sessionKey"], a["sessionKey"],
        "a replay lands on the same session"
    );
    let runs = gw.list_runs(a["sessionKey"].as_str().unwrap()).await;
    assert_eq!(runs.len(), 1, "one run for two deliveries: {runs:?}");

    // The other two places a key can come from.
    let c = expect_json(
        &post_with(
            &gw,
            "/hooks/agent",
            &[
                ("x-openclaw-token", HOOK_TOKEN),
                ("X-OpenClaw-Idempotency-Key", "zap-1"),
            ],
            body,
        )
        .await,
        200,
    );
    let key_of = |v: &Value| {
        let id = v["runId"].as_str().expect("runId").to_string();
        let gw = &gw;
        async move { gw.get_run(&id).await.idempotency_key }
    };
    assert_eq!(key_of(&c).await, "zap-1");
    let d = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"m","idempotencyKey":" body-key-1 "}"#,
        )
        .await,
        200,
    );
    assert_eq!(key_of(&d).await, "body-key-1");
    // The header wins over the body.
    let e = expect_json(
        &post_with(
            &gw,
            "/hooks/agent",
            &[
                ("x-openclaw-token", HOOK_TOKEN),
                ("Idempotency-Key", "hdr-1"),
            ],
            r#"{"message":"m","idempotencyKey":"body-2"}"#,
        )
        .await,
        200,
    );
    assert_eq!(key_of(&e).await, "hdr-1");

    // Same key, different content: 409.
    let r = post_with(
        &gw,
        "/hooks/agent",
        &[
            ("x-openclaw-token", HOOK_TOKEN),
            ("Idempotency-Key", "deploy-77"),
        ],
        r#"{"message":"something else"}"#,
    )
    .await;
    let v = expect_json(&r, 409);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("deploy-77"), "{v}");

    // A replay with waitForCompletion returns the same completion.
    let w1 = expect_json(
        &post_with(
            &gw,
            "/hooks/agent",
            &[("x-openclaw-token", HOOK_TOKEN), ("Idempotency-Key", "w-1")],
            r#"{"message":"wait","waitForCompletion":true}"#,
        )
        .await,
        200,
    );
    let w2 = expect_json(
        &post_with(
            &gw,
            "/hooks/agent",
            &[("x-openclaw-token", HOOK_TOKEN), ("Idempotency-Key", "w-1")],
            r#"{"message":"wait","waitForCompletion":true}"#,
        )
        .await,
        200,
    );
    assert_eq!(w1["runId"], w2["runId"]);
    assert_eq!(key_of(&w1).await, "w-1");
    assert_eq!(w1["completion"], w2["completion"]);

    // A key the gateway cannot use is a 400; an over-long one is ignored with a warning.
    let r = post_with(
        &gw,
        "/hooks/agent",
        &[
            ("x-openclaw-token", HOOK_TOKEN),
            ("Idempotency-Key", "has spaces/slash"),
        ],
        body,
    )
    .await;
    assert_eq!(expect_json(&r, 400)["ok"], false);
    let long = "k".repeat(300);
    let v = expect_json(
        &post_with(
            &gw,
            "/hooks/agent",
            &[("x-openclaw-token", HOOK_TOKEN), ("Idempotency-Key", &long)],
            body,
        )
        .await,
        200,
    );
    assert_ne!(v["runId"], long.as_str());
    assert!(
        warnings(&v).iter().any(|w| w.contains("Idempotency-Key")),
        "{v}"
    );
}

#[tokio::test]
async fn wait_for_completion_returns_the_completion_with_the_delivery_outcome() {
    let (gw, discord) = hooks_gateway_with_discord("").await;
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"/sleep 200 report","waitForCompletion":true}"#,
        )
        .await,
        200,
    );
    let c = &v["completion"];
    assert_eq!(c["status"], "ok", "{v}");
    assert_eq!(c["state"], "succeeded");
    assert_eq!(c["replyDisposition"], "visible");
    assert_eq!(c["reply"], "You said: /sleep 200 report (turn 1)");
    assert_eq!(c["delivered"], false);
    assert_eq!(c["deliveryAttempted"], false);
    assert_eq!(c["deliverySuppressionReason"], "no_delivery_target");
    assert_eq!(c["delivery"]["status"], "no_route");
    // The run really is terminal when the response arrives.
    let run = gw.get_run(v["runId"].as_str().unwrap()).await;
    assert_eq!(run.state(), RunState::Succeeded);

    // A named channel: the outcome names it.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"ship","channel":"discord","to":"channel:9","waitForCompletion":true}"#,
        )
        .await,
        200,
    );
    assert_eq!(v["completion"]["delivery"]["channel"], "discord");
    assert_eq!(v["completion"]["delivery"]["to"], "channel:9");
    assert_eq!(v["completion"]["delivery"]["status"], "delivered");
    assert_eq!(v["completion"]["delivered"], true);
    assert_eq!(discord.requests_to("/channels/9/messages").len(), 1);

    // deliver:false.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"q","deliver":false,"waitForCompletion":true}"#,
        )
        .await,
        200,
    );
    assert_eq!(v["completion"]["delivery"]["status"], "not_requested");
    assert_eq!(
        v["completion"]["deliverySuppressionReason"],
        "not_requested"
    );

    // A failed run: status error with the reason; delivery skipped.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"/fail now","waitForCompletion":true}"#,
        )
        .await,
        200,
    );
    assert_eq!(v["completion"]["status"], "error");
    assert_eq!(v["completion"]["error"]["reason"], "MODEL_FAILED");
    assert_eq!(
        v["completion"]["delivery"]["status"], "no_route",
        "no route was resolved at acceptance"
    );
    assert_eq!(v["completion"]["replyDisposition"], "empty");
}

// ---------------------------------------------------------------------------------------------
// The hooks token on gRPC: only the hook operations
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn hooks_token_is_limited_to_the_hook_operations() {
    let gw = hooks_gateway("").await;
    let hook = Token::bearer(HOOK_TOKEN);
    let mut agent = gw.agent_as(hook.clone()).await;
    let run = agent
        .run(AgentServiceRunRequest {
            message: "via grpc".into(),
            ..Default::default()
        })
        .await
        .expect("AgentService/Run with the hooks token")
        .into_inner();
    agent
        .get_run(GetRunRequest {
            run_id: run.run_id.clone(),
            ..Default::default()
        })
        .await
        .expect("AgentService/GetRun with the hooks token");
    gw.gateway_as(hook.clone())
        .await
        .wake(GatewayServiceWakeRequest {
            text: "hi".into(),
            mode: WakeMode::NextHeartbeat as i32,
            ..Default::default()
        })
        .await
        .expect("GatewayService/Wake with the hooks token");

    let s = expect_err(
        gw.chat_as(hook.clone())
            .await
            .send(ChatServiceSendRequest {
                session_key: "main".into(),
                message: "x".into(),
                ..Default::default()
            })
            .await,
        "ChatService/Send with the hooks token",
    );
    assert_error(&s, Code::PermissionDenied, "MISSING_SCOPE");
    let s = expect_err(
        gw.gateway_as(hook.clone())
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "Status with the hooks token",
    );
    assert_error(&s, Code::PermissionDenied, "MISSING_SCOPE");
    let s = expect_err(
        agent.list_runs(ListRunsRequest::default()).await,
        "ListRuns with the hooks token",
    );
    assert_error(&s, Code::PermissionDenied, "MISSING_SCOPE");
    let s = expect_err(
        gw.events_as(hook)
            .await
            .watch(EventServiceWatchRequest::default())
            .await,
        "Watch with the hooks token",
    );
    assert_error(&s, Code::PermissionDenied, "MISSING_SCOPE");
}

/// The hooks policy is the core's: the hooks token sent straight to gRPC, gRPC-Web or the
/// legacy WebSocket meets the same `hooks.*` rules as `/hooks/agent`, and a refusal changes
/// nothing.
#[tokio::test]
async fn hooks_policy_holds_on_every_surface() {
    let gw = hooks_gateway("allowedAgentIds: ['main']").await;
    let hook = Token::bearer(HOOK_TOKEN);
    let mut agent = gw.agent_as(hook.clone()).await;
    let run = |session_key: &str, agent_id: &str| AgentServiceRunRequest {
        message: "inject".into(),
        session_key: session_key.into(),
        agent_id: agent_id.into(),
        ..Default::default()
    };

    let s = expect_err(
        agent.run(run("agent:main:main", "")).await,
        "Run into the main session with the hooks token",
    );
    let meta = assert_error(&s, Code::PermissionDenied, "HOOK_SESSION_KEY_NOT_ALLOWED");
    assert_eq!(meta["configKey"], "hooks.allowRequestSessionKey");
    assert!(
        s.message().contains("hooks.allowRequestSessionKey=true"),
        "{s:?}"
    );
    let s = expect_err(
        agent.run(run("", "ops")).await,
        "Run for an agent outside hooks.allowedAgentIds",
    );
    let meta = assert_error(&s, Code::PermissionDenied, "HOOK_AGENT_NOT_ALLOWED");
    assert_eq!(meta["configKey"], "hooks.allowedAgentIds");
    let s = expect_err(
        gw.gateway_as(hook.clone())
            .await
            .wake(GatewayServiceWakeRequest {
                text: "inject".into(),
                mode: WakeMode::Now as i32,
                session_key: "agent:main:main".into(),
                ..Default::default()
            })
            .await,
        "Wake of the main session by key with the hooks token",
    );
    assert_error(&s, Code::PermissionDenied, "HOOK_SESSION_KEY_NOT_ALLOWED");

    // gRPC-Web carries the same credential to the same gate.
    let mut msg = Vec::new();
    prost::Message::encode(&run("agent:main:main", ""), &mut msg).expect("encode");
    let resp = http1::request(
        gw.addr,
        "POST",
        "/clawplane.v1.AgentService/Run",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
            ("authorization", &format!("Bearer {HOOK_TOKEN}")),
        ],
        &http1::grpc_web_frame(&msg),
    )
    .await;
    let trailers: Vec<(String, String)> = http1::grpc_web_frames(&resp.body)
        .iter()
        .filter(|f| f.flags & 0x80 != 0)
        .flat_map(|f| http1::parse_trailers(&f.payload))
        .chain(resp.headers.iter().cloned())
        .collect();
    assert!(
        trailers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("grpc-status") && v == "7"),
        "gRPC-Web answers PERMISSION_DENIED: {resp:?}"
    );

    // The legacy WebSocket's heartbeat_trigger with the hooks token.
    let mut ws = crate::harness::ws::Ws::open_path(&gw, &format!("/?token={HOOK_TOKEN}")).await;
    ws.frame().await;
    ws.send(json!({"type": "heartbeat_trigger", "id": "h1",
        "payload": {"text": "inject", "mode": "now", "sessionKey": "agent:main:main"}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(r["payload"]["code"], "FORBIDDEN", "{r}");

    // The HTTP hook answers OpenClaw's 400 with the same words.
    expect_400(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"x","sessionKey":"agent:main:main"}"#,
        )
        .await,
        "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable",
    );
    assert!(
        gw.list_runs("agent:main:main").await.is_empty(),
        "no refused call reached the main session"
    );

    // Without a key the core picks `hook:<uuid>`.
    let ok = agent
        .run(run("", ""))
        .await
        .expect("Run without a session key")
        .into_inner();
    assert!(ok.session_key.starts_with("agent:main:hook:"), "{ok:?}");
}

// ---------------------------------------------------------------------------------------------
// Mapped hooks
// ---------------------------------------------------------------------------------------------

const MAPPINGS: &str = r#"
    mappings: [
      { id: 'github', match: { path: 'github' }, name: 'GitHub {{headers.x-github-event}}',
        sessionKey: 'hook:github',
        messageTemplate: 'GitHub {{headers.x-github-event}}/{{ headers["x-github-event"] }} on {{payload.repository.full_name}} by {{sender.login}} kind={{query.kind}} path={{path}} at={{now}} missing=[{{nope.deeper}}] obj={{repository.owner}} first={{commits[0].id}}' },
      { match: { source: 'crm' }, action: 'wake', textTemplate: 'CRM {{event}}' },
      { match: { path: 'gmail' }, forEach: 'messages', messageTemplate: 'Mail {{subject}} from {{payload.from}}', sessionKey: 'hook:gmail' },
      { match: { path: 'bare' } },
      { match: { path: 'templated' }, messageTemplate: 'x', sessionKey: 'hook:t:{{id}}' },
      { match: { path: 'notify' }, messageTemplate: 'notify {{id}}', channel: 'discord', to: 'user:{{user}}' },
      { match: { path: 'lastroute' }, messageTemplate: 'last {{id}}' },
      { match: { path: 'silent' }, messageTemplate: 'silent {{id}}', deliver: false },
      { match: { path: 'pings' }, action: 'wake', forEach: 'items', textTemplate: 'ping {{n}}', wakeMode: 'next-heartbeat' },
    ]"#;

#[tokio::test]
async fn mapped_hook_renders_templates_with_minijinja() {
    let (gw, _discord) = hooks_gateway_with_discord(MAPPINGS).await;
    let auth = format!("Bearer {HOOK_TOKEN}");
    let r = post_with(
        &gw,
        "/hooks/github?kind=push",
        &[("Authorization", &auth), ("X-GitHub-Event", "push")],
        r#"{"repository":{"full_name":"acme/api","owner":{"login":"acme"}},"sender":{"login":"dev"},"commits":[{"id":"c1"}]}"#,
    )
    .await;
    let v = expect_json(&r, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["sessionKey"], "agent:main:hook:github",
        "a static key needs no policy"
    );
    let run = gw.wait_run(v["runId"].as_str().unwrap()).await;
    let msg = run.message;
    let (before, at) = msg.split_once(" at=").expect("at=");
    assert_eq!(
        before,
        "GitHub push/push on acme/api by dev kind=push path=github"
    );
    let (now, rest) = at.split_once(' ').unwrap();
    assert!(
        now.len() == 24 && now.ends_with('Z') && now.as_bytes()[10] == b'T',
        "{{{{now}}}} is ISO 8601: {now}"
    );
    assert_eq!(rest, r#"missing=[] obj={"login":"acme"} first=c1"#);

    // match.source, action wake.
    let r = post(
        &gw,
        "/hooks/anything",
        r#"{"source":"crm","event":"deal won"}"#,
    )
    .await;
    assert_eq!(
        expect_json(&r, 200),
        json!({"ok": true, "mode": "now", "eventOutcome": "queued"})
    );
    // No match → 404 text.
    expect_text(
        &post(&gw, "/hooks/unknown", r#"{"source":"erp"}"#).await,
        404,
        "Not Found",
    );
    // A mapping without a template.
    expect_400(
        &post(&gw, "/hooks/bare", "{}").await,
        "hook mapping requires message",
    );
    // A templated session key needs allowRequestSessionKey.
    expect_400(
        &post(&gw, "/hooks/templated", r#"{"id":"1"}"#).await,
        "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable",
    );
    // Direct routes take precedence over mappings.
    expect_400(
        &post(&gw, "/hooks/agent", r#"{"source":"crm"}"#).await,
        "message required",
    );
}

#[tokio::test]
async fn mapped_hook_for_each_fans_out() {
    let (gw, _discord) = hooks_gateway_with_discord(MAPPINGS).await;
    let r = post(
        &gw,
        "/hooks/gmail",
        r#"{"from":"boss@example.com","messages":[{"subject":"Q3"},{"subject":"Offsite"}]}"#,
    )
    .await;
    let v = expect_json(&r, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(v["dispatched"], 2);
    let ids: Vec<String> = v["runIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(v["runId"], ids[0].as_str());
    let a = gw.wait_run(&ids[0]).await;
    let b = gw.wait_run(&ids[1]).await;
    // Each item is rendered as the payload (its keys plain, `payload.x` the item's).
    assert_eq!(a.message, "Mail Q3 from ");
    assert_eq!(b.message, "Mail Offsite from ");
    assert_eq!(
        b.reply_text, "You said: Mail Offsite from  (turn 2)",
        "in item order"
    );

    // No actions → 204: empty array, missing key.
    for body in [
        r#"{"messages":[]}"#,
        r#"{"other":1}"#,
        r#"{"messages":null}"#,
    ] {
        let r = post(&gw, "/hooks/gmail", body).await;
        assert_eq!(r.status, 204, "{body}: {}", body_text(&r));
        assert!(r.body.is_empty());
    }
    // Not an array → 400, nothing dispatched.
    let v = expect_json(
        &post(&gw, "/hooks/gmail", r#"{"messages":"no"}"#).await,
        400,
    );
    assert_eq!(v["ok"], false);

    // At most 200 items, with a warning.
    let items: Vec<Value> = (0..205)
        .map(|i| json!({"subject": format!("s{i}")}))
        .collect();
    let v = expect_json(
        &post(&gw, "/hooks/gmail", &json!({"messages": items}).to_string()).await,
        200,
    );
    assert_eq!(v["dispatched"], 200);
    assert_eq!(v["runIds"].as_array().unwrap().len(), 200);
    assert!(warnings(&v).iter().any(|w| w.contains("205 items")), "{v}");

    // Fan-out with an idempotency key: one key per item, and a replay dispatches nothing new.
    let auth = format!("Bearer {HOOK_TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", "batch-1"),
    ];
    let body = r#"{"messages":[{"subject":"a"},{"subject":"b"}]}"#;
    let v = expect_json(&post_with(&gw, "/hooks/gmail", &headers, body).await, 200);
    let mut keys = Vec::new();
    for id in v["runIds"].as_array().expect("runIds") {
        keys.push(gw.get_run(id.as_str().unwrap()).await.idempotency_key);
    }
    assert_eq!(keys, ["batch-1:0", "batch-1:1"]);
    let again = expect_json(&post_with(&gw, "/hooks/gmail", &headers, body).await, 200);
    assert_eq!(again["runIds"], v["runIds"]);

    // Wake fan-out.
    let r = post(
        &gw,
        "/hooks/pings",
        r#"{"items":[{"n":1},{"n":1},{"n":2}]}"#,
    )
    .await;
    let v = expect_json(&r, 200);
    assert_eq!(v["dispatched"], 3);
    assert_eq!(v["mode"], "next-heartbeat");
    assert_eq!(v["eventOutcome"], "queued");
}

#[tokio::test]
async fn mapped_hook_delivery_fields() {
    let (gw, discord) = hooks_gateway_with_discord(MAPPINGS).await;
    let v = expect_json(
        &post(&gw, "/hooks/notify", r#"{"id":1,"user":"5"}"#).await,
        200,
    );
    let run = gw.wait_run(v["runId"].as_str().unwrap()).await;
    let d = run.delivery.unwrap();
    assert_eq!((d.channel.as_str(), d.to.as_str()), ("discord", "user:5"));
    assert_eq!(d.status(), DeliveryStatus::Delivered, "{d:?}");
    assert!(!warnings(&v).iter().any(|w| w.starts_with(NO_ROUTE)), "{v}");
    assert_eq!(
        discord.requests_to("/users/@me/channels")[0].body["recipient_id"],
        "5"
    );

    // Mappings default to channel "last".
    let v = expect_json(&post(&gw, "/hooks/lastroute", r#"{"id":2}"#).await, 200);
    let run = gw.wait_run(v["runId"].as_str().unwrap()).await;
    let d = run.delivery.unwrap();
    assert_eq!(d.status(), DeliveryStatus::NoRoute);
    assert_eq!(d.reason, "NO_DELIVERY_ROUTE");
    assert!(d.detail.contains("no last route"), "{d:?}");

    // deliver:false.
    let v = expect_json(&post(&gw, "/hooks/silent", r#"{"id":3}"#).await, 200);
    assert!(warnings(&v).is_empty(), "{v}");
    let run = gw.wait_run(v["runId"].as_str().unwrap()).await;
    assert_eq!(run.delivery.unwrap().status(), DeliveryStatus::NotRequested);
}

#[tokio::test]
async fn mapped_templated_session_keys_follow_the_policy() {
    let gw = hooks_gateway(
        r#"allowRequestSessionKey: true, allowedSessionKeyPrefixes: ['hook:'],
           mappings: [
             { match: { path: 'crm' }, messageTemplate: 'deal {{id}}', sessionKey: 'hook:crm:{{id}}', sessionMode: 'persistent' },
             { match: { path: 'bad' }, messageTemplate: 'x', sessionKey: '{{prefix}}:1' },
             { match: { path: 'empty' }, messageTemplate: 'x', sessionKey: '{{missing}}' },
           ]"#,
    )
    .await;
    let a = expect_json(&post(&gw, "/hooks/crm", r#"{"id":"42"}"#).await, 200);
    let b = expect_json(&post(&gw, "/hooks/crm", r#"{"id":"42"}"#).await, 200);
    assert_eq!(a["sessionKey"], "agent:main:hook:crm:42");
    assert_eq!(b["sessionKey"], a["sessionKey"]);
    gw.wait_run(a["runId"].as_str().unwrap()).await;
    assert_eq!(
        gw.wait_run(b["runId"].as_str().unwrap()).await.reply_text,
        "You said: deal 42 (turn 2)"
    );
    expect_400(
        &post(&gw, "/hooks/bad", r#"{"prefix":"sales"}"#).await,
        "sessionKey must start with one of: hook:",
    );
    expect_400(
        &post(&gw, "/hooks/empty", "{}").await,
        "hook mapping sessionKey template rendered empty",
    );
}

/// `/hooks/agent`: when the isolated run ends its summary is queued on the main session as
/// a system event — `wakeMode: now` (the default) runs the heartbeat at once, so the main
/// session's transcript gets it; `next-heartbeat` leaves it for the schedule.
#[tokio::test]
async fn hooks_agent_posts_its_summary_to_the_main_session() {
    use clawplane_proto::v1::{MessageRole, RunOrigin};
    let gw = hooks_gateway("").await;
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"summarise the inbox","name":"Email"}"#,
        )
        .await,
        200,
    );
    let run = gw.wait_run(v["runId"].as_str().unwrap_or_default()).await;
    assert_ne!(run.session_key, "agent:main:main", "an isolated session");
    // The heartbeat on the main session drains the summary into its transcript.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let beat = loop {
        let runs = gw.list_runs("agent:main:main").await;
        if let Some(b) = runs
            .into_iter()
            .find(|r| r.origin() == RunOrigin::Heartbeat)
        {
            break b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeat on the main session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    gw.wait_run(&beat.run_id).await;
    let history = gw.history("agent:main:main").await;
    let system: Vec<&str> = history
        .messages
        .iter()
        .filter(|m| m.role() == MessageRole::System)
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(
        system,
        [format!("Hook Email: {}", run.reply_text)],
        "{history:#?}"
    );

    // A failing run posts its error; next-heartbeat starts no heartbeat turn.
    let v = expect_json(
        &post(
            &gw,
            "/hooks/agent",
            r#"{"message":"/fail on purpose","wakeMode":"next-heartbeat"}"#,
        )
        .await,
        200,
    );
    let failed = gw.wait_run(v["runId"].as_str().unwrap_or_default()).await;
    assert!(failed.error.is_some(), "{failed:?}");
    let beats = |runs: Vec<clawplane_proto::v1::Run>| {
        runs.into_iter()
            .filter(|r| r.origin() == RunOrigin::Heartbeat)
            .count()
    };
    assert_eq!(
        beats(gw.list_runs("agent:main:main").await),
        1,
        "next-heartbeat ran nothing"
    );
    // The next heartbeat (here a wake) gets the error summary.
    let error = format!(
        "Hook (error): {}",
        failed
            .error
            .as_ref()
            .map(|e| e.message.as_str())
            .unwrap_or_default()
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = post(&gw, "/hooks/wake", r#"{"text":"marker","mode":"now"}"#).await;
        assert_eq!(r.status, 200);
        for b in gw.list_runs("agent:main:main").await {
            gw.wait_run(&b.run_id).await;
        }
        let history = gw.history("agent:main:main").await;
        if history
            .messages
            .iter()
            .any(|m| m.role() == MessageRole::System && m.text == error)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {error:?}: {history:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
