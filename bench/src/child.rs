//! Targets 4 and 5: the real `clawplane` binary as a child process pinned to the server
//! CPU: start time, idle RSS, and RSS per idle watcher.

use crate::{
    Opts, Report,
    feed::{STREAMS_PER_CONN_LIMIT, WATCH},
    grpc::{self, Conn, MessageStream},
    hooks::HOOK_TOKEN,
    sys,
};
use anyhow::{Context as _, Result, anyhow, bail};
use clawplane_proto::v1::{
    EventServiceWatchRequest, GatewayServiceStatusRequest, GatewayServiceStatusResponse,
};
use std::{
    io::BufRead as _,
    net::SocketAddr,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};
use tokio::runtime::Runtime;

/// The same token as the in-process gateways, so every client in the bench works on both.
pub const TOKEN: &str = crate::inproc::TOKEN;
const STATUS: &str = "/clawplane.v1.GatewayService/Status";
const MIB: f64 = 1024.0 * 1024.0;

/// The gateway binary next to this executable (or `--clawplane-bin`).
pub fn binary(o: &Opts) -> Result<PathBuf> {
    let p = match &o.clawplane_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating the bench executable")?
            .with_file_name("clawplane"),
    };
    if !p.is_file() {
        bail!(
            "{} not found: build the gateway first with `cargo build -p clawplane-server --release` \
             (it lands next to clawplane-bench in target/release), or pass --clawplane-bin PATH",
            p.display()
        );
    }
    Ok(p)
}

/// A running child gateway; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Gateway {
    child: std::process::Child,
    pub addr: SocketAddr,
    /// Spawn to the "listening" line.
    pub listening_after: Duration,
    pub spawned: Instant,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub fn spawn(bin: &Path) -> Result<Gateway> {
        Self::spawn_on(bin, None)
    }

    /// Like [`Gateway::spawn`], with PostgreSQL at `store` as the store instead of redb.
    pub fn spawn_on(bin: &Path, store: Option<&str>) -> Result<Gateway> {
        Self::spawn_with(bin, store, None)
    }

    /// Like [`Gateway::spawn_on`], with `agents.defaults.maxConcurrent` when given.
    pub fn spawn_with(
        bin: &Path,
        store: Option<&str>,
        max_concurrent: Option<usize>,
    ) -> Result<Gateway> {
        let slots = max_concurrent.map_or(String::new(), |n| format!(", maxConcurrent: {n}"));
        let dir = tempfile::Builder::new()
            .prefix("clawplane-bench-child-")
            .tempdir()?;
        let config = dir.path().join("config.json5");
        std::fs::write(
            &config,
            format!(
                "{{ gateway: {{ auth: {{ token: \"{TOKEN}\" }} }},\n  \
                 agents: {{ defaults: {{ heartbeat: {{ every: \"0m\" }}{slots} }} }},\n  \
                 hooks: {{ enabled: true, token: \"{HOOK_TOKEN}\" }},\n  \
                 events: {{ progressIntervalMs: 3600000 }},\n  \
                 storage: {{ postgres: {{ url: \"{}\" }} }} }}\n",
                store.unwrap_or_default()
            ),
        )?;
        let data = dir.path().join("data");
        let stderr = dir.path().join("stderr.log");
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLAWPLANE_") {
                cmd.env_remove(k);
            }
        }
        // SAFETY: cpu_set_t is plain bits; CPU_SET on an in-range index.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(sys::SERVER_CPU, &mut set);
            set
        };
        // SAFETY: the hook only makes one async-signal-safe syscall and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                // Best effort: a runner without this CPU still runs the scenario, unpinned.
                let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                Ok(())
            });
        }
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send((line, Instant::now()));
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let mut gw = Gateway {
            child,
            addr: "127.0.0.1:0".parse().expect("addr"),
            listening_after: Duration::ZERO,
            spawned,
            stderr,
            _dir: dir,
        };
        let (line, at) = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| {
            anyhow!(
                "the gateway printed no listening line within 20 s; its stderr:\n{}",
                gw.stderr_text()
            )
        })?;
        gw.listening_after = at - spawned;
        gw.addr = line
            .strip_prefix("clawplane listening on http://")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| anyhow!("unexpected first stdout line {line:?}"))?;
        Ok(gw)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss(&self) -> Result<u64> {
        sys::rss_bytes(self.pid())
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Connects and calls Status until it succeeds (bounded); returns the connection and
    /// the time from spawn to the first successful answer.
    pub async fn first_status(&self) -> Result<(Conn, Duration)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = async {
                let c = Conn::connect(self.addr, Some(TOKEN)).await?;
                let _: GatewayServiceStatusResponse = c
                    .unary(&c.method(STATUS), &GatewayServiceStatusRequest {})
                    .await?;
                anyhow::Ok(c)
            }
            .await;
            match r {
                Ok(c) => return Ok((c, self.spawned.elapsed())),
                Err(e) if Instant::now() >= deadline => {
                    bail!(
                        "no successful Status within 10 s: {e:#}; stderr:\n{}",
                        self.stderr_text()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Target 5: start-to-first-served-request and idle RSS of a fresh gateway.
pub fn start_and_idle(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let bin = binary(o)?;
    // One unmeasured start warms the page cache for the binary.
    {
        let gw = Gateway::spawn(&bin)?;
        rt.block_on(gw.first_status())?;
    }
    let runs = o.start_runs.max(1);
    let (mut starts, mut listens, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let gw = Gateway::spawn(&bin)?;
        let (_conn, first) = rt.block_on(gw.first_status())?;
        std::thread::sleep(Duration::from_millis(300));
        rss.push(gw.rss()? as f64 / MIB);
        starts.push(first.as_secs_f64() * 1000.0);
        listens.push(gw.listening_after.as_secs_f64() * 1000.0);
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (start_max, rss_max) = (max(&starts), max(&rss));
    let (start_med, listen_med, rss_med) =
        (median(&mut starts), median(&mut listens), median(&mut rss));
    report.row(
        "5a",
        "Idle RSS of a fresh gateway (after 1 Status)",
        "<= 30 MiB",
        format!("{rss_med:.1} MiB"),
        rss_med <= 30.0,
    );
    report.row(
        "5b",
        "Start to first served request (fresh data dir)",
        "<= 200 ms",
        format!("{start_med:.0} ms"),
        start_med <= 200.0,
    );
    report.detail(
        "5",
        format!(
            "{runs} fresh starts of {} pinned to CPU {}: RSS median {rss_med:.1} MiB, max \
             {rss_max:.1} MiB; spawn -> listening line median {listen_med:.0} ms; spawn -> first \
             Status answered median {start_med:.0} ms, max {start_max:.0} ms",
            bin.display(),
            sys::SERVER_CPU
        ),
    );
    Ok(())
}

/// Target 4: RSS per idle watcher.
pub fn idle_watchers(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let bin = binary(o)?;
    let gw = Gateway::spawn(&bin)?;
    let n = o.subscribers;
    let conns_n = o.sub_conns.max(n.div_ceil(STREAMS_PER_CONN_LIMIT)).max(1);
    let (before, after, opened) = rt.block_on(async {
        let (c0, _) = gw.first_status().await?;
        let mut conns = vec![c0];
        for _ in 1..conns_n {
            let c = Conn::connect(gw.addr, Some(TOKEN)).await?;
            let _: GatewayServiceStatusResponse = c
                .unary(&c.method(STATUS), &GatewayServiceStatusRequest {})
                .await?;
            conns.push(c);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = gw.rss()?;
        let m = conns[0].method(WATCH);
        let body = grpc::frame(&EventServiceWatchRequest {
            follow_only: true,
            ..Default::default()
        });
        let mut streams: Vec<MessageStream> = Vec::with_capacity(n);
        for i in 0..n {
            let s = tokio::time::timeout(
                Duration::from_secs(10),
                conns[i % conns_n].server_stream(&m, body.clone()),
            )
            .await
            .map_err(|_| anyhow!("watch {i} did not open within 10 s"))??;
            streams.push(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = gw.rss()?;
        let opened = streams.len();
        drop(streams);
        anyhow::Ok((before, after, opened))
    })?;
    drop(gw);
    let per = after.saturating_sub(before) as f64 / opened as f64 / 1024.0;
    report.row(
        "4",
        &format!("Idle RSS per watcher ({opened} followOnly watches)"),
        "<= 10 KiB",
        format!("{per:.1} KiB"),
        per <= 10.0,
    );
    report.detail(
        "4",
        format!(
            "child VmRSS {:.2} MiB with {conns_n} connections (1 Status each) -> {:.2} MiB with \
             {opened} idle watches on them ({} per connection)",
            before as f64 / MIB,
            after as f64 / MIB,
            opened.div_ceil(conns_n)
        ),
    );
    Ok(())
}
