//! Locking std mutexes that hold plain data.

use std::sync::{Mutex, MutexGuard};

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: the guarded
/// data are plain queues and maps that stay consistent between statements.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
