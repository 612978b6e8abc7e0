//! Requests → domain values, once per request type. Field checks that need no state (a
//! required key) answer here as `INVALID_ARGUMENT` with the field; everything else is the
//! core's to decide.

use crate::{core::runs::NewRun, error::Error};
use clawplane_proto::v1::{
    AgentServiceRunRequest, ChatServiceSendRequest, RunOrigin, SessionServiceSendRequest,
};

/// A session key the caller must name.
pub fn required_session_key(key: &str, example: &str) -> Result<(), Error> {
    if key.trim().is_empty() {
        return Err(Error::field("sessionKey", format!("is required{example}")));
    }
    Ok(())
}

impl TryFrom<ChatServiceSendRequest> for NewRun {
    type Error = Error;

    fn try_from(r: ChatServiceSendRequest) -> Result<NewRun, Error> {
        required_session_key(&r.session_key, " (e.g. \"main\")")?;
        Ok(NewRun {
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
    }
}

impl From<AgentServiceRunRequest> for NewRun {
    /// An agent run may name no session (the agent's main session is derived).
    fn from(r: AgentServiceRunRequest) -> NewRun {
        NewRun {
            origin: RunOrigin::Agent as i32,
            session_key: r.session_key,
            agent_id: r.agent_id,
            message: r.message,
            idempotency_key: r.idempotency_key,
            deliver: r.deliver,
            channel: r.channel,
            to: r.to,
            account_id: r.account_id,
            thread_id: r.thread_id,
            best_effort_deliver: r.best_effort_deliver,
            model: r.model,
            thinking: r.thinking,
            timeout_seconds: r.timeout_seconds,
            session_id: r.session_id,
            reply_channel: r.reply_channel,
            reply_to: r.reply_to,
            reply_account_id: r.reply_account_id,
            summary_wake: r.summary_wake,
            ..Default::default()
        }
    }
}

impl TryFrom<SessionServiceSendRequest> for NewRun {
    type Error = Error;

    /// Sends to an existing session; `deliver` replies on the session's last route.
    fn try_from(r: SessionServiceSendRequest) -> Result<NewRun, Error> {
        required_session_key(&r.session_key, "")?;
        Ok(NewRun {
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
    }
}
