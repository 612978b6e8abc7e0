//! In-process servers on their own runtime: 1 worker pinned to the server CPU. The
//! clawplane one replicates `clawplane_server::serve` (Gateway::open, router, axum::serve
//! with connect info); the bare one is tonic + tonic-health only.

use crate::sys;
use anyhow::{Context as _, Result};
use clawplane_server::{
    api::Api,
    auth::{Auth, TokenSource},
    config::Config,
    core::Gateway,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, runtime::Runtime};

pub const TOKEN: &str = "clawplane-bench-token";

/// Name prefix of the server runtime's threads.
pub const SERVER_THREAD: &str = "srv-worker";
/// What the store writer thread is called in /proc (15-byte comm limit).
pub const WRITER_THREAD: &str = "clawplane-store";

/// The server runtime: one worker thread, pinned (with its blocking threads) to the server
/// CPU.
pub fn server_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREAD)
        .on_thread_start(|| sys::pin_current(sys::SERVER_CPU))
        .enable_all()
        .build()
        .context("server runtime")
}

/// Config the in-process benches use: known token, no heartbeat schedule, no idle
/// progress frames.
pub fn bench_config() -> Config {
    let mut cfg = Config::default();
    cfg.gateway.auth.token = Some(TOKEN.into());
    cfg.agents.defaults.heartbeat.every = "0m".into();
    cfg.events.progress_interval_ms = 3_600_000;
    cfg
}

/// A running in-process clawplane gateway.
pub struct Clawplane {
    pub addr: SocketAddr,
    pub gw: Arc<Gateway>,
    rt: Option<Runtime>,
    _health: tonic_health::server::HealthReporter,
    _dir: tempfile::TempDir,
}

impl Clawplane {
    pub fn start(cfg: Config, nodelay: bool) -> Result<Clawplane> {
        let dir = tempfile::Builder::new()
            .prefix("clawplane-bench-")
            .tempdir()
            .context("temp data dir")?;
        let rt = server_runtime()?;
        let data_dir = dir.path().to_path_buf();
        // Spawned (not block_on) so everything, including the store writer thread that
        // Gateway::open starts, is created on the pinned worker and inherits its CPU.
        let (addr, gw, health) = rt.block_on(async move {
            tokio::spawn(async move {
                let token = cfg.gateway.auth.token.clone().unwrap_or_default();
                let auth = Arc::new(Auth::new(
                    &token,
                    TokenSource::Config,
                    cfg.gateway.auth.rate_limit.clone(),
                ));
                let gw = Gateway::open(cfg, data_dir).await?;
                gw.runs.spawn_heartbeat_schedule();
                let api = Api {
                    gw: gw.clone(),
                    auth,
                };
                let (app, health) = clawplane_server::server::router(api).await?;
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let stop = gw.shutdown.clone();
                let make = app.into_make_service_with_connect_info::<SocketAddr>();
                if nodelay {
                    use axum::serve::ListenerExt as _;
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    tokio::spawn(async move {
                        axum::serve(listener, make)
                            .with_graceful_shutdown(async move { stop.cancelled().await })
                            .await
                    });
                } else {
                    tokio::spawn(async move {
                        axum::serve(listener, make)
                            .with_graceful_shutdown(async move { stop.cancelled().await })
                            .await
                    });
                }
                anyhow::Ok((addr, gw, health))
            })
            .await?
        })?;
        // Belt and braces: the writer must share the server CPU.
        for tid in sys::threads_named(WRITER_THREAD) {
            sys::pin(tid, sys::SERVER_CPU)?;
        }
        Ok(Clawplane {
            addr,
            gw,
            rt: Some(rt),
            _health: health,
            _dir: dir,
        })
    }

    /// Stops: no new runs, streams end, runtime dropped.
    pub fn stop(mut self) {
        self.gw
            .runs
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        self.gw.shutdown.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A bare tonic server with only `grpc.health.v1.Health`.
pub struct Bare {
    pub addr: SocketAddr,
    rt: Option<Runtime>,
}

impl Bare {
    pub fn start(nodelay: bool) -> Result<Bare> {
        let rt = server_runtime()?;
        let addr = rt.block_on(async move {
            tokio::spawn(async move {
                let (reporter, svc) = tonic_health::server::health_reporter();
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let incoming = tonic::transport::server::TcpIncoming::from(listener)
                    .with_nodelay(nodelay.then_some(true));
                // Ends when the runtime is dropped.
                tokio::spawn(async move {
                    let _keep = reporter;
                    tonic::transport::Server::builder()
                        .add_service(svc)
                        .serve_with_incoming(incoming)
                        .await
                });
                anyhow::Ok(addr)
            })
            .await?
        })?;
        Ok(Bare { addr, rt: Some(rt) })
    }

    pub fn stop(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
