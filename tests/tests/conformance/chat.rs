//! ChatService: conversation continuity and idempotency.

use clawplane_proto::v1::{ChatServiceSendRequest, MessageRole, RunOrigin, RunState};
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn continuity_across_turns() {
    let gw = Gateway::start().await;
    let first = gw.send("cont", "a").await;
    assert_eq!(
        first.session_key,
        key("cont"),
        "bare key is scoped to agent main"
    );
    assert_eq!(
        first.state(),
        RunState::Queued,
        "a new run is answered QUEUED"
    );
    assert!(!first.duplicate);
    assert!(!first.run_id.is_empty());
    let run1 = gw.wait_run(&first.run_id).await;
    assert_eq!(run1.state(), RunState::Succeeded, "{run1:?}");
    assert_eq!(run1.reply_text, "You said: a (turn 1)");
    assert_eq!(run1.origin(), RunOrigin::Chat);
    assert_eq!(run1.session_key, key("cont"));
    assert_eq!(run1.attempt, 1);
    assert_eq!(run1.name, format!("runs/{}", run1.run_id));

    let second = gw.send(&key("cont"), "b").await;
    assert_eq!(second.session_key, key("cont"), "full key used verbatim");
    let run2 = gw.wait_run(&second.run_id).await;
    assert_eq!(run2.state(), RunState::Succeeded, "{run2:?}");
    assert_eq!(run2.reply_text, "You said: b (turn 2)");

    let hist = gw.history("cont").await;
    let got: Vec<(u64, MessageRole, &str, &str)> = hist
        .messages
        .iter()
        .map(|m| (m.index, m.role(), m.text.as_str(), m.run_id.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, MessageRole::User, "a", first.run_id.as_str()),
            (
                2,
                MessageRole::Assistant,
                "You said: a (turn 1)",
                first.run_id.as_str()
            ),
            (3, MessageRole::User, "b", second.run_id.as_str()),
            (
                4,
                MessageRole::Assistant,
                "You said: b (turn 2)",
                second.run_id.as_str()
            ),
        ]
    );
    assert!(hist.next_page_token.is_empty());
    let session = hist.session.expect("History returns the session");
    assert_eq!(session.session_key, key("cont"));
    assert_eq!(session.turn_count, 2);
    assert_eq!(session.message_count, 4);
    assert!(session.active_run_ids.is_empty());
}

#[tokio::test]
async fn idempotency_duplicate_conflict_and_restart() {
    let mut gw = Gateway::start().await;
    let k = "idem-key.1:A_b";
    let req = ChatServiceSendRequest {
        session_key: "idem".into(),
        message: "hello".into(),
        idempotency_key: k.into(),
        ..Default::default()
    };
    let first = gw.send_req(req.clone()).await;
    assert_eq!(first.run_id, k, "run id = idempotency key");
    assert!(!first.duplicate);

    let again = gw.send_req(req.clone()).await;
    assert_eq!(again.run_id, k);
    assert!(again.duplicate, "same key + same content is a duplicate");
    assert_eq!(again.session_key, key("idem"));

    let conflict = expect_err(
        gw.chat()
            .await
            .send(ChatServiceSendRequest {
                message: "something else".into(),
                ..req.clone()
            })
            .await,
        "Send with a reused key and different content",
    );
    let md = assert_error(&conflict, Code::AlreadyExists, "IDEMPOTENCY_KEY_CONFLICT");
    assert_eq!(
        md.get("idempotencyKey").map(String::as_str),
        Some(k),
        "{md:?}"
    );
    assert_eq!(md.get("runId").map(String::as_str), Some(k), "{md:?}");

    let run = gw.wait_run(k).await;
    assert_eq!(run.state(), RunState::Succeeded);
    assert_eq!(run.reply_text, "You said: hello (turn 1)");
    assert_eq!(run.idempotency_key, k);

    let runs = gw.list_runs("idem").await;
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        vec![k],
        "exactly one run for the key"
    );

    gw.restart().await;

    let after = gw.send_req(req.clone()).await;
    assert_eq!(after.run_id, k);
    assert!(after.duplicate, "idempotency keys survive a restart");
    assert_eq!(
        after.state(),
        RunState::Succeeded,
        "state at the time of the answer"
    );
    let conflict = expect_err(
        gw.chat()
            .await
            .send(ChatServiceSendRequest {
                message: "something else".into(),
                ..req.clone()
            })
            .await,
        "conflicting Send after restart",
    );
    assert_error(&conflict, Code::AlreadyExists, "IDEMPOTENCY_KEY_CONFLICT");
    assert_eq!(
        gw.list_runs("idem").await.len(),
        1,
        "still one run after restart"
    );
    assert_eq!(gw.history("idem").await.messages.len(), 2);
}
