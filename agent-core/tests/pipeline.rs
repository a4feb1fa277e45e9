//! The pipeline's guarantees, each shown as the attack or failure it stops, with a positive
//! control that the same call runs when nothing stops it.

// Helpers and fakes here are test code too: a failed unwrap or a panic is a failed test.
// (clippy's allow-*-in-tests settings cover only `#[test]` functions, not their helpers.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::approval::{ApprovalAnswer, ApprovalGrant, ApprovalRequest, ScriptedAnswer};
use agent_core::audit::{AuditLog, MemorySink, Stage};
use agent_core::{Approver, EffectClass, Pipeline, ScriptedApprover, Tool, ToolError, ToolMenu};
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn menu_of(tools: Vec<Arc<dyn Tool>>) -> Arc<ToolMenu> {
    Arc::new(ToolMenu::new(tools).unwrap())
}

#[tokio::test]
async fn a_tool_on_the_menu_runs_after_a_durable_intent_record() {
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("lookup_order", EffectClass::Read, &timeline);
    let runs = tool.runs();
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log);

    let authorized = pipeline
        .authorize(&request("c1", "lookup_order", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap();
    let output = pipeline.menu().invoke(authorized).await.unwrap();

    assert!(output.content.contains("#W1"));
    assert_eq!(runs.lock().unwrap().len(), 1);
    assert_eq!(timeline.entries(), ["menu:c1", "schema:c1", "intent:c1", "run:c1", "outcome:c1"]);
    let events = sink.inner.events();
    assert_eq!(events.last().unwrap().event.verdict, agent_core::audit::Verdict::Succeeded);
}

#[tokio::test]
async fn a_tool_not_on_the_menu_is_never_executed() {
    let (timeline, sink, log) = timeline_log();
    let menu_tool = RecordingTool::new("lookup_order", EffectClass::Read, &timeline);
    // The dangerous tool exists in the process, but is not on this agent's menu.
    let off_menu =
        RecordingTool::new("delete_customer_account", EffectClass::Irreversible, &timeline);
    let off_menu_runs = off_menu.runs();
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(menu_tool)]), log);

    let denied = pipeline
        .authorize(&request("c1", "delete_customer_account", json!({"order_id": "u1"})), &context())
        .await
        .unwrap_err();

    assert_eq!(denied.stage, Stage::Menu);
    assert_eq!(denied.reason.code, "unknown_tool");
    assert!(off_menu_runs.lock().unwrap().is_empty());
    assert_eq!(
        verdicts_for(&sink.inner.events(), "c1"),
        [(Stage::Menu, "deny".into(), Some("unknown_tool".into()))]
    );
    assert!(!pipeline.menu().definitions().iter().any(|d| d.name == "delete_customer_account"));

    // Positive control: on a menu that holds it, the same call runs.
    let (_, _, log) = timeline_log();
    let exposed = Pipeline::new(menu_of(vec![Arc::new(off_menu)]), log);
    let authorized = exposed
        .authorize(&request("c1", "delete_customer_account", json!({"order_id": "u1"})), &context())
        .await
        .unwrap();
    exposed.menu().invoke(authorized).await.unwrap();
    assert_eq!(off_menu_runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_or_oversized_tool_names_are_refused_and_logged_truncated() {
    let (timeline, sink, log) = timeline_log();
    let pipeline = Pipeline::new(
        menu_of(vec![Arc::new(RecordingTool::new("a", EffectClass::Read, &timeline))]),
        log,
    );
    let long_name = "x".repeat(10_000);
    for name in ["", "a b", "../a", long_name.as_str()] {
        let denied = pipeline
            .authorize(&request("c", name, json!({"order_id": "1"})), &context())
            .await
            .unwrap_err();
        assert_eq!(denied.reason.code, "unknown_tool");
    }
    let logged = sink.inner.events().last().unwrap().event.tool.clone().unwrap();
    assert_eq!(logged.len(), 128);
}

#[tokio::test]
async fn schema_invalid_input_is_never_executed() {
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let guard = ScriptedGuard::new("policy");
    let guard_seen = Arc::clone(&guard.seen);
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log).with_guard(Arc::new(guard));

    let cases = [
        json!({"amount": 5}),                          // required field missing
        json!({"order_id": 42}),                       // wrong type
        json!({"order_id": "#W1", "amount": -5000}),   // below minimum
        json!({"order_id": "#W1", "to_card": "4111"}), // smuggled extra field
        json!("order #W1"),                            // not an object at all
    ];
    for (index, input) in cases.into_iter().enumerate() {
        let id = format!("c{index}");
        let denied =
            pipeline.authorize(&request(&id, "issue_refund", input), &context()).await.unwrap_err();
        assert_eq!((denied.stage, denied.reason.code.as_str()), (Stage::Schema, "schema_invalid"));
    }
    assert!(runs.lock().unwrap().is_empty());
    assert!(guard_seen.lock().unwrap().is_empty(), "guards never see invalid input");
    assert!(sink.inner.events().iter().all(|e| e.event.stage != Stage::Intent));

    // Positive control: a valid input runs.
    let ok = pipeline
        .authorize(
            &request("ok", "issue_refund", json!({"order_id": "#W1", "amount": 5})),
            &context(),
        )
        .await;
    pipeline.menu().invoke(ok.unwrap()).await.unwrap();
    assert_eq!(runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_guard_that_panics_denies() {
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("boom", Verdict::Panic)));

    let denied = pipeline
        .authorize(&request("boom", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap_err();
    assert_eq!(
        (denied.stage, denied.guard.as_deref(), denied.reason.code.as_str()),
        (Stage::Guard, Some("policy"), "guard_failed")
    );
    assert!(denied.reason.detail.contains("guard exploded"));
    assert!(runs.lock().unwrap().is_empty());
    assert_eq!(
        verdicts_for(&sink.inner.events(), "boom").last().unwrap().2.as_deref(),
        Some("guard_failed")
    );

    // Positive control: the same guard, for another call, lets it through.
    let fine = pipeline
        .authorize(&request("fine", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await;
    pipeline.menu().invoke(fine.unwrap()).await.unwrap();
    assert_eq!(runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_first_denial_stops_the_call_and_later_guards_are_not_asked() {
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let later = ScriptedGuard::new("budget");
    let later_seen = Arc::clone(&later.seen);
    let approver = ScriptedApprover::new(ScriptedAnswer::Approve);
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(Arc::new(ScriptedGuard::new("credential")))
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("c1", Verdict::Deny)))
        .with_guard(Arc::new(later))
        .with_approver(Arc::new(approver.clone()), Duration::from_secs(5));

    let denied = pipeline
        .authorize(&request("c1", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap_err();

    assert_eq!(denied.guard.as_deref(), Some("policy"));
    assert!(later_seen.lock().unwrap().is_empty());
    assert!(approver.requests().is_empty());
    let stages: Vec<_> =
        sink.inner.events().iter().map(|e| (e.event.stage, e.event.guard.clone())).collect();
    assert_eq!(
        stages,
        [
            (Stage::Menu, None),
            (Stage::Schema, None),
            (Stage::Guard, Some("credential".into())),
            (Stage::Guard, Some("policy".into())),
        ]
    );
}

#[tokio::test]
async fn the_model_sees_a_safe_sentence_and_the_log_keeps_the_detail() {
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("c1", Verdict::Deny)));
    let denied = pipeline
        .authorize(&request("c1", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap_err();
    let message = denied.model_message();
    assert!(message.contains("scripted_deny"));
    assert!(!message.contains("p7"), "policy internals must not reach the model: {message}");
    let logged = sink.inner.events().last().unwrap().event.reasons[0].clone();
    assert!(logged.detail.contains("p7"));
}

#[tokio::test]
async fn approval_is_asked_only_after_every_guard_and_its_yes_runs_the_call() {
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let approver = ScriptedApprover::new(ScriptedAnswer::Approve);
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(Arc::new(
            ScriptedGuard::new("policy").on("ask", Verdict::Ask).on("ask-then-deny", Verdict::Ask),
        ))
        .with_guard(Arc::new(ScriptedGuard::new("budget").on("ask-then-deny", Verdict::Deny)))
        .with_approver(Arc::new(approver.clone()), Duration::from_secs(5));

    // A later guard refuses: nobody is asked about a call that would be refused anyway.
    let denied = pipeline
        .authorize(
            &request("ask-then-deny", "issue_refund", json!({"order_id": "#W1", "amount": 900})),
            &context(),
        )
        .await
        .unwrap_err();
    assert_eq!(denied.guard.as_deref(), Some("budget"));
    assert!(approver.requests().is_empty());

    let authorized = pipeline
        .authorize(
            &request("ask", "issue_refund", json!({"order_id": "#W1", "amount": 900})),
            &context(),
        )
        .await
        .unwrap();
    let asked = approver.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].args, json!({"order_id": "#W1", "amount": 900}));
    assert_eq!(asked[0].needs[0].policies, ["p9"]);
    assert_eq!(asked[0].stated_reason, "because");
    assert_eq!(authorized.approval().unwrap().args_digest, asked[0].args_digest);
    pipeline.menu().invoke(authorized).await.unwrap();
    assert_eq!(runs.lock().unwrap().len(), 1);
    let verdicts = verdicts_for(&sink.inner.events(), "ask");
    assert!(verdicts.contains(&(
        Stage::Guard,
        "needs_approval".into(),
        Some("scripted_ask".into())
    )));
    assert!(verdicts.contains(&(Stage::Approval, "allow".into(), None)));
}

async fn refused_by(approver: Arc<dyn Approver>, timeout: Duration) -> (String, usize) {
    let (timeline, _sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("c1", Verdict::Ask)))
        .with_approver(approver, timeout);
    let result = pipeline
        .authorize(&request("c1", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await;
    let code = match result {
        Ok(authorized) => {
            pipeline.menu().invoke(authorized).await.unwrap();
            "allowed".to_owned()
        }
        Err(denied) => {
            assert_eq!(denied.stage, Stage::Approval);
            denied.reason.code
        }
    };
    let count = runs.lock().unwrap().len();
    (code, count)
}

#[tokio::test]
async fn a_refused_approval_denies() {
    let deny = Arc::new(ScriptedApprover::new(ScriptedAnswer::Deny));
    assert_eq!(refused_by(deny, Duration::from_secs(5)).await, ("denied".into(), 0));
    // Positive control.
    let approve = Arc::new(ScriptedApprover::new(ScriptedAnswer::Approve));
    assert_eq!(refused_by(approve, Duration::from_secs(5)).await, ("allowed".into(), 1));
}

#[tokio::test(start_paused = true)]
async fn silence_past_the_timeout_denies_as_expired() {
    let silent = Arc::new(ScriptedApprover::new(ScriptedAnswer::Timeout));
    assert_eq!(refused_by(silent, Duration::from_secs(30)).await, ("expired".into(), 0));
}

struct CrashingApprover;

#[async_trait]
impl Approver for CrashingApprover {
    async fn decide(&self, _request: ApprovalRequest) -> ApprovalAnswer {
        panic!("the approval console lost its database")
    }
}

#[tokio::test]
async fn a_crashed_approval_channel_denies() {
    assert_eq!(
        refused_by(Arc::new(CrashingApprover), Duration::from_secs(5)).await,
        ("channel_failed".into(), 0)
    );
}

/// An approver that says yes, but to other arguments than those it was shown.
struct LaunderingApprover;

#[async_trait]
impl Approver for LaunderingApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        let mut grant = ApprovalGrant::for_request(&request, "mallory", "scripted");
        grant.args_digest = agent_core::canonical::digest(&json!({"order_id": "#W1", "amount": 5}));
        ApprovalAnswer::Approved(grant)
    }
}

#[tokio::test]
async fn an_approval_for_other_arguments_does_not_authorize_this_call() {
    assert_eq!(
        refused_by(Arc::new(LaunderingApprover), Duration::from_secs(5)).await,
        ("approval_mismatch".into(), 0)
    );
}

/// An approver that remembers the first grant and hands it out again.
#[derive(Default)]
struct ReplayingApprover(std::sync::Mutex<Option<ApprovalGrant>>);

#[async_trait]
impl Approver for ReplayingApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        let mut kept = self.0.lock().unwrap();
        let grant =
            kept.get_or_insert_with(|| ApprovalGrant::for_request(&request, "alice", "scripted"));
        ApprovalAnswer::Approved(grant.clone())
    }
}

#[tokio::test]
async fn an_approval_is_single_use() {
    let (timeline, _sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("c1", Verdict::Ask)))
        .with_approver(Arc::new(ReplayingApprover::default()), Duration::from_secs(5));
    let call = request("c1", "issue_refund", json!({"order_id": "#W1", "amount": 900}));

    let first = pipeline.authorize(&call, &context()).await.unwrap();
    pipeline.menu().invoke(first).await.unwrap();
    // The model repeats the very same call (same id, same arguments): the old yes names the first
    // call's request (the runtime's id for it), so it authorizes nothing else.
    let second = pipeline.authorize(&call, &context()).await.unwrap_err();
    assert_eq!(second.reason.code, "approval_mismatch");
    assert_eq!(runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn without_an_approver_a_call_needing_approval_is_refused() {
    let (timeline, _sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("c1", Verdict::Ask)));
    let denied = pipeline
        .authorize(&request("c1", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap_err();
    assert_eq!(denied.reason.code, "no_approver");
}

#[tokio::test]
async fn an_audit_sink_that_fails_denies_and_the_tool_does_not_run() {
    for failing_stage in [Stage::Menu, Stage::Schema, Stage::Guard, Stage::Intent] {
        let timeline = Timeline::default();
        let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
        let runs = tool.runs();
        let sink = Arc::new(MemorySink::new());
        let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), AuditLog::new(sink.clone()))
            .with_guard(Arc::new(ScriptedGuard::new("policy")));
        let call = request("c1", "issue_refund", json!({"order_id": "#W1"}));

        // Positive control: with a working sink the call is authorized.
        assert!(pipeline.authorize(&call, &context()).await.is_ok());

        sink.fail_on(failing_stage);
        let denied = pipeline.authorize(&call, &context()).await.unwrap_err();
        assert_eq!(denied.reason.code, "audit_unavailable", "sink failing at {failing_stage:?}");
        assert_eq!(denied.stage, failing_stage);
        assert!(runs.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_authorization_from_one_menu_cannot_run_on_another() {
    let (timeline, _sink, log) = timeline_log();
    let tool: Arc<dyn Tool> =
        Arc::new(RecordingTool::new("lookup_order", EffectClass::Read, &timeline));
    let pipeline = Pipeline::new(menu_of(vec![Arc::clone(&tool)]), log);
    let other_menu = ToolMenu::new([tool]).unwrap();
    let authorized = pipeline
        .authorize(&request("c1", "lookup_order", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap();
    let error = other_menu.invoke(authorized).await.unwrap_err();
    assert!(matches!(error, ToolError::Internal(_)));
    assert!(!timeline.entries().iter().any(|entry| entry.starts_with("run:")));
}

#[tokio::test]
async fn a_tool_that_fails_or_panics_is_recorded_as_failed() {
    for (behaviour, code) in
        [(Behaviour::Reject, "tool_rejected"), (Behaviour::Panic, "tool_failed")]
    {
        let (timeline, sink, log) = timeline_log();
        let tool = RecordingTool::with("cancel_order", EffectClass::Write, &timeline, behaviour);
        let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log);
        let authorized = pipeline
            .authorize(&request("c1", "cancel_order", json!({"order_id": "#W1"})), &context())
            .await
            .unwrap();
        let error = pipeline.menu().invoke(authorized).await.unwrap_err();
        if let Behaviour::Reject = behaviour {
            assert_eq!(error.model_message(), "order is not pending");
        } else {
            assert_eq!(error.model_message(), "the tool failed; the failure was logged");
        }
        let last = verdicts_for(&sink.inner.events(), "c1").pop().unwrap();
        assert_eq!(last, (Stage::Outcome, "failed".into(), Some(code.into())));
    }
}

#[tokio::test]
async fn menus_refuse_broken_schemas_duplicates_and_wider_subsets() {
    use agent_core::{Scope, ToolName, ToolSpec};
    let timeline = Timeline::default();
    let a: Arc<dyn Tool> = Arc::new(RecordingTool::new("a", EffectClass::Read, &timeline));
    let b: Arc<dyn Tool> = Arc::new(RecordingTool::new("b", EffectClass::Write, &timeline));
    assert!(ToolMenu::new([Arc::clone(&a), Arc::clone(&a)]).is_err());

    struct Broken(ToolSpec);
    #[async_trait]
    impl Tool for Broken {
        fn spec(&self) -> &ToolSpec {
            &self.0
        }
        async fn call(
            &self,
            _: serde_json::Value,
            _: &agent_core::tool::Invocation,
        ) -> Result<agent_core::ToolOutput, ToolError> {
            unreachable!()
        }
    }
    for schema in
        [json!({"type": "string"}), json!({"type": "object", "properties": {"x": {"type": 12}}})]
    {
        let broken = Broken(ToolSpec::new(
            ToolName::new("broken").unwrap(),
            "",
            schema,
            Scope::new("x").unwrap(),
        ));
        let error = ToolMenu::new([Arc::new(broken) as Arc<dyn Tool>]).unwrap_err();
        assert!(error.to_string().contains("`broken` has an invalid input schema"), "{error}");
    }

    let parent = ToolMenu::new([a, b]).unwrap();
    let child = parent.subset(["a"]).unwrap();
    assert_eq!(child.definitions().len(), 1);
    assert!(!child.contains("b"));
    let wider = parent.subset(["a", "send_email"]).unwrap_err();
    assert_eq!(
        wider.to_string(),
        "tool `send_email` is not on the parent's menu, so a subagent cannot hold it"
    );
    assert!(ToolName::new("has space").is_err() && ToolName::new("x".repeat(65)).is_err());
}

/// A guard that reserves one unit per call it lets through and gives it back on release.
#[derive(Default)]
struct Reserving {
    reserved: std::sync::atomic::AtomicI64,
}

impl agent_core::Guard for Reserving {
    fn name(&self) -> &str {
        "budget"
    }
    fn check(
        &self,
        _call: &agent_core::ProposedCall<'_>,
        _ctx: &agent_core::CallContext,
    ) -> agent_core::Decision {
        self.reserved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        agent_core::Decision::Allow
    }
    fn check_explained(
        &self,
        call: &agent_core::ProposedCall<'_>,
        ctx: &agent_core::CallContext,
    ) -> (agent_core::Decision, serde_json::Value) {
        (
            self.check(call, ctx),
            json!({"reserved_after": self.reserved.load(std::sync::atomic::Ordering::SeqCst)}),
        )
    }
    fn release(&self, _call: &agent_core::ProposedCall<'_>, _ctx: &agent_core::CallContext) {
        self.reserved.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_reservation_is_released_when_a_later_stage_refuses_and_kept_when_the_call_runs() {
    use std::sync::atomic::Ordering::SeqCst;
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let budget = Arc::new(Reserving::default());
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(budget.clone())
        .with_guard(Arc::new(
            ScriptedGuard::new("policy").on("later-deny", Verdict::Deny).on("ask", Verdict::Ask),
        ))
        .with_approver(
            Arc::new(ScriptedApprover::new(ScriptedAnswer::Deny)),
            Duration::from_secs(5),
        );
    let input = json!({"order_id": "#W1"});

    // A later guard refuses: the reservation is given back.
    assert!(
        pipeline
            .authorize(&request("later-deny", "issue_refund", input.clone()), &context())
            .await
            .is_err()
    );
    assert_eq!(budget.reserved.load(SeqCst), 0);
    // The human says no: given back.
    assert!(
        pipeline
            .authorize(&request("ask", "issue_refund", input.clone()), &context())
            .await
            .is_err()
    );
    assert_eq!(budget.reserved.load(SeqCst), 0);
    // The call goes ahead: kept.
    let authorized =
        pipeline.authorize(&request("ok", "issue_refund", input), &context()).await.unwrap();
    pipeline.menu().invoke(authorized).await.unwrap();
    assert_eq!(budget.reserved.load(SeqCst), 1);
    // The guard's explanation is in its audit event.
    let explained = sink
        .inner
        .events()
        .iter()
        .rev()
        .find(|e| e.event.guard.as_deref() == Some("budget"))
        .unwrap()
        .clone();
    assert_eq!(explained.event.detail, json!({"reserved_after": 1}));
}

/// A guard that lets every call through and records, per call id, each time it was told the
/// call did not happen.
#[derive(Default)]
struct ReleaseRecorder {
    released: std::sync::Mutex<Vec<(String, String)>>,
}

impl ReleaseRecorder {
    /// `(call id, task)` of every release so far.
    fn released(&self) -> Vec<(String, String)> {
        self.released.lock().unwrap().clone()
    }
}

impl agent_core::Guard for ReleaseRecorder {
    fn name(&self) -> &str {
        "budget"
    }
    fn check(
        &self,
        _call: &agent_core::ProposedCall<'_>,
        _ctx: &agent_core::CallContext,
    ) -> agent_core::Decision {
        agent_core::Decision::Allow
    }
    fn release(&self, call: &agent_core::ProposedCall<'_>, ctx: &agent_core::CallContext) {
        let name = call.proposer_id.unwrap_or(call.id.as_str());
        self.released.lock().unwrap().push((name.to_owned(), ctx.task.to_string()));
    }
}

/// Authorizes and runs one `issue_refund` whose tool behaves as `behaviour`, with `recorder` as
/// the only guard; returns the error the tool gave, if any.
async fn run_refund(recorder: &Arc<ReleaseRecorder>, behaviour: Behaviour) -> Option<ToolError> {
    let (timeline, _sink, log) = timeline_log();
    let tool = RecordingTool::with("issue_refund", EffectClass::Irreversible, &timeline, behaviour);
    let runs = tool.runs();
    let pipeline =
        Pipeline::new(menu_of(vec![Arc::new(tool)]), log).with_guard(Arc::clone(recorder) as _);
    let call = request("c1", "issue_refund", json!({"order_id": "#W1", "amount": 40}));
    let authorized = pipeline.authorize(&call, &context()).await.unwrap();
    assert!(recorder.released().is_empty(), "nothing is released before the tool has run");
    let result = pipeline.menu().invoke(authorized).await;
    assert_eq!(runs.lock().unwrap().len(), 1, "the tool ran");
    result.err()
}

#[tokio::test]
async fn a_tool_that_rejects_the_call_gives_its_reservation_back() {
    let recorder = Arc::new(ReleaseRecorder::default());
    let error = run_refund(&recorder, Behaviour::Reject).await;
    assert!(matches!(error, Some(ToolError::Rejected(_))), "{error:?}");
    // Told once, about this call of this task.
    assert_eq!(recorder.released(), [("c1".to_owned(), "task-1".to_owned())]);
}

#[tokio::test]
async fn a_tool_that_succeeds_keeps_its_reservation() {
    let recorder = Arc::new(ReleaseRecorder::default());
    assert_eq!(run_refund(&recorder, Behaviour::Echo).await, None);
    assert_eq!(recorder.released(), []);
}

#[tokio::test]
async fn a_tool_that_fails_inside_or_panics_keeps_its_reservation() {
    // It may have done part of its work (the money may have left): fail closed, keep it spent.
    for behaviour in [Behaviour::Fail, Behaviour::Panic] {
        let recorder = Arc::new(ReleaseRecorder::default());
        let error = run_refund(&recorder, behaviour).await;
        assert!(matches!(error, Some(ToolError::Internal(_))), "{behaviour:?}: {error:?}");
        assert_eq!(recorder.released(), [], "{behaviour:?}");
    }
}

#[tokio::test]
async fn a_rejected_call_a_human_approved_gives_back_every_guards_reservation() {
    use std::sync::atomic::Ordering::SeqCst;
    let (timeline, _sink, log) = timeline_log();
    let tool = RecordingTool::with(
        "issue_refund",
        EffectClass::Irreversible,
        &timeline,
        Behaviour::Reject,
    );
    let budget = Arc::new(Reserving::default());
    let recorder = Arc::new(ReleaseRecorder::default());
    let approver = ScriptedApprover::new(ScriptedAnswer::Approve);
    let pipeline = Pipeline::new(menu_of(vec![Arc::new(tool)]), log)
        .with_guard(budget.clone())
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("c1", Verdict::Ask)))
        .with_guard(recorder.clone())
        .with_approver(Arc::new(approver.clone()), Duration::from_secs(5));
    let call = request("c1", "issue_refund", json!({"order_id": "#W1", "amount": 900}));

    let authorized = pipeline.authorize(&call, &context()).await.unwrap();
    assert_eq!(approver.requests().len(), 1);
    assert_eq!(budget.reserved.load(SeqCst), 1, "reserved while the call goes ahead");
    let error = pipeline.menu().invoke(authorized).await.unwrap_err();
    assert!(matches!(error, ToolError::Rejected(_)));
    assert_eq!(budget.reserved.load(SeqCst), 0, "the budget got its reservation back");
    assert_eq!(recorder.released().len(), 1, "so did every other guard that let it through");
}
