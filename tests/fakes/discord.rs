//! Fake Discord bot REST API (`/api/v10`): `POST /users/@me/channels` (DM channel),
//! `POST /channels/{id}/messages`, `GET /users/@me`. Checks `Authorization: Bot <token>`,
//! issues snowflakes, enforces the 2000-character content limit, and can answer the next
//! requests with a 429 (`retry_after` body + `Retry-After` header) or an error. `GET
//! /gateway/bot` names its [`FakeGateway`] (the bot WebSocket), which every gateway with a
//! Discord token connects to; that discovery is not among [`FakeDiscord::requests`].

use super::discord_gateway::FakeGateway;
use super::recorder::{Canned, Recorded, Recorder, Server, serve};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

struct Inner {
    token: String,
    epoch_ms: u64,
    gateway_url: String,
}

/// A running fake Discord.
#[derive(Clone)]
pub struct FakeDiscord {
    /// The API base to configure as `channels.discord.baseUrl` (`.../api/v10`).
    pub base_url: String,
    /// The server and its recorder.
    pub server: Server,
    /// The Gateway (`GET /gateway/bot` answers its URL).
    pub gateway: FakeGateway,
}

impl FakeDiscord {
    /// Starts a fake that accepts bot token `token` (Gateway heartbeats every 41.25 s, as
    /// Discord asks).
    pub async fn start(token: &str) -> Self {
        Self::start_with_heartbeat(token, 41_250).await
    }

    /// Starts a fake whose Gateway asks for heartbeats every `heartbeat_ms`.
    pub async fn start_with_heartbeat(token: &str, heartbeat_ms: u64) -> Self {
        let gateway = FakeGateway::start(token, heartbeat_ms).await;
        let inner = Arc::new(Inner {
            gateway_url: gateway.url.clone(),
            token: token.into(),
            epoch_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        });
        let server = serve(inner, handle).await;
        FakeDiscord {
            base_url: format!("{}/api/v10", server.url),
            server,
            gateway,
        }
    }

    /// Every REST request so far but Gateway discovery.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server
            .rec
            .requests()
            .into_iter()
            .filter(|r| !r.path.ends_with("/gateway/bot"))
            .collect()
    }

    /// Requests whose path ends with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect()
    }

    /// `POST /channels/{id}/messages` requests.
    pub fn messages(&self) -> Vec<Recorded> {
        self.requests_to("/messages")
    }

    /// The next `n` requests get a 429 asking to wait `retry_after` seconds.
    pub fn rate_limit_next(&self, n: usize, retry_after: f64) {
        for _ in 0..n {
            self.server.rec.inject(
                "",
                Canned::json(
                    429,
                    json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}),
                )
                .header("Retry-After", &format!("{}", retry_after.ceil() as u64))
                .header("X-RateLimit-Global", "false")
                .header("X-RateLimit-Scope", "user"),
            );
        }
    }

    /// The next message send answers 403 `{"code":50007,"message":"Cannot send messages to
    /// this user"}`.
    pub fn reject_next_message(&self) {
        self.server.rec.inject(
            "/messages",
            Canned::json(
                403,
                json!({"code": 50007, "message": "Cannot send messages to this user"}),
            ),
        );
    }

    /// The next request matching `path_filter` gets this answer.
    pub fn inject(&self, path_filter: &str, c: Canned) {
        self.server.rec.inject(path_filter, c);
    }

    fn snowflake(inner: &Inner, rec: &Recorder) -> String {
        let ms = inner.epoch_ms.saturating_sub(1_420_070_400_000);
        ((ms << 22) | rec.next()).to_string()
    }
}

async fn handle(inner: Arc<Inner>, recorder: Arc<Recorder>, rec: Recorded) -> Response {
    if rec.header("authorization") != Some(format!("Bot {}", inner.token).as_str()) {
        return Canned::json(401, json!({"message": "401: Unauthorized", "code": 0}))
            .into_response();
    }
    let path = rec.path.strip_prefix("/api/v10").unwrap_or(&rec.path);
    if rec.method == "GET" && path == "/gateway/bot" {
        return Canned::json(
            200,
            json!({"url": inner.gateway_url, "shards": 1, "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}),
        )
        .into_response();
    }
    // Typing is answered before any injected answer (those are for the sends).
    if rec.method == "POST" && path.starts_with("/channels/") && path.ends_with("/typing") {
        return Canned::status(204).into_response();
    }
    if let Some(c) = recorder.take(&rec.path) {
        return c.into_response();
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (rec.method.as_str(), segs.as_slice()) {
        ("GET", ["users", "@me"]) => Canned::json(
            200,
            json!({"id": "1000", "username": "fakebot", "bot": true, "discriminator": "0"}),
        )
        .into_response(),
        ("POST", ["users", "@me", "channels"]) => {
            let Some(user) = rec.body.get("recipient_id").and_then(Value::as_str) else {
                return Canned::json(400, json!({"code": 50035, "message": "Invalid Form Body"}))
                    .into_response();
            };
            Canned::json(
                200,
                json!({"id": FakeDiscord::snowflake(&inner, &recorder), "type": 1, "recipients": [{"id": user}]}),
            )
            .into_response()
        }
        ("POST", ["channels", channel, "messages"]) => {
            let content = rec
                .body
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or("");
            if content.is_empty() || content.chars().count() > 2000 {
                return Canned::json(
                    400,
                    json!({"code": 50035, "message": "Invalid Form Body", "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}),
                )
                .into_response();
            }
            Canned::json(
                200,
                json!({"id": FakeDiscord::snowflake(&inner, &recorder), "channel_id": channel, "content": content, "type": 0}),
            )
            .into_response()
        }
        _ => Canned::json(404, json!({"message": "404: Not Found", "code": 0})).into_response(),
    }
}
