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
        .list_devices(ListDevicesRequest::default())
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

    // A retry with the same ask keeps the request.
    let err = connect(&gw, &dev, &gw.token, &["operator.read", "operator.write"])
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
        .list_devices(ListDevicesRequest::default())
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
    // "At once" on the replica that revoked it; the others stop the token when they apply
    // the change (milliseconds later; docs/scale-out.md), so this runs one process.
    let gw = Gateway::builder().one_process().start().await;
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
    // A rotated token stops at once on the replica that rotated it; the others stop it when
    // they apply the change (milliseconds later; docs/scale-out.md), so this runs one process.
    let gw = Gateway::builder().one_process().start().await;
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

// ---------------------------------------------------------------------------------------------
// Hostile callers (issue 13)
// ---------------------------------------------------------------------------------------------

use crate::harness::devices::{challenge_as, connect_as};
use clawplane_proto::v1::{
    ChallengeRequest, ListDevicesResponse, RejectPairingRequest, RemoveDeviceRequest,
    RevokeTokenRequest, RotateTokenRequest,
};

/// Files a pairing request for `dev` with the gateway token (no local auto-approval in the
/// gateways below) and approves it with the gateway token; returns the device token.
async fn paired(gw: &Gateway, dev: &Dev, scopes: &[&str]) -> String {
    let err = connect(gw, dev, &gw.token, scopes).await.unwrap_err();
    let request_id =
        assert_error(&err, Code::FailedPrecondition, "PAIRING_REQUIRED")["requestId"].clone();
    gw.devices_as(gw.auth())
        .await
        .approve_pairing(ApprovePairingRequest { request_id })
        .await
        .expect("the gateway token approves");
    connect(gw, dev, "", scopes)
        .await
        .expect("approved device connects")
        .device_token
}

/// A pending request of `dev`, filed with the gateway token; returns its id.
async fn pending(gw: &Gateway, dev: &Dev, scopes: &[&str]) -> String {
    let err = connect(gw, dev, &gw.token, scopes).await.unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "PAIRING_REQUIRED")["requestId"].clone()
}

async fn list_all(gw: &Gateway) -> ListDevicesResponse {
    gw.devices_as(gw.auth())
        .await
        .list_devices(ListDevicesRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
}

const NO_LOCAL: &str = "{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}";

#[tokio::test]
async fn operator_pairing_approves_but_manages_other_devices_only_with_admin() {
    let gw = Gateway::start_with(NO_LOCAL).await;
    let approver = Dev::new();
    let approver_token = paired(&gw, &approver, &["operator.read", "operator.pairing"]).await;
    let other = Dev::new();
    let other_token = paired(&gw, &other, &["operator.read"]).await;
    let as_approver = || gw.devices_as(Token::bearer(&approver_token));

    // Approving and rejecting requests its scopes cover: allowed, as before.
    let newcomer = Dev::new();
    let id = pending(&gw, &newcomer, &["operator.read"]).await;
    as_approver()
        .await
        .approve_pairing(ApprovePairingRequest { request_id: id })
        .await
        .expect("operator.pairing approves an operator.read request");
    let greedy = Dev::new();
    let id = pending(&gw, &greedy, &["operator.read", "operator.write"]).await;
    let denied = expect_err(
        as_approver()
            .await
            .approve_pairing(ApprovePairingRequest {
                request_id: id.clone(),
            })
            .await,
        "approving more than the approver holds",
    );
    let md = assert_error(&denied, Code::PermissionDenied, "MISSING_SCOPE");
    assert_eq!(md["missingScope"], "operator.write");
    as_approver()
        .await
        .reject_pairing(RejectPairingRequest { request_id: id })
        .await
        .expect("operator.pairing rejects");

    // Removing, rotating or revoking another device: operator.admin, named in the refusal;
    // a device that does not exist is refused the same way (nothing to learn).
    for target in [other.id.clone(), "0".repeat(64)] {
        let refusals = [
            as_approver()
                .await
                .remove_device(RemoveDeviceRequest {
                    device_id: target.clone(),
                })
                .await
                .map(|_| ()),
            as_approver()
                .await
                .rotate_token(RotateTokenRequest {
                    device_id: target.clone(),
                    role: "operator".into(),
                    scopes: vec![],
                })
                .await
                .map(|_| ()),
            as_approver()
                .await
                .revoke_token(RevokeTokenRequest {
                    device_id: target.clone(),
                    role: "operator".into(),
                })
                .await
                .map(|_| ()),
        ];
        for r in refusals {
            let s = r.expect_err("another device needs operator.admin");
            let md = assert_error(&s, Code::PermissionDenied, "MISSING_SCOPE");
            assert_eq!(md["missingScope"], "operator.admin");
            assert_eq!(md["requiredScopes"], "operator.admin");
            assert_eq!(md["deviceId"], target);
            assert!(
                s.message().starts_with("missing scope: operator.admin"),
                "{}",
                s.message()
            );
        }
    }
    // Nothing changed: the other device is still paired and its token works.
    assert!(
        list_all(&gw)
            .await
            .paired
            .iter()
            .any(|d| d.device_id == other.id)
    );
    gw.gateway_as(Token::bearer(&other_token))
        .await
        .status(GatewayServiceStatusRequest {})
        .await
        .expect("the other device's token still works");

    // Its own device: as before (rotate in-band, then revoke).
    let rotated = as_approver()
        .await
        .rotate_token(RotateTokenRequest {
            device_id: approver.id.clone(),
            role: "operator".into(),
            scopes: vec![],
        })
        .await
        .expect("a device rotates its own token")
        .into_inner();
    assert_eq!(rotated.token_delivery, "in-band");
    gw.devices_as(Token::bearer(&rotated.token))
        .await
        .revoke_token(RevokeTokenRequest {
            device_id: approver.id.clone(),
            role: "operator".into(),
        })
        .await
        .expect("a device revokes its own role");

    // A device with operator.admin manages others.
    let admin = Dev::new();
    let admin_token = paired(&gw, &admin, &["operator.admin"]).await;
    gw.devices_as(Token::bearer(&admin_token))
        .await
        .remove_device(RemoveDeviceRequest {
            device_id: other.id.clone(),
        })
        .await
        .expect("operator.admin removes another device");
    assert!(
        !list_all(&gw)
            .await
            .paired
            .iter()
            .any(|d| d.device_id == other.id)
    );
}

#[tokio::test]
async fn filing_a_pairing_request_needs_a_shared_credential() {
    let gw = Gateway::start_with(
        "{gateway: {nodes: {pairing: {autoApproveLocal: false}}}, hooks: {enabled: true, token: 'hooks-secret-1'}}",
    )
    .await;
    let dev = Dev::new();
    // No credential, or the hooks token: UNAUTHENTICATED, nothing filed.
    for (cred, signed) in [
        (Token::none(), ""),
        (Token::bearer("hooks-secret-1"), "hooks-secret-1"),
    ] {
        let err = connect_as(&gw, &dev, cred, signed, &["operator.read"])
            .await
            .expect_err("no shared credential");
        assert_error(&err, Code::Unauthenticated, "PAIRING_CREDENTIAL_REQUIRED");
        assert!(err.message().contains("gateway token"), "{}", err.message());
    }
    let list = list_all(&gw).await;
    assert!(list.pending.is_empty(), "nothing filed: {list:?}");
    let mut feed = gw.watch_after(0, device_filter()).await;

    // The gateway token files one; so does a live device token (for another device).
    let id = pending(&gw, &dev, &["operator.read"]).await;
    let e = feed.next_event().await;
    let ch = device_change(&e).expect("device event");
    assert_eq!(
        (ch.r#type.as_str(), ch.request_id.as_str()),
        ("pair.requested", id.as_str())
    );
    let holder = Dev::new();
    let holder_token = paired(&gw, &holder, &["operator.read"]).await;
    let second = Dev::new();
    let err = connect(&gw, &second, &holder_token, &["operator.read"])
        .await
        .expect_err("pending");
    assert_error(&err, Code::FailedPrecondition, "PAIRING_REQUIRED");

    // A paired device still connects with its proof alone.
    connect(&gw, &holder, "", &["operator.read"])
        .await
        .expect("a paired device needs no credential");
}

/// ConnectDevice with the gateway token through the trusted proxy for client `ip`: the
/// refusal (no local approval through a proxy).
async fn file(gw: &Gateway, dev: &Dev, ip: &str, scopes: &[&str]) -> Status {
    let cred = gw.auth().with_header("x-forwarded-for", ip);
    connect_as(gw, dev, cred, &gw.token, scopes)
        .await
        .expect_err("not paired")
}

#[tokio::test]
async fn pending_requests_are_capped_per_address_and_gateway_wide() {
    let gw = Gateway::start_with(
        "{gateway: {trustedProxies: ['127.0.0.1'], nodes: {pairing: {autoApproveLocal: false, maxPending: 3, maxPendingPerAddress: 2}}}}",
    )
    .await;
    let (a, b, c) = (Dev::new(), Dev::new(), Dev::new());
    let first = file(&gw, &a, "203.0.113.1", &["operator.read"]).await;
    let first =
        assert_error(&first, Code::FailedPrecondition, "PAIRING_REQUIRED")["requestId"].clone();
    let second = file(&gw, &b, "203.0.113.1", &["operator.read"]).await;
    assert_error(&second, Code::FailedPrecondition, "PAIRING_REQUIRED");

    // A third from the same address: refused, nothing filed.
    let over = file(&gw, &c, "203.0.113.1", &["operator.read"]).await;
    let md = assert_error(&over, Code::ResourceExhausted, "PAIRING_REQUESTS_EXHAUSTED");
    assert_eq!(md["scope"], "address");
    assert_eq!(md["limit"], "2");
    assert!(
        over.message().contains("maxPendingPerAddress"),
        "{}",
        over.message()
    );
    assert_eq!(list_all(&gw).await.pending.len(), 2);

    // A retry with the same ask keeps its request; one with other scopes replaces it:
    // neither needs a new slot.
    let again = file(&gw, &a, "203.0.113.1", &["operator.read"]).await;
    assert_eq!(
        assert_error(&again, Code::FailedPrecondition, "PAIRING_REQUIRED")["requestId"],
        first
    );
    let replaced = file(&gw, &a, "203.0.113.1", &["operator.write"]).await;
    let replaced =
        assert_error(&replaced, Code::FailedPrecondition, "PAIRING_REQUIRED")["requestId"].clone();
    assert_ne!(replaced, first);
    assert_eq!(list_all(&gw).await.pending.len(), 2);

    // Another address has its own allowance, up to the gateway-wide limit.
    let ok = file(&gw, &c, "198.51.100.7", &["operator.read"]).await;
    assert_error(&ok, Code::FailedPrecondition, "PAIRING_REQUIRED");
    let d = Dev::new();
    let over = file(&gw, &d, "192.0.2.9", &["operator.read"]).await;
    let md = assert_error(&over, Code::ResourceExhausted, "PAIRING_REQUESTS_EXHAUSTED");
    assert_eq!(md["scope"], "global");
    assert_eq!(md["limit"], "3");
    assert_eq!(list_all(&gw).await.pending.len(), 3);

    // Resolving one frees its slot.
    gw.devices_as(gw.auth())
        .await
        .reject_pairing(RejectPairingRequest {
            request_id: replaced,
        })
        .await
        .expect("reject");
    let ok = file(&gw, &d, "192.0.2.9", &["operator.read"]).await;
    assert_error(&ok, Code::FailedPrecondition, "PAIRING_REQUIRED");
}

#[tokio::test]
async fn list_devices_pages_through_pending_then_paired() {
    let gw = Gateway::start_with(NO_LOCAL).await;
    let mut paired_ids = Vec::new();
    for _ in 0..3 {
        let dev = Dev::new();
        paired(&gw, &dev, &["operator.read"]).await;
        paired_ids.push(dev.id);
    }
    paired_ids.sort();
    let mut pending_ids = Vec::new();
    for _ in 0..2 {
        pending_ids.push(pending(&gw, &Dev::new(), &["operator.read"]).await);
    }

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = gw
            .devices_as(gw.auth())
            .await
            .list_devices(ListDevicesRequest {
                page_size: 2,
                page_token: token,
            })
            .await
            .expect("page")
            .into_inner();
        assert!(page.pending.len() + page.paired.len() <= 2, "{page:?}");
        token = page.next_page_token.clone();
        pages.push(page);
        if token.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "paging must end");
    }
    assert_eq!(pages.len(), 3, "5 entries, 2 a page");
    let got_pending: Vec<String> = pages
        .iter()
        .flat_map(|p| p.pending.iter().map(|r| r.request_id.clone()))
        .collect();
    let got_paired: Vec<String> = pages
        .iter()
        .flat_map(|p| p.paired.iter().map(|d| d.device_id.clone()))
        .collect();
    assert_eq!(got_pending, pending_ids, "oldest first, each once");
    assert_eq!(got_paired, paired_ids, "by id, each once");
    // The default page holds everything here.
    let all = list_all(&gw).await;
    assert_eq!((all.pending.len(), all.paired.len()), (2, 3));
    assert!(all.next_page_token.is_empty());

    for (req, field) in [
        (
            ListDevicesRequest {
                page_size: -1,
                ..Default::default()
            },
            "pageSize",
        ),
        (
            ListDevicesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            "pageToken",
        ),
    ] {
        let err = expect_err(
            gw.devices_as(gw.auth()).await.list_devices(req).await,
            "a bad page request",
        );
        assert_invalid_field(&err, field);
    }
}

/// `DeviceService/Challenge` from client `ip` (through the trusted proxy).
async fn ask(gw: &Gateway, ip: &str) -> Result<clawplane_proto::v1::ChallengeResponse, Status> {
    gw.devices_as(Token::none().with_header("x-forwarded-for", ip))
        .await
        .challenge(ChallengeRequest {})
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn outstanding_challenges_are_capped_per_address_and_gateway_wide() {
    let gw = Gateway::start_with(
        "{gateway: {trustedProxies: ['127.0.0.1'], nodes: {pairing: {maxChallenges: 5, maxChallengesPerAddress: 2}}}}",
    )
    .await;
    let from = |ip: &str| Token::none().with_header("x-forwarded-for", ip);
    let (n1, ts1) = challenge_as(&gw, from("203.0.113.1")).await;
    challenge_as(&gw, from("203.0.113.1")).await;
    let over = ask(&gw, "203.0.113.1")
        .await
        .expect_err("a third from one address");
    let md = assert_error(&over, Code::ResourceExhausted, "CHALLENGES_EXHAUSTED");
    assert_eq!(md["scope"], "address");
    assert_eq!(md["limit"], "2");

    // Using a nonce frees its slot (the connect itself is refused: no credential).
    let dev = Dev::new();
    let used = gw
        .devices_as(from("203.0.113.1"))
        .await
        .connect_device(dev.request(&["operator.read"], "", &n1, ts1))
        .await
        .expect_err("no credential to file with");
    assert_error(&used, Code::Unauthenticated, "PAIRING_CREDENTIAL_REQUIRED");
    ask(&gw, "203.0.113.1").await.expect("a slot was freed");

    // Other addresses, up to the gateway-wide limit (5).
    ask(&gw, "198.51.100.1").await.expect("own allowance");
    ask(&gw, "198.51.100.1").await.expect("own allowance");
    ask(&gw, "192.0.2.1").await.expect("the fifth");
    let over = ask(&gw, "192.0.2.2")
        .await
        .expect_err("past the gateway-wide limit");
    let md = assert_error(&over, Code::ResourceExhausted, "CHALLENGES_EXHAUSTED");
    assert_eq!(md["scope"], "global");
}
