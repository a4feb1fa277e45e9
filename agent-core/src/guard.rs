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
use crate::tally::TaskTally;
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
    /// it was made for will never run. When the tool itself refused the call, `ctx` carries the
    /// task's identity but not its evidence (key a reservation by task and call, not by what the
    /// task read). The default does nothing.
    fn release(&self, _call: &ProposedCall<'_>, _ctx: &CallContext) {}

    /// Checks again what may have changed while the call waited for a human (a token that
    /// expired or was revoked, a task that ended): called after an approval wait, before the
    /// intent record, on every guard that let the call through. It must not reserve anything (the
    /// reservation of [`Guard::check`] still stands, and is released if this refuses). The
    /// default finds nothing changed.
    fn recheck(&self, _call: &ProposedCall<'_>, _ctx: &CallContext) -> Decision {
        Decision::Allow
    }
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
    /// The call's id, minted by the runtime: what guards key reservations on.
    pub id: &'a CallId,
    /// The id the proposer gave the call (the model's `tool_use` id), if any: an attribute, never
    /// a key.
    pub proposer_id: Option<&'a str>,
    /// Whether the proposer gave an id it had already given another call of this task.
    pub proposer_id_repeated: bool,
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
    /// Everything the task has seen so far, in order, each piece labelled with what it is worth
    /// as evidence: what provenance checks compare arguments against.
    pub evidence: Vec<Evidence>,
    /// How many tool calls the task has made before this one (authorized or not).
    pub calls_made: u32,
    /// The task's credential, for the credential guard to verify. Never logged.
    pub credential: Option<Credential>,
    /// The tasks this one serves, root first, when it was delegated (empty for a root task):
    /// budgets count its spend against each of them too.
    pub serves: Vec<TaskId>,
    /// What this task and every task sharing its tally (its parent, its helpers) have asked of
    /// reviewers, been refused, and proposed: shared, so delegation multiplies no allowance.
    pub tally: TaskTally,
}

/// One piece of what a task has seen, and what it is worth as evidence for later calls.
///
/// Trust belongs to values by where they came from, never to a substring match: only the
/// operator's own text and the fields a tool declares facts vouch for an argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Evidence {
    /// The operator's own text (the task's instructions): trusted as written.
    Operator(SourcedText),
    /// Content from outside the trust boundary: a ticket, a tool's output or the parts of it
    /// that are not facts (an address a customer wrote, a seller's listing), a tool's error.
    Untrusted(SourcedText),
    /// Values a tool declared facts of its system of record: each vouches as a whole value.
    Facts {
        /// `tool:<name>`.
        source: String,
        /// The fact values (strings, numbers, booleans).
        values: Vec<Value>,
    },
    /// The output of a pure tool and the inputs it was computed from: it is worth what they are.
    Derived {
        /// `tool:<name>`.
        source: String,
        /// The call's arguments.
        inputs: Value,
        /// The output.
        output: String,
    },
    /// The arguments and output of a write this task made. What a task wrote never vouches for
    /// its later calls, even when a later read shows it back as a record.
    OwnWrite {
        /// `tool:<name>`.
        source: String,
        /// The values the write carried.
        values: Vec<Value>,
    },
}

impl Evidence {
    /// Whether this piece is untrusted content (it taints the task).
    pub fn is_untrusted(&self) -> bool {
        matches!(self, Self::Untrusted(_))
    }
}

impl CallContext {
    /// The context of a root agent's task, before anything untrusted has been read.
    pub fn new(agent: AgentId, task: TaskId) -> Self {
        Self {
            chain: vec![agent.clone()],
            agent,
            task,
            on_behalf_of: None,
            evidence: Vec::new(),
            calls_made: 0,
            credential: None,
            serves: Vec::new(),
            tally: TaskTally::new(),
        }
    }

    /// The task the whole piece of work started as: the root this one serves, or itself.
    pub fn root_task(&self) -> &TaskId {
        self.serves.first().unwrap_or(&self.task)
    }

    /// Whether untrusted content is in the conversation (the task is tainted).
    pub fn tainted(&self) -> bool {
        self.evidence.iter().any(Evidence::is_untrusted)
    }

    /// Adds untrusted content, such as a ticket, from `source`.
    pub fn add_untrusted(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.evidence.push(Evidence::Untrusted(SourcedText::new(source, text)));
    }

    /// Adds the operator's own text, such as the task's instructions.
    pub fn add_operator(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.evidence.push(Evidence::Operator(SourcedText::new(source, text)));
    }

    /// The untrusted content seen so far.
    pub fn untrusted(&self) -> impl Iterator<Item = &SourcedText> {
        self.evidence.iter().filter_map(|piece| match piece {
            Evidence::Untrusted(text) => Some(text),
            _ => None,
        })
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

impl SourcedText {
    /// `text` from `source`.
    pub fn new(source: impl Into<String>, text: impl Into<String>) -> Self {
        Self { source: source.into(), text: text.into() }
    }
}
