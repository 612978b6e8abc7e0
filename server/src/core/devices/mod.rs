//! Devices and pairing, an owned service: challenges, device proofs
//! (`clawplane_proto::device_auth`), pending pairing requests (TTL, superseding), approval,
//! device tokens (stored hashed, per role, carrying the approved scopes) and revocation that
//! ends open streams at once.
//!
//! The parts: `challenge` issues and consumes the single-use nonces, `connect` answers
//! `ConnectDevice` (proof, paired or not, silent local approval), `pairing` files, approves
//! and rejects pending requests, `tokens` mints, rotates and revokes device tokens, and
//! `admin` lists, removes and renames devices.
//!
//! `Devices` holds its state (the live-token index, the outstanding challenges) and is
//! given the store and its config section (`gateway.nodes.pairing`); it names neither the
//! gateway nor the rest of the core (checked by `server/tests/layers.rs`).

mod admin;
mod challenge;
mod connect;
mod pairing;
mod tokens;

pub use admin::{DevicePage, page_size};
pub use challenge::CHALLENGE_TTL;
pub use connect::{Caller, ConnectInput, Connected};
pub use tokens::Rotated;

use crate::{
    auth::{self, DeviceIndex, Grant, Principal, Scope, known_scope},
    error::{Error, Result},
    store::Store,
};
use clawplane_config::gateway::PairingConfig;
use clawplane_proto::{
    pbjson_types::Timestamp,
    v1::{Device, DeviceChange, DeviceRole, Event, EventKind, event},
};
use clawplane_util::sync::lock;
use std::sync::{Arc, Mutex};

/// How long a lookup that missed waits for this replica to apply changes other replicas
/// committed before it (see [`crate::store::Store::catch_up`]).
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// The device service: its config, the store it keeps devices and requests in, the
/// in-memory index of live tokens and the outstanding challenges.
pub struct Devices {
    store: Store,
    cfg: PairingConfig,
    /// Live device tokens and the per-principal revocation registry.
    index: Arc<DeviceIndex>,
    /// Outstanding challenges.
    challenges: challenge::Challenges,
    /// The pending requests, indexed (the store holds them; this is kept in step).
    pending: Arc<Mutex<pairing::Pending>>,
}

impl Devices {
    /// Loads the live device tokens and the pending requests into the in-memory indexes.
    pub fn open(cfg: &PairingConfig, store: Store) -> Result<Devices> {
        let devices = Devices {
            store,
            cfg: cfg.clone(),
            index: Arc::default(),
            challenges: challenge::Challenges::default(),
            pending: Arc::default(),
        };
        {
            let mut pending = lock(&devices.pending);
            for req in devices.store.read(|r| r.pairing_requests())? {
                pending.insert(req);
            }
        }
        for t in devices.store.read(|r| r.device_tokens())? {
            devices.index.insert(
                t.digest,
                Grant {
                    scopes: interned(&t.scopes),
                    device_id: t.device_id,
                    role: t.role,
                },
            );
        }
        Ok(devices)
    }

    /// With replicas: keeps the token index and the pending requests in step with device
    /// changes committed by other replicas (a token revoked there stops working here, and
    /// the sockets holding it close, before the next event is published).
    pub fn follow_replicas(self: &Arc<Self>) {
        let store = self.store.clone();
        self.index.load_missing(Box::new(move |digest| {
            let t = store
                .read(|r| r.device_token(digest))
                .inspect_err(|e| tracing::warn!(error = %e, "cannot read a device token"))
                .ok()??;
            Some(Grant {
                scopes: interned(&t.scopes),
                device_id: t.device_id,
                role: t.role,
            })
        }));
        let weak = Arc::downgrade(self);
        self.store.on_foreign(Box::new(move |ev| {
            let (Some(devices), Some(event::Payload::Device(ch))) = (weak.upgrade(), &ev.payload)
            else {
                return;
            };
            if let Err(e) = devices.reload(&ch.device_id, &ch.request_id) {
                tracing::warn!(error = %e, device_id = %ch.device_id, "cannot reload a device changed by another replica");
            }
        }));
    }

    /// Re-reads a device's tokens and a pairing request from the store.
    fn reload(&self, device_id: &str, request_id: &str) -> Result<()> {
        let (tokens, request) = self.store.read(|r| {
            let tokens: Vec<_> = if device_id.is_empty() {
                Vec::new()
            } else {
                r.device_tokens()?
                    .into_iter()
                    .filter(|t| t.device_id == device_id)
                    .collect()
            };
            let request = if request_id.is_empty() {
                None
            } else {
                r.pairing_requests()?
                    .into_iter()
                    .find(|q| q.request_id == request_id)
            };
            Ok((tokens, request))
        })?;
        if !device_id.is_empty() {
            let stored: std::collections::HashSet<[u8; 32]> =
                tokens.iter().map(|t| t.digest).collect();
            let mut gone: Vec<String> = self
                .index
                .tokens_of(device_id)
                .into_iter()
                .filter(|(d, _)| !stored.contains(d))
                .map(|(_, role)| role)
                .collect();
            gone.dedup();
            for role in gone {
                self.index.revoke(device_id, Some(&role));
            }
            for t in tokens {
                self.index.insert(
                    t.digest,
                    Grant {
                        scopes: interned(&t.scopes),
                        device_id: t.device_id,
                        role: t.role,
                    },
                );
            }
        }
        if !request_id.is_empty() {
            let mut pending = lock(&self.pending);
            match request {
                Some(req) => pending.insert(req),
                None => drop(pending.remove(request_id)),
            }
        }
        Ok(())
    }

    /// The live device tokens (the credential check resolves device tokens through it;
    /// streams hold its revocation tokens).
    pub fn index(&self) -> &Arc<DeviceIndex> {
        &self.index
    }

    fn pending_ttl(&self) -> i64 {
        self.cfg.pending_ttl_ms as i64
    }

    /// A device as callers see it (live token counts, connected).
    pub fn device_view(&self, mut d: Device) -> Device {
        for r in &mut d.roles {
            r.active_tokens = self.index.active_tokens(&d.device_id, &r.role);
        }
        d.connected = self.index.connected(&d.device_id);
        d
    }
}

use clawplane_util::time::now_ms;

pub(crate) fn ts_ms(t: Option<&Timestamp>) -> i64 {
    t.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
        .unwrap_or_default()
}

pub(crate) fn ms_ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn device_event(kind: &str, device_id: &str, request_id: &str) -> DeviceChange {
    DeviceChange {
        r#type: kind.into(),
        device_id: device_id.into(),
        request_id: request_id.into(),
        ..Default::default()
    }
}

fn event_of(change: DeviceChange) -> Event {
    Event {
        kind: EventKind::Device as i32,
        payload: Some(event::Payload::Device(change)),
        ..Default::default()
    }
}

/// Validates requested scopes: known names; returns them deduplicated in request order.
fn check_scopes(field: &'static str, scopes: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes {
        if known_scope(s).is_none() {
            return Err(Error::field(
                field,
                format!(
                    "unknown scope {s:?}; known scopes: {}",
                    auth::KNOWN_SCOPES.join(", ")
                ),
            ));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for s in b {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fn interned(scopes: &[String]) -> Vec<&'static str> {
    scopes.iter().filter_map(|s| known_scope(s)).collect()
}

/// Removing, rotating or revoking another device needs `operator.admin`; with
/// `operator.pairing` alone a device manages only itself (it may still approve requests its
/// scopes cover). Checked before the device is looked up, so it reveals nothing.
fn demand_own_or_admin(caller: &Principal, device_id: &str, action: &'static str) -> Result<()> {
    if caller.has(Scope::Admin) || caller.device().is_some_and(|(own, _)| own == device_id) {
        Ok(())
    } else {
        Err(Error::OtherDeviceNeedsAdmin {
            action,
            device_id: device_id.to_string(),
        })
    }
}

/// `&[&str]` view of a role's scopes.
trait ScopesRef {
    fn scopes_ref(&self) -> Vec<&str>;
}

impl ScopesRef for DeviceRole {
    fn scopes_ref(&self) -> Vec<&str> {
        self.scopes.iter().map(String::as_str).collect()
    }
}
