//! Inbound channel messages end to end: a provider webhook (WhatsApp Cloud, Telegram) is
//! verified on the raw bytes, routed to the sender's session, run, and answered on the same
//! channel through the provider's API (a local fake); receipts update the delivery outcome;
//! `channel: "last"` then reaches the same person; bad signatures run nothing.

use std::net::{IpAddr, SocketAddr};

use clawplane_proto::v1::{
    ChatServiceSendRequest, DeliveryStatus, EventKind, EventServiceWatchRequest, RunOrigin,
    RunState, event::Payload,
};
use serde_json::Value;

use crate::fakes::{telegram, whatsapp};
use crate::harness::*;
use crate::http1;

const PNID: &str = "106540352242922";
const WA_TOKEN: &str = "wa-access-token";
const APP_SECRET: &str = "meta-app-secret";
const VERIFY: &str = "verify-me";
const WA_PATH: &str = "/channels/whatsapp/webhook";
const TG_TOKEN: &str = "123:tg-token";
const TG_SECRET: &str = "tg_secret-1";
const TG_PATH: &str = "/channels/telegram/webhook";
/// Any sender may talk to the bot (the tests of the sender policy set their own).
const OPEN: &str = "dmPolicy: 'open', allowFrom: ['*']";

fn loopback(gw: &Gateway) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 0, 0, 1]), gw.addr.port())
}

async fn whatsapp_gateway(fake: &whatsapp::FakeWhatsApp) -> Gateway {
    Gateway::start_with(&format!(
        "{{ channels: {{ whatsapp: {{ accessToken: '{WA_TOKEN}', phoneNumberId: '{PNID}', baseUrl: '{}', appSecret: '{APP_SECRET}', verifyToken: '{VERIFY}', {OPEN} }} }} }}",
        fake.base_url
    ))
    .await
}

async fn post_whatsapp(gw: &Gateway, body: &str, signature: &str) -> http1::Response {
    http1::request(
        loopback(gw),
        "POST",
        WA_PATH,
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", signature),
        ],
        body.as_bytes(),
    )
    .await
}

fn body_json(r: &http1::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
    })
}

fn run_ids(v: &Value) -> Vec<String> {
    v["runIds"]
        .as_array()
        .unwrap_or_else(|| panic!("runIds in {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn whatsapp_verification_handshake() {
    let fake = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let gw = whatsapp_gateway(&fake).await;
    let ok = http1::request(
        loopback(&gw),
        "GET",
        &format!("{WA_PATH}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(String::from_utf8_lossy(&ok.body), "1158201444");
    assert!(ok.header("content-type").unwrap().starts_with("text/plain"));
    let bad = http1::request(
        loopback(&gw),
        "GET",
        &format!("{WA_PATH}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong"),
        &[],
        b"",
    )
    .await;
    assert_eq!(bad.status, 403);
    assert_eq!(body_json(&bad)["ok"], false);
}

#[tokio::test]
async fn whatsapp_message_runs_in_the_senders_session_and_is_answered_there() {
    let fake = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let gw = whatsapp_gateway(&fake).await;
    let mut feed = gw
        .watch(EventServiceWatchRequest {
            follow_only: true,
            ..Default::default()
        })
        .await;
    let wa_id = "16505551234";
    let body = whatsapp::inbound_text_payload(PNID, wa_id, "wamid.HBgLMTY1MDUAAA==", "hello there");
    let r = post_whatsapp(&gw, &body, &whatsapp::sign(APP_SECRET, &body)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ids = run_ids(&body_json(&r));
    assert_eq!(ids.len(), 1);

    let run = gw.wait_run(&ids[0]).await;
    assert_eq!(
        run.session_key,
        format!("agent:main:whatsapp:direct:{wa_id}")
    );
    assert_eq!(run.origin(), RunOrigin::Channel);
    assert_eq!(run.state(), RunState::Succeeded, "{run:?}");
    let d = run.delivery.clone().unwrap();
    assert_eq!(d.status(), DeliveryStatus::Delivered, "{d:?}");
    assert_eq!((d.channel.as_str(), d.to.as_str()), ("whatsapp", wa_id));
    assert!(d.message_id.starts_with("wamid."), "{d:?}");

    // The reply went to the Graph API with the right body.
    let sent = fake.messages();
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.path, format!("/v21.0/{PNID}/messages"));
    assert_eq!(
        m.header("authorization"),
        Some(format!("Bearer {WA_TOKEN}").as_str())
    );
    assert_eq!(m.body["messaging_product"], "whatsapp");
    assert_eq!(m.body["to"], wa_id);
    assert_eq!(m.body["type"], "text");
    assert_eq!(m.body["text"]["body"], run.reply_text.as_str());

    // The session remembers the route; the feed saw the inbound message.
    let session = gw.get_session(&run.session_key).await;
    assert_eq!(
        (session.last_channel.as_str(), session.last_to.as_str()),
        ("whatsapp", wa_id)
    );
    let events = feed.collect_until(|e| e.kind() == EventKind::Channel).await;
    let Some(Payload::Channel(c)) = &events.last().unwrap().payload else {
        panic!("channel event")
    };
    assert_eq!(c.r#type, "message.received");
    assert_eq!(c.from, wa_id);
    assert_eq!(c.sender_name, "Ann");
    assert_eq!(c.text, "hello there");

    // A redelivery of the same wamid runs nothing new.
    let r = post_whatsapp(&gw, &body, &whatsapp::sign(APP_SECRET, &body)).await;
    let v = body_json(&r);
    assert_eq!(v["duplicates"], 1, "{v}");
    assert!(run_ids(&v).is_empty());
    assert_eq!(gw.list_runs(&run.session_key).await.len(), 1);

    // Receipts: delivered, then read; a late `sent` does not go backwards.
    for status in ["delivered", "read", "sent"] {
        let st = whatsapp::status_payload(PNID, &d.message_id, status, wa_id);
        let r = post_whatsapp(&gw, &st, &whatsapp::sign(APP_SECRET, &st)).await;
        assert_eq!(r.status, 200);
    }
    let after = gw.get_run(&run.run_id).await.delivery.unwrap();
    assert_eq!(after.receipt, "read");
    assert_eq!(after.status(), DeliveryStatus::Delivered);

    // `channel: "last"` from another surface reaches the same person.
    let next = gw
        .send_req(ChatServiceSendRequest {
            session_key: run.session_key.clone(),
            message: "follow-up".into(),
            deliver: true,
            channel: "last".into(),
            ..Default::default()
        })
        .await;
    let done = gw.wait_run(&next.run_id).await;
    assert_eq!(done.delivery.unwrap().status(), DeliveryStatus::Delivered);
    let sent = fake.messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].body["to"], wa_id);
    assert_eq!(sent[1].body["text"]["body"], done.reply_text.as_str());
}

#[tokio::test]
async fn whatsapp_failed_receipt_marks_the_delivery_failed() {
    let fake = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let gw = whatsapp_gateway(&fake).await;
    let body = whatsapp::inbound_text_payload(PNID, "4477001", "wamid.one", "hi");
    let r = post_whatsapp(&gw, &body, &whatsapp::sign(APP_SECRET, &body)).await;
    let id = run_ids(&body_json(&r)).remove(0);
    let run = gw.wait_run(&id).await;
    let wamid = run.delivery.unwrap().message_id;
    let st = whatsapp::status_payload(PNID, &wamid, "failed", "4477001");
    let r = post_whatsapp(&gw, &st, &whatsapp::sign(APP_SECRET, &st)).await;
    assert_eq!(body_json(&r)["receipts"], 1);
    let d = gw.get_run(&id).await.delivery.unwrap();
    assert_eq!(d.status(), DeliveryStatus::Failed);
    assert_eq!(d.receipt, "failed");
    assert!(d.detail.contains("131047"), "{d:?}");
}

#[tokio::test]
async fn a_bad_signature_is_refused_and_runs_nothing() {
    let fake = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let gw = whatsapp_gateway(&fake).await;
    let body = whatsapp::inbound_text_payload(PNID, "111", "wamid.bad", "let me in");
    let mut feed = gw
        .watch(EventServiceWatchRequest {
            follow_only: true,
            ..Default::default()
        })
        .await;
    for sig in [
        whatsapp::sign("not-the-secret", &body),
        String::new(),
        "sha256=zz".to_string(),
    ] {
        let r = post_whatsapp(&gw, &body, &sig).await;
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(body_json(&r)["ok"], false);
    }
    // Re-serialised JSON is not the signed bytes.
    let reformatted =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let r = post_whatsapp(&gw, &reformatted, &whatsapp::sign(APP_SECRET, &body)).await;
    assert_eq!(r.status, 401);

    assert!(gw.list_runs("").await.is_empty(), "nothing ran");
    assert_eq!(gw.status().await.session_count, 0, "no session was created");
    assert!(fake.messages().is_empty());
    let alerts = feed
        .collect_until(|e| e.kind() == EventKind::Security)
        .await;
    let Some(Payload::Security(a)) = &alerts.last().unwrap().payload else {
        panic!("security alert")
    };
    assert_eq!(a.reason, "BAD_SIGNATURE");
    assert_eq!(a.surface, "whatsapp");
    assert_eq!(a.remote_addr, "127.0.0.1");
}

#[tokio::test]
async fn telegram_update_is_verified_deduped_and_answered_in_the_chat() {
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ telegram: {{ botToken: '{TG_TOKEN}', baseUrl: '{}', webhookSecret: '{TG_SECRET}', {OPEN} }} }} }}",
        fake.base_url
    ))
    .await;
    let update = telegram::text_update(9001, 42, 42, "hi bot");
    let post = |secret: &'static str| {
        let update = update.clone();
        let addr = loopback(&gw);
        async move {
            let mut headers = vec![("Content-Type", "application/json")];
            if !secret.is_empty() {
                headers.push(("X-Telegram-Bot-Api-Secret-Token", secret));
            }
            http1::request(addr, "POST", TG_PATH, &headers, update.as_bytes()).await
        }
    };
    assert_eq!(post("").await.status, 401);
    assert_eq!(post("wrong").await.status, 401);
    assert!(gw.list_runs("").await.is_empty());

    let r = post(TG_SECRET).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let id = run_ids(&body_json(&r)).remove(0);
    let run = gw.wait_run(&id).await;
    assert_eq!(run.session_key, "agent:main:telegram:direct:42");
    let d = run.delivery.unwrap();
    assert_eq!(d.status(), DeliveryStatus::Delivered, "{d:?}");
    let sent = fake.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, format!("/bot{TG_TOKEN}/sendMessage"));
    assert_eq!(sent[0].body["chat_id"].to_string().trim_matches('"'), "42");
    assert_eq!(sent[0].body["text"], run.reply_text.as_str());

    // Telegram retries: the same update_id runs nothing new. The marker: a later update in
    // the same chat, whose run queues behind anything the retry would have started.
    let again = body_json(&post(TG_SECRET).await);
    assert_eq!(again["duplicates"], 1);
    let marker = telegram::text_update(9002, 42, 42, "still there?");
    let r = post_telegram(&gw, &marker).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let marker_run = gw.wait_run(&run_ids(&body_json(&r)).remove(0)).await;
    let sent = fake.messages();
    assert_eq!(sent.len(), 2, "answered once, then the marker: {sent:#?}");
    assert_eq!(sent[1].body["text"], marker_run.reply_text.as_str());
}

/// A caller cannot pre-empt a channel's dedupe key: the key a Telegram `update_id` maps to,
/// presented first by a gateway-token caller, starts that caller's own run; the update still
/// runs and is answered. (When run ids were the keys, the update was a "duplicate" of the
/// caller's run and nobody in the chat got an answer.)
#[tokio::test]
async fn a_caller_cannot_preempt_a_channels_dedupe_key() {
    use clawplane_proto::v1::AgentServiceRunRequest;
    use sha2::Digest;
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ telegram: {{ botToken: '{TG_TOKEN}', baseUrl: '{}', webhookSecret: '{TG_SECRET}', {OPEN} }} }} }}",
        fake.base_url
    ))
    .await;
    // The key the gateway derives from update 9100 (channel + digest of the update_id).
    let digest = sha2::Sha256::digest(b"9100");
    let key = format!("telegram:{}", hex::encode(&digest[..16]));
    let squatter = gw
        .agent()
        .await
        .run(AgentServiceRunRequest {
            message: "squatting".into(),
            idempotency_key: key.clone(),
            session_key: "squat".into(),
            ..Default::default()
        })
        .await
        .expect("a gateway-token run with that key")
        .into_inner();
    assert_ne!(squatter.run_id, key, "run ids are the server's");

    let update = telegram::text_update(9100, 42, 42, "hi bot");
    let r = post_telegram(&gw, &update).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = body_json(&r);
    assert_eq!(body["duplicates"], 0, "{body}");
    let id = run_ids(&body).remove(0);
    assert_ne!(id, squatter.run_id);
    let run = gw.wait_run(&id).await;
    assert_eq!(run.origin(), RunOrigin::Channel);
    assert_eq!(run.session_key, "agent:main:telegram:direct:42");
    assert_eq!(
        run.delivery.unwrap().status(),
        DeliveryStatus::Delivered,
        "the chat got its answer"
    );
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(
        gw.wait_run(&squatter.run_id).await.session_key,
        "agent:main:squat"
    );
}

// ------------------------------------------------- hostile senders (issue 13)

const ATTACKER: &str = "203.0.113.5";
const NEIGHBOUR: &str = "198.51.100.7";

/// Both channels, the loopback peer a trusted proxy (so `X-Forwarded-For` names the client).
/// The failure counts are the cluster's, but a lockout reaches the other replicas a moment
/// later (a signal, docs/scale-out.md): tests of lockouts ask for `one_process`.
async fn channels_behind_proxy(
    wa: &whatsapp::FakeWhatsApp,
    tg: &telegram::FakeTelegram,
    max_attempts: u32,
    one_process: bool,
) -> Gateway {
    let mut b = Gateway::builder();
    if one_process {
        b = b.one_process();
    }
    b.config(&format!(
        "{{ gateway: {{ trustedProxies: ['127.0.0.1'], auth: {{ rateLimit: {{ maxAttempts: {max_attempts} }} }} }},
           channels: {{ whatsapp: {{ accessToken: '{WA_TOKEN}', phoneNumberId: '{PNID}', baseUrl: '{}', appSecret: '{APP_SECRET}', verifyToken: '{VERIFY}', {OPEN} }},
                        telegram: {{ botToken: '{TG_TOKEN}', baseUrl: '{}', webhookSecret: '{TG_SECRET}', {OPEN} }} }} }}",
        wa.base_url, tg.base_url
    ))
    .start()
    .await
}

async fn whatsapp_from(gw: &Gateway, client: &str, body: &str, signature: &str) -> http1::Response {
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Hub-Signature-256", signature),
        ("X-Forwarded-For", client),
    ];
    http1::request(loopback(gw), "POST", WA_PATH, &headers, body.as_bytes()).await
}

/// A Telegram update with the right secret, straight from the loopback peer.
async fn post_telegram(gw: &Gateway, body: &str) -> http1::Response {
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Telegram-Bot-Api-Secret-Token", TG_SECRET),
    ];
    http1::request(loopback(gw), "POST", TG_PATH, &headers, body.as_bytes()).await
}

async fn telegram_from(gw: &Gateway, client: &str, body: &str, secret: &str) -> http1::Response {
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Telegram-Bot-Api-Secret-Token", secret),
        ("X-Forwarded-For", client),
    ];
    http1::request(loopback(gw), "POST", TG_PATH, &headers, body.as_bytes()).await
}

#[track_caller]
fn assert_locked_out(r: &http1::Response) {
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    let secs: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(secs >= 1, "{secs}");
    assert_eq!(body_json(r)["ok"], false);
}

/// A provider signature is a credential: bad signatures (WhatsApp) and secret tokens
/// (Telegram) count toward the client address's lockout; once locked out the address is
/// refused 429 with Retry-After even with a correct signature, on every channel; another
/// address is unaffected.
#[tokio::test]
async fn bad_signatures_lock_out_the_sending_address() {
    let wa = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let tg = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = channels_behind_proxy(&wa, &tg, 3, true).await;
    let body = whatsapp::inbound_text_payload(PNID, "222", "wamid.lock-1", "hello");
    let good = whatsapp::sign(APP_SECRET, &body);
    let forged = whatsapp::sign("guess", &body);
    for i in 1..=3 {
        let r = whatsapp_from(&gw, ATTACKER, &body, &forged).await;
        assert_eq!(r.status, 401, "bad signature {i} is refused as such");
    }
    assert_locked_out(&whatsapp_from(&gw, ATTACKER, &body, &forged).await);
    // Locked out: the right signature does not help, nor does another channel.
    assert_locked_out(&whatsapp_from(&gw, ATTACKER, &body, &good).await);
    let update = telegram::text_update(7001, 42, 42, "hi");
    assert_locked_out(&telegram_from(&gw, ATTACKER, &update, TG_SECRET).await);
    assert!(gw.list_runs("").await.is_empty(), "nothing ran");

    // Another address: its message runs.
    let r = whatsapp_from(&gw, NEIGHBOUR, &body, &good).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(run_ids(&body_json(&r)).len(), 1);

    // Telegram secret tokens and the WhatsApp verify token count the same way.
    let third = "192.0.2.9";
    for _ in 0..2 {
        let r = http1::request(
            loopback(&gw),
            "GET",
            &format!("{WA_PATH}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess"),
            &[("X-Forwarded-For", third)],
            b"",
        )
        .await;
        assert_eq!(r.status, 403);
    }
    assert_eq!(
        telegram_from(&gw, third, &update, "guess").await.status,
        401
    );
    assert_locked_out(&telegram_from(&gw, third, &update, "guess").await);
    assert_locked_out(&telegram_from(&gw, third, &update, TG_SECRET).await);

    // The lockout covers every credential from the address (the gateway token too).
    let token = gw.token.clone();
    let mut locked = gw
        .gateway_as(Token::bearer(&token).with_header("x-forwarded-for", ATTACKER))
        .await;
    let s = locked
        .status(clawplane_proto::v1::GatewayServiceStatusRequest {})
        .await
        .expect_err("locked out");
    assert_error(&s, tonic::Code::ResourceExhausted, "AUTH_RATE_LIMITED");
}

/// A flood of bad signatures appends one BAD_SIGNATURE alert per address and channel per
/// window (`gateway.auth.rateLimit.windowMs`), not one each; every request is still
/// answered 401.
#[tokio::test]
async fn a_flood_of_bad_signatures_appends_one_alert_per_address() {
    let wa = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let tg = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = channels_behind_proxy(&wa, &tg, 1000, false).await;
    let body = whatsapp::inbound_text_payload(PNID, "333", "wamid.flood-1", "hello");
    let forged = whatsapp::sign("guess", &body);
    for _ in 0..25 {
        assert_eq!(
            whatsapp_from(&gw, ATTACKER, &body, &forged).await.status,
            401
        );
    }
    let update = telegram::text_update(7002, 43, 43, "hi");
    for _ in 0..10 {
        assert_eq!(
            telegram_from(&gw, ATTACKER, &update, "guess").await.status,
            401
        );
        assert_eq!(
            telegram_from(&gw, NEIGHBOUR, &update, "guess").await.status,
            401
        );
    }
    // A good message after the flood: the store writes in order, so once its run is
    // committed every alert the flood appended is in the log.
    let r = whatsapp_from(&gw, NEIGHBOUR, &body, &whatsapp::sign(APP_SECRET, &body)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    gw.wait_run(&run_ids(&body_json(&r)).remove(0)).await;

    // With replicas, another replica's alert may commit just after that run: read until
    // three are in (the limiter decided each before its 401; only the append trails).
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut alerts: Vec<(String, String)> = loop {
        let events = gw.events_until(gw.status().await.last_event_seq).await;
        let alerts: Vec<(String, String)> = events
            .iter()
            .filter_map(|e| match &e.payload {
                Some(Payload::Security(a)) if a.reason == "BAD_SIGNATURE" => {
                    Some((a.surface.clone(), a.remote_addr.clone()))
                }
                _ => None,
            })
            .collect();
        if alerts.len() >= 3 || std::time::Instant::now() > deadline {
            break alerts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    alerts.sort();
    assert_eq!(
        alerts,
        vec![
            ("telegram".to_string(), NEIGHBOUR.to_string()),
            ("telegram".to_string(), ATTACKER.to_string()),
            ("whatsapp".to_string(), ATTACKER.to_string()),
        ],
        "one alert per address and channel"
    );
}

// ------------------------------------------------- feedback while the agent works (issue 15)

/// The position of the first request matching `f`, panicking with the list when none.
fn position(
    reqs: &[crate::fakes::recorder::Recorded],
    what: &str,
    f: impl Fn(&crate::fakes::recorder::Recorded) -> bool,
) -> usize {
    reqs.iter()
        .position(f)
        .unwrap_or_else(|| panic!("no {what} in {reqs:#?}"))
}

#[tokio::test]
async fn telegram_and_whatsapp_show_typing_while_the_model_works() {
    let tg = telegram::FakeTelegram::start(TG_TOKEN).await;
    let wa = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let gw = channels_behind_proxy(&wa, &tg, 100, false).await;

    // Telegram: sendChatAction typing in the chat, before the reply.
    let r = post_telegram(
        &gw,
        &telegram::text_update(9300, 42, 42, "/sleep 400 think first"),
    )
    .await;
    let run = gw.wait_run(&run_ids(&body_json(&r)).remove(0)).await;
    assert_eq!(
        run.delivery.as_ref().map(|d| d.inbound_message_id.as_str()),
        Some("10300")
    );
    let reqs = tg.requests();
    let typing = position(&reqs, "sendChatAction", |r| {
        r.path.ends_with("/sendChatAction")
    });
    assert_eq!(reqs[typing].body["action"], "typing");
    assert_eq!(reqs[typing].body["chat_id"], 42);
    let reply = position(&reqs, "sendMessage", |r| r.path.ends_with("/sendMessage"));
    assert!(typing < reply, "typing comes first: {reqs:#?}");

    // WhatsApp: the inbound message marked read with the typing indicator, then the reply.
    let body =
        whatsapp::inbound_text_payload(PNID, "16505551234", "wamid.TYPING1", "/sleep 400 hmm");
    let r = whatsapp_from(&gw, "127.0.0.1", &body, &whatsapp::sign(APP_SECRET, &body)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    gw.wait_run(&run_ids(&body_json(&r)).remove(0)).await;
    let reqs = wa.requests();
    let mark = position(&reqs, "read mark", whatsapp::is_read_mark);
    assert_eq!(reqs[mark].body["message_id"], "wamid.TYPING1");
    assert_eq!(reqs[mark].body["typing_indicator"]["type"], "text");
    assert_eq!(reqs[mark].body["messaging_product"], "whatsapp");
    let reply = position(&reqs, "reply", |r| {
        r.path.ends_with("/messages") && !whatsapp::is_read_mark(r)
    });
    assert!(mark < reply, "the mark comes first: {reqs:#?}");
    assert_eq!(wa.messages().len(), 1, "a read mark is not a message");
}

async fn voice_gateway(wa: &whatsapp::FakeWhatsApp, transcription: &str) -> Gateway {
    Gateway::start_with(&format!(
        "{{ channels: {{ whatsapp: {{ accessToken: '{WA_TOKEN}', phoneNumberId: '{PNID}', baseUrl: '{}', appSecret: '{APP_SECRET}', verifyToken: '{VERIFY}', {OPEN} {transcription} }} }} }}",
        wa.base_url
    ))
    .await
}

#[tokio::test]
async fn a_voice_note_is_downloaded_transcribed_and_run_on_its_transcript() {
    use crate::fakes::transcription::{FakeTranscription, parts};
    let wa = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let stt = FakeTranscription::start("stt-key").await;
    let gw = voice_gateway(
        &wa,
        &format!(
            ", transcription: {{ baseUrl: '{}', apiKey: 'stt-key' }}",
            stt.base_url
        ),
    )
    .await;
    wa.add_media(
        "MEDIA1",
        "audio/ogg; codecs=opus",
        "what is the weather today",
    );
    let body = whatsapp::inbound_voice_payload(PNID, "16505551234", "wamid.VOICE1", "MEDIA1");
    let r = post_whatsapp(&gw, &body, &whatsapp::sign(APP_SECRET, &body)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let run = gw.wait_run(&run_ids(&body_json(&r)).remove(0)).await;
    assert_eq!(
        run.message, "what is the weather today",
        "the run is on the transcript"
    );
    assert_eq!(run.session_key, "agent:main:whatsapp:direct:16505551234");
    assert_eq!(
        run.delivery.map(|d| d.status()),
        Some(DeliveryStatus::Delivered)
    );

    // The media went through the Graph API with the token, then to the provider.
    let reqs = wa.requests();
    let meta = position(&reqs, "media lookup", |r| {
        r.method == "GET" && r.path.ends_with("/MEDIA1")
    });
    assert_eq!(
        reqs[meta].header("authorization"),
        Some(format!("Bearer {WA_TOKEN}").as_str())
    );
    let download = position(&reqs, "download", |r| r.path == "/media/MEDIA1");
    assert_eq!(
        reqs[download].header("authorization"),
        Some(format!("Bearer {WA_TOKEN}").as_str())
    );
    let sent = stt.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/audio/transcriptions");
    let p = parts(&sent[0]);
    let model = p.iter().find(|(n, _, _)| n == "model").expect("model part");
    assert_eq!(model.2, b"whisper-1");
    let file = p.iter().find(|(n, _, _)| n == "file").expect("file part");
    assert_eq!(file.1.as_deref(), Some("voice.ogg"));
    assert_eq!(file.2, b"what is the weather today");
}

#[tokio::test]
async fn a_voice_note_without_a_provider_is_answered_not_dropped() {
    let wa = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let gw = voice_gateway(&wa, "").await;
    wa.add_media("MEDIA2", "audio/ogg; codecs=opus", "hello?");
    let body = whatsapp::inbound_voice_payload(PNID, "16505551234", "wamid.VOICE2", "MEDIA2");
    let r = post_whatsapp(&gw, &body, &whatsapp::sign(APP_SECRET, &body)).await;
    assert_eq!(r.status, 200);
    let v = body_json(&r);
    assert_eq!(run_ids(&v), Vec::<String>::new());
    assert!(
        v["ignored"][0]
            .as_str()
            .unwrap_or_default()
            .contains("transcription"),
        "{v}"
    );
    let m = wa.first_message().await;
    assert_eq!(m.body["to"], "16505551234");
    let text = m.body["text"]["body"].as_str().unwrap_or_default();
    assert!(
        text.contains("voice message") && text.contains("no transcription provider"),
        "{text}"
    );
    assert!(gw.list_runs("").await.is_empty());
}

#[tokio::test]
async fn a_failing_transcription_provider_is_named_to_the_sender() {
    use crate::fakes::transcription::FakeTranscription;
    let wa = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let stt = FakeTranscription::start("right-key").await;
    let gw = voice_gateway(
        &wa,
        &format!(
            ", transcription: {{ baseUrl: '{}', apiKey: 'wrong-key' }}",
            stt.base_url
        ),
    )
    .await;
    wa.add_media("MEDIA3", "audio/ogg; codecs=opus", "hello?");
    let body = whatsapp::inbound_voice_payload(PNID, "16505551234", "wamid.VOICE3", "MEDIA3");
    let r = post_whatsapp(&gw, &body, &whatsapp::sign(APP_SECRET, &body)).await;
    assert!(run_ids(&body_json(&r)).is_empty());
    let m = wa.first_message().await;
    let text = m.body["text"]["body"].as_str().unwrap_or_default();
    assert!(text.contains("401"), "{text}");
    let missing = refuses_to_start(
        "{ channels: { whatsapp: { accessToken: 'a', phoneNumberId: '1', transcription: { baseUrl: 'ftp://x' } } } }",
    )
    .await;
    assert!(
        missing.contains("channels.whatsapp.transcription.baseUrl"),
        "{missing}"
    );
}
