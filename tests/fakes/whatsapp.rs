//! Fake WhatsApp Cloud API (Meta Graph): `POST /{version}/{phoneNumberId}/messages`
//! (returns `wamid.<uuid>`), `GET /{version}/{phoneNumberId}` (probe). A wrong bearer token
//! answers 401 OAuthException code 190. Plus builders for SIGNED inbound webhook payloads
//! ([`inbound_text_payload`], [`status_payload`], [`sign`]). Media: `GET /{version}/{media-id}`
//! answers the media's `url` (on this fake, `/media/<id>`, also behind the bearer token)
//! for what [`FakeWhatsApp::add_media`] stored ([`inbound_voice_payload`] sends its id).

use super::recorder::{Canned, Recorded, Recorder, Server, serve};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::Arc;

struct Inner {
    token: String,
    phone_number_id: String,
    /// media id -> (MIME type, bytes).
    media: std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
    base: std::sync::OnceLock<String>,
}

/// A running fake Graph API.
#[derive(Clone)]
pub struct FakeWhatsApp {
    /// `channels.whatsapp.baseUrl` (the version and phone number id are appended).
    pub base_url: String,
    /// The server and its recorder.
    pub server: Server,
    inner: Arc<Inner>,
}

fn graph_error(status: u16, code: i64, message: &str, details: Option<&str>) -> Canned {
    let mut err = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": format!("A{}", uuid::Uuid::new_v4().simple()),
    });
    if let Some(d) = details {
        err["error_data"] = json!({"messaging_product": "whatsapp", "details": d});
    }
    Canned::json(status, json!({ "error": err }))
}

impl FakeWhatsApp {
    /// Starts a fake that accepts `Authorization: Bearer <token>` for `phone_number_id`.
    pub async fn start(token: &str, phone_number_id: &str) -> Self {
        let inner = Arc::new(Inner {
            token: token.into(),
            phone_number_id: phone_number_id.into(),
            media: Default::default(),
            base: Default::default(),
        });
        let server = serve(inner.clone(), handle).await;
        let _ = inner.base.set(server.url.clone());
        FakeWhatsApp {
            base_url: server.url.clone(),
            server,
            inner,
        }
    }

    /// Waits until a message (not a read mark) was sent and answered 200; answers the first.
    pub async fn first_message(&self) -> Recorded {
        self.server
            .rec
            .wait_until(
                std::time::Duration::from_secs(30),
                "a sent message",
                |got| {
                    got.iter().any(|r| {
                        r.path.ends_with("/messages") && !is_read_mark(r) && r.answered == 200
                    })
                },
            )
            .await;
        self.messages().remove(0)
    }

    /// Stores a media object (a voice note's bytes) under `id`.
    pub fn add_media(&self, id: &str, mime: &str, bytes: &str) {
        self.inner
            .media
            .lock()
            .unwrap()
            .insert(id.into(), (mime.into(), bytes.into()));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.rec.requests()
    }

    /// `POST .../messages` requests.
    pub fn messages(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/messages") && !is_read_mark(r))
            .collect()
    }

    /// The next `n` requests get HTTP 429 + `Retry-After: <secs>` and Graph error 130429.
    pub fn rate_limit_next(&self, n: usize, retry_after: f64) {
        for _ in 0..n {
            self.server.rec.inject(
                "",
                graph_error(429, 130429, "(#130429) Rate limit hit", None)
                    .header("Retry-After", &retry_after.to_string()),
            );
        }
    }

    /// The next message answers 400 error 131047 (outside the 24-hour window).
    pub fn outside_window_next(&self) {
        self.server.rec.inject(
            "/messages",
            graph_error(
                400,
                131047,
                "(#131047) Re-engagement message",
                Some("Message failed to send because more than 24 hours have passed since the customer last replied to this number."),
            ),
        );
    }

    /// The next request matching `path_filter` gets this answer.
    pub fn inject(&self, path_filter: &str, c: Canned) {
        self.server.rec.inject(path_filter, c);
    }
}

async fn handle(inner: Arc<Inner>, recorder: Arc<Recorder>, rec: Recorded) -> Response {
    if rec.header("authorization") != Some(format!("Bearer {}", inner.token).as_str()) {
        return graph_error(
            401,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            None,
        )
        .into_response();
    }
    let segs: Vec<&str> = rec.path.trim_matches('/').split('/').collect();
    if rec.method == "GET" {
        let media = inner.media.lock().unwrap().clone();
        match segs.as_slice() {
            [v, id] if v.starts_with('v') && media.contains_key(*id) => {
                let (mime, bytes) = &media[*id];
                let base = inner.base.get().cloned().unwrap_or_default();
                return Canned::json(200, json!({"messaging_product": "whatsapp", "url": format!("{base}/media/{id}"), "mime_type": mime, "sha256": "0", "file_size": bytes.len(), "id": id})).into_response();
            }
            ["media", id] => {
                return match media.get(*id) {
                    Some((_, bytes)) => Canned::text(200, bytes).into_response(),
                    None => Canned::status(404).into_response(),
                };
            }
            [v, id] if v.starts_with('v') && *id != inner.phone_number_id => {
                return graph_error(
                    400,
                    100,
                    "Unsupported get request. Object with ID does not exist",
                    None,
                )
                .into_response();
            }
            _ => {}
        }
    }
    // Mark as read (with the typing indicator): answered before any injected answer, so
    // injections stay for the sends they are meant for.
    if rec.method == "POST" && is_read_mark(&rec) {
        if rec
            .body
            .get("message_id")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return graph_error(
                400,
                100,
                "(#100) The parameter message_id is required.",
                None,
            )
            .into_response();
        }
        return Canned::json(200, json!({"success": true})).into_response();
    }
    if let Some(c) = recorder.take(&rec.path) {
        return c.into_response();
    }
    match (rec.method.as_str(), segs.as_slice()) {
        ("GET", [v, pnid]) if v.starts_with('v') && *pnid == inner.phone_number_id => {
            Canned::json(200, json!({"id": pnid})).into_response()
        }
        ("POST", [v, pnid, "messages"]) if v.starts_with('v') && *pnid == inner.phone_number_id => {
            let b = &rec.body;
            let text = b
                .pointer("/text/body")
                .and_then(Value::as_str)
                .unwrap_or("");
            let to = b.get("to").and_then(Value::as_str).unwrap_or("");
            if b.get("messaging_product").and_then(Value::as_str) != Some("whatsapp")
                || to.is_empty()
                || b.get("type").and_then(Value::as_str) != Some("text")
            {
                return graph_error(400, 100, "(#100) Invalid parameter", None).into_response();
            }
            if text.is_empty() || text.chars().count() > 4096 {
                return graph_error(
                    400,
                    100,
                    "(#100) Param text['body'] must be at most 4096 characters long.",
                    None,
                )
                .into_response();
            }
            Canned::json(
                200,
                json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to.trim_start_matches('+')}],
                    "messages": [{"id": format!("wamid.{}", uuid::Uuid::new_v4().simple())}],
                }),
            )
            .into_response()
        }
        _ => graph_error(400, 100, "Unsupported request - method type: post", None).into_response(),
    }
}

/// A `POST /messages` that marks an inbound message read (`status: read`, optionally with
/// `typing_indicator`), not a message.
pub fn is_read_mark(r: &Recorded) -> bool {
    r.path.ends_with("/messages") && r.body.get("status").and_then(Value::as_str) == Some("read")
}

/// `sha256=<hex HMAC-SHA256(app_secret, body)>`, the `X-Hub-Signature-256` header value.
pub fn sign(app_secret: &str, body: &str) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn envelope(value: Value) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{"field": "messages", "value": value}],
        }],
    })
    .to_string()
}

/// An inbound text message webhook body (sign it with [`sign`]).
pub fn inbound_text_payload(phone_number_id: &str, wa_id: &str, wamid: &str, text: &str) -> String {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Ann"}, "wa_id": wa_id}],
        "messages": [{
            "from": wa_id,
            "id": wamid,
            "timestamp": "1700000000",
            "type": "text",
            "text": {"body": text},
        }],
    }))
}

/// A voice note (`type: audio`, `audio.voice: true`) whose media id is `media_id`.
pub fn inbound_voice_payload(
    phone_number_id: &str,
    wa_id: &str,
    wamid: &str,
    media_id: &str,
) -> String {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Ann"}, "wa_id": wa_id}],
        "messages": [{
            "from": wa_id,
            "id": wamid,
            "timestamp": "1700000000",
            "type": "audio",
            "audio": {"mime_type": "audio/ogg; codecs=opus", "sha256": "0", "id": media_id, "voice": true},
        }],
    }))
}

/// A delivery-receipt webhook body: `status` is sent, delivered, read or failed.
pub fn status_payload(phone_number_id: &str, wamid: &str, status: &str, recipient: &str) -> String {
    let mut st = json!({
        "id": wamid,
        "status": status,
        "timestamp": "1700000001",
        "recipient_id": recipient,
    });
    if status == "failed" {
        st["errors"] = json!([{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}]);
    }
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "statuses": [st],
    }))
}
