//! The event log relayed to a NATS JetStream stream (`events.nats.url`): every committed
//! event, in seq order, published with `Nats-Msg-Id` = its seq (JetStream drops a repeat
//! inside the stream's duplicate window), each publish acknowledged before the next batch.
//! The store's log is the outbox: the relay resumes after the last event the stream holds,
//! so a crash between publish and restart repeats nothing and skips nothing. With
//! replicas, the holder of the `relay` duty relays; another takes over when it is gone.
//!
//! The stream is also where replays read first ([`Archive`], `Store::replay`): a Watch that
//! resumes from a cursor reads the events the stream holds from there, and the store's log
//! only for what the stream lacks (not relayed yet, trimmed, or NATS unreachable).

use super::Store;
use crate::config::NatsConfig;
use async_nats::jetstream::{self, stream};
use clawplane_proto::v1::Event;
use futures::StreamExt as _;
use prost::Message as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events read from the log per round.
const BATCH: usize = 512;

/// Starts the relay task; it runs until `shutdown`. Replays read the stream from now on.
pub fn spawn_relay(store: Store, cfg: &NatsConfig, shutdown: CancellationToken) {
    let cfg = cfg.clone();
    let archive = Archive::default();
    tokio::spawn(archive.clone().connect(cfg.clone(), shutdown.clone()));
    let _ = store.archive.set(archive);
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

/// The stream, as the relay and the replays create it when it is missing.
fn stream_config(cfg: &NatsConfig) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![cfg.subject.clone()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        // Replays read single messages from any server holding the stream.
        allow_direct: true,
        ..Default::default()
    }
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
    let stream = js.get_or_create_stream(stream_config(cfg)).await?;
    // Resume after the newest event the stream holds (or the oldest the log still has).
    let (mut cursor, mut last_held) =
        match stream.get_last_raw_message_by_subject(&cfg.subject).await {
            Ok(m) => {
                let seq = Event::decode(m.payload.as_ref())?.seq;
                (seq, Some(seq))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                (store.oldest().saturating_sub(1), None)
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
            // Publishes are pipelined: if one is lost (the server restarting), the next must
            // not land after the one before it, or the stream would skip an event. JetStream
            // refuses a message whose predecessor is not the stream's last; the relay then
            // resumes after what the stream holds.
            if let Some(prev) = last_held {
                headers.insert("Nats-Expected-Last-Msg-Id", prev.to_string().as_str());
            }
            last_held = Some(ev.seq);
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

/// Messages of one replay page read at once.
const READ_AHEAD: usize = 64;
/// How often the replays' connection to the stream is tried until it is made, and how long
/// replays read the log after a failed read.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// A replay page from the stream takes at most this, or the log answers.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The stream as the replays' first source: the events it holds, contiguous and in seq
/// order. Connected in the background from the start (until then, and whenever a read
/// fails, replays read the store's log); the client reconnects by itself after that.
#[derive(Clone, Default)]
pub struct Archive {
    stream: std::sync::Arc<std::sync::OnceLock<stream::Stream>>,
    /// After a failed read (NATS unreachable), replays skip the stream until then.
    skip_until: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Archive {
    async fn connect(self, cfg: NatsConfig, shutdown: CancellationToken) {
        loop {
            let attempt = async {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(5))
                    .connect(cfg.url.as_str())
                    .await?;
                let s = jetstream::new(client)
                    .get_or_create_stream(stream_config(&cfg))
                    .await?;
                Ok::<_, BoxError>(s)
            };
            match attempt.await {
                Ok(s) => {
                    let _ = self.stream.set(s);
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "replays read the store's log until the stream can be read")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_AFTER) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Up to `limit` events after `after` as the stream holds them, contiguous from
    /// `after + 1`; None when it does not hold that one (or cannot be read): the log
    /// answers instead.
    pub async fn events_after(&self, after: u64, limit: usize) -> Option<Vec<Event>> {
        let stream = self.stream.get()?;
        let skip = *clawplane_util::sync::lock(&self.skip_until);
        if skip.is_some_and(|t| std::time::Instant::now() < t) {
            return None;
        }
        let failed =
            match tokio::time::timeout(READ_TIMEOUT, read_after(stream, after, limit)).await {
                Ok(Ok(page)) => return page,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {READ_TIMEOUT:?}"),
            };
        tracing::debug!(error = %failed, after, "replay from the stream failed; reading the log");
        *clawplane_util::sync::lock(&self.skip_until) =
            Some(std::time::Instant::now() + RETRY_AFTER);
        None
    }
}

/// The event at stream sequence `seq` (direct get when the stream allows it).
async fn event_at(stream: &stream::Stream, direct: bool, seq: u64) -> Result<Event, BoxError> {
    let m = if direct {
        stream.direct_get(seq).await?
    } else {
        stream.get_raw_message(seq).await?
    };
    Ok(Event::decode(m.payload.as_ref())?)
}

async fn read_after(
    stream: &stream::Stream,
    after: u64,
    limit: usize,
) -> Result<Option<Vec<Event>>, BoxError> {
    let info = stream.get_info().await?;
    let direct = info.config.allow_direct;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let want = after + 1;
    if info.state.messages == 0 || limit == 0 {
        return Ok(None);
    }
    let oldest = event_at(stream, direct, first).await?.seq;
    if oldest > want {
        return Ok(None); // trimmed past the cursor
    }
    // Event seqs grow by at least one per stream message, so `want` sits at or below this.
    let (mut lo, mut hi) = (first, last.min(first + (want - oldest)));
    let (mut found, mut guess) = (None, true);
    while lo <= hi {
        // The first guess (no gaps since the oldest) is usually exact; then bisect.
        let mid = if std::mem::take(&mut guess) {
            hi
        } else {
            lo + (hi - lo) / 2
        };
        let seq = event_at(stream, direct, mid).await?.seq;
        if seq == want {
            found = Some(mid);
            break;
        }
        if seq < want {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    let Some(start) = found else {
        return Ok(None); // not relayed yet, or a gap: the log decides
    };
    let end = last.min(start + limit as u64 - 1);
    let mut reads = futures::stream::iter(start..=end)
        .map(|s| event_at(stream, direct, s))
        .buffered(READ_AHEAD);
    let mut page: Vec<Event> = Vec::with_capacity((end - start + 1) as usize);
    while let Some(ev) = reads.next().await {
        let ev = ev?;
        if ev.seq != after + 1 + page.len() as u64 {
            break; // a gap in the stream: the log answers for the rest
        }
        page.push(ev);
    }
    Ok(Some(page))
}
