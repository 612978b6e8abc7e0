//! Synchronous webhooks (`/webhooks/<instance id>`): API keys (only their digests are
//! stored), one turn per call answered in the response, and the calls log that records
//! every call this gateway answers — refused ones included — with its HTTP outcome.

use crate::{
    auth::Auth,
    core::runs::{NewRun, Runs},
    error::{Error, FieldViolation, Result},
    store::{Store, StoredWebhookKey},
};
use base64::Engine as _;
use clawplane_proto::now_ts;
use clawplane_proto::v1::{RunOrigin, RunState, WebhookCall, WebhookKey};
use clawplane_util::crypto::{ct_eq, sha256};
use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

/// Entries kept in the calls log.
pub const CALLS_KEPT: usize = 100;
/// Longest `session_name`.
pub const MAX_SESSION_NAME: usize = 128;

/// SHA-256 of a secret: what is stored and compared.
fn digest(secret: &str) -> [u8; 32] {
    sha256(secret)
}

/// A fresh key secret: `cpwh_` and 32 random bytes.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "cpwh_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The last four characters of a secret long enough to keep them hidden, else nothing.
fn last_four(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 8 {
        return String::new();
    }
    chars[chars.len() - 4..].iter().collect()
}

/// `session_name` grammar: `^[A-Za-z0-9._-]+$`, at most [`MAX_SESSION_NAME`].
pub fn check_session_name(name: &str) -> Option<FieldViolation> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SESSION_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (!ok).then(|| FieldViolation {
        field: "sessionName",
        description: format!(
            "is required and must match ^[A-Za-z0-9._-]+$ (at most {MAX_SESSION_NAME} characters)"
        ),
    })
}

/// The HTTP status a webhook caller sees for an outcome (logged in the calls log).
fn http_status(e: Option<&Error>) -> u32 {
    let Some(e) = e else { return 200 };
    match e.code() {
        tonic::Code::InvalidArgument => 400,
        tonic::Code::Unauthenticated => 401,
        tonic::Code::PermissionDenied => 403,
        tonic::Code::NotFound => 404,
        tonic::Code::ResourceExhausted => 429,
        tonic::Code::Unknown => 502,
        tonic::Code::Unavailable => 503,
        _ => 500,
    }
}

/// A synchronous call's answer.
pub struct CallReply {
    pub reply: String,
    pub run_id: String,
    pub session_key: String,
}

/// A synchronous call as it arrived.
pub struct SyncCall {
    /// The instance id of the URL; another gateway's id is answered NOT_FOUND, unlogged.
    pub instance_id: String,
    pub session_name: String,
    pub message: String,
    /// The caller's address (after trusted proxies; `clawplane_util::net::client`):
    /// failures count against it and the calls log shows it.
    pub client: Option<IpAddr>,
    /// A local caller (loopback peer, no proxy headers) may use private keys.
    pub local: bool,
    /// The webhook key the caller presented.
    pub presented: Option<String>,
}

/// The sync webhooks service: keys and the calls log in the store, turns through runs.
pub struct SyncWebhooks {
    store: Store,
    runs: Arc<Runs>,
    /// The id in `/webhooks/<instance id>`.
    instance_id: String,
}

impl SyncWebhooks {
    pub fn new(store: Store, runs: Arc<Runs>, instance_id: &str) -> SyncWebhooks {
        SyncWebhooks {
            store,
            runs,
            instance_id: instance_id.to_string(),
        }
    }

    /// Creates a key; returns it with its secret (shown once; only the digest is stored).
    pub async fn create_key(&self, label: &str, private: bool) -> Result<(WebhookKey, String)> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 200 {
            return Err(Error::field(
                "label",
                "is required (at most 200 characters), e.g. --label ci",
            ));
        }
        let secret = new_secret();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let key = WebhookKey {
            name: format!("webhookKeys/{id}"),
            key_id: id,
            label: label.to_string(),
            private,
            create_time: Some(now_ts()),
            last_four: last_four(&secret),
            rotate_time: None,
        };
        let stored = StoredWebhookKey {
            digest: digest(&secret),
            key: key.clone(),
        };
        self.store
            .write(move |t| t.put_webhook_key(&stored))
            .await?;
        Ok((key, secret))
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Result<Vec<WebhookKey>> {
        let mut keys: Vec<WebhookKey> = self
            .store
            .read(|r| r.webhook_keys())?
            .into_iter()
            .map(|k| k.key)
            .collect();
        keys.sort_by_key(|k| {
            k.create_time
                .as_ref()
                .map(|t| (t.seconds, t.nanos))
                .unwrap_or_default()
        });
        Ok(keys)
    }

    fn key_id(id: &str) -> Result<String> {
        let id = id.trim();
        let id = id.strip_prefix("webhookKeys/").unwrap_or(id);
        if id.is_empty() {
            return Err(Error::field("keyId", "is required"));
        }
        Ok(id.to_string())
    }

    /// Revokes a key.
    pub async fn revoke_key(&self, id: &str) -> Result<WebhookKey> {
        let id = Self::key_id(id)?;
        self.store
            .write(move |t| {
                let found = t
                    .webhook_keys()?
                    .into_iter()
                    .find(|k| k.key.key_id == id)
                    .ok_or_else(|| Error::WebhookKeyNotFound(id.clone()))?;
                t.delete_webhook_key(&id)?;
                Ok(found.key)
            })
            .await
    }

    /// Gives a key a new secret.
    pub async fn rotate_key(&self, id: &str) -> Result<(WebhookKey, String)> {
        let id = Self::key_id(id)?;
        let secret = new_secret();
        let s = secret.clone();
        let key = self
            .store
            .write(move |t| {
                let mut found = t
                    .webhook_keys()?
                    .into_iter()
                    .find(|k| k.key.key_id == id)
                    .ok_or_else(|| Error::WebhookKeyNotFound(id.clone()))?;
                found.digest = digest(&s);
                found.key.last_four = last_four(&s);
                found.key.rotate_time = Some(now_ts());
                t.put_webhook_key(&found)?;
                Ok(found.key)
            })
            .await?;
        Ok((key, secret))
    }

    /// The calls log, newest first.
    pub fn calls(&self) -> Result<Vec<WebhookCall>> {
        self.store.read(|r| r.webhook_calls(CALLS_KEPT))
    }

    /// Appends to the calls log (durably), keeping the last [`CALLS_KEPT`].
    async fn record_webhook_call(&self, call: WebhookCall) -> Result<()> {
        self.store
            .write(move |t| t.append_webhook_call(&call, CALLS_KEPT))
            .await
    }

    /// Finds the key of the caller's visibility that matches `presented`. No key of that
    /// visibility: NOT_FOUND (like an unknown instance); no match: UNAUTHENTICATED.
    fn match_webhook_key(&self, presented: Option<&str>, private: bool) -> Result<WebhookKey> {
        let keys = self.store.read(|r| r.webhook_keys())?;
        let visible: Vec<_> = keys
            .into_iter()
            .filter(|k| private || !k.key.private)
            .collect();
        if visible.is_empty() {
            return Err(Error::WebhookNotFound);
        }
        let Some(p) = presented else {
            return Err(Error::WebhookKeyInvalid);
        };
        let d = digest(p);
        let mut found = None;
        for k in visible {
            if ct_eq(&k.digest, &d) {
                found = Some(k.key);
            }
        }
        found.ok_or(Error::WebhookKeyInvalid)
    }

    /// `/webhooks/<id>`: checks the presented key (failures count against the caller's
    /// address in `auth`), runs one turn and waits for its reply, and logs the call with its
    /// HTTP outcome — refused calls too, so an operator sees who knocked.
    pub async fn call(&self, c: SyncCall, auth: &Auth) -> Result<CallReply> {
        let started = Instant::now();
        // An unknown instance is not this gateway's call: answered, not logged.
        if c.instance_id.trim() != self.instance_id {
            return Err(Error::WebhookNotFound);
        }
        let private = c.local;
        let mut call = WebhookCall {
            call_time: Some(now_ts()),
            visibility: if private { "private" } else { "public" }.into(),
            source_ip: c.client.map(|a| a.to_string()).unwrap_or_default(),
            session_name: c.session_name.chars().take(200).collect(),
            bytes_in: c.message.len() as u64,
            key_last_four: c.presented.as_deref().map(last_four).unwrap_or_default(),
            ..Default::default()
        };
        let result = async {
            auth.gate(c.client)?;
            match self.match_webhook_key(c.presented.as_deref(), private) {
                Err(e @ Error::WebhookKeyInvalid) => return Err(auth.failed(c.client, e)),
                Err(e) => return Err(e),
                Ok(key) => {
                    auth.succeeded(c.client, crate::auth::Realm::WebhookKey);
                    // Each key is a credential with its own request bucket.
                    auth.admit_credential(format!("webhook-key:{}", key.key_id))?;
                }
            }
            self.webhook_turn(c.session_name.trim(), c.message, &mut call.run_id)
                .await
        }
        .await;
        call.duration_ms = started.elapsed().as_millis() as u64;
        call.status = http_status(result.as_ref().err());
        match &result {
            Ok(reply) => call.bytes_out = reply.reply.len() as u64,
            Err(e) => {
                call.error = e.to_string();
                call.bytes_out = call.error.len() as u64;
            }
        }
        if let Err(e) = self.record_webhook_call(call).await {
            tracing::warn!(error = %e, "cannot record a webhook call");
        }
        result
    }

    /// Runs one synchronous turn in the session of `session_name` and waits for its reply;
    /// `run_id` is set as soon as the run is accepted (for the calls log).
    async fn webhook_turn(
        &self,
        session_name: &str,
        message: String,
        run_id: &mut String,
    ) -> Result<CallReply> {
        if let Some(v) = check_session_name(session_name) {
            return Err(Error::InvalidFields(vec![v]));
        }
        let a = self
            .runs
            .accept(NewRun {
                origin: RunOrigin::Webhook as i32,
                session_key: format!("webhook:{session_name}"),
                message,
                ..Default::default()
            })
            .await?;
        *run_id = a.run.run_id.clone();
        let limit = Duration::from_secs(u64::from(a.run.timeout_seconds.max(1)) + 30);
        let (run, done) = self.runs.wait(&a.run.run_id, limit).await?;
        if !done {
            return Err(Error::AgentFailed(
                "the agent did not finish in time".into(),
            ));
        }
        if run.state != RunState::Succeeded as i32 {
            let msg = run
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| {
                    format!(
                        "the run ended {}",
                        RunState::try_from(run.state)
                            .map(|s| s.as_str_name())
                            .unwrap_or("UNKNOWN")
                    )
                });
            return Err(Error::AgentFailed(format!("agent failed: {msg}")));
        }
        Ok(CallReply {
            reply: run.reply_text,
            run_id: run.run_id,
            session_key: run.session_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_names() {
        assert!(check_session_name("a.b_c-1").is_none());
        assert!(check_session_name("").is_some());
        assert!(check_session_name("a b").is_some());
        assert!(check_session_name("a/b").is_some());
    }

    proptest! {
        #[test]
        fn session_names_are_checked_totally(name in any::<String>()) {
            if check_session_name(&name).is_none() {
                prop_assert!(!name.is_empty() && name.len() <= MAX_SESSION_NAME);
            }
        }
    }
}
