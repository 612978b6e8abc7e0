//! Client subcommands of the `clawplane` binary, over `clawplane-sdk`.
//!
//! The binary composes them next to `serve`:
//!
//! ```text
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     conn: clawplane_cli::ConnectOpts,
//!     #[command(subcommand)]
//!     cmd: Top,
//! }
//! #[derive(clap::Subcommand)]
//! enum Top {
//!     Serve(ServeArgs),
//!     #[command(flatten)]
//!     Client(clawplane_cli::Command),
//! }
//! // ...
//! Top::Client(cmd) => clawplane_cli::run(cli.conn, cmd),
//! ```
//!
//! Exit codes: 0 success; 1 a run that did not succeed or a failed request; 2 usage,
//! connection or authentication problems. Errors go to stderr as `error: ...` followed by
//! `hint: ...` when there is a fix to suggest.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

mod channels;
mod commands;
mod format;
mod pairing;

pub use commands::egress::{DeliveriesArgs, EndpointsCommand, MessageStatusArg, RedeliverArgs};
mod models;

pub use channels::{ChannelsCommand, MessageCommand, MessageSendArgs};
pub use models::ModelsCommand;
pub use pairing::PairingCommand;

/// How to reach the gateway. The flags are global, so they work before or after the
/// subcommand.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOpts {
    /// Gateway URL [default: http://127.0.0.1:18789].
    #[arg(long, env = "CLAWPLANE_URL", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Gateway or device token. Without it the CLI uses $CLAWPLANE_GATEWAY_TOKEN, then (for
    /// a loopback URL) the local gateway's <data-dir>/gateway.token.
    #[arg(
        long,
        env = "CLAWPLANE_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Data directory of the local gateway, where its gateway.token lives
    /// [default: ~/.clawplane].
    #[arg(long, env = "CLAWPLANE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// For an https:// (wss://) URL: trust the CA certificates in this PEM file (or the
    /// gateway's self-signed certificate itself) instead of the public roots.
    #[arg(long, env = "CLAWPLANE_TLS_CA", global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// For an https:// (wss://) URL: accept exactly the certificate with this SHA-256
    /// fingerprint (hex, colons optional; shown by `clawplane status` and the gateway log).
    /// Default for a loopback URL: the local gateway's <data-dir>/tls/cert.pem.
    #[arg(
        long,
        env = "CLAWPLANE_TLS_FINGERPRINT",
        global = true,
        value_name = "SHA256"
    )]
    pub tls_fingerprint: Option<String>,
}

/// The client subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Show the gateway's version, defaults, queue depths and event-log head.
    Status(StatusArgs),
    /// Run one agent turn and stream the reply to stdout.
    Agent(AgentArgs),
    /// List, show, send to and reset sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read, wait for, cancel and list runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Print the event log (one line per event), optionally following it live.
    Logs(LogsArgs),
    /// Queue a system event on a session and (mode now) run a heartbeat turn.
    Wake(WakeArgs),
    /// Webhooks: API keys and calls of `/webhooks/<instance-id>`, egress endpoints and their
    /// delivery log.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Paired devices and pairing requests: list, approve, reject, remove, rename, and
    /// rotate or revoke a device role's token.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Channels (Discord, Telegram, WhatsApp, Slack, webhook): `channels status [--probe]`.
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Send a message to a channel recipient: `message send --channel C --target T -m TEXT`.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Model providers and each agent's models: `models status [--probe]`.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Who may talk to the bot on an inbound channel (`dmPolicy: pairing`): list pending
    /// requests, approve or reject a sender's code, revoke an approval.
    #[command(subcommand)]
    Pairing(PairingCommand),
}

/// `clawplane devices ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum DevicesCommand {
    /// Pending pairing requests and paired devices.
    List {
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending pairing request (the id from the `pairing required` error).
    Approve {
        /// The request id.
        request_id: String,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reject a pending pairing request.
    Reject {
        /// The request id.
        request_id: String,
    },
    /// Remove a paired device; its tokens stop working and its streams end.
    Remove {
        /// The device id.
        device_id: String,
    },
    /// Rename a paired device.
    Rename {
        /// The device id.
        device_id: String,
        /// The new label (1..64 characters).
        #[arg(long)]
        name: String,
    },
    /// Rotate a device role's token: the old tokens stop working at once; the device gets
    /// a new one on its next connect.
    Rotate {
        /// The device id.
        device_id: String,
        /// The role, e.g. operator.
        #[arg(long, default_value = "operator")]
        role: String,
        /// Narrow the role's scopes (comma-separated); default keeps them.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Revoke a device role: its tokens stop working and its open streams end at once.
    Revoke {
        /// The device id.
        device_id: String,
        /// The role, e.g. operator.
        #[arg(long, default_value = "operator")]
        role: String,
    },
}

/// `clawplane webhooks ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum WebhooksCommand {
    /// Create, list, revoke and rotate webhook API keys.
    #[command(subcommand)]
    Keys(WebhookKeysCommand),
    /// The last 100 synchronous webhook calls, newest first.
    Events {
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Egress endpoints: events delivered as signed Standard Webhooks.
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// The egress delivery log: messages and their attempts, newest first.
    Deliveries(DeliveriesArgs),
    /// Send egress messages again (same webhook-id): one by id, or an endpoint's failed ones.
    Redeliver(RedeliverArgs),
}

/// `clawplane webhooks keys ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum WebhookKeysCommand {
    /// Create a key; its secret is printed once and cannot be shown again.
    Add {
        /// What the key is for (required).
        #[arg(long, value_name = "LABEL")]
        label: String,
        /// Accept the key only from loopback client addresses.
        #[arg(long)]
        private: bool,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (without secrets).
    List {
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; callers using it get 401 (or 404 when no key of their kind is left).
    Revoke {
        /// The key id.
        id: String,
    },
    /// Give a key a new secret (printed once); the old secret stops working at once.
    Rotate {
        /// The key id.
        id: String,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `clawplane status`.
#[derive(Args, Debug, Clone, Default)]
pub struct StatusArgs {
    /// Print the status as canonical proto3 JSON.
    #[arg(long)]
    pub json: bool,
}

/// `clawplane agent`.
#[derive(Args, Debug, Clone, Default)]
pub struct AgentArgs {
    /// The message to send.
    #[arg(short, long, value_name = "TEXT")]
    pub message: String,
    /// The agent [default: the gateway's default agent].
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Session key, bare (`support`) or full (`agent:main:support`) [default: derived from
    /// --channel/--to, else the agent's main session].
    #[arg(long, value_name = "KEY")]
    pub session_key: Option<String>,
    /// Channel of the conversation / delivery target, e.g. discord, telegram, or last.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Recipient in the channel's grammar, e.g. user:123 or +15551234567.
    #[arg(long, value_name = "TARGET")]
    pub to: Option<String>,
    /// Deliver the reply to the resolved channel route when done.
    #[arg(long)]
    pub deliver: bool,
    /// With --deliver: run even when no delivery route resolves (instead of refusing).
    #[arg(long)]
    pub best_effort_deliver: bool,
    /// Channel account id.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Thread / topic id within the conversation.
    #[arg(long, value_name = "ID")]
    pub thread_id: Option<String>,
    /// Thinking level: off, low, medium, high.
    #[arg(long, value_name = "LEVEL")]
    pub thinking: Option<String>,
    /// Model override, `provider/model`.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Time limit of the run in seconds [default: the gateway's].
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    /// Retry-safety key (this credential's). Repeating it returns the same run.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Print the final run as canonical proto3 JSON instead of streaming the reply.
    #[arg(long)]
    pub json: bool,
    /// Print the run id and session key and exit without waiting.
    #[arg(long)]
    pub no_wait: bool,
}

/// `clawplane sessions ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum SessionsCommand {
    /// List sessions, most recently updated first.
    List {
        /// Only this agent's sessions.
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a session and its transcript.
    Show {
        /// Session key (bare or full).
        key: String,
        /// Print canonical proto3 JSON (`{session, messages}`).
        #[arg(long)]
        json: bool,
    },
    /// Send a message into an existing session, wait and print the reply.
    Send {
        /// Session key (bare or full).
        key: String,
        /// The message to send.
        #[arg(short, long, value_name = "TEXT")]
        message: String,
        /// Time limit of the run in seconds [default: the gateway's].
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u32>,
        /// Retry-safety key (this credential's); repeating it returns the same run.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Print the final run as canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a new transcript generation under the same key.
    Reset {
        /// Session key (bare or full).
        key: String,
        /// Print the session as canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a session and its transcript.
    Delete {
        /// Session key (bare or full).
        key: String,
    },
}

/// `clawplane runs ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum RunsCommand {
    /// Show a run.
    Get {
        /// The run id.
        id: String,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wait for a run to finish; exits 0 only if it succeeded.
    Wait {
        /// The run id.
        id: String,
        /// How long to wait, in milliseconds (the SDKs' default wait).
        #[arg(long, value_name = "MS", default_value_t = clawplane_sdk::DEFAULT_WAIT.as_millis() as u64)]
        timeout_ms: u64,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running run.
    Cancel {
        /// The run id.
        id: String,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest first.
    List {
        /// Only runs of this session (bare or full key).
        #[arg(long, value_name = "KEY")]
        session: Option<String>,
        /// Only runs in these states.
        #[arg(long, value_enum, value_delimiter = ',', value_name = "STATE")]
        state: Vec<RunStateArg>,
        /// How many runs to show.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: i32,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run states as command-line values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStateArg {
    /// Waiting to start.
    Queued,
    /// Executing.
    Running,
    /// Finished with a reply.
    Succeeded,
    /// The model or delivery failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Hit its time limit.
    TimedOut,
    /// Interrupted by a gateway crash.
    Interrupted,
}

/// `clawplane logs`.
#[derive(Args, Debug, Clone, Default)]
pub struct LogsArgs {
    /// Keep following new events (resuming across disconnects) until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Start after this seq [default: 0, or the current head with --follow].
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,
    /// Only events of this run.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Only events of this session (bare or full key).
    #[arg(long, value_name = "KEY")]
    pub session: Option<String>,
    /// Only these kinds of events.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND")]
    pub kind: Vec<EventKindArg>,
    /// Print each event as one line of canonical proto3 JSON.
    #[arg(long)]
    pub json: bool,
}

/// Event kinds as command-line values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKindArg {
    /// Run state changes.
    Run,
    /// Reply text deltas.
    Delta,
    /// Session changes.
    Session,
    /// System events queued by wake.
    SystemEvent,
    /// Device and pairing changes.
    Device,
    /// Channel messages and channel state changes.
    Channel,
    /// Security alerts.
    Security,
    /// Egress endpoint changes.
    Webhook,
    /// Sender pairing requests and decisions.
    SenderPairing,
}

/// `clawplane wake`.
#[derive(Args, Debug, Clone, Default)]
pub struct WakeArgs {
    /// The system-event text.
    #[arg(long, value_name = "TEXT")]
    pub text: String,
    /// now: queue and run a heartbeat turn now; next-heartbeat: wait for the schedule.
    #[arg(long, value_enum, default_value_t = WakeModeArg::Now)]
    pub mode: WakeModeArg,
    /// Target session [default: the agent's main session].
    #[arg(long, value_name = "KEY")]
    pub session_key: Option<String>,
    /// The agent [default: the gateway's default agent].
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Print the answer as canonical proto3 JSON.
    #[arg(long)]
    pub json: bool,
}

/// Wake modes as command-line values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WakeModeArg {
    /// Queue the event and run a heartbeat turn now.
    #[default]
    Now,
    /// Queue the event for the next scheduled heartbeat.
    NextHeartbeat,
}

/// Runs one client subcommand against the gateway described by `opts` and returns the
/// process exit code. Builds its own (single-threaded) tokio runtime.
pub fn run(opts: ConnectOpts, cmd: Command) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(commands::run(opts, cmd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The layout the `clawplane` binary uses, with a `serve` that has its own flags.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        conn: ConnectOpts,
        #[command(subcommand)]
        cmd: Top,
    }

    #[allow(clippy::large_enum_variant)]
    #[derive(Subcommand, Debug)]
    enum Top {
        Serve {
            #[arg(long)]
            port: Option<u16>,
        },
        #[command(flatten)]
        Client(Command),
    }

    #[test]
    fn cli_layout_is_valid() {
        Cli::command().debug_assert();
    }

    /// A `serve` that declares its own `--data-dir` must not clash with the global one.
    #[derive(Parser, Debug)]
    struct Cli2 {
        #[command(flatten)]
        conn: ConnectOpts,
        #[command(subcommand)]
        cmd: Top2,
    }

    #[allow(clippy::large_enum_variant)]
    #[derive(Subcommand, Debug)]
    enum Top2 {
        Serve {
            #[arg(long)]
            data_dir: Option<PathBuf>,
        },
        #[command(flatten)]
        Client(Command),
    }

    #[test]
    fn serve_with_own_data_dir() {
        Cli2::command().debug_assert();
        let cli =
            Cli2::try_parse_from(["clawplane", "serve", "--data-dir", "/tmp/d"]).expect("parse");
        match cli.cmd {
            Top2::Serve { data_dir } => assert_eq!(data_dir, Some(PathBuf::from("/tmp/d"))),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn global_flags_after_subcommand() {
        let cli = Cli::try_parse_from([
            "clawplane",
            "agent",
            "-m",
            "hi",
            "--url",
            "http://x:1",
            "--token",
            "t",
            "--json",
        ])
        .expect("parse");
        assert_eq!(cli.conn.url.as_deref(), Some("http://x:1"));
        assert_eq!(cli.conn.token.as_deref(), Some("t"));
        match cli.cmd {
            Top::Client(Command::Agent(a)) => {
                assert_eq!(a.message, "hi");
                assert!(a.json);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["clawplane", "serve", "--data-dir", "/tmp/d"]).expect("parse");
        assert_eq!(cli.conn.data_dir, Some(PathBuf::from("/tmp/d")));
        let cli = Cli::try_parse_from(["clawplane", "runs", "wait", "abc", "--timeout-ms", "5"])
            .expect("parse");
        assert!(matches!(
            cli.cmd,
            Top::Client(Command::Runs(RunsCommand::Wait { timeout_ms: 5, .. }))
        ));
        let cli = Cli::try_parse_from([
            "clawplane",
            "wake",
            "--text",
            "t",
            "--mode",
            "next-heartbeat",
        ])
        .expect("parse");
        assert!(matches!(
            cli.cmd,
            Top::Client(Command::Wake(WakeArgs {
                mode: WakeModeArg::NextHeartbeat,
                ..
            }))
        ));
    }
}
