//! The OpenClaw side of the event-feed comparison: N handshaken operator WebSockets
//! (the handshake of the WS round-trip scenario) and one more socket that sends the WS
//! method `system-event` at a paced rate. OpenClaw 2026.9.6 answers every `system-event`
//! with a `presence` snapshot broadcast to every authenticated socket
//! (`broadcastPresenceSnapshot` in its `system-event` handler); the snapshot carries the
//! entry of the bench's fixed `instanceId`, whose `text` is the trigger's unique marker, so
//! each subscriber can tell which trigger a frame answers. Latency is trigger sent -> frame
//! received (both on the bench's clock).

use crate::{hist::Hist, procs, ws::Ws};
use anyhow::{Result, bail};
use futures::{SinkExt as _, StreamExt as _};
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const MARK: &str = "fbX";
const INSTANCE: &str = "clawplane-bench-feed";
/// Bound on `system-event` calls in flight; beyond it the pacer skips triggers.
const MAX_IN_FLIGHT: u64 = 2000;

#[derive(Default)]
struct Sub {
    seen: Vec<bool>,
    distinct: u64,
    duplicates: u64,
    presence_frames: u64,
    other_events: u64,
    other_names: BTreeMap<String, u64>,
    hist: Hist,
    end: Option<String>,
    /// Bench clock (ns since `t0`) of the last new trigger seen.
    last_at: u64,
}

pub struct OcFeed {
    pub subscribers: usize,
    pub triggers_ok: u64,
    pub triggers_err: u64,
    pub first_error: Option<String>,
    pub skipped: u64,
    pub pace_secs: f64,
    pub catch_up_secs: f64,
    /// First trigger sent -> last new frame received on any socket.
    pub delivery_secs: f64,
    pub hist: Hist,
    pub received: u64,
    pub duplicates: u64,
    pub presence_frames: u64,
    pub other_events: u64,
    /// Event name -> frames, over the subscriber sockets (events other than `presence`).
    pub other_names: BTreeMap<String, u64>,
    pub probe: f64,
    pub rss: u64,
    pub ended: Vec<String>,
}

fn event_name(t: &str) -> String {
    t.split_once("\"event\":\"")
        .and_then(|(_, r)| r.split_once('"'))
        .map_or("?".into(), |(n, _)| n.chars().take(40).collect())
}

fn marker_index(t: &str) -> Option<usize> {
    let at = t.find(MARK)? + MARK.len();
    let digits: String = t[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

pub async fn run(
    addr: SocketAddr,
    token: &str,
    pid: u32,
    subscribers: usize,
    rate: u64,
    secs: f64,
) -> Result<OcFeed> {
    let total = ((rate as f64) * secs).round().max(1.0) as usize;
    // Trigger socket first (one warm-up trigger, so the presence entry exists).
    let trig = Ws::handshake(addr, token).await?.into_inner();
    let (mut tx, mut rx) = trig.split();
    let req = |id: String, i: usize| {
        serde_json::json!({"type": "req", "id": id, "method": "system-event",
            "params": {"text": format!("clawplane bench {MARK}{i}Y"), "instanceId": INSTANCE}})
        .to_string()
    };
    tx.send(Message::Text(req("w".into(), usize::MAX / 2).into()))
        .await?;
    let warm = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = rx.next().await {
            if let Message::Text(t) = m?
                && t.contains("\"type\":\"res\"")
                && t.contains("\"id\":\"w\"")
            {
                return anyhow::Ok(t.to_string());
            }
        }
        bail!("trigger socket ended")
    })
    .await;
    match warm {
        Ok(Ok(t)) if t.contains("\"ok\":true") => {}
        Ok(Ok(t)) => bail!("system-event refused: {t}"),
        Ok(Err(e)) => return Err(e),
        Err(_) => bail!("no answer to system-event within 30 s"),
    }

    // Subscribers: all handshaken before the first trigger.
    let t0 = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let (stop_tx, stop_rx) = watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let mut s = Ws::handshake(addr, token).await?.into_inner();
        let (sent, mut stop, delivered) = (sent.clone(), stop_rx.clone(), delivered.clone());
        handles.push(tokio::spawn(async move {
            let mut st = Sub {
                seen: vec![false; total],
                ..Default::default()
            };
            loop {
                tokio::select! {
                    biased;
                    m = s.next() => {
                        let now = t0.elapsed().as_nanos() as u64;
                        match m {
                            Some(Ok(Message::Text(t))) => {
                                if !t.contains("\"type\":\"event\"") {
                                    continue;
                                }
                                if !t.contains("\"event\":\"presence\"") {
                                    st.other_events += 1;
                                    *st.other_names.entry(event_name(&t)).or_default() += 1;
                                    continue;
                                }
                                st.presence_frames += 1;
                                let Some(i) = marker_index(&t).filter(|&i| i < total) else {
                                    continue;
                                };
                                if st.seen[i] {
                                    st.duplicates += 1;
                                    continue;
                                }
                                st.seen[i] = true;
                                st.distinct += 1;
                                delivered.fetch_add(1, Ordering::Relaxed);
                                st.last_at = now;
                                let at = sent[i].load(Ordering::Acquire);
                                if at > 0 {
                                    st.hist.record(now.saturating_sub(at) / 1000);
                                }
                            }
                            Some(Ok(Message::Close(f))) => {
                                st.end = Some(format!("closed by the server: {f:?}"));
                                return st;
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                st.end = Some(format!("socket error: {e}"));
                                return st;
                            }
                            None => {
                                st.end = Some("socket ended".into());
                                return st;
                            }
                        }
                    }
                    _ = stop.changed() => return st,
                }
            }
        }));
    }
    // Let the connect-time presence broadcasts settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ok = Arc::new(AtomicU64::new(0));
    let err = Arc::new(AtomicU64::new(0));
    let first_err = Arc::new(std::sync::Mutex::new(None::<String>));
    let reader = {
        let (ok, err, first_err) = (ok.clone(), err.clone(), first_err.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"type\":\"res\"")
                {
                    if t.contains("\"ok\":true") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        err.fetch_add(1, Ordering::Relaxed);
                        crate::lock(&first_err).get_or_insert_with(|| t.to_string());
                    }
                }
            }
        })
    };

    let p0 = procs::tree_cpu_secs(pid);
    let start = Instant::now();
    let start_ns = t0.elapsed().as_nanos() as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut issued, mut skipped) = (0usize, 0u64);
    while issued < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
        while issued < due {
            let i = issued;
            issued += 1;
            let done = ok.load(Ordering::Relaxed) + err.load(Ordering::Relaxed);
            if (i as u64).saturating_sub(skipped).saturating_sub(done) >= MAX_IN_FLIGHT {
                skipped += 1;
                continue;
            }
            sent[i].store(t0.elapsed().as_nanos().max(1) as u64, Ordering::Release);
            tx.send(Message::Text(req(format!("e{i}"), i).into()))
                .await?;
        }
    }
    let pace_secs = start.elapsed().as_secs_f64();
    let answered = Instant::now() + Duration::from_secs(15);
    let want = total as u64 - skipped;
    while ok.load(Ordering::Relaxed) + err.load(Ordering::Relaxed) < want
        && Instant::now() < answered
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Catch-up: until every socket has every answered trigger, or 10 s, or 2 s without
    // progress (frames the server dropped never come).
    let catch = Instant::now();
    let expect = ok.load(Ordering::Relaxed) * subscribers as u64;
    let (mut last_n, mut last_change) = (u64::MAX, Instant::now());
    loop {
        let n = delivered.load(Ordering::Relaxed);
        if n >= expect || catch.elapsed() > Duration::from_secs(10) {
            break;
        }
        if n != last_n {
            (last_n, last_change) = (n, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let catch_up_secs = catch.elapsed().as_secs_f64();
    let probe = procs::tree_cpu_secs(pid) - p0;
    let rss = procs::tree_rss(pid);
    let _ = stop_tx.send(true);
    let mut out = OcFeed {
        subscribers,
        triggers_ok: ok.load(Ordering::Relaxed),
        triggers_err: err.load(Ordering::Relaxed),
        first_error: crate::lock(&first_err).clone(),
        skipped,
        pace_secs,
        catch_up_secs,
        delivery_secs: 0.0,
        hist: Hist::default(),
        received: 0,
        duplicates: 0,
        presence_frames: 0,
        other_events: 0,
        other_names: BTreeMap::new(),
        probe,
        rss,
        ended: vec![],
    };
    for h in handles {
        if let Ok(s) = h.await {
            out.hist.merge(&s.hist);
            out.received += s.distinct;
            out.duplicates += s.duplicates;
            out.presence_frames += s.presence_frames;
            out.other_events += s.other_events;
            for (k, v) in s.other_names {
                *out.other_names.entry(k).or_default() += v;
            }
            out.delivery_secs = out
                .delivery_secs
                .max(s.last_at.saturating_sub(start_ns) as f64 / 1e9);
            if let Some(e) = s.end {
                out.ended.push(e);
            }
        }
    }
    reader.abort();
    let _ = tx.close().await;
    Ok(out)
}
