//! Speech to text through an OpenAI-compatible `POST <baseUrl>/audio/transcriptions`
//! (multipart: `file`, `model`; answer `{"text": …}`), for WhatsApp voice notes.

use crate::config::channels::TranscriptionConfig;
use serde_json::Value;
use std::time::Duration;

/// The file name the provider sees (it picks the decoder from the extension).
fn file_name(mime: &str) -> &'static str {
    let base = mime.split(';').next().unwrap_or_default().trim();
    match base {
        "audio/mpeg" | "audio/mp3" => "voice.mp3",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "voice.m4a",
        "audio/aac" => "voice.aac",
        "audio/amr" => "voice.amr",
        "audio/wav" | "audio/x-wav" => "voice.wav",
        "audio/webm" => "voice.webm",
        _ => "voice.ogg", // WhatsApp voice notes: audio/ogg; codecs=opus
    }
}

/// Transcribes `audio`; the error says why, for the log and the sender.
pub async fn transcribe(
    cfg: &TranscriptionConfig,
    http: &reqwest::Client,
    audio: Vec<u8>,
    mime: &str,
) -> Result<String, String> {
    let url = format!(
        "{}/audio/transcriptions",
        cfg.base_url.trim().trim_end_matches('/')
    );
    let part = reqwest::multipart::Part::bytes(audio)
        .file_name(file_name(mime))
        .mime_str(mime.split(';').next().unwrap_or("audio/ogg").trim())
        .map_err(|e| format!("MIME type {mime:?}: {e}"))?;
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("model", cfg.model.trim().to_string())
        .text("response_format", "json");
    let mut req = http
        .post(&url)
        .multipart(form)
        .timeout(Duration::from_secs(cfg.timeout_seconds.max(1)));
    if let Some(key) = cfg.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
        req = req.bearer_auth(key.trim());
    }
    let resp = req.send().await.map_err(|e| {
        format!(
            "the transcription provider is unreachable: {}",
            e.without_url()
        )
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Err(format!(
            "the transcription provider answered {status}: {why}"
        ));
    }
    match body.get("text").and_then(Value::as_str).map(str::trim) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        Some(_) => Err("the transcription is empty (no speech recognised)".into()),
        None => Err(format!(
            "the transcription provider answered without text: {body}"
        )),
    }
}
