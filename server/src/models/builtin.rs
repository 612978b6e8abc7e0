//! The built-in offline model: `You said: <message> (turn <n>)`, streamed word by word.
//! `/sleep <ms>` waits first and `/fail` fails, so queueing, timeouts, cancellation and
//! failure paths are testable without any network.

use super::{Model, ModelError, ModelReply, ModelRequest};
use clawplane_proto::v1::Usage;
use futures::future::BoxFuture;
use std::time::Duration;
use tokio::sync::mpsc;

/// The built-in model.
pub struct Builtin;

/// Longest `/sleep` honoured, so a typo cannot park a session for days.
const MAX_SLEEP_MS: u64 = 600_000;

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

impl Model for Builtin {
    fn generate(
        &self,
        req: ModelRequest,
        deltas: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'static, Result<ModelReply, ModelError>> {
        Box::pin(async move {
            let mut parts = req.message.split_whitespace();
            if parts.next() == Some("/sleep")
                && let Some(ms) = parts.next().and_then(|s| s.parse::<u64>().ok())
            {
                tokio::time::sleep(Duration::from_millis(ms.min(MAX_SLEEP_MS))).await;
            }
            if req.message.split_whitespace().any(|w| w == "/fail") {
                return Err(ModelError {
                    message: "the built-in model failed on request (/fail)".into(),
                });
            }
            let text = if req.heartbeat {
                if req.system_events.is_empty() {
                    "HEARTBEAT_OK".to_string()
                } else {
                    format!("Noted: {}", req.system_events.join("; "))
                }
            } else {
                format!("You said: {} (turn {})", req.message, req.turn)
            };
            // One delta per word, each with the whitespace after it, so deltas concatenate
            // to exactly the reply.
            let mut start = 0;
            let bytes = text.as_bytes();
            while start < text.len() {
                let mut end = start;
                while end < text.len() && !bytes[end].is_ascii_whitespace() {
                    end += 1;
                }
                while end < text.len() && bytes[end].is_ascii_whitespace() {
                    end += 1;
                }
                let _ = deltas.send(text[start..end].to_string());
                start = end;
                tokio::task::yield_now().await;
            }
            let input = req.history.iter().map(|(_, t)| words(t)).sum::<u64>()
                + words(&req.message)
                + req.system_events.iter().map(|t| words(t)).sum::<u64>();
            let output = words(&text);
            Ok(ModelReply {
                text,
                model: req.model,
                usage: Usage {
                    input_tokens: input,
                    output_tokens: output,
                    total_tokens: input + output,
                },
            })
        })
    }
}
