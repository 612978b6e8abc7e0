//! Fake OpenAI-compatible speech to text: `POST /v1/audio/transcriptions` takes
//! `multipart/form-data` with `file` (a file name with an audio extension) and `model`, and
//! answers `{"text": …}` — the "speech" of these tests is the file's bytes as text, so a
//! test knows the transcript of the audio it made. A wrong bearer key answers 401, a
//! missing part 400, both with OpenAI's `{"error": {"message", "type"}}`.

use super::recorder::{Canned, Recorded, Recorder, Server, serve};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

struct Inner {
    key: String,
}

/// A running fake transcription provider.
#[derive(Clone)]
pub struct FakeTranscription {
    /// `transcription.baseUrl` (`…/v1`).
    pub base_url: String,
    pub server: Server,
}

impl FakeTranscription {
    /// Starts a fake that accepts bearer key `key`.
    pub async fn start(key: &str) -> Self {
        let server = serve(Arc::new(Inner { key: key.into() }), handle).await;
        FakeTranscription {
            base_url: format!("{}/v1", server.url),
            server,
        }
    }

    /// Every transcription request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.rec.requests()
    }
}

/// The parts of a multipart body: (name, file name, content).
pub fn parts(r: &Recorded) -> Vec<(String, Option<String>, Vec<u8>)> {
    let ct = r.header_str("content-type");
    let Some(boundary) = ct.split("boundary=").nth(1) else {
        return Vec::new();
    };
    let delim = format!("--{}", boundary.trim_matches('"'));
    let body = &r.bytes;
    let mut out = Vec::new();
    let positions: Vec<usize> = body
        .windows(delim.len())
        .enumerate()
        .filter(|(_, w)| *w == delim.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delim.len()..pair[1]];
        let Some(split) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let mut content = part[split + 4..].to_vec();
        if content.ends_with(b"\r\n") {
            content.truncate(content.len() - 2);
        }
        let attr = |k: &str| {
            head.split(';')
                .find_map(|a| a.trim().strip_prefix(&format!("{k}=\"")))
                .and_then(|v| v.split('"').next())
                .map(str::to_string)
        };
        if let Some(name) = attr("name") {
            out.push((name, attr("filename"), content));
        }
    }
    out
}

fn error(status: u16, message: &str) -> Response {
    Canned::json(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
    .into_response()
}

async fn handle(inner: Arc<Inner>, recorder: Arc<Recorder>, rec: Recorded) -> Response {
    if rec.header("authorization") != Some(format!("Bearer {}", inner.key).as_str()) {
        return error(401, "Incorrect API key provided.");
    }
    if let Some(c) = recorder.take(&rec.path) {
        return c.into_response();
    }
    if rec.method != "POST" || rec.path != "/v1/audio/transcriptions" {
        return error(404, "Not found");
    }
    let parts = parts(&rec);
    let model = parts.iter().find(|(n, _, _)| n == "model");
    let file = parts.iter().find(|(n, f, _)| n == "file" && f.is_some());
    let (Some(_), Some((_, Some(name), audio))) = (model, file) else {
        return error(400, "you must provide a model parameter and a file");
    };
    if ![".ogg", ".mp3", ".m4a", ".wav", ".webm", ".aac", ".amr"]
        .iter()
        .any(|ext| name.ends_with(ext))
    {
        return error(400, "Invalid file format.");
    }
    Canned::json(200, json!({"text": String::from_utf8_lossy(audio)})).into_response()
}
