//! The OpenClaw WebSocket protocol at `/` (spec §1–§3): handshake, limits, close codes,
//! methods mapped onto the RPCs, events from the feed, and the legacy `{type:"chat"}`
//! dialect — driven by a plain Rust WebSocket client.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value as Json, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, tungstenite::Message};

use crate::harness::ws::*;
use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn challenge_then_hello_ok_with_the_full_shape() {
    let gw = Gateway::start().await;
    let (mut ws, challenge, res) = handshake(&gw, connect_params(Some(&gw.token), 4, 4)).await;
    let c = &challenge["payload"];
    assert!(c["nonce"].as_str().is_some_and(|n| !n.is_empty()), "{c}");
    assert!(
        c["ts"].as_u64().is_some_and(|t| t > 1_700_000_000_000),
        "{c}"
    );
    assert_eq!(c["capabilities"], json!(["model-catalog-snapshot"]));
    assert!(
        challenge.get("seq").is_none(),
        "the challenge carries no seq"
    );

    assert_eq!(res["type"], "res");
    assert_eq!(res["ok"], true, "{res}");
    let h = &res["payload"];
    assert_eq!(h["type"], "hello-ok");
    assert_eq!(h["protocol"], 4);
    assert!(
        h["server"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        h["server"]["connId"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let methods: Vec<&str> = h["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    for m in [
        "health",
        "status",
        "agent",
        "agent.wait",
        "chat.send",
        "chat.history",
        "chat.abort",
        "sessions.list",
        "sessions.send",
        "wake",
        "send",
        "channels.status",
        "channels.pairing.list",
        "channels.pairing.approve",
        "channels.pairing.dismiss",
        "device.pair.list",
        "device.pair.approve",
        "device.pair.reject",
        "device.pair.remove",
        "device.token.rotate",
        "device.token.revoke",
        "logs.tail",
    ] {
        assert!(
            methods.contains(&m),
            "features.methods lacks {m}: {methods:?}"
        );
    }
    let events: Vec<&str> = h["features"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    for e in [
        "agent",
        "chat",
        "tick",
        "shutdown",
        "device.pair.requested",
        "device.pair.resolved",
    ] {
        assert!(events.contains(&e), "features.events lacks {e}: {events:?}");
    }
    let snap = &h["snapshot"];
    assert!(snap["presence"].is_array());
    assert!(snap["health"].is_object());
    assert!(snap["stateVersion"]["presence"].is_u64());
    assert!(snap["uptimeMs"].is_u64());
    assert_eq!(snap["sessionDefaults"]["defaultAgentId"], "main");
    assert_eq!(snap["sessionDefaults"]["mainKey"], "main");
    assert_eq!(snap["sessionDefaults"]["mainSessionKey"], "agent:main:main");
    assert_eq!(h["auth"]["method"], "token");
    assert_eq!(h["auth"]["role"], "operator");
    let scopes = h["auth"]["scopes"].as_array().unwrap();
    for s in ["operator.admin", "operator.read", "operator.write"] {
        assert!(
            scopes.iter().any(|x| x == s),
            "the gateway token keeps full operator scopes (no silent clearing): {scopes:?}"
        );
    }
    assert_eq!(
        h["policy"],
        json!({"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000})
    );

    // health needs no scope and answers a HealthSnapshot.
    let health = ws.ok("health", json!({})).await;
    assert_eq!(health["ok"], true, "{health}");
}

#[tokio::test]
async fn protocol_ranges_containing_3_or_4_are_accepted_others_close_1002() {
    let gw = Gateway::start().await;
    for (min, max, want) in [(3, 3, 3), (4, 4, 4), (3, 4, 4), (1, 9, 4), (2, 3, 3)] {
        let (_ws, _, res) = handshake(&gw, connect_params(Some(&gw.token), min, max)).await;
        assert_eq!(res["ok"], true, "{min}..{max}: {res}");
        assert_eq!(res["payload"]["protocol"], want, "{min}..{max}");
    }
    for (min, max) in [(5, 6), (1, 2)] {
        let (mut ws, _, res) = handshake(&gw, connect_params(Some(&gw.token), min, max)).await;
        assert_eq!(res["ok"], false, "{min}..{max}: {res}");
        assert_eq!(res["error"]["code"], "INVALID_REQUEST");
        assert_eq!(res["error"]["message"], "protocol mismatch");
        let d = &res["error"]["details"];
        assert_eq!(d["code"], "PROTOCOL_MISMATCH");
        assert_eq!(d["clientMinProtocol"], min);
        assert_eq!(d["clientMaxProtocol"], max);
        assert_eq!(d["expectedProtocol"], 4);
        let c = ws.closed().await;
        assert_eq!(c.code, 1002, "{c:?}");
        assert_eq!(c.reason, "protocol mismatch");
    }
    // The range is checked before auth (as upstream): a wrong token still reads 1002.
    let (mut ws, _, res) = handshake(&gw, connect_params(Some("wrong"), 5, 6)).await;
    assert_eq!(res["error"]["details"]["code"], "PROTOCOL_MISMATCH");
    assert_eq!(ws.closed().await.code, 1002);
}

#[tokio::test]
async fn first_frame_must_be_connect() {
    let gw = Gateway::start().await;
    let mut ws = Ws::open(&gw).await;
    ws.frame().await; // challenge
    let id = ws.req("health", json!({})).await;
    let res = ws.res(&id).await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(
        res["error"]["message"],
        "invalid handshake: first request must be connect"
    );
    let c = ws.closed().await;
    assert_eq!(c.code, 1008, "{c:?}");

    // A non-request first frame gets no answer, only the close.
    let mut ws = Ws::open(&gw).await;
    ws.frame().await;
    ws.send(json!({"type": "event", "event": "hello"})).await;
    match ws.next().await {
        Err(c) => assert_eq!(c.code, 1008, "{c:?}"),
        Ok(f) => panic!("expected a close, got {f}"),
    }
}

#[tokio::test]
async fn connect_params_are_validated_against_the_closed_schema() {
    let gw = Gateway::start().await;
    let mut bad_client = connect_params(Some(&gw.token), 4, 4);
    bad_client["client"]["id"] = json!("my-bot");
    let mut bad_mode = connect_params(Some(&gw.token), 4, 4);
    bad_mode["client"]["mode"] = json!("operator");
    let mut extra = connect_params(Some(&gw.token), 4, 4);
    extra["surprise"] = json!(true);
    let mut role = connect_params(Some(&gw.token), 4, 4);
    role["role"] = json!("admin");
    for p in [bad_client, bad_mode, extra, role] {
        let (mut ws, _, res) = handshake(&gw, p.clone()).await;
        assert_eq!(res["ok"], false, "{p}: {res}");
        assert_eq!(res["error"]["code"], "INVALID_REQUEST");
        let msg = res["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with("invalid connect params: "), "{msg}");
        assert_eq!(ws.closed().await.code, 1008);
    }
}

#[tokio::test]
async fn oversize_preauth_frame_closes_1009() {
    // The close frame must reach the client straight from the process that refused the
    // frame (a TCP relay in between may reset before relaying it).
    let gw = Gateway::builder().one_process().start().await;
    let mut ws = Ws::open(&gw).await;
    ws.frame().await;
    let big = json!({"type": "req", "id": "x", "method": "connect", "params": {"pad": "a".repeat(70 * 1024)}});
    ws.send(big).await;
    let c = ws.closed().await;
    assert_eq!(c.code, 1009, "{c:?}");
    assert_eq!(c.reason, "preauth payload too large");
}

#[tokio::test]
async fn wrong_or_missing_token_is_refused_with_1008() {
    let gw = Gateway::start().await;
    let (mut ws, _, res) = handshake(&gw, connect_params(Some("not-the-token"), 4, 4)).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unauthorized: gateway token mismatch")
    );
    assert_eq!(ws.closed().await.code, 1008);

    let (mut ws, _, res) = handshake(&gw, connect_params(None, 4, 4)).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_TOKEN_MISSING",
        "{res}"
    );
    assert_eq!(ws.closed().await.code, 1008);

    // `?token=` is for the legacy dialect only.
    let mut ws = Ws::open_path(&gw, &format!("/?token={}", gw.token)).await;
    ws.frame().await;
    let id = ws.req("connect", connect_params(None, 4, 4)).await;
    let res = ws.res(&id).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_TOKEN_MISSING",
        "{res}"
    );
}

// ---------------------------------------------------------------------------------------------
// Methods and events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn agent_answers_twice_and_streams_agent_and_chat_events() {
    let gw = Gateway::start().await;
    let (mut ws, _) = operator(&gw).await;
    let run_id = format!("ws-{}", uuid::Uuid::new_v4().simple());
    let id = ws
        .req(
            "agent",
            json!({"message": "hi there", "agentId": "main", "idempotencyKey": run_id}),
        )
        .await;
    let accepted = ws.res(&id).await;
    assert_eq!(accepted["ok"], true, "{accepted}");
    let a = &accepted["payload"];
    assert_eq!(a["status"], "accepted");
    assert_eq!(a["runId"], run_id.as_str(), "idempotencyKey = runId");
    assert_eq!(a["sessionKey"], "agent:main:main");
    assert_eq!(a["agentId"], "main");
    assert!(a["acceptedAt"].is_u64());

    let fin = ws.res(&id).await;
    assert_eq!(fin["ok"], true, "{fin}");
    let f = &fin["payload"];
    assert_eq!(f["runId"], run_id.as_str());
    assert_eq!(f["status"], "ok");
    assert_eq!(f["summary"], "completed");
    assert_eq!(
        f["result"]["payloads"],
        json!([{"text": "You said: hi there (turn 1)"}])
    );
    assert!(f["result"]["meta"]["durationMs"].is_u64());
    assert_eq!(f["deliveryStatus"]["status"], "not_requested", "{f}");

    // The events of the run, read from the feed.
    let events = ws
        .event_until(|e| e["event"] == "chat" && e["payload"]["state"] == "final")
        .await;
    let mine: Vec<&Json> = events
        .iter()
        .filter(|e| e["payload"]["runId"] == run_id.as_str())
        .collect();
    let agent: Vec<&Json> = mine
        .iter()
        .copied()
        .filter(|e| e["event"] == "agent")
        .collect();
    assert_eq!(agent[0]["payload"]["stream"], "lifecycle");
    assert_eq!(agent[0]["payload"]["data"]["phase"], "start");
    let seqs: Vec<u64> = agent
        .iter()
        .map(|e| e["payload"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "per-run seq"
    );
    let assistant: Vec<&Json> = agent
        .iter()
        .copied()
        .filter(|e| e["payload"]["stream"] == "assistant")
        .collect();
    assert!(!assistant.is_empty());
    let last = assistant.last().unwrap();
    assert_eq!(
        last["payload"]["data"]["text"],
        "You said: hi there (turn 1)"
    );
    let deltas: String = assistant
        .iter()
        .map(|e| e["payload"]["data"]["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "You said: hi there (turn 1)");
    let chat: Vec<&Json> = mine
        .iter()
        .copied()
        .filter(|e| e["event"] == "chat")
        .collect();
    let chat_deltas: String = chat
        .iter()
        .filter(|e| e["payload"]["state"] == "delta")
        .map(|e| e["payload"]["deltaText"].as_str().expect("v4 deltaText"))
        .collect();
    assert_eq!(chat_deltas, "You said: hi there (turn 1)");
    let fin = chat.last().unwrap();
    assert_eq!(fin["payload"]["state"], "final");
    assert_eq!(
        fin["payload"]["message"]["content"][0]["text"],
        "You said: hi there (turn 1)"
    );
    assert_eq!(fin["payload"]["message"]["role"], "assistant");
    // Per-connection event seq: 1, 2, 3, … with no gap.
    let conn_seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(conn_seqs, (1..=conn_seqs.len() as u64).collect::<Vec<_>>());
    // And lifecycle end arrives.
    assert!(
        agent.iter().any(|e| e["payload"]["data"]["phase"] == "end"),
        "lifecycle end: {agent:?}"
    );
}

#[tokio::test]
async fn a_duplicate_of_a_running_agent_call_answers_in_flight_once() {
    let gw = Gateway::start().await;
    let (mut ws, _) = operator(&gw).await;
    let key = format!("dup-{}", uuid::Uuid::new_v4().simple());
    let params = json!({"message": "/sleep 1500 slow", "agentId": "main", "idempotencyKey": key});
    let first = ws.req("agent", params.clone()).await;
    let accepted = ws.res(&first).await;
    assert_eq!(accepted["payload"]["status"], "accepted");
    let second = ws.req("agent", params.clone()).await;
    let dup = ws.res(&second).await;
    assert_eq!(dup["ok"], true, "{dup}");
    assert_eq!(dup["payload"]["status"], "in_flight");
    assert_eq!(dup["payload"]["runId"], key.as_str());
    let fin = ws.res(&first).await;
    assert_eq!(fin["payload"]["status"], "ok", "{fin}");
    // After completion the final is replayed (one response).
    let third = ws.req("agent", params).await;
    let replay = ws.res(&third).await;
    assert_eq!(replay["payload"]["status"], "ok", "{replay}");
    assert_eq!(
        replay["payload"]["result"]["payloads"][0]["text"],
        "You said: /sleep 1500 slow (turn 1)"
    );
}

#[tokio::test]
async fn chat_send_acks_started_and_history_reads_the_transcript() {
    let gw = Gateway::start().await;
    let (mut ws, _) = operator(&gw).await;
    let key = format!("chat-{}", uuid::Uuid::new_v4().simple());
    let ack = ws
        .ok(
            "chat.send",
            json!({"sessionKey": "ws-chat", "message": "hello", "idempotencyKey": key}),
        )
        .await;
    assert_eq!(ack, json!({"runId": key, "status": "started"}));
    let events = ws
        .event_until(|e| {
            e["event"] == "chat"
                && e["payload"]["runId"] == key.as_str()
                && e["payload"]["state"] == "final"
        })
        .await;
    let last_delta = events
        .iter()
        .rfind(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
        .expect("chat deltas");
    assert_eq!(
        last_delta["payload"]["message"]["content"][0]["text"], "You said: hello (turn 1)",
        "the cumulative message"
    );
    let h = ws
        .ok("chat.history", json!({"sessionKey": "ws-chat"}))
        .await;
    assert_eq!(h["sessionKey"], "agent:main:ws-chat");
    let texts: Vec<(&str, &str)> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap(),
                m["content"][0]["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        vec![("user", "hello"), ("assistant", "You said: hello (turn 1)")]
    );

    let list = ws.ok("sessions.list", json!({})).await;
    assert!(
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"] == "agent:main:ws-chat"),
        "{list}"
    );
    let sent = ws
        .ok(
            "sessions.send",
            json!({"key": "agent:main:ws-chat", "message": "again"}),
        )
        .await;
    assert_eq!(sent["status"], "started");
    let missing = ws
        .call(
            "sessions.send",
            json!({"key": "agent:main:nope", "message": "x"}),
        )
        .await;
    assert_eq!(missing["ok"], false);
    assert_eq!(missing["error"]["code"], "INVALID_REQUEST");
    assert_eq!(
        missing["error"]["message"],
        "session not found: agent:main:nope"
    );
    let abort = ws.ok("chat.abort", json!({"sessionKey": "ws-chat"})).await;
    assert_eq!(abort["ok"], true);
    assert!(abort["runIds"].is_array());
}

#[tokio::test]
async fn send_and_channels_status_reach_the_channel() {
    let discord = crate::fakes::discord::FakeDiscord::start("bot-token").await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ discord: {{ token: 'bot-token', baseUrl: '{}' }} }} }}",
        discord.base_url
    ))
    .await;
    let (mut ws, _) = operator(&gw).await;
    let sent = ws
        .ok(
            "send",
            json!({"channel": "discord", "to": "user:77", "message": "hi from ws", "idempotencyKey": "ws-send-1"}),
        )
        .await;
    assert_eq!(sent["channel"], "discord");
    assert_eq!(sent["delivery"]["status"], "delivered", "{sent}");
    let id = sent["messageId"].as_str().unwrap();
    assert!(!id.is_empty());
    assert_eq!(discord.messages()[0].body["content"], "hi from ws");

    let status = ws.ok("channels.status", json!({"probe": true})).await;
    assert_eq!(status["channelOrder"], json!(["discord"]), "{status}");
    assert_eq!(status["channels"]["discord"]["connected"], true, "{status}");
    assert_eq!(status["channels"]["discord"]["probe"]["ok"], true);
    assert_eq!(
        status["channelAccounts"]["discord"][0]["accountId"],
        "default"
    );
    assert!(
        discord.requests_to("/users/@me").len() == 1,
        "the probe checked the token"
    );
}

#[tokio::test]
async fn unknown_methods_bad_params_and_unimplemented_rpcs() {
    let gw = Gateway::start().await;
    let (mut ws, _) = operator(&gw).await;
    let r = ws.call("no.such.method", json!({})).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
    assert_eq!(r["error"]["message"], "unknown method: no.such.method");

    let r = ws.call("chat.send", json!({"sessionKey": "x"})).await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid chat.send params: "),
        "{r}"
    );

    // ChannelService/SendMessage to a channel this gateway has no credentials for: the
    // RPC's error is surfaced with its reason.
    let r = ws
        .call(
            "send",
            json!({"to": "user:1", "channel": "discord", "message": "hi", "idempotencyKey": "s1"}),
        )
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(
        r["error"]["details"]["code"], "CHANNEL_NOT_CONFIGURED",
        "{r}"
    );

    let r = ws
        .call("send", json!({"to": "user:1", "idempotencyKey": "s2"}))
        .await;
    assert_eq!(
        r["error"]["message"],
        "invalid send params: text or media is required"
    );
}

#[tokio::test]
async fn status_wake_logs_and_device_listing() {
    let gw = Gateway::start_with("{ agents: { defaults: { heartbeat: { every: '0m' } } } }").await;
    let (mut ws, _) = operator(&gw).await;
    let st = ws.ok("status", json!({})).await;
    assert_eq!(st["defaultAgentId"], "main", "{st}");
    let w = ws
        .ok(
            "wake",
            json!({"mode": "next-heartbeat", "text": "check the mail"}),
        )
        .await;
    assert_eq!(w["ok"], true);
    assert_eq!(w["eventOutcome"], "queued");
    assert_eq!(w["mode"], "next-heartbeat");
    let again = ws
        .ok(
            "wake",
            json!({"mode": "next-heartbeat", "text": "check the mail"}),
        )
        .await;
    assert_eq!(again["eventOutcome"], "coalesced");

    ws.ok(
        "chat.send",
        json!({"sessionKey": "logs", "message": "x", "idempotencyKey": "logs-1"}),
    )
    .await;
    ws.event_until(|e| e["event"] == "chat" && e["payload"]["state"] == "final")
        .await;
    let logs = ws.ok("logs.tail", json!({"limit": 500})).await;
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l.as_str().unwrap().contains("logs-1")),
        "{logs}"
    );
    let cursor = logs["cursor"].as_u64().unwrap();
    let next = ws.ok("logs.tail", json!({"cursor": cursor})).await;
    assert_eq!(next["lines"], json!([]), "nothing new after the cursor");

    let devices = ws.call("device.pair.list", json!({})).await;
    assert!(
        devices["ok"] == true || devices["error"]["details"]["code"] == "NOT_IMPLEMENTED",
        "{devices}"
    );
    if devices["ok"] == true {
        assert!(devices["payload"]["pending"].is_array());
        assert!(devices["payload"]["paired"].is_array());
    }
}

#[tokio::test]
async fn protocol_3_clients_get_chat_deltas_without_delta_text() {
    let gw = Gateway::start().await;
    let (mut ws, _, res) = handshake(&gw, connect_params(Some(&gw.token), 3, 3)).await;
    assert_eq!(res["payload"]["protocol"], 3);
    ws.ok(
        "chat.send",
        json!({"sessionKey": "v3", "message": "old client", "idempotencyKey": "v3-1"}),
    )
    .await;
    let events = ws
        .event_until(|e| e["event"] == "chat" && e["payload"]["state"] == "final")
        .await;
    let deltas: Vec<&Json> = events
        .iter()
        .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
        .collect();
    assert!(!deltas.is_empty());
    assert!(
        deltas
            .iter()
            .all(|e| e["payload"].get("deltaText").is_none())
    );
}

// ---------------------------------------------------------------------------------------------
// Legacy dialect
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn legacy_chat_client_gets_its_reply() {
    let gw = Gateway::start().await;
    let mut ws = Ws::open_path(&gw, &format!("/?token={}", gw.token)).await;
    let challenge = ws.frame().await;
    assert_eq!(challenge["event"], "connect.challenge");
    ws.send(json!({"type": "chat", "id": "m1", "payload": {"message": "hello legacy"}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "response", "{r}");
    assert_eq!(r["id"], "m1");
    assert_eq!(r["payload"]["text"], "You said: hello legacy (turn 1)");

    ws.send(json!({"type": "status", "id": "s1", "payload": {}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "status", "{r}");
    assert_eq!(r["payload"]["ok"], true);

    ws.send(json!({"type": "heartbeat_trigger", "id": "h1", "payload": {"text": "ping", "mode": "next-heartbeat"}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "heartbeat_status", "{r}");

    ws.send(json!({"type": "skill_invoke", "id": "k1", "payload": {"skill": "weather"}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "error");
    assert_eq!(r["payload"]["code"], "SKILL_NOT_FOUND");

    // No token / wrong token.
    let mut ws = Ws::open(&gw).await;
    ws.frame().await;
    ws.send(json!({"type": "chat", "id": "m2", "payload": {"message": "x"}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["payload"]["code"], "AUTH_REQUIRED", "{r}");
    // A wrong `?token=` is refused at the upgrade, before any frame: 401 with a JSON body.
    let (status, body) = Ws::refused(&gw, "/?token=wrong").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

/// The "API & Webhooks" guide's frames, field for field: `response` with `tool_calls` and
/// `tokens_used`, `options.model`, a generated `id`, `timestamp` on every frame;
/// `heartbeat_trigger` answered after the heartbeat with `heartbeat_status` `HEARTBEAT_OK`
/// (or what it said), `actions_taken`, `tokens_used`, and `dry_run` that changes nothing;
/// the socket served at `/ws` too.
#[tokio::test]
async fn legacy_frames_carry_the_guides_fields() {
    let gw = Gateway::start().await;
    let mut ws = Ws::open_path(&gw, &format!("/ws?token={}", gw.token)).await;
    ws.frame().await;
    ws.send(
        json!({"type": "chat", "payload": {"message": "count my tokens", "sessionKey": "legacy"}}),
    )
    .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "response", "{r}");
    let id = r["id"].as_str().unwrap_or_default();
    assert!(
        id.starts_with("msg_") && id.len() > 8,
        "a generated id: {r}"
    );
    assert!(
        r["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{r}"
    );
    assert_eq!(r["payload"]["tool_calls"], json!([]), "{r}");
    let used = r["payload"]["tokens_used"].as_u64().expect("tokens_used");
    assert!(used > 0, "{r}");
    let runs = gw.list_runs("agent:main:legacy").await;
    assert_eq!(runs[0].usage.as_ref().map(|u| u.total_tokens), Some(used));

    // options.model picks the model of the turn; an unknown one is refused.
    ws.send(json!({"type": "chat", "id": "m2", "payload": {"message": "which model?", "sessionKey": "legacy", "options": {"model": "builtin/second"}}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["payload"]["model"], "builtin/second", "{r}");
    ws.send(json!({"type": "chat", "id": "m3", "payload": {"message": "x", "sessionKey": "legacy", "options": {"model": "nope/none"}}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "error", "{r}");

    // dry_run: nothing queued, nothing run.
    ws.send(json!({"type": "heartbeat_trigger", "id": "h0", "payload": {"dry_run": true}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "heartbeat_status", "{r}");
    assert_eq!(r["payload"]["status"], "DRY_RUN", "{r}");
    assert_eq!(r["payload"]["actions_taken"], json!([]), "{r}");
    assert!(
        gw.list_runs("agent:main:main").await.is_empty(),
        "dry_run ran nothing"
    );

    // A real trigger waits for the heartbeat turn and says what it did.
    ws.send(json!({"type": "heartbeat_trigger", "id": "h1", "payload": {}}))
        .await;
    let r = ws.frame().await;
    assert_eq!(r["type"], "heartbeat_status", "{r}");
    assert_eq!(r["id"], "h1");
    let beats = gw.list_runs("agent:main:main").await;
    assert_eq!(beats.len(), 1, "{beats:#?}");
    let beat = &beats[0];
    let want = if beat.reply_text.trim().is_empty() || beat.reply_text.contains("HEARTBEAT_OK") {
        "HEARTBEAT_OK".to_string()
    } else {
        beat.reply_text.clone()
    };
    assert_eq!(r["payload"]["status"], want.as_str(), "{r}");
    assert_eq!(r["payload"]["runId"], beat.run_id.as_str(), "{r}");
    let actions = r["payload"]["actions_taken"]
        .as_array()
        .expect("actions_taken");
    assert!(
        actions
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.contains(&beat.run_id))),
        "{r}"
    );
    assert!(r["payload"]["tokens_used"].is_u64(), "{r}");
}

// ---------------------------------------------------------------------------------------------
// Limits and lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn max_connections_closes_the_extra_socket_with_1013() {
    // Connection limits are each process's own (they bound its sockets).
    let gw = Gateway::builder()
        .config("{ gateway: { maxConnections: 1 } }")
        .one_process()
        .start()
        .await;
    let (_first, _) = operator(&gw).await;
    let mut second = Ws::open(&gw).await;
    let c = second.closed().await;
    assert_eq!(c.code, 1013, "{c:?}");
}

#[tokio::test]
async fn shutdown_sends_the_event_then_closes_1012() {
    let mut gw = Gateway::start().await;
    let (mut ws, _) = operator(&gw).await;
    gw.sigterm();
    let mut saw_shutdown = false;
    let closed = loop {
        match ws.next().await {
            Ok(f) => {
                if f["event"] == "shutdown" {
                    assert!(f["seq"].is_u64());
                    saw_shutdown = true;
                }
            }
            Err(c) => break c,
        }
    };
    assert!(saw_shutdown, "a shutdown event precedes the close");
    assert_eq!(closed.code, 1012, "{closed:?}");
    let status = gw.wait_exit().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn plain_get_on_root_asks_for_an_upgrade() {
    let gw = Gateway::start().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 426"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Device block (verified through DeviceService/ConnectDevice)
// ---------------------------------------------------------------------------------------------

mod device {
    use super::*;
    use clawplane_proto::device_auth::{self, SignedFields};
    use ed25519_dalek::{Signer as _, SigningKey};

    /// An Ed25519 device identity.
    pub struct Dev {
        sk: SigningKey,
        pub pk: String,
        pub id: String,
    }

    impl Dev {
        pub fn new() -> Self {
            let (sk, pk, id) = new_device_key();
            Dev { sk, pk, id }
        }

        /// Connect params with a device block signed (v3) over `nonce` at `signed_at`;
        /// `signed_scopes` lets a test sign something other than what is sent.
        pub fn params(
            &self,
            token: Option<&str>,
            scopes: &[&str],
            signed_scopes: &[&str],
            nonce: &str,
            signed_at: i64,
        ) -> Json {
            let signed: Vec<String> = signed_scopes.iter().map(|s| s.to_string()).collect();
            let f = SignedFields {
                device_id: &self.id,
                client_id: "cli",
                client_mode: "cli",
                role: "operator",
                scopes: &signed,
                signed_at_ms: signed_at,
                token: token.unwrap_or(""),
                nonce,
                platform: "linux",
                device_family: "",
            };
            let sig = self.sk.sign(device_auth::payload_v3(&f).as_bytes());
            let mut p = connect_params(token, 4, 4);
            p["scopes"] = json!(scopes);
            p["device"] = json!({
                "id": self.id,
                "publicKey": self.pk,
                "signature": device_auth::base64url(&sig.to_bytes()),
                "signedAt": signed_at,
                "nonce": nonce,
            });
            p
        }
    }

    /// Opens a socket and connects with `dev`, signing over the socket's own challenge
    /// (or over `nonce_override`) at the challenge `ts` + `skew_ms`.
    pub async fn connect_device(
        gw: &Gateway,
        dev: &Dev,
        token: Option<&str>,
        scopes: &[&str],
        signed_scopes: &[&str],
        nonce_override: Option<&str>,
        skew_ms: i64,
    ) -> (Ws, Json) {
        connect_device_with_headers(
            gw,
            dev,
            token,
            scopes,
            signed_scopes,
            nonce_override,
            skew_ms,
            &[],
        )
        .await
    }

    /// [`connect_device`] with extra handshake headers.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect_device_with_headers(
        gw: &Gateway,
        dev: &Dev,
        token: Option<&str>,
        scopes: &[&str],
        signed_scopes: &[&str],
        nonce_override: Option<&str>,
        skew_ms: i64,
        headers: &[(&str, &str)],
    ) -> (Ws, Json) {
        let mut ws = Ws::open_with_headers(gw, "/", headers).await;
        let challenge = ws.frame().await;
        let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
        let ts = challenge["payload"]["ts"].as_i64().unwrap();
        let nonce = nonce_override.map(str::to_string).unwrap_or(nonce);
        let p = dev.params(token, scopes, signed_scopes, &nonce, ts + skew_ms);
        let id = ws.req("connect", p).await;
        let res = ws.res(&id).await;
        (ws, res)
    }
}

#[tokio::test]
async fn device_proof_errors_are_refused_with_their_codes_and_1008() {
    let gw = Gateway::start().await;
    let dev = device::Dev::new();
    let token = gw.token.clone();
    let s = ["operator.read"];
    // Bad signature: signed other scopes than sent.
    let (mut ws, res) =
        device::connect_device(&gw, &dev, Some(&token), &s, &["operator.admin"], None, 0).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(res["error"]["message"], "device signature invalid");
    assert_eq!(
        res["error"]["details"]["code"],
        "DEVICE_AUTH_SIGNATURE_INVALID"
    );
    let c = ws.closed().await;
    assert_eq!(c.code, 1008);
    assert_eq!(c.reason, "device signature invalid");

    // Stale signedAt (more than 120 s off).
    let (mut ws, res) =
        device::connect_device(&gw, &dev, Some(&token), &s, &s, None, -300_000).await;
    assert_eq!(
        res["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_EXPIRED",
        "{res}"
    );
    assert_eq!(res["error"]["message"], "device signature expired");
    assert_eq!(ws.closed().await.code, 1008);

    // Signed over a nonce that is not this socket's challenge.
    let (mut ws, res) = device::connect_device(
        &gw,
        &dev,
        Some(&token),
        &s,
        &s,
        Some("3f2b6c1e-0000-4000-8000-000000000001"),
        0,
    )
    .await;
    assert_eq!(
        res["error"]["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH",
        "{res}"
    );
    assert_eq!(res["error"]["message"], "device nonce mismatch");
    assert_eq!(ws.closed().await.code, 1008);

    // A valid proof on loopback with the gateway token is paired silently; the socket keeps
    // the gateway token's full scopes and receives a device token.
    let (mut ws, res) = device::connect_device(&gw, &dev, Some(&token), &s, &s, None, 0).await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(auth["method"], "token");
    assert!(
        auth["deviceToken"].as_str().is_some_and(|t| t.len() >= 40),
        "{auth}"
    );
    assert!(
        auth["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "operator.admin")
    );
    ws.ok("health", json!({})).await;
}

/// A loopback socket carrying proxy headers is not local: no silent pairing, whether or not
/// the proxy is trusted (the forwarded client is what matters, and it is not this host).
#[tokio::test]
async fn proxied_device_connect_is_not_auto_approved_as_local() {
    for config in ["{}", "{gateway: {trustedProxies: ['127.0.0.1']}}"] {
        let gw = Gateway::start_with(config).await;
        let token = gw.token.clone();
        let s = ["operator.read"];
        for headers in [
            [("X-Forwarded-For", "203.0.113.9")],
            [("Forwarded", "for=203.0.113.9;proto=https")],
        ] {
            let dev = device::Dev::new();
            let (mut ws, res) = device::connect_device_with_headers(
                &gw,
                &dev,
                Some(&token),
                &s,
                &s,
                None,
                0,
                &headers,
            )
            .await;
            assert_eq!(res["ok"], false, "{config} {headers:?}: {res}");
            assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
            assert_eq!(ws.closed().await.code, 1008);
        }
        // The same device without proxy headers is paired silently.
        let dev = device::Dev::new();
        let (_ws, res) = device::connect_device(&gw, &dev, Some(&token), &s, &s, None, 0).await;
        assert_eq!(res["ok"], true, "{res}");
    }
}

/// Past the per-address challenge limit a socket still gets a `connect.challenge`, so a
/// token-only client connects; a device block is refused (retry later) and closed 1013.
#[tokio::test]
async fn past_the_challenge_limit_token_clients_connect_and_devices_are_told_to_retry() {
    let gw =
        Gateway::start_with("{gateway: {nodes: {pairing: {maxChallengesPerAddress: 1}}}}").await;
    let token = gw.token.clone();
    // This socket holds the address's one outstanding challenge.
    let mut first = Ws::open(&gw).await;
    assert_eq!(first.frame().await["event"], "connect.challenge");

    let (mut ws, _, res) = handshake(&gw, connect_params(Some(&token), 4, 4)).await;
    assert_eq!(res["ok"], true, "a token-only client is unaffected: {res}");
    ws.ok("health", json!({})).await;

    let s = ["operator.read"];
    let dev = device::Dev::new();
    let (mut ws, res) = device::connect_device(&gw, &dev, Some(&token), &s, &s, None, 0).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    assert_eq!(res["error"]["retryable"], true, "{res}");
    assert_eq!(
        res["error"]["details"]["code"], "CHALLENGES_EXHAUSTED",
        "{res}"
    );
    let c = ws.closed().await;
    assert_eq!(c.code, 1013);
    assert_eq!(c.reason, "too many outstanding challenges; retry later");
}

#[tokio::test]
async fn pairing_required_then_approve_then_reconnect_with_the_device_token() {
    let gw = Gateway::start_with("{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}").await;
    let (mut op, _) = operator(&gw).await;
    let dev = device::Dev::new();
    let s = ["operator.read"];

    // A device block without any credential cannot file a request: OpenClaw's missing-token
    // refusal, close 1008, nothing pending.
    let (mut ws, res) = device::connect_device(&gw, &dev, None, &s, &s, None, 0).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_TOKEN_MISSING",
        "{res}"
    );
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unauthorized: gateway token missing"),
        "{res}"
    );
    assert_eq!(ws.closed().await.code, 1008);
    let list = op.ok("device.pair.list", json!({})).await;
    assert_eq!(list["pending"], json!([]), "{list}");

    // With the gateway token (not local-approved here) it files one.
    let token = gw.token.clone();
    let (mut ws, res) = device::connect_device(&gw, &dev, Some(&token), &s, &s, None, 0).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "NOT_PAIRED");
    let d = &res["error"]["details"];
    assert_eq!(d["code"], "PAIRING_REQUIRED");
    assert_eq!(d["reason"], "not-paired");
    assert_eq!(d["deviceId"], dev.id.as_str());
    let request_id = d["requestId"].as_str().expect("requestId").to_string();
    let fix = format!(
        "pairing required: run `clawplane devices approve {request_id}` on the gateway host"
    );
    assert_eq!(res["error"]["message"], fix.as_str());
    let c = ws.closed().await;
    assert_eq!(c.code, 1008);
    assert_eq!(c.reason, fix);

    // The operator socket saw the request, lists it and approves it.
    let ev = op
        .event_until(|e| e["event"] == "device.pair.requested")
        .await;
    let req = &ev.last().unwrap()["payload"];
    assert_eq!(req["requestId"], request_id.as_str(), "{req}");
    assert_eq!(req["deviceId"], dev.id.as_str());
    let list = op.ok("device.pair.list", json!({})).await;
    assert!(
        list["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["requestId"] == request_id.as_str()),
        "{list}"
    );
    let approved = op
        .ok("device.pair.approve", json!({"requestId": request_id}))
        .await;
    assert_eq!(approved["requestId"], request_id.as_str());
    let ev = op
        .event_until(|e| e["event"] == "device.pair.resolved")
        .await;
    assert_eq!(ev.last().unwrap()["payload"]["decision"], "approved");
    let unknown = op
        .call("device.pair.approve", json!({"requestId": request_id}))
        .await;
    assert_eq!(unknown["error"]["code"], "INVALID_REQUEST", "{unknown}");

    // Reconnect: hello-ok carries the device token and exactly the approved scopes.
    let (mut ws, res) = device::connect_device(&gw, &dev, None, &s, &s, None, 0).await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(auth["method"], "device-token");
    assert_eq!(auth["scopes"], json!(["operator.read"]));
    let device_token = auth["deviceToken"]
        .as_str()
        .expect("deviceToken")
        .to_string();

    // Missing scope: FORBIDDEN + MISSING_SCOPE.
    let r = ws
        .call(
            "chat.send",
            json!({"sessionKey": "main", "message": "x", "idempotencyKey": "ro-1"}),
        )
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "FORBIDDEN");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("missing scope: operator.write"),
        "{r}"
    );
    assert_eq!(r["error"]["details"]["code"], "MISSING_SCOPE");
    assert_eq!(r["error"]["details"]["missingScope"], "operator.write");
    ws.ok("status", json!({})).await;

    // The device token alone works too (auth.deviceToken, no device block).
    let mut p = connect_params(None, 4, 4);
    p["auth"] = json!({"deviceToken": device_token});
    let (_ws2, _, res) = handshake(&gw, p).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "device-token");

    // Revoking the device closes its sockets with 4001.
    op.ok(
        "device.token.revoke",
        json!({"deviceId": dev.id, "role": "operator"}),
    )
    .await;
    let c = ws.closed().await;
    assert_eq!(c.code, 4001, "{c:?}");
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_15_s_handshake_timeout() {
    let gw = Gateway::start().await;
    let mut ws = Ws::open(&gw).await;
    let started = std::time::Instant::now();
    ws.frame().await; // challenge
    let c = ws.closed().await;
    assert_eq!(c.code, 1000, "{c:?}");
    assert_eq!(c.reason, "handshake timeout");
    assert!(
        started.elapsed() >= Duration::from_secs(14),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn failed_and_aborted_runs_stream_error_and_aborted_events() {
    let gw = Gateway::start().await;
    let (mut ws, _) = operator(&gw).await;

    // A failing `agent` run: the final answer is ok:false UNAVAILABLE with the payload.
    let id = ws
        .req(
            "agent",
            json!({"message": "please /fail now", "agentId": "main", "idempotencyKey": "f-1"}),
        )
        .await;
    assert_eq!(ws.res(&id).await["payload"]["status"], "accepted");
    let fin = ws.res(&id).await;
    assert_eq!(fin["ok"], false, "{fin}");
    assert_eq!(fin["error"]["code"], "UNAVAILABLE");
    assert_eq!(fin["payload"]["status"], "error");
    assert_eq!(fin["payload"]["runId"], "f-1");
    let events = ws
        .event_until(|e| e["event"] == "chat" && e["payload"]["runId"] == "f-1")
        .await;
    let chat = events.last().unwrap();
    assert_eq!(chat["payload"]["state"], "error", "{chat}");
    assert!(chat["payload"]["errorMessage"].is_string());
    assert!(events.iter().any(|e| e["event"] == "agent"
        && e["payload"]["runId"] == "f-1"
        && e["payload"]["data"]["phase"] == "error"));

    // An aborted chat run.
    ws.ok(
        "chat.send",
        json!({"sessionKey": "abort-me", "message": "/sleep 20000 long", "idempotencyKey": "a-1"}),
    )
    .await;
    ws.event_until(|e| {
        e["event"] == "agent"
            && e["payload"]["runId"] == "a-1"
            && e["payload"]["data"]["phase"] == "start"
    })
    .await;
    let ab = ws
        .ok(
            "chat.abort",
            json!({"sessionKey": "abort-me", "runId": "a-1"}),
        )
        .await;
    assert_eq!(ab["aborted"], true, "{ab}");
    assert_eq!(ab["runIds"], json!(["a-1"]));
    let events = ws
        .event_until(|e| e["event"] == "chat" && e["payload"]["runId"] == "a-1")
        .await;
    assert_eq!(events.last().unwrap()["payload"]["state"], "aborted");
    let w = ws
        .ok("agent.wait", json!({"runId": "a-1", "timeoutMs": 5000}))
        .await;
    assert_eq!(w["status"], "error", "{w}");
}

#[tokio::test]
async fn an_idle_socket_gets_a_tick_every_30_s() {
    let gw = Gateway::start().await;
    let (mut ws, _) = operator(&gw).await;
    let started = std::time::Instant::now();
    let tick = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            match ws.s.next().await {
                Some(Ok(Message::Text(t))) => {
                    let f: Json = serde_json::from_str(&t).unwrap();
                    if f["event"] == "tick" {
                        return f;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a tick within 45 s");
    assert!(tick["payload"]["ts"].is_u64(), "{tick}");
    assert_eq!(tick["seq"], 1, "the first broadcast of an idle socket");
    assert!(started.elapsed() >= Duration::from_secs(29));
}

// ---------------------------------------------------------------------------------------------
// Handshake queue, slow consumers, frame limits
// ---------------------------------------------------------------------------------------------

fn req_frame(method: &str, id: &str, params: Json) -> Message {
    Message::Text(
        json!({"type": "req", "id": id, "method": method, "params": params})
            .to_string()
            .into(),
    )
}

/// Sends `connect` and then `extra` `health` requests in one write, so they are all queued
/// before `connect` can finish.
async fn connect_then_flood(gw: &Gateway, extra: usize) -> Ws {
    let mut ws = Ws::open(gw).await;
    ws.frame().await; // challenge
    ws.s.feed(req_frame(
        "connect",
        "c",
        connect_params(Some(&gw.token), 4, 4),
    ))
    .await
    .unwrap();
    for i in 0..extra {
        ws.s.feed(req_frame("health", &format!("h{i}"), json!({})))
            .await
            .unwrap();
    }
    ws.s.flush().await.unwrap();
    ws
}

#[tokio::test]
async fn fifteen_frames_queue_behind_connect_the_sixteenth_closes_1008() {
    let gw = Gateway::start().await;

    // 15 queued frames are kept and answered after hello-ok, in order of arrival.
    let mut ws = connect_then_flood(&gw, 15).await;
    let hello = ws.frame().await;
    assert_eq!(hello["id"], "c", "hello-ok comes first: {hello}");
    assert_eq!(hello["ok"], true, "{hello}");
    // Each request is answered by its own task, so the order of the answers is free.
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < 15 {
        let r = ws.frame().await;
        if r["type"] == "res" {
            assert_eq!(r["ok"], true, "{r}");
            answered.insert(r["id"].as_str().unwrap().to_string());
        }
    }
    let want: std::collections::BTreeSet<String> = (0..15).map(|i| format!("h{i}")).collect();
    assert_eq!(answered, want);

    // The 16th closes the socket before connect is answered.
    let mut ws = connect_then_flood(&gw, 16).await;
    let mut frames = Vec::new();
    let c = loop {
        match ws.next().await {
            Ok(f) => frames.push(f),
            Err(c) => break c,
        }
    };
    assert_eq!(c.code, 1008, "{c:?}");
    assert_eq!(c.reason, "too many pending handshake frames");
    assert!(
        frames.iter().all(|f| f["type"] != "res"),
        "nothing is answered: {frames:?}"
    );

    // The gateway keeps serving.
    let (mut ok, _) = operator(&gw).await;
    ok.ok("health", json!({})).await;
}

/// A socket whose client receive buffer is small, so unread output backs up in the server.
async fn open_small_buffer(gw: &Gateway) -> Ws {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(gw.addr).await.unwrap();
    let url = format!("ws://{}/", gw.addr);
    let (s, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .expect("ws handshake");
    Ws { s, events: vec![] }
}

#[tokio::test]
async fn a_slow_consumer_is_closed_1008_with_its_last_delivered_seq() {
    let gw = Gateway::start_with("{ gateway: { ws: { maxBufferedBytes: 65536 } } }").await;
    let mut ws = open_small_buffer(&gw).await;
    ws.frame().await; // challenge
    let id = ws
        .req("connect", connect_params(Some(&gw.token), 4, 4))
        .await;
    let hello = ws.res(&id).await;
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(hello["payload"]["policy"]["maxBufferedBytes"], 65536);

    // A long reply: one delta per word, each event carrying the cumulative text, far more
    // than the socket buffers and the 64 KiB limit hold. The client reads nothing meanwhile.
    let words: Vec<String> = (0..3000).map(|i| format!("word{i}")).collect();
    ws.send(
        json!({"type": "req", "id": "s", "method": "chat.send", "params": {
        "sessionKey": "slow", "message": words.join(" "), "idempotencyKey": "slow-1"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Reading now: every event up to the close, with seqs 1..=n and no gap, then
    // 1008 naming n.
    let mut seqs = Vec::new();
    let c = loop {
        match ws.next().await {
            Ok(f) => {
                if let Some(s) = f["seq"].as_u64() {
                    seqs.push(s);
                }
            }
            Err(c) => break c,
        }
    };
    assert_eq!(c.code, 1008, "{c:?}");
    let last = *seqs.last().expect("some events were delivered");
    assert_eq!(c.reason, format!("slow consumer; last seq {last}"));
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "no gap before the close"
    );

    // Others are unaffected; the run itself finished.
    let (mut op, _) = operator(&gw).await;
    let w = op
        .ok("agent.wait", json!({"runId": "slow-1", "timeoutMs": 10000}))
        .await;
    assert_eq!(w["status"], "ok", "{w}");
}

#[tokio::test]
async fn an_oversize_frame_after_the_handshake_ends_that_socket_only() {
    let gw = Gateway::start().await;
    let (mut other, _) = operator(&gw).await;
    let (mut ws, _) = operator(&gw).await;
    // Frames up to the limit are fine after the handshake (the pre-auth 64 KiB no longer
    // applies).
    let r = ws
        .call("health", json!({"pad": "a".repeat(100 * 1024)}))
        .await;
    assert_eq!(r["type"], "res", "{r}");

    // Above policy.maxPayload (25 MiB): the server closes 1009; since it stops reading a
    // frame the client is still writing, the client may see a reset instead. Either way
    // the socket ends.
    let big = Message::Text(format!("{{\"pad\":\"{}\"}}", "a".repeat(26 * 1024 * 1024)).into());
    let sent = tokio::time::timeout(PATIENCE, ws.s.send(big)).await;
    assert!(sent.is_ok(), "the write neither finished nor failed");
    let c = ws.closed().await;
    assert!(c.code == 1009 || c.code == 1006, "{c:?}");
    if c.code == 1009 {
        assert_eq!(c.reason, "payload too large (policy.maxPayload)");
    }

    // The server keeps serving: the other socket and new ones.
    other.ok("health", json!({})).await;
    let (mut again, _) = operator(&gw).await;
    again.ok("health", json!({})).await;
}

// ---------------------------------------------------------------------------------------------
// Legacy error codes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn legacy_repeated_auth_failures_are_rate_limited() {
    let gw = Gateway::start_with(
        "{ gateway: { auth: { rateLimit: { maxAttempts: 3, windowMs: 60000, lockoutMs: 60000 } } } }",
    )
    .await;
    // Each wrong `?token=` is refused at the upgrade (401); past maxAttempts, 429.
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(Ws::refused(&gw, "/?token=wrong").await.0);
    }
    assert_eq!(codes[0], 401, "{codes:?}");
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");
    let first_limited = codes.iter().position(|c| *c == 429).unwrap();
    assert!(
        codes[first_limited..].iter().all(|c| *c == 429),
        "{codes:?}"
    );

    // While locked out, even the right token from this address is refused as rate limited.
    let (status, body) = Ws::refused(&gw, &format!("/?token={}", gw.token)).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn sockets_beyond_max_connections_get_gateway_busy_in_their_dialect() {
    // Connection limits are each process's own (they bound its sockets).
    let gw = Gateway::builder()
        .config("{ gateway: { maxConnections: 1 } }")
        .one_process()
        .start()
        .await;
    let (mut first, _) = operator(&gw).await;

    // Legacy: GATEWAY_BUSY for its first frame, then close 1013.
    let mut ws = Ws::open_path(&gw, &format!("/?token={}", gw.token)).await;
    ws.send(json!({"type": "chat", "id": "m1", "payload": {"message": "hi"}}))
        .await;
    let mut frames = Vec::new();
    let c = loop {
        match ws.next().await {
            Ok(f) => frames.push(f),
            Err(c) => break c,
        }
    };
    assert_eq!(c.code, 1013, "{c:?}");
    let busy = frames
        .iter()
        .find(|f| f["type"] == "error")
        .unwrap_or_else(|| panic!("no error frame: {frames:?}"));
    assert_eq!(busy["id"], "m1");
    assert_eq!(busy["payload"]["code"], "GATEWAY_BUSY", "{busy}");

    // OpenClaw: the connect is answered with a retryable UNAVAILABLE, then close 1013.
    let (mut ws, _, res) = handshake(&gw, connect_params(Some(&gw.token), 4, 4)).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "UNAVAILABLE");
    assert_eq!(res["error"]["retryable"], true);
    assert_eq!(res["error"]["details"]["code"], "GATEWAY_BUSY");
    assert_eq!(ws.closed().await.code, 1013);

    // The open socket is unaffected; once it leaves, a legacy client is served.
    first.ok("health", json!({})).await;
    drop(first);
    let mut served = None;
    for _ in 0..50 {
        let mut ws = Ws::open_path(&gw, &format!("/?token={}", gw.token)).await;
        ws.frame().await;
        ws.send(json!({"type": "status", "id": "s", "payload": {}}))
            .await;
        let r = ws.frame().await;
        if r["type"] == "status" {
            served = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served.is_some(),
        "a slot frees up when the first socket leaves"
    );
}

// ---------------------------------------------------------------------------------------------
// Device methods: reject, remove, rotate
// ---------------------------------------------------------------------------------------------

/// A device that asks to pair (no auto-approval) and is refused; returns the request id.
async fn pairing_request(gw: &Gateway, dev: &device::Dev, scopes: &[&str]) -> String {
    let token = gw.token.clone();
    let (mut ws, res) =
        device::connect_device(gw, dev, Some(&token), scopes, scopes, None, 0).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    ws.closed().await;
    res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn device_pair_reject_remove_and_token_rotate_over_ws() {
    let gw = Gateway::start_with("{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}").await;
    let (mut op, _) = operator(&gw).await;
    let dev = device::Dev::new();
    let s = ["operator.read", "operator.pairing"];

    // Reject: answered with the decision, broadcast as resolved/rejected, gone from the list.
    let request_id = pairing_request(&gw, &dev, &s).await;
    let r = op
        .ok("device.pair.reject", json!({"requestId": request_id}))
        .await;
    assert_eq!(r["requestId"], request_id.as_str(), "{r}");
    assert_eq!(r["deviceId"], dev.id.as_str());
    assert_eq!(r["decision"], "rejected");
    let ev = op
        .event_until(|e| {
            e["event"] == "device.pair.resolved" && e["payload"]["requestId"] == request_id.as_str()
        })
        .await;
    let resolved = &ev.last().unwrap()["payload"];
    assert_eq!(resolved["decision"], "rejected", "{resolved}");
    assert_eq!(resolved["deviceId"], dev.id.as_str());
    let list = op.ok("device.pair.list", json!({})).await;
    assert!(
        !list["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["requestId"] == request_id.as_str()),
        "{list}"
    );
    let again = op
        .call("device.pair.reject", json!({"requestId": request_id}))
        .await;
    assert_eq!(again["ok"], false, "{again}");
    assert_eq!(again["error"]["code"], "INVALID_REQUEST");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown requestId"),
        "{again}"
    );
    // Still not paired.
    let token = gw.token.clone();
    let (mut ws, res) = device::connect_device(&gw, &dev, Some(&token), &s, &s, None, 0).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    ws.closed().await;

    // Pair it for real.
    let request_id = pairing_request(&gw, &dev, &s).await;
    op.ok("device.pair.approve", json!({"requestId": request_id}))
        .await;
    let (_dws, res) = device::connect_device(&gw, &dev, None, &s, &s, None, 0).await;
    assert_eq!(res["ok"], true, "{res}");
    let old_token = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let with_token = |t: &str| {
        let mut p = connect_params(None, 4, 4);
        p["scopes"] = json!(["operator.read"]);
        p["auth"] = json!({"deviceToken": t});
        p
    };

    // Rotate by another principal (the gateway token): narrowed scopes, the token withheld,
    // the old token dead.
    let r = op
        .ok(
            "device.token.rotate",
            json!({"deviceId": dev.id, "role": "operator", "scopes": ["operator.read"]}),
        )
        .await;
    assert_eq!(r["deviceId"], dev.id.as_str(), "{r}");
    assert_eq!(r["role"], "operator");
    assert_eq!(r["scopes"], json!(["operator.read"]));
    assert_eq!(r["tokenDelivery"], "withheld-cross-device");
    assert!(r["token"].is_null(), "{r}");
    assert!(r["rotatedAtMs"].is_u64());
    let (mut ws, _, res) = handshake(&gw, with_token(&old_token)).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
        "{res}"
    );
    assert_eq!(ws.closed().await.code, 1008);
    // Scopes beyond the approved ones cannot be rotated in.
    let r = op
        .call(
            "device.token.rotate",
            json!({"deviceId": dev.id, "role": "operator", "scopes": ["operator.admin"]}),
        )
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
    // Unknown device / role.
    let r = op
        .call(
            "device.token.rotate",
            json!({"deviceId": "0".repeat(64), "role": "operator"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    let r = op
        .call("device.token.rotate", json!({"deviceId": dev.id}))
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");

    // The device proves itself again and gets a fresh token with the narrowed scopes.
    let r1 = ["operator.read"];
    let (_dws, res) = device::connect_device(&gw, &dev, None, &r1, &r1, None, 0).await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(auth["scopes"], json!(["operator.read"]), "{auth}");
    let new_token = auth["deviceToken"].as_str().unwrap().to_string();
    assert_ne!(new_token, old_token);
    let (_ws, _, res) = handshake(&gw, with_token(&new_token)).await;
    assert_eq!(res["ok"], true, "{res}");

    // Remove: the device is gone from the list, its token is dead, it must pair again.
    let r = op
        .ok("device.pair.remove", json!({"deviceId": dev.id}))
        .await;
    assert_eq!(r["deviceId"], dev.id.as_str(), "{r}");
    let list = op.ok("device.pair.list", json!({})).await;
    assert!(
        !list["paired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["deviceId"] == dev.id.as_str()),
        "{list}"
    );
    let (_ws, _, res) = handshake(&gw, with_token(&new_token)).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
        "{res}"
    );
    let (_ws, res) = device::connect_device(&gw, &dev, Some(&token), &r1, &r1, None, 0).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    let r = op
        .call("device.pair.remove", json!({"deviceId": dev.id}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
}

/// One `agent` call: its acceptance and its final payloads.
async fn agent_turn(ws: &mut Ws, params: Json) -> (Json, Json) {
    let id = ws.req("agent", params).await;
    let accepted = ws.res(&id).await;
    assert_eq!(accepted["ok"], true, "{accepted}");
    let done = ws.res(&id).await;
    assert_eq!(done["ok"], true, "{done}");
    (accepted["payload"].clone(), done["payload"].clone())
}

/// `agent` with `sessionId` continues that transcript generation (else an explicit session),
/// and `replyChannel` / `replyTo` / `replyAccountId` take the reply elsewhere than the
/// routing `channel` / `to` (`openclaw agent --reply-*`).
#[tokio::test]
async fn agent_honours_session_id_and_a_separate_reply_route() {
    use crate::fakes::telegram::FakeTelegram;
    let tg = FakeTelegram::start("123:tg").await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ telegram: {{ botToken: '123:tg', baseUrl: '{}' }} }} }}",
        tg.base_url
    ))
    .await;
    let (mut ws, _) = operator(&gw).await;
    // Routing by discord user:7, reply to a Telegram chat.
    let (accepted, done) = agent_turn(
        &mut ws,
        json!({"message": "routed one way, answered another", "idempotencyKey": "reply-route-1",
               "channel": "discord", "to": "user:7", "replyChannel": "telegram", "replyTo": "42",
               "deliver": true}),
    )
    .await;
    assert_eq!(
        accepted["sessionKey"], "agent:main:discord:direct:7",
        "{accepted}"
    );
    assert_eq!(done["status"], "ok", "{done}");
    let sent = tg.messages();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].body["chat_id"], 42);
    let r = gw.list_runs("agent:main:discord:direct:7").await;
    let d = r[0].delivery.clone().expect("delivery");
    assert_eq!((d.channel.as_str(), d.to.as_str()), ("telegram", "42"));

    // sessionId: the session whose transcript generation it is.
    let session = gw.get_session("agent:main:discord:direct:7").await;
    let (accepted, _) = agent_turn(
        &mut ws,
        json!({"message": "same conversation", "idempotencyKey": "by-session-id-1", "sessionId": session.session_id}),
    )
    .await;
    assert_eq!(
        accepted["sessionKey"], "agent:main:discord:direct:7",
        "{accepted}"
    );
    // An unknown one starts an explicit session, the same one each time.
    let (a1, _) = agent_turn(
        &mut ws,
        json!({"message": "fresh", "idempotencyKey": "explicit-1", "sessionId": "Nightly-Report"}),
    )
    .await;
    let (a2, _) = agent_turn(
        &mut ws,
        json!({"message": "again", "idempotencyKey": "explicit-2", "sessionId": "Nightly-Report"}),
    )
    .await;
    assert_eq!(
        a1["sessionKey"], "agent:main:explicit:nightly-report",
        "{a1}"
    );
    assert_eq!(a2["sessionKey"], a1["sessionKey"]);
    let bad = ws
        .call(
            "agent",
            json!({"message": "x", "idempotencyKey": "bad-sid", "sessionId": "no spaces allowed"}),
        )
        .await;
    assert_eq!(bad["ok"], false, "{bad}");
    assert_eq!(bad["error"]["code"], "INVALID_REQUEST", "{bad}");
}
