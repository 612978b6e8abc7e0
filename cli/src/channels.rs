//! `clawplane channels status [--probe]` and `clawplane message send`.

use std::io::Write;

use clap::{Args, Subcommand};
use clawplane_sdk::pb::{self, ChannelHealth};
use clawplane_sdk::{Client, Error};

/// `clawplane channels ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum ChannelsCommand {
    /// Configured channels and their health; `--probe` checks each one's credentials
    /// against the provider now (exit 1 when a probe fails).
    Status {
        /// Check credentials against each provider now (Discord /users/@me, Telegram
        /// getMe, WhatsApp phone number, Slack auth.test).
        #[arg(long)]
        probe: bool,
        /// Print canonical proto3 JSON (`{channels: [...]}`).
        #[arg(long)]
        json: bool,
    },
}

/// `clawplane message ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum MessageCommand {
    /// Send a message to a channel recipient without a model turn.
    Send(MessageSendArgs),
}

/// `clawplane message send`.
#[derive(Args, Debug, Clone, Default)]
pub struct MessageSendArgs {
    /// Channel: discord, telegram, whatsapp, slack, webhook, or last (with --session-key).
    #[arg(long, value_name = "CHANNEL")]
    pub channel: String,
    /// Recipient in the channel's grammar, e.g. user:123, -100123:topic:7, +15551234567,
    /// channel:C123 [default with `last`: the session's last recipient].
    #[arg(long, alias = "to", value_name = "TARGET")]
    pub target: Option<String>,
    /// The text to send.
    #[arg(short, long, value_name = "TEXT")]
    pub message: Option<String>,
    /// A media URL to attach.
    #[arg(long, value_name = "URL")]
    pub media: Option<String>,
    /// Thread / topic id (Slack thread ts, Telegram topic, Discord thread).
    #[arg(long, value_name = "ID")]
    pub thread_id: Option<String>,
    /// Channel account id.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Also record the message in this session's transcript.
    #[arg(long, value_name = "KEY")]
    pub session_key: Option<String>,
    /// Retry-safety key; repeating it returns the first send's answer without sending.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Print the answer as canonical proto3 JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why a channels command did not succeed.
pub(crate) enum CliError {
    Sdk(Error),
    Io(std::io::Error),
    /// Already explained on stdout; message + exit code 1.
    Failed(String),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Sdk(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::Failed(format!("cannot encode JSON: {e}"))
    }
}

pub(crate) fn out(line: impl std::fmt::Display) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

fn health(c: &pb::Channel) -> &'static str {
    if !c.enabled {
        return "disabled";
    }
    match c.health() {
        ChannelHealth::Ok => "ok",
        ChannelHealth::Failing => "failing",
        _ => "unknown",
    }
}

/// `clawplane channels status`.
pub(crate) async fn channels(client: &Client, cmd: ChannelsCommand) -> Result<(), CliError> {
    let ChannelsCommand::Status { probe, json } = cmd;
    let mut c = client.channels();
    let mut list = c
        .list_channels(pb::ListChannelsRequest {})
        .await
        .map_err(Error::from)?
        .into_inner()
        .channels;
    if probe {
        for ch in list.iter_mut().filter(|ch| ch.enabled) {
            let r = c
                .get_channel(pb::GetChannelRequest {
                    channel_id: ch.channel_id.clone(),
                    probe: true,
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            if let Some(fresh) = r.channel {
                *ch = fresh;
            }
        }
    }
    if json {
        out(serde_json::to_string(&pb::ListChannelsResponse {
            channels: list.clone(),
        })?)?;
    } else if list.is_empty() {
        out(
            "no channels configured (add channels.discord, .telegram, .whatsapp, .slack or .webhook to the config)",
        )?;
    } else {
        for ch in &list {
            let mut line = format!("{:<9} {:<8} {}", ch.channel_id, health(ch), ch.base_url);
            if ch.sent_last_hour > 0 {
                line.push_str(&format!("  sent/h={}", ch.sent_last_hour));
            }
            if !ch.last_error.is_empty() {
                line.push_str(&format!("  error: {}", ch.last_error));
            }
            out(line)?;
        }
    }
    let failing: Vec<&str> = list
        .iter()
        .filter(|ch| ch.enabled && ch.health() == ChannelHealth::Failing)
        .map(|ch| ch.channel_id.as_str())
        .collect();
    if probe && !failing.is_empty() {
        return Err(CliError::Failed(format!(
            "probe failed for {}; check the credentials in channels.<id> of the gateway config",
            failing.join(", ")
        )));
    }
    Ok(())
}

/// `clawplane message send`.
pub(crate) async fn message(client: &Client, cmd: MessageCommand) -> Result<(), CliError> {
    let MessageCommand::Send(a) = cmd;
    let r = client
        .channels()
        .send_message(pb::SendMessageRequest {
            channel: a.channel,
            to: a.target.unwrap_or_default(),
            message: a.message.unwrap_or_default(),
            media_url: a.media.unwrap_or_default(),
            account_id: a.account.unwrap_or_default(),
            thread_id: a.thread_id.unwrap_or_default(),
            session_key: a.session_key.unwrap_or_default(),
            idempotency_key: a.idempotency_key.unwrap_or_default(),
            reply_to: String::new(),
        })
        .await
        .map_err(Error::from)?
        .into_inner();
    if a.json {
        out(serde_json::to_string(&r)?)?;
        return Ok(());
    }
    let d = r.delivery.unwrap_or_default();
    let mut line = format!("sent {} via {} to {}", d.message_id, d.channel, d.to);
    if d.message_ids.len() > 1 {
        line.push_str(&format!(
            " ({} messages: {})",
            d.message_ids.len(),
            d.message_ids.join(", ")
        ));
    }
    if d.attempts > 1 {
        line.push_str(&format!(" after {} attempts", d.attempts));
    }
    if r.duplicate {
        line.push_str(" (repeat: the first send's answer; nothing was sent again)");
    }
    out(line)?;
    Ok(())
}
