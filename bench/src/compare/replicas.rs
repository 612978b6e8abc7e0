//! Replicas on one PostgreSQL database (issue 14's rows): durable `ChatService/Send`
//! accepts, end-to-end runs (Send on one replica, `AgentService/Wait` on the next) and the
//! Watch fan-out, with 1, 2 and 3 `clawplane` processes, next to `pgbench -N` on the same
//! server in the same run. Every replica and PostgreSQL share the server CPU, the load runs
//! on the other: these rows show what a second or third process costs on one core, not
//! scaling (docs/scale-out.md says where the bottleneck moves on real machines).

use super::{Comparison, Meas, Scenario, Side, feed_meas, from_outcome, one_line, quiet, shape};
use crate::{
    Opts,
    child::{self, Gateway},
    feed,
    grpc::{self, Conn},
    load::{self, CallFn},
    procs, sys, unary,
};
use anyhow::{Result, anyhow, ensure};
use clawplane_proto::v1::{
    AgentServiceWaitRequest, AgentServiceWaitResponse, ChatServiceSendRequest,
    ChatServiceSendResponse, RunState,
};
use prost::Message as _;
use std::{path::Path, process::Command, sync::Arc};
use tokio::runtime::Runtime;

const SEND: &str = "/clawplane.v1.ChatService/Send";
const WAIT: &str = "/clawplane.v1.AgentService/Wait";
/// Issue 14's Watch point: 100 watchers, 1,000 events/s.
const WATCHERS: usize = 100;
const EVENTS_PER_SEC: u64 = 1000;

/// The replica counts measured (two in the smoke run: the multi-replica path, quickly).
fn counts(o: &Opts) -> Vec<usize> {
    if o.smoke { vec![2] } else { vec![1, 2, 3] }
}

fn label(n: usize) -> String {
    if n == 1 {
        "clawplane, 1 process on PostgreSQL".into()
    } else {
        format!("clawplane, {n} replicas on one PostgreSQL")
    }
}

/// `n` gateways on one fresh database of `pg`.
struct Cluster {
    gws: Vec<Gateway>,
}

impl Cluster {
    fn start(bin: &Path, url: &str, n: usize, slots: Option<usize>) -> Result<Cluster> {
        let mut gws = Vec::with_capacity(n);
        for _ in 0..n {
            gws.push(Gateway::spawn_with(bin, Some(url), slots)?);
        }
        Ok(Cluster { gws })
    }

    fn addrs(&self) -> Vec<std::net::SocketAddr> {
        self.gws.iter().map(|g| g.addr).collect()
    }

    fn cpu_secs(&self) -> f64 {
        self.gws.iter().map(|g| procs::tree_cpu_secs(g.pid())).sum()
    }

    fn rss(&self) -> u64 {
        self.gws.iter().map(|g| procs::tree_rss(g.pid())).sum()
    }

    /// `per` connections to each replica, replica by replica in turn.
    async fn conns(&self, per: usize) -> Result<Vec<Conn>> {
        let mut v = Vec::new();
        for _ in 0..per.max(1) {
            for g in &self.gws {
                v.push(Conn::connect(g.addr, Some(child::TOKEN)).await?);
            }
        }
        Ok(v)
    }
}

/// A closed loop over the cluster, its CPU and RSS summed over the replicas.
fn window(rt: &Runtime, o: &Opts, cl: &Cluster, call: CallFn, unit: &'static str) -> Meas {
    let out = rt.block_on(load::closed_loop_probed(
        shape(o, o.concurrency),
        call,
        || cl.cpu_secs(),
    ));
    from_outcome(&out, unit, cl.rss())
}

/// One run end to end: Send on one replica, then Wait for it on the next one (so the
/// answer crosses replicas through the shared feed); the run must have succeeded.
fn run_call(conns: Vec<Conn>, replicas: usize, sessions: usize) -> CallFn {
    let (send_m, wait_m) = (conns[0].method(SEND), conns[0].method(WAIT));
    let conns = Arc::new(conns);
    Arc::new(move |slot| {
        let send = conns[slot % conns.len()].clone();
        // conns is laid out replica by replica: +1 is the same slot on the next replica.
        let wait = conns[(slot + usize::from(replicas > 1)) % conns.len()].clone();
        let (send_m, wait_m) = (send_m.clone(), wait_m.clone());
        let req = grpc::frame(&ChatServiceSendRequest {
            session_key: format!("e2e-{}", slot % sessions.max(1)),
            message: format!("hello from slot {slot}"),
            ..Default::default()
        });
        Box::pin(async move {
            let r = ChatServiceSendResponse::decode(send.unary_raw(&send_m, req).await?)?;
            let w: AgentServiceWaitResponse = wait
                .unary(
                    &wait_m,
                    &AgentServiceWaitRequest {
                        run_id: r.run_id.clone(),
                        timeout_ms: 30_000,
                        ..Default::default()
                    },
                )
                .await?;
            let state = w.run.as_ref().map(|r| r.state());
            ensure!(
                w.done && state == Some(RunState::Succeeded),
                "run {} ended {state:?} (done {})",
                r.run_id,
                w.done
            );
            Ok(())
        })
    })
}

/// The three scenarios; PostgreSQL pinned to the server CPU, a fresh database per point.
pub fn run(c: &mut Comparison, rt: &Runtime, o: &Opts, bin: &Path, grpc_load: &str) {
    eprintln!("compare: replicas on PostgreSQL (Send, end-to-end runs, Watch), pgbench ...");
    quiet(o);
    let counts = counts(o);
    let mut accepts: Vec<Side> = Vec::new();
    let mut runs: Vec<Side> = Vec::new();
    let mut watch: Vec<Side> = Vec::new();
    let pg = c.ours("PostgreSQL for the replica rows", start_postgres);
    let pgbench_who = "`pgbench -N` (simple update, durable commits), same server";
    match &pg {
        Err(e) => {
            for sides in [&mut accepts, &mut runs, &mut watch] {
                sides.push(Side {
                    who: "clawplane on PostgreSQL".into(),
                    result: Err(e.clone()),
                });
            }
        }
        Ok(pg) => {
            for &n in &counts {
                // One closed-loop point on a fresh cluster of n.
                let mut point = |what: &str,
                                 slots: Option<usize>,
                                 call: &dyn Fn(Vec<Conn>) -> CallFn,
                                 unit: &'static str| {
                    quiet(o);
                    let url = pg.database();
                    c.ours(&format!("{what} on {n} replicas"), || {
                        let cl = Cluster::start(bin, &url, n, slots)?;
                        let conns = rt.block_on(cl.conns(o.conns.div_ceil(n)))?;
                        Ok(window(rt, o, &cl, call(conns), unit))
                    })
                };
                let r = point(
                    "Send",
                    None,
                    &|conns| unary::send_call(conns, o.concurrency, o.sessions),
                    "accepts/s",
                );
                accepts.push(Side {
                    who: label(n),
                    result: r,
                });
                // As many executor slots per replica as runs in flight: the built-in model
                // answers at once, so slots are not what is measured.
                let r = point(
                    "end-to-end runs",
                    Some(o.concurrency),
                    &|conns| run_call(conns, n, o.sessions),
                    "runs/s",
                );
                runs.push(Side {
                    who: label(n),
                    result: r,
                });
                quiet(o);
                let url = pg.database();
                let r = c.ours(&format!("Watch on {n} replicas"), || {
                    let cl = Cluster::start(bin, &url, n, None)?;
                    let mut po = o.clone();
                    if !o.smoke {
                        po.subscribers = WATCHERS;
                        po.event_rate = EVENTS_PER_SEC;
                        po.feed_secs = o.feed_point_secs;
                    }
                    let r = feed::run_against(rt, &cl.addrs(), &po, &|| cl.cpu_secs())?;
                    Ok(feed_meas(&r, cl.rss()))
                });
                watch.push(Side {
                    who: label(n),
                    result: r,
                });
            }
            quiet(o);
            let db = pg.database();
            accepts.push(Side {
                who: pgbench_who.into(),
                result: c.ours("pgbench", || pgbench(pg, &db, o)),
            });
        }
    }

    let shared = "Every replica and the PostgreSQL server are pinned to the server CPU (the \
                  load to the other): more replicas share one core, so these rows show the \
                  cost of coordination, not scaling. PostgreSQL's processes are not in the \
                  CPU and memory columns; the replicas' are summed. A fresh database per row.";
    let mut notes = vec![
        shared.to_string(),
        "Each Send is a durable accept committed to PostgreSQL, spread over the replicas' \
         connections in turn; the accepted runs execute on the built-in model during the \
         window. `pgbench -N`: each transaction updates one row, reads one and inserts one, \
         committed with fsync, over as many connections as the Send load has in flight."
            .to_string(),
    ];
    if let Some(Ok(b)) = accepts.last().map(|s| &s.result)
        && b.unit == "transactions/s"
    {
        for s in &accepts[..accepts.len() - 1] {
            if let Ok(a) = &s.result {
                notes.push(format!(
                    "{}: {:.2}x pgbench's transactions/s.",
                    s.who,
                    a.rate / b.rate.max(1e-9)
                ));
            }
        }
    }
    c.scenarios.push(Scenario {
        name: "Replicas: gRPC unary `ChatService/Send` (durable accepts)".into(),
        load: format!("{grpc_load}, {} sessions", o.sessions),
        sides: accepts,
        notes,
    });
    c.scenarios.push(Scenario {
        name: "Replicas: end-to-end runs (`Send` on one replica, `AgentService/Wait` on the next)"
            .into(),
        load: format!(
            "{0} in flight, closed loop, {1} sessions, built-in model, `maxConcurrent: {0}` per replica",
            o.concurrency, o.sessions
        ),
        sides: runs,
        notes: vec![
            shared.to_string(),
            "One operation: accept, execute on the session's owner, and answer the Wait on \
             another replica (which learns the result from the shared feed). Latency is the \
             whole run."
                .to_string(),
        ],
    });
    let (n, rate) = if o.smoke {
        (o.subscribers, o.event_rate)
    } else {
        (WATCHERS, EVENTS_PER_SEC)
    };
    c.scenarios.push(Scenario {
        name: "Replicas: `EventService/Watch` fan-out".into(),
        load: format!(
            "{n} watchers spread over the replicas, {rate} events/s offered (Wake) on the first two"
        ),
        sides: watch,
        notes: vec![
            shared.to_string(),
            "Latency: event commit time to receipt by a watcher, which for most watchers is \
             on another replica than the one that committed the event (it follows PostgreSQL)."
                .to_string(),
        ],
    });
}

/// A throwaway PostgreSQL pinned to the server CPU.
fn start_postgres() -> Result<clawplane_testkit::PgServer> {
    let pg = std::panic::catch_unwind(clawplane_testkit::PgServer::start)
        .map_err(|_| anyhow!("PostgreSQL did not start (initdb/postgres missing?)"))?;
    // SAFETY: cpu_set_t is plain bits; CPU_SET on an in-range index.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(sys::SERVER_CPU, &mut set);
        set
    };
    // SAFETY: setting the affinity of our own child by pid; backends fork from it.
    unsafe {
        libc::sched_setaffinity(
            pg.pid() as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        )
    };
    Ok(pg)
}

/// `pgbench -i`, then `pgbench -N` for the measure window; transactions/s and latency.
fn pgbench(pg: &clawplane_testkit::PgServer, url: &str, o: &Opts) -> Result<Meas> {
    let tool = pg.tool("pgbench");
    let init = Command::new(&tool)
        .args(["-i", "-q", "-s", "1", url])
        .output()?;
    ensure!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let secs = o.measure().as_secs_f64().ceil().max(1.0) as u64;
    let clients = o.concurrency.max(1).to_string();
    let out = Command::new(&tool)
        .args([
            "-n",
            "-N",
            "-c",
            &clients,
            "-j",
            "1",
            "-T",
            &secs.to_string(),
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "pgbench failed: {}{}",
        text,
        one_line(&String::from_utf8_lossy(&out.stderr))
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let tps = field("tps =").ok_or_else(|| anyhow!("no tps in pgbench output: {text}"))?;
    let latency_ms = field("latency average =");
    Ok(Meas {
        rate: tps,
        unit: "transactions/s",
        p50_us: None,
        p99_us: None,
        cpu_us: None,
        rss: None,
        errors: 0,
        total_rate: None,
        missed_dup: None,
        not_produced: None,
        note: format!(
            "pgbench -N, {clients} clients, {secs} s; latency average {}",
            latency_ms.map_or("-".into(), |l| format!("{l} ms"))
        ),
    })
}
