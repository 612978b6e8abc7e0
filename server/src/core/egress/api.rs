//! The WebhookService endpoint and delivery RPCs: create, list, delete and enable
//! endpoints; list and redeliver messages.

use super::{
    Egress,
    config::{EndpointDef, canonical_filter, check_def},
    records::{EndpointRec, MsgRec, Status},
    signing::new_secret,
    ssrf::resolve_target,
    webhook_event,
};
use crate::{
    error::{Error, Result},
    store::{Records, RecordsMut},
};
use clawplane_config::webhooks::FilterConfig;
use clawplane_proto::pbjson_types::Timestamp;
use clawplane_proto::v1::{
    WebhookDeliveryAttempt, WebhookEndpoint, WebhookEndpointChange, WebhookEndpointFilter,
    WebhookEndpointSource, WebhookMessage, WebhookMessageStatus,
};
use clawplane_util::{sync::lock, time::now_ms};
use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::Ordering,
};

/// Unix milliseconds as a protobuf Timestamp.
fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// An endpoint as the API shows it (the secret never; `pending` counted by the caller).
fn endpoint_pb(e: &EndpointRec, pending: u32) -> WebhookEndpoint {
    WebhookEndpoint {
        name: format!("webhookEndpoints/{}", e.id),
        endpoint_id: e.id.clone(),
        url: e.def.url.clone(),
        events: e.def.events.clone(),
        secret: String::new(),
        delivered_seq: e.cursor,
        create_time: Some(ts(e.create_ms)),
        header_names: e.def.headers.keys().cloned().collect(),
        filter: e.def.filter.as_ref().map(|f| WebhookEndpointFilter {
            session_key: f.session_key.clone().unwrap_or_default(),
            agent_id: f.agent_id.clone().unwrap_or_default(),
            channel: f.channel.clone().unwrap_or_default(),
            expression: f.expression.clone().unwrap_or_default(),
            sender: f.sender.clone().unwrap_or_default(),
        }),
        transform: match &e.def.transform_object {
            Some(obj) => obj.to_string(),
            None => e.def.transform.clone().unwrap_or_default(),
        },
        source: if e.config {
            WebhookEndpointSource::Config
        } else {
            WebhookEndpointSource::Api
        } as i32,
        signed: e.def.secret.is_some(),
        disabled: e.disabled,
        disabled_reason: e.disabled_reason.clone(),
        disable_time: e.disabled.then(|| ts(e.disable_ms)),
        consecutive_failures: e.consecutive_failures,
        failing_since: e.failing_since_ms.map(ts),
        last_error: e.last_error.clone(),
        pending_messages: pending,
    }
}

/// A message as the API shows it, attempts newest first.
fn message_pb(m: &MsgRec) -> WebhookMessage {
    WebhookMessage {
        message_id: m.id.clone(),
        endpoint_id: m.endpoint.clone(),
        event_type: m.event_type.clone(),
        event_seq: m.seq,
        status: match m.status {
            Status::Pending => WebhookMessageStatus::Pending,
            Status::Delivered => WebhookMessageStatus::Delivered,
            Status::Failed => WebhookMessageStatus::Failed,
        } as i32,
        create_time: Some(ts(m.create_ms)),
        next_attempt_time: (m.status == Status::Pending).then(|| ts(m.next_ms)),
        attempts: m
            .attempts
            .iter()
            .rev()
            .map(|a| WebhookDeliveryAttempt {
                attempt: a.n,
                attempt_time: Some(ts(a.at_ms)),
                status_code: a.status as u32,
                error: a.error.clone(),
                latency_ms: a.latency_ms,
                success: a.ok,
                response_body: a.response.clone(),
            })
            .collect(),
        body: m.body.clone(),
    }
}

/// What `CreateWebhookEndpoint` asks for.
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub filter: Option<WebhookEndpointFilter>,
    pub transform: String,
    pub secret: String,
}

/// The request field of a definition field `check_def` names (config names differ).
fn field_of(f: &str) -> &'static str {
    match f {
        "event" => "events",
        "url" => "url",
        "headers" => "headers",
        "secret" => "secret",
        "transform" => "transform",
        "filter.expression" => "filter.expression",
        _ => "endpoint",
    }
}

impl Egress {
    /// `WebhookService/CreateWebhookEndpoint`.
    pub async fn create_endpoint(&self, n: NewEndpoint) -> Result<WebhookEndpoint> {
        let secret = if n.secret.trim().is_empty() {
            new_secret()
        } else {
            n.secret.trim().to_string()
        };
        let filter = n
            .filter
            .map(|f| {
                let opt = |s: String| Some(s).filter(|s| !s.trim().is_empty());
                FilterConfig {
                    session_key: opt(f.session_key),
                    agent_id: opt(f.agent_id),
                    channel: opt(f.channel),
                    expression: opt(f.expression),
                    sender: opt(f.sender),
                }
            })
            .map(|f| canonical_filter(f, &self.main_key))
            .filter(|f| *f != FilterConfig::default());
        let def = EndpointDef {
            url: n.url.trim().to_string(),
            events: n.events,
            headers: n.headers,
            filter,
            transform: Some(n.transform).filter(|t| !t.trim().is_empty()),
            transform_object: None,
            secret: Some(secret.clone()),
        };
        let allow = self.cfg.allow_private_targets;
        let def = check_def(def, allow).map_err(|(f, e)| Error::field(field_of(f), e))?;
        // Resolve now too, so a name pointing at a private address is refused up front.
        let url = reqwest::Url::parse(&def.url).map_err(|e| Error::field("url", e.to_string()))?;
        resolve_target(&url, allow)
            .await
            .map_err(|e| Error::field("url", e))?;
        let id = format!(
            "ep_{}",
            clawplane_util::crypto::hex(rand::random::<[u8; 8]>())
        );
        let rec = EndpointRec {
            id: id.clone(),
            def,
            config: false,
            create_ms: now_ms(),
            ..Default::default()
        };
        let feed = self.store.feed.clone();
        let rec = self
            .store
            .write(move |t| {
                let mut rec = rec;
                // The writer assigns seqs in order: head now is the last committed seq.
                rec.cursor = feed.head.load(Ordering::Acquire);
                t.put(&rec)?;
                Ok(rec)
            })
            .await?;
        self.wake_outbox.notify_one();
        let mut pb = endpoint_pb(&rec, 0);
        pb.secret = secret;
        Ok(pb)
    }

    /// `WebhookService/ListWebhookEndpoints`.
    pub fn endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        self.store.read(|r| {
            let mut pending: HashMap<String, u32> = HashMap::new();
            r.each(|m: MsgRec| {
                if m.status == Status::Pending {
                    *pending.entry(m.endpoint).or_default() += 1;
                }
            })?;
            Ok(r.scan::<EndpointRec>("", usize::MAX)?
                .iter()
                .map(|e| endpoint_pb(e, pending.get(&e.id).copied().unwrap_or(0)))
                .collect())
        })
    }

    /// `WebhookService/DeleteWebhookEndpoint`: RPC-created endpoints only.
    pub async fn delete_endpoint(&self, id: &str) -> Result<String> {
        let id = id.trim().to_string();
        if id.is_empty() {
            return Err(Error::field("endpointId", "required"));
        }
        let key = id.clone();
        self.store
            .write(move |t| {
                let Some(rec) = t.get::<EndpointRec>(&key)? else {
                    return Err(Error::WebhookNotFound);
                };
                if rec.config {
                    return Err(Error::field(
                        "endpointId",
                        format!(
                            "{key} is defined in webhooks.outgoing; remove it from the config file"
                        ),
                    ));
                }
                let mut gone = Vec::new();
                t.each(|m: MsgRec| {
                    if m.endpoint == key {
                        gone.push(m.id)
                    }
                })?;
                t.delete::<EndpointRec>(&key)?;
                for m in gone {
                    t.delete::<MsgRec>(&m)?;
                }
                Ok(())
            })
            .await?;
        lock(&self.cursors).remove(&id);
        Ok(id)
    }

    /// `WebhookService/EnableWebhookEndpoint`.
    pub async fn enable_endpoint(&self, id: &str) -> Result<WebhookEndpoint> {
        let key = id.trim().to_string();
        if key.is_empty() {
            return Err(Error::field("endpointId", "required"));
        }
        let now = now_ms();
        let (rec, pending) = self
            .store
            .write(move |t| {
                let Some(mut rec) = t.get::<EndpointRec>(&key)? else {
                    return Err(Error::WebhookNotFound);
                };
                let mut pending = Vec::new();
                t.each(|m: MsgRec| {
                    if m.endpoint == key && m.status == Status::Pending {
                        pending.push(m)
                    }
                })?;
                if rec.disabled {
                    rec.disabled = false;
                    rec.disabled_reason.clear();
                    rec.consecutive_failures = 0;
                    rec.failing_since_ms = None;
                    t.put(&rec)?;
                    t.append_event(webhook_event(WebhookEndpointChange {
                        r#type: "enabled".into(),
                        endpoint_id: key.clone(),
                        url: rec.def.url.clone(),
                        detail: "enabled by an operator".into(),
                    }))?;
                }
                let mut due = Vec::new();
                for mut m in pending {
                    m.next_ms = now;
                    t.put(&m)?;
                    due.push((now, m.id));
                }
                Ok((rec, due))
            })
            .await?;
        let n = pending.len() as u32;
        self.schedule_all(pending);
        self.wake_outbox.notify_one();
        Ok(endpoint_pb(&rec, n))
    }

    /// `WebhookService/ListWebhookDeliveries`: newest first.
    pub fn deliveries(
        &self,
        endpoint_id: &str,
        message_id: &str,
        status: WebhookMessageStatus,
        page_size: u32,
    ) -> Result<Vec<WebhookMessage>> {
        let limit = match page_size {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let want = match status {
            WebhookMessageStatus::Unspecified => None,
            WebhookMessageStatus::Pending => Some(Status::Pending),
            WebhookMessageStatus::Delivered => Some(Status::Delivered),
            WebhookMessageStatus::Failed => Some(Status::Failed),
        };
        self.store.read(|r| {
            let keep = |m: &MsgRec| {
                (endpoint_id.is_empty() || m.endpoint == endpoint_id)
                    && want.is_none_or(|s| s == m.status)
            };
            let mut out = Vec::new();
            if !message_id.is_empty() {
                if let Some(m) = r.get::<MsgRec>(message_id.trim())?
                    && keep(&m)
                {
                    out.push(message_pb(&m));
                }
                return Ok(out);
            }
            let mut all = Vec::new();
            r.each(|m: MsgRec| {
                if keep(&m) {
                    all.push(m)
                }
            })?;
            Ok(all.iter().rev().take(limit).map(message_pb).collect())
        })
    }

    /// `WebhookService/RedeliverWebhook`: one message, or an endpoint's FAILED messages.
    pub async fn redeliver(&self, message_id: &str, endpoint_id: &str) -> Result<Vec<String>> {
        let (msg, ep) = (
            message_id.trim().to_string(),
            endpoint_id.trim().to_string(),
        );
        if msg.is_empty() == ep.is_empty() {
            return Err(Error::field(
                "messageId",
                "give exactly one of messageId and endpointId",
            ));
        }
        let now = now_ms();
        let ids = self
            .store
            .write(move |t| {
                let mut targets = Vec::new();
                if !msg.is_empty() {
                    match t.get::<MsgRec>(&msg)? {
                        Some(m) => targets.push(m),
                        None => return Err(Error::WebhookNotFound),
                    }
                } else {
                    if t.get::<EndpointRec>(&ep)?.is_none() {
                        return Err(Error::WebhookNotFound);
                    }
                    t.each(|m: MsgRec| {
                        if m.endpoint == ep && m.status == Status::Failed && !m.body.is_empty() {
                            targets.push(m)
                        }
                    })?;
                }
                for m in &targets {
                    let Some(e) = t.get::<EndpointRec>(&m.endpoint)? else {
                        return Err(Error::field("messageId", format!("the endpoint of {} no longer exists", m.id)));
                    };
                    if e.disabled {
                        return Err(Error::field(
                            "endpointId",
                            format!("endpoint {} is disabled; enable it first (`clawplane webhooks endpoints enable {}`)", e.id, e.id),
                        ));
                    }
                    if m.body.is_empty() {
                        return Err(Error::field("messageId", format!("{} has no body to send (its transform failed)", m.id)));
                    }
                }
                let mut ids = Vec::new();
                for mut m in targets {
                    m.status = Status::Pending;
                    m.round = 0;
                    m.generation += 1;
                    m.next_ms = now;
                    t.put(&m)?;
                    ids.push(m.id);
                }
                Ok(ids)
            })
            .await?;
        self.schedule_all(ids.iter().map(|i| (now, i.clone())));
        Ok(ids)
    }
}
