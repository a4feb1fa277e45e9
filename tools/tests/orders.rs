//! Order changes and their tau2 rules: each rule's yes and no, the state each change leaves, and
//! that a refused change leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{Harness, state};

fn address(first_line: &str) -> Value {
    json!({
        "address1": first_line, "address2": "", "city": "Seattle",
        "state": "WA", "country": "USA", "zip": "98101"
    })
}

fn transaction(kind: &str, amount: f64, method: &str) -> Value {
    json!({"transaction_type": kind, "amount": amount, "payment_method_id": method})
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

// ── Cancel ─────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_pending_order_is_cancelled_and_refunded() {
    let desk = Harness::mini();
    let order = desk
        .ok(
            "1",
            "cancel_pending_order",
            json!({"order_id": "#W1000001", "reason": "no longer needed"}),
        )
        .await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "no longer needed");
    assert_eq!(order["payment_history"][1], transaction("refund", 75.0, "credit_card_1111111"));
    assert_eq!(desk.desk.refunds_total("#W1000001"), Some(7500));
}

#[tokio::test]
async fn cancelling_an_order_paid_by_gift_card_credits_the_card_at_once() {
    let desk = Harness::mini();
    desk.ok(
        "1",
        "cancel_pending_order",
        json!({"order_id": "#W1000007", "reason": "ordered by mistake"}),
    )
    .await;
    let card = &desk.desk.user("ava_lee_1002").unwrap().payment_methods["gift_card_2222222"];
    assert_eq!(card.gift_card_cents(), Some(12_500));
}

#[tokio::test]
async fn only_pending_orders_are_cancelled_and_only_for_the_two_reasons() {
    let desk = Harness::mini();
    let before = state(&desk.desk);
    for (number, order_id) in ["#W1000002", "#W1000003", "#W1000005"].into_iter().enumerate() {
        let input = json!({"order_id": order_id, "reason": "no longer needed"});
        let message = desk.rejected(&number.to_string(), "cancel_pending_order", input).await;
        assert!(message.contains("only a pending order can be cancelled"), "{message}");
    }
    let message = desk
        .rejected(
            "9",
            "cancel_pending_order",
            json!({"order_id": "#W1000001", "reason": "changed my mind"}),
        )
        .await;
    assert!(message.contains("`no longer needed` or `ordered by mistake`"), "{message}");
    let message = desk
        .rejected(
            "10",
            "cancel_pending_order",
            json!({"order_id": "#W404", "reason": "no longer needed"}),
        )
        .await;
    assert!(message.contains("order `#W404` not found"), "{message}");
    assert_eq!(state(&desk.desk), before);
}

#[tokio::test]
async fn an_order_whose_payment_changed_is_refunded_once_per_payment_net() {
    let desk = Harness::mini();
    let input = json!({"order_id": "#W1000001", "payment_method_id": "gift_card_1111112"});
    // The gift card holds $20, the order is $75: refused.
    desk.rejected("1", "modify_pending_order_payment", input).await;
    let desk = Harness::mini();
    desk.ok(
        "1",
        "modify_pending_order_payment",
        json!({"order_id": "#W1000007", "payment_method_id": "paypal_2222221"}),
    )
    .await;
    let order = desk
        .ok(
            "2",
            "cancel_pending_order",
            json!({"order_id": "#W1000007", "reason": "no longer needed"}),
        )
        .await;
    // payment gift card, payment paypal, refund gift card, then one refund of the paypal payment.
    assert_eq!(order["payment_history"].as_array().unwrap().len(), 4);
    assert_eq!(order["payment_history"][3]["payment_method_id"], "paypal_2222221");
    let order = desk.desk.order("#W1000007").unwrap();
    assert_eq!((order.paid_cents(), order.refunded_cents()), (5000, 5000));
}

// ── Modify a pending order ─────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_pending_order_ships_elsewhere_but_a_processed_one_does_not() {
    let desk = Harness::mini();
    let input = with(address("1 New Road"), "order_id", json!("#W1000001"));
    let order = desk.ok("1", "modify_pending_order_address", input).await;
    assert_eq!(order["address"]["address1"], "1 New Road");
    assert_eq!(order["address"]["zip"], "98101");

    let input = with(address("1 New Road"), "order_id", json!("#W1000003"));
    let message = desk.rejected("2", "modify_pending_order_address", input).await;
    assert!(message.contains("only a pending order can be modified"), "{message}");
}

#[tokio::test]
async fn items_of_a_pending_order_are_swapped_once_and_the_difference_paid() {
    let desk = Harness::mini();
    let input = json!({
        "order_id": "#W1000001", "item_ids": ["2000000001", "2000000011"],
        "new_item_ids": ["2000000002", "2000000012"], "payment_method_id": "gift_card_1111112"
    });
    let order = desk.ok("1", "modify_pending_order_items", input).await;
    assert_eq!(order["status"], "pending (item modified)");
    // Each line takes its own new variant's price and options.
    assert_eq!(order["items"][0]["item_id"], "2000000002");
    assert_eq!(order["items"][0]["price"], 52.5);
    assert_eq!(order["items"][0]["options"], json!({"color": "red", "size": "M"}));
    assert_eq!(order["items"][1]["item_id"], "2000000012");
    assert_eq!(order["items"][1]["price"], 30.0);
    // $2.50 + $5.00 more, paid by the gift card.
    assert_eq!(order["payment_history"][1], transaction("payment", 7.5, "gift_card_1111112"));
    let card = &desk.desk.user("noah_brown_1001").unwrap().payment_methods["gift_card_1111112"];
    assert_eq!(card.gift_card_cents(), Some(1250));

    // Only once.
    let again = json!({
        "order_id": "#W1000001", "item_ids": ["2000000002"], "new_item_ids": ["2000000001"],
        "payment_method_id": "credit_card_1111111"
    });
    let message = desk.rejected("2", "modify_pending_order_items", again).await;
    assert!(message.contains("not modified yet"), "{message}");
}

#[tokio::test]
async fn a_cheaper_swap_refunds_the_difference_to_the_gift_card() {
    let desk = Harness::mini();
    let input = json!({
        "order_id": "#W1000001", "item_ids": ["2000000001"], "new_item_ids": ["2000000005"],
        "payment_method_id": "gift_card_1111112"
    });
    let order = desk.ok("1", "modify_pending_order_items", input).await;
    assert_eq!(order["payment_history"][1], transaction("refund", 5.0, "gift_card_1111112"));
    let card = &desk.desk.user("noah_brown_1001").unwrap().payment_methods["gift_card_1111112"];
    assert_eq!(card.gift_card_cents(), Some(2500));
    let order = desk.desk.order("#W1000001").unwrap();
    assert_eq!(
        (order.paid_cents(), order.refunded_cents(), order.refundable_cents()),
        (7500, 500, 7000)
    );
}

#[tokio::test]
async fn item_swaps_keep_their_rules() {
    let desk = Harness::mini();
    let before = state(&desk.desk);
    let base = json!({
        "order_id": "#W1000001", "item_ids": ["2000000001"], "new_item_ids": ["2000000002"],
        "payment_method_id": "credit_card_1111111"
    });
    let cases = [
        (with(base.clone(), "new_item_ids", json!(["2000000001"])), "replaced by itself"),
        (with(base.clone(), "new_item_ids", json!(["2000000003"])), "not available"),
        (with(base.clone(), "new_item_ids", json!(["2000000021"])), "not a variant of T-Shirt"),
        (
            with(base.clone(), "new_item_ids", json!(["2000000002", "2000000004"])),
            "one new item per old item",
        ),
        (with(base.clone(), "item_ids", json!(["2000000021"])), "not in order `#W1000001`"),
        (with(base.clone(), "item_ids", json!(["2000000001", "2000000001"])), "named 2 times"),
        (
            with(base.clone(), "payment_method_id", json!("paypal_2222221")),
            "not one of the order's customer's",
        ),
    ];
    for (number, (input, expected)) in cases.into_iter().enumerate() {
        let message = desk.rejected(&number.to_string(), "modify_pending_order_items", input).await;
        assert!(message.contains(expected), "expected `{expected}`, got: {message}");
    }
    // $70 more than a $20 gift card holds.
    let input = with(
        with(base, "new_item_ids", json!(["2000000004"])),
        "payment_method_id",
        json!("gift_card_1111112"),
    );
    let message = desk.rejected("20", "modify_pending_order_items", input).await;
    assert!(message.contains("cannot pay the $70.00 difference"), "{message}");
    assert_eq!(state(&desk.desk), before);
}

#[tokio::test]
async fn the_payment_of_a_pending_order_moves_to_another_method() {
    let desk = Harness::mini();
    let input = json!({"order_id": "#W1000007", "payment_method_id": "paypal_2222221"});
    let order = desk.ok("1", "modify_pending_order_payment", input).await;
    assert_eq!(
        order["payment_history"],
        json!([
            transaction("payment", 25.0, "gift_card_2222222"),
            transaction("payment", 25.0, "paypal_2222221"),
            transaction("refund", 25.0, "gift_card_2222222"),
        ])
    );
    let card = &desk.desk.user("ava_lee_1002").unwrap().payment_methods["gift_card_2222222"];
    assert_eq!(card.gift_card_cents(), Some(12_500));

    // Not twice (it was paid more than once now), not to the same method, not when delivered.
    let message = desk
        .rejected(
            "2",
            "modify_pending_order_payment",
            json!({"order_id": "#W1000007", "payment_method_id": "gift_card_2222222"}),
        )
        .await;
    assert!(message.contains("paid once"), "{message}");
    let message = desk
        .rejected(
            "3",
            "modify_pending_order_payment",
            json!({"order_id": "#W1000001", "payment_method_id": "credit_card_1111111"}),
        )
        .await;
    assert!(message.contains("already paid with"), "{message}");
    let message = desk
        .rejected(
            "4",
            "modify_pending_order_payment",
            json!({"order_id": "#W1000002", "payment_method_id": "gift_card_1111112"}),
        )
        .await;
    assert!(message.contains("only a pending order"), "{message}");
}

#[tokio::test]
async fn a_users_default_address_changes() {
    let desk = Harness::mini();
    let input = with(address("9 Lake Road"), "user_id", json!("liam_chen_1003"));
    let user = desk.ok("1", "modify_user_address", input).await;
    assert_eq!(user["address"]["address1"], "9 Lake Road");
    // The orders already placed keep their address.
    assert_eq!(desk.desk.order("#W1000006").unwrap().address.address1, "7 Pine Lane");
    let input = with(address("9 Lake Road"), "user_id", json!("ghost_0000"));
    desk.rejected("2", "modify_user_address", input).await;
}

// ── Return and exchange ────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_delivered_orders_items_are_returned_to_the_original_method() {
    let desk = Harness::mini();
    let input = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021", "2000000001"],
        "payment_method_id": "credit_card_1111111"
    });
    let order = desk.ok("1", "return_delivered_order_items", input).await;
    assert_eq!(order["status"], "return requested");
    assert_eq!(order["return_items"], json!(["2000000001", "2000000021"]));
    assert_eq!(order["return_payment_method_id"], "credit_card_1111111");
    // As in tau2, no money moves until the items come back.
    assert_eq!(order["payment_history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_return_may_go_to_the_customers_own_gift_card() {
    let desk = Harness::mini();
    let input = json!({
        "order_id": "#W1000002", "item_ids": ["2000000001", "2000000001"],
        "payment_method_id": "gift_card_1111112"
    });
    desk.ok("1", "return_delivered_order_items", input).await;
}

#[tokio::test]
async fn returns_keep_their_rules() {
    let desk = Harness::mini();
    let before = state(&desk.desk);
    let base = json!({
        "order_id": "#W1000002", "item_ids": ["2000000001"],
        "payment_method_id": "credit_card_1111111"
    });
    let cases = [
        (
            with(base.clone(), "order_id", json!("#W1000001")),
            "only a delivered order can be returned",
        ),
        (
            with(base.clone(), "payment_method_id", json!("gift_card_2222222")),
            "not one of the order's customer's",
        ),
        (
            with(base.clone(), "item_ids", json!(["2000000001", "2000000001", "2000000001"])),
            "named 3 times",
        ),
        (with(base.clone(), "item_ids", json!(["2000000011"])), "not in order"),
    ];
    for (number, (input, expected)) in cases.into_iter().enumerate() {
        let message =
            desk.rejected(&number.to_string(), "return_delivered_order_items", input).await;
        assert!(message.contains(expected), "expected `{expected}`, got: {message}");
    }
    // Ava's delivered order was paid by gift card; her PayPal account is not its original method.
    let input = json!({
        "order_id": "#W1000004", "item_ids": ["2000000022"], "payment_method_id": "paypal_2222221"
    });
    let message = desk.rejected("9", "return_delivered_order_items", input).await;
    assert!(message.contains("original payment method"), "{message}");
    assert!(
        desk.schema_refuses("return_delivered_order_items", with(base, "item_ids", json!([])))
            .await
    );
    assert_eq!(state(&desk.desk), before);
}

#[tokio::test]
async fn a_delivered_orders_items_are_exchanged_for_available_variants() {
    let desk = Harness::mini();
    let input = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021", "2000000001"],
        "new_item_ids": ["2000000022", "2000000002"], "payment_method_id": "gift_card_1111112"
    });
    let order = desk.ok("1", "exchange_delivered_order_items", input).await;
    assert_eq!(order["status"], "exchange requested");
    assert_eq!(order["exchange_items"], json!(["2000000001", "2000000021"]));
    assert_eq!(order["exchange_new_items"], json!(["2000000002", "2000000022"]));
    assert_eq!(order["exchange_payment_method_id"], "gift_card_1111112");
    assert_eq!(order["exchange_price_difference"], 7.5);
    // The request is recorded; the items and the money move when the old ones come back.
    assert_eq!(order["items"][2]["item_id"], "2000000021");
    let card = &desk.desk.user("noah_brown_1001").unwrap().payment_methods["gift_card_1111112"];
    assert_eq!(card.gift_card_cents(), Some(2000));
    // Once.
    let message = desk
        .rejected(
            "2",
            "return_delivered_order_items",
            json!({
                "order_id": "#W1000002", "item_ids": ["2000000001"],
                "payment_method_id": "credit_card_1111111"
            }),
        )
        .await;
    assert!(message.contains("exchange requested"), "{message}");
}

#[tokio::test]
async fn a_failing_multi_item_exchange_changes_nothing() {
    let desk = Harness::mini();
    let before = state(&desk.desk);
    // The first two swaps are fine; the third names an unavailable variant.
    let input = json!({
        "order_id": "#W1000002", "item_ids": ["2000000001", "2000000021", "2000000001"],
        "new_item_ids": ["2000000002", "2000000022", "2000000003"],
        "payment_method_id": "credit_card_1111111"
    });
    let message = desk.rejected("1", "exchange_delivered_order_items", input).await;
    assert!(message.contains("`2000000003` is not available"), "{message}");
    assert_eq!(state(&desk.desk), before);

    // A gift card that cannot pay a dearer exchange: $70 more against $20.
    let input = json!({
        "order_id": "#W1000002", "item_ids": ["2000000001"], "new_item_ids": ["2000000004"],
        "payment_method_id": "gift_card_1111112"
    });
    let message = desk.rejected("2", "exchange_delivered_order_items", input).await;
    assert!(message.contains("cannot pay the $70.00 difference"), "{message}");
    // A pending order cannot be exchanged.
    let input = json!({
        "order_id": "#W1000001", "item_ids": ["2000000001"], "new_item_ids": ["2000000002"],
        "payment_method_id": "credit_card_1111111"
    });
    let message = desk.rejected("3", "exchange_delivered_order_items", input).await;
    assert!(message.contains("only a delivered order can be exchanged"), "{message}");
    assert_eq!(state(&desk.desk), before);
}

#[tokio::test]
async fn the_same_variant_may_replace_a_broken_one_in_an_exchange() {
    let desk = Harness::mini();
    let input = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "new_item_ids": ["2000000021"],
        "payment_method_id": "credit_card_1111111"
    });
    let order = desk.ok("1", "exchange_delivered_order_items", input).await;
    assert_eq!(order["exchange_price_difference"], 0.0);
}
