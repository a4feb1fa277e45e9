//! Paybacks: one refundable amount per item, shared by every tool that moves money.
//!
//! An item bought once may be paid back once. A refund, a return, an exchange and a cancellation
//! are four roads to the same money, and an outside review took two of them for one item (a
//! refund of the damaged lamp, then a return of the same lamp to the card). So every road reads
//! and writes one ledger, kept in the order itself, the system of record:
//!
//! - a refund records the items it pays back (`item_ids` on its payment-history entry), and the
//!   amount is apportioned to them in order, each up to what is left of it;
//! - an item on a pending return or exchange counts as paid back in full (it will be);
//! - a cancelled order has paid everything back.
//!
//! What is left of an item is its price less all of that; what is left of several items is also
//! bounded by what is left of the whole order (refunds that name no items, from before this
//! ledger or from a changed payment, come off the order, not any one item).
//!
//! ```
//! use tools::Desk;
//! use tools::paybacks::Paybacks;
//!
//! let db = Desk::demo()?.snapshot();
//! let order = db.orders.values().find(|order| order.status.as_str() == "delivered").unwrap();
//! let (item_id, price) = (order.items[0].item_id.clone(), order.items[0].price.cents());
//! let left = Paybacks::of(order).for_items(&[item_id]);
//! assert!(left.on_order && left.untouched);
//! assert_eq!(left.refundable_cents, price);
//! # Ok::<(), tools::LoadError>(())
//! ```

use crate::records::{Order, OrderStatus, TransactionType};
use serde_json::Value;

/// The key under which a refund's payment-history entry records the items it paid back.
pub const REFUND_ITEMS_KEY: &str = "item_ids";

/// What is left to pay back of each item of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paybacks {
    /// Per line of the order, in order: the item id, its price and what was paid back of it.
    lines: Vec<Line>,
    /// What is left of the whole order: paid minus refunded.
    order_refundable_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    item_id: String,
    price_cents: i64,
    paid_back_cents: i64,
}

/// What is left to pay back of some items of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemsLeft {
    /// Whether every item named is on the order (as often as it is named).
    pub on_order: bool,
    /// Whether nothing of any of them was paid back (and the order has paid back nothing that
    /// would leave them short).
    pub untouched: bool,
    /// The sum of their prices.
    pub price_cents: i64,
    /// What may still be paid back of them.
    pub refundable_cents: i64,
}

impl Paybacks {
    /// The ledger of `order`, from its payment history, its pending return or exchange and its
    /// status.
    pub fn of(order: &Order) -> Self {
        let cancelled = order.status == OrderStatus::Cancelled;
        let pending: Vec<&String> =
            order.return_items.iter().chain(order.exchange_items.iter()).flatten().collect();
        let mut lines: Vec<Line> = order
            .items
            .iter()
            .map(|item| Line {
                item_id: item.item_id.clone(),
                price_cents: item.price.cents(),
                paid_back_cents: if cancelled { item.price.cents() } else { 0 },
            })
            .collect();
        let mut claimed = vec![false; lines.len()];
        for item_id in pending {
            if let Some(at) =
                (0..lines.len()).find(|&at| !claimed[at] && lines[at].item_id == *item_id)
            {
                claimed[at] = true;
                lines[at].paid_back_cents = lines[at].price_cents;
            }
        }
        for refund in order
            .payment_history
            .iter()
            .filter(|entry| entry.transaction_type == TransactionType::Refund)
        {
            let Some(Value::Array(items)) = refund.extra.get(REFUND_ITEMS_KEY) else { continue };
            let named: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            apportion(&mut lines, &named, refund.amount.cents());
        }
        Self { lines, order_refundable_cents: order.refundable_cents() }
    }

    /// What is left of the items `item_ids` (an item named twice is two lines of the order).
    pub fn for_items(&self, item_ids: &[String]) -> ItemsLeft {
        let mut used = vec![false; self.lines.len()];
        let mut left =
            ItemsLeft { on_order: true, untouched: true, price_cents: 0, refundable_cents: 0 };
        for item_id in item_ids {
            // The line with the most left, so that naming an item twice takes both its lines.
            let line = (0..self.lines.len())
                .filter(|&at| !used[at] && self.lines[at].item_id == *item_id)
                .max_by_key(|&at| self.lines[at].price_cents - self.lines[at].paid_back_cents);
            let Some(at) = line else {
                left.on_order = false;
                continue;
            };
            used[at] = true;
            let line = &self.lines[at];
            left.price_cents += line.price_cents;
            left.refundable_cents += (line.price_cents - line.paid_back_cents).max(0);
            left.untouched &= line.paid_back_cents == 0;
        }
        if left.refundable_cents > self.order_refundable_cents {
            left.refundable_cents = self.order_refundable_cents.max(0);
            left.untouched = false;
        }
        if !left.on_order {
            left.refundable_cents = 0;
            left.untouched = false;
        }
        left
    }
}

/// Spreads `cents` over the lines of `named`, each up to what is left of it, in order.
fn apportion(lines: &mut [Line], named: &[&str], mut cents: i64) {
    for item_id in named {
        if cents <= 0 {
            return;
        }
        let line = lines
            .iter_mut()
            .find(|line| line.item_id == *item_id && line.paid_back_cents < line.price_cents);
        if let Some(line) = line {
            let share = (line.price_cents - line.paid_back_cents).min(cents);
            line.paid_back_cents += share;
            cents -= share;
        }
    }
}
