//! Config file, `${VAR}` substitution, env overrides, unknown keys, shutdown settings.

use clawplane_proto::v1::{EventKind, RunState};

use crate::harness::*;

#[tokio::test]
async fn config_env_substitution_and_unknown_key_warning() {
    let gw = Gateway::builder()
        .config("{ session: { dmScope: '${CP_TEST_SCOPE}' }, bogusTopLevelKey: 1 }")
        .env("CP_TEST_SCOPE", "per-channel-peer")
        .start()
        .await;
    assert_eq!(gw.status().await.dm_scope, "per-channel-peer");
    let log = gw.stderr();
    assert!(
        log.contains("bogusTopLevelKey"),
        "unknown config keys are warned about on stderr:\n{log}"
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
