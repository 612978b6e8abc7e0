//! Session reads and lifecycle: get, list, resolve, history, reset, delete.

use super::{Runs, session_event};
use crate::{
    error::{Error, Result},
    store::Txn,
};
use clawplane_proto::v1::{Message, RunState, Session, SessionChangeType};
use clawplane_proto::{keys, now_ts};
use std::sync::Arc;

/// Page size rules of AIP-158: 0 means the default, above the max is coerced, negative is
/// an error.
pub fn page_size(requested: i32) -> Result<usize> {
    match requested {
        n if n < 0 => Err(Error::field("pageSize", "must not be negative")),
        0 => Ok(100),
        n => Ok((n as usize).min(1000)),
    }
}

fn offset_token(token: &str) -> Result<usize> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .parse()
        .map_err(|_| Error::field("pageToken", "is not a token from a previous response"))
}

impl Runs {
    /// A session with its active runs filled in.
    pub fn get_session(&self, key: &str) -> Result<Session> {
        let mut s = self
            .store
            .read(|r| r.session(key))?
            .ok_or_else(|| Error::SessionNotFound(key.to_string()))?;
        self.fill_active(std::slice::from_mut(&mut s))?;
        Ok(s)
    }

    fn fill_active(&self, sessions: &mut [Session]) -> Result<()> {
        let active = self.store.read(|r| r.active_runs())?;
        for s in sessions {
            s.active_run_ids = active
                .iter()
                .filter(|a| a.run.session_key == s.session_key)
                .map(|a| a.run.run_id.clone())
                .collect();
        }
        Ok(())
    }

    /// Sessions, most recently updated first, paginated by offset.
    pub fn list_sessions(
        &self,
        agent: &str,
        size: usize,
        token: &str,
    ) -> Result<(Vec<Session>, String)> {
        let offset = offset_token(token)?;
        let mut all = self.store.read(|r| r.sessions())?;
        if !agent.is_empty() {
            let agent = keys::normalize_agent_id(agent);
            all.retain(|s| s.agent_id == agent);
        }
        all.sort_by(|a, b| {
            let t = |s: &Session| {
                s.update_time
                    .map(|t| (t.seconds, t.nanos))
                    .unwrap_or_default()
            };
            t(b).cmp(&t(a))
                .then_with(|| a.session_key.cmp(&b.session_key))
        });
        let next = if all.len() > offset + size {
            (offset + size).to_string()
        } else {
            String::new()
        };
        let mut page: Vec<Session> = all.into_iter().skip(offset).take(size).collect();
        self.fill_active(&mut page)?;
        Ok((page, next))
    }

    /// The transcript of a session's current generation.
    pub fn history(
        &self,
        key: &str,
        size: usize,
        token: &str,
    ) -> Result<(Session, Vec<Message>, String)> {
        let session = self.get_session(key)?;
        let after = offset_token(token)? as u64;
        let mut msgs = self
            .store
            .read(|r| r.messages(&session.session_id, after, size + 1))?;
        let next = if msgs.len() > size {
            msgs.truncate(size);
            msgs.last().map(|m| m.index.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((session, msgs, next))
    }

    /// Canonical key for a key or a route, and whether it exists.
    pub fn resolve(
        &self,
        key: &str,
        agent_id: &str,
        channel: &str,
        to: &str,
        account: &str,
    ) -> Result<(String, String, bool, String)> {
        let agent = self.agent(agent_id);
        let (resolved, why) = if !key.trim().is_empty() {
            let k = self.session_key(key, &agent);
            let why = if key.starts_with("agent:") {
                "explicit key, used verbatim"
            } else {
                "bare key, scoped to the agent"
            };
            (k, why.to_string())
        } else if !channel.trim().is_empty() && !to.trim().is_empty() {
            self.route_key(&agent, channel, to, account)
                .ok_or_else(|| Error::field("to", "is not a recipient this channel understands"))?
        } else {
            return Err(Error::field(
                "sessionKey",
                "give sessionKey, or channel and to",
            ));
        };
        let agent = keys::agent_of(&resolved).unwrap_or(&agent).to_string();
        let exists = self.store.read(|r| r.session(&resolved))?.is_some();
        Ok((resolved, agent, exists, why))
    }

    /// Starts a new transcript generation.
    pub async fn reset_session(self: &Arc<Self>, key: &str) -> Result<Session> {
        let key = key.to_string();
        let s = self
            .store
            .write(move |tx: &mut dyn Txn| {
                let mut s = tx
                    .session(&key)?
                    .ok_or(Error::SessionNotFound(key.clone()))?;
                s.session_id = uuid::Uuid::now_v7().to_string();
                s.turn_count = 0;
                s.message_count = 0;
                s.usage = None;
                s.update_time = Some(now_ts());
                tx.put_session(&s)?;
                tx.put_system_events(&key, &[])?;
                tx.append_event(session_event(&s, SessionChangeType::Reset))?;
                Ok(s)
            })
            .await?;
        let mut s = s;
        self.fill_active(std::slice::from_mut(&mut s))?;
        Ok(s)
    }

    /// Deletes a session and its transcript; refused while runs are active.
    pub async fn delete_session(self: &Arc<Self>, key: &str) -> Result<()> {
        let key = key.to_string();
        self.store
            .write(move |tx: &mut dyn Txn| {
                let s = tx
                    .session(&key)?
                    .ok_or(Error::SessionNotFound(key.clone()))?;
                let busy = tx.active_runs()?.iter().any(|a| {
                    a.run.session_key == key
                        && (a.run.state == RunState::Queued as i32
                            || a.run.state == RunState::Running as i32)
                });
                if busy {
                    return Err(Error::SessionBusy(key));
                }
                tx.delete_session(&key, &s.session_id)?;
                tx.append_event(session_event(&s, SessionChangeType::Deleted))?;
                Ok(())
            })
            .await
    }

    /// Number of sessions.
    pub fn session_count(&self) -> Result<u64> {
        Ok(self.store.session_count())
    }
}
