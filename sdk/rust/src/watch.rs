//! The auto-resuming event watch.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use clawplane_proto::v1::{self as pb, event_service_watch_response::Frame};
use futures::Stream;
use futures::stream::BoxStream;
use tonic::Code;

use crate::client::Client;
use crate::error::{Error, is_transient_stream_error};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One item of an [`EventWatch`].
#[allow(clippy::large_enum_variant)] // moved once per frame; boxing buys nothing
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// An event of the log (each seq at most once, in increasing order).
    Event(pb::Event),
    /// An idle heartbeat: every event with seq <= `seq` has been considered.
    Progress(pb::Progress),
}

impl WatchItem {
    /// The seq the item carries.
    pub fn seq(&self) -> u64 {
        match self {
            WatchItem::Event(e) => e.seq,
            WatchItem::Progress(p) => p.seq,
        }
    }
}

/// An `EventService/Watch` that resumes by itself.
///
/// It remembers the last seq seen (from events and progress frames). When the stream breaks
/// — a transport error, UNAVAILABLE (e.g. the gateway restarting), or ABORTED with reason
/// `SUBSCRIBER_LAGGED` — it calls Watch again with `afterSeq` = that seq, backing off from
/// 100 ms to 2 s, so nothing is skipped and no event is yielded twice (events at or below
/// the cursor are dropped).
///
/// OUT_OF_RANGE `CURSOR_EXPIRED` ends the stream with [`Error::CursorExpired`] carrying the
/// oldest retained seq; any other error ends it with that error.
pub struct EventWatch {
    inner: BoxStream<'static, Result<WatchItem, Error>>,
    last_seq: Arc<AtomicU64>,
}

impl std::fmt::Debug for EventWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWatch")
            .field("last_seq", &self.last_seq())
            .finish()
    }
}

struct State {
    client: Client,
    filter: pb::EventFilter,
    cursor: Arc<AtomicU64>,
    stream: Option<tonic::Streaming<pb::EventServiceWatchResponse>>,
    backoff: Duration,
    finished: bool,
}

impl State {
    fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Maps a non-transient status to the error the watch ends with.
    fn fatal(&self, status: tonic::Status) -> Error {
        let err = Error::from(status);
        if err.code() == Code::OutOfRange && err.reason().as_deref() == Some("CURSOR_EXPIRED") {
            let oldest_seq = err
                .metadata("oldestSeq")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if let Error::Rpc(status) = err {
                return Error::CursorExpired {
                    after_seq: self.cursor(),
                    oldest_seq,
                    status,
                };
            }
        }
        err
    }

    /// True when the status means "reconnect from the cursor".
    fn resumable(status: &tonic::Status) -> bool {
        if is_transient_stream_error(status) {
            return true;
        }
        status.code() == Code::Aborted
            && Error::from(status.clone()).reason().as_deref() == Some("SUBSCRIBER_LAGGED")
    }

    async fn next(&mut self) -> Option<Result<WatchItem, Error>> {
        loop {
            if self.finished {
                return None;
            }
            if self.stream.is_none() {
                let req = pb::EventServiceWatchRequest {
                    after_seq: self.cursor(),
                    filter: Some(self.filter.clone()),
                    follow_only: false,
                };
                match self.client.events().watch(req).await {
                    Ok(resp) => self.stream = Some(resp.into_inner()),
                    Err(status) if Self::resumable(&status) => {
                        tracing::debug!(error = %status, after_seq = self.cursor(), "watch: reconnecting");
                        self.pause().await;
                        continue;
                    }
                    Err(status) => {
                        self.finished = true;
                        return Some(Err(self.fatal(status)));
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            match stream.message().await {
                Ok(Some(frame)) => {
                    self.backoff = BACKOFF_MIN;
                    let cursor = self.cursor();
                    match frame.frame {
                        Some(Frame::Event(event)) => {
                            if event.seq <= cursor {
                                // Already delivered before a reconnect.
                                continue;
                            }
                            self.cursor.store(event.seq, Ordering::Release);
                            return Some(Ok(WatchItem::Event(event)));
                        }
                        Some(Frame::Progress(progress)) => {
                            if progress.seq > cursor {
                                self.cursor.store(progress.seq, Ordering::Release);
                            }
                            return Some(Ok(WatchItem::Progress(progress)));
                        }
                        None => continue,
                    }
                }
                Ok(None) => {
                    // The gateway closed the stream (e.g. shutting down): resume.
                    tracing::debug!(
                        after_seq = self.cursor(),
                        "watch: stream ended; reconnecting"
                    );
                    self.stream = None;
                    self.pause().await;
                }
                Err(status) if Self::resumable(&status) => {
                    tracing::debug!(error = %status, after_seq = self.cursor(), "watch: reconnecting");
                    self.stream = None;
                    self.pause().await;
                }
                Err(status) => {
                    self.stream = None;
                    self.finished = true;
                    return Some(Err(self.fatal(status)));
                }
            }
        }
    }
}

impl EventWatch {
    pub(crate) fn new(client: Client, after_seq: u64, filter: pb::EventFilter) -> EventWatch {
        let cursor = Arc::new(AtomicU64::new(after_seq));
        let state = State {
            client,
            filter,
            cursor: cursor.clone(),
            stream: None,
            backoff: BACKOFF_MIN,
            finished: false,
        };
        let inner = futures::stream::unfold(state, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        });
        EventWatch {
            inner: Box::pin(inner),
            last_seq: cursor,
        }
    }

    /// The last seq seen (the cursor a resume would use).
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }
}

impl Stream for EventWatch {
    type Item = Result<WatchItem, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
