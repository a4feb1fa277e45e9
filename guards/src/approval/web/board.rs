//! The board: the requests waiting for the reviewer, and what became of the recent ones.
//!
//! Each request gets a numeric handle when it arrives. Request ids contain `/`
//! (`T-1001/toolu_01`) and two calls could in principle reuse one, so URLs name the handle, which
//! is unique for the console's lifetime. Handles are issued in order, so a handle below the next
//! one that is no longer pending was settled (answered, expired or closed): answering it again is a
//! conflict, not a request the console never saw.

use agent_core::{ApprovalAnswer, ApprovalGrant, ApprovalRequest};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

/// How many settled requests the console remembers for its "recent decisions" list.
const RECENT_CAPACITY: usize = 100;

/// The pending requests and the recent decisions, behind one lock.
#[derive(Default)]
pub(super) struct Board {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_handle: u64,
    closed: bool,
    pending: BTreeMap<u64, Pending>,
    recent: VecDeque<Settled>,
}

struct Pending {
    request: ApprovalRequest,
    received_at: String,
    answer: oneshot::Sender<ApprovalAnswer>,
}

/// A pending request as the pages show it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PendingView {
    /// The handle in this console's URLs.
    pub handle: u64,
    /// When the console received it, as RFC 3339.
    pub received_at: String,
    /// The request, exactly as the pipeline sent it.
    pub request: ApprovalRequest,
}

/// What became of one request.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Settled {
    /// The handle it had in this console's URLs.
    pub handle: u64,
    /// The request id.
    pub request_id: String,
    /// The tool.
    pub tool: String,
    /// The digest of the arguments shown.
    pub args_digest: String,
    /// How it ended.
    pub decision: Outcome,
    /// Who answered, when someone did.
    pub reviewer: Option<String>,
    /// The reviewer's comment, if any.
    pub comment: Option<String>,
    /// When, as RFC 3339.
    pub decided_at: String,
}

/// How a request left the pending list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Outcome {
    /// The reviewer said yes.
    Approved,
    /// The reviewer said no.
    Denied,
    /// The pipeline stopped waiting before anyone answered.
    Expired,
    /// The console shut down while it was pending.
    Closed,
}

impl Outcome {
    /// The word the pages and the JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Closed => "closed",
        }
    }
}

/// The reviewer's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Yes.
    Approve,
    /// No.
    Deny,
}

/// Why an answer was not taken. Nothing changes in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AnswerError {
    /// No request ever had this handle.
    #[error("no request has this number")]
    Unknown,
    /// The request was already answered, expired or closed.
    #[error("this request was already settled: {0}")]
    Settled(&'static str),
    /// The form showed other arguments than the ones pending (it cannot happen with the
    /// console's own pages, but an answer must never apply to arguments nobody saw).
    #[error("the arguments shown are not the arguments pending")]
    DigestMismatch,
}

impl Board {
    /// Puts a request on the pending list; `None` once the console is closed.
    pub fn add(
        &self,
        request: ApprovalRequest,
        answer: oneshot::Sender<ApprovalAnswer>,
    ) -> Option<u64> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        inner.next_handle += 1;
        let handle = inner.next_handle;
        tracing::info!(handle, request = %request.id, tool = %request.tool, "approval requested");
        inner.pending.insert(handle, Pending { request, received_at: now(), answer });
        Some(handle)
    }

    /// Takes a request off the list as `expired`, if it is still pending.
    pub fn expire(&self, handle: u64) {
        let mut inner = self.lock();
        if let Some(pending) = inner.pending.remove(&handle) {
            tracing::info!(handle, request = %pending.request.id, "approval request expired");
            inner.settle(handle, &pending.request, Outcome::Expired, None, None);
        }
    }

    /// Answers a pending request and wakes its `decide`. When `shown_digest` is given it must be
    /// the pending arguments' digest.
    pub fn answer(
        &self,
        handle: u64,
        verdict: Verdict,
        reviewer: &str,
        comment: Option<String>,
        shown_digest: Option<&str>,
    ) -> Result<Settled, AnswerError> {
        let mut inner = self.lock();
        let Some(pending) = inner.pending.get(&handle) else {
            return Err(inner.why_not_pending(handle));
        };
        if shown_digest.is_some_and(|shown| shown != pending.request.args_digest) {
            return Err(AnswerError::DigestMismatch);
        }
        let Some(pending) = inner.pending.remove(&handle) else {
            return Err(inner.why_not_pending(handle));
        };
        let mut grant = ApprovalGrant::for_request(&pending.request, reviewer, "web");
        grant.comment = comment.clone();
        let (answer, outcome) = match verdict {
            Verdict::Approve => (ApprovalAnswer::Approved(grant), Outcome::Approved),
            Verdict::Deny => (ApprovalAnswer::Denied(grant), Outcome::Denied),
        };
        if pending.answer.send(answer).is_err() {
            // The `decide` future is gone (its timeout fired) and its drop guard is waiting for
            // this lock: the answer reached nobody, so record what the pipeline saw.
            inner.settle(handle, &pending.request, Outcome::Expired, None, None);
            return Err(AnswerError::Settled(Outcome::Expired.as_str()));
        }
        tracing::info!(
            handle,
            request = %pending.request.id,
            decision = outcome.as_str(),
            reviewer,
            "approval answered through the web console"
        );
        Ok(inner.settle(handle, &pending.request, outcome, Some(reviewer.to_owned()), comment))
    }

    /// Closes the board: every pending request is refused and no new one is accepted.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        let pending = std::mem::take(&mut inner.pending);
        for (handle, pending) in pending {
            // Dropping `pending.answer` wakes its `decide` with a refusal.
            inner.settle(handle, &pending.request, Outcome::Closed, None, None);
        }
    }

    /// The pending requests, oldest first, and the recent decisions, newest first.
    pub fn snapshot(&self) -> (Vec<PendingView>, Vec<Settled>) {
        let inner = self.lock();
        let pending = inner
            .pending
            .iter()
            .map(|(handle, pending)| PendingView {
                handle: *handle,
                received_at: pending.received_at.clone(),
                request: pending.request.clone(),
            })
            .collect();
        (pending, inner.recent.iter().cloned().collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The board's invariants hold between statements, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn settle(
        &mut self,
        handle: u64,
        request: &ApprovalRequest,
        decision: Outcome,
        reviewer: Option<String>,
        comment: Option<String>,
    ) -> Settled {
        let settled = Settled {
            handle,
            request_id: request.id.clone(),
            tool: request.tool.to_string(),
            args_digest: request.args_digest.clone(),
            decision,
            reviewer,
            comment,
            decided_at: now(),
        };
        self.recent.push_front(settled.clone());
        self.recent.truncate(RECENT_CAPACITY);
        settled
    }

    fn why_not_pending(&self, handle: u64) -> AnswerError {
        if handle == 0 || handle > self.next_handle {
            return AnswerError::Unknown;
        }
        let outcome = self.recent.iter().find(|settled| settled.handle == handle);
        AnswerError::Settled(
            outcome.map_or("answered or expired", |settled| settled.decision.as_str()),
        )
    }
}

/// The time now as RFC 3339, to the second: what a reviewer reads and an operator greps for.
fn now() -> String {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now).format(&Rfc3339).unwrap_or_default()
}
