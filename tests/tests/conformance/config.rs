//! Config file, `${VAR}` substitution, env overrides, unknown keys, `config validate`, the
//! default config path, shutdown settings.

use clawplane_proto::v1::{EventKind, RunState};
use std::path::Path;

use crate::harness::*;

#[tokio::test]
async fn config_env_substitution_is_per_string_value() {
    let gw = Gateway::builder()
        .config(
            "{ // ${NOT_SET_ANYWHERE} in a comment is not looked at\n\
             session: { dmScope: '${CP_TEST_SCOPE}' }, gateway: { mode: '$${LITERAL}' } }",
        )
        .env("CP_TEST_SCOPE", "per-channel-peer")
        .start()
        .await;
    assert_eq!(gw.status().await.dm_scope, "per-channel-peer");
    let err = refuses_to_start("{ hooks: { enabled: true, token: '${CP_TEST_NOT_SET}' } }").await;
    assert!(
        err.contains("config key hooks.token: ${CP_TEST_NOT_SET} is not set"),
        "a missing variable names the key:\n{err}"
    );
}

#[tokio::test]
async fn unknown_keys_and_wrong_types_stop_the_start_with_their_path() {
    let err = refuses_to_start("{ session: { dm_scope: 'main' }, gatway: {} }").await;
    assert!(
        err.contains("session.dm_scope (did you mean session.dmScope?)")
            && err.contains("gatway (did you mean gateway?)"),
        "{err}"
    );
    let err = refuses_to_start("{ channels: { discord: { token: 'x', tokn: 'y' } } }").await;
    assert!(
        err.contains("channels.discord.tokn (did you mean channels.discord.token?)"),
        "{err}"
    );
    let err = refuses_to_start("{ agents: { list: [ { id: 'a', default: 'yes' } ] } }").await;
    assert!(err.contains("config key agents.list[0].default:"), "{err}");
}

/// `clawplane config validate` with this file (or none) and data dir.
fn validate(file: Option<&Path>, data_dir: &Path) -> (bool, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["config", "validate", "--data-dir"])
        .arg(data_dir)
        .env_remove("CLAWPLANE_CONFIG")
        .env_remove("CLAWPLANE_DATA_DIR");
    if let Some(f) = file {
        cmd.arg("--config").arg(f);
    }
    let out = cmd.output().expect("run clawplane config validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn config_validate_checks_a_file_as_a_start_would() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json5");
    std::fs::write(
        &file,
        "{ hooks: { enabled: true, token: 'h' }, session: { dmScope: 'main' } }",
    )
    .unwrap();
    let (ok, out) = validate(Some(&file), dir.path());
    assert!(ok && out.starts_with("ok: "), "{out}");
    // What only compiling can find (a template) is found without starting, with its key.
    std::fs::write(
        &file,
        "{ hooks: { enabled: true, token: 'h', mappings: [ { messageTemplate: '{{ x' } ] } }",
    )
    .unwrap();
    let (ok, out) = validate(Some(&file), dir.path());
    assert!(
        !ok && out.contains("hooks.mappings[0].messageTemplate"),
        "{out}"
    );
    std::fs::write(&file, "{ events: { liveBuffer: 0 } }").unwrap();
    let (ok, out) = validate(Some(&file), dir.path());
    assert!(!ok && out.contains("events.liveBuffer"), "{out}");
    // No file named and none in the data dir.
    let (ok, out) = validate(None, dir.path());
    assert!(!ok && out.contains("clawplane.json5"), "{out}");
    assert!(
        !dir.path().join("clawplane.redb").exists() && !dir.path().join("gateway.token").exists(),
        "validate opens no store and writes no token"
    );
}

#[tokio::test]
async fn the_data_dir_config_is_read_when_no_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clawplane.json5"),
        "{ session: { dmScope: 'nope' } }",
    )
    .unwrap();
    let (ok, out) = validate(None, dir.path());
    assert!(!ok && out.contains("session.dmScope"), "{out}");
    let out = tokio::time::timeout(
        START_TIMEOUT,
        tokio::process::Command::new(BIN)
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(dir.path())
            .env_remove("CLAWPLANE_CONFIG")
            .env("HOME", dir.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("serve with a bad default config exits")
    .expect("spawn serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("session.dmScope"),
        "serve reads <data-dir>/clawplane.json5:\n{err}"
    );
}

#[tokio::test]
async fn env_overrides_config() {
    let gw = Gateway::builder()
        .config("{ session: { dmScope: 'main' } }")
        .env("CLAWPLANE_SESSION__DM_SCOPE", "per-peer")
        .start()
        .await;
    assert_eq!(
        gw.status().await.dm_scope,
        "per-peer",
        "CLAWPLANE_<SECTION>__<KEY> overrides the file"
    );
}

#[tokio::test]
async fn gateway_token_from_env() {
    let gw = Gateway::builder()
        .client_token("token-from-env-1234")
        .env("CLAWPLANE_GATEWAY_TOKEN", "token-from-env-1234")
        .start()
        .await;
    gw.status().await;
    assert!(
        !gw.data_dir.join("gateway.token").exists(),
        "no token is generated when one is configured"
    );
}

/// A migrating user's environment: OpenClaw's `OPENCLAW_GATEWAY_TOKEN` and
/// `OPENCLAW_CONFIG_PATH` stand in for ours when ours are not set (`OPENCLAW_GATEWAY_PORT`
/// too: the harness always passes `--port`, so the config crate's tests cover that one).
#[tokio::test]
async fn openclaws_environment_variables_are_fallbacks() {
    let gw = Gateway::builder()
        .client_token("token-from-openclaw-env-1234")
        .env("OPENCLAW_GATEWAY_TOKEN", "token-from-openclaw-env-1234")
        .start()
        .await;
    gw.status().await;
    assert!(
        !gw.data_dir.join("gateway.token").exists(),
        "no token is generated when OpenClaw's variable names one"
    );
    // The CLI finds the token in the same variable.
    let out = gw
        .cli_without_token()
        .arg("status")
        .env("OPENCLAW_GATEWAY_TOKEN", "token-from-openclaw-env-1234")
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Ours wins over theirs.
    let gw = Gateway::builder()
        .client_token("ours-wins-1234")
        .env("CLAWPLANE_GATEWAY_TOKEN", "ours-wins-1234")
        .env("OPENCLAW_GATEWAY_TOKEN", "theirs-loses-1234")
        .start()
        .await;
    gw.status().await;

    // OPENCLAW_CONFIG_PATH names the file when no --config does: a bad one refuses the
    // start, naming its key.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openclaw.json");
    std::fs::write(&file, "{ gateway: { auth: { mode: 'none' } } }").expect("write");
    let stderr = Gateway::builder()
        .env("OPENCLAW_CONFIG_PATH", file.to_str().expect("utf-8 path"))
        .without_config_flag()
        .refuses_to_start()
        .await;
    assert!(stderr.contains("gateway.auth.mode"), "{stderr}");
}

/// `gateway.auth.mode` other than `token` is refused at start with the key and what to do.
#[tokio::test]
async fn auth_modes_other_than_token_are_refused_clearly() {
    for mode in ["password", "none", "trusted-proxy"] {
        let stderr = refuses_to_start(&format!(
            "{{ gateway: {{ auth: {{ mode: '{mode}', token: 'some-token-1234' }} }} }}"
        ))
        .await;
        assert!(stderr.contains("gateway.auth.mode"), "{mode}: {stderr}");
        assert!(stderr.contains("token"), "{mode}: {stderr}");
    }
    let gw = Gateway::start_with("{ gateway: { auth: { mode: 'token' } } }").await;
    gw.status().await;
}

#[tokio::test]
async fn shutdown_grace_expires_then_exits_zero() {
    let mut gw = Gateway::start_with("{ gateway: { shutdownGraceMs: 300 } }").await;
    let id = gw.send("grace", "/sleep 60000 long").await.run_id;
    let mut feed = gw.watch_after(0, run_filter(&id, &[EventKind::Run])).await;
    feed.collect_until(|e| is_run_event(e, &id, RunState::Running))
        .await;
    gw.sigterm();
    let status = gw.wait_exit().await;
    assert!(
        status.success(),
        "exit 0 after the grace period, got {status:?}"
    );
}
