//! The desk's own tools (refunds, tickets, e-mail, account deletion, hand-offs) and the
//! guarantees every write keeps: one result per call id, and all or nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use support::{Harness, state};
use tools::records::TicketStatus;

// ── Refunds ────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_refund_goes_to_the_original_payment_method_and_is_recorded() {
    let desk = Harness::mini();
    let input = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 80,
        "reason": "lamp arrived broken"
    });
    let output = desk.ok("1", "issue_refund", input).await;
    assert_eq!(
        output,
        json!({
            "order_id": "#W1000002", "item_ids": ["2000000021"], "refunded": 80.0,
            "payment_method_id": "credit_card_1111111", "refunded_total": 80.0,
            "refundable_left": 100.0
        })
    );
    let order = desk.desk.order("#W1000002").unwrap();
    let last = order.payment_history.last().unwrap();
    // The refund records the items it paid back: the one ledger every money tool reads.
    assert_eq!(
        serde_json::to_value(last).unwrap(),
        json!({
            "transaction_type": "refund", "amount": 80.0, "payment_method_id": "credit_card_1111111",
            "item_ids": ["2000000021"]
        })
    );
    assert_eq!(desk.desk.refunds_total("#W1000002"), Some(8000));
}

#[tokio::test]
async fn a_refund_to_a_gift_card_credits_it() {
    let desk = Harness::mini();
    desk.ok(
        "1",
        "issue_refund",
        json!({"order_id": "#W1000004", "item_ids": ["2000000022", "2000000002"], "amount": 12.34, "reason": "late"}),
    )
    .await;
    let card = &desk.desk.user("ava_lee_1002").unwrap().payment_methods["gift_card_2222222"];
    assert_eq!(card.gift_card_cents(), Some(11_234));
}

#[tokio::test]
async fn refunds_never_exceed_what_was_paid_minus_what_was_refunded() {
    let desk = Harness::mini();
    let refund = |call: &'static str, amount: f64| {
        let desk = &desk;
        async move {
            desk.call(
                call,
                "issue_refund",
                json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": amount, "reason": "x"}),
            )
            .await
        }
    };
    assert!(refund("1", 180.01).await.is_err());
    assert!(refund("2", 100.0).await.is_ok());
    let message = refund("3", 80.01).await.unwrap_err().to_string();
    assert!(message.contains("exceeds the $80.00 left to pay back of those items"), "{message}");
    assert!(refund("4", 80.0).await.is_ok());
    assert!(refund("5", 0.01).await.is_err());
    assert_eq!(desk.desk.refunds_total("#W1000002"), Some(18_000));
    // A cancelled order was refunded in full already.
    let message = desk
        .rejected("6", "issue_refund", json!({"order_id": "#W1000005", "item_ids": ["2000000002"], "amount": 1, "reason": "x"}))
        .await;
    assert!(message.contains("only a delivered order's items"), "{message}");
}

#[tokio::test]
async fn refund_amounts_must_be_positive_whole_cents_with_a_reason() {
    let desk = Harness::mini();
    let before = state(&desk.desk);
    let message = desk
        .rejected(
            "1",
            "issue_refund",
            json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": 10.005, "reason": "x"}),
        )
        .await;
    assert!(message.contains("whole cents"), "{message}");
    let message = desk
        .rejected(
            "2",
            "issue_refund",
            json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": 10, "reason": "  "}),
        )
        .await;
    assert!(message.contains("reason"), "{message}");
    let message = desk
        .rejected(
            "3",
            "issue_refund",
            json!({"order_id": "#W9", "item_ids": ["1"], "amount": 10, "reason": "x"}),
        )
        .await;
    assert!(message.contains("order `#W9` not found"), "{message}");
    assert!(
        desk.schema_refuses(
            "issue_refund",
            json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": -5, "reason": "x"})
        )
        .await
    );
    assert!(
        desk.schema_refuses(
            "issue_refund",
            json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": "5", "reason": "x"})
        )
        .await
    );
    assert_eq!(state(&desk.desk), before);
}

#[tokio::test]
async fn one_item_is_paid_back_once_by_a_refund_and_a_return_in_either_order() {
    // A refund of the lamp, then its return: the return is refused.
    let desk = Harness::mini();
    let lamp_refund = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 80, "reason": "broken"
    });
    let lamp_return = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"],
        "payment_method_id": "credit_card_1111111"
    });
    desk.ok("1", "issue_refund", lamp_refund.clone()).await;
    let message = desk.rejected("2", "return_delivered_order_items", lamp_return.clone()).await;
    assert!(message.contains("already paid back"), "{message}");
    // A partial refund touches the item too.
    let partial = Harness::mini();
    let part = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 10, "reason": "scratch"
    });
    partial.ok("1", "issue_refund", part).await;
    let message = partial.rejected("2", "return_delivered_order_items", lamp_return.clone()).await;
    assert!(message.contains("already paid back"), "{message}");
    // The return first, then a refund: the item is on a pending return, paid back in full.
    let returned = Harness::mini();
    returned.ok("1", "return_delivered_order_items", lamp_return).await;
    let message = returned.rejected("2", "issue_refund", lamp_refund.clone()).await;
    assert!(message.contains("only a delivered order"), "{message}");
    // Positive control: a refund of another item after the lamp's refund still runs.
    let shirt = json!({
        "order_id": "#W1000002", "item_ids": ["2000000001"], "amount": 50, "reason": "torn"
    });
    desk.ok("3", "issue_refund", shirt).await;
    // And the lamp cannot be refunded again by naming it twice or with another amount.
    let again = json!({
        "order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 0.01, "reason": "again"
    });
    let message = desk.rejected("4", "issue_refund", again).await;
    assert!(message.contains("$0.00 left to pay back"), "{message}");
}

#[tokio::test]
async fn a_pending_order_is_never_refunded_while_its_goods_still_ship() {
    let desk = Harness::mini();
    let before = state(&desk.desk);
    let refund = json!({
        "order_id": "#W1000001", "item_ids": ["2000000011"], "amount": 25, "reason": "x"
    });
    let message = desk.rejected("1", "issue_refund", refund).await;
    assert!(message.contains("only a delivered order's items"), "{message}");
    assert_eq!(state(&desk.desk), before);
}

// ── One result per call ────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_retried_refund_refunds_once_and_returns_the_first_result() {
    let desk = Harness::mini();
    let input = json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": 50, "reason": "retry me"});
    let first = desk.retry("call-1", "issue_refund", input.clone()).await.unwrap();
    let second = desk.retry("call-1", "issue_refund", input).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(desk.desk.refunds_total("#W1000002"), Some(5000));
    assert_eq!(desk.desk.order("#W1000002").unwrap().payment_history.len(), 2);
}

#[tokio::test]
async fn a_model_repeating_a_call_id_makes_a_new_call_that_the_desk_judges_afresh() {
    let desk = Harness::mini();
    let input =
        json!({"order_id": "#W1000002", "item_ids": ["2000000021"], "amount": 20, "reason": "x"});
    let first = desk.ok("toolu_01", "issue_refund", input.clone()).await;
    // The same model id again is not a retry the desk answers from memory (the first output):
    // the pipeline minted a new call, and the desk's own rules judge it as one.
    let second = desk.ok("toolu_01", "issue_refund", input).await;
    assert_eq!(
        (first["refunded_total"].clone(), second["refunded_total"].clone()),
        (json!(20.0), json!(40.0))
    );
    assert_eq!(desk.desk.refunds_total("#W1000002"), Some(4000));
}

#[tokio::test]
async fn the_same_call_id_in_another_task_is_another_call() {
    let desk = Harness::mini();
    let input = json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": 50, "reason": "x"});
    desk.ok("toolu_01", "issue_refund", input.clone()).await;
    let other_task = Harness::over(desk.desk.clone()).in_task("task-2");
    other_task.ok("toolu_01", "issue_refund", input).await;
    assert_eq!(desk.desk.refunds_total("#W1000002"), Some(10_000));
}

#[tokio::test]
async fn a_call_id_reused_with_other_arguments_is_refused() {
    let desk = Harness::mini();
    desk.retry(
        "call-1",
        "issue_refund",
        json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": 50, "reason": "x"}),
    )
    .await
    .unwrap();
    let error = desk
        .retry(
            "call-1",
            "issue_refund",
            json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": 90, "reason": "x"}),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("already used for a different call"), "{error}");
    let error = desk
        .retry("call-1", "send_email", json!({"to": "a@b.example", "subject": "s", "body": "b"}))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("already used"), "{error}");
    assert_eq!(desk.desk.refunds_total("#W1000002"), Some(5000));
    assert!(desk.desk.outbox().is_empty());
}

#[tokio::test]
async fn a_retried_cancellation_returns_the_first_result() {
    let desk = Harness::mini();
    let input = json!({"order_id": "#W1000007", "reason": "no longer needed"});
    let first = desk.retry("call-1", "cancel_pending_order", input.clone()).await.unwrap();
    // Run again, the rule would refuse (it is no longer pending): the retry gets the first answer.
    let second = desk.retry("call-1", "cancel_pending_order", input).await.unwrap();
    assert_eq!(first, second);
    let card = &desk.desk.user("ava_lee_1002").unwrap().payment_methods["gift_card_2222222"];
    assert_eq!(card.gift_card_cents(), Some(12_500));
}

#[tokio::test]
async fn a_refused_call_is_not_remembered_and_a_retry_is_checked_afresh() {
    let desk = Harness::mini();
    let input = json!({"user_id": "liam_chen_1003"});
    desk.rejected("d1", "delete_customer_account", input.clone()).await;
    desk.ok(
        "c1",
        "cancel_pending_order",
        json!({"order_id": "#W1000006", "reason": "no longer needed"}),
    )
    .await;
    // Nothing was applied the first time, so the same call, retried, now runs.
    desk.ok("d1", "delete_customer_account", input).await;
    assert!(desk.desk.user("liam_chen_1003").is_none());
}

// ── Tickets ────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn the_agent_replies_on_open_tickets_only() {
    let desk = Harness::mini();
    let output = desk
        .ok("1", "reply_to_customer", json!({"ticket_id": "T-1001", "message": "Refunded $80."}))
        .await;
    assert_eq!(output["replies"], 1);
    let ticket = desk.desk.ticket("T-1001").unwrap();
    assert_eq!(
        (ticket.replies[0].author.as_str(), ticket.replies[0].message.as_str()),
        ("agent", "Refunded $80.")
    );
    assert_eq!(ticket.status, TicketStatus::Open);

    let message = desk
        .rejected("2", "reply_to_customer", json!({"ticket_id": "T-1003", "message": "hello"}))
        .await;
    assert!(message.contains("ticket `T-1003` is closed"), "{message}");
    desk.rejected("3", "reply_to_customer", json!({"ticket_id": "T-404", "message": "hello"}))
        .await;
}

#[tokio::test]
async fn a_transfer_is_recorded_with_its_summary() {
    let desk = Harness::mini();
    let output =
        desk.ok("1", "transfer_to_human_agents", json!({"summary": "wants a manager"})).await;
    assert_eq!(output, "Transfer successful");
    assert_eq!(desk.desk.transfers()[0].summary, "wants a manager");
}

// ── E-mail and accounts ────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn email_goes_to_the_outbox() {
    let desk = Harness::mini();
    let input =
        json!({"to": "noah.brown1001@example.com", "subject": "Your refund", "body": "Done."});
    desk.ok("1", "send_email", input).await;
    let outbox = desk.desk.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        (outbox[0].to.as_str(), outbox[0].subject.as_str()),
        ("noah.brown1001@example.com", "Your refund")
    );
    for (number, to) in
        ["not an address", "a@b", "@example.com", "a b@example.com"].iter().enumerate()
    {
        let input = json!({"to": to, "subject": "s", "body": "b"});
        let message = desk.rejected(&format!("bad-{number}"), "send_email", input).await;
        assert!(message.contains("is not an e-mail address"), "{to}: {message}");
    }
    assert_eq!(desk.desk.outbox().len(), 1);
}

#[tokio::test]
async fn an_account_is_deleted_only_without_orders_in_flight() {
    let desk = Harness::mini();
    let message =
        desk.rejected("1", "delete_customer_account", json!({"user_id": "liam_chen_1003"})).await;
    assert!(message.contains("#W1000006"), "{message}");
    desk.ok(
        "2",
        "cancel_pending_order",
        json!({"order_id": "#W1000006", "reason": "no longer needed"}),
    )
    .await;
    desk.ok("3", "delete_customer_account", json!({"user_id": "liam_chen_1003"})).await;
    assert!(desk.desk.user("liam_chen_1003").is_none());
    // The order stays: it is a financial record.
    assert_eq!(desk.desk.order("#W1000006").unwrap().user_id, "liam_chen_1003");
    desk.rejected("4", "delete_customer_account", json!({"user_id": "liam_chen_1003"})).await;
}

#[tokio::test]
async fn a_desk_saved_after_writes_reloads_the_same() {
    let desk = Harness::mini();
    desk.ok("1", "issue_refund", json!({"order_id": "#W1000002", "item_ids": ["2000000001", "2000000001", "2000000021"], "amount": 5, "reason": "x"}))
        .await;
    desk.ok("2", "send_email", json!({"to": "a@b.example", "subject": "s", "body": "b"})).await;
    desk.ok("3", "transfer_to_human_agents", json!({"summary": "s"})).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desk.json");
    desk.desk.save(&path).unwrap();
    assert_eq!(tools::Desk::load(&path).unwrap().snapshot(), desk.desk.snapshot());
}
