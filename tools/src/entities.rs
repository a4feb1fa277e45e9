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

use crate::desk::Desk;
use crate::records::{Database, User};
use guards::policy::{EntityResolver, ResolvedEntity};
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
