//! WebhookService: key management and the calls log (operator.admin), the synchronous
//! call (authenticated by a webhook API key) and templated ingress (authenticated by the
//! endpoint's secret or signature), and egress endpoints with their delivery log
//! (operator.admin). The work, the calls log included, is in `core::webhooks` and
//! `core::egress`.

use super::Api;
use super::Rpc;
use crate::{
    auth,
    core::{egress::NewEndpoint, webhooks::SyncCall},
    error::Error,
};
use clawplane_proto::v1::{
    CallWebhookRequest, CallWebhookResponse, CreateWebhookEndpointRequest,
    CreateWebhookEndpointResponse, CreateWebhookKeyRequest, CreateWebhookKeyResponse,
    DeleteWebhookEndpointRequest, DeleteWebhookEndpointResponse, EnableWebhookEndpointRequest,
    EnableWebhookEndpointResponse, IngestWebhookRequest, IngestWebhookResponse,
    ListWebhookCallsRequest, ListWebhookCallsResponse, ListWebhookDeliveriesRequest,
    ListWebhookDeliveriesResponse, ListWebhookEndpointsRequest, ListWebhookEndpointsResponse,
    ListWebhookKeysRequest, ListWebhookKeysResponse, RedeliverWebhookRequest,
    RedeliverWebhookResponse, RevokeWebhookKeyRequest, RevokeWebhookKeyResponse,
    RotateWebhookKeyRequest, RotateWebhookKeyResponse, webhook_service_server::WebhookService,
};
use std::collections::HashMap;
use tonic::{Request, Response, Status};

impl Api {
    /// The caller's credential, as [`Api::authorize`] reads it.
    fn presented<T>(req: &Request<T>) -> Option<String> {
        let md = req.metadata();
        let header = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
        auth::bearer(header("authorization"), header("x-openclaw-token"))
    }
}

#[tonic::async_trait]
impl WebhookService for Api {
    async fn create_webhook_key(
        &self,
        req: Request<CreateWebhookKeyRequest>,
    ) -> Result<Response<CreateWebhookKeyResponse>, Status> {
        self.authorize(&req, Rpc::WebhookCreateWebhookKey)?;
        let r = req.into_inner();
        let (key, secret) = self
            .gw
            .sync_webhooks
            .create_key(&r.label, r.private)
            .await?;
        Ok(Response::new(CreateWebhookKeyResponse {
            key: Some(key),
            secret,
        }))
    }

    async fn list_webhook_keys(
        &self,
        req: Request<ListWebhookKeysRequest>,
    ) -> Result<Response<ListWebhookKeysResponse>, Status> {
        self.authorize(&req, Rpc::WebhookListWebhookKeys)?;
        Ok(Response::new(ListWebhookKeysResponse {
            keys: self.gw.sync_webhooks.keys()?,
            instance_id: self.gw.instance_id.clone(),
        }))
    }

    async fn revoke_webhook_key(
        &self,
        req: Request<RevokeWebhookKeyRequest>,
    ) -> Result<Response<RevokeWebhookKeyResponse>, Status> {
        self.authorize(&req, Rpc::WebhookRevokeWebhookKey)?;
        let key = self
            .gw
            .sync_webhooks
            .revoke_key(&req.get_ref().key_id)
            .await?;
        Ok(Response::new(RevokeWebhookKeyResponse { key: Some(key) }))
    }

    async fn rotate_webhook_key(
        &self,
        req: Request<RotateWebhookKeyRequest>,
    ) -> Result<Response<RotateWebhookKeyResponse>, Status> {
        self.authorize(&req, Rpc::WebhookRotateWebhookKey)?;
        let (key, secret) = self
            .gw
            .sync_webhooks
            .rotate_key(&req.get_ref().key_id)
            .await?;
        Ok(Response::new(RotateWebhookKeyResponse {
            key: Some(key),
            secret,
        }))
    }

    async fn list_webhook_calls(
        &self,
        req: Request<ListWebhookCallsRequest>,
    ) -> Result<Response<ListWebhookCallsResponse>, Status> {
        self.authorize(&req, Rpc::WebhookListWebhookCalls)?;
        Ok(Response::new(ListWebhookCallsResponse {
            calls: self.gw.sync_webhooks.calls()?,
            instance_id: self.gw.instance_id.clone(),
        }))
    }

    async fn call_webhook(
        &self,
        req: Request<CallWebhookRequest>,
    ) -> Result<Response<CallWebhookResponse>, Status> {
        // Refused by the request rate limit before the calls log: a flood costs no writes.
        self.admit_own_key(&req)?;
        let (who, presented) = (self.client(&req), Self::presented(&req));
        let r = req.into_inner();
        let call = SyncCall {
            instance_id: r.instance_id,
            session_name: r.session_name,
            message: r.message,
            client: who.ip,
            local: who.local,
            presented,
        };
        let reply = self.gw.sync_webhooks.call(call, &self.auth).await?;
        Ok(Response::new(CallWebhookResponse {
            reply: reply.reply,
            run_id: reply.run_id,
            session_key: reply.session_key,
        }))
    }

    async fn ingest_webhook(
        &self,
        req: Request<IngestWebhookRequest>,
    ) -> Result<Response<IngestWebhookResponse>, Status> {
        let client = self.admit_own_key(&req)?;
        let r = req.into_inner();
        self.auth.gate(client)?;
        let headers: HashMap<String, String> = r
            .headers
            .into_iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value))
            .collect();
        let out = match self.gw.ingress.ingest(&r.path, headers, &r.body).await {
            Err(e @ Error::SignatureInvalid(_)) => return Err(self.auth.failed(client, e).into()),
            other => other?,
        };
        Ok(Response::new(IngestWebhookResponse {
            run_id: out.run_id,
            session_key: out.session_key,
            duplicate: out.duplicate,
        }))
    }

    async fn create_webhook_endpoint(
        &self,
        req: Request<CreateWebhookEndpointRequest>,
    ) -> Result<Response<CreateWebhookEndpointResponse>, Status> {
        self.authorize(&req, Rpc::WebhookCreateWebhookEndpoint)?;
        let r = req.into_inner();
        let endpoint = self
            .gw
            .egress
            .create_endpoint(NewEndpoint {
                url: r.url,
                events: r.events,
                headers: r.headers.into_iter().collect(),
                filter: r.filter,
                transform: r.transform,
                secret: r.secret,
            })
            .await?;
        Ok(Response::new(CreateWebhookEndpointResponse {
            endpoint: Some(endpoint),
        }))
    }

    async fn list_webhook_endpoints(
        &self,
        req: Request<ListWebhookEndpointsRequest>,
    ) -> Result<Response<ListWebhookEndpointsResponse>, Status> {
        self.authorize(&req, Rpc::WebhookListWebhookEndpoints)?;
        Ok(Response::new(ListWebhookEndpointsResponse {
            endpoints: self.gw.egress.endpoints()?,
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        req: Request<DeleteWebhookEndpointRequest>,
    ) -> Result<Response<DeleteWebhookEndpointResponse>, Status> {
        self.authorize(&req, Rpc::WebhookDeleteWebhookEndpoint)?;
        let endpoint_id = self
            .gw
            .egress
            .delete_endpoint(&req.get_ref().endpoint_id)
            .await?;
        Ok(Response::new(DeleteWebhookEndpointResponse { endpoint_id }))
    }

    async fn enable_webhook_endpoint(
        &self,
        req: Request<EnableWebhookEndpointRequest>,
    ) -> Result<Response<EnableWebhookEndpointResponse>, Status> {
        self.authorize(&req, Rpc::WebhookEnableWebhookEndpoint)?;
        let endpoint = self
            .gw
            .egress
            .enable_endpoint(&req.get_ref().endpoint_id)
            .await?;
        Ok(Response::new(EnableWebhookEndpointResponse {
            endpoint: Some(endpoint),
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<ListWebhookDeliveriesRequest>,
    ) -> Result<Response<ListWebhookDeliveriesResponse>, Status> {
        self.authorize(&req, Rpc::WebhookListWebhookDeliveries)?;
        let r = req.get_ref();
        let messages =
            self.gw
                .egress
                .deliveries(&r.endpoint_id, &r.message_id, r.status(), r.page_size)?;
        Ok(Response::new(ListWebhookDeliveriesResponse { messages }))
    }

    async fn redeliver_webhook(
        &self,
        req: Request<RedeliverWebhookRequest>,
    ) -> Result<Response<RedeliverWebhookResponse>, Status> {
        self.authorize(&req, Rpc::WebhookRedeliverWebhook)?;
        let r = req.get_ref();
        let message_ids = self
            .gw
            .egress
            .redeliver(&r.message_id, &r.endpoint_id)
            .await?;
        Ok(Response::new(RedeliverWebhookResponse { message_ids }))
    }
}
