//! The pipeline's central property, over random call sequences and random guard verdicts:
//! a tool executes if and only if it is on the menu, its input is valid, every guard allowed it
//! and a human approved it where one was asked; and every execution has a durable intent record
//! before it in the log.

// Helpers and fakes here are test code too: a failed unwrap or a panic is a failed test.
// (clippy's allow-*-in-tests settings cover only `#[test]` functions, not their helpers.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::approval::{ApprovalAnswer, ApprovalGrant, ApprovalRequest};
use agent_core::guard::Reason;
use agent_core::model::{ScriptedCall, ScriptedModel, ScriptedTurn};
use agent_core::pipeline::DEFAULT_MAX_APPROVALS_PER_TASK;
use agent_core::{Agent, Approver, EffectClass, Pipeline, Task, TaskLimits, Tool, ToolMenu};
use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::*;

#[derive(Debug, Clone)]
struct Call {
    tool: &'static str,
    valid_input: bool,
    verdicts: [Verdict; 2],
    approve: bool,
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![4 => Just(Verdict::Allow), 2 => Just(Verdict::Deny), 2 => Just(Verdict::Ask), 1 => Just(Verdict::Panic)]
}

fn call() -> impl Strategy<Value = Call> {
    (
        prop_oneof![Just("lookup_order"), Just("issue_refund"), Just("delete_customer_account")],
        proptest::bool::weighted(0.8),
        [verdict(), verdict()],
        any::<bool>(),
    )
        .prop_map(|(tool, valid_input, verdicts, approve)| Call {
            tool,
            valid_input,
            verdicts,
            approve,
        })
}

/// Approves or refuses per call id, as the generated case says.
/// Answers by the model's id for the call, which it reads off the timeline (the request names
/// the runtime's id).
struct PerCallApprover(HashMap<String, bool>, Timeline);

#[async_trait]
impl Approver for PerCallApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        if self.0.get(&self.1.name(request.call_id.as_str())).copied().unwrap_or(false) {
            ApprovalAnswer::Approved(ApprovalGrant::for_request(&request, "prop", "scripted"))
        } else {
            ApprovalAnswer::Refused(Reason::new("denied", "no"))
        }
    }
}

/// Which calls should run, in order: every check allowed it, and if it needed a human, the
/// human was asked (at most [`DEFAULT_MAX_APPROVALS_PER_TASK`] times a task) and said yes; and
/// no human refused its tool earlier in the task (a no sticks, asked or not).
fn should_execute(calls: &[Call]) -> Vec<bool> {
    let mut asked = 0;
    let mut refused_tools: Vec<&str> = Vec::new();
    calls
        .iter()
        .map(|call| {
            let on_menu = call.tool != "delete_customer_account";
            let refused = call.verdicts.iter().any(|v| matches!(v, Verdict::Deny | Verdict::Panic));
            let asks = call.verdicts.contains(&Verdict::Ask);
            if !(on_menu && call.valid_input && !refused) || refused_tools.contains(&call.tool) {
                return false;
            }
            if !asks {
                return true;
            }
            if asked >= DEFAULT_MAX_APPROVALS_PER_TASK {
                return false;
            }
            asked += 1;
            if !call.approve {
                refused_tools.push(call.tool);
            }
            call.approve
        })
        .collect()
}

fn run_case(calls: &[Call], per_turn: usize) -> Result<(), TestCaseError> {
    let (timeline, _sink, log) = timeline_log();
    let read = RecordingTool::new("lookup_order", EffectClass::Read, &timeline);
    let write = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(read), Arc::new(write)];
    let mut first = ScriptedGuard::new("credential");
    let mut second = ScriptedGuard::new("policy");
    let mut approvals = HashMap::new();
    for (index, call) in calls.iter().enumerate() {
        let id = format!("toolu_scripted_{}", index + 1);
        first = first.on(&id, call.verdicts[0]);
        second = second.on(&id, call.verdicts[1]);
        approvals.insert(id, call.approve);
    }
    let pipeline = Pipeline::new(Arc::new(ToolMenu::new(tools).unwrap()), log)
        .with_guard(Arc::new(first))
        .with_guard(Arc::new(second))
        .with_approver(
            Arc::new(PerCallApprover(approvals, timeline.clone())),
            Duration::from_secs(5),
        );

    let scripted: Vec<ScriptedCall> = calls
        .iter()
        .map(|call| {
            let input =
                if call.valid_input { json!({"order_id": "#W1"}) } else { json!({"order": 1}) };
            ScriptedCall::new(call.tool, input)
        })
        .collect();
    let turns =
        scripted.chunks(per_turn).map(|chunk| ScriptedTurn::tools(chunk.to_vec())).collect();
    let agent = Agent::builder("a".into(), Arc::new(ScriptedModel::new(turns)), Arc::new(pipeline))
        .limits(TaskLimits { max_turns: 100, max_tool_calls: 100, ..TaskLimits::default() })
        .build();
    let task = Task::new("t", "go");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let report = runtime.block_on(agent.run(task));

    prop_assert_eq!(report.calls.len(), calls.len());
    let entries = timeline.entries();
    let expected = should_execute(calls);
    for (index, call) in calls.iter().enumerate() {
        let id = format!("toolu_scripted_{}", index + 1);
        let run_at = entries.iter().position(|entry| *entry == format!("run:{id}"));
        prop_assert_eq!(run_at.is_some(), expected[index], "call {} {:?}", id, call);
        if let Some(run_at) = run_at {
            let intent_at = entries.iter().position(|entry| *entry == format!("intent:{id}"));
            prop_assert!(intent_at.is_some_and(|at| at < run_at), "no intent before run of {}", id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_tool_executes_iff_every_check_allowed_it(calls in proptest::collection::vec(call(), 1..12), per_turn in 1usize..4) {
        run_case(&calls, per_turn)?;
    }
}
