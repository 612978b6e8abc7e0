//! Run handles: wait for, cancel and stream one run.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use clawplane_proto::v1::{self as pb, RunState, event::Payload};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::client::Client;
use crate::error::Error;
use crate::watch::{EventWatch, WatchItem};

/// True when the run will not change any more: SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, or
/// INTERRUPTED on its second attempt (a first-attempt INTERRUPTED run is retried once).
pub fn is_terminal(run: &pb::Run) -> bool {
    match run.state() {
        RunState::Succeeded | RunState::Failed | RunState::Cancelled | RunState::TimedOut => true,
        RunState::Interrupted => run.attempt >= 2,
        RunState::Unspecified | RunState::Queued | RunState::Running => false,
    }
}

/// A submitted run.
#[derive(Debug, Clone)]
pub struct RunHandle {
    /// The run id.
    pub run_id: String,
    /// The canonical session key the run belongs to.
    pub session_key: String,
    /// True when the gateway returned an existing run for a repeated idempotency key.
    pub duplicate: bool,
    /// The state when the run was accepted (QUEUED for a new run).
    pub state: RunState,
    client: Client,
    /// Event-log head observed before the submission, when known.
    start_seq: Option<u64>,
}

/// One item of [`RunHandle::stream`].
#[derive(Debug, Clone, PartialEq)]
pub enum RunUpdate {
    /// More reply text. Concatenated, the deltas give the reply.
    Delta(String),
    /// A non-terminal state change (RUNNING, or a retry after an interruption: `attempt` 2).
    State(pb::Run),
    /// The final run; always the last item.
    Done(pb::Run),
}

impl RunHandle {
    pub(crate) fn new(
        client: Client,
        run_id: String,
        session_key: String,
        duplicate: bool,
        state: RunState,
        start_seq: Option<u64>,
    ) -> RunHandle {
        RunHandle {
            run_id,
            session_key,
            duplicate,
            state,
            client,
            start_seq,
        }
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads the run now.
    pub async fn get(&self) -> Result<pb::Run, Error> {
        self.client.get_run(&self.run_id).await
    }

    /// Waits up to `timeout` for the run to finish (looping `AgentService/Wait`) and returns
    /// it; when the timeout passes first the run is returned in its current, non-terminal
    /// state.
    pub async fn wait(&self, timeout: Duration) -> Result<pb::Run, Error> {
        self.client.wait_run(&self.run_id, timeout).await
    }

    /// Cancels the run (a finished run is returned unchanged).
    pub async fn cancel(&self) -> Result<pb::Run, Error> {
        self.client.cancel_run(&self.run_id).await
    }

    /// Streams the reply: text deltas as the model produces them, non-terminal state
    /// changes, then [`RunUpdate::Done`] with the final run, after which the stream ends.
    ///
    /// Built on the auto-resuming [`EventWatch`] filtered by run id, starting at the event
    /// head seen just before the run was submitted (so no delta is missed and the log is not
    /// replayed). For a duplicate or attached run whose events may be older, the run is read
    /// first; if it already finished, its reply is yielded as one delta. Either way,
    /// concatenating the deltas of the final attempt gives `Run.reply_text`.
    pub fn stream(&self) -> RunStream {
        let handle = self.clone();
        let s = futures::stream::unfold(StreamState::Start(handle), |state| async move {
            match state {
                StreamState::Finished => None,
                StreamState::Pending(mut items, next) => {
                    let item = items.remove(0);
                    let next = if items.is_empty() {
                        *next
                    } else {
                        StreamState::Pending(items, next)
                    };
                    Some((item, next))
                }
                StreamState::Start(handle) => {
                    let after = match (handle.duplicate, handle.start_seq) {
                        (false, Some(seq)) => seq,
                        _ => {
                            let run = match handle.get().await {
                                Ok(run) => run,
                                Err(e) => return Some((Err(e), StreamState::Finished)),
                            };
                            if is_terminal(&run) {
                                let mut items = Vec::new();
                                if !run.reply_text.is_empty() {
                                    items.push(Ok(RunUpdate::Delta(run.reply_text.clone())));
                                }
                                items.push(Ok(RunUpdate::Done(run)));
                                let first = items.remove(0);
                                let next = if items.is_empty() {
                                    StreamState::Finished
                                } else {
                                    StreamState::Pending(items, Box::new(StreamState::Finished))
                                };
                                return Some((first, next));
                            }
                            // Its events may predate our head: replay them (filtered).
                            0
                        }
                    };
                    let filter = pb::EventFilter {
                        run_id: handle.run_id.clone(),
                        ..Default::default()
                    };
                    let watch = handle.client.watch(after, filter);
                    follow(Following {
                        watch,
                        text: String::new(),
                        attempt: 0,
                    })
                    .await
                }
                StreamState::Following(f) => follow(f).await,
            }
        });
        RunStream { inner: Box::pin(s) }
    }
}

struct Following {
    watch: EventWatch,
    /// Text yielded for the current attempt.
    text: String,
    attempt: u32,
}

enum StreamState {
    Start(RunHandle),
    Following(Following),
    Pending(Vec<Result<RunUpdate, Error>>, Box<StreamState>),
    Finished,
}

async fn follow(mut f: Following) -> Option<(Result<RunUpdate, Error>, StreamState)> {
    loop {
        let item = match f.watch.next().await {
            None => {
                return Some((
                    Err(Error::Protocol(
                        "the event watch ended before the run finished".into(),
                    )),
                    StreamState::Finished,
                ));
            }
            Some(Err(e)) => return Some((Err(e), StreamState::Finished)),
            Some(Ok(item)) => item,
        };
        let WatchItem::Event(event) = item else {
            continue;
        };
        match event.payload {
            Some(Payload::Delta(delta)) => {
                if delta.text.is_empty() {
                    continue;
                }
                f.text.push_str(&delta.text);
                return Some((Ok(RunUpdate::Delta(delta.text)), StreamState::Following(f)));
            }
            Some(Payload::Run(run)) => {
                if is_terminal(&run) {
                    // Yield any reply text the deltas did not carry (e.g. replay gaps).
                    let missing = run
                        .reply_text
                        .strip_prefix(f.text.as_str())
                        .filter(|rest| !rest.is_empty())
                        .map(str::to_string);
                    let done = Ok(RunUpdate::Done(run));
                    return match missing {
                        Some(rest) => Some((
                            Ok(RunUpdate::Delta(rest)),
                            StreamState::Pending(vec![done], Box::new(StreamState::Finished)),
                        )),
                        None => Some((done, StreamState::Finished)),
                    };
                }
                if run.attempt > f.attempt {
                    if f.attempt != 0 {
                        // A new attempt regenerates the reply from scratch.
                        f.text.clear();
                    }
                    f.attempt = run.attempt;
                }
                return Some((Ok(RunUpdate::State(run)), StreamState::Following(f)));
            }
            _ => continue,
        }
    }
}

/// The stream returned by [`RunHandle::stream`].
pub struct RunStream {
    inner: BoxStream<'static, Result<RunUpdate, Error>>,
}

impl std::fmt::Debug for RunStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunStream")
    }
}

impl Stream for RunStream {
    type Item = Result<RunUpdate, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states() {
        let mut run = pb::Run {
            state: RunState::Running as i32,
            attempt: 1,
            ..Default::default()
        };
        assert!(!is_terminal(&run));
        run.state = RunState::Succeeded as i32;
        assert!(is_terminal(&run));
        run.state = RunState::Interrupted as i32;
        assert!(!is_terminal(&run));
        run.attempt = 2;
        assert!(is_terminal(&run));
    }
}
