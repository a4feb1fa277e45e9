//! The policy guard: Cedar decides each call, with the budget spent in the same transaction.
//!
//! For each call it resolves the resource the tool declares (`order_id` → the order and its
//! owner), works out the money the call moves, asks provenance which arguments came only from
//! untrusted content, and then, inside one budget transaction, reads the usage so far, evaluates
//! the policies, and records the spend if the call may go ahead (checking the hard caps). A later
//! refusal (a human says no) gives the spend back through [`Guard::release`].

use super::bundle::{Mode, PolicyBundle};
use super::entities::{EntityResolver, ResolvedEntity};
use super::evaluate::{CallFacts, Evaluation, OutboundFacts, Outcome};
use crate::budget::{BudgetError, BudgetStore, Class, Limits, Spend, Usage, Verdict, today};
use crate::outbound;
use crate::provenance::{Origin, ProvenanceIndex};
use agent_core::guard::{ApprovalNeed, CallContext, Decision, Guard, ProposedCall, Reason};
use agent_core::{EffectClass, MoneyMoved};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// Decides calls with a [`PolicyBundle`], optionally spending a budget atomically with each
/// decision.
pub struct PolicyGuard {
    bundle: Arc<PolicyBundle>,
    resolver: Arc<dyn EntityResolver>,
    budget: Option<(Arc<BudgetStore>, Limits)>,
    provenance: Mutex<HashMap<String, TaskProvenance>>,
}

/// A task's provenance index, grown as the task reads more.
struct TaskProvenance {
    index: ProvenanceIndex,
    evidence_seen: usize,
}

/// At most this many tasks' provenance indexes are kept; past it the cache starts afresh (an
/// index is rebuilt from the call context when needed, so this costs time, never correctness).
const PROVENANCE_TASKS: usize = 256;

/// What [`PolicyGuard::explain`] returns: the outcome, the policies that determined it, the
/// context they saw, and the budget usage.
pub type Explanation = Value;

impl PolicyGuard {
    /// A guard deciding with `bundle`, resolving resources with `resolver`.
    pub fn new(bundle: Arc<PolicyBundle>, resolver: Arc<dyn EntityResolver>) -> Self {
        Self { bundle, resolver, budget: None, provenance: Mutex::default() }
    }

    /// Spends from `store` within `limits`, atomically with each decision.
    #[must_use]
    pub fn with_budget(mut self, store: Arc<BudgetStore>, limits: Limits) -> Self {
        self.budget = Some((store, limits));
        self
    }

    /// The bundle.
    pub fn bundle(&self) -> &PolicyBundle {
        &self.bundle
    }

    /// What the policy would decide for this call, why, and on what context, without spending:
    /// for operators asking "why was this refused?" and for reviewers.
    pub fn explain(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Explanation {
        match self.prepare(call, ctx) {
            Err(refusal) => {
                json!({ "outcome": "deny", "code": refusal.code, "reason": refusal.detail })
            }
            Ok(prepared) => {
                let usage = match &self.budget {
                    // The root's counters: what the whole piece of work has spent.
                    Some((store, _)) => match store.usage(
                        ctx.root_task().as_str(),
                        delegators(ctx).first().copied().unwrap_or(ctx.agent.as_str()),
                        ctx.on_behalf_of.as_deref(),
                        &today(),
                    ) {
                        Ok(usage) => usage,
                        Err(error) => {
                            return json!({ "outcome": "deny", "code": "budget_unavailable", "reason": error.to_string() });
                        }
                    },
                    None => Usage::default(),
                };
                let evaluation = self.evaluate(&prepared, call, ctx, usage);
                explanation(&evaluation, self.bundle.mode(), &usage, &prepared)
            }
        }
    }

    fn decide(
        &self,
        call: &ProposedCall<'_>,
        ctx: &CallContext,
    ) -> Result<(Evaluation, Usage, Prepared), Reason> {
        let prepared = self.prepare(call, ctx)?;
        let Some((store, limits)) = &self.budget else {
            let evaluation = self.evaluate(&prepared, call, ctx, Usage::default());
            return Ok((evaluation, Usage::default(), prepared));
        };
        let day = today();
        let call_key = call_key(call, ctx);
        let serves: Vec<&str> = ctx.serves.iter().map(|task| task.as_str()).collect();
        let delegators = delegators(ctx);
        let spend = Spend {
            call_key: &call_key,
            task: ctx.task.as_str(),
            serves: &serves,
            agent: ctx.agent.as_str(),
            delegators: &delegators,
            customer: ctx.on_behalf_of.as_deref(),
            day: &day,
            class: class_of(call.spec.effect),
            money_cents: prepared.amount_cents,
        };
        let enforce = self.bundle.mode() == Mode::Enforce;
        let decided = store.transact(&spend, limits, |usage| {
            let evaluation = self.evaluate(&prepared, call, ctx, *usage);
            // Spend only for a call that may go ahead: allowed, sent to a human (released if the
            // human says no), or let through by shadow mode.
            if matches!(evaluation.outcome, Outcome::Deny { .. }) && enforce {
                Verdict::NoSpend((evaluation, *usage))
            } else {
                Verdict::Spend((evaluation, *usage))
            }
        });
        decided.map(|(evaluation, usage)| (evaluation, usage, prepared)).map_err(|error| match error {
            BudgetError::Exceeded { scope, counter, cap, would_be } => Reason::new(
                "budget_exceeded",
                format!("the {scope} budget allows {counter} up to {cap}; this call would reach {would_be}"),
            ),
            other => Reason::new("budget_unavailable", other.to_string()),
        })
    }

    /// Everything about a call that does not depend on the budget.
    fn prepare(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Result<Prepared, Reason> {
        let (resource, resolved) = match &call.spec.resource {
            None => (None, Vec::new()),
            Some(reference) => {
                let id = call.input.get(&reference.argument).and_then(Value::as_str).ok_or_else(
                    || {
                        Reason::new(
                            "unknown_resource",
                            format!(
                                "argument `{}` names no {}",
                                reference.argument, reference.entity_type
                            ),
                        )
                    },
                )?;
                let resolved = self
                    .resolver
                    .resolve(&reference.entity_type, id)
                    .map_err(|error| Reason::new("resolver_failed", error))?
                    .ok_or_else(|| {
                        Reason::new(
                            "unknown_resource",
                            format!("no {} `{id}`", reference.entity_type),
                        )
                    })?;
                (Some((reference.entity_type.clone(), id.to_owned())), resolved)
            }
        };
        let derived = self
            .resolver
            .derive(call.spec.name.as_str(), call.input)
            .map_err(|error| Reason::new("resolver_failed", error))?;
        let amount_cents = match &call.spec.money {
            None => 0,
            Some(MoneyMoved::Argument(argument)) => {
                cents(call.input.get(argument)).ok_or_else(|| {
                    Reason::new(
                        "invalid_amount",
                        format!("`{argument}` is not a non-negative amount"),
                    )
                })?
            }
            Some(MoneyMoved::Resolved) => derived.money_cents.ok_or_else(|| {
                Reason::new(
                    "unpriced_money",
                    format!(
                        "`{}` moves money and nothing could say how much: refused",
                        call.spec.name
                    ),
                )
            })?,
        };
        let (origins, outbound) = self.argument_origins(call, ctx);
        Ok(Prepared { resource, resolved, amount_cents, origins, facts: derived.facts, outbound })
    }

    fn evaluate(
        &self,
        prepared: &Prepared,
        call: &ProposedCall<'_>,
        ctx: &CallContext,
        usage: Usage,
    ) -> Evaluation {
        let facts = CallFacts {
            agent: ctx.agent.as_str(),
            chain: ctx.chain.iter().map(ToString::to_string).collect(),
            action: call.spec.name.as_str(),
            resource: prepared
                .resource
                .as_ref()
                .map(|(entity_type, id)| (entity_type.as_str(), id.as_str())),
            task: ctx.task.as_str(),
            customer: ctx.on_behalf_of.as_deref(),
            calls_made: ctx.calls_made,
            repeated_call_id: call.proposer_id_repeated,
            amount_cents: prepared.amount_cents,
            args: call.input,
            tainted: ctx.tainted(),
            untrusted_args: prepared
                .origins
                .iter()
                .filter(|(_, origin)| matches!(origin, Origin::UntrustedOnly { .. }))
                .map(|(name, _)| name.clone())
                .collect(),
            usage,
            facts: &prepared.facts,
            outbound: &prepared.outbound.facts,
        };
        self.bundle.evaluate(&facts, &prepared.resolved)
    }

    /// Where each top-level argument's value was seen (empty for an untainted task: nothing
    /// untrusted to have come from), and what the call's outbound text mentions.
    fn argument_origins(
        &self,
        call: &ProposedCall<'_>,
        ctx: &CallContext,
    ) -> (BTreeMap<String, Origin>, OutboundReport) {
        let input = call.input;
        if !ctx.tainted() && call.spec.outbound_text.is_empty() {
            return (BTreeMap::new(), OutboundReport::default());
        }
        let mut cache = self.provenance.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() > PROVENANCE_TASKS && !cache.contains_key(ctx.task.as_str()) {
            cache.clear();
        }
        let task = cache.entry(ctx.task.to_string()).or_insert_with(|| TaskProvenance {
            index: ProvenanceIndex::default(),
            evidence_seen: 0,
        });
        // A context with less evidence than the cache has seen is another run of a task id:
        // start its index afresh rather than judge it by what another run read.
        if ctx.evidence.len() < task.evidence_seen {
            *task = TaskProvenance { index: ProvenanceIndex::default(), evidence_seen: 0 };
        }
        for piece in ctx.evidence.iter().skip(task.evidence_seen) {
            task.index.add_evidence(piece);
        }
        task.evidence_seen = ctx.evidence.len();
        let outbound = OutboundReport::of(call, &task.index);
        let origins = if ctx.tainted() { task.index.classify(input) } else { BTreeMap::new() };
        (origins, outbound)
    }
}

struct Prepared {
    resource: Option<(String, String)>,
    resolved: Vec<ResolvedEntity>,
    amount_cents: i64,
    origins: BTreeMap<String, Origin>,
    facts: serde_json::Map<String, Value>,
    outbound: OutboundReport,
}

/// What the outbound text of a call mentions, and what vouches for each mention.
#[derive(Debug, Default)]
struct OutboundReport {
    facts: OutboundFacts,
    /// Each mention with its kind and origin, for the audit log and the reviewer.
    mentions: Vec<Value>,
}

impl OutboundReport {
    fn of(call: &ProposedCall<'_>, index: &ProvenanceIndex) -> Self {
        let mut report = Self::default();
        for argument in &call.spec.outbound_text {
            let Some(text) = call.input.get(argument).and_then(Value::as_str) else { continue };
            for mention in outbound::mentions(text) {
                let origin = index.origin_of(&mention.value);
                let kind = mention.kind.as_str().to_owned();
                if origin.is_untrusted_only() && !report.facts.untrusted.contains(&kind) {
                    report.facts.untrusted.push(kind.clone());
                }
                if !origin.is_trusted() && !report.facts.unvouched.contains(&kind) {
                    report.facts.unvouched.push(kind.clone());
                }
                report.mentions.push(json!({
                    "argument": argument,
                    "kind": kind,
                    "text": mention.text,
                    "origin": origin,
                }));
            }
        }
        report
    }
}

impl Guard for PolicyGuard {
    fn name(&self) -> &str {
        "policy"
    }

    fn check(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Decision {
        self.check_explained(call, ctx).0
    }

    fn check_explained(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> (Decision, Value) {
        let (evaluation, usage, prepared) = match self.decide(call, ctx) {
            Ok(decided) => decided,
            Err(reason) => return (Decision::Deny(reason), Value::Null),
        };
        let detail = explanation(&evaluation, self.bundle.mode(), &usage, &prepared);
        if self.bundle.mode() == Mode::LogOnly {
            // Shadow mode: the verdict is on record (in `detail`), and the call goes on.
            return (Decision::Allow, detail);
        }
        let decision = match evaluation.outcome {
            Outcome::Allow => Decision::Allow,
            Outcome::NeedsApproval { reasons } => Decision::NeedsApproval(ApprovalNeed {
                reason: Reason::new("policy_requires_approval", reasons.join("; ")),
                policies: evaluation.policies,
            }),
            Outcome::Deny { code, reason } => Decision::Deny(Reason::new(code, reason)),
        };
        (decision, detail)
    }

    fn release(&self, call: &ProposedCall<'_>, ctx: &CallContext) {
        let Some((store, _)) = &self.budget else { return };
        if let Err(error) = store.release(&call_key(call, ctx)) {
            tracing::error!(%error, call = %call.id, "a budget reservation could not be released");
        }
    }
}

/// What the audit event and a reviewer see: the decision, the policies that made it, the
/// context they saw, the budget used so far, and where each argument's value was seen.
fn explanation(evaluation: &Evaluation, mode: Mode, usage: &Usage, prepared: &Prepared) -> Value {
    json!({
        "mode": mode,
        "decision": evaluation.outcome,
        "policies": evaluation.policies,
        "errors": evaluation.errors,
        "context": evaluation.context,
        "usage": usage,
        "argument_provenance": prepared.origins,
        "outbound_mentions": prepared.outbound.mentions,
    })
}

/// The key a call's spend is recorded under: the task and the runtime's id for the call, which
/// nothing the model says can repeat.
fn call_key(call: &ProposedCall<'_>, ctx: &CallContext) -> String {
    format!("{}/{}", ctx.task, call.id)
}

/// The agents above the acting one in the delegation chain, root first.
fn delegators(ctx: &CallContext) -> Vec<&str> {
    let above = ctx.chain.len().saturating_sub(1);
    ctx.chain[..above]
        .iter()
        .map(|agent| agent.as_str())
        .filter(|a| *a != ctx.agent.as_str())
        .collect()
}

fn class_of(effect: EffectClass) -> Class {
    match effect {
        EffectClass::Read => Class::Read,
        EffectClass::Write => Class::Write,
        EffectClass::Irreversible => Class::Irreversible,
    }
}

/// An amount in currency units as integer cents: only finite, non-negative numbers.
fn cents(value: Option<&Value>) -> Option<i64> {
    let amount = value?.as_f64()?;
    if !amount.is_finite() || !(0.0..=1e13).contains(&amount) {
        return None;
    }
    // INVARIANT: bounded above, so the conversion cannot overflow.
    #[expect(clippy::cast_possible_truncation, reason = "bounded to 1e15 cents just above")]
    Some((amount * 100.0).round() as i64)
}
