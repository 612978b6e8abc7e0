//! Reading a request body within the limits every HTTP route shares: a size cap (a larger
//! body is still drained a little so the 413 reaches the client) and a time limit.

use crate::respond::{Answer, bad, fail, reject};
use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, header},
};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use std::time::Duration;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a client may take to send the body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Beyond the limit a body is still drained up to this size, so the 413 reaches the client
/// before the connection closes.
const DRAIN_BYTES: usize = 4 * 1024 * 1024;

/// Reads the body within [`MAX_BODY_BYTES`] and [`BODY_TIMEOUT`].
pub(crate) async fn read_body(body: Body, headers: &HeaderMap) -> Answer<Bytes> {
    let too_large = || fail(StatusCode::PAYLOAD_TOO_LARGE, "payload too large");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_BYTES as u64) {
        return reject(too_large());
    }
    let read = async move {
        let mut body = body;
        let mut buf = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total <= MAX_BODY_BYTES {
                    buf.extend_from_slice(&data);
                } else if total > DRAIN_BYTES {
                    break;
                }
            }
        }
        Ok::<_, String>((buf, total))
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => reject(fail(StatusCode::REQUEST_TIMEOUT, "request body timeout")),
        Ok(Err(e)) => reject(bad(format!("cannot read the request body: {e}"))),
        Ok(Ok((_, total))) if total > MAX_BODY_BYTES => reject(too_large()),
        Ok(Ok((buf, _))) => Ok(Bytes::from(buf)),
    }
}
