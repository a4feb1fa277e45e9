//! Order changes, as tau2's retail tools make them: cancel, modify (address, items, payment),
//! return and exchange, and the customer's default address.
//!
//! Each checks everything first and changes the database only once every check has passed.

use super::{Args, dollars, json_output, order_not_found, rejected, user_not_found};
use crate::paybacks::Paybacks;
use crate::records::{
    Address, Database, Extra, Money, Order, OrderStatus, PaymentMethod, Product, Transaction,
    TransactionType, User, Variant,
};
use agent_core::tool::{ToolError, ToolOutput};
use indexmap::IndexMap;
use std::collections::HashMap;

/// The two reasons tau2 accepts for a cancellation.
pub const CANCEL_REASONS: [&str; 2] = ["no longer needed", "ordered by mistake"];

/// `cancel_pending_order(order_id, reason)`: only a `pending` order, for one of the two reasons.
/// Every payment is refunded to the method that made it; a gift card gets its money back at once.
///
/// Deviation from tau2: tau2 appends one refund per entry of the payment history, refunds
/// included, so an order whose payment method was changed (payment, payment, refund) would be
/// refunded three times. This desk refunds what each method has paid net of refunds, which is
/// the same single refund for an order paid once.
pub(crate) fn cancel_pending_order(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let (order_id, reason) = (args.text("order_id")?, args.text("reason")?);
    let Database { orders, users, .. } = db;
    let order = orders.get_mut(order_id).ok_or_else(|| order_not_found(order_id))?;
    if order.status != OrderStatus::Pending {
        return Err(rejected(format!(
            "only a pending order can be cancelled; order `{order_id}` is {}",
            order.status.as_str()
        )));
    }
    if !CANCEL_REASONS.contains(&reason) {
        return Err(rejected(format!(
            "the reason must be `no longer needed` or `ordered by mistake`, not `{reason}`"
        )));
    }

    let refunds = net_paid_by_method(order);
    let mut user = users.get_mut(&order.user_id);
    for (method_id, cents) in refunds {
        if let Some(method) =
            user.as_mut().and_then(|user| user.payment_methods.get_mut(&method_id))
        {
            credit_gift_card(method, cents);
        }
        order.payment_history.push(Transaction::new(TransactionType::Refund, cents, method_id));
    }
    order.status = OrderStatus::Cancelled;
    order.cancel_reason = Some(reason.to_owned());
    json_output(order)
}

/// `modify_pending_order_address(order_id, address1, address2, city, state, country, zip)`: a
/// pending order (modified items or not) ships somewhere else.
pub(crate) fn modify_pending_order_address(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let order_id = args.text("order_id")?;
    let address = address_from(args)?;
    let order = db.orders.get_mut(order_id).ok_or_else(|| order_not_found(order_id))?;
    require_pending(order, "modified")?;
    order.address = address;
    json_output(order)
}

/// `modify_pending_order_items(order_id, item_ids, new_item_ids, payment_method_id)`: swaps
/// items of a `pending` order for other variants of the same products, once. The price
/// difference is paid by, or refunded to, the payment method (a gift card must cover it).
///
/// Deviations from tau2: each swapped line takes the price and options of its own new variant
/// (tau2 gives every swapped line those of the last one in the list), and an item named in
/// `item_ids` must be in the order as many times as it is named.
pub(crate) fn modify_pending_order_items(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let order_id = args.text("order_id")?;
    let (item_ids, new_item_ids) = (args.texts("item_ids")?, args.texts("new_item_ids")?);
    let method_id = args.text("payment_method_id")?;
    let Database { orders, users, products, .. } = db;
    let order = orders.get_mut(order_id).ok_or_else(|| order_not_found(order_id))?;
    if order.status != OrderStatus::Pending {
        return Err(rejected(format!(
            "only a pending order whose items were not modified yet can have its items modified; \
             order `{order_id}` is {}",
            order.status.as_str()
        )));
    }
    require_items_in_order(order, &item_ids)?;
    let swaps = new_variants(products, order, &item_ids, &new_item_ids, true)?;
    let difference: i64 = swaps.iter().map(|swap| swap.difference).sum();
    let user = users.get_mut(&order.user_id).ok_or_else(|| user_not_found(&order.user_id))?;
    let method = own_payment_method(user, method_id)?;
    if method.gift_card_cents().is_some_and(|balance| balance < difference) {
        return Err(rejected(format!(
            "gift card `{method_id}` cannot pay the {} difference for the new items",
            dollars(difference)
        )));
    }

    // tau2 records the difference even when it is zero, as a refund of 0.
    let kind = if difference > 0 { TransactionType::Payment } else { TransactionType::Refund };
    order.payment_history.push(Transaction::new(kind, difference.abs(), method_id));
    credit_gift_card(method, -difference);
    let mut swapped = vec![false; order.items.len()];
    for swap in swaps {
        // `require_items_in_order` counted a line for every swap, so each finds one.
        if let Some((line, item)) = order
            .items
            .iter_mut()
            .enumerate()
            .find(|(line, item)| !swapped[*line] && item.item_id == swap.old_item_id)
        {
            swapped[line] = true;
            item.item_id.clone_from(&swap.variant.item_id);
            item.price = swap.variant.price.clone();
            item.options = swap.variant.options.clone();
        }
    }
    order.status = OrderStatus::PendingItemModified;
    json_output(order)
}

/// `modify_pending_order_payment(order_id, payment_method_id)`: a pending order paid once is
/// paid by another of the customer's methods instead; the old one is refunded. A gift card must
/// hold the whole amount.
pub(crate) fn modify_pending_order_payment(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let (order_id, method_id) = (args.text("order_id")?, args.text("payment_method_id")?);
    let Database { orders, users, .. } = db;
    let order = orders.get_mut(order_id).ok_or_else(|| order_not_found(order_id))?;
    require_pending(order, "modified")?;
    let user = users.get_mut(&order.user_id).ok_or_else(|| user_not_found(&order.user_id))?;
    own_payment_method(user, method_id)?;
    let [original] = order.payment_history.as_slice() else {
        return Err(rejected("the payment of an order can change only while it was paid once"));
    };
    if original.transaction_type != TransactionType::Payment {
        return Err(rejected("the payment of an order can change only while it was paid once"));
    }
    let (old_method_id, amount) = (original.payment_method_id.clone(), original.amount.cents());
    if old_method_id == method_id {
        return Err(rejected(format!("order `{order_id}` is already paid with `{method_id}`")));
    }
    let new_balance = user.payment_methods.get(method_id).and_then(PaymentMethod::gift_card_cents);
    if new_balance.is_some_and(|balance| balance < amount) {
        return Err(rejected(format!(
            "gift card `{method_id}` cannot pay the order's {}",
            dollars(amount)
        )));
    }

    order.payment_history.push(Transaction::new(TransactionType::Payment, amount, method_id));
    order.payment_history.push(Transaction::new(TransactionType::Refund, amount, &old_method_id));
    if let Some(method) = user.payment_methods.get_mut(method_id) {
        credit_gift_card(method, -amount);
    }
    if let Some(method) = user.payment_methods.get_mut(&old_method_id) {
        credit_gift_card(method, amount);
    }
    json_output(order)
}

/// `modify_user_address(user_id, address1, address2, city, state, country, zip)`: the customer's
/// default address (orders already placed keep theirs).
pub(crate) fn modify_user_address(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let user_id = args.text("user_id")?;
    let address = address_from(args)?;
    let user = db.users.get_mut(user_id).ok_or_else(|| user_not_found(user_id))?;
    user.address = address;
    json_output(user)
}

/// `return_delivered_order_items(order_id, item_ids, payment_method_id)`: a delivered order's
/// items are asked back; the refund will go to the original payment method or one of the
/// customer's gift cards. As in tau2, no money moves yet: the order becomes `return requested`
/// and the refund is made when the items come back.
pub(crate) fn return_delivered_order_items(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let order_id = args.text("order_id")?;
    let (item_ids, method_id) = (args.texts("item_ids")?, args.text("payment_method_id")?);
    let Database { orders, users, .. } = db;
    let order = orders.get_mut(order_id).ok_or_else(|| order_not_found(order_id))?;
    require_delivered(order, "returned")?;
    let user = users.get(&order.user_id).ok_or_else(|| user_not_found(&order.user_id))?;
    let method = own_payment_method_ref(user, method_id)?;
    if !method.is_gift_card() && order.original_payment_method() != Some(method_id) {
        return Err(rejected(
            "a refund goes to the order's original payment method or to one of the customer's \
             gift cards",
        ));
    }
    require_items_in_order(order, &item_ids)?;
    require_nothing_paid_back(order, &item_ids)?;

    let mut sorted = item_ids;
    sorted.sort();
    order.status = OrderStatus::ReturnRequested;
    order.return_items = Some(sorted);
    order.return_payment_method_id = Some(method_id.to_owned());
    json_output(order)
}

/// `exchange_delivered_order_items(order_id, item_ids, new_item_ids, payment_method_id)`: a
/// delivered order's items are to be swapped for available variants of the same products. As in
/// tau2, the request is recorded (`exchange requested`, with the price difference) and no money
/// moves yet; a gift card that will pay the difference must already hold it.
pub(crate) fn exchange_delivered_order_items(
    db: &mut Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let order_id = args.text("order_id")?;
    let (item_ids, new_item_ids) = (args.texts("item_ids")?, args.texts("new_item_ids")?);
    let method_id = args.text("payment_method_id")?;
    let Database { orders, users, products, .. } = db;
    let order = orders.get_mut(order_id).ok_or_else(|| order_not_found(order_id))?;
    require_delivered(order, "exchanged")?;
    require_items_in_order(order, &item_ids)?;
    require_nothing_paid_back(order, &item_ids)?;
    let swaps = new_variants(products, order, &item_ids, &new_item_ids, false)?;
    let difference: i64 = swaps.iter().map(|swap| swap.difference).sum();
    let user = users.get(&order.user_id).ok_or_else(|| user_not_found(&order.user_id))?;
    let method = own_payment_method_ref(user, method_id)?;
    if method.gift_card_cents().is_some_and(|balance| balance < difference) {
        return Err(rejected(format!(
            "gift card `{method_id}` cannot pay the {} difference for the new items",
            dollars(difference)
        )));
    }

    let (mut old, mut new) = (item_ids, new_item_ids);
    old.sort();
    new.sort();
    order.status = OrderStatus::ExchangeRequested;
    order.exchange_items = Some(old);
    order.exchange_new_items = Some(new);
    order.exchange_payment_method_id = Some(method_id.to_owned());
    order.exchange_price_difference = Some(Money::from_cents(difference));
    json_output(order)
}

/// One line to swap: which item, for which variant, at what difference in cents.
struct Swap {
    old_item_id: String,
    variant: Variant,
    difference: i64,
}

/// Checks that `item_ids` is not empty and that each id is in the order at least as many times
/// as it is named.
/// Items already paid back in part (a refund) cannot be returned or exchanged: the same item
/// would be paid back twice (see [`Paybacks`]).
fn require_nothing_paid_back(order: &Order, item_ids: &[String]) -> Result<(), ToolError> {
    let left = Paybacks::of(order).for_items(item_ids);
    if left.untouched {
        return Ok(());
    }
    Err(rejected(format!(
        "some of these items of order `{}` were already paid back ({} of {} is left): they \
         cannot be returned or exchanged",
        order.order_id,
        dollars(left.refundable_cents),
        dollars(left.price_cents)
    )))
}

fn require_items_in_order(order: &Order, item_ids: &[String]) -> Result<(), ToolError> {
    if item_ids.is_empty() {
        return Err(rejected("name at least one item"));
    }
    let mut named: HashMap<&str, usize> = HashMap::new();
    for item_id in item_ids {
        *named.entry(item_id).or_default() += 1;
    }
    for (item_id, times) in named {
        let held = order.items.iter().filter(|item| item.item_id == item_id).count();
        if held == 0 {
            return Err(rejected(format!("item `{item_id}` is not in order `{}`", order.order_id)));
        }
        if times > held {
            return Err(rejected(format!(
                "item `{item_id}` is named {times} times but order `{}` has it {held} times",
                order.order_id
            )));
        }
    }
    Ok(())
}

/// The variants `new_item_ids` stand for, position by position: each must be an available
/// variant of the same product as the item it replaces (and, for a pending modification, a
/// different one).
fn new_variants(
    products: &IndexMap<String, Product>,
    order: &Order,
    item_ids: &[String],
    new_item_ids: &[String],
    must_differ: bool,
) -> Result<Vec<Swap>, ToolError> {
    if item_ids.len() != new_item_ids.len() {
        return Err(rejected(format!(
            "{} items are named to replace {} items: name one new item per old item",
            new_item_ids.len(),
            item_ids.len()
        )));
    }
    let mut swaps = Vec::with_capacity(item_ids.len());
    for (old_item_id, new_item_id) in item_ids.iter().zip(new_item_ids) {
        if must_differ && old_item_id == new_item_id {
            return Err(rejected(format!("item `{old_item_id}` cannot be replaced by itself")));
        }
        let Some(line) = order.items.iter().find(|item| &item.item_id == old_item_id) else {
            return Err(rejected(format!("item `{old_item_id}` is not in the order")));
        };
        let variant = products
            .get(&line.product_id)
            .and_then(|product| product.variants.get(new_item_id))
            .ok_or_else(|| {
                rejected(format!(
                    "item `{new_item_id}` is not a variant of {} (product `{}`)",
                    line.name, line.product_id
                ))
            })?;
        if !variant.available {
            return Err(rejected(format!("item `{new_item_id}` is not available")));
        }
        swaps.push(Swap {
            old_item_id: old_item_id.clone(),
            variant: variant.clone(),
            difference: variant.price.cents() - line.price.cents(),
        });
    }
    Ok(swaps)
}

fn require_pending(order: &Order, verb: &str) -> Result<(), ToolError> {
    match order.status {
        OrderStatus::Pending | OrderStatus::PendingItemModified => Ok(()),
        status => Err(rejected(format!(
            "only a pending order can be {verb}; order `{}` is {}",
            order.order_id,
            status.as_str()
        ))),
    }
}

fn require_delivered(order: &Order, verb: &str) -> Result<(), ToolError> {
    if order.status == OrderStatus::Delivered {
        return Ok(());
    }
    Err(rejected(format!(
        "only a delivered order can be {verb}; order `{}` is {}",
        order.order_id,
        order.status.as_str()
    )))
}

/// The customer's payment method `method_id`, or a refusal. The refusal does not name the
/// customer: the model may be asking about an order that is not its customer's.
fn own_payment_method<'a>(
    user: &'a mut User,
    method_id: &str,
) -> Result<&'a mut PaymentMethod, ToolError> {
    user.payment_methods.get_mut(method_id).ok_or_else(|| not_own_method(method_id))
}

fn own_payment_method_ref<'a>(
    user: &'a User,
    method_id: &str,
) -> Result<&'a PaymentMethod, ToolError> {
    user.payment_methods.get(method_id).ok_or_else(|| not_own_method(method_id))
}

fn not_own_method(method_id: &str) -> ToolError {
    rejected(format!("payment method `{method_id}` is not one of the order's customer's"))
}

/// What each payment method has paid on the order net of refunds, in order of first use; only
/// the positive amounts.
fn net_paid_by_method(order: &Order) -> Vec<(String, i64)> {
    let mut net: IndexMap<String, i64> = IndexMap::new();
    for transaction in &order.payment_history {
        let cents = transaction.amount.cents();
        let entry = net.entry(transaction.payment_method_id.clone()).or_default();
        match transaction.transaction_type {
            TransactionType::Payment => *entry += cents,
            TransactionType::Refund => *entry -= cents,
        }
    }
    net.into_iter().filter(|(_, cents)| *cents > 0).collect()
}

/// Adds `cents` (negative to charge) to a gift card's balance; other methods have none.
pub(crate) fn credit_gift_card(method: &mut PaymentMethod, cents: i64) {
    if let Some(balance) = method.gift_card_cents() {
        method.balance = Some(Money::from_cents(balance + cents));
    }
}

fn address_from(args: &Args<'_>) -> Result<Address, ToolError> {
    Ok(Address {
        address1: args.text("address1")?.to_owned(),
        address2: args.text("address2")?.to_owned(),
        city: args.text("city")?.to_owned(),
        country: args.text("country")?.to_owned(),
        state: args.text("state")?.to_owned(),
        zip: args.text("zip")?.to_owned(),
        extra: Extra::new(),
    })
}
