//! Revocation (a token or a whole task, effective at the next check) and replay protection for
//! single-use tokens.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError, RwLock};

/// Revoked token ids and tasks. Share one between the runtime's guard and its tool servers'
/// verifiers (an `Arc`), and a revocation takes effect at the very next call.
#[derive(Debug, Default)]
pub struct Revocations {
    tokens: RwLock<HashSet<String>>,
    tasks: RwLock<HashSet<String>>,
}

impl Revocations {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revokes one token by its `jti`.
    pub fn revoke_token(&self, jti: impl Into<String>) {
        self.tokens.write().unwrap_or_else(PoisonError::into_inner).insert(jti.into());
    }

    /// Revokes every token of a task, and of its sub-tasks (`task/subagent`).
    pub fn revoke_task(&self, task: impl Into<String>) {
        self.tasks.write().unwrap_or_else(PoisonError::into_inner).insert(task.into());
    }

    /// Why a token is revoked, if it is: `jti` itself, or its task or a parent task of it.
    pub(crate) fn revoked(&self, jti: &str, task: &str) -> Option<String> {
        if self.tokens.read().unwrap_or_else(PoisonError::into_inner).contains(jti) {
            return Some(format!("token `{jti}` was revoked"));
        }
        let tasks = self.tasks.read().unwrap_or_else(PoisonError::into_inner);
        // A sub-task's id extends its parent's: `T-1/helper` belongs to `T-1`.
        let mut prefix = String::new();
        for (index, part) in task.split('/').enumerate() {
            if index > 0 {
                prefix.push('/');
            }
            prefix.push_str(part);
            if tasks.contains(&prefix) {
                return Some(format!("task `{prefix}` was revoked"));
            }
        }
        None
    }
}

/// The `jti`s of single-use tokens already accepted, kept until they expire.
#[derive(Debug, Default)]
pub struct ReplayCache {
    state: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Token id → the time after which it can no longer verify anyway.
    until: HashMap<String, u64>,
    /// Sweep out expired ids when the map reaches this size; doubling it after each sweep keeps
    /// the cost per insert constant on average, however many tokens are live.
    sweep_at: usize,
}

/// The smallest size at which the cache sweeps out expired ids.
const MIN_SWEEP: usize = 1024;

impl ReplayCache {
    /// Records `jti` (valid until `expires`); false if it was already there.
    pub(crate) fn first_use(&self, jti: &str, expires: u64, now: u64) -> bool {
        let mut seen = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.until.len() >= seen.sweep_at.max(MIN_SWEEP) {
            seen.until.retain(|_, until| *until >= now);
            seen.sweep_at = (seen.until.len() * 2).max(MIN_SWEEP);
        }
        if seen.until.contains_key(jti) {
            return false;
        }
        seen.until.insert(jti.to_owned(), expires);
        true
    }

    /// How many token ids are remembered.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).until.len()
    }

    /// Whether no token id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_ids_are_swept_and_live_ones_kept() {
        let cache = ReplayCache::default();
        for n in 0..MIN_SWEEP {
            assert!(cache.first_use(&format!("old-{n}"), 10, 0));
        }
        // The next insert comes when the old ones have expired: it sweeps them out.
        assert!(cache.first_use("live", 1_000, 500));
        assert_eq!(cache.len(), 1);
        assert!(!cache.first_use("live", 1_000, 500), "a live id is still remembered");
    }
}
