//! Device tokens: minting (silent approval and reconnects), rotation and revocation.

use super::{
    Devices, ScopesRef, check_scopes, demand_own_or_admin, device_event, event_of, interned, ms_ts,
    now_ms, union,
};
use crate::{
    auth::{self, Grant, Principal, scope_covers},
    error::{Error, Result},
    store::StoredDeviceToken,
};
use clawplane_proto::{
    device_auth, now_ts,
    v1::{Device, DeviceRole},
};

/// At most this many live tokens per device role; minting more drops the oldest.
const MAX_TOKENS_PER_ROLE: usize = 16;

/// The result of `RotateToken`.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub scopes: Vec<String>,
    pub token: Option<String>,
}

/// A fresh device token: 32 random bytes, base64url.
fn new_token() -> String {
    device_auth::base64url(&rand::random::<[u8; 32]>())
}

impl Devices {
    /// Stores an approval (roles and scopes unioned) and mints a token for the role.
    pub(super) async fn approve_and_mint(&self, a: ApproveInput) -> Result<(String, Vec<String>)> {
        let token = new_token();
        let digest = auth::digest(&token);
        let index = self.index.clone();
        let ((_, _), scopes, _) = self
            .store
            .write_then(
                move |t| {
                    let now = now_ms();
                    let mut d = a.existing.clone().unwrap_or_else(|| Device {
                        device_id: a.device_id.clone(),
                        create_time: Some(ms_ts(now)),
                        ..Default::default()
                    });
                    d.public_key = a.public_key.clone();
                    if !a.display_name.is_empty() || d.display_name.is_empty() {
                        d.display_name = a.display_name.clone();
                    }
                    d.platform = a.platform.clone();
                    d.device_family = a.device_family.clone();
                    d.client_id = a.client_id.clone();
                    d.client_mode = a.client_mode.clone();
                    d.update_time = Some(ms_ts(now));
                    let scopes = match d.roles.iter_mut().find(|r| r.role == a.role) {
                        Some(r) => {
                            r.scopes = union(&r.scopes, &a.scopes);
                            r.scopes.clone()
                        }
                        None => {
                            d.roles.push(DeviceRole {
                                role: a.role.clone(),
                                scopes: a.scopes.clone(),
                                active_tokens: 0,
                            });
                            a.scopes.clone()
                        }
                    };
                    t.put_device(&d)?;
                    let dropped = mint(t, &d.device_id, &a.role, &scopes, digest, now)?;
                    if !a.request_id.is_empty() {
                        let mut ch = device_event("pair.approved", &d.device_id, &a.request_id);
                        ch.role = a.role.clone();
                        t.append_event(event_of(ch))?;
                    }
                    Ok(((d.device_id.clone(), a.role.clone()), scopes, dropped))
                },
                move |(d, scopes, dropped): &((String, String), Vec<String>, Vec<[u8; 32]>)| {
                    for x in dropped {
                        index.remove_digest(x);
                    }
                    index.insert(
                        digest,
                        Grant {
                            device_id: d.0.clone(),
                            role: d.1.clone(),
                            scopes: interned(scopes),
                        },
                    );
                },
            )
            .await?;
        Ok((token, scopes))
    }

    /// `DeviceService/RotateToken`: ends the role's tokens (and their streams). The new
    /// token is returned only to the device itself (`in-band`); for anyone else it is
    /// withheld and the device gets a fresh token on its next connect. `scopes` narrows
    /// the role's approved scopes.
    pub async fn rotate_token(
        &self,
        device_id: &str,
        role: &str,
        scopes: &[String],
        caller: &Principal,
    ) -> Result<Rotated> {
        demand_own_or_admin(caller, device_id, "rotating the tokens of")?;
        let narrow = check_scopes("scopes", scopes)?;
        let in_band = caller.device() == Some((device_id, role));
        let token = in_band.then(new_token);
        let digest = token.as_deref().map(auth::digest);
        let (id, role) = (device_id.to_string(), role.to_string());
        let index = self.index.clone();
        let scopes = self
            .store
            .write_then(
                move |t| {
                    let mut d = t.device(&id)?.ok_or_else(|| Error::DeviceNotFound(id.clone()))?;
                    let Some(r) = d.roles.iter_mut().find(|r| r.role == role) else {
                        return Err(Error::RoleNotApproved {
                            device_id: id,
                            role,
                        });
                    };
                    if let Some(s) = narrow.iter().find(|s| !scope_covers(&r.scopes_ref(), s)) {
                        return Err(Error::field(
                            "scopes",
                            format!("{s} is not approved for this device role; approve a scope upgrade first"),
                        ));
                    }
                    if !narrow.is_empty() {
                        r.scopes = narrow.clone();
                    }
                    let scopes = r.scopes.clone();
                    d.update_time = Some(now_ts());
                    t.put_device(&d)?;
                    t.delete_device_tokens(&id, Some(&role))?;
                    if let Some(digest) = digest {
                        mint(t, &id, &role, &scopes, digest, now_ms())?;
                    }
                    let mut ch = device_event("token.rotated", &id, "");
                    ch.role = role.clone();
                    t.append_event(event_of(ch))?;
                    Ok((id, role, scopes))
                },
                move |(id, role, scopes): &(String, String, Vec<String>)| {
                    index.revoke(id, Some(role));
                    if let Some(digest) = digest {
                        index.insert(
                            digest,
                            Grant {
                                device_id: id.clone(),
                                role: role.clone(),
                                scopes: interned(scopes),
                            },
                        );
                    }
                },
            )
            .await?
            .2;
        Ok(Rotated { scopes, token })
    }

    /// `DeviceService/RevokeToken`: removes the role's approval and tokens; its open
    /// streams end at once.
    pub async fn revoke_token(
        &self,
        device_id: &str,
        role: &str,
        caller: &Principal,
    ) -> Result<Device> {
        demand_own_or_admin(caller, device_id, "revoking the tokens of")?;
        let (id, role) = (device_id.to_string(), role.to_string());
        let index = self.index.clone();
        let d = self
            .store
            .write_then(
                move |t| {
                    let mut d = t
                        .device(&id)?
                        .ok_or_else(|| Error::DeviceNotFound(id.clone()))?;
                    if !d.roles.iter().any(|r| r.role == role) {
                        return Err(Error::RoleNotApproved {
                            device_id: id,
                            role,
                        });
                    }
                    d.roles.retain(|r| r.role != role);
                    d.update_time = Some(now_ts());
                    t.put_device(&d)?;
                    t.delete_device_tokens(&id, Some(&role))?;
                    let mut ch = device_event("token.revoked", &id, "");
                    ch.role = role.clone();
                    t.append_event(event_of(ch))?;
                    Ok((d, role))
                },
                move |(d, role): &(Device, String)| index.revoke(&d.device_id, Some(role)),
            )
            .await?
            .0;
        Ok(self.device_view(d))
    }
}

/// What a silent approval stores.
pub(super) struct ApproveInput {
    pub(super) existing: Option<Device>,
    pub(super) device_id: String,
    pub(super) public_key: String,
    pub(super) display_name: String,
    pub(super) platform: String,
    pub(super) device_family: String,
    pub(super) client_id: String,
    pub(super) client_mode: String,
    pub(super) role: String,
    pub(super) scopes: Vec<String>,
    /// Set for a silent pairing (emits `pair.approved`); empty for a plain reconnect.
    pub(super) request_id: String,
}

/// Stores a new token and drops the oldest past the per-role cap; returns the dropped
/// digests.
fn mint(
    t: &mut dyn crate::store::Txn,
    device_id: &str,
    role: &str,
    scopes: &[String],
    digest: [u8; 32],
    now: i64,
) -> Result<Vec<[u8; 32]>> {
    let mut mine: Vec<StoredDeviceToken> = t
        .device_tokens()?
        .into_iter()
        .filter(|x| x.device_id == device_id && x.role == role)
        .collect();
    let mut dropped = Vec::new();
    if mine.len() >= MAX_TOKENS_PER_ROLE {
        mine.sort_by_key(|x| x.create_ms);
        let excess = mine.len() + 1 - MAX_TOKENS_PER_ROLE;
        for old in mine.into_iter().take(excess) {
            t.delete_device_token(&old.digest)?;
            dropped.push(old.digest);
        }
    }
    t.put_device_token(&StoredDeviceToken {
        digest,
        device_id: device_id.into(),
        role: role.into(),
        scopes: scopes.to_vec(),
        create_ms: now,
    })?;
    Ok(dropped)
}
