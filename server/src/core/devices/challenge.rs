//! Challenge nonces: single use, short lived, bounded.

use super::{Devices, now_ms};
use clawplane_util::sync::lock;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a challenge nonce stays usable.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(120);
/// At most this many outstanding challenges.
const MAX_CHALLENGES: usize = 65_536;

/// Outstanding challenges: nonce -> expiry.
#[derive(Default)]
pub(super) struct Challenges {
    live: Mutex<HashMap<String, Instant>>,
}

impl Devices {
    /// Issues a single-use nonce for a device proof.
    pub fn challenge(&self) -> (String, i64) {
        let nonce = uuid::Uuid::new_v4().to_string();
        let now = Instant::now();
        let mut map = lock(&self.challenges.live);
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
    pub(super) fn take_nonce(&self, nonce: &str) -> bool {
        lock(&self.challenges.live)
            .remove(nonce)
            .is_some_and(|exp| exp > Instant::now())
    }
}
