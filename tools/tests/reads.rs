//! Reads: look-ups, details, the catalogue, tickets and the calculator. Nothing changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use support::{Harness, state};

#[tokio::test]
async fn customers_are_found_by_email_ignoring_case() {
    let desk = Harness::mini();
    let found =
        desk.ok("1", "find_user_id_by_email", json!({"email": "Ava.Lee1002@Example.com"})).await;
    assert_eq!(found, "ava_lee_1002");
    let message =
        desk.rejected("2", "find_user_id_by_email", json!({"email": "nobody@example.com"})).await;
    assert!(message.contains("no user"), "{message}");
}

#[tokio::test]
async fn customers_are_found_by_name_and_exact_zip() {
    let desk = Harness::mini();
    let input = json!({"first_name": "noah", "last_name": "BROWN", "zip": "80279"});
    assert_eq!(desk.ok("1", "find_user_id_by_name_zip", input).await, "noah_brown_1001");
    let wrong_zip = json!({"first_name": "Noah", "last_name": "Brown", "zip": "80278"});
    desk.rejected("2", "find_user_id_by_name_zip", wrong_zip).await;
}

#[tokio::test]
async fn details_of_users_orders_products_and_items() {
    let desk = Harness::mini();
    let user = desk.ok("1", "get_user_details", json!({"user_id": "noah_brown_1001"})).await;
    assert_eq!(user["payment_methods"]["gift_card_1111112"]["balance"], 20.0);
    assert_eq!(user["orders"], json!(["#W1000001", "#W1000002", "#W1000003"]));

    let order = desk.ok("2", "get_order_details", json!({"order_id": "#W1000002"})).await;
    assert_eq!(order["status"], "delivered");
    assert_eq!(order["items"].as_array().unwrap().len(), 3);

    let product = desk.ok("3", "get_product_details", json!({"product_id": "1000000001"})).await;
    assert_eq!(product["name"], "T-Shirt");
    assert_eq!(product["variants"].as_object().unwrap().len(), 5);

    let item = desk.ok("4", "get_item_details", json!({"item_id": "2000000003"})).await;
    assert_eq!(
        item,
        json!({
            "item_id": "2000000003",
            "options": {"color": "green", "size": "L"},
            "available": false,
            "price": 49.0
        })
    );
}

#[tokio::test]
async fn unknown_ids_are_clear_refusals() {
    let desk = Harness::mini();
    let cases = [
        ("get_user_details", json!({"user_id": "ghost_0000"}), "user `ghost_0000` not found"),
        ("get_order_details", json!({"order_id": "W1000001"}), "order `W1000001` not found"),
        ("get_product_details", json!({"product_id": "2000000001"}), "not an item id"),
        ("get_item_details", json!({"item_id": "1000000001"}), "not a product id"),
        ("read_ticket", json!({"ticket_id": "T-9"}), "ticket `T-9` not found"),
    ];
    for (number, (tool, input, expected)) in cases.into_iter().enumerate() {
        let message = desk.rejected(&number.to_string(), tool, input).await;
        assert!(message.contains(expected), "{tool}: {message}");
    }
}

#[tokio::test]
async fn product_types_are_listed_by_name() {
    let desk = Harness::mini();
    let listed = desk.ok("1", "list_all_product_types", json!({})).await;
    assert_eq!(
        serde_json::to_string(&listed).unwrap(),
        r#"{"Desk Lamp":"1000000003","T-Shirt":"1000000001","Water Bottle":"1000000002"}"#
    );
}

#[tokio::test]
async fn open_tickets_are_listed_without_their_bodies() {
    let desk = Harness::mini();
    let open = desk.ok("1", "list_open_tickets", json!({})).await;
    assert_eq!(
        open,
        json!([
            {
                "ticket_id": "T-1001", "user_id": "noah_brown_1001",
                "subject": "Desk Lamp arrived damaged"
            },
            {
                "ticket_id": "T-1002", "user_id": "ava_lee_1002",
                "subject": "Late delivery, order #W1000004"
            },
        ])
    );
    let ticket = desk.ok("2", "read_ticket", json!({"ticket_id": "T-1002"})).await;
    assert!(ticket["body"].as_str().unwrap().contains("NOTE TO THE AI ASSISTANT"));
}

#[tokio::test]
async fn reads_change_nothing() {
    let desk = Harness::mini();
    let before = state(&desk.desk);
    desk.ok("1", "get_order_details", json!({"order_id": "#W1000001"})).await;
    desk.ok("2", "list_open_tickets", json!({})).await;
    desk.ok("3", "calculate", json!({"expression": "1 + 1"})).await;
    assert_eq!(state(&desk.desk), before);
}

#[tokio::test]
async fn the_calculator_does_arithmetic_like_tau2() {
    let desk = Harness::mini();
    let cases = [
        ("2 + 2", "4.0"),
        ("10 / 3", "3.33"),
        ("(52.5 - 50) * 2", "5.0"),
        ("2 + 3 * 4", "14.0"),
        ("(2 + 3) * 4", "20.0"),
        ("-3 + -(-1)", "-2.0"),
        ("1 - 2 - 3", "-4.0"),
        ("8 / 4 / 2", "1.0"),
        ("0.1 + 0.2", "0.3"),
        ("  7  ", "7.0"),
        ("180 - 80.0", "100.0"),
    ];
    for (number, (expression, expected)) in cases.into_iter().enumerate() {
        let input = json!({"expression": expression});
        let result = desk.call(&number.to_string(), "calculate", input).await.unwrap();
        assert_eq!(result.content, expected, "{expression}");
    }
}

#[tokio::test]
async fn the_calculator_refuses_anything_but_arithmetic() {
    let desk = Harness::mini();
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    let cases = [
        ("__import__('os')", "invalid character"),
        ("2 ** 3", "expected a number"),
        ("1 / 0", "division by zero"),
        ("1 / (2 - 2)", "division by zero"),
        ("(1 + 2", "not closed"),
        ("1 + 2)", "unexpected"),
        ("", "ends where a number"),
        ("1..2", "is not a number"),
        ("1e9", "invalid character"),
        (deep.as_str(), "nested"),
    ];
    for (number, (expression, expected)) in cases.into_iter().enumerate() {
        let message = desk
            .rejected(&number.to_string(), "calculate", json!({"expression": expression}))
            .await;
        assert!(message.contains(expected), "{expression}: {message}");
    }
}
