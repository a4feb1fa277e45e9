//! The audit trail: every verdict on every call, hash-chained, written before the tool runs.
//!
//! Each stage of the [`Pipeline`](crate::Pipeline) records an [`AuditEvent`]: who, which task,
//! which tool, which stage, the verdict and its reasons, the digest of the canonical arguments and
//! the arguments themselves with secrets redacted. The [`AuditLog`] redacts, hands the event to
//! its [`AuditSink`], which numbers it and chains it to the previous one ([`SealedEvent`]), then
//! mirrors it to `tracing` (target `audit`) and to any [`AuditMirror`] such as a query store.
//!
//! The sink is the source of truth and may refuse: if the intent record of a call cannot be made
//! durable, the pipeline denies the call. No tool runs unlogged.
//!
//! - [`JsonlSink`]: an append-only JSON Lines file with group commit (concurrent tasks share
//!   `fsync`s); the production sink. Opened with [`Checkpoints`], it signs the head of its chain
//!   ([`TreeHead`]) with the runtime's key after its header, on a policy and at a clean close,
//!   and hands each signed head to [`Anchor`]s kept outside the log ([`WitnessFile`], the store).
//! - [`MemorySink`]: events in memory, for tests; it can be told to fail.
//! - [`check_log`]: checks a log against someone who can write it: the chain, every checkpoint
//!   and approval signature ([`SignatureCheck`]), and the witness; the verdict is sealed, not
//!   sealed, or tampered ([`Integrity`]).
//! - [`verify_file`]: walks the chain alone and reports the first broken, missing or reordered
//!   link (accidents, not adversaries).
//! - [`AuditStore`]: a SQLite mirror for queries, rebuilt from the chain at will, which knows the
//!   signed head of the log it mirrors.
//! - [`review::Review`]: the weekly review of a period, per agent, as Markdown.
//!
//! Every hash and digest is over the RFC 8785 canonical form ([`crate::canonical`]), so a
//! verifier written elsewhere computes the same ones.

mod chain;
mod checkpoint;
mod integrity;
mod jsonl;
mod memory;
pub mod redact;
pub mod review;
mod store;
mod verify;

pub use chain::{Chain, GENESIS_HASH};
pub use checkpoint::{
    Anchor, CheckpointPolicy, Checkpoints, HeadSigner, LOG_FORMAT, Signature, SignatureCheck,
    SignedHead, TreeHead, WitnessFile,
};
pub use integrity::{Finding, FindingKind, Integrity, IntegrityVerdict, WitnessCheck, check_log};
pub use jsonl::{Fsync, JsonlSink};
pub use memory::MemorySink;
pub use store::{AuditQuery, AuditStore, StoreError};
pub use verify::{
    BreakKind, ChainBreak, ChainSummary, VerifyError, read_events, verify_file, verify_lines,
};

use crate::guard::Reason;
use crate::ids::{AgentId, CallId, TaskId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// One decision or happening on the path of a call, before it is numbered and chained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, as RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The agent acting.
    pub agent: AgentId,
    /// The delegation chain from the root agent to `agent`.
    pub chain: Vec<AgentId>,
    /// The task.
    pub task: TaskId,
    /// The call, for call events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
    /// The tool as the model named it (possibly not a tool at all), for call events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The stage that decided.
    pub stage: Stage,
    /// The guard's name, for [`Stage::Guard`] events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// What was decided or what happened.
    pub verdict: Verdict,
    /// Why, as codes and sentences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// The SHA-256 of the canonical arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_digest: Option<String>,
    /// The arguments, with secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Anything else the stage wants on record (the approval grant, the stop reason, …).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl AuditEvent {
    /// A task-level event (no call) stamped with the current time.
    pub fn for_task(
        agent: &AgentId,
        chain: &[AgentId],
        task: &TaskId,
        stage: Stage,
        verdict: Verdict,
    ) -> Self {
        Self {
            time: now_rfc3339(),
            agent: agent.clone(),
            chain: chain.to_vec(),
            task: task.clone(),
            call_id: None,
            tool: None,
            stage,
            guard: None,
            verdict,
            reasons: Vec::new(),
            args_digest: None,
            args: None,
            detail: Value::Null,
        }
    }

    /// Adds a reason.
    #[must_use]
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reasons.push(reason);
        self
    }

    /// Sets the detail.
    #[must_use]
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The stage of the path that produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The task started or ended.
    Task,
    /// Is the tool on the agent's menu?
    Menu,
    /// Does the input satisfy the tool's JSON Schema?
    Schema,
    /// One guard's verdict (its name is in `guard`).
    Guard,
    /// A human's (or a script's) answer to an approval request.
    Approval,
    /// The call is about to run: the record that must be durable first.
    Intent,
    /// What the tool returned.
    Outcome,
    /// The log itself: its header, the first line of every log (`opened`).
    Log,
    /// A signed checkpoint of the log's head (`signed`, or `sealed` at a clean close).
    Checkpoint,
}

impl Stage {
    /// The stage as written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Menu => "menu",
            Self::Schema => "schema",
            Self::Guard => "guard",
            Self::Approval => "approval",
            Self::Intent => "intent",
            Self::Outcome => "outcome",
            Self::Log => "log",
            Self::Checkpoint => "checkpoint",
        }
    }
}

/// What a stage decided, or what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The stage lets the call through.
    Allow,
    /// The stage stops the call.
    Deny,
    /// The stage lets the call through only with a human's yes.
    NeedsApproval,
    /// The call is about to run.
    Intent,
    /// The tool ran and returned output.
    Succeeded,
    /// The tool ran, or tried to, and failed.
    Failed,
    /// A task started.
    Started,
    /// A task ended (the reason says how).
    Ended,
    /// A log was opened (its header).
    Opened,
    /// The head of the log was signed.
    Signed,
    /// The log was closed cleanly and its final head signed.
    Sealed,
}

impl Verdict {
    /// The verdict as written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::NeedsApproval => "needs_approval",
            Self::Intent => "intent",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Started => "started",
            Self::Ended => "ended",
            Self::Opened => "opened",
            Self::Signed => "signed",
            Self::Sealed => "sealed",
        }
    }
}

/// An event with its place in the chain.
///
/// `hash` is the SHA-256 of the canonical JSON of every other field, `prev_hash` included, so
/// changing, removing or reordering any event breaks every link after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedEvent {
    /// The event's position in the log, from 0.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous event's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// How durable an append must be before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Written, in order, but it may still sit in an OS buffer: verdict events before the intent.
    Buffered,
    /// On stable storage (with everything before it) when `append` returns: intent and outcome.
    Durable,
}

/// Where audit events are kept. The sink numbers and chains them.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Seals the event into the chain and stores it; an error means it is not recorded.
    async fn append(&self, event: AuditEvent, commit: Commit) -> Result<SealedEvent, AuditError>;

    /// Closes the log cleanly: a signing sink writes its seal, the signed final head. Nothing is
    /// accepted after. Returns the seal, if the sink signs.
    fn close(&self) -> Result<Option<SignedHead>, AuditError> {
        Ok(None)
    }

    /// Lines the sink wrote on its own that mirrors have not seen yet (a new log's header), handed
    /// out once: the log gives them to its mirrors before the next event.
    fn take_unmirrored(&self) -> Vec<SealedEvent> {
        Vec::new()
    }
}

/// A secondary copy of the trail, such as a query store. Best effort: the sink is the source of
/// truth and a mirror can be rebuilt from it, so a mirror's failure is logged, not fatal.
pub trait AuditMirror: Send + Sync {
    /// Receives each event after the sink has stored it.
    fn mirror(&self, event: &SealedEvent) -> Result<(), String>;
}

/// The audit trail of a runtime: redaction, the sink, the `tracing` mirror and other mirrors.
#[derive(Clone)]
pub struct AuditLog {
    sink: Arc<dyn AuditSink>,
    mirrors: Vec<Arc<dyn AuditMirror>>,
}

impl AuditLog {
    /// A log over one sink.
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Self { sink, mirrors: Vec::new() }
    }

    /// Adds a mirror.
    #[must_use]
    pub fn with_mirror(mut self, mirror: Arc<dyn AuditMirror>) -> Self {
        self.mirrors.push(mirror);
        self
    }

    /// Closes the sink cleanly (see [`AuditSink::close`]): call it once the runtime is done, so the
    /// log verifies as sealed rather than as a run that stopped mid-way.
    pub fn close(&self) -> Result<Option<SignedHead>, AuditError> {
        self.sink.close()
    }

    /// Redacts the event, records it in the sink, and mirrors it.
    pub async fn record(
        &self,
        mut event: AuditEvent,
        commit: Commit,
    ) -> Result<SealedEvent, AuditError> {
        redact::redact_event(&mut event);
        let sealed = self.sink.append(event, commit).await.inspect_err(|error| {
            tracing::error!(target: "audit", %error, "audit event could not be recorded");
        })?;
        mirror_to_tracing(&sealed);
        if !self.mirrors.is_empty() {
            for own in self.sink.take_unmirrored() {
                for mirror in &self.mirrors {
                    if let Err(error) = mirror.mirror(&own) {
                        tracing::warn!(target: "audit", seq = own.seq, %error, "audit mirror failed");
                    }
                }
            }
        }
        for mirror in &self.mirrors {
            if let Err(error) = mirror.mirror(&sealed) {
                tracing::warn!(target: "audit", seq = sealed.seq, %error, "audit mirror failed");
            }
        }
        Ok(sealed)
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("mirrors", &self.mirrors.len()).finish_non_exhaustive()
    }
}

/// Why an event could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the log failed (a full disk, a missing folder, …).
    #[error("audit log `{path}`: {message}")]
    Io {
        /// The log file.
        path: String,
        /// What the OS said.
        message: String,
    },
    /// An earlier write failed, so the end of the file is uncertain; the sink refuses everything
    /// after it rather than write a chain it cannot vouch for.
    #[error("audit log `{path}` refused the event after an earlier write failed: {cause}")]
    Poisoned {
        /// The log file.
        path: String,
        /// The earlier failure.
        cause: String,
    },
    /// Another process holds the log open for writing.
    #[error("audit log `{0}` is in use by another process")]
    Locked(String),
    /// The existing log cannot be continued.
    #[error("audit log `{path}` cannot be continued at line {line}: {message}")]
    Corrupt {
        /// The log file.
        path: String,
        /// The first bad line, from 1.
        line: u64,
        /// What is wrong; run verification for the full story.
        message: String,
    },
    /// A checkpoint could not be signed or anchored: the log could no longer be vouched for.
    #[error("audit log `{path}` could not be checkpointed: {message}")]
    Checkpoint {
        /// The log file.
        path: String,
        /// What failed.
        message: String,
    },
    /// The sink was closed, or its writer stopped.
    #[error("audit sink is closed")]
    Closed,
    /// A test sink was told to fail.
    #[error("audit sink failure: {0}")]
    Injected(String),
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format).unwrap_or_else(|_| now.unix_timestamp().to_string())
}

fn mirror_to_tracing(sealed: &SealedEvent) {
    let event = &sealed.event;
    let reasons: Vec<&str> = event.reasons.iter().map(|reason| reason.code.as_str()).collect();
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                target: "audit",
                seq = sealed.seq,
                agent = %event.agent,
                task = %event.task,
                call_id = event.call_id.as_ref().map(CallId::as_str),
                tool = event.tool.as_deref(),
                stage = event.stage.as_str(),
                guard = event.guard.as_deref(),
                verdict = event.verdict.as_str(),
                reasons = ?reasons,
                args_digest = event.args_digest.as_deref(),
                hash = %sealed.hash,
            )
        };
    }
    match event.verdict {
        Verdict::Deny | Verdict::Failed => emit!(warn),
        _ => emit!(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_tracing_match_names_in_the_log() {
        let stages = [
            Stage::Task,
            Stage::Menu,
            Stage::Schema,
            Stage::Guard,
            Stage::Approval,
            Stage::Intent,
            Stage::Outcome,
            Stage::Log,
            Stage::Checkpoint,
        ];
        for stage in stages {
            assert_eq!(serde_json::to_value(stage).unwrap(), stage.as_str());
        }
        let verdicts = [
            Verdict::Allow,
            Verdict::Deny,
            Verdict::NeedsApproval,
            Verdict::Intent,
            Verdict::Succeeded,
            Verdict::Failed,
            Verdict::Started,
            Verdict::Ended,
            Verdict::Opened,
            Verdict::Signed,
            Verdict::Sealed,
        ];
        for verdict in verdicts {
            assert_eq!(serde_json::to_value(verdict).unwrap(), verdict.as_str());
        }
    }
}
