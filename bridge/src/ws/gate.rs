//! The pre-auth frame limit, enforced on the socket's bytes before the WebSocket layer
//! buffers them. tungstenite's `max_frame_size`/`max_message_size` are fixed when the
//! socket opens and must allow `policy.maxPayload` (25 MiB) after `connect`, so the
//! 64 KiB pre-auth limit is a separate gate in front of it: it reads the client's frame
//! headers as they pass and, while the limit is on, stops the stream at the header of a
//! data frame (or fragmented message) longer than the limit — its payload is never read
//! off the socket. After a successful `connect` the limit is lifted and tungstenite's
//! `policy.maxPayload` is the only bound.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The error the read half reports once the gate has stopped an oversize pre-auth frame.
#[derive(Debug, thiserror::Error)]
#[error("pre-auth frame too long")]
pub(crate) struct PreauthTooLong;

/// Lifts the pre-auth limit of its [`Gate`] (cheap to clone).
#[derive(Clone)]
pub(crate) struct Lift(Arc<AtomicBool>);

impl Lift {
    /// From now on only `policy.maxPayload` bounds a frame.
    pub fn lift(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Where the parser is in the client's byte stream.
enum At {
    /// Reading a frame header: the bytes so far.
    Header(Vec<u8>),
    /// Inside a payload: bytes still to pass.
    Payload(u64),
}

/// An IO wrapper holding the pre-auth limit (see the module doc).
pub(crate) struct Gate<S> {
    inner: S,
    limit: u64,
    lifted: Arc<AtomicBool>,
    at: At,
    /// The length of the data message being received (fragments summed).
    message: u64,
    tripped: bool,
}

impl<S> Gate<S> {
    pub fn new(inner: S, limit: usize) -> (Gate<S>, Lift) {
        let lifted = Arc::new(AtomicBool::new(false));
        let gate = Gate {
            inner,
            limit: limit as u64,
            lifted: lifted.clone(),
            at: At::Header(Vec::with_capacity(14)),
            message: 0,
            tripped: false,
        };
        (gate, Lift(lifted))
    }

    /// Walks `bytes`; returns the offset of the header that breaks the limit, if any.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let limited = !self.lifted.load(Ordering::Acquire);
        let mut i = 0;
        while i < bytes.len() {
            match &mut self.at {
                At::Payload(left) => {
                    let n = (*left).min((bytes.len() - i) as u64);
                    *left -= n;
                    i += n as usize;
                    if *left == 0 {
                        self.at = At::Header(Vec::with_capacity(14));
                    }
                }
                At::Header(h) => {
                    let start = i - h.len().min(i);
                    h.push(bytes[i]);
                    i += 1;
                    let Some((len, header_len)) = header(h) else {
                        continue;
                    };
                    if h.len() < header_len {
                        continue;
                    }
                    let opcode = h[0] & 0x0f;
                    let fin = h[0] & 0x80 != 0;
                    // Control frames (close, ping, pong) are at most 125 bytes by the
                    // protocol; data frames start (1, 2) or continue (0) a message.
                    if opcode < 8 {
                        self.message = if opcode == 0 {
                            self.message.saturating_add(len)
                        } else {
                            len
                        };
                        if limited && self.message > self.limit {
                            return Some(start);
                        }
                        if fin {
                            self.message = 0;
                        }
                    }
                    self.at = if len == 0 {
                        At::Header(Vec::with_capacity(14))
                    } else {
                        At::Payload(len)
                    };
                }
            }
        }
        None
    }
}

/// The payload length and the full header length (mask included) once enough of the
/// header is known.
fn header(h: &[u8]) -> Option<(u64, usize)> {
    if h.len() < 2 {
        return None;
    }
    let masked = h[1] & 0x80 != 0;
    let mask = if masked { 4 } else { 0 };
    match h[1] & 0x7f {
        126 => {
            let b = h.get(2..4)?;
            Some((u64::from(u16::from_be_bytes([b[0], b[1]])), 4 + mask))
        }
        127 => {
            let b: [u8; 8] = h.get(2..10)?.try_into().ok()?;
            Some((u64::from_be_bytes(b), 10 + mask))
        }
        n => Some((u64::from(n), 2 + mask)),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gate<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.tripped {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                PreauthTooLong,
            )));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let fresh = buf.filled()[before..].to_vec();
        if let Some(at) = self.scan(&fresh) {
            self.tripped = true;
            // Hand over only what precedes the oversize frame; the next read fails.
            buf.set_filled(before + at);
            if at == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    PreauthTooLong,
                )));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gate<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_header(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
        let mut h = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match len {
            0..=125 => h.push(0x80 | len as u8),
            126..=65535 => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(0x80 | 127);
                h.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
        let mut f = frame_header(opcode, fin, len);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    #[test]
    fn stops_at_the_header_of_an_oversize_pre_auth_frame() {
        let (mut g, lift) = Gate::new((), 1000);
        let small = frame(1, true, 1000);
        assert_eq!(g.scan(&small), None, "exactly the limit passes");
        let big = frame_header(1, true, 1001);
        let mut bytes = frame(9, true, 4); // a ping first
        let at = bytes.len();
        bytes.extend_from_slice(&big);
        assert_eq!(g.scan(&bytes), Some(at));
        // Byte by byte, across reads, the same.
        let (mut g, _) = Gate::new((), 1000);
        let mut hit = None;
        for (i, b) in frame_header(2, true, 70_000).iter().enumerate() {
            if g.scan(std::slice::from_ref(b)).is_some() {
                hit = Some(i);
            }
        }
        assert!(hit.is_some());
        // Fragments count towards one message.
        let (mut g, _) = Gate::new((), 1000);
        assert_eq!(g.scan(&frame(1, false, 600)), None);
        assert!(g.scan(&frame(0, true, 600)).is_some());
        // Lifted: only tungstenite's own limit applies.
        let (mut g2, lift2) = Gate::new((), 1000);
        lift2.lift();
        assert_eq!(g2.scan(&frame(1, true, 70_000)), None);
        drop(lift);
    }
}
