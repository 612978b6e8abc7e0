//! Webhook egress (`webhooks.outgoing`, `WebhookService` endpoints): events delivered to a
//! local receiver as Standard Webhooks — signature, retries, exactly-once per message across
//! restarts, transform, filter, 410 disabling, the SSRF guard, RPCs and the CLI.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clawplane_proto::device_auth::{self, SignedFields};
use clawplane_proto::v1::webhook_service_client::WebhookServiceClient;
use clawplane_proto::v1::{
    ChallengeRequest, ConnectDeviceRequest, CreateWebhookEndpointRequest,
    DeleteWebhookEndpointRequest, DeviceProof, EnableWebhookEndpointRequest, EventFilter,
    EventKind, ListWebhookDeliveriesRequest, ListWebhookEndpointsRequest, RunState,
    WebhookEndpoint, WebhookEndpointSource, WebhookMessage, WebhookMessageStatus, event,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::fakes::receiver::{Received, Receiver, Reply};
use crate::harness::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ----------------------------------------------------------------------------- helpers

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Verifies a request as a Standard Webhooks consumer would (spec §1): the signed content
/// `{id}.{timestamp}.{raw body}`, keyed with the base64-decoded bytes after `whsec_`, one of
/// the listed `v1` signatures, timestamp within 5 minutes.
#[track_caller]
fn assert_signed(r: &Received, secret: &str) {
    let id = r.header_str("webhook-id");
    let ts = r.header_str("webhook-timestamp");
    assert!(id.starts_with("msg_"), "webhook-id {id:?}");
    let t: i64 = ts
        .parse()
        .unwrap_or_else(|_| panic!("webhook-timestamp {ts:?}"));
    assert!((now() - t).abs() <= 300, "timestamp {t} too far from now");
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&r.bytes);
    let want = b64.encode(hmac(&key, &signed));
    let sigs = r.header_str("webhook-signature");
    assert!(
        sigs.split(' ')
            .any(|s| s.strip_prefix("v1,") == Some(want.as_str())),
        "no valid v1 signature in {sigs:?} (want v1,{want})"
    );
}

async fn webhooks(gw: &Gateway) -> WebhookServiceClient<Sdk> {
    gw.webhooks().await
}

async fn deliveries(gw: &Gateway, endpoint: &str) -> Vec<WebhookMessage> {
    webhooks(gw)
        .await
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            endpoint_id: endpoint.into(),
            ..Default::default()
        })
        .await
        .expect("ListWebhookDeliveries")
        .into_inner()
        .messages
}

async fn endpoints(gw: &Gateway) -> Vec<WebhookEndpoint> {
    webhooks(gw)
        .await
        .list_webhook_endpoints(ListWebhookEndpointsRequest {})
        .await
        .expect("ListWebhookEndpoints")
        .into_inner()
        .endpoints
}

/// Polls the delivery log until `done` holds for the only message of `endpoint`.
async fn wait_message(
    gw: &Gateway,
    endpoint: &str,
    mut done: impl FnMut(&WebhookMessage) -> bool,
) -> WebhookMessage {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let msgs = deliveries(gw, endpoint).await;
        if let Some(m) = msgs.iter().find(|m| done(m)) {
            return m.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery log never reached the expected state: {msgs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway with one `webhooks.outgoing` entry (given as JSON5 object text) and loopback
/// targets allowed; `egress` adds `webhooks.egress` keys.
async fn start_with_endpoint(endpoint: &str, egress: &str) -> Gateway {
    Gateway::builder()
        .config(&format!(
            "{{ webhooks: {{ outgoing: [{endpoint}], egress: {{ allowPrivateTargets: true, {egress} }} }} }}"
        ))
        .start()
        .await
}

fn webhook_events() -> EventFilter {
    EventFilter {
        kinds: vec![EventKind::Webhook as i32],
        ..Default::default()
    }
}

/// Waits until `rx` has answered a request whose body names `run_id` (`data.runId`).
async fn wait_delivery_of(rx: &Receiver, run_id: &str) -> Vec<Received> {
    rx.wait_until(PATIENCE, &format!("a delivery of {run_id}"), |got| {
        got.iter()
            .any(|r| r.answered != 0 && r.body["data"]["runId"].as_str() == Some(run_id))
    })
    .await
}

/// The endpoint with this id.
async fn endpoint(gw: &Gateway, id: &str) -> WebhookEndpoint {
    endpoints(gw)
        .await
        .into_iter()
        .find(|e| e.endpoint_id == id)
        .unwrap_or_else(|| panic!("no endpoint {id}"))
}

async fn completed_run(gw: &Gateway, session: &str, message: &str) -> String {
    let id = gw.send(session, message).await.run_id;
    gw.wait_run(&id).await;
    id
}

// ----------------------------------------------------------------------------- tests

#[tokio::test]
async fn run_completed_is_delivered_with_a_valid_standard_webhooks_signature() {
    let rx = Receiver::start().await;
    let gw = Gateway::builder()
        .config(&format!(
            "{{ webhooks: {{ outgoing: [{{ id: 'ops', event: 'run.completed', url: '{}', secret: '{SECRET}', headers: {{ 'X-Api-Key': '${{EGRESS_TEST_KEY}}' }} }}], egress: {{ allowPrivateTargets: true }} }} }}",
            rx.url("/hook")
        ))
        .env("EGRESS_TEST_KEY", "key-from-env-42")
        .start()
        .await;
    let run_id = completed_run(&gw, "egress", "hello").await;
    let got = rx.wait_for(1, PATIENCE).await;
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header_str("content-type"), "application/json");
    assert_eq!(
        r.header_str("x-api-key"),
        "key-from-env-42",
        "${{ENV}} in headers is substituted"
    );
    assert_signed(r, SECRET);
    let body = r.json();
    assert_eq!(body["type"], "run.completed", "{body}");
    assert!(body["timestamp"].is_string(), "{body}");
    assert_eq!(body["data"]["runId"], run_id.as_str(), "{body}");
    assert_eq!(body["data"]["state"], "RUN_STATE_SUCCEEDED", "{body}");
    assert_eq!(body["data"]["replyText"], "You said: hello (turn 1)");
    // Only the terminal state is an egress event: no deltas, no QUEUED/RUNNING. The outbox
    // reads the log in order, so once a later run's message exists every event of the first
    // run has been considered: the log holds exactly the two messages.
    let first_id = r.header_str("webhook-id").to_string();
    let marker = completed_run(&gw, "egress", "marker").await;
    let got = wait_delivery_of(&rx, &marker).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(deliveries(&gw, "ops").await.len(), 2);
    let m = wait_message(&gw, "ops", |m| {
        m.message_id == first_id && m.status() == WebhookMessageStatus::Delivered
    })
    .await;
    assert_eq!(m.event_type, "run.completed");
    assert_eq!(m.attempts.len(), 1);
    assert_eq!(m.attempts[0].status_code, 200);
}

#[tokio::test]
async fn egress_retried_after_a_500_then_delivered_exactly_once() {
    let rx = Receiver::start().await;
    rx.fail_next(1, 500);
    let gw = start_with_endpoint(
        &format!(
            "{{ id: 'ops', event: 'run.completed', url: '{}', secret: '{SECRET}' }}",
            rx.url("/")
        ),
        "retrySchedule: [0.5, 0.5]",
    )
    .await;
    let mut feed = gw.watch_after(0, Some(webhook_events())).await;
    completed_run(&gw, "retry", "once more").await;
    let got = rx.wait_for(2, PATIENCE).await;
    assert_eq!(got[0].answered, 500);
    assert_eq!(got[1].answered, 200);
    assert_eq!(
        got[0].header_str("webhook-id"),
        got[1].header_str("webhook-id"),
        "webhook-id is stable across retries"
    );
    assert_eq!(got[0].bytes, got[1].bytes, "the same body on every attempt");
    for r in &got {
        assert_signed(r, SECRET);
    }
    // Delivered means done: nothing more arrives. The marker: a run finishing > 0.25 s after
    // the delivery whose first attempt fails, so its retry (on the same 0.5 s ± 20 %
    // schedule) comes after any further attempt of the delivered message would have.
    let first_id = got[0].header_str("webhook-id").to_string();
    rx.fail_next(1, 500);
    let marker = completed_run(&gw, "retry", "/sleep 250 marker").await;
    let got = rx
        .wait_until(PATIENCE, "the marker's retry", |got| {
            got.iter()
                .filter(|r| r.answered == 200 && r.body["data"]["runId"] == marker.as_str())
                .count()
                == 1
        })
        .await;
    let ids: Vec<&str> = got.iter().map(|r| r.header_str("webhook-id")).collect();
    assert_eq!(got.len(), 4, "two attempts each: {got:#?}");
    assert_eq!(&ids[..2], &[first_id.as_str(); 2], "{got:#?}");
    let marker_id = ids[2].to_string();
    wait_message(&gw, "ops", |m| {
        m.message_id == marker_id && m.status() == WebhookMessageStatus::Delivered
    })
    .await;
    let m = wait_message(&gw, "ops", |m| {
        m.message_id == first_id && m.status() == WebhookMessageStatus::Delivered
    })
    .await;
    let codes: Vec<u32> = m.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, vec![200, 500], "attempts newest first: {m:#?}");
    assert_eq!(m.attempts[1].error, "HTTP 500");
    assert!(m.attempts[0].success && !m.attempts[1].success);
    // The endpoint recovered after the failure: an operational event says so.
    let ev = feed.next_event().await;
    assert!(
        matches!(&ev.payload, Some(event::Payload::Webhook(c)) if c.r#type == "recovered" && c.endpoint_id == "ops"),
        "{ev:?}"
    );
    let ep = &endpoints(&gw).await[0];
    assert_eq!(ep.consecutive_failures, 0);
    assert!(!ep.disabled);
}

#[tokio::test]
async fn egress_survives_a_restart_between_attempts() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(503));
    let mut gw = start_with_endpoint(
        &format!(
            "{{ id: 'ops', event: 'run.completed', url: '{}', secret: '{SECRET}' }}",
            rx.url("/")
        ),
        "retrySchedule: [2, 2, 2, 2]",
    )
    .await;
    completed_run(&gw, "restart", "survive").await;
    // The first attempt failed and its log entry is durable.
    wait_message(&gw, "ops", |m| m.attempts.len() == 1).await;
    gw.kill9().await;
    rx.set_default(Reply::status(200));
    gw.start_again().await;
    rx.wait_until(PATIENCE, "the delivery after the restart", |got| {
        got.iter().any(|r| r.answered == 200)
    })
    .await;
    // A later run's delivery: the dispatcher has worked through what the restart found due.
    let marker = completed_run(&gw, "restart", "marker").await;
    let mut got = wait_delivery_of(&rx, &marker).await;
    let last = got.pop().unwrap();
    assert_eq!(last.body["data"]["runId"], marker.as_str(), "{got:#?}");
    assert_eq!(got.len(), 2, "one failed attempt, one success: {got:#?}");
    assert_eq!(
        got[0].header_str("webhook-id"),
        got[1].header_str("webhook-id")
    );
    assert_signed(&got[1], SECRET);
    let first_id = got[0].header_str("webhook-id");
    let m = wait_message(&gw, "ops", |m| {
        m.message_id == first_id && m.status() == WebhookMessageStatus::Delivered
    })
    .await;
    assert_eq!(m.attempts.len(), 2);
}

#[tokio::test]
async fn events_appended_while_a_disabled_endpoint_waits_are_delivered_after_enable() {
    let rx = Receiver::start().await;
    rx.then([Reply::status(410)]);
    let marker_rx = Receiver::start().await;
    let gw = start_with_endpoint(
        &format!(
            "{{ id: 'gone', event: '*', url: '{}' }}, {{ id: 'marker', event: 'run.completed', url: '{}' }}",
            rx.url("/"),
            marker_rx.url("/")
        ),
        "retrySchedule: [0.2]",
    )
    .await;
    let mut feed = gw.watch_after(0, Some(webhook_events())).await;
    completed_run(&gw, "g1", "first").await;
    let ev = feed.next_event().await;
    let Some(event::Payload::Webhook(ch)) = &ev.payload else {
        panic!("not a webhook event: {ev:?}")
    };
    assert_eq!(ch.r#type, "disabled");
    assert_eq!(ch.endpoint_id, "gone");
    assert!(ch.detail.contains("410"), "{ch:?}");
    let ep = &endpoint(&gw, "gone").await;
    assert!(ep.disabled, "{ep:?}");
    assert_eq!(ep.source(), WebhookEndpointSource::Config);
    let first = wait_message(&gw, "gone", |m| m.status() == WebhookMessageStatus::Failed).await;
    // Disabled: nothing is sent (the other endpoint got the same event meanwhile).
    let second = completed_run(&gw, "g2", "second").await;
    wait_delivery_of(&marker_rx, &second).await;
    assert_eq!(rx.requests().len(), 1, "{:#?}", rx.requests());
    assert_eq!(deliveries(&gw, "gone").await.len(), 1);
    // Enabled: an `enabled` event, and the run that happened meanwhile is delivered.
    let ep = webhooks(&gw)
        .await
        .enable_webhook_endpoint(EnableWebhookEndpointRequest {
            endpoint_id: "gone".into(),
        })
        .await
        .expect("EnableWebhookEndpoint")
        .into_inner()
        .endpoint
        .unwrap();
    assert!(!ep.disabled);
    let ev = feed.next_event().await;
    assert!(
        matches!(&ev.payload, Some(event::Payload::Webhook(c)) if c.r#type == "enabled"),
        "{ev:?}"
    );
    let got = rx.wait_for(2, PATIENCE).await;
    assert_eq!(got[1].answered, 200);
    assert_eq!(got[1].json()["data"]["message"], "second");
    assert_ne!(got[1].header_str("webhook-id"), first.message_id);
}

#[tokio::test]
async fn run_failed_by_openclaw_alias_with_a_transform_template() {
    let rx = Receiver::start().await;
    let transform = r#"{\"text\": \"run {{ data.runId }} failed: {{ data.error.reason }}\", \"kind\": {{ type | tojson }}}"#;
    let gw = start_with_endpoint(
        &format!(
            "{{ event: ['agent.error'], url: '{}', transform: \"{transform}\" }}",
            rx.url("/slack")
        ),
        "",
    )
    .await;
    completed_run(&gw, "ok", "this one succeeds").await;
    let run_id = gw.send("bad", "please /fail now").await.run_id;
    let run = gw.wait_run(&run_id).await;
    assert_eq!(run.state(), RunState::Failed);
    let got = rx.wait_for(1, PATIENCE).await;
    let body = got[0].json();
    assert_eq!(
        body,
        serde_json::json!({"text": format!("run {run_id} failed: MODEL_FAILED"), "kind": "run.failed"})
    );
    assert!(
        got[0].header_str("webhook-signature").is_empty(),
        "unsigned without a secret"
    );
    assert!(got[0].header_str("webhook-id").starts_with("msg_"));
    // The successful run came first in the log, which the outbox reads in order: had it
    // made a message, the message would exist by now.
    let ep = endpoints(&gw).await.remove(0);
    assert_eq!(
        deliveries(&gw, &ep.endpoint_id).await.len(),
        1,
        "the successful run is not a run.failed event"
    );
    assert_eq!(rx.requests().len(), 1, "{:#?}", rx.requests());
}

#[tokio::test]
async fn filter_by_session_and_expression() {
    let rx = Receiver::start().await;
    let gw = start_with_endpoint(
        &format!(
            "{{ id: 'f', event: 'run.completed', url: '{}', filter: {{ sessionKey: 'alpha', expression: \"'ship' in data.message\" }} }}",
            rx.url("/")
        ),
        "",
    )
    .await;
    completed_run(&gw, "beta", "ship it").await;
    completed_run(&gw, "alpha", "hold it").await;
    completed_run(&gw, "alpha", "ship it").await;
    let got = rx.wait_for(1, PATIENCE).await;
    let body = got[0].json();
    assert_eq!(body["data"]["sessionKey"], "agent:main:alpha");
    assert_eq!(body["data"]["message"], "ship it");
    // The match was the last event: the outbox (reading the log in order) has considered
    // the other two, and made no message for them.
    assert_eq!(deliveries(&gw, "f").await.len(), 1);
    assert_eq!(rx.requests().len(), 1, "{:#?}", rx.requests());
}

#[tokio::test]
async fn retry_after_is_honoured_within_base_and_twice_base() {
    let rx = Receiver::start().await;
    rx.then([Reply::retry_after(429, "1.7")]);
    let gw = start_with_endpoint(
        &format!("{{ event: 'run.completed', url: '{}' }}", rx.url("/")),
        "retrySchedule: [1], throttleMinSeconds: 0",
    )
    .await;
    completed_run(&gw, "ra", "throttled").await;
    let got = rx.wait_for(2, PATIENCE).await;
    let gap = got[1].at - got[0].at;
    // Jitter alone gives at most 1.2 s; Retry-After 1.7 is inside [1, 2].
    assert!(
        gap >= Duration::from_millis(1600) && gap < Duration::from_millis(4000),
        "{gap:?}"
    );
    assert_eq!(got[1].answered, 200);
}

#[tokio::test]
async fn loopback_targets_are_refused_unless_allowed() {
    // At config load: the gateway does not start and names the key.
    let err = refuses_to_start(
        "{ webhooks: { outgoing: [{ event: 'run.completed', url: 'http://127.0.0.1:9/x' }] } }",
    )
    .await;
    assert!(
        err.contains("webhooks.outgoing[0].url") && err.contains("allowPrivateTargets"),
        "{err}"
    );
    // Unknown event names too.
    let err = refuses_to_start(
        "{ webhooks: { outgoing: [{ event: 'run.finished', url: 'https://example.com/' }] } }",
    )
    .await;
    assert!(err.contains("webhooks.outgoing[0].event"), "{err}");

    // Through the RPC: INVALID_ARGUMENT on `url`, for a literal and for a name.
    let gw = Gateway::start().await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://[::1]:9/",
    ] {
        let err = expect_err(
            webhooks(&gw)
                .await
                .create_webhook_endpoint(CreateWebhookEndpointRequest {
                    url: url.into(),
                    events: vec!["*".into()],
                    ..Default::default()
                })
                .await,
            "CreateWebhookEndpoint",
        );
        assert_invalid_field(&err, "url");
    }
    assert!(endpoints(&gw).await.is_empty());
}

#[tokio::test]
async fn endpoint_rpcs_create_list_deliver_delete() {
    let rx = Receiver::start().await;
    let gw = start_with_endpoint(
        &format!(
            "{{ id: 'cfg', event: 'security.alert', url: '{}' }}",
            rx.url("/cfg")
        ),
        "",
    )
    .await;
    let mut c = webhooks(&gw).await;
    let err = expect_err(
        c.create_webhook_endpoint(CreateWebhookEndpointRequest {
            url: rx.url("/api"),
            events: vec!["run.done".into()],
            ..Default::default()
        })
        .await,
        "unknown event",
    );
    assert_invalid_field(&err, "events");
    let ep = c
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            url: rx.url("/api"),
            events: vec!["agent.task.completed".into()],
            headers: [("x-team".to_string(), "core".to_string())].into(),
            ..Default::default()
        })
        .await
        .expect("CreateWebhookEndpoint")
        .into_inner()
        .endpoint
        .unwrap();
    assert!(ep.endpoint_id.starts_with("ep_"), "{ep:?}");
    assert!(ep.secret.starts_with("whsec_"), "a secret is generated");
    assert_eq!(ep.events, vec!["run.completed"]);
    assert_eq!(ep.source(), WebhookEndpointSource::Api);
    let listed = endpoints(&gw).await;
    assert_eq!(listed.len(), 2);
    let mine = listed
        .iter()
        .find(|e| e.endpoint_id == ep.endpoint_id)
        .unwrap();
    assert!(mine.secret.is_empty(), "secrets are not listed");
    assert!(mine.signed);
    assert_eq!(mine.header_names, vec!["x-team"]);

    let run_id = completed_run(&gw, "api", "via rpc").await;
    let got = rx.wait_for(1, PATIENCE).await;
    assert_eq!(got[0].path, "/api");
    assert_eq!(got[0].header_str("x-team"), "core");
    assert_signed(&got[0], &ep.secret);
    assert_eq!(got[0].json()["data"]["runId"], run_id.as_str());

    // Config endpoints are not deleted over RPC; unknown ids are NOT_FOUND.
    let err = expect_err(
        c.delete_webhook_endpoint(DeleteWebhookEndpointRequest {
            endpoint_id: "cfg".into(),
        })
        .await,
        "delete config endpoint",
    );
    assert_invalid_field(&err, "endpointId");
    c.delete_webhook_endpoint(DeleteWebhookEndpointRequest {
        endpoint_id: ep.endpoint_id.clone(),
    })
    .await
    .expect("DeleteWebhookEndpoint");
    let err = expect_err(
        c.delete_webhook_endpoint(DeleteWebhookEndpointRequest {
            endpoint_id: ep.endpoint_id.clone(),
        })
        .await,
        "delete twice",
    );
    assert_error(&err, Code::NotFound, "WEBHOOK_NOT_FOUND");
    // The marker: another endpoint subscribed to the same event.
    c.create_webhook_endpoint(CreateWebhookEndpointRequest {
        url: rx.url("/marker"),
        events: vec!["run.completed".into()],
        ..Default::default()
    })
    .await
    .expect("CreateWebhookEndpoint");
    let after = completed_run(&gw, "api", "after delete").await;
    let got = wait_delivery_of(&rx, &after).await;
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/api", "/marker"],
        "a deleted endpoint gets nothing"
    );
}

#[tokio::test]
async fn deliveries_and_redeliver_through_the_cli() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(500));
    let gw = start_with_endpoint(
        &format!(
            "{{ id: 'ops', event: 'run.completed', url: '{}', secret: '{SECRET}' }}",
            rx.url("/")
        ),
        "retrySchedule: []",
    )
    .await;
    completed_run(&gw, "cli", "log me").await;
    let failed = wait_message(&gw, "ops", |m| m.status() == WebhookMessageStatus::Failed).await;

    let out = gw
        .run_cli(&["webhooks", "deliveries", "--endpoint", "ops", "--json"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["messages"][0]["messageId"], failed.message_id.as_str());
    assert_eq!(v["messages"][0]["status"], "WEBHOOK_MESSAGE_STATUS_FAILED");
    assert_eq!(v["messages"][0]["attempts"][0]["statusCode"], 500);
    let out = gw.run_cli(&["webhooks", "deliveries"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&failed.message_id) && text.contains("failed") && text.contains("500"),
        "{text}"
    );

    rx.set_default(Reply::status(200));
    let out = gw
        .run_cli(&["webhooks", "redeliver", "--endpoint", "ops", "--failed"])
        .await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&failed.message_id));
    let got = rx.wait_for(2, PATIENCE).await;
    assert_eq!(got[1].answered, 200);
    assert_eq!(got[1].header_str("webhook-id"), failed.message_id);
    assert_signed(&got[1], SECRET);
    let m = wait_message(&gw, "ops", |m| {
        m.status() == WebhookMessageStatus::Delivered
    })
    .await;
    assert_eq!(m.attempts.len(), 2);

    // By message id: a delivered message can be sent again, same webhook-id.
    let out = gw
        .run_cli(&["webhooks", "redeliver", &failed.message_id])
        .await;
    assert!(out.status.success(), "{out:?}");
    let got = rx.wait_for(3, PATIENCE).await;
    assert_eq!(got[2].header_str("webhook-id"), failed.message_id);
    // Usage errors exit 2 with a message.
    let out = gw.run_cli(&["webhooks", "redeliver"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test]
async fn cli_manages_endpoints() {
    let rx = Receiver::start().await;
    let gw = start_with_endpoint(
        &format!(
            "{{ id: 'cfg', event: 'security.alert', url: '{}' }}",
            rx.url("/cfg")
        ),
        "",
    )
    .await;
    let url = rx.url("/cli");
    let out = gw
        .run_cli(&[
            "webhooks",
            "endpoints",
            "add",
            &url,
            "--event",
            "run.completed",
            "--header",
            "x-a=b",
            "--json",
        ])
        .await;
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = v["endpoint"]["endpointId"].as_str().unwrap().to_string();
    assert!(
        v["endpoint"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let out = gw.run_cli(&["webhooks", "endpoints", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&id) && text.contains("cfg") && text.contains(&url),
        "{text}"
    );
    completed_run(&gw, "x", "hi").await;
    let got = rx.wait_for(1, PATIENCE).await;
    assert_eq!(got[0].header_str("x-a"), "b");
    let out = gw.run_cli(&["webhooks", "endpoints", "delete", &id]).await;
    assert!(out.status.success(), "{out:?}");
    let out = gw.run_cli(&["webhooks", "endpoints", "delete", &id]).await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn device_pair_requested_is_delivered() {
    let rx = Receiver::start().await;
    let gw = Gateway::builder()
        .config(&format!(
            "{{ gateway: {{ nodes: {{ pairing: {{ autoApproveLocal: false }} }} }}, webhooks: {{ outgoing: [{{ event: 'device.pair.requested', url: '{}' }}], egress: {{ allowPrivateTargets: true }} }} }}",
            rx.url("/pair")
        ))
        .start()
        .await;
    let (sk, pk, device_id) = new_device_key();
    let mut devices = gw.devices().await;
    let c = devices
        .challenge(ChallengeRequest {})
        .await
        .expect("Challenge")
        .into_inner();
    let scopes = vec!["operator.read".to_string()];
    let f = SignedFields {
        device_id: &device_id,
        client_id: "cli",
        client_mode: "cli",
        role: "operator",
        scopes: &scopes,
        signed_at_ms: c.ts,
        token: &gw.token,
        nonce: &c.nonce,
        platform: "linux",
        device_family: "",
    };
    use ed25519_dalek::Signer as _;
    let sig = sk.sign(device_auth::payload_v3(&f).as_bytes());
    let err = devices
        .connect_device(ConnectDeviceRequest {
            device: Some(DeviceProof {
                id: device_id.clone(),
                public_key: pk,
                signature: device_auth::base64url(&sig.to_bytes()),
                signed_at: c.ts,
                nonce: c.nonce.clone(),
            }),
            client_id: "cli".into(),
            client_mode: "cli".into(),
            role: "operator".into(),
            scopes,
            platform: "linux".into(),
            token: gw.token.clone(),
            ..Default::default()
        })
        .await
        .expect_err("pairing required");
    let md = assert_error(&err, Code::FailedPrecondition, "PAIRING_REQUIRED");
    let got = rx.wait_for(1, PATIENCE).await;
    let body = got[0].json();
    assert_eq!(body["type"], "device.pair.requested");
    assert_eq!(body["data"]["deviceId"], device_id.as_str());
    assert_eq!(body["data"]["requestId"], md["requestId"].as_str());
}

#[tokio::test]
async fn channel_message_received_and_security_alert_are_delivered() {
    use crate::fakes::whatsapp;
    let rx = Receiver::start().await;
    let wa = whatsapp::FakeWhatsApp::start("wa-token", "1065").await;
    let gw = Gateway::builder()
        .config(&format!(
            "{{ channels: {{ whatsapp: {{ accessToken: 'wa-token', phoneNumberId: '1065', baseUrl: '{}', appSecret: 'app-secret', verifyToken: 'v', dmPolicy: 'open', allowFrom: ['*'] }} }}, webhooks: {{ outgoing: [{{ event: ['channel.message.received', 'security.alert'], url: '{}' }}], egress: {{ allowPrivateTargets: true }} }} }}",
            wa.base_url,
            rx.url("/ch")
        ))
        .start()
        .await;
    let addr = std::net::SocketAddr::new([127, 0, 0, 1].into(), gw.addr.port());
    let body = whatsapp::inbound_text_payload("1065", "16505551234", "wamid.egress", "hi there");
    let post = |sig: String| {
        let body = body.clone();
        async move {
            crate::http1::request(
                addr,
                "POST",
                "/channels/whatsapp/webhook",
                &[
                    ("Content-Type", "application/json"),
                    ("X-Hub-Signature-256", &sig),
                ],
                body.as_bytes(),
            )
            .await
        }
    };
    let r = post(whatsapp::sign("app-secret", &body)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = rx.wait_for(1, PATIENCE).await;
    let b = got[0].json();
    assert_eq!(b["type"], "channel.message.received", "{b}");
    assert_eq!(b["data"]["channel"], "whatsapp", "{b}");
    assert_eq!(b["data"]["text"], "hi there", "{b}");

    let r = post(whatsapp::sign("wrong-secret", &body)).await;
    assert_eq!(r.status, 401);
    let got = rx.wait_for(2, PATIENCE).await;
    let b = got[1].json();
    assert_eq!(b["type"], "security.alert", "{b}");
    assert_eq!(b["data"]["reason"], "BAD_SIGNATURE", "{b}");
    assert_eq!(b["data"]["surface"], "whatsapp", "{b}");
}

#[tokio::test]
async fn sustained_failure_disables_the_endpoint_with_an_event() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(500));
    let marker_rx = Receiver::start().await;
    let gw = start_with_endpoint(
        &format!(
            "{{ id: 'flaky', event: 'run.completed', url: '{}' }}, {{ id: 'marker', event: 'run.completed', url: '{}' }}",
            rx.url("/"),
            marker_rx.url("/")
        ),
        "retrySchedule: [0.2, 0.2, 0.2, 0.2], disableAfterFailures: 2",
    )
    .await;
    let mut feed = gw.watch_after(0, Some(webhook_events())).await;
    completed_run(&gw, "flaky", "fail twice").await;
    let ev = feed.next_event().await;
    let Some(event::Payload::Webhook(ch)) = &ev.payload else {
        panic!("not a webhook event: {ev:?}")
    };
    assert_eq!(ch.r#type, "disabled");
    assert_eq!(ch.endpoint_id, "flaky");
    assert!(ch.detail.contains("HTTP 500"), "{ch:?}");
    let ep = &endpoint(&gw, "flaky").await;
    assert!(ep.disabled && ep.consecutive_failures == 2, "{ep:?}");
    assert!(
        ep.failing_since.is_some() && ep.last_error == "HTTP 500",
        "{ep:?}"
    );
    // Disabled: no further attempts although the schedule had more. The marker: a run
    // finishing > 0.1 s after the disable whose first attempt at the other endpoint fails,
    // so its retry (same 0.2 s ± 20 % schedule) comes after flaky's third attempt would have.
    marker_rx.fail_next(1, 500);
    let marker = completed_run(&gw, "flaky", "/sleep 100 marker").await;
    marker_rx
        .wait_until(PATIENCE, "the marker's retry", |got| {
            got.iter()
                .any(|r| r.answered == 200 && r.body["data"]["runId"] == marker.as_str())
        })
        .await;
    assert_eq!(rx.requests().len(), 2, "{:#?}", rx.requests());
    let m = &deliveries(&gw, "flaky").await[0];
    assert_eq!(m.status(), WebhookMessageStatus::Pending);
    assert_eq!(m.attempts.len(), 2);
}

/// The "API & Webhooks" guide's egress: `transform` as an object whose every string leaf is
/// a template over `event.*` (`task_name`, `result`, `message`, `sender`, …), and
/// `filter.sender`.
#[tokio::test]
async fn the_guides_object_transform_event_fields_and_sender_filter() {
    use crate::fakes::whatsapp;
    let rx = Receiver::start().await;
    let wa = whatsapp::FakeWhatsApp::start("wa-token", "1065").await;
    let gw = Gateway::builder()
        .config(&format!(
            "{{ channels: {{ whatsapp: {{ accessToken: 'wa-token', phoneNumberId: '1065', baseUrl: '{}', appSecret: 'app-secret', verifyToken: 'v', dmPolicy: 'open', allowFrom: ['*'] }} }},
               webhooks: {{ egress: {{ allowPrivateTargets: true }}, outgoing: [
                 {{ event: 'channel.message.received', url: '{}', filter: {{ sender: '+1 650-555-1234' }},
                    transform: {{ text: 'Message from {{{{event.sender_name}}}} ({{{{event.sender}}}}): {{{{event.message}}}}', meta: {{ kind: '{{{{type}}}}', tags: ['{{{{event.channel}}}}', 'fixed'] }}, n: 1 }} }},
                 {{ event: 'run.completed', url: '{}', filter: {{ sessionKey: 'report' }},
                    transform: {{ content: 'Task {{{{event.task_name}}}} completed: {{{{event.result}}}}' }} }},
               ] }} }}",
            wa.base_url,
            rx.url("/msg"),
            rx.url("/task"),
        ))
        .start()
        .await;
    for (from, wamid, text) in [
        ("15550000000", "wamid.other", "not me"),
        ("16505551234", "wamid.ann", "deploy done"),
    ] {
        let body = whatsapp::inbound_text_payload("1065", from, wamid, text);
        let r = post_whatsapp_signed(&gw, "app-secret", &body).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let run = gw.send("report", "weekly numbers").await;
    let done = gw.wait_run(&run.run_id).await;
    let got = rx.wait_for(2, PATIENCE).await;
    let msg: Vec<_> = got.iter().filter(|r| r.path == "/msg").collect();
    assert_eq!(
        msg.len(),
        1,
        "only Ann's message passes filter.sender: {got:#?}"
    );
    assert_eq!(
        msg[0].json(),
        serde_json::json!({"text": "Message from Ann (16505551234): deploy done", "meta": {"kind": "channel.message.received", "tags": ["whatsapp", "fixed"]}, "n": 1})
    );
    let task = got
        .iter()
        .find(|r| r.path == "/task")
        .expect("the run's webhook");
    assert_eq!(
        task.json(),
        serde_json::json!({"content": format!("Task agent:main:report completed: {}", done.reply_text)})
    );
    // A template leaf that does not compile refuses the start, naming the key.
    let err = refuses_to_start(
        "{ webhooks: { egress: { allowPrivateTargets: true }, outgoing: [{ event: 'run.completed', url: 'http://127.0.0.1:9/x', transform: { text: '{{ broken' } }] } }",
    )
    .await;
    assert!(err.contains("webhooks.outgoing[0].transform"), "{err}");
}
