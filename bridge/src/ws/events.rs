//! Feed events (EventService/Watch) as OpenClaw events (spec §3): `agent` (lifecycle and
//! assistant stream with a per-run seq), `chat` (delta with v4 `deltaText`, final, error,
//! aborted), `device.pair.requested|resolved`, `sessions.changed`.

use super::frames::{now_ms, ts_ms, wire_run_id};
use clawplane_proto::v1::{Event, RunState, SessionChangeType, event::Payload};
use serde_json::{Value as Json, json};
use std::collections::HashMap;

/// `hello-ok.features.events`: every event this shim sends.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "agent",
    "chat",
    "tick",
    "shutdown",
    "device.pair.requested",
    "device.pair.resolved",
    "sessions.changed",
];

/// Per-run stream state of one socket.
#[derive(Default)]
struct RunTrack {
    agent_seq: u64,
    chat_seq: u64,
    text: String,
    agent_id: String,
    /// The run's wire `runId` ([`wire_run_id`]), learned from its first RUN event.
    wire_id: String,
}

/// Translates the feed for one socket (it keeps the per-run seqs and cumulative text).
pub(crate) struct Translator {
    protocol: u64,
    runs: HashMap<String, RunTrack>,
}

fn agent_of(session_key: &str) -> String {
    session_key
        .strip_prefix("agent:")
        .and_then(|r| r.split(':').next())
        .unwrap_or("main")
        .to_string()
}

/// The `runId` a run's events carry: what its RUN events named, else the feed's id.
fn wire<'a>(t: &'a RunTrack, ev: &'a Event) -> &'a str {
    if t.wire_id.is_empty() {
        &ev.run_id
    } else {
        &t.wire_id
    }
}

fn assistant(text: &str, ts: u64) -> Json {
    json!({"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": ts})
}

impl Translator {
    pub fn new(protocol: u64) -> Self {
        Translator {
            protocol,
            runs: HashMap::new(),
        }
    }

    /// True when `ev` revokes the credential of device `device_id` (close 4001).
    pub fn revokes(&self, ev: &Event, device_id: &str) -> bool {
        matches!(&ev.payload, Some(Payload::Device(d))
            if d.device_id == device_id && matches!(d.r#type.as_str(), "token.revoked" | "removed"))
    }

    fn track(&mut self, run_id: &str, session_key: &str) -> &mut RunTrack {
        if self.runs.len() > 10_000 && !self.runs.contains_key(run_id) {
            self.runs.clear();
        }
        self.runs
            .entry(run_id.to_string())
            .or_insert_with(|| RunTrack {
                agent_id: agent_of(session_key),
                ..Default::default()
            })
    }

    fn agent_event(
        &mut self,
        ev: &Event,
        stream: &str,
        data: Json,
        ts: u64,
    ) -> (&'static str, Json) {
        let t = self.track(&ev.run_id, &ev.session_key);
        t.agent_seq += 1;
        (
            "agent",
            json!({
                "runId": wire(t, ev),
                "seq": t.agent_seq,
                "stream": stream,
                "ts": ts,
                "data": data,
                "sessionKey": ev.session_key,
                "agentId": t.agent_id,
            }),
        )
    }

    fn chat_event(&mut self, ev: &Event, state: &str, extra: Json) -> (&'static str, Json) {
        let t = self.track(&ev.run_id, &ev.session_key);
        t.chat_seq += 1;
        let mut v = json!({
            "runId": wire(t, ev),
            "sessionKey": ev.session_key,
            "agentId": t.agent_id,
            "seq": t.chat_seq,
            "state": state,
        });
        if let (Json::Object(m), Json::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        ("chat", v)
    }

    /// The OpenClaw events for one feed event (possibly none).
    pub fn translate(&mut self, ev: &Event) -> Vec<(&'static str, Json)> {
        let ts = ts_ms(&ev.time).unwrap_or_else(now_ms);
        match &ev.payload {
            Some(Payload::Run(run)) => {
                let t = self.track(&ev.run_id, &ev.session_key);
                if !run.agent_id.is_empty() {
                    t.agent_id = run.agent_id.clone();
                }
                t.wire_id = wire_run_id(run).to_string();
                let out = match run.state() {
                    RunState::Running => {
                        self.track(&ev.run_id, &ev.session_key).text.clear();
                        vec![self.agent_event(
                            ev,
                            "lifecycle",
                            json!({"phase": "start", "startedAt": ts_ms(&run.start_time).unwrap_or(ts), "attempt": run.attempt}),
                            ts,
                        )]
                    }
                    RunState::Succeeded => {
                        let end = self.agent_event(
                            ev,
                            "lifecycle",
                            json!({"phase": "end", "endedAt": ts_ms(&run.end_time).unwrap_or(ts)}),
                            ts,
                        );
                        let mut extra = json!({"message": assistant(&run.reply_text, ts), "stopReason": "stop"});
                        if let Some(u) = &run.usage {
                            extra["usage"] = json!({"input": u.input_tokens, "output": u.output_tokens, "total": u.total_tokens});
                        }
                        let fin = self.chat_event(ev, "final", extra);
                        vec![end, fin]
                    }
                    RunState::Cancelled => {
                        let end = self.agent_event(
                            ev,
                            "lifecycle",
                            json!({"phase": "end", "aborted": true, "endedAt": ts_ms(&run.end_time).unwrap_or(ts)}),
                            ts,
                        );
                        let text = self.track(&ev.run_id, &ev.session_key).text.clone();
                        let ab = self.chat_event(
                            ev,
                            "aborted",
                            json!({"message": assistant(&text, ts), "stopReason": "aborted"}),
                        );
                        vec![end, ab]
                    }
                    RunState::Failed | RunState::TimedOut | RunState::Interrupted => {
                        let (reason, message) = run
                            .error
                            .as_ref()
                            .map(|e| (e.reason.clone(), e.message.clone()))
                            .unwrap_or_default();
                        let kind = if run.state() == RunState::TimedOut {
                            "timeout"
                        } else {
                            "unknown"
                        };
                        let err = self.agent_event(
                            ev,
                            "lifecycle",
                            json!({"phase": "error", "error": message, "reason": reason, "endedAt": ts_ms(&run.end_time).unwrap_or(ts)}),
                            ts,
                        );
                        let ch = self.chat_event(
                            ev,
                            "error",
                            json!({"errorMessage": message, "errorKind": kind, "stopReason": reason}),
                        );
                        vec![err, ch]
                    }
                    _ => vec![],
                };
                // INTERRUPTED is retried once; keep its stream state for the new attempt.
                if matches!(
                    run.state(),
                    RunState::Succeeded
                        | RunState::Cancelled
                        | RunState::Failed
                        | RunState::TimedOut
                ) {
                    self.runs.remove(&ev.run_id);
                }
                out
            }
            Some(Payload::Delta(d)) => {
                let t = self.track(&ev.run_id, &ev.session_key);
                t.text.push_str(&d.text);
                let text = t.text.clone();
                let a =
                    self.agent_event(ev, "assistant", json!({"text": text, "delta": d.text}), ts);
                let mut extra = json!({"message": assistant(&text, ts)});
                if self.protocol >= 4 {
                    extra["deltaText"] = json!(d.text);
                }
                let c = self.chat_event(ev, "delta", extra);
                vec![a, c]
            }
            Some(Payload::Device(d)) => {
                let base = json!({"requestId": d.request_id, "deviceId": d.device_id, "ts": ts});
                match d.r#type.as_str() {
                    "pair.requested" => {
                        let v = match &d.request {
                            Some(r) => super::methods::pending_json(r),
                            None => base,
                        };
                        vec![("device.pair.requested", v)]
                    }
                    "pair.approved" | "pair.rejected" | "pair.superseded" | "pair.expired" => {
                        let decision = if d.r#type == "pair.approved" {
                            "approved"
                        } else {
                            "rejected"
                        };
                        let mut v = base;
                        v["decision"] = json!(decision);
                        if !d.detail.is_empty() {
                            v["reason"] = json!(d.detail);
                        }
                        vec![("device.pair.resolved", v)]
                    }
                    _ => vec![],
                }
            }
            Some(Payload::Session(s)) => {
                let reason = match s.r#type() {
                    SessionChangeType::Created => "created",
                    SessionChangeType::Updated => "updated",
                    SessionChangeType::Reset => "reset",
                    SessionChangeType::Deleted => "deleted",
                    SessionChangeType::Unspecified => "changed",
                };
                vec![(
                    "sessions.changed",
                    json!({"sessionKey": ev.session_key, "agentId": agent_of(&ev.session_key), "reason": reason, "ts": ts}),
                )]
            }
            _ => vec![],
        }
    }
}
