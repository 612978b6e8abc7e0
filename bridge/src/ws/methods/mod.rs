//! OpenClaw methods, each mapped onto v1 RPCs called with the socket's credential (the
//! service layer authorizes; PERMISSION_DENIED becomes `FORBIDDEN "missing scope: …"`).
//!
//! [`METHODS`] is the one list of methods: dispatch looks names up in it and
//! `hello-ok.features.methods` is derived from it, so what is advertised is exactly what
//! is answered. Scopes are not listed here: the service layer's scope table is the one
//! authority, and the answer to a call without the scope comes from it.

mod agent;
mod channels;
mod chat;
mod devices;
mod logs;
mod pairing;
mod params;
mod sessions;
mod system;

pub(crate) use devices::pending_json;
pub(crate) use system::health_snapshot;

use super::{
    frames::{ErrorShape, closed_request, res_err, res_ok, rpc_error},
    outbox::Outbox,
};
use crate::{Caller, Services};
use params::Params;
use serde_json::Value as Json;
use std::{future::Future, pin::Pin, sync::Arc};
use tonic::Status;

/// What a method task needs.
pub(crate) struct Ctx {
    pub s: Services,
    pub caller: Caller,
    pub out: Outbox,
}

type Answer = Result<Json, ErrorShape>;

/// The server's id of the run a client names by `runId`: OpenClaw clients name their runs by
/// the idempotency key they chose (looked up in this credential's keys), else by the id.
async fn resolve_run(ctx: &Ctx, wire: &str) -> Result<String, Status> {
    use clawplane_proto::v1::GetRunRequest;
    let found = ctx
        .s
        .agent
        .get_run(ctx.caller.request(GetRunRequest {
            idempotency_key: wire.to_string(),
            ..Default::default()
        }))
        .await;
    match found {
        Ok(r) => Ok(r
            .into_inner()
            .run
            .map(|r| r.run_id)
            .unwrap_or_else(|| wire.into())),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) =>
        {
            Ok(wire.to_string())
        }
        Err(s) => Err(s),
    }
}
type Task<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a method answers.
enum Handler {
    /// Once, with the payload or the error it returns.
    Unary(for<'a> fn(&'a Ctx, Params<'a>) -> Task<'a, Answer>),
    /// On its own, possibly more than once on the same id (`agent`: `accepted`, then the
    /// final).
    Streaming(for<'a> fn(&'a Ctx, &'a str, Params<'a>) -> Task<'a, ()>),
}

/// One method: its wire name and its handler.
struct Method {
    name: &'static str,
    handler: Handler,
}

const fn unary(
    name: &'static str,
    f: for<'a> fn(&'a Ctx, Params<'a>) -> Task<'a, Answer>,
) -> Method {
    Method {
        name,
        handler: Handler::Unary(f),
    }
}

/// Every method this shim answers, in the order `hello-ok.features.methods` lists them.
/// `connect` is not one: it is only valid as the first request (the handshake's).
static METHODS: &[Method] = &[
    unary("health", |c, _| Box::pin(system::health(c))),
    unary("status", |c, _| Box::pin(system::status(c))),
    unary("system-presence", |c, _| {
        Box::pin(system::system_presence(c))
    }),
    Method {
        name: "agent",
        handler: Handler::Streaming(|c, id, p| Box::pin(agent::agent(c, id, p))),
    },
    unary("agent.wait", |c, p| Box::pin(agent::agent_wait(c, p))),
    unary("agents.list", |c, _| Box::pin(system::agents_list(c))),
    unary("chat.send", |c, p| Box::pin(chat::chat_send(c, p))),
    unary("chat.history", |c, p| Box::pin(chat::chat_history(c, p))),
    unary("chat.abort", |c, p| Box::pin(chat::chat_abort(c, p))),
    unary("sessions.list", |c, p| {
        Box::pin(sessions::sessions_list(c, p))
    }),
    unary("sessions.send", |c, p| {
        Box::pin(sessions::sessions_send(c, p))
    }),
    unary("wake", |c, p| Box::pin(system::wake(c, p))),
    unary("send", |c, p| Box::pin(channels::send(c, p))),
    unary("channels.status", |c, p| {
        Box::pin(channels::channels_status(c, p))
    }),
    unary("channels.pairing.list", |c, p| {
        Box::pin(pairing::list(c, p))
    }),
    unary("channels.pairing.approve", |c, p| {
        Box::pin(pairing::approve(c, p))
    }),
    unary("channels.pairing.dismiss", |c, p| {
        Box::pin(pairing::dismiss(c, p))
    }),
    unary("device.pair.list", |c, _| Box::pin(devices::pair_list(c))),
    unary("device.pair.approve", |c, p| {
        Box::pin(devices::pair_approve(c, p))
    }),
    unary("device.pair.reject", |c, p| {
        Box::pin(devices::pair_reject(c, p))
    }),
    unary("device.pair.remove", |c, p| {
        Box::pin(devices::pair_remove(c, p))
    }),
    unary("device.token.rotate", |c, p| {
        Box::pin(devices::token_rotate(c, p))
    }),
    unary("device.token.revoke", |c, p| {
        Box::pin(devices::token_revoke(c, p))
    }),
    unary("logs.tail", |c, p| Box::pin(logs::logs_tail(c, p))),
];

/// `hello-ok.features.methods`: the names of [`METHODS`].
pub(crate) fn advertised() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).collect()
}

fn lookup(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// Parses one frame and starts its method (an answer always comes, possibly later).
pub(crate) fn dispatch(ctx: &Arc<Ctx>, text: &str) {
    let frame: Json = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return, // not a frame; upstream ignores it too
    };
    let id = frame.get("id").and_then(Json::as_str).unwrap_or("");
    if frame.get("type").and_then(Json::as_str) != Some("req") || id.is_empty() {
        return;
    }
    let id = id.to_string();
    let method = frame
        .get("method")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    if !closed_request(&frame) || method.is_empty() {
        ctx.out.text(res_err(
            &id,
            &ErrorShape::invalid("invalid request frame"),
            None,
        ));
        return;
    }
    let params = frame.get("params").cloned().unwrap_or(Json::Null);
    let ctx = ctx.clone();
    tokio::spawn(async move { call(ctx, id, method, params).await });
}

async fn call(ctx: Arc<Ctx>, id: String, method: String, params: Json) {
    let p = Params {
        method: &method,
        v: &params,
    };
    let r = match lookup(&method).map(|m| &m.handler) {
        Some(Handler::Unary(f)) => f(&ctx, p).await,
        Some(Handler::Streaming(f)) => return f(&ctx, &id, p).await,
        None if method == "connect" => Err(ErrorShape::invalid(
            "connect is only valid as the first request",
        )),
        None => Err(ErrorShape::invalid(format!("unknown method: {method}"))),
    };
    answer(&ctx, &id, r);
}

fn answer(ctx: &Ctx, id: &str, r: Answer) {
    match r {
        Ok(p) => ctx.out.text(res_ok(id, p)),
        Err(e) => ctx.out.text(res_err(id, &e, None)),
    };
}

fn err(s: Status) -> ErrorShape {
    rpc_error(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_method_is_advertised_and_nothing_else() {
        let features = super::super::handshake::features();
        let advertised: Vec<&str> = features["methods"]
            .as_array()
            .expect("features.methods is a list")
            .iter()
            .map(|m| m.as_str().expect("a method name"))
            .collect();
        let table: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        assert_eq!(advertised, table);
        let unique: HashSet<&str> = table.iter().copied().collect();
        assert_eq!(unique.len(), table.len(), "a method is listed twice");
        for name in &table {
            assert!(
                lookup(name).is_some(),
                "{name} is in the table but not dispatched"
            );
        }
        assert!(
            !advertised.contains(&"connect"),
            "connect is the handshake's"
        );
        assert!(lookup("connect").is_none());
        assert!(lookup("no.such.method").is_none());
    }
}
