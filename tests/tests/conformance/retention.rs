//! Retention: finished runs expire with their idempotency keys; recent and running ones stay.

use std::time::{Duration, Instant};

use clawplane_proto::v1::{AgentServiceRunRequest, GetRunRequest, RunState};
use tonic::Code;

use crate::harness::*;

fn run_req(session: &str, key: &str, message: &str) -> AgentServiceRunRequest {
    AgentServiceRunRequest {
        session_key: session.into(),
        idempotency_key: key.into(),
        message: message.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn finished_runs_expire_with_their_keys_while_recent_and_running_ones_stay() {
    let age = Duration::from_secs(3);
    let gw =
        Gateway::start_with("{ retention: { runs: '3s', pruneEvery: '100ms', pruneBatch: 1 } }")
            .await;
    let mut agent = gw.agent().await;
    // Accepted first and still running long past the age: never pruned.
    let running = agent
        .run(run_req("ret-running", "ret-running", "/sleep 20000 busy"))
        .await
        .expect("Run running")
        .into_inner();
    let old = agent
        .run(run_req("ret-old", "ret-old", "first"))
        .await
        .expect("Run old")
        .into_inner();
    let old_run = gw.wait_run(&old.run_id).await;
    assert_eq!(old_run.state(), RunState::Succeeded, "{old_run:?}");
    // Finished well after the old run, so it is still younger than the age when the old
    // one goes (pruning lags eligibility by about one 100 ms interval).
    tokio::time::sleep(age / 2).await;
    let recent = agent
        .run(run_req("ret-recent", "ret-recent", "second"))
        .await
        .expect("Run recent")
        .into_inner();
    gw.wait_run(&recent.run_id).await;

    // The marker: GetRun of the old run answers NOT_FOUND.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match agent
            .get_run(GetRunRequest {
                run_id: old.run_id.clone(),
                ..Default::default()
            })
            .await
        {
            Err(s) if s.code() == Code::NotFound => break,
            Err(s) => panic!("GetRun old: {s:?}"),
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the finished run older than retention.runs was not pruned within 30 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let listed: Vec<String> = gw
        .list_runs("")
        .await
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert!(!listed.contains(&old.run_id), "{listed:?}");
    assert!(
        listed.contains(&recent.run_id),
        "the recent run stays: {listed:?}"
    );
    assert!(
        listed.contains(&running.run_id),
        "the running run stays: {listed:?}"
    );
    assert_eq!(gw.get_run(&running.run_id).await.state(), RunState::Running);
    assert_eq!(
        gw.get_run(&recent.run_id).await.state(),
        RunState::Succeeded
    );

    // The key went with its run: a different request under it is a new run, not a
    // conflict and not the old answer.
    let again = agent
        .run(run_req("ret-old", "ret-old", "a different message"))
        .await
        .expect("Run with the expired key")
        .into_inner();
    assert!(!again.duplicate, "{again:?}");
    assert_ne!(again.run_id, old.run_id, "a new run, with an id of its own");
    let again_run = gw.wait_run(&again.run_id).await;
    assert_eq!(again_run.message, "a different message");
    assert_eq!(again_run.state(), RunState::Succeeded);
    // The recent run's key still answers its run.
    let dup = agent
        .run(run_req("ret-recent", "ret-recent", "second"))
        .await
        .expect("retry of the recent run")
        .into_inner();
    assert!(dup.duplicate, "{dup:?}");
}

#[tokio::test]
async fn retention_durations_are_checked_at_start() {
    let err = refuses_to_start("{ retention: { runs: 'a while' } }").await;
    assert!(err.contains("retention.runs"), "{err}");
}
