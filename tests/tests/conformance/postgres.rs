//! PostgreSQL as the store (`storage.postgres.url`, `serve --store`): the schema is created
//! on first start, state survives a restart, and a bad URL or an unreachable server stops the start with a clear error.
//! (The whole suite also runs on PostgreSQL: `CLAWPLANE_TEST_STORE=postgres`.)

use clawplane_proto::v1::RunState;
use clawplane_testkit::PgServer;

use crate::harness::*;

fn on(url: &str) -> String {
    format!("{{ storage: {{ postgres: {{ url: '{url}' }} }} }}")
}

#[tokio::test]
async fn state_lives_in_postgres_and_survives_a_restart() {
    let url = PgServer::shared().database();
    let mut gw = Gateway::start_with(&on(&url)).await;
    assert_eq!(gw.store_url.as_deref(), Some(url.as_str()));
    let sent = gw.send("pg", "hello postgres").await;
    let run = gw.wait_run(&sent.run_id).await;
    assert_eq!(run.state(), RunState::Succeeded);
    assert!(
        !gw.data_dir.join("clawplane.redb").exists(),
        "no redb file next to a PostgreSQL store"
    );
    // The rows are in the database itself.
    let dump = PgServer::shared().dump(&url);
    assert!(
        dump.contains(&sent.run_id),
        "the run is a row of the database"
    );

    let head = gw.status().await.last_event_seq;
    gw.restart().await;
    assert_eq!(gw.get_run(&sent.run_id).await.reply_text, run.reply_text);
    assert_eq!(
        gw.status().await.last_event_seq,
        head,
        "the feed's head is stored"
    );
    let again = gw.send("pg", "still here?").await;
    let run2 = gw.wait_run(&again.run_id).await;
    assert_eq!(run2.reply_text, "You said: still here? (turn 2)");
}

#[tokio::test]
async fn bad_store_urls_stop_the_start() {
    let stderr = GatewayBuilder::default()
        .arg("--store")
        .arg("mysql://nope/db")
        .refuses_to_start()
        .await;
    assert!(stderr.contains("storage.postgres.url"), "{stderr}");
    assert!(stderr.contains("postgres://"), "{stderr}");

    // Nothing listens on port 1 of 127.0.0.1.
    let stderr = GatewayBuilder::default()
        .arg("--store")
        .arg("postgres://clawplane@127.0.0.1:1/none?connect_timeout=5")
        .refuses_to_start()
        .await;
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
}

/// A PostgreSQL restart (fast shutdown: every connection is closed) costs the gateway the
/// writes attempted while the server is down, not its life: the writer reconnects, pooled
/// read connections are replaced, and acknowledged state is all there.
#[tokio::test]
async fn the_gateway_carries_on_after_postgres_restarts() {
    use clawplane_proto::v1::ChatServiceSendRequest;
    use std::time::{Duration, Instant};
    let pg = PgServer::start();
    let url = pg.database();
    let gw = Gateway::start_with(&on(&url)).await;
    let first = gw.send("pg", "before the restart").await;
    assert_eq!(
        gw.wait_run(&first.run_id).await.state(),
        RunState::Succeeded
    );

    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut chat = gw.chat().await;
    let after = loop {
        let sent = chat
            .send(ChatServiceSendRequest {
                session_key: "pg".into(),
                message: "after the restart".into(),
                idempotency_key: "after-restart".into(),
                ..Default::default()
            })
            .await;
        match sent {
            Ok(r) => break r.into_inner(),
            Err(s) => {
                assert!(
                    Instant::now() < deadline,
                    "no accept within 30 s of the restart: {s:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let run = gw.wait_run(&after.run_id).await;
    assert_eq!(run.reply_text, "You said: after the restart (turn 2)");
    assert_eq!(gw.get_run(&first.run_id).await.state(), RunState::Succeeded);
    assert!(
        gw.stderr()
            .contains("the PostgreSQL writer connection is back"),
        "the writer reconnected: {}",
        gw.stderr()
    );
}
