//! HTTP and WebSocket translators into the clawplane services (issue 3+).
