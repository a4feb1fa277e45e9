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
    /// When silence becomes a refusal, as RFC 3339.
    pub expires_at: String,
}

/// A reviewer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalAnswer {
    /// Yes, for exactly this request and these arguments.
    Approved(ApprovalGrant),
    /// No, with the reason (`denied`, `expired`, `channel_failed`, …).
    Refused(Reason),
}

/// A yes, bound to one request and one argument digest.
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
    /// A yes to `request`, naming its id and digest.
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
            ScriptedAnswer::Deny => ApprovalAnswer::Refused(Reason::new(
                "denied",
                format!("the scripted reviewer said no to `{}`", request.tool),
            )),
            ScriptedAnswer::Timeout => std::future::pending().await,
        }
    }
}
