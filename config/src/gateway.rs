//! `gateway.*`: the listener, authentication, TLS, pairing and connection limits.

use crate::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::{net::IpAddr, path::PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
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
    /// Connection limits of the listener (`gateway.limits.*`): per-client connections,
    /// idle connections, HTTP/2 keep-alive and sizes.
    pub limits: ListenerLimitsConfig,
    /// TLS for every surface of the one port (`gateway.tls.*`).
    pub tls: TlsConfig,
    /// Allow binding a non-loopback address without TLS (tokens then cross the network in
    /// clear text). Off by default: such a start is refused.
    pub allow_insecure_remote: bool,
}

/// `gateway.tls`: rustls on the one port (gRPC over h2 via ALPN, gRPC-Web, HTTP hooks and
/// webhooks, `wss://`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct WsLimitsConfig {
    /// Outbound bytes a socket may leave unread before it is closed as a slow consumer
    /// (`policy.maxBufferedBytes`; OpenClaw: 50 MiB).
    pub max_buffered_bytes: usize,
    /// How long a socket may stay unauthenticated: an OpenClaw socket that has not
    /// completed `connect`, or a legacy socket opened without `?token=`, is closed (1000
    /// `handshake timeout`) this long after it opened (OpenClaw: 15 s).
    pub handshake_timeout_ms: u64,
}

impl Default for WsLimitsConfig {
    fn default() -> Self {
        WsLimitsConfig {
            max_buffered_bytes: 52_428_800,
            handshake_timeout_ms: 15_000,
        }
    }
}

/// `gateway.limits`: what one connection and one client may hold on the listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerLimitsConfig {
    /// Open TCP connections (every protocol, upgraded WebSockets included) from one client
    /// address (an IPv4 address or an IPv6 /64) at most; past it a new connection from that
    /// client is closed at once, unanswered. 0 = no cap.
    pub max_connections_per_client: usize,
    /// Loopback clients are not capped: 127/8 gives a local process millions of addresses,
    /// so a per-address cap protects nothing there, and local tools open thousands of
    /// sockets.
    pub exempt_loopback: bool,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY
    /// first). Open streams, long waits and WebSockets are requests in flight. 0 = never.
    pub idle_timeout_ms: u64,
    /// HTTP/2 (gRPC) connection limits (`gateway.limits.http2.*`).
    pub http2: Http2LimitsConfig,
}

impl Default for ListenerLimitsConfig {
    fn default() -> Self {
        ListenerLimitsConfig {
            max_connections_per_client: 256,
            exempt_loopback: true,
            idle_timeout_ms: 300_000,
            http2: Http2LimitsConfig::default(),
        }
    }
}

/// `gateway.limits.http2`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Http2LimitsConfig {
    /// The server pings every connection this often; 0 = no pings.
    pub keep_alive_interval_ms: u64,
    /// A ping not answered within this long closes the connection (a dead peer or a
    /// half-open TCP connection).
    pub keep_alive_timeout_ms: u64,
    /// Streams (calls) open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`);
    /// more wait for a free stream on the client.
    pub max_concurrent_streams: u32,
    /// The largest request header block, in bytes (`SETTINGS_MAX_HEADER_LIST_SIZE`): gRPC
    /// metadata included.
    pub max_header_list_size: u32,
}

impl Default for Http2LimitsConfig {
    fn default() -> Self {
        Http2LimitsConfig {
            keep_alive_interval_ms: 60_000,
            keep_alive_timeout_ms: 20_000,
            max_concurrent_streams: 1024,
            max_header_list_size: 65_536,
        }
    }
}

/// `gateway.nodes`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct NodesConfig {
    pub pairing: PairingConfig,
}

/// `gateway.nodes.pairing`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PairingConfig {
    /// Approve pairing silently for a loopback caller without forwarding headers that
    /// presented the gateway token (OpenClaw's default: true).
    pub auto_approve_local: bool,
    /// How long a pending pairing request lives (OpenClaw: 5 minutes).
    pub pending_ttl_ms: u64,
    /// Live pending pairing requests at most, gateway-wide; past it `ConnectDevice` and
    /// `RequestScopeUpgrade` that would file a new one are refused (RESOURCE_EXHAUSTED
    /// `PAIRING_REQUESTS_EXHAUSTED`) until requests are approved, rejected or expire.
    pub max_pending: usize,
    /// Live pending pairing requests at most per client address (an IPv4 address or an
    /// IPv6 /64), so one address cannot fill the gateway-wide limit.
    pub max_pending_per_address: usize,
    /// Outstanding `DeviceService/Challenge` nonces at most, gateway-wide (each lives 120 s
    /// or until used); past it new challenges are refused (RESOURCE_EXHAUSTED
    /// `CHALLENGES_EXHAUSTED`).
    pub max_challenges: usize,
    /// Outstanding challenge nonces at most per client address (an IPv4 address or an IPv6
    /// /64). Every WebSocket connection takes one when it opens.
    pub max_challenges_per_address: usize,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            auto_approve_local: true,
            pending_ttl_ms: 300_000,
            max_pending: 256,
            max_pending_per_address: 8,
            max_challenges: 65_536,
            max_challenges_per_address: 256,
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
            limits: ListenerLimitsConfig::default(),
            tls: TlsConfig::default(),
            allow_insecure_remote: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthConfig {
    /// `token` (the default and the only mode): OpenClaw's `password`, `none` and
    /// `trusted-proxy` are refused at start, naming this key.
    pub mode: Option<String>,
    pub token: Option<String>,
    pub rate_limit: RateLimitConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimitConfig {
    pub max_attempts: u32,
    pub window_ms: u64,
    pub lockout_ms: u64,
    /// Client addresses (IPv6: /64 prefixes) whose failures and lockouts are tracked; past
    /// it the least recently seen are forgotten first.
    pub max_tracked_clients: usize,
    /// Requests per credential (the gateway token, the hooks token, each device role, each
    /// webhook API key).
    pub per_credential: RequestRate,
    /// Requests per client address (IPv6: /64) of callers without a gateway credential:
    /// anonymous public calls (device challenges, channel webhooks) and the calls that bring
    /// their own key (`/webhooks/<id>`, `/webhook/<path>`), counted before the key is checked.
    /// At most `maxTrackedClients` addresses are tracked.
    pub per_address: RequestRate,
    /// Requests across all callers.
    pub global: RequestRate,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_attempts: 20,
            window_ms: 60_000,
            lockout_ms: 60_000,
            max_tracked_clients: 100_000,
            per_credential: RequestRate::default(),
            per_address: RequestRate::default(),
            global: RequestRate::default(),
        }
    }
}

/// A token bucket: `requestsPerSecond` sustained, `burst` at once; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestRate {
    /// Sustained requests per second; 0 = unlimited.
    pub requests_per_second: f64,
    /// Requests at once (the bucket's size; at least 1).
    pub burst: u32,
}

impl GatewayConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        // OpenClaw's modes are none | token | password | trusted-proxy; a config that
        // asks for one clawplane does not do must not start as if it did.
        match self.auth.mode.as_deref().map(str::trim) {
            None | Some("") | Some("token") => {}
            Some("password") => {
                return Err(ConfigError::at(
                    "gateway.auth.mode",
                    "\"password\" is not supported yet: set mode \"token\" and gateway.auth.token (clients send it as their bearer token, or as auth.token over the WebSocket)",
                ));
            }
            Some(other) => {
                return Err(ConfigError::at(
                    "gateway.auth.mode",
                    format!(
                        "{other:?} is not supported: clawplane authenticates every caller with a token (mode \"token\", gateway.auth.token)"
                    ),
                ));
            }
        }
        let p = &self.nodes.pairing;
        for (key, v) in [
            ("maxPending", p.max_pending),
            ("maxPendingPerAddress", p.max_pending_per_address),
            ("maxChallenges", p.max_challenges),
            ("maxChallengesPerAddress", p.max_challenges_per_address),
        ] {
            if v == 0 {
                return Err(ConfigError::at(
                    format!("gateway.nodes.pairing.{key}"),
                    "must be at least 1 (0 would refuse every device)",
                ));
            }
        }
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            if clawplane_util::net::parse_cidr(p).is_none() {
                return Err(ConfigError::at(
                    format!("gateway.trustedProxies[{i}]"),
                    format!("{p:?} is not an IP address or CIDR"),
                ));
            }
        }
        let h2 = &self.limits.http2;
        if h2.keep_alive_interval_ms > 0 && h2.keep_alive_timeout_ms == 0 {
            return Err(ConfigError::at(
                "gateway.limits.http2.keepAliveTimeoutMs",
                "must be above 0 while keepAliveIntervalMs is set (0 turns the pings off)",
            ));
        }
        if h2.max_concurrent_streams == 0 {
            return Err(ConfigError::at(
                "gateway.limits.http2.maxConcurrentStreams",
                "must be at least 1",
            ));
        }
        if h2.max_header_list_size < 1024 {
            return Err(ConfigError::at(
                "gateway.limits.http2.maxHeaderListSize",
                "must be at least 1024 bytes",
            ));
        }
        if self.ws.handshake_timeout_ms == 0 {
            return Err(ConfigError::at(
                "gateway.ws.handshakeTimeoutMs",
                "must be above 0",
            ));
        }
        Ok(())
    }

    /// The address `gateway.bind` names.
    pub fn bind_addr(&self) -> Result<IpAddr, ConfigError> {
        match self.bind.as_str() {
            "loopback" | "" => Ok(IpAddr::from([127, 0, 0, 1])),
            "lan" => Ok(IpAddr::from([0, 0, 0, 0])),
            other => other.parse().map_err(|_| {
                ConfigError::at(
                    "gateway.bind",
                    format!("{other:?} is not loopback, lan or an IP address"),
                )
            }),
        }
    }
}
