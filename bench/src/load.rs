//! Closed-loop unary load: N in-flight calls multiplexed over a few h2 connections, a
//! warm-up, then a measured window. Only calls that complete inside the window count.

use crate::{hist::Hist, sys};
use anyhow::Result;
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

/// One call of slot `slot`; resolves when the response has been checked.
pub type CallFn =
    Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What a measured window produced.
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub hist: Hist,
    pub window: Duration,
    /// Busy share of CPU 0 and CPU 1 during the window.
    pub cpu: [f64; 2],
    /// CPU seconds per thread name during the window.
    pub threads: HashMap<String, f64>,
    /// Change of the caller's probe (e.g. a server process's CPU seconds) over the window.
    pub probe: f64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    pub fn cpu_line(&self) -> String {
        cpu_line(self.cpu, &self.threads, self.window.as_secs_f64())
    }

    pub fn other_load(&self) -> f64 {
        other_load(self.cpu, &self.threads, self.window.as_secs_f64())
    }
}

/// CPU share (of one CPU) used on the two CPUs by anything but this process's threads:
/// other processes, and kernel work such as softirqs and writeback.
pub fn other_load(cpu: [f64; 2], threads: &HashMap<String, f64>, secs: f64) -> f64 {
    let own: f64 = threads.values().sum::<f64>() / secs;
    (cpu[0] + cpu[1] - own).max(0.0)
}

/// `cpu0 (server) 97% busy, cpu1 (load) 64% busy; per thread: srv-worker 80%, ...`
pub fn cpu_line(cpu: [f64; 2], threads: &HashMap<String, f64>, secs: f64) -> String {
    let mut t: Vec<_> = threads
        .iter()
        .filter(|(_, s)| **s >= 0.05)
        .map(|(n, s)| (n.clone(), *s))
        .collect();
    t.sort_by(|a, b| b.1.total_cmp(&a.1));
    let t: Vec<String> = t
        .iter()
        .map(|(n, s)| format!("{n} {:.0}%", 100.0 * s / secs))
        .collect();
    let other = other_load(cpu, threads, secs);
    let mut line = format!(
        "cpu0 (server) {:.0}% busy, cpu1 (load) {:.0}% busy; per thread: {}",
        cpu[0] * 100.0,
        cpu[1] * 100.0,
        t.join(", ")
    );
    if other > 0.15 {
        line.push_str(&format!(
            "; other processes and kernel threads used {:.0}% of a CPU{}",
            other * 100.0,
            if other > crate::DISTURBED {
                " (WARNING: disturbed measurement)"
            } else {
                ""
            }
        ));
    }
    if cpu[1] > 0.9 {
        line.push_str("; the load CPU is saturated, so this rate may be client-bound");
    }
    line
}

/// Samples CPU counters at the start and the end of a window.
pub struct CpuWindow {
    cpu: [sys::CpuTimes; 2],
    threads: HashMap<String, f64>,
}

impl CpuWindow {
    pub fn start() -> Self {
        CpuWindow {
            cpu: sys::cpu_times().unwrap_or_default(),
            threads: sys::thread_cpu(),
        }
    }

    pub fn finish(self) -> ([f64; 2], HashMap<String, f64>) {
        let cpu = sys::cpu_busy(&self.cpu, &sys::cpu_times().unwrap_or_default());
        let mut threads = sys::thread_cpu();
        for (k, v) in threads.iter_mut() {
            *v -= self.threads.get(k).copied().unwrap_or(0.0);
        }
        (cpu, threads)
    }
}

#[derive(Default)]
struct SlotStats {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Hist,
}

/// Runs `call` from `shape.concurrency` slots until the window ends. Must run on the load
/// runtime.
pub async fn closed_loop(shape: Shape, call: CallFn) -> Outcome {
    closed_loop_probed(shape, call, || 0.0).await
}

/// [`closed_loop`] that also samples `probe` at the start and the end of the measured
/// window (blocking reads of /proc, two per window).
pub async fn closed_loop_probed(shape: Shape, call: CallFn, probe: impl Fn() -> f64) -> Outcome {
    // A call still unanswered this long after the window is abandoned (bounded run without
    // a timer per call, which would cost the load CPU).
    const STRAGGLER: Duration = Duration::from_secs(10);
    let t0 = Instant::now();
    let m_start = t0 + shape.warmup;
    let m_end = m_start + shape.measure;
    let mut slots = Vec::with_capacity(shape.concurrency);
    for slot in 0..shape.concurrency {
        let call = call.clone();
        slots.push(tokio::spawn(async move {
            let mut s = SlotStats::default();
            loop {
                let start = Instant::now();
                if start >= m_end {
                    break;
                }
                let r = call(slot).await;
                let end = Instant::now();
                let counted = end >= m_start && end < m_end;
                match r {
                    Ok(()) if counted => {
                        s.ok += 1;
                        s.hist.record((end - start).as_micros() as u64);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        if counted {
                            s.errors += 1;
                        }
                        if s.first_error.is_none() {
                            s.first_error = Some(format!("{e:#}"));
                        }
                        // Do not spin on a dead connection.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            s
        }));
    }
    tokio::time::sleep_until(m_start.into()).await;
    let window = CpuWindow::start();
    let p0 = probe();
    tokio::time::sleep_until(m_end.into()).await;
    let p1 = probe();
    let (cpu, threads) = window.finish();
    let mut out = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        hist: Hist::default(),
        window: shape.measure,
        cpu,
        threads,
        probe: p1 - p0,
    };
    let give_up = tokio::time::Instant::from(m_end + STRAGGLER);
    for mut h in slots {
        let joined = tokio::time::timeout_at(give_up, &mut h).await;
        if joined.is_err() {
            h.abort();
            out.errors += 1;
            out.first_error
                .get_or_insert_with(|| format!("a call hung for {STRAGGLER:?} after the window"));
        }
        if let Ok(Ok(s)) = joined {
            out.ok += s.ok;
            out.errors += s.errors;
            out.hist.merge(&s.hist);
            if out.first_error.is_none() {
                out.first_error = s.first_error;
            }
        }
    }
    out
}
