//! Guards: the checks a tool call must pass, each a pure function from a call to a [`Decision`].
//!
//! A guard sees the proposed call (tool, validated input, argument digest, the model's stated
//! reason) and the task's context (who, for whom, what the task has read so far), and returns a
//! verdict. It never mutates the call and never returns an error: a guard that cannot decide
//! denies, with a reason (fail closed). A guard that panics is treated as a denial by the
//! [`Pipeline`](crate::Pipeline).
//!
//! ```
//! use agent_core::{CallContext, Decision, Guard, ProposedCall, Reason};
//!
//! /// Refuses every call of an irreversible tool.
//! struct NoIrreversible;
//!
//! impl Guard for NoIrreversible {
//!     fn name(&self) -> &str { "no_irreversible" }
//!     fn check(&self, call: &ProposedCall<'_>, _ctx: &CallContext) -> Decision {
//!         match call.spec.effect {
//!             agent_core::EffectClass::Irreversible => {
//!                 Decision::Deny(Reason::new("irreversible", "irreversible tools are off"))
//!             }
//!             _ => Decision::Allow,
//!         }
//!     }
//! }
//! ```

use crate::credential::Credential;
use crate::ids::{AgentId, CallId, TaskId};
use crate::tool::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One check on the path of a tool call.
pub trait Guard: Send + Sync {
    /// The guard's name in audit events, such as `credential` or `policy`.
    fn name(&self) -> &str;

    /// Decides on one call. Must not block for long: it runs on the call path.
    fn check(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Decision;

    /// Decides, and says why in a form the audit log keeps (the policies that determined the
    /// verdict, the context they saw). The pipeline calls this; the default has no detail.
    fn check_explained(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> (Decision, Value) {
        (self.check(call, ctx), Value::Null)
    }

    /// Called when a call this guard let through (`Allow` or `NeedsApproval`) was then refused
    /// by a later stage, so a guard that reserved something for it (a budget) can give it back.
    /// The one exception to "guards do not mutate": a reservation must be undone when the call
    /// it was made for will never run. The default does nothing.
    fn release(&self, _call: &ProposedCall<'_>, _ctx: &CallContext) {}
}

/// A guard's verdict on one call.
///
/// Deliberately exhaustive: a new kind of verdict must be handled by every `match`, so none can
/// fall through to an implicit allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The guard has no objection.
    Allow,
    /// The call must not run.
    Deny(Reason),
    /// The call may run only with a human's yes.
    NeedsApproval(ApprovalNeed),
}

/// Why a guard asks for a human's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalNeed {
    /// The reason, shown to the reviewer.
    pub reason: Reason,
    /// The rules that asked (for example the ids of the Cedar policies), shown to the reviewer.
    pub policies: Vec<String>,
}

impl ApprovalNeed {
    /// An approval need with no named policies.
    pub fn new(reason: Reason) -> Self {
        Self { reason, policies: Vec::new() }
    }
}

/// A reason for a verdict: a stable machine-readable code and a sentence for people.
///
/// The code is what queries and scorecards group by (`unknown_tool`, `schema_invalid`,
/// `scope_missing`, …). The detail may hold policy internals: it goes to the audit log, never to
/// the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reason {
    /// A short `snake_case` code.
    pub code: String,
    /// A sentence for the operator.
    pub detail: String,
}

impl Reason {
    /// A reason with a code and a detail.
    pub fn new(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { code: code.into(), detail: detail.into() }
    }
}

/// The call a guard is asked about. The input has already passed the tool's schema.
#[derive(Debug, Clone, Copy)]
pub struct ProposedCall<'a> {
    /// The call's id.
    pub id: &'a CallId,
    /// The declaration of the tool called.
    pub spec: &'a ToolSpec,
    /// The arguments.
    pub input: &'a Value,
    /// The SHA-256 of the canonical arguments.
    pub args_digest: &'a str,
    /// What the model said in the turn that made the call: its claim, not its authorization.
    pub stated_reason: &'a str,
}

/// What a guard knows about the task a call belongs to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CallContext {
    /// The agent making the call.
    pub agent: AgentId,
    /// The delegation chain from the root agent down to `agent` (just `[agent]` for a root).
    pub chain: Vec<AgentId>,
    /// The task.
    pub task: TaskId,
    /// The customer or user the task serves, when there is one.
    pub on_behalf_of: Option<String>,
    /// The untrusted content that has entered the conversation so far, with where it came from.
    pub untrusted: Vec<SourcedText>,
    /// The trusted content so far (the operator's instructions, trusted tools' output): what
    /// provenance checks compare arguments against.
    pub trusted: Vec<SourcedText>,
    /// How many tool calls the task has made before this one (authorized or not).
    pub calls_made: u32,
    /// The task's credential, for the credential guard to verify. Never logged.
    pub credential: Option<Credential>,
}

impl CallContext {
    /// The context of a root agent's task, before anything untrusted has been read.
    pub fn new(agent: AgentId, task: TaskId) -> Self {
        Self {
            chain: vec![agent.clone()],
            agent,
            task,
            on_behalf_of: None,
            untrusted: Vec::new(),
            trusted: Vec::new(),
            calls_made: 0,
            credential: None,
        }
    }

    /// Whether untrusted content is in the conversation (the task is tainted).
    pub fn tainted(&self) -> bool {
        !self.untrusted.is_empty()
    }
}

/// A piece of content and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcedText {
    /// Where it came from: `ticket`, `instructions`, or `tool:<name>` for a tool's output.
    pub source: String,
    /// The content.
    pub text: String,
}
