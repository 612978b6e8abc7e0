//! Starts the real `clawplane` binary on `127.0.0.1:0` in a temporary data dir and hands out
//! authenticated clients for it. Every test owns its own [`Gateway`].
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use clawplane_proto::pbjson_types::Timestamp;
use clawplane_proto::v1::agent_service_client::AgentServiceClient;
use clawplane_proto::v1::chat_service_client::ChatServiceClient;
use clawplane_proto::v1::event_service_client::EventServiceClient;
use clawplane_proto::v1::event_service_watch_response::Frame;
use clawplane_proto::v1::gateway_service_client::GatewayServiceClient;
use clawplane_proto::v1::session_service_client::SessionServiceClient;
use clawplane_proto::v1::{
    AgentServiceWaitRequest, ChatServiceHistoryRequest, ChatServiceHistoryResponse,
    ChatServiceSendRequest, ChatServiceSendResponse, Event, EventFilter, EventKind,
    EventServiceWatchRequest, EventServiceWatchResponse, GatewayServiceStatusRequest,
    GatewayServiceStatusResponse, GetRunRequest, ListRunsRequest, Run, RunState, event,
};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};
use tonic_types::{BadRequest, ErrorInfo, StatusExt};

/// The binary under test: the same entry point as the real `clawplane`.
pub const BIN: &str = env!("CARGO_BIN_EXE_clawplane-under-test");
/// How long the gateway may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the gateway may take to exit after a signal.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Generic upper bound for "this should happen soon" (never a performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Canonical key of a bare session key under the default agent.
pub fn key(bare: &str) -> String {
    format!("agent:main:{bare}")
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/// Adds credentials to every call (or none).
#[derive(Clone, Debug)]
pub struct Token {
    header: &'static str,
    value: Option<MetadataValue<Ascii>>,
}

impl Token {
    /// `authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Self {
        Self {
            header: "authorization",
            value: Some(format!("Bearer {token}").parse().expect("ascii token")),
        }
    }
    /// `x-openclaw-token: <token>`.
    pub fn openclaw(token: &str) -> Self {
        Self {
            header: "x-openclaw-token",
            value: Some(token.parse().expect("ascii token")),
        }
    }
    /// No credentials at all.
    pub fn none() -> Self {
        Self {
            header: "authorization",
            value: None,
        }
    }
}

impl Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.value {
            req.metadata_mut().insert(self.header, v.clone());
        }
        Ok(req)
    }
}

/// A channel that adds credentials.
pub type Authed = InterceptedService<Channel, Token>;

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

/// How to start a gateway; see [`Gateway::builder`].
#[derive(Default)]
pub struct GatewayBuilder {
    config: Option<String>,
    without_token: bool,
    client_token: Option<String>,
    env: Vec<(String, String)>,
    bind: Option<String>,
}

impl GatewayBuilder {
    /// JSON5 config text; the harness merges `gateway.auth.token` into it unless
    /// [`Self::without_token`] is set or the config already has one.
    pub fn config(mut self, json5: &str) -> Self {
        self.config = Some(json5.to_string());
        self
    }
    /// Do not configure a token: the gateway generates `<data_dir>/gateway.token`, which
    /// the harness reads after every start.
    pub fn without_token(mut self) -> Self {
        self.without_token = true;
        self
    }
    /// The token the clients present, supplied to the gateway some other way (e.g. env
    /// `CLAWPLANE_GATEWAY_TOKEN` or `${VAR}` in the config); nothing is merged into the config.
    pub fn client_token(mut self, token: &str) -> Self {
        self.client_token = Some(token.to_string());
        self
    }
    /// An extra environment variable for the gateway process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
    /// Bind this address instead of `127.0.0.1` (e.g. `0.0.0.0` to accept callers from a
    /// non-loopback address of this machine).
    pub fn bind(mut self, ip: &str) -> Self {
        self.bind = Some(ip.to_string());
        self
    }
    /// Starts the gateway and waits for its listening line.
    pub async fn start(self) -> Gateway {
        raise_nofile_limit();
        let dir = tempfile::Builder::new()
            .prefix("clawplane-conformance-")
            .tempdir()
            .expect("create tempdir");
        let data_dir = dir.path().to_path_buf();
        let mut config: serde_json::Value = match &self.config {
            Some(text) => json5::from_str(text)
                .unwrap_or_else(|e| panic!("harness: test config is not JSON5: {e}\n{text}")),
            None => serde_json::json!({}),
        };
        assert!(config.is_object(), "harness: config must be an object");
        let token = if let Some(t) = &self.client_token {
            t.clone()
        } else if self.without_token {
            String::new()
        } else {
            let existing = config
                .pointer("/gateway/auth/token")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            match existing {
                Some(t) => t,
                None => {
                    let t = format!("test-{}", uuid::Uuid::new_v4().simple());
                    let root = config.as_object_mut().unwrap();
                    let gateway = root
                        .entry("gateway")
                        .or_insert_with(|| serde_json::json!({}));
                    let auth = gateway
                        .as_object_mut()
                        .expect("gateway is an object")
                        .entry("auth")
                        .or_insert_with(|| serde_json::json!({}));
                    auth.as_object_mut()
                        .expect("gateway.auth is an object")
                        .insert("token".into(), serde_json::Value::String(t.clone()));
                    t
                }
            }
        };
        let config_path = data_dir.join("config.json5");
        std::fs::write(
            &config_path,
            serde_json::to_string_pretty(&config).unwrap() + "\n",
        )
        .expect("write config");
        let mut gw = Gateway {
            url: String::new(),
            tls_ca: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            token,
            data_dir: data_dir.clone(),
            config_path,
            stderr_path: data_dir.join("stderr.log"),
            token_from_file: self.without_token,
            env: self.env,
            bind: self.bind.unwrap_or_else(|| "127.0.0.1".into()),
            child: None,
            starts: 0,
            keep_port: false,
            _dir: dir,
        };
        gw.start_again().await;
        gw
    }
}

/// A running (or stopped) `clawplane serve` process with its own data dir.
pub struct Gateway {
    /// `http://127.0.0.1:<port>` (or `https://` when the gateway serves TLS) of the current
    /// process; an unspecified bind address (`0.0.0.0`) is reached at `127.0.0.1`.
    pub url: String,
    /// For an `https://` gateway: the PEM file the harness's gRPC clients trust. Default
    /// (None): the auto-generated `<data_dir>/tls/cert.pem`.
    pub tls_ca: Option<PathBuf>,
    /// The listening address of the current process.
    pub addr: SocketAddr,
    /// The gateway token the clients present.
    pub token: String,
    /// The data dir (a tempdir, removed on drop). Also holds `config.json5` and `stderr.log`.
    pub data_dir: PathBuf,
    /// The config file passed with `--config`.
    pub config_path: PathBuf,
    /// Where the gateway's stderr goes (appended across restarts).
    pub stderr_path: PathBuf,
    token_from_file: bool,
    env: Vec<(String, String)>,
    bind: String,
    child: Option<Child>,
    starts: u32,
    /// Restart on the same port (clients with a fixed URL reconnect), see [`Gateway::keep_port`].
    keep_port: bool,
    _dir: TempDir,
}

impl Gateway {
    /// A builder for non-default starts.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// Starts a gateway with an empty config (plus a fixed random token).
    pub async fn start() -> Gateway {
        Self::builder().start().await
    }

    /// Starts a gateway with this JSON5 config (plus a fixed random token unless it has one).
    pub async fn start_with(config_json5: &str) -> Gateway {
        Self::builder().config(config_json5).start().await
    }

    /// Starts a gateway without a configured token (it generates `gateway.token`).
    pub async fn start_without_token() -> Gateway {
        Self::builder().without_token().start().await
    }

    /// The gateway's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The process id of the running gateway.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Later restarts reuse the current port, so a client with a fixed URL reconnects.
    pub fn keep_port(&mut self) {
        self.keep_port = true;
    }

    /// Spawns the gateway again on the same data dir and config (after it exited).
    pub async fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "harness: start_again while the gateway is still running"
        );
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open stderr log");
        writeln!(log, "===== harness: start #{} =====", self.starts).unwrap();
        let port = if self.keep_port && self.starts > 1 {
            self.addr.port().to_string()
        } else {
            "0".to_string()
        };
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(["--port", &port, "--bind", &self.bind, "--data-dir"])
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config_path);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLAWPLANE_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", &self.data_dir)
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("harness: cannot spawn {BIN}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut other = Vec::new();
        let found = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(rest) = line.trim().strip_prefix("clawplane listening on ") {
                            return Ok(rest.to_string());
                        }
                        other.push(line);
                    }
                    Ok(None) => return Err("stdout closed before the listening line".to_string()),
                    Err(e) => return Err(format!("reading stdout: {e}")),
                }
            }
        })
        .await;
        let url = match found {
            Ok(Ok(url)) if other.is_empty() => url,
            Ok(Ok(url)) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                panic!(
                    "harness: stdout must carry exactly one line, got {other:?} before `clawplane listening on {url}`"
                );
            }
            Ok(Err(why)) => {
                let status = child.wait().await.ok();
                panic!(
                    "harness: gateway did not start: {why} (exit {status:?})\nother stdout: {other:?}\n----- stderr -----\n{}",
                    self.stderr()
                );
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                panic!(
                    "harness: no `clawplane listening on http://…` line on stdout within {START_TIMEOUT:?}\nother stdout: {other:?}\n----- stderr -----\n{}",
                    self.stderr()
                );
            }
        };
        // Keep draining stdout so the child never blocks or gets SIGPIPE.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (scheme, hostport) = url
            .split_once("://")
            .filter(|(s, _)| *s == "http" || *s == "https")
            .unwrap_or_else(|| panic!("harness: listening line has no http(s):// URL: {url:?}"));
        self.addr = hostport
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("harness: bad address in listening line {url:?}: {e}"));
        if self.addr.ip().is_unspecified() {
            // Bound to every address: the tests only ever connect to loopback.
            self.addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        self.url = format!("{scheme}://{}", self.addr);
        self.child = Some(child);
        if self.token_from_file {
            let path = self.data_dir.join("gateway.token");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "harness: no generated token at {}: {e}\n----- stderr -----\n{}",
                    path.display(),
                    self.stderr()
                )
            });
            self.token = text.trim().to_string();
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends a signal to the gateway process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("harness: gateway is not running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits for the gateway to exit (panics after [`EXIT_TIMEOUT`]).
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let child = self
            .child
            .as_mut()
            .expect("harness: gateway is not running");
        match tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => {
                self.child = None;
                status
            }
            Ok(Err(e)) => panic!("harness: waiting for the gateway: {e}"),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                self.child = None;
                panic!(
                    "harness: gateway did not exit within {EXIT_TIMEOUT:?}\n----- stderr -----\n{}",
                    self.stderr()
                )
            }
        }
    }

    /// SIGTERM, wait for exit, start again on the same data dir and config.
    pub async fn restart(&mut self) {
        self.sigterm();
        self.wait_exit().await;
        self.start_again().await;
    }

    /// SIGKILL and reap.
    pub async fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit().await;
    }

    /// True when the current process serves TLS (its listening line said `https://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("https://")
    }

    /// The PEM file trusted for this gateway's TLS certificate (see [`Gateway::tls_ca`]).
    pub fn ca_path(&self) -> PathBuf {
        self.tls_ca
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls").join("cert.pem"))
    }

    /// A fresh HTTP/2 channel to the current process (over TLS trusting [`Gateway::ca_path`]
    /// when it serves `https://`).
    pub async fn channel(&self) -> Channel {
        let ep = Endpoint::from_shared(self.url.clone())
            .expect("valid url")
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(90));
        let connected = if self.is_tls() {
            let config = tls_client_config(&self.ca_path(), &[b"h2"]);
            ep.connect_with_connector(tower::service_fn(move |uri: tonic::codegen::http::Uri| {
                tls_connect(uri, config.clone())
            }))
            .await
        } else {
            ep.connect().await
        };
        match connected {
            Ok(ch) => ch,
            Err(e) => panic!(
                "harness: cannot connect to {}: {e:?}\n----- stderr -----\n{}",
                self.url,
                self.stderr()
            ),
        }
    }

    /// Credentials of this gateway's token.
    pub fn auth(&self) -> Token {
        Token::bearer(&self.token)
    }

    /// The CLI (`clawplane`) with `--url` and `--token` preset and `CLAWPLANE_*` cleared.
    pub fn cli(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLAWPLANE_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", &self.data_dir)
            .arg("--url")
            .arg(&self.url)
            .arg("--token")
            .arg(&self.token);
        cmd
    }
}

macro_rules! clients {
    ($($name:ident, $name_as:ident => $client:ident;)*) => {
        impl Gateway {
            $(
                #[doc = concat!("A `", stringify!($client), "` with this gateway's token.")]
                pub async fn $name(&self) -> $client<Authed> {
                    $client::with_interceptor(self.channel().await, self.auth())
                }
                #[doc = concat!("A `", stringify!($client), "` with the given credentials.")]
                pub async fn $name_as(&self, token: Token) -> $client<Authed> {
                    $client::with_interceptor(self.channel().await, token)
                }
            )*
        }
    };
}

clients! {
    chat, chat_as => ChatServiceClient;
    sessions, sessions_as => SessionServiceClient;
    agent, agent_as => AgentServiceClient;
    events, events_as => EventServiceClient;
    gateway, gateway_as => GatewayServiceClient;
}

impl Gateway {
    /// `grpc.health.v1.Health` (no token).
    pub async fn health(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        tonic_health::pb::health_client::HealthClient::new(self.channel().await)
    }

    /// `GatewayService/Status`.
    pub async fn status(&self) -> GatewayServiceStatusResponse {
        self.gateway()
            .await
            .status(GatewayServiceStatusRequest {})
            .await
            .unwrap_or_else(|s| panic!("Status failed: {s:?}"))
            .into_inner()
    }

    /// `ChatService/Send` of `message` into session `session` (bare or full key).
    pub async fn send(&self, session: &str, message: &str) -> ChatServiceSendResponse {
        self.send_req(ChatServiceSendRequest {
            session_key: session.into(),
            message: message.into(),
            ..Default::default()
        })
        .await
    }

    /// `ChatService/Send` that must succeed.
    pub async fn send_req(&self, req: ChatServiceSendRequest) -> ChatServiceSendResponse {
        self.chat()
            .await
            .send(req.clone())
            .await
            .unwrap_or_else(|s| panic!("ChatService/Send {req:?} failed: {s:?}"))
            .into_inner()
    }

    /// `ChatService/History` (first page of up to 1000).
    pub async fn history(&self, session: &str) -> ChatServiceHistoryResponse {
        self.chat()
            .await
            .history(ChatServiceHistoryRequest {
                session_key: session.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ChatService/History {session} failed: {s:?}"))
            .into_inner()
    }

    /// `AgentService/GetRun`.
    pub async fn get_run(&self, run_id: &str) -> Run {
        self.agent()
            .await
            .get_run(GetRunRequest {
                run_id: run_id.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("GetRun {run_id} failed: {s:?}"))
            .into_inner()
            .run
            .expect("GetRun without run")
    }

    /// `SessionService/Get`.
    pub async fn get_session(&self, key: &str) -> clawplane_proto::v1::Session {
        self.sessions()
            .await
            .get(clawplane_proto::v1::SessionServiceGetRequest {
                session_key: key.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("SessionService/Get {key} failed: {s:?}"))
            .into_inner()
            .session
            .expect("Get without session")
    }

    /// `AgentService/ListRuns` of a session (newest first, up to 1000).
    pub async fn list_runs(&self, session: &str) -> Vec<Run> {
        self.agent()
            .await
            .list_runs(ListRunsRequest {
                session_key: session.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ListRuns {session} failed: {s:?}"))
            .into_inner()
            .runs
    }

    /// `AgentService/Wait` until the run is terminal (panics after [`PATIENCE`]).
    pub async fn wait_run(&self, run_id: &str) -> Run {
        let mut agent = self.agent().await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let resp = agent
                .wait(AgentServiceWaitRequest {
                    run_id: run_id.into(),
                    timeout_ms: 10_000,
                })
                .await
                .unwrap_or_else(|s| panic!("AgentService/Wait {run_id} failed: {s:?}"))
                .into_inner();
            let run = resp.run.expect("Wait without run");
            if resp.done {
                assert!(
                    is_terminal(run.state()),
                    "Wait said done for non-terminal run {run:?}"
                );
                return run;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("run {run_id} not terminal within {PATIENCE:?}: {run:?}");
            }
        }
    }

    /// `EventService/Watch` that must be accepted.
    pub async fn watch(&self, req: EventServiceWatchRequest) -> Feed {
        let stream = self
            .events()
            .await
            .watch(req.clone())
            .await
            .unwrap_or_else(|s| panic!("EventService/Watch {req:?} failed: {s:?}"))
            .into_inner();
        Feed { stream }
    }

    /// Watch after `after_seq` with an optional filter.
    pub async fn watch_after(&self, after_seq: u64, filter: Option<EventFilter>) -> Feed {
        self.watch(EventServiceWatchRequest {
            after_seq,
            filter,
            follow_only: false,
        })
        .await
    }

    /// The error a Watch ends with, either at the call or as the stream's first item.
    pub async fn watch_error(&self, req: EventServiceWatchRequest) -> Status {
        match self.events().await.watch(req.clone()).await {
            Err(s) => s,
            Ok(resp) => {
                let mut stream = resp.into_inner();
                match tokio::time::timeout(PATIENCE, stream.message()).await {
                    Ok(Err(s)) => s,
                    Ok(Ok(frame)) => panic!("Watch {req:?} should fail, got frame {frame:?}"),
                    Err(_) => panic!("Watch {req:?} should fail, but it stayed open"),
                }
            }
        }
    }

    /// Every event from the oldest up to and including `head` (unfiltered).
    pub async fn events_until(&self, head: u64) -> Vec<Event> {
        if head == 0 {
            return Vec::new();
        }
        let mut feed = self.watch_after(0, None).await;
        feed.collect_until(|e| e.seq >= head).await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            let log = self.stderr();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            eprintln!(
                "----- gateway stderr ({}; last {} lines) -----\n{}\n----- end of gateway stderr -----",
                self.stderr_path.display(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Event feed
// ---------------------------------------------------------------------------------------------

/// An open `EventService/Watch` stream.
pub struct Feed {
    pub stream: Streaming<EventServiceWatchResponse>,
}

impl Feed {
    /// The next frame; `Ok(None)` when the stream ended; `Err` on a status. Panics on timeout.
    pub async fn try_frame(&mut self, within: Duration) -> Result<Option<Frame>, Status> {
        match tokio::time::timeout(within, self.stream.message()).await {
            Err(_) => panic!("no Watch frame within {within:?}"),
            Ok(Err(s)) => Err(s),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(resp))) => Ok(Some(resp.frame.expect("Watch frame without content"))),
        }
    }

    /// The next frame (panics on end, error or timeout).
    pub async fn frame(&mut self, within: Duration) -> Frame {
        match self.try_frame(within).await {
            Ok(Some(f)) => f,
            Ok(None) => panic!("Watch stream ended unexpectedly"),
            Err(s) => panic!("Watch stream failed: {s:?}"),
        }
    }

    /// The next event, skipping progress frames.
    pub async fn next_event(&mut self) -> Event {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.frame(left.max(Duration::from_millis(1))).await {
                Frame::Event(e) => return e,
                Frame::Progress(_) => continue,
            }
        }
    }

    /// Events up to and including the first one matching `done`.
    pub async fn collect_until(&mut self, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let e = self.next_event().await;
            let stop = done(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
    }
}

/// A filter for one run's events, optionally of some kinds.
pub fn run_filter(run_id: &str, kinds: &[EventKind]) -> Option<EventFilter> {
    Some(EventFilter {
        session_key: String::new(),
        run_id: run_id.into(),
        kinds: kinds.iter().map(|k| *k as i32).collect(),
    })
}

/// A filter for one session's events, optionally of some kinds.
pub fn session_filter(session_key: &str, kinds: &[EventKind]) -> Option<EventFilter> {
    Some(EventFilter {
        session_key: session_key.into(),
        run_id: String::new(),
        kinds: kinds.iter().map(|k| *k as i32).collect(),
    })
}

/// The Run payload of a RUN event.
pub fn run_of(e: &Event) -> Option<&Run> {
    match &e.payload {
        Some(event::Payload::Run(r)) => Some(r),
        _ => None,
    }
}

/// True for a RUN event of `run_id` in `state`.
pub fn is_run_event(e: &Event, run_id: &str, state: RunState) -> bool {
    run_of(e).is_some_and(|r| r.run_id == run_id && r.state() == state)
}

/// Terminal run states (INTERRUPTED is terminal only after the retry; Wait treats it so).
pub fn is_terminal(s: RunState) -> bool {
    matches!(
        s,
        RunState::Succeeded
            | RunState::Failed
            | RunState::Cancelled
            | RunState::TimedOut
            | RunState::Interrupted
    )
}

/// The states of `run_id` in the RUN events of `events`, in order.
pub fn run_states(events: &[Event], run_id: &str) -> Vec<RunState> {
    events
        .iter()
        .filter_map(run_of)
        .filter(|r| r.run_id == run_id)
        .map(|r| r.state())
        .collect()
}

/// The concatenated DELTA texts of `run_id` in `events`.
pub fn delta_text(events: &[Event], run_id: &str) -> String {
    events
        .iter()
        .filter(|e| e.run_id == run_id)
        .filter_map(|e| match &e.payload {
            Some(event::Payload::Delta(d)) => Some(d.text.as_str()),
            _ => None,
        })
        .collect()
}

/// A timestamp as a sortable pair (missing -> panic).
pub fn ts(t: &Option<Timestamp>, what: &str) -> (i64, i32) {
    let t = t.as_ref().unwrap_or_else(|| panic!("{what} is unset"));
    (t.seconds, t.nanos)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The ErrorInfo of a status (panics when missing).
pub fn error_info(status: &Status) -> ErrorInfo {
    status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("status has no google.rpc.ErrorInfo: {status:?}"))
}

/// The BadRequest of a status (panics when missing).
pub fn bad_request(status: &Status) -> BadRequest {
    status
        .get_error_details()
        .bad_request()
        .cloned()
        .unwrap_or_else(|| panic!("status has no google.rpc.BadRequest: {status:?}"))
}

/// The field names of the BadRequest violations.
pub fn violated_fields(status: &Status) -> Vec<String> {
    bad_request(status)
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Asserts code, ErrorInfo domain `clawplane.dev` and reason; returns the ErrorInfo metadata.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) -> HashMap<String, String> {
    assert_eq!(
        status.code(),
        code,
        "expected {code:?} {reason}, got {status:?}"
    );
    let info = error_info(status);
    assert_eq!(info.reason, reason, "ErrorInfo reason of {status:?}");
    assert_eq!(
        info.domain, "clawplane.dev",
        "ErrorInfo domain of {status:?}"
    );
    info.metadata
}

/// Asserts INVALID_ARGUMENT / INVALID_FIELD naming `field` among the BadRequest violations.
#[track_caller]
pub fn assert_invalid_field(status: &Status, field: &str) {
    assert_error(status, Code::InvalidArgument, "INVALID_FIELD");
    let fields = violated_fields(status);
    assert!(
        fields.iter().any(|f| f == field),
        "BadRequest should name field {field:?}, got {fields:?} ({status:?})"
    );
}

/// Unwraps an expected error.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(r: Result<tonic::Response<T>, Status>, what: &str) -> Status {
    match r {
        Ok(resp) => panic!("{what} should fail, got {:?}", resp.into_inner()),
        Err(s) => s,
    }
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A rustls client configuration (ring) trusting exactly the PEM certificates in `ca`.
pub fn tls_client_config(
    ca: &std::path::Path,
    alpn: &[&[u8]],
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let pem =
        std::fs::read(ca).unwrap_or_else(|e| panic!("harness: read CA {}: {e}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("usable CA");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(cfg)
}

/// TCP + TLS handshake to `uri`'s host and port (the host is the TLS server name; the
/// generated certificate covers 127.0.0.1, ::1 and localhost).
pub async fn tls_connect(
    uri: tonic::codegen::http::Uri,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> std::io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>
{
    let host = uri.host().unwrap_or("127.0.0.1").to_string();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from(host)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(hyper_util::rt::TokioIo::new(tls))
}

/// A fresh Ed25519 device identity: the signing key, the raw public key as base64url, and the
/// device id (hex SHA-256 of the raw key), as OpenClaw clients derive them.
pub fn new_device_key() -> (ed25519_dalek::SigningKey, String, String) {
    use clawplane_proto::device_auth;
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let raw = *sk.verifying_key().as_bytes();
    (
        sk,
        device_auth::base64url(&raw),
        device_auth::device_id(&raw),
    )
}

/// Raises this test process's soft `RLIMIT_NOFILE` to its hard limit, once: the suite runs
/// many gateways and clients at once, and some tests open thousands of sockets.
pub fn raise_nofile_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
        }
    });
}
