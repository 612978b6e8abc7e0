//! `--report FILE`: the comparison scenarios and the performance targets as one markdown
//! document (`BENCHMARKS.md`).

use crate::{Opts, Report, compare::Comparison};
use std::{process::Command, time::Duration};

/// What the numbers were measured on.
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cpus: usize,
    pub mem_gib: f64,
    pub kernel: String,
    pub loadavg: String,
    pub git: String,
}

fn cmd(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let mem_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let rev = cmd("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !cmd("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    Machine {
        date: cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_gib: mem_kb / 1024.0 / 1024.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        git: if rev.is_empty() {
            "?".into()
        } else if dirty {
            format!("{rev} + uncommitted changes")
        } else {
            rev
        },
    }
}

pub fn render(o: &Opts, m: &Machine, c: &Comparison, r: &Report, took: Duration) -> String {
    let mut s = String::new();
    s.push_str("# clawplane benchmarks\n\n");
    s.push_str(
        "Regenerate with `scripts/bench.sh` (release build of `clawplane` and \
         `clawplane-bench`, then `clawplane-bench --report BENCHMARKS.md`; the OpenClaw \
         baseline comes from `scripts/install-openclaw.sh`). This file is generated: do not \
         edit by hand.\n\n",
    );
    s.push_str(&format!(
        "- Run: {}, {:.0} s in all, git {}.\n\
         - Machine: {} CPUs ({}), {:.1} GiB RAM, Linux {}; load average {} when the run \
         started. The machine is shared with other builds, so single numbers are noisy \
         (10-30 % between runs); every row and its baseline ran in this same run, back to \
         back, with the same pinning and load shape.\n\
         - Pinning: every server (and every process it forks) on CPU 0, the load generator \
         on CPU 1. Windows: {:.1} s warm-up, {:.1} s measured; closed loop (each connection \
         or slot has one request in flight and sends the next when the answer is checked).\n\
         - Server CPU / op: utime + stime of the server's process tree from \
         `/proc/<pid>/stat`, read at the start and the end of the measured window, divided \
         by the operations completed in it (10 ms clock ticks, so small for short windows). \
         RSS after: VmRSS summed over the process tree right after the window.\n\n",
        m.date,
        took.as_secs_f64(),
        m.git,
        m.cpus,
        m.cpu,
        m.mem_gib,
        m.kernel,
        m.loadavg,
        o.warmup().as_secs_f64(),
        o.measure().as_secs_f64(),
    ));
    s.push_str("## Against baselines (same run)\n\n");
    s.push_str(&c.markdown());
    s.push_str(
        "Caveats:\n\n\
         - The bare tonic baseline is this bench binary re-executed with `--serve-bare`, so \
         its RSS includes the bench's own code and libraries, not just a minimal tonic \
         server.\n\
         - OpenClaw is started once per run (its start takes seconds); its cold start and \
         idle RSS are one sample, and its RSS is the whole tree (the gateway plus the helper \
         processes it forks). The wake, WebSocket, event-feed and agent windows run on \
         that same instance, agent last because its accepted runs keep working afterwards.\n\
         - clawplane's idle RSS here is after one WebSocket client; the targets table below \
         reads it after one gRPC Status.\n\
         - A row whose rate cell says \"not measured\" or \"skipped\" gives the reason \
         there.\n\n",
    );
    s.push_str("## Performance targets\n\n");
    s.push_str(
        "The gateway's own goals (issue targets 1-9). 1-3 and 6-8 run the gateway in process \
         (server runtime and store writer pinned to CPU 0, load on CPU 1), 4, 5 and 9 spawn \
         the `clawplane` binary. `PASS`/`FAIL` compare with the goal; this is not part of \
         CI's pass/fail (CI runs `clawplane-bench --smoke`).\n\n",
    );
    s.push_str("| # | target | goal | measured | |\n|---|---|---|---|---|\n");
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.id,
            row.name.replace('|', "/"),
            row.target,
            row.measured.replace('|', "/"),
            if row.pass { "pass" } else { "miss" }
        ));
    }
    s.push_str("\nDetails:\n\n");
    for (id, d) in &r.details {
        s.push_str(&format!("- [{id}] {}\n", d.replace('|', "/")));
    }
    s.push_str(&format!(
        "\nOptions of this run: `--secs {} --warmup-secs {} --concurrency {} --conns {} \
         --http-conns {} --ws-conns {} --subscribers {} --event-rate {} --feed-secs {} \
         --feed-subscribers {} --feed-rates {} --feed-point-secs {} --openclaw-feed-subscribers {} \
         --openclaw-feed-rates {} --start-runs {} --openclaw-agent-conns {} --attempts {} \
         --quiet-wait-secs {}`.\n",
        o.secs,
        o.warmup_secs,
        o.concurrency,
        o.conns,
        o.http_conns,
        o.ws_conns,
        o.subscribers,
        o.event_rate,
        o.feed_secs,
        join(&o.feed_subscribers),
        join(&o.feed_rates),
        o.feed_point_secs,
        o.openclaw_feed_subscribers,
        join(&o.openclaw_feed_rates),
        o.start_runs,
        o.openclaw_agent_conns,
        o.attempts,
        o.quiet_wait_secs
    ));
    s
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}
