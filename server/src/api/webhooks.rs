//! WebhookService: key management and the calls log (operator.admin), the synchronous
//! call (authenticated by a webhook API key) and templated ingress (authenticated by the
//! endpoint's secret or signature), and egress endpoints with their delivery log
//! (operator.admin; the work is in `core::egress`).

use super::Api;
use crate::{
    auth,
    core::{
        egress::NewEndpoint,
        now_ts,
        webhooks::{CallTrace, http_status},
    },
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
    RotateWebhookKeyRequest, RotateWebhookKeyResponse, WebhookCall,
    webhook_service_server::WebhookService,
};
use std::{collections::HashMap, time::Instant};
use tonic::{Request, Response, Status};

impl Api {
    /// The caller's credential, as [`Api::authorize`] reads it.
    fn presented<T>(req: &Request<T>) -> Option<String> {
        let md = req.metadata();
        let header = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
        auth::bearer(header("authorization"), header("x-openclaw-token"))
    }
}

use clawplane_util::net::is_loopback;

#[tonic::async_trait]
impl WebhookService for Api {
    async fn create_webhook_key(
        &self,
        req: Request<CreateWebhookKeyRequest>,
    ) -> Result<Response<CreateWebhookKeyResponse>, Status> {
        self.authorize(&req, "clawplane.v1.WebhookService/CreateWebhookKey")?;
        let r = req.into_inner();
        let (key, secret) = self.gw.create_webhook_key(&r.label, r.private).await?;
        Ok(Response::new(CreateWebhookKeyResponse {
            key: Some(key),
            secret,
        }))
    }

    async fn list_webhook_keys(
        &self,
        req: Request<ListWebhookKeysRequest>,
    ) -> Result<Response<ListWebhookKeysResponse>, Status> {
        self.authorize(&req, "clawplane.v1.WebhookService/ListWebhookKeys")?;
        Ok(Response::new(ListWebhookKeysResponse {
            keys: self.gw.webhook_keys()?,
            instance_id: self.gw.instance_id.clone(),
        }))
    }

    async fn revoke_webhook_key(
        &self,
        req: Request<RevokeWebhookKeyRequest>,
    ) -> Result<Response<RevokeWebhookKeyResponse>, Status> {
        self.authorize(&req, "clawplane.v1.WebhookService/RevokeWebhookKey")?;
        let key = self.gw.revoke_webhook_key(&req.get_ref().key_id).await?;
        Ok(Response::new(RevokeWebhookKeyResponse { key: Some(key) }))
    }

    async fn rotate_webhook_key(
        &self,
        req: Request<RotateWebhookKeyRequest>,
    ) -> Result<Response<RotateWebhookKeyResponse>, Status> {
        self.authorize(&req, "clawplane.v1.WebhookService/RotateWebhookKey")?;
        let (key, secret) = self.gw.rotate_webhook_key(&req.get_ref().key_id).await?;
        Ok(Response::new(RotateWebhookKeyResponse {
            key: Some(key),
            secret,
        }))
    }

    async fn list_webhook_calls(
        &self,
        req: Request<ListWebhookCallsRequest>,
    ) -> Result<Response<ListWebhookCallsResponse>, Status> {
        self.authorize(&req, "clawplane.v1.WebhookService/ListWebhookCalls")?;
        Ok(Response::new(ListWebhookCallsResponse {
            calls: self.gw.webhook_calls()?,
            instance_id: self.gw.instance_id.clone(),
        }))
    }

    async fn call_webhook(
        &self,
        req: Request<CallWebhookRequest>,
    ) -> Result<Response<CallWebhookResponse>, Status> {
        let started = Instant::now();
        let client = self.client_ip(&req);
        let presented = Self::presented(&req);
        let r = req.into_inner();
        // An unknown instance is not this gateway's call: answered, not logged.
        if r.instance_id.trim() != self.gw.instance_id {
            return Err(Error::WebhookNotFound.into());
        }
        let private = client.is_some_and(is_loopback);
        let mut call = WebhookCall {
            call_time: Some(now_ts()),
            visibility: if private { "private" } else { "public" }.into(),
            source_ip: client.map(|c| c.to_string()).unwrap_or_default(),
            session_name: r.session_name.chars().take(200).collect(),
            bytes_in: r.message.len() as u64,
            key_last_four: presented
                .as_deref()
                .map(|p| {
                    let c: Vec<char> = p.chars().collect();
                    if c.len() >= 8 {
                        c[c.len() - 4..].iter().collect()
                    } else {
                        String::new()
                    }
                })
                .unwrap_or_default(),
            ..Default::default()
        };
        let mut trace = CallTrace {
            run_id: String::new(),
        };
        let result = async {
            self.auth.gate(client)?;
            let matched = self.gw.match_webhook_key(presented.as_deref(), private);
            match matched {
                Err(e @ Error::WebhookKeyInvalid) => return Err(self.auth.failed(client, e)),
                Err(e) => return Err(e),
                Ok(_) => self.auth.succeeded(client),
            }
            self.gw
                .webhook_turn(r.session_name.trim(), r.message, &mut trace)
                .await
        }
        .await;
        call.duration_ms = started.elapsed().as_millis() as u64;
        call.status = http_status(result.as_ref().err());
        call.run_id = trace.run_id;
        match &result {
            Ok(reply) => call.bytes_out = reply.reply.len() as u64,
            Err(e) => {
                call.error = e.to_string();
                call.bytes_out = call.error.len() as u64;
            }
        }
        if let Err(e) = self.gw.record_webhook_call(call).await {
            tracing::warn!(error = %e, "cannot record a webhook call");
        }
        let reply = result?;
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
        let client = self.client_ip(&req);
        let r = req.into_inner();
        self.auth.gate(client)?;
        let headers: HashMap<String, String> = r
            .headers
            .into_iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value))
            .collect();
        let out = match self.gw.ingest_webhook(&r.path, headers, &r.body).await {
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
        self.authorize(&req, "clawplane.v1.WebhookService/CreateWebhookEndpoint")?;
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
        self.authorize(&req, "clawplane.v1.WebhookService/ListWebhookEndpoints")?;
        Ok(Response::new(ListWebhookEndpointsResponse {
            endpoints: self.gw.egress.endpoints()?,
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        req: Request<DeleteWebhookEndpointRequest>,
    ) -> Result<Response<DeleteWebhookEndpointResponse>, Status> {
        self.authorize(&req, "clawplane.v1.WebhookService/DeleteWebhookEndpoint")?;
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
        self.authorize(&req, "clawplane.v1.WebhookService/EnableWebhookEndpoint")?;
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
        self.authorize(&req, "clawplane.v1.WebhookService/ListWebhookDeliveries")?;
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
        self.authorize(&req, "clawplane.v1.WebhookService/RedeliverWebhook")?;
        let r = req.get_ref();
        let message_ids = self
            .gw
            .egress
            .redeliver(&r.message_id, &r.endpoint_id)
            .await?;
        Ok(Response::new(RedeliverWebhookResponse { message_ids }))
    }
}
