//! Devices and scopes over gRPC: an Ed25519 client does Challenge → ConnectDevice, gets a
//! device token (auto-approved on loopback with the gateway token, or after
//! `clawplane devices approve`), and that token carries exactly its scopes. Proof errors,
//! superseding, TTL expiry, revocation ending open streams, and the pairing events.

use std::time::Duration;

use clawplane_proto::device_auth;
use clawplane_proto::v1::event_service_watch_response::Frame;
use clawplane_proto::v1::{
    ApprovePairingRequest, ChatServiceSendRequest, ConnectDeviceRequest, ConnectDeviceResponse,
    DeviceChange, EventFilter, EventKind, EventServiceWatchRequest, GatewayServiceStatusRequest,
    ListDevicesRequest, RequestScopeUpgradeRequest, event,
};
use tonic::{Code, Status};

use crate::harness::devices::{challenge, connect};
use crate::harness::*;

fn device_change(e: &clawplane_proto::v1::Event) -> Option<&DeviceChange> {
    match &e.payload {
        Some(event::Payload::Device(d)) => Some(d),
        _ => None,
    }
}

fn device_filter() -> Option<EventFilter> {
    Some(EventFilter {
        kinds: vec![EventKind::Device as i32],
        ..Default::default()
    })
}

#[tokio::test]
async fn local_gateway_token_connect_is_auto_approved_and_the_token_has_exactly_its_scopes() {
    let gw = Gateway::start().await;
    let dev = Dev::new();
    let ok = connect(&gw, &dev, &gw.token, &["operator.read"])
        .await
        .expect("auto-approved on loopback with the gateway token");
    assert_eq!(ok.device_id, dev.id);
    assert_eq!(ok.role, "operator");
    assert_eq!(ok.scopes, vec!["operator.read".to_string()]);
    assert_eq!(
        device_auth::decode_base64_permissive(&ok.device_token).map(|b| b.len()),
        Some(32),
        "32 random bytes, base64url"
    );

    // The device token is a bearer with exactly operator.read.
    let st = gw
        .gateway_as(Token::bearer(&ok.device_token))
        .await
        .status(GatewayServiceStatusRequest {})
        .await
        .expect("operator.read suffices for Status")
        .into_inner();
    assert_eq!(st.caller_scopes, vec!["operator.read".to_string()]);

    let denied = expect_err(
        gw.chat_as(Token::bearer(&ok.device_token))
            .await
            .send(ChatServiceSendRequest {
                session_key: "main".into(),
                message: "hi".into(),
                ..Default::default()
            })
            .await,
        "ChatService/Send with a read-only device token",
    );
    let md = assert_error(&denied, Code::PermissionDenied, "MISSING_SCOPE");
    assert_eq!(
        md.get("missingScope").map(String::as_str),
        Some("operator.write")
    );
    assert_eq!(
        md.get("requiredScopes").map(String::as_str),
        Some("operator.write")
    );

    let denied = expect_err(
        gw.devices_as(Token::bearer(&ok.device_token))
            .await
            .approve_pairing(ApprovePairingRequest {
                request_id: "x".into(),
            })
            .await,
        "ApprovePairing without operator.pairing",
    );
    let md = assert_error(&denied, Code::PermissionDenied, "MISSING_SCOPE");
    assert_eq!(
        md.get("missingScope").map(String::as_str),
        Some("operator.pairing")
    );

    // Reconnecting with the device token hands the same token back.
    let again = connect(&gw, &dev, &ok.device_token, &["operator.read"])
        .await
        .expect("paired device reconnects");
    assert_eq!(again.device_token, ok.device_token);

    // Listed as paired; the feed carries pair.approved.
    let list = gw
        .devices_as(gw.auth())
        .await
        .list_devices(ListDevicesRequest {})
        .await
        .unwrap()
        .into_inner();
    let d = list
        .paired
        .iter()
        .find(|d| d.device_id == dev.id)
        .expect("paired device listed");
    assert_eq!(d.public_key, dev.pk);
    assert_eq!(d.roles[0].scopes, vec!["operator.read".to_string()]);
    let mut feed = gw.watch_after(0, device_filter()).await;
    let e = feed.next_event().await;
    let ch = device_change(&e).expect("device event");
    assert_eq!(ch.r#type, "pair.approved");
    assert_eq!(ch.device_id, dev.id);
}

#[tokio::test]
async fn pairing_required_names_the_fix_and_cli_approval_lets_the_device_in() {
    let gw = Gateway::start_with("{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}").await;
    let dev = Dev::new();
    let err = connect(&gw, &dev, &gw.token, &["operator.read", "operator.write"])
        .await
        .expect_err("pairing required");
    let md = assert_error(&err, Code::FailedPrecondition, "PAIRING_REQUIRED");
    let request_id = md.get("requestId").expect("requestId").clone();
    assert_eq!(md.get("reason").map(String::as_str), Some("not-paired"));
    assert_eq!(
        err.message(),
        format!(
            "pairing required: run `clawplane devices approve {request_id}` on the gateway host"
        )
    );

    // Without any credential too (pure device proof): the same pending request.
    let err = connect(&gw, &dev, "", &["operator.read", "operator.write"])
        .await
        .expect_err("still pending");
    let md = assert_error(&err, Code::FailedPrecondition, "PAIRING_REQUIRED");
    assert_eq!(
        md.get("requestId"),
        Some(&request_id),
        "a same-scope retry keeps the request"
    );

    let out = gw.run_cli(&["devices", "list", "--json"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&request_id));

    let out = gw.run_cli(&["devices", "approve", &request_id]).await;
    assert!(out.status.success(), "devices approve: {out:?}");

    let ok = connect(&gw, &dev, "", &["operator.write"])
        .await
        .expect("approved device connects");
    assert_eq!(
        ok.scopes,
        vec!["operator.read".to_string(), "operator.write".to_string()]
    );
    let mut feed = gw.watch_after(0, device_filter()).await;
    let kinds: Vec<String> = feed
        .collect_until(|e| device_change(e).is_some_and(|c| c.r#type == "pair.approved"))
        .await
        .iter()
        .filter_map(|e| device_change(e).map(|c| c.r#type.clone()))
        .collect();
    assert_eq!(kinds, vec!["pair.requested", "pair.approved"]);

    // A scope upgrade from the device itself needs approval again.
    let up = gw
        .devices_as(Token::bearer(&ok.device_token))
        .await
        .request_scope_upgrade(RequestScopeUpgradeRequest {
            scopes: vec!["operator.admin".into()],
        })
        .await
        .expect("device asks for more")
        .into_inner();
    assert!(!up.request_id.is_empty());
}

#[tokio::test]
async fn a_retry_with_other_scopes_supersedes_and_pending_requests_expire() {
    let gw = Gateway::start_with(
        "{gateway: {nodes: {pairing: {autoApproveLocal: false, pendingTtlMs: 1500}}}}",
    )
    .await;
    let dev = Dev::new();
    let first = connect(&gw, &dev, &gw.token, &["operator.read"])
        .await
        .unwrap_err();
    let first =
        assert_error(&first, Code::FailedPrecondition, "PAIRING_REQUIRED")["requestId"].clone();
    let second = connect(
        &gw,
        &dev,
        &gw.token,
        &["operator.read", "operator.approvals"],
    )
    .await
    .unwrap_err();
    let second =
        assert_error(&second, Code::FailedPrecondition, "PAIRING_REQUIRED")["requestId"].clone();
    assert_ne!(first, second, "different scopes make a new request");

    let gone = expect_err(
        gw.devices_as(gw.auth())
            .await
            .approve_pairing(ApprovePairingRequest {
                request_id: first.clone(),
            })
            .await,
        "approving a superseded request",
    );
    assert_error(&gone, Code::NotFound, "PAIRING_REQUEST_NOT_FOUND");

    let mut feed = gw.watch_after(0, device_filter()).await;
    let evs = feed
        .collect_until(|e| device_change(e).is_some_and(|c| c.request_id == second))
        .await;
    let rejected = evs
        .iter()
        .filter_map(device_change)
        .find(|c| c.r#type == "pair.rejected")
        .expect("the superseded request is resolved as rejected");
    assert_eq!(rejected.request_id, first);
    assert_eq!(rejected.detail, "superseded");

    // TTL (1.5 s here; 5 minutes by default).
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let list = gw
        .devices_as(gw.auth())
        .await
        .list_devices(ListDevicesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(list.pending.is_empty(), "expired: {list:?}");
    let gone = expect_err(
        gw.devices_as(gw.auth())
            .await
            .approve_pairing(ApprovePairingRequest { request_id: second })
            .await,
        "approving an expired request",
    );
    assert_error(&gone, Code::NotFound, "PAIRING_REQUEST_NOT_FOUND");
}

#[tokio::test]
async fn device_proof_errors_have_their_reasons() {
    let gw = Gateway::start().await;
    let dev = Dev::new();
    let call = |req: ConnectDeviceRequest| {
        let gw = &gw;
        async move {
            gw.devices_as(gw.auth())
                .await
                .connect_device(req)
                .await
                .expect_err("proof refused")
        }
    };

    // Bad signature (signed other scopes than sent).
    let (nonce, ts) = challenge(&gw).await;
    let mut req = dev.request(&["operator.read"], &gw.token, &nonce, ts);
    req.scopes = vec!["operator.admin".into()];
    let md = assert_error(
        &call(req).await,
        Code::Unauthenticated,
        "DEVICE_AUTH_SIGNATURE_INVALID",
    );
    assert_eq!(
        md.get("reason").map(String::as_str),
        Some("device-signature")
    );

    // Stale signedAt.
    let (nonce, ts) = challenge(&gw).await;
    let req = dev.request(&["operator.read"], &gw.token, &nonce, ts - 121_000);
    assert_error(
        &call(req).await,
        Code::Unauthenticated,
        "DEVICE_AUTH_SIGNATURE_EXPIRED",
    );

    // A nonce the server never issued, and a nonce used twice.
    let (_, ts) = challenge(&gw).await;
    let req = dev.request(&["operator.read"], &gw.token, "not-a-challenge", ts);
    assert_error(
        &call(req).await,
        Code::Unauthenticated,
        "DEVICE_AUTH_NONCE_MISMATCH",
    );
    let (nonce, ts) = challenge(&gw).await;
    connect_with(&gw, dev.request(&["operator.read"], &gw.token, &nonce, ts))
        .await
        .expect("first use");
    let req = dev.request(&["operator.read"], &gw.token, &nonce, ts);
    assert_error(
        &call(req).await,
        Code::Unauthenticated,
        "DEVICE_AUTH_NONCE_MISMATCH",
    );

    // Empty nonce.
    let req = dev.request(&["operator.read"], &gw.token, "", ts);
    assert_error(
        &call(req).await,
        Code::Unauthenticated,
        "DEVICE_AUTH_NONCE_REQUIRED",
    );

    // Wrong device id.
    let (nonce, ts) = challenge(&gw).await;
    let mut req = dev.request(&["operator.read"], &gw.token, &nonce, ts);
    req.device.as_mut().unwrap().id = Dev::new().id;
    let md = assert_error(
        &call(req).await,
        Code::Unauthenticated,
        "DEVICE_AUTH_DEVICE_ID_MISMATCH",
    );
    assert_eq!(
        md.get("reason").map(String::as_str),
        Some("device-id-mismatch")
    );
}

async fn connect_with(
    gw: &Gateway,
    req: ConnectDeviceRequest,
) -> Result<ConnectDeviceResponse, Status> {
    gw.devices_as(gw.auth())
        .await
        .connect_device(req)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn revoking_a_device_ends_its_open_watch_at_once() {
    let gw = Gateway::start().await;
    let dev = Dev::new();
    let ok = connect(&gw, &dev, &gw.token, &["operator.read"])
        .await
        .unwrap();
    let mut stream = gw
        .events_as(Token::bearer(&ok.device_token))
        .await
        .watch(EventServiceWatchRequest {
            follow_only: true,
            ..Default::default()
        })
        .await
        .expect("device token may watch")
        .into_inner();

    let out = gw
        .run_cli(&["devices", "revoke", &dev.id, "--role", "operator"])
        .await;
    assert!(out.status.success(), "devices revoke: {out:?}");

    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(r))
                    if matches!(r.frame, Some(Frame::Progress(_)) | Some(Frame::Event(_))) =>
                {
                    continue;
                }
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends at once after revocation");
    let status = ended.expect_err("ends with a status");
    assert_error(&status, Code::Unauthenticated, "TOKEN_REVOKED");

    let refused = expect_err(
        gw.gateway_as(Token::bearer(&ok.device_token))
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "a revoked token",
    );
    assert_error(&refused, Code::Unauthenticated, "TOKEN_INVALID");

    let mut feed = gw.watch_after(0, device_filter()).await;
    let evs = feed
        .collect_until(|e| device_change(e).is_some_and(|c| c.r#type == "token.revoked"))
        .await;
    assert_eq!(
        device_change(evs.last().unwrap()).unwrap().device_id,
        dev.id
    );

    // Removing the device works from the CLI too.
    let out = gw.run_cli(&["devices", "remove", &dev.id]).await;
    assert!(out.status.success(), "devices remove: {out:?}");
}

#[tokio::test]
async fn rotate_rename_and_in_band_rotation() {
    let gw = Gateway::start().await;
    let dev = Dev::new();
    let ok = connect(&gw, &dev, &gw.token, &["operator.read", "operator.pairing"])
        .await
        .unwrap();

    // An operator rotates: the old token stops working, the new one is withheld.
    let out = gw
        .run_cli(&["devices", "rotate", &dev.id, "--role", "operator"])
        .await;
    assert!(out.status.success(), "devices rotate: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("withheld-cross-device"),
        "{out:?}"
    );
    let refused = expect_err(
        gw.gateway_as(Token::bearer(&ok.device_token))
            .await
            .status(GatewayServiceStatusRequest {})
            .await,
        "a rotated token",
    );
    assert_error(&refused, Code::Unauthenticated, "TOKEN_INVALID");

    // The device reconnects (still paired) and rotates its own token in-band.
    let fresh = connect(&gw, &dev, "", &["operator.read"]).await.unwrap();
    assert_ne!(fresh.device_token, ok.device_token);
    let r = gw
        .devices_as(Token::bearer(&fresh.device_token))
        .await
        .rotate_token(clawplane_proto::v1::RotateTokenRequest {
            device_id: dev.id.clone(),
            role: "operator".into(),
            scopes: vec!["operator.read".into()],
        })
        .await
        .expect("a device with operator.pairing rotates its own token")
        .into_inner();
    assert_eq!(r.token_delivery, "in-band");
    assert_eq!(r.scopes, vec!["operator.read".to_string()]);
    let st = gw
        .gateway_as(Token::bearer(&r.token))
        .await
        .status(GatewayServiceStatusRequest {})
        .await
        .expect("the in-band token works")
        .into_inner();
    assert_eq!(st.caller_scopes, vec!["operator.read".to_string()]);

    let out = gw
        .run_cli(&["devices", "rename", &dev.id, "--name", "laptop"])
        .await;
    assert!(out.status.success(), "devices rename: {out:?}");
    let out = gw.run_cli(&["devices", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("laptop") && text.contains(&dev.id), "{text}");
}
