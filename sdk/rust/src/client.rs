//! The connected client: raw generated service clients plus typed convenience calls.

use std::future::Future;
use std::time::Duration;

use clawplane_proto::v1::{
    self as pb, agent_service_client::AgentServiceClient,
    channel_service_client::ChannelServiceClient, chat_service_client::ChatServiceClient,
    device_service_client::DeviceServiceClient, event_service_client::EventServiceClient,
    gateway_service_client::GatewayServiceClient, session_service_client::SessionServiceClient,
    webhook_service_client::WebhookServiceClient,
};
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::tls::TlsOptions;

use crate::error::{Error, chain_has_refused, error_chain};
use crate::run::RunHandle;
use crate::watch::EventWatch;

/// Largest message the generated clients accept (transcripts can be long).
const MAX_DECODE: usize = 64 * 1024 * 1024;
/// Attempts for idempotent unary calls that fail with UNAVAILABLE (AIP-194).
const UNARY_ATTEMPTS: u32 = 3;
/// Longest single `AgentService/Wait` call; the server treats 0 as 30 s.
const WAIT_CHUNK: Duration = Duration::from_secs(30);

/// How long to wait for a run when the caller has no better figure: 30 s, as in every
/// clawplane SDK (`wait()` in TypeScript and Python, `Run.Wait` in Go), the CLI's
/// `runs wait` and the gateway's own `AgentService/Wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Default)]
pub struct Auth {
    value: Option<MetadataValue<Ascii>>,
}

impl Auth {
    /// An interceptor presenting `token` (none when `None`).
    pub fn new(token: Option<&str>) -> Result<Auth, Error> {
        let value = match token {
            None => None,
            Some(t) => {
                let mut v: MetadataValue<Ascii> = format!("Bearer {t}")
                    .parse()
                    .map_err(|_| Error::InvalidToken)?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(Auth { value })
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.value {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The transport every generated client of a [`Client`] runs on: the shared channel with
/// the bearer-token interceptor.
pub type AuthChannel = InterceptedService<Channel, Auth>;

/// A connection to one clawplane gateway. Cheap to clone (clones share the HTTP/2
/// connection).
///
/// ```no_run
/// # async fn demo() -> Result<(), clawplane_sdk::Error> {
/// use clawplane_sdk::{Client, discover, pb};
/// let (url, token) = discover(None, None);
/// let client = Client::connect(&url, token).await?;
/// let run = client
///     .agent_run(pb::AgentServiceRunRequest { message: "hi".into(), ..Default::default() })
///     .await?
///     .wait(std::time::Duration::from_secs(60))
///     .await?;
/// println!("{}", run.reply_text);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    auth: Auth,
    url: String,
    /// Time limit of every typed call ([`Client::with_timeout`]).
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn endpoint(url: &str) -> Result<Endpoint, Error> {
    let url = crate::discover::normalize_url(url);
    let ep = Endpoint::from_shared(url.clone()).map_err(|e| Error::InvalidUrl {
        url: url.clone(),
        detail: error_chain(&e),
    })?;
    Ok(ep
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true))
}

fn deadline_exceeded(limit: Duration) -> Error {
    tonic::Status::deadline_exceeded(format!(
        "the call did not finish within its timeout of {} ms",
        limit.as_millis()
    ))
    .into()
}

/// The TLS connector of an `https://` endpoint, when the URL is one.
type Tls = Option<(crate::tls::Connector, crate::tls::Mismatch)>;

fn tls_for(ep: &Endpoint, url: &str, opts: &TlsOptions) -> Result<Tls, Error> {
    if ep.uri().scheme_str() != Some("https") {
        if opts.ca_file.is_some() || opts.fingerprint.is_some() {
            return Err(Error::Tls {
                url: url.to_string(),
                detail: "--tls-ca / --tls-fingerprint need an https:// (or wss://) URL".into(),
            });
        }
        return Ok(None);
    }
    let (config, mismatch) =
        crate::tls::client_config(opts, &[b"h2"]).map_err(|detail| Error::Tls {
            url: url.to_string(),
            detail,
        })?;
    Ok(Some((crate::tls::Connector { config }, mismatch)))
}

impl Client {
    /// Connects to the gateway at `url` (`http://host:port` or `https://host:port`; a
    /// missing scheme means `http://`, `ws://`/`wss://` are accepted as `http://`/`https://`)
    /// and presents `token` as `authorization: Bearer <token>` on every call. An `https://`
    /// URL trusts the public (Mozilla) roots; see [`Client::connect_with`].
    ///
    /// The TCP/HTTP2 connection is made now, so an unreachable gateway fails here with
    /// [`Error::Connect`] (or [`Error::Tls`] when its certificate is refused); later drops are
    /// re-dialled transparently by the channel.
    pub async fn connect(url: &str, token: Option<String>) -> Result<Client, Error> {
        Self::connect_with(url, token, TlsOptions::default()).await
    }

    /// Like [`Client::connect`], checking an `https://` gateway's certificate as `tls` says
    /// (a CA file, or a pinned SHA-256 fingerprint).
    pub async fn connect_with(
        url: &str,
        token: Option<String>,
        tls: TlsOptions,
    ) -> Result<Client, Error> {
        let auth = Auth::new(token.as_deref())?;
        let ep = endpoint(url)?;
        let url = ep.uri().to_string().trim_end_matches('/').to_string();
        let connected = match tls_for(&ep, &url, &tls)? {
            None => ep.connect().await.map_err(|e| (e, None)),
            Some((connector, mismatch)) => ep
                .connect_with_connector(connector)
                .await
                .map_err(|e| (e, Some(mismatch))),
        };
        let channel = connected.map_err(|(e, mismatch)| {
            let detail = error_chain(&e);
            let pinned = mismatch.and_then(|m| m.lock().ok().and_then(|m| m.clone()));
            if let Some(detail) = pinned {
                return Error::Tls {
                    url: url.clone(),
                    detail,
                };
            }
            if detail.contains("certificate") || detail.contains("peer sent no certificates") {
                return Error::Tls {
                    url: url.clone(),
                    detail,
                };
            }
            Error::Connect {
                url: url.clone(),
                refused: chain_has_refused(&e),
                detail,
            }
        })?;
        Ok(Client {
            channel,
            auth,
            url,
            timeout: None,
        })
    }

    /// Like [`Client::connect`] but does not dial until the first call.
    pub fn connect_lazy(url: &str, token: Option<String>) -> Result<Client, Error> {
        Self::connect_lazy_with(url, token, TlsOptions::default())
    }

    /// Like [`Client::connect_with`] but does not dial until the first call.
    pub fn connect_lazy_with(
        url: &str,
        token: Option<String>,
        tls: TlsOptions,
    ) -> Result<Client, Error> {
        let auth = Auth::new(token.as_deref())?;
        let ep = endpoint(url)?;
        let url = ep.uri().to_string().trim_end_matches('/').to_string();
        let channel = match tls_for(&ep, &url, &tls)? {
            None => ep.connect_lazy(),
            Some((connector, _)) => ep.connect_with_connector_lazy(connector),
        };
        Ok(Client {
            channel,
            auth,
            url,
            timeout: None,
        })
    }

    /// The gateway URL this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A clone of this client (same connection) whose every typed call — [`Client::status`],
    /// [`Client::agent_run`], [`Client::wait_run`], the [`RunHandle`]s it returns, ... — must
    /// finish within `timeout`, its retries and pages included; past it the call fails with
    /// `DEADLINE_EXCEEDED` (a zero timeout: before anything is sent). For
    /// [`Client::wait_run`] this is a hard limit on top of the wait's own timeout, which
    /// returns the run as it stands. The raw generated clients are not affected. To cancel
    /// a call, drop its future (e.g. in `tokio::select!`).
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout: Some(timeout),
            ..self.clone()
        }
    }

    /// The time limit of every typed call, if [`Client::with_timeout`] set one.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Runs one typed call within the client's time limit.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let Some(limit) = self.timeout else {
            return call.await;
        };
        if limit.is_zero() {
            return Err(deadline_exceeded(limit));
        }
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded(limit)))
    }

    /// The underlying channel without the auth interceptor (health checks, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    fn intercepted(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    /// The generated `ChatService` client.
    pub fn chat(&self) -> ChatServiceClient<AuthChannel> {
        ChatServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// The generated `SessionService` client.
    pub fn sessions(&self) -> SessionServiceClient<AuthChannel> {
        SessionServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// The generated `AgentService` client.
    pub fn agent(&self) -> AgentServiceClient<AuthChannel> {
        AgentServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// The generated `EventService` client.
    pub fn events(&self) -> EventServiceClient<AuthChannel> {
        EventServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// The generated `GatewayService` client.
    pub fn gateway(&self) -> GatewayServiceClient<AuthChannel> {
        GatewayServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// The generated `DeviceService` client.
    pub fn devices(&self) -> DeviceServiceClient<AuthChannel> {
        DeviceServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// The generated `ChannelService` client.
    pub fn channels(&self) -> ChannelServiceClient<AuthChannel> {
        ChannelServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// The generated `WebhookService` client.
    pub fn webhooks(&self) -> WebhookServiceClient<AuthChannel> {
        WebhookServiceClient::new(self.intercepted()).max_decoding_message_size(MAX_DECODE)
    }

    /// Runs an idempotent unary call, retrying UNAVAILABLE a few times with backoff
    /// (AIP-194: nothing else is retried).
    pub(crate) async fn retry<T, F, Fut>(&self, mut call: F) -> Result<(T, u32), Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(resp) => return Ok((resp.into_inner(), attempt)),
                Err(s) if s.code() == Code::Unavailable && attempt < UNARY_ATTEMPTS => {
                    tracing::debug!(attempt, error = %s, "retrying UNAVAILABLE call");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(s) => return Err(s.into()),
            }
        }
    }

    /// `GatewayService/Status`: version, defaults, queue depths and the event-log head.
    pub async fn status(&self) -> Result<pb::GatewayServiceStatusResponse, Error> {
        self.bounded(async move {
            let c = self.gateway();
            self.retry(|| {
                let mut c = c.clone();
                async move { c.status(pb::GatewayServiceStatusRequest {}).await }
            })
            .await
            .map(|(r, _)| r)
        })
        .await
    }

    /// `GatewayService/Wake`: queues a system event (and with mode NOW starts a heartbeat
    /// run). Not retried: a repeat could start a second heartbeat.
    pub async fn wake(
        &self,
        req: pb::GatewayServiceWakeRequest,
    ) -> Result<pb::GatewayServiceWakeResponse, Error> {
        self.bounded(async move { Ok(self.gateway().wake(req).await?.into_inner()) })
            .await
    }

    /// The event-log head, or `None` when the caller may not read status. Used to start a
    /// run's event stream right before the run's first event.
    async fn head_seq(&self) -> Option<u64> {
        self.status().await.ok().map(|s| s.last_event_seq)
    }

    /// `AgentService/Run`: starts an agent turn and returns a handle to wait for, stream or
    /// cancel it.
    ///
    /// When `idempotency_key` is empty the SDK generates one (a UUID, which also becomes the
    /// run id), so that the submission can be retried safely on UNAVAILABLE.
    pub async fn agent_run(&self, mut req: pb::AgentServiceRunRequest) -> Result<RunHandle, Error> {
        self.bounded(async move {
            let auto_key = req.idempotency_key.is_empty();
            if auto_key {
                req.idempotency_key = uuid::Uuid::new_v4().to_string();
            }
            let head = self.head_seq().await;
            let c = self.agent();
            let (resp, attempts) = self
                .retry(|| {
                    let mut c = c.clone();
                    let req = req.clone();
                    async move { c.run(req).await }
                })
                .await?;
            let state = resp.state();
            Ok(RunHandle::new(
                self.clone(),
                resp.run_id,
                resp.session_key,
                resp.duplicate && !(auto_key && attempts > 1),
                state,
                head,
            ))
        })
        .await
    }

    /// `ChatService/Send`: sends a user message into a session (created on first use) and
    /// returns the run's handle. An empty idempotency key is generated as in
    /// [`Client::agent_run`].
    pub async fn chat_send(&self, mut req: pb::ChatServiceSendRequest) -> Result<RunHandle, Error> {
        self.bounded(async move {
            let auto_key = req.idempotency_key.is_empty();
            if auto_key {
                req.idempotency_key = uuid::Uuid::new_v4().to_string();
            }
            let head = self.head_seq().await;
            let c = self.chat();
            let (resp, attempts) = self
                .retry(|| {
                    let mut c = c.clone();
                    let req = req.clone();
                    async move { c.send(req).await }
                })
                .await?;
            let state = resp.state();
            Ok(RunHandle::new(
                self.clone(),
                resp.run_id,
                resp.session_key,
                resp.duplicate && !(auto_key && attempts > 1),
                state,
                head,
            ))
        })
        .await
    }

    /// `SessionService/Send`: sends into an existing session (NOT_FOUND
    /// `SESSION_NOT_FOUND` otherwise) and returns the run's handle.
    pub async fn sessions_send(
        &self,
        mut req: pb::SessionServiceSendRequest,
    ) -> Result<RunHandle, Error> {
        self.bounded(async move {
            let auto_key = req.idempotency_key.is_empty();
            if auto_key {
                req.idempotency_key = uuid::Uuid::new_v4().to_string();
            }
            let head = self.head_seq().await;
            let c = self.sessions();
            let (resp, attempts) = self
                .retry(|| {
                    let mut c = c.clone();
                    let req = req.clone();
                    async move { c.send(req).await }
                })
                .await?;
            let state = resp.state();
            Ok(RunHandle::new(
                self.clone(),
                resp.run_id,
                resp.session_key,
                resp.duplicate && !(auto_key && attempts > 1),
                state,
                head,
            ))
        })
        .await
    }

    /// `SessionService/List`, every page: sessions most recently updated first.
    /// `agent_id` empty lists all agents' sessions.
    pub async fn sessions_list(&self, agent_id: &str) -> Result<Vec<pb::Session>, Error> {
        self.bounded(async move {
            let c = self.sessions();
            let mut out = Vec::new();
            let mut token = String::new();
            loop {
                let req = pb::SessionServiceListRequest {
                    agent_id: agent_id.to_string(),
                    page_size: 1000,
                    page_token: token.clone(),
                };
                let (resp, _) = self
                    .retry(|| {
                        let mut c = c.clone();
                        let req = req.clone();
                        async move { c.list(req).await }
                    })
                    .await?;
                out.extend(resp.sessions);
                if resp.next_page_token.is_empty() || resp.next_page_token == token {
                    return Ok(out);
                }
                token = resp.next_page_token;
            }
        })
        .await
    }

    /// `SessionService/Get` for a bare or full session key.
    pub async fn sessions_get(&self, session_key: &str) -> Result<pb::Session, Error> {
        self.bounded(async move {
            let c = self.sessions();
            let req = pb::SessionServiceGetRequest {
                session_key: session_key.to_string(),
                agent_id: String::new(),
            };
            let (resp, _) = self
                .retry(|| {
                    let mut c = c.clone();
                    let req = req.clone();
                    async move { c.get(req).await }
                })
                .await?;
            resp.session
                .ok_or_else(|| Error::Protocol("SessionService/Get returned no session".into()))
        })
        .await
    }

    /// `SessionService/Resolve`: the canonical key for a bare key or a channel route.
    pub async fn sessions_resolve(
        &self,
        req: pb::SessionServiceResolveRequest,
    ) -> Result<pb::SessionServiceResolveResponse, Error> {
        self.bounded(async move {
            let c = self.sessions();
            self.retry(|| {
                let mut c = c.clone();
                let req = req.clone();
                async move { c.resolve(req).await }
            })
            .await
            .map(|(r, _)| r)
        })
        .await
    }

    /// `ChatService/History`, every page: the session and its current transcript, oldest
    /// first.
    pub async fn sessions_history(
        &self,
        session_key: &str,
    ) -> Result<(pb::Session, Vec<pb::Message>), Error> {
        self.bounded(async move {
            let c = self.chat();
            let mut session = None;
            let mut messages = Vec::new();
            let mut token = String::new();
            loop {
                let req = pb::ChatServiceHistoryRequest {
                    session_key: session_key.to_string(),
                    agent_id: String::new(),
                    page_size: 1000,
                    page_token: token.clone(),
                };
                let (resp, _) = self
                    .retry(|| {
                        let mut c = c.clone();
                        let req = req.clone();
                        async move { c.history(req).await }
                    })
                    .await?;
                if session.is_none() {
                    session = resp.session;
                }
                messages.extend(resp.messages);
                if resp.next_page_token.is_empty() || resp.next_page_token == token {
                    break;
                }
                token = resp.next_page_token;
            }
            let session = session
                .ok_or_else(|| Error::Protocol("ChatService/History returned no session".into()))?;
            Ok((session, messages))
        })
        .await
    }

    /// `SessionService/Reset`: starts a new transcript generation; returns the session.
    pub async fn sessions_reset(&self, session_key: &str) -> Result<pb::Session, Error> {
        self.bounded(async move {
            let resp = self
                .sessions()
                .reset(pb::SessionServiceResetRequest {
                    session_key: session_key.to_string(),
                    agent_id: String::new(),
                })
                .await?
                .into_inner();
            resp.session
                .ok_or_else(|| Error::Protocol("SessionService/Reset returned no session".into()))
        })
        .await
    }

    /// `SessionService/Delete`: deletes a session (FAILED_PRECONDITION `SESSION_BUSY` while
    /// it has active runs); returns the deleted key.
    pub async fn sessions_delete(&self, session_key: &str) -> Result<String, Error> {
        self.bounded(async move {
            let resp = self
                .sessions()
                .delete(pb::SessionServiceDeleteRequest {
                    session_key: session_key.to_string(),
                    agent_id: String::new(),
                })
                .await?
                .into_inner();
            Ok(resp.session_key)
        })
        .await
    }

    /// `AgentService/GetRun`.
    pub async fn get_run(&self, run_id: &str) -> Result<pb::Run, Error> {
        self.get_run_by(pb::GetRunRequest {
            run_id: run_id.to_string(),
            ..Default::default()
        })
        .await
    }

    /// `AgentService/GetRun` by the idempotency key this client's credential started the run
    /// with (keys are per credential; the run id is the server's).
    pub async fn get_run_by_key(&self, idempotency_key: &str) -> Result<pb::Run, Error> {
        self.get_run_by(pb::GetRunRequest {
            idempotency_key: idempotency_key.to_string(),
            ..Default::default()
        })
        .await
    }

    async fn get_run_by(&self, req: pb::GetRunRequest) -> Result<pb::Run, Error> {
        self.bounded(async move {
            let c = self.agent();
            let (resp, _) = self
                .retry(|| {
                    let mut c = c.clone();
                    let req = req.clone();
                    async move { c.get_run(req).await }
                })
                .await?;
            resp.run
                .ok_or_else(|| Error::Protocol("AgentService/GetRun returned no run".into()))
        })
        .await
    }

    /// Waits up to `timeout` for the run to reach a terminal state, calling
    /// `AgentService/Wait` in chunks of at most 30 s (and re-calling on UNAVAILABLE).
    ///
    /// Returns the run as it stands when the wait ends: check [`crate::is_terminal`] (or the
    /// state) to tell a finished run from a timeout. A zero timeout just reads the run.
    pub async fn wait_run(&self, run_id: &str, timeout: Duration) -> Result<pb::Run, Error> {
        self.bounded(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut backoff = Duration::from_millis(100);
            loop {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                if remaining.is_zero() {
                    return self.get_run(run_id).await;
                }
                let chunk = remaining.min(WAIT_CHUNK);
                let ms = u32::try_from(chunk.as_millis()).unwrap_or(u32::MAX).max(1);
                let mut req = tonic::Request::new(pb::AgentServiceWaitRequest {
                    run_id: run_id.to_string(),
                    timeout_ms: ms,
                    ..Default::default()
                });
                // Leave the server room to answer done=false before the transport gives up.
                req.set_timeout(chunk + Duration::from_secs(10));
                match self.agent().wait(req).await {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        let run = resp.run.ok_or_else(|| {
                            Error::Protocol("AgentService/Wait returned no run".into())
                        })?;
                        if resp.done || tokio::time::Instant::now() >= deadline {
                            return Ok(run);
                        }
                        backoff = Duration::from_millis(100);
                    }
                    Err(s)
                        if s.code() == Code::Unavailable
                            && tokio::time::Instant::now() + backoff < deadline =>
                    {
                        tracing::debug!(error = %s, "AgentService/Wait unavailable; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                    Err(s) => return Err(s.into()),
                }
            }
        })
        .await
    }

    /// `AgentService/CancelRun`: cancels a queued or running run; a terminal run is returned
    /// unchanged (so the call is safe to retry).
    pub async fn cancel_run(&self, run_id: &str) -> Result<pb::Run, Error> {
        self.bounded(async move {
            let c = self.agent();
            let req = pb::CancelRunRequest {
                run_id: run_id.to_string(),
            };
            let (resp, _) = self
                .retry(|| {
                    let mut c = c.clone();
                    let req = req.clone();
                    async move { c.cancel_run(req).await }
                })
                .await?;
            resp.run
                .ok_or_else(|| Error::Protocol("AgentService/CancelRun returned no run".into()))
        })
        .await
    }

    /// `AgentService/ListRuns`: one page of runs, newest first.
    pub async fn list_runs(&self, req: pb::ListRunsRequest) -> Result<pb::ListRunsResponse, Error> {
        self.bounded(async move {
            let c = self.agent();
            self.retry(|| {
                let mut c = c.clone();
                let req = req.clone();
                async move { c.list_runs(req).await }
            })
            .await
            .map(|(r, _)| r)
        })
        .await
    }

    /// A handle for an existing run (reads it once to learn its session).
    pub async fn run_handle(&self, run_id: &str) -> Result<RunHandle, Error> {
        self.bounded(async move {
            let run = self.get_run(run_id).await?;
            Ok(RunHandle::new(
                self.clone(),
                run.run_id.clone(),
                run.session_key.clone(),
                false,
                run.state(),
                None,
            ))
        })
        .await
    }

    /// An auto-resuming `EventService/Watch`: events with seq > `after_seq` matching
    /// `filter`, then live ones. See [`EventWatch`] for the resume rules.
    pub fn watch(&self, after_seq: u64, filter: pb::EventFilter) -> EventWatch {
        EventWatch::new(self.clone(), after_seq, filter)
    }

    /// `DeviceService/ListDevices`, every page: pending pairing requests (oldest first) and
    /// paired devices (by id).
    pub async fn devices_list(&self) -> Result<pb::ListDevicesResponse, Error> {
        self.bounded(async move {
            let c = self.devices();
            let mut all = pb::ListDevicesResponse::default();
            loop {
                let page_token = std::mem::take(&mut all.next_page_token);
                let (page, _) = self
                    .retry(|| {
                        let mut c = c.clone();
                        let page_token = page_token.clone();
                        async move {
                            c.list_devices(pb::ListDevicesRequest {
                                page_size: 1000,
                                page_token,
                            })
                            .await
                        }
                    })
                    .await?;
                all.pending.extend(page.pending);
                all.paired.extend(page.paired);
                if page.next_page_token.is_empty() {
                    return Ok(all);
                }
                all.next_page_token = page.next_page_token;
            }
        })
        .await
    }

    /// `DeviceService/ApprovePairing`: approves a pending request; returns the paired device.
    pub async fn devices_approve(&self, request_id: &str) -> Result<pb::Device, Error> {
        self.bounded(async move {
            let r = self
                .devices()
                .approve_pairing(pb::ApprovePairingRequest {
                    request_id: request_id.to_string(),
                })
                .await?
                .into_inner();
            r.device.ok_or_else(|| {
                Error::from(tonic::Status::internal("ApprovePairing answered no device"))
            })
        })
        .await
    }

    /// Like [`Client::watch`] but starts at the current head of the log (only new events).
    pub async fn watch_live(&self, filter: pb::EventFilter) -> Result<EventWatch, Error> {
        self.bounded(async move {
            let head = self.status().await?.last_event_seq;
            Ok(self.watch(head, filter))
        })
        .await
    }
}
