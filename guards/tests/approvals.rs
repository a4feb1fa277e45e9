//! Approvals end to end: what the reviewer is shown, every answer recorded and signed, each kind
//! of no distinct in the log, forged records refused, and the approval load of a task.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::approval::{ApprovalAnswer, ApprovalRecord, ApprovalRequest, ScriptedAnswer};
use agent_core::audit::{AuditLog, MemorySink, SealedEvent, Stage};
use agent_core::guard::CallContext;
use agent_core::model::{ScriptedCall, ScriptedModel, ScriptedTurn};
use agent_core::pipeline::CallRequest;
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{
    Agent, Approver, EffectClass, Pipeline, Scope, ScriptedApprover, Task, Tool, ToolMenu,
    ToolName, ToolSpec,
};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guards::budget::{BudgetStore, Limits};
use guards::notary::{IssuerNotary, verify_approval};
use guards::policy::{PolicyBundle, PolicyGuard, StaticEntities};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

struct Refund(ToolSpec, Arc<Mutex<Vec<Value>>>);

#[async_trait]
impl Tool for Refund {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    async fn call(&self, input: Value, _: &Invocation) -> Result<ToolOutput, ToolError> {
        self.1.lock().unwrap().push(input);
        Ok(ToolOutput::text("refunded"))
    }
}

struct Desk {
    fx: Fixture,
    sink: Arc<MemorySink>,
    runs: Arc<Mutex<Vec<Value>>>,
    budget: Arc<BudgetStore>,
    pipeline: Arc<Pipeline>,
}

fn desk(approver: Arc<dyn Approver>, timeout: Duration) -> Desk {
    let fx = Fixture::new();
    let policy_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/refund-bot/policy");
    let bundle = Arc::new(PolicyBundle::load(policy_dir.join("policy.toml")).unwrap());
    // Every refund here is of exactly the price of unrefunded items, as a desk would derive.
    let item_refund = guards::policy::DerivedFacts {
        money_cents: None,
        facts: json!({
            "items_on_order": true, "items_untouched": true, "items_price_cents": 1_000_000,
            "items_refundable_cents": 1_000_000, "amount_is_unrefunded_items": true,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    };
    let entities = Arc::new(
        StaticEntities::from_file(&policy_dir.join("fixtures.json"))
            .unwrap()
            .deriving("issue_refund", item_refund),
    );
    let schema = json!({"type": "object"});
    let spec = ToolSpec::new(
        ToolName::new("issue_refund").unwrap(),
        "refund",
        schema,
        Scope::new("refunds:write").unwrap(),
    )
    .effect(EffectClass::Irreversible)
    .touches("Order", "order_id")
    .moves_money("amount");
    let runs = Arc::default();
    let menu = ToolMenu::new([Arc::new(Refund(spec, Arc::clone(&runs))) as Arc<dyn Tool>]).unwrap();
    let sink = Arc::new(MemorySink::new());
    let budget = Arc::new(BudgetStore::in_memory().unwrap());
    let pipeline = Pipeline::new(Arc::new(menu), AuditLog::new(sink.clone()))
        .with_guard(Arc::new(
            PolicyGuard::new(bundle, entities).with_budget(budget.clone(), Limits::default()),
        ))
        .with_approver(approver, timeout)
        .with_notary(Arc::new(IssuerNotary::new(Arc::clone(&fx.issuer))));
    Desk { fx, sink, runs, budget, pipeline: Arc::new(pipeline) }
}

fn ticket_context(task: &str) -> CallContext {
    let mut ctx = CallContext::new("refund-bot".into(), task.into());
    ctx.on_behalf_of = Some("noah_brown_6181".into());
    ctx.add_untrusted("ticket", "please refund me 110 dollars");
    ctx
}

fn large_refund(id: &str) -> CallRequest {
    CallRequest {
        proposer_id: Some(id.to_string()),
        tool: "issue_refund".into(),
        input: json!({"order_id": "#W1001", "amount": 110, "reason": "the ticket asks"}),
        stated_reason: "The customer asked for $110.".into(),
    }
}

fn approval_event(events: &[SealedEvent]) -> SealedEvent {
    events
        .iter()
        .find(|event| event.event.stage == Stage::Approval)
        .cloned()
        .expect("an approval event")
}

fn signed_record(desk: &Desk) -> (ApprovalRecord, Value) {
    let event = approval_event(&desk.sink.events());
    let signature = event.event.detail["signature"].clone();
    (verify_approval(&signature, &desk.fx.verifier).unwrap(), signature)
}

#[tokio::test]
async fn the_reviewer_sees_the_arguments_their_provenance_the_policies_and_the_budget() {
    let approver = ScriptedApprover::new(ScriptedAnswer::Approve);
    let desk = desk(Arc::new(approver.clone()), Duration::from_secs(5));
    let authorized =
        desk.pipeline.authorize(&large_refund("c1"), &ticket_context("T-1")).await.unwrap();
    desk.pipeline.menu().invoke(authorized).await.unwrap();

    let asked: ApprovalRequest = approver.requests().pop().unwrap();
    assert_eq!(
        asked.args,
        json!({"order_id": "#W1001", "amount": 110, "reason": "the ticket asks"})
    );
    assert_eq!(asked.args_digest, agent_core::canonical::digest(&asked.args));
    assert_eq!(asked.stated_reason, "The customer asked for $110.");
    assert_eq!(asked.on_behalf_of.as_deref(), Some("noah_brown_6181"));
    assert_eq!(asked.needs[0].policies, ["refund_with_approval"]);
    let policy = &asked.evidence["policy"];
    assert_eq!(
        policy["argument_provenance"]["amount"],
        json!({"origin": "untrusted_only", "sources": ["ticket"]})
    );
    assert_eq!(policy["usage"]["task"]["money_cents"], 0);
    assert!(!asked.expires_at.is_empty());
    assert_eq!(desk.runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn every_yes_is_recorded_and_signed_by_the_runtime() {
    let desk =
        desk(Arc::new(ScriptedApprover::new(ScriptedAnswer::Approve)), Duration::from_secs(5));
    let authorized =
        desk.pipeline.authorize(&large_refund("c1"), &ticket_context("T-2")).await.unwrap();
    assert!(authorized.approval_wait().is_some());
    let (record, _) = signed_record(&desk);
    assert_eq!(record.decision, "approved");
    // The request is named by the runtime's id for the call, never the model's `c1`.
    assert_eq!(record.request_id, format!("T-2/{}", authorized.invocation().call_id));
    assert!(!record.request_id.contains("c1"));
    assert_eq!(record.args_digest, agent_core::canonical::digest(&large_refund("c1").input));
    assert_eq!(
        (record.approver.as_deref(), record.channel.as_deref()),
        (Some("script"), Some("scripted"))
    );
}

#[tokio::test]
async fn a_forged_approval_record_fails_verification() {
    let desk = desk(Arc::new(ScriptedApprover::new(ScriptedAnswer::Deny)), Duration::from_secs(5));
    let _ = desk.pipeline.authorize(&large_refund("c1"), &ticket_context("T-3")).await.unwrap_err();
    let (record, signature) = signed_record(&desk);
    assert_eq!(record.decision, "denied");

    // Someone edits the log to turn the no into a yes: the signature no longer matches.
    let mut payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(signature["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    payload["document"]["decision"] = json!("approved");
    let mut forged = signature.clone();
    forged["payload"] = json!(URL_SAFE_NO_PAD.encode(payload.to_string()));
    assert_eq!(verify_approval(&forged, &desk.fx.verifier).unwrap_err().code(), "bad_signature");

    // A record signed with another key does not verify against the runtime's.
    let rogue = Fixture::new();
    let elsewhere = IssuerNotary::new(Arc::clone(&rogue.issuer));
    let elsewhere = agent_core::approval::ApprovalNotary::sign(&elsewhere, &record).unwrap();
    assert_eq!(verify_approval(&elsewhere, &desk.fx.verifier).unwrap_err().code(), "unknown_key");

    // A task token is not an approval record, and an approval record is not a token.
    let token = desk.fx.issuer.mint_task(&desk.fx.grant(&["refunds:write"])).unwrap();
    let parts: Vec<&str> = token.expose().split('.').collect();
    let as_record = json!({"protected": parts[0], "payload": parts[1], "signature": parts[2]});
    assert!(verify_approval(&as_record, &desk.fx.verifier).is_err());
    let compact = format!(
        "{}.{}.{}",
        signature["protected"].as_str().unwrap(),
        signature["payload"].as_str().unwrap(),
        signature["signature"].as_str().unwrap()
    );
    assert_eq!(desk.fx.verifier.verify(&compact, AUDIENCE).unwrap_err().code(), "malformed_token");
}

#[tokio::test]
async fn a_denied_request_denies_runs_nothing_and_gives_the_budget_back() {
    let desk = desk(Arc::new(ScriptedApprover::new(ScriptedAnswer::Deny)), Duration::from_secs(5));
    let denied =
        desk.pipeline.authorize(&large_refund("c1"), &ticket_context("T-4")).await.unwrap_err();
    assert_eq!(denied.reason.code, "denied");
    assert!(denied.approval_wait.is_some());
    assert!(desk.runs.lock().unwrap().is_empty());
    let day = {
        let now = time::OffsetDateTime::now_utc();
        format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
    };
    let usage = desk.budget.usage("T-4", "refund-bot", Some("noah_brown_6181"), &day).unwrap();
    assert_eq!(usage.task.money_cents, 0);
}

#[tokio::test(start_paused = true)]
async fn silence_is_recorded_as_expired_not_as_denied() {
    let desk =
        desk(Arc::new(ScriptedApprover::new(ScriptedAnswer::Timeout)), Duration::from_secs(60));
    let denied =
        desk.pipeline.authorize(&large_refund("c1"), &ticket_context("T-5")).await.unwrap_err();
    assert_eq!(denied.reason.code, "expired");
    let (record, _) = signed_record(&desk);
    assert_eq!(record.decision, "expired");
    assert_eq!(record.approver, None);
    assert!(desk.runs.lock().unwrap().is_empty());
}

struct Crashing;

#[async_trait]
impl Approver for Crashing {
    async fn decide(&self, _request: ApprovalRequest) -> ApprovalAnswer {
        panic!("the console's process died")
    }
}

#[tokio::test]
async fn a_crashed_channel_is_recorded_as_channel_failed() {
    let desk = desk(Arc::new(Crashing), Duration::from_secs(5));
    let denied =
        desk.pipeline.authorize(&large_refund("c1"), &ticket_context("T-6")).await.unwrap_err();
    assert_eq!(denied.reason.code, "channel_failed");
    assert_eq!(signed_record(&desk).0.decision, "channel_failed");
    assert!(desk.runs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_task_report_counts_the_approvals_asked_and_their_waits() {
    let desk =
        desk(Arc::new(ScriptedApprover::new(ScriptedAnswer::Approve)), Duration::from_secs(5));
    let model = Arc::new(ScriptedModel::new(vec![
        ScriptedTurn::tools(vec![
            ScriptedCall::new(
                "issue_refund",
                json!({"order_id": "#W1001", "amount": 5, "reason": "small"}),
            ),
            ScriptedCall::new(
                "issue_refund",
                json!({"order_id": "#W1003", "amount": 150, "reason": "one"}),
            ),
            ScriptedCall::new(
                "issue_refund",
                json!({"order_id": "#W1003", "amount": 160, "reason": "two"}),
            ),
        ]),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder("refund-bot".into(), model, Arc::clone(&desk.pipeline)).build();
    let report = agent.run(Task::new("T-7", "Resolve.").on_behalf_of("noah_brown_6181")).await;
    // Two large refunds went to the reviewer, the small one did not.
    assert_eq!(report.approvals().len(), 2);
    assert_eq!(report.executed().count(), 3);
}
