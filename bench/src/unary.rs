//! Targets 1 and 2: durable ChatService/Send accept rate, and GatewayService/Status against
//! a bare tonic health server under the same load shape.

use crate::{
    Opts, Report,
    grpc::{self, Conn},
    hist::ms,
    inproc::{Bare, Clawplane, TOKEN, bench_config},
    load::{self, CallFn, Outcome, Shape},
};
use anyhow::{Result, ensure};
use clawplane_proto::v1::{
    ChatServiceSendRequest, ChatServiceSendResponse, GatewayServiceStatusRequest,
    GatewayServiceStatusResponse, RunState,
};
use prost::Message as _;
use std::{net::SocketAddr, sync::Arc};
use tokio::runtime::Runtime;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response};

const SEND: &str = "/clawplane.v1.ChatService/Send";
const STATUS: &str = "/clawplane.v1.GatewayService/Status";
const HEALTH: &str = "/grpc.health.v1.Health/Check";

fn shape(o: &Opts) -> Shape {
    Shape {
        concurrency: o.concurrency,
        warmup: o.warmup(),
        measure: o.measure(),
    }
}

pub async fn connect_all(addr: SocketAddr, n: usize, token: Option<&str>) -> Result<Vec<Conn>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Conn::connect(addr, token).await?);
    }
    Ok(v)
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

/// Durable `ChatService/Send` from `concurrency` slots; slot i writes to session
/// `bench-{i mod sessions}`; every answer must be a fresh QUEUED run.
pub fn send_call(conns: Vec<Conn>, concurrency: usize, sessions: usize) -> CallFn {
    let method = conns[0].method(SEND);
    let bodies: Vec<_> = (0..concurrency)
        .map(|slot| {
            grpc::frame(&ChatServiceSendRequest {
                session_key: format!("bench-{}", slot % sessions.max(1)),
                message: format!("hello from slot {slot}"),
                ..Default::default()
            })
        })
        .collect();
    Arc::new(move |slot| {
        let c = conns[slot % conns.len()].clone();
        let m = method.clone();
        let body = bodies[slot].clone();
        Box::pin(async move {
            let r = ChatServiceSendResponse::decode(c.unary_raw(&m, body).await?)?;
            ensure!(
                r.state == RunState::Queued as i32 && !r.duplicate && !r.run_id.is_empty(),
                "unexpected answer {r:?}"
            );
            Ok(())
        })
    })
}

/// One measured Send window on a fresh gateway; also returns the run backlog and head.
fn send_once(rt: &Runtime, o: &Opts, sessions: usize) -> Result<(Outcome, u64, u64, u64)> {
    let mut cfg = bench_config();
    if let Some(n) = o.max_concurrent {
        cfg.agents.defaults.max_concurrent = n;
    }
    let srv = Clawplane::start(cfg, o.server_nodelay)?;
    let addr = srv.addr;
    let (conns, sh) = (o.conns, shape(o));
    let out = rt.block_on(async move {
        let conns = connect_all(addr, conns, Some(TOKEN)).await?;
        let call = send_call(conns, sh.concurrency, sessions);
        anyhow::Ok(load::closed_loop(sh, call).await)
    });
    let (queued, running) = srv.gw.runs.run_counts();
    let head = srv.gw.store.head();
    srv.stop();
    Ok((out?, queued, running, head))
}

/// Target 1.
pub fn send(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let sessions = o.sessions.max(1);
    let (out, queued, running, head) = crate::measured(
        o,
        "target 1",
        || send_once(rt, o, sessions),
        |r| r.0.other_load(),
    )?;
    let p99 = out.hist.quantile(0.99);
    report.row(
        "1",
        "ChatService/Send accept (durable), 64 in flight",
        ">= 20000/s, p99 <= 10 ms",
        format!("{:.0}/s, p99 {:.2} ms", out.rate(), ms(p99)),
        out.rate() >= 20_000.0 && p99 <= 10_000 && out.errors == 0,
    );
    report.detail(
        "1",
        format!(
            "{} in flight over {} h2 connections into {} sessions: {}",
            o.concurrency,
            o.conns,
            sessions,
            load_line(&out)
        ),
    );
    report.detail("1", out.cpu_line());
    report.detail(
        "1",
        format!(
            "run backlog when the window closed: {queued} accepted runs not yet started, \
             {running} in a model call; event head {head}"
        ),
    );
    Ok(())
}

pub fn status_call(conns: Vec<Conn>) -> CallFn {
    let method = conns[0].method(STATUS);
    let body = grpc::frame(&GatewayServiceStatusRequest {});
    Arc::new(move |slot| {
        let c = conns[slot % conns.len()].clone();
        let (m, body) = (method.clone(), body.clone());
        Box::pin(async move {
            let r = GatewayServiceStatusResponse::decode(c.unary_raw(&m, body).await?)?;
            ensure!(!r.version.is_empty(), "empty Status");
            Ok(())
        })
    })
}

pub fn health_call(conns: Vec<Conn>) -> CallFn {
    let method = conns[0].method(HEALTH);
    let body = grpc::frame(&HealthCheckRequest {
        service: String::new(),
    });
    Arc::new(move |slot| {
        let c = conns[slot % conns.len()].clone();
        let (m, body) = (method.clone(), body.clone());
        Box::pin(async move {
            let r = HealthCheckResponse::decode(c.unary_raw(&m, body).await?)?;
            ensure!(
                r.status == health_check_response::ServingStatus::Serving as i32,
                "not serving: {r:?}"
            );
            Ok(())
        })
    })
}

fn bare_once(rt: &Runtime, o: &Opts) -> Result<Outcome> {
    let (sh, n) = (shape(o), o.conns);
    let bare = Bare::start(o.server_nodelay)?;
    let addr = bare.addr;
    let out = rt.block_on(async move {
        let conns = connect_all(addr, n, None).await?;
        anyhow::Ok(load::closed_loop(sh, health_call(conns)).await)
    });
    bare.stop();
    out
}

/// GatewayService/Status on a fresh in-process gateway; or, as a diagnostic, the trivial
/// Health/Check through the same router (no auth, no store), which separates the stack's
/// cost from the Status handler's.
fn clawplane_once(rt: &Runtime, o: &Opts, status: bool) -> Result<Outcome> {
    let (sh, n) = (shape(o), o.conns);
    let srv = Clawplane::start(bench_config(), o.server_nodelay)?;
    let addr = srv.addr;
    let out = rt.block_on(async move {
        if status {
            let conns = connect_all(addr, n, Some(TOKEN)).await?;
            anyhow::Ok(load::closed_loop(sh, status_call(conns)).await)
        } else {
            let conns = connect_all(addr, n, None).await?;
            anyhow::Ok(load::closed_loop(sh, health_call(conns)).await)
        }
    });
    srv.stop();
    out
}

/// Target 2.
pub fn status(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    // Best of `--repeat` windows per server: single windows on a shared 2-core machine
    // swing by 10-20 %, and the ratio divides two of them.
    let best = |what: &str, f: &dyn Fn() -> Result<Outcome>| -> Result<Outcome> {
        let mut best: Option<Outcome> = None;
        for _ in 0..o.repeat.max(1) {
            let out = crate::measured(o, what, f, Outcome::other_load)?;
            if best.as_ref().is_none_or(|b| out.rate() > b.rate()) {
                best = Some(out);
            }
        }
        Ok(best.expect("repeat >= 1"))
    };
    let bare_out = best("bare tonic", &|| bare_once(rt, o))?;
    let status_out = best("clawplane Status", &|| clawplane_once(rt, o, true))?;
    let health_out = best("clawplane Health", &|| clawplane_once(rt, o, false))?;

    let ratio = status_out.rate() / bare_out.rate().max(1.0);
    report.row(
        "2",
        "GatewayService/Status vs bare tonic health",
        ">= 0.60 x bare",
        format!(
            "{:.0}/s vs {:.0}/s = {ratio:.2} x",
            status_out.rate(),
            bare_out.rate()
        ),
        ratio >= 0.6 && status_out.errors == 0 && bare_out.errors == 0,
    );
    report.detail(
        "2",
        format!(
            "{} in flight over {} h2 connections each; best of {} windows per server",
            o.concurrency,
            o.conns,
            o.repeat.max(1)
        ),
    );
    report.detail(
        "2",
        format!("bare tonic Health/Check: {}", load_line(&bare_out)),
    );
    report.detail("2", format!("  {}", bare_out.cpu_line()));
    report.detail(
        "2",
        format!(
            "clawplane GatewayService/Status: {}",
            load_line(&status_out)
        ),
    );
    report.detail("2", format!("  {}", status_out.cpu_line()));
    report.detail(
        "2",
        format!(
            "clawplane Health/Check (same router, no auth/store; diagnostic): {} = {:.2} x bare",
            load_line(&health_out),
            health_out.rate() / bare_out.rate().max(1.0)
        ),
    );
    report.detail("2", format!("  {}", health_out.cpu_line()));
    Ok(())
}
