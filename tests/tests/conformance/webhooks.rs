//! Webhooks (issue 3 §2, §3): the synchronous `/webhooks/<instance-id>` endpoint with its
//! API keys and calls log, and the templated `/webhook/<path>` ingress with its secret and
//! signature schemes. Black-box over HTTP/1.1, gRPC and the CLI.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clawplane_proto::v1::webhook_service_client::WebhookServiceClient;
use clawplane_proto::v1::{
    CreateWebhookKeyRequest, CreateWebhookKeyResponse, GetRunRequest, ListRunsRequest,
    ListWebhookCallsRequest, ListWebhookKeysRequest, RevokeWebhookKeyRequest,
    RotateWebhookKeyRequest, RunState, WebhookCall,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::harness::*;
use crate::http1::{self, Response};

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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[track_caller]
fn body_json(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", r.status, text(r)))
}

#[track_caller]
fn assert_fail(r: &Response, status: u16) -> String {
    assert_eq!(r.status, status, "{}: {}", r.status_line, text(r));
    let b = body_json(r);
    assert_eq!(b["ok"], false, "{b}");
    let e = b["error"].as_str().expect("error string").to_string();
    assert!(!e.is_empty());
    e
}

async fn webhooks(gw: &Gateway) -> WebhookServiceClient<Sdk> {
    gw.webhooks().await
}

async fn add_key(gw: &Gateway, label: &str, private: bool) -> CreateWebhookKeyResponse {
    webhooks(gw)
        .await
        .create_webhook_key(CreateWebhookKeyRequest {
            label: label.into(),
            private,
        })
        .await
        .expect("CreateWebhookKey")
        .into_inner()
}

async fn calls(gw: &Gateway) -> Vec<WebhookCall> {
    webhooks(gw)
        .await
        .list_webhook_calls(ListWebhookCallsRequest {})
        .await
        .expect("ListWebhookCalls")
        .into_inner()
        .calls
}

async fn all_runs(gw: &Gateway) -> usize {
    gw.agent()
        .await
        .list_runs(ListRunsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListRuns")
        .into_inner()
        .runs
        .len()
}

async fn call_at(
    addr: SocketAddr,
    id: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> Response {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    headers.extend_from_slice(extra);
    http1::request(
        addr,
        "POST",
        &format!("/webhooks/{id}"),
        &headers,
        body.as_bytes(),
    )
    .await
}

async fn call(gw: &Gateway, id: &str, key: Option<&str>, session: &str, message: &str) -> Response {
    let body = json!({"session_name": session, "message": message}).to_string();
    call_at(loopback(gw), id, key, &[], &body).await
}

fn loopback(gw: &Gateway) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 0, 0, 1]), gw.addr.port())
}

// ------------------------------------------------------------------ synchronous webhooks

#[tokio::test]
async fn sync_webhook_round_trip_codes_and_log() {
    let mut gw = Gateway::start().await;
    let id = gw.status().await.instance_id;
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "instance id {id:?} is a UUID"
    );

    // No key yet: 404, indistinguishable from an unknown instance.
    let r = call(&gw, &id, Some("whatever-key-1234"), "s1", "hi").await;
    assert_fail(&r, 404);
    let unknown = call(
        &gw,
        &uuid::Uuid::new_v4().to_string(),
        Some("x"),
        "s1",
        "hi",
    )
    .await;
    assert_fail(&unknown, 404);
    assert_eq!(
        body_json(&r),
        body_json(&unknown),
        "no probing of instance ids"
    );

    let created = add_key(&gw, "ci", false).await;
    let key = created.secret.clone();
    let k = created.key.clone().unwrap();
    assert!(!key.is_empty());
    assert_eq!(k.label, "ci");
    assert!(key.ends_with(&k.last_four));
    let listed = webhooks(&gw)
        .await
        .list_webhook_keys(ListWebhookKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.instance_id, id);
    assert_eq!(listed.keys.len(), 1);
    assert!(!format!("{listed:?}").contains(&key), "secret never listed");
    // label is required
    let e = webhooks(&gw)
        .await
        .create_webhook_key(CreateWebhookKeyRequest {
            label: " ".into(),
            private: false,
        })
        .await
        .unwrap_err();
    assert_invalid_field(&e, "label");

    // 200 text/plain; the same session name continues the conversation.
    let r = call(&gw, &id, Some(&key), "s1", "hello").await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(text(&r), "You said: hello (turn 1)");
    let r = call(&gw, &id, Some(&key), "s1", "again").await;
    assert_eq!(text(&r), "You said: again (turn 2)");
    let r = call(&gw, &id, Some(&key), "other.s-2_x", "new").await;
    assert_eq!(text(&r), "You said: new (turn 1)");

    let before = all_runs(&gw).await;
    // 401: wrong or missing key.
    assert_fail(
        &call(&gw, &id, Some("cpwh_wrongwrongwrong"), "s1", "x").await,
        401,
    );
    assert_fail(&call(&gw, &id, None, "s1", "x").await, 401);
    // 400: bad / missing session_name, malformed JSON, wrong types, empty message.
    assert_fail(&call(&gw, &id, Some(&key), "a b", "x").await, 400);
    assert_fail(&call(&gw, &id, Some(&key), "a/b", "x").await, 400);
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&key), &[], r#"{"message":"x"}"#).await,
        400,
    );
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&key), &[], "{nope").await,
        400,
    );
    assert_fail(
        &call_at(
            loopback(&gw),
            &id,
            Some(&key),
            &[],
            r#"{"session_name":5,"message":"x"}"#,
        )
        .await,
        400,
    );
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&key), &[], r#"[1]"#).await,
        400,
    );
    assert_fail(&call(&gw, &id, Some(&key), "s1", "").await, 400);
    // 413: oversize body.
    let big = json!({"session_name": "s1", "message": "x".repeat(300 * 1024)}).to_string();
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&key), &[], &big).await,
        413,
    );
    // 405: not POST.
    let r = http1::request(loopback(&gw), "GET", &format!("/webhooks/{id}"), &[], b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(all_runs(&gw).await, before, "bad input queues nothing");

    // 502: the agent failed; the body is the error.
    let r = call(&gw, &id, Some(&key), "s1", "please /fail now").await;
    assert_eq!(r.status, 502, "{}", text(&r));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(text(&r).contains("fail"), "{}", text(&r));

    // The calls log: newest first, with what the issue lists.
    let log = calls(&gw).await;
    assert_eq!(log[0].status, 502);
    assert!(!log[0].error.is_empty());
    assert!(!log[0].run_id.is_empty());
    let ok = log
        .iter()
        .find(|c| c.status == 200 && c.session_name == "other.s-2_x")
        .unwrap();
    assert_eq!(ok.visibility, "private", "loopback caller");
    assert_eq!(ok.source_ip, "127.0.0.1");
    assert_eq!(ok.key_last_four, k.last_four);
    assert_eq!(ok.bytes_in, 3);
    assert_eq!(ok.bytes_out, "You said: new (turn 1)".len() as u64);
    assert!(ok.call_time.is_some());
    let statuses: Vec<u32> = log.iter().map(|c| c.status).collect();
    for s in [200, 401, 400, 404, 502] {
        assert!(statuses.contains(&s), "status {s} logged: {statuses:?}");
    }
    assert!(
        log.iter()
            .any(|c| c.status == 401 && c.key_last_four == "rong")
    );

    // Rotate: same id and label, the old secret stops working.
    let rotated = webhooks(&gw)
        .await
        .rotate_webhook_key(RotateWebhookKeyRequest {
            key_id: k.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let rk = rotated.key.unwrap();
    assert_eq!(
        (rk.key_id.as_str(), rk.label.as_str()),
        (k.key_id.as_str(), "ci")
    );
    assert_ne!(rotated.secret, key);
    assert_fail(&call(&gw, &id, Some(&key), "s1", "x").await, 401);
    assert_eq!(
        call(&gw, &id, Some(&rotated.secret), "s9", "y")
            .await
            .status,
        200
    );

    // Stored hashed: the redb file holds neither secret. Stable instance id across restarts.
    gw.restart().await;
    assert_eq!(gw.status().await.instance_id, id);
    assert_eq!(
        call(&gw, &id, Some(&rotated.secret), "s9", "z")
            .await
            .status,
        200
    );
    let db = gw.stored_bytes();
    for secret in [&key, &rotated.secret] {
        for form in [secret.as_bytes().to_vec(), hex::encode(secret).into_bytes()] {
            assert!(
                !db.windows(form.len()).any(|w| w == form.as_slice()),
                "the secret is not stored in clear"
            );
        }
    }
    // The log survived the restart.
    assert!(calls(&gw).await.len() >= 12);

    // Revoke: the last key gone -> 404 again.
    webhooks(&gw)
        .await
        .revoke_webhook_key(RevokeWebhookKeyRequest {
            key_id: k.key_id.clone(),
        })
        .await
        .unwrap();
    assert_fail(&call(&gw, &id, Some(&rotated.secret), "s9", "x").await, 404);
    let e = webhooks(&gw)
        .await
        .revoke_webhook_key(RevokeWebhookKeyRequest {
            key_id: k.key_id.clone(),
        })
        .await
        .unwrap_err();
    assert_error(&e, Code::NotFound, "WEBHOOK_KEY_NOT_FOUND");
}

#[tokio::test]
async fn webhook_key_may_call_only_its_endpoint() {
    let gw = Gateway::start().await;
    let key = add_key(&gw, "k", false).await.secret;
    let e = gw
        .gateway_as(Token::bearer(&key))
        .await
        .status(clawplane_proto::v1::GatewayServiceStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = WebhookServiceClient::with_interceptor(gw.channel().await, Token::bearer(&key))
        .list_webhook_calls(ListWebhookCallsRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn calls_log_keeps_exactly_the_last_100() {
    let gw = Gateway::start().await;
    let id = gw.status().await.instance_id;
    let key = add_key(&gw, "load", false).await.secret;
    for i in 1..=101 {
        let r = call(&gw, &id, Some(&key), &format!("n-{i}"), "m").await;
        assert_eq!(r.status, 200, "call {i}: {}", text(&r));
    }
    let log = calls(&gw).await;
    assert_eq!(log.len(), 100);
    assert_eq!(log[0].session_name, "n-101");
    assert_eq!(log[99].session_name, "n-2");
}

/// Tests reach the gateway on 127.0.0.1 only; a non-loopback client is one that a trusted
/// loopback proxy forwards (`X-Forwarded-For`), which is how such callers arrive in practice.
#[tokio::test]
async fn private_keys_only_from_loopback_clients() {
    let gw = Gateway::start_with("{ gateway: { trustedProxies: ['127.0.0.1'] } }").await;
    let id = gw.status().await.instance_id;
    let private = add_key(&gw, "local", true).await.secret;
    let body = json!({"session_name": "p", "message": "hi"}).to_string();
    let remote = [("X-Forwarded-For", "198.51.100.9")];

    assert_eq!(
        call_at(loopback(&gw), &id, Some(&private), &[], &body)
            .await
            .status,
        200
    );
    // Only a private key exists: a non-loopback client finds nothing (404, no probing).
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&private), &remote, &body).await,
        404,
    );
    // With a public key present, the private key from outside is refused (401).
    let public = add_key(&gw, "public", false).await.secret;
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&private), &remote, &body).await,
        401,
    );
    let r = call_at(loopback(&gw), &id, Some(&public), &remote, &body).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let log = calls(&gw).await;
    assert_eq!(log[0].visibility, "public");
    assert_eq!(log[0].source_ip, "198.51.100.9");
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let gw = Gateway::start().await;
    let id = gw.status().await.instance_id;
    let private = add_key(&gw, "local", true).await.secret;
    let public = add_key(&gw, "pub", false).await.secret;
    let body = json!({"session_name": "p", "message": "hi"}).to_string();
    let xff = [("X-Forwarded-For", "203.0.113.7")];
    // The header does not choose the address: the log shows the peer...
    let r = call_at(loopback(&gw), &id, Some(&public), &xff, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(calls(&gw).await[0].source_ip, "127.0.0.1");
    // ...yet a proxied request is never local, so the private key is refused.
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&private), &xff, &body).await,
        401,
    );
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_trusted_proxies() {
    let gw = Gateway::start_with("{ gateway: { trustedProxies: ['127.0.0.1'] } }").await;
    let id = gw.status().await.instance_id;
    let private = add_key(&gw, "local", true).await.secret;
    let public = add_key(&gw, "pub", false).await.secret;
    let body = json!({"session_name": "p", "message": "hi"}).to_string();
    let xff = [("X-Forwarded-For", "203.0.113.7")];
    let r = call_at(loopback(&gw), &id, Some(&public), &xff, &body).await;
    assert_eq!(r.status, 200);
    let c = &calls(&gw).await[0];
    assert_eq!(
        (c.source_ip.as_str(), c.visibility.as_str()),
        ("203.0.113.7", "public")
    );
    // The proxied client is not loopback: the private key is refused.
    assert_fail(
        &call_at(loopback(&gw), &id, Some(&private), &xff, &body).await,
        401,
    );
}

#[tokio::test]
async fn cli_webhooks_keys_and_events() {
    let gw = Gateway::start().await;
    let run = |args: &[&str]| {
        let out = gw.cli().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let added = run(&["webhooks", "keys", "add", "--label", "zapier", "--private"]);
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("secret").map(|s| s.trim().to_string()))
        .expect("secret line");
    let key_id = added
        .lines()
        .find_map(|l| l.strip_prefix("key id").map(|s| s.trim().to_string()))
        .expect("key id line");
    assert!(added.contains("private"));
    let list = run(&["webhooks", "keys", "list"]);
    assert!(list.contains("zapier") && list.contains(&key_id), "{list}");
    assert!(list.contains(&secret[secret.len() - 4..]));
    assert!(!list.contains(&secret), "secret shown once only");
    let missing = gw.cli().args(["webhooks", "keys", "add"]).output().unwrap();
    assert!(!missing.status.success(), "--label is required");

    let status = run(&["status"]);
    let id = gw.status().await.instance_id;
    assert!(status.contains(&id), "{status}");
    assert_eq!(call(&gw, &id, Some(&secret), "cli", "yo").await.status, 200);
    let events = run(&["webhooks", "events"]);
    assert!(
        events.contains("200") && events.contains("cli") && events.contains("private"),
        "{events}"
    );
    let json: Value = serde_json::from_str(&run(&["webhooks", "events", "--json"])).unwrap();
    assert_eq!(json["calls"][0]["sessionName"], "cli");

    let rotated = run(&["webhooks", "keys", "rotate", &key_id]);
    let new_secret = rotated
        .lines()
        .find_map(|l| l.strip_prefix("secret").map(|s| s.trim().to_string()))
        .unwrap();
    assert_ne!(new_secret, secret);
    assert_fail(&call(&gw, &id, Some(&secret), "cli", "yo").await, 401);
    assert_eq!(
        call(&gw, &id, Some(&new_secret), "cli", "yo").await.status,
        200
    );
    run(&["webhooks", "keys", "revoke", &key_id]);
    assert!(!run(&["webhooks", "keys", "list"]).contains(&key_id));
    let again = gw
        .cli()
        .args(["webhooks", "keys", "revoke", &key_id])
        .output()
        .unwrap();
    assert!(!again.status.success());
}

// ------------------------------------------------------------------------------ ingress

const GH_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_stripe_style_secret";

fn std_secret() -> (String, Vec<u8>) {
    let raw: Vec<u8> = (0u8..32).collect();
    (
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&raw)
        ),
        raw,
    )
}

async fn ingress_gateway() -> Gateway {
    let (std, _) = std_secret();
    Gateway::builder()
        .config(&format!(
            r#"{{ webhooks: {{ incoming: {{ enabled: true, secret: '${{WH_SECRET}}', endpoints: [
                {{ path: 'plain', message: 'Got {{{{body.a.b}}}}' }},
                {{ path: 'ci/builds', message: 'build {{{{body.id}}}}', sessionKey: 'builds' }},
                {{ path: 'gh', message: '{{{{headers.x-github-event}}}} {{{{body.action}}}}', auth: {{ scheme: 'github', secret: "{GH_SECRET}" }} }},
                {{ path: 'stripe', message: 'stripe {{{{body.type}}}}', auth: {{ scheme: 'stripe', secret: '{STRIPE_SECRET}', toleranceSeconds: 300 }} }},
                {{ path: 'std', message: 'std {{{{body}}}}', auth: {{ scheme: 'standard-webhooks', secret: '{std}' }} }},
            ] }} }} }}"#
        ))
        .env("WH_SECRET", "plain-secret-123")
        .start()
        .await
}

async fn ingest(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    http1::request(
        loopback(gw),
        "POST",
        &format!("/webhook/{path}"),
        headers,
        body,
    )
    .await
}

async fn reply_of(gw: &Gateway, run_id: &str) -> String {
    let run = gw.wait_run(run_id).await;
    assert_eq!(run.state(), RunState::Succeeded, "{run:?}");
    run.reply_text
}

#[tokio::test]
async fn ingress_secret_scheme_templates_and_bad_input() {
    let gw = ingress_gateway().await;
    let sec = [("X-Webhook-Secret", "plain-secret-123")];
    let r = ingest(&gw, "plain", &sec, br#"{"a":{"b":42}}"#).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let b = body_json(&r);
    assert_eq!(b["ok"], true);
    let run_id = b["runId"].as_str().unwrap().to_string();
    assert_eq!(reply_of(&gw, &run_id).await, "You said: Got 42 (turn 1)");
    // The run is an ordinary run (one code path).
    let run = gw
        .agent()
        .await
        .get_run(GetRunRequest {
            run_id: run_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(run.session_key, b["sessionKey"].as_str().unwrap());

    // Static session key: the same conversation continues.
    let r1 = ingest(&gw, "ci/builds", &sec, br#"{"id":1}"#).await;
    let r2 = ingest(&gw, "ci/builds", &sec, br#"{"id":2}"#).await;
    let id2 = body_json(&r2)["runId"].as_str().unwrap().to_string();
    assert_eq!(body_json(&r1)["sessionKey"], body_json(&r2)["sessionKey"]);
    assert_eq!(reply_of(&gw, &id2).await, "You said: build 2 (turn 2)");

    // Replay by Idempotency-Key: duplicate, same run, nothing new.
    let dedupe = [
        ("X-Webhook-Secret", "plain-secret-123"),
        ("Idempotency-Key", "d-1"),
    ];
    let a = body_json(&ingest(&gw, "plain", &dedupe, br#"{"a":{"b":1}}"#).await);
    let before = all_runs(&gw).await;
    let d = body_json(&ingest(&gw, "plain", &dedupe, br#"{"a":{"b":1}}"#).await);
    assert_eq!(
        (d["duplicate"].as_bool(), &d["runId"]),
        (Some(true), &a["runId"])
    );
    assert_eq!(all_runs(&gw).await, before);

    // Bad input: nothing queued.
    let before = all_runs(&gw).await;
    let e = assert_fail(&ingest(&gw, "plain", &[], br#"{}"#).await, 401);
    assert!(e.contains("X-Webhook-Secret"), "{e}");
    assert_fail(
        &ingest(&gw, "plain", &[("X-Webhook-Secret", "wrong")], br#"{}"#).await,
        401,
    );
    assert_fail(&ingest(&gw, "plain", &sec, b"{not json").await, 400);
    assert_fail(&ingest(&gw, "nope", &sec, br#"{}"#).await, 404);
    let big = vec![b' '; 300 * 1024];
    assert_fail(&ingest(&gw, "plain", &sec, &big).await, 413);
    let r = http1::request(loopback(&gw), "GET", "/webhook/plain", &sec, b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(all_runs(&gw).await, before);
}

#[tokio::test]
async fn ingress_github_signature_vector_and_replay() {
    // The spec's vector.
    assert_eq!(
        hex(&hmac(GH_SECRET.as_bytes(), b"Hello, World!")),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let gw = ingress_gateway().await;
    // The vector's body verifies (so it gets past 401) but is not JSON: 400.
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_fail(
        &ingest(&gw, "gh", &[("X-Hub-Signature-256", sig)], b"Hello, World!").await,
        400,
    );
    assert_fail(
        &ingest(&gw, "gh", &[("X-Hub-Signature-256", sig)], b"Hello, World?").await,
        401,
    );
    assert_fail(&ingest(&gw, "gh", &[], b"Hello, World!").await, 401);

    let body = br#"{"action":"opened"}"#;
    let sig = format!("sha256={}", hex(&hmac(GH_SECRET.as_bytes(), body)));
    let h = [
        ("X-Hub-Signature-256", sig.as_str()),
        ("X-GitHub-Event", "issues"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let first = body_json(&ingest(&gw, "gh", &h, body).await);
    assert_eq!(first["ok"], true, "{first}");
    let run_id = first["runId"].as_str().unwrap().to_string();
    assert_eq!(
        reply_of(&gw, &run_id).await,
        "You said: issues opened (turn 1)"
    );
    let before = all_runs(&gw).await;
    let replay = body_json(&ingest(&gw, "gh", &h, body).await);
    assert_eq!(replay["duplicate"], true);
    assert_eq!(replay["runId"], first["runId"]);
    assert_eq!(all_runs(&gw).await, before, "a replay starts nothing");
}

/// GitHub signs only the body; `X-GitHub-Delivery` is not signed. A captured delivery
/// replayed under a new delivery id (or none) is the same delivery: it answers the original
/// run and starts nothing. GitHub's own redelivery (same id, same signature) does too, and
/// a new event is a new run.
#[tokio::test]
async fn ingress_github_replay_under_a_new_delivery_id_is_a_duplicate() {
    let gw = ingress_gateway().await;
    let body = br#"{"action":"closed","number":7}"#;
    let sig = format!("sha256={}", hex(&hmac(GH_SECRET.as_bytes(), body)));
    let with_id = |id: &'static str| {
        vec![
            ("X-Hub-Signature-256", sig.clone()),
            ("X-GitHub-Event", "issues".to_string()),
            ("X-GitHub-Delivery", id.to_string()),
        ]
    };
    let send = |h: Vec<(&'static str, String)>| {
        let gw = &gw;
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            body_json(&ingest(gw, "gh", &h, body).await)
        }
    };
    let first = send(with_id("6f3b1a40-0001-11ef-8000-000000000001")).await;
    assert_eq!(first["ok"], true, "{first}");
    assert_ne!(first["duplicate"], true);
    let before = all_runs(&gw).await;
    for (what, h) in [
        (
            "GitHub's redelivery",
            with_id("6f3b1a40-0001-11ef-8000-000000000001"),
        ),
        (
            "a replay under a new id",
            with_id("6f3b1a40-0002-11ef-8000-000000000002"),
        ),
        ("a replay without an id", with_id("")[..2].to_vec()),
        (
            "a replay with the hex in upper case",
            vec![
                (
                    "X-Hub-Signature-256",
                    format!(
                        "sha256={}",
                        hex(&hmac(GH_SECRET.as_bytes(), body)).to_uppercase()
                    ),
                ),
                ("X-GitHub-Event", "issues".to_string()),
                (
                    "X-GitHub-Delivery",
                    "6f3b1a40-0003-11ef-8000-000000000003".to_string(),
                ),
            ],
        ),
    ] {
        let r = send(h).await;
        assert_eq!(r["duplicate"], true, "{what}: {r}");
        assert_eq!(r["runId"], first["runId"], "{what}");
    }
    assert_eq!(all_runs(&gw).await, before, "replays start nothing");

    // A new event (another body, signed) is a new run, whatever delivery id it carries.
    let next = br#"{"action":"reopened","number":7}"#;
    let sig2 = format!("sha256={}", hex(&hmac(GH_SECRET.as_bytes(), next)));
    let r = body_json(
        &ingest(
            &gw,
            "gh",
            &[
                ("X-Hub-Signature-256", sig2.as_str()),
                ("X-GitHub-Event", "issues"),
                ("X-GitHub-Delivery", "6f3b1a40-0002-11ef-8000-000000000002"),
            ],
            next,
        )
        .await,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_ne!(r["duplicate"], true, "{r}");
    assert_ne!(r["runId"], first["runId"]);
    assert_eq!(
        reply_of(&gw, r["runId"].as_str().unwrap()).await,
        "You said: issues reopened (turn 1)"
    );
}

#[tokio::test]
async fn ingress_stripe_and_standard_webhooks_signatures_and_replay() {
    let gw = ingress_gateway().await;
    // Stripe-style: t=..,v1=hex(HMAC(secret, "t.body")).
    let body = br#"{"type":"charge.succeeded"}"#;
    let t = now().to_string();
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let v1 = hex(&hmac(STRIPE_SECRET.as_bytes(), &signed));
    let header = format!("t={t},v1=deadbeef,v1={v1}");
    let first = body_json(&ingest(&gw, "stripe", &[("Stripe-Signature", &header)], body).await);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(
        reply_of(&gw, first["runId"].as_str().unwrap()).await,
        "You said: stripe charge.succeeded (turn 1)"
    );
    let before = all_runs(&gw).await;
    let replay = body_json(&ingest(&gw, "stripe", &[("Stripe-Signature", &header)], body).await);
    assert_eq!(
        (replay["duplicate"].as_bool(), &replay["runId"]),
        (Some(true), &first["runId"])
    );
    assert_eq!(all_runs(&gw).await, before);
    // Outside the window, or a wrong signature: 401.
    let old = (now() - 1000).to_string();
    let mut signed = format!("{old}.").into_bytes();
    signed.extend_from_slice(body);
    let stale = format!(
        "t={old},v1={}",
        hex(&hmac(STRIPE_SECRET.as_bytes(), &signed))
    );
    assert!(
        assert_fail(
            &ingest(&gw, "stripe", &[("Stripe-Signature", &stale)], body).await,
            401
        )
        .contains("window")
    );
    let bad = format!("t={t},v1={}", hex(&[0u8; 32]));
    assert_fail(
        &ingest(&gw, "stripe", &[("Stripe-Signature", &bad)], body).await,
        401,
    );

    // Standard Webhooks: v1,base64(HMAC(key, "id.ts.body")), key = base64 after whsec_.
    let (_, key) = std_secret();
    let body = br#"{"type":"run.completed"}"#;
    let ts = now().to_string();
    let msg_id = "msg_2b7Yz";
    let mut signed = format!("{msg_id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    let sig = format!(
        "v1a,ignored v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac(&key, &signed))
    );
    let h = [
        ("webhook-id", msg_id),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    let first = body_json(&ingest(&gw, "std", &h, body).await);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(
        reply_of(&gw, first["runId"].as_str().unwrap()).await,
        r#"You said: std {"type":"run.completed"} (turn 1)"#
    );
    let before = all_runs(&gw).await;
    let replay = body_json(&ingest(&gw, "std", &h, body).await);
    assert_eq!(
        (replay["duplicate"].as_bool(), &replay["runId"]),
        (Some(true), &first["runId"])
    );
    assert_eq!(all_runs(&gw).await, before);
    let tampered = [
        ("webhook-id", msg_id),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    assert_fail(
        &ingest(&gw, "std", &tampered, br#"{"type":"run.failed"}"#).await,
        401,
    );
    let old = (now() - 1000).to_string();
    let stale = [
        ("webhook-id", msg_id),
        ("webhook-timestamp", old.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    assert_fail(&ingest(&gw, "std", &stale, body).await, 401);
    assert_fail(
        &ingest(&gw, "std", &[("webhook-id", msg_id)], body).await,
        401,
    );
}

#[tokio::test]
async fn ingress_config_errors_stop_the_gateway() {
    let err = refuses_to_start(
        "{ webhooks: { incoming: { enabled: true, endpoints: [{ path: 'x', message: 'm' }] } } }",
    )
    .await;
    assert!(err.contains("secret"), "{err}");
}

/// Slack outgoing webhooks post `application/x-www-form-urlencoded`: the fields are
/// `body.*` to the templates (a repeated field is an array); a form body is never parsed as
/// JSON.
#[tokio::test]
async fn ingress_reads_form_encoded_bodies_as_body_fields() {
    let gw = Gateway::start_with(
        "{ webhooks: { incoming: { enabled: true, secret: 'plain-secret-123', endpoints: [
            { path: 'slack', message: '{{body.user_name}} in #{{body.channel_name}}: {{body.text}} {{body.tag}}' },
         ] } } }",
    )
    .await;
    let headers = [
        ("X-Webhook-Secret", "plain-secret-123"),
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
    ];
    let body = b"token=XXX&team_id=T0001&channel_name=ops&user_name=ann&text=deploy+the+%22api%22+%26+wait&tag=a&tag=b";
    let r = ingest(&gw, "slack", &headers, body).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let run_id = body_json(&r)["runId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        reply_of(&gw, &run_id).await,
        r#"You said: ann in #ops: deploy the "api" & wait ["a","b"] (turn 1)"#
    );
    // The same bytes as JSON are refused, as before.
    let json_headers = [
        ("X-Webhook-Secret", "plain-secret-123"),
        ("Content-Type", "application/json"),
    ];
    let r = ingest(&gw, "slack", &json_headers, body).await;
    assert_eq!(r.status, 400, "{}", text(&r));
}
