//! Scenarios measured next to a baseline in the same run, for `BENCHMARKS.md`.
//!
//! Every server here is a separate process pinned to the server CPU (the load stays on the
//! load CPU): the real `clawplane` binary, a bare tonic server (this binary re-executed
//! with `--serve-bare`), and the real OpenClaw gateway. Each row reads the server process
//! tree's utime + stime (`/proc/<pid>/stat`) at the start and the end of the measured window
//! and divides by the operations completed in it, and reads the tree's VmRSS right after.

use crate::{
    Opts,
    child::{self, Gateway},
    feed,
    hooks::{self, AGENT_BODY, H1, WAKE_BODY, contains},
    load::{self, CallFn, Outcome, Shape},
    ocfeed,
    openclaw::{self, OpenClaw},
    procs::{self, Pinned},
    unary,
    ws::Ws,
};
use anyhow::{Context as _, Result, anyhow, bail, ensure};
use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{runtime::Runtime, sync::Mutex};

mod replicas;

const MIB: f64 = 1024.0 * 1024.0;

/// One server's numbers in one scenario.
pub struct Meas {
    pub rate: f64,
    pub unit: &'static str,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    /// Server CPU per operation, µs.
    pub cpu_us: Option<f64>,
    pub rss: Option<u64>,
    pub errors: u64,
    /// Fan-out rows: deliveries per second over all subscribers.
    pub total_rate: Option<f64>,
    /// Fan-out rows: deliveries missed and duplicated.
    pub missed_dup: Option<(u64, u64)>,
    /// Fan-out rows: offered events never produced (pacer skipped, or trigger refused)
    /// out of the offered total.
    pub not_produced: Option<(u64, u64)>,
    pub note: String,
}

pub struct Side {
    pub who: String,
    /// Err: not measured, with the reason.
    pub result: Result<Meas, String>,
}

pub struct Scenario {
    pub name: String,
    pub load: String,
    pub sides: Vec<Side>,
    pub notes: Vec<String>,
}

#[derive(Default)]
pub struct Comparison {
    pub scenarios: Vec<Scenario>,
    /// Errors of clawplane or bare-tonic sides (the smoke run fails on these).
    pub failures: Vec<String>,
    pub openclaw_version: Option<String>,
}

fn shape(o: &Opts, concurrency: usize) -> Shape {
    Shape {
        concurrency,
        warmup: o.warmup(),
        measure: o.measure(),
    }
}

fn from_outcome(out: &Outcome, unit: &'static str, rss: u64) -> Meas {
    let mut note = format!("{} ok in {:.1} s", out.ok, out.window.as_secs_f64());
    if out.errors > 0 {
        note.push_str(&format!(", {} errors", out.errors));
        if let Some(e) = &out.first_error {
            note.push_str(&format!(" (first: {})", one_line(e)));
        }
    }
    Meas {
        rate: out.rate(),
        unit,
        p50_us: (out.ok > 0).then(|| out.hist.quantile(0.5)),
        p99_us: (out.ok > 0).then(|| out.hist.quantile(0.99)),
        cpu_us: (out.ok > 0).then(|| out.probe * 1e6 / out.ok as f64),
        rss: Some(rss),
        errors: out.errors,
        total_rate: None,
        missed_dup: None,
        not_produced: None,
        note,
    }
}

fn one_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("");
    if l.len() > 160 {
        format!("{}...", &l[..l.floor_char_boundary(160)])
    } else {
        l.to_string()
    }
}

/// Runs a closed loop against a server process `pid` and measures its tree.
fn window(rt: &Runtime, sh: Shape, call: CallFn, pid: u32, unit: &'static str) -> Meas {
    let out = rt.block_on(load::closed_loop_probed(sh, call, move || {
        procs::tree_cpu_secs(pid)
    }));
    from_outcome(&out, unit, procs::tree_rss(pid))
}

/// A bare tonic server (`grpc.health.v1` only) in a child process: this binary with
/// `--serve-bare`.
struct BareChild {
    proc: Pinned,
    addr: SocketAddr,
}

impl BareChild {
    fn spawn() -> Result<BareChild> {
        let exe = std::env::current_exe().context("locating the bench executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("--serve-bare");
        let proc = Pinned::spawn(cmd)?;
        let addr = proc.wait_line(Duration::from_secs(20), |l| {
            l.strip_prefix("bare tonic listening on ")
                .and_then(|a| a.trim().parse().ok())
        })?;
        Ok(BareChild { proc, addr })
    }
}

/// `--serve-bare`: serve bare tonic health on 127.0.0.1:0 until killed.
pub fn serve_bare() -> Result<()> {
    let bare = crate::inproc::Bare::start(false)?;
    println!("bare tonic listening on {}", bare.addr);
    use std::io::Write as _;
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}

/// HTTP/1.1 keep-alive POST from one slot per connection; a dropped connection is
/// re-opened on the next call.
fn hooks_call(
    addr: SocketAddr,
    conns: usize,
    path: &str,
    body: &str,
    check: fn(&[u8]) -> bool,
) -> CallFn {
    let slots: Arc<Vec<Mutex<Option<H1>>>> =
        Arc::new((0..conns).map(|_| Mutex::new(None)).collect());
    let req: Arc<[u8]> = hooks::post(addr, path, body).into();
    Arc::new(move |slot| {
        let (slots, req) = (slots.clone(), req.clone());
        Box::pin(async move {
            let mut g = slots[slot].lock().await;
            if g.is_none() {
                *g = Some(H1::connect(addr).await?);
            }
            let r = g.as_mut().expect("connected").call(&req).await;
            let (st, b) = match r {
                Ok(x) => x,
                Err(e) => {
                    *g = None;
                    return Err(e);
                }
            };
            ensure!(
                st == 200 && check(&b),
                "status {st}, body {}",
                String::from_utf8_lossy(&b)
            );
            Ok(())
        })
    })
}

fn agent_ok(b: &[u8]) -> bool {
    contains(b, br#""ok":true"#) && contains(b, br#""runId""#)
}

fn wake_ok(b: &[u8]) -> bool {
    contains(b, br#""ok":true"#)
}

/// One WebSocket per slot, handshaken up front; one `health` in flight each.
async fn ws_call(addr: SocketAddr, token: &str, conns: usize) -> Result<CallFn> {
    let mut cs = Vec::with_capacity(conns);
    for _ in 0..conns {
        cs.push(Arc::new(Mutex::new(Ws::handshake(addr, token).await?)));
    }
    cs[0].lock().await.health().await?;
    Ok(Arc::new(move |slot| {
        let c = cs[slot].clone();
        Box::pin(async move { c.lock().await.health().await })
    }))
}

/// Spawn -> first successful WebSocket `health` round trip (handshake included), retrying
/// every 5 ms; also spawn -> first accepted TCP connection.
async fn first_ws_health(
    addr: SocketAddr,
    token: &str,
    spawned: Instant,
    within: Duration,
) -> Result<(Duration, Duration)> {
    let deadline = Instant::now() + within;
    let mut tcp_at = None;
    let mut last_err = String::new();
    while Instant::now() < deadline {
        if tcp_at.is_none() && tokio::net::TcpStream::connect(addr).await.is_ok() {
            tcp_at = Some(spawned.elapsed());
        }
        if tcp_at.is_some() {
            let r = async {
                let mut ws = Ws::handshake(addr, token).await?;
                ws.health().await
            };
            match tokio::time::timeout(Duration::from_secs(20), r).await {
                Ok(Ok(())) => {
                    let t = spawned.elapsed();
                    return Ok((tcp_at.unwrap_or(t), t));
                }
                Ok(Err(e)) => last_err = format!("{e:#}"),
                Err(_) => last_err = "handshake + health took over 20 s".into(),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!(
        "no successful WebSocket health within {within:?}: {}",
        one_line(&last_err)
    )
}

fn ratio_note(a: &Meas, b: &Meas, unit: &str) -> String {
    format!(
        "{:.2}x the baseline's {unit}",
        a.rate / b.rate.max(f64::MIN_POSITIVE)
    )
}

impl Comparison {
    fn fail(&mut self, what: &str, e: &anyhow::Error) -> String {
        let msg = format!("{what}: {e:#}");
        eprintln!("  error: {msg}");
        self.failures.push(msg.clone());
        one_line(&format!("{e:#}"))
    }

    /// Measures a clawplane side (fresh child gateway); errors are failures.
    fn ours<T>(&mut self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T, String> {
        f().map_err(|e| self.fail(what, &e))
    }
}

fn quiet(o: &Opts) {
    if o.quiet_wait_secs > 0 {
        crate::sys::wait_quiet(Duration::from_secs(o.quiet_wait_secs.min(15)));
    }
}

/// `--feed-compare-only`: the fan-out scenario alone (clawplane matrix, then OpenClaw).
pub fn feed_only(rt: &Runtime, o: &Opts) -> Comparison {
    let mut c = Comparison::default();
    let bin = match child::binary(o) {
        Ok(b) => b,
        Err(e) => {
            c.fail("locating the clawplane binary", &e);
            return c;
        }
    };
    let cp = clawplane_feed(&mut c, rt, o, &bin);
    let oc_feed: FeedR = if o.skip_openclaw {
        Err("skipped (--skip-openclaw)".to_string())
    } else {
        match openclaw::locate() {
            Err(e) => Err(one_line(&format!("not measured: {e:#}"))),
            Ok(inst) => {
                c.openclaw_version = Some(inst.version.clone());
                match OpenClaw::spawn(&inst) {
                    Err(e) => Err(one_line(&format!("not measured: {e:#}"))),
                    Ok(gw) => {
                        let up = rt.block_on(first_ws_health(
                            gw.addr,
                            openclaw::GATEWAY_TOKEN,
                            gw.proc.spawned,
                            Duration::from_secs(120),
                        ));
                        match up {
                            Err(e) => Err(one_line(&format!("not measured: {e:#}"))),
                            Ok(_) => openclaw_feed(rt, o, gw.addr, gw.pid()),
                        }
                    }
                }
            }
        }
    };
    let oc = match &c.openclaw_version {
        Some(v) => format!("OpenClaw {v} (Node child process)"),
        None => "OpenClaw gateway".into(),
    };
    c.scenarios.push(feed_scenario(o, &oc, cp, oc_feed));
    c
}

/// Runs every comparison scenario.
pub fn run(rt: &Runtime, o: &Opts) -> Comparison {
    let mut c = Comparison::default();
    let bin = match child::binary(o) {
        Ok(b) => b,
        Err(e) => {
            let r = c.fail("locating the clawplane binary", &e);
            c.scenarios.push(Scenario {
                name: "all scenarios".into(),
                load: "-".into(),
                sides: vec![Side {
                    who: "clawplane".into(),
                    result: Err(r),
                }],
                notes: vec![],
            });
            return c;
        }
    };
    let ours = "clawplane (child process)";

    // gRPC unary: bare tonic baseline, Status, Send.
    eprintln!("compare: gRPC unary (bare tonic, Status, Send) ...");
    let grpc_load = format!(
        "{} in flight over {} h2c connections, closed loop",
        o.concurrency, o.conns
    );
    quiet(o);
    let bare = c.ours("bare tonic Health/Check", || {
        let b = BareChild::spawn()?;
        let conns = rt.block_on(unary::connect_all(b.addr, o.conns, None))?;
        let m = window(
            rt,
            shape(o, o.concurrency),
            unary::health_call(conns),
            b.proc.pid(),
            "calls/s",
        );
        Ok(m)
    });
    quiet(o);
    let status = c.ours("clawplane GatewayService/Status", || {
        let gw = Gateway::spawn(&bin)?;
        let conns = rt.block_on(unary::connect_all(gw.addr, o.conns, Some(child::TOKEN)))?;
        Ok(window(
            rt,
            shape(o, o.concurrency),
            unary::status_call(conns),
            gw.pid(),
            "calls/s",
        ))
    });
    quiet(o);
    let send = c.ours("clawplane ChatService/Send", || send_window(rt, o, &bin));
    let bare_copy = || match &bare {
        Ok(m) => Ok(Meas {
            note: m.note.clone(),
            ..*m
        }),
        Err(e) => Err(e.clone()),
    };
    let mut notes = vec![
        "Baseline: a tonic server with only `grpc.health.v1.Health` (no auth, no store), \
         this bench binary re-executed with `--serve-bare`, same pinning and load."
            .to_string(),
    ];
    if let (Ok(a), Ok(b)) = (&status, &bare) {
        notes.push(format!("Status: {}.", ratio_note(a, b, "calls/s")));
    }
    c.scenarios.push(Scenario {
        name: "gRPC unary `GatewayService/Status`".into(),
        load: grpc_load.clone(),
        sides: vec![
            Side {
                who: ours.into(),
                result: status,
            },
            Side {
                who: "bare tonic `Health/Check`".into(),
                result: bare_copy(),
            },
        ],
        notes,
    });
    let mut notes = vec![
        "Each Send is a durable accept (a QUEUED run committed before the answer) and the \
         accepted runs execute on the built-in model on the same CPU during the window; the \
         baseline is the bare tonic row above (same measurement)."
            .to_string(),
    ];
    if let (Ok(a), Ok(b)) = (&send, &bare) {
        notes.push(format!("Send: {}.", ratio_note(a, b, "calls/s")));
    }
    c.scenarios.push(Scenario {
        name: "gRPC unary `ChatService/Send`".into(),
        load: format!("{grpc_load}, {} sessions", o.sessions),
        sides: vec![
            Side {
                who: ours.into(),
                result: send,
            },
            Side {
                who: "bare tonic `Health/Check`".into(),
                result: bare_copy(),
            },
        ],
        notes,
    });

    replicas::run(&mut c, rt, o, &bin, &grpc_load);

    // Hooks and WS on clawplane.
    let agent_conns = o.openclaw_agent_conns.max(1);
    eprintln!("compare: hooks and WebSocket on clawplane ...");
    let hook = |c: &mut Comparison,
                what: &str,
                conns: usize,
                path: &'static str,
                body: &'static str,
                check: fn(&[u8]) -> bool,
                unit: &'static str| {
        quiet(o);
        c.ours(what, || {
            let gw = Gateway::spawn(&bin)?;
            let call = hooks_call(gw.addr, conns, path, body, check);
            rt.block_on(call(0))
                .with_context(|| format!("first {path}"))?;
            Ok(window(rt, shape(o, conns), call, gw.pid(), unit))
        })
    };
    let cp_wake = hook(
        &mut c,
        "clawplane /hooks/wake",
        o.http_conns,
        "/hooks/wake",
        WAKE_BODY,
        wake_ok,
        "req/s",
    );
    let cp_agent = hook(
        &mut c,
        "clawplane /hooks/agent",
        agent_conns,
        "/hooks/agent",
        AGENT_BODY,
        agent_ok,
        "req/s",
    );
    quiet(o);
    let cp_ws = c.ours("clawplane WS health", || {
        let gw = Gateway::spawn(&bin)?;
        let call = rt.block_on(ws_call(gw.addr, child::TOKEN, o.ws_conns.max(1)))?;
        Ok(window(
            rt,
            shape(o, o.ws_conns.max(1)),
            call,
            gw.pid(),
            "round trips/s",
        ))
    });

    // Event feed fan-out matrix.
    eprintln!("compare: event feed ...");
    let cp_feed = clawplane_feed(&mut c, rt, o, &bin);

    // Cold start and idle RSS of clawplane.
    eprintln!("compare: clawplane cold start ...");
    quiet(o);
    let cp_start = c.ours("clawplane cold start", || {
        let (mut firsts, mut tcps, mut rss) = (vec![], vec![], vec![]);
        // One unmeasured start warms the page cache for the binary.
        for i in 0..=o.start_runs.max(1) {
            let gw = Gateway::spawn(&bin)?;
            let (tcp, first) = rt.block_on(first_ws_health(
                gw.addr,
                child::TOKEN,
                gw.spawned,
                Duration::from_secs(20),
            ))?;
            if i == 0 {
                continue;
            }
            std::thread::sleep(o.settle());
            rss.push(procs::tree_rss(gw.pid()));
            firsts.push(first);
            tcps.push(tcp);
        }
        Ok(start_meas(firsts, tcps, rss))
    });

    // OpenClaw: one gateway for start, idle RSS, wake, WS, then agent (last, since its
    // accepted runs keep working in the background).
    let (mut oc_start, mut oc_wake, mut oc_ws, mut oc_agent) = (
        Err(String::new()),
        Err(String::new()),
        Err(String::new()),
        Err(String::new()),
    );
    let oc_feed: FeedR;
    let mut oc_notes = Vec::new();
    if o.skip_openclaw {
        let why = if o.smoke {
            "skipped (--smoke)"
        } else {
            "skipped (--skip-openclaw)"
        };
        for r in [&mut oc_start, &mut oc_wake, &mut oc_ws, &mut oc_agent] {
            *r = Err(why.into());
        }
        oc_feed = Err(why.into());
    } else {
        eprintln!("compare: OpenClaw gateway ...");
        match openclaw::locate() {
            Err(e) => {
                let why = one_line(&format!("not measured: {e:#}"));
                for r in [&mut oc_start, &mut oc_wake, &mut oc_ws, &mut oc_agent] {
                    *r = Err(why.clone());
                }
                oc_feed = Err(why);
            }
            Ok(inst) => {
                c.openclaw_version = Some(inst.version.clone());
                quiet(o);
                let r = run_openclaw(rt, o, &inst, agent_conns, &mut oc_notes);
                let feed;
                (oc_start, oc_wake, oc_ws, oc_agent, feed) = r;
                oc_feed = feed;
            }
        }
    }
    let oc = match &c.openclaw_version {
        Some(v) => format!("OpenClaw {v} (Node child process)"),
        None => "OpenClaw gateway".into(),
    };

    let mut notes = vec![];
    if let (Ok(a), Ok(b)) = (&cp_wake, &oc_wake) {
        notes.push(format!("wake: {}.", ratio_note(a, b, "req/s")));
    }
    notes.push(format!(
        "Body `{WAKE_BODY}`, `Authorization: Bearer <hooks.token>` on both."
    ));
    c.scenarios.push(Scenario {
        name: "`POST /hooks/wake`".into(),
        load: format!(
            "{} HTTP/1.1 keep-alive connections, 1 request in flight each",
            o.http_conns
        ),
        sides: vec![
            Side {
                who: ours.into(),
                result: cp_wake,
            },
            Side {
                who: oc.clone(),
                result: oc_wake,
            },
        ],
        notes,
    });
    let mut notes = vec![format!(
        "Accept path only on both: body `{AGENT_BODY}`; a 200 `{{ok:true, runId}}` counts. \
         clawplane commits the run durably before answering, then runs it on its built-in \
         model on the same CPU; OpenClaw admits the run, then its agent run starts on its \
         default (OpenAI) model, which it cannot reach here (no provider credentials, outside \
         DNS refused), so its runs produce no model output: on both sides only the accept (a \
         200 with a runId) is timed. Server CPU includes whatever background work the \
         accepted runs caused inside the window. Fewer connections than the wake row because OpenClaw answers a 503 \
         after 15 s without admission."
    )];
    if let (Ok(a), Ok(b)) = (&cp_agent, &oc_agent) {
        notes.push(format!("agent: {}.", ratio_note(a, b, "req/s")));
    }
    c.scenarios.push(Scenario {
        name: "`POST /hooks/agent` (accept)".into(),
        load: format!("{agent_conns} HTTP/1.1 keep-alive connections, 1 request in flight each"),
        sides: vec![
            Side {
                who: ours.into(),
                result: cp_agent,
            },
            Side {
                who: oc.clone(),
                result: oc_agent,
            },
        ],
        notes,
    });
    let mut notes = vec![
        "Each socket does the protocol-4 handshake (`connect.challenge`, then `connect` as \
         `cli`/`cli` with the gateway token, scopes `operator.admin`) before the window; \
         then `{type:req, method:health}` round trips, events in between skipped."
            .to_string(),
    ];
    if let (Ok(a), Ok(b)) = (&cp_ws, &oc_ws) {
        notes.push(format!("WS: {}.", ratio_note(a, b, "round trips/s")));
    }
    c.scenarios.push(Scenario {
        name: "WebSocket `health` round trips".into(),
        load: format!("{} sockets, 1 request in flight each", o.ws_conns.max(1)),
        sides: vec![
            Side {
                who: ours.into(),
                result: cp_ws,
            },
            Side {
                who: oc.clone(),
                result: oc_ws,
            },
        ],
        notes,
    });
    c.scenarios.push(feed_scenario(o, &oc, cp_feed, oc_feed));
    let mut notes = vec![format!(
        "Cold start = spawn to the first successful WebSocket `health` round trip (handshake \
         included), polled every 5 ms; RSS = VmRSS of the process tree {:.1} s after it. \
         clawplane: median of {} fresh starts (fresh data dir), after one unmeasured start.",
        o.settle().as_secs_f64(),
        o.start_runs.max(1)
    )];
    notes.extend(oc_notes);
    c.scenarios.push(Scenario {
        name: "Cold start and idle RSS".into(),
        load: "no load".into(),
        sides: vec![
            Side {
                who: ours.into(),
                result: cp_start,
            },
            Side {
                who: oc,
                result: oc_start,
            },
        ],
        notes,
    });
    c
}

type R = Result<Meas, String>;
/// The OpenClaw fan-out points (one per `--openclaw-feed-rates`), or why none ran.
type FeedR = Result<Vec<R>, String>;

fn run_openclaw(
    rt: &Runtime,
    o: &Opts,
    inst: &openclaw::Install,
    agent_conns: usize,
    notes: &mut Vec<String>,
) -> (R, R, R, R, FeedR) {
    let gw = match OpenClaw::spawn(inst) {
        Ok(g) => g,
        Err(e) => {
            let why = one_line(&format!("not measured: spawn failed: {e:#}"));
            return (
                Err(why.clone()),
                Err(why.clone()),
                Err(why.clone()),
                Err(why.clone()),
                Err(why),
            );
        }
    };
    let pid = gw.pid();
    let start = rt.block_on(first_ws_health(
        gw.addr,
        openclaw::GATEWAY_TOKEN,
        gw.proc.spawned,
        Duration::from_secs(120),
    ));
    let start: R = match start {
        Ok((tcp, first)) => {
            std::thread::sleep(o.settle());
            let rss = procs::tree_rss(pid);
            notes.push(format!(
                "OpenClaw: 1 start (fresh HOME and state dir, page cache warm); process tree \
                 of {} processes at the RSS sample.",
                procs::tree(pid).len()
            ));
            Ok(start_meas(vec![first], vec![tcp], vec![rss]))
        }
        Err(e) => Err(one_line(&format!("not measured: {e:#}"))),
    };
    let ws_failed = start.as_ref().err().cloned();
    quiet(o);
    let wake = hooks_side(
        rt,
        o,
        gw.addr,
        pid,
        o.http_conns,
        "/hooks/wake",
        WAKE_BODY,
        wake_ok,
    );
    quiet(o);
    let ws = match ws_failed {
        Some(why) => Err(why),
        None => {
            let r = rt
                .block_on(ws_call(gw.addr, openclaw::GATEWAY_TOKEN, o.ws_conns.max(1)))
                .map(|call| window(rt, shape(o, o.ws_conns.max(1)), call, pid, "round trips/s"));
            r.map_err(|e| one_line(&format!("not measured: {e:#}")))
        }
    };
    quiet(o);
    let feed = match &start {
        Err(why) => Err(why.clone()),
        Ok(_) => openclaw_feed(rt, o, gw.addr, pid),
    };
    quiet(o);
    let agent = hooks_side(
        rt,
        o,
        gw.addr,
        pid,
        agent_conns,
        "/hooks/agent",
        AGENT_BODY,
        agent_ok,
    );
    let refused = gw.dns_refusals();
    if refused > 0 {
        notes.push(format!(
            "OpenClaw tried {refused} outside DNS lookups during the run; the guard refused \
             them (no traffic left the machine)."
        ));
    }
    (start, wake, ws, agent, feed)
}

/// The clawplane points of the fan-out matrix, smallest first; `--smoke` keeps its own
/// tiny point only.
fn feed_points(o: &Opts) -> Vec<(usize, u64)> {
    if o.smoke {
        return vec![(o.subscribers, o.event_rate)];
    }
    let mut v = vec![];
    for &n in &o.feed_subscribers {
        for &r in &o.feed_rates {
            v.push((n, r));
        }
    }
    v
}

fn feed_secs(o: &Opts) -> f64 {
    if o.smoke {
        o.feed_secs
    } else {
        o.feed_point_secs
    }
}

/// One fresh clawplane child per matrix point.
fn clawplane_feed(
    c: &mut Comparison,
    rt: &Runtime,
    o: &Opts,
    bin: &std::path::Path,
) -> Vec<(String, R)> {
    let mut out = vec![];
    for (n, rate) in feed_points(o) {
        quiet(o);
        let mut po = o.clone();
        po.subscribers = n;
        po.event_rate = rate;
        po.feed_secs = feed_secs(o);
        let r = c.ours(&format!("clawplane event feed {n} x {rate}/s"), || {
            let gw = Gateway::spawn(bin)?;
            let pid = gw.pid();
            let r = feed::run_against(rt, &[gw.addr], &po, &move || procs::tree_cpu_secs(pid))?;
            let rss = procs::tree_rss(pid);
            Ok(feed_meas(&r, rss))
        });
        out.push((format!("clawplane: {n} subscribers × {rate}/s offered"), r));
    }
    out
}

/// The OpenClaw point: `system-event` triggers, `presence` broadcasts (see `ocfeed`).
fn openclaw_feed(rt: &Runtime, o: &Opts, addr: SocketAddr, pid: u32) -> FeedR {
    Ok(openclaw_rates(o)
        .into_iter()
        .map(|rate| {
            quiet(o);
            openclaw_feed_point(rt, o, addr, pid, rate)
        })
        .collect())
}

fn openclaw_rates(o: &Opts) -> Vec<u64> {
    o.openclaw_feed_rates.iter().map(|&r| r.max(1)).collect()
}

fn openclaw_feed_point(rt: &Runtime, o: &Opts, addr: SocketAddr, pid: u32, rate: u64) -> R {
    let r = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(120),
            ocfeed::run(
                addr,
                openclaw::GATEWAY_TOKEN,
                pid,
                o.openclaw_feed_subscribers.max(1),
                rate,
                feed_secs(o),
            ),
        )
        .await
        .map_err(|_| anyhow!("the feed run took over 120 s"))?
    });
    match r {
        Ok(f) => Ok(oc_feed_meas(&f)),
        Err(e) => Err(one_line(&format!("not measured: {e:#}"))),
    }
}

fn feed_scenario(o: &Opts, oc: &str, cp: Vec<(String, R)>, oc_feed: FeedR) -> Scenario {
    let secs = feed_secs(o);
    let mut sides: Vec<Side> = cp
        .into_iter()
        .map(|(who, result)| Side { who, result })
        .collect();
    let n = o.openclaw_feed_subscribers.max(1);
    let rates = openclaw_rates(o);
    match oc_feed {
        Ok(results) => {
            for (rate, result) in rates.iter().zip(results) {
                sides.push(Side {
                    who: format!("{oc}: {n} operator WS clients × {rate}/s offered"),
                    result,
                });
            }
        }
        Err(why) => sides.push(Side {
            who: format!("{oc}: {n} operator WS clients"),
            result: Err(why),
        }),
    }
    let points = feed_points(o)
        .iter()
        .map(|(n, r)| format!("{n}×{r}/s"))
        .collect::<Vec<_>>()
        .join(", ");
    Scenario {
        name: "Event feed fan-out (subscribers × rate)".into(),
        load: format!(
            "open-loop trigger pacing for {secs:.1} s per point; clawplane points {points} \
             (each on a fresh child)"
        ),
        sides,
        notes: vec![
            "clawplane: N followOnly `EventService/Watch` streams spread over h2c connections \
             (at most 200 streams each, at least `--sub-conns`), all open before the first \
             event; `GatewayService/Wake` (mode NEXT_HEARTBEAT, distinct texts) paced at the \
             offered rate writes one SYSTEM_EVENT each. Latency = the event's commit time to \
             receipt on the watcher."
                .into(),
            "OpenClaw: N operator WebSockets with the WS round-trip scenario's handshake, all \
             connected before the first trigger; one more socket sends the WS method \
             `system-event` (`{text: <unique marker>, instanceId: <fixed>}`) at the offered \
             rate, open loop. Its handler enqueues the system event and broadcasts a `presence` \
             snapshot to every authenticated socket (`broadcastPresenceSnapshot`, sent \
             `dropIfSlow`); the snapshot carries the bench's presence entry whose `text` is the \
             trigger's marker, so each frame is matched to its trigger. Latency = trigger sent \
             -> frame received on the bench's clock (it includes the request's trip to the \
             server). `POST /hooks/wake` and the WS `wake` method were not used: their handlers \
             broadcast nothing per call (they enqueue a system event and, with `now`, request a \
             heartbeat, which OpenClaw rate-limits to one event turn per 30 s and which needs a \
             model it cannot reach here). OpenClaw has no replayable feed; this measures its \
             live broadcast only. The offered rates (`--openclaw-feed-rates`) are one it \
             sustains on one core (200/s) and the lowest clawplane rate (1000/s), past its \
             limit: there it answers most triggers `UNAVAILABLE` \"The server is busy\", \
             counted as not produced."
                .into(),
            "Rate = distinct events delivered per subscriber per second, over first trigger -> \
             last delivery; \"in all\" = deliveries over all subscribers per second. \
             Missed = expected deliveries (triggers answered ok × subscribers) not received; \
             duplicate = the same event twice on one subscriber. Server CPU / op = server \
             process tree CPU from the first trigger until every subscriber caught up, per \
             delivery. RSS after = right after that."
                .into(),
        ],
    }
}

#[allow(clippy::too_many_arguments)]
fn hooks_side(
    rt: &Runtime,
    o: &Opts,
    addr: SocketAddr,
    pid: u32,
    conns: usize,
    path: &'static str,
    body: &'static str,
    check: fn(&[u8]) -> bool,
) -> R {
    let call = hooks_call(addr, conns, path, body, check);
    let first = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), call(0))
            .await
            .map_err(|_| anyhow!("no answer within 30 s"))?
    });
    match first {
        Ok(()) => Ok(window(rt, shape(o, conns), call, pid, "req/s")),
        Err(e) => Err(one_line(&format!("not measured: first {path}: {e:#}"))),
    }
}

fn median_d(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn start_meas(firsts: Vec<Duration>, tcps: Vec<Duration>, mut rss: Vec<u64>) -> Meas {
    let n = firsts.len();
    let max = firsts.iter().max().copied().unwrap_or_default();
    let first = median_d(firsts);
    let tcp = median_d(tcps);
    rss.sort();
    let r = rss[rss.len() / 2];
    Meas {
        rate: first.as_secs_f64() * 1000.0,
        unit: "ms to first WS health",
        p50_us: None,
        p99_us: None,
        cpu_us: None,
        rss: Some(r),
        errors: 0,
        total_rate: None,
        missed_dup: None,
        not_produced: None,
        note: format!(
            "{n} start(s): spawn -> first accepted TCP connection {:.0} ms, -> first \
             successful WS health {:.0} ms (max {:.0} ms); idle RSS {:.1} MiB",
            tcp.as_secs_f64() * 1000.0,
            first.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0,
            r as f64 / MIB
        ),
    }
}

fn feed_meas(r: &feed::FeedResult, rss: u64) -> Meas {
    let miss = r.expected.saturating_sub(r.received);
    let window = r.delivery_secs.max(r.pace_secs).max(1e-9);
    let total = r.received as f64 / window;
    Meas {
        rate: total / r.subscribers.max(1) as f64,
        unit: "events/s per subscriber",
        p50_us: (r.received > 0).then(|| r.hist.quantile(0.5)),
        p99_us: (r.received > 0).then(|| r.hist.quantile(0.99)),
        cpu_us: (r.received > 0).then(|| r.probe * 1e6 / r.received as f64),
        rss: Some(rss),
        errors: r.errors,
        total_rate: Some(total),
        missed_dup: Some((miss, r.duplicates)),
        not_produced: Some((r.skipped, r.events + r.skipped)),
        note: format!(
            "{} watchers, {} events produced at {:.0}/s over {:.2} s, last delivery {:.2} s \
             after the first event; {} of {} deliveries received, {} missed, {} duplicates; \
             {:.2} server CPU-µs per delivery ({:.1} per event); {} events skipped by the \
             pacer (over {} wakes in flight, i.e. the server fell behind the offered rate){}",
            r.subscribers,
            r.events,
            r.rate,
            r.pace_secs,
            r.delivery_secs,
            r.received,
            r.expected,
            miss,
            r.duplicates,
            r.probe * 1e6 / r.received.max(1) as f64,
            r.probe * 1e6 / r.events.max(1) as f64,
            r.skipped,
            feed::MAX_WAKES_IN_FLIGHT,
            if r.errors > 0 {
                format!("; {} failed wakes or watches", r.errors)
            } else {
                String::new()
            }
        ),
    }
}

fn oc_feed_meas(r: &ocfeed::OcFeed) -> Meas {
    let expected = r.triggers_ok * r.subscribers as u64;
    let miss = expected.saturating_sub(r.received);
    let window = r.delivery_secs.max(r.pace_secs).max(1e-9);
    let total = r.received as f64 / window;
    let mut note = format!(
        "{} operator sockets, {} `system-event` triggers answered ok / {} failed / {} skipped \
         by the pacer in {:.2} s ({:.0}/s), last new frame {:.2} s after the first trigger; \
         {} of {} deliveries received, {} missed, {} duplicates; {} `presence` frames and {} \
         other events ({}) on the subscriber sockets; {:.2} server CPU-µs per delivery; \
         catch-up after pacing {:.2} s",
        r.subscribers,
        r.triggers_ok,
        r.triggers_err,
        r.skipped,
        r.pace_secs,
        r.triggers_ok as f64 / r.pace_secs.max(1e-9),
        r.delivery_secs,
        r.received,
        expected,
        miss,
        r.duplicates,
        r.presence_frames,
        r.other_events,
        if r.other_names.is_empty() {
            "none".to_string()
        } else {
            r.other_names
                .iter()
                .map(|(k, v)| format!("`{k}` {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        r.probe * 1e6 / r.received.max(1) as f64,
        r.catch_up_secs,
    );
    if let Some(e) = &r.first_error {
        note.push_str(&format!("; first error: {}", one_line(e)));
    }
    if !r.ended.is_empty() {
        note.push_str(&format!(
            "; {} sockets ended early (first: {})",
            r.ended.len(),
            one_line(&r.ended[0])
        ));
    }
    Meas {
        rate: total / r.subscribers.max(1) as f64,
        unit: "events/s per subscriber",
        p50_us: (r.received > 0).then(|| r.hist.quantile(0.5)),
        p99_us: (r.received > 0).then(|| r.hist.quantile(0.99)),
        cpu_us: (r.received > 0).then(|| r.probe * 1e6 / r.received as f64),
        rss: Some(r.rss),
        errors: 0,
        total_rate: Some(total),
        missed_dup: Some((miss, r.duplicates)),
        not_produced: Some((
            r.triggers_err + r.skipped,
            r.triggers_ok + r.triggers_err + r.skipped,
        )),
        note,
    }
}

fn fmt_ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |u| {
        let m = u as f64 / 1000.0;
        if m >= 100.0 {
            format!("{m:.0} ms")
        } else {
            format!("{m:.2} ms")
        }
    })
}

fn fmt_rate(m: &Meas) -> String {
    if m.unit.starts_with("ms") {
        return format!("{:.0} {}", m.rate, m.unit);
    }
    let r = if m.rate >= 100.0 {
        let s = format!("{:.0}", m.rate);
        // thousands separators
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else {
        format!("{:.1}", m.rate)
    };
    format!("{r} {}", m.unit)
}

fn fmt_rate_full(m: &Meas) -> String {
    let mut s = fmt_rate(m);
    if let Some(t) = m.total_rate {
        let total = Meas {
            rate: t,
            unit: "deliveries/s",
            note: String::new(),
            ..*m
        };
        s.push_str(&format!(" = {} in all", fmt_rate(&total)));
    }
    if let Some((miss, dup)) = m.missed_dup {
        s.push_str(&format!("; {miss} missed, {dup} duplicate"));
    }
    if let Some((n, of)) = m.not_produced
        && n > 0
    {
        s.push_str(&format!(
            "; {n} of {of} offered events not produced (server behind: pacer skipped or \
             trigger refused)"
        ));
    }
    s
}

fn fmt_cpu(c: Option<f64>) -> String {
    c.map_or("-".into(), |c| {
        if c >= 10_000.0 {
            format!("{:.0} ms", c / 1000.0)
        } else if c >= 100.0 {
            format!("{c:.0} µs")
        } else {
            format!("{c:.1} µs")
        }
    })
}

impl Comparison {
    /// The scenarios as one markdown table plus notes.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| scenario | load | server | rate | p50 | p99 | server CPU / op | RSS after |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for sc in &self.scenarios {
            for (i, side) in sc.sides.iter().enumerate() {
                let (name, load) = if i == 0 {
                    (sc.name.as_str(), sc.load.as_str())
                } else {
                    ("", "")
                };
                let who = if i == 0 || side.who.starts_with("clawplane") {
                    side.who.clone()
                } else {
                    format!("baseline: {}", side.who)
                };
                match &side.result {
                    Ok(m) => s.push_str(&format!(
                        "| {name} | {load} | {who} | {}{} | {} | {} | {} | {} |\n",
                        fmt_rate_full(m),
                        if m.errors > 0 {
                            format!(" ({} errors)", m.errors)
                        } else {
                            String::new()
                        },
                        fmt_ms(m.p50_us),
                        fmt_ms(m.p99_us),
                        fmt_cpu(m.cpu_us),
                        m.rss
                            .map_or("-".into(), |r| format!("{:.1} MiB", r as f64 / MIB)),
                    )),
                    Err(why) => s.push_str(&format!(
                        "| {name} | {load} | {who} | {} | - | - | - | - |\n",
                        why.replace('|', "/")
                    )),
                }
            }
        }
        s.push('\n');
        for sc in &self.scenarios {
            s.push_str(&format!("**{}**\n\n", sc.name));
            for side in &sc.sides {
                if let Ok(m) = &side.result {
                    s.push_str(&format!("- {}: {}\n", side.who, m.note));
                }
            }
            for n in &sc.notes {
                s.push_str(&format!("- {n}\n"));
            }
            s.push('\n');
        }
        s
    }

    /// A plain-text summary for the terminal.
    pub fn print(&self) {
        println!();
        for sc in &self.scenarios {
            println!("{} [{}]", sc.name, sc.load);
            for side in &sc.sides {
                match &side.result {
                    Ok(m) => println!(
                        "  {:<40} {:>22}  p50 {:>9}  p99 {:>9}  cpu/op {:>9}  rss {}",
                        side.who,
                        fmt_rate_full(m),
                        fmt_ms(m.p50_us),
                        fmt_ms(m.p99_us),
                        fmt_cpu(m.cpu_us),
                        m.rss
                            .map_or("-".into(), |r| format!("{:.1} MiB", r as f64 / MIB))
                    ),
                    Err(why) => println!("  {:<40} {why}", side.who),
                }
            }
        }
    }
}

/// One measured `ChatService/Send` window on a fresh gateway.
fn send_window(rt: &Runtime, o: &Opts, bin: &Path) -> Result<Meas> {
    let gw = Gateway::spawn(bin)?;
    let conns = rt.block_on(unary::connect_all(gw.addr, o.conns, Some(child::TOKEN)))?;
    Ok(window(
        rt,
        shape(o, o.concurrency),
        unary::send_call(conns, o.concurrency, o.sessions),
        gw.pid(),
        "accepts/s",
    ))
}
