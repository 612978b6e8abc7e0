//! Connects (CLAWPLANE_URL / CLAWPLANE_TOKEN, else the local gateway's data dir), runs the
//! agent, streams the reply, and prints the final state.
//!
//! `cargo run -p clawplane-sdk --example quickstart -- "hello"`

use clawplane_sdk::{Client, RunUpdate, discover, pb};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let message = std::env::args().nth(1).unwrap_or_else(|| "hello".into());
    let (url, token) = discover(None, None);
    let client = Client::connect(&url, token).await?;
    let run = client
        .agent_run(pb::AgentServiceRunRequest {
            message,
            ..Default::default()
        })
        .await?;
    println!("run {} in {}", run.run_id, run.session_key);
    let mut updates = run.stream();
    while let Some(update) = updates.next().await {
        match update? {
            RunUpdate::Delta(text) => print!("{text}"),
            RunUpdate::State(_) => {}
            RunUpdate::Done(run) => println!("\n{:?}", run.state()),
        }
    }
    Ok(())
}
