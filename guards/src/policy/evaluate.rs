//! One authorization: the facts of a call become a Cedar request, and Cedar's two-valued answer
//! becomes Warden's three outcomes.
//!
//! - Some permit applies, no forbid does, and at least one applying permit has no `@approval`:
//!   **allow**.
//! - Some permit applies, no forbid does, and every applying permit carries `@approval`:
//!   **allow with a human's yes**.
//! - No permit applies, or a forbid does, or any policy failed to evaluate: **deny** (an error
//!   is never silence: Cedar skips a policy that errors, which could drop a forbid, so Warden
//!   refuses instead).

use super::bundle::PolicyBundle;
use super::entities::{ResolvedEntity, to_cedar, to_expression, uid};
use crate::budget::{Counters, Usage};
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Request, RestrictedExpression,
};
use serde::Serialize;
use serde_json::{Value, json};

/// What the policy is told about a call, in its own terms.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFacts<'a> {
    /// The acting agent (the principal).
    pub agent: &'a str,
    /// The delegation chain from the root agent.
    pub chain: Vec<String>,
    /// The tool, which is the Cedar action.
    pub action: &'a str,
    /// The entity touched, as `(type, id)`; `None` for calls that name no record.
    pub resource: Option<(&'a str, &'a str)>,
    /// The task.
    pub task: &'a str,
    /// The customer the task serves.
    pub customer: Option<&'a str>,
    /// Calls the task made before this one.
    pub calls_made: u32,
    /// Whether the model gave this call an id it had already given another call of the task
    /// (`context.task.repeated_call_id`): it gains nothing by it, since the runtime keys on its
    /// own ids, but a policy may treat it as the sign of a model off the rails.
    pub repeated_call_id: bool,
    /// The money the call moves, in cents (0 for calls that move none).
    pub amount_cents: i64,
    /// The arguments (floats and nulls are left out of the Cedar context: money is
    /// `amount_cents`).
    pub args: &'a Value,
    /// Whether untrusted content is in the task's conversation.
    pub tainted: bool,
    /// The arguments whose values appear only in untrusted content.
    pub untrusted_args: Vec<String>,
    /// Budget usage so far.
    pub usage: Usage,
    /// Facts the system of record holds about this call, worked out by the resolver from the
    /// arguments and the records they name (`context.facts`): the refundable amount of the items
    /// a refund names, say. Empty for calls it knows nothing about.
    pub facts: &'a serde_json::Map<String, Value>,
    /// What outbound text carries that nothing vouches for (`context.outbound`).
    pub outbound: &'a OutboundFacts,
}

/// The kinds of mention (`link`, `email`, `phone`, `identifier`, `amount`) in a call's outbound
/// text, by what vouches for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundFacts {
    /// Kinds with a mention seen only in untrusted content.
    pub untrusted: Vec<String>,
    /// Kinds with a mention nothing vouches for (untrusted, made up, or this task's own echo).
    pub unvouched: Vec<String>,
}

/// What the policy decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The outcome.
    pub outcome: Outcome,
    /// The `@id`s of the policies that determined it (the permits that applied for an allow, the
    /// forbids that applied for a deny).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (each is a denial).
    pub errors: Vec<String>,
    /// The context the policies saw, as JSON, for `explain` and the audit log.
    pub context: Value,
}

/// Warden's three outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Allowed.
    Allow,
    /// Allowed with a human's yes; the sentences of the `@approval` annotations.
    NeedsApproval {
        /// Why a human must look.
        reasons: Vec<String>,
    },
    /// Refused.
    Deny {
        /// A stable code: the first applying forbid's `@id`, or `no_permit`, `policy_error`,
        /// `unknown_resource`.
        code: String,
        /// A sentence for the operator: the forbids' `@reason`s, or what went wrong.
        reason: String,
    },
}

impl Outcome {
    /// `allow`, `approval` or `deny`, as test cases write them.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::NeedsApproval { .. } => "approval",
            Self::Deny { .. } => "deny",
        }
    }
}

impl PolicyBundle {
    /// Decides on a call, given the facts and the entities its resource resolved to.
    pub fn evaluate(&self, facts: &CallFacts<'_>, resolved: &[ResolvedEntity]) -> Evaluation {
        let context_json = context_json(facts);
        match self.authorize(facts, resolved, &context_json) {
            Ok(evaluation) => evaluation,
            Err(message) => Evaluation {
                outcome: Outcome::Deny { code: "policy_error".to_owned(), reason: message },
                policies: Vec::new(),
                errors: Vec::new(),
                context: context_json,
            },
        }
    }

    fn authorize(
        &self,
        facts: &CallFacts<'_>,
        resolved: &[ResolvedEntity],
        context_json: &Value,
    ) -> Result<Evaluation, String> {
        let principal = uid("Agent", facts.agent)?;
        let action = uid("Action", facts.action)?;
        let resource = match facts.resource {
            Some((entity_type, id)) => uid(entity_type, id)?,
            None => uid(UNSCOPED, "-")?,
        };
        let context =
            Context::from_pairs(context_pairs(facts)?).map_err(|error| error.to_string())?;
        let request = Request::new(principal, action, resource, context, None)
            .map_err(|error| error.to_string())?;
        let mut call_entities = Vec::with_capacity(resolved.len() + 1);
        for entity in resolved {
            call_entities.push(to_cedar(entity)?);
        }
        if facts.resource.is_none() {
            call_entities
                .push(cedar_policy::Entity::new_no_attrs(uid(UNSCOPED, "-")?, Default::default()));
        }
        let entities = Entities::from_entities(
            self.request_entities(facts.action, facts.agent).cloned().chain(call_entities),
            None,
        )
        .map_err(|error| error.to_string())?;

        let policies = self
            .policies_for(facts.action)
            .ok_or_else(|| format!("the schema declares no action `{}`", facts.action))?;
        let response = Authorizer::new().is_authorized(&request, policies, &entities);
        let determining = self.in_order(response.diagnostics().reason());
        let policies: Vec<String> = determining.iter().map(|id| self.label(id)).collect();
        let errors: Vec<String> =
            response.diagnostics().errors().map(ToString::to_string).collect();
        let outcome = if !errors.is_empty() {
            Outcome::Deny { code: "policy_error".to_owned(), reason: errors.join("; ") }
        } else {
            match response.decision() {
                CedarDecision::Allow => {
                    let approvals: Vec<Option<String>> =
                        determining.iter().map(|id| self.approval(id)).collect();
                    if approvals.iter().all(Option::is_some) && !approvals.is_empty() {
                        Outcome::NeedsApproval {
                            reasons: approvals.into_iter().flatten().collect(),
                        }
                    } else {
                        Outcome::Allow
                    }
                }
                CedarDecision::Deny => match policies.first() {
                    Some(first) => Outcome::Deny {
                        code: first.clone(),
                        reason: determining
                            .iter()
                            .map(|id| self.reason(id))
                            .collect::<Vec<_>>()
                            .join("; "),
                    },
                    None => Outcome::Deny {
                        code: "no_permit".to_owned(),
                        reason: format!("no policy permits `{}` here", facts.action),
                    },
                },
            }
        };
        Ok(Evaluation { outcome, policies, errors, context: context_json.clone() })
    }
}

/// The entity type of the resource of calls that name no record.
pub const UNSCOPED: &str = "Unscoped";

fn usage_expression(counters: &Counters) -> Result<RestrictedExpression, String> {
    let long =
        |value: u64| RestrictedExpression::new_long(i64::try_from(value).unwrap_or(i64::MAX));
    RestrictedExpression::new_record([
        ("read_calls".to_owned(), long(counters.read_calls)),
        ("write_calls".to_owned(), long(counters.write_calls)),
        ("irreversible_calls".to_owned(), long(counters.irreversible_calls)),
        ("money_cents".to_owned(), RestrictedExpression::new_long(counters.money_cents)),
    ])
    .map_err(|error| error.to_string())
}

fn context_pairs(facts: &CallFacts<'_>) -> Result<Vec<(String, RestrictedExpression)>, String> {
    let record = |fields: Vec<(&str, RestrictedExpression)>| {
        RestrictedExpression::new_record(
            fields.into_iter().map(|(name, value)| (name.to_owned(), value)),
        )
        .map_err(|error| error.to_string())
    };
    let strings = |items: &[String]| {
        RestrictedExpression::new_set(
            items.iter().map(|item| RestrictedExpression::new_string(item.clone())),
        )
    };
    let mut task = vec![
        ("id", RestrictedExpression::new_string(facts.task.to_owned())),
        ("chain", strings(&facts.chain)),
        ("delegated", RestrictedExpression::new_bool(facts.chain.len() > 1)),
        ("calls_made", RestrictedExpression::new_long(i64::from(facts.calls_made))),
        ("repeated_call_id", RestrictedExpression::new_bool(facts.repeated_call_id)),
    ];
    if let Some(customer) = facts.customer {
        task.push(("customer", RestrictedExpression::new_entity_uid(uid("User", customer)?)));
    }
    let budget = record(vec![
        ("task", usage_expression(&facts.usage.task)?),
        ("agent_today", usage_expression(&facts.usage.agent_today)?),
        ("customer_today", usage_expression(&facts.usage.customer_today)?),
    ])?;
    let provenance = record(vec![
        ("tainted", RestrictedExpression::new_bool(facts.tainted)),
        ("untrusted_args", strings(&facts.untrusted_args)),
    ])?;
    let outbound = record(vec![
        ("untrusted", strings(&facts.outbound.untrusted)),
        ("unvouched", strings(&facts.outbound.unvouched)),
    ])?;
    // Schemas declare `facts` and `outbound` only for the actions whose rules read them; the
    // request is not schema-checked, so other actions simply carry them unread.
    Ok(vec![
        ("task".to_owned(), record(task)?),
        ("amount_cents".to_owned(), RestrictedExpression::new_long(facts.amount_cents)),
        ("budget".to_owned(), budget),
        ("provenance".to_owned(), provenance),
        ("args".to_owned(), args_expression(facts.args)?),
        ("facts".to_owned(), to_expression(&Value::Object(facts.facts.clone()))?),
        ("outbound".to_owned(), outbound),
    ])
}

/// The arguments as a Cedar record: floats and nulls left out (see [`CallFacts::args`]).
fn args_expression(args: &Value) -> Result<RestrictedExpression, String> {
    let fields = match args.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(_, value)| cedar_representable(value))
            .map(|(name, value)| Ok((name.clone(), to_expression(value)?)))
            .collect::<Result<Vec<_>, String>>()?,
        None => Vec::new(),
    };
    RestrictedExpression::new_record(fields).map_err(|error| error.to_string())
}

fn cedar_representable(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Number(number) => number.is_i64(),
        Value::Array(items) => items.iter().all(cedar_representable),
        Value::Object(fields) => fields.values().all(cedar_representable),
        Value::String(_) | Value::Bool(_) => true,
    }
}

/// The same context, as JSON, for explanations and the audit log.
fn context_json(facts: &CallFacts<'_>) -> Value {
    json!({
        "principal": facts.agent,
        "action": facts.action,
        "resource": facts.resource.map(|(entity_type, id)| format!("{entity_type}::{id}")),
        "task": {
            "id": facts.task,
            "customer": facts.customer,
            "chain": facts.chain,
            "calls_made": facts.calls_made,
            "repeated_call_id": facts.repeated_call_id,
        },
        "amount_cents": facts.amount_cents,
        "budget": facts.usage,
        "provenance": { "tainted": facts.tainted, "untrusted_args": facts.untrusted_args },
        "facts": facts.facts,
        "outbound": facts.outbound,
    })
}
