//! A small support desk for the demo: two customers, three orders, two tools, and the records
//! the Cedar policy reads.
//!
//! The full tau2-compatible domain arrives in the `tools` crate with its own issue. What this one
//! already shows is the shape: tools declare scope, effect, the record they touch and the money
//! they move; `send_email` exists on the desk but is left off the menu; the policy decides from
//! these records (via [`EntityResolver`]), never from what the model says.

use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{EffectClass, Scope, Tool, ToolName, ToolSpec};
use async_trait::async_trait;
use guards::credentials::Verifier;
use guards::policy::{EntityResolver, ResolvedEntity};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The tool server's name: the audience of the tokens it accepts.
pub const AUDIENCE: &str = "support-desk";

/// The desk's records, shared by the tools and the policy, and the tool server's verifier.
#[derive(Clone)]
pub struct Desk {
    records: Arc<Mutex<Records>>,
    server: Arc<Verifier>,
}

#[derive(Default)]
struct Records {
    users: HashMap<String, User>,
    orders: HashMap<String, Order>,
}

struct User {
    payment_methods: Vec<String>,
    gift_cards: Vec<String>,
}

struct Order {
    customer: String,
    status: String,
    /// (name, price in cents)
    items: Vec<(String, i64)>,
    payment_method: String,
    refunded_cents: i64,
}

impl Order {
    fn paid_cents(&self) -> i64 {
        self.items.iter().map(|(_, price)| price).sum()
    }
}

impl Desk {
    /// The demo's records; `server` checks the tokens that calls carry.
    pub fn demo(server: Arc<Verifier>) -> Self {
        let mut records = Records::default();
        for (id, card, gift) in [
            ("noah_brown_6181", "credit_card_1111", "gift_card_1001"),
            ("ava_lee_2290", "credit_card_2222", "gift_card_2002"),
        ] {
            records.users.insert(
                id.into(),
                User {
                    payment_methods: vec![card.into(), gift.into()],
                    gift_cards: vec![gift.into()],
                },
            );
        }
        let order = |customer: &str, items: &[(&str, i64)], card: &str| Order {
            customer: customer.into(),
            status: "delivered".into(),
            items: items.iter().map(|(name, price)| ((*name).to_owned(), *price)).collect(),
            payment_method: card.into(),
            refunded_cents: 0,
        };
        records.orders.insert(
            "#W1001".into(),
            order("noah_brown_6181", &[("mug", 2499), ("tea set", 8900)], "credit_card_1111"),
        );
        records.orders.insert(
            "#W2002".into(),
            order("ava_lee_2290", &[("jacket", 18000)], "credit_card_2222"),
        );
        Self { records: Arc::new(Mutex::new(records)), server }
    }

    /// The tools on the refund bot's menu. `send_email` exists on the desk but is not here.
    pub fn menu_tools(&self) -> Vec<Arc<dyn Tool>> {
        vec![Arc::new(OrderDetails::new(self.clone())), Arc::new(IssueRefund::new(self.clone()))]
    }

    /// Everything refunded so far, in dollars.
    pub fn total_refunded(&self) -> f64 {
        let cents: i64 = self.lock().orders.values().map(|order| order.refunded_cents).sum();
        cents as f64 / 100.0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EntityResolver for Desk {
    fn resolve(&self, entity_type: &str, id: &str) -> Result<Option<Vec<ResolvedEntity>>, String> {
        let records = self.lock();
        let user_entity = |user_id: &str| {
            records.users.get(user_id).map(|user| ResolvedEntity {
                entity_type: "User".into(),
                id: user_id.into(),
                attrs: attrs(json!({
                    "payment_methods": user.payment_methods,
                    "gift_cards": user.gift_cards,
                })),
            })
        };
        Ok(match entity_type {
            "User" => user_entity(id).map(|user| vec![user]),
            "Order" => records.orders.get(id).map(|order| {
                let entity = ResolvedEntity {
                    entity_type: "Order".into(),
                    id: id.into(),
                    attrs: attrs(json!({
                        "owner": {"__entity": {"type": "User", "id": order.customer}},
                        "status": order.status,
                        "paid_cents": order.paid_cents(),
                        "refunded_cents": order.refunded_cents,
                        "refundable_cents": order.paid_cents() - order.refunded_cents,
                        "payment_methods": [order.payment_method],
                    })),
                };
                std::iter::once(entity).chain(user_entity(&order.customer)).collect()
            }),
            _ => None,
        })
    }
}

fn attrs(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
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
        )
        .touches("Order", "order_id");
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
        let records = self.desk.lock();
        let order = records
            .orders
            .get(id)
            .ok_or_else(|| ToolError::Rejected(format!("no order `{id}`")))?;
        let items: Vec<Value> = order
            .items
            .iter()
            .map(|(name, cents)| json!({"name": name, "price": *cents as f64 / 100.0}))
            .collect();
        Ok(ToolOutput::json(&json!({
            "order_id": id,
            "user_id": order.customer,
            "status": order.status,
            "items": items,
            "payment_method_id": order.payment_method,
            "refunded": order.refunded_cents as f64 / 100.0,
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
        )
        .touches("Order", "order_id")
        .moves_money("amount");
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
        let cents = (input["amount"].as_f64().unwrap_or_default() * 100.0).round() as i64;
        let mut records = self.desk.lock();
        let order = records
            .orders
            .get_mut(id)
            .ok_or_else(|| ToolError::Rejected(format!("no order `{id}`")))?;
        // The tool keeps its own business rule too: never more than what is left to refund.
        if order.refunded_cents + cents > order.paid_cents() {
            return Err(ToolError::Rejected(
                "the refund exceeds what is left of the payment".into(),
            ));
        }
        order.refunded_cents += cents;
        Ok(ToolOutput::json(&json!({
            "order_id": id,
            "refunded": cents as f64 / 100.0,
            "to": order.payment_method,
        })))
    }
}
