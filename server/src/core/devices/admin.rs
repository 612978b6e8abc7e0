//! Listing, removing and renaming devices.

use super::{Devices, device_event, event_of, now_ms, ts_ms};
use crate::{
    auth::{Principal, Scope},
    error::{Error, Result},
};
use clawplane_proto::{
    now_ts,
    v1::{Device, PairingRequest},
};

impl Devices {
    /// `DeviceService/ListDevices`: live pending requests (oldest first) and paired
    /// devices. A device caller without `operator.admin` sees only itself.
    pub fn list_devices(&self, caller: &Principal) -> Result<(Vec<PairingRequest>, Vec<Device>)> {
        let now = now_ms();
        let (mut pending, paired) = self
            .store
            .read(|r| Ok((r.pairing_requests()?, r.devices()?)))?;
        pending.retain(|p| ts_ms(p.expire_time.as_ref()) > now);
        pending.sort_by_key(|p| ts_ms(p.create_time.as_ref()));
        let mut paired: Vec<Device> = paired.into_iter().map(|d| self.device_view(d)).collect();
        if let Some((own, _)) = caller.device()
            && !caller.has(Scope::Admin)
        {
            pending.retain(|p| p.device_id == own);
            paired.retain(|d| d.device_id == own);
        }
        Ok((pending, paired))
    }

    /// `DeviceService/RemoveDevice`: deletes the device and its tokens; its streams end.
    pub async fn remove_device(&self, device_id: &str) -> Result<()> {
        let id = device_id.to_string();
        let index = self.index.clone();
        self.store
            .write_then(
                move |t| {
                    if t.device(&id)?.is_none() {
                        return Err(Error::DeviceNotFound(id));
                    }
                    t.delete_device(&id)?;
                    t.delete_device_tokens(&id, None)?;
                    for p in t.pairing_requests()? {
                        if p.device_id == id {
                            t.delete_pairing_request(&p.request_id)?;
                        }
                    }
                    t.append_event(event_of(device_event("removed", &id, "")))?;
                    Ok(id)
                },
                move |id: &String| index.revoke(id, None),
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
