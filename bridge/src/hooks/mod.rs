//! OpenClaw hooks (`hooks.*`, spec §4.1), drop-in compatible: `POST <path>/wake`,
//! `POST <path>/agent`, mapped `POST <path>/<name>`, plus `GET <path>/runs/<runId>`.
//! Each request is translated into GatewayService/Wake, AgentService/Run, Wait and GetRun;
//! the service layer authenticates the forwarded credential (the hooks token or an
//! operator token) and counts failures per client address.
//!
//! This module routes a request (path, method, credential, body) to its handler: `wake`,
//! `agent`, `mapped` (with `render` for one mapping action) and `runs`; `compile` holds the
//! resolved `hooks.*`, `request` the parsing, `reply` the answers. The hooks policy
//! (allowed agents, session keys, prefixes) is applied by the core to every call made with
//! the hooks token, so this bridge only passes the requested agent and key on.

mod agent;
mod compile;
mod mapped;
mod render;
pub(crate) mod reply;
mod request;
mod runs;
mod wake;

pub use clawplane_config::hooks::{HookMapping, HookMatch, HooksConfig};
pub use mapped::MAX_FAN_OUT;

pub use crate::body::{BODY_TIMEOUT, MAX_BODY_BYTES};
use crate::{
    Caller, Services,
    body::read_body,
    respond::{Answer, bad, reject, text},
    status::hooks_error,
};
use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, State},
    http::{Method, Request, StatusCode},
    response::Response,
    routing::any,
};
use clawplane_proto::v1::GetCallerRequest;
use compile::{Action, Compiled};
use reply::not_found;
use request::{HookRequest, credential, header_map, idempotency_key, query_pairs};
use serde_json::{Value as Json, json};
use std::{net::SocketAddr, sync::Arc};

const TOKEN_IN_QUERY: &str = "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header (query parameters are not allowed).";

/// What the server knows that the hooks need: the configured channel ids (`channels.*`
/// keys; `None` skips the channel check).
#[derive(Debug, Clone, Default)]
pub struct HooksContext {
    pub channels: Option<Vec<String>>,
}

/// The hooks routes under `hooks.path`, for the server's one listener.
pub fn hooks_router(
    services: Services,
    cfg: &HooksConfig,
    ctx: HooksContext,
) -> Result<Router, String> {
    let c = Compiled::new(cfg, &ctx)?;
    for m in &c.mappings {
        let missing = match m.action {
            Action::Agent => m.message.is_none().then_some("messageTemplate"),
            Action::Wake => m.text.is_none().then_some("textTemplate"),
        };
        if let Some(field) = missing {
            tracing::warn!(mapping = %m.id, "hook mapping has no {field}; requests it matches get 400");
        }
    }
    let base = c.base.clone();
    let state = Arc::new(Hooks { s: services, c });
    Ok(Router::new()
        .route(&base, any(handle))
        .route(&format!("{base}/"), any(handle))
        .route(&format!("{base}/{{*rest}}"), any(handle))
        .with_state(state))
}

/// Compiles `hooks.*` as the router would (templates included); nothing is checked while
/// hooks are disabled.
pub fn check(cfg: &HooksConfig) -> Result<(), String> {
    if !cfg.enabled {
        return Ok(());
    }
    cfg.validate()?;
    Compiled::new(cfg, &HooksContext::default()).map(|_| ())
}

/// The router's state: the services and the compiled `hooks.*`.
struct Hooks {
    s: Services,
    c: Compiled,
}

async fn handle(State(h): State<Arc<Hooks>>, req: Request<Body>) -> Response {
    match h.serve(req).await {
        Ok(r) => r,
        Err(r) => *r,
    }
}

impl Hooks {
    async fn serve(&self, req: Request<Body>) -> Answer<Response> {
        let (parts, body) = req.into_parts();
        let Some(rest) = parts.uri.path().strip_prefix(self.c.base.as_str()) else {
            return reject(not_found());
        };
        let query = query_pairs(parts.uri.query());
        if query.iter().any(|(k, _)| k == "token") {
            return reject(text(StatusCode::BAD_REQUEST, TOKEN_IN_QUERY));
        }
        let sub = rest.trim_start_matches('/').to_string();
        let runs = sub == "runs" || sub.starts_with("runs/");
        let (method, allow) = if runs {
            (Method::GET, "GET")
        } else {
            (Method::POST, "POST")
        };
        if parts.method != method {
            return reject(reply::method_not_allowed(allow));
        }
        let caller = Caller {
            token: credential(&parts.headers),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            forwarding: crate::forwarding_headers(&parts.headers),
        };
        self.authenticate(&caller).await?;
        if sub.is_empty() {
            return reject(not_found());
        }
        if runs {
            return self
                .get_run(
                    &caller,
                    sub.strip_prefix("runs")
                        .unwrap_or_default()
                        .trim_start_matches('/'),
                )
                .await;
        }
        let body = read_body(body, &parts.headers).await?;
        let payload = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice::<Json>(&body)
                .map_err(|e| bad(format!("invalid JSON body: {e}")))?
        };
        let payload = if payload.is_object() {
            payload
        } else {
            json!({})
        };
        let mut warnings = Vec::new();
        let idempotency_key = idempotency_key(&parts.headers, &payload, &mut warnings);
        let r = HookRequest {
            caller,
            query: query
                .into_iter()
                .map(|(k, v)| (k, Json::String(v)))
                .collect(),
            headers: header_map(&parts.headers),
            sub,
            payload,
            idempotency_key,
            warnings,
        };
        match r.sub.as_str() {
            "wake" => self.wake(r).await,
            "agent" => self.agent(r).await,
            _ => self.mapped(r).await,
        }
    }

    /// Lets the service layer authenticate the caller before anything else is looked at
    /// (GatewayService/GetCaller: any valid credential; scopes are checked by the call
    /// that follows).
    async fn authenticate(&self, caller: &Caller) -> Answer<()> {
        self.s
            .gateway
            .get_caller(caller.request(GetCallerRequest {}))
            .await
            .map(|_| ())
            .or_else(|s| reject(hooks_error(&s)))
    }
}

#[cfg(test)]
#[path = "hooks_proptest.rs"]
mod proptests;
