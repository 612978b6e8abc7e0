//! Anthropic Messages (`POST {baseUrl}/v1/messages`, SSE streaming).

use super::remote::{Provider, anthropic_url, next_chunk, stream_error};
use super::sse::SseParser;
use super::{ModelError, ModelReply, ModelRequest, Role, err, model_id, transcript};
use clawplane_proto::v1::Usage;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// `max_tokens` when the model entry does not say (the API requires one).
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The extended-thinking budget for a run's `thinking` level; `None` is off.
pub fn thinking_budget(thinking: &str) -> Option<u32> {
    match thinking {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16_384),
        "xhigh" => Some(32_768),
        _ => None,
    }
}

/// The request body. System texts go to the top-level `system`; consecutive turns of one
/// role are merged and leading assistant turns dropped, as the API wants alternation
/// starting with the user.
pub fn body(req: &ModelRequest, max_tokens: Option<u32>) -> Value {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, String)> = Vec::new();
    for (role, text) in transcript(req) {
        let role = match role {
            Role::System => {
                system.push(text);
                continue;
            }
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match turns.last_mut() {
            Some((r, t)) if *r == role => {
                t.push_str("\n\n");
                t.push_str(&text);
            }
            None if role == "assistant" => {}
            _ => turns.push((role, text)),
        }
    }
    let budget = thinking_budget(&req.thinking);
    let mut max = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(b) = budget {
        // max_tokens must exceed the thinking budget and leave room for the answer.
        max = max.max(b + DEFAULT_MAX_TOKENS);
    }
    let mut body = json!({
        "model": model_id(&req.model),
        "max_tokens": max,
        "messages": turns
            .into_iter()
            .map(|(role, text)| json!({"role": role, "content": text}))
            .collect::<Vec<_>>(),
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(b) = budget {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": b});
    }
    body
}

pub async fn generate(
    p: &Provider,
    req: ModelRequest,
    deltas: mpsc::UnboundedSender<String>,
) -> Result<ModelReply, ModelError> {
    let url = anthropic_url(&p.base_url, "messages");
    let body = body(&req, p.max_tokens(model_id(&req.model)));
    let mut resp = p.post(&url, &body).await?;
    let mut parser = SseParser::new();
    let mut text = String::new();
    let (mut input, mut output) = (0u64, 0u64);
    let mut stopped = false;
    'read: while let Some(chunk) = next_chunk(&mut resp, p.timeout).await? {
        for ev in parser.push(&chunk).map_err(err)? {
            if ev.data.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&ev.data)
                .map_err(|e| err(format!("a stream event is not JSON: {e}")))?;
            let kind = if ev.event.is_empty() {
                v["type"].as_str().unwrap_or("").to_string()
            } else {
                ev.event.clone()
            };
            match kind.as_str() {
                "message_start" => {
                    let u = &v["message"]["usage"];
                    input = u["input_tokens"].as_u64().unwrap_or(0)
                        + u["cache_creation_input_tokens"].as_u64().unwrap_or(0)
                        + u["cache_read_input_tokens"].as_u64().unwrap_or(0);
                    output = u["output_tokens"].as_u64().unwrap_or(0);
                }
                "content_block_delta" => {
                    // thinking_delta / signature_delta are not part of the reply.
                    if v["delta"]["type"] == "text_delta"
                        && let Some(t) = v["delta"]["text"].as_str()
                        && !t.is_empty()
                    {
                        text.push_str(t);
                        let _ = deltas.send(t.to_string());
                    }
                }
                "message_delta" => {
                    // Cumulative output count.
                    if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                        output = o;
                    }
                    if let Some(i) = v["usage"]["input_tokens"].as_u64()
                        && i > 0
                    {
                        input = i;
                    }
                }
                "message_stop" => {
                    stopped = true;
                    break 'read;
                }
                "error" => {
                    return Err(err(
                        stream_error(&v).unwrap_or_else(|| "stream error".into())
                    ));
                }
                _ => {} // ping, content_block_start/stop
            }
        }
    }
    // A server that closed without the final blank line.
    if !stopped && parser.finish().is_some_and(|e| e.event == "message_stop") {
        stopped = true;
    }
    if !stopped {
        return Err(err("the stream ended before message_stop"));
    }
    Ok(ModelReply {
        text,
        usage: Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
        },
        model: req.model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawplane_proto::v1::MessageRole;

    #[test]
    fn body_moves_system_and_merges_roles() {
        let req = ModelRequest {
            model: "anthropic/claude-x".into(),
            message: "q".into(),
            turn: 1,
            heartbeat: false,
            system_events: vec![],
            history: vec![
                (MessageRole::Assistant as i32, "orphan".into()),
                (MessageRole::System as i32, "ev".into()),
                (MessageRole::User as i32, "a".into()),
                (MessageRole::User as i32, "q".into()),
            ],
            thinking: "high".into(),
        };
        let b = body(&req, None);
        assert_eq!(b["model"], "claude-x");
        assert_eq!(b["system"], "ev");
        assert_eq!(
            b["messages"],
            json!([{"role": "user", "content": "a\n\nq"}])
        );
        assert_eq!(b["thinking"]["budget_tokens"], 16_384);
        assert!(b["max_tokens"].as_u64().unwrap() > 16_384);
    }
}
