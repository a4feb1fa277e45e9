//! An in-memory sink for tests: it keeps every sealed event and can be told to fail.

use super::chain::Chain;
use super::{AuditError, AuditEvent, AuditSink, Commit, SealedEvent, Stage};
use async_trait::async_trait;
use std::sync::{Mutex, PoisonError};

/// Keeps sealed events in memory. `fail_from(stage)` makes it refuse events of a stage, to test
/// that the pipeline fails closed.
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    chain: Chain,
    events: Vec<SealedEvent>,
    fail_stage: Option<Stage>,
}

impl MemorySink {
    /// An empty sink that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, refuse every event of `stage` (and record nothing for it).
    pub fn fail_on(&self, stage: Stage) {
        self.lock().fail_stage = Some(stage);
    }

    /// Every event recorded so far, in order.
    pub fn events(&self) -> Vec<SealedEvent> {
        self.lock().events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn append(&self, event: AuditEvent, _commit: Commit) -> Result<SealedEvent, AuditError> {
        let mut state = self.lock();
        if state.fail_stage == Some(event.stage) {
            return Err(AuditError::Injected(format!("refusing {:?} events", event.stage)));
        }
        let sealed = state.chain.seal(event);
        state.events.push(sealed.clone());
        Ok(sealed)
    }
}
