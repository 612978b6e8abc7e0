//! `ModelService`: the providers, each agent's models, and (on request) a reachability
//! probe. Keys are never returned.

use super::Api;
use super::Rpc;
use clawplane_proto::v1::{
    AgentModels, ListModelsRequest, ListModelsResponse, ModelProvider,
    model_service_server::ModelService,
};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl ModelService for Api {
    async fn list_models(
        &self,
        req: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        self.authorize(&req, Rpc::ModelListModels)?;
        let probe = req.into_inner().probe;
        let cfg = &self.gw.config;
        let models = &self.gw.models;
        let mut providers: Vec<ModelProvider> = models
            .status()
            .into_iter()
            .map(|p| ModelProvider {
                id: p.id,
                api: p.api,
                base_url: p.base_url,
                api_key_set: p.api_key_set,
                api_key_source: p.api_key_source,
                models: p.models,
                timeout_seconds: u32::try_from(p.timeout_seconds).unwrap_or(u32::MAX),
                max_retries: p.max_retries,
                config_error: p.config_error,
                ..Default::default()
            })
            .collect();
        if probe {
            // All at once: each is bounded by its own timeout.
            let results =
                futures::future::join_all(providers.iter().map(|p| models.probe(&p.id))).await;
            for (p, r) in providers.iter_mut().zip(results) {
                p.probed = true;
                match r {
                    Ok(ids) => {
                        p.reachable = true;
                        p.remote_models = ids;
                    }
                    Err(e) => p.probe_error = e,
                }
            }
        }
        let mut agents = vec![self.gw.runs.default_agent.clone()];
        for a in &cfg.agents.list {
            let id = crate::core::keys::normalize_agent_id(&a.id);
            if !agents.contains(&id) {
                agents.push(id);
            }
        }
        let agents = agents
            .into_iter()
            .map(|agent_id| {
                let (primary, fallbacks) = models.agent_models(&agent_id);
                AgentModels {
                    agent_id,
                    primary,
                    fallbacks,
                }
            })
            .collect();
        Ok(Response::new(ListModelsResponse {
            providers,
            default_model: cfg.agents.defaults.model_name().to_string(),
            default_fallbacks: cfg.agents.defaults.fallbacks().to_vec(),
            agents,
        }))
    }
}
