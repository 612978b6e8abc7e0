//! Pending pairing requests: filing (refresh, superseding, expiry, the limits), approval,
//! rejection and scope upgrades.
//!
//! The store is the truth; [`Pending`] indexes the live requests in memory (by id, by
//! device, by expiry, counted per client address) and is kept in step on every commit, so
//! filing checks the limits and finds the device's earlier request in O(log n) instead of
//! scanning every request inside the store's write transaction.

use super::{Devices, check_scopes, device_event, event_of, ms_ts, now_ms, ts_ms, union};
use crate::{
    auth::{ClientKey, Principal, Scope},
    error::{Error, Result},
    store::Txn,
};
use clawplane_proto::v1::{Device, DeviceRole, PairingRequest};
use clawplane_util::sync::lock;
use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
};

/// The pending requests, indexed.
#[derive(Default)]
pub(super) struct Pending {
    by_id: HashMap<String, PairingRequest>,
    by_device: HashMap<String, Vec<String>>,
    by_expiry: BTreeSet<(i64, String)>,
    per_address: HashMap<ClientKey, usize>,
}

/// The address a request counts against (its `remoteIp`).
fn address(req: &PairingRequest) -> Option<ClientKey> {
    req.remote_ip.parse::<IpAddr>().ok().map(ClientKey::of)
}

fn expiry(req: &PairingRequest) -> i64 {
    ts_ms(req.expire_time.as_ref())
}

impl Pending {
    pub(super) fn insert(&mut self, req: PairingRequest) {
        self.remove(&req.request_id);
        self.by_expiry
            .insert((expiry(&req), req.request_id.clone()));
        self.by_device
            .entry(req.device_id.clone())
            .or_default()
            .push(req.request_id.clone());
        if let Some(k) = address(&req) {
            *self.per_address.entry(k).or_default() += 1;
        }
        self.by_id.insert(req.request_id.clone(), req);
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<PairingRequest> {
        let req = self.by_id.remove(id)?;
        self.by_expiry
            .remove(&(expiry(&req), req.request_id.clone()));
        if let Some(ids) = self.by_device.get_mut(&req.device_id) {
            ids.retain(|x| x != id);
            if ids.is_empty() {
                self.by_device.remove(&req.device_id);
            }
        }
        if let Some(k) = address(&req)
            && let Some(n) = self.per_address.get_mut(&k)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_address.remove(&k);
            }
        }
        Some(req)
    }

    /// A request that has not expired.
    fn live(&self, id: &str, now: i64) -> Option<PairingRequest> {
        self.by_id.get(id).filter(|r| expiry(r) > now).cloned()
    }

    /// Takes out every expired request (each once: amortised O(1) per request).
    fn take_expired(&mut self, now: i64) -> Vec<PairingRequest> {
        let mut out = Vec::new();
        while let Some((exp, id)) = self.by_expiry.first().cloned() {
            if exp > now {
                break;
            }
            out.extend(self.remove(&id));
        }
        out
    }

    /// The ids of a device's requests.
    pub(super) fn of_device(&self, device_id: &str) -> Vec<String> {
        self.by_device.get(device_id).cloned().unwrap_or_default()
    }
}

/// Deletes a request and, when it was still there, resolves it as rejected (`why`).
fn resolve(t: &mut dyn Txn, req: &PairingRequest, why: &str) -> Result<()> {
    if t.delete_pairing_request(&req.request_id)? {
        let mut ch = device_event("pair.rejected", &req.device_id, &req.request_id);
        ch.detail = why.into();
        t.append_event(event_of(ch))?;
    }
    Ok(())
}

fn same_ask(a: &PairingRequest, b: &PairingRequest) -> bool {
    let (mut x, mut y) = (a.scopes.clone(), b.scopes.clone());
    x.sort();
    y.sort();
    a.role == b.role && a.public_key == b.public_key && x == y
}

impl Devices {
    /// Files (or refreshes) a pending request; a request of the same device with another
    /// role, scopes or key supersedes the old one, which is resolved as rejected. A new
    /// request past `maxPending` or `maxPendingPerAddress` is refused
    /// (`PAIRING_REQUESTS_EXHAUSTED`); expired requests are resolved either way.
    pub(super) async fn file_pending(&self, req: PairingRequest) -> Result<String> {
        // With replicas: the index reflects every request filed or resolved anywhere.
        self.store.catch_up(super::CATCH_UP)?;
        let now = now_ms();
        let ttl = self.pending_ttl();
        let (expired, superseded, put, refused) = {
            let mut p = lock(&self.pending);
            let expired = p.take_expired(now);
            let mine: Vec<PairingRequest> = p
                .of_device(&req.device_id)
                .iter()
                .filter_map(|id| p.by_id.get(id).cloned())
                .collect();
            let keep = mine.iter().find(|o| same_ask(o, &req)).cloned();
            let superseded: Vec<PairingRequest> = mine
                .iter()
                .filter(|o| keep.as_ref().is_none_or(|k| k.request_id != o.request_id))
                .cloned()
                .collect();
            // Counted as if the superseded requests were gone already.
            let addr = address(&req);
            let here =
                |p: &Pending| addr.map_or(0, |k| p.per_address.get(&k).copied().unwrap_or(0));
            let gone_here = superseded
                .iter()
                .filter(|o| addr.is_some() && address(o) == addr)
                .count();
            let refused = if keep.is_some() {
                None
            } else if p.by_id.len() - superseded.len() >= self.cfg.max_pending {
                Some(Error::PairingRequestsExhausted {
                    per_address: false,
                    limit: self.cfg.max_pending,
                    key: "maxPending",
                })
            } else if addr.is_some() && here(&p) - gone_here >= self.cfg.max_pending_per_address {
                Some(Error::PairingRequestsExhausted {
                    per_address: true,
                    limit: self.cfg.max_pending_per_address,
                    key: "maxPendingPerAddress",
                })
            } else {
                None
            };
            let put = match (&refused, keep) {
                (Some(_), _) => None,
                (None, Some(mut old)) => {
                    old.expire_time = Some(ms_ts(now + ttl));
                    Some((old, false))
                }
                (None, None) => Some((req, true)),
            };
            if let Some((r, _)) = &put {
                for o in &superseded {
                    p.remove(&o.request_id);
                }
                p.insert(r.clone());
            }
            (expired, superseded, put, refused)
        };
        let outcome = put.clone();
        let written = self
            .store
            .write(move |t| {
                for old in &expired {
                    resolve(t, old, "expired")?;
                }
                let Some((req, new)) = outcome else {
                    return Ok(());
                };
                for old in &superseded {
                    resolve(t, old, "superseded")?;
                }
                // A refresh must not bring back a request approved or rejected meanwhile
                // (the delete doubles as the existence check).
                if new || t.delete_pairing_request(&req.request_id)? {
                    t.put_pairing_request(&req)?;
                }
                if new {
                    let mut ch = device_event("pair.requested", &req.device_id, &req.request_id);
                    ch.role = req.role.clone();
                    ch.request = Some(req.clone());
                    t.append_event(event_of(ch))?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            // Nothing was stored: take the reservation back (expired and superseded ones
            // are resolved by the next filing).
            if let Some((r, true)) = &put {
                lock(&self.pending).remove(&r.request_id);
            }
            return Err(e);
        }
        match (refused, put) {
            (Some(e), _) => Err(e),
            (None, Some((r, _))) => Ok(r.request_id),
            (None, None) => Err(Error::Internal(
                "a pairing request was neither filed nor refused".into(),
            )),
        }
    }

    /// A live pending request; with replicas, one filed on another replica a moment ago
    /// is found too.
    fn live_request(&self, request_id: &str) -> Result<PairingRequest> {
        let found = lock(&self.pending).live(request_id, now_ms());
        if let Some(req) = found {
            return Ok(req);
        }
        self.store.catch_up(super::CATCH_UP)?;
        lock(&self.pending)
            .live(request_id, now_ms())
            .ok_or_else(|| Error::PairingRequestNotFound(request_id.to_string()))
    }

    /// `DeviceService/ApprovePairing`.
    pub async fn approve_pairing(
        &self,
        request_id: &str,
        approver: &Principal,
    ) -> Result<(String, Device)> {
        let req = self.live_request(request_id)?;
        if req.role == "operator" {
            approver.demand_all(&req.scopes)?;
        } else {
            approver.demand(Scope::Admin)?;
        }
        let id = request_id.to_string();
        let pending = self.pending.clone();
        let d = self
            .store
            .write_then(
                move |t| {
                    if !t.delete_pairing_request(&id)? {
                        return Err(Error::PairingRequestNotFound(id));
                    }
                    let now = now_ms();
                    let mut d = t.device(&req.device_id)?.unwrap_or_else(|| Device {
                        device_id: req.device_id.clone(),
                        create_time: Some(ms_ts(now)),
                        ..Default::default()
                    });
                    d.public_key = req.public_key.clone();
                    if !req.display_name.is_empty() {
                        d.display_name = req.display_name.clone();
                    }
                    d.platform = req.platform.clone();
                    d.device_family = req.device_family.clone();
                    d.client_id = req.client_id.clone();
                    d.client_mode = req.client_mode.clone();
                    d.update_time = Some(ms_ts(now));
                    match d.roles.iter_mut().find(|r| r.role == req.role) {
                        Some(r) => r.scopes = union(&r.scopes, &req.scopes),
                        None => d.roles.push(DeviceRole {
                            role: req.role.clone(),
                            scopes: req.scopes.clone(),
                            active_tokens: 0,
                        }),
                    }
                    t.put_device(&d)?;
                    let mut ch = device_event("pair.approved", &d.device_id, &id);
                    ch.role = req.role.clone();
                    t.append_event(event_of(ch))?;
                    Ok((id, d))
                },
                move |(id, _): &(String, Device)| {
                    lock(&pending).remove(id);
                },
            )
            .await?
            .1;
        Ok((request_id.to_string(), self.device_view(d)))
    }

    /// `DeviceService/RejectPairing`.
    pub async fn reject_pairing(&self, request_id: &str) -> Result<PairingRequest> {
        let req = self.live_request(request_id)?;
        let pending = self.pending.clone();
        self.store
            .write_then(
                move |t| {
                    if !t.delete_pairing_request(&req.request_id)? {
                        return Err(Error::PairingRequestNotFound(req.request_id));
                    }
                    let mut ch = device_event("pair.rejected", &req.device_id, &req.request_id);
                    ch.detail = "rejected".into();
                    t.append_event(event_of(ch))?;
                    Ok(req)
                },
                move |req: &PairingRequest| {
                    lock(&pending).remove(&req.request_id);
                },
            )
            .await
    }

    /// `DeviceService/RequestScopeUpgrade`: a device asks for more scopes for its role.
    pub async fn request_scope_upgrade(
        &self,
        caller: &Principal,
        scopes: &[String],
        client: Option<IpAddr>,
    ) -> Result<String> {
        let Some((device_id, role)) = caller.device() else {
            return Err(Error::DeviceTokenRequired(
                "clawplane.v1.DeviceService/RequestScopeUpgrade",
            ));
        };
        if scopes.is_empty() || scopes.len() > 8 {
            return Err(Error::field("scopes", "ask for 1..8 scopes"));
        }
        let wanted = check_scopes("scopes", scopes)?;
        let d = self
            .store
            .read(|r| r.device(device_id))?
            .ok_or_else(|| Error::DeviceNotFound(device_id.to_string()))?;
        let current = d
            .roles
            .iter()
            .find(|r| r.role == role)
            .map(|r| r.scopes.clone())
            .unwrap_or_default();
        let now = now_ms();
        let req = PairingRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            device_id: d.device_id.clone(),
            public_key: d.public_key.clone(),
            display_name: d.display_name.clone(),
            platform: d.platform.clone(),
            device_family: d.device_family.clone(),
            client_id: d.client_id.clone(),
            client_mode: d.client_mode.clone(),
            role: role.to_string(),
            scopes: union(&current, &wanted),
            remote_ip: client.map(|c| c.to_string()).unwrap_or_default(),
            reason: "scope-upgrade".into(),
            create_time: Some(ms_ts(now)),
            expire_time: Some(ms_ts(now + self.pending_ttl())),
        };
        self.file_pending(req).await
    }
}
