//! The write half of one socket: a queue with byte accounting in front of a writer task, so
//! method tasks and the event loop never wait on a slow client. It is the only writer of
//! the socket, and it is bounded: any frame (a reply, an event, a legacy answer) that takes
//! the unread bytes past `policy.maxBufferedBytes` closes the client as a slow consumer
//! instead of buffering without end.

use super::Socket;
use futures::{SinkExt as _, stream::SplitSink};
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_tungstenite::tungstenite::{
    Message, Utf8Bytes,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// The queue in front of the socket's writer (cheap to clone: every method task holds one).
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    buffered: Arc<AtomicUsize>,
    slow: Arc<AtomicBool>,
    max_buffered: usize,
}

/// A queued frame and, for a pushed event, its per-connection seq.
struct Out {
    msg: Message,
    seq: u64,
}

impl Outbox {
    /// The outbox of `sink` and its writer task (it ends after a close frame, or once every
    /// clone of the outbox is dropped and the queue is written).
    pub fn open(sink: SplitSink<Socket, Message>, max_buffered: usize) -> (Outbox, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicUsize::new(0));
        let slow = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(writer(sink, rx, buffered.clone(), slow.clone()));
        let out = Outbox {
            tx,
            buffered,
            slow,
            max_buffered,
        };
        (out, writer)
    }

    /// Queues a text frame; returns the bytes now waiting to be written.
    pub fn text(&self, s: String) -> usize {
        self.queue(s, 0)
    }

    /// Queues an event frame carrying per-connection `seq`; returns the bytes now waiting.
    pub fn event(&self, s: String, seq: u64) -> usize {
        self.queue(s, seq)
    }

    fn queue(&self, s: String, seq: u64) -> usize {
        let n = s.len();
        let now = self.buffered.fetch_add(n, Ordering::AcqRel) + n;
        let m = Out {
            msg: Message::Text(s.into()),
            seq,
        };
        if self.tx.send(m).is_err() {
            self.buffered.fetch_sub(n, Ordering::AcqRel);
        } else if now > self.max_buffered {
            self.close_slow();
        }
        now
    }

    /// Queues a close frame (the writer stops after it).
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.tx.send(Out {
            msg: close_frame(code, reason),
            seq: 0,
        });
    }

    /// The slow-consumer close: the writer finishes the frame it is writing, drops the rest
    /// of the queue and closes 1008 `slow consumer; last seq <n>`, where n is the seq of the
    /// last event actually written, so the client that reads up to the close has seen
    /// exactly events 1..=n.
    pub fn close_slow(&self) {
        self.slow.store(true, Ordering::Release);
        // Wakes the writer if the queue happens to be empty.
        let _ = self.tx.send(Out {
            msg: Message::Close(None),
            seq: 0,
        });
    }
}

/// A close frame, its reason cut to the 123 bytes a control frame leaves for it.
fn close_frame(code: u16, reason: &str) -> Message {
    let mut r = reason.to_string();
    while r.len() > 123 {
        r.pop();
    }
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(r),
    }))
}

async fn writer(
    mut sink: SplitSink<Socket, Message>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    buffered: Arc<AtomicUsize>,
    slow: Arc<AtomicBool>,
) {
    let mut last_seq = 0u64;
    while let Some(Out { msg, seq }) = rx.recv().await {
        if slow.load(Ordering::Acquire) {
            let reason = format!("slow consumer; last seq {last_seq}");
            let _ = sink.send(close_frame(1008, &reason)).await;
            break;
        }
        let len = match &msg {
            Message::Text(t) => t.len(),
            _ => 0,
        };
        let is_close = matches!(msg, Message::Close(_));
        let r = sink.send(msg).await;
        buffered.fetch_sub(len, Ordering::AcqRel);
        if r.is_err() || is_close {
            break;
        }
        if seq > 0 {
            last_seq = seq;
        }
    }
}
