//! The tools as the guards see them: names, scopes, effect classes, resources, money and
//! provenance, and strict schemas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::EffectClass::{self, Irreversible, Read, Write};
use agent_core::MoneyMoved;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::{Harness, mini_desk};
use tools::{all_tools, tool};

/// The entity a tool touches: (type, argument).
type Resource = Option<(&'static str, &'static str)>;

/// (name, scope, effect, resource, untrusted output)
const EXPECTED: &[(&str, &str, EffectClass, Resource, bool)] = &[
    ("find_user_id_by_email", "customers:read", Read, None, false),
    ("find_user_id_by_name_zip", "customers:read", Read, None, false),
    ("get_user_details", "customers:read", Read, Some(("User", "user_id")), true),
    ("get_order_details", "orders:read", Read, Some(("Order", "order_id")), true),
    ("get_product_details", "catalog:read", Read, Some(("Product", "product_id")), true),
    ("get_item_details", "catalog:read", Read, None, true),
    ("list_all_product_types", "catalog:read", Read, None, false),
    ("calculate", "catalog:read", Read, None, false),
    ("list_open_tickets", "tickets:read", Read, None, true),
    ("read_ticket", "tickets:read", Read, Some(("Ticket", "ticket_id")), true),
    ("reply_to_customer", "tickets:write", Write, Some(("Ticket", "ticket_id")), false),
    ("transfer_to_human_agents", "tickets:write", Write, None, false),
    ("modify_pending_order_address", "orders:write", Write, Some(("Order", "order_id")), false),
    ("modify_pending_order_items", "orders:write", Write, Some(("Order", "order_id")), false),
    ("modify_pending_order_payment", "orders:write", Write, Some(("Order", "order_id")), false),
    ("modify_user_address", "orders:write", Write, Some(("User", "user_id")), false),
    ("cancel_pending_order", "orders:write", Irreversible, Some(("Order", "order_id")), false),
    (
        "return_delivered_order_items",
        "refunds:write",
        Irreversible,
        Some(("Order", "order_id")),
        false,
    ),
    (
        "exchange_delivered_order_items",
        "refunds:write",
        Irreversible,
        Some(("Order", "order_id")),
        false,
    ),
    ("issue_refund", "refunds:write", Irreversible, Some(("Order", "order_id")), false),
    ("send_email", "email:send", Irreversible, None, false),
    ("delete_customer_account", "accounts:delete", Irreversible, Some(("User", "user_id")), false),
];

#[test]
fn every_tool_is_declared_as_expected() {
    let tools = all_tools(&mini_desk());
    let names: Vec<&str> = tools.iter().map(|tool| tool.spec().name.as_str()).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(name, ..)| *name).collect();
    assert_eq!(names, expected);
    for (tool, (name, scope, effect, resource, untrusted)) in tools.iter().zip(EXPECTED) {
        let spec = tool.spec();
        assert_eq!(spec.required_scope.as_str(), *scope, "{name}");
        assert_eq!(spec.effect, *effect, "{name}");
        let declared =
            spec.resource.as_ref().map(|r| (r.entity_type.as_str(), r.argument.as_str()));
        assert_eq!(declared, *resource, "{name}");
        assert_eq!(spec.untrusted_output, *untrusted, "{name}");
        let money = match *name {
            "issue_refund" => Some(MoneyMoved::Argument("amount".to_owned())),
            "return_delivered_order_items"
            | "exchange_delivered_order_items"
            | "cancel_pending_order" => Some(MoneyMoved::Resolved),
            _ => None,
        };
        assert_eq!(spec.money, money, "every tool that moves money says so: {name}");
        let outbound: &[&str] = match *name {
            "reply_to_customer" => &["message"],
            "transfer_to_human_agents" => &["summary"],
            _ => &[],
        };
        assert_eq!(spec.outbound_text, outbound, "{name}");
        let pure = *name == "calculate";
        assert_eq!(spec.derivation == agent_core::Derivation::Pure, pure, "{name}");
        assert!(!spec.description.is_empty(), "{name}");
    }
}

#[test]
fn only_the_listed_scopes_exist() {
    let scopes: BTreeSet<String> =
        all_tools(&mini_desk()).iter().map(|tool| tool.spec().required_scope.to_string()).collect();
    let allowed: BTreeSet<String> = [
        "customers:read",
        "orders:read",
        "catalog:read",
        "tickets:read",
        "tickets:write",
        "orders:write",
        "refunds:write",
        "email:send",
        "accounts:delete",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(scopes, allowed);
}

#[test]
fn every_schema_is_strict() {
    for tool in all_tools(&mini_desk()) {
        let spec = tool.spec();
        let schema = &spec.input_schema;
        assert_eq!(schema["type"], "object", "{}", spec.name);
        assert_eq!(schema["additionalProperties"], false, "{}", spec.name);
        let properties: BTreeSet<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let required: BTreeSet<&String> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| match name {
                Value::String(name) => name,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(properties, required, "{}: every argument is required", spec.name);
        if let Some(resource) = &spec.resource {
            assert!(properties.contains(&resource.argument), "{}", spec.name);
        }
    }
}

#[test]
fn tau2_argument_names_are_kept() {
    let desk = mini_desk();
    let arguments = |name: &str| -> Vec<String> {
        let tool = tool(&desk, name).unwrap();
        tool.spec().input_schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(arguments("find_user_id_by_name_zip"), ["first_name", "last_name", "zip"]);
    assert_eq!(
        arguments("exchange_delivered_order_items"),
        ["order_id", "item_ids", "new_item_ids", "payment_method_id"]
    );
    assert_eq!(
        arguments("modify_pending_order_address"),
        ["order_id", "address1", "address2", "city", "state", "country", "zip"]
    );
    assert_eq!(arguments("issue_refund"), ["order_id", "item_ids", "amount", "reason"]);
    assert!(tool(&desk, "no_such_tool").is_none());
}

#[tokio::test]
async fn the_pipeline_refuses_input_outside_the_schema() {
    let desk = Harness::mini();
    let cases = [
        ("get_order_details", json!({})),
        ("get_order_details", json!({"order_id": "#W1000001", "extra": 1})),
        ("get_order_details", json!({"order_id": 7})),
        ("cancel_pending_order", json!({"order_id": "#W1000001"})),
        (
            "return_delivered_order_items",
            json!({"order_id": "#W1", "item_ids": "2000000001", "payment_method_id": "x"}),
        ),
        ("list_open_tickets", json!({"all": true})),
    ];
    for (tool, input) in cases {
        assert!(desk.schema_refuses(tool, input.clone()).await, "{tool} accepted {input}");
    }
}
