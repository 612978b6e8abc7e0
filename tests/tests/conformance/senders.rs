//! Who may talk to the bot (issue 15 §1): `dmPolicy` pairing (the default), allowlist,
//! open and disabled; `groupPolicy`; pairing codes sent through the provider's API (a local
//! fake), approved, rejected and revoked over gRPC, the OpenClaw WS methods and the CLI;
//! `bindings[]` choosing the agent. Unknown senders start no model turn.

use std::net::{IpAddr, SocketAddr};

use clawplane_proto::v1::{
    ApproveSenderPairingRequest, EventFilter, EventKind, ListSenderPairingsRequest,
    RejectSenderPairingRequest, RevokeApprovedSenderRequest, SenderPairing, event::Payload,
};
use serde_json::{Value, json};
use tonic::Code;

use crate::fakes::{recorder::Recorded, telegram, whatsapp};
use crate::harness::devices::{Dev, connect};
use crate::harness::ws::operator;
use crate::harness::*;
use crate::http1;

const TG_TOKEN: &str = "123:tg-token";
const TG_SECRET: &str = "tg_secret-1";
const PNID: &str = "106540352242922";
const WA_TOKEN: &str = "wa-access-token";
const APP_SECRET: &str = "meta-app-secret";

fn loopback(gw: &Gateway) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 0, 0, 1]), gw.addr.port())
}

/// A gateway with Telegram inbound; `policy` is spliced into `channels.telegram`.
async fn telegram_gateway(fake: &telegram::FakeTelegram, policy: &str, extra: &str) -> Gateway {
    Gateway::start_with(&format!(
        "{{ {extra} channels: {{ telegram: {{ botToken: '{TG_TOKEN}', baseUrl: '{}', webhookSecret: '{TG_SECRET}' {policy} }} }} }}",
        fake.base_url
    ))
    .await
}

/// Posts one Telegram update; answers the webhook's JSON body.
async fn post_update(gw: &Gateway, update_id: i64, chat: i64, from: i64, text: &str) -> Value {
    let body = telegram::text_update(update_id, chat, from, text);
    let r = http1::request(
        loopback(gw),
        "POST",
        "/channels/telegram/webhook",
        &[
            ("Content-Type", "application/json"),
            ("X-Telegram-Bot-Api-Secret-Token", TG_SECRET),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).expect("a JSON answer")
}

fn runs_of(v: &Value) -> Vec<String> {
    v["runIds"]
        .as_array()
        .unwrap_or_else(|| panic!("runIds in {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

fn ignored(v: &Value) -> String {
    v["ignored"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// Waits until the fake Telegram got `n` sendMessage calls; answers them.
async fn tg_sent(fake: &telegram::FakeTelegram, n: usize) -> Vec<Recorded> {
    fake.server
        .rec
        .wait_until(PATIENCE, &format!("{n} sendMessage calls"), |got| {
            got.iter()
                .filter(|r| r.path.ends_with("/sendMessage") && r.answered != 0)
                .count()
                >= n
        })
        .await;
    fake.messages()
}

/// The pairing code in a reply's text (`Pairing code: XXXXXXXX`).
fn code_in(text: &str) -> String {
    let at = text
        .find("Pairing code: ")
        .unwrap_or_else(|| panic!("no pairing code in {text:?}"));
    text[at + "Pairing code: ".len()..]
        .chars()
        .take(8)
        .collect()
}

async fn pending(gw: &Gateway, channel: &str) -> Vec<SenderPairing> {
    gw.channels()
        .await
        .list_sender_pairings(ListSenderPairingsRequest {
            channel: channel.into(),
        })
        .await
        .expect("ListSenderPairings")
        .into_inner()
        .requests
}

fn pairing_filter() -> Option<EventFilter> {
    Some(EventFilter {
        kinds: vec![EventKind::SenderPairing as i32],
        ..Default::default()
    })
}

fn change(e: &clawplane_proto::v1::Event) -> (String, SenderPairing) {
    match &e.payload {
        Some(Payload::SenderPairing(c)) => {
            (c.r#type.clone(), c.request.clone().unwrap_or_default())
        }
        other => panic!("a sender pairing event, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_sender_gets_one_code_and_runs_nothing_until_approved() {
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = telegram_gateway(&fake, "", "").await;
    let mut feed = gw.watch_after(0, pairing_filter()).await;

    // The default policy is pairing: no run, one reply carrying the code.
    let first = post_update(&gw, 100, 42, 42, "hello?").await;
    assert!(runs_of(&first).is_empty(), "{first}");
    assert!(ignored(&first).contains("pairing request"), "{first}");
    let sent = tg_sent(&fake, 1).await;
    assert_eq!(sent[0].body["chat_id"].to_string().trim_matches('"'), "42");
    let text = sent[0].body["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let code = code_in(&text);
    assert_eq!(code.len(), 8, "{text}");
    assert!(
        code.chars()
            .all(|c| "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(c)),
        "uppercase without 0/O/1/I: {code}"
    );
    assert!(
        text.contains(&format!("clawplane pairing approve telegram {code}")),
        "{text}"
    );
    assert!(
        gw.list_runs("").await.is_empty(),
        "no model turn for a stranger"
    );

    let (kind, req) = change(&feed.next_event().await);
    assert_eq!(kind, "requested");
    assert_eq!(
        (req.sender_id.as_str(), req.code.as_str()),
        ("42", code.as_str())
    );
    let listed = pending(&gw, "telegram").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].code, code);
    assert_eq!(listed[0].sender_name, "Ann");
    assert_eq!(
        listed[0].name,
        format!("channels/telegram/senderPairings/{}", listed[0].request_id)
    );
    let made = ts(&listed[0].create_time, "create_time").0;
    assert_eq!(
        ts(&listed[0].expire_time, "expire_time").0 - made,
        3600,
        "one hour"
    );

    // Asking again sends no second code.
    let again = post_update(&gw, 101, 42, 42, "hello??").await;
    assert!(runs_of(&again).is_empty());
    assert!(ignored(&again).contains("is pending"), "{again}");
    assert_eq!(pending(&gw, "telegram").await.len(), 1);

    // Approved (the code is case-insensitive) with a notice: the sender is told, and their
    // next message runs in their own session.
    let r = gw
        .channels()
        .await
        .approve_sender_pairing(ApproveSenderPairingRequest {
            channel: "telegram".into(),
            code: code.to_lowercase(),
            notify: true,
            ..Default::default()
        })
        .await
        .expect("approve")
        .into_inner();
    assert_eq!(r.sender.as_ref().map(|s| s.sender_id.as_str()), Some("42"));
    let d = r.notification.expect("a notice was asked for");
    assert_eq!(
        d.status(),
        clawplane_proto::v1::DeliveryStatus::Delivered,
        "{d:?}"
    );
    let sent = tg_sent(&fake, 2).await;
    assert!(
        sent[1].body["text"]
            .as_str()
            .unwrap_or_default()
            .contains("approved"),
        "{:?}",
        sent[1].body
    );
    let (kind, req) = change(&feed.next_event().await);
    assert_eq!(
        (kind.as_str(), req.code.as_str()),
        ("approved", code.as_str())
    );
    let lists = gw
        .channels()
        .await
        .list_sender_pairings(ListSenderPairingsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(lists.requests.is_empty());
    assert_eq!(lists.approved.len(), 1);
    assert_eq!((lists.pending_per_channel, lists.ttl_seconds), (3, 3600));

    let ok = post_update(&gw, 102, 42, 42, "now?").await;
    let ids = runs_of(&ok);
    assert_eq!(ids.len(), 1, "{ok}");
    let run = gw.wait_run(&ids[0]).await;
    assert_eq!(run.session_key, "agent:main:telegram:direct:42");
    assert_eq!(
        run.delivery.map(|d| d.status()),
        Some(clawplane_proto::v1::DeliveryStatus::Delivered)
    );

    // A code is good once.
    let twice = expect_err(
        gw.channels()
            .await
            .approve_sender_pairing(ApproveSenderPairingRequest {
                channel: "telegram".into(),
                code: code.clone(),
                ..Default::default()
            })
            .await,
        "the same code again",
    );
    assert_error(&twice, Code::NotFound, "PAIRING_CODE_NOT_FOUND");

    // Revoked: the next message asks again (a new request, a new code).
    let revoked = gw
        .channels()
        .await
        .revoke_approved_sender(RevokeApprovedSenderRequest {
            channel: "telegram".into(),
            sender_id: "tg:42".into(),
        })
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.sender.map(|s| s.sender_id), Some("42".into()));
    let (kind, _) = change(&feed.next_event().await);
    assert_eq!(kind, "revoked");
    let after = post_update(&gw, 103, 42, 42, "still me").await;
    assert!(runs_of(&after).is_empty(), "{after}");
    let sent = tg_sent(&fake, 4).await;
    let new_code = code_in(sent[3].body["text"].as_str().unwrap_or_default());
    assert_ne!(new_code, code);
    let missing = expect_err(
        gw.channels()
            .await
            .revoke_approved_sender(RevokeApprovedSenderRequest {
                channel: "telegram".into(),
                sender_id: "42".into(),
            })
            .await,
        "revoking twice",
    );
    assert_error(&missing, Code::NotFound, "APPROVED_SENDER_NOT_FOUND");
}

#[tokio::test]
async fn at_most_three_requests_wait_per_channel_and_a_rejected_one_makes_room() {
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = telegram_gateway(&fake, "", "").await;
    for (i, sender) in [51, 52, 53].into_iter().enumerate() {
        post_update(&gw, 200 + i as i64, sender, sender, "hi").await;
    }
    tg_sent(&fake, 3).await;
    let fourth = post_update(&gw, 210, 54, 54, "me too").await;
    assert!(runs_of(&fourth).is_empty());
    assert!(
        ignored(&fourth).contains("3 pending pairing requests"),
        "{fourth}"
    );
    let waiting = pending(&gw, "telegram").await;
    assert_eq!(waiting.len(), 3);
    assert!(waiting.iter().all(|p| p.sender_id != "54"));

    // Rejected by request id: the fourth sender's retry gets a code, the rejected one's
    // code is gone.
    let victim = waiting[0].clone();
    let r = gw
        .channels()
        .await
        .reject_sender_pairing(RejectSenderPairingRequest {
            channel: "telegram".into(),
            request_id: victim.request_id.clone(),
            ..Default::default()
        })
        .await
        .expect("reject")
        .into_inner();
    assert_eq!(r.request.map(|p| p.code), Some(victim.code.clone()));
    post_update(&gw, 211, 54, 54, "me too, again").await;
    let sent = tg_sent(&fake, 4).await;
    assert_eq!(
        sent.len(),
        4,
        "three codes, then the fourth sender's: {sent:#?}"
    );
    assert_eq!(sent[3].body["chat_id"].to_string().trim_matches('"'), "54");
    let gone = expect_err(
        gw.channels()
            .await
            .approve_sender_pairing(ApproveSenderPairingRequest {
                channel: "telegram".into(),
                code: victim.code,
                ..Default::default()
            })
            .await,
        "approving a rejected code",
    );
    assert_error(&gone, Code::NotFound, "PAIRING_CODE_NOT_FOUND");
}

#[tokio::test]
async fn allowlist_open_disabled_and_group_policies_decide_before_any_turn() {
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = telegram_gateway(
        &fake,
        ", dmPolicy: 'allowlist', allowFrom: ['tg:42', 7], groupAllowFrom: [-100500]",
        "",
    )
    .await;
    let listed = post_update(&gw, 300, 42, 42, "hi").await;
    assert_eq!(runs_of(&listed).len(), 1, "{listed}");
    let numeric = post_update(&gw, 301, 7, 7, "hi").await;
    assert_eq!(
        runs_of(&numeric).len(),
        1,
        "a number in allowFrom: {numeric}"
    );
    let stranger = post_update(&gw, 302, 43, 43, "hi").await;
    assert!(runs_of(&stranger).is_empty());
    assert!(ignored(&stranger).contains("allowFrom"), "{stranger}");
    // A group on groupAllowFrom runs whoever writes in it; another group does not.
    let group = post_update(&gw, 303, -100500, 43, "in the group").await;
    let ids = runs_of(&group);
    assert_eq!(ids.len(), 1, "{group}");
    assert_eq!(
        gw.wait_run(&ids[0]).await.session_key,
        "agent:main:telegram:group:-100500"
    );
    let other = post_update(&gw, 304, -100600, 42, "elsewhere").await;
    assert!(runs_of(&other).is_empty(), "{other}");
    assert!(ignored(&other).contains("groupAllowFrom"), "{other}");
    // Nothing was asked of strangers under allowlist: only the three runs answered.
    for id in runs_of(&listed)
        .iter()
        .chain(&runs_of(&numeric))
        .chain(&ids)
    {
        gw.wait_run(id).await;
    }
    assert_eq!(fake.messages().len(), 3);
    assert!(pending(&gw, "telegram").await.is_empty());

    let fake2 = telegram::FakeTelegram::start(TG_TOKEN).await;
    let off = telegram_gateway(
        &fake2,
        ", dmPolicy: 'disabled', groupPolicy: 'disabled'",
        "",
    )
    .await;
    let dm = post_update(&off, 400, 42, 42, "hi").await;
    assert!(ignored(&dm).contains("disabled"), "{dm}");
    let grp = post_update(&off, 401, -1, 42, "hi").await;
    assert!(ignored(&grp).contains("disabled"), "{grp}");
    assert!(off.list_runs("").await.is_empty());

    let fake3 = telegram::FakeTelegram::start(TG_TOKEN).await;
    let open = telegram_gateway(
        &fake3,
        ", dmPolicy: 'open', allowFrom: ['*'], groupPolicy: 'open'",
        "",
    )
    .await;
    let dm = post_update(&open, 500, 99, 99, "hi").await;
    assert_eq!(runs_of(&dm).len(), 1, "{dm}");
    let grp = post_update(&open, 501, -5, 99, "hi").await;
    assert_eq!(runs_of(&grp).len(), 1, "{grp}");
}

#[tokio::test]
async fn a_policy_that_cannot_work_is_refused_at_startup() {
    let open_without_star = refuses_to_start(
        "{ channels: { telegram: { botToken: '1:x', webhookSecret: 's', dmPolicy: 'open' } } }",
    )
    .await;
    assert!(
        open_without_star.contains("allowFrom"),
        "{open_without_star}"
    );
    let bad_policy = refuses_to_start(
        "{ channels: { telegram: { botToken: '1:x', webhookSecret: 's', dmPolicy: 'everyone' } } }",
    )
    .await;
    assert!(
        bad_policy.contains("dmPolicy") || bad_policy.contains("everyone"),
        "{bad_policy}"
    );
    let unknown_agent = refuses_to_start(
        "{ agents: { list: [{ id: 'main' }] }, bindings: [{ agentId: 'ghost', match: { channel: 'telegram' } }] }",
    )
    .await;
    assert!(unknown_agent.contains("ghost"), "{unknown_agent}");
}

#[tokio::test]
async fn bindings_route_a_peer_to_its_agent_and_the_rest_to_the_default() {
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = telegram_gateway(
        &fake,
        ", dmPolicy: 'open', allowFrom: ['*']",
        "agents: { list: [{ id: 'main', default: true }, { id: 'support' }, { id: 'ops' }] },
         bindings: [
           { agentId: 'ops', match: { channel: 'telegram' } },
           { agentId: 'support', match: { channel: 'telegram', peer: { kind: 'direct', id: '42' } } },
         ],",
    )
    .await;
    let peer = post_update(&gw, 600, 42, 42, "help").await;
    let run = gw.wait_run(&runs_of(&peer)[0]).await;
    assert_eq!(
        run.agent_id, "support",
        "the peer binding is the most specific"
    );
    assert_eq!(run.session_key, "agent:support:telegram:direct:42");
    let other = post_update(&gw, 601, 43, 43, "hi").await;
    let run = gw.wait_run(&runs_of(&other)[0]).await;
    assert_eq!(run.agent_id, "ops", "the channel binding");
}

#[tokio::test]
async fn whatsapp_pairing_goes_through_the_graph_api_and_the_openclaw_ws_methods() {
    let fake = whatsapp::FakeWhatsApp::start(WA_TOKEN, PNID).await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ whatsapp: {{ accessToken: '{WA_TOKEN}', phoneNumberId: '{PNID}', baseUrl: '{}', appSecret: '{APP_SECRET}', verifyToken: 'v' }} }} }}",
        fake.base_url
    ))
    .await;
    let post = |wamid: &str, from: &str| {
        let body = whatsapp::inbound_text_payload(PNID, from, wamid, "hola");
        let gw = &gw;
        async move {
            let r = post_whatsapp_signed(gw, APP_SECRET, &body).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            serde_json::from_slice::<Value>(&r.body).expect("JSON")
        }
    };
    let first = post("wamid.p1", "16505551234").await;
    assert!(runs_of(&first).is_empty(), "{first}");
    let sent = fake
        .server
        .rec
        .wait_until(PATIENCE, "the code's message", |got| {
            got.iter()
                .any(|r| r.path.ends_with("/messages") && r.answered != 0)
        })
        .await;
    let m = sent
        .iter()
        .find(|r| r.path.ends_with("/messages"))
        .expect("sent");
    assert_eq!(m.body["to"], "16505551234");
    let code = code_in(m.body["text"]["body"].as_str().unwrap_or_default());

    // `openclaw pairing list` / `approve` over the WS protocol.
    let (mut ws, _) = operator(&gw).await;
    let list = ws
        .ok("channels.pairing.list", json!({"channel": "whatsapp"}))
        .await;
    let reqs = list["requests"].as_array().expect("requests");
    assert_eq!(reqs.len(), 1, "{list}");
    assert_eq!(reqs[0]["channel"], "whatsapp");
    assert_eq!(reqs[0]["senderId"], "16505551234");
    assert_eq!(reqs[0]["code"], code.as_str());
    assert!(
        reqs[0]["expiresAt"]
            .as_str()
            .unwrap_or_default()
            .ends_with('Z'),
        "{list}"
    );
    assert_eq!(list["limits"]["pendingPerAccount"], 3);
    assert_eq!(list["limits"]["ttlMs"], 3_600_000);
    assert_eq!(list["accounts"][0]["channel"], "whatsapp", "{list}");
    let request_id = reqs[0]["requestId"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let unknown = ws
        .call(
            "channels.pairing.approve",
            json!({"channel": "whatsapp", "accountId": "default", "requestId": "nope"}),
        )
        .await;
    assert_eq!(unknown["ok"], false, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer exists"),
        "{unknown}"
    );
    let ok = ws
        .ok(
            "channels.pairing.approve",
            json!({"channel": "whatsapp", "accountId": "default", "requestId": request_id, "notify": true}),
        )
        .await;
    assert_eq!(ok["senderId"], "16505551234", "{ok}");
    assert_eq!(ok["notification"], "sent", "{ok}");
    let ran = post("wamid.p2", "16505551234").await;
    assert_eq!(runs_of(&ran).len(), 1, "{ran}");

    // Another sender, dismissed.
    post("wamid.p3", "16505550000").await;
    let list = ws.ok("channels.pairing.list", json!({})).await;
    let id = list["requests"][0]["requestId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let gone = ws
        .ok(
            "channels.pairing.dismiss",
            json!({"channel": "whatsapp", "accountId": "default", "requestId": id}),
        )
        .await;
    assert_eq!(gone["senderId"], "16505550000", "{gone}");
    let list = ws.ok("channels.pairing.list", json!({})).await;
    assert_eq!(list["requests"], json!([]), "{list}");
}

#[tokio::test]
async fn pairing_decisions_need_the_pairing_scope_and_a_real_request() {
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = telegram_gateway(&fake, "", "").await;
    post_update(&gw, 700, 42, 42, "hi").await;
    let code = code_in(
        tg_sent(&fake, 1).await[0].body["text"]
            .as_str()
            .unwrap_or_default(),
    );

    // A read-only device may list, not decide.
    let reader = connect(&gw, &Dev::new(), &gw.token, &["operator.read"])
        .await
        .expect("a read-only device");
    let mut as_reader = gw.channels_as(Token::bearer(&reader.device_token)).await;
    let denied = expect_err(
        as_reader
            .approve_sender_pairing(ApproveSenderPairingRequest {
                channel: "telegram".into(),
                code: code.clone(),
                ..Default::default()
            })
            .await,
        "approve with operator.read",
    );
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(pending(&gw, "telegram").await.len(), 1, "nothing changed");

    let mut c = gw.channels().await;
    let bad_code = expect_err(
        c.approve_sender_pairing(ApproveSenderPairingRequest {
            channel: "telegram".into(),
            code: "ZZZZZZZZ".into(),
            ..Default::default()
        })
        .await,
        "a wrong code",
    );
    let meta = assert_error(&bad_code, Code::NotFound, "PAIRING_CODE_NOT_FOUND");
    assert_eq!(meta.get("channel").map(String::as_str), Some("telegram"));
    let no_code = expect_err(
        c.approve_sender_pairing(ApproveSenderPairingRequest {
            channel: "telegram".into(),
            ..Default::default()
        })
        .await,
        "no code",
    );
    assert_invalid_field(&no_code, "code");
    let no_channel = expect_err(
        c.approve_sender_pairing(ApproveSenderPairingRequest {
            channel: "slack".into(),
            code: code.clone(),
            ..Default::default()
        })
        .await,
        "a channel without inbound",
    );
    assert_eq!(no_channel.code(), Code::InvalidArgument, "{no_channel:?}");
    assert_eq!(pending(&gw, "telegram").await.len(), 1, "nothing changed");
}

#[tokio::test]
async fn the_cli_lists_and_approves_pairing_codes() {
    let fake = telegram::FakeTelegram::start(TG_TOKEN).await;
    let gw = telegram_gateway(&fake, "", "").await;
    post_update(&gw, 800, 42, 42, "hi").await;
    let code = code_in(
        tg_sent(&fake, 1).await[0].body["text"]
            .as_str()
            .unwrap_or_default(),
    );

    let list = gw.run_cli(&["pairing", "list", "telegram"]).await;
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        stdout.contains(&code) && stdout.contains("42 (Ann)"),
        "{stdout}"
    );

    let wrong = gw
        .run_cli(&["pairing", "approve", "telegram", "ZZZZZZZZ"])
        .await;
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("PAIRING_CODE_NOT_FOUND") || stderr.contains("no pending"),
        "{stderr}"
    );

    let ok = gw
        .run_cli(&["pairing", "approve", "telegram", &code, "--notify"])
        .await;
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("approved 42 (Ann) on telegram; notified"),
        "{stdout}"
    );
    let list = gw.run_cli(&["pairing", "list", "--json"]).await;
    let v: Value = serde_json::from_slice(&list.stdout).expect("JSON");
    assert_eq!(v["approved"][0]["senderId"], "42", "{v}");

    let revoke = gw.run_cli(&["pairing", "revoke", "telegram", "42"]).await;
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let ran = post_update(&gw, 801, 42, 42, "again").await;
    assert!(runs_of(&ran).is_empty(), "revoked: {ran}");
}
