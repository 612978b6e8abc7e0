use super::Api;
use crate::{core::runs::NewRun, core::sessions::page_size, error::Error};
use clawplane_proto::v1::{
    ChatServiceAbortRequest, ChatServiceAbortResponse, ChatServiceHistoryRequest,
    ChatServiceHistoryResponse, ChatServiceSendRequest, ChatServiceSendResponse, RunOrigin,
    chat_service_server::ChatService,
};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl ChatService for Api {
    async fn send(
        &self,
        req: Request<ChatServiceSendRequest>,
    ) -> Result<Response<ChatServiceSendResponse>, Status> {
        self.authorize(&req, "clawplane.v1.ChatService/Send")?;
        let r = req.into_inner();
        if r.session_key.trim().is_empty() {
            return Err(Error::field("sessionKey", "is required (e.g. \"main\")").into());
        }
        let a = self
            .gw
            .accept(NewRun {
                origin: RunOrigin::Chat as i32,
                session_key: r.session_key,
                agent_id: r.agent_id,
                message: r.message,
                idempotency_key: r.idempotency_key,
                deliver: r.deliver,
                channel: r.channel,
                to: r.to,
                best_effort_deliver: r.best_effort_deliver,
                model: r.model,
                thinking: r.thinking,
                timeout_seconds: r.timeout_seconds,
                ..Default::default()
            })
            .await?;
        Ok(Response::new(ChatServiceSendResponse {
            run_id: a.run.run_id,
            session_key: a.run.session_key,
            state: a.run.state,
            duplicate: a.duplicate,
        }))
    }

    async fn history(
        &self,
        req: Request<ChatServiceHistoryRequest>,
    ) -> Result<Response<ChatServiceHistoryResponse>, Status> {
        self.authorize(&req, "clawplane.v1.ChatService/History")?;
        let r = req.into_inner();
        if r.session_key.trim().is_empty() {
            return Err(Error::field("sessionKey", "is required").into());
        }
        let key = self.gw.session_key(&r.session_key, &r.agent_id);
        let (session, messages, next) =
            self.gw
                .history(&key, page_size(r.page_size)?, &r.page_token)?;
        Ok(Response::new(ChatServiceHistoryResponse {
            session: Some(session),
            messages,
            next_page_token: next,
        }))
    }

    async fn abort(
        &self,
        req: Request<ChatServiceAbortRequest>,
    ) -> Result<Response<ChatServiceAbortResponse>, Status> {
        self.authorize(&req, "clawplane.v1.ChatService/Abort")?;
        let r = req.into_inner();
        if r.session_key.trim().is_empty() {
            return Err(Error::field("sessionKey", "is required").into());
        }
        let key = self.gw.session_key(&r.session_key, &r.agent_id);
        let run_ids = self.gw.abort_session(&key, &r.run_id).await?;
        Ok(Response::new(ChatServiceAbortResponse {
            aborted: !run_ids.is_empty(),
            run_ids,
        }))
    }
}
