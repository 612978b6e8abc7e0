//! Model providers. The built-in offline model is the default and the workhorse of the
//! tests; remote providers (OpenAI-compatible chat completions, Anthropic Messages) plug in
//! behind the same trait, configured under `models.providers`.

mod anthropic;
mod builtin;
mod openai;
mod remote;
mod sse;
pub mod transcription;

use crate::config::{AgentsConfig, Config};
use clawplane_proto::v1::{MessageRole, Usage};
use futures::future::BoxFuture;
use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::Duration,
};
use tokio::sync::mpsc;

pub use builtin::Builtin;
pub use clawplane_config::models::{
    Api, ModelChoice, ModelEntry, ModelsConfig, ProviderConfig, Secret, model_id, provider_of,
};

/// One turn for a model.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// `provider/model`.
    pub model: String,
    /// The user message (empty for a heartbeat turn).
    pub message: String,
    /// User turns of the session generation including this one.
    pub turn: u32,
    /// True for a heartbeat turn.
    pub heartbeat: bool,
    /// System events drained into this turn.
    pub system_events: Vec<String>,
    /// Transcript (role, text), oldest first; as the run executor builds it, it already
    /// ends with this turn's system events and user message.
    pub history: Vec<(i32, String)>,
    /// `off`, `minimal`, `low`, `medium`, `high`, `xhigh`, or empty (the model's default).
    pub thinking: String,
}

/// A finished reply.
#[derive(Debug, Clone)]
pub struct ModelReply {
    pub text: String,
    pub usage: Usage,
    /// The `provider/model` that produced it (after failover).
    pub model: String,
}

/// A provider failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    pub message: String,
}

/// A provider failure with this message.
pub(crate) fn err(message: impl Into<String>) -> ModelError {
    ModelError {
        message: message.into(),
    }
}

/// A model provider: streams text deltas into `deltas` and resolves to the whole reply.
pub trait Model: Send + Sync {
    fn generate(
        &self,
        req: ModelRequest,
        deltas: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'static, Result<ModelReply, ModelError>>;
}

/// A transcript role as the HTTP providers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    System,
    User,
    Assistant,
}

/// The prompt of a heartbeat turn (there is no user message).
const HEARTBEAT_PROMPT: &str = "Heartbeat: review the system events above, if any. If nothing needs attention, reply exactly HEARTBEAT_OK.";

/// The conversation for an HTTP provider: the transcript, with this turn's user message
/// (or the heartbeat prompt) last and never twice.
pub(crate) fn transcript(req: &ModelRequest) -> Vec<(Role, String)> {
    let mut out: Vec<(Role, String)> = req
        .history
        .iter()
        .filter_map(|(r, t)| {
            let role = match MessageRole::try_from(*r).ok()? {
                MessageRole::User => Role::User,
                MessageRole::Assistant => Role::Assistant,
                MessageRole::System => Role::System,
                MessageRole::Unspecified => return None,
            };
            Some((role, t.clone()))
        })
        .collect();
    if out.is_empty() {
        out.extend(req.system_events.iter().map(|e| (Role::System, e.clone())));
    }
    if req.heartbeat {
        out.push((Role::User, HEARTBEAT_PROMPT.to_string()));
    } else if !matches!(out.last(), Some((Role::User, t)) if *t == req.message) {
        out.push((Role::User, req.message.clone()));
    }
    out
}

/// What `models status` shows about one provider.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    pub id: String,
    /// `builtin`, `openai-completions` or `anthropic-messages`.
    pub api: String,
    pub base_url: String,
    pub api_key_set: bool,
    /// `config`, `env:OPENAI_API_KEY`, or empty.
    pub api_key_source: String,
    /// Configured model ids (full `provider/model` names).
    pub models: Vec<String>,
    pub timeout_seconds: u64,
    pub max_retries: u32,
    /// Why the provider's config is unusable, if it is.
    pub config_error: String,
}

/// Providers by id, resolved from config once.
struct Registry {
    providers: BTreeMap<String, Result<Arc<remote::Provider>, String>>,
}

/// The providers the gateway knows, by `provider/` prefix, and each agent's models. Owns
/// its config sections (`models`, and `agents` for the agents' model choices).
pub struct Models {
    builtin: Arc<Builtin>,
    registry: OnceLock<Registry>,
    models: ModelsConfig,
    agents: AgentsConfig,
}

impl Models {
    pub fn new(models: &ModelsConfig, agents: &AgentsConfig) -> Self {
        Models {
            builtin: Arc::new(Builtin),
            registry: OnceLock::new(),
            models: models.clone(),
            agents: agents.clone(),
        }
    }

    /// The registry, built from config on first use (the config never changes at runtime).
    fn registry(&self) -> &Registry {
        let cfg = &self.models;
        self.registry.get_or_init(|| {
            // Proxy variables are ignored (as for channels and egress): a provider is
            // reached at its configured base URL and nowhere else.
            let client = reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| tracing::error!(error = %e, "cannot build the HTTP client for models"))
                .ok();
            let env = |k: &str| std::env::var(k).ok();
            let mut providers = BTreeMap::new();
            // `openai` and `anthropic` exist without config (keys from the environment).
            let implicit = ProviderConfig::default();
            for id in ["openai", "anthropic"] {
                if !cfg.providers.contains_key(id) {
                    providers.insert(
                        id.to_string(),
                        remote::Provider::resolve(id, &implicit, &env, client.clone())
                            .map(Arc::new),
                    );
                }
            }
            for (id, p) in &cfg.providers {
                let resolved = if id == "builtin" {
                    Err("the id \"builtin\" is reserved for the built-in model".to_string())
                } else {
                    remote::Provider::resolve(id, p, &env, client.clone()).map(Arc::new)
                };
                providers.insert(id.clone(), resolved);
            }
            Registry { providers }
        })
    }

    /// The provider for `model` (`provider/model`), or a message saying what is wrong.
    pub fn get(&self, model: &str) -> Result<Arc<dyn Model>, String> {
        let provider = provider_of(model);
        if provider == "builtin" {
            return Ok(self.builtin.clone());
        }
        match self.registry().providers.get(provider) {
            Some(Ok(p)) => {
                p.check_model(model_id(model))?;
                Ok(Arc::new(remote::Remote(p.clone())))
            }
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!(
                "unknown model provider {provider:?}; known providers: {} (add it under models.providers)",
                self.provider_ids().join(", ")
            )),
        }
    }

    fn provider_ids(&self) -> Vec<String> {
        std::iter::once("builtin".to_string())
            .chain(self.registry().providers.keys().cloned())
            .collect()
    }

    /// `(primary, fallbacks)` of an agent: `agents.list[id].model` over
    /// `agents.defaults.model` (a per-agent string keeps the defaults' fallbacks).
    pub fn agent_models(&self, agent: &str) -> (String, Vec<String>) {
        let d = &self.agents.defaults;
        let mut primary = d.model_name().to_string();
        let mut fallbacks = d.fallbacks().to_vec();
        let entry = self
            .agents
            .list
            .iter()
            .find(|a| clawplane_proto::keys::normalize_agent_id(&a.id) == agent);
        if let Some(m) = entry.and_then(|a| a.model.as_ref()) {
            if let Some(p) = m.primary.as_ref().filter(|p| !p.trim().is_empty()) {
                primary = p.clone();
            }
            if let Some(f) = &m.fallbacks {
                fallbacks = f.clone();
            }
        }
        (primary, fallbacks)
    }

    /// The models a run tries, in order: its own model, then its agent's fallbacks.
    pub fn chain(&self, agent: &str, model: &str) -> Vec<String> {
        let (_, fallbacks) = self.agent_models(agent);
        let mut out = vec![model.to_string()];
        for f in fallbacks {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// Every provider, for `models status` (never the keys).
    pub fn status(&self) -> Vec<ProviderStatus> {
        let mut out = vec![ProviderStatus {
            id: "builtin".into(),
            api: "builtin".into(),
            base_url: String::new(),
            api_key_set: false,
            api_key_source: String::new(),
            models: vec!["builtin/echo".into()],
            timeout_seconds: 0,
            max_retries: 0,
            config_error: String::new(),
        }];
        for (id, p) in &self.registry().providers {
            out.push(match p {
                Ok(p) => ProviderStatus {
                    id: id.clone(),
                    api: p.api.as_str().into(),
                    base_url: p.base_url.clone(),
                    api_key_set: p.api_key.is_some(),
                    api_key_source: p.key_source.clone(),
                    models: p
                        .models
                        .iter()
                        .map(|m| format!("{id}/{}", m.id()))
                        .collect(),
                    timeout_seconds: p.timeout.as_secs(),
                    max_retries: p.max_retries,
                    config_error: String::new(),
                },
                Err(e) => ProviderStatus {
                    id: id.clone(),
                    api: String::new(),
                    base_url: String::new(),
                    api_key_set: false,
                    api_key_source: String::new(),
                    models: Vec::new(),
                    timeout_seconds: 0,
                    max_retries: 0,
                    config_error: e.clone(),
                },
            });
        }
        out
    }

    /// Asks provider `id` for its model list: `Ok(remote ids)` when reachable.
    pub async fn probe(&self, id: &str) -> Result<Vec<String>, String> {
        if id == "builtin" {
            return Ok(vec!["echo".into()]);
        }
        match self.registry().providers.get(id) {
            Some(Ok(p)) => p.clone().probe().await,
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("unknown provider {id:?}")),
        }
    }
}

/// Checks `models.providers` and every configured model name at load time, so a typo stops
/// the gateway from starting instead of failing runs later.
pub fn validate_config(cfg: &Config) -> Result<(), String> {
    let no_env = |_: &str| None;
    for (id, p) in &cfg.models.providers {
        if id == "builtin" {
            return Err("models.providers.builtin: the id \"builtin\" is reserved".into());
        }
        remote::Provider::resolve(id, p, &no_env, None)?;
    }
    let known = |m: &str| {
        let p = provider_of(m);
        m.contains('/')
            && (matches!(p, "builtin" | "openai" | "anthropic")
                || cfg.models.providers.contains_key(p))
    };
    let check = |path: String, m: &str| {
        if known(m) {
            Ok(())
        } else {
            Err(format!(
                "{path}: {m:?} is not \"provider/model\" with a known provider (builtin, openai, anthropic or one under models.providers)"
            ))
        }
    };
    let d = &cfg.agents.defaults;
    check("agents.defaults.model".into(), d.model_name())?;
    for (i, f) in d.fallbacks().iter().enumerate() {
        check(format!("agents.defaults.model.fallbacks[{i}]"), f)?;
    }
    for (i, a) in cfg.agents.list.iter().enumerate() {
        if a.id.trim().is_empty() {
            return Err(format!("agents.list[{i}].id is required"));
        }
        if let Some(m) = &a.model {
            if let Some(p) = &m.primary {
                check(format!("agents.list[{i}].model.primary"), p)?;
            }
            for (j, f) in m.fallbacks.iter().flatten().enumerate() {
                check(format!("agents.list[{i}].model.fallbacks[{j}]"), f)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_ends_with_the_message_once() {
        let mut req = ModelRequest {
            model: "x/y".into(),
            message: "hi".into(),
            turn: 1,
            heartbeat: false,
            system_events: vec!["ev".into()],
            history: vec![],
            thinking: String::new(),
        };
        assert_eq!(
            transcript(&req),
            vec![(Role::System, "ev".into()), (Role::User, "hi".into())]
        );
        req.history = vec![
            (MessageRole::System as i32, "ev".into()),
            (MessageRole::User as i32, "hi".into()),
        ];
        assert_eq!(transcript(&req).len(), 2);
        req.heartbeat = true;
        assert_eq!(transcript(&req).last().map(|m| m.0), Some(Role::User));
    }
}
