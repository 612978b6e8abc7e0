//! Bad input is refused with structured errors and changes nothing.

use clawplane_proto::v1::{
    AgentServiceRunRequest, CancelRunRequest, ChatServiceSendRequest, GatewayServiceWakeRequest,
    GetRunRequest, RunState, SessionServiceListRequest, SessionServiceSendRequest,
};
use tonic::Code;

use crate::harness::*;

const MAX_MESSAGE: usize = 256 * 1024;

#[tokio::test]
async fn bad_input_is_rejected_and_writes_nothing() {
    let gw = Gateway::start().await;
    // Some prior state, so "unchanged" is not trivially "empty".
    let id = gw.send("existing", "hello").await.run_id;
    gw.wait_run(&id).await;

    let list_sessions = || async {
        gw.sessions()
            .await
            .list(SessionServiceListRequest::default())
            .await
            .expect("SessionService/List")
            .into_inner()
            .sessions
    };
    let sessions_before = list_sessions().await;
    let head_before = gw.status().await.last_event_seq;

    let mut chat = gw.chat().await;
    let send = |session: &str, message: String, key: &str| ChatServiceSendRequest {
        session_key: session.into(),
        message,
        idempotency_key: key.into(),
        ..Default::default()
    };

    let empty = expect_err(
        chat.send(send("bad-empty", String::new(), "")).await,
        "empty message",
    );
    assert_invalid_field(&empty, "message");

    let big = expect_err(
        chat.send(send("bad-big", "x".repeat(MAX_MESSAGE + 1), ""))
            .await,
        "message of 256 KiB + 1",
    );
    assert_invalid_field(&big, "message");

    let bad_key = expect_err(
        chat.send(send("bad-key", "hi".into(), "bad key!")).await,
        "malformed idempotency key",
    );
    assert_invalid_field(&bad_key, "idempotencyKey");

    let long_key = expect_err(
        chat.send(send("bad-key", "hi".into(), &"k".repeat(257)))
            .await,
        "idempotency key of 257 characters",
    );
    assert_invalid_field(&long_key, "idempotencyKey");

    let mut sessions = gw.sessions().await;
    let unknown = expect_err(
        sessions
            .send(SessionServiceSendRequest {
                session_key: "ghost".into(),
                message: "hi".into(),
                ..Default::default()
            })
            .await,
        "SessionService/Send to an unknown session",
    );
    let md = assert_error(&unknown, Code::NotFound, "SESSION_NOT_FOUND");
    assert_eq!(
        md.get("sessionKey").map(String::as_str),
        Some("agent:main:ghost"),
        "{md:?}"
    );

    let sess_empty = expect_err(
        sessions
            .send(SessionServiceSendRequest {
                session_key: "existing".into(),
                message: String::new(),
                ..Default::default()
            })
            .await,
        "SessionService/Send with empty message",
    );
    assert_invalid_field(&sess_empty, "message");

    let mut agent = gw.agent().await;
    let agent_empty = expect_err(
        agent
            .run(AgentServiceRunRequest {
                session_key: "bad-agent".into(),
                ..Default::default()
            })
            .await,
        "AgentService/Run with empty message",
    );
    assert_invalid_field(&agent_empty, "message");

    let agent_key = expect_err(
        agent
            .run(AgentServiceRunRequest {
                session_key: "bad-agent".into(),
                message: "hi".into(),
                idempotency_key: "no/slashes".into(),
                ..Default::default()
            })
            .await,
        "AgentService/Run with a malformed key",
    );
    assert_invalid_field(&agent_key, "idempotencyKey");

    let no_run = expect_err(
        agent
            .get_run(GetRunRequest {
                run_id: "no-such-run".into(),
                ..Default::default()
            })
            .await,
        "GetRun of an unknown run",
    );
    let md = assert_error(&no_run, Code::NotFound, "RUN_NOT_FOUND");
    assert_eq!(md.get("runId").map(String::as_str), Some("no-such-run"));

    let no_cancel = expect_err(
        agent
            .cancel_run(CancelRunRequest {
                run_id: "no-such-run".into(),
            })
            .await,
        "CancelRun of an unknown run",
    );
    assert_error(&no_cancel, Code::NotFound, "RUN_NOT_FOUND");

    let empty_wake = expect_err(
        gw.gateway()
            .await
            .wake(GatewayServiceWakeRequest {
                text: "   ".into(),
                ..Default::default()
            })
            .await,
        "Wake with blank text",
    );
    assert_invalid_field(&empty_wake, "text");

    // Nothing was written.
    assert_eq!(list_sessions().await, sessions_before, "sessions unchanged");
    assert_eq!(
        gw.status().await.last_event_seq,
        head_before,
        "no event was written"
    );
    for s in ["bad-empty", "bad-big", "bad-key", "bad-agent", "ghost"] {
        assert!(gw.list_runs(s).await.is_empty(), "no run for {s}");
    }

    // The limits are inclusive: exactly 256 KiB and a 256-character key are fine.
    let ok = gw
        .send_req(send("edge", "y".repeat(MAX_MESSAGE), &"k".repeat(256)))
        .await;
    assert_eq!(
        gw.get_run(&ok.run_id).await.idempotency_key,
        "k".repeat(256)
    );
    assert_eq!(gw.wait_run(&ok.run_id).await.state(), RunState::Succeeded);
    // The agent's main session is created on demand by SessionService/Send.
    let main = sessions
        .send(SessionServiceSendRequest {
            session_key: "main".into(),
            message: "hi main".into(),
            ..Default::default()
        })
        .await
        .expect("SessionService/Send to main is allowed")
        .into_inner();
    assert_eq!(main.session_key, "agent:main:main");
}
