//! One listener: gRPC (h2c), gRPC-Web (HTTP/1.1, CORS), health, reflection v1 + v1alpha,
//! `/healthz` and `/readyz`, composed on axum; plus the shutdown sequence.

use crate::{api::Api, core::Gateway};
use axum::{
    Router,
    body::Body,
    http::{HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use clawplane_proto::v1::{
    agent_service_server::AgentServiceServer, channel_service_server::ChannelServiceServer,
    chat_service_server::ChatServiceServer, device_service_server::DeviceServiceServer,
    event_service_server::EventServiceServer, gateway_service_server::GatewayServiceServer,
    model_service_server::ModelServiceServer, session_service_server::SessionServiceServer,
    webhook_service_server::WebhookServiceServer,
};
use std::{sync::Arc, time::Duration};
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_layer::Layer;

/// Every clawplane service name, for health.
pub const SERVICES: [&str; 9] = [
    <ChatServiceServer<Api> as NamedService>::NAME,
    <SessionServiceServer<Api> as NamedService>::NAME,
    <AgentServiceServer<Api> as NamedService>::NAME,
    <EventServiceServer<Api> as NamedService>::NAME,
    <GatewayServiceServer<Api> as NamedService>::NAME,
    <ModelServiceServer<Api> as NamedService>::NAME,
    <DeviceServiceServer<Api> as NamedService>::NAME,
    <ChannelServiceServer<Api> as NamedService>::NAME,
    <WebhookServiceServer<Api> as NamedService>::NAME,
];

/// Builds the whole router. Returns it with the health reporter. With `hooks.enabled` the
/// OpenClaw hooks bridge is served too, and the auth gate accepts the hooks token.
pub async fn router(api: Api) -> anyhow::Result<(Router, HealthReporter)> {
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(clawplane_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let web = tonic_web::GrpcWebLayer::new();
    let grpc = tonic::service::Routes::new(web.layer(ChatServiceServer::new(api.clone())))
        .add_service(web.layer(SessionServiceServer::new(api.clone())))
        .add_service(web.layer(AgentServiceServer::new(api.clone())))
        .add_service(web.layer(EventServiceServer::new(api.clone())))
        .add_service(web.layer(GatewayServiceServer::new(api.clone())))
        .add_service(web.layer(ModelServiceServer::new(api.clone())))
        .add_service(web.layer(DeviceServiceServer::new(api.clone())))
        .add_service(web.layer(ChannelServiceServer::new(api.clone())))
        .add_service(web.layer(WebhookServiceServer::new(api.clone())))
        .add_service(web.layer(health_service))
        .add_service(web.layer(reflection_v1))
        .add_service(web.layer(reflection_v1alpha))
        .prepare()
        .into_axum_router();

    let gw = api.gw.clone();
    // OpenClaw's probe paths and bodies: `/health` and `/healthz` (GET and HEAD) say the
    // process lives, `/ready` and `/readyz` whether it takes work.
    let live = || get(|| async { axum::Json(serde_json::json!({"ok": true, "status": "live"})) });
    let ready = {
        let gw = gw.clone();
        move || {
            let gw = gw.clone();
            get(move || {
                let gw = gw.clone();
                async move { readyz(&gw) }
            })
        }
    };
    let http = Router::new()
        .route("/health", live())
        .route("/healthz", live())
        .route("/ready", ready())
        .route("/readyz", ready());

    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([http::Method::POST, http::Method::GET, http::Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            http::HeaderName::from_static("x-grpc-web"),
            http::HeaderName::from_static("x-user-agent"),
            http::HeaderName::from_static("grpc-timeout"),
            http::HeaderName::from_static("x-openclaw-token"),
        ])
        .expose_headers([
            http::HeaderName::from_static("grpc-status"),
            http::HeaderName::from_static("grpc-message"),
            http::HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600));

    let http = match hooks(&api)? {
        Some(hooks) => http.merge(hooks),
        None => http,
    };
    // Webhooks: the synchronous endpoint always (its keys decide), ingress when enabled.
    let webhooks: Arc<dyn clawplane_proto::v1::webhook_service_server::WebhookService> =
        Arc::new(api.clone());
    let http = http.merge(clawplane_bridge::webhooks::sync_router(webhooks.clone()));
    let http = if api.gw.config.webhooks.incoming.enabled {
        http.merge(clawplane_bridge::webhooks::ingress_router(webhooks))
    } else {
        http
    };

    // Inbound provider webhooks of the configured channels.
    let channels: Arc<dyn clawplane_proto::v1::channel_service_server::ChannelService> =
        Arc::new(api.clone());
    let mut http = http;
    for (channel, path) in api.gw.config.channels.inbound_paths() {
        http = http.merge(clawplane_bridge::channels::channel_router(
            channels.clone(),
            channel,
            &path,
        ));
    }

    let http = http.merge(ws(&api));
    // One fallback, set after the merge: gRPC callers get status 12, others a JSON 404.
    let app = http.merge(grpc).fallback(fallback).layer(cors);
    Ok((app, health))
}

/// This API's own services, for the bridge translators.
fn bridge_services(api: &Api) -> clawplane_bridge::Services {
    clawplane_bridge::Services {
        agent: Arc::new(api.clone()),
        gateway: Arc::new(api.clone()),
        chat: Arc::new(api.clone()),
        sessions: Arc::new(api.clone()),
        events: Arc::new(api.clone()),
        devices: Arc::new(api.clone()),
        channels: Arc::new(api.clone()),
    }
}

/// The OpenClaw WebSocket shim at `GET /` (a translator into the same services).
fn ws(api: &Api) -> Router {
    let cfg = clawplane_bridge::ws::WsConfig {
        version: env!("CARGO_PKG_VERSION").into(),
        max_connections: api.gw.config.gateway.max_connections,
        max_buffered_bytes: api.gw.config.gateway.ws.max_buffered_bytes,
        handshake_timeout: Duration::from_millis(api.gw.config.gateway.ws.handshake_timeout_ms),
        shutdown: api.gw.shutdown.clone(),
        ..Default::default()
    };
    clawplane_bridge::ws::ws_router(bridge_services(api), cfg)
}

/// The hooks bridge (`hooks.*`) when enabled: a translator into this API's own services.
fn hooks(api: &Api) -> anyhow::Result<Option<Router>> {
    let cfg = &api.gw.config;
    if !cfg.hooks.enabled {
        return Ok(None);
    }
    let token = cfg
        .hooks
        .token()
        .ok_or_else(|| anyhow::anyhow!("hooks.enabled requires hooks.token"))?;
    api.auth.enable_hooks_token(token);
    let services = bridge_services(api);
    let ctx = clawplane_bridge::hooks::HooksContext {
        channels: Some(cfg.channels.configured_ids()),
    };
    let router = clawplane_bridge::hooks::hooks_router(services, &cfg.hooks, ctx)
        .map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    Ok(Some(router))
}

fn readyz(gw: &Gateway) -> Response {
    if gw.shutdown.is_cancelled() || gw.runs.draining.load(std::sync::atomic::Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"ready": false, "reason": "shutting down"})),
        )
            .into_response()
    } else {
        axum::Json(serde_json::json!({"ready": true})).into_response()
    }
}

async fn fallback(req: Request<Body>) -> Response {
    let is_grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if is_grpc {
        let mut r = Response::new(Body::empty());
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from_static("12"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("unknown method; list methods with reflection"),
        );
        return r;
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "ok": false,
            "error": format!("no route for {} {}", req.method(), req.uri().path()),
        })),
    )
        .into_response()
}

/// Sets the overall and every per-service health status.
pub async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in SERVICES {
        health.set_service_status(name, status).await;
    }
}

/// The shutdown sequence after the first signal: NOT_SERVING, refuse new runs, let running
/// runs finish within the grace period, flush the store, end streams.
pub async fn drain(gw: &Arc<Gateway>, health: &HealthReporter, grace: Duration) {
    set_health(health, ServingStatus::NotServing).await;
    gw.runs
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    gw.runs.tasks.close();
    if tokio::time::timeout(grace, gw.runs.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "runs still running after the grace period; they resume as INTERRUPTED on next start"
        );
    }
    // Replicas: this one's sessions (and their queued runs) go to the others now.
    gw.runs.leave().await;
    // The writer is FIFO: once this no-op commits, everything queued before it is durable.
    if let Err(e) = gw.store.write(|_| Ok(())).await {
        tracing::error!(error = %e, "final flush failed");
    }
    gw.shutdown.cancel();
    // WebSockets get `shutdown` and close 1012; let their close handshakes finish.
    clawplane_bridge::ws::wait_closed(Duration::from_secs(2)).await;
}

/// Connection limits of the listener.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// `gateway.maxTcpConnections`.
    pub max_connections: usize,
    /// `gateway.headerReadTimeoutMs`.
    pub header_read_timeout: Duration,
    /// `gateway.limits.*`.
    pub listener: clawplane_config::gateway::ListenerLimitsConfig,
}

/// Open connections per client (IPv4 address or IPv6 /64). Bounded by construction: an
/// entry exists only while it counts at least one open connection, and there are at most
/// `gateway.maxTcpConnections` of those.
#[derive(Default)]
struct PerClient {
    open: std::sync::Mutex<std::collections::HashMap<crate::auth::ClientKey, usize>>,
}

/// One connection's place in [`PerClient`], given back when the socket is dropped.
struct ClientSlot {
    table: Arc<PerClient>,
    key: crate::auth::ClientKey,
}

impl PerClient {
    /// Takes a slot for `ip`, or `None` when the client already holds `cap`.
    fn take(self: &Arc<Self>, ip: std::net::IpAddr, cap: usize) -> Option<ClientSlot> {
        let key = crate::auth::ClientKey::of(ip);
        let mut open = clawplane_util::sync::lock(&self.open);
        let n = open.entry(key).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: self.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = clawplane_util::sync::lock(&self.table.open);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A socket that holds its connection permits for as long as it lives, so an upgraded
/// WebSocket (which outlives the HTTP connection task) still counts against
/// `gateway.maxTcpConnections` and the per-client cap.
struct Held<I> {
    io: I,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _slot: Option<ClientSlot>,
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Held<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Held<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Requests in flight on one connection and when the last one ended, for the idle timeout.
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    since: std::sync::Mutex<tokio::time::Instant>,
}

/// Counts one request as in flight until its response body is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(a: &Arc<Activity>) -> InFlight {
        a.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *clawplane_util::sync::lock(&self.0.since) = tokio::time::Instant::now();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Activity {
    /// Resolves once the connection has had no request in flight for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let since = *clawplane_util::sync::lock(&self.since);
            let busy = self.in_flight.load(std::sync::atomic::Ordering::Acquire) > 0;
            let due = since + idle;
            if !busy && tokio::time::Instant::now() >= due {
                return;
            }
            let next = if busy {
                tokio::time::Instant::now() + idle
            } else {
                due
            };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `stop`, then shuts the
/// connections down gracefully and returns once they have closed. One accept loop for both,
/// so both get TCP_NODELAY, the connection caps (`gateway.maxTcpConnections`,
/// `gateway.limits.maxConnectionsPerClient`), the request-head timeout
/// (`gateway.headerReadTimeoutMs`, a slowloris guard), the idle timeout and the HTTP/2
/// limits (`gateway.limits.*`), WebSocket upgrades (HTTP/1.1 and h2 CONNECT) and
/// `ConnectInfo<SocketAddr>` on every request.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    app: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    use hyper_util::{
        rt::{TokioExecutor, TokioTimer},
        server::conn::auto::Builder,
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let connections = tokio_util::task::TaskTracker::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let per_client = Arc::new(PerClient::default());
    let l = &limits.listener;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let ping = (l.http2.keep_alive_interval_ms > 0)
        .then(|| Duration::from_millis(l.http2.keep_alive_interval_ms));
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .keep_alive_interval(ping)
        .keep_alive_timeout(Duration::from_millis(l.http2.keep_alive_timeout_ms.max(1)))
        .max_concurrent_streams(l.http2.max_concurrent_streams)
        .max_header_list_size(l.http2.max_header_list_size);
    let builder = Arc::new(builder);
    let idle = (l.idle_timeout_ms > 0).then(|| Duration::from_millis(l.idle_timeout_ms));
    let (per_client_cap, exempt_loopback) = (l.max_connections_per_client, l.exempt_loopback);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Past a cap the connection is closed unanswered (the client sees EOF and may retry).
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!(%peer, limit = limits.max_connections, "connection refused: gateway.maxTcpConnections");
            continue;
        };
        let capped =
            per_client_cap > 0 && !(exempt_loopback && clawplane_util::net::is_loopback(peer.ip()));
        let slot = if capped {
            match per_client.take(peer.ip(), per_client_cap) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, limit = per_client_cap, "connection refused: gateway.limits.maxConnectionsPerClient");
                    continue;
                }
            }
        } else {
            None
        };
        // Small replies must not wait for Nagle's algorithm (40 ms tails otherwise).
        let _ = tcp.set_nodelay(true);
        let tcp = Held {
            io: tcp,
            _permit: permit,
            _slot: slot,
        };
        let (acceptor, app, builder, stop) =
            (acceptor.clone(), app.clone(), builder.clone(), stop.clone());
        connections.spawn(async move {
            let Some(acceptor) = acceptor else {
                return serve_connection(tcp, peer, app, &builder, idle, &stop).await;
            };
            let handshake =
                tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            match tokio::select! { _ = stop.cancelled() => return, r = handshake => r } {
                Ok(Ok(tls)) => serve_connection(tls, peer, app, &builder, idle, &stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves one connection until it ends, gracefully (in-flight requests finish, HTTP/2
/// GOAWAY) once `stop` fires or it has been idle for `idle`.
async fn serve_connection<I>(
    io: I,
    peer: std::net::SocketAddr,
    app: Router,
    builder: &hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    idle: Option<Duration>,
    stop: &tokio_util::sync::CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        in_flight: std::sync::atomic::AtomicUsize::new(0),
        since: std::sync::Mutex::new(tokio::time::Instant::now()),
    });
    let act = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        // In flight until the response body is done with (streams and waits included).
        let guard = InFlight::start(&act);
        let call = tower::ServiceExt::oneshot(app.clone(), req);
        async move {
            let resp = call.await?;
            Ok::<_, std::convert::Infallible>(resp.map(|body| {
                Body::new(http_body_util::BodyExt::map_frame(body, move |f| {
                    let _ = &guard;
                    f
                }))
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let idle_for = async {
        match idle {
            Some(d) => activity.idle(d).await,
            None => std::future::pending().await,
        }
    };
    let r = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        _ = idle_for => {
            tracing::debug!(%peer, "closing an idle connection (gateway.limits.idleTimeoutMs)");
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Compiles what the config's data checks cannot see (provider and endpoint URLs, hook and
/// ingress templates): the steps the gateway takes when it opens, without a store or a
/// port, so `clawplane config validate` and a start refuse exactly the same files.
pub fn check_config(cfg: &crate::config::Config) -> Result<(), crate::config::ConfigError> {
    use crate::config::ConfigError;
    crate::models::validate_config(cfg).map_err(ConfigError::Invalid)?;
    clawplane_bridge::hooks::check(&cfg.hooks).map_err(ConfigError::Invalid)?;
    if cfg.webhooks.incoming.enabled {
        crate::core::webhooks::Endpoints::compile(&cfg.webhooks.incoming)
            .map_err(ConfigError::Invalid)?;
    }
    crate::core::egress::validate(&cfg.webhooks.outgoing, &cfg.webhooks.egress)
        .map_err(ConfigError::Invalid)?;
    Ok(())
}
