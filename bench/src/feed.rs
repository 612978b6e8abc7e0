//! Target 3: fan-out of the live event feed. N followOnly watchers; a paced stream of
//! GatewayService/Wake calls (mode NEXT_HEARTBEAT, distinct texts, sessions that already
//! exist) writes exactly one SYSTEM_EVENT each. Every watcher must receive every event;
//! latency is event `time` (set in the commit) to receipt.

use crate::{
    Opts, Report,
    grpc::{self, Conn, MessageStream, StreamEnd, WatchFrame},
    hist::{Hist, ms},
    inproc::{Clawplane, TOKEN, bench_config},
    load::CpuWindow,
};
use anyhow::{Context as _, Result, bail, ensure};
use clawplane_proto::v1::{
    EventServiceWatchRequest, GatewayServiceStatusRequest, GatewayServiceStatusResponse,
    GatewayServiceWakeRequest, GatewayServiceWakeResponse, WakeMode,
};
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{runtime::Runtime, sync::watch};

const WAKE: &str = "/clawplane.v1.GatewayService/Wake";
const STATUS: &str = "/clawplane.v1.GatewayService/Status";
pub const WATCH: &str = "/clawplane.v1.EventService/Watch";
/// Sessions the wakes rotate over (created in the warm-up so each wake is one event).
const WAKE_SESSIONS: usize = 16;
/// hyper's default SETTINGS_MAX_CONCURRENT_STREAMS.
pub const STREAMS_PER_CONN_LIMIT: usize = 200;
/// How long after the last wake the watchers may take to catch up.
const DRAIN: Duration = Duration::from_secs(10);
/// Bound on wake calls in flight; beyond it the pacer skips (and reports) events.
pub const MAX_WAKES_IN_FLIGHT: usize = 4096;

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// What one watcher saw.
#[derive(Default)]
struct SubStats {
    /// Distinct in-order events after the start head.
    received: u64,
    last: u64,
    gaps: u64,
    duplicates: u64,
    undecodable: u64,
    hist: Hist,
    end: Option<String>,
    /// Wall clock (ns) of the last new event received.
    last_at: i128,
}

impl SubStats {
    fn on_message(&mut self, m: &[u8], now: i128) {
        match grpc::scan_watch_frame(m) {
            Some(WatchFrame::Event { seq, time_ns }) => {
                if seq <= self.last {
                    self.duplicates += 1;
                    return;
                }
                self.gaps += seq - self.last - 1;
                self.last = seq;
                self.received += 1;
                self.last_at = now;
                self.hist.record(((now - time_ns).max(0) / 1000) as u64);
            }
            Some(WatchFrame::Progress { .. }) => {}
            None => self.undecodable += 1,
        }
    }
}

#[derive(Clone, Copy)]
struct Control {
    /// Stop once this seq has been seen.
    target: u64,
    /// Stop now.
    stop: bool,
}

async fn subscriber(
    mut stream: MessageStream,
    start_head: u64,
    mut ctl: watch::Receiver<Control>,
) -> SubStats {
    let mut st = SubStats {
        last: start_head,
        ..Default::default()
    };
    loop {
        let mut now = 0i128;
        tokio::select! {
            biased;
            end = stream.next_batch(|m| {
                if now == 0 {
                    now = now_ns();
                }
                st.on_message(m, now);
            }) => {
                if let Some(end) = end {
                    st.end = Some(match end {
                        StreamEnd::Ok => "stream ended by the server".into(),
                        StreamEnd::Status(s) => s.to_string(),
                        StreamEnd::Transport(e) => format!("transport: {e}"),
                    });
                    return st;
                }
            }
            changed = ctl.changed() => {
                let c = *ctl.borrow_and_update();
                if changed.is_err() || c.stop {
                    st.end = Some("not complete at the drain deadline".into());
                    return st;
                }
            }
        }
        if st.last >= ctl.borrow().target {
            return st;
        }
    }
}

struct FeedOut {
    subscribers: usize,
    conns: usize,
    open_failed: usize,
    start_head: u64,
    end_head: u64,
    wakes_ok: u64,
    wakes_err: u64,
    wake_first_error: Option<String>,
    skipped: u64,
    pace_secs: f64,
    /// Wall clock (ns) when pacing started.
    pace_start_ns: i128,
    wake_hist: Hist,
    subs: Vec<SubStats>,
    cpu: [f64; 2],
    threads: std::collections::HashMap<String, f64>,
    catch_up: Duration,
    /// Change of the caller's probe from the start of pacing to the end of catch-up.
    probe: f64,
}

async fn status(c: &Conn) -> Result<GatewayServiceStatusResponse> {
    c.unary(&c.method(STATUS), &GatewayServiceStatusRequest {})
        .await
}

fn wake_req(i: u64, text: String) -> GatewayServiceWakeRequest {
    GatewayServiceWakeRequest {
        text,
        mode: WakeMode::NextHeartbeat as i32,
        session_key: format!("feed-{}", i as usize % WAKE_SESSIONS),
        agent_id: String::new(),
    }
}

/// Wakes go to the first two of `addrs` (the same one twice when there is one), watchers
/// round robin over all of them (replicas of one gateway).
async fn run(addrs: &[SocketAddr], o: &Opts, probe: &dyn Fn() -> f64) -> Result<FeedOut> {
    ensure!(!addrs.is_empty(), "no gateway address");
    let subs_n = o.subscribers;
    let conns_n = o
        .sub_conns
        .max(subs_n.div_ceil(STREAMS_PER_CONN_LIMIT))
        .max(1);
    let wake_conns = [
        Conn::connect(addrs[0], Some(TOKEN)).await?,
        Conn::connect(addrs[1 % addrs.len()], Some(TOKEN)).await?,
    ];
    let wake_m = wake_conns[0].method(WAKE);

    // Warm-up: create the sessions and touch every code path once.
    for i in 0..(WAKE_SESSIONS as u64 * 4) {
        let _: GatewayServiceWakeResponse = wake_conns[0]
            .unary(&wake_m, &wake_req(i, format!("warm-up {i}")))
            .await
            .context("warm-up Wake")?;
    }
    let start_head = status(&wake_conns[0]).await?.last_event_seq;

    // Watchers: all streams open (response headers received) before the first event.
    let mut sub_conns = Vec::with_capacity(conns_n);
    for i in 0..conns_n {
        sub_conns.push(Conn::connect(addrs[i % addrs.len()], Some(TOKEN)).await?);
    }
    let watch_m = sub_conns[0].method(WATCH);
    let body = grpc::frame(&EventServiceWatchRequest {
        follow_only: true,
        ..Default::default()
    });
    let (ctl_tx, ctl_rx) = watch::channel(Control {
        target: u64::MAX,
        stop: false,
    });
    let mut opening = Vec::with_capacity(subs_n);
    for i in 0..subs_n {
        let c = sub_conns[i % conns_n].clone();
        let (m, body) = (watch_m.clone(), body.clone());
        opening.push(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(30), c.server_stream(&m, body)).await
        }));
    }
    let mut handles = Vec::with_capacity(subs_n);
    let mut open_failed = 0;
    let mut open_error = None;
    for h in opening {
        match h.await {
            Ok(Ok(Ok(stream))) => {
                handles.push(tokio::spawn(subscriber(stream, start_head, ctl_rx.clone())));
            }
            Ok(Ok(Err(e))) => {
                open_failed += 1;
                open_error.get_or_insert(format!("{e:#}"));
            }
            _ => {
                open_failed += 1;
                open_error.get_or_insert("timed out opening the watch".into());
            }
        }
    }
    if handles.is_empty() {
        bail!("no watch opened: {}", open_error.unwrap_or_default());
    }
    let head_now = status(&wake_conns[0]).await?.last_event_seq;
    if head_now != start_head {
        bail!("events appeared before pacing started ({start_head} -> {head_now})");
    }

    // Pacing: open loop at the target rate; calls run concurrently.
    let rate = o.event_rate as f64;
    let total = (rate * o.feed_secs).round() as u64;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let err = Arc::new(AtomicU64::new(0));
    let first_err: Arc<Mutex<Option<String>>> = Arc::default();
    let wake_hist: Arc<Mutex<Hist>> = Arc::default();
    let mut skipped = 0u64;
    let mut issued = 0u64;
    let window = CpuWindow::start();
    let p0 = probe();
    let pace_start_ns = now_ns();
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while issued < total {
        tick.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * rate) as u64).min(total);
        while issued < due {
            let i = issued;
            issued += 1;
            if in_flight.load(Ordering::Relaxed) >= MAX_WAKES_IN_FLIGHT {
                skipped += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let c = wake_conns[i as usize % wake_conns.len()].clone();
            let m = wake_m.clone();
            let (in_flight, ok, err) = (in_flight.clone(), ok.clone(), err.clone());
            let (first_err, wake_hist) = (first_err.clone(), wake_hist.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    c.unary::<_, GatewayServiceWakeResponse>(
                        &m,
                        &wake_req(i, format!("bench event {i}")),
                    ),
                )
                .await;
                match r {
                    Ok(Ok(_)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        crate::lock(&wake_hist).record(started.elapsed().as_micros() as u64);
                    }
                    Ok(Err(e)) => {
                        err.fetch_add(1, Ordering::Relaxed);
                        crate::lock(&first_err).get_or_insert(format!("{e:#}"));
                    }
                    Err(_) => {
                        err.fetch_add(1, Ordering::Relaxed);
                        crate::lock(&first_err).get_or_insert("Wake timed out".into());
                    }
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
    let pace_secs = t0.elapsed().as_secs_f64();
    let (cpu, threads) = window.finish();
    let settle = Instant::now() + Duration::from_secs(15);
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let end_head = status(&wake_conns[0]).await?.last_event_seq;

    // Let the watchers catch up to the final head, bounded.
    let catch_start = Instant::now();
    let _ = ctl_tx.send(Control {
        target: end_head,
        stop: false,
    });
    let ctl_tx = Arc::new(ctl_tx);
    let stopper = {
        let tx = ctl_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DRAIN).await;
            let _ = tx.send(Control {
                target: end_head,
                stop: true,
            });
        })
    };
    let mut subs = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(s) = h.await {
            subs.push(s);
        }
    }
    stopper.abort();
    let catch_up = catch_start.elapsed();
    let p1 = probe();
    Ok(FeedOut {
        subscribers: subs_n,
        conns: conns_n,
        open_failed,
        start_head,
        end_head,
        wakes_ok: ok.load(Ordering::Relaxed),
        wakes_err: err.load(Ordering::Relaxed),
        wake_first_error: crate::lock(&first_err).clone().or(open_error),
        skipped,
        pace_secs,
        pace_start_ns,
        wake_hist: crate::lock(&wake_hist).clone(),
        subs,
        cpu,
        threads,
        catch_up,
        probe: p1 - p0,
    })
}

/// What the comparison report needs from one feed run.
pub struct FeedResult {
    pub subscribers: usize,
    pub events: u64,
    /// Events produced per second while pacing.
    pub rate: f64,
    /// Event time -> receipt, over all deliveries.
    pub hist: Hist,
    pub expected: u64,
    pub received: u64,
    /// The probe's change from the start of pacing until every watcher caught up.
    pub probe: f64,
    /// Wake calls that failed plus watches that did not open.
    pub errors: u64,
    /// Events the pacer skipped because too many wakes were in flight.
    pub skipped: u64,
    pub duplicates: u64,
    /// First event paced -> last new event received by any watcher.
    pub delivery_secs: f64,
    pub pace_secs: f64,
}

/// One feed run against a gateway already listening at `addrs` (token [`TOKEN`]; several:
/// its replicas).
pub fn run_against(
    rt: &Runtime,
    addrs: &[SocketAddr],
    o: &Opts,
    probe: &dyn Fn() -> f64,
) -> Result<FeedResult> {
    let out = rt.block_on(run(addrs, o, probe))?;
    let events = out.end_head - out.start_head;
    let mut hist = Hist::default();
    let (mut received, mut duplicates, mut last_at) = (0, 0, out.pace_start_ns);
    for s in &out.subs {
        hist.merge(&s.hist);
        received += s.received;
        duplicates += s.duplicates;
        last_at = last_at.max(s.last_at);
    }
    Ok(FeedResult {
        subscribers: out.subscribers,
        events,
        rate: out.wakes_ok as f64 / out.pace_secs,
        hist,
        expected: events * out.subscribers as u64,
        received,
        probe: out.probe,
        errors: out.wakes_err + out.open_failed as u64,
        skipped: out.skipped,
        duplicates,
        delivery_secs: (last_at - out.pace_start_ns) as f64 / 1e9,
        pace_secs: out.pace_secs,
    })
}

/// Target 3.
pub fn feed(rt: &Runtime, o: &Opts, report: &mut Report) -> Result<()> {
    let out = crate::measured(
        o,
        "target 3",
        || {
            let srv = Clawplane::start(bench_config(), o.server_nodelay)?;
            let out = rt.block_on(run(&[srv.addr], o, &|| 0.0));
            srv.stop();
            out
        },
        |r| crate::load::other_load(r.cpu, &r.threads, r.pace_secs),
    )?;

    let events = out.end_head - out.start_head;
    let mut hist = Hist::default();
    let (mut received, mut gaps, mut dups, mut bad) = (0u64, 0u64, 0u64, 0u64);
    let mut incomplete = 0usize;
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    for s in &out.subs {
        hist.merge(&s.hist);
        received += s.received;
        gaps += s.gaps;
        dups += s.duplicates;
        bad += s.undecodable;
        if s.received < events {
            incomplete += 1;
            *ends
                .entry(s.end.clone().unwrap_or_else(|| "(none)".into()))
                .or_default() += 1;
        }
    }
    let expected = events * out.subscribers as u64;
    let misses = expected.saturating_sub(received);
    let p99 = hist.quantile(0.99);
    let rate = out.wakes_ok as f64 / out.pace_secs;
    report.row(
        "3",
        &format!(
            "Event feed: {} watchers x {}/s events",
            out.subscribers, o.event_rate
        ),
        "p99 <= 50 ms, no miss",
        format!(
            "p99 {:.1} ms, {} of {} deliveries missed",
            ms(p99),
            misses,
            expected
        ),
        p99 <= 50_000
            && misses == 0
            && out.open_failed == 0
            && out.skipped == 0
            && out.wakes_err == 0
            && rate >= 0.95 * o.event_rate as f64,
    );
    report.detail(
        "3",
        format!(
            "{} watchers over {} h2 connections ({} failed to open); {} events (seq {}..={}) \
             from {} Wake ok / {} failed / {} skipped by the pacer in {:.2} s = {rate:.0} events/s",
            out.subscribers,
            out.conns,
            out.open_failed,
            events,
            out.start_head + 1,
            out.end_head,
            out.wakes_ok,
            out.wakes_err,
            out.skipped,
            out.pace_secs
        ),
    );
    report.detail(
        "3",
        format!(
            "end-to-end latency (event time -> receipt) over {} deliveries: {}",
            hist.count(),
            hist.summary_ms()
        ),
    );
    report.detail(
        "3",
        format!(
            "deliveries {received} of {expected} ({:.2}%); {incomplete} watchers incomplete; \
             gaps {gaps}, duplicates {dups}, undecodable {bad}; catch-up after pacing {:.2} s",
            100.0 * received as f64 / expected.max(1) as f64,
            out.catch_up.as_secs_f64()
        ),
    );
    for (why, n) in &ends {
        report.detail("3", format!("  {n} watchers ended: {why}"));
    }
    report.detail("3", format!("Wake latency: {}", out.wake_hist.summary_ms()));
    if let Some(e) = &out.wake_first_error {
        report.detail("3", format!("first error: {e}"));
    }
    report.detail(
        "3",
        format!(
            "during pacing: {}",
            crate::load::cpu_line(out.cpu, &out.threads, out.pace_secs)
        ),
    );
    Ok(())
}
