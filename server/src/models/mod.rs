//! Model providers. The built-in offline model is the default and the workhorse of the
//! tests; remote providers (OpenAI-compatible, Anthropic) plug in behind the same trait.

mod builtin;

use clawplane_proto::v1::Usage;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

pub use builtin::Builtin;

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
    /// Earlier transcript (role, text), oldest first.
    pub history: Vec<(i32, String)>,
}

/// A finished reply.
#[derive(Debug, Clone)]
pub struct ModelReply {
    pub text: String,
    pub usage: Usage,
}

/// A provider failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    pub message: String,
}

/// A model provider: streams text deltas into `deltas` and resolves to the whole reply.
pub trait Model: Send + Sync {
    fn generate(
        &self,
        req: ModelRequest,
        deltas: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'static, Result<ModelReply, ModelError>>;
}

/// The providers the gateway knows, by `provider/` prefix.
pub struct Models {
    builtin: Builtin,
}

impl Models {
    pub fn new() -> Self {
        Models { builtin: Builtin }
    }

    /// The provider for `model`, or a message saying what is available.
    pub fn get(&self, model: &str) -> Result<&dyn Model, String> {
        match model.split_once('/').map(|(p, _)| p).unwrap_or(model) {
            "builtin" => Ok(&self.builtin),
            other => Err(format!(
                "unknown model provider {other:?}; this gateway has only the built-in model \"builtin/echo\""
            )),
        }
    }
}

impl Default for Models {
    fn default() -> Self {
        Self::new()
    }
}
