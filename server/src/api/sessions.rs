use super::Api;
use crate::{core::runs::NewRun, core::sessions::page_size, error::Error};
use clawplane_proto::v1::{
    RunOrigin, SessionServiceDeleteRequest, SessionServiceDeleteResponse, SessionServiceGetRequest,
    SessionServiceGetResponse, SessionServiceListRequest, SessionServiceListResponse,
    SessionServiceResetRequest, SessionServiceResetResponse, SessionServiceResolveRequest,
    SessionServiceResolveResponse, SessionServiceSendRequest, SessionServiceSendResponse,
    session_service_server::SessionService,
};
use tonic::{Request, Response, Status};

fn required(key: &str) -> Result<(), Status> {
    if key.trim().is_empty() {
        return Err(Error::field("sessionKey", "is required").into());
    }
    Ok(())
}

#[tonic::async_trait]
impl SessionService for Api {
    async fn send(
        &self,
        req: Request<SessionServiceSendRequest>,
    ) -> Result<Response<SessionServiceSendResponse>, Status> {
        self.authorize(&req, "clawplane.v1.SessionService/Send")?;
        let r = req.into_inner();
        required(&r.session_key)?;
        let a = self
            .gw
            .accept(NewRun {
                origin: RunOrigin::Session as i32,
                session_key: r.session_key,
                agent_id: r.agent_id,
                message: r.message,
                idempotency_key: r.idempotency_key,
                deliver: r.deliver,
                channel: if r.deliver {
                    "last".into()
                } else {
                    String::new()
                },
                model: r.model,
                thinking: r.thinking,
                timeout_seconds: r.timeout_seconds,
                require_existing_session: true,
                best_effort_deliver: r.best_effort_deliver,
                ..Default::default()
            })
            .await?;
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
        self.authorize(&req, "clawplane.v1.SessionService/List")?;
        let r = req.into_inner();
        let (sessions, next) =
            self.gw
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
        self.authorize(&req, "clawplane.v1.SessionService/Get")?;
        let r = req.into_inner();
        required(&r.session_key)?;
        let key = self.gw.session_key(&r.session_key, &r.agent_id);
        Ok(Response::new(SessionServiceGetResponse {
            session: Some(self.gw.get_session(&key)?),
        }))
    }

    async fn resolve(
        &self,
        req: Request<SessionServiceResolveRequest>,
    ) -> Result<Response<SessionServiceResolveResponse>, Status> {
        self.authorize(&req, "clawplane.v1.SessionService/Resolve")?;
        let r = req.into_inner();
        let (session_key, agent_id, exists, explanation) = self.gw.resolve(
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
        self.authorize(&req, "clawplane.v1.SessionService/Reset")?;
        let r = req.into_inner();
        required(&r.session_key)?;
        let key = self.gw.session_key(&r.session_key, &r.agent_id);
        Ok(Response::new(SessionServiceResetResponse {
            session: Some(self.gw.reset_session(&key).await?),
        }))
    }

    async fn delete(
        &self,
        req: Request<SessionServiceDeleteRequest>,
    ) -> Result<Response<SessionServiceDeleteResponse>, Status> {
        self.authorize(&req, "clawplane.v1.SessionService/Delete")?;
        let r = req.into_inner();
        required(&r.session_key)?;
        let key = self.gw.session_key(&r.session_key, &r.agent_id);
        self.gw.delete_session(&key).await?;
        Ok(Response::new(SessionServiceDeleteResponse {
            session_key: key,
        }))
    }
}
