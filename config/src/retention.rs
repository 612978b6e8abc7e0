//! `retention.*`: how long finished work is kept.

use crate::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RetentionConfig {
    /// Finished runs (succeeded, failed, cancelled, timed out) are deleted this long after
    /// they ended, with their idempotency key (a key is reserved, for the caller that chose
    /// it, exactly as long as its run and can be used again afterwards; replay dedupe of
    /// ingress and inbound channel messages uses the same keys). Queued and
    /// running runs are never deleted. A duration such as `30d`, `12h`, `90s`; `0s` keeps
    /// runs forever.
    pub runs: String,
    /// SendMessage answers kept under their idempotency key: a retry within this window
    /// gets the original answer, a later one sends again (24 h, as OpenClaw and Stripe keep
    /// keys). `0s` keeps them forever.
    pub idempotency: String,
    /// Sent-message records, which let delivery receipts (WhatsApp `statuses`) find their
    /// run; a receipt arriving later is ignored. `0s` keeps them forever.
    pub sent_messages: String,
    /// Time between pruning passes (the first runs at start).
    pub prune_every: String,
    /// Most deletions per write transaction, so pruning never holds the store writer for
    /// long.
    pub prune_batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            runs: "30d".into(),
            idempotency: "24h".into(),
            sent_messages: "7d".into(),
            prune_every: "10m".into(),
            prune_batch: 500,
        }
    }
}

/// A duration key: `None` when it is zero (keep forever).
fn age(value: &str) -> Option<Duration> {
    clawplane_util::time::parse_interval(value).filter(|d| !d.is_zero())
}

impl RetentionConfig {
    /// `retention.runs`; `None` keeps runs forever.
    pub fn runs_age(&self) -> Option<Duration> {
        age(&self.runs)
    }

    /// `retention.idempotency`; `None` keeps SendMessage answers forever.
    pub fn idempotency_age(&self) -> Option<Duration> {
        age(&self.idempotency)
    }

    /// `retention.sentMessages`; `None` keeps them forever.
    pub fn sent_messages_age(&self) -> Option<Duration> {
        age(&self.sent_messages)
    }

    /// `retention.pruneEvery` (at least 100 ms).
    pub fn prune_every(&self) -> Duration {
        age(&self.prune_every)
            .unwrap_or(Duration::from_secs(600))
            .max(Duration::from_millis(100))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("retention.runs", &self.runs),
            ("retention.idempotency", &self.idempotency),
            ("retention.sentMessages", &self.sent_messages),
        ] {
            if clawplane_util::time::parse_interval(value).is_none() {
                return Err(ConfigError::at(
                    key,
                    format!(
                        "{value:?} is not a duration such as 30d, 24h or 90s (0s keeps forever)"
                    ),
                ));
            }
        }
        if age(&self.prune_every).is_none() {
            return Err(ConfigError::at(
                "retention.pruneEvery",
                format!(
                    "{:?} is not a positive duration such as 10m",
                    self.prune_every
                ),
            ));
        }
        if self.prune_batch == 0 {
            return Err(ConfigError::at(
                "retention.pruneBatch",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
