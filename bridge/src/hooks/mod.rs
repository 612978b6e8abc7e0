//! OpenClaw hooks (`hooks.*`, spec §4.1), drop-in compatible: `POST <path>/wake`,
//! `POST <path>/agent`, mapped `POST <path>/<name>`, plus `GET <path>/runs/<runId>`.
//! Each request is translated into GatewayService/Wake, AgentService/Run, Wait and GetRun;
//! the service layer authenticates the forwarded credential (the hooks token or an
//! operator token) and counts failures per client address.

pub(crate) mod reply;

pub use clawplane_config::hooks::{HookMapping, HookMatch, HooksConfig};
use clawplane_config::hooks::{non_empty, prefix_allowed};
use clawplane_util::template;

pub use crate::body::{BODY_TIMEOUT, MAX_BODY_BYTES};
use crate::{Caller, Services};
use crate::{
    body::read_body,
    respond::{Answer, bad, fail, json, reject, text},
    status::{hooks_error, http_status},
};
use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, Method, Request, StatusCode, header},
    response::Response,
    routing::any,
};
use clawplane_proto::v1::{
    AgentServiceRunRequest, AgentServiceWaitRequest, GatewayServiceWakeRequest, GetCallerRequest,
    GetRunRequest, WakeMode, WakeOutcome,
};
use reply::not_found;
use serde_json::{Map, Value as Json, json};
use sha2::{Digest as _, Sha256};
use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

/// Items of one `forEach` fan-out.
pub const MAX_FAN_OUT: usize = 200;
/// Longest idempotency key taken from a hook request (longer ones are ignored).
const MAX_IDEMPOTENCY_KEY: usize = 256;

const TOKEN_IN_QUERY: &str = "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header (query parameters are not allowed).";
const SESSION_KEY_POLICY: &str = "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable";
const AGENT_POLICY: &str = "agentId is not allowed by hooks.allowedAgentIds";

const AGENT_FIELDS: &[&str] = &[
    "message",
    "name",
    "agentId",
    "idempotencyKey",
    "wakeMode",
    "sessionKey",
    "sessionMode",
    "deliver",
    "channel",
    "to",
    "accountId",
    "model",
    "thinking",
    "timeoutSeconds",
    "waitForCompletion",
];
const WAKE_FIELDS: &[&str] = &["text", "mode", "agentId", "sessionKey"];

/// What the server knows that the hooks need: the default agent and the configured
/// channel ids (`channels.*` keys; `None` skips the channel check).
#[derive(Debug, Clone)]
pub struct HooksContext {
    pub default_agent_id: String,
    pub channels: Option<Vec<String>>,
}

impl Default for HooksContext {
    fn default() -> Self {
        HooksContext {
            default_agent_id: "main".into(),
            channels: None,
        }
    }
}

/// The hooks routes under `hooks.path`, for the server's one listener.
pub fn hooks_router(
    services: Services,
    cfg: &HooksConfig,
    ctx: HooksContext,
) -> Result<Router, String> {
    let c = Compiled::new(cfg, &ctx)?;
    for m in &c.mappings {
        let missing = match m.action {
            Action::Agent => m.message.is_none().then_some("messageTemplate"),
            Action::Wake => m.text.is_none().then_some("textTemplate"),
        };
        if let Some(field) = missing {
            tracing::warn!(mapping = %m.id, "hook mapping has no {field}; requests it matches get 400");
        }
    }
    let base = c.base.clone();
    let state = Arc::new(Hooks { s: services, c });
    Ok(Router::new()
        .route(&base, any(handle))
        .route(&format!("{base}/"), any(handle))
        .route(&format!("{base}/{{*rest}}"), any(handle))
        .with_state(state))
}

/// Lowercase prefix match (`hooks.allowedSessionKeyPrefixes`).
use clawplane_proto::keys::normalize_agent_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Agent,
    Wake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionMode {
    Isolated,
    Persistent,
}

/// Where a session key came from (what policy applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    Request,
    MappingStatic,
    MappingTemplated,
}

/// A mapping ready to match and render; templates live in [`Compiled::env`] under these
/// names.
struct Mapping {
    id: String,
    match_path: Option<String>,
    match_source: Option<String>,
    action: Action,
    wake_mode: WakeMode,
    session_mode: SessionMode,
    agent_id: Option<String>,
    for_each: Option<String>,
    deliver: bool,
    channel: String,
    account_id: String,
    timeout_seconds: u32,
    message: Option<String>,
    text: Option<String>,
    name: Option<String>,
    session_key: Option<(String, bool)>,
    to: Option<String>,
    model: Option<String>,
    thinking: Option<String>,
}

impl Mapping {
    fn matches(&self, sub: &str, payload: &Json) -> bool {
        if let Some(p) = &self.match_path
            && p != sub.trim_matches('/')
        {
            return false;
        }
        if let Some(s) = &self.match_source
            && payload.get("source").and_then(Json::as_str) != Some(s.as_str())
        {
            return false;
        }
        true
    }
}

/// Resolved `hooks.*`.
pub(crate) struct Compiled {
    base: String,
    allowed_agents: Option<HashSet<String>>,
    default_session_key: Option<String>,
    allow_request_session_key: bool,
    prefixes: Option<Vec<String>>,
    default_agent: String,
    channels: Option<Vec<String>>,
    mappings: Vec<Mapping>,
    env: minijinja::Environment<'static>,
}

/// Compiles `hooks.*` as the router would (templates included); nothing is checked while
/// hooks are disabled.
pub fn check(cfg: &HooksConfig) -> Result<(), String> {
    if !cfg.enabled {
        return Ok(());
    }
    cfg.validate()?;
    Compiled::new(cfg, &HooksContext::default()).map(|_| ())
}

impl Compiled {
    pub(crate) fn new(cfg: &HooksConfig, ctx: &HooksContext) -> Result<Compiled, String> {
        let allowed_agents = cfg.allowed_agent_ids.as_ref().and_then(|ids| {
            (!ids.iter().any(|i| i.trim() == "*"))
                .then(|| ids.iter().map(|i| normalize_agent_id(i)).collect())
        });
        let mut c = Compiled {
            base: cfg.base_path()?,
            allowed_agents,
            default_session_key: non_empty(cfg.default_session_key.as_deref()).map(str::to_string),
            allow_request_session_key: cfg.allow_request_session_key,
            prefixes: cfg.prefixes(),
            default_agent: normalize_agent_id(&ctx.default_agent_id),
            channels: ctx.channels.clone(),
            mappings: Vec::new(),
            env: template::environment(),
        };
        for (i, m) in cfg.mappings.iter().enumerate() {
            let mapping = c.compile_mapping(i, m)?;
            c.mappings.push(mapping);
        }
        Ok(c)
    }

    fn compile_mapping(&mut self, i: usize, m: &HookMapping) -> Result<Mapping, String> {
        let at = |field: &str| format!("hooks.mappings[{i}].{field}");
        if m.transform.is_some() {
            return Err(format!(
                "{}: JS transforms are not supported; build the action with messageTemplate or textTemplate",
                at("transform")
            ));
        }
        let action = match non_empty(m.action.as_deref()) {
            None | Some("agent") => Action::Agent,
            Some("wake") => Action::Wake,
            Some(other) => return Err(format!("{}: {other:?} is not agent or wake", at("action"))),
        };
        let wake_mode = match non_empty(m.wake_mode.as_deref()) {
            None | Some("now") => WakeMode::Now,
            Some("next-heartbeat") => WakeMode::NextHeartbeat,
            Some(other) => {
                return Err(format!(
                    "{}: {other:?} is not now or next-heartbeat",
                    at("wakeMode")
                ));
            }
        };
        let session_mode = match non_empty(m.session_mode.as_deref()) {
            None | Some("isolated") => SessionMode::Isolated,
            Some("persistent") => SessionMode::Persistent,
            Some(other) => {
                return Err(format!(
                    "{}: {other:?} is not isolated or persistent",
                    at("sessionMode")
                ));
            }
        };
        let channel = match non_empty(m.channel.as_deref()) {
            None => "last".to_string(),
            Some(ch) => self
                .channel(ch)
                .map_err(|e| format!("{}: {e}", at("channel")))?,
        };
        let timeout_seconds = match m.timeout_seconds {
            None => 0,
            Some(t) if t.is_finite() && t >= 1.0 => t.floor().min(f64::from(u32::MAX)) as u32,
            Some(t) => {
                return Err(format!(
                    "{}: {t} is not a positive number",
                    at("timeoutSeconds")
                ));
            }
        };
        let mut add = |field: &str, src: Option<&String>| -> Result<Option<String>, String> {
            let Some(src) = src.filter(|s| !s.trim().is_empty()) else {
                return Ok(None);
            };
            let name = format!("{i}.{field}");
            self.env
                .add_template_owned(name.clone(), template::rewrite(src))
                .map_err(|e| format!("{}: {e}", at(field)))?;
            Ok(Some(name))
        };
        let message = add("messageTemplate", m.message_template.as_ref())?;
        let text = add("textTemplate", m.text_template.as_ref())?;
        let name = add("name", m.name.as_ref())?;
        let session_key = add("sessionKey", m.session_key.as_ref())?.map(|n| {
            (
                n,
                template::is_templated(m.session_key.as_deref().unwrap_or("")),
            )
        });
        let to = add("to", m.to.as_ref())?;
        let model = add("model", m.model.as_ref())?;
        let thinking = add("thinking", m.thinking.as_ref())?;
        let match_rule = m.match_rule.clone().unwrap_or_default();
        Ok(Mapping {
            id: non_empty(m.id.as_deref())
                .map_or_else(|| format!("mapping-{}", i + 1), str::to_string),
            match_path: non_empty(match_rule.path.as_deref())
                .map(|p| p.trim_matches('/').to_string())
                .filter(|p| !p.is_empty()),
            match_source: non_empty(match_rule.source.as_deref()).map(str::to_string),
            action,
            wake_mode,
            session_mode,
            agent_id: non_empty(m.agent_id.as_deref()).map(str::to_string),
            for_each: non_empty(m.for_each.as_deref()).map(str::to_string),
            deliver: m.deliver.unwrap_or(true),
            channel,
            account_id: non_empty(m.account_id.as_deref())
                .unwrap_or_default()
                .to_string(),
            timeout_seconds,
            message,
            text,
            name,
            session_key,
            to,
            model,
            thinking,
        })
    }

    /// A channel id as OpenClaw accepts it: `last` or a configured channel.
    fn channel(&self, raw: &str) -> Result<String, String> {
        let ch = raw.trim().to_ascii_lowercase();
        if ch == "last" {
            return Ok(ch);
        }
        let known = match &self.channels {
            Some(list) => list.iter().any(|c| c.eq_ignore_ascii_case(&ch)),
            None => {
                !ch.is_empty()
                    && ch
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }
        };
        if known {
            Ok(ch)
        } else {
            Err(self.channel_error())
        }
    }

    fn channel_error(&self) -> String {
        let mut ids = vec!["last".to_string()];
        ids.extend(self.channels.iter().flatten().cloned());
        format!("channel must be {}", ids.join("|"))
    }

    fn prefix_error(&self) -> String {
        format!(
            "sessionKey must start with one of: {}",
            self.prefixes.as_deref().unwrap_or_default().join(", ")
        )
    }

    fn check_prefix(&self, key: &str) -> Answer<()> {
        match &self.prefixes {
            Some(p) if !prefix_allowed(key, p) => reject(bad(self.prefix_error())),
            _ => Ok(()),
        }
    }

    /// The agent a hook targets (`agentId` or the default), under `hooks.allowedAgentIds`.
    fn target_agent(&self, requested: Option<&str>) -> Answer<String> {
        let agent = requested.map_or_else(|| self.default_agent.clone(), normalize_agent_id);
        match &self.allowed_agents {
            Some(allowed) if !allowed.contains(&agent) => reject(bad(AGENT_POLICY)),
            _ => Ok(agent),
        }
    }

    /// The session key to dispatch under: the requested key (subject to
    /// `allowRequestSessionKey` and the prefixes), else `hooks.defaultSessionKey`, else a
    /// generated `hook:<uuid>`. An agent-prefixed key is re-scoped to the target agent.
    fn session_key(
        &self,
        source: KeySource,
        requested: Option<&str>,
        agent: &str,
        idempotency_key: Option<&str>,
    ) -> Answer<String> {
        let key = if let Some(k) = requested {
            if source != KeySource::MappingStatic && !self.allow_request_session_key {
                return reject(bad(SESSION_KEY_POLICY));
            }
            self.check_prefix(k)?;
            k.to_string()
        } else if let Some(d) = &self.default_session_key {
            d.clone()
        } else {
            let g = generated_session_key(idempotency_key);
            self.check_prefix(&g)?;
            g
        };
        let key = match key.strip_prefix("agent:").and_then(|r| r.split_once(':')) {
            Some((_, rest)) if !rest.is_empty() => format!("agent:{agent}:{rest}"),
            _ => key,
        };
        self.check_prefix(&key)?;
        Ok(key)
    }
}

/// `hook:<uuid>`: random, or derived from the idempotency key so a replay lands on the same
/// session (and so is recognised as the same run).
fn generated_session_key(idempotency_key: Option<&str>) -> String {
    let id = match idempotency_key {
        Some(k) => {
            let h = Sha256::digest(format!("clawplane-hook-session:{k}").as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[..16]);
            uuid::Builder::from_random_bytes(b).into_uuid()
        }
        None => uuid::Uuid::new_v4(),
    };
    format!("hook:{id}")
}

struct Hooks {
    s: Services,
    c: Compiled,
}

/// A parsed, authenticated hook request.
struct HookRequest {
    caller: Caller,
    sub: String,
    payload: Json,
    headers: Map<String, Json>,
    query: Map<String, Json>,
    idempotency_key: Option<String>,
    warnings: Vec<String>,
}

/// The credential as OpenClaw extracts it: `Authorization: Bearer <t>` (scheme
/// case-insensitive, non-empty) wins, else `x-openclaw-token`.
fn credential(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            let t = v[7..].trim();
            if !t.is_empty() {
                return Some(t.to_string());
            }
        }
    }
    headers
        .get("x-openclaw-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}

/// Header names lowercased; repeated headers joined with ", ".
fn header_map(headers: &HeaderMap) -> Map<String, Json> {
    let mut m = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        m.insert(name.as_str().to_ascii_lowercase(), joined.into());
    }
    m
}

/// `Idempotency-Key`, then `X-OpenClaw-Idempotency-Key`, then the body's `idempotencyKey`
/// (trimmed; longer than 256 characters is ignored, with a warning).
fn idempotency_key(
    headers: &HeaderMap,
    payload: &Json,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let candidates = [
        (
            "Idempotency-Key header",
            headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
        ),
        (
            "X-OpenClaw-Idempotency-Key header",
            headers
                .get("x-openclaw-idempotency-key")
                .and_then(|v| v.to_str().ok()),
        ),
        (
            "idempotencyKey",
            payload.get("idempotencyKey").and_then(Json::as_str),
        ),
    ];
    for (what, v) in candidates {
        let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        if v.chars().count() > MAX_IDEMPOTENCY_KEY {
            warnings.push(format!(
                "{what} ignored: longer than {MAX_IDEMPOTENCY_KEY} characters"
            ));
            continue;
        }
        return Some(v.to_string());
    }
    None
}

async fn handle(State(h): State<Arc<Hooks>>, req: Request<Body>) -> Response {
    match h.serve(req).await {
        Ok(r) => r,
        Err(r) => *r,
    }
}

/// A trimmed, non-empty string field.
fn str_field<'a>(p: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    p.get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `agentId`: absent, or a non-empty string.
fn agent_field(p: &Map<String, Json>) -> Answer<Option<&str>> {
    match p.get("agentId") {
        None => Ok(None),
        Some(_) => str_field(p, "agentId")
            .map(Some)
            .ok_or_else(|| Box::new(bad("agentId must be a non-empty string"))),
    }
}

fn unknown_fields(p: &Map<String, Json>, known: &[&str], warnings: &mut Vec<String>) {
    for k in p.keys().filter(|k| !known.contains(&k.as_str())) {
        warnings.push(format!("unknown field {k:?} ignored"));
    }
}

fn wake_mode_name(m: WakeMode) -> &'static str {
    if m == WakeMode::NextHeartbeat {
        "next-heartbeat"
    } else {
        "now"
    }
}

fn outcome_name(o: i32) -> &'static str {
    if o == WakeOutcome::Coalesced as i32 {
        "coalesced"
    } else {
        "queued"
    }
}

fn with_warnings(mut body: Json, warnings: Vec<String>) -> Json {
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    body
}

/// One prepared action of a mapping.
enum Prepared {
    Agent(Box<AgentServiceRunRequest>),
    Wake(GatewayServiceWakeRequest),
}

impl Hooks {
    async fn serve(&self, req: Request<Body>) -> Answer<Response> {
        let (parts, body) = req.into_parts();
        let Some(rest) = parts.uri.path().strip_prefix(self.c.base.as_str()) else {
            return reject(not_found());
        };
        let query = query_pairs(parts.uri.query());
        if query.iter().any(|(k, _)| k == "token") {
            return reject(text(StatusCode::BAD_REQUEST, TOKEN_IN_QUERY));
        }
        let sub = rest.trim_start_matches('/').to_string();
        let runs = sub == "runs" || sub.starts_with("runs/");
        let (method, allow) = if runs {
            (Method::GET, "GET")
        } else {
            (Method::POST, "POST")
        };
        if parts.method != method {
            return reject(reply::method_not_allowed(allow));
        }
        let caller = Caller {
            token: credential(&parts.headers),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            forwarding: crate::forwarding_headers(&parts.headers),
        };
        self.authenticate(&caller).await?;
        if sub.is_empty() {
            return reject(not_found());
        }
        if runs {
            return self
                .get_run(
                    &caller,
                    sub.strip_prefix("runs")
                        .unwrap_or_default()
                        .trim_start_matches('/'),
                )
                .await;
        }
        let body = read_body(body, &parts.headers).await?;
        let payload = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice::<Json>(&body)
                .map_err(|e| bad(format!("invalid JSON body: {e}")))?
        };
        let payload = if payload.is_object() {
            payload
        } else {
            json!({})
        };
        let mut warnings = Vec::new();
        let idempotency_key = idempotency_key(&parts.headers, &payload, &mut warnings);
        let r = HookRequest {
            caller,
            query: query
                .into_iter()
                .map(|(k, v)| (k, Json::String(v)))
                .collect(),
            headers: header_map(&parts.headers),
            sub,
            payload,
            idempotency_key,
            warnings,
        };
        match r.sub.as_str() {
            "wake" => self.wake(r).await,
            "agent" => self.agent(r).await,
            _ => self.mapped(r).await,
        }
    }

    /// Lets the service layer authenticate the caller before anything else is looked at
    /// (GatewayService/GetCaller: any valid credential; scopes are checked by the call
    /// that follows).
    async fn authenticate(&self, caller: &Caller) -> Answer<()> {
        self.s
            .gateway
            .get_caller(caller.request(GetCallerRequest {}))
            .await
            .map(|_| ())
            .or_else(|s| reject(hooks_error(&s)))
    }

    async fn get_run(&self, caller: &Caller, run_id: &str) -> Answer<Response> {
        if run_id.is_empty() {
            return reject(not_found());
        }
        let run = self
            .s
            .agent
            .get_run(caller.request(GetRunRequest {
                run_id: run_id.to_string(),
            }))
            .await
            .map_err(|s| hooks_error(&s))?
            .into_inner()
            .run
            .unwrap_or_default();
        let done = run.state().is_terminal();
        Ok(json(StatusCode::OK, reply::run_json(&run, done)))
    }

    /// `POST <hooks>/wake` → GatewayService/Wake.
    async fn wake(&self, r: HookRequest) -> Answer<Response> {
        let p = r.payload.as_object().cloned().unwrap_or_default();
        let mut warnings = r.warnings;
        unknown_fields(&p, WAKE_FIELDS, &mut warnings);
        let text = str_field(&p, "text").ok_or_else(|| bad("text required"))?;
        let mode = match p.get("mode").and_then(Json::as_str) {
            Some("next-heartbeat") => WakeMode::NextHeartbeat,
            Some("now") | None => WakeMode::Now,
            Some(other) => {
                warnings.push(format!(
                    "mode {other:?} is not now or next-heartbeat; using now"
                ));
                WakeMode::Now
            }
        };
        let agent = agent_field(&p)?;
        let session_key = str_field(&p, "sessionKey");
        if p.contains_key("sessionKey") && session_key.is_none() {
            return reject(bad("sessionKey must be a non-empty string"));
        }
        if mode == WakeMode::NextHeartbeat && session_key.is_some() {
            return reject(bad("sessionKey requires mode=now"));
        }
        let agent = self.c.target_agent(agent)?;
        let key = match session_key {
            Some(k) => self
                .c
                .session_key(KeySource::Request, Some(k), &agent, None)?,
            None => String::new(),
        };
        let w = self
            .s
            .gateway
            .wake(r.caller.request(GatewayServiceWakeRequest {
                text: text.to_string(),
                mode: mode as i32,
                session_key: key,
                agent_id: agent,
            }))
            .await
            .map_err(|s| hooks_error(&s))?
            .into_inner();
        Ok(json(
            StatusCode::OK,
            with_warnings(
                json!({"ok": true, "mode": wake_mode_name(mode), "eventOutcome": outcome_name(w.outcome)}),
                warnings,
            ),
        ))
    }

    /// Direct-path delivery fields (OpenClaw's `normalizeHookAgentDelivery`): returns
    /// (deliver, channel, to, accountId).
    fn direct_delivery(
        &self,
        p: &Map<String, Json>,
        warnings: &mut Vec<String>,
    ) -> Answer<(bool, String, String, String)> {
        let deliver = p.get("deliver") != Some(&Json::Bool(false));
        let (has_channel, has_to, has_account) = (
            p.contains_key("channel"),
            p.contains_key("to"),
            p.contains_key("accountId"),
        );
        if !deliver {
            if has_channel || has_to || has_account {
                warnings
                    .push("channel, to and accountId are ignored because deliver is false".into());
            }
            return Ok((false, String::new(), String::new(), String::new()));
        }
        let channel = match p.get("channel") {
            None => "last".to_string(),
            Some(Json::String(s)) => self.c.channel(s).map_err(bad)?,
            Some(_) => return reject(bad(self.c.channel_error())),
        };
        let to = str_field(p, "to");
        let account = str_field(p, "accountId");
        if !has_channel && !has_to && !has_account {
            return Ok((true, channel, String::new(), String::new()));
        }
        if has_to && to.is_none() {
            return reject(bad("to must be a non-empty string for hook delivery"));
        }
        if has_account && account.is_none() {
            return reject(bad(
                "accountId must be a non-empty string for hook delivery",
            ));
        }
        if has_account && (!has_channel || to.is_none()) {
            return reject(bad("accountId requires channel and to for hook delivery"));
        }
        let Some(to) = to.filter(|_| has_channel) else {
            return reject(bad("channel and to must be set together for hook delivery"));
        };
        if channel == "last" {
            return reject(bad(
                "channel must name a concrete channel for hook delivery",
            ));
        }
        Ok((
            true,
            channel,
            to.to_string(),
            account.unwrap_or_default().to_string(),
        ))
    }

    /// `POST <hooks>/agent` → AgentService/Run (and Wait with `waitForCompletion`).
    async fn agent(&self, r: HookRequest) -> Answer<Response> {
        let p = r.payload.as_object().cloned().unwrap_or_default();
        let mut warnings = r.warnings;
        unknown_fields(&p, AGENT_FIELDS, &mut warnings);
        let wait = match p.get("waitForCompletion") {
            None => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => return reject(bad("waitForCompletion must be boolean")),
        };
        let message = str_field(&p, "message").ok_or_else(|| bad("message required"))?;
        let name = str_field(&p, "name").unwrap_or("Hook");
        let agent = agent_field(&p)?;
        match p.get("wakeMode") {
            None => {}
            Some(Json::String(m)) if m == "now" || m == "next-heartbeat" => {}
            Some(other) => warnings.push(format!(
                "wakeMode {other} is not now or next-heartbeat; using now"
            )),
        }
        let session_key = str_field(&p, "sessionKey");
        let mode = match p.get("sessionMode") {
            None => SessionMode::Isolated,
            Some(Json::String(m)) if m == "isolated" => SessionMode::Isolated,
            Some(Json::String(m)) if m == "persistent" => SessionMode::Persistent,
            Some(_) => return reject(bad("sessionMode must be isolated or persistent")),
        };
        let (deliver, channel, to, account_id) = self.direct_delivery(&p, &mut warnings)?;
        let model = match p.get("model") {
            None => "",
            Some(_) => str_field(&p, "model").ok_or_else(|| bad("model required"))?,
        };
        let thinking = str_field(&p, "thinking").unwrap_or_default();
        let timeout_seconds = match p.get("timeoutSeconds") {
            None => 0,
            Some(t) => match t.as_f64().filter(|t| t.is_finite() && *t >= 1.0) {
                Some(t) => t.floor().min(f64::from(u32::MAX)) as u32,
                None => {
                    warnings.push(format!(
                        "timeoutSeconds {t} ignored: not a positive number of seconds"
                    ));
                    0
                }
            },
        };
        let agent = self.c.target_agent(agent)?;
        if mode == SessionMode::Persistent && session_key.is_none() {
            return reject(bad("sessionKey is required when sessionMode is persistent"));
        }
        let key = self.c.session_key(
            KeySource::Request,
            session_key,
            &agent,
            r.idempotency_key.as_deref(),
        )?;
        if mode == SessionMode::Persistent && self.c.prefixes.is_none() {
            return reject(bad(
                "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent",
            ));
        }
        let run = AgentServiceRunRequest {
            message: message.to_string(),
            idempotency_key: r.idempotency_key.clone().unwrap_or_default(),
            agent_id: agent,
            session_key: key,
            // Only the default route (`last`) is best effort; a named channel + recipient
            // that cannot be delivered to is refused.
            best_effort_deliver: channel == "last",
            channel,
            to,
            account_id,
            deliver,
            model: model.to_string(),
            thinking: thinking.to_string(),
            timeout_seconds,
            label: name.to_string(),
            ..Default::default()
        };
        let (mut body, run_warnings) = self.run(&r.caller, run).await?;
        warnings.extend(run_warnings);
        if wait {
            let run_id = body["runId"].as_str().unwrap_or_default().to_string();
            body["completion"] = self.complete(&r.caller, &run_id).await?;
        }
        Ok(json(StatusCode::OK, with_warnings(body, warnings)))
    }

    /// AgentService/Run → `{ok, runId, sessionKey}` plus a warning when the reply will not
    /// be delivered anywhere.
    async fn run(
        &self,
        caller: &Caller,
        req: AgentServiceRunRequest,
    ) -> Answer<(Json, Vec<String>)> {
        let deliver = req.deliver;
        let resp = self
            .s
            .agent
            .run(caller.request(req))
            .await
            .map_err(|s| hooks_error(&s))?
            .into_inner();
        let mut warnings = Vec::new();
        if deliver && let Some(why) = reply::no_route(resp.delivery.as_ref()) {
            warnings.push(format!(
                "deliver is true but the reply will not be delivered anywhere: {why}"
            ));
        }
        Ok((
            json!({"ok": true, "runId": resp.run_id, "sessionKey": resp.session_key}),
            warnings,
        ))
    }

    /// Waits (AgentService/Wait, repeatedly) until the run is terminal; its completion.
    async fn complete(&self, caller: &Caller, run_id: &str) -> Answer<Json> {
        loop {
            let started = Instant::now();
            let w = self
                .s
                .agent
                .wait(caller.request(AgentServiceWaitRequest {
                    run_id: run_id.to_string(),
                    timeout_ms: 30_000,
                }))
                .await
                .map_err(|s| hooks_error(&s))?
                .into_inner();
            let run = w.run.unwrap_or_default();
            if w.done {
                return Ok(reply::completion_json(&run));
            }
            if started.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Mapped `POST <hooks>/<name>`: first matching mapping, rendered per item.
    async fn mapped(&self, r: HookRequest) -> Answer<Response> {
        let Some(m) = self
            .c
            .mappings
            .iter()
            .find(|m| m.matches(&r.sub, &r.payload))
        else {
            return reject(not_found());
        };
        let mut warnings = r.warnings.clone();
        let items: Vec<&Json> = match &m.for_each {
            None => vec![&r.payload],
            Some(key) => match r.payload.get(key) {
                None | Some(Json::Null) => Vec::new(),
                Some(Json::Array(items)) => {
                    if items.len() > MAX_FAN_OUT {
                        warnings.push(format!(
                            "forEach {key:?} has {} items; only the first {MAX_FAN_OUT} were dispatched",
                            items.len()
                        ));
                    }
                    items.iter().take(MAX_FAN_OUT).collect()
                }
                Some(_) => {
                    return reject(bad(format!(
                        "hook mapping forEach key {key:?} is not an array"
                    )));
                }
            },
        };
        if items.is_empty() {
            return Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default());
        }
        let fan_out = m.for_each.is_some();
        let now = reply::now_iso();
        let path = r.sub.trim_matches('/');
        // Render and check everything first: bad input dispatches nothing.
        let mut prepared = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ctx = template::context(item, &r.headers, &r.query, path, &now);
            let key = r.idempotency_key.as_ref().map(|k| {
                if fan_out {
                    format!("{k}:{i}")
                } else {
                    k.clone()
                }
            });
            prepared.push(self.prepare(m, &ctx, key)?);
        }
        if !fan_out {
            return match prepared.pop() {
                Some(Prepared::Agent(req)) => {
                    let (body, more) = self.run(&r.caller, *req).await?;
                    warnings.extend(more);
                    Ok(json(StatusCode::OK, with_warnings(body, warnings)))
                }
                Some(Prepared::Wake(req)) => {
                    let mode = WakeMode::try_from(req.mode).unwrap_or(WakeMode::Now);
                    let w = self
                        .s
                        .gateway
                        .wake(r.caller.request(req))
                        .await
                        .map_err(|s| hooks_error(&s))?
                        .into_inner();
                    Ok(json(
                        StatusCode::OK,
                        with_warnings(
                            json!({"ok": true, "mode": wake_mode_name(mode), "eventOutcome": outcome_name(w.outcome)}),
                            warnings,
                        ),
                    ))
                }
                None => reject(not_found()),
            };
        }
        // Fan-out, in item order (items of one session run in this order).
        let total = prepared.len();
        let (mut run_ids, mut errors, mut failures, mut first_error) =
            (Vec::new(), Vec::new(), 0usize, None);
        let mut outcome = None;
        let mut mode = WakeMode::Now;
        for p in prepared {
            let result = match p {
                Prepared::Agent(req) => {
                    self.s
                        .agent
                        .run(r.caller.request(*req))
                        .await
                        .map(|resp| {
                            let resp = resp.into_inner();
                            if let Some(why) = reply::no_route(resp.delivery.as_ref())
                                && warnings.len() < 5
                            {
                                warnings.push(format!(
                                    "run {}: deliver is true but the reply will not be delivered anywhere: {why}",
                                    resp.run_id
                                ));
                            }
                            run_ids.push(resp.run_id);
                        })
                }
                Prepared::Wake(req) => {
                    mode = WakeMode::try_from(req.mode).unwrap_or(WakeMode::Now);
                    self.s
                        .gateway
                        .wake(r.caller.request(req))
                        .await
                        .map(|w| {
                            let o = w.into_inner().outcome;
                            if outcome != Some(WakeOutcome::Queued as i32) {
                                outcome = Some(o);
                            }
                        })
                }
            };
            if let Err(s) = result {
                failures += 1;
                if errors.len() < 5 {
                    errors.push(s.message().to_string());
                }
                first_error.get_or_insert(s);
            }
        }
        if let Some(s) = first_error {
            return Ok(json(
                http_status(s.code()),
                json!({
                    "ok": false,
                    "error": format!(
                        "hook fan-out incomplete: {}/{total} dispatched, {failures} failed",
                        total - failures
                    ),
                    "runIds": run_ids,
                    "errors": errors,
                }),
            ));
        }
        let body = match m.action {
            Action::Agent => json!({
                "ok": true,
                "runId": run_ids.first(),
                "runIds": run_ids,
                "dispatched": total,
            }),
            Action::Wake => json!({
                "ok": true,
                "mode": wake_mode_name(mode),
                "eventOutcome": outcome_name(outcome.unwrap_or(WakeOutcome::Queued as i32)),
                "dispatched": total,
            }),
        };
        Ok(json(StatusCode::OK, with_warnings(body, warnings)))
    }

    /// Renders a template as is (messages and texts, as OpenClaw does).
    fn render_raw(&self, name: Option<&String>, ctx: &minijinja::Value) -> Answer<Option<String>> {
        let Some(name) = name else {
            return Ok(None);
        };
        self.c
            .env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| {
                tracing::warn!(template = %name, error = %e, "hook mapping failed");
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("hook mapping failed: {e}"),
                )
            })
            .map(Some)
            .map_err(Box::new)
    }

    /// Renders a template, trimmed; `None` when absent or empty.
    fn render(&self, name: Option<&String>, ctx: &minijinja::Value) -> Answer<Option<String>> {
        Ok(self
            .render_raw(name, ctx)?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    }

    /// Renders one action of a mapping and applies the hook policies.
    fn prepare(
        &self,
        m: &Mapping,
        ctx: &minijinja::Value,
        idempotency_key: Option<String>,
    ) -> Answer<Prepared> {
        let agent = self.c.target_agent(m.agent_id.as_deref())?;
        let session_key = match &m.session_key {
            None => None,
            Some((tpl, templated)) => match self.render(Some(tpl), ctx)? {
                Some(k) => Some((k, *templated)),
                None if *templated => {
                    return reject(bad("hook mapping sessionKey template rendered empty"));
                }
                None => None,
            },
        };
        let source = match &session_key {
            Some((_, true)) => KeySource::MappingTemplated,
            _ => KeySource::MappingStatic,
        };
        let requested = session_key.as_ref().map(|(k, _)| k.as_str());
        match m.action {
            Action::Wake => {
                let text = self
                    .render_raw(m.text.as_ref(), ctx)?
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| bad("hook mapping requires text"))?;
                if requested.is_some() && m.wake_mode == WakeMode::NextHeartbeat {
                    return reject(bad("hook mapping sessionKey requires wakeMode=now"));
                }
                let key = match requested {
                    Some(k) => self.c.session_key(source, Some(k), &agent, None)?,
                    None => String::new(),
                };
                Ok(Prepared::Wake(GatewayServiceWakeRequest {
                    text,
                    mode: m.wake_mode as i32,
                    session_key: key,
                    agent_id: agent,
                }))
            }
            Action::Agent => {
                let message = self
                    .render_raw(m.message.as_ref(), ctx)?
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| bad("hook mapping requires message"))?;
                if m.session_mode == SessionMode::Persistent
                    && requested.is_none()
                    && self.c.default_session_key.is_none()
                {
                    return reject(bad(
                        "sessionKey or hooks.defaultSessionKey is required when mapped hook sessionMode is persistent",
                    ));
                }
                let key =
                    self.c
                        .session_key(source, requested, &agent, idempotency_key.as_deref())?;
                let name = self.render(m.name.as_ref(), ctx)?;
                let (channel, to, account_id) = if m.deliver {
                    (
                        m.channel.clone(),
                        self.render(m.to.as_ref(), ctx)?.unwrap_or_default(),
                        m.account_id.clone(),
                    )
                } else {
                    Default::default()
                };
                let best_effort = channel.is_empty() || channel == "last";
                Ok(Prepared::Agent(Box::new(AgentServiceRunRequest {
                    message,
                    idempotency_key: idempotency_key.unwrap_or_default(),
                    agent_id: agent,
                    session_key: key,
                    channel,
                    to,
                    account_id,
                    // OpenClaw's default route is the session's last one; a hook whose
                    // session has none still runs (the answer carries a warning).
                    best_effort_deliver: best_effort,
                    deliver: m.deliver,
                    model: self.render(m.model.as_ref(), ctx)?.unwrap_or_default(),
                    thinking: self.render(m.thinking.as_ref(), ctx)?.unwrap_or_default(),
                    timeout_seconds: m.timeout_seconds,
                    label: name.unwrap_or_else(|| "Hook".into()),
                    ..Default::default()
                })))
            }
        }
    }
}

#[cfg(test)]
#[path = "hooks_proptest.rs"]
mod proptests;
