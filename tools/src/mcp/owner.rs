//! Whose records are, on the support desk: what a tool server binds every call to.
//!
//! The rule itself (refuse unless the token's customer owns the record) is
//! [`guards::credentials::OwnerBinding`], shared by the MCP server and by
//! [`TokenCheckedTool`](guards::credentials::TokenCheckedTool) in process. This module only says
//! who owns what on the desk, read from the desk's own database:
//!
//! - an `Order` is its `user_id`'s;
//! - a `User` is their own;
//! - a `Ticket` is its `user_id`'s;
//! - a `Product` is nobody's (the catalogue is public);
//! - an id the desk does not hold is [`Ownership::Missing`], refused like another customer's;
//! - any other entity type is an error, so a tool declaring a new kind of record is refused until
//!   someone says here who owns it.

use super::McpToolServer;
use crate::desk::Desk;
use agent_core::audit::AuditLog;
use agent_core::menu::MenuError;
use guards::credentials::{OwnerResolver, Ownership, Verifier};
use std::sync::Arc;

impl OwnerResolver for Desk {
    fn owner(&self, entity_type: &str, id: &str) -> Result<Ownership, String> {
        let customer = |user_id: &str| Ownership::Customer(user_id.to_owned());
        self.read(|db| match entity_type {
            "Order" => {
                Ok(db.orders.get(id).map_or(Ownership::Missing, |order| customer(&order.user_id)))
            }
            "User" => Ok(if db.users.contains_key(id) { customer(id) } else { Ownership::Missing }),
            "Ticket" => Ok(db
                .tickets
                .get(id)
                .map_or(Ownership::Missing, |ticket| customer(&ticket.user_id))),
            "Product" => Ok(Ownership::Unowned),
            other => Err(format!("the desk has no owner rule for `{other}` records")),
        })
    }
}

impl McpToolServer {
    /// The support desk's server: every tool of `desk`, each call checked against its token and
    /// bound to the customer the token serves ([`with_owners`](Self::with_owners) over the desk).
    /// This is the server to run for the desk.
    pub fn for_desk(
        desk: &Desk,
        verifier: Arc<Verifier>,
        audience: impl Into<String>,
        audit: Option<AuditLog>,
    ) -> Result<Self, MenuError> {
        let server = Self::new(crate::all_tools(desk), verifier, audience, audit)?;
        Ok(server.with_owners(Arc::new(desk.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desk_knows_whose_orders_users_and_tickets_are() {
        let desk = Desk::demo().unwrap();
        let db = desk.snapshot();
        let (order_id, order) = db.orders.first().unwrap();
        let user_id = db.users.keys().next().unwrap();
        let (ticket_id, ticket) = db.tickets.first().unwrap();
        let product_id = db.products.keys().next().unwrap();

        assert_eq!(desk.owner("Order", order_id), Ok(Ownership::Customer(order.user_id.clone())));
        assert_eq!(desk.owner("User", user_id), Ok(Ownership::Customer(user_id.clone())));
        assert_eq!(
            desk.owner("Ticket", ticket_id),
            Ok(Ownership::Customer(ticket.user_id.clone()))
        );
        assert_eq!(desk.owner("Product", product_id), Ok(Ownership::Unowned));
        assert_eq!(desk.owner("Order", "#W0000000"), Ok(Ownership::Missing));
        assert_eq!(desk.owner("User", "nobody_0000"), Ok(Ownership::Missing));
        assert!(desk.owner("Invoice", "1").is_err());
    }
}
