//! The records the policy reads, resolved from the desk itself (never from what the model says).
//!
//! The shapes are those of the refund bot's Cedar schema (`refund.cedarschema`):
//!
//! - `User { payment_methods: Set<String>, gift_cards: Set<String> }`
//! - `Order { owner: User, status, paid_cents, refunded_cents, refundable_cents,
//!   payment_methods: Set<String> }`, resolved with its owner
//! - `Ticket { customer: User }`, resolved with its customer
//! - `Product`, with no attributes
//!
//! Money is integer cents: Cedar has no floats.
//!
//! Beyond the records, [`EntityResolver::derive`] works out what a money-moving call is worth and
//! the facts of the items it names, from the order's [`Paybacks`] ledger (`context.facts`).

use crate::desk::Desk;
use crate::paybacks::Paybacks;
use crate::records::{Database, User};
use guards::policy::{DerivedFacts, EntityResolver, ResolvedEntity};
use serde_json::{Map, Value, json};

impl EntityResolver for Desk {
    fn resolve(&self, entity_type: &str, id: &str) -> Result<Option<Vec<ResolvedEntity>>, String> {
        Ok(self.read(|db| match entity_type {
            "User" => db.users.get(id).map(|user| vec![user_entity(user)]),
            "Order" => db.orders.get(id).map(|order| {
                let entity = ResolvedEntity {
                    entity_type: "Order".to_owned(),
                    id: id.to_owned(),
                    attrs: attributes(json!({
                        "owner": user_reference(&order.user_id),
                        "status": order.status.as_str(),
                        "paid_cents": order.paid_cents(),
                        "refunded_cents": order.refunded_cents(),
                        "refundable_cents": order.refundable_cents(),
                        "payment_methods": order.payment_methods_used(),
                    })),
                };
                with_user(db, entity, &order.user_id)
            }),
            "Ticket" => db.tickets.get(id).map(|ticket| {
                let entity = ResolvedEntity {
                    entity_type: "Ticket".to_owned(),
                    id: id.to_owned(),
                    attrs: attributes(json!({ "customer": user_reference(&ticket.user_id) })),
                };
                with_user(db, entity, &ticket.user_id)
            }),
            "Product" => db.products.get(id).map(|_| {
                vec![ResolvedEntity {
                    entity_type: "Product".to_owned(),
                    id: id.to_owned(),
                    attrs: Map::new(),
                }]
            }),
            _ => None,
        }))
    }

    fn derive(&self, tool: &str, args: &Value) -> Result<DerivedFacts, String> {
        Ok(self.read(|db| derive_call(db, tool, args)))
    }
}

/// The money a call moves and the facts of the items it names, from the order's payback ledger.
///
/// For a refund the amount is the argument; for a return or an exchange it is the price of the
/// items named (the value the customer gets back, or anew); for a cancellation, what the order
/// paid and has not had back. `context.facts` then says whether the items are on the order,
/// whether anything of them was paid back, what is left of them, and whether the amount is
/// exactly the price of items nothing has paid back: the one case a refund may run without a
/// human.
fn derive_call(db: &Database, tool: &str, args: &Value) -> DerivedFacts {
    let order = args.get("order_id").and_then(Value::as_str).and_then(|id| db.orders.get(id));
    let item_ids: Vec<String> = args
        .get("item_ids")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(order) = order else { return DerivedFacts::default() };
    let left = Paybacks::of(order).for_items(&item_ids);
    let money_cents = match tool {
        "return_delivered_order_items" | "exchange_delivered_order_items" => Some(left.price_cents),
        "cancel_pending_order" => Some(order.refundable_cents()),
        _ => None,
    };
    let amount_cents = match tool {
        "issue_refund" => args
            .get("amount")
            .and_then(Value::as_f64)
            .map(|dollars| (dollars * 100.0).round() as i64),
        _ => money_cents,
    };
    let facts = match tool {
        "issue_refund" | "return_delivered_order_items" | "exchange_delivered_order_items" => {
            attributes(json!({
                "items_on_order": left.on_order,
                "items_untouched": left.untouched,
                "items_price_cents": left.price_cents,
                "items_refundable_cents": left.refundable_cents,
                "amount_is_unrefunded_items": left.on_order
                    && left.untouched
                    && amount_cents == Some(left.price_cents),
            }))
        }
        _ => Map::new(),
    };
    DerivedFacts { money_cents, facts }
}

/// A customer as the policy sees it: which payment methods and gift cards are theirs.
fn user_entity(user: &User) -> ResolvedEntity {
    let gift_cards: Vec<&String> = user
        .payment_methods
        .iter()
        .filter(|(_, method)| method.is_gift_card())
        .map(|(id, _)| id)
        .collect();
    ResolvedEntity {
        entity_type: "User".to_owned(),
        id: user.user_id.clone(),
        attrs: attributes(json!({
            "payment_methods": user.payment_methods.keys().collect::<Vec<_>>(),
            "gift_cards": gift_cards,
        })),
    }
}

/// `entity` followed by the customer it refers to, when that customer still exists (a deleted
/// account leaves a reference the policy can compare but not read).
fn with_user(db: &Database, entity: ResolvedEntity, user_id: &str) -> Vec<ResolvedEntity> {
    std::iter::once(entity).chain(db.users.get(user_id).map(user_entity)).collect()
}

fn user_reference(user_id: &str) -> Value {
    json!({ "__entity": { "type": "User", "id": user_id } })
}

fn attributes(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
