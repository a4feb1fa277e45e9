//! The policy guard: the refund bundle's rules through the real pipeline, provenance attacks,
//! budgets under concurrency, shadow mode, explain, and every kind of broken bundle refused at
//! start-up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_core::approval::ScriptedAnswer;
use agent_core::audit::{AuditLog, MemorySink};
use agent_core::guard::{CallContext, Decision, Evidence, Guard, ProposedCall};
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{
    CallId, EffectClass, Pipeline, Scope, ScriptedApprover, Tool, ToolMenu, ToolName, ToolSpec,
};
use async_trait::async_trait;
use guards::budget::{BudgetStore, Caps, Limits};
use guards::policy::{
    DerivedFacts, EntityResolver, Mode, PolicyBundle, PolicyError, PolicyGuard, ResolvedEntity,
    StaticEntities,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn bundle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/refund-bot/policy")
}

fn bundle() -> PolicyBundle {
    PolicyBundle::load(bundle_dir().join("policy.toml")).unwrap()
}

/// The bundle's fixture records, and for money-moving calls the facts a desk would derive: here
/// every amount is taken to be exactly the price of unrefunded items of the order (the desk's
/// own derivation is tested in `tools`), so these tests see the provenance and budget rules.
struct Records {
    entities: StaticEntities,
    facts: Option<serde_json::Map<String, Value>>,
}

impl EntityResolver for Records {
    fn resolve(&self, entity_type: &str, id: &str) -> Result<Option<Vec<ResolvedEntity>>, String> {
        self.entities.resolve(entity_type, id)
    }

    fn derive(&self, tool: &str, _args: &Value) -> Result<DerivedFacts, String> {
        let money_tools = ["issue_refund", "return_delivered_order_items"];
        let facts = match (&self.facts, money_tools.contains(&tool)) {
            (Some(facts), true) => facts.clone(),
            (None, true) => json!({
                "items_on_order": true,
                "items_untouched": true,
                "items_price_cents": 1_000_000,
                "items_refundable_cents": 1_000_000,
                "amount_is_unrefunded_items": true,
            })
            .as_object()
            .cloned()
            .unwrap(),
            (_, false) => serde_json::Map::new(),
        };
        Ok(DerivedFacts { money_cents: None, facts })
    }
}

fn entities() -> Arc<Records> {
    let entities = StaticEntities::from_file(&bundle_dir().join("fixtures.json")).unwrap();
    Arc::new(Records { entities, facts: None })
}

fn spec(name: &str, effect: EffectClass) -> ToolSpec {
    let schema = json!({"type": "object"});
    let spec = ToolSpec::new(ToolName::new(name).unwrap(), name, schema, Scope::new("x").unwrap())
        .effect(effect);
    match name {
        "issue_refund" => spec.touches("Order", "order_id").moves_money("amount"),
        "get_order_details" | "cancel_pending_order" | "return_delivered_order_items" => {
            spec.touches("Order", "order_id")
        }
        _ => spec,
    }
}

fn ctx(task: &str, customer: &str) -> CallContext {
    let mut ctx = CallContext::new("refund-bot".into(), task.into());
    ctx.on_behalf_of = Some(customer.to_owned());
    ctx
}

fn decide(
    guard: &PolicyGuard,
    tool: &str,
    effect: EffectClass,
    args: &Value,
    ctx: &CallContext,
) -> (Decision, Value) {
    let spec = spec(tool, effect);
    let id = CallId::new(format!("call-{}", ctx.calls_made));
    let digest = agent_core::canonical::digest(args);
    let call = ProposedCall {
        id: &id,
        proposer_id: None,
        proposer_id_repeated: false,
        spec: &spec,
        input: args,
        args_digest: &digest,
        stated_reason: "",
    };
    guard.check_explained(&call, ctx)
}

fn kind(decision: &Decision) -> String {
    match decision {
        Decision::Allow => "allow".into(),
        Decision::NeedsApproval(_) => "approval".into(),
        Decision::Deny(reason) => format!("deny:{}", reason.code),
    }
}

#[test]
fn the_refund_bundle_loads_and_its_cases_pass() {
    let bundle = bundle();
    assert!(bundle.test_count() >= 20, "{}", bundle.test_count());
    assert!(bundle.len() >= 20);
    assert_eq!(bundle.mode(), Mode::Enforce);
    for tool in ["issue_refund", "send_email", "get_order_details", "return_delivered_order_items"]
    {
        assert!(bundle.has_action(tool), "{tool}");
    }
    assert!(!bundle.has_action("launch_missiles"));
}

#[test]
fn each_refund_rule_stops_its_attack_and_lets_the_honest_call_through() {
    let guard = PolicyGuard::new(Arc::new(bundle()), entities());
    let noah = ctx("T-1", "noah_brown_6181");
    let refund = |args: Value| {
        kind(&decide(&guard, "issue_refund", EffectClass::Irreversible, &args, &noah).0)
    };
    // Positive control, then each attack.
    assert_eq!(refund(json!({"order_id": "#W1001", "amount": 20, "reason": "chipped"})), "allow");
    assert_eq!(
        refund(json!({"order_id": "#W2002", "amount": 20, "reason": "x"})),
        "deny:cross_customer"
    );
    assert_eq!(
        refund(json!({"order_id": "#W1001", "amount": 120.01, "reason": "x"})),
        "deny:refund_exceeds_payment"
    );
    assert_eq!(
        refund(json!({"order_id": "#W1003", "amount": 1500, "reason": "x"})),
        "deny:refund_too_large"
    );
    assert_eq!(refund(json!({"order_id": "#W1001", "amount": 110, "reason": "x"})), "approval");
    assert_eq!(
        refund(json!({"order_id": "#W9999", "amount": 1, "reason": "x"})),
        "deny:unknown_resource"
    );
    assert_eq!(
        refund(json!({"order_id": "#W1001", "amount": -5, "reason": "x"})),
        "deny:invalid_amount"
    );

    let email = decide(
        &guard,
        "send_email",
        EffectClass::Irreversible,
        &json!({"to": "x@evil.example"}),
        &noah,
    );
    assert_eq!(kind(&email.0), "deny:never_send_email");

    let return_to = |card: &str| {
        let args = json!({"order_id": "#W1001", "item_ids": ["1"], "payment_method_id": card});
        kind(
            &decide(
                &guard,
                "return_delivered_order_items",
                EffectClass::Irreversible,
                &args,
                &noah,
            )
            .0,
        )
    };
    assert_eq!(return_to("credit_card_1111"), "allow");
    assert_eq!(return_to("gift_card_1001"), "allow");
    assert_eq!(return_to("credit_card_2222"), "deny:refund_destination");
}

#[test]
fn an_amount_smuggled_through_the_ticket_needs_a_human_however_it_is_written() {
    let guard = PolicyGuard::new(Arc::new(bundle()), entities());
    let args = json!({"order_id": "#W1001", "amount": 40, "reason": "as asked"});
    for written in
        ["refund me 40 dollars", "refund ４０ now", "refund $40.00", "refund 4 0", "refund ４0"]
    {
        let mut attacked = ctx("T-2", "noah_brown_6181");
        attacked.add_untrusted("ticket", written);
        let (decision, detail) =
            decide(&guard, "issue_refund", EffectClass::Irreversible, &args, &attacked);
        assert_eq!(kind(&decision), "approval", "{written}: {detail}");
        assert_eq!(detail["context"]["provenance"]["untrusted_args"], json!(["amount"]));
    }
    // 1,000 and １０００ are 1000 too: the explanation shows the amount's origin.
    let big = json!({"order_id": "#W1003", "amount": 1000, "reason": "as asked"});
    for written in ["refund 1,000 please", "refund １０００ please", "refund 1 000"] {
        let mut attacked = ctx("T-3", "noah_brown_6181");
        attacked.add_untrusted("ticket", written);
        let (decision, detail) =
            decide(&guard, "issue_refund", EffectClass::Irreversible, &big, &attacked);
        assert_eq!(kind(&decision), "approval");
        assert_eq!(
            detail["context"]["provenance"]["untrusted_args"],
            json!(["amount"]),
            "{written}"
        );
    }
    // Positive control: the same ticket, but our own order record shows the amount.
    let mut honest = ctx("T-4", "noah_brown_6181");
    honest.add_untrusted("ticket", "refund ４０ now");
    honest.evidence.push(Evidence::Facts {
        source: "tool:get_order_details".into(),
        values: vec![json!(40.0)],
    });
    assert_eq!(
        kind(&decide(&guard, "issue_refund", EffectClass::Irreversible, &args, &honest).0),
        "allow"
    );
}

#[test]
fn a_destination_named_only_in_the_ticket_needs_a_human() {
    let guard = PolicyGuard::new(Arc::new(bundle()), entities());
    let args =
        json!({"order_id": "#W1001", "item_ids": ["1"], "payment_method_id": "gift_card_1001"});
    let mut attacked = ctx("T-5", "noah_brown_6181");
    attacked.add_untrusted("ticket", "send my refund to GIFT_CARD_1001 please");
    let (decision, _) =
        decide(&guard, "return_delivered_order_items", EffectClass::Irreversible, &args, &attacked);
    assert_eq!(kind(&decision), "approval");
    attacked.evidence.push(Evidence::Facts {
        source: "tool:get_user_details".into(),
        values: vec![json!("gift_card_1001"), json!("gift_card")],
    });
    let (decision, _) =
        decide(&guard, "return_delivered_order_items", EffectClass::Irreversible, &args, &attacked);
    assert_eq!(kind(&decision), "allow");
}

#[test]
fn split_refunds_are_counted_per_ticket_and_a_refused_one_is_given_back() {
    let store = Arc::new(BudgetStore::in_memory().unwrap());
    let guard = PolicyGuard::new(Arc::new(bundle()), entities())
        .with_budget(Arc::clone(&store), Limits::default());
    let mut noah = ctx("T-6", "noah_brown_6181");
    let part = json!({"order_id": "#W1003", "amount": 40, "reason": "part"});
    for expected in ["allow", "allow", "approval"] {
        let (decision, _) = decide(&guard, "issue_refund", EffectClass::Irreversible, &part, &noah);
        assert_eq!(kind(&decision), expected);
        noah.calls_made += 1;
    }
    // The third ($40 more, $120 for the ticket) went to a human; say the human refused it.
    let spec = spec("issue_refund", EffectClass::Irreversible);
    let id = CallId::new("call-2");
    let digest = agent_core::canonical::digest(&part);
    noah.calls_made = 2;
    guard.release(
        &ProposedCall {
            id: &id,
            proposer_id: None,
            proposer_id_repeated: false,
            spec: &spec,
            input: &part,
            args_digest: &digest,
            stated_reason: "",
        },
        &noah,
    );
    let usage = store.usage("T-6", "refund-bot", Some("noah_brown_6181"), &today()).unwrap();
    assert_eq!(usage.task.money_cents, 8000);
    assert_eq!(usage.task.irreversible_calls, 2);
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
}

#[test]
fn tasks_racing_for_the_last_dollar_of_a_customer_budget_cannot_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BudgetStore::open(&dir.path().join("budget.sqlite")).unwrap());
    let limits = Limits {
        per_customer_per_day: Caps { money_cents: Some(20000), ..Caps::default() },
        ..Limits::default()
    };
    let guard = Arc::new(
        PolicyGuard::new(Arc::new(bundle()), entities()).with_budget(store.clone(), limits),
    );
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|n| {
            let (guard, barrier) = (Arc::clone(&guard), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let task = format!("T-race-{n}");
                let noah = ctx(&task, "noah_brown_6181");
                barrier.wait();
                let args = json!({"order_id": "#W1003", "amount": 30, "reason": "race"});
                kind(&decide(&guard, "issue_refund", EffectClass::Irreversible, &args, &noah).0)
            })
        })
        .collect();
    let outcomes: Vec<String> = handles.into_iter().map(|handle| handle.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "allow").count(), 6, "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| *o == "deny:budget_exceeded").count(),
        10,
        "{outcomes:?}"
    );
    let usage = store.usage("T-race-0", "refund-bot", Some("noah_brown_6181"), &today()).unwrap();
    assert_eq!(usage.customer_today.money_cents, 18000);
}

#[test]
fn shadow_mode_records_the_verdict_and_lets_the_call_through() {
    let mut shadow = bundle();
    shadow.set_mode(Mode::LogOnly);
    let guard = PolicyGuard::new(Arc::new(shadow), entities());
    let args = json!({"order_id": "#W2002", "amount": 20, "reason": "x"});
    let (decision, detail) = decide(
        &guard,
        "issue_refund",
        EffectClass::Irreversible,
        &args,
        &ctx("T-7", "noah_brown_6181"),
    );
    assert_eq!(kind(&decision), "allow");
    assert_eq!(detail["mode"], "log_only");
    assert_eq!(detail["decision"]["outcome"], "deny");
    assert_eq!(detail["decision"]["code"], "cross_customer");
    // Positive control: enforced, the same call is refused.
    let enforced = PolicyGuard::new(Arc::new(bundle()), entities());
    let (decision, _) = decide(
        &enforced,
        "issue_refund",
        EffectClass::Irreversible,
        &args,
        &ctx("T-7", "noah_brown_6181"),
    );
    assert_eq!(kind(&decision), "deny:cross_customer");
}

#[test]
fn explain_shows_the_deciding_policies_the_context_and_the_usage() {
    let guard = PolicyGuard::new(Arc::new(bundle()), entities());
    let spec = spec("issue_refund", EffectClass::Irreversible);
    let args = json!({"order_id": "#W1001", "amount": 20, "reason": "chipped"});
    let id = CallId::new("c");
    let digest = agent_core::canonical::digest(&args);
    let call = ProposedCall {
        id: &id,
        proposer_id: None,
        proposer_id_repeated: false,
        spec: &spec,
        input: &args,
        args_digest: &digest,
        stated_reason: "",
    };
    let explanation = guard.explain(&call, &ctx("T-8", "noah_brown_6181"));
    assert_eq!(explanation["decision"]["outcome"], "allow");
    // Both permits apply; the plain one makes it an allow without a human.
    assert_eq!(explanation["policies"], json!(["refund_small", "refund_with_approval"]));
    assert_eq!(explanation["context"]["amount_cents"], 2000);
    assert_eq!(explanation["context"]["resource"], "Order::#W1001");
    assert_eq!(explanation["usage"]["task"]["money_cents"], 0);
}

#[test]
fn a_policy_that_cannot_be_evaluated_denies() {
    let mut broken = StaticEntities::from_file(&bundle_dir().join("fixtures.json")).unwrap();
    let mut order = serde_json::Map::new();
    order.insert("owner".into(), json!({"__entity": {"type": "User", "id": "noah_brown_6181"}}));
    // `refundable_cents` is missing: the rule comparing against it cannot be evaluated.
    order.insert("payment_methods".into(), json!([]));
    broken.insert("Order", "#W1001", order);
    let guard = PolicyGuard::new(Arc::new(bundle()), Arc::new(broken));
    let args = json!({"order_id": "#W1001", "amount": 20, "reason": "x"});
    let (decision, _) = decide(
        &guard,
        "issue_refund",
        EffectClass::Irreversible,
        &args,
        &ctx("T-9", "noah_brown_6181"),
    );
    assert_eq!(kind(&decision), "deny:policy_error");
}

/// A tool that records its runs.
struct Refund(ToolSpec, Arc<std::sync::Mutex<Vec<Value>>>);

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

#[tokio::test]
async fn in_the_pipeline_a_denial_names_the_rule_and_the_audit_event_keeps_the_explanation() {
    let runs = Arc::default();
    let menu = ToolMenu::new([Arc::new(Refund(
        spec("issue_refund", EffectClass::Irreversible),
        Arc::clone(&runs),
    )) as Arc<dyn Tool>])
    .unwrap();
    let sink = Arc::new(MemorySink::new());
    let store = Arc::new(BudgetStore::in_memory().unwrap());
    let pipeline = Pipeline::new(Arc::new(menu), AuditLog::new(sink.clone()))
        .with_guard(Arc::new(
            PolicyGuard::new(Arc::new(bundle()), entities())
                .with_budget(store.clone(), Limits::default()),
        ))
        .with_approver(
            Arc::new(ScriptedApprover::new(ScriptedAnswer::Deny)),
            Duration::from_secs(5),
        );
    let request = |id: &str, args: Value| agent_core::pipeline::CallRequest {
        proposer_id: Some(id.to_string()),
        tool: "issue_refund".into(),
        input: args,
        stated_reason: "the ticket asks".into(),
    };
    let noah = ctx("T-10", "noah_brown_6181");
    let denied = pipeline
        .authorize(&request("a", json!({"order_id": "#W2002", "amount": 20, "reason": "x"})), &noah)
        .await
        .unwrap_err();
    assert_eq!(denied.reason.code, "cross_customer");
    let event = sink
        .events()
        .iter()
        .rev()
        .find(|e| e.event.guard.as_deref() == Some("policy"))
        .unwrap()
        .clone();
    assert_eq!(event.event.detail["policies"], json!(["cross_customer"]));
    assert_eq!(event.event.detail["context"]["resource"], "Order::#W2002");

    // A refund that needs a human, who says no: nothing runs and nothing is spent.
    let refused = pipeline
        .authorize(
            &request("b", json!({"order_id": "#W1001", "amount": 110, "reason": "x"})),
            &noah,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.reason.code, "denied");
    let usage = store.usage("T-10", "refund-bot", Some("noah_brown_6181"), &today()).unwrap();
    assert_eq!(usage.task.money_cents, 0);
    // The reviewer's no sticks in this task, even for an amount that needs no human.
    let small = json!({"order_id": "#W1001", "amount": 20, "reason": "x"});
    let again = pipeline.authorize(&request("c", small.clone()), &noah).await.unwrap_err();
    assert_eq!(again.reason.code, "refused_earlier");
    // Positive control: in another task the small own refund runs and is spent.
    let next = ctx("T-11", "noah_brown_6181");
    let authorized = pipeline.authorize(&request("c", small), &next).await.unwrap();
    pipeline.menu().invoke(authorized).await.unwrap();
    assert_eq!(runs.lock().unwrap().len(), 1);
    let usage = store.usage("T-11", "refund-bot", Some("noah_brown_6181"), &today()).unwrap();
    assert_eq!(usage.task.money_cents, 2000);
}

// ── Start-up refusals: every kind of broken bundle stops the start, naming file and line. ──────

/// Writes a bundle whose files are the refund bundle's, with one replaced, and loads it.
fn load_with(file: &str, contents: &str) -> PolicyError {
    let dir = tempfile::tempdir().unwrap();
    for name in ["policy.toml", "refund.cedarschema", "refund.cedar", "fixtures.json"] {
        std::fs::copy(bundle_dir().join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join(file), contents).unwrap();
    PolicyBundle::load(dir.path().join("policy.toml")).unwrap_err()
}

fn refund_policies() -> String {
    std::fs::read_to_string(bundle_dir().join("refund.cedar")).unwrap()
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn a_policy_syntax_error_stops_the_start_at_its_line() {
    let text = refund_policies().replace(
        "forbid (principal, action == Action::\"send_email\"",
        "forbid (principal, action === Action::\"send_email\"",
    );
    let error = load_with("refund.cedar", &text);
    let PolicyError::Syntax { path, line, .. } = &error else { panic!("{error}") };
    assert!(path.ends_with("refund.cedar"));
    assert_eq!(*line, line_of(&text, "action === "));
}

#[test]
fn a_type_error_stops_the_start() {
    let text = refund_policies().replace(
        "context.amount_cents > resource.refundable_cents",
        "context.amount_cents > resource.status",
    );
    let error = load_with("refund.cedar", &text);
    let PolicyError::Invalid { policy, line, .. } = &error else { panic!("{error}") };
    assert_eq!(policy, "refund_exceeds_payment");
    assert_eq!(*line, line_of(&text, "context.amount_cents > resource.status"), "{error}");
}

#[test]
fn an_unknown_attribute_stops_the_start() {
    let text =
        refund_policies().replace("resource.refundable_cents", "resource.refundable_dollars");
    let error = load_with("refund.cedar", &text);
    assert!(
        matches!(&error, PolicyError::Invalid { policy, .. } if policy == "refund_exceeds_payment"),
        "{error}"
    );
    assert!(error.to_string().contains("refundable_dollars"), "{error}");
}

#[test]
fn an_unguarded_optional_attribute_stops_the_start() {
    let text = refund_policies().replace(
        "when { context.task has customer && resource.owner == context.task.customer };\n\n@id(\"read_own_profile\")",
        "when { resource.owner == context.task.customer };\n\n@id(\"read_own_profile\")",
    );
    let error = load_with("refund.cedar", &text);
    assert!(
        matches!(&error, PolicyError::Invalid { policy, .. } if policy == "read_own_orders"),
        "{error}"
    );
}

#[test]
fn a_policy_without_an_id_or_with_a_duplicate_one_stops_the_start() {
    let text = refund_policies().replace("@id(\"never_send_email\")\n", "");
    assert!(matches!(load_with("refund.cedar", &text), PolicyError::Identity { .. }));
    let text =
        refund_policies().replace("@id(\"never_send_email\")", "@id(\"never_delete_accounts\")");
    let error = load_with("refund.cedar", &text);
    assert!(error.to_string().contains("used twice"), "{error}");
}

#[test]
fn an_empty_policy_set_stops_the_start() {
    let error = load_with("refund.cedar", "// nothing here\n");
    assert!(matches!(error, PolicyError::Empty { .. }), "{error}");
}

#[test]
fn a_broken_schema_or_bundle_file_stops_the_start() {
    let schema = std::fs::read_to_string(bundle_dir().join("refund.cedarschema")).unwrap();
    let error =
        load_with("refund.cedarschema", &schema.replace("entity Product;", "entity Product"));
    assert!(matches!(error, PolicyError::Schema { .. }), "{error}");

    let bundle = std::fs::read_to_string(bundle_dir().join("policy.toml")).unwrap();
    let error = load_with(
        "policy.toml",
        &bundle.replace("mode = \"enforce\"", "mode = \"enforce\"\nallow_all = true"),
    );
    let PolicyError::Bundle { line, message, .. } = &error else { panic!("{error}") };
    assert!(message.contains("allow_all"), "{message}");
    assert_eq!(*line, 6);
    let error = load_with("policy.toml", &bundle.replace("mode = \"enforce\"", "mode = \"yolo\""));
    assert!(matches!(error, PolicyError::Bundle { .. }), "{error}");
}

#[test]
fn a_failing_test_case_stops_the_start() {
    // Weaken the cross-customer rule: the bundle's own test case catches it.
    let text = refund_policies().replace(
        "unless { context.task has customer && resource.owner == context.task.customer };\n\n@id(\"refund_not_delivered\")",
        "unless { true };\n\n@id(\"refund_not_delivered\")",
    );
    let error = load_with("refund.cedar", &text);
    let PolicyError::TestFailed { name, .. } = &error else { panic!("{error}") };
    assert!(name.starts_with("attack:"), "{name}");
}

#[test]
fn a_missing_file_stops_the_start() {
    let error = PolicyBundle::load("/nonexistent/policy.toml").unwrap_err();
    assert!(matches!(error, PolicyError::Io { .. }), "{error}");
}

// ── The menu against the schema: one source of truth for a tool's effect. ───────────────────────

/// The refund bundle in a temporary directory with its schema edited by `edit`.
fn bundle_with_schema(edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, PolicyBundle) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["policy.toml", "refund.cedar", "fixtures.json"] {
        std::fs::copy(bundle_dir().join(name), dir.path().join(name)).unwrap();
    }
    let schema = std::fs::read_to_string(bundle_dir().join("refund.cedarschema")).unwrap();
    std::fs::write(dir.path().join("refund.cedarschema"), edit(schema)).unwrap();
    let bundle = PolicyBundle::load(dir.path().join("policy.toml")).unwrap();
    (dir, bundle)
}

#[test]
fn a_write_tool_filed_under_read_escapes_the_write_rules_so_the_start_refuses_it() {
    let misfiled = "action transfer_to_human_agents in [read]";
    let (_dir, misfiled_bundle) = bundle_with_schema(|schema| {
        schema.replace("action transfer_to_human_agents in [write]", misfiled)
    });
    // The tool itself says it writes (budgets and per-call tokens treat it so).
    let handoff = spec("transfer_to_human_agents", EffectClass::Write);
    let args = json!({"summary": "needs a person"});
    let mut helper = ctx("T-1", "noah_brown_6181");
    helper.agent = "lookup-helper".into();

    // The attack, as the bundle loads today: a helper whose role may change nothing hands the
    // ticket on, because no rule about writes sees a tool filed under `read`.
    let loaded = Arc::new(misfiled_bundle);
    let guard = PolicyGuard::new(Arc::clone(&loaded), entities());
    assert_eq!(
        kind(&decide(&guard, "transfer_to_human_agents", EffectClass::Write, &args, &helper).0),
        "allow"
    );
    // Positive control: filed under `write`, the same call meets `writes_need_support_role`.
    let guard = PolicyGuard::new(Arc::new(bundle()), entities());
    assert_eq!(
        kind(&decide(&guard, "transfer_to_human_agents", EffectClass::Write, &args, &helper).0),
        "deny:writes_need_support_role"
    );

    // The start-up check refuses the misfiled bundle, naming the schema's line.
    let error = loaded.check_menu([&handoff]).unwrap_err().to_string();
    let schema = std::fs::read_to_string(bundle_dir().join("refund.cedarschema")).unwrap();
    let line = line_of(&schema, "action transfer_to_human_agents");
    assert!(error.contains(&format!("refund.cedarschema` line {line}")), "{error}");
    assert!(error.contains("declared `write` by its tool"), "{error}");
    // And passes the shipped one.
    bundle().check_menu([&handoff]).unwrap();
}

#[test]
fn a_menu_tool_without_an_action_or_with_money_the_schema_does_not_know_stops_the_start() {
    let unknown = spec("launch_missiles", EffectClass::Irreversible);
    let error = bundle().check_menu([&unknown]).unwrap_err().to_string();
    assert!(error.contains("declares no `action launch_missiles`"), "{error}");

    // A refund the schema does not count as moving money would escape the money rules.
    let (_dir, misfiled) = bundle_with_schema(|schema| {
        schema.replace(
            "action issue_refund in [irreversible, moves_money]",
            "action issue_refund in [irreversible]",
        )
    });
    let refund = spec("issue_refund", EffectClass::Irreversible);
    let error = misfiled.check_menu([&refund]).unwrap_err().to_string();
    assert!(error.contains("`issue_refund` moves money"), "{error}");
    // Positive control: the shipped schema files it where its spec says.
    bundle().check_menu([&refund]).unwrap();
}
