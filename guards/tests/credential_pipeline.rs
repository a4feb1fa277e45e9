//! Credentials in the pipeline: the guard checks the task's token at every call, write calls
//! carry a per-call token the tool server verifies itself, subagents run on narrowed tokens, and
//! the audit log names token ids, never tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::audit::{AuditLog, MemorySink};
use agent_core::model::{ScriptedCall, ScriptedModel, ScriptedTurn};
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{
    Agent, AgentId, CallContext, Credential, EffectClass, Pipeline, Scope, Task, TaskReport, Tool,
    ToolMenu, ToolName, ToolSpec,
};
use async_trait::async_trait;
use guards::credentials::{CallTokens, CredentialGuard, Verifier};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use support::*;

/// A tool that, like a real tool server, verifies the credential it receives before acting.
struct CheckingTool {
    spec: ToolSpec,
    server: Arc<Verifier>,
    accepted: Arc<Mutex<Vec<Value>>>,
    received: Arc<Mutex<Vec<Credential>>>,
}

impl CheckingTool {
    fn new(name: &str, scope: &str, effect: EffectClass, server: &Arc<Verifier>) -> Self {
        let schema = json!({"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                            "required": ["order_id"], "additionalProperties": false});
        let spec =
            ToolSpec::new(ToolName::new(name).unwrap(), name, schema, Scope::new(scope).unwrap())
                .effect(effect);
        Self {
            spec,
            server: Arc::clone(server),
            accepted: Arc::default(),
            received: Arc::default(),
        }
    }
}

#[async_trait]
impl Tool for CheckingTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        let token = invocation
            .credential
            .clone()
            .ok_or_else(|| ToolError::Rejected("no credential".into()))?;
        self.received.lock().unwrap().push(token.clone());
        let checked = match self.spec.effect {
            EffectClass::Read => self.server.verify(token.expose(), AUDIENCE).map(|_| ()),
            _ => self
                .server
                .verify_call(token.expose(), AUDIENCE, self.spec.name.as_str(), &input)
                .map(|_| ()),
        };
        checked.map_err(|rejection| {
            ToolError::Rejected(format!("tool server refused: {}", rejection.code()))
        })?;
        self.accepted.lock().unwrap().push(input.clone());
        Ok(ToolOutput::json(&json!({"ok": true})))
    }
}

struct Desk {
    fx: Fixture,
    sink: Arc<MemorySink>,
    lookup: Arc<Mutex<Vec<Value>>>,
    refunds: Arc<Mutex<Vec<Value>>>,
    refund_tokens: Arc<Mutex<Vec<Credential>>>,
    pipeline: Arc<Pipeline>,
}

fn desk() -> Desk {
    let fx = Fixture::new();
    // The tool server has its own verifier, built from the published JWK set.
    let server = Arc::new(Verifier::from_jwks(ISSUER, &fx.issuer.jwks()).unwrap());
    let lookup = CheckingTool::new("get_order_details", "orders:read", EffectClass::Read, &server);
    let refund =
        CheckingTool::new("issue_refund", "refunds:write", EffectClass::Irreversible, &server);
    let (lookups, refunds, refund_tokens) =
        (Arc::clone(&lookup.accepted), Arc::clone(&refund.accepted), Arc::clone(&refund.received));
    let menu = ToolMenu::new([Arc::new(lookup) as Arc<dyn Tool>, Arc::new(refund)]).unwrap();
    let sink = Arc::new(MemorySink::new());
    let pipeline = Pipeline::new(Arc::new(menu), AuditLog::new(sink.clone()))
        .with_guard(Arc::new(CredentialGuard::new(
            Arc::new(fx.issuer.verifier().unwrap()),
            AUDIENCE,
        )))
        .with_call_credentials(Arc::new(CallTokens::new(Arc::clone(&fx.issuer), AUDIENCE)));
    Desk { fx, sink, lookup: lookups, refunds, refund_tokens, pipeline: Arc::new(pipeline) }
}

fn model(calls: Vec<ScriptedCall>) -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::new(vec![ScriptedTurn::tools(calls), ScriptedTurn::text("done")]))
}

fn refund_calls() -> Vec<ScriptedCall> {
    vec![
        ScriptedCall::new("get_order_details", json!({"order_id": "#W1001"})),
        ScriptedCall::new("issue_refund", json!({"order_id": "#W1001", "amount": 20})),
    ]
}

async fn run(desk: &Desk, agent: &str, task: Task, calls: Vec<ScriptedCall>) -> TaskReport {
    Agent::builder(AgentId::new(agent), model(calls), Arc::clone(&desk.pipeline))
        .build()
        .run(task)
        .await
}

fn denial_codes(report: &TaskReport) -> Vec<String> {
    report
        .denied()
        .map(|call| match &call.outcome {
            agent_core::agent::CallOutcome::Denied(denied) => denied.reason.code.clone(),
            _ => unreachable!(),
        })
        .collect()
}

fn ticket(desk: &Desk, scopes: &[&str]) -> Task {
    let token = desk.fx.issuer.mint_task(&desk.fx.grant(scopes)).unwrap();
    Task::new("T-1001", "Resolve the ticket.").on_behalf_of("noah_brown_6181").credential(token)
}

#[tokio::test]
async fn a_task_token_with_the_right_scopes_runs_reads_and_writes_end_to_end() {
    let desk = desk();
    let report =
        run(&desk, "refund-bot", ticket(&desk, &["orders:read", "refunds:write"]), refund_calls())
            .await;
    assert_eq!(report.executed().count(), 2, "{:?}", report.calls);
    assert_eq!(desk.lookup.lock().unwrap().len(), 1);
    assert_eq!(desk.refunds.lock().unwrap().len(), 1);
    // The write went out with a per-call token, not the task token.
    let sent = desk.refund_tokens.lock().unwrap()[0].clone();
    let claims = desk.fx.claims_of(&sent);
    assert_eq!(claims["tool"], "issue_refund");
    assert_eq!(claims["scope"], "refunds:write");
}

#[tokio::test]
async fn a_missing_scope_denies_the_call_before_it_runs() {
    let desk = desk();
    let report = run(&desk, "refund-bot", ticket(&desk, &["orders:read"]), refund_calls()).await;
    assert_eq!(denial_codes(&report), ["scope_missing"]);
    assert!(desk.refunds.lock().unwrap().is_empty());
    // Positive control: the same calls with the refund scope granted run.
    let report =
        run(&desk, "refund-bot", ticket(&desk, &["orders:read", "refunds:write"]), refund_calls())
            .await;
    assert!(denial_codes(&report).is_empty());
    assert_eq!(desk.refunds.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_token_of_another_task_agent_or_customer_is_refused() {
    let desk = desk();
    let scopes = &["orders:read", "refunds:write"];
    // Another task's token, smuggled into this task.
    let other_task = desk.fx.issuer.mint_task(&desk.fx.grant_for("T-9999", scopes)).unwrap();
    let task = Task::new("T-1001", "x").on_behalf_of("noah_brown_6181").credential(other_task);
    assert_eq!(
        denial_codes(&run(&desk, "refund-bot", task, refund_calls()).await),
        ["wrong_task", "wrong_task"]
    );
    // This task's token, presented by another agent.
    let report = run(&desk, "mail-bot", ticket(&desk, scopes), refund_calls()).await;
    assert_eq!(denial_codes(&report), ["wrong_agent", "wrong_agent"]);
    // This task's token, in a task serving another customer.
    let token = desk.fx.issuer.mint_task(&desk.fx.grant(scopes)).unwrap();
    let task = Task::new("T-1001", "x").on_behalf_of("ava_lee_2290").credential(token);
    assert_eq!(
        denial_codes(&run(&desk, "refund-bot", task, refund_calls()).await),
        ["wrong_customer", "wrong_customer"]
    );
    // No token at all.
    let task = Task::new("T-1001", "x").on_behalf_of("noah_brown_6181");
    assert_eq!(
        denial_codes(&run(&desk, "refund-bot", task, refund_calls()).await),
        ["no_credential", "no_credential"]
    );
    assert!(desk.lookup.lock().unwrap().is_empty() && desk.refunds.lock().unwrap().is_empty());
    // Positive control: the right agent, task, customer and token.
    let report = run(&desk, "refund-bot", ticket(&desk, scopes), refund_calls()).await;
    assert!(denial_codes(&report).is_empty());
    assert_eq!(desk.refunds.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn revoking_the_task_stops_its_next_call() {
    let desk = desk();
    let revocations = Arc::new(guards::credentials::Revocations::new());
    let guard_verifier =
        desk.fx.issuer.verifier().unwrap().with_revocations(Arc::clone(&revocations));
    let pipeline = desk
        .pipeline
        .for_menu(Arc::clone(desk.pipeline.menu()))
        .with_guard(Arc::new(CredentialGuard::new(Arc::new(guard_verifier), AUDIENCE)));
    let task = ticket(&desk, &["orders:read", "refunds:write"]);
    let call = |id: &str| agent_core::pipeline::CallRequest {
        proposer_id: Some(id.to_string()),
        tool: "get_order_details".into(),
        input: json!({"order_id": "#W1001"}),
        stated_reason: String::new(),
    };
    let mut ctx = CallContext::new("refund-bot".into(), "T-1001".into());
    ctx.on_behalf_of = task.on_behalf_of.clone();
    ctx.credential = task.credential.clone();
    assert!(pipeline.authorize(&call("c1"), &ctx).await.is_ok());
    revocations.revoke_task("T-1001");
    assert_eq!(pipeline.authorize(&call("c2"), &ctx).await.unwrap_err().reason.code, "revoked");
}

#[tokio::test]
async fn the_tool_server_refuses_a_replayed_or_rebound_call_token() {
    let desk = desk();
    let report =
        run(&desk, "refund-bot", ticket(&desk, &["orders:read", "refunds:write"]), refund_calls())
            .await;
    assert_eq!(report.executed().count(), 2);
    let token = desk.refund_tokens.lock().unwrap()[0].clone();
    // An attacker who captured the per-call token replays it, then reuses it for a bigger refund.
    let server = Verifier::from_jwks(ISSUER, &desk.fx.issuer.jwks()).unwrap();
    let same = json!({"order_id": "#W1001", "amount": 20});
    assert!(
        server.verify_call(token.expose(), AUDIENCE, "issue_refund", &same).is_ok(),
        "first use on a fresh server"
    );
    assert_eq!(
        server.verify_call(token.expose(), AUDIENCE, "issue_refund", &same).unwrap_err().code(),
        "replayed"
    );
    let bigger = json!({"order_id": "#W1001", "amount": 2000});
    let fresh_server = Verifier::from_jwks(ISSUER, &desk.fx.issuer.jwks()).unwrap();
    assert_eq!(
        fresh_server
            .verify_call(token.expose(), AUDIENCE, "issue_refund", &bigger)
            .unwrap_err()
            .code(),
        "args_mismatch"
    );
}

#[tokio::test]
async fn audit_events_name_the_token_id_never_the_token() {
    let desk = desk();
    let task = ticket(&desk, &["orders:read"]);
    let token = task.credential.clone().unwrap();
    let jti = desk.fx.claims_of(&token)["jti"].as_str().unwrap().to_owned();
    run(&desk, "refund-bot", task, refund_calls()).await;
    let log = serde_json::to_string(&desk.sink.events()).unwrap();
    assert!(!log.contains(token.expose()), "a token reached the audit log");
    let signature = token.expose().rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
    assert!(log.contains(&jti), "the refusal should name the token's jti");
    assert!(log.contains("scope_missing"));
}

#[tokio::test]
async fn a_subagent_gets_a_subset_of_the_menu_and_a_narrowed_token_and_is_audited_with_its_chain() {
    let desk = desk();
    let parent_task = ticket(&desk, &["orders:read", "refunds:write"]);
    let parent =
        Agent::builder(AgentId::new("refund-bot"), model(vec![]), Arc::clone(&desk.pipeline))
            .build();

    // A subagent cannot hold a tool its parent lacks, nor a scope its parent's token lacks.
    let error =
        parent.subagent(AgentId::new("helper"), model(vec![]), ["send_email"]).err().unwrap();
    assert!(error.to_string().contains("not on the parent's menu"));
    let helper = parent
        .subagent(AgentId::new("helper"), model(refund_calls()), ["get_order_details"])
        .unwrap()
        .build();
    let wider = parent_task.delegate(
        &helper,
        desk.fx.issuer.as_ref(),
        &[Scope::new("accounts:delete").unwrap()],
        "x",
    );
    assert_eq!(wider.unwrap_err().code, "scope_escalation");

    // Positive control: the narrowed task runs its read; its attempt at a refund is refused (the
    // tool is not on its menu), and every event carries the whole chain.
    let sub_task = parent_task
        .delegate(
            &helper,
            desk.fx.issuer.as_ref(),
            &[Scope::new("orders:read").unwrap()],
            "Look up the order.",
        )
        .unwrap();
    let report = helper.run(sub_task).await;
    assert_eq!(report.executed().count(), 1);
    assert_eq!(denial_codes(&report), ["unknown_tool"]);
    let chains: Vec<Vec<AgentId>> =
        desk.sink.events().iter().map(|event| event.event.chain.clone()).collect();
    assert!(
        chains.iter().all(|chain| *chain == [AgentId::new("refund-bot"), AgentId::new("helper")])
    );

    // The parent's own token does not work for the helper (the chain does not match), and the
    // helper's narrowed token cannot be used by the parent.
    let stolen = Task::new("T-1001/helper", "x")
        .on_behalf_of("noah_brown_6181")
        .credential(parent_task.credential.clone().unwrap());
    let helper_again = parent
        .subagent(AgentId::new("helper"), model(refund_calls()), ["get_order_details"])
        .unwrap()
        .build();
    let report = helper_again.run(stolen).await;
    assert_eq!(denial_codes(&report), ["wrong_agent", "unknown_tool"]);
}

/// Asks a human about every refund.
struct AsksForRefunds;

impl agent_core::Guard for AsksForRefunds {
    fn name(&self) -> &str {
        "policy"
    }
    fn check(
        &self,
        call: &agent_core::ProposedCall<'_>,
        _ctx: &CallContext,
    ) -> agent_core::Decision {
        if call.spec.name.as_str() == "issue_refund" {
            agent_core::Decision::NeedsApproval(agent_core::guard::ApprovalNeed {
                reason: agent_core::Reason::new("refund", "refunds need a human"),
                policies: vec![],
            })
        } else {
            agent_core::Decision::Allow
        }
    }
}

/// Says yes, after something happens to the task while the reviewer reads: its token is revoked
/// (the task was ended), or time passes.
struct SlowReviewer {
    revoke: Option<Arc<guards::credentials::Revocations>>,
    reads_for: std::time::Duration,
}

#[async_trait]
impl agent_core::Approver for SlowReviewer {
    async fn decide(&self, request: agent_core::ApprovalRequest) -> agent_core::ApprovalAnswer {
        if let Some(revocations) = &self.revoke {
            revocations.revoke_task(request.task.as_str());
        }
        tokio::time::sleep(self.reads_for).await;
        agent_core::ApprovalAnswer::Approved(agent_core::ApprovalGrant::for_request(
            &request, "alice", "test",
        ))
    }
}

/// A pipeline whose refunds need a human answered by `reviewer`, with a credential guard that
/// sees `revocations` and no clock leeway; and the context of task T-1001 with a token of
/// `lifetime`.
fn waiting_desk(
    revocations: &Arc<guards::credentials::Revocations>,
    reviewer: SlowReviewer,
    lifetime: Option<std::time::Duration>,
) -> (Desk, Pipeline, CallContext) {
    let desk = desk();
    let verifier =
        desk.fx.issuer.verifier().unwrap().with_revocations(Arc::clone(revocations)).with_leeway(0);
    let pipeline =
        Pipeline::new(Arc::clone(desk.pipeline.menu()), AuditLog::new(desk.sink.clone()))
            .with_guard(Arc::new(CredentialGuard::new(Arc::new(verifier), AUDIENCE)))
            .with_guard(Arc::new(AsksForRefunds))
            .with_approver(Arc::new(reviewer), std::time::Duration::from_secs(30))
            .with_call_credentials(Arc::new(CallTokens::new(
                Arc::clone(&desk.fx.issuer),
                AUDIENCE,
            )));
    let mut grant = desk.fx.grant_for("T-1001", &["orders:read", "refunds:write"]);
    grant.on_behalf_of = Some("noah_brown_6181".into());
    grant.lifetime = lifetime;
    let token = desk.fx.issuer.mint_task(&grant).unwrap();
    let mut ctx = CallContext::new("refund-bot".into(), "T-1001".into());
    ctx.on_behalf_of = Some("noah_brown_6181".into());
    ctx.credential = Some(token);
    (desk, pipeline, ctx)
}

fn big_refund() -> agent_core::pipeline::CallRequest {
    agent_core::pipeline::CallRequest::new(
        "issue_refund",
        json!({"order_id": "#W1001", "amount": 500}),
    )
    .proposed_as("toolu_1")
}

/// Checks the call was refused after the wait with `code`, on record, with no intent and no run.
fn refused_after_the_wait(desk: &Desk, denied: &agent_core::Denied, code: &str) {
    assert_eq!(denied.reason.code, code, "{denied:?}");
    assert_eq!(denied.stage, agent_core::audit::Stage::Guard);
    assert!(denied.approval_wait.is_some(), "refused after the wait: {denied:?}");
    let events = desk.sink.events();
    let refusal = events
        .iter()
        .find(|e| e.event.detail.get("after_approval_wait_ms").is_some())
        .expect("the refusal after the wait is on record");
    assert_eq!(refusal.event.reasons[0].code, code);
    assert!(
        events.iter().all(|e| e.event.stage != agent_core::audit::Stage::Intent),
        "no intent record for a call refused after the wait"
    );
    assert!(desk.refunds.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_task_revoked_while_its_reviewer_reads_is_refused_after_the_yes() {
    // The attack: the task is ended (its token revoked) while a reviewer reads; the yes arrives
    // later and the call must not run on a dead task's authority.
    let revocations = Arc::new(guards::credentials::Revocations::new());
    let reviewer = SlowReviewer {
        revoke: Some(Arc::clone(&revocations)),
        reads_for: std::time::Duration::ZERO,
    };
    let (desk, pipeline, ctx) = waiting_desk(&revocations, reviewer, None);
    let denied = pipeline.authorize(&big_refund(), &ctx).await.unwrap_err();
    refused_after_the_wait(&desk, &denied, "revoked");

    // Positive control: the same yes without the revocation lets the refund run.
    let revocations = Arc::new(guards::credentials::Revocations::new());
    let reviewer = SlowReviewer { revoke: None, reads_for: std::time::Duration::ZERO };
    let (desk, pipeline, ctx) = waiting_desk(&revocations, reviewer, None);
    let authorized = pipeline.authorize(&big_refund(), &ctx).await.unwrap();
    pipeline.menu().invoke(authorized).await.unwrap();
    assert_eq!(desk.refunds.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_task_token_that_expires_while_its_reviewer_reads_is_refused_after_the_yes() {
    // A one-second token and a reviewer who takes two: the yes comes after the task's time.
    let revocations = Arc::new(guards::credentials::Revocations::new());
    let reviewer = SlowReviewer { revoke: None, reads_for: std::time::Duration::from_millis(2100) };
    let lifetime = Some(std::time::Duration::from_secs(1));
    let (desk, pipeline, ctx) = waiting_desk(&revocations, reviewer, lifetime);
    let denied = pipeline.authorize(&big_refund(), &ctx).await.unwrap_err();
    refused_after_the_wait(&desk, &denied, "expired");
}
