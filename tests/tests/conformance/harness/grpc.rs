//! gRPC: the typed clients (the Rust SDK's, with this gateway's token, or raw tonic ones
//! with any [`Token`] for tests of metadata and credentials) and the unary helpers, built on
//! `clawplane-sdk` wherever it offers the call.

use std::path::PathBuf;
use std::time::Duration;

use clawplane_proto::v1::agent_service_client::AgentServiceClient;
use clawplane_proto::v1::channel_service_client::ChannelServiceClient;
use clawplane_proto::v1::chat_service_client::ChatServiceClient;
use clawplane_proto::v1::device_service_client::DeviceServiceClient;
use clawplane_proto::v1::event_service_client::EventServiceClient;
use clawplane_proto::v1::gateway_service_client::GatewayServiceClient;
use clawplane_proto::v1::session_service_client::SessionServiceClient;
use clawplane_proto::v1::webhook_service_client::WebhookServiceClient;
use clawplane_proto::v1::{
    ChatServiceHistoryResponse, ChatServiceSendRequest, ChatServiceSendResponse,
    GatewayServiceStatusResponse, ListRunsRequest, Run,
};
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::tls::{tls_client_config, tls_connect};
use super::{Gateway, PATIENCE, is_terminal};

/// Adds credentials to every call (or none).
#[derive(Clone, Debug)]
pub struct Token {
    header: &'static str,
    value: Option<MetadataValue<Ascii>>,
    /// Further metadata on every call (e.g. `x-forwarded-for` through a trusted proxy).
    extra: Vec<(&'static str, MetadataValue<Ascii>)>,
}

impl Token {
    /// `authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Self {
        Self {
            header: "authorization",
            value: Some(format!("Bearer {token}").parse().expect("ascii token")),
            extra: Vec::new(),
        }
    }
    /// `x-openclaw-token: <token>`.
    pub fn openclaw(token: &str) -> Self {
        Self {
            header: "x-openclaw-token",
            value: Some(token.parse().expect("ascii token")),
            extra: Vec::new(),
        }
    }
    /// No credentials at all.
    pub fn none() -> Self {
        Self {
            header: "authorization",
            value: None,
            extra: Vec::new(),
        }
    }
    /// The same credential, plus the metadata `name: value` on every call.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.extra
            .push((name, value.parse().expect("ascii header value")));
        self
    }
}

impl Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.value {
            req.metadata_mut().insert(self.header, v.clone());
        }
        for (k, v) in &self.extra {
            req.metadata_mut().insert(*k, v.clone());
        }
        Ok(req)
    }
}

/// A channel that adds credentials.
pub type Authed = InterceptedService<Channel, Token>;

/// The transport of the SDK's generated clients (the gateway token on every call).
pub type Sdk = clawplane_sdk::AuthChannel;

/// What the cached SDK client was made for: url, token and trusted CA.
pub type SdkKey = (String, String, Option<PathBuf>);

impl Gateway {
    /// The Rust SDK client for the current process with this gateway's token (over TLS
    /// trusting [`Gateway::ca_path`] when it serves `https://`). Made on first use and shared
    /// by the helpers until the next start, or until the url, token or CA changes. When
    /// clustered, each call takes the next replica's client: a test's helper calls spread
    /// over the replicas.
    pub fn sdk(&self) -> clawplane_sdk::Client {
        let ca = self.is_tls().then(|| self.ca_path());
        let mut cached = self.sdk.lock().unwrap();
        let (clients, turn) = &mut *cached;
        let url = if self.direct.is_empty() {
            self.url.clone()
        } else {
            *turn = (*turn + 1) % self.direct.len();
            self.direct[*turn].clone()
        };
        let key: SdkKey = (url, self.token.clone(), ca.clone());
        if let Some((_, c)) = clients.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let tls = clawplane_sdk::TlsOptions {
            ca_file: ca,
            fingerprint: None,
        };
        let token = (!self.token.is_empty()).then(|| self.token.clone());
        let client = clawplane_sdk::Client::connect_lazy_with(&key.0, token, tls)
            .unwrap_or_else(|e| panic!("harness: SDK client for {}: {e}", key.0));
        clients.push((key, client.clone()));
        client
    }

    /// A fresh HTTP/2 channel to the current process (over TLS trusting [`Gateway::ca_path`]
    /// when it serves `https://`).
    pub async fn channel(&self) -> Channel {
        let ep = Endpoint::from_shared(self.url.clone())
            .expect("valid url")
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(90));
        let connected = if self.is_tls() {
            let config = tls_client_config(&self.ca_path(), &[b"h2"]);
            ep.connect_with_connector(tower::service_fn(move |uri: tonic::codegen::http::Uri| {
                tls_connect(uri, config.clone())
            }))
            .await
        } else {
            ep.connect().await
        };
        match connected {
            Ok(ch) => ch,
            Err(e) => panic!(
                "harness: cannot connect to {}: {e:?}\n----- stderr -----\n{}",
                self.url,
                self.stderr()
            ),
        }
    }

    /// Credentials of this gateway's token.
    pub fn auth(&self) -> Token {
        Token::bearer(&self.token)
    }
}

macro_rules! clients {
    ($($name:ident, $name_as:ident => $client:ident;)*) => {
        impl Gateway {
            $(
                #[doc = concat!("The SDK's `", stringify!($client), "` with this gateway's token.")]
                pub async fn $name(&self) -> $client<Sdk> {
                    self.sdk().$name()
                }
                #[doc = concat!("A raw `", stringify!($client), "` on a fresh connection with the given credentials.")]
                pub async fn $name_as(&self, token: Token) -> $client<Authed> {
                    $client::with_interceptor(self.channel().await, token)
                }
            )*
        }
    };
}

clients! {
    chat, chat_as => ChatServiceClient;
    sessions, sessions_as => SessionServiceClient;
    agent, agent_as => AgentServiceClient;
    events, events_as => EventServiceClient;
    gateway, gateway_as => GatewayServiceClient;
    devices, devices_as => DeviceServiceClient;
    channels, channels_as => ChannelServiceClient;
    webhooks, webhooks_as => WebhookServiceClient;
}

/// Panics with the SDK error of a helper call.
fn or_panic<T>(r: Result<T, clawplane_sdk::Error>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
}

impl Gateway {
    /// `grpc.health.v1.Health` (no token).
    pub async fn health(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        tonic_health::pb::health_client::HealthClient::new(self.channel().await)
    }

    /// `GatewayService/Status`.
    pub async fn status(&self) -> GatewayServiceStatusResponse {
        or_panic(self.sdk().status().await, "GatewayService/Status")
    }

    /// `ChatService/Send` of `message` into session `session` (bare or full key).
    pub async fn send(&self, session: &str, message: &str) -> ChatServiceSendResponse {
        self.send_req(ChatServiceSendRequest {
            session_key: session.into(),
            message: message.into(),
            ..Default::default()
        })
        .await
    }

    /// `ChatService/Send` that must succeed, sent as given through the SDK's generated
    /// client (the SDK's `chat_send` would add an idempotency key and a Status call).
    pub async fn send_req(&self, req: ChatServiceSendRequest) -> ChatServiceSendResponse {
        self.chat()
            .await
            .send(req.clone())
            .await
            .unwrap_or_else(|s| panic!("ChatService/Send {req:?} failed: {s:?}"))
            .into_inner()
    }

    /// `ChatService/History`: the session and its whole transcript (every page).
    pub async fn history(&self, session: &str) -> ChatServiceHistoryResponse {
        let (session_pb, messages) = or_panic(
            self.sdk().sessions_history(session).await,
            &format!("ChatService/History {session}"),
        );
        ChatServiceHistoryResponse {
            session: Some(session_pb),
            messages,
            next_page_token: String::new(),
        }
    }

    /// `AgentService/GetRun`.
    pub async fn get_run(&self, run_id: &str) -> Run {
        or_panic(
            self.sdk().get_run(run_id).await,
            &format!("GetRun {run_id}"),
        )
    }

    /// `SessionService/Get`.
    pub async fn get_session(&self, key: &str) -> clawplane_proto::v1::Session {
        or_panic(
            self.sdk().sessions_get(key).await,
            &format!("SessionService/Get {key}"),
        )
    }

    /// `AgentService/ListRuns` of a session ("" = every session), every page, newest first.
    pub async fn list_runs(&self, session: &str) -> Vec<Run> {
        let sdk = self.sdk();
        let mut runs = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = or_panic(
                sdk.list_runs(ListRunsRequest {
                    session_key: session.into(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await,
                &format!("ListRuns {session}"),
            );
            runs.extend(page.runs);
            if page.next_page_token.is_empty() || page.next_page_token == page_token {
                return runs;
            }
            page_token = page.next_page_token;
        }
    }

    /// `AgentService/Wait` until the run is terminal (panics after [`PATIENCE`]).
    pub async fn wait_run(&self, run_id: &str) -> Run {
        let run = or_panic(
            self.sdk().wait_run(run_id, PATIENCE).await,
            &format!("AgentService/Wait {run_id}"),
        );
        assert!(
            is_terminal(run.state()),
            "run {run_id} not terminal within {PATIENCE:?}: {run:?}"
        );
        run
    }
}
