//! `clawplane pairing ...`: who may talk to the bot on an inbound channel under
//! `dmPolicy: pairing` (the unknown sender got a code; the owner approves it here).

use crate::channels::{CliError, out};
use crate::format::time;
use clap::Subcommand;
use clawplane_sdk::pb::{self, DeliveryStatus};
use clawplane_sdk::{Client, Error};

/// `clawplane pairing ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum PairingCommand {
    /// Pending pairing requests (unknown senders who were sent a code) and approved senders.
    List {
        /// Only this channel (whatsapp, telegram, discord).
        channel: Option<String>,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a sender by the pairing code they were sent: their messages run from now on.
    Approve {
        /// The channel (whatsapp, telegram, discord).
        channel: String,
        /// The pairing code (case-insensitive).
        code: String,
        /// Tell the sender on the channel that they were approved.
        #[arg(long)]
        notify: bool,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reject a pending request; the sender's next message asks again.
    Reject {
        /// The channel.
        channel: String,
        /// The pairing code.
        code: String,
    },
    /// Withdraw an earlier approval.
    Revoke {
        /// The channel.
        channel: String,
        /// The sender's id on the channel.
        sender: String,
    },
}

fn who(id: &str, name: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        format!("{id} ({name})")
    }
}

/// `clawplane pairing`.
pub(crate) async fn run(client: &Client, cmd: PairingCommand) -> Result<(), CliError> {
    let mut c = client.channels();
    match cmd {
        PairingCommand::List { channel, json } => {
            let r = c
                .list_sender_pairings(pb::ListSenderPairingsRequest {
                    channel: channel.unwrap_or_default(),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            if json {
                return Ok(out(serde_json::to_string(&r)?)?);
            }
            if r.requests.is_empty() {
                out("no pending pairing requests")?;
            }
            for p in &r.requests {
                out(format!(
                    "pending  {:<9} {}  {}  expires {}",
                    p.channel,
                    p.code,
                    who(&p.sender_id, &p.sender_name),
                    time(p.expire_time.as_ref())
                ))?;
            }
            for a in &r.approved {
                out(format!(
                    "approved {:<9} {}  since {}",
                    a.channel,
                    who(&a.sender_id, &a.sender_name),
                    time(a.approve_time.as_ref())
                ))?;
            }
        }
        PairingCommand::Approve {
            channel,
            code,
            notify,
            json,
        } => {
            let r = c
                .approve_sender_pairing(pb::ApproveSenderPairingRequest {
                    channel,
                    code,
                    request_id: String::new(),
                    notify,
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            if json {
                return Ok(out(serde_json::to_string(&r)?)?);
            }
            let p = r.request.unwrap_or_default();
            let mut line = format!(
                "approved {} on {}",
                who(&p.sender_id, &p.sender_name),
                p.channel
            );
            if let Some(d) = &r.notification {
                if d.status == DeliveryStatus::Delivered as i32 {
                    line.push_str("; notified");
                } else {
                    out(&line)?;
                    return Err(CliError::Failed(format!(
                        "approved, but the notice could not be sent: {}",
                        d.detail
                    )));
                }
            }
            out(line)?;
        }
        PairingCommand::Reject { channel, code } => {
            let r = c
                .reject_sender_pairing(pb::RejectSenderPairingRequest {
                    channel,
                    code,
                    request_id: String::new(),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            let p = r.request.unwrap_or_default();
            out(format!(
                "rejected {} on {}",
                who(&p.sender_id, &p.sender_name),
                p.channel
            ))?;
        }
        PairingCommand::Revoke { channel, sender } => {
            let r = c
                .revoke_approved_sender(pb::RevokeApprovedSenderRequest {
                    channel,
                    sender_id: sender,
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            let a = r.sender.unwrap_or_default();
            out(format!(
                "revoked {} on {}",
                who(&a.sender_id, &a.sender_name),
                a.channel
            ))?;
        }
    }
    Ok(())
}
