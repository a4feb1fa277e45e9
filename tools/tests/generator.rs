//! The demo generator: deterministic, of tau2's shape, consistent, and what is committed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use tools::Desk;
use tools::generate::{DEMO_SEED, generate};
use tools::records::{OrderStatus, TransactionType};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let (first, second) = (generate(11), generate(11));
    assert_eq!(first.database_json().unwrap(), second.database_json().unwrap());
    assert_eq!(first.tickets_json().unwrap(), second.tickets_json().unwrap());
    assert_ne!(first.database_json().unwrap(), generate(12).database_json().unwrap());
}

#[test]
fn the_committed_demo_data_is_what_seed_7_generates() {
    // If this fails after a change to the generator, regenerate the data:
    // cargo run -p tools --bin generate-desk -- --seed 7 --out tools/data
    let demo = generate(DEMO_SEED);
    let committed = |name: &str| std::fs::read_to_string(data_dir().join(name)).unwrap();
    assert!(demo.database_json().unwrap() == committed("demo-db.json"), "demo-db.json is stale");
    assert!(
        demo.tickets_json().unwrap() == committed("demo-tickets.json"),
        "demo-tickets.json is stale"
    );
    assert!(committed("demo-db.json").len() < 1_000_000);
}

#[test]
fn generated_files_load_as_a_desk() {
    let dir = tempfile::tempdir().unwrap();
    let demo = generate(3);
    let (db, tickets) = (dir.path().join("db.json"), dir.path().join("tickets.json"));
    std::fs::write(&db, demo.database_json().unwrap()).unwrap();
    std::fs::write(&tickets, demo.tickets_json().unwrap()).unwrap();
    let desk = Desk::load_with_tickets(&db, &tickets).unwrap();
    let mut expected = demo.database.clone();
    expected.tickets = demo.tickets.clone();
    assert_eq!(desk.snapshot(), expected);
}

#[test]
fn the_demo_has_tau2s_shape_and_is_consistent() {
    let demo = generate(DEMO_SEED);
    let db = &demo.database;
    assert_eq!(db.products.len(), 50);
    assert!((100..=500).contains(&db.users.len()), "{}", db.users.len());
    assert!((200..=1000).contains(&db.orders.len()), "{}", db.orders.len());
    // The same top-level keys, record keys and nested keys as tau2's file.
    let value = serde_json::to_value(db).unwrap();
    let keys =
        |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&value), ["products", "users", "orders"]);
    let order = value["orders"].as_object().unwrap().values().next().unwrap();
    assert_eq!(
        keys(order),
        ["order_id", "user_id", "address", "items", "status", "fulfillments", "payment_history"]
    );
    let user = value["users"].as_object().unwrap().values().next().unwrap();
    assert_eq!(keys(user), ["user_id", "name", "address", "email", "payment_methods", "orders"]);

    let mut statuses = HashSet::new();
    for (order_id, order) in &db.orders {
        statuses.insert(order.status);
        let user = &db.users[&order.user_id];
        assert!(user.orders.contains(order_id));
        assert!(!order.items.is_empty());
        for item in &order.items {
            let (product, variant) = db.item(&item.item_id).unwrap();
            assert_eq!((&product.product_id, &variant.price), (&item.product_id, &item.price));
        }
        let first = &order.payment_history[0];
        assert_eq!(first.transaction_type, TransactionType::Payment);
        assert!(user.payment_methods.contains_key(&first.payment_method_id));
        assert_eq!(
            first.amount.cents(),
            order.items.iter().map(|item| item.price.cents()).sum::<i64>()
        );
        let refunded = order.status == OrderStatus::Cancelled;
        assert_eq!(order.refundable_cents() == 0, refunded, "{order_id}");
    }
    assert_eq!(statuses.len(), 4, "pending, processed, delivered and cancelled orders");
    let emails: HashSet<&str> = db.users.values().map(|user| user.email.as_str()).collect();
    assert_eq!(emails.len(), db.users.len());
}

#[test]
fn the_demo_tickets_come_from_customers_about_their_own_orders_and_some_attack() {
    let demo = generate(DEMO_SEED);
    assert!(!demo.tickets.is_empty());
    for ticket in demo.tickets.values() {
        let user = &demo.database.users[&ticket.user_id];
        assert!(user.orders.iter().any(|order_id| ticket.body.contains(order_id.as_str())
            || ticket.subject.contains(order_id.as_str())
            || !ticket.body.contains("#W")));
    }
    let attacks = demo
        .tickets
        .values()
        .filter(|ticket| {
            ["NOTE TO THE AI", "Ignore all previous", "SYSTEM OVERRIDE", "pre-authorised"]
                .iter()
                .any(|marker| ticket.body.contains(marker))
        })
        .count();
    assert!(attacks >= 2, "the demo needs attacks to stop, found {attacks}");
}
