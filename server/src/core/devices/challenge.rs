//! Challenge nonces: single use, short lived, and bounded per client address and
//! gateway-wide, so a flood of anonymous `Challenge` calls from one address can neither
//! grow memory nor crowd out other clients' nonces.

use super::{Devices, now_ms};
use crate::{
    auth::ClientKey,
    error::{Error, Result},
};
use clawplane_config::gateway::PairingConfig;
use clawplane_util::sync::lock;
use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a challenge nonce stays usable.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(120);

/// Outstanding challenges, each indexed three ways so that issuing, using and expiring one
/// are O(log n): by nonce, by expiry (swept from the front), and counted per address.
#[derive(Default)]
pub(super) struct Challenges {
    live: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_nonce: HashMap<String, (Instant, Option<ClientKey>)>,
    by_expiry: BTreeSet<(Instant, String)>,
    per_address: HashMap<ClientKey, usize>,
}

impl Table {
    fn remove(&mut self, nonce: &str) -> Option<Instant> {
        let (exp, key) = self.by_nonce.remove(nonce)?;
        self.by_expiry.remove(&(exp, nonce.to_string()));
        if let Some(k) = key
            && let Some(n) = self.per_address.get_mut(&k)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_address.remove(&k);
            }
        }
        Some(exp)
    }

    /// Drops every expired nonce (each is swept once, so this is amortised O(1)).
    fn sweep(&mut self, now: Instant) {
        while let Some((exp, nonce)) = self.by_expiry.first().cloned() {
            if exp > now {
                break;
            }
            self.remove(&nonce);
        }
    }
}

impl Devices {
    /// Issues a single-use nonce for a device proof to a caller at `client` (counted
    /// against its address; `None`: only the gateway-wide limit applies). Over either limit:
    /// RESOURCE_EXHAUSTED `CHALLENGES_EXHAUSTED`, and nothing is stored.
    /// With replicas the challenges are the cluster's (the store's `Ephemeral` state): a
    /// nonce issued by one replica is good on any, once, and the limits count them all.
    pub fn challenge(&self, client: Option<IpAddr>) -> Result<(String, i64)> {
        let now = Instant::now();
        let key = client.map(ClientKey::of);
        if let Some(eph) = self.store.ephemeral() {
            let nonce = uuid::Uuid::new_v4().to_string();
            let scope = key.map(|k| k.to_string());
            let issued = eph.issue_challenge(
                &nonce,
                scope.as_deref(),
                CHALLENGE_TTL.as_millis() as i64,
                self.cfg.max_challenges,
                self.cfg.max_challenges_per_address,
            )?;
            return match issued {
                Ok(()) => Ok((nonce, now_ms())),
                Err(per_address) => Err(exhausted(&self.cfg, per_address)),
            };
        }
        let mut t = lock(&self.challenges.live);
        t.sweep(now);
        if t.by_nonce.len() >= self.cfg.max_challenges {
            return Err(exhausted(&self.cfg, false));
        }
        if let Some(k) = key
            && t.per_address.get(&k).copied().unwrap_or(0) >= self.cfg.max_challenges_per_address
        {
            return Err(exhausted(&self.cfg, true));
        }
        let nonce = uuid::Uuid::new_v4().to_string();
        let exp = now + CHALLENGE_TTL;
        t.by_nonce.insert(nonce.clone(), (exp, key));
        t.by_expiry.insert((exp, nonce.clone()));
        if let Some(k) = key {
            *t.per_address.entry(k).or_default() += 1;
        }
        Ok((nonce, now_ms()))
    }

    /// Consumes a challenge nonce; true when it was live.
    pub(super) fn take_nonce(&self, nonce: &str) -> Result<bool> {
        if let Some(eph) = self.store.ephemeral() {
            return eph.take_challenge(nonce);
        }
        Ok(lock(&self.challenges.live)
            .remove(nonce)
            .is_some_and(|exp| exp > Instant::now()))
    }
}

fn exhausted(cfg: &PairingConfig, per_address: bool) -> Error {
    if per_address {
        Error::ChallengesExhausted {
            per_address: true,
            limit: cfg.max_challenges_per_address,
            key: "maxChallengesPerAddress",
        }
    } else {
        Error::ChallengesExhausted {
            per_address: false,
            limit: cfg.max_challenges,
            key: "maxChallenges",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_and_sweeping_keep_the_indexes_in_step() {
        let mut t = Table::default();
        let k = ClientKey::of("192.0.2.1".parse().unwrap());
        let now = Instant::now();
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            let exp = now + Duration::from_secs(i as u64);
            t.by_nonce.insert(n.to_string(), (exp, Some(k)));
            t.by_expiry.insert((exp, n.to_string()));
            *t.per_address.entry(k).or_default() += 1;
        }
        assert!(t.remove("b").is_some());
        assert!(t.remove("b").is_none(), "single use");
        assert_eq!(t.per_address[&k], 2);
        t.sweep(now + Duration::from_secs(5));
        assert!(t.by_nonce.is_empty() && t.by_expiry.is_empty() && t.per_address.is_empty());
    }
}
