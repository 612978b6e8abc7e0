//! The `clawplane` client subcommands (crate clawplane-cli over clawplane-sdk), run as a real
//! process against a real gateway: output, exit codes, error hints and token discovery.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::*;

/// What a CLI invocation produced.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "CLI should succeed: {self:#?}");
        &self.stdout
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

/// Runs `cmd args...` to completion (never blocking the test runtime).
async fn exec(mut cmd: std::process::Command, args: &[&str]) -> Out {
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let output = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("CLI {args:?} did not finish within {PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("cannot run the CLI {args:?}: {e}"));
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The CLI with `--token` preset (the harness's `cli()`).
async fn cli(gw: &Gateway, args: &[&str]) -> Out {
    exec(gw.cli(), args).await
}

/// The CLI with `--url` but no token and no `CLAWPLANE_*` environment; `HOME` is the data
/// dir, so `~/.clawplane/gateway.token` does not exist.
fn bare_cli(gw: &Gateway) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CLAWPLANE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HOME", &gw.data_dir).arg("--url").arg(&gw.url);
    cmd
}

#[tokio::test]
async fn agent_streams_the_reply_and_continues_the_session() {
    let gw = Gateway::start().await;
    let first = cli(&gw, &["agent", "-m", "hi"]).await;
    assert_eq!(first.ok(), "You said: hi (turn 1)\n", "{first:#?}");
    let second = cli(&gw, &["agent", "-m", "hi"]).await;
    assert_eq!(
        second.ok(),
        "You said: hi (turn 2)\n",
        "same (main) session: {second:#?}"
    );
    // Another session starts at turn 1; the global flags also work after the subcommand.
    let mut cmd = bare_cli(&gw);
    cmd.args(["agent", "-m", "yo", "--session-key", "support", "--token"])
        .arg(&gw.token);
    let other = exec(cmd, &[]).await;
    assert_eq!(other.ok(), "You said: yo (turn 1)\n", "{other:#?}");
    let runs = gw.list_runs(&key("support")).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].reply_text, "You said: yo (turn 1)");
}

#[tokio::test]
async fn agent_json_prints_the_final_run() {
    let gw = Gateway::start().await;
    let out = cli(&gw, &["agent", "-m", "hi", "--json"]).await;
    out.ok();
    assert!(
        out.stdout.contains(r#""state":"RUN_STATE_SUCCEEDED""#),
        "canonical proto3 JSON: {out:#?}"
    );
    let run = out.json();
    assert_eq!(run["replyText"], "You said: hi (turn 1)");
    assert_eq!(run["sessionKey"], "agent:main:main");
    let run_id = run["runId"].as_str().expect("runId").to_string();
    assert!(!run_id.is_empty());
    let stored = gw.get_run(&run_id).await;
    assert_eq!(stored.reply_text, "You said: hi (turn 1)");
}

#[tokio::test]
async fn agent_idempotency_key_returns_the_same_run() {
    let gw = Gateway::start().await;
    let a = cli(
        &gw,
        &["agent", "-m", "hi", "--idempotency-key", "cli-k1", "--json"],
    )
    .await;
    let b = cli(&gw, &["agent", "-m", "hi", "--idempotency-key", "cli-k1"]).await;
    let id = a.json()["runId"].as_str().expect("runId").to_string();
    assert_eq!(gw.get_run(&id).await.idempotency_key, "cli-k1", "{a:#?}");
    // The duplicate already finished: its reply is printed from the stored run.
    assert_eq!(b.ok(), "You said: hi (turn 1)\n", "{b:#?}");
    assert_eq!(gw.list_runs(&key("main")).await.len(), 1);
    // Same key, different message: ALREADY_EXISTS with a hint about the key.
    let c = cli(
        &gw,
        &["agent", "-m", "other", "--idempotency-key", "cli-k1"],
    )
    .await;
    assert_eq!(c.code, Some(1), "{c:#?}");
    assert!(c.stderr.contains("error:"), "{c:#?}");
    assert!(c.stderr.contains("hint:"), "{c:#?}");
}

#[tokio::test]
async fn agent_failed_run_exits_1_with_the_error() {
    let gw = Gateway::start().await;
    let out = cli(&gw, &["agent", "-m", "/fail"]).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("error:"), "{out:#?}");
    assert!(out.stderr.contains("FAILED"), "{out:#?}");
    assert!(out.stderr.contains("MODEL_FAILED"), "{out:#?}");
    let json = cli(&gw, &["agent", "-m", "please /fail", "--json"]).await;
    assert_eq!(json.code, Some(1), "{json:#?}");
    assert_eq!(json.json()["state"], "RUN_STATE_FAILED");
    assert_eq!(json.json()["error"]["reason"], "MODEL_FAILED");
}

#[tokio::test]
async fn bad_input_is_a_usage_error_with_the_field() {
    let gw = Gateway::start().await;
    let head = gw.status().await.last_event_seq;
    let out = cli(&gw, &["agent", "-m", ""]).await;
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("message"), "names the field: {out:#?}");
    let status = gw.status().await;
    assert_eq!(status.last_event_seq, head, "bad input writes nothing");
}

#[tokio::test]
async fn wrong_or_missing_token_exits_with_a_token_hint() {
    let gw = Gateway::start().await;
    let mut cmd = bare_cli(&gw);
    cmd.args(["--token", "not-the-token"]);
    let out = exec(cmd, &["status"]).await;
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.starts_with("error: "), "{out:#?}");
    let hint = out
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint line: {out:#?}"));
    assert!(hint.contains("--token"), "{hint}");
    assert!(hint.contains("CLAWPLANE_TOKEN"), "{hint}");
    assert!(hint.contains("gateway.token"), "{hint}");
    assert!(out.stdout.is_empty(), "{out:#?}");

    // No token anywhere (HOME has no .clawplane): TOKEN_MISSING, same kind of hint.
    let out = exec(bare_cli(&gw), &["agent", "-m", "hi"]).await;
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("hint: "), "{out:#?}");
    assert!(out.stderr.contains("token"), "{out:#?}");
}

#[tokio::test]
async fn token_is_discovered_from_the_data_dir() {
    let gw = Gateway::start_without_token().await;
    assert!(gw.data_dir.join("gateway.token").exists());
    let mut cmd = bare_cli(&gw);
    cmd.env("CLAWPLANE_DATA_DIR", &gw.data_dir);
    let out = exec(cmd, &["agent", "-m", "hi"]).await;
    assert_eq!(out.ok(), "You said: hi (turn 1)\n", "{out:#?}");

    // --data-dir works the same.
    let mut cmd = bare_cli(&gw);
    cmd.arg("--data-dir").arg(&gw.data_dir);
    let out = exec(cmd, &["status", "--json"]).await;
    out.ok();
    assert_eq!(out.json()["defaultAgentId"], "main", "{out:#?}");

    // And ~/.clawplane/gateway.token via HOME.
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join(".clawplane")).expect("mkdir");
    std::fs::write(
        home.path().join(".clawplane/gateway.token"),
        format!("{}\n", gw.token),
    )
    .expect("write token");
    let mut cmd = bare_cli(&gw);
    cmd.env("HOME", home.path());
    let out = exec(cmd, &["status"]).await;
    assert!(out.ok().contains("builtin/echo"), "{out:#?}");
}

#[tokio::test]
async fn unreachable_gateway_says_how_to_start_it() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cmd = std::process::Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CLAWPLANE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("CLAWPLANE_URL", format!("http://127.0.0.1:{port}"))
        .env("CLAWPLANE_TOKEN", "x");
    let out = exec(cmd, &["status"]).await;
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("not reachable"), "{out:#?}");
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "{out:#?}"
    );
    assert!(out.stderr.contains("clawplane serve"), "{out:#?}");
}

#[tokio::test]
async fn sessions_runs_and_logs_show_the_run() {
    let gw = Gateway::start().await;
    let run = cli(&gw, &["agent", "-m", "hi", "--json"]).await.json();
    let run_id = run["runId"].as_str().expect("runId").to_string();

    let list = cli(&gw, &["sessions", "list"]).await;
    assert!(list.ok().contains("agent:main:main"), "{list:#?}");
    let list = cli(&gw, &["sessions", "list", "--json"]).await.json();
    assert_eq!(list["sessions"][0]["sessionKey"], "agent:main:main");

    let show = cli(&gw, &["sessions", "show", "main"]).await;
    assert!(show.ok().contains("user: hi"), "{show:#?}");
    assert!(show.stdout.contains("You said: hi (turn 1)"), "{show:#?}");
    let show = cli(&gw, &["sessions", "show", "main", "--json"])
        .await
        .json();
    assert_eq!(show["messages"].as_array().map(Vec::len), Some(2), "{show}");

    let get = cli(&gw, &["runs", "get", &run_id]).await;
    assert!(get.ok().contains(&run_id), "{get:#?}");
    assert!(get.stdout.contains("SUCCEEDED"), "{get:#?}");
    let get = cli(&gw, &["runs", "get", &run_id, "--json"]).await.json();
    assert_eq!(get["runId"], run_id.as_str());
    assert_eq!(get["state"], "RUN_STATE_SUCCEEDED");
    let wait = cli(&gw, &["runs", "wait", &run_id, "--json"]).await;
    assert_eq!(wait.json()["state"], "RUN_STATE_SUCCEEDED", "{wait:#?}");
    assert_eq!(wait.code, Some(0));
    let missing = cli(&gw, &["runs", "get", "no-such-run"]).await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("hint:"), "{missing:#?}");

    let logs = cli(&gw, &["logs", "--after", "0"]).await;
    let text = logs.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "{logs:#?}");
    let mut last = 0u64;
    for line in &lines {
        let seq: u64 = line
            .split(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("line does not start with a seq: {line:?}"));
        assert!(seq > last, "increasing seqs: {lines:#?}");
        last = seq;
    }
    let head = gw.status().await.last_event_seq;
    assert_eq!(last, head, "the backlog ends at the head: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!(" run agent:main:main {run_id} SUCCEEDED"))),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" delta ") && l.contains(&run_id)),
        "{lines:#?}"
    );

    // --run narrows it; --json prints canonical Event JSON per line.
    let logs = cli(&gw, &["logs", "--run", &run_id, "--json"]).await;
    let events: Vec<serde_json::Value> = logs
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["runId"] == run_id.as_str()),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "EVENT_KIND_RUN" && e["run"]["state"] == "RUN_STATE_SUCCEEDED"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn sessions_send_and_reset() {
    let gw = Gateway::start().await;
    cli(&gw, &["agent", "-m", "one"]).await.ok();
    let sent = cli(&gw, &["sessions", "send", "main", "-m", "two"]).await;
    assert_eq!(sent.ok(), "You said: two (turn 2)\n", "{sent:#?}");
    let missing = cli(&gw, &["sessions", "send", "nosuch", "-m", "x"]).await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("hint:"), "{missing:#?}");
    let reset = cli(&gw, &["sessions", "reset", "main"]).await;
    assert!(reset.ok().contains("agent:main:main"), "{reset:#?}");
    let again = cli(&gw, &["agent", "-m", "three"]).await;
    assert_eq!(again.ok(), "You said: three (turn 1)\n", "{again:#?}");
}

#[tokio::test]
async fn no_wait_then_runs_wait_and_cancel() {
    let gw = Gateway::start().await;
    let out = cli(&gw, &["agent", "-m", "/sleep 20000 slow", "--no-wait"]).await;
    let line = out.ok().trim().to_string();
    let (run_id, session) = line
        .split_once('\t')
        .unwrap_or_else(|| panic!("expected `<run id>\\t<session key>`: {out:#?}"));
    assert_eq!(session, "agent:main:main");
    let run_id = run_id.to_string();

    let wait = cli(&gw, &["runs", "wait", &run_id, "--timeout-ms", "200"]).await;
    assert_eq!(wait.code, Some(1), "not finished yet: {wait:#?}");
    assert!(wait.stderr.contains("still"), "{wait:#?}");

    let cancel = cli(&gw, &["runs", "cancel", &run_id]).await;
    assert!(cancel.ok().contains("CANCELLED"), "{cancel:#?}");
    let wait = cli(&gw, &["runs", "wait", &run_id, "--json"]).await;
    assert_eq!(wait.code, Some(1), "{wait:#?}");
    assert_eq!(wait.json()["state"], "RUN_STATE_CANCELLED");
}

#[tokio::test]
async fn logs_follow_prints_new_events() {
    let gw = Gateway::start().await;
    // Follow from the head seen now, so the run below is after the cursor however long the
    // follower takes to start.
    let head = gw.status().await.last_event_seq.to_string();
    let mut cmd = tokio::process::Command::from(gw.cli());
    cmd.args(["logs", "--follow", "--json", "--after", head.as_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn logs --follow");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let run = cli(&gw, &["agent", "-m", "hi", "--json"]).await.json();
    let run_id = run["runId"].as_str().expect("runId").to_string();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let e: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {line}"));
            let done = e["runId"] == run_id.as_str() && e["run"]["state"] == "RUN_STATE_SUCCEEDED";
            seen.push(e);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    assert_eq!(found, Ok(true), "follower output: {seen:#?}");
    let seqs: Vec<u64> = seen
        .iter()
        .map(|e| {
            e["seq"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| e["seq"].as_u64())
                .expect("seq")
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn wake_queues_and_reports() {
    let gw = Gateway::start().await;
    let out = cli(&gw, &["wake", "--text", "disk full"]).await;
    let text = out.ok();
    assert!(text.contains("QUEUED"), "{out:#?}");
    assert!(text.contains("agent:main:main"), "{out:#?}");
    assert!(
        text.contains("heartbeat run"),
        "mode now starts a run: {out:#?}"
    );

    let later = cli(
        &gw,
        &[
            "wake",
            "--text",
            "backup done",
            "--mode",
            "next-heartbeat",
            "--json",
        ],
    )
    .await;
    later.ok();
    let json = later.json();
    assert_eq!(json["outcome"], "WAKE_OUTCOME_QUEUED", "{later:#?}");
    assert_eq!(json["mode"], "WAKE_MODE_NEXT_HEARTBEAT", "{later:#?}");
    let again = cli(
        &gw,
        &[
            "wake",
            "--text",
            "backup done",
            "--mode",
            "next-heartbeat",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        again.json()["outcome"],
        "WAKE_OUTCOME_COALESCED",
        "{again:#?}"
    );
}

#[tokio::test]
async fn status_prints_human_and_json() {
    let gw = Gateway::start().await;
    let out = cli(&gw, &["status"]).await;
    let text = out.ok();
    assert!(text.contains(&gw.url), "{out:#?}");
    assert!(text.contains("agent:main:main"), "{out:#?}");
    let json = cli(&gw, &["status", "--json"]).await.json();
    assert_eq!(json["mainSessionKey"], "agent:main:main");
}
