//! Child processes measured from the outside: CPU time (utime + stime from
//! `/proc/<pid>/stat`) and VmRSS summed over a process and its descendants, and a spawner
//! that pins a child (and everything it forks) to the server CPU in its own process group.

use crate::sys;
use anyhow::{Context as _, Result, anyhow};
use std::{
    io::BufRead as _,
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// Clock ticks per second for /proc times.
fn hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// Fields after the `(comm)` of /proc/<pid>/stat; rest[0] is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    Some(
        stat[close + 1..]
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

/// `pid` and all its live descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(p) {
                // rest[1] is field 4, ppid.
                parent_of.push((p, f.get(1).copied().unwrap_or(0) as u32));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for &(p, pp) in &parent_of {
            if pp == cur && !out.contains(&p) {
                out.push(p);
            }
        }
        i += 1;
    }
    out
}

/// CPU seconds (user + system) used so far by `pid`'s tree, including children it has
/// already reaped (cutime + cstime of the root).
pub fn tree_cpu_secs(pid: u32) -> f64 {
    let mut ticks = 0u64;
    for (i, p) in tree(pid).into_iter().enumerate() {
        if let Some(f) = stat_fields(p) {
            // rest[11] utime (field 14), rest[12] stime, rest[13] cutime, rest[14] cstime.
            ticks += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
            if i == 0 {
                ticks += f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
            }
        }
    }
    ticks as f64 / hz()
}

/// VmRSS summed over `pid`'s tree, in bytes.
pub fn tree_rss(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| sys::rss_bytes(p).ok())
        .sum()
}

/// A child in its own process group, pinned to the server CPU; the group gets SIGTERM,
/// then SIGKILL, on drop.
pub struct Pinned {
    pub child: std::process::Child,
    pub spawned: Instant,
    /// First stdout lines, as they arrive (a reader thread keeps draining the pipe).
    lines: mpsc::Receiver<String>,
}

impl Pinned {
    pub fn spawn(mut cmd: Command) -> Result<Pinned> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        cmd.process_group(0);
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
            .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The receiver may be gone; keep draining so the child never blocks.
                let _ = tx.send(line);
            }
        });
        Ok(Pinned {
            child,
            spawned,
            lines: rx,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a stdout line that `f` accepts, returning what it maps to.
    pub fn wait_line<T>(&self, within: Duration, f: impl Fn(&str) -> Option<T>) -> Result<T> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| anyhow!("no expected stdout line within {within:?}"))?;
            if let Some(t) = f(&line) {
                return Ok(t);
            }
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the process group of our own child (it leads it).
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; stragglers in the group are ours too.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
