//! Starting, restarting, killing and reading the real gateway process.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::balancer::Balancer;
use super::grpc::SdkKey;
use super::{BIN, EXIT_TIMEOUT, PATIENCE, START_TIMEOUT};

/// How many replicas a clustered run starts per gateway: `CLAWPLANE_TEST_REPLICAS` (with
/// `CLAWPLANE_TEST_STORE=postgres`), default 1.
fn replicas_per_gateway() -> usize {
    std::env::var("CLAWPLANE_TEST_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Runs `serve` with this JSON5 config (verbatim) and expects it to refuse to start: a
/// non-zero exit within [`START_TIMEOUT`], no listening line. Returns its stderr.
pub async fn refuses_to_start(config_json5: &str) -> String {
    GatewayBuilder::default()
        .config(config_json5)
        .refuses_to_start()
        .await
}

/// Removes every `CLAWPLANE_*` variable of the test process from a child's environment.
/// Our variables and OpenClaw's (which stand in for ours) from the test's environment.
fn clear_clawplane_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k_str = k.to_string_lossy();
        if k_str.starts_with("CLAWPLANE_") || k_str.starts_with("OPENCLAW_") {
            cmd.env_remove(&k);
        }
    }
}

/// How to start a gateway; see [`Gateway::builder`].
#[derive(Default)]
pub struct GatewayBuilder {
    config: Option<String>,
    without_token: bool,
    client_token: Option<String>,
    env: Vec<(String, String)>,
    bind: Option<String>,
    args: Vec<String>,
    one_process: bool,
    no_config_flag: bool,
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
    /// One process even in a clustered run: for tests of what each process holds by itself
    /// (its listener and connection limits, its sockets' buffers, its own log).
    pub fn one_process(mut self) -> Self {
        self.one_process = true;
        self
    }
    /// [`Self::refuses_to_start`] without `--config` (the gateway finds its file itself).
    pub fn without_config_flag(mut self) -> Self {
        self.no_config_flag = true;
        self
    }
    /// Extra `serve` arguments (only [`Self::refuses_to_start`] passes them).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Runs `serve` with this config (written verbatim: no token is merged), the extra
    /// arguments and environment, and expects it to refuse to start: a non-zero exit within
    /// [`START_TIMEOUT`] without the listening line. Returns its stderr.
    pub async fn refuses_to_start(self) -> String {
        let dir = tempfile::Builder::new()
            .prefix("clawplane-refusal-")
            .tempdir()
            .expect("create tempdir");
        let config = self.config.clone().unwrap_or_else(|| "{}".into());
        let file = dir.path().join("config.json5");
        std::fs::write(&file, &config).expect("write config");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(["--port", "0", "--bind"])
            .arg(self.bind.as_deref().unwrap_or("127.0.0.1"))
            .arg("--data-dir")
            .arg(dir.path());
        if !self.no_config_flag {
            cmd.arg("--config").arg(&file);
        }
        cmd.args(&self.args);
        clear_clawplane_env(&mut cmd);
        cmd.env("HOME", dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(START_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| {
                panic!("serve did not exit within {START_TIMEOUT:?} for a config it should refuse:\n{config}")
            })
            .expect("spawn serve");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "serve should refuse {config}, but exited {:?}\n----- stderr -----\n{stderr}",
            out.status
        );
        assert!(
            !stdout.contains("clawplane listening on"),
            "no listening line for a refused config, got {stdout:?}"
        );
        stderr
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
        // CLAWPLANE_TEST_STORE=postgres runs the suite on PostgreSQL: a fresh database of
        // the test process's own server per gateway (unless the test names a store), served
        // by CLAWPLANE_TEST_REPLICAS replicas behind a round-robin balancer.
        let mut processes = 1;
        if std::env::var("CLAWPLANE_TEST_STORE").as_deref() == Ok("postgres")
            && config.pointer("/storage/postgres/url").is_none()
        {
            if !self.one_process && self.bind.is_none() {
                processes = replicas_per_gateway();
            }
            let url = clawplane_testkit::PgServer::shared().database();
            config.as_object_mut().unwrap().insert(
                "storage".into(),
                // A short lease: a SIGKILLed gateway's runs resume soon after its restart.
                serde_json::json!({ "postgres": { "url": url, "leaseMs": 3000 } }),
            );
        }
        let store_url = config
            .pointer("/storage/postgres/url")
            .and_then(|v| v.as_str())
            .map(str::to_string);
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
            process_addr: "127.0.0.1:0".parse().unwrap(),
            token,
            data_dir: data_dir.clone(),
            config_path,
            stderr_path: data_dir.join("stderr.log"),
            token_from_file: self.without_token,
            env: self.env,
            bind: self.bind.unwrap_or_else(|| "127.0.0.1".into()),
            sdk: Default::default(),
            child: None,
            starts: 0,
            keep_port: false,
            store_url,
            others: Vec::new(),
            balancer: None,
            direct: Vec::new(),
            _dir: dir,
        };
        if processes > 1 {
            gw.balancer = Some(Balancer::start());
            gw.others = (1..processes).map(|_| gw.replica()).collect();
        }
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
    /// The listening address of the current process (of the balancer, when clustered).
    pub addr: SocketAddr,
    /// The listening address of this process itself.
    process_addr: SocketAddr,
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
    /// The SDK clients of the current processes, made on first use (see [`Gateway::sdk`]),
    /// and whose turn is next.
    pub(super) sdk: std::sync::Mutex<(Vec<(SdkKey, clawplane_sdk::Client)>, usize)>,
    child: Option<Child>,
    starts: u32,
    /// Restart on the same port (clients with a fixed URL reconnect), see [`Gateway::keep_port`].
    keep_port: bool,
    /// The PostgreSQL database of this gateway; None: redb in the data dir.
    pub store_url: Option<String>,
    /// In a clustered run: the other replicas (same database, config file and token, each
    /// with its own data dir) and the balancer in front of them all.
    others: Vec<Gateway>,
    balancer: Option<Balancer>,
    /// In a clustered run: every replica's own URL, this process's first.
    pub direct: Vec<String>,
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

    /// The gateway's stderr so far (every replica's, one after the other, when clustered).
    pub fn stderr(&self) -> String {
        let mut text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        for (i, other) in self.others.iter().enumerate() {
            text += &format!("===== harness: replica {} =====\n", i + 2);
            text += &other.stderr();
        }
        text
    }

    /// The process id of the running gateway.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Later restarts reuse the current port, so a client with a fixed URL reconnects.
    pub fn keep_port(&mut self) {
        self.keep_port = true;
    }

    /// Another replica of this gateway: same config file, store, token and environment;
    /// a data dir of its own.
    fn replica(&self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("clawplane-conformance-")
            .tempdir()
            .expect("create tempdir");
        let data_dir = dir.path().to_path_buf();
        Gateway {
            url: String::new(),
            tls_ca: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            process_addr: "127.0.0.1:0".parse().unwrap(),
            token: self.token.clone(),
            stderr_path: data_dir.join("stderr.log"),
            data_dir,
            config_path: self.config_path.clone(),
            token_from_file: false,
            env: self.env.clone(),
            bind: self.bind.clone(),
            sdk: Default::default(),
            child: None,
            starts: 0,
            keep_port: false,
            store_url: self.store_url.clone(),
            others: Vec::new(),
            balancer: None,
            direct: Vec::new(),
            _dir: dir,
        }
    }

    /// Spawns the gateway again on the same data dir and config (after it exited): every
    /// replica of a clustered one, the first one first (the others take its generated
    /// certificate, as an operator would give them all the same one).
    pub async fn start_again(&mut self) {
        self.spawn().await;
        let Some(balancer) = &self.balancer else {
            return;
        };
        let tls = self.data_dir.join("tls");
        let mut addrs = vec![self.process_addr];
        for other in &mut self.others {
            let theirs = other.data_dir.join("tls");
            if tls.is_dir() && !theirs.exists() {
                std::fs::create_dir_all(&theirs).expect("replica tls dir");
                for entry in std::fs::read_dir(&tls).expect("read tls dir").flatten() {
                    std::fs::copy(entry.path(), theirs.join(entry.file_name()))
                        .expect("copy the certificate");
                }
            }
            other.spawn().await;
            addrs.push(other.process_addr);
        }
        balancer.set_backends(addrs.clone());
        let scheme = if self.is_tls() { "https" } else { "http" };
        self.direct = addrs.iter().map(|a| format!("{scheme}://{a}")).collect();
        self.addr = balancer.addr;
        self.url = format!("{scheme}://{}", self.addr);
    }

    /// Spawns this one process and waits for its listening line.
    async fn spawn(&mut self) {
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
            self.process_addr.port().to_string()
        } else {
            "0".to_string()
        };
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(["--port", &port, "--bind", &self.bind, "--data-dir"])
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config_path);
        clear_clawplane_env(&mut cmd);
        *self.sdk.lock().unwrap() = Default::default();
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
        self.process_addr = self.addr;
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

    /// Sends a signal to the gateway process (to every replica, when clustered).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("harness: gateway is not running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
        for other in &self.others {
            other.signal(sig);
        }
    }

    /// Everything the store holds, as bytes: the redb file, or a `pg_dump` of the database
    /// (bytea columns appear hex-encoded there).
    pub fn stored_bytes(&self) -> Vec<u8> {
        match &self.store_url {
            Some(url) => clawplane_testkit::PgServer::shared().dump(url).into_bytes(),
            None => {
                std::fs::read(self.data_dir.join("clawplane.redb")).expect("read the redb file")
            }
        }
    }

    /// Waits for the gateway to exit (panics after [`EXIT_TIMEOUT`]); when clustered, for
    /// every replica. The gateway exited cleanly only if every replica did, so the first
    /// unsuccessful status wins: the replica left draining a run is whichever one ran it.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut status = self.wait_process().await;
        for other in &mut self.others {
            let theirs = other.wait_process().await;
            if status.success() {
                status = theirs;
            }
        }
        status
    }

    async fn wait_process(&mut self) -> ExitStatus {
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

    /// Every process's own listening address: this one's, then each replica's.
    pub fn process_addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.process_addr)
            .chain(self.others.iter().map(|o| o.process_addr))
            .collect()
    }

    /// True for the second and further replicas of a clustered gateway: they read the first
    /// one's config file.
    fn is_replica(&self) -> bool {
        self.config_path.parent() != Some(self.data_dir.as_path())
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

    /// The CLI (`clawplane`) with `--url` and `--token` preset and `CLAWPLANE_*` cleared.
    pub fn cli(&self) -> std::process::Command {
        let mut cmd = self.cli_without_token();
        cmd.arg("--token").arg(&self.token);
        cmd
    }

    /// The CLI with `--url` only: it finds a token itself (its environment, the data dir).
    pub fn cli_without_token(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            let k_str = k.to_string_lossy();
            if k_str.starts_with("CLAWPLANE_") || k_str.starts_with("OPENCLAW_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", &self.data_dir).arg("--url").arg(&self.url);
        cmd
    }

    /// Runs the CLI (see [`Gateway::cli`]) with `args` to completion (panics after
    /// [`PATIENCE`]).
    pub async fn run_cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::from(self.cli());
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        tokio::time::timeout(PATIENCE, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("CLI {args:?} did not finish within {PATIENCE:?}"))
            .expect("CLI runs")
    }
}
impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        // A replica's log is printed with the first one's (see [`Gateway::stderr`]).
        if std::thread::panicking() && !self.is_replica() {
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
