//! Proof with the real client: the published `openclaw@2026.9.6` CLI (on Node 24, both from
//! the npm registry, installed by `scripts/install-openclaw.sh` into a cache folder outside
//! the repo) runs against the gateway's WebSocket shim. The CLI resolves no outside host
//! names (`NODE_OPTIONS=--require tests/tools/node-dns-guard.cjs`) and talks to
//! 127.0.0.1 only. Set `CLAWPLANE_SKIP_OPENCLAW_CLI=1` to skip it where the npm registry
//! cannot be reached.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;

struct Cli {
    node: PathBuf,
    openclaw: PathBuf,
    guard: PathBuf,
}

/// Runs the install script (a no-op when the cache is complete) and reads the paths it prints.
async fn install() -> Cli {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = repo.join("scripts/install-openclaw.sh");
    let started = Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({:?}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "openclaw install/check took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("install script printed no {k}=: {stdout}"))
    };
    let guard = repo.join("tests/tools/node-dns-guard.cjs");
    let guard = guard
        .canonicalize()
        .unwrap_or_else(|e| panic!("the DNS guard {} is missing: {e}", guard.display()));
    Cli {
        node: path("node"),
        openclaw: path("openclaw"),
        guard,
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Cli {
    async fn run(&self, gw: &Gateway, state: &Path, args: &[&str]) -> Run {
        let node_dir = self.node.parent().unwrap();
        let path = format!(
            "{}:{}",
            node_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new(&self.node);
        cmd.arg(&self.openclaw)
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", state)
            .env(
                "OPENCLAW_GATEWAY_URL",
                format!("ws://127.0.0.1:{}", gw.addr.port()),
            )
            .env("OPENCLAW_GATEWAY_TOKEN", &gw.token)
            .env("OPENCLAW_GATEWAY_PORT", gw.addr.port().to_string())
            .env("OPENCLAW_STATE_DIR", state.join("state"))
            .env("OPENCLAW_CONFIG_PATH", state.join("openclaw.json"))
            .env(
                "NODE_OPTIONS",
                format!("--require {}", self.guard.display()),
            )
            .env("DNS_GUARD_LOG", state.join("dns-guard.log"))
            .env("NO_COLOR", "1")
            .env("CI", "true")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("openclaw {args:?} did not finish within 120 s"))
            .expect("spawn node");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The JSON document in a command's stdout.
fn json_of(r: &Run, what: &str) -> Json {
    let start = r
        .stdout
        .find('{')
        .unwrap_or_else(|| panic!("{what}: no JSON on stdout:\n{}\n{}", r.stdout, r.stderr));
    serde_json::from_str(&r.stdout[start..]).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not JSON ({e}):\n{}\n{}",
            r.stdout, r.stderr
        )
    })
}

#[tokio::test]
async fn the_real_openclaw_cli_works_against_the_gateway() {
    if std::env::var("CLAWPLANE_SKIP_OPENCLAW_CLI").is_ok_and(|v| v == "1") {
        eprintln!("skipped: CLAWPLANE_SKIP_OPENCLAW_CLI=1");
        return;
    }
    let cli = install().await;
    let gw = Gateway::start().await;
    let state = tempfile::tempdir().unwrap();
    let check = |r: &Run, what: &str| {
        assert_eq!(
            r.code,
            Some(0),
            "openclaw {what} failed\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- gateway ---\n{}",
            r.stdout,
            r.stderr,
            gw.stderr()
        );
    };

    let r = cli
        .run(&gw, state.path(), &["gateway", "call", "health"])
        .await;
    check(&r, "gateway call health");
    let health = json_of(&r, "gateway call health");
    assert_eq!(health["ok"], true, "{health}");

    let r = cli
        .run(
            &gw,
            state.path(),
            &["agent", "--agent", "main", "-m", "hi", "--json"],
        )
        .await;
    check(&r, "agent");
    let reply = json_of(&r, "agent");
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(
        reply["result"]["payloads"][0]["text"], "You said: hi (turn 1)",
        "the built-in model's reply: {reply}"
    );
    // OpenClaw's runId is the CLI's idempotency key; the run keeps it next to the server's id.
    let run_id = reply["runId"].as_str().expect("runId").to_string();
    let runs = gw.list_runs("").await;
    let run = runs
        .iter()
        .find(|r| r.idempotency_key == run_id)
        .unwrap_or_else(|| panic!("no run with key {run_id}: {runs:?}"));
    assert_eq!(run.reply_text, "You said: hi (turn 1)");

    let r = cli.run(&gw, state.path(), &["devices", "list"]).await;
    check(&r, "devices list");

    let r = cli.run(&gw, state.path(), &["sessions", "--json"]).await;
    check(&r, "sessions --json");
    let sessions = json_of(&r, "sessions --json");
    assert!(sessions["sessions"].is_array(), "{sessions}");

    let dns = std::fs::read_to_string(state.path().join("dns-guard.log")).unwrap_or_default();
    if !dns.is_empty() {
        eprintln!("the DNS guard refused these lookups (no traffic left the machine):\n{dns}");
    }
}

/// The support thread's commands, exactly as people copy them: `agent --channel discord --to
/// user:<id> --deliver`, `agent --session-id`, `status`, `logs`, `channels status` and
/// `message send`, against a gateway whose Discord is a local fake.
#[tokio::test]
async fn the_support_threads_openclaw_commands_work_against_the_gateway() {
    if std::env::var("CLAWPLANE_SKIP_OPENCLAW_CLI").is_ok_and(|v| v == "1") {
        eprintln!("skipped: CLAWPLANE_SKIP_OPENCLAW_CLI=1");
        return;
    }
    use crate::fakes::discord::FakeDiscord;
    let cli = install().await;
    let discord = FakeDiscord::start("bot-token").await;
    let gw = Gateway::start_with(&format!(
        "{{ channels: {{ discord: {{ token: 'bot-token', baseUrl: '{}', dmPolicy: 'open', allowFrom: ['*'] }} }} }}",
        discord.base_url
    ))
    .await;
    discord.gateway.wait_identified(1).await;
    let state = tempfile::tempdir().unwrap();
    let check = |r: &Run, what: &str| {
        assert_eq!(
            r.code,
            Some(0),
            "openclaw {what} failed\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- gateway ---\n{}",
            r.stdout,
            r.stderr,
            gw.stderr()
        );
    };

    // The user wrote to the bot first: their DM session exists.
    discord.gateway.dm("7", "5500", "hello bot");
    let deadline = Instant::now() + PATIENCE;
    while gw.list_runs("agent:main:discord:direct:7").await.is_empty() {
        assert!(Instant::now() < deadline, "the DM did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let r = cli
        .run(
            &gw,
            state.path(),
            &[
                "agent",
                "--agent",
                "main",
                "--channel",
                "discord",
                "--to",
                "user:7",
                "-m",
                "continuing",
                "--deliver",
                "--json",
            ],
        )
        .await;
    check(&r, "agent --channel discord --to user:7 --deliver");
    let reply = json_of(&r, "agent --deliver");
    assert_eq!(reply["status"], "ok", "{reply}");
    let runs = gw.list_runs("agent:main:discord:direct:7").await;
    assert!(
        runs.len() >= 2,
        "the CLI continued the DM session: {runs:#?}"
    );
    let sent = discord.messages();
    assert!(
        sent.iter().any(|m| m.body["content"]
            .as_str()
            .is_some_and(|c| c.contains("continuing"))),
        "the reply went to the DM: {sent:#?}"
    );

    let session = gw.get_session("agent:main:discord:direct:7").await;
    let r = cli
        .run(
            &gw,
            state.path(),
            &[
                "agent",
                "--session-id",
                &session.session_id,
                "-m",
                "by id",
                "--json",
            ],
        )
        .await;
    check(&r, "agent --session-id");
    let after = gw.list_runs("agent:main:discord:direct:7").await;
    assert_eq!(
        after.len(),
        runs.len() + 1,
        "--session-id ran in that session"
    );

    let r = cli.run(&gw, state.path(), &["status", "--json"]).await;
    check(&r, "status --json");
    json_of(&r, "status --json");
    // The full status probes the gateway over RPC (hello-ok with a bootId, health,
    // system-presence); the fast one above judges reachability from OpenClaw's own
    // service records, which a gateway that is not OpenClaw does not write.
    let r = cli
        .run(&gw, state.path(), &["status", "--all", "--json"])
        .await;
    check(&r, "status --all --json");
    let st = json_of(&r, "status --all --json");
    assert_eq!(st["gateway"]["reachable"], true, "{}", st["gateway"]);
    assert_eq!(
        st["gateway"]["self"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{}",
        st["gateway"]
    );

    let r = cli
        .run(&gw, state.path(), &["logs", "--limit", "20", "--json"])
        .await;
    check(&r, "logs --json");
    assert!(
        r.stdout.contains("\"type\":\"log\"") && r.stdout.contains("agent:main:discord:direct:7"),
        "the feed's lines: {}",
        r.stdout
    );

    let r = cli
        .run(&gw, state.path(), &["channels", "status", "--json"])
        .await;
    check(&r, "channels status --json");
    let status = json_of(&r, "channels status --json");
    assert!(status.to_string().contains("discord"), "{status}");

    // `openclaw message send --channel discord` sends from the CLI process itself (the
    // @openclaw/discord plugin's outbound `deliveryMode` is "direct"; no gateway is asked),
    // so what reaches a gateway is its `send` method, which the CLI calls as below.
    let r = cli
        .run(
            &gw,
            state.path(),
            &[
                "gateway",
                "call",
                "send",
                "--json",
                "--params",
                r#"{"channel": "discord", "to": "user:7", "message": "no model turn", "idempotencyKey": "cli-send-1"}"#,
            ],
        )
        .await;
    check(&r, "gateway call send");
    let sent = json_of(&r, "gateway call send");
    assert_eq!(sent["channel"], "discord", "{sent}");
    assert!(
        discord
            .messages()
            .iter()
            .any(|m| m.body["content"] == "no model turn"),
        "{:#?}",
        discord.messages()
    );
    let dns = std::fs::read_to_string(state.path().join("dns-guard.log")).unwrap_or_default();
    if !dns.is_empty() {
        eprintln!("the DNS guard refused these lookups (no traffic left the machine):\n{dns}");
    }
}
