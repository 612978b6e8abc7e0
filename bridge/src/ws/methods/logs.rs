//! `logs.tail`: the event feed (EventService/Watch) as log lines, the cursor being the
//! event seq, so a tail that falls behind the log's retention resets instead of failing.

use super::{Answer, Ctx, Params, err, system::gateway_status};
use clawplane_proto::v1::{EventServiceWatchRequest, event_service_watch_response::Frame};
use futures::StreamExt as _;
use serde_json::json;
use std::time::Duration;
use tonic::Code;

pub(super) async fn logs_tail(ctx: &Ctx, p: Params<'_>) -> Answer {
    let limit = p.opt_u64("limit")?.unwrap_or(200).clamp(1, 5000);
    let max_bytes = p
        .opt_u64("maxBytes")?
        .unwrap_or(250_000)
        .clamp(1, 1_000_000) as usize;
    let cursor = p.opt_u64("cursor")?;
    let head = gateway_status(ctx).await.map_err(err)?.last_event_seq;
    let mut reset = false;
    let after = match cursor {
        Some(c) if c <= head => c,
        Some(_) => {
            reset = true;
            head.saturating_sub(limit)
        }
        None => head.saturating_sub(limit),
    };
    let mut lines: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let mut last = after;
    if head > after {
        let watch = |after_seq: u64| {
            ctx.s
                .events
                .watch(ctx.caller.request(EventServiceWatchRequest {
                    after_seq,
                    filter: None,
                    follow_only: false,
                }))
        };
        let mut stream = match watch(after).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::OutOfRange => {
                reset = true;
                watch(0).await.map_err(err)?.into_inner()
            }
            Err(s) => return Err(err(s)),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while last < head {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            let Ok(Some(Ok(frame))) = next else { break };
            match frame.frame {
                Some(Frame::Event(ev)) => {
                    last = ev.seq;
                    let line = serde_json::to_string(&ev).unwrap_or_default();
                    if lines.len() as u64 >= limit || bytes + line.len() > max_bytes {
                        truncated = true;
                        last = ev.seq - 1;
                        break;
                    }
                    bytes += line.len() + 1;
                    lines.push(line);
                }
                Some(Frame::Progress(pr)) => last = last.max(pr.seq),
                None => {}
            }
        }
    }
    Ok(json!({
        "file": "clawplane event feed (EventService/Watch)",
        "cursor": last,
        "size": head,
        "lines": lines,
        "truncated": truncated,
        "reset": reset,
    }))
}
