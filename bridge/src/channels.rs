//! Inbound provider webhooks, each a translator into ChannelService/IngestChannelWebhook
//! (the service verifies the raw bytes, dedupes, routes and runs):
//! - WhatsApp Cloud API: `GET <path>?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
//!   answers the challenge verbatim (`text/plain`) or 403; `POST <path>` with
//!   `X-Hub-Signature-256` answers 200 once every message is durably accepted, 401 for a bad
//!   signature.
//! - Telegram Bot API: `POST <path>` with `X-Telegram-Bot-Api-Secret-Token`.
//!
//! Errors answer `{ok:false, error}` with the status's HTTP code; 429 (the caller's address
//! is locked out or over its request budget) carries `Retry-After`.

use crate::{
    Caller,
    body::read_body,
    respond::{fail, json, text},
    status::webhook_error,
};
use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Query, State},
    http::{HeaderValue, Method, Request, StatusCode, header},
    response::Response,
    routing::any,
};
use clawplane_proto::v1::{IngestChannelWebhookRequest, channel_service_server::ChannelService};
use serde_json::json;
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

type Svc = Arc<dyn ChannelService>;

#[derive(Clone)]
struct Route {
    svc: Svc,
    channel: &'static str,
}

/// Serves `channel`'s webhook at `path` (`whatsapp` or `telegram`).
pub fn channel_router(svc: Svc, channel: &'static str, path: &str) -> Router {
    Router::new()
        .route(path, any(inbound))
        .with_state(Route { svc, channel })
}

async fn inbound(
    State(route): State<Route>,
    Query(query): Query<HashMap<String, String>>,
    req: Request<Body>,
) -> Response {
    let method = req.method().clone();
    let allowed = method == Method::POST || (method == Method::GET && route.channel == "whatsapp");
    if !allowed {
        let mut r = fail(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        let allow = if route.channel == "whatsapp" {
            "GET, POST"
        } else {
            "POST"
        };
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return r;
    }
    let caller = Caller {
        token: None,
        peer: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        forwarding: crate::forwarding_headers(req.headers()),
    };
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, &parts.headers).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let msg = IngestChannelWebhookRequest {
        channel: route.channel.into(),
        method: method.as_str().into(),
        query,
        headers,
        body: bytes.to_vec(),
    };
    match route.svc.ingest_channel_webhook(caller.request(msg)).await {
        Ok(r) if method == Method::GET => text(StatusCode::OK, r.into_inner().challenge),
        Ok(r) => {
            let r = r.into_inner();
            json(
                StatusCode::OK,
                json!({"ok": true, "runIds": r.run_ids, "duplicates": r.duplicates,
                       "receipts": r.receipts, "ignored": r.ignored}),
            )
        }
        Err(s) => webhook_error(&s),
    }
}
