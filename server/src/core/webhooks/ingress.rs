//! Webhook ingress (`/webhook/<path>`): the compiled `webhooks.incoming` endpoints, each
//! verified on the raw body by its secret or signature scheme (`X-Webhook-Secret`, GitHub,
//! Stripe, Standard Webhooks) before its templates render the run; what the signature
//! covers (a signed delivery id, Stripe's `t` and signature, GitHub's body MAC) makes the
//! run's idempotency key, so a replayed delivery answers the original run.

use crate::{
    config::IncomingConfig,
    core::runs::{MAX_MESSAGE_BYTES, NewRun, Runs},
    error::{Error, Result},
};
use base64::Engine as _;
use clawplane_proto::v1::RunOrigin;
use clawplane_util::crypto::{ct_eq, hex, hmac_sha256, sha256, unhex};
use clawplane_util::template::Templates;
use serde_json::{Map, Value as Json};
use std::{collections::HashMap, sync::Arc};

/// Default replay window of the timestamped signature schemes.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Secret,
    Github,
    Stripe,
    StandardWebhooks,
}

struct Endpoint {
    path: String,
    scheme: Scheme,
    secret: Vec<u8>,
    tolerance: u64,
    session_key: Option<String>,
    agent_id: String,
    deliver: bool,
    channel: String,
    to: String,
}

/// The compiled `webhooks.incoming` endpoints.
pub struct Endpoints {
    endpoints: HashMap<String, Endpoint>,
    templates: Templates,
}

/// The ingress service: the compiled endpoints (none when `webhooks.incoming.enabled` is
/// off) and the runs their deliveries become.
pub struct Ingress {
    compiled: Option<Endpoints>,
    runs: Arc<Runs>,
}

/// The outcome of an ingress delivery.
pub struct Ingested {
    pub run_id: String,
    pub session_key: String,
    pub duplicate: bool,
}

fn norm_path(p: &str) -> String {
    p.trim().trim_matches('/').to_string()
}

impl Endpoints {
    /// Checks and compiles the endpoints (start-up errors name the config key).
    pub fn compile(cfg: &IncomingConfig) -> std::result::Result<Endpoints, String> {
        let mut templates = Templates::default();
        let mut endpoints = HashMap::new();
        for (i, e) in cfg.endpoints.iter().enumerate() {
            let at = |f: &str| format!("webhooks.incoming.endpoints[{i}].{f}");
            let path = norm_path(&e.path);
            if path.is_empty()
                || !path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
            {
                return Err(format!(
                    "{}: {:?} must be a non-empty path of A-Z a-z 0-9 . _ - /",
                    at("path"),
                    e.path
                ));
            }
            if e.message.trim().is_empty() {
                return Err(format!(
                    "{}: a message template is required, e.g. \"{{{{body}}}}\"",
                    at("message")
                ));
            }
            templates
                .add(&format!("{path}#message"), &e.message)
                .map_err(|err| format!("{}: {err}", at("message")))?;
            let session_key = match e
                .session_key
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                Some(src) => {
                    let name = format!("{path}#sessionKey");
                    templates
                        .add(&name, src)
                        .map_err(|err| format!("{}: {err}", at("sessionKey")))?;
                    Some(name)
                }
                None => None,
            };
            let (scheme, secret, tolerance) = match &e.auth {
                Some(a) => {
                    let scheme = match a.scheme.trim() {
                        "" | "secret" => Scheme::Secret,
                        "github" => Scheme::Github,
                        "stripe" => Scheme::Stripe,
                        "standard-webhooks" => Scheme::StandardWebhooks,
                        other => {
                            return Err(format!(
                                "{}: {other:?} is not secret, github, stripe or standard-webhooks",
                                at("auth.scheme")
                            ));
                        }
                    };
                    (scheme, a.secret.clone(), a.tolerance_seconds)
                }
                None => (Scheme::Secret, cfg.secret.clone().unwrap_or_default(), None),
            };
            if secret.is_empty() {
                return Err(format!(
                    "{}: every endpoint needs a secret (auth.secret, or webhooks.incoming.secret)",
                    at("auth.secret")
                ));
            }
            let secret = if scheme == Scheme::StandardWebhooks {
                let b64 = secret.strip_prefix("whsec_").unwrap_or(&secret);
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|err| {
                        format!(
                            "{}: a standard-webhooks secret is whsec_ + base64 ({err})",
                            at("auth.secret")
                        )
                    })?
            } else {
                secret.into_bytes()
            };
            let channel = e.channel.clone().unwrap_or_default();
            let ep = Endpoint {
                path: path.clone(),
                scheme,
                secret,
                tolerance: tolerance.unwrap_or(DEFAULT_TOLERANCE_SECONDS),
                session_key,
                agent_id: e.agent_id.clone().unwrap_or_default(),
                deliver: e.deliver.unwrap_or(!channel.is_empty()),
                channel,
                to: e.to.clone().unwrap_or_default(),
            };
            if endpoints.insert(path.clone(), ep).is_some() {
                return Err(format!("{}: {path:?} is used twice", at("path")));
            }
        }
        Ok(Endpoints {
            endpoints,
            templates,
        })
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn sig_err(m: impl Into<String>) -> Error {
    Error::SignatureInvalid(m.into())
}

fn within(ts: &str, tolerance: u64, what: &str) -> Result<i64> {
    let t: i64 = ts
        .trim()
        .parse()
        .map_err(|_| sig_err(format!("{what} is not a unix timestamp")))?;
    if (unix_now() - t).unsigned_abs() > tolerance {
        return Err(sig_err(format!(
            "{what} is outside the {tolerance} s replay window"
        )));
    }
    Ok(t)
}

/// Verifies a delivery on its raw bytes; returns the delivery id to dedupe on, if any.
/// `headers` are lowercased names.
fn verify(ep: &Endpoint, headers: &HashMap<String, String>, body: &[u8]) -> Result<Option<String>> {
    let h = |n: &str| headers.get(n).map(|s| s.trim()).filter(|s| !s.is_empty());
    match ep.scheme {
        Scheme::Secret => {
            let got =
                h("x-webhook-secret").ok_or_else(|| sig_err("missing X-Webhook-Secret header"))?;
            if !ct_eq(&sha256(got), &sha256(&ep.secret)) {
                return Err(sig_err("X-Webhook-Secret does not match"));
            }
            Ok(h("idempotency-key")
                .or(h("x-webhook-id"))
                .map(str::to_string))
        }
        Scheme::Github => {
            let got = h("x-hub-signature-256")
                .ok_or_else(|| sig_err("missing X-Hub-Signature-256 header"))?;
            let sig = got
                .strip_prefix("sha256=")
                .and_then(|s| unhex(s).ok())
                .ok_or_else(|| sig_err("X-Hub-Signature-256 is not sha256=<hex>"))?;
            let mac = hmac_sha256(&ep.secret, &[body]);
            if !ct_eq(&mac, &sig) {
                return Err(sig_err("X-Hub-Signature-256 does not match the body"));
            }
            // GitHub signs only the body and sends no timestamp, so `X-GitHub-Delivery` is
            // unsigned: a captured delivery replayed under a new id would run again. Dedupe
            // on what the signature covers (the computed MAC, canonical whatever the hex
            // case): a replay is the same delivery, and GitHub's "redeliver" (same id, same
            // body) still answers the original run.
            Ok(Some(format!("github:sha256:{}", hex(mac))))
        }
        Scheme::Stripe => {
            let got =
                h("stripe-signature").ok_or_else(|| sig_err("missing Stripe-Signature header"))?;
            let mut t = None;
            let mut v1 = Vec::new();
            for part in got.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = Some(v.to_string()),
                    Some(("v1", v)) => v1.push(v.to_string()),
                    _ => {}
                }
            }
            let t = t.ok_or_else(|| sig_err("Stripe-Signature has no t="))?;
            within(&t, ep.tolerance, "Stripe-Signature t")?;
            let mac = hmac_sha256(&ep.secret, &[t.as_bytes(), b".", body]);
            let matched = v1.iter().find(|s| unhex(s).is_ok_and(|b| ct_eq(&mac, &b)));
            match matched {
                Some(s) => Ok(Some(format!("stripe:{t}:{s}"))),
                None => Err(sig_err(
                    "no v1 signature in Stripe-Signature matches the body",
                )),
            }
        }
        Scheme::StandardWebhooks => {
            let id = h("webhook-id").ok_or_else(|| sig_err("missing webhook-id header"))?;
            let ts = h("webhook-timestamp")
                .ok_or_else(|| sig_err("missing webhook-timestamp header"))?;
            let sigs = h("webhook-signature")
                .ok_or_else(|| sig_err("missing webhook-signature header"))?;
            within(ts, ep.tolerance, "webhook-timestamp")?;
            let mac = hmac_sha256(
                &ep.secret,
                &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
            );
            let ok = sigs.split_whitespace().any(|s| {
                s.strip_prefix("v1,")
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .is_some_and(|b| ct_eq(&mac, &b))
            });
            if !ok {
                return Err(sig_err("no v1 signature in webhook-signature matches"));
            }
            Ok(Some(format!("standard-webhooks:{id}")))
        }
    }
}

/// An `application/x-www-form-urlencoded` body (Slack outgoing webhooks) as the object
/// templates read as `body.*`: each field a string, a repeated field an array of them.
fn form_body(body: &[u8]) -> Json {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        let v = Json::String(v.into_owned());
        match m.get_mut(k.as_ref()) {
            Some(Json::Array(a)) => a.push(v),
            Some(first) => *first = Json::Array(vec![first.take(), v]),
            None => {
                m.insert(k.into_owned(), v);
            }
        }
    }
    Json::Object(m)
}

impl Ingress {
    /// Compiles `webhooks.incoming` when it is enabled.
    pub fn new(cfg: &IncomingConfig, runs: Arc<Runs>) -> std::result::Result<Ingress, String> {
        let compiled = if cfg.enabled {
            Some(Endpoints::compile(cfg)?)
        } else {
            None
        };
        Ok(Ingress { compiled, runs })
    }

    /// One ingress delivery: find the endpoint, verify on the raw body, render, accept.
    pub async fn ingest(
        &self,
        path: &str,
        headers: HashMap<String, String>,
        body: &[u8],
    ) -> Result<Ingested> {
        let Some(ingress) = &self.compiled else {
            return Err(Error::WebhookNotFound);
        };
        let path = norm_path(path);
        let ep = ingress.endpoints.get(&path).ok_or(Error::WebhookNotFound)?;
        let delivery = verify(ep, &headers, body)?;
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(Error::field("body", "is larger than 256 KiB"));
        }
        let form = headers.get("content-type").is_some_and(|t| {
            t.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        let json: Json = if body.iter().all(u8::is_ascii_whitespace) {
            Json::Object(Map::new())
        } else if form {
            form_body(body)
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Error::field("body", format!("is not valid JSON: {e}")))?
        };
        let hdrs: Map<String, Json> = headers
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        let now = humantime_now();
        let message = ingress
            .templates
            .render(&format!("{path}#message"), &json, &hdrs, &ep.path, &now)
            .map_err(|e| Error::field("message", format!("the endpoint's template failed: {e}")))?;
        let idem = delivery.as_ref().map(|d| {
            let h = sha256(format!("{path}\0{d}"));
            format!("webhook:{}", &hex(h)[..40])
        });
        let session_key = match &ep.session_key {
            Some(name) => ingress
                .templates
                .render(name, &json, &hdrs, &ep.path, &now)
                .map_err(|e| {
                    Error::field("sessionKey", format!("the endpoint's template failed: {e}"))
                })?
                .trim()
                .to_string(),
            None => String::new(),
        };
        let session_key = if session_key.is_empty() {
            match &idem {
                Some(k) => format!("webhook:{path}:{}", &k["webhook:".len()..]),
                None => format!("webhook:{path}:{}", uuid::Uuid::new_v4()),
            }
        } else {
            session_key
        };
        let req = NewRun {
            origin: RunOrigin::Webhook as i32,
            session_key,
            agent_id: ep.agent_id.clone(),
            message: message.trim().to_string(),
            idempotency_key: idem.clone().unwrap_or_default(),
            key_scope: format!("ingress:{path}"),
            deliver: ep.deliver,
            channel: ep.channel.clone(),
            to: ep.to.clone(),
            ..Default::default()
        };
        match self.runs.accept(req).await {
            Ok(a) => Ok(Ingested {
                run_id: a.run.run_id,
                session_key: a.run.session_key,
                duplicate: a.duplicate,
            }),
            // The same delivery id with a body that renders differently (e.g. `{{now}}`):
            // still the same delivery; answer the original run.
            Err(Error::IdempotencyConflict { run_id, .. }) if idem.is_some() => {
                let run = self.runs.get_run(&run_id)?;
                Ok(Ingested {
                    run_id,
                    session_key: run.session_key,
                    duplicate: true,
                })
            }
            Err(e) => Err(e),
        }
    }
}

fn humantime_now() -> String {
    clawplane_util::time::rfc3339_ms(clawplane_util::time::now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_vector() {
        let mac = hmac_sha256(b"It's a Secret to Everybody", &[b"Hello, World!"]);
        assert_eq!(
            hex(mac),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    /// The vector of the Standard Webhooks reference libraries.
    #[test]
    fn standard_webhooks_vector() {
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let mac = hmac_sha256(
            &key,
            &[b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}"],
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(mac),
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}

#[cfg(test)]
#[path = "ingress_proptest.rs"]
mod proptests;
