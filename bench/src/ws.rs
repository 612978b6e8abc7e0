//! Targets 8 and 9: the OpenClaw WebSocket shim at `GET /`. Each socket does the handshake
//! the docs describe (`connect.challenge`, then `connect` with the gateway token), then
//! target 8 loops `health` requests (one in flight per socket) and target 9 holds 10,000
//! handshaken sockets idle against the real binary and reads its VmRSS.

use crate::{
    Opts, Report,
    child::{self, Gateway},
    hist::ms,
    inproc::{Clawplane, TOKEN, bench_config},
    load::{self, CallFn, Outcome, Shape},
};
use anyhow::{Context as _, Result, anyhow, bail, ensure};
use futures::{SinkExt as _, StreamExt as _};
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{net::TcpStream, runtime::Runtime, sync::Mutex};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

const MIB: f64 = 1024.0 * 1024.0;

/// A handshaken OpenClaw socket.
pub struct Ws {
    s: WebSocketStream<TcpStream>,
    next_id: u64,
}

impl Ws {
    /// Opens `ws://addr/`, reads `connect.challenge`, sends `connect` with `token` and
    /// waits for its `ok` answer.
    pub async fn handshake(addr: SocketAddr, token: &str) -> Result<Ws> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        tcp.set_nodelay(true)?;
        let (s, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .context("websocket upgrade")?;
        let mut ws = Ws { s, next_id: 0 };
        let challenge = ws.text().await?;
        ensure!(
            challenge.contains("\"connect.challenge\""),
            "first frame is not connect.challenge: {challenge}"
        );
        let connect = serde_json::json!({
            "type": "req",
            "id": "c",
            "method": "connect",
            "params": {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {"id": "cli", "mode": "cli", "version": "2026.9.6",
                           "platform": "linux", "instanceId": "clawplane-bench"},
                "role": "operator",
                "scopes": ["operator.admin"],
                "auth": {"token": token},
            }
        });
        ws.s.send(Message::Text(connect.to_string().into())).await?;
        let res = ws.res("\"c\"").await?;
        ensure!(res.contains("\"ok\":true"), "connect refused: {res}");
        Ok(ws)
    }

    /// The underlying socket (after the handshake).
    pub fn into_inner(self) -> WebSocketStream<TcpStream> {
        self.s
    }

    /// The next text frame.
    async fn text(&mut self) -> Result<String> {
        loop {
            match self.s.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
                Some(Ok(Message::Close(f))) => bail!("closed by the server: {f:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("socket ended"),
            }
        }
    }

    /// The `res` frame whose id (JSON-encoded) is `id`; events in between are skipped.
    async fn res(&mut self, id: &str) -> Result<String> {
        let needle = format!("\"id\":{id}");
        loop {
            let t = self.text().await?;
            if t.contains("\"type\":\"res\"") && t.contains(&needle) {
                return Ok(t);
            }
        }
    }

    /// One `health` round trip.
    pub async fn health(&mut self) -> Result<()> {
        self.next_id += 1;
        let id = format!("\"h{}\"", self.next_id);
        let req = format!(r#"{{"type":"req","id":{id},"method":"health","params":{{}}}}"#);
        self.s.send(Message::Text(req.into())).await?;
        let res = self.res(&id).await?;
        ensure!(res.contains("\"ok\":true"), "health failed: {res}");
        Ok(())
    }
}

fn load_line(o: &Outcome) -> String {
    let mut s = format!(
        "{:.0}/s ok over {:.1} s, {} errors; latency {}",
        o.rate(),
        o.window.as_secs_f64(),
        o.errors,
        o.hist.summary_ms()
    );
    if let Some(e) = &o.first_error {
        s.push_str(&format!("; first error: {e}"));
    }
    s
}

fn health_once(rt: &Runtime, o: &Opts, conns: usize) -> Result<Outcome> {
    let srv = Clawplane::start(bench_config(), o.server_nodelay)?;
    let addr = srv.addr;
    let sh = Shape {
        concurrency: conns,
        warmup: o.warmup(),
        measure: o.measure(),
    };
    let out = rt.block_on(async move {
        let mut cs = Vec::with_capacity(conns);
        for _ in 0..conns {
            cs.push(Arc::new(Mutex::new(Ws::handshake(addr, TOKEN).await?)));
        }
        cs[0].lock().await.health().await?;
        let call: CallFn = Arc::new(move |slot| {
            let c = cs[slot].clone();
            Box::pin(async move { c.lock().await.health().await })
        });
        anyhow::Ok(load::closed_loop(sh, call).await)
    });
    srv.stop();
    out
}

/// Target 8.
pub fn health(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let conns = o.ws_conns.max(1);
    let out = crate::measured(
        o,
        "target 8",
        || health_once(rt, o, conns),
        Outcome::other_load,
    )?;
    report.row(
        "8",
        &format!("WebSocket health round trips, {conns} sockets"),
        ">= 40000/s",
        format!(
            "{:.0}/s, p99 {:.2} ms",
            out.rate(),
            ms(out.hist.quantile(0.99))
        ),
        out.rate() >= 40_000.0 && out.errors == 0,
    );
    report.detail(
        "8",
        format!(
            "{conns} handshaken protocol-4 sockets (gateway token), 1 health req in flight \
             each: {}",
            load_line(&out)
        ),
    );
    report.detail("8", out.cpu_line());
    Ok(())
}

/// Raises this process's RLIMIT_NOFILE soft limit to `want` (capped at the hard limit);
/// children spawned afterwards inherit it. Returns the soft limit now in force.
pub fn raise_nofile(want: libc::rlim_t) -> Result<libc::rlim_t> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    let target = want.min(rl.rlim_max);
    if rl.rlim_cur < target {
        rl.rlim_cur = target;
        // SAFETY: a valid rlimit with cur <= max.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(rl.rlim_cur)
}

/// Target 9.
pub fn idle(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let n = o.ws_idle.max(1);
    // Sockets here plus the child's, with headroom for the runtime and the store.
    let limit = raise_nofile(n as libc::rlim_t + 1024)?;
    if limit < n as libc::rlim_t + 256 {
        bail!(
            "RLIMIT_NOFILE hard limit allows {limit} descriptors, need about {} for {n} sockets",
            n + 256
        );
    }
    let bin = child::binary(o)?;
    // Spawned after the raise, so the child inherits the soft limit.
    let gw = Gateway::spawn(&bin)?;
    let addr = gw.addr;
    let (before, after, opened, took) = rt.block_on(async {
        let (_c, _) = gw.first_status().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = gw.rss()?;
        let t0 = Instant::now();
        let opening = futures::stream::iter(0..n)
            .map(|i| async move {
                tokio::time::timeout(Duration::from_secs(20), Ws::handshake(addr, child::TOKEN))
                    .await
                    .map_err(|_| anyhow!("socket {i}: handshake not done within 20 s"))?
                    .with_context(|| format!("socket {i}"))
            })
            .buffer_unordered(64);
        let socks: Vec<Ws> = tokio::time::timeout(
            Duration::from_secs(300),
            futures::StreamExt::collect::<Vec<Result<Ws>>>(opening),
        )
        .await
        .map_err(|_| anyhow!("{n} handshakes not done within 300 s"))?
        .into_iter()
        .collect::<Result<_>>()?;
        let took = t0.elapsed();
        // Idle: no traffic, let the server settle its per-connection state.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = gw.rss()?;
        let opened = socks.len();
        drop(socks);
        anyhow::Ok((before, after, opened, took))
    })?;
    drop(gw);
    let total = after as f64 / MIB;
    let per = after.saturating_sub(before) as f64 / opened as f64 / 1024.0;
    report.row(
        "9",
        &format!("{opened} idle handshaken WS sockets, child VmRSS total"),
        "<= 300 MiB",
        format!("{total:.1} MiB"),
        total <= 300.0,
    );
    report.detail(
        "9",
        format!(
            "child VmRSS {:.2} MiB after 1 Status -> {total:.2} MiB with {opened} idle sockets \
             ({per:.1} KiB per socket); handshakes took {:.1} s (64 at a time, {:.0}/s); \
             RLIMIT_NOFILE soft limit {limit} (raised here, inherited by the child)",
            before as f64 / MIB,
            took.as_secs_f64(),
            opened as f64 / took.as_secs_f64()
        ),
    );
    Ok(())
}
