//! The refund bot's budget ledger, end to end through the real runtime: what the desk's tool
//! refuses is given back, and the ledger outlives a run and is shared by runs open at once.
//!
//! Each test reads the ledger itself with [`BudgetStore`] (the file the settings named), so a
//! claim in a transcript counts for nothing. Each has a positive control: the same refund with
//! the spend left in the ledger, on a ledger of its own, or served as it is, goes the other way.
//! The give-back is checked over MCP too, where the tool's answer crosses a process boundary.

// Helpers and fakes here are test code too: a failed unwrap or a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::agent::CallOutcome;
use agent_core::approval::ScriptedAnswer;
use agent_core::audit::{SealedEvent, Stage};
use agent_core::model::{ScriptedModel, ScriptedTurn};
use agent_core::tool::Invocation;
use agent_core::{
    Model, ModelRequest, ModelResponse, ScriptedApprover, TaskReport, Tool, ToolError, ToolOutput,
    ToolSpec,
};
use async_trait::async_trait;
use guards::budget::{BudgetStore, Class, Limits, Spend, Usage, Verdict, today};
use refund_bot::manifest::{Manifest, ToolSource};
use refund_bot::queue::{Expect, QueueTicket, TicketKind};
use refund_bot::runtime::{Runtime, ServeTools, Settings};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use support::{is_call, manifest_in, policy_event, set};

/// The agent's id in the shipped manifest: the ledger counts per agent under it.
const AGENT: &str = "refund-bot";

/// A customer's delivered order of one item in `tools/data/demo-db.json`, nothing refunded yet.
struct Purchase {
    customer: &'static str,
    order: &'static str,
    item: &'static str,
    price: f64,
    cents: i64,
}

/// A T-shirt, $49.61: one refund of it fits the $100 a ticket may pay back without a human;
/// three reservations of it left behind would not.
const MATEO: Purchase = Purchase {
    customer: "mateo_kovacs_8096",
    order: "#W1444967",
    item: "9784523192",
    price: 49.61,
    cents: 49_61,
};

/// A T-shirt, $44.14.
const LEI: Purchase = Purchase {
    customer: "lei_davis_7634",
    order: "#W4825862",
    item: "3946337357",
    price: 44.14,
    cents: 44_14,
};

/// A portable charger, $30.31: under a $60 daily cap once, over it twice.
const CHARGER: Purchase = Purchase {
    customer: "mateo_nelson_7481",
    order: "#W8207524",
    item: "4717891900",
    price: 30.31,
    cents: 30_31,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_the_desk_refuses_give_their_spend_back_and_an_honest_refund_then_needs_no_human() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let reviewer = ScriptedApprover::new(ScriptedAnswer::Deny);
    let ticket = ticket("T-3001", &MATEO);
    let runtime =
        start(dir.path(), manifest(dir.path(), None), &ledger, "run", &reviewer, &ticket).await;
    let task = runtime.task_id(&ticket.id);

    // Three refunds the policy lets through (each the item's price, rounded to cents, from our
    // records) and the desk's tool then refuses; then the honest one. Left spent, the three
    // would put the task at $148.83 and the honest refund past the $100 a ticket may pay back
    // without a human. (A refund above what is left of the item, or on a pending order, would
    // not do: the policy forbids those, `refund_exceeds_items` and `refund_not_delivered`,
    // before anything is spent, so they never reach the tool.)
    let refund = |amount: f64, reason: &str| {
        ScriptedTurn::tool(
            "issue_refund",
            json!({"order_id": MATEO.order, "item_ids": [MATEO.item], "amount": amount,
                   "reason": reason}),
        )
    };
    let script = ScriptedModel::new(vec![
        ScriptedTurn::tool("get_order_details", json!({"order_id": MATEO.order})),
        refund(MATEO.price, "   "),     // no reason given
        refund(49.614, "arrived torn"), // not whole cents
        refund(49.606, "arrived torn"), // not whole cents
        refund(MATEO.price, "arrived torn"),
        ScriptedTurn::text("Refunded."),
    ]);
    let watcher = Arc::new(LedgerWatcher::new(script, &ledger, &task, MATEO.customer));
    let report = runtime.agent(watcher.clone()).run(runtime.task(&ticket).unwrap()).await;

    assert_eq!(
        outcomes(&report),
        ["succeeded", "failed", "failed", "failed", "succeeded"],
        "{:?}",
        report.calls
    );
    let log = events(&runtime.audit_path);
    let runtime_id = |model_id: &str| {
        let call = report.calls.iter().find(|call| call.model_call_id == model_id).unwrap();
        call.call_id.to_string()
    };
    for call in ["toolu_scripted_2", "toolu_scripted_3", "toolu_scripted_4"].map(runtime_id) {
        let call = call.as_str();
        // The policy let it through and spent for it: the money was reserved, then the tool
        // said no.
        let guard = policy_event(&log, call);
        assert_eq!(guard.verdict.as_str(), "allow", "{call}");
        assert_eq!(guard.detail["context"]["amount_cents"], json!(MATEO.cents), "{call}");
        let outcome = log.iter().find(|e| is_call(e, call) && e.event.stage == Stage::Outcome);
        let reason = outcome.unwrap().event.reasons[0].code.as_str();
        assert_eq!(reason, "tool_rejected", "{call}");
    }
    // Before the honest refund, the ledger itself shows the task spent nothing: every refused
    // refund's reservation was given back.
    let before_honest = watcher.usage_before_turn(5);
    assert_eq!(before_honest.task.money_cents, 0, "{before_honest:?}");
    assert_eq!(before_honest.task.irreversible_calls, 0, "{before_honest:?}");
    assert_eq!(before_honest.customer_today.money_cents, 0, "{before_honest:?}");
    // The policy decided the honest refund on that usage, and nobody was asked.
    let honest = policy_event(&log, &runtime_id("toolu_scripted_5"));
    assert_eq!(honest.detail["usage"]["task"]["money_cents"], json!(0));
    assert_eq!(honest.verdict.as_str(), "allow", "not sent to a human: {}", honest.detail);
    let policies = honest.detail["policies"].as_array().unwrap();
    assert!(policies.contains(&json!("refund_small")), "{}", honest.detail);
    assert!(reviewer.requests().is_empty(), "{:?}", reviewer.requests());

    // Afterwards the ledger holds the one refund that ran, and the desk paid it once.
    let after = usage(&ledger, &task, MATEO.customer);
    assert_eq!((after.task.money_cents, after.task.irreversible_calls), (MATEO.cents, 1));
    assert_eq!(after.customer_today.money_cents, MATEO.cents);
    assert_eq!(runtime.desk_now().unwrap().refunds_total(MATEO.order), Some(MATEO.cents));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_left_in_the_ledger_would_put_the_honest_refund_to_a_human() {
    // Positive control: the three reservations kept (as a tool without a give-back would leave
    // them), the very same honest refund is over the per-ticket threshold and goes to a human.
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let reviewer = ScriptedApprover::new(ScriptedAnswer::Deny);
    let ticket = ticket("T-3001", &MATEO);
    let runtime =
        start(dir.path(), manifest(dir.path(), None), &ledger, "run", &reviewer, &ticket).await;
    let task = runtime.task_id(&ticket.id);
    let store = BudgetStore::open(&ledger).unwrap();
    for n in 2..=4 {
        let call_key = format!("{task}/left-behind-{n}");
        let spend = Spend {
            call_key: &call_key,
            task: &task,
            serves: &[],
            agent: AGENT,
            delegators: &[],
            customer: Some(MATEO.customer),
            day: &today(),
            class: Class::Irreversible,
            money_cents: MATEO.cents,
        };
        store.transact(&spend, &Limits::default(), |_| Verdict::Spend(())).unwrap();
    }

    let report = runtime.agent(honest_refund(&MATEO)).run(runtime.task(&ticket).unwrap()).await;

    assert_eq!(reviewer.requests().len(), 1, "the refund was put to a human");
    assert_eq!(denials(&report), [(Stage::Approval, "denied".to_owned())]);
    assert_eq!(runtime.desk_now().unwrap().refunds_total(MATEO.order), Some(0));
    assert_eq!(usage(&ledger, &task, MATEO.customer).task.money_cents, 3 * MATEO.cents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_refunds_in_one_run_count_against_the_daily_cap_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let reviewer = ScriptedApprover::new(ScriptedAnswer::Deny);
    let ticket = ticket("T-3101", &MATEO);

    // The first run refunds the T-shirt: $49.61 of the customer's $60 a day.
    let first =
        start(dir.path(), manifest(dir.path(), Some(60.0)), &ledger, "run-1", &reviewer, &ticket)
            .await;
    let report = first.agent(honest_refund(&MATEO)).run(first.task(&ticket).unwrap()).await;
    assert_eq!(outcomes(&report), ["succeeded", "succeeded"], "{:?}", report.calls);
    let first_task = first.task_id(&ticket.id);
    let first_log = first.audit_path.clone();
    drop(first);
    assert_eq!(usage(&ledger, &first_task, MATEO.customer).customer_today.money_cents, MATEO.cents);

    // The process restarts on the same ledger, with a fresh audit log and a freshly seeded desk
    // (so the T-shirt is refundable there again): the ticket replayed cannot refund it twice.
    let second =
        start(dir.path(), manifest(dir.path(), Some(60.0)), &ledger, "run-2", &reviewer, &ticket)
            .await;
    assert_ne!(second.audit_path, first_log);
    assert_ne!(second.task_id(&ticket.id), first_task, "a new run, a new task");
    let report = second.agent(honest_refund(&MATEO)).run(second.task(&ticket).unwrap()).await;
    assert_eq!(denials(&report), [(Stage::Guard, "budget_exceeded".to_owned())]);
    assert_eq!(second.desk_now().unwrap().refunds_total(MATEO.order), Some(0));
    assert!(reviewer.requests().is_empty());
    let after = usage(&ledger, &second.task_id(&ticket.id), MATEO.customer);
    assert_eq!((after.task.money_cents, after.customer_today.money_cents), (0, MATEO.cents));
    drop(second);

    // Positive control: the same second run on a ledger of its own refunds the T-shirt.
    let other_ledger = dir.path().join("other-ledger.sqlite");
    let alone = start(
        dir.path(),
        manifest(dir.path(), Some(60.0)),
        &other_ledger,
        "run-3",
        &reviewer,
        &ticket,
    )
    .await;
    let report = alone.agent(honest_refund(&MATEO)).run(alone.task(&ticket).unwrap()).await;
    assert_eq!(outcomes(&report), ["succeeded", "succeeded"], "{:?}", report.calls);
    assert_eq!(alone.desk_now().unwrap().refunds_total(MATEO.order), Some(MATEO.cents));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_open_on_one_ledger_see_each_others_spend() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let reviewer = ScriptedApprover::new(ScriptedAnswer::Deny);
    let tickets = [
        ticket("T-A1", &MATEO),
        ticket("T-A2", &LEI),
        ticket("T-B1", &MATEO),
        ticket("T-B2", &LEI),
    ];
    let capped = || manifest(dir.path(), Some(60.0));
    let a = start_with(dir.path(), capped(), &ledger, "run-a", &reviewer, &tickets).await;
    let b = start_with(dir.path(), capped(), &ledger, "run-b", &reviewer, &tickets).await;
    let run = |runtime: &Runtime, ticket: &QueueTicket, purchase: &Purchase| {
        let agent = runtime.agent(honest_refund(purchase));
        let task = runtime.task(ticket).unwrap();
        async move { agent.run(task).await }
    };

    // A refunds Mateo; B, open all the while, cannot refund him again today.
    assert_eq!(outcomes(&run(&a, &tickets[0], &MATEO).await), ["succeeded", "succeeded"]);
    let report = run(&b, &tickets[2], &MATEO).await;
    assert_eq!(denials(&report), [(Stage::Guard, "budget_exceeded".to_owned())]);
    // B refunds Lei; A cannot refund her again.
    assert_eq!(outcomes(&run(&b, &tickets[3], &LEI).await), ["succeeded", "succeeded"]);
    let report = run(&a, &tickets[1], &LEI).await;
    assert_eq!(denials(&report), [(Stage::Guard, "budget_exceeded".to_owned())]);
    // Positive control for the refusals: each desk still holds the refund the other paid, so
    // only the shared ledger stopped it.
    assert_eq!(b.desk_now().unwrap().refunds_total(MATEO.order), Some(0));
    assert_eq!(a.desk_now().unwrap().refunds_total(LEI.order), Some(0));

    // A third connection sees both runs' spend.
    let any_task = "no-such-task";
    assert_eq!(usage(&ledger, any_task, MATEO.customer).customer_today.money_cents, MATEO.cents);
    assert_eq!(usage(&ledger, any_task, LEI.customer).customer_today.money_cents, LEI.cents);
    assert_eq!(
        usage(&ledger, any_task, MATEO.customer).agent_today.money_cents,
        MATEO.cents + LEI.cents
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runtimes_refunding_one_customer_at_the_same_moment_pay_back_once() {
    // $30.31 twice is over the $60 cap: whichever gets the ledger's write lock first pays.
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let reviewer = ScriptedApprover::new(ScriptedAnswer::Deny);
    let tickets = [ticket("T-A1", &CHARGER), ticket("T-B1", &CHARGER)];
    let capped = || manifest(dir.path(), Some(60.0));
    let a = start_with(dir.path(), capped(), &ledger, "run-a", &reviewer, &tickets).await;
    let b = start_with(dir.path(), capped(), &ledger, "run-b", &reviewer, &tickets).await;
    let spawn = |runtime: &Runtime, ticket: &QueueTicket| {
        let agent = runtime.agent(honest_refund(&CHARGER));
        let task = runtime.task(ticket).unwrap();
        tokio::spawn(async move { agent.run(task).await })
    };

    let (from_a, from_b) = (spawn(&a, &tickets[0]), spawn(&b, &tickets[1]));
    let reports = [from_a.await.unwrap(), from_b.await.unwrap()];

    let paid: Vec<bool> =
        reports.iter().map(|report| outcomes(report) == ["succeeded", "succeeded"]).collect();
    assert_eq!(paid.iter().filter(|&&paid| paid).count(), 1, "{reports:?}");
    let refused: Vec<Vec<(Stage, String)>> = reports.iter().map(denials).collect();
    assert!(refused.contains(&vec![(Stage::Guard, "budget_exceeded".to_owned())]), "{refused:?}");
    let paid_total: i64 = [&a, &b]
        .iter()
        .map(|runtime| runtime.desk_now().unwrap().refunds_total(CHARGER.order).unwrap())
        .sum();
    assert_eq!(paid_total, CHARGER.cents);
    let counted = usage(&ledger, "no-such-task", CHARGER.customer).customer_today.money_cents;
    assert_eq!(counted, CHARGER.cents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mcp_a_refund_the_servers_tool_refuses_gives_its_spend_back() {
    let (report, spent, paid) = refund_over_mcp(|tool| Arc::new(RefusesEverything(tool))).await;
    assert_eq!(outcomes(&report), ["succeeded", "failed"], "{:?}", report.calls);
    assert_eq!((spent, paid), (0, 0));
    // Positive control: served as it is, the refund runs and stays spent.
    let (report, spent, paid) = refund_over_mcp(|tool| tool).await;
    assert_eq!(outcomes(&report), ["succeeded", "succeeded"], "{:?}", report.calls);
    assert_eq!((spent, paid), (MATEO.cents, MATEO.cents));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mcp_a_refund_whose_tool_fails_inside_keeps_its_spend() {
    // In process a tool that fails inside keeps its reservation (agent-core's pipeline tests);
    // over MCP the same failure must too, since the money may have left.
    let (report, spent, paid) = refund_over_mcp(|tool| Arc::new(PaysThenFails(tool))).await;
    assert_eq!(outcomes(&report), ["succeeded", "failed"], "{:?}", report.calls);
    assert_eq!(paid, MATEO.cents, "the backend paid");
    assert_eq!(spent, MATEO.cents, "the ledger must still count what was paid");
}

/// Runs one honest refund of the T-shirt over MCP, its `issue_refund` served as `wrap` makes
/// it from the desk's own; returns the report, the task's money in the ledger, and what the
/// desk paid.
async fn refund_over_mcp(wrap: fn(Arc<dyn Tool>) -> Arc<dyn Tool>) -> (TaskReport, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let reviewer = ScriptedApprover::new(ScriptedAnswer::Deny);
    let ticket = ticket("T-3201", &MATEO);
    let serve: ServeTools = Arc::new(move |desk: &tools::Desk| {
        let served = tools::all_tools(desk).into_iter();
        served
            .map(|tool| if tool.spec().name.as_str() == "issue_refund" { wrap(tool) } else { tool })
            .collect()
    });
    let manifest = manifest(dir.path(), None);
    let runtime = start_serving(
        dir.path(),
        manifest,
        &ledger,
        "run",
        &reviewer,
        std::slice::from_ref(&ticket),
        Some(serve),
    )
    .await;
    let report = runtime.agent(honest_refund(&MATEO)).run(runtime.task(&ticket).unwrap()).await;
    let spent = usage(&ledger, &runtime.task_id(&ticket.id), MATEO.customer).task.money_cents;
    let paid = runtime.desk_now().unwrap().refunds_total(MATEO.order).unwrap();
    (report, spent, paid)
}

/// The desk's `issue_refund`, served as reviewed (same name, description and schema), whose
/// backend pays and then fails before it can answer: the money has left, the call reports an
/// internal failure.
struct PaysThenFails(Arc<dyn Tool>);

#[async_trait]
impl Tool for PaysThenFails {
    fn spec(&self) -> &ToolSpec {
        self.0.spec()
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        self.0.call(input, invocation).await?;
        Err(ToolError::Internal("the payment service timed out after paying".to_owned()))
    }
}

/// The desk's `issue_refund`, served as reviewed, whose business rules refuse every refund.
struct RefusesEverything(Arc<dyn Tool>);

#[async_trait]
impl Tool for RefusesEverything {
    fn spec(&self) -> &ToolSpec {
        self.0.spec()
    }

    async fn call(&self, _input: Value, _invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        Err(ToolError::Rejected("refunds are paused on this order".to_owned()))
    }
}

/// The refund bot's manifest in `dir`, with a per-customer daily cap of `customer_cap` dollars.
fn manifest(dir: &Path, customer_cap: Option<f64>) -> Manifest {
    let file_name = format!("agent-{}.toml", customer_cap.unwrap_or(0.0));
    let manifest = manifest_in(dir, &file_name, |file| {
        if let Some(cap) = customer_cap {
            set(file, &["budget", "per_customer_per_day", "money"], cap.into());
        }
    });
    if let Some(cap) = customer_cap {
        let cents = (cap * 100.0).round() as i64;
        assert_eq!(manifest.budget.per_customer_per_day.money_cents, Some(cents));
    }
    manifest
}

/// The runtime the refund bot runs, in process, on `ledger`, with its own audit log under
/// `dir/<run>/`, and `reviewer` answering every approval request.
async fn start(
    dir: &Path,
    manifest: Manifest,
    ledger: &Path,
    run: &str,
    reviewer: &ScriptedApprover,
    ticket: &QueueTicket,
) -> Runtime {
    start_with(dir, manifest, ledger, run, reviewer, std::slice::from_ref(ticket)).await
}

async fn start_with(
    dir: &Path,
    manifest: Manifest,
    ledger: &Path,
    run: &str,
    reviewer: &ScriptedApprover,
    tickets: &[QueueTicket],
) -> Runtime {
    start_serving(dir, manifest, ledger, run, reviewer, tickets, None).await
}

/// Like [`start`], with the desk's tools served over MCP (streamable HTTP on loopback) as
/// `serve` makes them, when given.
async fn start_serving(
    dir: &Path,
    manifest: Manifest,
    ledger: &Path,
    run: &str,
    reviewer: &ScriptedApprover,
    tickets: &[QueueTicket],
    serve: Option<ServeTools>,
) -> Runtime {
    let settings = Settings {
        tools: Some(if serve.is_some() { ToolSource::McpHttp } else { ToolSource::InProcess }),
        audit_log: Some(dir.join("audit").join(run).join("audit.jsonl")),
        ledger: Some(ledger.to_owned()),
        reviewer: Some(Arc::new(reviewer.clone())),
        served_tools: serve,
        ..Settings::default()
    };
    let runtime = Runtime::start(manifest, settings, tickets).await.unwrap();
    assert_eq!(runtime.manifest.agent.id, AGENT);
    assert_eq!(runtime.refused_tools, [], "every tool was imported as reviewed");
    runtime
}

/// An honest ticket: the customer's item arrived damaged, and the ticket names no amount.
fn ticket(id: &str, purchase: &Purchase) -> QueueTicket {
    QueueTicket {
        id: id.to_owned(),
        kind: TicketKind::Honest,
        summary: "an item arrived damaged".to_owned(),
        customer: purchase.customer.to_owned(),
        subject: "Damaged item".to_owned(),
        body: format!("My order {} arrived damaged. Please refund the item.", purchase.order),
        expect: Expect::default(),
    }
}

/// A model that reads the order and refunds the item at the price our records show.
fn honest_refund(purchase: &Purchase) -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::new(vec![
        ScriptedTurn::tool("get_order_details", json!({"order_id": purchase.order})),
        ScriptedTurn::tool(
            "issue_refund",
            json!({"order_id": purchase.order, "item_ids": [purchase.item],
                   "amount": purchase.price, "reason": "arrived damaged"}),
        ),
        ScriptedTurn::text("Refunded."),
    ]))
}

/// A scripted model that reads the ledger before each turn: what the task has spent at that
/// point, as the store says, not as any report does.
struct LedgerWatcher {
    script: ScriptedModel,
    store: BudgetStore,
    task: String,
    customer: &'static str,
    seen: Mutex<Vec<Usage>>,
}

impl LedgerWatcher {
    fn new(script: ScriptedModel, ledger: &Path, task: &str, customer: &'static str) -> Self {
        let store = BudgetStore::open(ledger).unwrap();
        Self { script, store, task: task.to_owned(), customer, seen: Mutex::default() }
    }

    /// The usage read before turn `turn` (from 1).
    fn usage_before_turn(&self, turn: usize) -> Usage {
        self.seen.lock().unwrap()[turn - 1]
    }
}

#[async_trait]
impl Model for LedgerWatcher {
    async fn respond(
        &self,
        request: &ModelRequest,
    ) -> Result<ModelResponse, agent_core::model::ModelError> {
        let usage = self.store.usage(&self.task, AGENT, Some(self.customer), &today()).unwrap();
        self.seen.lock().unwrap().push(usage);
        self.script.respond(request).await
    }

    fn describe(&self) -> String {
        "scripted, watching the ledger".to_owned()
    }
}

/// What the ledger at `ledger` holds for `task` and `customer` today.
fn usage(ledger: &Path, task: &str, customer: &str) -> Usage {
    BudgetStore::open(ledger).unwrap().usage(task, AGENT, Some(customer), &today()).unwrap()
}

/// Each call's outcome, in order: `succeeded`, `failed` or `denied`.
fn outcomes(report: &TaskReport) -> Vec<&'static str> {
    report
        .calls
        .iter()
        .map(|call| match call.outcome {
            CallOutcome::Succeeded { .. } => "succeeded",
            CallOutcome::Failed { .. } => "failed",
            CallOutcome::Denied(_) => "denied",
        })
        .collect()
}

/// Where and why each refused call was refused.
fn denials(report: &TaskReport) -> Vec<(Stage, String)> {
    report
        .calls
        .iter()
        .filter_map(|call| match &call.outcome {
            CallOutcome::Denied(denied) => Some((denied.stage, denied.reason.code.clone())),
            _ => None,
        })
        .collect()
}

/// The audit log's events.
fn events(log: &Path) -> Vec<SealedEvent> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
