//! Targets 6 and 7: `POST /hooks/agent` (durable accept) and `POST /hooks/wake` over
//! HTTP/1.1 keep-alive, driven by a lean client: one raw TcpStream per connection, a
//! pre-encoded request, and a parser that reads only the status line and Content-Length.

use crate::{
    Opts, Report,
    hist::ms,
    inproc::{Clawplane, bench_config},
    load::{self, CallFn, Outcome, Shape},
};
use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::{Buf as _, BytesMut};
use std::{net::SocketAddr, sync::Arc};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    runtime::Runtime,
    sync::Mutex,
};

pub const HOOK_TOKEN: &str = "clawplane-bench-hooks-token";

/// One keep-alive HTTP/1.1 connection.
pub struct H1 {
    tcp: TcpStream,
    buf: BytesMut,
}

impl H1 {
    pub async fn connect(addr: SocketAddr) -> Result<H1> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        tcp.set_nodelay(true)?;
        Ok(H1 {
            tcp,
            buf: BytesMut::with_capacity(4096),
        })
    }

    /// Writes a pre-encoded request and reads one response; returns its status and body.
    pub async fn call(&mut self, req: &[u8]) -> Result<(u16, bytes::Bytes)> {
        self.tcp.write_all(req).await?;
        loop {
            if let Some((head_len, status, body_len)) = parse_head(&self.buf)? {
                let total = head_len + body_len;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                self.buf.advance(head_len);
                let body = self.buf.split_to(body_len).freeze();
                return Ok((status, body));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<()> {
        self.buf.reserve(4096);
        if self.tcp.read_buf(&mut self.buf).await? == 0 {
            bail!("connection closed by the server");
        }
        Ok(())
    }
}

/// Parses a complete response head: (head length, status, Content-Length).
fn parse_head(b: &[u8]) -> Result<Option<(usize, u16, usize)>> {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        if b.len() > 64 * 1024 {
            bail!("response head over 64 KiB");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&b[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut len = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            len = Some(v.trim().parse::<usize>().context("content-length")?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by the bench client");
        }
    }
    Ok(Some((end + 4, status, len.unwrap_or(0))))
}

/// A pre-encoded keep-alive POST with the hooks token.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {HOOK_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn hooks_config() -> clawplane_server::config::Config {
    let mut cfg = bench_config();
    cfg.hooks.enabled = true;
    cfg.hooks.token = Some(HOOK_TOKEN.into());
    cfg
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

/// One window of `conns` keep-alive connections, each with one request in flight, on a
/// fresh in-process gateway with hooks enabled. `check` validates a 200 body.
fn hooks_once(
    rt: &Runtime,
    o: &Opts,
    conns: usize,
    path: &'static str,
    body: &'static str,
    check: fn(&[u8]) -> bool,
) -> Result<(Outcome, u64, u64, u64)> {
    let mut cfg = hooks_config();
    if let Some(n) = o.max_concurrent {
        cfg.agents.defaults.max_concurrent = n;
    }
    let srv = Clawplane::start(cfg, o.server_nodelay)?;
    let addr = srv.addr;
    let sh = Shape {
        concurrency: conns,
        warmup: o.warmup(),
        measure: o.measure(),
    };
    let out = rt.block_on(async move {
        let mut cs = Vec::with_capacity(conns);
        for _ in 0..conns {
            cs.push(Arc::new(Mutex::new(H1::connect(addr).await?)));
        }
        let req: Arc<[u8]> = post(addr, path, body).into();
        // A first call proves the route before the window.
        let (st, b) = cs[0].lock().await.call(&req).await?;
        ensure!(
            st == 200 && check(&b),
            "{path}: status {st}, body {}",
            String::from_utf8_lossy(&b)
        );
        let call: CallFn = Arc::new(move |slot| {
            let c = cs[slot].clone();
            let req = req.clone();
            Box::pin(async move {
                let (st, b) = c.lock().await.call(&req).await?;
                ensure!(
                    st == 200 && check(&b),
                    "status {st}, body {}",
                    String::from_utf8_lossy(&b)
                );
                Ok(())
            })
        });
        anyhow::Ok(load::closed_loop(sh, call).await)
    });
    let (queued, running) = srv.gw.runs.run_counts();
    let head = srv.gw.store.head();
    srv.stop();
    Ok((out?, queued, running, head))
}

pub fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

pub const AGENT_BODY: &str = r#"{"message":"bench hook","deliver":false}"#;
pub const WAKE_BODY: &str = r#"{"text":"bench wake","mode":"next-heartbeat"}"#;

/// Target 6.
pub fn agent(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let conns = o.http_conns.max(1);
    let (out, queued, running, head) = crate::measured(
        o,
        "target 6",
        || {
            hooks_once(rt, o, conns, "/hooks/agent", AGENT_BODY, |b| {
                contains(b, br#""ok":true"#) && contains(b, br#""runId""#)
            })
        },
        |r| r.0.other_load(),
    )?;
    let p99 = out.hist.quantile(0.99);
    report.row(
        "6",
        &format!("POST /hooks/agent accept (durable), {conns} HTTP/1.1 conns"),
        ">= 15000/s, p99 <= 10 ms",
        format!("{:.0}/s, p99 {:.2} ms", out.rate(), ms(p99)),
        out.rate() >= 15_000.0 && p99 <= 10_000 && out.errors == 0,
    );
    report.detail(
        "6",
        format!(
            "{conns} keep-alive connections, 1 request in flight each, body {AGENT_BODY}: {}",
            load_line(&out)
        ),
    );
    report.detail("6", out.cpu_line());
    report.detail(
        "6",
        format!(
            "run backlog when the window closed (Gateway::run_counts): {queued} queued, \
             {running} in a model call; event head {head}. Each isolated hook gets its own \
             session driver, which stops counting a run as queued before it waits for a \
             maxConcurrent slot, so runs parked on the slot show in neither number"
        ),
    );
    Ok(())
}

/// Target 7.
pub fn wake(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let conns = o.http_conns.max(1);
    let (out, _, _, head) = crate::measured(
        o,
        "target 7",
        || {
            hooks_once(rt, o, conns, "/hooks/wake", WAKE_BODY, |b| {
                contains(b, br#""ok":true"#)
            })
        },
        |r| r.0.other_load(),
    )?;
    let p99 = out.hist.quantile(0.99);
    report.row(
        "7",
        &format!("POST /hooks/wake (next-heartbeat), {conns} HTTP/1.1 conns"),
        ">= 30000/s",
        format!("{:.0}/s, p99 {:.2} ms", out.rate(), ms(p99)),
        out.rate() >= 30_000.0 && out.errors == 0,
    );
    report.detail(
        "7",
        format!(
            "{conns} keep-alive connections, 1 request in flight each, same text (coalesced), \
             body {WAKE_BODY}: {}; event head {head}",
            load_line(&out)
        ),
    );
    report.detail("7", out.cpu_line());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn head_parsing() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nconte").unwrap(), None);
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
        assert_eq!(parse_head(r).unwrap(), Some((r.len() - 11, 200, 11)));
        let r = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_head(r).unwrap(), Some((r.len(), 401, 0)));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }
}
