//! The read half of one socket, as the protocol loops see it: a text frame, a control frame
//! to skip, an oversize frame, or the end; and the wait for the client's close reply.

use super::{Socket, gate::PreauthTooLong};
use futures::{StreamExt as _, stream::SplitStream};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How long a closing socket waits for the client's close reply.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// What the read half produced.
pub(crate) enum Incoming {
    Text(String),
    /// The client closed, or the socket failed.
    Gone,
    /// A frame above the transport limit (`policy.maxPayload`, or before `connect` the
    /// pre-auth gate's 64 KiB).
    TooBig,
    /// A control frame; nothing to do.
    Skip,
}

/// Classifies the next item of the read half.
pub(crate) fn classify(m: Option<Result<Message, WsError>>) -> Incoming {
    match m {
        Some(Ok(Message::Text(t))) => Incoming::Text(t.as_str().to_owned()),
        // Binary frames are read as text (invalid UTF-8 replaced), so they meet the same
        // pre-auth size limit and JSON checks as text frames instead of slipping past them.
        Some(Ok(Message::Binary(b))) => Incoming::Text(String::from_utf8_lossy(&b).into_owned()),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Skip,
        // The close reply is queued by the protocol layer; keep reading until the end.
        Some(Ok(Message::Close(_) | Message::Frame(_))) => Incoming::Skip,
        Some(Err(WsError::Capacity(_))) => Incoming::TooBig,
        Some(Err(WsError::Io(e))) if e.get_ref().is_some_and(|r| r.is::<PreauthTooLong>()) => {
            Incoming::TooBig
        }
        Some(Err(_)) | None => Incoming::Gone,
    }
}

/// Reads until the client's side ends (or [`CLOSE_WAIT`] passes), so a close frame we sent
/// gets its reply instead of a dropped connection.
pub(crate) async fn linger(stream: &mut SplitStream<Socket>) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}
