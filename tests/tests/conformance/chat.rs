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
    let id = first.run_id.clone();
    assert_ne!(id, k, "the server names the run, not the key");
    assert!(!first.duplicate);

    let again = gw.send_req(req.clone()).await;
    assert_eq!(again.run_id, id);
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
    assert_eq!(
        md.get("runId").map(String::as_str),
        Some(id.as_str()),
        "{md:?}"
    );

    let run = gw.wait_run(&id).await;
    assert_eq!(run.state(), RunState::Succeeded);
    assert_eq!(run.reply_text, "You said: hello (turn 1)");
    assert_eq!(run.idempotency_key, k);

    let runs = gw.list_runs("idem").await;
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()],
        "exactly one run for the key"
    );

    gw.restart().await;

    let after = gw.send_req(req.clone()).await;
    assert_eq!(after.run_id, id);
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

/// Idempotency keys belong to the credential that presented them: the hooks token's key
/// equal to the gateway token's starts its own run, lookups by key find only the caller's
/// own run, and naming a run both ways is refused.
#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_caller() {
    use clawplane_proto::v1::{AgentServiceRunRequest, AgentServiceWaitRequest, GetRunRequest};
    let gw = Gateway::start_with("{ hooks: { enabled: true, token: 'hook-secret-1' } }").await;
    let key = "shared-key-1";
    let run = |message: &str| AgentServiceRunRequest {
        message: message.into(),
        idempotency_key: key.into(),
        ..Default::default()
    };
    let mine = gw
        .agent()
        .await
        .run(run("from the operator"))
        .await
        .expect("gateway-token run")
        .into_inner();
    let hooks = Token::bearer("hook-secret-1");
    let mut hook_agent = gw.agent_as(hooks.clone()).await;
    let theirs = hook_agent
        .run(run("from a hook, different input"))
        .await
        .expect("the hooks token's equal key is not a conflict")
        .into_inner();
    assert!(!theirs.duplicate);
    assert_ne!(theirs.run_id, mine.run_id, "two callers, two runs");

    let by_key = |token: Token| {
        let gw = &gw;
        async move {
            gw.agent_as(token)
                .await
                .get_run(GetRunRequest {
                    idempotency_key: key.into(),
                    ..Default::default()
                })
                .await
        }
    };
    let found = by_key(gw.auth()).await.expect("own key").into_inner();
    assert_eq!(found.run.unwrap().run_id, mine.run_id);
    let found = by_key(hooks.clone()).await.expect("own key").into_inner();
    assert_eq!(found.run.unwrap().run_id, theirs.run_id);

    let waited = hook_agent
        .wait(AgentServiceWaitRequest {
            idempotency_key: key.into(),
            timeout_ms: 10_000,
            ..Default::default()
        })
        .await
        .expect("Wait by key")
        .into_inner();
    assert!(waited.done);
    assert_eq!(waited.run.unwrap().run_id, theirs.run_id);

    let s = expect_err(
        hook_agent
            .get_run(GetRunRequest {
                idempotency_key: "never-used".into(),
                ..Default::default()
            })
            .await,
        "GetRun by an unknown key",
    );
    let md = assert_error(&s, Code::NotFound, "RUN_NOT_FOUND");
    assert_eq!(
        md.get("idempotencyKey").map(String::as_str),
        Some("never-used")
    );
    let s = expect_err(
        hook_agent
            .get_run(GetRunRequest {
                run_id: mine.run_id.clone(),
                idempotency_key: key.into(),
            })
            .await,
        "GetRun by id and key",
    );
    assert_invalid_field(&s, "idempotencyKey");
}
