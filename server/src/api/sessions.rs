use super::Api;
use super::Rpc;
use crate::core::runs::{NewRun, sessions::page_size};
use clawplane_proto::v1::{
    SessionServiceDeleteRequest, SessionServiceDeleteResponse, SessionServiceGetRequest,
    SessionServiceGetResponse, SessionServiceListRequest, SessionServiceListResponse,
    SessionServiceResetRequest, SessionServiceResetResponse, SessionServiceResolveRequest,
    SessionServiceResolveResponse, SessionServiceSendRequest, SessionServiceSendResponse,
    session_service_server::SessionService,
};
use tonic::{Request, Response, Status};

fn required(key: &str) -> Result<(), Status> {
    Ok(super::convert::required_session_key(key, "")?)
}

#[tonic::async_trait]
impl SessionService for Api {
    async fn send(
        &self,
        req: Request<SessionServiceSendRequest>,
    ) -> Result<Response<SessionServiceSendResponse>, Status> {
        let caller = self.authorize(&req, Rpc::SessionSend)?;
        let mut run: NewRun = req.into_inner().try_into()?;
        run.key_scope = caller.key_scope();
        let a = self.gw.runs.accept(run).await?;
        Ok(Response::new(SessionServiceSendResponse {
            run_id: a.run.run_id,
            session_key: a.run.session_key,
            state: a.run.state,
            duplicate: a.duplicate,
        }))
    }

    async fn list(
        &self,
        req: Request<SessionServiceListRequest>,
    ) -> Result<Response<SessionServiceListResponse>, Status> {
        self.authorize(&req, Rpc::SessionList)?;
        let r = req.into_inner();
        let (sessions, next) =
            self.gw
                .runs
                .list_sessions(&r.agent_id, page_size(r.page_size)?, &r.page_token)?;
        Ok(Response::new(SessionServiceListResponse {
            sessions,
            next_page_token: next,
        }))
    }

    async fn get(
        &self,
        req: Request<SessionServiceGetRequest>,
    ) -> Result<Response<SessionServiceGetResponse>, Status> {
        self.authorize(&req, Rpc::SessionGet)?;
        let r = req.into_inner();
        required(&r.session_key)?;
        let key = self.gw.runs.session_key(&r.session_key, &r.agent_id);
        Ok(Response::new(SessionServiceGetResponse {
            session: Some(self.gw.runs.get_session(&key)?),
        }))
    }

    async fn resolve(
        &self,
        req: Request<SessionServiceResolveRequest>,
    ) -> Result<Response<SessionServiceResolveResponse>, Status> {
        self.authorize(&req, Rpc::SessionResolve)?;
        let r = req.into_inner();
        let (session_key, agent_id, exists, explanation) = self.gw.runs.resolve(
            &r.session_key,
            &r.agent_id,
            &r.channel,
            &r.to,
            &r.account_id,
        )?;
        Ok(Response::new(SessionServiceResolveResponse {
            session_key,
            agent_id,
            exists,
            explanation,
        }))
    }

    async fn reset(
        &self,
        req: Request<SessionServiceResetRequest>,
    ) -> Result<Response<SessionServiceResetResponse>, Status> {
        self.authorize(&req, Rpc::SessionReset)?;
        let r = req.into_inner();
        required(&r.session_key)?;
        let key = self.gw.runs.session_key(&r.session_key, &r.agent_id);
        Ok(Response::new(SessionServiceResetResponse {
            session: Some(self.gw.runs.reset_session(&key).await?),
        }))
    }

    async fn delete(
        &self,
        req: Request<SessionServiceDeleteRequest>,
    ) -> Result<Response<SessionServiceDeleteResponse>, Status> {
        self.authorize(&req, Rpc::SessionDelete)?;
        let r = req.into_inner();
        required(&r.session_key)?;
        let key = self.gw.runs.session_key(&r.session_key, &r.agent_id);
        self.gw.runs.delete_session(&key).await?;
        Ok(Response::new(SessionServiceDeleteResponse {
            session_key: key,
        }))
    }
}
