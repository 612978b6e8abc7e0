//! Session routing and delivery routes: dmScope (default per-channel-peer), identity links,
//! refusing a delivery that has no route (NO_DELIVERY_ROUTE) unless bestEffortDeliver, and
//! the outcome every finished run carries.

use clawplane_proto::v1::{
    AgentServiceRunRequest, ChatServiceSendRequest, DeliveryStatus, RunState,
    SessionServiceResolveRequest, SessionServiceSendRequest,
};
use tonic::Code;

use crate::harness::*;

async fn resolve(gw: &Gateway, channel: &str, to: &str) -> String {
    gw.sessions()
        .await
        .resolve(SessionServiceResolveRequest {
            channel: channel.into(),
            to: to.into(),
            ..Default::default()
        })
        .await
        .expect("Resolve")
        .into_inner()
        .session_key
}

#[tokio::test]
async fn direct_messages_get_their_own_session_by_default() {
    let gw = Gateway::start().await;
    assert_eq!(gw.status().await.dm_scope, "per-channel-peer");
    // The RPC path: no session key, channel + to.
    let run = gw
        .agent()
        .await
        .run(AgentServiceRunRequest {
            message: "hi".into(),
            channel: "discord".into(),
            to: "user:123456".into(),
            ..Default::default()
        })
        .await
        .expect("Run")
        .into_inner();
    assert_eq!(run.session_key, "agent:main:discord:direct:123456");
    // The key as people write it after the target `user:<id>` is the same session.
    let again = gw
        .send("agent:main:discord:direct:user:123456", "same person")
        .await;
    assert_eq!(again.session_key, "agent:main:discord:direct:123456");
    assert_eq!(
        resolve(&gw, "discord", "<@123456>").await,
        "agent:main:discord:direct:123456",
        "a mention is the same peer"
    );
    assert_eq!(
        resolve(&gw, "discord", "987").await,
        "agent:main:discord:channel:987",
        "a bare Discord id is a channel"
    );
    assert_eq!(
        resolve(&gw, "whatsapp", "+15551234567").await,
        "agent:main:whatsapp:direct:15551234567"
    );
    assert_eq!(
        resolve(&gw, "telegram", "-100200").await,
        "agent:main:telegram:group:-100200"
    );
    let done = gw.wait_run(&run.run_id).await;
    assert_eq!(done.state(), RunState::Succeeded);
    assert_eq!(
        done.delivery.unwrap().status(),
        DeliveryStatus::NotRequested,
        "deliver was false"
    );
}

#[tokio::test]
async fn identity_links_join_a_persons_direct_sessions() {
    let gw = Gateway::start_with(
        "{ session: { dmScope: 'per-peer', identityLinks: { alice: ['discord:123', 'telegram:42', 'whatsapp:+15550001'] } } }",
    )
    .await;
    for (channel, to) in [
        ("discord", "user:123"),
        ("telegram", "42"),
        ("whatsapp", "15550001"),
    ] {
        assert_eq!(
            resolve(&gw, channel, to).await,
            "agent:main:direct:alice",
            "{channel} {to}"
        );
    }
    assert_eq!(
        resolve(&gw, "discord", "user:999").await,
        "agent:main:direct:999",
        "unlinked peers keep their id"
    );
}

#[tokio::test]
async fn a_delivery_without_a_route_is_refused_and_changes_nothing() {
    let gw = Gateway::start().await;
    let before = gw.status().await;
    // No channel and a new session: there is no last route.
    let err = gw
        .chat()
        .await
        .send(ChatServiceSendRequest {
            session_key: "fresh".into(),
            message: "hi".into(),
            deliver: true,
            ..Default::default()
        })
        .await
        .expect_err("no route");
    let md = assert_error(&err, Code::FailedPrecondition, "NO_DELIVERY_ROUTE");
    assert_eq!(md["cause"], "NO_DELIVERY_ROUTE");
    assert!(err.message().contains("last route"), "{}", err.message());

    // A channel this gateway has no credentials for.
    let err = gw
        .agent()
        .await
        .run(AgentServiceRunRequest {
            message: "hi".into(),
            deliver: true,
            channel: "discord".into(),
            to: "user:1".into(),
            ..Default::default()
        })
        .await
        .expect_err("discord is not configured");
    let md = assert_error(&err, Code::FailedPrecondition, "NO_DELIVERY_ROUTE");
    assert_eq!(md["cause"], "CHANNEL_NOT_CONFIGURED");
    assert_eq!(md["channel"], "discord");
    assert!(
        err.message().contains("channels.discord"),
        "{}",
        err.message()
    );

    // A named channel without a recipient.
    let err = gw
        .agent()
        .await
        .run(AgentServiceRunRequest {
            message: "hi".into(),
            deliver: true,
            channel: "telegram".into(),
            ..Default::default()
        })
        .await
        .expect_err("no recipient");
    assert_error(&err, Code::FailedPrecondition, "NO_DELIVERY_ROUTE");
    assert!(err.message().contains("recipient"), "{}", err.message());

    // SessionService/Send delivers to the session's last route, which `main` lacks.
    gw.send("main", "create it").await;
    let err = gw
        .sessions()
        .await
        .send(SessionServiceSendRequest {
            session_key: "main".into(),
            message: "hi".into(),
            deliver: true,
            ..Default::default()
        })
        .await
        .expect_err("main has no route");
    assert_error(&err, Code::FailedPrecondition, "NO_DELIVERY_ROUTE");

    let after = gw.status().await;
    assert_eq!(
        after.session_count,
        before.session_count + 1,
        "only the explicit send created a session"
    );
    assert_eq!(gw.list_runs("").await.len(), 1, "refusals queue nothing");
}

#[tokio::test]
async fn best_effort_delivery_runs_and_says_why_nothing_was_sent() {
    let gw = Gateway::start().await;
    let run = gw
        .agent()
        .await
        .run(AgentServiceRunRequest {
            message: "hi".into(),
            deliver: true,
            best_effort_deliver: true,
            channel: "slack".into(),
            to: "channel:C1".into(),
            ..Default::default()
        })
        .await
        .expect("accepted with bestEffortDeliver")
        .into_inner();
    let planned = run.delivery.expect("planned delivery");
    assert_eq!(planned.status(), DeliveryStatus::NoRoute);
    assert_eq!(planned.reason, "CHANNEL_NOT_CONFIGURED");
    let done = gw.wait_run(&run.run_id).await;
    assert_eq!(done.state(), RunState::Succeeded, "the turn itself ran");
    let d = done.delivery.unwrap();
    assert_eq!(d.status(), DeliveryStatus::NoRoute);
    assert!(d.detail.contains("channels.slack"), "{}", d.detail);
    assert!(d.message_id.is_empty());
}
