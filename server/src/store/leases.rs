//! Duties one replica performs at a time: the heartbeat schedule, the event relay, the
//! retention pruner, each egress endpoint. The core says which it wants; every replica
//! heartbeat takes or keeps them in the same transaction that keeps the replica alive
//! (a duty is free when its holder left or its lease ran out), and the result is what
//! [`Store::holds`] answers until the next heartbeat. With one process (redb) every duty
//! is held.

use super::Store;
use std::collections::{BTreeSet, HashSet};
use std::sync::RwLock;
use tokio::sync::watch;

/// The duties this replica wants and those it holds.
pub(super) struct Leases {
    wanted: RwLock<BTreeSet<String>>,
    held: RwLock<HashSet<String>>,
    /// Bumped whenever `held` changes.
    changed: watch::Sender<u64>,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            wanted: RwLock::default(),
            held: RwLock::default(),
            changed: watch::channel(0).0,
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Asks for a duty; it is held from a later heartbeat on (at once without replicas).
    pub fn want(&self, duty: &str) {
        write(&self.leases.wanted).insert(duty.to_string());
    }

    /// Makes the wanted duties named `prefix…` exactly `names` (e.g. the endpoints that exist).
    pub fn want_only(&self, prefix: &str, names: impl IntoIterator<Item = String>) {
        let mut wanted = write(&self.leases.wanted);
        wanted.retain(|n| !n.starts_with(prefix));
        wanted.extend(names);
    }

    /// The duties to take or keep at the next heartbeat.
    pub fn wanted(&self) -> Vec<String> {
        read(&self.leases.wanted).iter().cloned().collect()
    }

    /// True when this process performs `duty` now (always, without replicas).
    pub fn holds(&self, duty: &str) -> bool {
        !self.shared() || read(&self.leases.held).contains(duty)
    }

    /// Records what the last heartbeat holds (after its commit).
    pub fn set_held(&self, held: impl IntoIterator<Item = String>) {
        let held: HashSet<String> = held.into_iter().collect();
        let mut now = write(&self.leases.held);
        if *now != held {
            *now = held;
            self.leases.changed.send_modify(|n| *n += 1);
        }
    }

    /// Changes when the held duties change.
    pub fn duties_changed(&self) -> watch::Receiver<u64> {
        self.leases.changed.subscribe()
    }
}
