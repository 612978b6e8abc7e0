//! tonic service implementations: thin. Each handler authorizes, converts the request,
//! calls the core, and maps errors once (`From<Error> for Status`).

mod agent;
mod chat;
mod events;
mod gateway;
mod pending;
mod sessions;
mod webhooks;

use crate::{
    auth::{self, Auth, Principal, Scope},
    core::Gateway,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tonic::{Request, Status};

/// The API: one value implements every service.
#[derive(Clone)]
pub struct Api {
    pub gw: Arc<Gateway>,
    pub auth: Arc<Auth>,
}

impl Api {
    /// The one gate every handler passes first.
    pub fn authorize<T>(&self, req: &Request<T>, need: Scope) -> Result<Principal, Status> {
        let md = req.metadata();
        let header = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
        let token = auth::bearer(header("authorization"), header("x-openclaw-token"));
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .or_else(|| req.remote_addr().map(|a| a.ip()));
        Ok(self.auth.check(token.as_deref(), peer, need)?)
    }
}

/// The caller's remaining deadline from `grpc-timeout`, if it sent one.
pub fn deadline<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}
