use super::Api;
use super::Rpc;
use crate::auth::Kind;
use clawplane_proto::v1::{
    GatewayServiceStatusRequest, GatewayServiceStatusResponse, GatewayServiceWakeRequest,
    GatewayServiceWakeResponse, GetCallerRequest, GetCallerResponse, WakeMode,
    gateway_service_server::GatewayService,
};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl GatewayService for Api {
    async fn status(
        &self,
        req: Request<GatewayServiceStatusRequest>,
    ) -> Result<Response<GatewayServiceStatusResponse>, Status> {
        let who = self.authorize(&req, Rpc::GatewayStatus)?;
        let gw = &self.gw;
        // With replicas: first apply every change committed anywhere before this call, so
        // the session count and `last_event_seq` include a write just made on another
        // replica (immediate for a store of one process).
        gw.store.catch_up(std::time::Duration::from_secs(2))?;
        let (queued, running) = gw.runs.run_counts();
        Ok(Response::new(GatewayServiceStatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            start_time: Some(gw.start_time),
            uptime_ms: gw.started.elapsed().as_millis() as u64,
            default_agent_id: gw.runs.default_agent.clone(),
            main_session_key: gw.runs.main_session_key(),
            default_model: gw.config.agents.defaults.model_name().to_string(),
            session_count: gw.runs.session_count()?,
            queued_runs: queued,
            running_runs: running,
            last_event_seq: gw.store.head(),
            oldest_event_seq: gw.store.oldest(),
            heartbeat_interval_seconds: gw.config.heartbeat_every().map_or(0, |d| d.as_secs()),
            dm_scope: gw.config.session.dm_scope.clone(),
            data_dir: gw.data_dir.display().to_string(),
            caller_scopes: who.scopes.iter().map(|s| s.to_string()).collect(),
            instance_id: gw.instance_id.clone(),
            tls_fingerprint: gw.tls.get().map(|t| t.fingerprint()).unwrap_or_default(),
        }))
    }

    async fn get_caller(
        &self,
        req: Request<GetCallerRequest>,
    ) -> Result<Response<GetCallerResponse>, Status> {
        let who = self.authorize(&req, Rpc::GatewayGetCaller)?;
        let (credential, device_id, role) = match &who.kind {
            Kind::Gateway => ("gateway-token", "", ""),
            Kind::Hooks => ("hooks-token", "", ""),
            Kind::Device {
                device_id, role, ..
            } => ("device-token", device_id.as_str(), role.as_str()),
            Kind::Anonymous => ("none", "", ""),
        };
        Ok(Response::new(GetCallerResponse {
            credential: credential.into(),
            scopes: who.scopes.iter().map(|s| s.to_string()).collect(),
            device_id: device_id.into(),
            role: role.into(),
        }))
    }

    async fn wake(
        &self,
        req: Request<GatewayServiceWakeRequest>,
    ) -> Result<Response<GatewayServiceWakeResponse>, Status> {
        let caller = self.authorize(&req, Rpc::GatewayWake)?;
        let r = req.into_inner();
        let mode = WakeMode::try_from(r.mode).unwrap_or(WakeMode::Unspecified);
        let w = self
            .gw
            .runs
            .wake(
                &r.text,
                mode,
                &r.session_key,
                &r.agent_id,
                caller.is_hooks(),
            )
            .await?;
        Ok(Response::new(GatewayServiceWakeResponse {
            outcome: w.outcome as i32,
            session_key: w.session_key,
            mode: w.mode as i32,
            run_id: w.run_id,
        }))
    }
}
