#![doc = include_str!("../README.md")]

pub mod agent;
pub mod approval;
pub mod audit;
pub mod canonical;
pub mod credential;
pub mod danger;
pub mod display;
pub mod guard;
pub mod ids;
pub mod menu;
pub mod model;
pub mod pipeline;
pub mod tally;
pub mod tool;
mod unwind;

pub use agent::{Agent, AgentBuilder, Task, TaskEnd, TaskLimits, TaskReport};
pub use approval::{ApprovalAnswer, ApprovalGrant, ApprovalRequest, Approver, ScriptedApprover};
pub use audit::{AuditEvent, AuditLog, AuditSink, SealedEvent};
pub use credential::{CallCredentials, Credential, Delegator};
pub use guard::{CallContext, Decision, Evidence, Guard, ProposedCall, Reason};
pub use ids::{AgentId, CallId, TaskId};
pub use menu::ToolMenu;
pub use model::{Model, ModelRequest, ModelResponse};
pub use pipeline::{Authorized, CallRequest, Denied, Pipeline, SizeLimits};
pub use tally::{ApprovalHistory, Proposal, RefusedApproval, TaskTally};
pub use tool::{
    Derivation, EffectClass, FieldPath, Invocation, MoneyMoved, Scope, Tool, ToolError, ToolName,
    ToolOutput, ToolSpec,
};
