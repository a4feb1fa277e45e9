//! Credentials as agent-core sees them: opaque bearer strings, never logged, never parsed here.
//!
//! The mechanism carries a task's credential from the [`Task`](crate::Task) to the guards (in
//! [`CallContext`](crate::CallContext)) and a call's credential to the tool (in
//! [`Invocation`](crate::tool::Invocation)); what a credential *is* (a JWT, its claims, its
//! signature) is the business of the `guards` crate, which implements [`CallCredentials`] and
//! [`Delegator`] and a credential guard.

use crate::guard::{CallContext, ProposedCall, Reason};
use crate::ids::{AgentId, TaskId};
use crate::tool::Scope;
use std::fmt;

/// A bearer credential. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, to send to a tool server. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

/// Mints the credential a tool receives with one authorized call.
///
/// The pipeline calls it after every guard and the approval, just before the intent record; an
/// error refuses the call. A typical implementation passes the task's token through for reads and
/// mints a single-use token bound to the tool and the argument digest for writes.
pub trait CallCredentials: Send + Sync {
    /// The credential for this call, or `None` to send none.
    fn for_call(
        &self,
        call: &ProposedCall<'_>,
        ctx: &CallContext,
    ) -> Result<Option<Credential>, Reason>;
}

/// Narrows a credential for a subagent: fewer scopes, no later expiry, the subagent added to the
/// delegation chain. Asking for anything wider than the parent holds is an error.
pub trait Delegator: Send + Sync {
    /// A credential for `subagent`, working on `task`, holding only `scopes`, derived from
    /// `parent`. It names the tasks the sub-task serves (the parent's task and those it serves),
    /// so a tool server's budgets roll the sub-task's spend up to them.
    fn attenuate(
        &self,
        parent: &Credential,
        subagent: &AgentId,
        task: &TaskId,
        scopes: &[Scope],
    ) -> Result<Credential, Reason>;
}
