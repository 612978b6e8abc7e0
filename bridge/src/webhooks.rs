//! Webhook routes, each a translator into `WebhookService`:
//! - `POST /webhooks/<instance-id>` (synchronous, the Claworc contract): `Authorization:
//!   Bearer <api key>` and `{session_name, message}` -> WebhookService/CallWebhook; the
//!   reply as `text/plain`. 400 / 401 / 404 / 413 / 429 answer `{ok:false, error}`; 502
//!   (the agent failed) answers the error as `text/plain`.
//! - `POST /webhook/<path>` (templated ingress): headers and the raw body ->
//!   WebhookService/IngestWebhook, which verifies the endpoint's secret or signature;
//!   `{ok:true, runId, sessionKey}` (plus `duplicate:true` for a replayed delivery).
//!
//! The caller's credential, address and `X-Forwarded-For` are forwarded; the service layer
//! authenticates and resolves the client address (`gateway.trustedProxies`).

use crate::{
    Caller,
    body::read_body,
    respond::{fail, json, text},
    status::{sync_webhook_error, webhook_error},
};
use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header},
    response::Response,
    routing::any,
};
use clawplane_proto::v1::{
    CallWebhookRequest, IngestWebhookRequest, WebhookHeader, webhook_service_server::WebhookService,
};
use serde_json::{Value as Json, json};
use std::{net::SocketAddr, sync::Arc};

type Svc = Arc<dyn WebhookService>;

/// `/webhooks/{instance_id}` (always served: the keys decide who may call).
pub fn sync_router(svc: Svc) -> Router {
    Router::new()
        .route("/webhooks/{id}", any(sync_call))
        .with_state(svc)
}

/// `/webhook/{*path}` (served while `webhooks.incoming.enabled`).
pub fn ingress_router(svc: Svc) -> Router {
    Router::new()
        .route("/webhook/{*path}", any(ingest))
        .with_state(svc)
}

fn peer(req: &Request<Body>) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
        let t = v[7..].trim();
        (!t.is_empty()).then(|| t.to_string())
    } else {
        None
    }
}

fn method_not_allowed() -> Response {
    let mut r = fail(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed; use POST",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

async fn sync_call(
    State(svc): State<Svc>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request<Body>,
) -> Response {
    if req.method() != Method::POST {
        return method_not_allowed();
    }
    let caller = Caller {
        token: bearer(req.headers()),
        peer: peer(&req),
        forwarding: crate::forwarding_headers(req.headers()),
    };
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, &parts.headers).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let payload: Json = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return fail(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let Some(obj) = payload.as_object() else {
        return fail(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object {\"session_name\", \"message\"}",
        );
    };
    // Absent or null fields are empty (the service reports what is missing); other types
    // are refused here.
    let field = |k: &str| -> Result<String, String> {
        match obj.get(k) {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{k} must be a string")),
        }
    };
    let (session_name, message) = match (field("session_name"), field("message")) {
        (Ok(s), Ok(m)) => (s, m),
        (Err(e), _) | (_, Err(e)) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let msg = CallWebhookRequest {
        instance_id: id,
        session_name,
        message,
    };
    match svc.call_webhook(caller.request(msg)).await {
        Ok(r) => text(StatusCode::OK, r.into_inner().reply),
        Err(s) => sync_webhook_error(&s),
    }
}

async fn ingest(
    State(svc): State<Svc>,
    axum::extract::Path(path): axum::extract::Path<String>,
    req: Request<Body>,
) -> Response {
    if req.method() != Method::POST {
        return method_not_allowed();
    }
    let caller = Caller {
        token: None,
        peer: peer(&req),
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
        .map(|(k, v)| WebhookHeader {
            name: k.as_str().to_string(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let msg = IngestWebhookRequest {
        path,
        headers,
        body: bytes.to_vec(),
    };
    match svc.ingest_webhook(caller.request(msg)).await {
        Ok(r) => {
            let r = r.into_inner();
            let mut body = json!({"ok": true, "runId": r.run_id, "sessionKey": r.session_key});
            if r.duplicate {
                body["duplicate"] = true.into();
            }
            json(StatusCode::OK, body)
        }
        Err(s) => webhook_error(&s),
    }
}
