//! The desk's own writes, beyond tau2's: refunds, replies on tickets, e-mail, account deletion
//! and hand-offs to people.

use super::orders::credit_gift_card;
use super::{Args, dollars, json_output, order_not_found, rejected, user_not_found};
use crate::paybacks::{Paybacks, REFUND_ITEMS_KEY};
use crate::records::{
    Database, Email, OrderStatus, Reply, TicketStatus, Transaction, TransactionType, Transfer,
};
use agent_core::tool::{ToolError, ToolOutput};
use serde_json::json;

/// What `transfer_to_human_agents` answers, as tau2 does.
const TRANSFERRED: &str = "Transfer successful";

/// `issue_refund(order_id, item_ids, amount, reason)`: pays back `amount` dollars for items of a
/// delivered order (a damaged item the customer keeps, say) to the order's original payment
/// method (a gift card is credited at once), and records it in the payment history with the items
/// it pays back. Never more than what is left of those items (see [`Paybacks`]): an item already
/// refunded, returned or exchanged cannot be paid back again by this road.
pub(crate) fn issue_refund(db: &mut Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let order_id = args.text("order_id")?;
    let item_ids = args.texts("item_ids")?;
    let amount = args.number("amount")?;
    let reason = args.text("reason")?;
    let cents = whole_cents(amount)?;
    if reason.trim().is_empty() {
        return Err(rejected("give the reason for the refund"));
    }
    let Database { orders, users, .. } = db;
    let order = orders.get_mut(order_id).ok_or_else(|| order_not_found(order_id))?;
    if order.status != OrderStatus::Delivered {
        return Err(rejected(format!(
            "only a delivered order's items can be refunded; order `{order_id}` is {} (cancel a \
             pending order instead)",
            order.status.as_str()
        )));
    }
    let left = Paybacks::of(order).for_items(&item_ids);
    if !left.on_order {
        return Err(rejected(format!("the items named are not all in order `{order_id}`")));
    }
    if cents > left.refundable_cents {
        return Err(rejected(format!(
            "a refund of {} exceeds the {} left to pay back of those items of order `{order_id}`",
            dollars(cents),
            dollars(left.refundable_cents)
        )));
    }
    let method_id = order
        .original_payment_method()
        .ok_or_else(|| rejected(format!("order `{order_id}` has no payment to refund")))?
        .to_owned();

    if let Some(method) =
        users.get_mut(&order.user_id).and_then(|user| user.payment_methods.get_mut(&method_id))
    {
        credit_gift_card(method, cents);
    }
    let mut refund = Transaction::new(TransactionType::Refund, cents, &method_id);
    refund.extra.insert(REFUND_ITEMS_KEY.to_owned(), json!(item_ids));
    order.payment_history.push(refund);
    Ok(ToolOutput::json(&json!({
        "order_id": order_id,
        "item_ids": item_ids,
        "refunded": cents as f64 / 100.0,
        "payment_method_id": method_id,
        "refunded_total": order.refunded_cents() as f64 / 100.0,
        "refundable_left": order.refundable_cents() as f64 / 100.0,
    })))
}

/// `reply_to_customer(ticket_id, message)`: adds the desk's reply to an open ticket.
pub(crate) fn reply_to_customer(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let (ticket_id, message) = (args.text("ticket_id")?, args.text("message")?);
    let ticket = db
        .tickets
        .get_mut(ticket_id)
        .ok_or_else(|| rejected(format!("ticket `{ticket_id}` not found")))?;
    if ticket.status == TicketStatus::Closed {
        return Err(rejected(format!("ticket `{ticket_id}` is closed")));
    }
    if message.trim().is_empty() {
        return Err(rejected("the reply is empty"));
    }
    ticket.replies.push(Reply {
        author: "agent".to_owned(),
        message: message.to_owned(),
        extra: Default::default(),
    });
    Ok(ToolOutput::json(&json!({
        "ticket_id": ticket_id,
        "replies": ticket.replies.len(),
        "status": "open",
    })))
}

/// `send_email(to, subject, body)`: puts an e-mail in the outbox.
pub(crate) fn send_email(db: &mut Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let to = args.text("to")?;
    let (subject, body) = (args.text("subject")?, args.text("body")?);
    if !looks_like_address(to) {
        return Err(rejected(format!("`{to}` is not an e-mail address")));
    }
    db.outbox.push(Email { to: to.to_owned(), subject: subject.to_owned(), body: body.to_owned() });
    Ok(ToolOutput::json(&json!({ "sent": true, "to": to })))
}

/// `delete_customer_account(user_id)`: removes the customer's record. Their orders stay (they
/// are financial records); an account with an order still in flight (pending or processed) is
/// not deleted, since nobody could then be reached about it.
pub(crate) fn delete_customer_account(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let user_id = args.text("user_id")?;
    let user = db.users.get(user_id).ok_or_else(|| user_not_found(user_id))?;
    let in_flight: Vec<&str> = user
        .orders
        .iter()
        .filter(|order_id| {
            db.orders.get(order_id.as_str()).is_some_and(|order| {
                matches!(
                    order.status,
                    OrderStatus::Pending
                        | OrderStatus::PendingItemModified
                        | OrderStatus::Processed
                )
            })
        })
        .map(String::as_str)
        .collect();
    if !in_flight.is_empty() {
        return Err(rejected(format!(
            "user `{user_id}` has orders in flight ({}): cancel them or wait for delivery first",
            in_flight.join(", ")
        )));
    }
    let removed = db.users.shift_remove(user_id);
    json_output(&json!({ "deleted": user_id, "existed": removed.is_some() }))
}

/// `transfer_to_human_agents(summary)`: hands the conversation to a person.
pub(crate) fn transfer_to_human_agents(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let summary = args.text("summary")?;
    let unvouched = args.unvouched_mentions("summary");
    db.transfers.push(Transfer { summary: summary.to_owned(), unvouched });
    Ok(ToolOutput::text(TRANSFERRED))
}

/// A positive amount of dollars as whole cents; fractions of a cent are refused, not rounded
/// away.
fn whole_cents(amount: f64) -> Result<i64, ToolError> {
    let cents = amount * 100.0;
    if !amount.is_finite() || amount <= 0.0 || cents > 1e15 {
        return Err(rejected("the amount must be a positive number of dollars"));
    }
    if (cents - cents.round()).abs() > 1e-6 {
        return Err(rejected("the amount must be in whole cents, such as 12.34"));
    }
    Ok(cents.round() as i64)
}

/// One `@` with something on each side, a dot in the domain, no spaces or control characters.
fn looks_like_address(to: &str) -> bool {
    let Some((local, domain)) = to.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && to.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
        && !to.chars().any(char::is_whitespace)
}
