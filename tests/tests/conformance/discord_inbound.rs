//! Discord both ways (issue 15 §2): the gateway keeps a Discord Gateway session (a local
//! fake following the published protocol: hello, identify, ready, heartbeat and ack,
//! dispatch, reconnect, invalid session, resume); DMs and mentions become inbound messages
//! under the sender policy and are answered through the REST API; an integration continues
//! the same DM session with `--channel discord --to user:<id>`.

use std::time::Duration;

use clawplane_proto::v1::{
    AgentServiceRunRequest, ApproveSenderPairingRequest, DeliveryStatus, Run, RunOrigin,
};

use crate::fakes::discord::FakeDiscord;
use crate::fakes::discord_gateway::FakeGateway;
use crate::harness::*;

const TOKEN: &str = "bot-token";
const OPEN: &str = "dmPolicy: 'open', allowFrom: ['*'], groupPolicy: 'open'";

async fn discord_gateway(fake: &FakeDiscord, policy: &str) -> Gateway {
    Gateway::start_with(&format!(
        "{{ channels: {{ discord: {{ token: '{TOKEN}', baseUrl: '{}' {policy} }} }} }}",
        fake.base_url
    ))
    .await
}

/// Waits until `n` runs of origin CHANNEL exist; answers them, oldest first.
async fn channel_runs(gw: &Gateway, n: usize) -> Vec<Run> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut runs: Vec<Run> = gw
            .list_runs("")
            .await
            .into_iter()
            .filter(|r| r.origin() == RunOrigin::Channel)
            .collect();
        if runs.len() >= n {
            runs.sort_by_key(|r| r.create_time.as_ref().map(|t| (t.seconds, t.nanos)));
            let mut done = Vec::new();
            for r in runs {
                done.push(gw.wait_run(&r.run_id).await);
            }
            return done;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} channel runs, have {}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the fake got `n` `POST /channels/{id}/messages`.
async fn posted(fake: &FakeDiscord, n: usize) -> Vec<crate::fakes::recorder::Recorded> {
    fake.server
        .rec
        .wait_until(PATIENCE, &format!("{n} messages"), |got| {
            got.iter()
                .filter(|r| r.path.ends_with("/messages") && r.answered != 0)
                .count()
                >= n
        })
        .await;
    fake.messages()
}

#[tokio::test]
async fn dms_and_mentions_run_and_are_answered_and_the_dm_session_is_shared() {
    let fake = FakeDiscord::start(TOKEN).await;
    let gw = discord_gateway(&fake, &format!(", {OPEN}")).await;
    let g = &fake.gateway;
    g.wait_identified(1).await;
    let identify = &g.sent_with(2)[0];
    assert_eq!(identify["token"], TOKEN);
    assert_eq!(
        identify["intents"], 4609,
        "GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES"
    );
    assert_eq!(identify["properties"]["browser"], "clawplane");
    assert_eq!(g.live(), 1, "one connection, whatever the replicas");

    // A DM: its own session, answered in the user's DM channel.
    g.dm("7", "5500", "hello bot");
    let runs = channel_runs(&gw, 1).await;
    let dm_run = &runs[0];
    assert_eq!(dm_run.session_key, "agent:main:discord:direct:7");
    let d = dm_run.delivery.clone().expect("a delivery");
    assert_eq!(d.status(), DeliveryStatus::Delivered, "{d:?}");
    let opened = fake.requests_to("/users/@me/channels");
    assert_eq!(opened[0].body["recipient_id"], "7");
    let sent = posted(&fake, 1).await;
    assert_eq!(sent[0].body["content"], dm_run.reply_text.as_str());

    // A guild message that does not mention the bot is not for it; one that does is
    // answered in its channel, without the mention in the text.
    g.guild_message("42", "6600", "8", "chatter among humans", false);
    g.guild_message("42", "6600", "8", "what's up?", true);
    let runs = channel_runs(&gw, 2).await;
    assert_eq!(runs.len(), 2, "the chatter started nothing: {runs:#?}");
    let mention = &runs[1];
    assert_eq!(mention.session_key, "agent:main:discord:channel:6600");
    let sent = posted(&fake, 2).await;
    assert_eq!(sent[1].path, "/api/v10/channels/6600/messages");
    assert!(
        !sent[1].body["content"]
            .as_str()
            .unwrap_or_default()
            .contains("<@"),
        "{:?}",
        sent[1].body
    );

    // The integration continues the DM conversation: same session.
    let r = gw
        .agent()
        .await
        .run(AgentServiceRunRequest {
            message: "follow-up from the integration".into(),
            channel: "discord".into(),
            to: "user:7".into(),
            deliver: true,
            idempotency_key: "follow-up-1".into(),
            ..Default::default()
        })
        .await
        .expect("run")
        .into_inner();
    assert_eq!(r.session_key, "agent:main:discord:direct:7");
    let run = gw.wait_run(&r.run_id).await;
    assert_eq!(
        run.delivery.map(|d| d.status()),
        Some(DeliveryStatus::Delivered)
    );
    let history = gw.history("agent:main:discord:direct:7").await;
    let texts: Vec<&str> = history.messages.iter().map(|m| m.text.as_str()).collect();
    assert!(
        texts.contains(&"hello bot") && texts.contains(&"follow-up from the integration"),
        "{texts:?}"
    );
}

#[tokio::test]
async fn a_discord_stranger_gets_a_pairing_code_by_dm() {
    let fake = FakeDiscord::start(TOKEN).await;
    let gw = discord_gateway(&fake, "").await;
    let g = &fake.gateway;
    g.wait_identified(1).await;
    g.dm("77", "5577", "let me in");
    let sent = posted(&fake, 1).await;
    let text = sent[0].body["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let at = text.find("Pairing code: ").expect("a code") + "Pairing code: ".len();
    let code: String = text[at..].chars().take(8).collect();
    assert!(gw.list_runs("").await.is_empty(), "no turn for a stranger");
    gw.channels()
        .await
        .approve_sender_pairing(ApproveSenderPairingRequest {
            channel: "discord".into(),
            code,
            ..Default::default()
        })
        .await
        .expect("approve");
    g.dm("77", "5577", "thanks");
    let runs = channel_runs(&gw, 1).await;
    assert_eq!(runs[0].session_key, "agent:main:discord:direct:77");
    assert_eq!(runs[0].agent_id, "main");
}

#[tokio::test]
async fn the_session_heartbeats_resumes_and_identifies_anew() {
    let fake = FakeDiscord::start_with_heartbeat(TOKEN, 150).await;
    let gw = discord_gateway(&fake, &format!(", {OPEN}")).await;
    let g: &FakeGateway = &fake.gateway;
    g.wait_identified(1).await;
    g.wait(PATIENCE, "heartbeats with the last seq", |g| {
        g.sent_with(1)
            .iter()
            .filter(|d| d.as_u64() == Some(1))
            .count()
            >= 2
    })
    .await;

    // Op 7: the client reconnects and resumes; a message sent while it was away is
    // replayed and runs.
    g.ask_reconnect();
    g.dm("7", "5500", "sent during the reconnect");
    g.wait(PATIENCE, "a resume", |g| g.sent_with(6).len() == 1)
        .await;
    let resume = &g.sent_with(6)[0];
    assert_eq!(resume["token"], TOKEN);
    assert!(
        resume["session_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("fake-session-")
    );
    assert!(resume["seq"].as_u64().is_some(), "{resume}");
    channel_runs(&gw, 1).await;

    // Heartbeats no longer acknowledged: a zombie connection is closed and resumed.
    g.acknowledge_heartbeats(false);
    g.wait(PATIENCE, "a second resume", |g| g.sent_with(6).len() == 2)
        .await;
    g.acknowledge_heartbeats(true);
    g.dm("7", "5500", "after the zombie");
    channel_runs(&gw, 2).await;

    // Invalid session, not resumable: a new Identify (after Discord's 1-5 s wait).
    g.invalidate_session(false);
    g.wait_identified(2).await;
    g.dm("7", "5500", "after identifying anew");
    let runs = channel_runs(&gw, 3).await;
    assert!(
        runs.iter()
            .all(|r| r.session_key == "agent:main:discord:direct:7")
    );

    // Authentication failed (4004) cannot get better: the client stops and says why.
    let before = g.connections();
    g.close(4004, "Authentication failed.");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !gw.stderr().contains("not reconnecting") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fatal log: {}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(g.connections(), before, "no reconnect after 4004");
}

#[tokio::test]
async fn a_wrong_token_is_reported_not_retried_forever() {
    let fake = FakeDiscord::start(TOKEN).await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ discord: {{ token: 'wrong', baseUrl: '{}' }} }} }}",
        fake.base_url
    ))
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !gw.stderr().contains("not reconnecting") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fatal log: {}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.stderr().contains("token"), "{}", gw.stderr());
    assert_eq!(
        fake.gateway.sent_with(2).len(),
        0,
        "discovery refused it first"
    );
}

#[tokio::test]
async fn discord_shows_typing_while_the_model_works() {
    let fake = FakeDiscord::start(TOKEN).await;
    let gw = discord_gateway(&fake, &format!(", {OPEN}")).await;
    fake.gateway.wait_identified(1).await;
    let id = fake.gateway.dm("7", "5500", "/sleep 400 take your time");
    let run = &channel_runs(&gw, 1).await[0];
    assert_eq!(
        run.delivery.as_ref().map(|d| d.inbound_message_id.as_str()),
        Some(id.as_str())
    );
    let reqs = fake.requests();
    let typing = reqs
        .iter()
        .position(|r| r.path.ends_with("/typing"))
        .unwrap_or_else(|| panic!("no typing in {reqs:#?}"));
    let reply = reqs
        .iter()
        .position(|r| r.path.ends_with("/messages"))
        .unwrap_or_else(|| panic!("no reply in {reqs:#?}"));
    assert!(typing < reply, "{reqs:#?}");
    let dm_channel = reqs[reply].path.clone();
    assert_eq!(
        reqs[typing].path,
        dm_channel.replace("/messages", "/typing"),
        "typing in the DM the reply goes to"
    );
}

/// What a broken or hostile Gateway sends changes nothing: frames that are not JSON,
/// dispatches without an author, id or text, unknown opcodes and events, a bot's message —
/// the session stays up (no reconnect) and the next real DM runs.
#[tokio::test]
async fn malformed_gateway_frames_run_nothing_and_keep_the_session() {
    use serde_json::json;
    let fake = FakeDiscord::start(TOKEN).await;
    let gw = discord_gateway(&fake, &format!(", {OPEN}")).await;
    let g = &fake.gateway;
    g.wait_identified(1).await;
    let connections = g.connections();
    g.send_raw("not json at all");
    g.send_raw(r#"{"op": "zero"}"#);
    g.send_raw(r#"{"op": 42, "d": {"what": "unknown opcode"}}"#);
    g.dispatch(
        "MESSAGE_CREATE",
        json!({"id": "1", "channel_id": "5500", "content": "no author"}),
    );
    g.dispatch(
        "MESSAGE_CREATE",
        json!({"channel_id": "5500", "content": "no id", "author": {"id": "7"}}),
    );
    g.dispatch(
        "MESSAGE_CREATE",
        json!({"id": "2", "channel_id": "5500", "content": "   ", "author": {"id": "7"}}),
    );
    g.dispatch("MESSAGE_CREATE", json!({"id": "3", "channel_id": "5500", "content": "beep", "author": {"id": "99", "bot": true}}));
    g.dispatch("MESSAGE_CREATE", json!("a string, not an object"));
    g.dispatch(
        "TYPING_START",
        json!({"channel_id": "5500", "user_id": "7"}),
    );
    g.dm("7", "5500", "the real one");
    let runs = channel_runs(&gw, 1).await;
    assert_eq!(runs.len(), 1, "only the real DM ran: {runs:#?}");
    assert_eq!(runs[0].message, "the real one");
    assert_eq!(g.connections(), connections, "the session survived");
    assert!(g.sent_with(6).is_empty(), "no resume was needed");
}
