//! Webhooks into the gateway: the synchronous endpoint (`/webhooks/<id>`: API keys, one
//! turn answered in the response, the calls log) and the templated ingress
//! (`/webhook/<path>`: endpoint secrets and signature schemes, replay dedupe). Webhooks out
//! of the gateway are `core::egress`.

mod ingress;
mod sync;

pub use ingress::{Endpoints, Ingested, Ingress};
pub use sync::{CallReply, SyncCall, SyncWebhooks};
