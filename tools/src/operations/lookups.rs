//! Reads: finding customers, orders, products and tickets. None of them changes anything.

use super::{Args, find_order, find_user, json_output, rejected};
use crate::records::{Database, TicketStatus};
use agent_core::tool::{ToolError, ToolOutput};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `find_user_id_by_email(email)`: the first customer whose e-mail matches, ignoring case.
pub(crate) fn find_user_id_by_email(
    db: &Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let wanted = args.text("email")?.trim().to_lowercase();
    db.users
        .values()
        .find(|user| user.email.to_lowercase() == wanted)
        .map(|user| ToolOutput::text(user.user_id.clone()))
        .ok_or_else(|| rejected("no user has this e-mail address"))
}

/// `find_user_id_by_name_zip(first_name, last_name, zip)`: names ignore case, the zip must match
/// exactly (it is the verification factor).
pub(crate) fn find_user_id_by_name_zip(
    db: &Database,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let first = args.text("first_name")?.trim().to_lowercase();
    let last = args.text("last_name")?.trim().to_lowercase();
    let zip = args.text("zip")?.trim();
    db.users
        .values()
        .find(|user| {
            user.name.first_name.to_lowercase() == first
                && user.name.last_name.to_lowercase() == last
                && user.address.zip == zip
        })
        .map(|user| ToolOutput::text(user.user_id.clone()))
        .ok_or_else(|| rejected("no user has this name and zip code"))
}

/// `get_user_details(user_id)`: the customer's record, with payment methods and order ids.
pub(crate) fn get_user_details(db: &Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    json_output(find_user(db, args.text("user_id")?)?)
}

/// `get_order_details(order_id)`: the order's record.
pub(crate) fn get_order_details(db: &Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    json_output(find_order(db, args.text("order_id")?)?)
}

/// `get_product_details(product_id)`: the product and all its variants.
pub(crate) fn get_product_details(db: &Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let product_id = args.text("product_id")?;
    let product = db.products.get(product_id).ok_or_else(|| {
        rejected(format!("product `{product_id}` not found (a product id is not an item id)"))
    })?;
    json_output(product)
}

/// `get_item_details(item_id)`: one variant.
pub(crate) fn get_item_details(db: &Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let item_id = args.text("item_id")?;
    let (_, variant) = db.item(item_id).ok_or_else(|| {
        rejected(format!("item `{item_id}` not found (an item id is not a product id)"))
    })?;
    json_output(variant)
}

/// `list_all_product_types()`: product names to product ids, sorted by name (as tau2 returns).
pub(crate) fn list_all_product_types(
    db: &Database,
    _args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let by_name: BTreeMap<&str, &str> = db
        .products
        .values()
        .map(|product| (product.name.as_str(), product.product_id.as_str()))
        .collect();
    json_output(&by_name)
}

/// `list_open_tickets()`: each open ticket's id, customer and subject (not its body).
pub(crate) fn list_open_tickets(db: &Database, _args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let open: Vec<Value> = db
        .tickets
        .values()
        .filter(|ticket| ticket.status == TicketStatus::Open)
        .map(|ticket| {
            json!({
                "ticket_id": ticket.ticket_id,
                "user_id": ticket.user_id,
                "subject": ticket.subject,
            })
        })
        .collect();
    Ok(ToolOutput::json(&Value::Array(open)))
}

/// `read_ticket(ticket_id)`: the whole ticket, as the customer wrote it, with the replies.
pub(crate) fn read_ticket(db: &Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let ticket_id = args.text("ticket_id")?;
    let ticket = db
        .tickets
        .get(ticket_id)
        .ok_or_else(|| rejected(format!("ticket `{ticket_id}` not found")))?;
    json_output(ticket)
}
