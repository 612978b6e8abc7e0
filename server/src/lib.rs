//! The clawplane gateway: the domain core on redb, the tonic services, one listener, and
//! the `clawplane` command line (serve + client subcommands).

pub mod api;
pub mod auth;
pub mod channels;
pub mod config;
pub mod core;
pub mod error;
pub mod models;
pub mod server;
pub mod store;
pub mod tls;

use clap::{Args, Parser, Subcommand};
use std::{
    io::Write as _, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration,
};

#[derive(Parser)]
#[command(
    name = "clawplane",
    version,
    about = "A typed gRPC control plane for OpenClaw-style AI-agent gateways"
)]
struct Cli {
    #[command(flatten)]
    conn: clawplane_cli::ConnectOpts,
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run the gateway (gRPC, gRPC-Web, HTTP and WebSocket on one port).
    Serve(ServeArgs),
    /// Check a config file without starting, or print its JSON Schema.
    #[command(subcommand)]
    Config(ConfigCommand),
    #[command(flatten)]
    Client(clawplane_cli::Command),
}

/// `clawplane config ...`.
#[derive(Subcommand, Debug, Clone)]
enum ConfigCommand {
    /// Load and compile a config exactly as `serve` would (no port, no store); print `ok`
    /// or the problem with its key path, and exit non-zero on a problem.
    Validate {
        /// The file; default `CLAWPLANE_CONFIG`, else `<data-dir>/clawplane.json5`.
        #[arg(long, env = "CLAWPLANE_CONFIG")]
        config: Option<PathBuf>,
        /// State directory whose `clawplane.json5` is the default file.
        #[arg(long, env = "CLAWPLANE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of the config file (for editors: `"$schema"`).
    Schema,
}

/// `clawplane serve` flags; they win over the config file and the environment.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free port). Default: gateway.port or 18789.
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to bind: loopback, lan, or an IP. Default: gateway.bind or loopback.
    #[arg(long)]
    pub bind: Option<String>,
    /// State directory (redb database, generated token). Default: ~/.clawplane.
    #[arg(long, env = "CLAWPLANE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// JSON5 config file (openclaw.json-compatible keys). Default: `<data-dir>/clawplane.json5`
    /// when it exists.
    #[arg(long, env = "CLAWPLANE_CONFIG")]
    pub config: Option<PathBuf>,
    /// PEM certificate chain to serve TLS with (with --tls-key; gateway.tls.certPath).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (gateway.tls.keyPath).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PostgreSQL as the store instead of redb: `postgres://USER@HOST:PORT/DB`
    /// (storage.postgres.url).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Relay the committed event log to NATS JetStream: `nats://HOST:PORT`
    /// (events.nats.url).
    #[arg(long, value_name = "URL")]
    pub events: Option<String>,
}

/// The entry point of the `clawplane` binary.
pub fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Top::Config(cmd) => config_command(cmd),
        Top::Serve(args) => {
            init_tracing();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Top::Client(cmd) => clawplane_cli::run(cli.conn, cmd),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWPLANE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn config_command(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Schema => {
            print!("{}", config::reference::schema_text());
            ExitCode::SUCCESS
        }
        ConfigCommand::Validate { config, data_dir } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let Some(path) = config_path(config, &data_dir) else {
                eprintln!(
                    "error: no config file: pass --config FILE (or CLAWPLANE_CONFIG), or create {}",
                    data_dir.join(DEFAULT_CONFIG_FILE).display()
                );
                return ExitCode::from(2);
            };
            match load_config(Some(&path)) {
                Ok(_) => {
                    println!("ok: {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The config file's name in the data dir, read when no file is named.
pub const DEFAULT_CONFIG_FILE: &str = "clawplane.json5";

/// The file to read: the one named (`--config`, `CLAWPLANE_CONFIG`), else OpenClaw's
/// `OPENCLAW_CONFIG_PATH` (a migrating user's environment), else
/// `<data-dir>/clawplane.json5` when it exists.
fn config_path(named: Option<PathBuf>, data_dir: &std::path::Path) -> Option<PathBuf> {
    named
        .or_else(|| {
            std::env::var_os("OPENCLAW_CONFIG_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| {
            let p = data_dir.join(DEFAULT_CONFIG_FILE);
            p.is_file().then_some(p)
        })
}

/// Loads a config with the process environment and compiles it as a start would.
fn load_config(path: Option<&std::path::Path>) -> Result<config::Config, config::ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let loaded = config::load(path, &|k| std::env::var(k).ok(), &vars)?;
    server::check_config(&loaded.config)?;
    Ok(loaded.config)
}

/// The data dir holds the database and the secrets: the dir and its generated sub-dirs are
/// 0700, their files 0600, also when an older version or another umask left them open.
fn secure_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let set = |p: &std::path::Path, mode: u32| -> std::io::Result<()> {
        match std::fs::symlink_metadata(p) {
            Ok(m) if !m.file_type().is_symlink() => {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            }
            _ => Ok(()),
        }
    };
    set(dir, 0o700)?;
    set(&dir.join("tls"), 0o700)?;
    for file in [
        "clawplane.redb",
        "gateway.token",
        "tls/key.pem",
        "tls/cert.pem",
        DEFAULT_CONFIG_FILE,
    ] {
        set(&dir.join(file), 0o600)?;
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: every connection is a descriptor, and
/// the common soft default (1024) is far below `gateway.maxTcpConnections`.
pub fn raise_nofile_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                tracing::warn!(
                    "cannot raise RLIMIT_NOFILE: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// The token of a gateway without a configured one: `<data-dir>/gateway.token`, generated
/// on first start. Replicas share one: the first to start stores its token in the store and
/// the others adopt it (writing it into their data dirs, where the CLI finds it).
async fn generated_token(
    store: &store::Store,
    data_dir: &std::path::Path,
) -> anyhow::Result<String> {
    let file_error = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot write the gateway token into {}: {e}",
            data_dir.display()
        )
    };
    let local = auth::load_or_generate_token(data_dir).map_err(file_error)?;
    if !store.shared() {
        return Ok(local);
    }
    const KEY: &str = "gateway_token";
    let mine = local.clone();
    let token = store
        .write(move |t: &mut dyn store::Txn| match t.setting(KEY)? {
            Some(shared) => Ok(shared),
            None => t.put_setting(KEY, &mine).map(|()| mine),
        })
        .await?;
    if token != local {
        tracing::info!("adopting the gateway token the other replicas use");
        auth::write_token(data_dir, &token).map_err(file_error)?;
    }
    Ok(token)
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".clawplane")
}

/// Loads config, opens the store, binds, serves until a signal, drains.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    raise_nofile_limit();
    // Everything the gateway creates (the database, tokens, keys) is for its user only,
    // whatever umask it inherited.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o077) };
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut cfg = load_config(config_path(args.config.clone(), &data_dir).as_deref())?;
    if let Some(p) = args.port {
        cfg.gateway.port = p;
    }
    if let Some(b) = args.bind {
        cfg.gateway.bind = b;
    }
    if let Some(url) = args.events {
        cfg.events.nats.url = url;
        cfg.validate()?;
    }
    if let Some(url) = args.store {
        cfg.storage.postgres.url = url;
        cfg.validate()?;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        cfg.gateway.tls.cert_path = Some(cert);
        cfg.gateway.tls.key_path = Some(key);
        cfg.gateway.tls.enabled = Some(true);
    }
    cfg.gateway.tls.check()?;
    let ip = cfg.bind_addr()?;
    let tls_on = cfg.gateway.tls.is_enabled();
    if !tls::is_loopback(ip) && !tls_on && !cfg.gateway.allow_insecure_remote {
        anyhow::bail!(
            "refusing to listen on {ip} without TLS: tokens would cross the network in clear text. \
             Enable TLS with gateway.tls.autoGenerate: true (a self-signed certificate in the data dir), \
             or gateway.tls.certPath + gateway.tls.keyPath (or serve --tls-cert FILE --tls-key FILE); \
             or bind loopback; or set gateway.allowInsecureRemote: true to accept the risk (e.g. behind a TLS proxy)"
        );
    }
    let tls = if tls_on {
        Some(tls_setup(&cfg.gateway.tls, &data_dir, ip)?)
    } else {
        None
    };

    let gw = core::Gateway::open(cfg.clone(), data_dir.clone()).await?;
    let from_env = |t: &str| {
        ["CLAWPLANE_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_TOKEN"]
            .into_iter()
            .find(|var| std::env::var(var).is_ok_and(|e| e == t))
    };
    let (token, source) = match &cfg.gateway.auth.token {
        Some(t) if !t.is_empty() => match from_env(t) {
            Some(var) => (t.clone(), auth::TokenSource::Env(var)),
            None => (t.clone(), auth::TokenSource::Config),
        },
        _ => (
            generated_token(&gw.store, &data_dir).await?,
            auth::TokenSource::File(auth::token_file(&data_dir)),
        ),
    };
    if !ip.is_loopback() {
        tracing::warn!(bind = %ip, "listening beyond loopback; every call needs the gateway token");
        if tls.is_none() {
            tracing::warn!(
                "gateway.allowInsecureRemote: serving beyond loopback WITHOUT TLS; tokens cross the network in clear text"
            );
        }
    }
    if cfg.hooks.enabled {
        if cfg.hooks.token() == Some(token.as_str()) {
            tracing::warn!(
                "hooks.token equals the gateway token: hook callers get full operator access; use a separate secret"
            );
        }
        tracing::info!(path = %cfg.hooks.base_path().map_err(anyhow::Error::msg)?, "OpenClaw hooks enabled");
    }
    let auth = Arc::new(auth::Auth::new(
        &token,
        source,
        cfg.gateway.auth.rate_limit.clone(),
    ));
    let grace = Duration::from_millis(cfg.gateway.shutdown_grace_ms);
    secure_data_dir(&data_dir)?;
    if let Some(resolver) = &tls {
        let _ = gw.tls.set(resolver.clone());
    }
    gw.runs.spawn_heartbeat_schedule();
    let store = gw.store.clone();
    auth.on_lockout(move |ip, lock| {
        let ev = clawplane_proto::v1::Event {
            kind: clawplane_proto::v1::EventKind::Security as i32,
            payload: Some(clawplane_proto::v1::event::Payload::Security(
                clawplane_proto::v1::SecurityAlert {
                    reason: "AUTH_LOCKOUT".into(),
                    detail: format!(
                        "too many failed authentication attempts; locked out for {} s",
                        lock.as_secs().max(1)
                    ),
                    remote_addr: ip.to_string(),
                    surface: "auth".into(),
                },
            )),
            ..Default::default()
        };
        store.spawn_write_detached(move |tx: &mut dyn store::Txn| tx.append_event(ev).map(|_| ()));
    });
    if gw.store.shared() {
        // Request buckets, failure counts and lockouts are the cluster's, not this
        // replica's.
        // One sender thread behind a bounded queue: a flood of failures never queues
        // unbounded work (past the bound the others miss some, as they may anyway).
        let store = gw.store.clone();
        let (tell, told) = std::sync::mpsc::sync_channel::<String>(1024);
        std::thread::Builder::new()
            .name("clawplane-auth-peers".into())
            .spawn(move || {
                for message in told {
                    if let Err(e) = store.signal(&message) {
                        tracing::debug!(error = %e, "cannot tell the other replicas of an auth failure");
                    }
                }
            })?;
        auth.share(gw.store.clone(), move |message| {
            let _ = tell.try_send(message);
        });
        let weak = Arc::downgrade(&auth);
        gw.store.on_signal(Box::new(move |message| {
            if let Some(auth) = weak.upgrade() {
                auth.from_peer(message);
            }
        }));
    }
    let api = api::Api {
        gw: gw.clone(),
        auth,
    };
    let (app, health) = server::router(api).await?;

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, cfg.gateway.port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {ip}:{}: {e}", cfg.gateway.port))?;
    let addr = listener.local_addr()?;
    let mut signals = Signals::install()?;
    {
        let mut out = std::io::stdout().lock();
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(out, "clawplane listening on {scheme}://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, data_dir = %data_dir.display(), "gateway ready");

    let stop = gw.shutdown.clone();
    let config = match &tls {
        Some(resolver) => {
            resolver.spawn_watcher(stop.clone());
            Some(resolver.server_config()?)
        }
        None => None,
    };
    let limits = server::ConnLimits {
        max_connections: cfg.gateway.max_tcp_connections,
        header_read_timeout: Duration::from_millis(cfg.gateway.header_read_timeout_ms.max(100)),
        listener: cfg.gateway.limits.clone(),
    };
    let server = tokio::spawn(server::serve(listener, config, limits, app, stop));

    // A store whose writer died (a panic) cannot acknowledge anything: stop loudly and
    // non-zero, so a supervisor restarts the gateway (crash recovery resumes its runs)
    // rather than leaving it serving errors. Acknowledged work is already durable.
    let failed_store = gw.store.clone();
    tokio::select! {
        _ = signals.next() => {}
        failure = failed_store.failed() => {
            tracing::error!(%failure, "the store failed; stopping the gateway");
            gw.shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
            anyhow::bail!("the store failed: {failure}");
        }
    }
    tracing::info!("shutting down: draining runs (a second signal exits at once)");
    tokio::spawn(async move {
        signals.next().await;
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
    server::drain(&gw, &health, grace).await;
    // Open streams (health watches, long waits) may hold connections; do not wait forever.
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves the certificate files (generating a self-signed pair for autoGenerate) and
/// loads them.
fn tls_setup(
    t: &config::TlsConfig,
    data_dir: &std::path::Path,
    bind: std::net::IpAddr,
) -> anyhow::Result<Arc<tls::CertResolver>> {
    let files = match (&t.cert_path, &t.key_path) {
        (Some(cert), Some(key)) => tls::CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => tls::default_files(data_dir),
    };
    if t.generates() && tls::ensure_self_signed(&files, bind)? {
        tracing::info!(
            cert = %files.cert.display(),
            key = %files.key.display(),
            "generated a self-signed TLS certificate"
        );
    }
    let resolver = tls::CertResolver::load(files)?;
    tracing::info!(
        cert = %resolver.files().cert.display(),
        fingerprint = %resolver.fingerprint(),
        "TLS on: gRPC, gRPC-Web, HTTP and wss:// share the port; pin the certificate with --tls-fingerprint"
    );
    Ok(resolver)
}

/// SIGTERM/SIGINT, registered once before the listening line is printed, so a signal sent
/// the moment a script sees that line drains instead of killing the process.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
