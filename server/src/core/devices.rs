//! Devices and pairing: challenges, device proofs (`clawplane_proto::device_auth`), pending
//! pairing requests (TTL, superseding), approval, device tokens (stored hashed, per role,
//! carrying the approved scopes) and revocation that ends open streams at once.

use super::{Gateway, lock, now_ts};
use crate::{
    auth::{self, Grant, Kind, Principal, Scope, known_scope, scope_covers},
    error::{Error, Result},
    store::StoredDeviceToken,
};
use clawplane_proto::{
    device_auth::{self, DeviceProof, SignedFields},
    pbjson_types::Timestamp,
    v1::{Device, DeviceChange, DeviceRole, Event, EventKind, PairingRequest, event},
};
use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

/// How long a challenge nonce stays usable.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(120);
/// At most this many outstanding challenges.
const MAX_CHALLENGES: usize = 65_536;
/// At most this many live tokens per device role; minting more drops the oldest.
const MAX_TOKENS_PER_ROLE: usize = 16;
const ROLES: [&str; 3] = ["operator", "node", "worker"];

/// A `ConnectDevice` request, decoded.
#[derive(Debug, Clone, Default)]
pub struct ConnectInput {
    pub proof: DeviceProof,
    pub client_id: String,
    pub client_mode: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub platform: String,
    pub device_family: String,
    pub display_name: String,
    /// The token that was signed.
    pub token: String,
}

/// Who is connecting, from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The credential the caller presented (to hand a device its own token back).
    pub presented: Option<String>,
    /// The client address (`clawplane_util::net::client`).
    pub peer: Option<IpAddr>,
    /// A loopback peer without proxy headers (`clawplane_util::net::Client::local`).
    pub local: bool,
}

/// A successful connect.
#[derive(Debug, Clone)]
pub struct Connected {
    pub device_token: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub device_id: String,
}

/// The result of `RotateToken`.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub scopes: Vec<String>,
    pub token: Option<String>,
}

use clawplane_util::time::now_ms;

fn ts_ms(t: Option<&Timestamp>) -> i64 {
    t.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
        .unwrap_or_default()
}

fn ms_ts(ms: i64) -> Timestamp {
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

/// A fresh device token: 32 random bytes, base64url.
fn new_token() -> String {
    device_auth::base64url(&rand::random::<[u8; 32]>())
}

impl Gateway {
    /// Loads the live device tokens into the in-memory index (at open).
    pub(crate) fn load_device_tokens(&self) -> Result<()> {
        for t in self.store.read(|r| r.device_tokens())? {
            self.devices.insert(
                t.digest,
                Grant {
                    scopes: interned(&t.scopes),
                    device_id: t.device_id,
                    role: t.role,
                },
            );
        }
        Ok(())
    }

    fn pending_ttl(&self) -> i64 {
        self.config.gateway.nodes.pairing.pending_ttl_ms as i64
    }

    /// Issues a single-use nonce for a device proof.
    pub fn challenge(&self) -> (String, i64) {
        let nonce = uuid::Uuid::new_v4().to_string();
        let now = Instant::now();
        let mut map = lock(&self.challenges);
        if map.len() > 1024 {
            map.retain(|_, exp| *exp > now);
        }
        // Bounded under a flood of unauthenticated challenges: drop the oldest.
        if map.len() >= MAX_CHALLENGES
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(nonce.clone(), now + CHALLENGE_TTL);
        (nonce, now_ms())
    }

    /// Consumes a challenge nonce; true when it was live.
    fn take_nonce(&self, nonce: &str) -> bool {
        lock(&self.challenges)
            .remove(nonce)
            .is_some_and(|exp| exp > Instant::now())
    }

    /// A device as callers see it (live token counts, connected).
    pub fn device_view(&self, mut d: Device) -> Device {
        for r in &mut d.roles {
            r.active_tokens = self.devices.active_tokens(&d.device_id, &r.role);
        }
        d.connected = self.devices.connected(&d.device_id);
        d
    }

    /// `DeviceService/ConnectDevice`: verifies the proof, then returns a token when the
    /// device is paired (or is approved silently), else files a pending request and fails
    /// with `PAIRING_REQUIRED`.
    pub async fn connect_device(
        self: &Arc<Self>,
        input: ConnectInput,
        caller: Caller,
    ) -> Result<Connected> {
        let role = if input.role.trim().is_empty() {
            "operator".to_string()
        } else {
            input.role.trim().to_string()
        };
        if !ROLES.contains(&role.as_str()) {
            return Err(Error::field(
                "role",
                format!("invalid role {role:?}; use operator, node or worker"),
            ));
        }
        let requested = check_scopes("scopes", &input.scopes)?;
        let fields = SignedFields {
            device_id: &input.proof.id,
            client_id: &input.client_id,
            client_mode: &input.client_mode,
            role: &role,
            scopes: &input.scopes,
            signed_at_ms: input.proof.signed_at_ms,
            token: &input.token,
            nonce: &input.proof.nonce,
            platform: &input.platform,
            device_family: &input.device_family,
        };
        let (public_key, device_id) =
            device_auth::verify(&input.proof, &fields, now_ms(), &mut |n| self.take_nonce(n))
                .map_err(Error::DeviceProof)?;
        let platform = device_auth::normalize_meta(&input.platform);
        let family = device_auth::normalize_meta(&input.device_family);

        let existing = self.store.read(|r| r.device(&device_id))?;
        let reason = match &existing {
            None => Some("not-paired"),
            Some(d) if d.public_key != public_key => Some("not-paired"),
            Some(d) => match d.roles.iter().find(|r| r.role == role) {
                None => Some("role-upgrade"),
                Some(r) if !requested.iter().all(|s| scope_covers(&r.scopes_ref(), s)) => {
                    Some("scope-upgrade")
                }
                Some(_) if d.platform != platform || d.device_family != family => {
                    Some("metadata-upgrade")
                }
                Some(_) => None,
            },
        };

        // The device's own live token for this role, presented again: hand it back.
        if reason.is_none()
            && let (
                Kind::Device {
                    device_id: d,
                    role: r,
                    ..
                },
                Some(tok),
            ) = (&caller.principal.kind, &caller.presented)
            && *d == device_id
            && *r == role
        {
            return Ok(Connected {
                device_token: tok.clone(),
                role,
                scopes: caller
                    .principal
                    .scopes
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                device_id,
            });
        }

        let local = caller.local;
        let silent = match reason {
            None | Some("metadata-upgrade") => true,
            Some(_) => {
                self.config.gateway.nodes.pairing.auto_approve_local
                    && local
                    && matches!(caller.principal.kind, Kind::Gateway)
            }
        };
        if silent {
            let approve = reason.is_some() && reason != Some("metadata-upgrade");
            let request_id = if approve {
                uuid::Uuid::new_v4().to_string()
            } else {
                String::new()
            };
            let (token, scopes) = self
                .approve_and_mint(ApproveInput {
                    existing,
                    device_id: device_id.clone(),
                    public_key,
                    display_name: input.display_name.clone(),
                    platform,
                    device_family: family,
                    client_id: input.client_id.clone(),
                    client_mode: input.client_mode.clone(),
                    role: role.clone(),
                    scopes: requested,
                    request_id,
                })
                .await?;
            return Ok(Connected {
                device_token: token,
                role,
                scopes,
                device_id,
            });
        }

        let reason = reason.unwrap_or("not-paired");
        let now = now_ms();
        let req = PairingRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            device_id: device_id.clone(),
            public_key,
            display_name: input.display_name.clone(),
            platform,
            device_family: family,
            client_id: input.client_id.clone(),
            client_mode: input.client_mode.clone(),
            role,
            scopes: requested,
            remote_ip: caller.peer.map(|p| p.to_string()).unwrap_or_default(),
            reason: reason.into(),
            create_time: Some(ms_ts(now)),
            expire_time: Some(ms_ts(now + self.pending_ttl())),
        };
        let request_id = self.file_pending(req).await?;
        Err(Error::PairingRequired {
            request_id,
            reason,
            device_id,
        })
    }

    /// Files (or refreshes) a pending request; a request of the same device with another
    /// role, scopes or key supersedes the old one, which is resolved as rejected.
    async fn file_pending(&self, req: PairingRequest) -> Result<String> {
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

    /// Stores an approval (roles and scopes unioned) and mints a token for the role.
    async fn approve_and_mint(&self, a: ApproveInput) -> Result<(String, Vec<String>)> {
        let token = new_token();
        let digest = auth::digest(&token);
        let index = self.devices.clone();
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
        let index = self.devices.clone();
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
        let narrow = check_scopes("scopes", scopes)?;
        let in_band = caller.device() == Some((device_id, role));
        let token = in_band.then(new_token);
        let digest = token.as_deref().map(auth::digest);
        let (id, role) = (device_id.to_string(), role.to_string());
        let index = self.devices.clone();
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
    pub async fn revoke_token(&self, device_id: &str, role: &str) -> Result<Device> {
        let (id, role) = (device_id.to_string(), role.to_string());
        let index = self.devices.clone();
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

/// What a silent approval stores.
struct ApproveInput {
    existing: Option<Device>,
    device_id: String,
    public_key: String,
    display_name: String,
    platform: String,
    device_family: String,
    client_id: String,
    client_mode: String,
    role: String,
    scopes: Vec<String>,
    /// Set for a silent pairing (emits `pair.approved`); empty for a plain reconnect.
    request_id: String,
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

/// `&[&str]` view of a role's scopes.
trait ScopesRef {
    fn scopes_ref(&self) -> Vec<&str>;
}

impl ScopesRef for DeviceRole {
    fn scopes_ref(&self) -> Vec<&str> {
        self.scopes.iter().map(String::as_str).collect()
    }
}
