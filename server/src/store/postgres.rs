//! The PostgreSQL backend: the same seam as redb ([`Reader`], [`Txn`], group commit on one
//! writer thread), with PostgreSQL as the system of record.
//!
//! Write batches are serialised across every process that shares the database: a batch
//! first locks the `last_seq` row, so event seqs are assigned in commit order, gap-free,
//! cluster-wide, and the check-then-write closures of the core see no concurrent writer
//! (no unique-key races, no deadlocks). Reads run in REPEATABLE READ snapshots from a small
//! pool of connections and scale with the replicas.
//!
//! The store's traits are synchronous. tokio-postgres connections are driven by this
//! backend's own one-thread runtime; queries are awaited with a plain executor (inside
//! `block_in_place` on a multi-thread runtime), so any thread may call them.

use super::codec::{decode, decode_run, encode_run, is_active, se, ts_ms};
use super::writer::{Engine, spawn_writer};
use super::{
    Backend, Completion, Encoded, Feed, IdemRecord, Job, Reader, Store, StoredDeviceToken,
    StoredRun, StoredWebhookKey, Txn,
};
use crate::error::Result;
use clawplane_proto::v1::{Device, Event, Message, PairingRequest, Run, Session, WebhookCall};
use clawplane_util::time::now_ms;
use prost::Message as _;
use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{Arc, Mutex},
};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio_postgres::{Client, NoTls, Row, Statement, types::ToSql};

mod follow;

const SCHEMA: &str = include_str!("postgres/schema.sql");
/// `pg_advisory_lock` key of schema migrations ("clawplan" in ASCII).
const MIGRATION_LOCK: i64 = 0x636c_6177_706c_616e;
/// The schema's migrations after version 1, in order (version 2 is the first).
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/v2.sql"),
    include_str!("postgres/v3.sql"),
    include_str!("postgres/v4.sql"),
];
/// The channel a commit with events notifies, so idle replicas follow at once.
const FEED_CHANNEL: &str = "clawplane_feed";
/// The channel of [`crate::store::Store::signal`].
const SIGNAL_CHANNEL: &str = "clawplane_signal";
/// Read connections kept open per process.
const POOL: usize = 8;

/// Awaits `f` on this thread. Futures of a tokio-postgres `Client` need no runtime (their
/// connection task runs on the backend's runtime), so a plain executor will do; on a
/// multi-thread runtime worker the wait is announced with `block_in_place`.
fn wait<F: Future>(f: F) -> F::Output {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| futures::executor::block_on(f))
        }
        _ => futures::executor::block_on(f),
    }
}

/// The backend's own runtime, shut down without blocking when the store goes away.
struct Rt(Option<Runtime>);

impl Rt {
    fn handle(&self) -> &Handle {
        self.0.as_ref().expect("runtime lives until drop").handle()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// One connection with its prepared statements.
struct Conn {
    client: Client,
    stmts: Mutex<HashMap<&'static str, Statement>>,
}

impl Conn {
    fn connect(rt: &Rt, url: &str) -> Result<Conn> {
        let url = url.to_string();
        let (client, connection) = wait(
            rt.handle()
                .spawn(async move { tokio_postgres::connect(&url, NoTls).await }),
        )
        .map_err(se)?
        .map_err(|e| se(format!("cannot connect to PostgreSQL: {e}")))?;
        rt.handle().spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(Conn {
            client,
            stmts: Mutex::new(HashMap::new()),
        })
    }

    fn statement(&self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = clawplane_util::sync::lock(&self.stmts).get(sql) {
            return Ok(s.clone());
        }
        let s = wait(self.client.prepare(sql)).map_err(se)?;
        clawplane_util::sync::lock(&self.stmts).insert(sql, s.clone());
        Ok(s)
    }

    fn rows(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let st = self.statement(sql)?;
        wait(self.client.query(&st, params)).map_err(se)
    }

    fn row(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    fn exec(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let st = self.statement(sql)?;
        wait(self.client.execute(&st, params)).map_err(se)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        wait(self.client.batch_execute(sql)).map_err(se)
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or_default()
}

fn meta(c: &Conn, k: &'static str) -> Result<u64> {
    Ok(c.row("SELECT v FROM meta WHERE k = $1", &[&k])?
        .map(|r| u64_of(r.get(0)))
        .unwrap_or(0))
}

/// Prepares the writer's connection: standard string literals (the buffered statements
/// quote that way).
fn writer_session(writer: Conn) -> Result<Conn> {
    writer.batch("SET standard_conforming_strings = on")?;
    Ok(writer)
}

/// Applies the schema once, under an advisory lock so concurrent starts wait for the first.
fn migrate(c: &Conn) -> Result<()> {
    c.batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let out = (|| {
        c.batch("CREATE TABLE IF NOT EXISTS clawplane_schema (version int NOT NULL)")?;
        let version: i32 = c
            .row("SELECT max(version) FROM clawplane_schema", &[])?
            .and_then(|r| r.get::<_, Option<i32>>(0))
            .unwrap_or(0);
        if version < 1 {
            c.batch(&format!(
                "BEGIN; {SCHEMA}; INSERT INTO clawplane_schema VALUES (1); COMMIT;"
            ))?;
            tracing::info!("PostgreSQL schema created (version 1)");
        }
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let v = i as i32 + 2;
            if version < v {
                c.batch(&format!(
                    "BEGIN; {sql}; INSERT INTO clawplane_schema VALUES ({v}); COMMIT;"
                ))?;
                tracing::info!("PostgreSQL schema migrated to version {v}");
            }
        }
        Ok(())
    })();
    c.batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    out
}

struct Pool {
    rt: Arc<Rt>,
    url: String,
    idle: Mutex<Vec<Conn>>,
}

struct PgBackend {
    pool: Arc<Pool>,
    /// This replica's id: its signals carry it, so it ignores its own.
    origin: String,
}

/// A REPEATABLE READ snapshot on a pooled connection; the connection goes back on drop.
struct Snap {
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl Snap {
    fn c(&self) -> Result<&Conn> {
        self.conn
            .as_ref()
            .ok_or_else(|| se("a snapshot without its connection"))
    }
}

impl Drop for Snap {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.batch("ROLLBACK").is_ok()
        {
            let mut idle = clawplane_util::sync::lock(&self.pool.idle);
            if idle.len() < POOL {
                idle.push(conn);
            }
        }
    }
}

impl PgBackend {
    fn conn(&self) -> Result<Conn> {
        let pooled = clawplane_util::sync::lock(&self.pool.idle).pop();
        match pooled {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => Conn::connect(&self.pool.rt, &self.pool.url),
        }
    }

    /// Runs `f` on a pooled connection and gives the connection back when `f` succeeded.
    fn with_conn<R>(&self, f: impl FnOnce(&Conn) -> Result<R>) -> Result<R> {
        let conn = self.conn()?;
        let out = f(&conn)?;
        let mut idle = clawplane_util::sync::lock(&self.pool.idle);
        if idle.len() < POOL {
            idle.push(conn);
        }
        Ok(out)
    }

    /// Runs `f` in a transaction on a pooled connection (rolled back when `f` fails).
    fn in_txn<R>(&self, f: impl FnOnce(&Conn) -> Result<R>) -> Result<R> {
        self.with_conn(|c| {
            c.batch("BEGIN")?;
            match f(c) {
                Ok(r) => {
                    c.batch("COMMIT")?;
                    Ok(r)
                }
                Err(e) => {
                    c.batch("ROLLBACK")?;
                    Err(e)
                }
            }
        })
    }
}

/// PostgreSQL's clock in ms since the epoch, in SQL: one clock for every replica.
macro_rules! pg_now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

/// `pg_advisory_xact_lock` key serialising challenge issues ("challeng" in ASCII).
const CHALLENGE_LOCK: i64 = 0x6368_616c_6c65_6e67;

impl super::Ephemeral for PgBackend {
    fn spend(
        &self,
        key: &str,
        rate: f64,
        burst: u32,
    ) -> Result<std::result::Result<(), std::time::Duration>> {
        let cap = f64::from(burst.max(1));
        // The refill, the check and the spend in one statement: concurrent spends of one
        // bucket serialise on its row. `level` is the row's level refilled to now.
        macro_rules! level {
            () => {
                "least($3::float8, b.tokens + greatest(EXCLUDED.at_ms - b.at_ms, 0) * $2::float8 / 1000)"
            };
        }
        const SPEND: &str = concat!(
            "INSERT INTO rate_buckets AS b (k, tokens, at_ms, full_ms, ok) SELECT $1, $3::float8 - 1, now.ms, now.ms + (1000 / $2::float8)::bigint, true FROM (SELECT ",
            pg_now_ms!(),
            " AS ms) now ON CONFLICT (k) DO UPDATE SET ok = ",
            level!(),
            " >= 1, tokens = ",
            level!(),
            " - (",
            level!(),
            " >= 1)::int, at_ms = greatest(b.at_ms, EXCLUDED.at_ms), full_ms = EXCLUDED.at_ms + (($3::float8 - ",
            level!(),
            " + (",
            level!(),
            " >= 1)::int) * 1000 / $2::float8)::bigint RETURNING ok, tokens"
        );
        let (ok, tokens): (bool, f64) = self.with_conn(|c| {
            let row = c
                .row(SPEND, &[&key, &rate, &cap])?
                .ok_or_else(|| se("a bucket spend returned no row"))?;
            if rand_prune() {
                // A row past full_ms is the same as no row.
                c.exec(
                    concat!("DELETE FROM rate_buckets WHERE full_ms < ", pg_now_ms!()),
                    &[],
                )?;
            }
            Ok((row.get(0), row.get(1)))
        })?;
        Ok(if ok {
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64(
                ((1.0 - tokens) / rate).max(0.001),
            ))
        })
    }

    fn issue_challenge(
        &self,
        nonce: &str,
        scope: Option<&str>,
        ttl_ms: i64,
        total: usize,
        per_scope: usize,
    ) -> Result<std::result::Result<(), bool>> {
        self.in_txn(|c| {
            // Count-then-insert is exact only when issues are serialised.
            c.exec("SELECT pg_advisory_xact_lock($1)", &[&CHALLENGE_LOCK])?;
            if rand_prune() {
                c.exec(
                    concat!("DELETE FROM challenges WHERE expire_ms <= ", pg_now_ms!()),
                    &[],
                )?;
            }
            let row = c
                .row(
                    concat!(
                        "SELECT count(*), count(*) FILTER (WHERE scope = $1) FROM challenges WHERE expire_ms > ",
                        pg_now_ms!()
                    ),
                    &[&scope],
                )?
                .ok_or_else(|| se("a count returned no row"))?;
            let (all, mine): (i64, i64) = (row.get(0), row.get(1));
            if u64_of(all) >= total as u64 {
                return Ok(Err(false));
            }
            if scope.is_some() && u64_of(mine) >= per_scope as u64 {
                return Ok(Err(true));
            }
            c.exec(
                concat!(
                    "INSERT INTO challenges (nonce, scope, expire_ms) VALUES ($1, $2, ",
                    pg_now_ms!(),
                    " + $3)"
                ),
                &[&nonce, &scope, &ttl_ms],
            )?;
            Ok(Ok(()))
        })
    }

    fn take_challenge(&self, nonce: &str) -> Result<bool> {
        self.with_conn(|c| {
            Ok(c.exec(
                concat!(
                    "DELETE FROM challenges WHERE nonce = $1 AND expire_ms > ",
                    pg_now_ms!()
                ),
                &[&nonce],
            )? == 1)
        })
    }

    fn count_failure(&self, key: &str, window_ms: i64) -> Result<u32> {
        const COUNT: &str = concat!(
            "INSERT INTO auth_failures AS f (k, n, window_start_ms) VALUES ($1, 1, ",
            pg_now_ms!(),
            ") ON CONFLICT (k) DO UPDATE SET
               n = CASE WHEN EXCLUDED.window_start_ms - f.window_start_ms > $2 THEN 1 ELSE f.n + 1 END,
               window_start_ms = CASE WHEN EXCLUDED.window_start_ms - f.window_start_ms > $2
                 THEN EXCLUDED.window_start_ms ELSE f.window_start_ms END
             RETURNING n"
        );
        self.with_conn(|c| {
            let n: i32 = c
                .row(COUNT, &[&key, &window_ms])?
                .ok_or_else(|| se("a failure count returned no row"))?
                .get(0);
            if rand_prune() {
                c.exec(
                    concat!(
                        "DELETE FROM auth_failures WHERE window_start_ms < ",
                        pg_now_ms!(),
                        " - $1"
                    ),
                    &[&window_ms],
                )?;
            }
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn clear_failures(&self, key: &str) -> Result<()> {
        self.with_conn(|c| c.exec("DELETE FROM auth_failures WHERE k = $1", &[&key]))
            .map(|_| ())
    }

    fn reserve_send(
        &self,
        channel: &str,
        to: &str,
        per_hour: u32,
        cooldown_ms: i64,
    ) -> Result<std::result::Result<i64, super::SendRefusal>> {
        const HOUR_MS: i64 = 3_600_000;
        if per_hour == 0 && cooldown_ms == 0 {
            // Nothing to check: record the send (for `sentLastHour`) without the lock that
            // would serialise every send of the channel across the cluster.
            return self.with_conn(|c| {
                if rand_prune() {
                    c.exec(
                        concat!(
                            "DELETE FROM channel_sends WHERE channel = $1 AND at_ms <= ",
                            pg_now_ms!(),
                            " - $2"
                        ),
                        &[&channel, &HOUR_MS],
                    )?;
                }
                let id: i64 = c
                    .row(
                        concat!(
                            "INSERT INTO channel_sends (channel, to_key, at_ms) VALUES ($1, $2, ",
                            pg_now_ms!(),
                            ") RETURNING id"
                        ),
                        &[&channel, &to],
                    )?
                    .ok_or_else(|| se("a send record returned no row"))?
                    .get(0);
                Ok(Ok(id))
            });
        }
        self.in_txn(|c| {
            // Count-then-insert is exact only when one channel's reservations serialise
            // (the two-key lock space is apart from the one-key locks above).
            c.exec(
                "SELECT pg_advisory_xact_lock(4, hashtext($1))",
                &[&channel],
            )?;
            let row = c
                .row(
                    concat!(
                        "SELECT now.ms, count(*) FILTER (WHERE s.at_ms > now.ms - $3),
                           min(s.at_ms) FILTER (WHERE s.at_ms > now.ms - $3),
                           max(s.at_ms) FILTER (WHERE s.to_key = $2)
                         FROM (SELECT ",
                        pg_now_ms!(),
                        " AS ms) now LEFT JOIN channel_sends s ON s.channel = $1 GROUP BY now.ms"
                    ),
                    &[&channel, &to, &HOUR_MS],
                )?
                .ok_or_else(|| se("a send count returned no row"))?;
            let (now, sent, first, last): (i64, i64, Option<i64>, Option<i64>) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if per_hour > 0 && u64_of(sent) >= u64::from(per_hour) {
                let free_ms = first.map_or(1, |f| (f + HOUR_MS - now).max(1));
                return Ok(Err(super::SendRefusal::PerHour {
                    sent: u64_of(sent),
                    free_ms,
                }));
            }
            if let Some(last) = last
                && cooldown_ms > 0
                && now - last < cooldown_ms
            {
                return Ok(Err(super::SendRefusal::Cooldown {
                    ago_ms: now - last,
                    left_ms: cooldown_ms - (now - last),
                }));
            }
            if rand_prune() {
                c.exec(
                    "DELETE FROM channel_sends WHERE channel = $1 AND at_ms <= $2 - greatest($3, $4)",
                    &[&channel, &now, &HOUR_MS, &cooldown_ms],
                )?;
            }
            let id: i64 = c
                .row(
                    "INSERT INTO channel_sends (channel, to_key, at_ms) VALUES ($1, $2, $3) RETURNING id",
                    &[&channel, &to, &now],
                )?
                .ok_or_else(|| se("a send reservation returned no row"))?
                .get(0);
            Ok(Ok(id))
        })
    }

    fn release_send(&self, id: i64) -> Result<()> {
        self.with_conn(|c| c.exec("DELETE FROM channel_sends WHERE id = $1", &[&id]))
            .map(|_| ())
    }

    fn mark_channel(
        &self,
        channel: &str,
        ok: bool,
        last_error: &str,
        connected: Option<bool>,
    ) -> Result<Option<bool>> {
        self.in_txn(|c| {
            // The same lock as the channel's send reservations: flips are seen once.
            c.exec(
                "SELECT pg_advisory_xact_lock(4, hashtext($1))",
                &[&channel],
            )?;
            let was: Option<bool> = c
                .row(
                    "SELECT connected FROM channel_health WHERE channel = $1",
                    &[&channel],
                )?
                .and_then(|r| r.get(0));
            c.exec(
                concat!(
                    "INSERT INTO channel_health AS h (channel, ok, last_error, connected, checked_ms) VALUES ($1, $2, $3, $4, ",
                    pg_now_ms!(),
                    ") ON CONFLICT (channel) DO UPDATE SET ok = EXCLUDED.ok, last_error = EXCLUDED.last_error,
                       connected = coalesce(EXCLUDED.connected, h.connected), checked_ms = EXCLUDED.checked_ms"
                ),
                &[&channel, &ok, &last_error, &connected],
            )?;
            Ok(was)
        })
    }

    fn channel_state(&self, channel: &str) -> Result<(Option<super::ChannelMark>, u32)> {
        const STATE: &str = concat!(
            "SELECT h.ok, h.last_error, h.connected, h.checked_ms,
               (SELECT count(*) FROM channel_sends s WHERE s.channel = $1 AND s.at_ms > ",
            pg_now_ms!(),
            " - 3600000)
             FROM (SELECT 1) one LEFT JOIN channel_health h ON h.channel = $1"
        );
        self.with_conn(|c| {
            let row = c
                .row(STATE, &[&channel])?
                .ok_or_else(|| se("a channel state returned no row"))?;
            let ok: Option<bool> = row.get(0);
            let sent: i64 = row.get(4);
            let mark = ok.map(|ok| super::ChannelMark {
                ok,
                last_error: row.get(1),
                connected: row.get(2),
                checked_ms: row.get(3),
            });
            Ok((mark, u32::try_from(sent).unwrap_or(u32::MAX)))
        })
    }

    fn admit_alert(&self, key: &str, window_ms: i64) -> Result<Option<u64>> {
        // A new window starts with this alert (due, reporting the last window's
        // suppressed count); inside a window the alert is counted as suppressed.
        const ADMIT: &str = concat!(
            "INSERT INTO alert_windows AS w (k, start_ms, suppressed, prev_suppressed) VALUES ($1, ",
            pg_now_ms!(),
            ", 0, 0) ON CONFLICT (k) DO UPDATE SET
               prev_suppressed = CASE WHEN EXCLUDED.start_ms - w.start_ms >= $2 THEN w.suppressed ELSE w.prev_suppressed END,
               suppressed = CASE WHEN EXCLUDED.start_ms - w.start_ms >= $2 THEN 0 ELSE w.suppressed + 1 END,
               start_ms = CASE WHEN EXCLUDED.start_ms - w.start_ms >= $2 THEN EXCLUDED.start_ms ELSE w.start_ms END
             RETURNING suppressed = 0, prev_suppressed"
        );
        self.with_conn(|c| {
            let row = c
                .row(ADMIT, &[&key, &window_ms])?
                .ok_or_else(|| se("an alert window returned no row"))?;
            let (due, prev): (bool, i64) = (row.get(0), row.get(1));
            if rand_prune() {
                c.exec(
                    concat!(
                        "DELETE FROM alert_windows WHERE start_ms < ",
                        pg_now_ms!(),
                        " - $1"
                    ),
                    &[&window_ms],
                )?;
            }
            Ok(due.then_some(u64_of(prev)))
        })
    }
}

/// True about once in 1024 calls: when spends and counts also prune stale rows.
fn rand_prune() -> bool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed) % 1024 == 1023
}

impl Backend for PgBackend {
    fn shared(&self) -> bool {
        true
    }

    fn signal(&self, message: &str) -> Result<()> {
        let payload = format!("{} {message}", self.origin);
        self.with_conn(|c| c.exec("SELECT pg_notify($1, $2)", &[&SIGNAL_CHANNEL, &payload]))
            .map(|_| ())
    }

    fn ephemeral(&self) -> Option<&dyn super::Ephemeral> {
        Some(self)
    }

    fn committed_head(&self) -> Result<Option<u64>> {
        self.with_conn(|c| meta(c, "last_seq")).map(Some)
    }

    fn snapshot(&self) -> Result<Box<dyn Reader + '_>> {
        let conn = self.conn()?;
        conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        Ok(Box::new(Snap {
            conn: Some(conn),
            pool: self.pool.clone(),
        }))
    }
}

/// Connects to `url`, applies the schema, starts the writer thread and returns the store.
/// `retention` bounds the number of events kept.
pub fn open(
    url: &str,
    data_dir: &std::path::Path,
    retention: u64,
    live_capacity: usize,
) -> Result<Store> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("clawplane-pg")
        .enable_all()
        .build()
        .map_err(se)?;
    let rt = Arc::new(Rt(Some(rt)));
    let writer = Conn::connect(&rt, url)?;
    migrate(&writer)?;
    let writer = writer_session(writer)?;
    let identity = Identity::of(data_dir);
    // A replica that comes back under its old id (a restart of the same data dir) keeps
    // its sessions and recovers their runs at its first heartbeat, without waiting for
    // its own lease to run out.
    let rejoined = writer
        .row(
            "INSERT INTO replicas (id, seen_ms) VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint)
             ON CONFLICT (id) DO UPDATE SET seen_ms = EXCLUDED.seen_ms RETURNING xmax <> 0",
            &[&identity.id],
        )?
        .is_some_and(|r| r.get::<_, bool>(0));
    let head = meta(&writer, "last_seq")?;
    let oldest = writer
        .row("SELECT min(seq) FROM events", &[])?
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .map(u64_of)
        .unwrap_or(head + 1);
    let sessions = meta(&writer, "sessions")?;
    let feed = Arc::new(Feed::new(head, oldest, sessions, live_capacity));
    let pool = Arc::new(Pool {
        rt: rt.clone(),
        url: url.to_string(),
        idle: Mutex::new(Vec::new()),
    });
    let origin = identity.id.clone();
    follow::spawn(&feed, rt.clone(), url.to_string(), origin.clone())?;
    let engine = PgEngine {
        conn: writer,
        retention,
        url: url.to_string(),
        rt,
        replica: identity,
        rejoined: Cell::new(rejoined),
    };
    spawn_writer(engine, feed, Arc::new(PgBackend { pool, origin }))
}

struct PgEngine {
    conn: Conn,
    retention: u64,
    url: String,
    /// Drives the connections; alive as long as the writer runs.
    rt: Arc<Rt>,
    /// This process's id in `replicas`.
    replica: Identity,
    /// Set until the first heartbeat reports the sessions this id owned before a restart.
    rejoined: Cell<bool>,
}

/// A replica's id: kept in the data dir (`replica-id`) while this process holds the data
/// dir's lock, so a restart is the same member; fresh when another process holds the lock.
struct Identity {
    id: String,
    /// Held for the life of the process.
    _lock: Option<std::fs::File>,
}

impl Identity {
    fn of(data_dir: &std::path::Path) -> Identity {
        let fresh = || uuid::Uuid::new_v4().to_string();
        let lock = std::fs::create_dir_all(data_dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(data_dir.join("replica.lock"))
            })
            .ok()
            .filter(|f| f.try_lock().is_ok());
        let Some(lock) = lock else {
            tracing::warn!(
                data_dir = %data_dir.display(),
                "another process holds this data dir; this replica takes a fresh id for its life"
            );
            return Identity {
                id: fresh(),
                _lock: None,
            };
        };
        let path = data_dir.join("replica-id");
        let id = match std::fs::read_to_string(&path) {
            Ok(s) if uuid::Uuid::parse_str(s.trim()).is_ok() => s.trim().to_string(),
            _ => {
                let id = fresh();
                if let Err(e) = std::fs::write(&path, &id) {
                    tracing::warn!(error = %e, "cannot keep the replica id; a restart will be a new member");
                }
                id
            }
        };
        Identity {
            id,
            _lock: Some(lock),
        }
    }
}

impl PgEngine {
    /// A writer connection that PostgreSQL dropped (a server restart, a failover) is
    /// replaced before the next batch; until that succeeds, batches fail with the reason.
    fn reconnect_if_closed(&mut self) -> Result<()> {
        if !self.conn.client.is_closed() {
            return Ok(());
        }
        tracing::warn!("the PostgreSQL writer connection closed; reconnecting");
        self.conn = writer_session(Conn::connect(&self.rt, &self.url)?)?;
        // Still a member (the heartbeat re-registers it if the lease ran out meanwhile).
        tracing::info!("the PostgreSQL writer connection is back");
        Ok(())
    }
}

impl Engine for PgEngine {
    fn commit_batch(
        &mut self,
        feed: &Feed,
        batch: &mut VecDeque<Job>,
        completions: &mut Vec<Completion>,
        foreign: &mut Vec<Arc<Event>>,
        published: &mut Vec<Arc<Event>>,
    ) -> Result<(u64, u64, u64)> {
        self.reconnect_if_closed()?;
        let c = &self.conn;
        // BEGIN and the cluster-wide write lock in one round trip (see the module doc).
        let head = match lock_head(c) {
            Ok(h) => h,
            Err(e) => {
                let _ = c.batch("ROLLBACK");
                return Err(e);
            }
        };
        let out = (|| {
            // What other replicas committed since this process last published comes first
            // (their commits released the lock, so it is all visible now).
            let published_head = feed.head.load(std::sync::atomic::Ordering::Acquire);
            if head > published_head {
                foreign.extend(events_between(c, published_head, head)?);
            }
            let mut w = PgTxn {
                c,
                replica: &self.replica.id,
                rejoined: self.rejoined.get(),
                last_seq: head,
                next_run_order: None,
                next_webhook_call: None,
                pending: RefCell::new(String::new()),
                new_events: Vec::new(),
            };
            while let Some(job) = batch.pop_front() {
                completions.push(job(&mut w));
            }
            let head = w.last_seq;
            w.push(format!("UPDATE meta SET v = {head} WHERE k = 'last_seq'"));
            if let Some(n) = w.next_run_order {
                w.push(format!("UPDATE meta SET v = {n} WHERE k = 'run_order'"));
            }
            if let Some(n) = w.next_webhook_call {
                w.push(format!("UPDATE meta SET v = {n} WHERE k = 'webhook_call'"));
            }
            let stats = w.c()?.row(
                "SELECT (SELECT min(seq) FROM events), (SELECT v FROM meta WHERE k = 'sessions')",
                &[],
            )?;
            let mut oldest = stats
                .as_ref()
                .and_then(|r| r.get::<_, Option<i64>>(0))
                .map(u64_of)
                .unwrap_or(head + 1);
            let sessions = stats
                .as_ref()
                .and_then(|r| r.get::<_, Option<i64>>(1))
                .map(u64_of)
                .unwrap_or(0);
            if self.retention > 0 && head >= oldest && head - oldest + 1 > self.retention {
                let new_oldest = head + 1 - self.retention;
                w.push(format!("DELETE FROM events WHERE seq < {new_oldest}"));
                oldest = new_oldest;
            }
            if !w.new_events.is_empty() {
                w.push(format!("NOTIFY {FEED_CHANNEL}"));
            }
            // The remaining writes and the commit: one round trip.
            w.push("COMMIT".into());
            w.flush()?;
            if w.rejoined != self.rejoined.get() {
                self.rejoined.set(false); // reported by a committed heartbeat
            }
            published.append(&mut w.new_events);
            Ok((head, oldest, sessions))
        })();
        if out.is_err() {
            let _ = c.batch("ROLLBACK");
            published.clear();
            foreign.clear(); // the follower publishes them
        }
        out
    }
}

/// The committed events with `after < seq <= upto`, in seq order.
fn events_between(c: &Conn, after: u64, upto: u64) -> Result<Vec<Arc<Event>>> {
    c.rows(
        "SELECT data FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq",
        &[&i64_of(after), &i64_of(upto)],
    )?
    .iter()
    .map(|r| decode(&r.get::<_, Vec<u8>>(0)).map(Arc::new))
    .collect()
}

/// `BEGIN` and the `last_seq` row locked; returns the cluster's head.
fn lock_head(c: &Conn) -> Result<u64> {
    use tokio_postgres::SimpleQueryMessage;
    let msgs = wait(
        c.client
            .simple_query("BEGIN; SELECT v FROM meta WHERE k = 'last_seq' FOR UPDATE"),
    )
    .map_err(se)?;
    Ok(msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .unwrap_or(0))
}

/// A text literal for a buffered statement (standard_conforming_strings is on).
fn text(s: &str) -> Result<String> {
    if s.contains('\0') {
        return Err(se("a text value holds a NUL byte"));
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

/// A bytea literal (hex input format).
fn bytea(b: &[u8]) -> String {
    format!("'\\x{}'::bytea", hex::encode(b))
}

/// A write transaction: the writer's connection inside BEGIN. Writes that answer nothing
/// are buffered and sent together (before the next read, or with the COMMIT), so an
/// accept costs its reads' round trips, not one per row; the counters the batch's lock
/// protects (seq, run order, call number) are kept here and written once at the end.
struct PgTxn<'c> {
    c: &'c Conn,
    replica: &'c str,
    /// True until a heartbeat returns the sessions this id owned before a restart.
    rejoined: bool,
    last_seq: u64,
    next_run_order: Option<u64>,
    next_webhook_call: Option<i64>,
    pending: RefCell<String>,
    new_events: Vec<Arc<Event>>,
}

impl PgTxn<'_> {
    /// The connection, once the buffered writes are sent (reads must see them).
    fn c(&self) -> Result<&Conn> {
        self.flush()?;
        Ok(self.c)
    }

    fn flush(&self) -> Result<()> {
        let sql = std::mem::take(&mut *self.pending.borrow_mut());
        if sql.is_empty() {
            return Ok(());
        }
        self.c.batch(&sql)
    }

    fn push(&self, stmt: String) {
        let mut p = self.pending.borrow_mut();
        p.push_str(&stmt);
        p.push_str(";\n");
    }

    fn bump(&self, k: &'static str, by: i64) {
        self.push(format!(
            "UPDATE meta SET v = GREATEST(v + ({by}), 0) WHERE k = '{k}'"
        ));
    }
}

fn bytes(r: &Row) -> Encoded {
    Encoded(r.get::<_, Vec<u8>>(0))
}

macro_rules! impl_reader {
    ($t:ty) => {
        impl Reader for $t {
            fn raw_get(&self, kind: &str, key: &str) -> Result<Option<Encoded>> {
                Ok(self
                    .c()?
                    .row("SELECT data FROM records WHERE kind = $1 AND key = $2", &[&kind, &key])?
                    .map(|r| bytes(&r)))
            }
            fn raw_scan(
                &self,
                kind: &str,
                after: &str,
                limit: usize,
            ) -> Result<Vec<(String, Encoded)>> {
                let rows = self.c()?.rows(
                    "SELECT key, data FROM records WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3",
                    &[&kind, &after, &i64_of(limit as u64)],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, String>(0), Encoded(r.get::<_, Vec<u8>>(1))))
                    .collect())
            }
            fn run(&self, run_id: &str) -> Result<Option<StoredRun>> {
                match self.c()?.row("SELECT data FROM runs WHERE run_id = $1", &[&run_id])? {
                    Some(r) => Ok(Some(decode_run(&r.get::<_, Vec<u8>>(0))?)),
                    None => Ok(None),
                }
            }
            fn session(&self, key: &str) -> Result<Option<Session>> {
                match self.c()?.row("SELECT data FROM sessions WHERE key = $1", &[&key])? {
                    Some(r) => Ok(Some(decode(&r.get::<_, Vec<u8>>(0))?)),
                    None => Ok(None),
                }
            }
            fn idempotency(&self, key: &str) -> Result<Option<IdemRecord>> {
                let Some(r) = self.c()?.row(
                    "SELECT fingerprint, run_id FROM idempotency WHERE key = $1",
                    &[&key],
                )?
                else {
                    return Ok(None);
                };
                let fp: Vec<u8> = r.get(0);
                let fingerprint = <[u8; 32]>::try_from(fp.as_slice())
                    .map_err(|_| se("corrupt idempotency record"))?;
                Ok(Some(IdemRecord {
                    fingerprint,
                    run_id: r.get(1),
                }))
            }
            fn system_events(&self, session_key: &str) -> Result<Vec<String>> {
                match self.c()?.row(
                    "SELECT data FROM system_events WHERE session_key = $1",
                    &[&session_key],
                )? {
                    Some(r) => serde_json::from_slice(&r.get::<_, Vec<u8>>(0)).map_err(se),
                    None => Ok(Vec::new()),
                }
            }
            fn messages(&self, session_id: &str, after: u64, limit: usize) -> Result<Vec<Message>> {
                self.c()?
                    .rows(
                        "SELECT data FROM messages WHERE session_id = $1 AND idx > $2 ORDER BY idx LIMIT $3",
                        &[&session_id, &i64_of(after), &i64_of(limit as u64)],
                    )?
                    .iter()
                    .map(|r| decode(&r.get::<_, Vec<u8>>(0)))
                    .collect()
            }
            fn last_message(&self, session_id: &str) -> Result<Option<Message>> {
                match self.c()?.row(
                    "SELECT data FROM messages WHERE session_id = $1 ORDER BY idx DESC LIMIT 1",
                    &[&session_id],
                )? {
                    Some(r) => Ok(Some(decode(&r.get::<_, Vec<u8>>(0))?)),
                    None => Ok(None),
                }
            }
            fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
                self.c()?
                    .rows(
                        "SELECT data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&i64_of(after), &i64_of(limit as u64)],
                    )?
                    .iter()
                    .map(|r| decode(&r.get::<_, Vec<u8>>(0)))
                    .collect()
            }
            fn session_count(&self) -> Result<u64> {
                meta(self.c()?, "sessions")
            }
            fn sessions(&self) -> Result<Vec<Session>> {
                self.c()?
                    .rows("SELECT data FROM sessions ORDER BY key", &[])?
                    .iter()
                    .map(|r| decode(&r.get::<_, Vec<u8>>(0)))
                    .collect()
            }
            fn runs_desc(
                &self,
                session_key: Option<&str>,
                before_order: u64,
                limit: usize,
                keep: &mut dyn FnMut(&Run) -> bool,
            ) -> Result<Vec<StoredRun>> {
                // Pages of the index, newest first, until `limit` runs pass `keep`.
                let mut out = Vec::new();
                let mut before = i64_of(before_order);
                let page = i64_of(limit.clamp(16, 1000) as u64);
                loop {
                    let rows = match session_key {
                        Some(s) => self.c()?.rows(
                            "SELECT ord, data FROM runs WHERE session_key = $1 AND ord < $2 ORDER BY ord DESC LIMIT $3",
                            &[&s, &before, &page],
                        )?,
                        None => self.c()?.rows(
                            "SELECT ord, data FROM runs WHERE ord < $1 ORDER BY ord DESC LIMIT $2",
                            &[&before, &page],
                        )?,
                    };
                    let n = rows.len();
                    for r in &rows {
                        before = r.get(0);
                        let stored = decode_run(&r.get::<_, Vec<u8>>(1))?;
                        if keep(&stored.run) {
                            out.push(stored);
                            if out.len() >= limit {
                                return Ok(out);
                            }
                        }
                    }
                    if (n as i64) < page {
                        return Ok(out);
                    }
                }
            }
            fn active_runs(&self) -> Result<Vec<StoredRun>> {
                self.c()?
                    .rows("SELECT data FROM runs WHERE active ORDER BY ord", &[])?
                    .iter()
                    .map(|r| decode_run(&r.get::<_, Vec<u8>>(0)))
                    .collect()
            }
            fn setting(&self, key: &str) -> Result<Option<String>> {
                Ok(self
                    .c()?
                    .row("SELECT v FROM settings WHERE k = $1", &[&key])?
                    .map(|r| r.get(0)))
            }
            fn webhook_keys(&self) -> Result<Vec<StoredWebhookKey>> {
                self.c()?
                    .rows("SELECT digest, data FROM webhook_keys ORDER BY key_id", &[])?
                    .iter()
                    .map(|r| {
                        let d: Vec<u8> = r.get(0);
                        Ok(StoredWebhookKey {
                            digest: <[u8; 32]>::try_from(d.as_slice())
                                .map_err(|_| se("corrupt webhook key record"))?,
                            key: decode(&r.get::<_, Vec<u8>>(1))?,
                        })
                    })
                    .collect()
            }
            fn webhook_calls(&self, limit: usize) -> Result<Vec<WebhookCall>> {
                self.c()?
                    .rows(
                        "SELECT data FROM webhook_calls ORDER BY n DESC LIMIT $1",
                        &[&i64_of(limit as u64)],
                    )?
                    .iter()
                    .map(|r| decode(&r.get::<_, Vec<u8>>(0)))
                    .collect()
            }
            fn device(&self, device_id: &str) -> Result<Option<Device>> {
                match self
                    .c()?
                    .row("SELECT data FROM devices WHERE device_id = $1", &[&device_id])?
                {
                    Some(r) => Ok(Some(decode(&r.get::<_, Vec<u8>>(0))?)),
                    None => Ok(None),
                }
            }
            fn devices(&self) -> Result<Vec<Device>> {
                self.c()?
                    .rows("SELECT data FROM devices ORDER BY device_id", &[])?
                    .iter()
                    .map(|r| decode(&r.get::<_, Vec<u8>>(0)))
                    .collect()
            }
            fn pairing_requests(&self) -> Result<Vec<PairingRequest>> {
                self.c()?
                    .rows("SELECT data FROM pairing_requests ORDER BY request_id", &[])?
                    .iter()
                    .map(|r| decode(&r.get::<_, Vec<u8>>(0)))
                    .collect()
            }
            fn device_token(&self, digest: &[u8; 32]) -> Result<Option<StoredDeviceToken>> {
                let digest = &digest[..];
                self.c()?
                    .row("SELECT data FROM device_tokens WHERE digest = $1", &[&digest])?
                    .map(|r| serde_json::from_slice(&r.get::<_, Vec<u8>>(0)).map_err(se))
                    .transpose()
            }
            fn device_tokens(&self) -> Result<Vec<StoredDeviceToken>> {
                self.c()?
                    .rows("SELECT data FROM device_tokens ORDER BY digest", &[])?
                    .iter()
                    .map(|r| serde_json::from_slice(&r.get::<_, Vec<u8>>(0)).map_err(se))
                    .collect()
            }
        }
    };
}

impl_reader!(PgTxn<'_>);
impl_reader!(Snap);

impl Txn for PgTxn<'_> {
    fn claim_session(&mut self, session_key: &str) -> Result<bool> {
        let owner = self
            .c()?
            .row(
                "SELECT replica FROM session_owners WHERE session_key = $1",
                &[&session_key],
            )?
            .map(|r| r.get::<_, String>(0));
        match owner {
            Some(o) => Ok(o == self.replica),
            None => {
                self.push(format!(
                    "INSERT INTO session_owners (session_key, replica) VALUES ({}, {})",
                    text(session_key)?,
                    text(self.replica)?,
                ));
                Ok(true)
            }
        }
    }

    fn release_session(&mut self, session_key: &str) -> Result<bool> {
        let busy = self
            .c()?
            .row(
                "SELECT 1 FROM runs WHERE session_key = $1 AND active LIMIT 1",
                &[&session_key],
            )?
            .is_some();
        if !busy {
            self.push(format!(
                "DELETE FROM session_owners WHERE session_key = {} AND replica = {}",
                text(session_key)?,
                text(self.replica)?,
            ));
        }
        Ok(!busy)
    }

    fn heartbeat(&mut self, lease_ms: i64) -> Result<super::Beat> {
        let me = self.replica;
        let rejoined = std::mem::take(&mut self.rejoined);
        let c = self.c()?;
        let alive = c.exec(
            "UPDATE replicas SET seen_ms = (extract(epoch from clock_timestamp()) * 1000)::bigint WHERE id = $1",
            &[&me],
        )? > 0;
        if !alive {
            c.exec(
                "INSERT INTO replicas (id, seen_ms) VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint)",
                &[&me],
            )?;
        }
        c.exec(
            "DELETE FROM replicas WHERE seen_ms < (extract(epoch from clock_timestamp()) * 1000)::bigint - $1",
            &[&lease_ms],
        )?;
        // The sessions of replicas that are gone, then active sessions nobody owns.
        let mut taken: Vec<String> = c
            .rows(
                "UPDATE session_owners SET replica = $1
                 WHERE replica NOT IN (SELECT id FROM replicas) RETURNING session_key",
                &[&me],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        taken.extend(
            c.rows(
                "INSERT INTO session_owners (session_key, replica)
                 SELECT DISTINCT session_key, $1 FROM runs r WHERE active
                   AND NOT EXISTS (SELECT 1 FROM session_owners o WHERE o.session_key = r.session_key)
                 RETURNING session_key",
                &[&me],
            )?
            .iter()
            .map(|r| r.get::<_, String>(0)),
        );
        // Back under its old id (a restart), or back after it was declared dead: the
        // sessions still recorded as its own are recovered as a restart would (their runs
        // may have been executing in a life, or a lease, that ended).
        if rejoined || !alive {
            taken.extend(
                c.rows(
                    "SELECT session_key FROM session_owners WHERE replica = $1",
                    &[&me],
                )?
                .iter()
                .map(|r| r.get::<_, String>(0)),
            );
            taken.sort();
            taken.dedup();
        }
        Ok(super::Beat {
            evicted: !alive,
            taken,
        })
    }

    fn leave(&mut self) -> Result<()> {
        let me = text(self.replica)?;
        self.push(format!("DELETE FROM session_owners WHERE replica = {me}"));
        self.push(format!("DELETE FROM leases WHERE replica = {me}"));
        self.push(format!("DELETE FROM replicas WHERE id = {me}"));
        Ok(())
    }

    fn hold(&mut self, duties: &[String]) -> Result<Vec<String>> {
        if duties.is_empty() {
            return Ok(Vec::new());
        }
        let me = self.replica;
        let c = self.c()?;
        // Free duties and those of replicas that are gone become this replica's; then
        // every wanted duty it holds (taken now or before).
        c.exec(
            "INSERT INTO leases (name, replica) SELECT unnest($1::text[]), $2
             ON CONFLICT (name) DO UPDATE SET replica = EXCLUDED.replica
               WHERE leases.replica NOT IN (SELECT id FROM replicas)",
            &[&duties, &me],
        )?;
        Ok(c.rows(
            "SELECT name FROM leases WHERE replica = $1 AND name = ANY($2)",
            &[&me, &duties],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    fn next_run_order(&mut self) -> Result<u64> {
        let next = match self.next_run_order {
            Some(n) => n,
            None => meta(self.c()?, "run_order")?.max(1),
        };
        self.next_run_order = Some(next + 1);
        Ok(next)
    }

    fn put_run(&mut self, r: &StoredRun) -> Result<()> {
        self.push(format!(
            "INSERT INTO runs (run_id, ord, session_key, active, data) VALUES ({}, {}, {}, {}, {})
             ON CONFLICT (run_id) DO UPDATE SET active = EXCLUDED.active, data = EXCLUDED.data",
            text(&r.run.run_id)?,
            i64_of(r.order),
            text(&r.run.session_key)?,
            is_active(r.run.state),
            bytea(&encode_run(r)),
        ));
        Ok(())
    }

    fn put_idempotency(&mut self, key: &str, rec: &IdemRecord) -> Result<()> {
        self.push(format!(
            "INSERT INTO idempotency (key, fingerprint, run_id) VALUES ({}, {}, {})
             ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, run_id = EXCLUDED.run_id",
            text(key)?,
            bytea(&rec.fingerprint),
            text(&rec.run_id)?,
        ));
        Ok(())
    }

    fn put_session(&mut self, s: &Session) -> Result<()> {
        let created = self
            .c()?
            .row(
                "INSERT INTO sessions (key, data) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data RETURNING (xmax = 0)",
                &[&s.session_key, &s.encode_to_vec()],
            )?
            .is_some_and(|r| r.get::<_, bool>(0));
        if created {
            self.bump("sessions", 1);
        }
        Ok(())
    }

    fn delete_session(&mut self, key: &str, session_id: &str) -> Result<()> {
        if self
            .c()?
            .exec("DELETE FROM sessions WHERE key = $1", &[&key])?
            > 0
        {
            self.bump("sessions", -1);
        }
        self.push(format!(
            "DELETE FROM system_events WHERE session_key = {}",
            text(key)?
        ));
        self.push(format!(
            "DELETE FROM messages WHERE session_id = {}",
            text(session_id)?
        ));
        Ok(())
    }

    fn put_message(&mut self, session_id: &str, m: &Message) -> Result<()> {
        self.push(format!(
            "INSERT INTO messages (session_id, idx, data) VALUES ({}, {}, {})
             ON CONFLICT (session_id, idx) DO UPDATE SET data = EXCLUDED.data",
            text(session_id)?,
            i64_of(m.index),
            bytea(&m.encode_to_vec()),
        ));
        Ok(())
    }

    fn put_system_events(&mut self, session_key: &str, texts: &[String]) -> Result<()> {
        if texts.is_empty() {
            self.push(format!(
                "DELETE FROM system_events WHERE session_key = {}",
                text(session_key)?
            ));
        } else {
            let json = serde_json::to_vec(texts).map_err(se)?;
            self.push(format!(
                "INSERT INTO system_events (session_key, data) VALUES ({}, {})
                 ON CONFLICT (session_key) DO UPDATE SET data = EXCLUDED.data",
                text(session_key)?,
                bytea(&json),
            ));
        }
        Ok(())
    }

    fn append_event(&mut self, mut event: Event) -> Result<u64> {
        self.last_seq += 1;
        event.seq = self.last_seq;
        event.time = Some(clawplane_proto::now_ts());
        self.push(format!(
            "INSERT INTO events (seq, data) VALUES ({}, {})",
            i64_of(event.seq),
            bytea(&event.encode_to_vec()),
        ));
        self.new_events.push(Arc::new(event));
        Ok(self.last_seq)
    }

    fn put_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.push(format!(
            "INSERT INTO settings (k, v) VALUES ({}, {}) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
            text(key)?,
            text(value)?,
        ));
        Ok(())
    }

    fn raw_put(&mut self, kind: &str, key: &str, value: &Encoded, timed: bool) -> Result<()> {
        let written = if timed {
            now_ms().to_string()
        } else {
            "NULL".into()
        };
        self.push(format!(
            "INSERT INTO records (kind, key, data, written_ms) VALUES ({}, {}, {}, {written})
             ON CONFLICT (kind, key) DO UPDATE SET data = EXCLUDED.data,
             written_ms = COALESCE(EXCLUDED.written_ms, records.written_ms)",
            text(kind)?,
            text(key)?,
            bytea(&value.0),
        ));
        Ok(())
    }

    fn raw_delete(&mut self, kind: &str, key: &str) -> Result<bool> {
        Ok(self.c()?.exec(
            "DELETE FROM records WHERE kind = $1 AND key = $2",
            &[&kind, &key],
        )? > 0)
    }

    fn put_webhook_key(&mut self, k: &StoredWebhookKey) -> Result<()> {
        self.push(format!(
            "INSERT INTO webhook_keys (key_id, digest, data) VALUES ({}, {}, {})
             ON CONFLICT (key_id) DO UPDATE SET digest = EXCLUDED.digest, data = EXCLUDED.data",
            text(&k.key.key_id)?,
            bytea(&k.digest),
            bytea(&k.key.encode_to_vec()),
        ));
        Ok(())
    }

    fn delete_webhook_key(&mut self, key_id: &str) -> Result<bool> {
        Ok(self
            .c()?
            .exec("DELETE FROM webhook_keys WHERE key_id = $1", &[&key_id])?
            > 0)
    }

    fn append_webhook_call(&mut self, call: &WebhookCall, keep: usize) -> Result<()> {
        let n = match self.next_webhook_call {
            Some(n) => n,
            None => i64_of(meta(self.c()?, "webhook_call")?.max(1)),
        };
        self.next_webhook_call = Some(n + 1);
        self.push(format!(
            "INSERT INTO webhook_calls (n, data) VALUES ({n}, {})",
            bytea(&call.encode_to_vec()),
        ));
        self.push(format!(
            "DELETE FROM webhook_calls WHERE n <= {}",
            n - i64_of(keep as u64)
        ));
        Ok(())
    }

    fn put_device(&mut self, d: &Device) -> Result<()> {
        self.push(format!(
            "INSERT INTO devices (device_id, data) VALUES ({}, {})
             ON CONFLICT (device_id) DO UPDATE SET data = EXCLUDED.data",
            text(&d.device_id)?,
            bytea(&d.encode_to_vec()),
        ));
        Ok(())
    }

    fn delete_device(&mut self, device_id: &str) -> Result<bool> {
        Ok(self
            .c()?
            .exec("DELETE FROM devices WHERE device_id = $1", &[&device_id])?
            > 0)
    }

    fn put_pairing_request(&mut self, r: &PairingRequest) -> Result<()> {
        self.push(format!(
            "INSERT INTO pairing_requests (request_id, data) VALUES ({}, {})
             ON CONFLICT (request_id) DO UPDATE SET data = EXCLUDED.data",
            text(&r.request_id)?,
            bytea(&r.encode_to_vec()),
        ));
        Ok(())
    }

    fn delete_pairing_request(&mut self, request_id: &str) -> Result<bool> {
        Ok(self.c()?.exec(
            "DELETE FROM pairing_requests WHERE request_id = $1",
            &[&request_id],
        )? > 0)
    }

    fn put_device_token(&mut self, t: &StoredDeviceToken) -> Result<()> {
        let json = serde_json::to_vec(t).map_err(se)?;
        self.push(format!(
            "INSERT INTO device_tokens (digest, device_id, role, data) VALUES ({}, {}, {}, {})
             ON CONFLICT (digest) DO UPDATE SET device_id = EXCLUDED.device_id,
             role = EXCLUDED.role, data = EXCLUDED.data",
            bytea(&t.digest),
            text(&t.device_id)?,
            text(&t.role)?,
            bytea(&json),
        ));
        Ok(())
    }

    fn delete_device_token(&mut self, digest: &[u8; 32]) -> Result<()> {
        self.push(format!(
            "DELETE FROM device_tokens WHERE digest = {}",
            bytea(digest)
        ));
        Ok(())
    }

    fn delete_device_tokens(&mut self, device_id: &str, role: Option<&str>) -> Result<usize> {
        let n = self.c()?.exec(
            "DELETE FROM device_tokens WHERE device_id = $1 AND ($2::text IS NULL OR role = $2)",
            &[&device_id, &role],
        )?;
        Ok(n as usize)
    }

    fn prune_runs(
        &mut self,
        cutoff_ms: i64,
        after: u64,
        limit: usize,
    ) -> Result<(usize, Option<u64>)> {
        // The same visit as redb's: acceptance order after `after`, bounded visits.
        let max_visits = limit.saturating_mul(4).max(1);
        let rows = self.c()?.rows(
            "SELECT ord, data FROM runs WHERE ord > $1 ORDER BY ord LIMIT $2",
            &[&i64_of(after), &i64_of(max_visits as u64)],
        )?;
        let mut doomed = Vec::new();
        let mut resume = None;
        let mut visited = 0;
        for r in &rows {
            let stored = decode_run(&r.get::<_, Vec<u8>>(1))?;
            let run = &stored.run;
            if ts_ms(&run.create_time) >= cutoff_ms {
                break; // accepted after the cutoff: it cannot have ended before it
            }
            let ended = ts_ms(&run.end_time).max(ts_ms(&run.create_time));
            if !is_active(run.state) && ended < cutoff_ms {
                doomed.push(stored);
            }
            visited += 1;
            if doomed.len() >= limit || visited >= max_visits {
                resume = Some(u64_of(r.get(0)));
                break;
            }
        }
        for r in &doomed {
            let id = r.run.run_id.as_str();
            self.c()?
                .exec("DELETE FROM runs WHERE run_id = $1", &[&id])?;
            self.c()?
                .exec("DELETE FROM idempotency WHERE run_id = $1", &[&id])?;
        }
        Ok((doomed.len(), resume))
    }

    fn prune_records(&mut self, kind: &str, cutoff_ms: i64, limit: usize) -> Result<usize> {
        let n = self.c()?.exec(
            "DELETE FROM records WHERE kind = $1 AND key IN (
               SELECT key FROM records WHERE kind = $1 AND written_ms < $2
               ORDER BY written_ms LIMIT $3)",
            &[&kind, &cutoff_ms, &i64_of(limit as u64)],
        )?;
        Ok(n as usize)
    }

    fn backfill_record_times(
        &mut self,
        kind: &str,
        after: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Option<String>> {
        let page = self.raw_scan(kind, after, limit)?;
        let keys: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
        self.c()?.exec(
            "UPDATE records SET written_ms = $3
             WHERE kind = $1 AND key = ANY($2) AND written_ms IS NULL",
            &[&kind, &keys, &now_ms],
        )?;
        Ok((page.len() >= limit)
            .then(|| page.last().map(|(k, _)| k.clone()))
            .flatten())
    }
}
