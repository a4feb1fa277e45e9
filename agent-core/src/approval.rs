//! Approvals: asking a human before a call runs, when a guard says so.
//!
//! The [`Pipeline`](crate::Pipeline) asks its [`Approver`] only after every guard has run, so no
//! one is asked about a call a guard would refuse anyway. An answer is bound to the request id and
//! the digest of the exact arguments shown; the pipeline checks both and uses the answer once.
//! Silence past the pipeline's timeout is a refusal (`expired`), and so is a crashed channel
//! (`channel_failed`).
//!
//! Channels a person uses (terminal, web console) live in the `guards` crate; this module has the
//! contract and the [`ScriptedApprover`] for tests and evals.

use crate::guard::{ApprovalNeed, Reason};
use crate::ids::{AgentId, CallId, TaskId};
use crate::tool::ToolName;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Answers approval requests: a person behind a terminal or a web page, or a script.
#[async_trait]
pub trait Approver: Send + Sync {
    /// Puts the request to the reviewer and waits for the answer. The pipeline bounds the wait
    /// with its own timeout; an approver need not.
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer;
}

/// What the reviewer is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Unique per call: `<task>/<call id>`.
    pub id: String,
    /// The tool to be called.
    pub tool: ToolName,
    /// The exact arguments, as they will be passed to the tool.
    pub args: Value,
    /// The SHA-256 of the canonical arguments; the answer must name it.
    pub args_digest: String,
    /// The agent asking, and its delegation chain from the root.
    pub agent: AgentId,
    /// The delegation chain from the root agent to `agent`.
    pub chain: Vec<AgentId>,
    /// The task.
    pub task: TaskId,
    /// The call.
    pub call_id: CallId,
    /// The customer the task serves, when there is one.
    pub on_behalf_of: Option<String>,
    /// What the model said it was doing: a claim to weigh, not a reason to trust.
    pub stated_reason: String,
    /// Why approval is needed, with the rules that asked.
    pub needs: Vec<ApprovalNeed>,
    /// What the guards found, by guard name: for the policy guard, the determining policies, the
    /// provenance of each argument (`argument_provenance`: trusted record, untrusted ticket text,
    /// untrusted tool output) and the budget used so far (`usage`).
    pub evidence: BTreeMap<String, Value>,
    /// When silence becomes a refusal, as RFC 3339.
    pub expires_at: String,
}

/// A reviewer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalAnswer {
    /// Yes, for exactly this request and these arguments.
    Approved(ApprovalGrant),
    /// A reviewer said no (recorded as `denied`, with who and why).
    Denied(ApprovalGrant),
    /// The channel could not put the question to anyone (no terminal, no console), with the
    /// reason; silence and crashes are turned into refusals by the pipeline.
    Refused(Reason),
}

/// A reviewer's answer, bound to one request and one argument digest: a yes when inside
/// [`ApprovalAnswer::Approved`], a no inside [`ApprovalAnswer::Denied`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalGrant {
    /// The request answered.
    pub request_id: String,
    /// The digest of the arguments that were shown and approved.
    pub args_digest: String,
    /// Who said yes.
    pub approver: String,
    /// Through which channel (`terminal`, `web`, `scripted`).
    pub channel: String,
    /// The reviewer's comment, if any.
    pub comment: Option<String>,
}

impl ApprovalGrant {
    /// An answer to `request`, naming its id and digest.
    pub fn for_request(request: &ApprovalRequest, approver: &str, channel: &str) -> Self {
        Self {
            request_id: request.id.clone(),
            args_digest: request.args_digest.clone(),
            approver: approver.to_owned(),
            channel: channel.to_owned(),
            comment: None,
        }
    }
}

/// What was decided about one approval request, whoever or whatever decided it: the record the
/// audit log keeps, signed by the runtime so it can later prove who said yes to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// The request.
    pub request_id: String,
    /// The tool.
    pub tool: String,
    /// The task.
    pub task: TaskId,
    /// The digest of the arguments shown.
    pub args_digest: String,
    /// `approved`, `denied`, `expired`, `channel_failed`, or another refusal code.
    pub decision: String,
    /// Who answered, when someone did.
    pub approver: Option<String>,
    /// Through which channel.
    pub channel: Option<String>,
    /// The reviewer's comment, or the refusal's detail.
    pub comment: Option<String>,
    /// When, as RFC 3339.
    pub decided_at: String,
    /// How long the request waited for its answer, in milliseconds.
    pub waited_ms: u64,
}

/// Signs approval records, so the audit log can prove who approved what (the `guards` crate
/// signs with the runtime's Ed25519 key).
pub trait ApprovalNotary: Send + Sync {
    /// A signature over the record, as a JSON value the audit event stores (a JWS in its
    /// flattened JSON form, say), or why it could not be made.
    fn sign(&self, record: &ApprovalRecord) -> Result<Value, String>;
}

/// An approver that answers from a script, for tests and evals, and records what it was asked.
#[derive(Debug, Clone)]
pub struct ScriptedApprover {
    answer: ScriptedAnswer,
    asked: Arc<Mutex<Vec<ApprovalRequest>>>,
}

/// What a [`ScriptedApprover`] says to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptedAnswer {
    /// Yes to everything.
    Approve,
    /// No to everything.
    Deny,
    /// Never answers: the pipeline's timeout decides.
    Timeout,
}

impl ScriptedApprover {
    /// An approver that always gives `answer`.
    pub fn new(answer: ScriptedAnswer) -> Self {
        Self { answer, asked: Arc::default() }
    }

    /// The requests put to this approver so far.
    pub fn requests(&self) -> Vec<ApprovalRequest> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Approver for ScriptedApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).push(request.clone());
        match self.answer {
            ScriptedAnswer::Approve => {
                ApprovalAnswer::Approved(ApprovalGrant::for_request(&request, "script", "scripted"))
            }
            ScriptedAnswer::Deny => {
                let mut answer = ApprovalGrant::for_request(&request, "script", "scripted");
                answer.comment =
                    Some(format!("the scripted reviewer said no to `{}`", request.tool));
                ApprovalAnswer::Denied(answer)
            }
            ScriptedAnswer::Timeout => std::future::pending().await,
        }
    }
}
