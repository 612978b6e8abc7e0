use super::Rpc;
use super::{Api, deadline};
use crate::{
    auth::Principal,
    core::runs::{NewRun, sessions::page_size},
    error::Error,
};
use clawplane_proto::v1::{
    AgentServiceRunRequest, AgentServiceRunResponse, AgentServiceWaitRequest,
    AgentServiceWaitResponse, CancelRunRequest, CancelRunResponse, GetRunRequest, GetRunResponse,
    ListRunsRequest, ListRunsResponse, agent_service_server::AgentService,
};
use std::time::Duration;
use tonic::{Request, Response, Status};

fn run_id(id: &str) -> Result<&str, Status> {
    let id = id.trim();
    if id.is_empty() {
        return Err(Error::field("runId", "is required").into());
    }
    Ok(id.strip_prefix("runs/").unwrap_or(id))
}

impl Api {
    /// The run a lookup names: `runId`, or the caller's own `idempotencyKey`.
    fn lookup(&self, caller: &Principal, id: &str, key: &str) -> Result<String, Status> {
        let key = key.trim();
        match (id.trim().is_empty(), key.is_empty()) {
            (_, true) => Ok(run_id(id)?.to_string()),
            (true, false) => Ok(self.gw.runs.run_id_for_key(&caller.key_scope(), key)?),
            (false, false) => Err(Error::field(
                "idempotencyKey",
                "name the run by runId or by idempotencyKey, not both",
            )
            .into()),
        }
    }
}

#[tonic::async_trait]
impl AgentService for Api {
    async fn run(
        &self,
        req: Request<AgentServiceRunRequest>,
    ) -> Result<Response<AgentServiceRunResponse>, Status> {
        let caller = self.authorize(&req, Rpc::AgentRun)?;
        let mut run: NewRun = req.into_inner().into();
        run.via_hooks = caller.is_hooks();
        run.key_scope = caller.key_scope();
        let a = self.gw.runs.accept(run).await?;
        let delivery = self.gw.runs.planned_delivery(&a.run);
        Ok(Response::new(AgentServiceRunResponse {
            run_id: a.run.run_id,
            session_key: a.run.session_key,
            agent_id: a.run.agent_id,
            state: a.run.state,
            duplicate: a.duplicate,
            accept_time: a.run.create_time,
            delivery: Some(delivery),
        }))
    }

    async fn wait(
        &self,
        req: Request<AgentServiceWaitRequest>,
    ) -> Result<Response<AgentServiceWaitResponse>, Status> {
        let caller = self.authorize(&req, Rpc::AgentWait)?;
        // Answer a little before the caller's deadline so it gets `done: false`, not an error.
        let call_limit =
            deadline(&req).map(|d| d.saturating_sub(d / 10 + Duration::from_millis(5)));
        let r = req.into_inner();
        let id = self.lookup(&caller, &r.run_id, &r.idempotency_key)?;
        let mut limit = Duration::from_millis(if r.timeout_ms == 0 {
            30_000
        } else {
            u64::from(r.timeout_ms)
        });
        if let Some(c) = call_limit {
            limit = limit.min(c);
        }
        let (run, done) = self.gw.runs.wait(&id, limit).await?;
        Ok(Response::new(AgentServiceWaitResponse {
            run: Some(run),
            done,
        }))
    }

    async fn get_run(
        &self,
        req: Request<GetRunRequest>,
    ) -> Result<Response<GetRunResponse>, Status> {
        let caller = self.authorize(&req, Rpc::AgentGetRun)?;
        let r = req.get_ref();
        let id = self.lookup(&caller, &r.run_id, &r.idempotency_key)?;
        Ok(Response::new(GetRunResponse {
            run: Some(self.gw.runs.get_run(&id)?),
        }))
    }

    async fn cancel_run(
        &self,
        req: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        self.authorize(&req, Rpc::AgentCancelRun)?;
        let id = run_id(&req.get_ref().run_id)?.to_string();
        Ok(Response::new(CancelRunResponse {
            run: Some(self.gw.runs.cancel(&id).await?),
        }))
    }

    async fn list_runs(
        &self,
        req: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        self.authorize(&req, Rpc::AgentListRuns)?;
        let r = req.into_inner();
        let key = (!r.session_key.trim().is_empty())
            .then(|| self.gw.runs.session_key(&r.session_key, &r.agent_id));
        let (runs, next) = self.gw.runs.list_runs(
            key.as_deref(),
            &r.states,
            page_size(r.page_size)?,
            &r.page_token,
        )?;
        Ok(Response::new(ListRunsResponse {
            runs,
            next_page_token: next,
        }))
    }
}
