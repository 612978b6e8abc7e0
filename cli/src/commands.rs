//! The subcommand implementations.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clawplane_sdk::pb::{self, RunState};
use clawplane_sdk::tonic::Code;
use clawplane_sdk::{Client, Discovered, Error, RunHandle, RunUpdate, TokenSource, WatchItem};
use futures::StreamExt;

#[path = "egress.rs"]
pub(crate) mod egress;

use crate::format;
use crate::{
    AgentArgs, Command, ConnectOpts, DevicesCommand, EventKindArg, LogsArgs, RunStateArg,
    RunsCommand, SessionsCommand, StatusArgs, WakeArgs, WakeModeArg, WebhookKeysCommand,
    WebhooksCommand,
};

/// Why a command did not succeed.
enum Failure {
    /// An SDK / gateway error.
    Sdk(Error),
    /// A run that ended in a state other than SUCCEEDED (already reported on stdout).
    Run(Box<pb::Run>),
    /// A problem with a message and an optional hint and its own exit code.
    Other {
        message: String,
        hint: Option<String>,
        code: u8,
    },
    /// Writing to stdout failed; a closed pipe (`| head`) is not an error.
    Io(std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Sdk(e)
    }
}

impl From<crate::channels::CliError> for Failure {
    fn from(e: crate::channels::CliError) -> Self {
        match e {
            crate::channels::CliError::Sdk(e) => Failure::Sdk(e),
            crate::channels::CliError::Io(e) => Failure::Io(e),
            crate::channels::CliError::Failed(message) => Failure::Other {
                message,
                hint: None,
                code: 1,
            },
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::Other {
            message: format!("cannot encode JSON: {e}"),
            hint: None,
            code: 1,
        }
    }
}

type Outcome = Result<(), Failure>;

/// Everything a command needs.
struct Ctx {
    client: Client,
    /// The token the client presents (for services the SDK has no helper for).
    token: Option<String>,
}

/// Writes a line to stdout.
fn out(line: impl std::fmt::Display) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// Writes text to stdout without a newline and flushes it.
fn out_partial(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Canonical proto3 JSON of a generated message.
fn json<T: serde::Serialize>(msg: &T) -> Result<String, Failure> {
    Ok(serde_json::to_string(msg)?)
}

pub(crate) async fn run(opts: ConnectOpts, cmd: Command) -> ExitCode {
    let discovered =
        clawplane_sdk::discover_detailed(opts.url, opts.token, opts.data_dir.as_deref());
    let tls = clawplane_sdk::TlsOptions {
        fingerprint: opts.tls_fingerprint.clone().or_else(|| {
            opts.tls_ca
                .is_none()
                .then(|| discovered.tls_fingerprint.clone())
                .flatten()
        }),
        ca_file: opts.tls_ca.clone(),
    };
    let result = match Client::connect_with(&discovered.url, discovered.token.clone(), tls).await {
        Ok(client) => {
            let token = discovered.token.clone();
            dispatch(&Ctx { client, token }, cmd).await
        }
        Err(e) => Err(Failure::Sdk(e)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(&discovered, f),
    }
}

/// Prints the failure to stderr and picks the exit code.
fn report(d: &Discovered, failure: Failure) -> ExitCode {
    match failure {
        Failure::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Failure::Io(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::from(1)
        }
        Failure::Other {
            message,
            hint,
            code,
        } => {
            eprintln!("error: {message}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            ExitCode::from(code)
        }
        Failure::Run(run) => {
            let mut msg = format!("run {} {}", run.run_id, format::run_state(&run));
            if let Some(err) = &run.error {
                msg.push_str(&format!(": {}: {}", err.reason, err.message));
            }
            eprintln!("error: {msg}");
            if let Some(h) = run_hint(&run) {
                eprintln!("hint: {h}");
            }
            ExitCode::from(1)
        }
        Failure::Sdk(e) => {
            let message =
                if e.is_unreachable() && !matches!(e, Error::Connect { .. } | Error::Tls { .. }) {
                    format!("the gateway at {} is not reachable: {e}", d.url)
                } else {
                    e.to_string()
                };
            eprintln!("error: {message}");
            let mut hint = e.hint();
            if e.code() == Code::Unauthenticated {
                let from = match &d.token_source {
                    TokenSource::None => format!(
                        " (no token was found for {}; a token file is only read for a loopback \
                         URL)",
                        d.url
                    ),
                    other => format!(" (the token sent came from {other})"),
                };
                hint = hint.map(|h| h + &from);
            }
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 2 for usage, connection and credential problems; 1 for everything else.
fn exit_code(e: &Error) -> u8 {
    if e.is_unreachable() {
        return 2;
    }
    match e {
        Error::InvalidUrl { .. }
        | Error::InvalidToken
        | Error::Connect { .. }
        | Error::Tls { .. } => 2,
        _ => match e.code() {
            Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument => 2,
            Code::ResourceExhausted if e.reason().as_deref() == Some("AUTH_RATE_LIMITED") => 2,
            _ => 1,
        },
    }
}

fn run_hint(run: &pb::Run) -> Option<String> {
    let reason = run.error.as_ref().map(|e| e.reason.as_str()).unwrap_or("");
    match (run.state(), reason) {
        (RunState::TimedOut, _) => Some("raise the run's time limit with --timeout SECONDS".into()),
        (RunState::Cancelled, _) => None,
        (RunState::Queued | RunState::Running, _) => Some(format!(
            "it is still going; wait again with `clawplane runs wait {}`",
            run.run_id
        )),
        (RunState::Interrupted, _) => Some(
            "the gateway stopped while the run was executing, twice; send the message again".into(),
        ),
        (_, "MODEL_FAILED") => Some(
            "check the model configuration and the gateway log (stderr of `clawplane serve`)"
                .into(),
        ),
        _ => Some(format!(
            "see the whole run with `clawplane runs get {}`",
            run.run_id
        )),
    }
}

async fn dispatch(ctx: &Ctx, cmd: Command) -> Outcome {
    match cmd {
        Command::Status(a) => status(ctx, a).await,
        Command::Agent(a) => agent(ctx, a).await,
        Command::Sessions(c) => sessions(ctx, c).await,
        Command::Runs(c) => runs(ctx, c).await,
        Command::Logs(a) => logs(ctx, a).await,
        Command::Wake(a) => wake(ctx, a).await,
        Command::Webhooks(c) => webhooks(ctx, c).await,
        Command::Devices(c) => devices(ctx, c).await,
        Command::Channels(c) => crate::channels::channels(&ctx.client, c)
            .await
            .map_err(Failure::from),
        Command::Message(c) => crate::channels::message(&ctx.client, c)
            .await
            .map_err(Failure::from),
        Command::Pairing(c) => crate::pairing::run(&ctx.client, c)
            .await
            .map_err(Failure::from),
        Command::Models(c) => {
            let text = crate::models::run(&ctx.client, ctx.token.as_deref(), c).await?;
            out(text)?;
            Ok(())
        }
    }
}

fn device_line(d: &pb::Device) -> String {
    let roles = d
        .roles
        .iter()
        .map(|r| format!("{}[{}]", r.role, r.scopes.join(",")))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{}\t{}\t{}\t{}\t{}",
        d.device_id,
        if d.display_name.is_empty() {
            "-"
        } else {
            &d.display_name
        },
        if d.platform.is_empty() {
            "-"
        } else {
            &d.platform
        },
        if roles.is_empty() {
            "-".to_string()
        } else {
            roles
        },
        if d.connected { "connected" } else { "offline" }
    )
}

async fn devices(ctx: &Ctx, cmd: DevicesCommand) -> Outcome {
    let mut c = ctx.client.devices();
    match cmd {
        DevicesCommand::List { json: as_json } => {
            // Every page: the listing is the whole set.
            let mut r = pb::ListDevicesResponse::default();
            loop {
                let page = c
                    .list_devices(pb::ListDevicesRequest {
                        page_size: 1000,
                        page_token: std::mem::take(&mut r.next_page_token),
                    })
                    .await
                    .map_err(Error::from)?
                    .into_inner();
                r.pending.extend(page.pending);
                r.paired.extend(page.paired);
                if page.next_page_token.is_empty() {
                    break;
                }
                r.next_page_token = page.next_page_token;
            }
            if as_json {
                out(json(&r)?)?;
                return Ok(());
            }
            out(format!("Pending ({})", r.pending.len()))?;
            for p in &r.pending {
                out(format!(
                    "{}\t{}\t{}\t{}[{}]\t{}\texpires {}",
                    p.request_id,
                    p.device_id,
                    if p.display_name.is_empty() {
                        "-"
                    } else {
                        &p.display_name
                    },
                    p.role,
                    p.scopes.join(","),
                    p.reason,
                    format::time(p.expire_time.as_ref())
                ))?;
            }
            out(format!("Paired ({})", r.paired.len()))?;
            for d in &r.paired {
                out(device_line(d))?;
            }
        }
        DevicesCommand::Approve {
            request_id,
            json: as_json,
        } => {
            let r = c
                .approve_pairing(pb::ApprovePairingRequest { request_id })
                .await
                .map_err(Error::from)?
                .into_inner();
            if as_json {
                out(json(&r)?)?;
            } else {
                let d = r.device.unwrap_or_default();
                out(format!(
                    "approved {} (device {})",
                    r.request_id, d.device_id
                ))?;
            }
        }
        DevicesCommand::Reject { request_id } => {
            let r = c
                .reject_pairing(pb::RejectPairingRequest { request_id })
                .await
                .map_err(Error::from)?
                .into_inner();
            let p = r.request.unwrap_or_default();
            out(format!(
                "rejected {} (device {})",
                p.request_id, p.device_id
            ))?;
        }
        DevicesCommand::Remove { device_id } => {
            let r = c
                .remove_device(pb::RemoveDeviceRequest { device_id })
                .await
                .map_err(Error::from)?
                .into_inner();
            out(format!("removed {}", r.device_id))?;
        }
        DevicesCommand::Rename { device_id, name } => {
            let r = c
                .rename_device(pb::RenameDeviceRequest {
                    device_id,
                    display_name: name,
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            out(device_line(&r.device.unwrap_or_default()))?;
        }
        DevicesCommand::Rotate {
            device_id,
            role,
            scopes,
        } => {
            let r = c
                .rotate_token(pb::RotateTokenRequest {
                    device_id,
                    role,
                    scopes,
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            out(format!(
                "rotated {} {} [{}] ({})",
                r.device_id,
                r.role,
                r.scopes.join(","),
                r.token_delivery
            ))?;
            if !r.token.is_empty() {
                out(format!("token {}", r.token))?;
            }
        }
        DevicesCommand::Revoke { device_id, role } => {
            let r = c
                .revoke_token(pb::RevokeTokenRequest {
                    device_id: device_id.clone(),
                    role: role.clone(),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            let _ = r;
            out(format!("revoked {device_id} {role}"))?;
        }
    }
    Ok(())
}

fn key_line(k: &pb::WebhookKey) -> String {
    format!(
        "{}\t{}\t{}\t…{}\t{}",
        k.key_id,
        if k.private { "private" } else { "public" },
        k.label,
        k.last_four,
        format::time(k.create_time.as_ref())
    )
}

async fn webhooks(ctx: &Ctx, cmd: WebhooksCommand) -> Outcome {
    let mut c = ctx.client.webhooks();
    match cmd {
        WebhooksCommand::Keys(WebhookKeysCommand::Add {
            label,
            private,
            json: as_json,
        }) => {
            let r = c
                .create_webhook_key(pb::CreateWebhookKeyRequest { label, private })
                .await
                .map_err(Error::from)?
                .into_inner();
            if as_json {
                out(json(&r)?)?;
            } else {
                let k = r.key.unwrap_or_default();
                out(format!("key id   {}", k.key_id))?;
                out(format!("label    {}", k.label))?;
                out(format!(
                    "visible  {}",
                    if k.private {
                        "private (loopback only)"
                    } else {
                        "public"
                    }
                ))?;
                out(format!("secret   {}", r.secret))?;
                eprintln!(
                    "note: the secret is shown only now; send it as `Authorization: Bearer <secret>` to POST /webhooks/<instance-id> (see `clawplane status`)"
                );
            }
        }
        WebhooksCommand::Keys(WebhookKeysCommand::List { json: as_json }) => {
            let r = c
                .list_webhook_keys(pb::ListWebhookKeysRequest {})
                .await
                .map_err(Error::from)?
                .into_inner();
            if as_json {
                out(json(&r)?)?;
            } else if r.keys.is_empty() {
                out(
                    "no webhook keys; create one with `clawplane webhooks keys add --label <label>`",
                )?;
            } else {
                for k in &r.keys {
                    out(key_line(k))?;
                }
            }
        }
        WebhooksCommand::Keys(WebhookKeysCommand::Revoke { id }) => {
            let r = c
                .revoke_webhook_key(pb::RevokeWebhookKeyRequest { key_id: id })
                .await
                .map_err(Error::from)?
                .into_inner();
            out(format!("revoked {}", r.key.unwrap_or_default().key_id))?;
        }
        WebhooksCommand::Keys(WebhookKeysCommand::Rotate { id, json: as_json }) => {
            let r = c
                .rotate_webhook_key(pb::RotateWebhookKeyRequest { key_id: id })
                .await
                .map_err(Error::from)?
                .into_inner();
            if as_json {
                out(json(&r)?)?;
            } else {
                let k = r.key.unwrap_or_default();
                out(format!("key id   {}", k.key_id))?;
                out(format!("secret   {}", r.secret))?;
                eprintln!("note: the new secret is shown only now; the old one no longer works");
            }
        }
        WebhooksCommand::Endpoints(c) => egress::endpoints(ctx, c).await?,
        WebhooksCommand::Deliveries(a) => egress::deliveries(ctx, a).await?,
        WebhooksCommand::Redeliver(a) => egress::redeliver(ctx, a).await?,
        WebhooksCommand::Events { json: as_json } => {
            let r = c
                .list_webhook_calls(pb::ListWebhookCallsRequest {})
                .await
                .map_err(Error::from)?
                .into_inner();
            if as_json {
                out(json(&r)?)?;
            } else if r.calls.is_empty() {
                out("no webhook calls yet")?;
            } else {
                for call in &r.calls {
                    out(format!(
                        "{}\t{}\t{}\t{}\t{}\t{}ms\tin {}B\tout {}B\t{}\t{}",
                        format::time(call.call_time.as_ref()),
                        call.status,
                        call.visibility,
                        if call.source_ip.is_empty() {
                            "-"
                        } else {
                            &call.source_ip
                        },
                        if call.session_name.is_empty() {
                            "-"
                        } else {
                            &call.session_name
                        },
                        call.duration_ms,
                        call.bytes_in,
                        call.bytes_out,
                        if call.key_last_four.is_empty() {
                            "-".to_string()
                        } else {
                            format!("…{}", call.key_last_four)
                        },
                        call.error,
                    ))?;
                }
            }
        }
    }
    Ok(())
}

async fn status(ctx: &Ctx, args: StatusArgs) -> Outcome {
    let s = ctx.client.status().await?;
    if args.json {
        out(json(&s)?)?;
    } else {
        out(format::status(ctx.client.url(), &s))?;
    }
    Ok(())
}

fn opt(s: Option<String>) -> String {
    s.unwrap_or_default()
}

async fn agent(ctx: &Ctx, a: AgentArgs) -> Outcome {
    let req = pb::AgentServiceRunRequest {
        message: a.message,
        idempotency_key: opt(a.idempotency_key),
        agent_id: opt(a.agent),
        session_key: opt(a.session_key),
        channel: opt(a.channel),
        to: opt(a.to),
        deliver: a.deliver,
        best_effort_deliver: a.best_effort_deliver,
        account_id: opt(a.account),
        thread_id: opt(a.thread_id),
        model: opt(a.model),
        thinking: opt(a.thinking),
        timeout_seconds: a.timeout.unwrap_or(0),
        ..Default::default()
    };
    let handle = ctx.client.agent_run(req).await?;
    finish_run(handle, a.json, a.no_wait).await
}

/// Prints a submitted run's reply (streamed), or its id (`no_wait`), or its final JSON.
async fn finish_run(handle: RunHandle, as_json: bool, no_wait: bool) -> Outcome {
    if no_wait {
        if as_json {
            let run = handle.get().await?;
            out(json(&run)?)?;
        } else {
            out(format!("{}\t{}", handle.run_id, handle.session_key))?;
        }
        return Ok(());
    }
    let mut stream = handle.stream();
    let mut printed = false;
    let mut attempt = 0;
    let run = loop {
        match stream.next().await {
            Some(Ok(RunUpdate::Delta(text))) => {
                if !as_json {
                    out_partial(&text)?;
                    printed = true;
                }
            }
            Some(Ok(RunUpdate::State(run))) => {
                if attempt != 0 && run.attempt > attempt && printed {
                    // The gateway restarted mid-run and retries it from scratch.
                    out("")?;
                    eprintln!(
                        "note: run {} was interrupted; the gateway is retrying it (attempt {})",
                        run.run_id, run.attempt
                    );
                    printed = false;
                }
                attempt = attempt.max(run.attempt);
            }
            Some(Ok(RunUpdate::Done(run))) => break run,
            Some(Err(e)) => {
                if printed {
                    out("")?;
                }
                return Err(e.into());
            }
            None => {
                return Err(Failure::Other {
                    message: format!("lost track of run {}", handle.run_id),
                    hint: Some(format!(
                        "check it with `clawplane runs get {}`",
                        handle.run_id
                    )),
                    code: 1,
                });
            }
        }
    };
    if as_json {
        out(json(&run)?)?;
    } else if printed || run.state() == RunState::Succeeded {
        out("")?;
    }
    if run.state() == RunState::Succeeded {
        Ok(())
    } else {
        Err(Failure::Run(Box::new(run)))
    }
}

async fn sessions(ctx: &Ctx, cmd: SessionsCommand) -> Outcome {
    match cmd {
        SessionsCommand::List {
            agent,
            json: as_json,
        } => {
            let sessions = ctx.client.sessions_list(&opt(agent)).await?;
            if as_json {
                let resp = pb::SessionServiceListResponse {
                    sessions,
                    next_page_token: String::new(),
                };
                out(json(&resp)?)?;
            } else if sessions.is_empty() {
                out("no sessions yet; `clawplane agent -m TEXT` starts one")?;
            } else {
                out(format::sessions_table(&sessions))?;
            }
        }
        SessionsCommand::Show { key, json: as_json } => {
            let (session, messages) = ctx.client.sessions_history(&key).await?;
            if as_json {
                let resp = pb::ChatServiceHistoryResponse {
                    session: Some(session),
                    messages,
                    next_page_token: String::new(),
                };
                out(json(&resp)?)?;
            } else {
                out(format::session_transcript(&session, &messages))?;
            }
        }
        SessionsCommand::Send {
            key,
            message,
            timeout,
            idempotency_key,
            json: as_json,
        } => {
            let req = pb::SessionServiceSendRequest {
                session_key: key,
                message,
                idempotency_key: opt(idempotency_key),
                timeout_seconds: timeout.unwrap_or(0),
                ..Default::default()
            };
            let handle = ctx.client.sessions_send(req).await?;
            finish_run(handle, as_json, false).await?;
        }
        SessionsCommand::Reset { key, json: as_json } => {
            let session = ctx.client.sessions_reset(&key).await?;
            if as_json {
                out(json(&session)?)?;
            } else {
                out(format!(
                    "session {} reset; new transcript {}",
                    session.session_key, session.session_id
                ))?;
            }
        }
        SessionsCommand::Delete { key } => {
            let deleted = ctx.client.sessions_delete(&key).await?;
            out(format!("session {deleted} deleted"))?;
        }
    }
    Ok(())
}

fn state_of(s: RunStateArg) -> RunState {
    match s {
        RunStateArg::Queued => RunState::Queued,
        RunStateArg::Running => RunState::Running,
        RunStateArg::Succeeded => RunState::Succeeded,
        RunStateArg::Failed => RunState::Failed,
        RunStateArg::Cancelled => RunState::Cancelled,
        RunStateArg::TimedOut => RunState::TimedOut,
        RunStateArg::Interrupted => RunState::Interrupted,
    }
}

fn print_run(run: &pb::Run, as_json: bool) -> Outcome {
    if as_json {
        out(json(run)?)?;
    } else {
        out(format::run_details(run))?;
    }
    Ok(())
}

async fn runs(ctx: &Ctx, cmd: RunsCommand) -> Outcome {
    match cmd {
        RunsCommand::Get { id, json: as_json } => {
            let run = ctx.client.get_run(&id).await?;
            print_run(&run, as_json)
        }
        RunsCommand::Wait {
            id,
            timeout_ms,
            json: as_json,
        } => {
            let run = ctx
                .client
                .wait_run(&id, Duration::from_millis(timeout_ms))
                .await?;
            print_run(&run, as_json)?;
            if !clawplane_sdk::is_terminal(&run) {
                return Err(Failure::Other {
                    message: format!(
                        "run {id} is still {} after {timeout_ms} ms",
                        format::run_state(&run)
                    ),
                    hint: Some("wait longer with --timeout-ms N".into()),
                    code: 1,
                });
            }
            if run.state() == RunState::Succeeded {
                Ok(())
            } else {
                Err(Failure::Run(Box::new(run)))
            }
        }
        RunsCommand::Cancel { id, json: as_json } => {
            let run = ctx.client.cancel_run(&id).await?;
            if as_json {
                out(json(&run)?)?;
            } else {
                out(format!("run {} {}", run.run_id, format::run_state(&run)))?;
            }
            Ok(())
        }
        RunsCommand::List {
            session,
            state,
            limit,
            json: as_json,
        } => {
            if limit < 0 {
                return Err(Failure::Other {
                    message: format!("--limit must not be negative (got {limit})"),
                    hint: None,
                    code: 2,
                });
            }
            let req = pb::ListRunsRequest {
                session_key: opt(session),
                states: state.into_iter().map(|s| state_of(s) as i32).collect(),
                page_size: limit,
                ..Default::default()
            };
            let resp = ctx.client.list_runs(req).await?;
            if as_json {
                out(json(&resp)?)?;
            } else if resp.runs.is_empty() {
                out("no runs")?;
            } else {
                out(format::runs_table(&resp.runs))?;
            }
            Ok(())
        }
    }
}

fn kind_of(k: EventKindArg) -> pb::EventKind {
    match k {
        EventKindArg::Run => pb::EventKind::Run,
        EventKindArg::Delta => pb::EventKind::Delta,
        EventKindArg::Session => pb::EventKind::Session,
        EventKindArg::SystemEvent => pb::EventKind::SystemEvent,
        EventKindArg::Device => pb::EventKind::Device,
        EventKindArg::Channel => pb::EventKind::Channel,
        EventKindArg::Security => pb::EventKind::Security,
        EventKindArg::Webhook => pb::EventKind::Webhook,
        EventKindArg::SenderPairing => pb::EventKind::SenderPairing,
    }
}

/// Canonical session key for a filter: full keys as given, bare keys resolved by the gateway.
async fn canonical_session(ctx: &Ctx, key: String) -> Result<String, Failure> {
    if key.starts_with("agent:") {
        return Ok(key);
    }
    let resolved = ctx
        .client
        .sessions_resolve(pb::SessionServiceResolveRequest {
            session_key: key,
            ..Default::default()
        })
        .await?;
    Ok(resolved.session_key)
}

fn matches(filter: &pb::EventFilter, event: &pb::Event) -> bool {
    (filter.session_key.is_empty() || filter.session_key == event.session_key)
        && (filter.run_id.is_empty() || filter.run_id == event.run_id)
        && (filter.kinds.is_empty() || filter.kinds.contains(&event.kind))
}

fn print_event(event: &pb::Event, as_json: bool) -> Outcome {
    if as_json {
        out(json(event)?)?;
    } else {
        out(format::event_line(event))?;
    }
    Ok(())
}

async fn logs(ctx: &Ctx, a: LogsArgs) -> Outcome {
    let session_key = match a.session {
        Some(k) => canonical_session(ctx, k).await?,
        None => String::new(),
    };
    let filter = pb::EventFilter {
        session_key,
        run_id: opt(a.run),
        kinds: a.kind.into_iter().map(|k| kind_of(k) as i32).collect(),
    };
    let head = ctx.client.status().await?.last_event_seq;
    if a.follow {
        let after = a.after.unwrap_or(head);
        let mut watch = ctx.client.watch(after, filter);
        while let Some(item) = watch.next().await {
            if let WatchItem::Event(event) = item? {
                print_event(&event, a.json)?;
            }
        }
        return Ok(());
    }
    // Backlog: everything after `after` up to the head seen now, then exit. The filter is
    // applied here so the stream stops exactly at the head even when nothing near it matches.
    let after = a.after.unwrap_or(0);
    if after >= head {
        return Ok(());
    }
    let mut watch = ctx.client.watch(after, pb::EventFilter::default());
    while let Some(item) = watch.next().await {
        let (seq, event) = match item? {
            WatchItem::Event(e) => (e.seq, Some(e)),
            WatchItem::Progress(p) => (p.seq, None),
        };
        if let Some(event) = event.filter(|e| e.seq <= head && matches(&filter, e)) {
            print_event(&event, a.json)?;
        }
        if seq >= head {
            break;
        }
    }
    Ok(())
}

async fn wake(ctx: &Ctx, a: WakeArgs) -> Outcome {
    let mode = match a.mode {
        WakeModeArg::Now => pb::WakeMode::Now,
        WakeModeArg::NextHeartbeat => pb::WakeMode::NextHeartbeat,
    };
    let resp = ctx
        .client
        .wake(pb::GatewayServiceWakeRequest {
            text: a.text,
            mode: mode as i32,
            session_key: opt(a.session_key),
            agent_id: opt(a.agent),
        })
        .await?;
    if a.json {
        out(json(&resp)?)?;
    } else {
        let mut line = format!(
            "{} on {} (mode {})",
            resp.outcome()
                .as_str_name()
                .trim_start_matches("WAKE_OUTCOME_"),
            resp.session_key,
            resp.mode()
                .as_str_name()
                .trim_start_matches("WAKE_MODE_")
                .to_ascii_lowercase()
                .replace('_', "-")
        );
        if !resp.run_id.is_empty() {
            line.push_str(&format!("; heartbeat run {}", resp.run_id));
        }
        out(line)?;
    }
    Ok(())
}
