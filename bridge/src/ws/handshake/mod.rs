//! The pre-auth phase of a socket (spec §1.3–§1.5): the `connect.challenge`, the first frame
//! choosing the dialect, then `connect` — validated, checked through the v1 RPCs with the
//! presented credential — answered by `hello-ok` or refused. Its limits (pre-auth frame
//! size, pending frames, the handshake timeout) hold however slow the credential check is.

mod params;
mod refusal;

pub(crate) use params::ConnectParams;

use super::{
    MAX_PENDING_HANDSHAKE_FRAMES, MAX_PREAUTH_PAYLOAD, PROTOCOLS, Shim, Socket, events,
    frames::{ErrorShape, closed_request, event, now_ms, res_err, res_ok},
    incoming::{Incoming, classify},
    legacy, methods,
    outbox::Outbox,
};
use crate::Caller;
use clawplane_proto::v1::{
    ChallengeRequest, ConnectDeviceRequest, ConnectDeviceResponse, GatewayServiceStatusRequest,
    GatewayServiceStatusResponse,
};
use futures::{StreamExt as _, stream::SplitStream};
use refusal::{Refusal, auth_refusal, device_refusal, token_missing};
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use tokio::time::Instant;
use tonic::Code;

/// The authenticated socket.
pub(crate) struct Session {
    pub caller: Caller,
    pub protocol: u64,
    pub device_id: Option<String>,
}

/// How the pre-auth phase ended.
pub(super) enum Outcome {
    /// The socket is done (a close, if any, is queued); `linger` says whether to wait for
    /// the client's close reply.
    Closed { linger: bool },
    /// The first frame chose the legacy dialect; it is that dialect's first frame.
    Legacy(Json),
    /// `hello-ok` is queued: the session, and the frames that arrived during `connect`.
    Ready(Session, VecDeque<String>),
}

/// The `connect.challenge` event.
pub(super) fn challenge(nonce: &str, ts: u64) -> String {
    event(
        "connect.challenge",
        json!({"nonce": nonce, "ts": ts, "capabilities": ["model-catalog-snapshot"]}),
        None,
    )
}

/// Runs the pre-auth phase for a socket whose caller is `anonymous` (address and proxy
/// headers, no credential yet).
pub(super) async fn run(
    shim: &Shim,
    stream: &mut SplitStream<Socket>,
    out: &Outbox,
    anonymous: &Caller,
    opened: Instant,
) -> Outcome {
    let closed = |code: u16, reason: &str| {
        out.close(code, reason);
        Outcome::Closed { linger: true }
    };
    // The nonce comes from DeviceService/Challenge (single use), so a device block signed
    // over it can be verified by DeviceService/ConnectDevice.
    let (nonce, ts, refused) = match shim
        .s
        .devices
        .challenge(anonymous.request(ChallengeRequest {}))
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            (
                r.nonce,
                u64::try_from(r.ts).unwrap_or_else(|_| now_ms()),
                None,
            )
        }
        // Refused (e.g. too many outstanding challenges from this address): the socket
        // still gets a challenge so token-only clients connect; a device block is refused
        // at `connect` with the reason.
        Err(s) => (uuid::Uuid::new_v4().to_string(), now_ms(), Some(s)),
    };
    out.text(challenge(&nonce, ts));
    let deadline = opened + shim.cfg.handshake_timeout;

    // The first frame chooses the dialect.
    let first = loop {
        let m = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(deadline) => return closed(1000, "handshake timeout"),
            _ = shim.cfg.shutdown.cancelled() => return closed(1012, "service restart"),
        };
        match classify(m) {
            Incoming::Text(t) => break t,
            Incoming::Skip => continue,
            Incoming::TooBig => {
                out.close(1009, "preauth payload too large");
                return Outcome::Closed { linger: false };
            }
            Incoming::Gone => return Outcome::Closed { linger: false },
        }
    };
    if first.len() > MAX_PREAUTH_PAYLOAD {
        return closed(1009, "preauth payload too large");
    }
    let frame: Json = serde_json::from_str(&first).unwrap_or(Json::Null);
    let kind = frame.get("type").and_then(Json::as_str).unwrap_or("");
    if legacy::is_legacy(kind) {
        return Outcome::Legacy(frame);
    }
    let id = frame
        .get("id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let method = frame.get("method").and_then(Json::as_str).unwrap_or("");
    let (Some(id), "req") = (id, kind) else {
        // Not a request at all: no response, close.
        return closed(1008, "invalid handshake: first request must be connect");
    };
    if method != "connect" || !closed_request(&frame) {
        let e = ErrorShape::invalid("invalid handshake: first request must be connect");
        out.text(res_err(&id, &e, None));
        return closed(1008, &e.message);
    }

    // `connect`, while further frames queue (at most 15, each within the pre-auth limit).
    let params = frame.get("params").cloned().unwrap_or(Json::Null);
    let mut pending: VecDeque<String> = VecDeque::new();
    let fut = connect(shim, params, &nonce, refused.as_ref(), anonymous);
    tokio::pin!(fut);
    let outcome = loop {
        // Biased towards reading: frames that have already arrived are counted before
        // `connect`'s outcome is looked at, so the limit holds however fast the credential
        // check is (a flood starves `connect` for at most 16 frames).
        tokio::select! {
            biased;
            m = stream.next() => match classify(m) {
                Incoming::Text(t) => {
                    if t.len() > MAX_PREAUTH_PAYLOAD {
                        return closed(1009, "preauth payload too large");
                    }
                    pending.push_back(t);
                    if pending.len() > MAX_PENDING_HANDSHAKE_FRAMES {
                        return closed(1008, "too many pending handshake frames");
                    }
                }
                Incoming::Skip => {}
                Incoming::TooBig => return closed(1009, "preauth payload too large"),
                Incoming::Gone => return Outcome::Closed { linger: false },
            },
            r = &mut fut => break r,
            _ = tokio::time::sleep_until(deadline) => return closed(1000, "handshake timeout"),
        }
    };
    match outcome {
        Err(refusal) => {
            out.text(res_err(&id, &refusal.error, None));
            closed(refusal.close, &refusal.reason)
        }
        Ok((session, hello)) => {
            out.text(res_ok(&id, hello));
            Outcome::Ready(session, pending)
        }
    }
}

/// `hello-ok.features`: the methods of the dispatch table and the events the feed
/// translation sends.
pub(crate) fn features() -> Json {
    json!({
        "methods": methods::advertised(),
        "events": events::EVENTS,
        "capabilities": [],
    })
}

/// Validates `connect` and authenticates it through the RPCs; returns the session and the
/// `hello-ok` payload.
async fn connect(
    shim: &Shim,
    params: Json,
    nonce: &str,
    challenge_refused: Option<&tonic::Status>,
    origin: &Caller,
) -> Result<(Session, Json), Refusal> {
    let p = ConnectParams::parse(&params).map_err(|e| {
        Refusal::policy(ErrorShape::invalid(format!("invalid connect params: {e}")))
    })?;

    // Protocol range first: it hides every later error (as upstream).
    let Some(protocol) = PROTOCOLS
        .iter()
        .copied()
        .find(|v| p.min_protocol <= *v && *v <= p.max_protocol)
    else {
        let error = ErrorShape::invalid("protocol mismatch").with_details(json!({
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": p.min_protocol,
            "clientMaxProtocol": p.max_protocol,
            "expectedProtocol": 4,
            "minimumProbeProtocol": 3,
            "supportedProtocols": PROTOCOLS,
        }));
        return Err(Refusal {
            error,
            close: 1002,
            reason: "protocol mismatch".into(),
        });
    };

    // The device block, when present, is verified by DeviceService/ConnectDevice (with the
    // presented credential, if any); it yields a device token.
    let mut issued: Option<ConnectDeviceResponse> = None;
    if let Some(dev) = &p.device {
        if let Some(s) = challenge_refused {
            return Err(device_refusal(s, &p));
        }
        if !dev.nonce.is_empty() && dev.nonce != nonce {
            return Err(Refusal::policy(ErrorShape::invalid("device nonce mismatch").with_details(
                json!({"code": "DEVICE_AUTH_NONCE_MISMATCH", "reason": "device-nonce-mismatch"}),
            )));
        }
        let cred = Caller {
            token: p.token.clone().or_else(|| p.device_token.clone()),
            ..origin.clone()
        };
        let signed_token = p
            .token
            .clone()
            .or_else(|| p.device_token.clone())
            .or_else(|| p.bootstrap_token.clone())
            .unwrap_or_default();
        let req = ConnectDeviceRequest {
            device: Some(dev.clone()),
            client_id: p.client_id.clone(),
            client_mode: p.client_mode.clone(),
            role: p.role.clone(),
            scopes: p.scopes.clone(),
            platform: p.platform.clone(),
            device_family: p.device_family.clone(),
            display_name: p.display_name.clone(),
            token: signed_token,
        };
        match shim.s.devices.connect_device(cred.request(req)).await {
            Ok(r) => issued = Some(r.into_inner()),
            Err(s) => return Err(device_refusal(&s, &p)),
        }
    }

    let (token, method) = match (&p.token, &p.device_token, &issued) {
        (Some(t), _, _) => (t.clone(), "token"),
        (None, _, Some(i)) => (i.device_token.clone(), "device-token"),
        (None, Some(t), None) => (t.clone(), "device-token"),
        (None, None, None) => return Err(token_missing(None)),
    };
    let caller = Caller {
        token: Some(token),
        ..origin.clone()
    };

    // The credential check: GatewayService/Status answers with the caller's scopes (a
    // device without operator.read still connects, with the scopes it was issued).
    let status = match shim
        .s
        .gateway
        .status(caller.request(GatewayServiceStatusRequest {}))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == Code::PermissionDenied && method == "device-token" => {
            GatewayServiceStatusResponse {
                version: shim.cfg.version.clone(),
                default_agent_id: "main".into(),
                main_session_key: "agent:main:main".into(),
                caller_scopes: issued
                    .as_ref()
                    .map(|i| i.scopes.clone())
                    .unwrap_or_default(),
                ..Default::default()
            }
        }
        Err(s) => return Err(auth_refusal(&s, method)),
    };
    let main_key = status
        .main_session_key
        .rsplit_once(':')
        .map(|(_, k)| k.to_string())
        .unwrap_or_else(|| "main".into());
    let conn_id = uuid::Uuid::new_v4().to_string();
    let hello = json!({
        "type": "hello-ok",
        "protocol": protocol,
        "server": {"version": shim.cfg.version, "connId": conn_id, "bootId": boot_id()},
        "features": features(),
        "snapshot": {
            "presence": [],
            "health": methods::health_snapshot(&status),
            "stateVersion": {"presence": 0, "health": 0},
            "uptimeMs": status.uptime_ms,
            "sessionDefaults": {
                "defaultAgentId": status.default_agent_id,
                "mainKey": main_key,
                "mainSessionKey": status.main_session_key,
                "scope": "per-sender",
            },
            "authMode": "token",
        },
        "auth": auth_json(method, &p.role, &status.caller_scopes, issued.as_ref()),
        "policy": {
            "maxPayload": super::MAX_PAYLOAD,
            "maxBufferedBytes": shim.cfg.max_buffered_bytes,
            "tickIntervalMs": shim.cfg.tick_interval.as_millis() as u64,
        },
    });
    Ok((
        Session {
            caller,
            protocol,
            device_id: issued.map(|i| i.device_id),
        },
        hello,
    ))
}

fn auth_json(
    method: &str,
    role: &str,
    scopes: &[String],
    issued: Option<&ConnectDeviceResponse>,
) -> Json {
    let mut v = json!({"method": method, "role": role, "scopes": scopes});
    if let Some(i) = issued {
        let now = now_ms();
        v["deviceToken"] = json!(i.device_token);
        v["issuedAtMs"] = json!(now);
        v["deviceTokens"] = json!([{
            "deviceToken": i.device_token,
            "role": i.role,
            "scopes": i.scopes,
            "issuedAtMs": now,
        }]);
    }
    v
}

/// `hello-ok.server.bootId`: one id per gateway process, so clients (OpenClaw's `status`
/// readiness check) can tell a restart from the same process answering again.
pub(crate) fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().to_string())
}
