//! What the HTTP providers share: the resolved provider settings, sending with retries on
//! 429/5xx (honouring `Retry-After`), provider error bodies, streamed chunks with an idle
//! timeout, and the reachability probe.

use super::{Model, ModelError, ModelReply, ModelRequest};
use clawplane_config::models::{Api, ModelEntry, ProviderConfig, Secret};
use futures::future::BoxFuture;
use std::{sync::Arc, time::Duration};
use tokio::sync::mpsc;

/// Default per-request limit (to the response headers, and between streamed chunks).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default retries on 429/5xx.
const DEFAULT_RETRIES: u32 = 2;
/// Upper bound on configured retries, so one provider cannot stall a failover chain.
const MAX_RETRIES: u32 = 10;
/// Longest wait between retries, whatever `Retry-After` asks for.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);
/// Longest error body kept in a message.
const MAX_ERROR_CHARS: usize = 300;

/// A configured HTTP provider, resolved (defaults applied, key found).
pub struct Provider {
    pub id: String,
    pub api: Api,
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Where the key came from: `config`, `env:OPENAI_API_KEY`, or empty.
    pub key_source: String,
    pub headers: Vec<(String, Secret)>,
    pub timeout: Duration,
    pub max_retries: u32,
    pub models: Vec<ModelEntry>,
    pub client: Option<reqwest::Client>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("api", &self.api)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

/// The env variable a well-known provider id falls back to for its key.
pub fn env_key_var(id: &str) -> Option<&'static str> {
    match id {
        "openai" => Some("OPENAI_API_KEY"),
        "anthropic" => Some("ANTHROPIC_API_KEY"),
        _ => None,
    }
}

impl Provider {
    /// Resolves `cfg` for provider `id`; `Err` says what is wrong with it.
    pub fn resolve(
        id: &str,
        cfg: &ProviderConfig,
        env: &dyn Fn(&str) -> Option<String>,
        client: Option<reqwest::Client>,
    ) -> Result<Provider, String> {
        let api = match cfg.api.as_deref() {
            Some("openai-completions") | Some("openai") => Api::OpenAiCompletions,
            Some("anthropic-messages") | Some("anthropic") => Api::AnthropicMessages,
            None if id == "anthropic" => Api::AnthropicMessages,
            None => Api::OpenAiCompletions,
            Some(other) => {
                return Err(format!(
                    "models.providers.{id}.api: {other:?} is not openai-completions or anthropic-messages"
                ));
            }
        };
        let base_url = match (cfg.base_url.as_deref().map(str::trim), id) {
            (Some(u), _) if !u.is_empty() => u.trim_end_matches('/').to_string(),
            (_, "openai") => "https://api.openai.com/v1".to_string(),
            (_, "anthropic") => "https://api.anthropic.com".to_string(),
            _ => return Err(format!("models.providers.{id}.baseUrl is required")),
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "models.providers.{id}.baseUrl: {base_url:?} is not an http(s) URL"
            ));
        }
        let (api_key, key_source) = match cfg.api_key.as_ref().filter(|k| !k.is_empty()) {
            Some(k) => (Some(k.clone()), "config".to_string()),
            None => match env_key_var(id).and_then(|v| env(v).map(|k| (v, k))) {
                Some((var, k)) if !k.trim().is_empty() => {
                    (Some(Secret::new(k.trim())), format!("env:{var}"))
                }
                _ => (None, String::new()),
            },
        };
        Ok(Provider {
            id: id.to_string(),
            api,
            base_url,
            api_key,
            key_source,
            headers: cfg
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: cfg
                .timeout_seconds
                .filter(|s| *s > 0)
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            max_retries: cfg.max_retries.unwrap_or(DEFAULT_RETRIES).min(MAX_RETRIES),
            models: cfg.models.clone(),
            client,
        })
    }

    /// Checks the model id against the configured list (when there is one).
    pub fn check_model(&self, id: &str) -> Result<(), String> {
        if id.is_empty() {
            return Err(format!("names no model; use \"{}/<model-id>\"", self.id));
        }
        if self.models.is_empty() || self.models.iter().any(|m| m.id() == id) {
            return Ok(());
        }
        Err(format!(
            "provider {:?} has no model {id:?}; it offers {}",
            self.id,
            self.models
                .iter()
                .map(|m| format!("{}/{}", self.id, m.id()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    pub fn max_tokens(&self, id: &str) -> Option<u32> {
        self.models
            .iter()
            .find(|m| m.id() == id)
            .and_then(ModelEntry::max_tokens)
    }

    fn client(&self) -> Result<&reqwest::Client, ModelError> {
        self.client.as_ref().ok_or_else(|| ModelError {
            message: "the HTTP client could not be initialised".into(),
        })
    }

    /// A request with this provider's auth and extra headers.
    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, ModelError> {
        let mut b = self.client()?.request(method, url);
        if let Some(key) = &self.api_key {
            b = match self.api {
                Api::OpenAiCompletions => b.bearer_auth(key.expose()),
                Api::AnthropicMessages => b.header("x-api-key", key.expose()),
            };
        }
        if self.api == Api::AnthropicMessages {
            b = b.header("anthropic-version", "2023-06-01");
        }
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.expose());
        }
        Ok(b)
    }

    /// POSTs `body`, retrying 429 and 5xx up to `max_retries` times; returns a successful
    /// response (its body not yet read).
    pub async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, ModelError> {
        let mut attempt = 0u32;
        loop {
            let send = self.request(reqwest::Method::POST, url)?.json(body).send();
            let resp = match tokio::time::timeout(self.timeout, send).await {
                Err(_) => {
                    return Err(ModelError {
                        message: format!(
                            "no response within {} s (timeoutSeconds)",
                            self.timeout.as_secs()
                        ),
                    });
                }
                Ok(Err(e)) => {
                    return Err(ModelError {
                        message: format!("request failed: {}", error_chain(&e)),
                    });
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let retryable = status.as_u16() == 429 || status.is_server_error();
            let wait = retry_after(resp.headers()).unwrap_or_else(|| backoff(attempt));
            let text = read_error_body(resp, self.timeout).await;
            let message = error_message(status.as_u16(), &text);
            if !retryable || attempt >= self.max_retries {
                let tries = if attempt > 0 {
                    format!(" (after {} retries)", attempt)
                } else {
                    String::new()
                };
                return Err(ModelError {
                    message: format!("{message}{tries}"),
                });
            }
            attempt += 1;
            tracing::info!(
                provider = %self.id,
                status = status.as_u16(),
                wait_ms = wait.as_millis() as u64,
                attempt,
                "model provider asked to retry"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The hosted APIs refuse keyless calls; saying so beats a round trip.
    pub fn missing_key(&self) -> Option<String> {
        let official =
            self.base_url.contains("api.openai.com") || self.base_url.contains("api.anthropic.com");
        if self.api_key.is_some() || !official {
            return None;
        }
        let var = env_key_var(&self.id)
            .map(|v| format!(" or set {v}"))
            .unwrap_or_default();
        Some(format!(
            "no API key: set models.providers.{}.apiKey{var}",
            self.id
        ))
    }

    /// Asks the provider for its model list: `Ok(ids)` when it answered.
    pub async fn probe(&self) -> Result<Vec<String>, String> {
        if let Some(e) = self.missing_key() {
            return Err(e);
        }
        let url = match self.api {
            Api::OpenAiCompletions => format!("{}/models", self.base_url),
            Api::AnthropicMessages => anthropic_url(&self.base_url, "models"),
        };
        let req = self
            .request(reqwest::Method::GET, &url)
            .map_err(|e| e.message)?;
        let limit = self.timeout.min(Duration::from_secs(10));
        let resp = match tokio::time::timeout(limit, req.send()).await {
            Err(_) => return Err(format!("no response within {} s", limit.as_secs())),
            Ok(Err(e)) => return Err(format!("request failed: {}", error_chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            let text = read_error_body(resp, limit).await;
            return Err(error_message(status.as_u16(), &text));
        }
        let v: serde_json::Value = match tokio::time::timeout(limit, resp.json()).await {
            Ok(Ok(v)) => v,
            _ => return Ok(Vec::new()), // reachable; the list is a bonus
        };
        Ok(v["data"]
            .as_array()
            .or_else(|| v["models"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().or_else(|| m["name"].as_str()))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// `{base}/v1/<path>`, accepting a base URL with or without the `/v1`.
pub fn anthropic_url(base: &str, path: &str) -> String {
    if base.ends_with("/v1") {
        format!("{base}/{path}")
    } else {
        format!("{base}/v1/{path}")
    }
}

/// Reads the next body chunk, failing when the provider goes quiet for `idle`.
pub async fn next_chunk(
    resp: &mut reqwest::Response,
    idle: Duration,
) -> Result<Option<bytes::Bytes>, ModelError> {
    match tokio::time::timeout(idle, resp.chunk()).await {
        Err(_) => Err(ModelError {
            message: format!(
                "the stream stalled for {} s (timeoutSeconds)",
                idle.as_secs()
            ),
        }),
        Ok(Err(e)) => Err(ModelError {
            message: format!("the stream broke: {}", error_chain(&e)),
        }),
        Ok(Ok(c)) => Ok(c),
    }
}

/// `Retry-After-Ms` (OpenAI) or `Retry-After` in seconds, capped.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    use clawplane_util::time::saturating_secs;
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let d = if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        saturating_secs(ms / 1000.0)
    } else {
        // An HTTP-date is rare from model APIs; it falls back to the backoff.
        saturating_secs(get("retry-after")?.parse::<f64>().ok()?)
    };
    Some(d.min(MAX_RETRY_WAIT))
}

fn backoff(attempt: u32) -> Duration {
    (Duration::from_millis(500) * 2u32.saturating_pow(attempt.min(5))).min(Duration::from_secs(8))
}

async fn read_error_body(resp: reqwest::Response, limit: Duration) -> String {
    match tokio::time::timeout(limit, resp.text()).await {
        Ok(Ok(t)) => t,
        _ => String::new(),
    }
}

/// `HTTP 429 rate_limit_error: <message>` from either provider's error shape
/// (`{"error":{"message","type","code"}}` / `{"type":"error","error":{"type","message"}}`).
pub fn error_message(status: u16, body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let err = parsed.as_ref().map(|v| &v["error"]);
    let message = err
        .and_then(|e| e["message"].as_str().or_else(|| e.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| truncate(body.trim()));
    let kind = err
        .and_then(|e| e["type"].as_str().or_else(|| e["code"].as_str()))
        .unwrap_or("");
    let mut out = format!("HTTP {status}");
    if !kind.is_empty() {
        out.push(' ');
        out.push_str(kind);
    }
    if !message.is_empty() {
        out.push_str(": ");
        out.push_str(&truncate(&message));
    }
    out
}

/// An error event inside a stream (`{"error":{...}}` or Anthropic's `event: error`).
pub fn stream_error(v: &serde_json::Value) -> Option<String> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    let message = e["message"].as_str().or_else(|| e.as_str()).unwrap_or("");
    let kind = e["type"]
        .as_str()
        .or_else(|| e["code"].as_str())
        .unwrap_or("error");
    Some(format!("stream error {kind}: {}", truncate(message)))
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_ERROR_CHARS {
        s.to_string()
    } else {
        s.chars().take(MAX_ERROR_CHARS).collect::<String>() + "…"
    }
}

/// The error and its sources, e.g. `error sending request: connection refused`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// A provider behind the [`Model`] trait.
pub struct Remote(pub Arc<Provider>);

impl Model for Remote {
    fn generate(
        &self,
        req: ModelRequest,
        deltas: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'static, Result<ModelReply, ModelError>> {
        let p = self.0.clone();
        Box::pin(async move {
            if let Some(message) = p.missing_key() {
                return Err(ModelError { message });
            }
            match p.api {
                Api::OpenAiCompletions => super::openai::generate(&p, req, deltas).await,
                Api::AnthropicMessages => super::anthropic::generate(&p, req, deltas).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shapes() {
        assert_eq!(
            error_message(
                429,
                r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#
            ),
            "HTTP 429 requests: slow down"
        );
        assert_eq!(
            error_message(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            "HTTP 529 overloaded_error: Overloaded"
        );
        assert_eq!(error_message(502, "bad gateway"), "HTTP 502: bad gateway");
    }

    #[test]
    fn retry_after_is_parsed_and_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert("retry-after", "3600".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_WAIT));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        for hostile in ["inf", "1e20", "NaN", "-5"] {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert("retry-after", hostile.parse().unwrap());
            let d = retry_after(&h).expect("a number");
            assert!(d <= MAX_RETRY_WAIT, "{hostile}: {d:?}");
        }
    }
}
