//! Session keys, reset, delete, and the services that are not implemented yet.

use clawplane_proto::v1::channel_service_client::ChannelServiceClient;
use clawplane_proto::v1::device_service_client::DeviceServiceClient;
use clawplane_proto::v1::webhook_service_client::WebhookServiceClient;
use clawplane_proto::v1::{
    AgentServiceWaitRequest, ChatServiceAbortRequest, ChatServiceSendRequest, ListChannelsRequest,
    ListDevicesRequest, ListWebhookEndpointsRequest, RunState, SessionServiceDeleteRequest,
    SessionServiceGetRequest, SessionServiceResetRequest, SessionServiceResolveRequest,
};
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn session_keys_are_canonicalised() {
    let gw = Gateway::start().await;
    let main = gw.send("main", "hi").await;
    assert_eq!(main.session_key, "agent:main:main");
    let verbatim = gw.send("agent:other:thread-7", "hi").await;
    assert_eq!(
        verbatim.session_key, "agent:other:thread-7",
        "full keys are verbatim"
    );
    let upper = gw
        .send_req(ChatServiceSendRequest {
            session_key: "work".into(),
            agent_id: "Ops".into(),
            message: "hi".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        upper.session_key, "agent:ops:work",
        "agent ids are lowercased"
    );
    let run = gw.wait_run(&upper.run_id).await;
    assert_eq!(run.agent_id, "ops");

    let resolved = gw
        .sessions()
        .await
        .resolve(SessionServiceResolveRequest {
            session_key: "work".into(),
            agent_id: "OPS".into(),
            ..Default::default()
        })
        .await
        .expect("Resolve")
        .into_inner();
    assert_eq!(resolved.session_key, "agent:ops:work");
    assert!(resolved.exists);
    let unknown = gw
        .sessions()
        .await
        .resolve(SessionServiceResolveRequest {
            session_key: "nobody-here".into(),
            ..Default::default()
        })
        .await
        .expect("Resolve unknown")
        .into_inner();
    assert_eq!(unknown.session_key, "agent:main:nobody-here");
    assert!(!unknown.exists, "Resolve creates nothing");
}

#[tokio::test]
async fn reset_starts_a_new_generation() {
    let gw = Gateway::start().await;
    let r1 = gw.send("gen", "one").await.run_id;
    gw.wait_run(&r1).await;
    let before = gw.history("gen").await.session.expect("session");

    let reset = gw
        .sessions()
        .await
        .reset(SessionServiceResetRequest {
            session_key: "gen".into(),
            ..Default::default()
        })
        .await
        .expect("Reset")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(reset.session_key, key("gen"));
    assert_ne!(reset.session_id, before.session_id, "a new sessionId");
    assert_eq!(reset.turn_count, 0);
    let hist = gw.history("gen").await;
    assert!(hist.messages.is_empty(), "new generation, empty transcript");

    let r2 = gw.send("gen", "two").await.run_id;
    assert_eq!(
        gw.wait_run(&r2).await.reply_text,
        "You said: two (turn 1)",
        "turns count within the generation"
    );
}

#[tokio::test]
async fn delete_refuses_busy_session_then_deletes() {
    let gw = Gateway::start().await;
    let mut sessions = gw.sessions().await;
    let busy = gw.send("del", "/sleep 20000 busy").await.run_id;

    let refused = expect_err(
        sessions
            .delete(SessionServiceDeleteRequest {
                session_key: "del".into(),
                ..Default::default()
            })
            .await,
        "Delete with an active run",
    );
    assert_error(&refused, Code::FailedPrecondition, "SESSION_BUSY");
    sessions
        .get(SessionServiceGetRequest {
            session_key: "del".into(),
            ..Default::default()
        })
        .await
        .expect("the session still exists");

    gw.chat()
        .await
        .abort(ChatServiceAbortRequest {
            session_key: "del".into(),
            ..Default::default()
        })
        .await
        .expect("Abort");
    assert_eq!(gw.wait_run(&busy).await.state(), RunState::Cancelled);

    let deleted = sessions
        .delete(SessionServiceDeleteRequest {
            session_key: "del".into(),
            ..Default::default()
        })
        .await
        .expect("Delete idle session")
        .into_inner();
    assert_eq!(deleted.session_key, key("del"));
    let gone = expect_err(
        sessions
            .get(SessionServiceGetRequest {
                session_key: "del".into(),
                ..Default::default()
            })
            .await,
        "Get after Delete",
    );
    let md = assert_error(&gone, Code::NotFound, "SESSION_NOT_FOUND");
    assert_eq!(
        md.get("sessionKey").map(String::as_str),
        Some("agent:main:del")
    );
}

#[tokio::test]
async fn wait_returns_not_done_when_its_timeout_passes_first() {
    let gw = Gateway::start().await;
    let id = gw.send("slow", "/sleep 20000 slow").await.run_id;
    let resp = gw
        .agent()
        .await
        .wait(AgentServiceWaitRequest {
            run_id: id.clone(),
            timeout_ms: 200,
            ..Default::default()
        })
        .await
        .expect("Wait")
        .into_inner();
    assert!(!resp.done, "{resp:?}");
    let run = resp.run.expect("run");
    assert!(
        matches!(run.state(), RunState::Queued | RunState::Running),
        "{run:?}"
    );
    gw.chat()
        .await
        .abort(ChatServiceAbortRequest {
            session_key: "slow".into(),
            ..Default::default()
        })
        .await
        .expect("Abort");
}

#[tokio::test]
async fn channel_device_and_egress_services_list_nothing_on_an_empty_gateway() {
    let gw = Gateway::start().await;
    let ch = gw.channel().await;
    // DeviceService is implemented (see devices.rs): an empty gateway lists nothing.
    let devices = DeviceServiceClient::with_interceptor(ch.clone(), gw.auth())
        .list_devices(ListDevicesRequest::default())
        .await
        .expect("DeviceService/ListDevices")
        .into_inner();
    assert!(devices.pending.is_empty() && devices.paired.is_empty());
    let channels = ChannelServiceClient::with_interceptor(ch.clone(), gw.auth())
        .list_channels(ListChannelsRequest::default())
        .await
        .expect("ChannelService/ListChannels")
        .into_inner();
    assert!(channels.channels.is_empty(), "{channels:?}");
    let webhooks = WebhookServiceClient::with_interceptor(ch, gw.auth())
        .list_webhook_endpoints(ListWebhookEndpointsRequest::default())
        .await
        .expect("WebhookService/ListWebhookEndpoints")
        .into_inner();
    assert!(webhooks.endpoints.is_empty(), "{webhooks:?}");
}
