//! The pipeline: the one ordered path from a proposed tool call to a runnable one.
//!
//! [`Pipeline::authorize`] runs, in this order, and records every verdict in the audit log:
//!
//! 1. **Menu**: is the tool on the agent's menu? If not, the call is refused and never dispatched.
//! 2. **Schema**: does the input satisfy the tool's JSON Schema? Nothing else sees invalid input.
//! 3. **Guards**, in the order they were added. The first `Deny` stops the call; a guard that
//!    panics denies. `NeedsApproval` verdicts are collected.
//! 4. **Approval**, only if a guard asked and no guard refused: the [`Approver`] answers within
//!    the timeout, bound to this request and this argument digest, once.
//! 5. **Intent**: the record that the call is about to run, made durable. If it cannot be
//!    written, the call is refused: no tool runs unlogged.
//!
//! Only then does it return [`Authorized`], whose constructor is private to this module: searching
//! for `Authorized {` finds every path to execution, and it ends in
//! [`ToolMenu::invoke`](crate::ToolMenu::invoke).

use crate::approval::{
    ApprovalAnswer, ApprovalGrant, ApprovalNotary, ApprovalRecord, ApprovalRequest, Approver,
};
use crate::audit::{AuditEvent, AuditLog, Commit, Stage, Verdict, now_rfc3339};
use crate::canonical;
use crate::credential::CallCredentials;
use crate::guard::{ApprovalNeed, CallContext, Decision, Guard, ProposedCall, Reason};
use crate::ids::CallId;
use crate::menu::ToolMenu;
use crate::tally::{Proposal, RefusedApproval};
use crate::tool::{Invocation, Tool, ToolName, ToolSpec};
use crate::unwind::{catch_panic, describe};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The checks every call of one agent goes through.
pub struct Pipeline {
    menu: Arc<ToolMenu>,
    guards: Vec<Arc<dyn Guard>>,
    approver: Arc<dyn Approver>,
    approval_timeout: Duration,
    audit: AuditLog,
    call_credentials: Option<Arc<dyn CallCredentials>>,
    notary: Option<Arc<dyn ApprovalNotary>>,
    spent_approvals: Mutex<HashSet<String>>,
    max_approvals_per_task: u32,
    sizes: SizeLimits,
}

/// How many approval requests one task may put to a reviewer unless the operator says otherwise.
/// A reviewer asked many times a ticket stops reading; past the cap a call that needs a human is
/// refused (`approval_limit`) instead of asked.
pub const DEFAULT_MAX_APPROVALS_PER_TASK: u32 = 3;

/// A tool call as the model proposed it: nothing in it is trusted yet, its id included.
///
/// It carries no [`CallId`]: the pipeline mints one at its door for every request, so nothing the
/// proposer wrote can name, collide with or release another call's reservation, approval or
/// token.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    /// The id the proposer gave the call (the model's `tool_use` id, or a remote caller's call
    /// id): kept to answer the proposer and recorded as an attribute, never keyed on.
    pub proposer_id: Option<String>,
    /// The tool name the model used (maybe not a tool on the menu, maybe not a valid name).
    pub tool: String,
    /// The arguments, unvalidated.
    pub input: Value,
    /// The model's text in the same turn.
    pub stated_reason: String,
}

impl CallRequest {
    /// A request to call `tool` with `input`, with no proposer id and no stated reason.
    pub fn new(tool: impl Into<String>, input: Value) -> Self {
        Self { proposer_id: None, tool: tool.into(), input, stated_reason: String::new() }
    }

    /// The id the proposer gave the call.
    #[must_use]
    pub fn proposed_as(mut self, id: impl Into<String>) -> Self {
        self.proposer_id = Some(id.into());
        self
    }

    /// What the proposer said in the turn that made the call.
    #[must_use]
    pub fn stated_reason(mut self, reason: impl Into<String>) -> Self {
        self.stated_reason = reason.into();
        self
    }
}

/// Limits on the size of what a call carries, so a MiB of argument cannot cost seconds of
/// checks and megabytes of audit log, nor a tool's answer be re-sent to the model every turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// The most bytes of a call's arguments (canonical JSON); past it the call is refused at the
    /// schema stage (`input_too_large`) and its arguments are not logged.
    pub max_input_bytes: usize,
    /// The most bytes of a tool's output; past it the output is withheld from the model (the
    /// call has run; its outcome records `output_too_large`).
    pub max_output_bytes: usize,
}

impl Default for SizeLimits {
    /// 64 KiB of arguments and 256 KiB of output: far above any honest call of the demo's tools,
    /// far below what makes a call slow or a conversation huge.
    fn default() -> Self {
        Self { max_input_bytes: 64 * 1024, max_output_bytes: 256 * 1024 }
    }
}

/// A call that passed every check. Only [`Pipeline::authorize`] makes one, and only
/// [`ToolMenu::invoke`](crate::ToolMenu::invoke) spends it.
#[must_use = "an authorized call does nothing until it is invoked"]
pub struct Authorized {
    pub(crate) menu_id: u64,
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) input: Value,
    pub(crate) invocation: Invocation,
    pub(crate) audit: AuditLog,
    pub(crate) outcome_event: AuditEvent,
    approval: Option<ApprovalGrant>,
    approval_wait: Option<Duration>,
    intent_seq: u64,
    pub(crate) on_rejection: Release,
    pub(crate) max_output_bytes: usize,
}

/// What to undo if the tool itself refuses the call it was authorized for: the guards that
/// reserved something for it (a budget) are told, as if a later stage had refused it.
pub(crate) struct Release {
    guards: Vec<Arc<dyn Guard>>,
    call_id: CallId,
    proposer_id: Option<String>,
    spec: ToolSpec,
    input: Value,
    args_digest: String,
    stated_reason: String,
    ctx: CallContext,
}

impl Release {
    /// Tells every guard that let the call through that it did not happen.
    pub(crate) fn run(self) {
        let call = ProposedCall {
            id: &self.call_id,
            proposer_id: self.proposer_id.as_deref(),
            // Only reservations are undone here, and they key on the runtime's id.
            proposer_id_repeated: false,
            spec: &self.spec,
            input: &self.input,
            args_digest: &self.args_digest,
            stated_reason: &self.stated_reason,
        };
        for guard in &self.guards {
            let _ = catch_unwind(AssertUnwindSafe(|| guard.release(&call, &self.ctx)));
        }
    }
}

impl Authorized {
    /// The declaration of the tool to be run.
    pub fn spec(&self) -> &ToolSpec {
        self.tool.spec()
    }

    /// The call's id, task, agent and argument digest.
    pub fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    /// The human's yes, when the call needed one.
    pub fn approval(&self) -> Option<&ApprovalGrant> {
        self.approval.as_ref()
    }

    /// How long the call waited for a human, when it needed one.
    pub fn approval_wait(&self) -> Option<Duration> {
        self.approval_wait
    }

    /// The sequence number of the durable intent record.
    pub fn intent_seq(&self) -> u64 {
        self.intent_seq
    }

    /// Adds what a caller's own guards found about this call, forwarded by a tool server (a
    /// runtime calling over MCP sends its policy guard's findings), to the evidence the tool
    /// sees, under names this pipeline's guards did not use. It informs tools that keep
    /// provenance with what they record; it authorizes nothing (the call is authorized already).
    pub fn with_forwarded_evidence(
        mut self,
        evidence: impl IntoIterator<Item = (String, Value)>,
    ) -> Self {
        for (guard, found) in evidence {
            self.invocation.evidence.entry(guard).or_insert(found);
        }
        self
    }
}

impl std::fmt::Debug for Authorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized")
            .field("tool", &self.tool.spec().name)
            .field("call_id", &self.invocation.call_id)
            .field("intent_seq", &self.intent_seq)
            .finish_non_exhaustive()
    }
}

/// A refused call: which stage refused it and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call `{call_id}` to `{tool}` denied at {stage:?}: {reason:?}")]
pub struct Denied {
    /// The call, by the runtime's id.
    pub call_id: CallId,
    /// The id the proposer gave it, if any.
    pub proposer_id: Option<String>,
    /// The tool as the model named it.
    pub tool: String,
    /// The stage that refused.
    pub stage: Stage,
    /// The guard that refused, for [`Stage::Guard`].
    pub guard: Option<String>,
    /// Why. The detail is for the audit log only.
    pub reason: Reason,
    /// How long the call waited for a human before it was refused, if it was put to one.
    pub approval_wait: Option<Duration>,
}

impl Denied {
    /// The short, safe sentence the model gets as an `is_error` tool result: the reason code, no
    /// policy internals, no other customer's data.
    pub fn model_message(&self) -> String {
        format!(
            "This call was refused by the runtime's controls ({}). It was not executed.",
            self.reason.code
        )
    }
}

/// The name under which a failure to mint a call's credential is recorded.
const CALL_CREDENTIAL: &str = "call_credential";

/// The longest tool name copied from a refused call into the audit log.
const MAX_LOGGED_NAME: usize = 128;

impl Pipeline {
    /// A pipeline over `menu` that records into `audit`, with no guards yet and no approver:
    /// until one is set, every approval request is refused (`no_approver`).
    pub fn new(menu: Arc<ToolMenu>, audit: AuditLog) -> Self {
        Self {
            menu,
            guards: Vec::new(),
            approver: Arc::new(NoApprover),
            approval_timeout: Duration::from_secs(300),
            audit,
            call_credentials: None,
            notary: None,
            spent_approvals: Mutex::default(),
            max_approvals_per_task: DEFAULT_MAX_APPROVALS_PER_TASK,
            sizes: SizeLimits::default(),
        }
    }

    /// The same checks in front of another menu: for a subagent, whose menu is cut from this
    /// one's with [`ToolMenu::subset`]. Guards, approver, call credentials and audit log are
    /// shared.
    pub fn for_menu(&self, menu: Arc<ToolMenu>) -> Self {
        Self {
            menu,
            guards: self.guards.clone(),
            approver: Arc::clone(&self.approver),
            approval_timeout: self.approval_timeout,
            audit: self.audit.clone(),
            call_credentials: self.call_credentials.clone(),
            notary: self.notary.clone(),
            spent_approvals: Mutex::default(),
            max_approvals_per_task: self.max_approvals_per_task,
            sizes: self.sizes,
        }
    }

    /// Sets the size limits on what calls carry (see [`SizeLimits`]).
    #[must_use]
    pub fn with_size_limits(mut self, sizes: SizeLimits) -> Self {
        self.sizes = sizes;
        self
    }

    /// The size limits on what calls carry.
    pub fn size_limits(&self) -> SizeLimits {
        self.sizes
    }

    /// Sets how many approval requests one task may make (see
    /// [`DEFAULT_MAX_APPROVALS_PER_TASK`]); 0 means a call that needs a human is always refused.
    #[must_use]
    pub fn with_approval_limit(mut self, max_approvals_per_task: u32) -> Self {
        self.max_approvals_per_task = max_approvals_per_task;
        self
    }

    /// Sets who signs approval records (every answer, yes or no, is then recorded with a
    /// signature the audit log can be checked against).
    #[must_use]
    pub fn with_notary(mut self, notary: Arc<dyn ApprovalNotary>) -> Self {
        self.notary = Some(notary);
        self
    }

    /// Sets who mints the credential each authorized call carries to its tool.
    #[must_use]
    pub fn with_call_credentials(mut self, minter: Arc<dyn CallCredentials>) -> Self {
        self.call_credentials = Some(minter);
        self
    }

    /// Adds a guard after those already added.
    #[must_use]
    pub fn with_guard(mut self, guard: Arc<dyn Guard>) -> Self {
        self.guards.push(guard);
        self
    }

    /// Sets who answers approval requests, and how long silence may last before it is a no.
    #[must_use]
    pub fn with_approver(mut self, approver: Arc<dyn Approver>, timeout: Duration) -> Self {
        self.approver = approver;
        self.approval_timeout = timeout;
        self
    }

    /// The menu calls are checked against (and run from).
    pub fn menu(&self) -> &Arc<ToolMenu> {
        &self.menu
    }

    /// The audit log every verdict goes to.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Runs every check on `request` and returns a runnable call, or the refusal.
    pub async fn authorize(
        &self,
        request: &CallRequest,
        ctx: &CallContext,
    ) -> Result<Authorized, Denied> {
        // The door: the call gets the runtime's id, and the tally counts it.
        let call_id = CallId::mint();
        let proposal = ctx.tally.propose(request.proposer_id.as_deref());
        let canonical = canonical::to_canonical_string(&request.input);
        let oversized = canonical.len() > self.sizes.max_input_bytes;
        let digest = canonical::sha256_hex(canonical.as_bytes());
        drop(canonical);
        let record = Recorder::new(&self.audit, request, &call_id, ctx, &digest, oversized);

        // 1. Menu: a tool on it, and not withdrawn since.
        let on_menu = match self.menu.entry(&request.tool) {
            None => Err(Reason::new(
                "unknown_tool",
                format!("`{}` is not on the agent's menu", record.tool_name),
            )),
            Some(entry) => match entry.tool.withdrawn() {
                Some(why) => Err(Reason::new(
                    "tool_withdrawn",
                    format!("`{}` was withdrawn: {why}", record.tool_name),
                )),
                None => Ok(entry),
            },
        };
        let entry = match on_menu {
            Ok(entry) => entry,
            Err(reason) => {
                return Err(record
                    .deny_with(Stage::Menu, None, reason, record.door(proposal))
                    .await);
            }
        };
        record.guard_verdict_at(Stage::Menu, None, Verdict::Allow, record.door(proposal)).await?;
        let spec = entry.tool.spec();

        // 2. Schema, after the size: nothing larger than the limit is parsed further or logged.
        if oversized {
            let detail = format!(
                "the arguments are larger than {} bytes, the most a call may carry",
                self.sizes.max_input_bytes
            );
            return Err(record
                .deny(Stage::Schema, None, Reason::new("input_too_large", detail))
                .await);
        }
        // A number a double cannot hold would share its digest with a neighbour (RFC 8785 writes
        // the nearest double): an approval or a per-call token for one would fit the other.
        if let Some(number) = canonical::non_i_json_number(&request.input) {
            let detail = format!(
                "the arguments hold {number}, an integer beyond ±2^53 that a digest cannot tell \
                 from its neighbours (send it as a string)"
            );
            return Err(record
                .deny(Stage::Schema, None, Reason::new("input_not_i_json", detail))
                .await);
        }
        let errors: Vec<String> =
            entry.validator.iter_errors(&request.input).take(3).map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            let detail = format!("input does not match the schema: {}", errors.join("; "));
            return Err(record
                .deny(Stage::Schema, None, Reason::new("schema_invalid", detail))
                .await);
        }
        record.verdict(Stage::Schema, None, Verdict::Allow, Vec::new()).await?;

        // 3. Guards, in order; the first denial stops the call.
        let proposed = ProposedCall {
            id: &call_id,
            proposer_id: request.proposer_id.as_deref(),
            proposer_id_repeated: proposal.proposer_id_repeated,
            spec,
            input: &request.input,
            args_digest: &digest,
            stated_reason: &request.stated_reason,
        };
        let mut needs: Vec<ApprovalNeed> = Vec::new();
        // What the guards found, for a reviewer who is asked.
        let mut evidence: BTreeMap<String, Value> = BTreeMap::new();
        // Guards that let the call through, to be told if a later stage refuses it.
        let mut passed = Passed { guards: Vec::new(), call: &proposed, ctx };
        for guard in &self.guards {
            let name = Some(guard.name());
            let (decision, detail) = check_without_panicking(guard.as_ref(), &proposed, ctx);
            if !detail.is_null() {
                evidence.insert(guard.name().to_owned(), detail.clone());
            }
            match decision {
                Decision::Allow => {
                    record.guard_verdict(name, Verdict::Allow, vec![], detail).await?;
                    passed.guards.push(guard);
                }
                Decision::Deny(reason) => {
                    return Err(record.deny_with(Stage::Guard, name, reason, detail).await);
                }
                Decision::NeedsApproval(need) => {
                    passed.guards.push(guard);
                    let reasons = vec![need.reason.clone()];
                    record.guard_verdict(name, Verdict::NeedsApproval, reasons, detail).await?;
                    needs.push(need);
                }
            }
        }

        // 4. Approval, only once every guard has had its say. A call of a tool on a record a
        // reviewer refused in this task is refused, asked or not (a no sticks); a call that needs
        // a human is refused unasked once the task has used up its requests.
        if let Some(reason) = refused_earlier(spec, request, ctx) {
            return Err(record.deny(Stage::Approval, None, reason).await);
        }
        let approval = if needs.is_empty() {
            None
        } else {
            if let Err(asked) = ctx.tally.reserve_approval(self.max_approvals_per_task) {
                let reason = approval_limit(asked);
                return Err(record.deny(Stage::Approval, None, reason).await);
            }
            let tool = spec.name.clone();
            let asking = self.ask_approval(&record, request, ctx, tool, needs, evidence.clone());
            match asking.await {
                Ok(granted) => Some(granted),
                Err(denied) => {
                    // A reviewer's no (or silence) sticks for the rest of the task and every task
                    // sharing its tally.
                    ctx.tally.record_refusal(RefusedApproval {
                        tool: spec.name.to_string(),
                        resource: resource_of(spec, &request.input),
                    });
                    return Err(denied);
                }
            }
        };

        // What may have changed while the call waited for a human (the task's token expired or
        // was revoked, the task ended) is checked again before anything is recorded as running.
        if let Some((_, waited)) = &approval {
            for guard in &passed.guards {
                let decision = catch_unwind(AssertUnwindSafe(|| guard.recheck(&proposed, ctx)))
                    .unwrap_or_else(|panic| {
                        Decision::Deny(Reason::new(
                            "guard_failed",
                            format!(
                                "guard `{}` panicked: {}",
                                guard.name(),
                                describe(panic.as_ref())
                            ),
                        ))
                    });
                if let Decision::Deny(reason) = decision {
                    let detail = json!({ "after_approval_wait_ms": waited.as_millis() });
                    let denied = record.deny_with(Stage::Guard, Some(guard.name()), reason, detail);
                    return Err(waited_denial(denied.await, *waited));
                }
            }
        }

        // The call's own credential, minted only now that the call is allowed.
        let credential = match &self.call_credentials {
            None => None,
            Some(minter) => {
                match catch_unwind(AssertUnwindSafe(|| minter.for_call(&proposed, ctx))) {
                    Ok(Ok(credential)) => credential,
                    Ok(Err(reason)) => {
                        return Err(record.deny(Stage::Guard, Some(CALL_CREDENTIAL), reason).await);
                    }
                    Err(panic) => {
                        let reason = Reason::new("credential_failed", describe(panic.as_ref()));
                        return Err(record.deny(Stage::Guard, Some(CALL_CREDENTIAL), reason).await);
                    }
                }
            }
        };

        // 5. Intent, durably, or nothing runs.
        let intent = record.event(Stage::Intent, None, Verdict::Intent, Vec::new());
        let intent_seq = match self.audit.record(intent, Commit::Durable).await {
            Ok(sealed) => sealed.seq,
            Err(error) => {
                let reason = Reason::new("audit_unavailable", error.to_string());
                return Err(record.denied(Stage::Intent, None, reason));
            }
        };
        let guards = passed.settled();
        let mut outcome_event = record.event(Stage::Outcome, None, Verdict::Succeeded, Vec::new());
        outcome_event.args = None;
        Ok(Authorized {
            menu_id: self.menu.id(),
            tool: Arc::clone(&entry.tool),
            input: request.input.clone(),
            invocation: Invocation {
                call_id: call_id.clone(),
                task: ctx.task.clone(),
                agent: ctx.agent.clone(),
                args_digest: digest.clone(),
                credential,
                evidence,
            },
            audit: self.audit.clone(),
            outcome_event,
            approval: approval.as_ref().map(|(grant, _)| grant.clone()),
            approval_wait: approval.map(|(_, waited)| waited),
            intent_seq,
            on_rejection: Release {
                guards,
                call_id: call_id.clone(),
                proposer_id: request.proposer_id.clone(),
                spec: spec.clone(),
                input: request.input.clone(),
                args_digest: digest.clone(),
                stated_reason: request.stated_reason.clone(),
                ctx: released_context(ctx),
            },
            max_output_bytes: self.sizes.max_output_bytes,
        })
    }

    /// Puts the call to the approver and checks the answer: bound to this request and digest,
    /// not spent before, given in time. Every outcome, yes or no, is recorded with a signed
    /// approval record when a notary is configured.
    async fn ask_approval(
        &self,
        record: &Recorder<'_>,
        request: &CallRequest,
        ctx: &CallContext,
        tool: ToolName,
        needs: Vec<ApprovalNeed>,
        evidence: BTreeMap<String, Value>,
    ) -> Result<(ApprovalGrant, Duration), Denied> {
        let expires_at = time::OffsetDateTime::now_utc() + self.approval_timeout;
        let approval_request = ApprovalRequest {
            id: format!("{}/{}", ctx.task, record.call_id),
            tool: tool.clone(),
            args: request.input.clone(),
            args_digest: record.digest.to_owned(),
            agent: ctx.agent.clone(),
            chain: ctx.chain.clone(),
            task: ctx.task.clone(),
            call_id: record.call_id.clone(),
            on_behalf_of: ctx.on_behalf_of.clone(),
            stated_reason: request.stated_reason.clone(),
            needs,
            evidence,
            expires_at: expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        let request_id = approval_request.id.clone();
        let started = Instant::now();
        // A panic in the channel is a refusal, not a crash; silence past the timeout is a no.
        let asking = catch_panic(self.approver.decide(approval_request));
        let answer = match tokio::time::timeout(self.approval_timeout, asking).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(panic)) => ApprovalAnswer::Refused(Reason::new(
                "channel_failed",
                format!("the approval channel failed: {panic}"),
            )),
            Err(_) => ApprovalAnswer::Refused(Reason::new(
                "expired",
                format!("no answer within {:?}", self.approval_timeout),
            )),
        };
        let waited = started.elapsed();
        let approval_record = ApprovalRecord {
            request_id: request_id.clone(),
            tool: tool.to_string(),
            task: ctx.task.clone(),
            args_digest: record.digest.to_owned(),
            decision: match &answer {
                ApprovalAnswer::Approved(_) => "approved".to_owned(),
                ApprovalAnswer::Denied(_) => "denied".to_owned(),
                ApprovalAnswer::Refused(reason) => reason.code.clone(),
            },
            approver: match &answer {
                ApprovalAnswer::Approved(grant) | ApprovalAnswer::Denied(grant) => {
                    Some(grant.approver.clone())
                }
                ApprovalAnswer::Refused(_) => None,
            },
            channel: match &answer {
                ApprovalAnswer::Approved(grant) | ApprovalAnswer::Denied(grant) => {
                    Some(grant.channel.clone())
                }
                ApprovalAnswer::Refused(_) => None,
            },
            comment: match &answer {
                ApprovalAnswer::Approved(grant) | ApprovalAnswer::Denied(grant) => {
                    grant.comment.clone()
                }
                ApprovalAnswer::Refused(reason) => Some(reason.detail.clone()),
            },
            decided_at: now_rfc3339(),
            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        };
        let signature = match &self.notary {
            None => None,
            Some(notary) => {
                match catch_unwind(AssertUnwindSafe(|| notary.sign(&approval_record))) {
                    Ok(Ok(signature)) => Some(signature),
                    Ok(Err(error)) => {
                        let reason = Reason::new("notary_failed", error);
                        return Err(waited_denial(
                            record.deny(Stage::Approval, None, reason).await,
                            waited,
                        ));
                    }
                    Err(panic) => {
                        let reason = Reason::new("notary_failed", describe(panic.as_ref()));
                        return Err(waited_denial(
                            record.deny(Stage::Approval, None, reason).await,
                            waited,
                        ));
                    }
                }
            }
        };
        let detail = json!({ "record": approval_record, "signature": signature });
        let deny = |reason: Reason| async {
            let denied = record.deny_with(Stage::Approval, None, reason, detail.clone()).await;
            waited_denial(denied, waited)
        };
        let grant = match answer {
            ApprovalAnswer::Refused(reason) => return Err(deny(reason).await),
            ApprovalAnswer::Denied(grant) => {
                let said = grant.comment.unwrap_or_else(|| "the reviewer said no".to_owned());
                return Err(
                    deny(Reason::new("denied", format!("{}: {said}", grant.approver))).await
                );
            }
            ApprovalAnswer::Approved(grant) => grant,
        };
        if grant.request_id != request_id || grant.args_digest != record.digest {
            let detail = format!(
                "the approval names request `{}` and digest `{}`, not this call's",
                grant.request_id, grant.args_digest
            );
            return Err(deny(Reason::new("approval_mismatch", detail)).await);
        }
        let first_use =
            self.spent_approvals.lock().unwrap_or_else(PoisonError::into_inner).insert(request_id);
        if !first_use {
            let reason = Reason::new("approval_reused", "this approval was already used once");
            return Err(deny(reason).await);
        }
        let mut event = record.event(Stage::Approval, None, Verdict::Allow, Vec::new());
        event.detail = detail.clone();
        record.commit(event).await.map_err(|denied| waited_denial(denied, waited))?;
        Ok((grant, waited))
    }
}

/// The context a guard's `release` sees if the tool refuses the call: who, which task, for whom,
/// with which credential, but not the task's evidence, which can be the whole conversation and
/// would otherwise be copied on every authorized call for a rare refusal.
fn released_context(ctx: &CallContext) -> CallContext {
    CallContext {
        agent: ctx.agent.clone(),
        chain: ctx.chain.clone(),
        task: ctx.task.clone(),
        on_behalf_of: ctx.on_behalf_of.clone(),
        evidence: Vec::new(),
        calls_made: ctx.calls_made,
        credential: ctx.credential.clone(),
        serves: ctx.serves.clone(),
        tally: ctx.tally.clone(),
    }
}

/// Why a call that needs a human is refused without asking one: the task (with every task
/// sharing its tally) has used up its approval requests; a reviewer asked many times a ticket
/// stops reading.
fn approval_limit(asked: u32) -> Reason {
    Reason::new(
        "approval_limit",
        format!("this task already asked for {asked} approvals, the most it may ask"),
    )
}

/// Why a call is refused because a reviewer already said no (or nothing) to this tool on this
/// record in this task: asking again is how fatigue is bred, and a smaller amount that would need
/// no human is the same request in other clothes.
fn refused_earlier(spec: &ToolSpec, request: &CallRequest, ctx: &CallContext) -> Option<Reason> {
    let resource = resource_of(spec, &request.input);
    ctx.tally.was_refused(spec.name.as_str(), resource.as_deref()).then(|| {
        let on = resource.map(|id| format!(" on `{id}`")).unwrap_or_default();
        Reason::new(
            "refused_earlier",
            format!(
                "a reviewer already refused `{}`{on} in this task; it is not asked again",
                spec.name
            ),
        )
    })
}

/// The value of the tool's resource argument (the record the call touches), if it has one.
pub(crate) fn resource_of(spec: &ToolSpec, input: &Value) -> Option<String> {
    let reference = spec.resource.as_ref()?;
    input.get(&reference.argument).and_then(Value::as_str).map(str::to_owned)
}

/// A denial that came after waiting for a human, with how long.
fn waited_denial(mut denied: Denied, waited: Duration) -> Denied {
    denied.approval_wait = Some(waited);
    denied
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let guards: Vec<&str> = self.guards.iter().map(|guard| guard.name()).collect();
        f.debug_struct("Pipeline")
            .field("menu", &self.menu)
            .field("guards", &guards)
            .field("approval_timeout", &self.approval_timeout)
            .finish_non_exhaustive()
    }
}

/// Runs a guard, turning a panic into a denial.
fn check_without_panicking(
    guard: &dyn Guard,
    call: &ProposedCall<'_>,
    ctx: &CallContext,
) -> (Decision, Value) {
    catch_unwind(AssertUnwindSafe(|| guard.check_explained(call, ctx))).unwrap_or_else(|panic| {
        let message = describe(panic.as_ref());
        let reason =
            Reason::new("guard_failed", format!("guard `{}` panicked: {message}", guard.name()));
        (Decision::Deny(reason), Value::Null)
    })
}

/// The guards that let a call through. If the call is refused by a later stage (a later guard,
/// the approver, the call credential, the intent record), each is told on drop, so reservations
/// are undone on every path out of `authorize`, early returns included.
struct Passed<'a, 'c> {
    guards: Vec<&'a Arc<dyn Guard>>,
    call: &'a ProposedCall<'c>,
    ctx: &'a CallContext,
}

impl Passed<'_, '_> {
    /// The call is going ahead: nothing to undo now. Returns the guards to tell should the
    /// tool itself refuse the call.
    fn settled(mut self) -> Vec<Arc<dyn Guard>> {
        self.guards.drain(..).map(Arc::clone).collect()
    }
}

impl Drop for Passed<'_, '_> {
    fn drop(&mut self) {
        for guard in self.guards.drain(..) {
            // A panic in a release must not unwind through the pipeline; the reservation it
            // failed to undo stays spent, which errs on the side of refusing later calls.
            let _ = catch_unwind(AssertUnwindSafe(|| guard.release(self.call, self.ctx)));
        }
    }
}

/// Writes the events of one call, all sharing who, what and which arguments.
struct Recorder<'a> {
    audit: &'a AuditLog,
    request: &'a CallRequest,
    call_id: &'a CallId,
    ctx: &'a CallContext,
    digest: &'a str,
    tool_name: String,
    /// The arguments are over the size limit: they are not copied into the log.
    oversized: bool,
}

impl<'a> Recorder<'a> {
    fn new(
        audit: &'a AuditLog,
        request: &'a CallRequest,
        call_id: &'a CallId,
        ctx: &'a CallContext,
        digest: &'a str,
        oversized: bool,
    ) -> Self {
        let tool_name: String = request.tool.chars().take(MAX_LOGGED_NAME).collect();
        Self { audit, request, call_id, ctx, digest, tool_name, oversized }
    }

    fn event(
        &self,
        stage: Stage,
        guard: Option<&str>,
        verdict: Verdict,
        reasons: Vec<Reason>,
    ) -> AuditEvent {
        AuditEvent {
            time: now_rfc3339(),
            agent: self.ctx.agent.clone(),
            chain: self.ctx.chain.clone(),
            task: self.ctx.task.clone(),
            call_id: Some(self.call_id.clone()),
            tool: Some(self.tool_name.clone()),
            stage,
            guard: guard.map(str::to_owned),
            verdict,
            reasons,
            args_digest: Some(self.digest.to_owned()),
            args: (!self.oversized).then(|| self.request.input.clone()),
            detail: Value::Null,
        }
    }

    /// What the first event of a call records about how it came in: the id its proposer gave
    /// it (an attribute, shortened and never keyed on), whether that id repeats an earlier
    /// call's, and the tasks it serves.
    fn door(&self, proposal: Proposal) -> Value {
        let proposer_id = self
            .request
            .proposer_id
            .as_ref()
            .map(|id| id.chars().take(MAX_LOGGED_NAME).collect::<String>());
        let mut door = json!({
            "proposer_id": proposer_id,
            "proposer_id_repeated": proposal.proposer_id_repeated,
            "calls_before": proposal.calls_before,
        });
        if !self.ctx.serves.is_empty() {
            door["serves"] = json!(self.ctx.serves);
        }
        door
    }

    /// Records a passing verdict of a stage with its explanation.
    async fn guard_verdict_at(
        &self,
        stage: Stage,
        guard: Option<&str>,
        verdict: Verdict,
        detail: Value,
    ) -> Result<(), Denied> {
        let mut event = self.event(stage, guard, verdict, Vec::new());
        event.detail = detail;
        self.commit(event).await
    }

    /// Records a guard's passing verdict with its explanation.
    async fn guard_verdict(
        &self,
        guard: Option<&str>,
        verdict: Verdict,
        reasons: Vec<Reason>,
        detail: Value,
    ) -> Result<(), Denied> {
        let mut event = self.event(Stage::Guard, guard, verdict, reasons);
        event.detail = detail;
        self.commit(event).await
    }

    /// Records a passing verdict; if it cannot be recorded, the call is refused.
    async fn verdict(
        &self,
        stage: Stage,
        guard: Option<&str>,
        verdict: Verdict,
        reasons: Vec<Reason>,
    ) -> Result<(), Denied> {
        self.commit(self.event(stage, guard, verdict, reasons)).await
    }

    async fn commit(&self, event: AuditEvent) -> Result<(), Denied> {
        let (stage, guard) = (event.stage, event.guard.clone());
        match self.audit.record(event, Commit::Buffered).await {
            Ok(_) => Ok(()),
            Err(error) => Err(self.denied(
                stage,
                guard.as_deref(),
                Reason::new("audit_unavailable", error.to_string()),
            )),
        }
    }

    /// Records a denial (best effort: the call is refused whether or not the record is made).
    async fn deny(&self, stage: Stage, guard: Option<&str>, reason: Reason) -> Denied {
        self.deny_with(stage, guard, reason, Value::Null).await
    }

    /// Records a denial with the deciding stage's explanation.
    async fn deny_with(
        &self,
        stage: Stage,
        guard: Option<&str>,
        reason: Reason,
        detail: Value,
    ) -> Denied {
        let mut event = self.event(stage, guard, Verdict::Deny, vec![reason.clone()]);
        event.detail = detail;
        if let Err(error) = self.audit.record(event, Commit::Buffered).await {
            tracing::error!(target: "audit", %error, "a denial could not be recorded");
        }
        self.denied(stage, guard, reason)
    }

    fn denied(&self, stage: Stage, guard: Option<&str>, reason: Reason) -> Denied {
        Denied {
            call_id: self.call_id.clone(),
            proposer_id: self.request.proposer_id.clone(),
            tool: self.tool_name.clone(),
            stage,
            guard: guard.map(str::to_owned),
            reason,
            approval_wait: None,
        }
    }
}

/// The approver of a pipeline that has none: every request is refused, never silently allowed.
struct NoApprover;

#[async_trait]
impl Approver for NoApprover {
    async fn decide(&self, _request: ApprovalRequest) -> ApprovalAnswer {
        ApprovalAnswer::Refused(Reason::new(
            "no_approver",
            "the call needs a human's approval and no approval channel is configured",
        ))
    }
}
