//! Leaf utilities that every clawplane crate may use and that use nothing of ours: time and
//! durations, hashing and signatures, addresses and CIDRs, poison-tolerant locking, and the
//! template engine with the OpenClaw conventions. Kept crates (`hmac`, `hex`, `humantime`,
//! `ipnet`, `minijinja`) do the work; this crate only fixes the conventions in one place.

pub mod crypto;
pub mod net;
pub mod sync;
pub mod template;
pub mod time;
