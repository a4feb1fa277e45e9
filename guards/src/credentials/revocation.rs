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
    seen: Mutex<HashMap<String, u64>>,
}

impl ReplayCache {
    /// Records `jti` (valid until `expires`); false if it was already there.
    pub(crate) fn first_use(&self, jti: &str, expires: u64, now: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget tokens that can no longer verify anyway, so the cache stays small.
        if seen.len() > 1024 {
            seen.retain(|_, until| *until >= now);
        }
        match seen.get(jti) {
            Some(_) => false,
            None => {
                seen.insert(jti.to_owned(), expires);
                true
            }
        }
    }

    /// How many token ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no token id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
