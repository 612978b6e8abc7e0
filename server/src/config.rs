//! The configuration types and loader live in the `clawplane-config` crate (a leaf: data
//! only); `server::check_config` compiles what needs the gateway's code.

pub use clawplane_config::*;
