//! Model providers against local fakes of the OpenAI-compatible and Anthropic APIs:
//! streaming deltas, request shapes, thinking, 429 retries with Retry-After, failover,
//! all-failed errors, per-agent models, `models status`, and keys kept out of the log.

use std::time::Duration;

use clawplane_proto::v1::model_service_client::ModelServiceClient;
use clawplane_proto::v1::{ChatServiceSendRequest, EventKind, ListModelsRequest, Run, RunState};
use serde_json::{Value, json};

use crate::fakes::anthropic::FakeAnthropic;
use crate::fakes::openai::{FakeOpenAi, Reply};
use crate::harness::*;

const OPENAI_KEY: &str = "sk-fake-openai-9f3c2a7be1d04";
const ANTHROPIC_KEY: &str = "sk-ant-fake-5d1e8c0a77b2";

/// A gateway whose `local` (OpenAI-compatible, key from `${LOCAL_KEY}`) and `anthropic`
/// (key from `ANTHROPIC_API_KEY`) providers are the fakes; `extra` is merged into the
/// config (JSON, top level) and logs at debug level.
async fn gateway(openai: &FakeOpenAi, anthropic: &FakeAnthropic, extra: Value) -> Gateway {
    let mut config = json!({
        "models": {"providers": {
            "local": {"api": "openai-completions", "baseUrl": openai.base_url,
                      "apiKey": "${LOCAL_KEY}", "maxRetries": 2, "timeoutSeconds": 10},
            "anthropic": {"baseUrl": anthropic.base_url, "maxRetries": 0,
                          "models": ["claude-sonnet-4-5", {"id": "claude-haiku", "maxTokens": 2048}]}
        }},
        "agents": {"defaults": {"model": "local/llama3"}}
    });
    merge(&mut config, extra);
    Gateway::builder()
        .config(&config.to_string())
        .env("LOCAL_KEY", OPENAI_KEY)
        .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        .env("CLAWPLANE_LOG", "debug")
        .start()
        .await
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

async fn fakes() -> (FakeOpenAi, FakeAnthropic) {
    (
        FakeOpenAi::start(OPENAI_KEY).await,
        FakeAnthropic::start(ANTHROPIC_KEY).await,
    )
}

/// Sends and waits for the run.
async fn run(gw: &Gateway, req: ChatServiceSendRequest) -> Run {
    let id = gw.send_req(req).await.run_id;
    gw.wait_run(&id).await
}

fn msg(session: &str, message: &str) -> ChatServiceSendRequest {
    ChatServiceSendRequest {
        session_key: session.into(),
        message: message.into(),
        ..Default::default()
    }
}

/// The DELTA texts of a finished run, from the durable feed.
async fn deltas(gw: &Gateway, run_id: &str) -> Vec<String> {
    let mut feed = gw.watch_after(0, run_filter(run_id, &[])).await;
    let events = feed
        .collect_until(|e| run_of(e).is_some_and(|r| is_terminal(r.state())))
        .await;
    events
        .iter()
        .filter(|e| e.kind() == EventKind::Delta)
        .filter_map(|e| match &e.payload {
            Some(clawplane_proto::v1::event::Payload::Delta(d)) => Some(d.text.clone()),
            _ => None,
        })
        .collect()
}

#[track_caller]
fn assert_no_keys(gw: &Gateway) {
    let log = gw.stderr();
    assert!(
        !log.contains(OPENAI_KEY) && !log.contains(ANTHROPIC_KEY),
        "an API key leaked into the gateway log:\n{log}"
    );
}

#[tokio::test]
async fn openai_compatible_streams_deltas_and_usage_and_sends_the_right_request() {
    let (openai, anthropic) = fakes().await;
    let gw = gateway(&openai, &anthropic, json!({})).await;

    let r = run(&gw, msg("oa", "hello there")).await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.reply_text, "llama3 says: hello there");
    assert_eq!(r.model, "local/llama3");
    let usage = r.usage.expect("usage");
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.total_tokens),
        (11, 7, 18)
    );
    let d = deltas(&gw, &r.run_id).await;
    assert_eq!(
        d,
        vec!["llama3 ", "says: ", "hello ", "there"],
        "one delta per chunk"
    );

    let reqs = openai.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(
        q.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(q.body["model"], "llama3", "provider prefix stripped");
    assert_eq!(q.body["stream"], true);
    assert_eq!(q.body["stream_options"]["include_usage"], true);
    assert!(q.body.get("reasoning_effort").is_none(), "{}", q.body);
    assert_eq!(
        q.body["messages"],
        json!([{"role": "user", "content": "hello there"}])
    );

    // The second turn carries the transcript, the new message exactly once.
    let r2 = run(&gw, msg("oa", "and again")).await;
    assert_eq!(r2.state(), RunState::Succeeded, "{r2:?}");
    let reqs = openai.requests();
    assert_eq!(
        reqs[1].body["messages"],
        json!([
            {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "llama3 says: hello there"},
            {"role": "user", "content": "and again"}
        ])
    );
    assert_no_keys(&gw);
}

#[tokio::test]
async fn anthropic_messages_stream_with_its_headers_and_thinking() {
    let (openai, anthropic) = fakes().await;
    let gw = gateway(&openai, &anthropic, json!({})).await;
    let r = run(
        &gw,
        ChatServiceSendRequest {
            model: "anthropic/claude-sonnet-4-5".into(),
            thinking: "low".into(),
            ..msg("an", "hi claude")
        },
    )
    .await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.reply_text, "claude-sonnet-4-5 says: hi claude");
    assert_eq!(r.model, "anthropic/claude-sonnet-4-5");
    let usage = r.usage.expect("usage");
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.total_tokens),
        (11, 7, 18)
    );
    assert_eq!(deltas(&gw, &r.run_id).await.concat(), r.reply_text);

    let reqs = anthropic.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(
        q.header("x-api-key"),
        Some(ANTHROPIC_KEY),
        "key from ANTHROPIC_API_KEY"
    );
    assert_eq!(q.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(q.body["model"], "claude-sonnet-4-5");
    assert_eq!(q.body["stream"], true);
    assert_eq!(
        q.body["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert!(q.body["max_tokens"].as_u64().unwrap() > 1024, "{}", q.body);
    assert_eq!(
        q.body["messages"],
        json!([{"role": "user", "content": "hi claude"}])
    );

    // maxTokens from the model entry; thinking off sends none; the OpenAI side maps
    // thinking to reasoning_effort.
    let r = run(
        &gw,
        ChatServiceSendRequest {
            model: "anthropic/claude-haiku".into(),
            thinking: "off".into(),
            ..msg("an2", "short")
        },
    )
    .await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    let q = &anthropic.requests()[1];
    assert_eq!(q.body["max_tokens"], 2048);
    assert!(q.body.get("thinking").is_none(), "{}", q.body);
    let r = run(
        &gw,
        ChatServiceSendRequest {
            thinking: "high".into(),
            ..msg("oa-think", "think hard")
        },
    )
    .await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(openai.requests()[0].body["reasoning_effort"], "high");
    assert_no_keys(&gw);
}

#[tokio::test]
async fn rate_limits_are_retried_after_retry_after() {
    let (openai, anthropic) = fakes().await;
    openai.push(Reply::rate_limited(0.4));
    openai.push(Reply::error(503, "server_error", "try later"));
    let gw = gateway(&openai, &anthropic, json!({})).await;
    let r = run(&gw, msg("rl", "patience")).await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.model, "local/llama3", "no failover for a retried success");
    let reqs = openai.requests();
    assert_eq!(reqs.len(), 3, "429, 503, then success");
    let waited = reqs[1].at - reqs[0].at;
    assert!(
        waited >= Duration::from_millis(350),
        "Retry-After 0.4 s was not honoured: {waited:?}"
    );
    assert_no_keys(&gw);
}

#[tokio::test]
async fn failover_to_the_next_model_records_the_one_used() {
    let (openai, anthropic) = fakes().await;
    // The primary fails after its retries; 500s are retried (maxRetries 2) first.
    openai.set_default(Reply::error(500, "server_error", "boom"));
    let gw = gateway(
        &openai,
        &anthropic,
        json!({"agents": {"defaults": {"model": {
            "primary": "local/llama3",
            "fallbacks": ["anthropic/claude-sonnet-4-5"]
        }}}}),
    )
    .await;
    assert_eq!(gw.status().await.default_model, "local/llama3");
    let r = run(&gw, msg("fo", "anyone there")).await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.model, "anthropic/claude-sonnet-4-5");
    assert_eq!(r.reply_text, "claude-sonnet-4-5 says: anyone there");
    assert_eq!(openai.requests().len(), 3, "one try and two retries");
    assert_eq!(anthropic.requests().len(), 1);

    // A per-run model override fails over to the agent's fallbacks too; a 401 is not
    // retried.
    let bad = FakeOpenAi::start("another-key").await;
    let gw2 = gateway(
        &bad,
        &anthropic,
        json!({"agents": {"defaults": {"model": {
            "primary": "builtin/echo",
            "fallbacks": ["anthropic/claude-sonnet-4-5"]
        }}}}),
    )
    .await;
    let r = run(
        &gw2,
        ChatServiceSendRequest {
            model: "local/llama3".into(),
            ..msg("fo2", "wrong key")
        },
    )
    .await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.model, "anthropic/claude-sonnet-4-5");
    assert_eq!(bad.requests().len(), 1, "401 is not retried");
    assert_no_keys(&gw);
    assert_no_keys(&gw2);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_fails_over() {
    let (openai, anthropic) = fakes().await;
    openai.set_default(Reply::Stall(Duration::from_secs(20)));
    let gw = gateway(
        &openai,
        &anthropic,
        json!({
            "models": {"providers": {"local": {"timeoutSeconds": 1}}},
            "agents": {"defaults": {"model": {"primary": "local/llama3", "fallbacks": ["anthropic/claude-sonnet-4-5"]}}}
        }),
    )
    .await;
    let started = std::time::Instant::now();
    let r = run(&gw, msg("slow", "tick")).await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.model, "anthropic/claude-sonnet-4-5");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(openai.requests().len(), 1, "a timeout is not retried");
}

#[tokio::test]
async fn when_every_model_fails_the_run_fails_with_each_reason() {
    let (openai, anthropic) = fakes().await;
    openai.set_default(Reply::error(
        400,
        "invalid_request_error",
        "context too long",
    ));
    anthropic.set_default(Reply::Error {
        status: 529,
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
        retry_after: None,
    });
    let gw = gateway(
        &openai,
        &anthropic,
        json!({"agents": {"defaults": {"model": {"primary": "local/llama3", "fallbacks": ["anthropic/claude-sonnet-4-5"]}}}}),
    )
    .await;
    let r = run(&gw, msg("af", "doomed")).await;
    assert_eq!(r.state(), RunState::Failed, "{r:?}");
    let e = r.error.clone().expect("error");
    assert_eq!(e.reason, "MODEL_FAILED");
    assert!(
        e.message.contains("local/llama3: HTTP 400")
            && e.message.contains("context too long")
            && e.message
                .contains("anthropic/claude-sonnet-4-5: HTTP 529 overloaded_error"),
        "{e:?}"
    );
    assert_eq!(openai.requests().len(), 1, "400 is not retried");

    // A model that fails after streaming part of its reply does not fail over (the
    // fallback would repeat the text).
    openai.push(Reply::BreakAfter {
        pieces: vec!["partial ".into(), "reply".into()],
    });
    let before = anthropic.requests().len();
    let r = run(&gw, msg("af2", "break")).await;
    assert_eq!(r.state(), RunState::Failed, "{r:?}");
    assert!(
        r.error.as_ref().unwrap().message.contains("server_error"),
        "{r:?}"
    );
    assert_eq!(anthropic.requests().len(), before, "no failover mid-reply");
    assert_eq!(deltas(&gw, &r.run_id).await.concat(), "partial reply");
    assert_no_keys(&gw);
}

#[tokio::test]
async fn unknown_providers_and_models_are_invalid_arguments() {
    let (openai, anthropic) = fakes().await;
    let gw = gateway(&openai, &anthropic, json!({})).await;
    for model in ["nope/x", "anthropic/claude-unlisted", "local"] {
        let status = expect_err(
            gw.chat()
                .await
                .send(ChatServiceSendRequest {
                    model: model.into(),
                    ..msg("bad", "hi")
                })
                .await,
            model,
        );
        assert_invalid_field(&status, "model");
    }
    assert!(openai.requests().is_empty() && anthropic.requests().is_empty());

    // An unknown provider in the config stops the start.
    let err = refuses_to_start("{ agents: { defaults: { model: 'nope/x' } } }").await;
    assert!(err.contains("agents.defaults.model"), "{err}");
}

#[tokio::test]
async fn agents_list_gives_an_agent_its_own_model() {
    let (openai, anthropic) = fakes().await;
    let gw = gateway(
        &openai,
        &anthropic,
        json!({
            "agents": {
                "defaults": {"model": "builtin/echo"},
                "list": [
                    {"id": "ops", "model": "local/ops-model"},
                    {"id": "writer", "model": {"primary": "anthropic/claude-sonnet-4-5", "fallbacks": []}}
                ]
            }
        }),
    )
    .await;
    let r = run(&gw, msg("agent:ops:main", "status?")).await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.model, "local/ops-model");
    assert_eq!(openai.requests()[0].body["model"], "ops-model");
    let r = run(
        &gw,
        ChatServiceSendRequest {
            session_key: "draft".into(),
            ..msg("", "write")
        },
    )
    .await;
    assert_eq!(
        r.model, "builtin/echo",
        "the default agent keeps the default model"
    );
    let id = gw
        .agent()
        .await
        .run(clawplane_proto::v1::AgentServiceRunRequest {
            agent_id: "writer".into(),
            message: "a poem".into(),
            ..Default::default()
        })
        .await
        .expect("AgentService/Run")
        .into_inner()
        .run_id;
    let r = gw.wait_run(&id).await;
    assert_eq!(r.state(), RunState::Succeeded, "{r:?}");
    assert_eq!(r.model, "anthropic/claude-sonnet-4-5");
}

#[tokio::test]
async fn models_status_lists_providers_and_agents_without_keys() {
    let (openai, anthropic) = fakes().await;
    let gw = gateway(
        &openai,
        &anthropic,
        json!({
            "models": {"providers": {"broken": {"baseUrl": openai.base_url, "apiKey": "wrong-key"}}},
            "agents": {
                "defaults": {"model": {"primary": "local/llama3", "fallbacks": ["anthropic/claude-sonnet-4-5"]}},
                "list": [{"id": "ops", "model": "broken/llama3"}]
            }
        }),
    )
    .await;

    // The RPC.
    let mut client = ModelServiceClient::with_interceptor(gw.channel().await, gw.auth());
    let r = client
        .list_models(ListModelsRequest { probe: false })
        .await
        .expect("ListModels")
        .into_inner();
    assert_eq!(r.default_model, "local/llama3");
    assert_eq!(r.default_fallbacks, vec!["anthropic/claude-sonnet-4-5"]);
    let ops = r.agents.iter().find(|a| a.agent_id == "ops").expect("ops");
    assert_eq!(ops.primary, "broken/llama3");
    assert_eq!(ops.fallbacks, vec!["anthropic/claude-sonnet-4-5"]);
    let local = r.providers.iter().find(|p| p.id == "local").expect("local");
    assert_eq!(local.api, "openai-completions");
    assert_eq!(local.base_url, openai.base_url);
    assert!(local.api_key_set);
    assert_eq!(local.api_key_source, "config");
    let an = r.providers.iter().find(|p| p.id == "anthropic").unwrap();
    assert_eq!(an.api, "anthropic-messages");
    assert_eq!(an.api_key_source, "env:ANTHROPIC_API_KEY");
    assert!(!local.probed);
    let unauth = expect_err(
        ModelServiceClient::with_interceptor(gw.channel().await, Token::none())
            .list_models(ListModelsRequest { probe: false })
            .await,
        "ListModels without a token",
    );
    assert_eq!(unauth.code(), tonic::Code::Unauthenticated);

    // The CLI, with a probe.
    let out = tokio::task::spawn_blocking({
        let mut cmd = gw.cli();
        cmd.args(["models", "status", "--probe", "--json"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !stdout.contains(OPENAI_KEY)
            && !stdout.contains(ANTHROPIC_KEY)
            && !stdout.contains("wrong-key")
    );
    let v: Value = serde_json::from_str(stdout.trim()).expect("JSON");
    let find = |id: &str| {
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no provider {id} in {v}"))
    };
    assert_eq!(find("local")["reachable"], true, "{v}");
    assert!(
        find("local")["remoteModels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "llama3"),
        "{v}"
    );
    assert_eq!(find("anthropic")["reachable"], true, "{v}");
    let broken = find("broken");
    assert_ne!(broken["reachable"], true);
    assert!(
        broken["probeError"].as_str().unwrap_or("").contains("401"),
        "{broken}"
    );

    let out = tokio::task::spawn_blocking({
        let mut cmd = gw.cli();
        cmd.args(["models", "status"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("default   local/llama3"), "{text}");
    assert!(text.contains("ops\tprimary broken/llama3"), "{text}");
    assert!(text.contains("key set (env:ANTHROPIC_API_KEY)"), "{text}");
    assert!(
        !text.contains(OPENAI_KEY) && !text.contains("wrong-key"),
        "{text}"
    );
    assert_no_keys(&gw);
    assert!(!gw.stderr().contains("wrong-key"));
}

#[tokio::test]
async fn reflection_lists_the_model_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let gw = Gateway::start().await;
    let mut client = ServerReflectionClient::new(gw.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(l)) = resp.message_response else {
        panic!("no service list");
    };
    assert!(
        l.service
            .iter()
            .any(|s| s.name == "clawplane.v1.ModelService"),
        "{l:?}"
    );
}
