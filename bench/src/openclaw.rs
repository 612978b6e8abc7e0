//! The real OpenClaw gateway (`openclaw@2026.9.6` on Node 24, installed from npm by
//! `scripts/install-openclaw.sh` into `~/.cache/clawplane-openclaw`) as a baseline: started
//! on loopback with a shared token and `hooks.*` enabled, pinned to the server CPU, its DNS
//! limited to localhost by `tests/tools/node-dns-guard.cjs`.

use crate::{hooks::HOOK_TOKEN, procs::Pinned};
use anyhow::{Result, bail};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

pub const GATEWAY_TOKEN: &str = "clawplane-bench-openclaw-gateway-token";

/// Where the install script puts Node and the CLI.
pub struct Install {
    pub node: PathBuf,
    pub openclaw: PathBuf,
    pub guard: PathBuf,
    pub version: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// Finds an existing install (never installs: `scripts/bench.sh` runs the install script).
pub fn locate() -> Result<Install> {
    let cache = match std::env::var_os("CLAWPLANE_OPENCLAW_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/clawplane-openclaw"),
    };
    let node = cache.join("node/node_modules/node/bin/node");
    let openclaw = cache.join("cli/node_modules/openclaw/openclaw.mjs");
    if !node.is_file() || !openclaw.is_file() {
        bail!(
            "OpenClaw is not installed under {} (run scripts/install-openclaw.sh)",
            cache.display()
        );
    }
    let guard = repo().join("tests/tools/node-dns-guard.cjs");
    let Ok(guard) = guard.canonicalize() else {
        bail!("the DNS guard {} is missing", guard.display());
    };
    let pkg = std::fs::read_to_string(cache.join("cli/node_modules/openclaw/package.json"))
        .unwrap_or_default();
    let version = serde_json::from_str::<serde_json::Value>(&pkg)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    Ok(Install {
        node,
        openclaw,
        guard,
        version,
    })
}

/// A running OpenClaw gateway; its process group is stopped on drop.
pub struct OpenClaw {
    pub proc: Pinned,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl OpenClaw {
    /// Spawns `openclaw gateway run` on a free loopback port with a fresh HOME, state dir
    /// and config. Returns at once; callers poll for readiness.
    pub fn spawn(inst: &Install) -> Result<OpenClaw> {
        let dir = tempfile::Builder::new()
            .prefix("clawplane-bench-openclaw-")
            .tempdir()?;
        let config = dir.path().join("openclaw.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "gateway": {"mode": "local", "auth": {"mode": "token", "token": GATEWAY_TOKEN}},
                "hooks": {"enabled": true, "token": HOOK_TOKEN, "path": "/hooks"},
            })
            .to_string(),
        )?;
        let port = free_port()?;
        let node_dir = inst.node.parent().expect("node has a dir");
        let mut cmd = Command::new(&inst.node);
        cmd.arg(&inst.openclaw)
            .args([
                "gateway",
                "run",
                "--bind",
                "loopback",
                "--allow-unconfigured",
            ])
            .args(["--port", &port.to_string(), "--token", GATEWAY_TOKEN])
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", node_dir.display()))
            .env("HOME", dir.path())
            .env("OPENCLAW_STATE_DIR", dir.path().join("state"))
            .env("OPENCLAW_CONFIG_PATH", &config)
            .env(
                "NODE_OPTIONS",
                format!("--require {}", inst.guard.display()),
            )
            .env("DNS_GUARD_LOG", dir.path().join("dns-guard.log"))
            .env("NO_COLOR", "1")
            .stderr(std::fs::File::create(dir.path().join("stderr.log"))?);
        let proc = Pinned::spawn(cmd)?;
        Ok(OpenClaw {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Host names the DNS guard refused (one JSON line each).
    pub fn dns_refusals(&self) -> usize {
        std::fs::read_to_string(self._dir.path().join("dns-guard.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}
