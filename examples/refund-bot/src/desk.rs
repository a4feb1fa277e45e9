//! A tiny support desk for the first cut of the demo: two orders, three tools, two guards.
//!
//! It is deliberately small: the full tau2-compatible domain lives in the `tools` crate once its
//! issue lands, and Cedar policies replace these guards. What it already shows is the shape:
//! tools declare scope and effect, `send_email` exists but is left off the menu, and the guards
//! decide from the records, never from what the model says.

use agent_core::guard::{ApprovalNeed, CallContext, Decision, Guard, ProposedCall, Reason};
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{EffectClass, Scope, Tool, ToolName, ToolSpec};
use async_trait::async_trait;
use guards::credentials::Verifier;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Refunds up to this amount run without a human.
const APPROVAL_THRESHOLD: f64 = 50.0;

/// The tool server's name: the audience of the tokens it accepts.
pub const AUDIENCE: &str = "support-desk";

/// The orders of the demo, shared by the tools and the guards, and the tool server's verifier.
#[derive(Clone)]
pub struct Desk {
    orders: Arc<Mutex<HashMap<String, Order>>>,
    server: Arc<Verifier>,
}

#[derive(Debug, Clone)]
struct Order {
    customer: String,
    item: String,
    paid: f64,
    refunded: f64,
}

impl Desk {
    /// Two customers, one order each; `server` checks the tokens that calls carry.
    pub fn demo(server: Arc<Verifier>) -> Self {
        let desk = Self { orders: Arc::default(), server };
        {
            let mut orders = desk.lock();
            orders.insert(
                "#W1001".into(),
                Order {
                    customer: "noah_brown_6181".into(),
                    item: "mug".into(),
                    paid: 120.0,
                    refunded: 0.0,
                },
            );
            orders.insert(
                "#W2002".into(),
                Order {
                    customer: "ava_lee_2290".into(),
                    item: "jacket".into(),
                    paid: 80.0,
                    refunded: 0.0,
                },
            );
        }
        desk
    }

    /// The tools on the refund bot's menu. `send_email` exists on the desk but is not here.
    pub fn menu_tools(&self) -> Vec<Arc<dyn Tool>> {
        vec![Arc::new(OrderDetails::new(self.clone())), Arc::new(IssueRefund::new(self.clone()))]
    }

    /// Everything refunded so far.
    pub fn total_refunded(&self) -> f64 {
        self.lock().values().map(|order| order.refunded).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Order>> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn order(&self, id: &str) -> Option<Order> {
        self.lock().get(id).cloned()
    }
}

/// Scopes from constant names.
pub fn scopes(names: &[&str]) -> Vec<Scope> {
    names.iter().map(|name| constant_scope(name)).collect()
}

// INVARIANT: every caller passes a constant name and scope that satisfy the patterns, and the
// demo runs them all at start-up, so a typo fails on the first run, never later.
#[expect(clippy::expect_used, reason = "constant names and scopes")]
fn spec(
    name: &str,
    description: &str,
    schema: Value,
    scope: &str,
    effect: EffectClass,
) -> ToolSpec {
    let name = ToolName::new(name).expect("constant tool name");
    ToolSpec::new(name, description, schema, constant_scope(scope)).effect(effect)
}

// INVARIANT: callers pass constant scopes, all used on the demo's first run.
#[expect(clippy::expect_used, reason = "constant scopes")]
fn constant_scope(scope: &str) -> Scope {
    Scope::new(scope).expect("constant scope")
}

struct OrderDetails {
    spec: ToolSpec,
    desk: Desk,
}

impl OrderDetails {
    fn new(desk: Desk) -> Self {
        let schema = json!({
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
            "additionalProperties": false
        });
        let spec = spec(
            "get_order_details",
            "Looks up an order",
            schema,
            "orders:read",
            EffectClass::Read,
        );
        Self { spec, desk }
    }
}

#[async_trait]
impl Tool for OrderDetails {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, _invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        let id = input["order_id"].as_str().unwrap_or_default();
        let order =
            self.desk.order(id).ok_or_else(|| ToolError::Rejected(format!("no order `{id}`")))?;
        Ok(ToolOutput::json(&json!({
            "order_id": id, "user_id": order.customer, "item": order.item,
            "paid": order.paid, "refunded": order.refunded,
        })))
    }
}

struct IssueRefund {
    spec: ToolSpec,
    desk: Desk,
}

impl IssueRefund {
    fn new(desk: Desk) -> Self {
        let schema = json!({
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "amount": {"type": "number", "exclusiveMinimum": 0},
                "reason": {"type": "string"}
            },
            "required": ["order_id", "amount", "reason"],
            "additionalProperties": false
        });
        let spec = spec(
            "issue_refund",
            "Refunds part of an order to its original payment method",
            schema,
            "refunds:write",
            EffectClass::Irreversible,
        );
        Self { spec, desk }
    }
}

#[async_trait]
impl Tool for IssueRefund {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        // Defence in depth: the tool server checks the per-call token itself, bound to this tool
        // and these exact arguments, and spends it.
        let token = invocation
            .credential
            .as_ref()
            .ok_or_else(|| ToolError::Rejected("no credential".into()))?;
        self.desk
            .server
            .verify_call(token.expose(), AUDIENCE, self.spec.name.as_str(), &input)
            .map_err(|rejection| {
                ToolError::Rejected(format!("refused by the tool server: {}", rejection.code()))
            })?;
        let id = input["order_id"].as_str().unwrap_or_default();
        let amount = input["amount"].as_f64().unwrap_or_default();
        let mut orders = self.desk.lock();
        let order =
            orders.get_mut(id).ok_or_else(|| ToolError::Rejected(format!("no order `{id}`")))?;
        order.refunded += amount;
        Ok(ToolOutput::json(
            &json!({"order_id": id, "refunded": amount, "total_refunded": order.refunded}),
        ))
    }
}

/// A customer's task touches only that customer's orders.
pub struct OwnOrdersOnly {
    desk: Desk,
}

impl OwnOrdersOnly {
    /// A guard over `desk`'s records.
    pub fn new(desk: Desk) -> Self {
        Self { desk }
    }
}

impl Guard for OwnOrdersOnly {
    fn name(&self) -> &str {
        "own_orders_only"
    }

    fn check(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Decision {
        let Some(order_id) = call.input.get("order_id").and_then(Value::as_str) else {
            return Decision::Allow;
        };
        let Some(order) = self.desk.order(order_id) else {
            return Decision::Deny(Reason::new("unknown_order", format!("no order `{order_id}`")));
        };
        if ctx.on_behalf_of.as_deref() == Some(order.customer.as_str()) {
            Decision::Allow
        } else {
            Decision::Deny(Reason::new(
                "cross_customer",
                format!("order `{order_id}` belongs to another customer than the task's"),
            ))
        }
    }
}

/// A refund never exceeds what is left of the payment, and large ones need a human.
pub struct RefundLimits {
    desk: Desk,
}

impl RefundLimits {
    /// A guard over `desk`'s records.
    pub fn new(desk: Desk) -> Self {
        Self { desk }
    }
}

impl Guard for RefundLimits {
    fn name(&self) -> &str {
        "refund_limits"
    }

    fn check(&self, call: &ProposedCall<'_>, _ctx: &CallContext) -> Decision {
        if call.spec.name.as_str() != "issue_refund" {
            return Decision::Allow;
        }
        let order_id = call.input.get("order_id").and_then(Value::as_str).unwrap_or_default();
        let amount = call.input.get("amount").and_then(Value::as_f64).unwrap_or(f64::INFINITY);
        let Some(order) = self.desk.order(order_id) else {
            return Decision::Deny(Reason::new("unknown_order", format!("no order `{order_id}`")));
        };
        let left = order.paid - order.refunded;
        if amount > left {
            Decision::Deny(Reason::new(
                "refund_exceeds_payment",
                format!("refund of {amount} exceeds the {left} left of the payment"),
            ))
        } else if amount > APPROVAL_THRESHOLD {
            Decision::NeedsApproval(ApprovalNeed::new(Reason::new(
                "large_refund",
                format!("refunds over {APPROVAL_THRESHOLD} need a human"),
            )))
        } else {
            Decision::Allow
        }
    }
}
