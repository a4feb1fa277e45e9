//! Decision time of the policy guard alone, and of the whole pipeline in front of a refund:
//! menu, schema, credential, policy (with provenance), budget (SQLite, in the decision's
//! transaction), and the JSONL audit sink without fsync. Median and p99 per call. The pipeline
//! runs three ways in alternating rounds: an unsigned log, signed checkpoints on the default
//! policy, and a checkpoint every 10 events (the cost of signing made visible).
//!
//! Run: `cargo bench -p guards --bench policy` (figures in docs/performance.md).

// A bench binary: its output is for people, and it has no API to document.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use agent_core::audit::{AuditLog, CheckpointPolicy, Checkpoints, Fsync, JsonlSink};
use agent_core::guard::{CallContext, Evidence, Guard, ProposedCall};
use agent_core::pipeline::CallRequest;
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{
    AgentId, CallId, EffectClass, Pipeline, Scope, TaskId, Tool, ToolMenu, ToolName, ToolSpec,
};
use async_trait::async_trait;
use guards::budget::{BudgetStore, Limits};
use guards::credentials::{CredentialGuard, Issuer, KeyRing, TaskGrant};
use guards::notary::IssuerNotary;
use guards::policy::{PolicyBundle, PolicyGuard, StaticEntities};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: usize = 1_000;
const MEASURED: usize = 8_000;

struct Noop(ToolSpec);

#[async_trait]
impl Tool for Noop {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    async fn call(&self, _input: Value, _invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::text("refunded"))
    }
}

fn refund_spec() -> ToolSpec {
    let schema = json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "pattern": "^#W[0-9]+$"},
            "amount": {"type": "number", "minimum": 0},
            "reason": {"type": "string", "maxLength": 500}
        },
        "required": ["order_id", "amount", "reason"],
        "additionalProperties": false
    });
    ToolSpec::new(
        ToolName::new("issue_refund").unwrap(),
        "Refunds part of an order",
        schema,
        Scope::new("refunds:write").unwrap(),
    )
    .effect(EffectClass::Irreversible)
    .touches("Order", "order_id")
    .moves_money("amount")
}

fn context(task: &str) -> CallContext {
    let mut ctx = CallContext::new(AgentId::new("refund-bot"), TaskId::new(task));
    ctx.on_behalf_of = Some("noah_brown_6181".into());
    ctx.add_untrusted(
        "ticket",
        "Hello, my mug from order #W1001 arrived chipped and the handle came off when I \
               unpacked it. I would like a refund for the mug please. I have been a customer for \
               years and this is the first time something like this happened. Thanks, Noah"
            .repeat(2),
    );
    ctx.evidence.push(Evidence::Facts {
        source: "tool:get_order_details".into(),
        values: ["#W1001", "noah_brown_6181", "delivered", "payment", "credit_card_1111"]
            .into_iter()
            .map(Value::from)
            .chain([Value::from(0.01)])
            .collect(),
    });
    ctx
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<48} median {:>8.1} µs   p99 {:>8.1} µs   ({} calls)",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn main() {
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
    let spec = refund_spec();
    let args = json!({"order_id": "#W1001", "amount": 0.01, "reason": "chipped mug"});
    let digest = agent_core::canonical::digest(&args);

    // The policy guard alone: resolution, provenance, Cedar; no budget.
    let guard = PolicyGuard::new(Arc::clone(&bundle), entities.clone());
    let ctx = context("T-bench-policy");
    let mut samples = Vec::with_capacity(MEASURED);
    for n in 0..WARMUP + MEASURED {
        let id = CallId::new(format!("c{n}"));
        let call = ProposedCall {
            id: &id,
            proposer_id: None,
            proposer_id_repeated: false,
            spec: &spec,
            input: &args,
            args_digest: &digest,
            stated_reason: "",
        };
        let start = Instant::now();
        let decision = guard.check_explained(&call, &ctx);
        let elapsed = start.elapsed();
        assert!(matches!(decision.0, agent_core::Decision::Allow), "{:?}", decision.0);
        if n >= WARMUP {
            samples.push(elapsed);
        }
    }
    report("policy guard alone (issue_refund, allowed)", samples);

    // The whole pipeline, without and with signed checkpoints, in alternating rounds.
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let issuer = Arc::new(
        Issuer::new("warden", KeyRing::open(dir.path().join("keys"), now).unwrap()).unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let variants = [
        ("whole pipeline: authorize (no fsync)", None),
        ("  with checkpoints (1000 events / 1 s)", Some(CheckpointPolicy::default())),
        (
            "  with checkpoints every 10 events",
            Some(CheckpointPolicy { every_events: 10, every: Duration::from_secs(1) }),
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for (index, (_, checkpoints)) in variants.iter().enumerate() {
            let log = dir.path().join(format!("audit-{index}-{round}.jsonl"));
            let sink = match checkpoints {
                None => JsonlSink::open(&log, Fsync::Never).unwrap(),
                Some(policy) => {
                    let signer = Arc::new(IssuerNotary::new(Arc::clone(&issuer)));
                    let checkpoints = Checkpoints::new(signer).with_policy(*policy);
                    JsonlSink::open_signed(&log, Fsync::Never, checkpoints).unwrap()
                }
            };
            let budget = dir.path().join(format!("budget-{index}-{round}.sqlite"));
            let pipeline = pipeline_over(sink, &issuer, &spec, &bundle, &entities, &budget);
            let ctx = task_context(&issuer);
            let measured = runtime.block_on(time_authorize(&pipeline, &ctx, &args));
            samples[index].extend(measured);
            pipeline.audit().close().unwrap();
        }
    }
    for ((name, _), samples) in variants.iter().zip(samples) {
        report(name, samples);
    }
}

const ROUNDS: usize = 3;

fn pipeline_over(
    sink: JsonlSink,
    issuer: &Issuer,
    spec: &ToolSpec,
    bundle: &Arc<PolicyBundle>,
    entities: &Arc<StaticEntities>,
    budget: &Path,
) -> Pipeline {
    let store = Arc::new(BudgetStore::open(budget).unwrap());
    let menu = ToolMenu::new([Arc::new(Noop(spec.clone())) as Arc<dyn Tool>]).unwrap();
    Pipeline::new(Arc::new(menu), AuditLog::new(Arc::new(sink)))
        .with_guard(Arc::new(CredentialGuard::new(
            Arc::new(issuer.verifier().unwrap()),
            "support-desk",
        )))
        .with_guard(Arc::new(
            PolicyGuard::new(Arc::clone(bundle), entities.clone())
                .with_budget(store, Limits::default()),
        ))
}

fn task_context(issuer: &Issuer) -> CallContext {
    let mut ctx = context("T-bench-pipeline");
    ctx.credential = Some(
        issuer
            .mint_task(&TaskGrant {
                agent: AgentId::new("refund-bot"),
                task: TaskId::new("T-bench-pipeline"),
                audience: vec!["support-desk".into()],
                scopes: vec![Scope::new("refunds:write").unwrap()],
                on_behalf_of: Some("noah_brown_6181".into()),
                lifetime: Some(Duration::from_secs(3600)),
            })
            .unwrap(),
    );
    ctx
}

/// `authorize` of one allowed refund, timed, after a warm-up.
async fn time_authorize(pipeline: &Pipeline, ctx: &CallContext, args: &Value) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(MEASURED / ROUNDS);
    for n in 0..WARMUP + MEASURED / ROUNDS {
        let request = CallRequest {
            proposer_id: Some(format!("c{n}")),
            tool: "issue_refund".into(),
            input: args.clone(),
            stated_reason: "refunding the chipped mug".into(),
        };
        let start = Instant::now();
        let authorized = pipeline.authorize(&request, ctx).await.unwrap();
        let elapsed = start.elapsed();
        drop(authorized);
        if n >= WARMUP {
            samples.push(elapsed);
        }
    }
    samples
}
