//! A lean gRPC-over-h2c client for load generation: pre-encoded request bodies, no
//! per-call channel hop, no full decode where a bench only needs a few fields. It keeps
//! the load core's cost per call low so the server core is what gets measured.

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use std::{net::SocketAddr, time::Duration};
use tokio::net::TcpStream;

/// Everything a call needs apart from its body: method path plus headers.
#[derive(Clone)]
pub struct MethodPath {
    uri: Uri,
}

/// One h2 connection; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Conn {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
    token: Option<HeaderValue>,
}

/// A call that ended with a non-zero grpc-status.
#[derive(Debug)]
pub struct GrpcError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for GrpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "grpc-status {}: {}", self.code, self.message)
    }
}

impl std::error::Error for GrpcError {}

/// Frames a protobuf message as one uncompressed gRPC message.
pub fn frame<M: prost::Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut b = BytesMut::with_capacity(5 + len);
    b.put_u8(0);
    b.put_u32(len as u32);
    m.encode(&mut b).expect("BytesMut grows");
    b.freeze()
}

/// Takes one complete gRPC message off the front of `buf`, if there is one.
pub fn take_message(buf: &mut BytesMut) -> Result<Option<Bytes>> {
    if buf.len() < 5 {
        return Ok(None);
    }
    if buf[0] != 0 {
        bail!("compressed gRPC message (flag {})", buf[0]);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    Ok(Some(buf.split_to(len).freeze()))
}

fn status_of(h: &HeaderMap) -> Option<GrpcError> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(GrpcError {
        code,
        message: h
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    })
}

impl Conn {
    /// Opens an h2c connection. `token` goes into `authorization: Bearer`.
    pub async fn connect(addr: SocketAddr, token: Option<&str>) -> Result<Conn> {
        let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connect {addr}: timed out"))?
            .with_context(|| format!("connect {addr}"))?;
        tcp.set_nodelay(true)?;
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(4 << 20)
            .initial_connection_window_size(32 << 20)
            .max_concurrent_streams(1000)
            .handshake::<_, Bytes>(tcp)
            .await
            .with_context(|| format!("h2 handshake with {addr}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            send,
            authority: addr.to_string(),
            token: token
                .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
                .transpose()?,
        })
    }

    /// The method handle for a full method path such as `/pkg.Service/Method`.
    pub fn method(&self, path: &str) -> MethodPath {
        let uri = format!("http://{}{}", self.authority, path)
            .parse()
            .expect("valid URI");
        MethodPath { uri }
    }

    async fn start(&self, m: &MethodPath, body: Bytes) -> Result<h2::RecvStream> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(m.uri.clone())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())?;
        if let Some(t) = &self.token {
            req.headers_mut().insert("authorization", t.clone());
        }
        let mut send = self.send.clone().ready().await?;
        let (resp, mut stream) = send.send_request(req, false)?;
        stream.send_data(body, true)?;
        let resp = resp.await?;
        let (parts, recv) = resp.into_parts();
        if parts.status != http::StatusCode::OK {
            bail!("HTTP status {}", parts.status);
        }
        // Trailers-only answer: the status is in the headers.
        if let Some(st) = status_of(&parts.headers)
            && st.code != 0
        {
            return Err(st.into());
        }
        Ok(recv)
    }

    /// A unary call with a pre-framed body; returns the response message bytes.
    pub async fn unary_raw(&self, m: &MethodPath, body: Bytes) -> Result<Bytes> {
        let mut recv = self.start(m, body).await?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            buf.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await?;
        if let Some(st) = trailers.as_ref().and_then(status_of)
            && st.code != 0
        {
            return Err(st.into());
        }
        take_message(&mut buf)?.ok_or_else(|| anyhow!("response without a message"))
    }

    /// A unary call with decode.
    pub async fn unary<Q: prost::Message, R: prost::Message + Default>(
        &self,
        m: &MethodPath,
        req: &Q,
    ) -> Result<R> {
        let bytes = self.unary_raw(m, frame(req)).await?;
        Ok(R::decode(bytes)?)
    }

    /// Starts a server-streaming call; returns once the response headers arrived.
    pub async fn server_stream(&self, m: &MethodPath, body: Bytes) -> Result<MessageStream> {
        Ok(MessageStream {
            recv: self.start(m, body).await?,
            buf: BytesMut::new(),
        })
    }
}

/// The response side of a streaming call.
pub struct MessageStream {
    recv: h2::RecvStream,
    buf: BytesMut,
}

/// How a stream ended.
pub enum StreamEnd {
    Ok,
    Status(GrpcError),
    Transport(String),
}

impl MessageStream {
    /// Waits for the next DATA chunk and hands every complete message in the buffer to
    /// `each`. Returns `Some(end)` when the stream is over.
    pub async fn next_batch(&mut self, mut each: impl FnMut(&[u8])) -> Option<StreamEnd> {
        match self.recv.data().await {
            Some(Ok(chunk)) => {
                let _ = self.recv.flow_control().release_capacity(chunk.len());
                self.buf.extend_from_slice(&chunk);
                loop {
                    match take_message(&mut self.buf) {
                        Ok(Some(m)) => each(&m),
                        Ok(None) => return None,
                        Err(e) => return Some(StreamEnd::Transport(e.to_string())),
                    }
                }
            }
            Some(Err(e)) => Some(StreamEnd::Transport(e.to_string())),
            None => match self.recv.trailers().await {
                Ok(t) => match t.as_ref().and_then(status_of) {
                    Some(st) if st.code != 0 => Some(StreamEnd::Status(st)),
                    _ => Some(StreamEnd::Ok),
                },
                Err(e) => Some(StreamEnd::Transport(e.to_string())),
            },
        }
    }
}

/// Reads a protobuf varint.
fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Skips a field of the given wire type.
fn skip(b: &mut &[u8], wire: u64) -> Option<()> {
    match wire {
        0 => {
            varint(b)?;
        }
        1 => *b = b.get(8..)?,
        2 => {
            let n = varint(b)? as usize;
            *b = b.get(n..)?;
        }
        5 => *b = b.get(4..)?,
        _ => return None,
    }
    Some(())
}

/// A length-delimited field's bytes.
fn bytes_field<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = varint(b)? as usize;
    let (f, rest) = (b.get(..n)?, b.get(n..)?);
    *b = rest;
    Some(f)
}

/// What the feed bench needs from one `EventServiceWatchResponse`.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchFrame {
    /// seq and commit time (ns since the epoch).
    Event {
        seq: u64,
        time_ns: i128,
    },
    Progress {
        seq: u64,
    },
}

/// Scans an encoded `EventServiceWatchResponse` for seq and time only (no allocation).
pub fn scan_watch_frame(mut b: &[u8]) -> Option<WatchFrame> {
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match (key >> 3, key & 7) {
            (1, 2) => {
                let mut ev = bytes_field(&mut b)?;
                let (mut seq, mut time_ns) = (0u64, 0i128);
                while !ev.is_empty() {
                    let k = varint(&mut ev)?;
                    match (k >> 3, k & 7) {
                        (1, 0) => seq = varint(&mut ev)?,
                        (2, 2) => {
                            let mut ts = bytes_field(&mut ev)?;
                            let (mut s, mut n) = (0i64, 0i64);
                            while !ts.is_empty() {
                                let tk = varint(&mut ts)?;
                                match (tk >> 3, tk & 7) {
                                    (1, 0) => s = varint(&mut ts)? as i64,
                                    (2, 0) => n = varint(&mut ts)? as i64,
                                    (_, w) => skip(&mut ts, w)?,
                                }
                            }
                            time_ns = i128::from(s) * 1_000_000_000 + i128::from(n);
                        }
                        (_, w) => skip(&mut ev, w)?,
                    }
                }
                return Some(WatchFrame::Event { seq, time_ns });
            }
            (2, 2) => {
                let mut p = bytes_field(&mut b)?;
                let mut seq = 0;
                while !p.is_empty() {
                    let k = varint(&mut p)?;
                    match (k >> 3, k & 7) {
                        (1, 0) => seq = varint(&mut p)?,
                        (_, w) => skip(&mut p, w)?,
                    }
                }
                return Some(WatchFrame::Progress { seq });
            }
            (_, w) => skip(&mut b, w)?,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawplane_proto::{
        pbjson_types::Timestamp,
        v1::{
            Event, EventKind, EventServiceWatchResponse, Progress, SystemEvent, event,
            event_service_watch_response::Frame,
        },
    };
    use prost::Message as _;

    #[test]
    fn scans_event_and_progress() {
        let ev = EventServiceWatchResponse {
            frame: Some(Frame::Event(Event {
                seq: 123_456,
                time: Some(Timestamp {
                    seconds: 1_750_000_000,
                    nanos: 987_654_321,
                }),
                session_key: "agent:main:main".into(),
                kind: EventKind::SystemEvent as i32,
                payload: Some(event::Payload::SystemEvent(SystemEvent {
                    text: "hello".into(),
                    outcome: 1,
                    mode: 2,
                })),
                ..Default::default()
            })),
        };
        assert_eq!(
            scan_watch_frame(&ev.encode_to_vec()),
            Some(WatchFrame::Event {
                seq: 123_456,
                time_ns: 1_750_000_000_987_654_321
            })
        );
        let p = EventServiceWatchResponse {
            frame: Some(Frame::Progress(Progress { seq: 42 })),
        };
        assert_eq!(
            scan_watch_frame(&p.encode_to_vec()),
            Some(WatchFrame::Progress { seq: 42 })
        );
    }

    #[test]
    fn frames_round_trip() {
        let p = Progress { seq: 7 };
        let mut buf = BytesMut::from(&frame(&p)[..]);
        buf.extend_from_slice(&frame(&p)[..3]);
        let m = take_message(&mut buf).unwrap().unwrap();
        assert_eq!(Progress::decode(m).unwrap(), p);
        assert!(take_message(&mut buf).unwrap().is_none());
    }
}
