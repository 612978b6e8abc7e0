//! The answers every HTTP route of the bridge shares: JSON and `text/plain` bodies and
//! `{ok:false, error}`, and the type of a handler step that may have to answer early.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value as Json, json};

/// A handler step: the value, or the answer to send now (boxed: a `Response` is large).
pub(crate) type Answer<T> = Result<T, Box<Response>>;

/// Ends a handler step with `r`.
pub(crate) fn reject<T>(r: Response) -> Answer<T> {
    Err(Box::new(r))
}

/// A text/plain answer.
pub(crate) fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (
        code,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body.into(),
    )
        .into_response()
}

/// A JSON answer.
pub(crate) fn json(code: StatusCode, body: Json) -> Response {
    (code, axum::Json(body)).into_response()
}

/// `{ok:false, error}` with a status code.
pub(crate) fn fail(code: StatusCode, error: impl Into<String>) -> Response {
    json(code, json!({"ok": false, "error": error.into()}))
}

/// `400 {ok:false, error}`.
pub(crate) fn bad(error: impl Into<String>) -> Response {
    fail(StatusCode::BAD_REQUEST, error)
}
