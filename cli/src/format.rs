//! Human-readable rendering of clawplane messages.

use clawplane_sdk::pb::{self, event::Payload};

/// `RUN_STATE_SUCCEEDED` -> `SUCCEEDED`.
pub fn run_state(run: &pb::Run) -> &'static str {
    run.state().as_str_name().trim_start_matches("RUN_STATE_")
}

/// `EVENT_KIND_SYSTEM_EVENT` -> `system_event`.
pub fn event_kind(event: &pb::Event) -> String {
    event
        .kind()
        .as_str_name()
        .trim_start_matches("EVENT_KIND_")
        .to_ascii_lowercase()
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn time(ts: Option<&clawplane_sdk::clawplane_proto::pbjson_types::Timestamp>) -> String {
    let Some(ts) = ts else {
        return "-".into();
    };
    let secs = ts.seconds;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Milliseconds as `1h2m3s` / `4.5s`.
pub fn duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        return format!("{}.{}s", secs, (ms % 1000) / 100);
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

/// Shortens `text` to `max` characters (on a char boundary), adding `…`.
pub fn truncate(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// True for the states whose `Run.error` says why (a retried run may keep its old error).
fn has_error_state(run: &pb::Run) -> bool {
    matches!(
        run.state(),
        pb::RunState::Failed
            | pb::RunState::Cancelled
            | pb::RunState::TimedOut
            | pb::RunState::Interrupted
    )
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// One line per event: `<seq> <kind> <session> <run> <summary>`.
pub fn event_line(event: &pb::Event) -> String {
    format!(
        "{} {} {} {} {}",
        event.seq,
        event_kind(event),
        or_dash(&event.session_key),
        or_dash(&event.run_id),
        event_summary(event)
    )
}

fn event_summary(event: &pb::Event) -> String {
    match &event.payload {
        Some(Payload::Run(run)) => {
            let mut s = run_state(run).to_string();
            if run.attempt > 1 {
                s.push_str(&format!(" attempt={}", run.attempt));
            }
            match run.state() {
                pb::RunState::Queued => {
                    s.push_str(&format!(" message={:?}", truncate(&run.message, 80)));
                }
                pb::RunState::Succeeded => {
                    s.push_str(&format!(" reply={:?}", truncate(&run.reply_text, 80)));
                }
                _ => {}
            }
            if let Some(err) = run.error.as_ref().filter(|_| has_error_state(run)) {
                s.push_str(&format!(
                    " error={}: {}",
                    err.reason,
                    truncate(&err.message, 120)
                ));
            }
            s
        }
        Some(Payload::Delta(d)) => format!("{:?}", d.text),
        Some(Payload::Session(change)) => {
            let mut s = change
                .r#type()
                .as_str_name()
                .trim_start_matches("SESSION_CHANGE_TYPE_")
                .to_string();
            if let Some(session) = &change.session {
                s.push_str(&format!(
                    " turns={} messages={}",
                    session.turn_count, session.message_count
                ));
            }
            s
        }
        Some(Payload::SystemEvent(se)) => format!(
            "{} {} {:?}",
            se.outcome()
                .as_str_name()
                .trim_start_matches("WAKE_OUTCOME_"),
            se.mode().as_str_name().trim_start_matches("WAKE_MODE_"),
            truncate(&se.text, 120)
        ),
        Some(Payload::Device(dc)) => {
            let mut s = format!("{} device={}", dc.r#type, or_dash(&dc.device_id));
            if !dc.request_id.is_empty() {
                s.push_str(&format!(" request={}", dc.request_id));
            }
            s
        }
        Some(Payload::Channel(c)) => {
            let mut s = format!("{} channel={}", c.r#type, c.channel);
            if !c.from.is_empty() {
                s.push_str(&format!(" from={}", c.from));
            }
            if !c.text.is_empty() {
                s.push_str(&format!(" text={:?}", truncate(&c.text, 80)));
            }
            if !c.detail.is_empty() {
                s.push_str(&format!(" {}", truncate(&c.detail, 120)));
            }
            s
        }
        Some(Payload::SenderPairing(c)) => {
            let p = c.request.clone().unwrap_or_default();
            format!(
                "{} channel={} sender={} code={}",
                c.r#type,
                p.channel,
                or_dash(&p.sender_id),
                or_dash(&p.code)
            )
        }
        Some(Payload::Security(a)) => format!(
            "{} {} {}",
            a.reason,
            or_dash(&a.surface),
            truncate(&a.detail, 120)
        ),
        Some(Payload::Webhook(w)) => format!(
            "{} endpoint={} {}",
            w.r#type,
            w.endpoint_id,
            truncate(&w.detail, 120)
        ),
        None => "-".into(),
    }
}

/// A multi-line description of a run.
pub fn run_details(run: &pb::Run) -> String {
    let mut lines = vec![
        format!("run       {}", run.run_id),
        format!("session   {}", run.session_key),
        format!("agent     {}", run.agent_id),
        format!(
            "state     {} (attempt {})",
            run_state(run),
            run.attempt.max(1)
        ),
        format!(
            "origin    {}",
            run.origin().as_str_name().trim_start_matches("RUN_ORIGIN_")
        ),
        format!("model     {}", or_dash(&run.model)),
        format!("message   {}", truncate(&run.message, 200)),
        format!("reply     {}", truncate(&run.reply_text, 200)),
    ];
    if let Some(err) = run.error.as_ref().filter(|_| has_error_state(run)) {
        lines.push(format!("error     {}: {}", err.reason, err.message));
    }
    if let Some(u) = &run.usage {
        lines.push(format!(
            "usage     {} in / {} out / {} total tokens",
            u.input_tokens, u.output_tokens, u.total_tokens
        ));
    }
    if let Some(d) = &run.delivery {
        let mut s = format!(
            "delivery  {}",
            d.status()
                .as_str_name()
                .trim_start_matches("DELIVERY_STATUS_")
        );
        if !d.channel.is_empty() {
            s.push_str(&format!(" {}:{}", d.channel, or_dash(&d.to)));
        }
        if !d.message_id.is_empty() {
            s.push_str(&format!(" id={}", d.message_id));
        }
        if d.message_ids.len() > 1 {
            s.push_str(&format!(" parts={}", d.message_ids.len()));
        }
        if !d.receipt.is_empty() {
            s.push_str(&format!(" receipt={}", d.receipt));
        }
        if !d.reason.is_empty() {
            s.push_str(&format!(" {}", d.reason));
        }
        if !d.detail.is_empty() {
            s.push_str(&format!(" ({})", d.detail));
        }
        lines.push(s);
    }
    lines.push(format!("created   {}", time(run.create_time.as_ref())));
    lines.push(format!("started   {}", time(run.start_time.as_ref())));
    lines.push(format!("ended     {}", time(run.end_time.as_ref())));
    lines.join("\n")
}

/// The `runs list` table.
pub fn runs_table(runs: &[pb::Run]) -> String {
    let mut out = format!(
        "{:<38} {:<11} {:<28} {:<20} {}",
        "RUN", "STATE", "SESSION", "CREATED", "MESSAGE"
    );
    for r in runs {
        out.push('\n');
        out.push_str(&format!(
            "{:<38} {:<11} {:<28} {:<20} {}",
            r.run_id,
            run_state(r),
            r.session_key,
            time(r.create_time.as_ref()),
            truncate(&r.message, 40)
        ));
    }
    out
}

/// The `sessions list` table.
pub fn sessions_table(sessions: &[pb::Session]) -> String {
    let mut out = format!(
        "{:<36} {:>5} {:>8} {:>6} {:<20}",
        "SESSION", "TURNS", "MESSAGES", "ACTIVE", "UPDATED"
    );
    for s in sessions {
        out.push('\n');
        out.push_str(&format!(
            "{:<36} {:>5} {:>8} {:>6} {:<20}",
            s.session_key,
            s.turn_count,
            s.message_count,
            s.active_run_ids.len(),
            time(s.update_time.as_ref())
        ));
    }
    out
}

/// A session header followed by its transcript.
pub fn session_transcript(session: &pb::Session, messages: &[pb::Message]) -> String {
    let mut lines = vec![
        format!("session   {}", session.session_key),
        format!("id        {}", session.session_id),
        format!("agent     {}", session.agent_id),
        format!(
            "turns     {} ({} messages)",
            session.turn_count, session.message_count
        ),
    ];
    if !session.last_channel.is_empty() {
        lines.push(format!(
            "route     {}:{}",
            session.last_channel,
            or_dash(&session.last_to)
        ));
    }
    if !session.active_run_ids.is_empty() {
        lines.push(format!("active    {}", session.active_run_ids.join(", ")));
    }
    lines.push(format!("updated   {}", time(session.update_time.as_ref())));
    if !messages.is_empty() {
        lines.push(String::new());
    }
    for m in messages {
        let role = m
            .role()
            .as_str_name()
            .trim_start_matches("MESSAGE_ROLE_")
            .to_ascii_lowercase();
        lines.push(format!("[{}] {role}: {}", m.index, m.text));
    }
    lines.join("\n")
}

/// The `status` text.
pub fn status(url: &str, s: &pb::GatewayServiceStatusResponse) -> String {
    let heartbeat = if s.heartbeat_interval_seconds == 0 {
        "disabled".to_string()
    } else {
        format!(
            "every {}",
            duration_ms(s.heartbeat_interval_seconds.saturating_mul(1000))
        )
    };
    let scopes = if s.caller_scopes.is_empty() {
        "-".to_string()
    } else {
        s.caller_scopes.join(", ")
    };
    [
        format!(
            "gateway    {url} (clawplane {}, up {})",
            s.version,
            duration_ms(s.uptime_ms)
        ),
        format!(
            "agent      {} (main session {}, model {})",
            s.default_agent_id, s.main_session_key, s.default_model
        ),
        format!("sessions   {}", s.session_count),
        format!(
            "runs       {} queued, {} running",
            s.queued_runs, s.running_runs
        ),
        if s.last_event_seq == 0 {
            "events     none yet".to_string()
        } else {
            format!(
                "events     seq {}..{}",
                s.oldest_event_seq, s.last_event_seq
            )
        },
        format!("heartbeat  {heartbeat}"),
        format!("dm scope   {}", or_dash(&s.dm_scope)),
        format!("data dir   {}", or_dash(&s.data_dir)),
        format!("scopes     {scopes}"),
        format!("instance   {}", or_dash(&s.instance_id)),
        format!(
            "tls        {}",
            if s.tls_fingerprint.is_empty() {
                "off".to_string()
            } else {
                format!("on, certificate SHA-256 {}", s.tls_fingerprint)
            }
        ),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawplane_sdk::clawplane_proto::pbjson_types::Timestamp;

    #[test]
    fn formats_time() {
        let ts = Timestamp {
            seconds: 0,
            nanos: 0,
        };
        assert_eq!(time(Some(&ts)), "1970-01-01T00:00:00Z");
        let ts = Timestamp {
            seconds: 1_709_251_199, // 2024-02-29T23:59:59Z
            nanos: 0,
        };
        assert_eq!(time(Some(&ts)), "2024-02-29T23:59:59Z");
        assert_eq!(time(None), "-");
    }

    #[test]
    fn event_lines() {
        let e = pb::Event {
            seq: 7,
            session_key: "agent:main:main".into(),
            run_id: "r1".into(),
            kind: pb::EventKind::Delta as i32,
            payload: Some(Payload::Delta(pb::ModelDelta {
                text: "You ".into(),
                index: 1,
            })),
            ..Default::default()
        };
        assert_eq!(event_line(&e), "7 delta agent:main:main r1 \"You \"");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
