//! `clawplane webhooks endpoints | deliveries | redeliver`: egress endpoints and their
//! delivery log (a child module of `commands`, sharing its output helpers).

use std::collections::HashMap;

use clap::{Args, Subcommand, ValueEnum};
use clawplane_sdk::Error;
use clawplane_sdk::pb;

use super::{Ctx, Failure, Outcome, json, out};
use crate::format;

/// `clawplane webhooks endpoints ...`.
#[derive(Subcommand, Debug, Clone)]
// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum EndpointsCommand {
    /// Create an egress endpoint; its generated secret is printed once.
    Add {
        /// Destination URL (http or https). Positional: `--url` is the gateway's.
        #[arg(value_name = "TARGET_URL")]
        target: String,
        /// Event type to send (repeatable): run.completed, run.failed,
        /// channel.message.received, channel.disconnected, security.alert,
        /// device.pair.requested, or * for all.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// Extra request header `NAME=VALUE` (repeatable).
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
        /// Signing secret `whsec_<base64>`; generated when omitted.
        #[arg(long)]
        secret: Option<String>,
        /// minijinja template of the JSON body over event, type, data, timestamp.
        #[arg(long)]
        transform: Option<String>,
        /// Only events of this session.
        #[arg(long)]
        session_key: Option<String>,
        /// Only events of this agent.
        #[arg(long)]
        agent_id: Option<String>,
        /// Only events of this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only events from this sender (channel messages; runs by their reply's recipient).
        #[arg(long)]
        sender: Option<String>,
        /// A minijinja expression over event, type, data; sent when truthy.
        #[arg(long)]
        filter: Option<String>,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// List endpoints with their delivery state.
    List {
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an endpoint created with `endpoints add` (config endpoints live in the config).
    Delete {
        /// The endpoint id.
        id: String,
    },
    /// Re-enable a disabled endpoint; what happened meanwhile is delivered.
    Enable {
        /// The endpoint id.
        id: String,
    },
}

/// A message status, for `webhooks deliveries --status`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum MessageStatusArg {
    /// Waiting for the next attempt.
    Pending,
    /// Delivered (2xx).
    Delivered,
    /// Every attempt failed.
    Failed,
}

/// `clawplane webhooks deliveries`.
#[derive(Args, Debug, Clone)]
pub struct DeliveriesArgs {
    /// Only this endpoint's messages.
    #[arg(long, value_name = "ID")]
    pub endpoint: Option<String>,
    /// Only this message.
    #[arg(long, value_name = "MSG_ID")]
    pub message: Option<String>,
    /// Only messages in this status.
    #[arg(long, value_enum)]
    pub status: Option<MessageStatusArg>,
    /// At most this many messages (default 100).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print canonical proto3 JSON.
    #[arg(long)]
    pub json: bool,
}

/// `clawplane webhooks redeliver`.
#[derive(Args, Debug, Clone)]
pub struct RedeliverArgs {
    /// The message to send again (same webhook-id and body).
    pub message_id: Option<String>,
    /// Redeliver this endpoint's failed messages (with --failed).
    #[arg(long, value_name = "ID")]
    pub endpoint: Option<String>,
    /// With --endpoint: every FAILED message of the endpoint.
    #[arg(long)]
    pub failed: bool,
}

fn usage(message: &str) -> Failure {
    Failure::Other {
        message: message.into(),
        hint: Some(
            "clawplane webhooks redeliver <MSG_ID> | clawplane webhooks redeliver --endpoint <ID> --failed (ids from `clawplane webhooks deliveries`)".into(),
        ),
        code: 2,
    }
}

fn endpoint_line(e: &pb::WebhookEndpoint) -> String {
    let state = if e.disabled {
        format!("disabled ({})", e.disabled_reason)
    } else if e.consecutive_failures > 0 {
        format!("failing ×{}: {}", e.consecutive_failures, e.last_error)
    } else {
        "ok".into()
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\tpending {}\t{}",
        e.endpoint_id,
        e.source()
            .as_str_name()
            .trim_start_matches("WEBHOOK_ENDPOINT_SOURCE_")
            .to_ascii_lowercase(),
        e.url,
        e.events.join(","),
        if e.signed { "signed" } else { "unsigned" },
        e.pending_messages,
        state
    )
}

pub(super) async fn endpoints(ctx: &Ctx, cmd: EndpointsCommand) -> Outcome {
    let mut c = ctx.client.webhooks();
    match cmd {
        EndpointsCommand::Add {
            target,
            events,
            headers,
            secret,
            transform,
            session_key,
            agent_id,
            channel,
            sender,
            filter,
            json: as_json,
        } => {
            let mut map = HashMap::new();
            for h in headers {
                let Some((k, v)) = h.split_once('=') else {
                    return Err(Failure::Other {
                        message: format!("--header {h:?} is not NAME=VALUE"),
                        hint: None,
                        code: 2,
                    });
                };
                map.insert(k.trim().to_string(), v.to_string());
            }
            let f = pb::WebhookEndpointFilter {
                session_key: session_key.unwrap_or_default(),
                agent_id: agent_id.unwrap_or_default(),
                channel: channel.unwrap_or_default(),
                expression: filter.unwrap_or_default(),
                sender: sender.unwrap_or_default(),
            };
            let r = c
                .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
                    url: target,
                    events,
                    headers: map,
                    filter: Some(f),
                    transform: transform.unwrap_or_default(),
                    secret: secret.unwrap_or_default(),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            if as_json {
                out(json(&r)?)?;
            } else {
                let e = r.endpoint.unwrap_or_default();
                out(format!("endpoint id  {}", e.endpoint_id))?;
                out(format!("url          {}", e.url))?;
                out(format!("events       {}", e.events.join(", ")))?;
                out(format!("secret       {}", e.secret))?;
                eprintln!(
                    "note: the secret is shown only now; verify `webhook-signature` with it (Standard Webhooks)"
                );
            }
        }
        EndpointsCommand::List { json: as_json } => {
            let r = c
                .list_webhook_endpoints(pb::ListWebhookEndpointsRequest {})
                .await
                .map_err(Error::from)?
                .into_inner();
            if as_json {
                out(json(&r)?)?;
            } else if r.endpoints.is_empty() {
                out(
                    "no egress endpoints; add one with `clawplane webhooks endpoints add <TARGET_URL> --event run.completed` or webhooks.outgoing in the config",
                )?;
            } else {
                for e in &r.endpoints {
                    out(endpoint_line(e))?;
                }
            }
        }
        EndpointsCommand::Delete { id } => {
            let r = c
                .delete_webhook_endpoint(pb::DeleteWebhookEndpointRequest { endpoint_id: id })
                .await
                .map_err(Error::from)?
                .into_inner();
            out(format!("deleted {}", r.endpoint_id))?;
        }
        EndpointsCommand::Enable { id } => {
            let r = c
                .enable_webhook_endpoint(pb::EnableWebhookEndpointRequest { endpoint_id: id })
                .await
                .map_err(Error::from)?
                .into_inner();
            out(endpoint_line(&r.endpoint.unwrap_or_default()))?;
        }
    }
    Ok(())
}

pub(super) async fn deliveries(ctx: &Ctx, a: DeliveriesArgs) -> Outcome {
    let status = match a.status {
        None => pb::WebhookMessageStatus::Unspecified,
        Some(MessageStatusArg::Pending) => pb::WebhookMessageStatus::Pending,
        Some(MessageStatusArg::Delivered) => pb::WebhookMessageStatus::Delivered,
        Some(MessageStatusArg::Failed) => pb::WebhookMessageStatus::Failed,
    };
    let r = ctx
        .client
        .webhooks()
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            endpoint_id: a.endpoint.unwrap_or_default(),
            message_id: a.message.unwrap_or_default(),
            status: status as i32,
            page_size: a.limit,
        })
        .await
        .map_err(Error::from)?
        .into_inner();
    if a.json {
        out(json(&r)?)?;
        return Ok(());
    }
    if r.messages.is_empty() {
        out("no webhook deliveries yet")?;
        return Ok(());
    }
    // One line per attempt (newest first), then the message's next attempt when pending.
    for m in &r.messages {
        let status = m
            .status()
            .as_str_name()
            .trim_start_matches("WEBHOOK_MESSAGE_STATUS_")
            .to_ascii_lowercase();
        if m.attempts.is_empty() {
            out(format!(
                "{}\t{}\t{}\t{}\tno attempt yet\tnext {}",
                m.message_id,
                m.endpoint_id,
                m.event_type,
                status,
                format::time(m.next_attempt_time.as_ref())
            ))?;
        }
        for (i, at) in m.attempts.iter().enumerate() {
            let next = if i == 0 && m.next_attempt_time.is_some() {
                format!("\tnext {}", format::time(m.next_attempt_time.as_ref()))
            } else {
                String::new()
            };
            out(format!(
                "{}\t{}\t{}\t{}\tattempt {}\t{}\t{}ms\t{}\t{}{}",
                m.message_id,
                m.endpoint_id,
                m.event_type,
                status,
                at.attempt,
                if at.status_code == 0 {
                    "-".to_string()
                } else {
                    at.status_code.to_string()
                },
                at.latency_ms,
                format::time(at.attempt_time.as_ref()),
                if at.error.is_empty() { "ok" } else { &at.error },
                next
            ))?;
        }
    }
    Ok(())
}

pub(super) async fn redeliver(ctx: &Ctx, a: RedeliverArgs) -> Outcome {
    let req = match (a.message_id, a.endpoint, a.failed) {
        (Some(m), None, false) => pb::RedeliverWebhookRequest {
            message_id: m,
            ..Default::default()
        },
        (None, Some(e), true) => pb::RedeliverWebhookRequest {
            endpoint_id: e,
            ..Default::default()
        },
        (None, Some(_), false) => return Err(usage("--endpoint needs --failed")),
        _ => return Err(usage("give a message id, or --endpoint ID --failed")),
    };
    let r = ctx
        .client
        .webhooks()
        .redeliver_webhook(req)
        .await
        .map_err(Error::from)?
        .into_inner();
    if r.message_ids.is_empty() {
        out("nothing to redeliver")?;
    }
    for id in &r.message_ids {
        out(format!("queued {id}"))?;
    }
    Ok(())
}
