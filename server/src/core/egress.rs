//! Webhook egress: events of the durable log delivered to HTTP endpoints as Standard
//! Webhooks (`webhooks.outgoing[]` and `WebhookService/CreateWebhookEndpoint`).
//!
//! - **Outbox.** Each endpoint has a durable cursor over the event log. The outbox task reads
//!   events after it, and for every matching one durably creates a message (stable id
//!   `msg_<seq>_<endpoint hash>`, sent as `webhook-id` on every attempt, body rendered once)
//!   in the same transaction that advances the cursor — so a restart neither loses nor
//!   duplicates messages, and events appended while the gateway was down are picked up.
//! - **Dispatcher.** Due messages are POSTed concurrently (bounded by
//!   `webhooks.egress.concurrency`). Success is 2xx only (redirects are not followed);
//!   `410` disables the endpoint; `429/502/503/504` honour `Retry-After` (delta seconds)
//!   clamped to [base, 2×base] (as Svix), and timeouts and `429` wait at least
//!   `throttleMinSeconds`; otherwise the next attempt follows `retrySchedule` with ±20 %
//!   jitter. After the schedule the message is FAILED and kept for manual redelivery.
//!   Every attempt is logged durably in the message record (bounded).
//! - **Disable.** An endpoint whose attempts all fail for `disableAfterSeconds` (or
//!   `disableAfterFailures` in a row, when set) is disabled and an `EVENT_KIND_WEBHOOK`
//!   `disabled` event is appended; a success after failures appends `recovered`. A disabled
//!   endpoint's cursor stands still, so enabling it delivers what happened meanwhile.
//! - **SSRF guard.** Loopback, private, link-local, unique-local, shared and unspecified
//!   targets are refused (at config load, on create, and again at delivery against the
//!   address actually connected to) unless `webhooks.egress.allowPrivateTargets`.

use super::{Gateway, keys, lock};
use crate::error::{Error, Result};
use crate::store::{Record, Records, RecordsMut};
use base64::Engine as _;
use clawplane_proto::pbjson_types::Timestamp;
use clawplane_proto::v1::{
    Event, EventKind, RunState, WebhookDeliveryAttempt, WebhookEndpoint, WebhookEndpointChange,
    WebhookEndpointFilter, WebhookEndpointSource, WebhookMessage, WebhookMessageStatus, event,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::{Notify, Semaphore};

/// Events read per outbox step.
const PAGE: usize = 256;
/// An unproductive cursor advance is persisted only after this many events (re-reading a
/// few events after a crash is harmless: message ids are deterministic).
const CURSOR_PERSIST_GAP: u64 = 256;
/// Attempts kept per message (the count keeps going).
const ATTEMPTS_KEPT: usize = 50;
/// Bytes of an answer body kept in the attempt log.
const RESPONSE_KEPT: usize = 512;

/// The event types an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "run.completed",
    "run.failed",
    "channel.message.received",
    "channel.disconnected",
    "security.alert",
    "device.pair.requested",
];

// ------------------------------------------------------------------------------- config

pub use clawplane_config::webhooks::{EgressConfig, EventNames, FilterConfig, OutgoingWebhook};

/// Checks `webhooks.outgoing` and `webhooks.egress`; errors name the config key.
pub fn validate(
    outgoing: &[OutgoingWebhook],
    cfg: &EgressConfig,
) -> std::result::Result<(), String> {
    configured(outgoing, cfg, "main").map(|_| ())
}

fn configured(
    outgoing: &[OutgoingWebhook],
    cfg: &EgressConfig,
    main_key: &str,
) -> std::result::Result<Vec<(String, EndpointDef)>, String> {
    cfg.validate()?;
    let mut out: Vec<(String, EndpointDef)> = Vec::new();
    for (i, o) in outgoing.iter().enumerate() {
        let at = |f: &str| format!("webhooks.outgoing[{i}].{f}");
        let def = EndpointDef {
            url: o.url.trim().to_string(),
            events: o.event.list(),
            headers: o.headers.clone(),
            filter: o.filter.clone().map(|f| canonical_filter(f, main_key)),
            transform: o.transform.clone().filter(|t| !t.trim().is_empty()),
            secret: o.secret.clone().filter(|s| !s.is_empty()),
        };
        let def = check_def(def, cfg.allow_private_targets)
            .map_err(|(f, e)| format!("{}: {e}", at(f)))?;
        let id = match o.id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => {
                if id.len() > 64
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(format!(
                        "{}: {id:?} must be 1..64 of A-Z a-z 0-9 _ -",
                        at("id")
                    ));
                }
                id.to_string()
            }
            None => {
                let h = Sha256::digest(format!("{}\n{}", def.url, def.events.join(",")));
                format!("cfg_{}", &clawplane_util::crypto::hex(h)[..16])
            }
        };
        if out.iter().any(|(x, _)| *x == id) {
            return Err(format!(
                "{}: endpoint id {id:?} is used twice (set distinct `id`s)",
                at("id")
            ));
        }
        out.push((id, def));
    }
    Ok(out)
}

fn canonical_filter(mut f: FilterConfig, main_key: &str) -> FilterConfig {
    let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    f.agent_id = clean(f.agent_id).map(|a| keys::normalize_agent_id(&a));
    f.session_key = clean(f.session_key).map(|k| {
        let agent = f.agent_id.clone().unwrap_or_else(|| "main".into());
        keys::canonical(&k, &agent, main_key)
    });
    f.channel = clean(f.channel);
    f.expression = clean(f.expression);
    f
}

/// The canonical name of a configured event name (OpenClaw aliases accepted).
fn event_name(s: &str) -> Option<&'static str> {
    match s.trim() {
        "*" => Some("*"),
        "agent.task.completed" => Some("run.completed"),
        "agent.error" => Some("run.failed"),
        other => EVENT_TYPES.iter().find(|t| **t == other).copied(),
    }
}

/// Checks a definition; the error names the offending field (config/JSON name).
fn check_def(
    mut def: EndpointDef,
    allow_private: bool,
) -> std::result::Result<EndpointDef, (&'static str, String)> {
    if def.events.is_empty() {
        return Err((
            "event",
            format!("name at least one event: {}, or *", EVENT_TYPES.join(", ")),
        ));
    }
    let mut events = Vec::new();
    for e in &def.events {
        let Some(n) = event_name(e) else {
            return Err((
                "event",
                format!(
                    "unknown event {e:?}; known: {}, agent.task.completed, agent.error, *",
                    EVENT_TYPES.join(", ")
                ),
            ));
        };
        if !events.iter().any(|x: &String| x == n) {
            events.push(n.to_string());
        }
    }
    def.events = events;
    let url = reqwest::Url::parse(&def.url)
        .map_err(|e| ("url", format!("{:?} is not a URL: {e}", def.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err((
            "url",
            format!("{:?} must be an http or https URL with a host", def.url),
        ));
    }
    if !allow_private {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let literal = ip_literal(&host);
        if literal.is_some_and(forbidden_ip) || host == "localhost" || host.ends_with(".localhost")
        {
            return Err((
                "url",
                format!(
                    "{:?} is a loopback or private address; webhooks are not sent there unless webhooks.egress.allowPrivateTargets is true",
                    def.url
                ),
            ));
        }
    }
    for (name, value) in &def.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(("headers", format!("{name:?} is not a valid HTTP header")));
        }
        if name.to_ascii_lowercase().starts_with("webhook-") {
            return Err(("headers", format!("{name:?} is set by the gateway")));
        }
    }
    if let Some(s) = &def.secret {
        secret_key(s).map_err(|e| ("secret", e))?;
    }
    let env = environment();
    if let Some(t) = &def.transform {
        env.template_from_str(t)
            .map_err(|e| ("transform", format!("not a valid template: {e}")))?;
    }
    if let Some(x) = def.filter.as_ref().and_then(|f| f.expression.as_deref()) {
        env.compile_expression(x)
            .map_err(|e| ("filter.expression", format!("not a valid expression: {e}")))?;
    }
    Ok(def)
}

/// The HMAC key of a `whsec_` secret: the base64-decoded bytes after the prefix.
fn secret_key(secret: &str) -> std::result::Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| "must look like whsec_<base64>".to_string())?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the part after whsec_ is not base64".to_string())?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("must decode to 24..64 bytes, not {}", key.len()));
    }
    Ok(key)
}

/// A fresh `whsec_` secret of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// `webhook-signature` of one attempt: `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`.
pub fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> Option<String> {
    let key = secret_key(secret).ok()?;
    let mac = clawplane_util::crypto::hmac_sha256(
        &key,
        &[id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body],
    );
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    ))
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

pub use clawplane_util::net::forbidden_ip;
use clawplane_util::net::ip_literal;

/// Resolves the URL's host; refuses forbidden addresses unless allowed.
async fn resolve_target(
    url: &reqwest::Url,
    allow_private: bool,
) -> std::result::Result<Vec<SocketAddr>, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| forbidden_ip(a.ip())) {
        return Err(format!(
            "{host} resolves to {} (loopback or private); refused unless webhooks.egress.allowPrivateTargets is true",
            bad.ip()
        ));
    }
    Ok(addrs)
}

// ------------------------------------------------------------------------------- records

/// What an endpoint sends where (stored for RPC-created ones; from the config otherwise).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct EndpointDef {
    url: String,
    events: Vec<String>,
    headers: BTreeMap<String, String>,
    filter: Option<FilterConfig>,
    transform: Option<String>,
    secret: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EndpointRec {
    id: String,
    def: EndpointDef,
    /// Defined in `webhooks.outgoing` (removed when it leaves the config).
    config: bool,
    create_ms: i64,
    /// Every event with seq <= cursor has been considered.
    cursor: u64,
    disabled: bool,
    disabled_reason: String,
    disable_ms: i64,
    consecutive_failures: u32,
    failing_since_ms: Option<i64>,
    last_error: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
enum Status {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttemptRec {
    n: u32,
    at_ms: i64,
    status: u16,
    error: String,
    latency_ms: u64,
    ok: bool,
    response: String,
}

impl Record for EndpointRec {
    const KIND: &'static str = "egress.endpoint";
    fn key(&self) -> String {
        self.id.clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MsgRec {
    id: String,
    endpoint: String,
    event_type: String,
    seq: u64,
    status: Status,
    create_ms: i64,
    next_ms: i64,
    /// Attempts made in all.
    tries: u32,
    /// Attempts of the current schedule round (a redelivery starts a new round).
    round: u32,
    /// Bumped by redelivery, so an attempt in flight does not overwrite it.
    generation: u32,
    attempts: Vec<AttemptRec>,
    body: String,
}

/// Keyed by message id, which orders by event seq.
impl Record for MsgRec {
    const KIND: &'static str = "egress.msg";
    fn key(&self) -> String {
        self.id.clone()
    }
}

use clawplane_util::time::now_ms;

fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn message_id(seq: u64, endpoint: &str) -> String {
    let h = Sha256::digest(endpoint.as_bytes());
    format!("msg_{seq:012}_{}", &clawplane_util::crypto::hex(h)[..8])
}

fn webhook_event(change: WebhookEndpointChange) -> Event {
    Event {
        kind: EventKind::Webhook as i32,
        payload: Some(event::Payload::Webhook(change)),
        ..Default::default()
    }
}

// ------------------------------------------------------------------------------- matching

/// The egress type of an event, if it is one endpoints can receive.
fn event_type(ev: &Event) -> Option<&'static str> {
    match ev.payload.as_ref()? {
        event::Payload::Run(run) => match RunState::try_from(run.state).ok()? {
            RunState::Succeeded => Some("run.completed"),
            RunState::Failed | RunState::TimedOut => Some("run.failed"),
            _ => None,
        },
        event::Payload::Channel(c) => match c.r#type.as_str() {
            "message.received" => Some("channel.message.received"),
            "disconnected" => Some("channel.disconnected"),
            _ => None,
        },
        event::Payload::Security(_) => Some("security.alert"),
        event::Payload::Device(d) if d.r#type == "pair.requested" => Some("device.pair.requested"),
        _ => None,
    }
}

/// The payload as canonical proto JSON.
fn payload_json(ev: &Event) -> Json {
    let v = match &ev.payload {
        Some(event::Payload::Run(x)) => serde_json::to_value(x),
        Some(event::Payload::Channel(x)) => serde_json::to_value(x),
        Some(event::Payload::Security(x)) => serde_json::to_value(x),
        Some(event::Payload::Device(x)) => serde_json::to_value(x),
        Some(event::Payload::Webhook(x)) => serde_json::to_value(x),
        _ => Ok(Json::Null),
    };
    v.unwrap_or(Json::Null)
}

/// A definition ready to match and render events.
struct Compiled<'a> {
    def: &'a EndpointDef,
    env: minijinja::Environment<'static>,
}

impl<'a> Compiled<'a> {
    fn new(def: &'a EndpointDef) -> std::result::Result<Self, String> {
        let mut env = environment();
        if let Some(t) = &def.transform {
            env.add_template_owned("transform", t.clone())
                .map_err(|e| format!("transform: {e}"))?;
        }
        Ok(Compiled { def, env })
    }

    /// The type and rendered body when `ev` goes to this endpoint; None when it does not.
    fn render(&self, ev: &Event) -> Option<(&'static str, std::result::Result<String, String>)> {
        let ty = event_type(ev)?;
        if !self.def.events.iter().any(|e| e == "*" || e == ty) {
            return None;
        }
        let data = payload_json(ev);
        if let Some(f) = &self.def.filter {
            let run = match &ev.payload {
                Some(event::Payload::Run(r)) => Some(r),
                _ => None,
            };
            if let Some(k) = &f.session_key
                && ev.session_key != *k
                && run.is_none_or(|r| r.session_key != *k)
            {
                return None;
            }
            if let Some(a) = &f.agent_id {
                let agent = run.map(|r| r.agent_id.clone()).unwrap_or_else(|| {
                    ev.session_key
                        .strip_prefix("agent:")
                        .and_then(|s| s.split(':').next())
                        .unwrap_or_default()
                        .to_string()
                });
                if agent != *a {
                    return None;
                }
            }
            if let Some(c) = &f.channel {
                let ch = match &ev.payload {
                    Some(event::Payload::Channel(x)) => x.channel.as_str(),
                    Some(event::Payload::Run(r)) => r
                        .delivery
                        .as_ref()
                        .map(|d| d.channel.as_str())
                        .unwrap_or(""),
                    _ => "",
                };
                if ch != c {
                    return None;
                }
            }
            if let Some(x) = &f.expression {
                let ctx = json!({"event": ev, "type": ty, "data": data});
                let truthy = self
                    .env
                    .compile_expression(x)
                    .and_then(|e| e.eval(minijinja::Value::from_serialize(&ctx)))
                    .map(|v| v.is_true());
                match truthy {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, seq = ev.seq, "webhook filter expression failed; event skipped");
                        return None;
                    }
                }
            }
        }
        let timestamp = ev
            .time
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Json::Null);
        let body = match &self.def.transform {
            None => {
                serde_json::to_string(&json!({"type": ty, "timestamp": timestamp, "data": data}))
                    .map_err(|e| e.to_string())
            }
            Some(_) => {
                let ctx = json!({"event": ev, "type": ty, "data": data, "timestamp": timestamp});
                self.env
                    .get_template("transform")
                    .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)))
                    .map_err(|e| format!("transform failed: {e}"))
                    .and_then(|s| {
                        serde_json::from_str::<Json>(&s)
                            .map(|_| s.trim().to_string())
                            .map_err(|e| format!("transform did not produce JSON: {e}"))
                    })
            }
        };
        Some((ty, body))
    }
}

// ------------------------------------------------------------------------------- runtime

/// The egress runtime held by the gateway.
pub struct Egress {
    cfg: EgressConfig,
    configured: Vec<(String, EndpointDef)>,
    main_key: String,
    /// Pending messages by due time.
    due: Mutex<BTreeSet<(i64, String)>>,
    inflight: Mutex<HashSet<String>>,
    /// In-memory cursors ahead of the stored ones (unproductive advances).
    cursors: Mutex<HashMap<String, u64>>,
    finished: AtomicUsize,
    wake_dispatch: Notify,
    wake_outbox: Notify,
}

impl Egress {
    /// Compiles `webhooks.outgoing` (errors name the config key).
    pub fn new(config: &crate::config::Config) -> std::result::Result<Egress, String> {
        let w = &config.webhooks;
        Ok(Egress {
            configured: configured(&w.outgoing, &w.egress, &config.session.main_key)?,
            cfg: w.egress.clone(),
            main_key: config.session.main_key.clone(),
            due: Mutex::default(),
            inflight: Mutex::default(),
            cursors: Mutex::default(),
            finished: AtomicUsize::new(0),
            wake_dispatch: Notify::new(),
            wake_outbox: Notify::new(),
        })
    }

    fn schedule(&self, at: i64, id: String) {
        lock(&self.due).insert((at, id));
        self.wake_dispatch.notify_one();
    }
}

/// Syncs the configured endpoints into the store, loads pending messages and starts the
/// outbox and dispatcher tasks (they stop when `gw.shutdown` is cancelled).
pub async fn start(gw: &Arc<Gateway>) -> Result<()> {
    let configured = gw.egress.configured.clone();
    let now = now_ms();
    let feed = gw.store.feed.clone();
    gw.store
        .write(move |t| {
            let existing = t.scan::<EndpointRec>("", usize::MAX)?;
            for old in existing.iter().filter(|e| e.config) {
                if !configured.iter().any(|(id, _)| *id == old.id) {
                    t.delete::<EndpointRec>(&old.id)?;
                }
            }
            for (id, def) in &configured {
                let rec = match existing.iter().find(|e| e.id == *id) {
                    Some(e) => EndpointRec {
                        def: def.clone(),
                        config: true,
                        ..e.clone()
                    },
                    // A new endpoint starts at the head: it receives what happens from now on.
                    None => EndpointRec {
                        id: id.clone(),
                        def: def.clone(),
                        config: true,
                        create_ms: now,
                        cursor: feed.head.load(Ordering::Acquire),
                        ..Default::default()
                    },
                };
                t.put(&rec)?;
            }
            Ok(())
        })
        .await?;
    let mut finished = 0;
    let mut pending = Vec::new();
    gw.store.read(|r| {
        r.each(|m: MsgRec| match m.status {
            Status::Pending => pending.push((m.next_ms, m.id)),
            _ => finished += 1,
        })
    })?;
    gw.egress.finished.store(finished, Ordering::Relaxed);
    lock(&gw.egress.due).extend(pending);
    let (a, b) = (gw.clone(), gw.clone());
    tokio::spawn(async move { outbox(a).await });
    tokio::spawn(async move { dispatcher(b).await });
    Ok(())
}

async fn outbox(gw: Arc<Gateway>) {
    let mut live = gw.store.feed.live.subscribe();
    loop {
        let more = match outbox_pass(&gw).await {
            Ok(more) => more,
            Err(e) => {
                tracing::warn!(error = %e, "webhook outbox pass failed; retrying");
                tokio::select! {
                    _ = gw.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = gw.shutdown.cancelled() => return,
            _ = gw.egress.wake_outbox.notified() => {}
            r = live.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                // Coalesce a burst (streamed deltas) into one pass.
                while live.try_recv().is_ok() {}
            }
        }
    }
}

/// One step of every enabled endpoint; true when some endpoint has more to read.
async fn outbox_pass(gw: &Arc<Gateway>) -> Result<bool> {
    let head = gw.store.head();
    let endpoints = gw.store.read(|r| r.scan::<EndpointRec>("", usize::MAX))?;
    let mut more = false;
    for ep in endpoints.into_iter().filter(|e| !e.disabled) {
        let mem = lock(&gw.egress.cursors).get(&ep.id).copied().unwrap_or(0);
        let cursor = ep.cursor.max(mem);
        if cursor >= head {
            continue;
        }
        let events = gw.store.read(|r| r.events_after(cursor, PAGE))?;
        if events.len() == PAGE {
            more = true;
        }
        if let Some(first) = events.first()
            && first.seq > cursor + 1
        {
            tracing::warn!(endpoint = %ep.id, from = cursor + 1, to = first.seq - 1,
                "events were pruned from the log before the webhook outbox read them");
        }
        let last = events.last().map(|e| e.seq).unwrap_or(head);
        let compiled = match Compiled::new(&ep.def) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(endpoint = %ep.id, error = %e, "webhook endpoint cannot be compiled");
                continue;
            }
        };
        let now = now_ms();
        let mut msgs = Vec::new();
        for ev in &events {
            let Some((ty, body)) = compiled.render(ev) else {
                continue;
            };
            let (status, body, attempts) = match body {
                Ok(b) => (Status::Pending, b, Vec::new()),
                // A body that cannot be rendered is never sent; it is logged as failed.
                Err(e) => (
                    Status::Failed,
                    String::new(),
                    vec![AttemptRec {
                        n: 0,
                        at_ms: now,
                        status: 0,
                        error: e,
                        latency_ms: 0,
                        ok: false,
                        response: String::new(),
                    }],
                ),
            };
            msgs.push(MsgRec {
                id: message_id(ev.seq, &ep.id),
                endpoint: ep.id.clone(),
                event_type: ty.into(),
                seq: ev.seq,
                status,
                create_ms: now,
                next_ms: now,
                tries: 0,
                round: 0,
                generation: 0,
                attempts,
                body,
            });
        }
        if msgs.is_empty() && last - ep.cursor < CURSOR_PERSIST_GAP {
            lock(&gw.egress.cursors).insert(ep.id.clone(), last);
            continue;
        }
        let id = ep.id.clone();
        let created: Vec<(i64, String)> = gw
            .store
            .write(move |t| {
                let Some(mut rec) = t.get::<EndpointRec>(&id)? else {
                    return Ok(Vec::new()); // deleted meanwhile
                };
                if rec.cursor >= last || rec.disabled {
                    return Ok(Vec::new());
                }
                let mut created = Vec::new();
                for m in &msgs {
                    if !t.contains::<MsgRec>(&m.id)? {
                        t.put(m)?;
                        if m.status == Status::Pending {
                            created.push((m.next_ms, m.id.clone()));
                        }
                    }
                }
                rec.cursor = last;
                t.put(&rec)?;
                Ok(created)
            })
            .await?;
        lock(&gw.egress.cursors).insert(ep.id.clone(), last);
        if !created.is_empty() {
            lock(&gw.egress.due).extend(created);
            gw.egress.wake_dispatch.notify_one();
        }
    }
    Ok(more)
}

async fn dispatcher(gw: Arc<Gateway>) {
    let slots = Arc::new(Semaphore::new(gw.egress.cfg.concurrency));
    loop {
        if gw.shutdown.is_cancelled() {
            return;
        }
        let now = now_ms();
        let (ready, next) = {
            let mut due = lock(&gw.egress.due);
            let inflight = lock(&gw.egress.inflight);
            let mut taken = Vec::new();
            let mut ready: Vec<String> = Vec::new();
            let mut seen: HashSet<&str> = HashSet::new();
            let mut next = None;
            for (at, id) in due.iter() {
                if *at > now {
                    next = Some(*at);
                    break;
                }
                if !inflight.contains(id) {
                    taken.push((*at, id.clone()));
                    // A message can be due twice (redelivered while scheduled): one attempt.
                    if seen.insert(id.as_str()) {
                        ready.push(id.clone());
                    }
                }
            }
            for t in &taken {
                due.remove(t);
            }
            (ready, next)
        };
        for id in ready {
            let permit = tokio::select! {
                _ = gw.shutdown.cancelled() => return,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            lock(&gw.egress.inflight).insert(id.clone());
            let gw2 = gw.clone();
            tokio::spawn(async move {
                if let Err(e) = deliver(&gw2, &id).await {
                    tracing::warn!(msg = %id, error = %e, "webhook delivery bookkeeping failed; retrying soon");
                    gw2.egress.schedule(now_ms() + 5000, id.clone());
                }
                lock(&gw2.egress.inflight).remove(&id);
                drop(permit);
                gw2.egress.wake_dispatch.notify_one();
            });
        }
        let sleep = next
            .map(|at| Duration::from_millis((at - now_ms()).clamp(1, 60_000) as u64))
            .unwrap_or(Duration::from_secs(60));
        tokio::select! {
            _ = gw.shutdown.cancelled() => return,
            _ = gw.egress.wake_dispatch.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// What an attempt came to.
struct Outcome {
    status: u16,
    /// No answer within `timeoutSeconds`.
    timed_out: bool,
    error: String,
    latency_ms: u64,
    response: String,
    retry_after: Option<f64>,
}

impl Outcome {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

async fn attempt(cfg: &EgressConfig, def: &EndpointDef, msg: &MsgRec) -> Outcome {
    let started = Instant::now();
    let fail = |error: String| Outcome {
        status: 0,
        timed_out: false,
        error,
        latency_ms: started.elapsed().as_millis() as u64,
        response: String::new(),
        retry_after: None,
    };
    let url = match reqwest::Url::parse(&def.url) {
        Ok(u) => u,
        Err(e) => return fail(format!("bad URL: {e}")),
    };
    // Resolve once, check, and connect to exactly the checked addresses (no DNS rebinding).
    let addrs = match resolve_target(&url, cfg.allow_private_targets).await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let timeout = Duration::from_secs_f64(cfg.timeout_seconds);
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("clawplane-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.host_str()
        && ip_literal(host).is_none()
    {
        builder = builder.resolve_to_addrs(host, &addrs);
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot build the HTTP client: {e}")),
    };
    let now_s = now_ms() / 1000;
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg.id)
        .header("webhook-timestamp", now_s.to_string());
    for (k, v) in &def.headers {
        req = req.header(k, v);
    }
    if let Some(sig) = def
        .secret
        .as_deref()
        .and_then(|s| sign(s, &msg.id, now_s, msg.body.as_bytes()))
    {
        req = req.header("webhook-signature", sig);
    }
    let mut resp = match req.body(msg.body.clone()).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Outcome {
                timed_out: true,
                ..fail(format!("timed out after {} s", cfg.timeout_seconds))
            };
        }
        Err(e) => return fail(format!("request failed: {}", error_chain(&e))),
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0);
    let mut body = Vec::new();
    while body.len() < RESPONSE_KEPT {
        match tokio::time::timeout(timeout, resp.chunk()).await {
            Ok(Ok(Some(c))) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(RESPONSE_KEPT);
    let ok = (200..300).contains(&status);
    Outcome {
        status,
        timed_out: false,
        error: if ok {
            String::new()
        } else {
            format!("HTTP {status}")
        },
        latency_ms: started.elapsed().as_millis() as u64,
        response: String::from_utf8_lossy(&body).into_owned(),
        retry_after,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The delay before the next attempt of a round that has made `round` attempts, or None
/// when the schedule is exhausted.
fn next_delay(cfg: &EgressConfig, round: u32, o: &Outcome) -> Option<Duration> {
    let base = *cfg.retry_schedule.get(round.checked_sub(1)? as usize)?;
    let throttled = matches!(o.status, 429 | 502 | 503 | 504);
    let mut secs = match o.retry_after {
        Some(ra) if throttled => ra.clamp(base, 2.0 * base),
        _ => base * rand::random_range(0.8..1.2),
    };
    if o.timed_out || o.status == 429 {
        secs = secs.max(cfg.throttle_min_seconds);
    }
    Some(Duration::from_secs_f64(secs))
}

/// One attempt of one message, then its durable bookkeeping.
async fn deliver(gw: &Arc<Gateway>, id: &str) -> Result<()> {
    let key = id.to_string();
    let (msg, ep) = gw.store.read(|r| {
        let Some(m) = r.get::<MsgRec>(&key)? else {
            return Ok((None, None));
        };
        let ep = r.get::<EndpointRec>(&m.endpoint)?;
        Ok((Some(m), ep))
    })?;
    let Some(msg) = msg else { return Ok(()) };
    if msg.status != Status::Pending {
        return Ok(());
    }
    let Some(ep) = ep else {
        // The endpoint was deleted or left the config.
        let key = id.to_string();
        gw.store
            .write(move |t| {
                if let Some(mut m) = t.get::<MsgRec>(&key)? {
                    m.status = Status::Failed;
                    t.put(&m)?;
                }
                Ok(())
            })
            .await?;
        return Ok(());
    };
    if ep.disabled {
        return Ok(()); // rescheduled by EnableWebhookEndpoint
    }
    if msg.next_ms > now_ms() {
        gw.egress.schedule(msg.next_ms, msg.id.clone());
        return Ok(());
    }
    let outcome = attempt(&gw.egress.cfg, &ep.def, &msg).await;
    if outcome.ok() {
        tracing::debug!(msg = %msg.id, endpoint = %ep.id, status = outcome.status, "webhook delivered");
    } else {
        tracing::info!(msg = %msg.id, endpoint = %ep.id, error = %outcome.error, "webhook attempt failed");
    }
    let cfg = gw.egress.cfg.clone();
    let generation = msg.generation;
    let key = id.to_string();
    let ep_id = ep.id.clone();
    let (reschedule, finished) = gw
        .store
        .write(move |t| {
            let Some(mut m) = t.get::<MsgRec>(&key)? else {
                return Ok((None, false));
            };
            let now = now_ms();
            m.tries += 1;
            m.attempts.push(AttemptRec {
                n: m.tries,
                at_ms: now - outcome.latency_ms as i64,
                status: outcome.status,
                error: outcome.error.clone(),
                latency_ms: outcome.latency_ms,
                ok: outcome.ok(),
                response: outcome.response.clone(),
            });
            if m.attempts.len() > ATTEMPTS_KEPT {
                let cut = m.attempts.len() - ATTEMPTS_KEPT;
                m.attempts.drain(..cut);
            }
            let current = m.generation == generation && m.status == Status::Pending;
            let mut reschedule = None;
            let mut finished = false;
            let gone = outcome.status == 410;
            if current {
                m.round += 1;
                if outcome.ok() {
                    m.status = Status::Delivered;
                    finished = true;
                } else if gone {
                    m.status = Status::Failed;
                    finished = true;
                } else {
                    match next_delay(&cfg, m.round, &outcome) {
                        Some(d) => {
                            m.next_ms = now + d.as_millis() as i64;
                            reschedule = Some(m.next_ms);
                        }
                        None => {
                            m.status = Status::Failed;
                            finished = true;
                        }
                    }
                }
            }
            t.put(&m)?;
            if let Some(mut e) = t.get::<EndpointRec>(&ep_id)? {
                let mut change = None;
                if outcome.ok() {
                    if e.consecutive_failures > 0 {
                        change = Some(("recovered", format!("{} delivered after failures", m.id)));
                    }
                    e.consecutive_failures = 0;
                    e.failing_since_ms = None;
                    e.last_error.clear();
                } else {
                    e.consecutive_failures += 1;
                    let since = *e.failing_since_ms.get_or_insert(now);
                    e.last_error = outcome.error.clone();
                    let sustained = cfg.disable_after_seconds > 0
                        && now - since >= cfg.disable_after_seconds as i64 * 1000;
                    let in_a_row = cfg.disable_after_failures > 0
                        && e.consecutive_failures >= cfg.disable_after_failures;
                    if !e.disabled && (gone || sustained || in_a_row) {
                        let why = if gone {
                            "the endpoint answered 410 Gone".to_string()
                        } else {
                            format!(
                                "{} attempts in a row failed since {}; last: {}",
                                e.consecutive_failures,
                                since / 1000,
                                outcome.error
                            )
                        };
                        e.disabled = true;
                        e.disable_ms = now;
                        e.disabled_reason = why.clone();
                        change = Some(("disabled", why));
                    }
                }
                if let Some((ty, detail)) = change {
                    t.append_event(webhook_event(WebhookEndpointChange {
                        r#type: ty.into(),
                        endpoint_id: e.id.clone(),
                        url: e.def.url.clone(),
                        detail,
                    }))?;
                }
                t.put(&e)?;
            }
            Ok((reschedule, finished))
        })
        .await?;
    if let Some(at) = reschedule {
        gw.egress.schedule(at, id.to_string());
    }
    if finished {
        let n = gw.egress.finished.fetch_add(1, Ordering::Relaxed) + 1;
        let max = gw.egress.cfg.max_attempt_log;
        if n > max + max / 10 + 1 {
            prune(gw, max).await?;
        }
    }
    Ok(())
}

/// Deletes the oldest finished messages until `keep` remain.
async fn prune(gw: &Arc<Gateway>, keep: usize) -> Result<()> {
    let left = gw
        .store
        .write(move |t| {
            let mut finished = Vec::new();
            t.each(|m: MsgRec| {
                if m.status != Status::Pending {
                    finished.push(m.id)
                }
            })?;
            let cut = finished.len().saturating_sub(keep);
            for id in &finished[..cut] {
                t.delete::<MsgRec>(id)?;
            }
            Ok(finished.len() - cut)
        })
        .await?;
    gw.egress.finished.store(left, Ordering::Relaxed);
    Ok(())
}

// ------------------------------------------------------------------------------- API

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
        }),
        transform: e.def.transform.clone().unwrap_or_default(),
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

impl Gateway {
    /// `WebhookService/CreateWebhookEndpoint`.
    pub async fn create_webhook_endpoint(&self, n: NewEndpoint) -> Result<WebhookEndpoint> {
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
                }
            })
            .map(|f| canonical_filter(f, &self.egress.main_key))
            .filter(|f| *f != FilterConfig::default());
        let def = EndpointDef {
            url: n.url.trim().to_string(),
            events: n.events,
            headers: n.headers,
            filter,
            transform: Some(n.transform).filter(|t| !t.trim().is_empty()),
            secret: Some(secret.clone()),
        };
        let allow = self.egress.cfg.allow_private_targets;
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
        self.egress.wake_outbox.notify_one();
        let mut pb = endpoint_pb(&rec, 0);
        pb.secret = secret;
        Ok(pb)
    }

    /// `WebhookService/ListWebhookEndpoints`.
    pub fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
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
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<String> {
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
        lock(&self.egress.cursors).remove(&id);
        Ok(id)
    }

    /// `WebhookService/EnableWebhookEndpoint`.
    pub async fn enable_webhook_endpoint(&self, id: &str) -> Result<WebhookEndpoint> {
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
        lock(&self.egress.due).extend(pending);
        self.egress.wake_dispatch.notify_one();
        self.egress.wake_outbox.notify_one();
        Ok(endpoint_pb(&rec, n))
    }

    /// `WebhookService/ListWebhookDeliveries`: newest first.
    pub fn webhook_deliveries(
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
    pub async fn redeliver_webhook(
        &self,
        message_id: &str,
        endpoint_id: &str,
    ) -> Result<Vec<String>> {
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
        lock(&self.egress.due).extend(ids.iter().map(|i| (now, i.clone())));
        self.egress.wake_dispatch.notify_one();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_standard_webhooks() {
        // Vector from the standard-webhooks reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn retry_delays_follow_the_schedule_retry_after_and_throttle_floor() {
        let cfg = EgressConfig::default();
        let o = |status: u16, retry_after: Option<f64>, timed_out: bool| Outcome {
            status,
            timed_out,
            error: String::new(),
            latency_ms: 0,
            response: String::new(),
            retry_after,
        };
        let d = next_delay(&cfg, 1, &o(500, None, false)).unwrap();
        assert!(
            d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
            "{d:?}"
        );
        // Retry-After is clamped to [base, 2×base].
        let d = next_delay(&cfg, 2, &o(503, Some(100_000.0), false)).unwrap();
        assert_eq!(d, Duration::from_secs(600));
        let d = next_delay(&cfg, 2, &o(502, Some(1.0), false)).unwrap();
        assert_eq!(d, Duration::from_secs(300));
        // 429 and timeouts wait at least throttleMinSeconds.
        let d = next_delay(&cfg, 1, &o(429, Some(7.0), false)).unwrap();
        assert_eq!(d, Duration::from_secs(60));
        let d = next_delay(&cfg, 1, &o(0, None, true)).unwrap();
        assert_eq!(d, Duration::from_secs(60));
        // Seven delays: eight attempts, then FAILED.
        assert!(next_delay(&cfg, 7, &o(500, None, false)).is_some());
        assert!(next_delay(&cfg, 8, &o(500, None, false)).is_none());
    }

    #[test]
    fn private_targets() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
        ] {
            assert!(forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        let cfg = EgressConfig::default();
        let o = |url: &str, ev: &str| OutgoingWebhook {
            url: url.into(),
            event: EventNames::One(ev.into()),
            ..Default::default()
        };
        let e = validate(&[o("http://127.0.0.1:9/x", "run.completed")], &cfg).unwrap_err();
        assert!(
            e.contains("webhooks.outgoing[0].url") && e.contains("allowPrivateTargets"),
            "{e}"
        );
        let e = validate(&[o("https://example.com/", "run.done")], &cfg).unwrap_err();
        assert!(e.contains("webhooks.outgoing[0].event"), "{e}");
        let e = validate(&[o("nope", "*")], &cfg).unwrap_err();
        assert!(e.contains("webhooks.outgoing[0].url"), "{e}");
        let mut bad = o("https://example.com/", "agent.error");
        bad.transform = Some("{{ x".into());
        let e = validate(&[bad], &cfg).unwrap_err();
        assert!(e.contains("webhooks.outgoing[0].transform"), "{e}");
        assert!(validate(&[o("https://example.com/", "agent.task.completed")], &cfg).is_ok());
    }
}
