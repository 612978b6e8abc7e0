//! A throwaway PostgreSQL server for tests: `initdb` into a temp dir and `postgres` as a
//! child process on a free 127.0.0.1 port (trust auth, superuser `clawplane`). When the
//! tests run as root, the server runs as the `postgres` user (PostgreSQL refuses root).
//! The child dies with the test process (parent-death signal), so nothing is left behind.
//! Each test takes its own database from [`PgServer::database`].

use std::{
    net::TcpListener,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

/// A running server (see [`PgServer::start`]).
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Mutex<Child>,
    next_db: AtomicU32,
}

/// The directory of `initdb` and `postgres`: `$CLAWPLANE_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian), else the directory of `pg_config` on PATH.
fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CLAWPLANE_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    if let Some((_, bin)) = majors.pop() {
        return bin;
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("PostgreSQL not found: install it (Debian: apt-get install postgresql) or set CLAWPLANE_PG_BIN");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The uid/gid to run PostgreSQL as: ours, or `postgres`'s when we are root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: a valid C string; the returned record is read before any other getpw* call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, and there is no `postgres` user to run PostgreSQL as"
    );
    // SAFETY: non-null record from getpwnam.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A command that runs as the server user and dies with this process.
fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    let user = server_user();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = user
                && (libc::setgid(gid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // After setuid: a credential change clears the parent-death signal.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Runs `cmd` to completion; panics with its stderr unless it succeeded. Returns stdout.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PgServer {
    /// The server shared by this test process, started on first use. It is started from a
    /// thread that never ends: the parent-death signal fires when the *thread* that
    /// spawned the child exits, and test threads come and go.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("testkit-postgres".into())
                .spawn(move || {
                    let _ = tx.send(PgServer::start());
                    loop {
                        std::thread::park();
                    }
                })
                .expect("spawn the postgres keeper thread");
            rx.recv().expect("postgres started")
        })
    }

    /// Starts a new server in a new temp dir.
    pub fn start() -> PgServer {
        remove_stale("clawplane-pg-");
        let bin = bin_dir();
        let dir =
            std::env::temp_dir().join(format!("clawplane-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the temp dir");
        }
        let data = dir.join("data");
        run_ok(
            command(&bin.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "clawplane",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
            "initdb",
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).expect("log file");
        drop(log);
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid))
                .expect("chown the log");
        }
        let child = spawn_postgres(&bin, &dir, port);
        let server = PgServer {
            port,
            dir,
            bin,
            child: Mutex::new(child),
            next_db: AtomicU32::new(0),
        };
        server.wait_ready();
        server
    }

    /// Stops the server (fast shutdown: open connections are closed) and starts it again
    /// on the same port and data, as a PostgreSQL restart or failover looks to its clients.
    pub fn restart(&self) {
        self.stop();
        self.resume();
    }

    /// Stops the server (fast shutdown); [`PgServer::resume`] starts it again.
    pub fn stop(&self) {
        let mut child = self.child.lock().expect("child");
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let _ = child.wait();
    }

    /// Starts a stopped server again on the same port and data.
    pub fn resume(&self) {
        *self.child.lock().expect("child") = spawn_postgres(&self.bin, &self.dir, self.port);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "clawplane",
                ])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            if let Ok(Some(status)) = self.child.lock().expect("child").try_wait() {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The postmaster's pid (connections fork from it, so its CPU affinity is theirs).
    pub fn pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or_default()
    }

    /// A program of the same PostgreSQL installation (`pgbench`, `psql`, …).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// The URL of the `postgres` maintenance database.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://clawplane@127.0.0.1:{}/{db}", self.port)
    }

    /// A plain-text `pg_dump` of the database at `url` (one of this server's).
    pub fn dump(&self, url: &str) -> String {
        run_ok(
            Command::new(self.bin.join("pg_dump")).args(["--data-only", "--dbname", url]),
            "pg_dump",
        )
    }

    /// Creates a fresh, empty database and returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        run_ok(
            Command::new(self.bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "clawplane",
                ])
                .arg(&name),
            &format!("createdb {name}"),
        );
        self.url(&name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes `<tmp>/<prefix><pid>-*` dirs of test processes that are gone: a server shared
/// by a whole test process is never dropped, so its files outlive it.
pub(crate) fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub(crate) fn unique() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{n:x}")
}

/// `postgres` on `port` with the data of `dir`, its output appended to `dir/postgres.log`.
fn spawn_postgres(bin: &Path, dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("postgres.log"))
        .expect("open the log");
    command(&bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-k")
        .arg(dir)
        // Many short-lived gateways, each with a writer and a few readers.
        .args(["-c", "max_connections=400", "-c", "shared_buffers=64MB"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start postgres")
}
