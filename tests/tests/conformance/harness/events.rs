//! The event feed: `EventService/Watch` streams and helpers to read RUN and DELTA events.

use std::time::Duration;

use clawplane_proto::pbjson_types::Timestamp;
use clawplane_proto::v1::event_service_watch_response::Frame;
use clawplane_proto::v1::{
    Event, EventFilter, EventKind, EventServiceWatchRequest, EventServiceWatchResponse, Run,
    RunState, event,
};
use tonic::{Status, Streaming};

use super::{Gateway, PATIENCE};

impl Gateway {
    /// `EventService/Watch` that must be accepted.
    pub async fn watch(&self, req: EventServiceWatchRequest) -> Feed {
        let stream = self
            .events()
            .await
            .watch(req.clone())
            .await
            .unwrap_or_else(|s| panic!("EventService/Watch {req:?} failed: {s:?}"))
            .into_inner();
        Feed { stream }
    }

    /// Watch after `after_seq` with an optional filter.
    pub async fn watch_after(&self, after_seq: u64, filter: Option<EventFilter>) -> Feed {
        self.watch(EventServiceWatchRequest {
            after_seq,
            filter,
            follow_only: false,
        })
        .await
    }

    /// The error a Watch ends with, either at the call or as the stream's first item.
    pub async fn watch_error(&self, req: EventServiceWatchRequest) -> Status {
        match self.events().await.watch(req.clone()).await {
            Err(s) => s,
            Ok(resp) => {
                let mut stream = resp.into_inner();
                match tokio::time::timeout(PATIENCE, stream.message()).await {
                    Ok(Err(s)) => s,
                    Ok(Ok(frame)) => panic!("Watch {req:?} should fail, got frame {frame:?}"),
                    Err(_) => panic!("Watch {req:?} should fail, but it stayed open"),
                }
            }
        }
    }

    /// Every event from the oldest up to and including `head` (unfiltered).
    pub async fn events_until(&self, head: u64) -> Vec<Event> {
        if head == 0 {
            return Vec::new();
        }
        let mut feed = self.watch_after(0, None).await;
        feed.collect_until(|e| e.seq >= head).await
    }
}

/// An open `EventService/Watch` stream.
pub struct Feed {
    pub stream: Streaming<EventServiceWatchResponse>,
}

impl Feed {
    /// The next frame; `Ok(None)` when the stream ended; `Err` on a status. Panics on timeout.
    pub async fn try_frame(&mut self, within: Duration) -> Result<Option<Frame>, Status> {
        match tokio::time::timeout(within, self.stream.message()).await {
            Err(_) => panic!("no Watch frame within {within:?}"),
            Ok(Err(s)) => Err(s),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(resp))) => Ok(Some(resp.frame.expect("Watch frame without content"))),
        }
    }

    /// The next frame (panics on end, error or timeout).
    pub async fn frame(&mut self, within: Duration) -> Frame {
        match self.try_frame(within).await {
            Ok(Some(f)) => f,
            Ok(None) => panic!("Watch stream ended unexpectedly"),
            Err(s) => panic!("Watch stream failed: {s:?}"),
        }
    }

    /// The next event, skipping progress frames.
    pub async fn next_event(&mut self) -> Event {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.frame(left.max(Duration::from_millis(1))).await {
                Frame::Event(e) => return e,
                Frame::Progress(_) => continue,
            }
        }
    }

    /// Events up to and including the first one matching `done`.
    pub async fn collect_until(&mut self, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let e = self.next_event().await;
            let stop = done(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
    }
}

/// A filter for one run's events, optionally of some kinds.
pub fn run_filter(run_id: &str, kinds: &[EventKind]) -> Option<EventFilter> {
    Some(EventFilter {
        session_key: String::new(),
        run_id: run_id.into(),
        kinds: kinds.iter().map(|k| *k as i32).collect(),
    })
}

/// A filter for one session's events, optionally of some kinds.
pub fn session_filter(session_key: &str, kinds: &[EventKind]) -> Option<EventFilter> {
    Some(EventFilter {
        session_key: session_key.into(),
        run_id: String::new(),
        kinds: kinds.iter().map(|k| *k as i32).collect(),
    })
}

/// The Run payload of a RUN event.
pub fn run_of(e: &Event) -> Option<&Run> {
    match &e.payload {
        Some(event::Payload::Run(r)) => Some(r),
        _ => None,
    }
}

/// True for a RUN event of `run_id` in `state`.
pub fn is_run_event(e: &Event, run_id: &str, state: RunState) -> bool {
    run_of(e).is_some_and(|r| r.run_id == run_id && r.state() == state)
}

/// Terminal run states (INTERRUPTED is terminal only after the retry; Wait treats it so).
pub fn is_terminal(s: RunState) -> bool {
    matches!(
        s,
        RunState::Succeeded
            | RunState::Failed
            | RunState::Cancelled
            | RunState::TimedOut
            | RunState::Interrupted
    )
}

/// The states of `run_id` in the RUN events of `events`, in order.
pub fn run_states(events: &[Event], run_id: &str) -> Vec<RunState> {
    events
        .iter()
        .filter_map(run_of)
        .filter(|r| r.run_id == run_id)
        .map(|r| r.state())
        .collect()
}

/// The concatenated DELTA texts of `run_id` in `events`.
pub fn delta_text(events: &[Event], run_id: &str) -> String {
    events
        .iter()
        .filter(|e| e.run_id == run_id)
        .filter_map(|e| match &e.payload {
            Some(event::Payload::Delta(d)) => Some(d.text.as_str()),
            _ => None,
        })
        .collect()
}

/// A timestamp as a sortable pair (missing -> panic).
pub fn ts(t: &Option<Timestamp>, what: &str) -> (i64, i32) {
    let t = t.as_ref().unwrap_or_else(|| panic!("{what} is unset"));
    (t.seconds, t.nanos)
}
