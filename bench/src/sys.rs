//! Linux plumbing: CPU pinning, per-CPU and per-thread CPU time, resident memory.

use anyhow::{Context as _, Result, bail};
use std::{collections::HashMap, path::Path};

/// The CPU the gateway (runtime worker and store writer) runs on.
pub const SERVER_CPU: usize = 0;
/// The CPU the load generator runs on.
pub const LOAD_CPU: usize = 1;

fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE for any machine this runs on (checked by callers
    // through `check_cpus`).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set
}

/// Pins the thread `tid` (0 = the calling thread) to one CPU.
pub fn pin(tid: libc::pid_t, cpu: usize) -> Result<()> {
    let set = cpu_set(cpu);
    // SAFETY: a valid cpu_set_t of the size we pass.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        // Best effort: measure unpinned rather than not at all (the report notes the CPUs).
        eprintln!(
            "warning: sched_setaffinity(tid {tid}, cpu {cpu}): {}; running unpinned",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Pins the calling thread; panics are not wanted in thread-start hooks, so errors print.
pub fn pin_current(cpu: usize) {
    if let Err(e) = pin(0, cpu) {
        eprintln!("warning: {e}");
    }
}

/// Fails unless CPUs 0 and 1 exist and are allowed.
pub fn check_cpus() -> Result<()> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n < 2 {
        bail!("need 2 CPUs (server on CPU 0, load on CPU 1); this process may use {n}");
    }
    Ok(())
}

/// Busy and total jiffies of one CPU from /proc/stat.
#[derive(Clone, Copy, Default)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

pub fn cpu_times() -> Result<[CpuTimes; 2]> {
    let stat = std::fs::read_to_string("/proc/stat").context("/proc/stat")?;
    let mut out = [CpuTimes::default(); 2];
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        let idx = match name {
            "cpu0" => 0,
            "cpu1" => 1,
            _ => continue,
        };
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal ...
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        out[idx] = CpuTimes {
            busy: total - idle,
            total,
        };
    }
    Ok(out)
}

/// Busy share (0..=1) of each CPU between two samples.
pub fn cpu_busy(a: &[CpuTimes; 2], b: &[CpuTimes; 2]) -> [f64; 2] {
    let f = |i: usize| {
        let t = b[i].total.saturating_sub(a[i].total);
        if t == 0 {
            0.0
        } else {
            b[i].busy.saturating_sub(a[i].busy) as f64 / t as f64
        }
    };
    [f(0), f(1)]
}

/// CPU seconds used so far by each thread of this process, keyed by thread name
/// (summed over threads that share a name).
pub fn thread_cpu() -> HashMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
            continue;
        };
        // The name is in parentheses and may hold spaces; fields follow the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // rest[0] is field 3 (state); utime is field 14, stime field 15.
        let ticks = rest
            .get(11)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
            + rest
                .get(12)
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        *out.entry(name).or_insert(0.0) += ticks as f64 / hz;
    }
    out
}

/// Thread ids of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.trim_end().starts_with(prefix)
                && let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok())
            {
                out.push(tid);
            }
        }
    }
    out
}

/// VmRSS of a process in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(Path::new(&path)).with_context(|| path.clone())?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            let kb: u64 = v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("VmRSS in {path}: {v:?}"))?;
            return Ok(kb * 1024);
        }
    }
    bail!("no VmRSS in {path}")
}

/// Waits (bounded) until both CPUs are mostly idle, so another process's work does not
/// pollute a measurement. Returns the busy share seen last.
pub fn wait_quiet(max_wait: std::time::Duration) -> f64 {
    let deadline = std::time::Instant::now() + max_wait;
    let mut warned = false;
    loop {
        let a = cpu_times().unwrap_or_default();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let b = cpu_busy(&a, &cpu_times().unwrap_or_default());
        let busy = b[0].max(b[1]);
        if busy < 0.15 || std::time::Instant::now() >= deadline {
            return busy;
        }
        if !warned {
            eprintln!(
                "  the machine is busy (cpu0 {:.0}%, cpu1 {:.0}%); waiting up to {} s for quiet ...",
                b[0] * 100.0,
                b[1] * 100.0,
                max_wait.as_secs()
            );
            warned = true;
        }
    }
}
