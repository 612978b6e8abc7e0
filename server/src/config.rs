//! Configuration: one JSON5 file with openclaw.json-compatible keys where meanings match,
//! `${VAR}` substitution, `CLAWPLANE_*` env overrides, then CLI flags (applied by `serve`).

use serde::Deserialize;
use std::{net::IpAddr, path::PathBuf, time::Duration};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Config {
    pub gateway: GatewayConfig,
    pub agents: AgentsConfig,
    pub session: SessionConfig,
    pub events: EventsConfig,
    /// OpenClaw HTTP hooks (`hooks.*`), served by the bridge on the same port.
    pub hooks: clawplane_bridge::hooks::HooksConfig,
    /// Webhooks: templated ingress (`webhooks.incoming`, `/webhook/<path>`).
    pub webhooks: WebhooksConfig,
    /// Channels (`channels.discord`, `.telegram`, `.whatsapp`, `.slack`, `.webhook`).
    pub channels: crate::channels::ChannelsConfig,
    /// Model providers (`models.providers.<id>`).
    pub models: crate::models::ModelsConfig,
    /// Free-form; ignored by the gateway.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayConfig {
    pub port: u16,
    /// `loopback` (default), `lan`, or an IP address.
    pub bind: String,
    pub auth: AuthConfig,
    /// How long in-flight runs may drain on SIGTERM before the process exits.
    pub shutdown_grace_ms: u64,
    /// Accepted for openclaw.json compatibility (`local` | `remote`).
    pub mode: Option<String>,
    /// Reverse proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed for the client
    /// address; from anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Device pairing (`gateway.nodes.pairing.*`).
    pub nodes: NodesConfig,
    /// Open WebSocket connections at most; more are closed with 1013 (try again later).
    pub max_connections: usize,
    /// Open TCP connections at most (every protocol); past it new connections are closed
    /// at once, so a connection flood cannot exhaust file descriptors or memory.
    pub max_tcp_connections: usize,
    /// How long a client may take to send a request head before the connection is closed
    /// (slowloris guard).
    pub header_read_timeout_ms: u64,
    /// WebSocket limits (`gateway.ws.*`).
    pub ws: WsLimitsConfig,
    /// TLS for every surface of the one port (`gateway.tls.*`).
    pub tls: TlsConfig,
    /// Allow binding a non-loopback address without TLS (tokens then cross the network in
    /// clear text). Off by default: such a start is refused.
    pub allow_insecure_remote: bool,
}

/// `gateway.tls`: rustls on the one port (gRPC over h2 via ALPN, gRPC-Web, HTTP hooks and
/// webhooks, `wss://`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsConfig {
    /// On/off. Unset: on when `autoGenerate` is true or `certPath`/`keyPath` are set.
    pub enabled: Option<bool>,
    /// PEM certificate chain (leaf first). Reloaded when the file changes.
    pub cert_path: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Reloaded when the file changes.
    pub key_path: Option<PathBuf>,
    /// Create a self-signed certificate (SANs localhost, 127.0.0.1, ::1 and the bind
    /// address) when the files are missing; default `<data-dir>/tls/cert.pem` and
    /// `key.pem`. Unset with `enabled: true` and no paths: true.
    pub auto_generate: Option<bool>,
}

impl TlsConfig {
    /// True when TLS is on.
    pub fn is_enabled(&self) -> bool {
        match self.enabled {
            Some(on) => on,
            None => {
                self.auto_generate == Some(true)
                    || self.cert_path.is_some()
                    || self.key_path.is_some()
            }
        }
    }

    /// Checks the combination (after `serve --tls-cert/--tls-key` were applied).
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.cert_path.is_some() != self.key_path.is_some() {
            return Err(ConfigError::Invalid(
                "gateway.tls: certPath and keyPath go together (--tls-cert and --tls-key); set both"
                    .into(),
            ));
        }
        if self.is_enabled() && !self.generates() && self.cert_path.is_none() {
            return Err(ConfigError::Invalid(
                "gateway.tls: TLS is enabled but has no certificate; set certPath and keyPath, or autoGenerate: true"
                    .into(),
            ));
        }
        Ok(())
    }

    /// True when a missing certificate is generated.
    pub fn generates(&self) -> bool {
        match self.auto_generate {
            Some(on) => on,
            None => self.cert_path.is_none() && self.key_path.is_none(),
        }
    }
}

/// `gateway.ws`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WsLimitsConfig {
    /// Outbound bytes a socket may leave unread before it is closed as a slow consumer
    /// (`policy.maxBufferedBytes`; OpenClaw: 50 MiB).
    pub max_buffered_bytes: usize,
}

impl Default for WsLimitsConfig {
    fn default() -> Self {
        WsLimitsConfig {
            max_buffered_bytes: 52_428_800,
        }
    }
}

/// `gateway.nodes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodesConfig {
    pub pairing: PairingConfig,
}

/// `gateway.nodes.pairing`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PairingConfig {
    /// Approve pairing silently for a loopback caller without forwarding headers that
    /// presented the gateway token (OpenClaw's default: true).
    pub auto_approve_local: bool,
    /// How long a pending pairing request lives (OpenClaw: 5 minutes).
    pub pending_ttl_ms: u64,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            auto_approve_local: true,
            pending_ttl_ms: 300_000,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            port: 18789,
            bind: "loopback".into(),
            auth: AuthConfig::default(),
            shutdown_grace_ms: 5000,
            mode: None,
            trusted_proxies: Vec::new(),
            nodes: NodesConfig::default(),
            max_connections: 20_000,
            header_read_timeout_ms: 30_000,
            max_tcp_connections: 50_000,
            ws: WsLimitsConfig::default(),
            tls: TlsConfig::default(),
            allow_insecure_remote: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthConfig {
    /// Accepted for compatibility; only `token` is implemented.
    pub mode: Option<String>,
    pub token: Option<String>,
    pub rate_limit: RateLimitConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimitConfig {
    pub max_attempts: u32,
    pub window_ms: u64,
    pub lockout_ms: u64,
    /// Requests per credential (the gateway token, the hooks token, each device role).
    pub per_credential: RequestRate,
    /// Requests across all callers.
    pub global: RequestRate,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_attempts: 20,
            window_ms: 60_000,
            lockout_ms: 60_000,
            per_credential: RequestRate::default(),
            global: RequestRate::default(),
        }
    }
}

/// A token bucket: `requestsPerSecond` sustained, `burst` at once; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestRate {
    pub requests_per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentsConfig {
    pub defaults: AgentDefaults,
    /// Per-agent settings (`agents.list[]`).
    pub list: Vec<AgentEntry>,
}

/// One `agents.list[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentEntry {
    pub id: String,
    /// Accepted for openclaw.json compatibility.
    pub name: Option<String>,
    /// Accepted for openclaw.json compatibility.
    pub default: bool,
    /// `"provider/model"` or `{ primary, fallbacks }`; unset parts come from the defaults.
    pub model: Option<crate::models::ModelChoice>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentDefaults {
    /// Runs executing at once across sessions.
    pub max_concurrent: usize,
    /// Runs waiting (queued, not yet running) across the gateway at most; more are refused
    /// with RESOURCE_EXHAUSTED `QUEUE_FULL`.
    pub max_queued_runs: u64,
    /// Runs waiting in one session's queue at most.
    pub max_queued_per_session: usize,
    /// Default run time limit.
    pub timeout_seconds: u32,
    /// Default model `provider/model` (the config may also say `{ primary, fallbacks }`).
    pub model: String,
    /// Tried in order when the model fails (`agents.defaults.model.fallbacks`).
    pub model_fallbacks: Vec<String>,
    pub heartbeat: HeartbeatConfig,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            max_concurrent: 16,
            max_queued_runs: 100_000,
            max_queued_per_session: 1_000,
            timeout_seconds: 600,
            model: "builtin/echo".into(),
            model_fallbacks: Vec::new(),
            heartbeat: HeartbeatConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeartbeatConfig {
    /// Interval such as `30m`, `1h`, `10s`, `500ms`; `0m` disables the schedule.
    pub every: String,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            every: "30m".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SessionConfig {
    /// `main` | `per-peer` | `per-channel-peer` | `per-account-channel-peer`.
    pub dm_scope: String,
    /// The main session key suffix (`agent:<id>:<mainKey>`).
    pub main_key: String,
    /// Canonical peer -> identities (`discord:123`, `telegram:42`, `whatsapp:+1555…`) that
    /// are the same person: their direct messages share the canonical peer's session.
    pub identity_links: std::collections::HashMap<String, Vec<String>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            dm_scope: "per-channel-peer".into(),
            main_key: "main".into(),
            identity_links: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EventsConfig {
    /// Events kept in the log; older ones are pruned.
    pub retention: u64,
    /// Idle interval after which a watcher gets a progress frame.
    pub progress_interval_ms: u64,
    /// Live events buffered per subscriber; one that falls further behind is ended with
    /// SUBSCRIBER_LAGGED and resumes from the log.
    pub live_buffer: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention: 1_000_000,
            progress_interval_ms: 5000,
            live_buffer: 16 * 1024,
        }
    }
}

/// `webhooks.*`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WebhooksConfig {
    pub incoming: IncomingConfig,
    /// Egress endpoints: events delivered as Standard Webhooks (`core::egress`).
    pub outgoing: Vec<crate::core::egress::OutgoingWebhook>,
    /// Egress delivery settings (retry schedule, timeout, SSRF guard, disabling).
    pub egress: crate::core::egress::EgressConfig,
}

/// `webhooks.incoming`: templated ingress at `/webhook/<path>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IncomingConfig {
    pub enabled: bool,
    /// The default `X-Webhook-Secret` of endpoints without their own `auth`.
    pub secret: Option<String>,
    pub endpoints: Vec<IncomingEndpoint>,
}

/// One ingress endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IncomingEndpoint {
    /// The path under `/webhook/` (e.g. `github` or `ci/builds`).
    pub path: String,
    /// The message template (minijinja): `{{body}}`, `{{body.a.b}}`, `{{headers.x-y}}`.
    pub message: String,
    pub agent_id: Option<String>,
    /// Session key (may be a template); default a fresh `webhook:<path>:<uuid>` per delivery.
    pub session_key: Option<String>,
    pub deliver: Option<bool>,
    pub channel: Option<String>,
    pub to: Option<String>,
    pub auth: Option<IncomingAuth>,
}

/// How an ingress endpoint authenticates its sender.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IncomingAuth {
    /// `secret` (`X-Webhook-Secret`), `github`, `stripe` or `standard-webhooks`.
    pub scheme: String,
    pub secret: String,
    /// Replay window of the timestamped schemes (default 300 s).
    pub tolerance_seconds: Option<u64>,
}

/// A config problem that stops the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid JSON5: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} references ${{{var}}}, which is not set in the environment")]
    MissingVar { path: PathBuf, var: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// A loaded config plus what was noticed while loading it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Dotted paths of keys the gateway does not know.
    pub unknown_keys: Vec<String>,
}

/// Loads `path` (if any), substitutes `${VAR}`, applies `CLAWPLANE_*` overrides from `env`.
pub fn load(
    path: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<String>,
    env_vars: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut value = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let text = substitute(&text, env).map_err(|var| ConfigError::MissingVar {
                path: path.to_path_buf(),
                var,
            })?;
            json5::from_str::<serde_json::Value>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        }
        None => serde_json::json!({}),
    };
    if !value.is_object() {
        return Err(ConfigError::Invalid(
            "the top level must be an object".into(),
        ));
    }
    apply_env(&mut value, env_vars);
    let mut unknown_keys = crate::models::normalize_agent_defaults(&mut value);
    let config: Config = serde_ignored::deserialize(&value, |p| unknown_keys.push(p.to_string()))
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    config.validate()?;
    Ok(Loaded {
        config,
        unknown_keys,
    })
}

/// Replaces `${VAR}` with the environment value; `$${` escapes a literal `${`.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let var = &after[..end];
        let val = env(var).ok_or_else(|| var.to_string())?;
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `CLAWPLANE_GATEWAY_PORT`, `_BIND`, `_TOKEN` are named aliases; any other
/// `CLAWPLANE_A__B_C` sets `a.bC` (sections split on `__`, words camel-cased).
fn apply_env(value: &mut serde_json::Value, vars: &[(String, String)]) {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("CLAWPLANE_") else {
            continue;
        };
        let path: Vec<String> = match rest {
            "GATEWAY_PORT" => vec!["gateway".into(), "port".into()],
            "GATEWAY_BIND" => vec!["gateway".into(), "bind".into()],
            "GATEWAY_TOKEN" => vec!["gateway".into(), "auth".into(), "token".into()],
            _ if rest.contains("__") => rest.split("__").map(camel).collect(),
            _ => continue, // client-side or process variables (URL, TOKEN, DATA_DIR, LOG)
        };
        let parsed = serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .filter(|v| !v.is_object() && !v.is_array())
            .unwrap_or_else(|| serde_json::Value::String(raw.clone()));
        let mut cur = &mut *value;
        for (i, seg) in path.iter().enumerate() {
            let Some(obj) = cur.as_object_mut() else {
                break;
            };
            if i + 1 == path.len() {
                obj.insert(seg.clone(), parsed.clone());
                break;
            }
            cur = obj
                .entry(seg.clone())
                .or_insert_with(|| serde_json::json!({}));
        }
    }
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    for (i, w) in s.split('_').filter(|w| !w.is_empty()).enumerate() {
        let w = w.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&w);
        } else {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.extend(c);
            }
        }
    }
    out
}

/// Parses `30m`, `1h`, `10s`, `500ms`, `0m`; a bare number means minutes (as OpenClaw).
pub fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n * 1000,
        "" | "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if parse_interval(&self.agents.defaults.heartbeat.every).is_none() {
            return Err(ConfigError::Invalid(format!(
                "agents.defaults.heartbeat.every: {:?} is not an interval like \"30m\", \"1h\", \"10s\" or \"0m\"",
                self.agents.defaults.heartbeat.every
            )));
        }
        if !matches!(
            self.session.dm_scope.as_str(),
            "main" | "per-peer" | "per-channel-peer" | "per-account-channel-peer"
        ) {
            return Err(ConfigError::Invalid(format!(
                "session.dmScope: {:?} is not one of main, per-peer, per-channel-peer, per-account-channel-peer",
                self.session.dm_scope
            )));
        }
        self.bind_addr()?;
        crate::models::validate_config(self).map_err(ConfigError::Invalid)?;
        self.hooks.validate().map_err(ConfigError::Invalid)?;
        self.channels
            .validate_inbound()
            .map_err(ConfigError::Invalid)?;
        for (i, p) in self.gateway.trusted_proxies.iter().enumerate() {
            if crate::core::webhooks::parse_cidr(p).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "gateway.trustedProxies[{i}]: {p:?} is not an IP address or CIDR"
                )));
            }
        }
        if self.webhooks.incoming.enabled {
            crate::core::webhooks::Ingress::compile(&self.webhooks.incoming)
                .map_err(ConfigError::Invalid)?;
        }
        crate::core::egress::validate(&self.webhooks.outgoing, &self.webhooks.egress)
            .map_err(ConfigError::Invalid)?;
        if self.events.live_buffer == 0 {
            return Err(ConfigError::Invalid(
                "events.liveBuffer must be at least 1".into(),
            ));
        }
        if self.agents.defaults.max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "agents.defaults.maxConcurrent must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The heartbeat interval; `None` when disabled.
    pub fn heartbeat_every(&self) -> Option<Duration> {
        parse_interval(&self.agents.defaults.heartbeat.every).filter(|d| !d.is_zero())
    }

    /// The address `gateway.bind` names.
    pub fn bind_addr(&self) -> Result<IpAddr, ConfigError> {
        match self.gateway.bind.as_str() {
            "loopback" | "" => Ok(IpAddr::from([127, 0, 0, 1])),
            "lan" => Ok(IpAddr::from([0, 0, 0, 0])),
            other => other.parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "gateway.bind: {other:?} is not loopback, lan or an IP address"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_env_and_reports_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("cp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.json5");
        std::fs::write(
            &file,
            "{ gateway: { auth: { token: '${TOK}' }, port: 1 }, bogus: 1, session: { dmScope: 'per-peer', nope: 2 } }",
        )
        .unwrap();
        let env = |k: &str| (k == "TOK").then(|| "sekrit".to_string());
        let vars = vec![
            ("CLAWPLANE_GATEWAY_PORT".to_string(), "4242".to_string()),
            (
                "CLAWPLANE_EVENTS__PROGRESS_INTERVAL_MS".to_string(),
                "10".to_string(),
            ),
        ];
        let l = load(Some(&file), &env, &vars).unwrap();
        assert_eq!(l.config.gateway.auth.token.as_deref(), Some("sekrit"));
        assert_eq!(l.config.gateway.port, 4242);
        assert_eq!(l.config.events.progress_interval_ms, 10);
        assert_eq!(l.config.session.dm_scope, "per-peer");
        assert_eq!(l.unknown_keys, vec!["bogus", "session.nope"]);
        let missing = load(Some(&file), &|_| None, &[]).unwrap_err();
        assert!(missing.to_string().contains("${TOK}"), "{missing}");
    }

    #[test]
    fn hooks_config_is_typed_and_checked() {
        let dir = std::env::temp_dir().join(format!("cp-cfg-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.json5");
        std::fs::write(
            &file,
            "{ hooks: { enabled: true, token: 'h', path: 'in/', allowRequestSessionKey: true, mappings: [{ match: { path: 'gh' }, messageTemplate: '{{payload.x}}', nope: 1 }] } }",
        )
        .unwrap();
        let l = load(Some(&file), &|_| None, &[]).unwrap();
        assert!(l.config.hooks.enabled);
        assert_eq!(l.config.hooks.base_path().unwrap(), "/in");
        assert_eq!(l.unknown_keys, vec!["hooks.mappings.0.nope"]);
        std::fs::write(&file, "{ hooks: { enabled: true } }").unwrap();
        let e = load(Some(&file), &|_| None, &[]).unwrap_err();
        assert!(e.to_string().contains("hooks.token"), "{e}");
        std::fs::write(
            &file,
            "{ hooks: { enabled: true, token: 'h', mappings: [{ messageTemplate: '{{ x' }] } }",
        )
        .unwrap();
        let e = load(Some(&file), &|_| None, &[]).unwrap_err();
        assert!(
            e.to_string().contains("hooks.mappings[0].messageTemplate"),
            "{e}"
        );
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("0m"), Some(Duration::ZERO));
        assert_eq!(parse_interval("soon"), None);
    }
}
