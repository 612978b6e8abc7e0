//! The event log relayed to a NATS JetStream stream (`events.nats.url`): every committed
//! event, in seq order, published with `Nats-Msg-Id` = its seq (JetStream drops a repeat
//! inside the stream's duplicate window), each publish acknowledged before the next batch.
//! The store's log is the outbox: the relay resumes after the last event the stream holds,
//! so a crash between publish and restart repeats nothing and skips nothing. With
//! replicas, the holder of the `relay` duty relays; another takes over when it is gone.

use super::Store;
use crate::config::NatsConfig;
use async_nats::jetstream::{self, stream};
use clawplane_proto::v1::Event;
use prost::Message as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events read from the log per round.
const BATCH: usize = 512;

/// Starts the relay task; it runs until `shutdown`.
pub fn spawn_relay(store: Store, cfg: &NatsConfig, shutdown: CancellationToken) {
    let cfg = cfg.clone();
    store.want(RELAY);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut duties = store.duties_changed();
        loop {
            while !store.holds(RELAY) {
                tokio::select! {
                    r = duties.changed() => if r.is_err() { return },
                    () = shutdown.cancelled() => return,
                }
            }
            let run = relay(&store, &cfg, &shutdown);
            let out = tokio::select! {
                r = run => r,
                () = shutdown.cancelled() => return,
            };
            if let Err(e) = out {
                tracing::warn!(error = %e, url = %cfg.url, "event relay to NATS failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// The duty of relaying.
const RELAY: &str = "relay";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn relay(
    store: &Store,
    cfg: &NatsConfig,
    shutdown: &CancellationToken,
) -> Result<(), BoxError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(cfg.url.as_str())
        .await?;
    let js = jetstream::new(client);
    let stream = js
        .get_or_create_stream(stream::Config {
            name: cfg.stream.clone(),
            subjects: vec![cfg.subject.clone()],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    // Resume after the newest event the stream holds (or the oldest the log still has).
    let mut cursor = match stream.get_last_raw_message_by_subject(&cfg.subject).await {
        Ok(m) => Event::decode(m.payload.as_ref())?.seq,
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
            store.oldest().saturating_sub(1)
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(stream = %cfg.stream, after = cursor, "relaying events to NATS JetStream");
    let mut live = store.feed.live.subscribe();
    loop {
        if !store.holds(RELAY) {
            tracing::info!("another replica relays the events now");
            return Ok(());
        }
        let events = store.read(|r| r.events_after(cursor, BATCH))?;
        if events.is_empty() {
            // Woken by the next commit (or a lagged feed); the tick bounds a missed wake.
            tokio::select! {
                _ = live.recv() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            continue;
        }
        let mut acks = Vec::with_capacity(events.len());
        for ev in &events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", ev.seq.to_string().as_str());
            acks.push(
                js.publish_with_headers(cfg.subject.clone(), headers, ev.encode_to_vec().into())
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
        cursor = events.last().map_or(cursor, |e| e.seq);
    }
}
