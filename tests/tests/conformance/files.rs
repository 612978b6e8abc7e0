//! The data dir is private: 0700, the database and every secret file 0600, whatever umask the
//! gateway inherits, and files an older start left open are closed again.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use tokio::io::AsyncBufReadExt as _;

use crate::harness::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Starts `serve` with umask 000 (and TLS, so a key is generated), waits for the listening
/// line, and stops it.
async fn serve_with_open_umask(data_dir: &Path) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["serve", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .env("HOME", data_dir)
        .env("CLAWPLANE_GATEWAY__TLS__AUTO_GENERATE", "true")
        .env_remove("CLAWPLANE_GATEWAY_TOKEN")
        .env_remove("CLAWPLANE_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // SAFETY: umask is async-signal-safe; it only sets the child's file-creation mask.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .expect("the gateway starts")
        .expect("read stdout")
        .expect("a listening line");
    assert!(
        line.starts_with("clawplane listening on https://"),
        "{line}"
    );
    child.kill().await.expect("stop the gateway");
}

#[tokio::test]
async fn the_data_dir_and_its_secrets_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    serve_with_open_umask(&data).await;
    let check = |what: &str, want: u32| {
        let p = data.join(what);
        assert_eq!(mode(&p), want, "{} is {:o}", p.display(), mode(&p));
    };
    check("", 0o700);
    check("clawplane.redb", 0o600);
    check("gateway.token", 0o600);
    check("tls", 0o700);
    check("tls/key.pem", 0o600);
    // An older start (or a hand edit) left them open: the next start closes them.
    for (p, m) in [
        ("", 0o755),
        ("clawplane.redb", 0o644),
        ("gateway.token", 0o644),
    ] {
        std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    }
    serve_with_open_umask(&data).await;
    check("", 0o700);
    check("clawplane.redb", 0o600);
    check("gateway.token", 0o600);
}
