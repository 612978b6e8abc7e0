//! ChannelService against local fakes of Discord, Telegram, WhatsApp Cloud and Slack:
//! the provider request shapes, ids, splitting, 429 handling, rejections, send limits,
//! idempotency, probes, health events, and the `channels` / `message` CLI.

use std::process::Stdio;

use clawplane_proto::v1::channel_service_client::ChannelServiceClient;
use clawplane_proto::v1::event;
use clawplane_proto::v1::{
    ChannelEvent, ChannelHealth, EventKind, EventServiceWatchRequest, GetChannelRequest,
    ListChannelsRequest, MessageRole, SendMessageRequest, SendMessageResponse,
    SessionServiceGetRequest,
};
use serde_json::{Value, json};
use tonic::{Code, Status};

use crate::fakes::discord::FakeDiscord;
use crate::fakes::receiver::Receiver;
use crate::fakes::recorder::Canned;
use crate::fakes::slack::FakeSlack;
use crate::fakes::telegram::FakeTelegram;
use crate::fakes::whatsapp::FakeWhatsApp;
use crate::harness::*;

async fn client(gw: &Gateway) -> ChannelServiceClient<Sdk> {
    gw.channels().await
}

fn req(channel: &str, to: &str, text: &str) -> SendMessageRequest {
    SendMessageRequest {
        channel: channel.into(),
        to: to.into(),
        message: text.into(),
        ..Default::default()
    }
}

async fn try_send(gw: &Gateway, r: SendMessageRequest) -> Result<SendMessageResponse, Status> {
    client(gw)
        .await
        .send_message(r)
        .await
        .map(|r| r.into_inner())
}

#[track_caller]
fn ok(r: Result<SendMessageResponse, Status>) -> SendMessageResponse {
    r.unwrap_or_else(|s| panic!("SendMessage failed: {s:?}"))
}

async fn send_ok(gw: &Gateway, r: SendMessageRequest) -> clawplane_proto::v1::Delivery {
    ok(try_send(gw, r).await)
        .delivery
        .expect("SendMessage answer without delivery")
}

async fn channel_status(gw: &Gateway, id: &str, probe: bool) -> clawplane_proto::v1::Channel {
    client(gw)
        .await
        .get_channel(GetChannelRequest {
            channel_id: id.into(),
            probe,
        })
        .await
        .unwrap_or_else(|s| panic!("GetChannel {id} failed: {s:?}"))
        .into_inner()
        .channel
        .expect("GetChannel without channel")
}

/// A gateway with `config`; clustered runs spread its calls over the replicas (a channel's
/// health and send counters are the cluster's).
async fn one_gateway(config: &str) -> Gateway {
    Gateway::start_with(config).await
}

async fn discord_gateway(fake: &FakeDiscord, token: &str, extra: &str) -> Gateway {
    one_gateway(&format!(
        "{{ channels: {{ discord: {{ token: '{token}', baseUrl: '{}' {extra} }} }} }}",
        fake.base_url
    ))
    .await
}

// ---------------------------------------------------------------------------------------------
// Discord
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn discord_dm_opens_the_dm_channel_once_and_caches_it() {
    let fake = FakeDiscord::start("t").await;
    // The DM channel cache is each replica's (docs/scale-out.md): one process.
    let gw = Gateway::builder()
        .config(&format!(
            "{{ channels: {{ discord: {{ token: 't', baseUrl: '{}' }} }} }}",
            fake.base_url
        ))
        .one_process()
        .start()
        .await;

    let d = send_ok(&gw, req("discord", "user:123", "hello there")).await;
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/api/v10/users/@me/channels");
    assert_eq!(reqs[0].body, json!({"recipient_id": "123"}));
    assert_eq!(reqs[0].header("authorization"), Some("Bot t"));
    assert!(
        reqs[0]
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("DiscordBot (")),
        "{:?}",
        reqs[0].headers
    );
    let dm_path = reqs[1].path.clone();
    assert!(
        dm_path.starts_with("/api/v10/channels/") && dm_path.ends_with("/messages"),
        "{dm_path}"
    );
    assert_eq!(reqs[1].body["content"], "hello there");
    assert_eq!(d.status(), clawplane_proto::v1::DeliveryStatus::Delivered);
    assert_eq!((d.channel.as_str(), d.to.as_str()), ("discord", "user:123"));
    assert!(!d.message_id.is_empty());
    assert_eq!(d.message_ids, vec![d.message_id.clone()]);
    assert_eq!(d.attempts, 1);

    // The mention form is the same user: the cached DM channel is reused.
    let d2 = send_ok(&gw, req("discord", "<@123>", "again")).await;
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "only one more call: {reqs:#?}");
    assert_eq!(reqs[2].path, dm_path);
    assert_ne!(d2.message_id, d.message_id);
}

#[tokio::test]
async fn discord_channel_targets_post_to_the_channel() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    send_ok(&gw, req("discord", "channel:42", "one")).await;
    // A bare id names a user or a channel alike: refused, naming both forms.
    let s = try_send(&gw, req("discord", "43", "two"))
        .await
        .unwrap_err();
    assert_error(&s, Code::InvalidArgument, "INVALID_TARGET");
    assert!(
        s.message().contains("user:43") && s.message().contains("channel:43"),
        "{s:?}"
    );
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/api/v10/channels/42/messages"]);
}

#[tokio::test]
async fn discord_long_text_is_split_at_2000_characters() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    // Multi-byte words, no newlines: the split must fall on spaces and char boundaries.
    let text = "héllo wörld ünïcode ".repeat(230).trim_end().to_string();
    assert!(text.chars().count() > 4000);
    let d = send_ok(&gw, req("discord", "channel:7", &text)).await;
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 3, "4599 characters need 3 messages");
    assert_eq!(d.message_ids.len(), 3);
    assert_eq!(d.message_id, d.message_ids[0]);
    let parts: Vec<String> = msgs
        .iter()
        .map(|m| m.body["content"].as_str().unwrap().to_string())
        .collect();
    for p in &parts {
        assert!(p.chars().count() <= 2000, "part of {}", p.chars().count());
    }
    assert_eq!(parts.join(" "), text, "parts rejoin to the original text");
}

#[tokio::test]
async fn discord_429_waits_retry_after_and_succeeds() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    fake.rate_limit_next(1, 0.2);
    let d = send_ok(&gw, req("discord", "channel:9", "hi")).await;
    assert_eq!(d.attempts, 2);
    assert_eq!(fake.messages().len(), 2);
    assert!(!d.message_id.is_empty());
}

#[tokio::test]
async fn discord_retry_after_beyond_the_limit_fails_rate_limited() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", ", maxRetryAfterSeconds: 1").await;
    fake.rate_limit_next(1, 30.0);
    let s = try_send(&gw, req("discord", "channel:9", "hi"))
        .await
        .unwrap_err();
    let md = assert_error(&s, Code::ResourceExhausted, "CHANNEL_RATE_LIMITED");
    assert_eq!(md.get("channel").map(String::as_str), Some("discord"));
    assert!(s.message().contains("maxRetryAfterSeconds"), "{s:?}");
    assert!(s.message().contains("30"), "{s:?}");
    assert_eq!(
        fake.messages().len(),
        1,
        "no retry when the wait is too long"
    );
}

#[tokio::test]
async fn discord_rejection_maps_to_channel_rejected_and_marks_the_channel_failing() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    fake.reject_next_message();
    let s = try_send(&gw, req("discord", "channel:5", "hi"))
        .await
        .unwrap_err();
    let md = assert_error(&s, Code::FailedPrecondition, "CHANNEL_REJECTED");
    assert_eq!(md.get("channel").map(String::as_str), Some("discord"));
    assert_eq!(md.get("attempts").map(String::as_str), Some("1"));
    assert!(
        s.message()
            .contains("Cannot send messages to this user (code 50007)"),
        "{s:?}"
    );

    let list = client(&gw)
        .await
        .list_channels(ListChannelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .channels;
    assert_eq!(list.len(), 1);
    let ch = &list[0];
    assert_eq!(ch.name, "channels/discord");
    assert!(ch.enabled);
    assert!(!ch.healthy);
    assert_eq!(ch.health(), ChannelHealth::Failing);
    assert!(ch.last_error.contains("50007"), "{ch:?}");
    assert_eq!(ch.base_url, fake.base_url);

    // The next good send makes it healthy again.
    send_ok(&gw, req("discord", "channel:5", "hi")).await;
    let ch = channel_status(&gw, "discord", false).await;
    assert!(ch.healthy && ch.last_error.is_empty(), "{ch:?}");
}

#[tokio::test]
async fn unauthorized_send_appends_disconnected_then_connected_events() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    let mut feed = gw
        .watch(EventServiceWatchRequest {
            after_seq: 0,
            follow_only: true,
            filter: Some(clawplane_proto::v1::EventFilter {
                kinds: vec![EventKind::Channel as i32],
                ..Default::default()
            }),
        })
        .await;
    fake.inject(
        "",
        Canned::json(401, json!({"message": "401: Unauthorized", "code": 0})),
    );
    let s = try_send(&gw, req("discord", "channel:5", "hi"))
        .await
        .unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_REJECTED");
    assert!(s.message().contains("401"), "{s:?}");
    let ev = feed.next_event().await;
    let ch = channel_event(&ev);
    assert_eq!(
        (ch.r#type.as_str(), ch.channel.as_str()),
        ("disconnected", "discord")
    );
    assert!(ch.detail.contains("401"), "{ch:?}");
    assert!(!ch.detail.contains("Bot t"), "no token in events");

    send_ok(&gw, req("discord", "channel:5", "hi")).await;
    let ev = feed.next_event().await;
    let ch = channel_event(&ev);
    assert_eq!(
        (ch.r#type.as_str(), ch.channel.as_str()),
        ("connected", "discord")
    );
}

fn channel_event(e: &clawplane_proto::v1::Event) -> ChannelEvent {
    assert_eq!(e.kind(), EventKind::Channel, "{e:?}");
    match &e.payload {
        Some(event::Payload::Channel(c)) => c.clone(),
        other => panic!("not a channel event: {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_provider_is_unavailable() {
    // A port nothing listens on: bind one and drop it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = one_gateway(&format!(
        "{{ channels: {{ discord: {{ token: 't', baseUrl: 'http://127.0.0.1:{port}/api/v10', maxRetries: 1 }} }} }}"
    ))
    .await;
    let s = try_send(&gw, req("discord", "channel:1", "hi"))
        .await
        .unwrap_err();
    let md = assert_error(&s, Code::Unavailable, "CHANNEL_UNREACHABLE");
    assert_eq!(md.get("attempts").map(String::as_str), Some("2"));
    let ch = channel_status(&gw, "discord", false).await;
    assert!(
        !ch.healthy && ch.last_error.contains("unreachable"),
        "{ch:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Telegram
// ---------------------------------------------------------------------------------------------

async fn telegram_gateway(fake: &FakeTelegram, token: &str) -> Gateway {
    Gateway::start_with(&format!(
        "{{ channels: {{ telegram: {{ botToken: '{token}', baseUrl: '{}' }} }} }}",
        fake.base_url
    ))
    .await
}

#[tokio::test]
async fn telegram_send_message_with_topics_and_usernames() {
    let fake = FakeTelegram::start("123:abc").await;
    let gw = telegram_gateway(&fake, "123:abc").await;

    let d = send_ok(&gw, req("telegram", "-100123:topic:7", "to the topic")).await;
    let d2 = send_ok(&gw, req("telegram", "@my_channel", "to a channel")).await;
    let mut r = req("telegram", "42", "threaded");
    r.thread_id = "9".into();
    send_ok(&gw, r).await;

    let msgs = fake.messages();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].path, "/bot123:abc/sendMessage");
    assert_eq!(
        msgs[0].body,
        json!({"chat_id": -100123, "text": "to the topic", "message_thread_id": 7})
    );
    assert_eq!(msgs[1].body["chat_id"], "@my_channel");
    assert!(msgs[1].body.get("message_thread_id").is_none());
    assert_eq!(msgs[2].body["chat_id"], 42);
    assert_eq!(msgs[2].body["message_thread_id"], 9);
    assert_eq!(d.message_id, "1");
    assert_eq!(d2.message_id, "2");
}

#[tokio::test]
async fn telegram_blocked_user_and_429() {
    let fake = FakeTelegram::start("123:abc").await;
    let gw = telegram_gateway(&fake, "123:abc").await;

    fake.block_next();
    let s = try_send(&gw, req("telegram", "42", "hi"))
        .await
        .unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_REJECTED");
    assert!(
        s.message()
            .contains("Forbidden: bot was blocked by the user"),
        "{s:?}"
    );
    assert!(
        !s.message().contains("123:abc"),
        "the token is in the URL only"
    );

    fake.rate_limit_next(1, 1);
    let d = send_ok(&gw, req("telegram", "42", "hi")).await;
    assert_eq!(d.attempts, 2);
    assert_eq!(fake.messages().len(), 3);
}

#[tokio::test]
async fn telegram_long_text_splits_at_4096() {
    let fake = FakeTelegram::start("123:abc").await;
    let gw = telegram_gateway(&fake, "123:abc").await;
    let text = format!("{}\n\n{}", "a".repeat(3000), "b".repeat(3000));
    let d = send_ok(&gw, req("telegram", "42", &text)).await;
    assert_eq!(d.message_ids, vec!["1", "2"]);
    let msgs = fake.messages();
    assert_eq!(msgs[0].body["text"], "a".repeat(3000));
    assert_eq!(msgs[1].body["text"], "b".repeat(3000));
}

// ---------------------------------------------------------------------------------------------
// WhatsApp
// ---------------------------------------------------------------------------------------------

async fn whatsapp_gateway(fake: &FakeWhatsApp, token: &str) -> Gateway {
    Gateway::start_with(&format!(
        "{{ channels: {{ whatsapp: {{ accessToken: '{token}', phoneNumberId: '555', baseUrl: '{}' }} }} }}",
        fake.base_url
    ))
    .await
}

#[tokio::test]
async fn whatsapp_send_uses_the_cloud_api_shape_and_returns_the_wamid() {
    let fake = FakeWhatsApp::start("wa-token", "555").await;
    let gw = whatsapp_gateway(&fake, "wa-token").await;
    let d = send_ok(&gw, req("whatsapp", "+1 555 123 4567", "hello")).await;
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].path, "/v21.0/555/messages");
    assert_eq!(msgs[0].header("authorization"), Some("Bearer wa-token"));
    assert_eq!(
        msgs[0].body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "15551234567",
            "type": "text",
            "text": {"body": "hello", "preview_url": false},
        })
    );
    assert!(d.message_id.starts_with("wamid."), "{d:?}");
}

#[tokio::test]
async fn whatsapp_outside_the_24h_window_is_rejected_with_the_graph_error() {
    let fake = FakeWhatsApp::start("wa-token", "555").await;
    let gw = whatsapp_gateway(&fake, "wa-token").await;
    fake.outside_window_next();
    let s = try_send(&gw, req("whatsapp", "15551234567", "late"))
        .await
        .unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_REJECTED");
    assert!(s.message().contains("(code 131047)"), "{s:?}");
    assert!(s.message().contains("24 hours"), "{s:?}");

    fake.rate_limit_next(1, 0.2);
    let d = send_ok(&gw, req("whatsapp", "15551234567", "again")).await;
    assert_eq!(d.attempts, 2);
}

// ---------------------------------------------------------------------------------------------
// Slack and the generic webhook
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn slack_post_message_with_thread_ts_and_ok_false_errors() {
    let fake = FakeSlack::start("xoxb-1").await;
    let gw = one_gateway(&format!(
        "{{ channels: {{ slack: {{ botToken: 'xoxb-1', baseUrl: '{}' }} }} }}",
        fake.base_url
    ))
    .await;
    let mut r = req("slack", "channel:C123", "in a thread");
    r.thread_id = "1700000000.000100".into();
    let d = send_ok(&gw, r).await;
    send_ok(&gw, req("slack", "user:U42", "dm")).await;
    let msgs = fake.messages();
    assert_eq!(msgs[0].header("authorization"), Some("Bearer xoxb-1"));
    assert_eq!(
        msgs[0].body,
        json!({"channel": "C123", "text": "in a thread", "thread_ts": "1700000000.000100"})
    );
    assert_eq!(msgs[1].body["channel"], "U42");
    assert!(d.message_id.contains('.'), "a Slack ts: {d:?}");

    fake.error_next("channel_not_found");
    let s = try_send(&gw, req("slack", "C999", "x")).await.unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_REJECTED");
    assert!(s.message().contains("channel_not_found"), "{s:?}");
    let ch = channel_status(&gw, "slack", false).await;
    assert!(ch.last_error.contains("channel_not_found"), "{ch:?}");
}

#[tokio::test]
async fn slack_incoming_webhook_when_there_is_no_bot_token() {
    let fake = FakeSlack::start("xoxb-1").await;
    let gw = one_gateway(&format!(
        "{{ channels: {{ slack: {{ webhookUrl: '{}' }} }} }}",
        fake.webhook_url
    ))
    .await;
    let d = send_ok(&gw, req("slack", "channel:C1", "via webhook")).await;
    let posts = fake.webhook_posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, json!({"text": "via webhook"}));
    assert!(!d.message_id.is_empty());
    // Nothing to probe without a bot token: the probe sends nothing and keeps the health
    // the send established.
    let ch = channel_status(&gw, "slack", true).await;
    assert_eq!(ch.health(), ChannelHealth::Ok, "the send succeeded: {ch:?}");
    assert_eq!(fake.requests().len(), 1);
    assert!(
        !ch.base_url.contains("XXXX"),
        "the webhook secret is not shown: {ch:?}"
    );
}

#[tokio::test]
async fn generic_webhook_channel_posts_json_with_the_configured_headers() {
    let rx = Receiver::start().await;
    rx.set_default(Canned::json(200, json!({"messageId": "ext-1"})));
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ webhook: {{ url: '{}', headers: {{ 'X-Api-Key': 'k1' }} }} }} }}",
        rx.url("/hook")
    ))
    .await;
    let mut r = req("webhook", "ops-room", "deploy done");
    r.thread_id = "t1".into();
    let d = send_ok(&gw, r).await;
    assert_eq!(d.message_id, "ext-1");
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(got[0].header("x-api-key"), Some("k1"));
    let b = &got[0].body;
    assert_eq!(
        (
            b["channel"].as_str(),
            b["to"].as_str(),
            b["text"].as_str(),
            b["threadId"].as_str()
        ),
        (
            Some("webhook"),
            Some("ops-room"),
            Some("deploy done"),
            Some("t1")
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Config, targets, limits, idempotency, sessions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn not_configured_disabled_and_incomplete_channels_name_the_config_key() {
    let gw = Gateway::start_with(
        "{ channels: { discord: {}, telegram: { botToken: 'x', enabled: false } } }",
    )
    .await;
    let s = try_send(&gw, req("whatsapp", "+15551234567", "hi"))
        .await
        .unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_NOT_CONFIGURED");
    assert!(s.message().contains("channels.whatsapp"), "{s:?}");

    let s = try_send(&gw, req("discord", "user:1", "hi"))
        .await
        .unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_NOT_CONFIGURED");
    assert!(s.message().contains("channels.discord.token"), "{s:?}");

    let s = try_send(&gw, req("telegram", "1", "hi")).await.unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_NOT_CONFIGURED");
    assert!(s.message().contains("channels.telegram.enabled"), "{s:?}");

    let list = client(&gw)
        .await
        .list_channels(ListChannelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .channels;
    let ids: Vec<(&str, bool)> = list
        .iter()
        .map(|c| (c.channel_id.as_str(), c.enabled))
        .collect();
    assert_eq!(ids, vec![("discord", true), ("telegram", false)]);
    assert!(list[0].last_error.contains("channels.discord.token"));
    assert_eq!(list[0].base_url, "https://discord.com/api/v10");

    let s = client(&gw)
        .await
        .get_channel(GetChannelRequest {
            channel_id: "slack".into(),
            probe: false,
        })
        .await
        .unwrap_err();
    assert_error(&s, Code::FailedPrecondition, "CHANNEL_NOT_CONFIGURED");
}

#[tokio::test]
async fn invalid_targets_and_fields() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    for to in ["#general", "user:abc", "telegram:42"] {
        let s = try_send(&gw, req("discord", to, "hi")).await.unwrap_err();
        assert_error(&s, Code::InvalidArgument, "INVALID_TARGET");
        assert!(s.message().contains("channel:<id>"), "grammar: {s:?}");
    }
    let s = try_send(&gw, req("discord", "", "hi")).await.unwrap_err();
    assert_error(&s, Code::InvalidArgument, "INVALID_TARGET");
    assert!(s.message().contains("needs a recipient"), "{s:?}");

    let s = try_send(&gw, req("", "user:1", "hi")).await.unwrap_err();
    assert_invalid_field(&s, "channel");
    let s = try_send(&gw, req("discord", "user:1", ""))
        .await
        .unwrap_err();
    assert_invalid_field(&s, "message");
    let mut r = req("discord", "user:1", "hi");
    r.idempotency_key = "bad key!".into();
    let s = try_send(&gw, r).await.unwrap_err();
    assert_invalid_field(&s, "idempotencyKey");
    let s = try_send(&gw, req("last", "", "hi")).await.unwrap_err();
    assert_invalid_field(&s, "sessionKey");
    assert!(fake.requests().is_empty(), "nothing reached the provider");
}

#[tokio::test]
async fn max_messages_per_hour_and_cooldown_refuse_sends() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", ", maxMessagesPerHour: 2, cooldownSeconds: 600").await;
    send_ok(&gw, req("discord", "channel:1", "a")).await;

    let s = try_send(&gw, req("discord", "channel:1", "b"))
        .await
        .unwrap_err();
    assert_error(&s, Code::ResourceExhausted, "CHANNEL_COOLDOWN");
    assert!(
        s.message().contains("channels.discord.cooldownSeconds"),
        "{s:?}"
    );

    send_ok(&gw, req("discord", "channel:2", "c")).await;
    let s = try_send(&gw, req("discord", "channel:3", "d"))
        .await
        .unwrap_err();
    assert_error(&s, Code::ResourceExhausted, "CHANNEL_RATE_LIMITED");
    assert!(
        s.message()
            .contains("channels.discord.maxMessagesPerHour (2)"),
        "{s:?}"
    );
    assert_eq!(fake.messages().len(), 2);
    assert_eq!(
        channel_status(&gw, "discord", false).await.sent_last_hour,
        2
    );
}

/// OpenClaw's "API & Webhooks" guide writes the limits in snake_case: they count the same,
/// and both spellings of one key at once refuse the start.
#[tokio::test]
async fn the_guides_snake_case_limits_count_the_same() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(
        &fake,
        "t",
        ", max_messages_per_hour: 1, cooldown_seconds: 600",
    )
    .await;
    send_ok(&gw, req("discord", "channel:1", "a")).await;
    let s = try_send(&gw, req("discord", "channel:2", "b"))
        .await
        .unwrap_err();
    assert_error(&s, Code::ResourceExhausted, "CHANNEL_RATE_LIMITED");
    assert_eq!(fake.messages().len(), 1);
    let stderr = refuses_to_start(
        "{ channels: { discord: { token: 't', cooldown_seconds: 1, cooldownSeconds: 2 } } }",
    )
    .await;
    assert!(
        stderr.contains("channels.discord") && stderr.contains("cooldown_seconds"),
        "{stderr}"
    );
}

#[tokio::test]
async fn idempotent_repeat_sends_once() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    let mut r = req("discord", "channel:1", "once");
    r.idempotency_key = "send-1".into();
    let first = ok(try_send(&gw, r.clone()).await);
    let again = ok(try_send(&gw, r.clone()).await);
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.delivery, again.delivery);
    assert_eq!(fake.messages().len(), 1, "sent exactly once");

    r.message = "different".into();
    let s = try_send(&gw, r).await.unwrap_err();
    assert_error(&s, Code::AlreadyExists, "IDEMPOTENCY_KEY_CONFLICT");
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn session_key_mirrors_the_message_and_channel_last_reuses_the_route() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    let mut r = req("discord", "channel:77", "note to the room");
    r.session_key = "ops".into();
    send_ok(&gw, r).await;

    let h = gw.history("ops").await;
    let last = h.messages.last().expect("a transcript message");
    assert_eq!(last.role(), MessageRole::Assistant);
    assert_eq!(last.text, "note to the room");
    let s = gw
        .sessions()
        .await
        .get(SessionServiceGetRequest {
            session_key: "ops".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(
        (s.last_channel.as_str(), s.last_to.as_str()),
        ("discord", "channel:77")
    );

    let mut r = req("last", "", "follow-up");
    r.session_key = "ops".into();
    let d = send_ok(&gw, r).await;
    assert_eq!(
        (d.channel.as_str(), d.to.as_str()),
        ("discord", "channel:77")
    );
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].path, "/api/v10/channels/77/messages");
    assert_eq!(gw.history("ops").await.messages.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Probes and the CLI
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn probe_checks_credentials_with_each_provider() {
    let discord = FakeDiscord::start("good").await;
    let telegram = FakeTelegram::start("1:good").await;
    let whatsapp = FakeWhatsApp::start("good", "555").await;
    let slack = FakeSlack::start("xoxb-good").await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{
            discord: {{ token: 'good', baseUrl: '{}' }},
            telegram: {{ botToken: '1:bad', baseUrl: '{}' }},
            whatsapp: {{ accessToken: 'good', phoneNumberId: '555', baseUrl: '{}' }},
            slack: {{ botToken: 'xoxb-bad', baseUrl: '{}' }},
        }} }}",
        discord.base_url, telegram.base_url, whatsapp.base_url, slack.base_url
    ))
    .await;
    assert_eq!(
        channel_status(&gw, "discord", false).await.health(),
        ChannelHealth::Unknown
    );

    let d = channel_status(&gw, "discord", true).await;
    assert!(d.healthy, "{d:?}");
    assert_eq!(discord.requests()[0].path, "/api/v10/users/@me");
    assert!(d.last_check_time.is_some());

    let t = channel_status(&gw, "telegram", true).await;
    assert!(!t.healthy && t.last_error.contains("Unauthorized"), "{t:?}");
    assert!(!t.last_error.contains("1:bad"), "no token: {t:?}");
    assert!(telegram.requests()[0].path.ends_with("/getMe"));

    let w = channel_status(&gw, "whatsapp", true).await;
    assert!(w.healthy, "{w:?}");
    assert_eq!(whatsapp.requests()[0].path, "/v21.0/555");
    assert_eq!(whatsapp.requests()[0].query, "fields=id");

    let s = channel_status(&gw, "slack", true).await;
    assert!(!s.healthy && s.last_error.contains("invalid_auth"), "{s:?}");
    assert!(slack.requests()[0].path.ends_with("/auth.test"));
}

/// Runs the CLI to completion.
async fn cli(gw: &Gateway, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::from(gw.cli());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .expect("CLI finished in time")
        .expect("CLI ran");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_channels_status_probe() {
    let discord = FakeDiscord::start("good").await;
    let telegram = FakeTelegram::start("1:good").await;
    let gw = one_gateway(&format!(
        "{{ channels: {{ discord: {{ token: 'good', baseUrl: '{}' }}, telegram: {{ botToken: '1:bad', baseUrl: '{}' }} }} }}",
        discord.base_url, telegram.base_url
    ))
    .await;
    let (code, stdout, stderr) = cli(&gw, &["channels", "status"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("discord") && stdout.contains("unknown"),
        "{stdout}"
    );
    assert!(discord.requests().is_empty(), "no probe without --probe");

    let (code, stdout, stderr) = cli(&gw, &["channels", "status", "--probe"]).await;
    assert_eq!(code, Some(1), "a failing probe exits 1: {stdout}\n{stderr}");
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no {id} line: {stdout}"))
            .to_string()
    };
    assert!(line("discord").contains(" ok "), "{stdout}");
    assert!(line("telegram").contains("failing"), "{stdout}");
    assert!(line("telegram").contains("Unauthorized"), "{stdout}");
    assert!(stderr.contains("probe failed for telegram"), "{stderr}");

    let (code, stdout, _) = cli(&gw, &["channels", "status", "--json"]).await;
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(v["channels"][0]["channelId"], "discord");
    assert_eq!(v["channels"][0]["health"], "CHANNEL_HEALTH_OK");
}

#[tokio::test]
async fn cli_message_send() {
    let fake = FakeDiscord::start("t").await;
    let gw = discord_gateway(&fake, "t", "").await;
    let (code, stdout, stderr) = cli(
        &gw,
        &[
            "message",
            "send",
            "--channel",
            "discord",
            "--target",
            "channel:5",
            "-m",
            "from the cli",
            "--idempotency-key",
            "cli-1",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("JSON");
    let id = v["delivery"]["messageId"].as_str().expect("messageId");
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body["content"], "from the cli");

    let (code, stdout, _) = cli(
        &gw,
        &[
            "message",
            "send",
            "--channel",
            "discord",
            "--target",
            "channel:5",
            "-m",
            "from the cli",
            "--idempotency-key",
            "cli-1",
        ],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains(id) && stdout.contains("repeat"), "{stdout}");
    assert_eq!(fake.messages().len(), 1);

    let (code, _, stderr) = cli(
        &gw,
        &[
            "message",
            "send",
            "--channel",
            "discord",
            "--target",
            "#x",
            "-m",
            "x",
        ],
    )
    .await;
    assert_eq!(
        code,
        Some(2),
        "an invalid target is a usage error: {stderr}"
    );
    assert!(stderr.contains("not a Discord target"), "{stderr}");
}
