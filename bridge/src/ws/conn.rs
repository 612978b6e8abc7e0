//! One socket's life: the capacity check, the pre-auth phase (the handshake), then the
//! authenticated request/event loop (OpenClaw) or the legacy loop, and the close.

use super::{
    MAX_PREAUTH_PAYLOAD, Shim, Socket,
    events::Translator,
    frames::{ErrorShape, event, now_ms, res_err},
    gate::Lift,
    handshake::{self, Outcome, Session},
    incoming::{CLOSE_WAIT, Incoming, classify, linger},
    legacy, methods,
    outbox::Outbox,
};
use crate::{Caller, EventStream};
use clawplane_proto::v1::{EventServiceWatchRequest, event_service_watch_response::Frame};
use futures::{StreamExt as _, stream::SplitStream};
use serde_json::{Value as Json, json};
use std::{collections::VecDeque, net::SocketAddr, sync::Arc, time::Duration};
use tokio::time::Instant;
use tonic::Code;

/// How long a socket beyond `gateway.maxConnections` may take to send its first frame.
const BUSY_GRACE: Duration = Duration::from_secs(2);

/// A socket beyond `gateway.maxConnections`: it gets a challenge and a short grace for its
/// first frame so the answer speaks its dialect (legacy: `GATEWAY_BUSY`; OpenClaw: a
/// retryable `UNAVAILABLE`), then close 1013. A silent socket is closed 1013 after the grace.
async fn busy(stream: &mut SplitStream<Socket>, out: &Outbox) {
    const MESSAGE: &str =
        "gateway busy: too many connections (gateway.maxConnections); retry later";
    out.text(handshake::challenge(
        &uuid::Uuid::new_v4().to_string(),
        now_ms(),
    ));
    let first = tokio::time::timeout(BUSY_GRACE, async {
        loop {
            match classify(stream.next().await) {
                Incoming::Text(t) => return Some(t),
                Incoming::Skip => continue,
                Incoming::TooBig | Incoming::Gone => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    if let Some(t) = first.filter(|t| t.len() <= MAX_PREAUTH_PAYLOAD) {
        let frame: Json = serde_json::from_str(&t).unwrap_or(Json::Null);
        let kind = frame.get("type").and_then(Json::as_str).unwrap_or("");
        let id = frame.get("id").cloned().unwrap_or(Json::Null);
        if legacy::is_legacy(kind) {
            out.text(
                json!({"type": "error", "id": id, "payload": {"code": "GATEWAY_BUSY", "message": MESSAGE}})
                    .to_string(),
            );
        } else if let ("req", Some(id)) = (kind, id.as_str()) {
            let mut e = ErrorShape::new("UNAVAILABLE", MESSAGE)
                .with_details(json!({"code": "GATEWAY_BUSY", "reason": "max-connections"}));
            e.retryable = true;
            e.retry_after_ms = Some(1000);
            out.text(res_err(id, &e, None));
        }
    }
    out.close(
        1013,
        "too many connections (gateway.maxConnections); retry later",
    );
}

pub(super) async fn run(
    shim: Arc<Shim>,
    socket: Socket,
    lift: Lift,
    peer: Option<SocketAddr>,
    forwarding: Vec<(http::HeaderName, http::HeaderValue)>,
    query_token: Option<String>,
    over_capacity: bool,
) {
    let opened = Instant::now();
    let (sink, mut stream) = socket.split();
    let (out, mut writer) = Outbox::open(sink, shim.cfg.max_buffered_bytes);

    if over_capacity {
        busy(&mut stream, &out).await;
        linger(&mut stream).await;
        let _ = writer.await;
        return;
    }

    let anonymous = Caller {
        token: None,
        peer,
        forwarding,
    };
    let (session, pending) =
        match handshake::run(&shim, &mut stream, &out, &anonymous, opened).await {
            // Authenticated: from now on only `policy.maxPayload` bounds a frame.
            Outcome::Ready(session, pending) => {
                lift.lift();
                (session, pending)
            }
            Outcome::Closed { linger: wait } => {
                drop(out);
                if wait {
                    linger(&mut stream).await;
                }
                let _ = writer.await;
                return;
            }
            Outcome::Legacy(first) => {
                // A legacy `?token=` was checked at the upgrade; without one the socket stays
                // pre-auth (64 KiB frames, the handshake deadline).
                if query_token.is_some() {
                    lift.lift();
                }
                legacy::run(
                    &shim,
                    &mut stream,
                    &out,
                    first,
                    anonymous,
                    query_token,
                    opened,
                )
                .await;
                if shim.cfg.shutdown.is_cancelled() {
                    out.close(1012, "service restart");
                } else {
                    out.close(1000, "bye");
                }
                drop(out);
                linger(&mut stream).await;
                let _ = writer.await;
                return;
            }
        };

    let closing = serve(&shim, &mut stream, &out, session, pending).await;
    linger(&mut stream).await;
    // A queued close frame goes out before the socket is dropped (the read side may have
    // ended at once, e.g. after an oversize frame); then the writer ends, since method tasks
    // may still hold the outbox (a long `agent` wait).
    if closing && tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_ok() {
        return;
    }
    writer.abort();
    let _ = writer.await;
}

/// Starts the socket's view of the event feed (follow-only, or resuming after `after`).
async fn watch(ctx: &methods::Ctx, after: u64) -> Option<EventStream> {
    let req = ctx.caller.request(EventServiceWatchRequest {
        after_seq: after,
        filter: None,
        follow_only: after == 0,
    });
    match ctx.s.events.watch(req).await {
        Ok(r) => Some(r.into_inner()),
        Err(s) => {
            tracing::debug!(status = %s.message(), "ws: no event feed for this socket");
            None
        }
    }
}

async fn next_feed(
    feed: &mut Option<EventStream>,
) -> Option<Result<clawplane_proto::v1::EventServiceWatchResponse, tonic::Status>> {
    match feed {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// The authenticated loop: requests (each answered by its own task), feed events with a
/// per-connection seq, ticks, and the close paths.
async fn serve(
    shim: &Shim,
    stream: &mut SplitStream<Socket>,
    out: &Outbox,
    session: Session,
    pending: VecDeque<String>,
) -> bool {
    let ctx = Arc::new(methods::Ctx {
        s: shim.s.clone(),
        caller: session.caller.clone(),
        out: out.clone(),
    });
    // Subscribe before handling any request so no event of those requests is missed.
    let mut feed = watch(&ctx, 0).await;
    let mut last_feed_seq = 0u64;
    let mut tr = Translator::new(session.protocol);
    let mut seq = 0u64;
    let tick_every = shim.cfg.tick_interval;
    let max_buffered = shim.cfg.max_buffered_bytes;
    let mut tick = tokio::time::interval_at(Instant::now() + tick_every, tick_every);
    for t in pending {
        methods::dispatch(&ctx, &t);
    }
    let close = |code: u16, reason: &str| out.close(code, reason);
    loop {
        tokio::select! {
            biased;
            _ = shim.cfg.shutdown.cancelled() => {
                seq += 1;
                out.event(event("shutdown", json!({"reason": "gateway stopping", "restartExpectedMs": null}), Some(seq)), seq);
                close(1012, "service restart");
                return true;
            }
            m = stream.next() => match classify(m) {
                Incoming::Text(t) => methods::dispatch(&ctx, &t),
                Incoming::Skip => {}
                Incoming::TooBig => {
                    close(1009, "payload too large (policy.maxPayload)");
                    return true;
                }
                Incoming::Gone => return false,
            },
            f = next_feed(&mut feed) => match f {
                Some(Ok(resp)) => match resp.frame {
                    Some(Frame::Event(ev)) => {
                        last_feed_seq = ev.seq;
                        if let Some(dev) = &session.device_id
                            && tr.revokes(&ev, dev)
                        {
                            close(4001, "device token revoked");
                            return true;
                        }
                        for (name, payload) in tr.translate(&ev) {
                            seq += 1;
                            if out.event(event(name, payload, Some(seq)), seq) > max_buffered {
                                out.close_slow();
                                return true;
                            }
                        }
                    }
                    Some(Frame::Progress(p)) => last_feed_seq = last_feed_seq.max(p.seq),
                    None => {}
                },
                Some(Err(s)) => match s.code() {
                    Code::Unavailable => {
                        // The feed ends with SHUTTING_DOWN when the gateway stops.
                        seq += 1;
                        out.event(event("shutdown", json!({"reason": "gateway stopping", "restartExpectedMs": null}), Some(seq)), seq);
                        close(1012, "service restart");
                        return true;
                    }
                    Code::Aborted => {
                        // This socket's watch lagged: resume from the log.
                        let after = super::frames::error_info(&s)
                            .1
                            .get("lastSeq")
                            .and_then(Json::as_str)
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(last_feed_seq);
                        feed = watch(&ctx, after.max(1)).await;
                    }
                    Code::Unauthenticated => {
                        close(4001, "credential revoked");
                        return true;
                    }
                    _ => feed = None,
                },
                None => feed = None,
            },
            _ = tick.tick() => {
                seq += 1;
                if out.event(event("tick", json!({"ts": now_ms()}), Some(seq)), seq) > max_buffered {
                    out.close_slow();
                    return true;
                }
            }
        }
    }
}
