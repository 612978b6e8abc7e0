//! Listing (paged), removing and renaming devices.

use super::{Devices, demand_own_or_admin, device_event, event_of, now_ms, ts_ms};
use crate::{
    auth::{Principal, Scope},
    error::{Error, Result},
};
use base64::Engine as _;
use clawplane_proto::{
    now_ts,
    v1::{Device, PairingRequest},
};
use clawplane_util::sync::lock;

/// Page size rules of AIP-158: 0 means the default, above the max is coerced, negative is
/// an error.
pub fn page_size(requested: i32) -> Result<usize> {
    match requested {
        n if n < 0 => Err(Error::field("pageSize", "must not be negative")),
        0 => Ok(100),
        n => Ok((n as usize).min(1000)),
    }
}

/// Where a page ends: after a pending request (its create time and id) or after a paired
/// device (its id). Keyed rather than an offset, so approving or filing requests between
/// pages neither skips nor repeats a device.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    Start,
    Pending(i64, String),
    Paired(String),
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Cursor {
    fn encode(&self) -> String {
        match self {
            Cursor::Start => String::new(),
            Cursor::Pending(ms, id) => B64.encode(format!("p\n{ms}\n{id}")),
            Cursor::Paired(id) => B64.encode(format!("d\n{id}")),
        }
    }

    fn decode(token: &str) -> Result<Cursor> {
        if token.is_empty() {
            return Ok(Cursor::Start);
        }
        let bad = || {
            Error::field(
                "pageToken",
                "is not a token from a previous ListDevices response",
            )
        };
        let text = B64
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let parts: Vec<&str> = text.split('\n').collect();
        match parts.as_slice() {
            ["p", ms, id] => Ok(Cursor::Pending(
                ms.parse().map_err(|_| bad())?,
                id.to_string(),
            )),
            ["d", id] => Ok(Cursor::Paired(id.to_string())),
            _ => Err(bad()),
        }
    }
}

/// One page of `ListDevices`.
#[derive(Debug, Default)]
pub struct DevicePage {
    pub pending: Vec<PairingRequest>,
    pub paired: Vec<Device>,
    pub next_page_token: String,
}

impl Devices {
    /// `DeviceService/ListDevices`: live pending requests (oldest first), then paired
    /// devices (by id), `size` entries a page after `token`. A device caller without
    /// `operator.admin` sees only itself.
    pub fn list_devices(&self, caller: &Principal, size: usize, token: &str) -> Result<DevicePage> {
        let cursor = Cursor::decode(token)?;
        let now = now_ms();
        let (mut pending, mut paired) = self
            .store
            .read(|r| Ok((r.pairing_requests()?, r.devices()?)))?;
        pending.retain(|p| ts_ms(p.expire_time.as_ref()) > now);
        let key = |p: &PairingRequest| (ts_ms(p.create_time.as_ref()), p.request_id.clone());
        pending.sort_by_key(key);
        paired.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        if let Some((own, _)) = caller.device()
            && !caller.has(Scope::Admin)
        {
            pending.retain(|p| p.device_id == own);
            paired.retain(|d| d.device_id == own);
        }
        match &cursor {
            Cursor::Start => {}
            Cursor::Pending(ms, id) => {
                let after = (*ms, id.clone());
                pending.retain(|p| key(p) > after);
            }
            Cursor::Paired(id) => {
                pending.clear();
                paired.retain(|d| d.device_id > *id);
            }
        }
        let total = pending.len() + paired.len();
        pending.truncate(size);
        paired.truncate(size - pending.len());
        let next = if total > pending.len() + paired.len() {
            match (paired.last(), pending.last()) {
                (Some(d), _) => Cursor::Paired(d.device_id.clone()),
                (None, Some(p)) => Cursor::Pending(key(p).0, p.request_id.clone()),
                (None, None) => cursor,
            }
        } else {
            Cursor::Start
        };
        Ok(DevicePage {
            pending,
            paired: paired.into_iter().map(|d| self.device_view(d)).collect(),
            next_page_token: next.encode(),
        })
    }

    /// `DeviceService/RemoveDevice`: deletes the device, its tokens and its pending
    /// requests; its streams end.
    pub async fn remove_device(&self, device_id: &str, caller: &Principal) -> Result<()> {
        demand_own_or_admin(caller, device_id, "removing")?;
        let id = device_id.to_string();
        let requests = lock(&self.pending).of_device(device_id);
        let index = self.index.clone();
        let pending = self.pending.clone();
        self.store
            .write_then(
                move |t| {
                    if t.device(&id)?.is_none() {
                        return Err(Error::DeviceNotFound(id));
                    }
                    t.delete_device(&id)?;
                    t.delete_device_tokens(&id, None)?;
                    for r in &requests {
                        t.delete_pairing_request(r)?;
                    }
                    t.append_event(event_of(device_event("removed", &id, "")))?;
                    Ok((id, requests))
                },
                move |(id, requests): &(String, Vec<String>)| {
                    index.revoke(id, None);
                    let mut p = lock(&pending);
                    for r in requests {
                        p.remove(r);
                    }
                },
            )
            .await?;
        Ok(())
    }

    /// `DeviceService/RenameDevice`.
    pub async fn rename_device(&self, device_id: &str, name: &str) -> Result<Device> {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(Error::field(
                "displayName",
                "must be 1..64 characters (`clawplane devices rename <deviceId> --name <name>`)",
            ));
        }
        let id = device_id.to_string();
        let d = self
            .store
            .write(move |t| {
                let mut d = t
                    .device(&id)?
                    .ok_or_else(|| Error::DeviceNotFound(id.clone()))?;
                d.display_name = name;
                d.update_time = Some(now_ts());
                t.put_device(&d)?;
                Ok(d)
            })
            .await?;
        Ok(self.device_view(d))
    }
}
