//! `GET <hooks>/runs/<runId>` → AgentService/GetRun: a hook caller polls the run it started.

use super::{
    Hooks,
    reply::{self, not_found},
};
use crate::{
    Caller,
    respond::{Answer, json, reject},
    status::hooks_error,
};
use axum::{http::StatusCode, response::Response};
use clawplane_proto::v1::GetRunRequest;

impl Hooks {
    pub(super) async fn get_run(&self, caller: &Caller, run_id: &str) -> Answer<Response> {
        if run_id.is_empty() {
            return reject(not_found());
        }
        let run = self
            .s
            .agent
            .get_run(caller.request(GetRunRequest {
                run_id: run_id.to_string(),
                ..Default::default()
            }))
            .await
            .map_err(|s| hooks_error(&s))?
            .into_inner()
            .run
            .unwrap_or_default();
        let done = run.state().is_terminal();
        Ok(json(StatusCode::OK, reply::run_json(&run, done)))
    }
}
