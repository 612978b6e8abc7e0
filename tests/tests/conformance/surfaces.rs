//! The other surfaces on the one port: reflection v1/v1alpha, grpc.health.v1, /healthz and
//! /readyz, gRPC-Web over HTTP/1.1 with CORS.

use std::collections::BTreeSet;

use clawplane_proto::v1::GatewayServiceStatusResponse;
use prost::Message as _;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::harness::ws::{Ws, connect_params};
use crate::harness::*;
use crate::http1;

const CLAWPLANE_SERVICES: [&str; 8] = [
    "clawplane.v1.AgentService",
    "clawplane.v1.ChannelService",
    "clawplane.v1.ChatService",
    "clawplane.v1.DeviceService",
    "clawplane.v1.EventService",
    "clawplane.v1.GatewayService",
    "clawplane.v1.SessionService",
    "clawplane.v1.WebhookService",
];

fn expected_services() -> BTreeSet<String> {
    CLAWPLANE_SERVICES
        .iter()
        .copied()
        .chain([
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ])
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let gw = Gateway::start().await;
    let want = expected_services();

    // v1 (no token needed)
    {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
        let mut client = ServerReflectionClient::new(gw.channel().await);
        let ask = |m: MessageRequest| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        };
        let reqs = vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "clawplane.v1.ChatService".into(),
            )),
        ];
        let mut stream = client
            .server_reflection_info(tokio_stream::iter(reqs))
            .await
            .expect("v1 ServerReflectionInfo")
            .into_inner();
        let first: ServerReflectionResponse = stream.message().await.unwrap().unwrap();
        let got: BTreeSet<String> = match first.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("v1 list_services answered {other:?}"),
        };
        assert!(
            got.is_superset(&want),
            "v1 lists {got:?}, missing {:?}",
            want.difference(&got).collect::<Vec<_>>()
        );
        let second = stream.message().await.unwrap().unwrap();
        match second.message_response {
            Some(MessageResponse::FileDescriptorResponse(f)) => {
                assert!(!f.file_descriptor_proto.is_empty())
            }
            other => panic!("v1 file_containing_symbol answered {other:?}"),
        }
    }

    // v1alpha
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(gw.channel().await);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .expect("v1alpha ServerReflectionInfo")
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        let got: BTreeSet<String> = match first.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("v1alpha list_services answered {other:?}"),
        };
        assert!(
            got.is_superset(&want),
            "v1alpha lists {got:?}, missing {:?}",
            want.difference(&got).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn health_serving_then_not_serving_on_sigterm() {
    let mut gw = Gateway::start().await;
    let mut health = gw.health().await;
    for service in std::iter::once("").chain(CLAWPLANE_SERVICES) {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("Health/Check {service:?}: {s:?}"))
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "service {service:?}");
    }

    for path in ["/healthz", "/readyz"] {
        let resp = http1::request(gw.addr, "GET", path, &[], b"").await;
        assert_eq!(resp.status, 200, "GET {path}: {resp:?}");
    }

    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Health/Watch")
        .into_inner();
    let first: HealthCheckResponse = tokio::time::timeout(PATIENCE, watch.message())
        .await
        .expect("first Health/Watch frame")
        .expect("Health/Watch ok")
        .expect("Health/Watch frame");
    assert_eq!(first.status(), ServingStatus::Serving);

    gw.sigterm();
    let mut statuses = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, watch.message()).await {
            Ok(Ok(Some(m))) => {
                statuses.push(m.status());
                if m.status() == ServingStatus::NotServing {
                    break;
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => {
                panic!("Health/Watch ended before NOT_SERVING; saw {statuses:?}")
            }
            Err(_) => panic!("no NOT_SERVING within {PATIENCE:?} of SIGTERM; saw {statuses:?}"),
        }
    }
    drop(watch);
    let status = gw.wait_exit().await;
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
}

#[tokio::test]
async fn grpc_web_over_http1() {
    let gw = Gateway::start().await;
    let bearer = format!("Bearer {}", gw.token);
    let body = http1::grpc_web_frame(&[]);
    let resp = http1::request(
        gw.addr,
        "POST",
        "/clawplane.v1.GatewayService/Status",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("accept", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
            ("authorization", &bearer),
        ],
        &body,
    )
    .await;
    assert!(
        resp.status_line.starts_with("HTTP/1.1 "),
        "answered over HTTP/1.1: {resp:?}"
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("application/grpc-web")),
        "grpc-web content type: {resp:?}"
    );
    let frames = http1::grpc_web_frames(&resp.body);
    let data: Vec<&http1::GrpcWebFrame> = frames.iter().filter(|f| f.flags & 0x80 == 0).collect();
    assert_eq!(data.len(), 1, "one data frame: {frames:?}");
    let status = GatewayServiceStatusResponse::decode(data[0].payload.as_slice())
        .expect("data frame decodes as GatewayServiceStatusResponse");
    assert!(!status.version.is_empty(), "{status:?}");
    assert_eq!(status.main_session_key, "agent:main:main");
    let trailer = frames
        .iter()
        .find(|f| f.flags & 0x80 != 0)
        .unwrap_or_else(|| panic!("no trailer frame: {frames:?}"));
    let trailers = http1::parse_trailers(&trailer.payload);
    assert!(
        trailers.iter().any(|(k, v)| k == "grpc-status" && v == "0"),
        "trailer frame has grpc-status:0: {trailers:?}"
    );

    // Without the token: UNAUTHENTICATED (16), in the headers (trailers-only) or the trailer frame.
    let resp = http1::request(
        gw.addr,
        "POST",
        "/clawplane.v1.GatewayService/Status",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &body,
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let in_headers = resp.header("grpc-status").map(str::to_string);
    let in_trailers = http1::grpc_web_frames(&resp.body)
        .iter()
        .filter(|f| f.flags & 0x80 != 0)
        .flat_map(|f| http1::parse_trailers(&f.payload))
        .find(|(k, _)| k == "grpc-status")
        .map(|(_, v)| v);
    assert_eq!(
        in_headers.or(in_trailers).as_deref(),
        Some("16"),
        "gRPC-Web without a token is UNAUTHENTICATED: {resp:?}"
    );
}

#[tokio::test]
async fn grpc_web_cors_preflight() {
    let gw = Gateway::start().await;
    let resp = http1::request(
        gw.addr,
        "OPTIONS",
        "/clawplane.v1.GatewayService/Status",
        &[
            ("origin", "http://example.test"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            ),
        ],
        b"",
    )
    .await;
    assert!(
        resp.status == 200 || resp.status == 204,
        "preflight succeeds: {resp:?}"
    );
    assert!(
        resp.header("access-control-allow-origin").is_some(),
        "access-control-allow-origin: {resp:?}"
    );
    assert!(
        resp.header("access-control-allow-methods").is_some()
            || resp.header("access-control-allow-headers").is_some(),
        "access-control-allow-methods/headers: {resp:?}"
    );
}

/// OpenClaw's probe paths answer as OpenClaw's do: `/health` and `/healthz` (GET and HEAD)
/// `{"ok":true,"status":"live"}`, `/ready` and `/readyz` `{"ready":true}`; and the WebSocket
/// is served at `/ws` (the path of the guide's nginx block) as at `/`.
#[tokio::test]
async fn openclaws_probe_paths_and_the_ws_path() {
    let gw = Gateway::start().await;
    for path in ["/health", "/healthz"] {
        let r = http1::request(gw.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 200, "{path}");
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"ok": true, "status": "live"}),
            "{path}"
        );
        let r = http1::request(gw.addr, "HEAD", path, &[], b"").await;
        assert_eq!((r.status, r.body.len()), (200, 0), "HEAD {path}");
    }
    for path in ["/ready", "/readyz"] {
        let r = http1::request(gw.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 200, "{path}");
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(body["ready"], true, "{path}: {body}");
    }
    let mut ws = Ws::open_path(&gw, "/ws").await;
    let challenge = ws.frame().await;
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    let id = ws
        .req("connect", connect_params(Some(&gw.token), 4, 4))
        .await;
    let res = ws.res(&id).await;
    assert_eq!(res["ok"], true, "connect at /ws: {res}");
}
