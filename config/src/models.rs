//! `models.*` configuration (OpenClaw's shape): `models.providers.<id> = { api, baseUrl,
//! apiKey, headers, timeoutSeconds, maxRetries, models }`, plus the string-or-object model
//! choice of `agents.defaults.model` / `agents.list[].model`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// A credential: deserialized from config like a string, never printed by `Debug` nor
/// serialized (it serializes as `"***"`).
#[derive(Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// `models`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ModelsConfig {
    /// Accepted for openclaw.json compatibility (`merge` | `replace`); providers here are
    /// always added to the built-in one.
    pub mode: Option<String>,
    /// Providers by id; the id is the `provider/` prefix of model names.
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// The wire protocol of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI chat completions (`POST {baseUrl}/chat/completions`): OpenAI, vLLM,
    /// llama.cpp server, Ollama, LM Studio, ...
    OpenAiCompletions,
    /// Anthropic Messages (`POST {baseUrl}/v1/messages`).
    AnthropicMessages,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAiCompletions => "openai-completions",
            Api::AnthropicMessages => "anthropic-messages",
        }
    }
}

/// `models.providers.<id>`.
#[derive(Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ProviderConfig {
    /// `openai-completions` or `anthropic-messages`; default by id (`anthropic` ->
    /// anthropic-messages, anything else -> openai-completions).
    pub api: Option<String>,
    /// E.g. `http://127.0.0.1:11434/v1`; default for the ids `openai` and `anthropic`.
    pub base_url: Option<String>,
    /// Falls back to `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` for those two ids.
    pub api_key: Option<Secret>,
    /// Extra request headers (values are treated as secrets too).
    pub headers: BTreeMap<String, Secret>,
    /// Per-request limit: time to the response headers and between streamed chunks.
    pub timeout_seconds: Option<u64>,
    /// Retries on 429 and 5xx (default 2, at most 10).
    pub max_retries: Option<u32>,
    /// The models offered; when non-empty, other model ids of this provider are refused.
    pub models: Vec<ModelEntry>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("api", &self.api)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_seconds", &self.timeout_seconds)
            .field("max_retries", &self.max_retries)
            .field("models", &self.models)
            .finish()
    }
}

/// One entry of `models.providers.<id>.models`: an id or OpenClaw's `{ id, maxTokens, ... }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelEntry {
    /// The model id.
    Id(String),
    Full {
        /// The model id.
        id: String,
        /// Largest completion the model is asked for.
        #[serde(default, rename = "maxTokens")]
        max_tokens: Option<u32>,
        /// A display name (accepted for openclaw.json compatibility).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl ModelEntry {
    pub fn id(&self) -> &str {
        match self {
            ModelEntry::Id(id) | ModelEntry::Full { id, .. } => id,
        }
    }
    pub fn max_tokens(&self) -> Option<u32> {
        match self {
            ModelEntry::Id(_) => None,
            ModelEntry::Full { max_tokens, .. } => *max_tokens,
        }
    }
}

/// A model choice: `"provider/model"` or `{ primary, fallbacks }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelChoice {
    pub primary: Option<String>,
    /// `None` when not given (inherit the defaults' fallbacks).
    pub fallbacks: Option<Vec<String>>,
}

impl Serialize for ModelChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (&self.primary, &self.fallbacks) {
            (Some(p), None) => s.serialize_str(p),
            _ => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(None)?;
                if let Some(p) = &self.primary {
                    m.serialize_entry("primary", p)?;
                }
                if let Some(f) = &self.fallbacks {
                    m.serialize_entry("fallbacks", f)?;
                }
                m.end()
            }
        }
    }
}

impl JsonSchema for ModelChoice {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ModelChoice".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"provider/model\", or { primary, fallbacks } with fallbacks tried in order",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "primary": { "type": "string" },
                        "fallbacks": { "type": "array", "items": { "type": "string" } }
                    },
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for ModelChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            #[serde(default)]
            primary: Option<String>,
            #[serde(default)]
            fallbacks: Option<Vec<String>>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Full(Full),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a model must be \"provider/model\" or { primary: \"provider/model\", fallbacks: [...] }",
            )
        })? {
            Raw::Name(s) => Ok(ModelChoice {
                primary: Some(s),
                fallbacks: None,
            }),
            Raw::Full(f) => Ok(ModelChoice {
                primary: f.primary,
                fallbacks: f.fallbacks,
            }),
        }
    }
}

/// The provider prefix of `provider/model`.
pub fn provider_of(model: &str) -> &str {
    model.split_once('/').map(|(p, _)| p).unwrap_or(model)
}

/// The model id without its provider prefix.
pub fn model_id(model: &str) -> &str {
    model.split_once('/').map(|(_, m)| m).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let p: ProviderConfig = serde_json::from_value(serde_json::json!({
            "apiKey": "sk-very-secret",
            "headers": {"x-extra": "also-secret"},
            "models": ["a", {"id": "b", "maxTokens": 10, "name": "B"}]
        }))
        .unwrap();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("very-secret") && !dbg.contains("also-secret"),
            "{dbg}"
        );
        assert_eq!(p.models[1].max_tokens(), Some(10));
        assert_eq!(p.models[0].id(), "a");
    }

    #[test]
    fn model_choice_forms() {
        let c: ModelChoice = serde_json::from_value(serde_json::json!("a/b")).unwrap();
        assert_eq!(c.primary.as_deref(), Some("a/b"));
        let c: ModelChoice =
            serde_json::from_value(serde_json::json!({"primary": "a/b", "fallbacks": ["c/d"]}))
                .unwrap();
        assert_eq!(c.fallbacks, Some(vec!["c/d".to_string()]));
        assert!(serde_json::from_value::<ModelChoice>(serde_json::json!(3)).is_err());
    }
}
