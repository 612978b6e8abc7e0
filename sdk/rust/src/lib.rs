//! Typed Rust client for clawplane.
