//! The records the policy reads: the desk's entities conform to the refund bot's Cedar schema,
//! carry the right values, and drive the refund bot's real policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use cedar_policy::{Entities, Schema};
use guards::budget::Usage;
use guards::policy::{
    CallFacts, EntityResolver, OutboundFacts, Outcome, PolicyBundle, ResolvedEntity,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use support::{Harness, mini_desk};
use tools::Desk;

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/refund-bot/policy")
}

fn schema() -> Schema {
    let text = std::fs::read_to_string(policy_dir().join("refund.cedarschema")).unwrap();
    Schema::from_cedarschema_str(&text).unwrap().0
}

fn resolve(desk: &Desk, entity_type: &str, id: &str) -> Vec<ResolvedEntity> {
    desk.resolve(entity_type, id)
        .unwrap()
        .unwrap_or_else(|| panic!("{entity_type}::{id} not found"))
}

/// Cedar's own check: parsing entities against the schema refuses a missing, extra or mistyped
/// attribute.
fn assert_conforms(entities: &[ResolvedEntity]) {
    let json: Vec<Value> = entities
        .iter()
        .map(|entity| {
            json!({
                "uid": {"type": entity.entity_type, "id": entity.id},
                "attrs": entity.attrs,
                "parents": [],
            })
        })
        .collect();
    if let Err(error) = Entities::from_json_value(Value::Array(json), Some(&schema())) {
        panic!("{entities:?} does not conform to the schema: {error}");
    }
}

#[test]
fn every_entity_kind_conforms_to_the_schema() {
    let desk = mini_desk();
    for (entity_type, id) in [
        ("Order", "#W1000001"),
        ("Order", "#W1000005"),
        ("User", "ava_lee_1002"),
        ("User", "liam_chen_1003"),
        ("Ticket", "T-1002"),
        ("Product", "1000000001"),
    ] {
        assert_conforms(&resolve(&desk, entity_type, id));
    }
}

#[test]
fn a_wrong_attribute_would_be_caught() {
    // The check above can fail: a string where the schema wants a Long is refused.
    let mut entities = resolve(&mini_desk(), "Order", "#W1000001");
    entities[0].attrs.insert("paid_cents".into(), json!("7500"));
    let uid = json!({"type": "Order", "id": "#W1000001"});
    let json = json!([{ "uid": uid, "attrs": entities[0].attrs, "parents": [] }]);
    assert!(Entities::from_json_value(json, Some(&schema())).is_err());
    // And so is a missing one.
    let mut user = resolve(&mini_desk(), "User", "ava_lee_1002").remove(0);
    user.attrs.remove("gift_cards");
    let uid = json!({"type": "User", "id": "ava_lee_1002"});
    let json = json!([{ "uid": uid, "attrs": user.attrs, "parents": [] }]);
    assert!(Entities::from_json_value(json, Some(&schema())).is_err());
}

#[test]
fn an_order_resolves_with_its_owner_and_its_money_in_cents() {
    let entities = resolve(&mini_desk(), "Order", "#W1000005");
    assert_eq!(entities.len(), 2);
    assert_eq!(
        Value::Object(entities[0].attrs.clone()),
        json!({
            "owner": {"__entity": {"type": "User", "id": "ava_lee_1002"}},
            "status": "cancelled",
            "paid_cents": 5250,
            "refunded_cents": 5250,
            "refundable_cents": 0,
            "payment_methods": ["paypal_2222221"],
        })
    );
    assert_eq!(
        (entities[1].entity_type.as_str(), entities[1].id.as_str()),
        ("User", "ava_lee_1002")
    );
    assert_eq!(
        Value::Object(entities[1].attrs.clone()),
        json!({
            "payment_methods": ["paypal_2222221", "gift_card_2222222"],
            "gift_cards": ["gift_card_2222222"],
        })
    );
}

#[test]
fn tickets_resolve_with_their_customer_and_products_without_attributes() {
    let desk = mini_desk();
    let ticket = resolve(&desk, "Ticket", "T-1001");
    assert_eq!(
        ticket[0].attrs["customer"],
        json!({"__entity": {"type": "User", "id": "noah_brown_1001"}})
    );
    assert_eq!(ticket[1].id, "noah_brown_1001");
    let product = resolve(&desk, "Product", "1000000002");
    assert_eq!(product.len(), 1);
    assert!(product[0].attrs.is_empty());
}

#[test]
fn unknown_records_resolve_to_nothing() {
    let desk = mini_desk();
    for (entity_type, id) in
        [("Order", "#W0"), ("User", "ghost"), ("Ticket", "T-0"), ("Product", "0"), ("Agent", "x")]
    {
        assert_eq!(desk.resolve(entity_type, id).unwrap(), None, "{entity_type}::{id}");
    }
}

#[tokio::test]
async fn the_entities_follow_the_desk_as_it_changes() {
    let desk = Harness::mini();
    let refund = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 30.5, "reason": "x"
    });
    desk.ok("1", "issue_refund", refund).await;
    let order = &resolve(&desk.desk, "Order", "#W1000002")[0];
    assert_eq!(order.attrs["refunded_cents"], 3050);
    assert_eq!(order.attrs["refundable_cents"], 14_950);
}

#[test]
fn the_refund_bots_policy_decides_from_the_desks_records() {
    let bundle = PolicyBundle::load(policy_dir().join("policy.toml")).unwrap();
    let desk = mini_desk();
    let decide = |action: &str, resource: (&str, &str), amount_cents: i64, args: &Value| {
        decide_on(&bundle, &desk, action, resource, amount_cents, args)
    };
    let refund = json!({"order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 80.0, "reason": "broken"});
    assert_eq!(decide("issue_refund", ("Order", "#W1000002"), 8000, &refund), Outcome::Allow);
    // More than the $180 paid, and more than the items named are worth.
    let all = json!({
        "order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"],
        "amount": 180.01, "reason": "broken"
    });
    let outcome = decide("issue_refund", ("Order", "#W1000002"), 18_001, &all);
    assert!(
        matches!(&outcome, Outcome::Deny { code, .. } if code == "refund_exceeds_items"),
        "{outcome:?}"
    );
    // Another customer's order.
    let theirs = json!({"order_id": "#W1000004", "item_ids": ["x"], "amount": 1.0, "reason": "x"});
    let outcome = decide("issue_refund", ("Order", "#W1000004"), 100, &theirs);
    assert!(
        matches!(&outcome, Outcome::Deny { code, .. } if code == "cross_customer"),
        "{outcome:?}"
    );
    // A return to the customer's own gift card, and to someone else's.
    let own = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "payment_method_id": "gift_card_1111112"
    });
    assert_eq!(
        decide("return_delivered_order_items", ("Order", "#W1000002"), 8000, &own),
        Outcome::Allow
    );
    let foreign = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "payment_method_id": "gift_card_2222222"
    });
    let outcome = decide("return_delivered_order_items", ("Order", "#W1000002"), 8000, &foreign);
    assert!(
        matches!(&outcome, Outcome::Deny { code, .. } if code == "refund_destination"),
        "{outcome:?}"
    );
    // The customer's own ticket, and another's.
    let ticket = json!({"ticket_id": "T-1001"});
    assert_eq!(decide("read_ticket", ("Ticket", "T-1001"), 0, &ticket), Outcome::Allow);
    let ticket = json!({"ticket_id": "T-1002"});
    assert!(matches!(
        decide("read_ticket", ("Ticket", "T-1002"), 0, &ticket),
        Outcome::Deny { .. }
    ));
}

#[tokio::test]
async fn one_item_is_paid_back_once_whichever_tool_pays_it() {
    let bundle = PolicyBundle::load(policy_dir().join("policy.toml")).unwrap();
    let desk = Harness::mini();
    let lamp = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "payment_method_id": "gift_card_1111112"
    });
    let decide_return = || {
        decide_on(
            &bundle,
            &desk.desk,
            "return_delivered_order_items",
            ("Order", "#W1000002"),
            8000,
            &lamp,
        )
    };
    // Positive control: before any refund, the lamp's return runs.
    assert_eq!(decide_return(), Outcome::Allow);
    let refund = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 80.0, "reason": "broken"
    });
    desk.ok("1", "issue_refund", refund.clone()).await;
    // The lamp was refunded: its return would pay it back twice, and policy refuses it.
    let outcome = decide_return();
    assert!(
        matches!(&outcome, Outcome::Deny { code, .. } if code == "item_already_paid_back"),
        "{outcome:?}"
    );
    // And so does the tool itself, if it were ever called.
    let refused = desk.call("2", "return_delivered_order_items", lamp.clone()).await;
    assert!(refused.unwrap_err().to_string().contains("already paid back"));
    // A second refund of the lamp is refused too (nothing is left of it).
    let again =
        decide_on(&bundle, &desk.desk, "issue_refund", ("Order", "#W1000002"), 8000, &refund);
    assert!(
        matches!(&again, Outcome::Deny { code, .. } if code == "refund_exceeds_items"),
        "{again:?}"
    );
}

/// What the refund bot's bundle decides for a call on the desk, with the facts the desk derives.
fn decide_on(
    bundle: &PolicyBundle,
    desk: &tools::Desk,
    action: &str,
    resource: (&str, &str),
    amount_cents: i64,
    args: &Value,
) -> Outcome {
    let resolved = resolve(desk, resource.0, resource.1);
    let derived = desk.derive(action, args).unwrap();
    let outbound = OutboundFacts::default();
    let facts = CallFacts {
        agent: "refund-bot",
        chain: vec!["refund-bot".to_owned()],
        action,
        resource: Some(resource),
        task: "T-1001",
        customer: Some("noah_brown_1001"),
        calls_made: 0,
        repeated_call_id: false,
        amount_cents,
        args,
        tainted: false,
        untrusted_args: Vec::new(),
        usage: Usage::default(),
        facts: &derived.facts,
        outbound: &outbound,
    };
    bundle.evaluate(&facts, &resolved).outcome
}
