//! `clawplane models status [--probe] [--json]`: the gateway's model providers and which
//! models each agent runs (over `ModelService/ListModels`; keys are never shown).

use clap::Subcommand;
use clawplane_sdk::pb::{self, model_service_client::ModelServiceClient};
use clawplane_sdk::tonic::service::interceptor::InterceptedService;
use clawplane_sdk::{Auth, Client, Error};

/// `clawplane models ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum ModelsCommand {
    /// The providers (API, base URL, whether a key is set), the default model and
    /// fallbacks, and each agent's models.
    Status {
        /// Ask every remote provider for its model list to check it is reachable.
        #[arg(long)]
        probe: bool,
        /// Print canonical proto3 JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; returns what to print.
pub(crate) async fn run(
    client: &Client,
    token: Option<&str>,
    cmd: ModelsCommand,
) -> Result<String, Error> {
    let ModelsCommand::Status { probe, json } = cmd;
    let channel = InterceptedService::new(client.channel(), Auth::new(token)?);
    let r = ModelServiceClient::new(channel)
        .list_models(pb::ListModelsRequest { probe })
        .await
        .map_err(Error::from)?
        .into_inner();
    if json {
        return serde_json::to_string(&r).map_err(|e| Error::from(tonic_status(e)));
    }
    Ok(render(&r))
}

fn tonic_status(e: serde_json::Error) -> clawplane_sdk::tonic::Status {
    clawplane_sdk::tonic::Status::internal(format!("cannot encode JSON: {e}"))
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// The human-readable report.
pub(crate) fn render(r: &pb::ListModelsResponse) -> String {
    let mut lines = vec![
        format!("default   {}", dash(&r.default_model)),
        format!("fallbacks {}", list(&r.default_fallbacks)),
        String::new(),
        "Agents".to_string(),
    ];
    for a in &r.agents {
        lines.push(format!(
            "  {}\tprimary {}\tfallbacks {}",
            a.agent_id,
            dash(&a.primary),
            list(&a.fallbacks)
        ));
    }
    lines.push(String::new());
    lines.push("Providers".to_string());
    for p in &r.providers {
        let key = if p.api == "builtin" {
            "-".to_string()
        } else if p.api_key_set {
            format!("set ({})", dash(&p.api_key_source))
        } else {
            "none".to_string()
        };
        let mut line = format!(
            "  {}\t{}\t{}\tkey {}\tmodels {}",
            p.id,
            dash(&p.api),
            dash(&p.base_url),
            key,
            list(&p.models)
        );
        if !p.config_error.is_empty() {
            line.push_str(&format!("\tconfig error: {}", p.config_error));
        }
        if p.probed {
            if p.reachable {
                line.push_str(&format!("\treachable ({} models)", p.remote_models.len()));
            } else {
                line.push_str(&format!("\tunreachable: {}", p.probe_error));
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}
