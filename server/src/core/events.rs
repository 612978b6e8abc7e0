//! The resumable event feed: replay from the durable log, then follow the live channel
//! with no gap and no duplicate (subscribe first, drop what is at or below the cursor).

use super::Gateway;
use crate::error::{Error, Result};
use clawplane_proto::v1::{Event, EventFilter, Progress};
use futures::Stream;
use std::{collections::VecDeque, sync::Arc, time::Duration};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

/// One frame of a watch.
pub enum Frame {
    Event(Arc<Event>),
    Progress(Progress),
}

const REPLAY_PAGE: usize = 256;

struct Watch {
    gw: Arc<Gateway>,
    live: broadcast::Receiver<Arc<Event>>,
    /// Every event with seq <= cursor has been considered (sent or filtered out).
    cursor: u64,
    backlog: VecDeque<Event>,
    replaying: bool,
    filter: EventFilter,
    idle: Duration,
    done: bool,
    /// Fires when the caller's device token is revoked: the stream ends at once.
    revoked: tokio_util::sync::CancellationToken,
    /// Counts the device as connected while the stream is open.
    _guard: Option<crate::auth::StreamGuard>,
}

impl Watch {
    fn matches(&self, ev: &Event) -> bool {
        let f = &self.filter;
        (f.session_key.is_empty() || f.session_key == ev.session_key)
            && (f.run_id.is_empty() || f.run_id == ev.run_id)
            && (f.kinds.is_empty() || f.kinds.contains(&ev.kind))
    }

    /// Handles one item from the live channel: `None` means "nothing to yield, go on".
    fn on_live(&mut self, r: Result<Arc<Event>, RecvError>) -> Option<Option<Result<Frame>>> {
        match r {
            Ok(ev) => {
                if ev.seq <= self.cursor {
                    return None;
                }
                if ev.seq > self.cursor + 1 {
                    // Should not happen (seq is dense); recover from the log.
                    self.replaying = true;
                    return None;
                }
                self.cursor = ev.seq;
                self.matches(&ev).then_some(Some(Ok(Frame::Event(ev))))
            }
            Err(RecvError::Lagged(_)) => {
                self.done = true;
                Some(Some(Err(Error::SubscriberLagged {
                    last_seq: self.cursor,
                })))
            }
            Err(RecvError::Closed) => {
                self.done = true;
                Some(None)
            }
        }
    }

    async fn next(&mut self) -> Option<Result<Frame>> {
        loop {
            if self.done {
                return None;
            }
            if self.revoked.is_cancelled() {
                self.done = true;
                return Some(Err(Error::TokenRevoked));
            }
            if self.replaying {
                if self.backlog.is_empty() {
                    let after = self.cursor;
                    let page = match self.gw.store.replay(after, REPLAY_PAGE).await {
                        Ok(p) => p,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    };
                    if let Some(first) = page.first()
                        && first.seq != after + 1
                    {
                        // Pruned under us: the cursor fell out of retention.
                        self.done = true;
                        return Some(Err(Error::CursorExpired {
                            requested: after,
                            oldest: first.seq,
                        }));
                    }
                    if page.is_empty() {
                        self.replaying = false;
                        continue;
                    }
                    self.backlog.extend(page);
                }
                if let Some(ev) = self.backlog.pop_front() {
                    self.cursor = ev.seq;
                    if self.matches(&ev) {
                        return Some(Ok(Frame::Event(Arc::new(ev))));
                    }
                }
                continue;
            }
            // Fast path: drain what is already buffered without arming timers.
            if !self.gw.shutdown.is_cancelled() && !self.revoked.is_cancelled() {
                match self.live.try_recv() {
                    Ok(ev) => match self.on_live(Ok(ev)) {
                        Some(out) => return out,
                        None => continue,
                    },
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Lagged(n)) => {
                        if let Some(out) = self.on_live(Err(RecvError::Lagged(n))) {
                            return out;
                        }
                    }
                    Err(TryRecvError::Closed) => {
                        if let Some(out) = self.on_live(Err(RecvError::Closed)) {
                            return out;
                        }
                    }
                }
            }
            tokio::select! {
                biased;
                _ = self.gw.shutdown.cancelled() => {
                    self.done = true;
                    return Some(Err(Error::ShuttingDown));
                }
                _ = self.revoked.cancelled() => {
                    self.done = true;
                    return Some(Err(Error::TokenRevoked));
                }
                r = self.live.recv() => {
                    if let Some(out) = self.on_live(r) {
                        return out;
                    }
                }
                _ = tokio::time::sleep(self.idle) => {
                    let seq = self.cursor.max(self.gw.store.head());
                    return Some(Ok(Frame::Progress(Progress { seq })));
                }
            }
        }
    }
}

impl Gateway {
    /// Starts a watch after `after_seq` (0 = from the oldest retained event; `follow_only`
    /// = from the head) for `caller`: a device-token caller's stream ends with
    /// `TOKEN_REVOKED` the moment its token is revoked or rotated.
    pub fn watch(
        self: &Arc<Self>,
        after_seq: u64,
        follow_only: bool,
        filter: EventFilter,
        caller: &crate::auth::Principal,
    ) -> Result<impl Stream<Item = Result<Frame>> + Send + 'static> {
        // Subscribe before reading the log so nothing committed in between is missed.
        let live = self.store.feed.live.subscribe();
        let oldest = self.store.oldest();
        let head = self.store.head();
        let cursor = if after_seq == 0 {
            if follow_only {
                head
            } else {
                oldest.saturating_sub(1)
            }
        } else {
            after_seq
        };
        if cursor + 1 < oldest {
            return Err(Error::CursorExpired {
                requested: cursor,
                oldest,
            });
        }
        let w = Watch {
            gw: self.clone(),
            live,
            cursor,
            backlog: VecDeque::new(),
            replaying: cursor < head,
            filter,
            idle: Duration::from_millis(self.config.events.progress_interval_ms.max(10)),
            done: false,
            revoked: caller.revoked().unwrap_or_default(),
            _guard: caller
                .device()
                .map(|(d, _)| self.devices.index().open_stream(d)),
        };
        Ok(futures::stream::unfold(w, |mut w| async move {
            w.next().await.map(|item| (item, w))
        }))
    }
}
