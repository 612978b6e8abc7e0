//! OpenAI-compatible chat completions (`POST {baseUrl}/chat/completions`, SSE streaming):
//! OpenAI, vLLM, llama.cpp server, Ollama, LM Studio.

use super::remote::{Provider, next_chunk, stream_error};
use super::sse::SseParser;
use super::{ModelError, ModelReply, ModelRequest, Role, err, model_id, transcript};
use clawplane_proto::v1::Usage;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// `reasoning_effort` for a run's `thinking` level; `None` leaves the model's default.
pub fn reasoning_effort(thinking: &str) -> Option<&'static str> {
    match thinking {
        "minimal" | "low" => Some("low"),
        "medium" => Some("medium"),
        "high" | "xhigh" => Some("high"),
        _ => None,
    }
}

/// The request body.
pub fn body(req: &ModelRequest) -> Value {
    let messages: Vec<Value> = transcript(req)
        .into_iter()
        .map(|(role, text)| {
            let role = match role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": text})
        })
        .collect();
    let mut body = json!({
        "model": model_id(&req.model),
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(effort) = reasoning_effort(&req.thinking) {
        body["reasoning_effort"] = json!(effort);
    }
    body
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    let input = u["prompt_tokens"].as_u64().unwrap_or(0);
    let output = u["completion_tokens"].as_u64().unwrap_or(0);
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: u["total_tokens"].as_u64().unwrap_or(input + output),
    })
}

pub async fn generate(
    p: &Provider,
    req: ModelRequest,
    deltas: mpsc::UnboundedSender<String>,
) -> Result<ModelReply, ModelError> {
    let url = format!("{}/chat/completions", p.base_url);
    let mut resp = p.post(&url, &body(&req)).await?;
    let is_sse = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if !is_sse {
        // Some servers answer a streaming request with one chat.completion object.
        let v: Value = tokio::time::timeout(p.timeout, resp.json())
            .await
            .map_err(|_| err("the response body timed out"))?
            .map_err(|e| err(format!("the response is not JSON: {e}")))?;
        if let Some(e) = stream_error(&v) {
            return Err(err(e));
        }
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| err("the response has no choices[0].message.content"))?
            .to_string();
        if !text.is_empty() {
            let _ = deltas.send(text.clone());
        }
        return Ok(ModelReply {
            text,
            usage: usage_of(&v).unwrap_or_default(),
            model: req.model,
        });
    }
    let mut parser = SseParser::new();
    let mut text = String::new();
    let mut usage = None;
    let mut finished = false;
    let mut done = false;
    'read: while let Some(chunk) = next_chunk(&mut resp, p.timeout).await? {
        for ev in parser.push(&chunk).map_err(err)? {
            let data = ev.data.trim();
            if data == "[DONE]" {
                done = true;
                break 'read;
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| err(format!("a stream chunk is not JSON: {e}")))?;
            if let Some(e) = stream_error(&v) {
                return Err(err(e));
            }
            if let Some(u) = usage_of(&v) {
                usage = Some(u);
            }
            let Some(choice) = v["choices"].get(0) else {
                continue; // the usage-only chunk has no choices
            };
            if let Some(t) = choice["delta"]["content"].as_str()
                && !t.is_empty()
            {
                text.push_str(t);
                let _ = deltas.send(t.to_string());
            }
            if choice["finish_reason"].is_string() {
                finished = true;
            }
        }
    }
    // A server that closed without the final blank line.
    if !done && parser.finish().is_some_and(|e| e.data.trim() == "[DONE]") {
        done = true;
    }
    if !done && !finished {
        return Err(err("the stream ended before the reply was finished"));
    }
    Ok(ModelReply {
        text,
        usage: usage.unwrap_or_default(),
        model: req.model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawplane_proto::v1::MessageRole;

    #[test]
    fn body_has_history_once_and_effort() {
        let req = ModelRequest {
            model: "local/llama3".into(),
            message: "again".into(),
            turn: 2,
            heartbeat: false,
            system_events: vec![],
            history: vec![
                (MessageRole::User as i32, "hi".into()),
                (MessageRole::Assistant as i32, "hello".into()),
                (MessageRole::System as i32, "deploy done".into()),
                (MessageRole::User as i32, "again".into()),
            ],
            thinking: "medium".into(),
        };
        let b = body(&req);
        assert_eq!(b["model"], "llama3");
        assert_eq!(b["reasoning_effort"], "medium");
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[2], json!({"role": "system", "content": "deploy done"}));
        assert_eq!(m[3], json!({"role": "user", "content": "again"}));
    }
}
