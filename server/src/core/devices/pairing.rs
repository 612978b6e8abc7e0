//! Pending pairing requests: filing (refresh, superseding, expiry), approval, rejection and
//! scope upgrades.

use super::{Devices, check_scopes, device_event, event_of, ms_ts, now_ms, ts_ms, union};
use crate::{
    auth::{Principal, Scope},
    error::{Error, Result},
};
use clawplane_proto::v1::{Device, DeviceRole, PairingRequest};

impl Devices {
    /// Files (or refreshes) a pending request; a request of the same device with another
    /// role, scopes or key supersedes the old one, which is resolved as rejected.
    pub(super) async fn file_pending(&self, req: PairingRequest) -> Result<String> {
        let ttl = self.pending_ttl();
        self.store
            .write(move |t| {
                let now = now_ms();
                let mut keep: Option<PairingRequest> = None;
                let mut gone = Vec::new();
                for old in t.pairing_requests()? {
                    let expired = ts_ms(old.expire_time.as_ref()) <= now;
                    if expired {
                        gone.push((old, "expired"));
                    } else if old.device_id == req.device_id {
                        let same = old.role == req.role && old.public_key == req.public_key && {
                            let mut a = old.scopes.clone();
                            let mut b = req.scopes.clone();
                            a.sort();
                            b.sort();
                            a == b
                        };
                        if same && keep.is_none() {
                            keep = Some(old);
                        } else {
                            gone.push((old, "superseded"));
                        }
                    }
                }
                for (old, why) in gone {
                    t.delete_pairing_request(&old.request_id)?;
                    let mut ch = device_event("pair.rejected", &old.device_id, &old.request_id);
                    ch.detail = why.into();
                    t.append_event(event_of(ch))?;
                }
                if let Some(mut old) = keep {
                    old.expire_time = Some(ms_ts(now + ttl));
                    t.put_pairing_request(&old)?;
                    return Ok(old.request_id);
                }
                t.put_pairing_request(&req)?;
                let mut ch = device_event("pair.requested", &req.device_id, &req.request_id);
                ch.role = req.role.clone();
                ch.request = Some(req.clone());
                t.append_event(event_of(ch))?;
                Ok(req.request_id)
            })
            .await
    }

    /// `DeviceService/ApprovePairing`.
    pub async fn approve_pairing(
        &self,
        request_id: &str,
        approver: &Principal,
    ) -> Result<(String, Device)> {
        let now = now_ms();
        let req = self
            .store
            .read(|r| r.pairing_requests())?
            .into_iter()
            .find(|p| p.request_id == request_id && ts_ms(p.expire_time.as_ref()) > now)
            .ok_or_else(|| Error::PairingRequestNotFound(request_id.to_string()))?;
        if req.role == "operator" {
            approver.demand_all(&req.scopes)?;
        } else {
            approver.demand(Scope::Admin)?;
        }
        let id = request_id.to_string();
        let d = self
            .store
            .write(move |t| {
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
                Ok(d)
            })
            .await?;
        Ok((request_id.to_string(), self.device_view(d)))
    }

    /// `DeviceService/RejectPairing`.
    pub async fn reject_pairing(&self, request_id: &str) -> Result<PairingRequest> {
        let id = request_id.to_string();
        self.store
            .write(move |t| {
                let now = now_ms();
                let req = t
                    .pairing_requests()?
                    .into_iter()
                    .find(|p| p.request_id == id && ts_ms(p.expire_time.as_ref()) > now)
                    .ok_or_else(|| Error::PairingRequestNotFound(id.clone()))?;
                t.delete_pairing_request(&id)?;
                let mut ch = device_event("pair.rejected", &req.device_id, &id);
                ch.detail = "rejected".into();
                t.append_event(event_of(ch))?;
                Ok(req)
            })
            .await
    }

    /// `DeviceService/RequestScopeUpgrade`: a device asks for more scopes for its role.
    pub async fn request_scope_upgrade(
        &self,
        caller: &Principal,
        scopes: &[String],
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
            remote_ip: String::new(),
            reason: "scope-upgrade".into(),
            create_time: Some(ms_ts(now)),
            expire_time: Some(ms_ts(now + self.pending_ttl())),
        };
        self.file_pending(req).await
    }
}
