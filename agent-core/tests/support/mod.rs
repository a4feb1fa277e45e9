//! Helpers shared by agent-core's integration tests: a recording tool, scripted guards, and a
//! sink that writes into the same timeline as the tools, so a test can prove what happened first.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_core::approval::{ApprovalAnswer, ApprovalGrant, ApprovalRequest};
use agent_core::audit::{
    AuditError, AuditEvent, AuditLog, AuditSink, Commit, MemorySink, SealedEvent, Stage,
};
use agent_core::guard::{ApprovalNeed, CallContext, Decision, Guard, ProposedCall, Reason};
use agent_core::pipeline::CallRequest;
use agent_core::tool::{Invocation, Tool, ToolError, ToolOutput};
use agent_core::{Approver, CallId, EffectClass, Scope, ToolName, ToolSpec};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What happened, in order: audit events as `"<stage>:<call>"` and executions as `"run:<call>"`,
/// each call named by the id its proposer gave it (the pipeline's own id otherwise), so tests
/// read `menu:c1` rather than a minted id.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    entries: Arc<Mutex<Vec<String>>>,
    /// The runtime's id of each call → the proposer's, learned from the call's first event.
    names: Arc<Mutex<HashMap<String, String>>>,
}

impl Timeline {
    pub fn push(&self, entry: String) {
        self.entries.lock().unwrap().push(entry);
    }
    pub fn entries(&self) -> Vec<String> {
        self.entries.lock().unwrap().clone()
    }
    /// The proposer's id for the call the runtime numbered `call_id`, or `call_id` itself.
    pub fn name(&self, call_id: &str) -> String {
        self.names.lock().unwrap().get(call_id).cloned().unwrap_or_else(|| call_id.to_owned())
    }
    fn learn(&self, event: &AuditEvent) {
        if let (Some(call), Some(proposer)) =
            (&event.call_id, event.detail.get("proposer_id").and_then(Value::as_str))
        {
            self.names.lock().unwrap().insert(call.to_string(), proposer.to_owned());
        }
    }
}

/// A tool that records each run and answers with its input.
pub struct RecordingTool {
    spec: ToolSpec,
    timeline: Timeline,
    runs: Arc<Mutex<Vec<Value>>>,
    behaviour: Behaviour,
}

#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    Echo,
    Reject,
    Panic,
    /// Fails inside (`ToolError::Internal`), as a backend that broke half-way would.
    Fail,
}

impl RecordingTool {
    pub fn new(name: &str, effect: EffectClass, timeline: &Timeline) -> Self {
        Self::with(name, effect, timeline, Behaviour::Echo)
    }

    pub fn with(
        name: &str,
        effect: EffectClass,
        timeline: &Timeline,
        behaviour: Behaviour,
    ) -> Self {
        let spec = ToolSpec::new(
            ToolName::new(name).unwrap(),
            format!("test tool {name}"),
            order_schema(),
            Scope::new(format!("{name}:use")).unwrap(),
        )
        .effect(effect);
        Self { spec, timeline: timeline.clone(), runs: Arc::default(), behaviour }
    }

    pub fn untrusted(mut self) -> Self {
        self.spec = self.spec.untrusted_output();
        self
    }

    /// Declares output fields facts of the system of record.
    pub fn facts(mut self, paths: &[&str]) -> Self {
        self.spec = self.spec.facts(paths.iter().copied());
        self
    }

    /// Declares the record the call touches: the `argument` holds the id of an `entity_type`.
    pub fn touches(mut self, entity_type: &str, argument: &str) -> Self {
        self.spec = self.spec.touches(entity_type, argument);
        self
    }

    pub fn runs(&self) -> Arc<Mutex<Vec<Value>>> {
        Arc::clone(&self.runs)
    }
}

/// `{ order_id: string, amount?: number }`, nothing else.
pub fn order_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
            "note": {"type": "string"}
        },
        "required": ["order_id"],
        "additionalProperties": false
    })
}

#[async_trait]
impl Tool for RecordingTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        self.timeline.push(format!("run:{}", self.timeline.name(invocation.call_id.as_str())));
        self.runs.lock().unwrap().push(input.clone());
        match self.behaviour {
            Behaviour::Echo => Ok(ToolOutput::json(&json!({"ok": true, "input": input}))),
            Behaviour::Reject => Err(ToolError::Rejected("order is not pending".into())),
            Behaviour::Panic => panic!("the tool blew up"),
            Behaviour::Fail => Err(ToolError::Internal("the backend timed out mid-write".into())),
        }
    }
}

/// A guard whose verdict per call id is scripted; calls not in the script are allowed.
pub struct ScriptedGuard {
    pub name: String,
    pub verdicts: HashMap<String, Verdict>,
    pub seen: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    Ask,
    Panic,
}

impl ScriptedGuard {
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), verdicts: HashMap::new(), seen: Arc::default() }
    }

    pub fn on(mut self, call_id: &str, verdict: Verdict) -> Self {
        self.verdicts.insert(call_id.into(), verdict);
        self
    }
}

impl Guard for ScriptedGuard {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, call: &ProposedCall<'_>, _ctx: &CallContext) -> Decision {
        let name = call.proposer_id.unwrap_or(call.id.as_str());
        self.seen.lock().unwrap().push(name.to_owned());
        match self.verdicts.get(name).copied().unwrap_or(Verdict::Allow) {
            Verdict::Allow => Decision::Allow,
            Verdict::Deny => {
                Decision::Deny(Reason::new("scripted_deny", "internal policy p7 says no"))
            }
            Verdict::Ask => Decision::NeedsApproval(ApprovalNeed {
                reason: Reason::new("scripted_ask", "a human must look"),
                policies: vec!["p9".into()],
            }),
            Verdict::Panic => panic!("guard exploded"),
        }
    }
}

/// A guard that asks for a human on every call of one tool, and allows every other call.
pub struct AsksFor(pub &'static str);

impl Guard for AsksFor {
    fn name(&self) -> &str {
        "policy"
    }

    fn check(&self, call: &ProposedCall<'_>, _ctx: &CallContext) -> Decision {
        if call.spec.name.as_str() != self.0 {
            return Decision::Allow;
        }
        Decision::NeedsApproval(ApprovalNeed {
            reason: Reason::new("needs_a_human", "a human must look"),
            policies: vec!["p9".into()],
        })
    }
}

/// A reviewer who says no to calls on the orders it was told to refuse and yes to the rest, and
/// keeps every request it was shown, in order.
#[derive(Clone, Default)]
pub struct CountingApprover {
    refuse_orders: Vec<String>,
    asked: Arc<Mutex<Vec<ApprovalRequest>>>,
}

impl CountingApprover {
    /// Says yes to everything.
    pub fn approving() -> Self {
        Self::default()
    }

    /// Says no to every call whose `order_id` is one of `orders`.
    pub fn refusing(orders: &[&str]) -> Self {
        Self {
            refuse_orders: orders.iter().map(|&order| order.to_owned()).collect(),
            ..Self::default()
        }
    }

    /// How many requests it was shown.
    pub fn count(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    /// `(task, call id, order id)` of every request it was shown.
    pub fn asked(&self) -> Vec<(String, String, String)> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|request| {
                let order = request.args["order_id"].as_str().unwrap_or_default().to_owned();
                (request.task.to_string(), request.call_id.to_string(), order)
            })
            .collect()
    }
}

#[async_trait]
impl Approver for CountingApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        self.asked.lock().unwrap().push(request.clone());
        let order = request.args["order_id"].as_str().unwrap_or_default();
        let answer = ApprovalGrant::for_request(&request, "alice", "scripted");
        if self.refuse_orders.iter().any(|refused| refused == order) {
            ApprovalAnswer::Denied(answer)
        } else {
            ApprovalAnswer::Approved(answer)
        }
    }
}

/// A memory sink that also writes each event into a timeline as `"<stage>:<call>"`.
pub struct TimelineSink {
    pub inner: MemorySink,
    pub timeline: Timeline,
}

#[async_trait]
impl AuditSink for TimelineSink {
    async fn append(&self, event: AuditEvent, commit: Commit) -> Result<SealedEvent, AuditError> {
        self.timeline.learn(&event);
        let call = event.call_id.as_ref().map(CallId::as_str).unwrap_or("-");
        let label = format!("{}:{}", event.stage.as_str(), self.timeline.name(call));
        let sealed = self.inner.append(event, commit).await?;
        self.timeline.push(label);
        Ok(sealed)
    }
}

/// A timeline, a sink writing into it, and the audit log over the sink.
pub fn timeline_log() -> (Timeline, Arc<TimelineSink>, AuditLog) {
    let timeline = Timeline::default();
    let sink = Arc::new(TimelineSink { inner: MemorySink::new(), timeline: timeline.clone() });
    let log = AuditLog::new(sink.clone());
    (timeline, sink, log)
}

pub fn request(id: &str, tool: &str, input: Value) -> CallRequest {
    CallRequest::new(tool, input).proposed_as(id).stated_reason("because")
}

pub fn context() -> CallContext {
    CallContext::new("support-agent".into(), "task-1".into())
}

/// The verdicts recorded for one call, as `(stage, verdict, first reason code)`: the call named by
/// the runtime's id, or by the proposer's (every call the proposer gave that id).
pub fn verdicts_for(events: &[SealedEvent], call_id: &str) -> Vec<(Stage, String, Option<String>)> {
    let proposed_as = |e: &SealedEvent| {
        e.event.detail.get("proposer_id").and_then(Value::as_str) == Some(call_id)
    };
    let ids: Vec<&CallId> =
        events.iter().filter(|e| proposed_as(e)).filter_map(|e| e.event.call_id.as_ref()).collect();
    events
        .iter()
        .filter(|e| {
            e.event.call_id.as_ref().is_some_and(|id| id.as_str() == call_id || ids.contains(&id))
        })
        .map(|e| {
            (
                e.event.stage,
                e.event.verdict.as_str().to_owned(),
                e.event.reasons.first().map(|r| r.code.clone()),
            )
        })
        .collect()
}
