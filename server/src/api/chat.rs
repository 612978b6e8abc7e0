use super::Api;
use super::Rpc;
use super::convert::required_session_key;
use crate::core::runs::{NewRun, sessions::page_size};
use clawplane_proto::v1::{
    ChatServiceAbortRequest, ChatServiceAbortResponse, ChatServiceHistoryRequest,
    ChatServiceHistoryResponse, ChatServiceSendRequest, ChatServiceSendResponse,
    chat_service_server::ChatService,
};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl ChatService for Api {
    async fn send(
        &self,
        req: Request<ChatServiceSendRequest>,
    ) -> Result<Response<ChatServiceSendResponse>, Status> {
        let caller = self.authorize(&req, Rpc::ChatSend)?;
        let mut run: NewRun = req.into_inner().try_into()?;
        run.key_scope = caller.key_scope();
        let a = self.gw.runs.accept(run).await?;
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
        self.authorize(&req, Rpc::ChatHistory)?;
        let r = req.into_inner();
        required_session_key(&r.session_key, "")?;
        let key = self.gw.runs.session_key(&r.session_key, &r.agent_id);
        let (session, messages, next) =
            self.gw
                .runs
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
        self.authorize(&req, Rpc::ChatAbort)?;
        let r = req.into_inner();
        required_session_key(&r.session_key, "")?;
        let key = self.gw.runs.session_key(&r.session_key, &r.agent_id);
        let run_ids = self.gw.runs.abort_session(&key, &r.run_id).await?;
        Ok(Response::new(ChatServiceAbortResponse {
            aborted: !run_ids.is_empty(),
            run_ids,
        }))
    }
}
