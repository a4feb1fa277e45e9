//! The tally of a task and every sub-task delegated from it: what they have asked of reviewers,
//! what a reviewer refused, how many calls they proposed and which ids the model gave them.
//!
//! Limits that live in the runtime's memory (the approval requests a task may make, the tool
//! calls it may propose) must follow the work, not the task id: a parent that delegates to two
//! helpers must not get three allowances. So a [`Task`](crate::Task) owns one `TaskTally`,
//! [`Task::delegate`](crate::Task::delegate) hands the same tally to the sub-task, and every
//! check reads and changes it under one lock: a subagent can never hold more headroom than its
//! parent has left, even when they run at the same time. (Budgets that must hold across
//! processes, such as money, live in the guards' ledger and roll up the same way, by the chain of
//! tasks a call serves.)

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What a task has asked of its reviewers so far: how many requests, and which calls a human
/// (or the clock) said no to. A reviewer asked a sixteenth time says yes without reading, so the
/// pipeline caps the requests per task and never asks again about what was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalHistory {
    /// Approval requests put to a reviewer, whatever the answer.
    pub asked: u32,
    /// The calls refused by a reviewer: the tool and the record it touched.
    pub refused: Vec<RefusedApproval>,
}

/// A call a reviewer refused: later calls of the same tool on the same record are refused
/// without asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedApproval {
    /// The tool.
    pub tool: String,
    /// The record the call touched (the value of the tool's resource argument), if any.
    pub resource: Option<String>,
}

/// A call as the tally counted it at the pipeline's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// Calls proposed before this one, by the task and every task sharing its tally.
    pub calls_before: u32,
    /// Whether the proposer (the model) gave this call an id it had already given another one in
    /// this task. It gains nothing by it (the runtime keys on its own ids), but it is recorded
    /// and the policy can see it.
    pub proposer_id_repeated: bool,
}

/// The shared tally: cheap to clone (every clone is the same tally).
#[derive(Clone, Default)]
pub struct TaskTally {
    shared: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    approvals: ApprovalHistory,
    calls_proposed: u32,
    proposer_ids: HashSet<String>,
    delegations: u32,
}

/// The most proposer ids remembered per tally: enough for any task's calls (a task's own
/// call limit is far lower); past it, ids are no longer remembered and a repeat goes unnoticed,
/// which only loses the attribute: nothing keys on these ids.
const MAX_REMEMBERED_IDS: usize = 4096;

impl TaskTally {
    /// A fresh tally, for a root task.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a proposed call and notes the id its proposer gave it.
    pub fn propose(&self, proposer_id: Option<&str>) -> Proposal {
        let mut counts = self.lock();
        let calls_before = counts.calls_proposed;
        counts.calls_proposed = counts.calls_proposed.saturating_add(1);
        let proposer_id_repeated = match proposer_id {
            None => false,
            Some(id) if counts.proposer_ids.contains(id) => true,
            Some(id) => {
                if counts.proposer_ids.len() < MAX_REMEMBERED_IDS {
                    counts.proposer_ids.insert(id.to_owned());
                }
                false
            }
        };
        Proposal { calls_before, proposer_id_repeated }
    }

    /// The number of the next sub-task delegated within this piece of work, from 1: it makes
    /// each sub-task's id unique, even for two delegations to one subagent.
    pub fn next_delegation(&self) -> u32 {
        let mut counts = self.lock();
        counts.delegations = counts.delegations.saturating_add(1);
        counts.delegations
    }

    /// Calls proposed so far by every task sharing this tally.
    pub fn calls_proposed(&self) -> u32 {
        self.lock().calls_proposed
    }

    /// Takes one approval request from an allowance of `max`, atomically, or says how many were
    /// already asked when none is left.
    pub fn reserve_approval(&self, max: u32) -> Result<(), u32> {
        let mut counts = self.lock();
        if counts.approvals.asked >= max {
            return Err(counts.approvals.asked);
        }
        counts.approvals.asked += 1;
        Ok(())
    }

    /// Records that a reviewer (or the clock) refused a call of `tool` on `resource`.
    pub fn record_refusal(&self, refusal: RefusedApproval) {
        let mut counts = self.lock();
        if !counts.approvals.refused.contains(&refusal) {
            counts.approvals.refused.push(refusal);
        }
    }

    /// Whether a reviewer refused a call of `tool` on `resource` in this task (or a task sharing
    /// its tally).
    pub fn was_refused(&self, tool: &str, resource: Option<&str>) -> bool {
        self.lock()
            .approvals
            .refused
            .iter()
            .any(|refusal| refusal.tool == tool && refusal.resource.as_deref() == resource)
    }

    /// The approvals asked and refused so far.
    pub fn approvals(&self) -> ApprovalHistory {
        self.lock().approvals.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counts are plain numbers and sets, valid after any panic: keep counting.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PartialEq for TaskTally {
    /// Two tallies are equal when they are the same tally.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl std::fmt::Debug for TaskTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts = self.lock();
        f.debug_struct("TaskTally")
            .field("calls_proposed", &counts.calls_proposed)
            .field("approvals", &counts.approvals)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_allowance() {
        let parent = TaskTally::new();
        let helper = parent.clone();
        assert_eq!(parent.reserve_approval(2), Ok(()));
        assert_eq!(helper.reserve_approval(2), Ok(()));
        assert_eq!(parent.reserve_approval(2), Err(2), "the helper used the parent's second");
        assert_eq!(TaskTally::new().reserve_approval(2), Ok(()), "a new task has its own");
    }

    #[test]
    fn a_repeated_proposer_id_is_noticed_and_counted_as_a_call() {
        let tally = TaskTally::new();
        let first = tally.propose(Some("toolu_1"));
        let again = tally.clone().propose(Some("toolu_1"));
        assert_eq!(first, Proposal { calls_before: 0, proposer_id_repeated: false });
        assert_eq!(again, Proposal { calls_before: 1, proposer_id_repeated: true });
        assert!(!tally.propose(None).proposer_id_repeated);
        assert_eq!(tally.calls_proposed(), 3);
    }

    #[test]
    fn a_refusal_is_seen_by_every_task_sharing_the_tally() {
        let tally = TaskTally::new();
        let refusal = RefusedApproval { tool: "refund".into(), resource: Some("o1".into()) };
        tally.clone().record_refusal(refusal);
        assert!(tally.was_refused("refund", Some("o1")));
        assert!(!tally.was_refused("refund", Some("o2")));
        assert!(!tally.was_refused("refund", None));
    }
}
