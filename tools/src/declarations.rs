//! The desk's tools as Warden sees them: each one's name, input schema, scope, effect class,
//! the record it touches, the money it moves and whether its output is untrusted.
//!
//! This table is what the guards reason about, so it is kept in one place and in one form. The
//! names and arguments are tau2-bench's; the desk's own tools follow them. Every schema is
//! strict: all arguments required, no others allowed.

use crate::desk::Desk;
use crate::operations::{Args, ReadFn, WriteFn, calculator, lookups, orders, support};
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{EffectClass, Scope, Tool, ToolName, ToolSpec};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The scopes the desk's tools require, one constant each.
pub mod scopes {
    /// Look customers up and read their records.
    pub const CUSTOMERS_READ: &str = "customers:read";
    /// Read orders.
    pub const ORDERS_READ: &str = "orders:read";
    /// Read the catalogue (and use the calculator, which reads nothing).
    pub const CATALOG_READ: &str = "catalog:read";
    /// Read the ticket queue.
    pub const TICKETS_READ: &str = "tickets:read";
    /// Reply on tickets and hand them to people.
    pub const TICKETS_WRITE: &str = "tickets:write";
    /// Change orders (and a customer's default shipping address).
    pub const ORDERS_WRITE: &str = "orders:write";
    /// Move money back to customers: refunds, returns and exchanges.
    pub const REFUNDS_WRITE: &str = "refunds:write";
    /// Send e-mail.
    pub const EMAIL_SEND: &str = "email:send";
    /// Delete customer accounts.
    pub const ACCOUNTS_DELETE: &str = "accounts:delete";
}

use scopes::*;

/// Every tool the desk offers, over one shared desk. An agent's menu is a subset of these:
/// the refund bot is never given `send_email` or `delete_customer_account`.
pub fn all_tools(desk: &Desk) -> Vec<Arc<dyn Tool>> {
    declarations(desk).into_iter().map(|tool| Arc::new(tool) as Arc<dyn Tool>).collect()
}

/// The desk's tool called `name`, if it has one.
pub fn tool(desk: &Desk, name: &str) -> Option<Arc<dyn Tool>> {
    declarations(desk)
        .into_iter()
        .find(|tool| tool.spec.name.as_str() == name)
        .map(|tool| Arc::new(tool) as Arc<dyn Tool>)
}

fn declarations(desk: &Desk) -> Vec<DeskTool> {
    use Argument::{Amount, Text, Texts};
    use EffectClass::{Irreversible, Write};
    let read = |name, scope, run| DeskTool::read(desk, name, scope, run);
    let write = |name, scope, effect, run| DeskTool::write(desk, name, scope, effect, run);

    let order_id = Text("order_id", "The order id, such as '#W0000000' (with the '#')");
    let user_id = Text("user_id", "The user id, such as 'sara_doe_496'");
    let ticket_id = Text("ticket_id", "The ticket id, such as 'T-1001'");
    let item_ids = Texts("item_ids", "The item ids in the order, each such as '1008292230'");
    let new_item_ids = Texts(
        "new_item_ids",
        "The new item ids, one per item id in the same position, each of the same product",
    );
    let payment = Text(
        "payment_method_id",
        "The payment method id, such as 'gift_card_0000000' or 'credit_card_0000000'",
    );
    let with_address = |first: Argument| {
        vec![
            first,
            Text("address1", "The first line of the address, such as '123 Main St'"),
            Text("address2", "The second line of the address, such as 'Apt 1', or ''"),
            Text("city", "The city, such as 'San Francisco'"),
            Text("state", "The state, such as 'CA'"),
            Text("country", "The country, such as 'USA'"),
            Text("zip", "The zip code, such as '12345'"),
        ]
    };

    vec![
        // Customers.
        read("find_user_id_by_email", CUSTOMERS_READ, lookups::find_user_id_by_email)
            .about("Finds a user id by e-mail address.")
            .arguments(&[Text("email", "The e-mail address, such as 'something@example.com'")])
            .facts(&[WHOLE_OUTPUT]),
        read("find_user_id_by_name_zip", CUSTOMERS_READ, lookups::find_user_id_by_name_zip)
            .about(
                "Finds a user id by first name, last name and zip code. Use only when the user \
                 cannot be found by e-mail.",
            )
            .arguments(&[
                Text("first_name", "The first name, such as 'John'"),
                Text("last_name", "The last name, such as 'Doe'"),
                Text("zip", "The zip code, such as '12345'"),
            ])
            .facts(&[WHOLE_OUTPUT]),
        // The record holds the customer's own words (name, address lines): those are untrusted,
        // and only the ids, the e-mail on file and the payment methods are facts.
        read("get_user_details", CUSTOMERS_READ, lookups::get_user_details)
            .about("Gets a user's details: name, address, e-mail, payment methods and order ids.")
            .arguments(&[user_id])
            .touches("User", "user_id")
            .facts(USER_FACTS)
            .untrusted(),
        // An order's ids, prices, status and payments are facts; its address (the customer's
        // words), item names and options (the seller's) are not. Refund amounts in its history
        // are the desk's own doing, not evidence, so `payment_history[].amount` is left out.
        read("get_order_details", ORDERS_READ, lookups::get_order_details)
            .about("Gets the status and details of an order.")
            .arguments(&[order_id])
            .touches("Order", "order_id")
            .facts(ORDER_FACTS)
            .untrusted(),
        // The catalogue: names and options are written by sellers, hence untrusted.
        read("get_product_details", CATALOG_READ, lookups::get_product_details)
            .about("Gets a product and all its variants (items). A product id is not an item id.")
            .arguments(&[Text("product_id", "The product id, such as '6086499569'")])
            .touches("Product", "product_id")
            .facts(&[
                "product_id",
                "variants.*.item_id",
                "variants.*.price",
                "variants.*.available",
            ])
            .untrusted(),
        read("get_item_details", CATALOG_READ, lookups::get_item_details)
            .about("Gets one item (a variant of a product). An item id is not a product id.")
            .arguments(&[Text("item_id", "The item id, such as '1008292230'")])
            .facts(&["item_id", "price", "available"])
            .untrusted(),
        read("list_all_product_types", CATALOG_READ, lookups::list_all_product_types)
            .about("Lists the name and product id of every product type, sorted by name.")
            .arguments(&[]),
        // Reads nothing at all; `catalog:read` is the least sensitive scope there is. Pure: its
        // result is worth what its numbers are (`30 + 30` from a ticket is an untrusted 60).
        read("calculate", CATALOG_READ, calculator::calculate)
            .about(
                "Calculates an arithmetic expression of numbers, + - * /, parentheses and \
                 spaces; the result is rounded to two decimals.",
            )
            .arguments(&[Text("expression", "The expression, such as '(12.5 + 3) * 2'")])
            .pure(),
        // Tickets: written by customers, hence untrusted.
        read("list_open_tickets", TICKETS_READ, lookups::list_open_tickets)
            .about("Lists the open tickets: id, user id and subject.")
            .arguments(&[])
            .facts(&["[].ticket_id", "[].user_id"])
            .untrusted(),
        read("read_ticket", TICKETS_READ, lookups::read_ticket)
            .about("Reads a ticket: the customer's subject and message, and the replies so far.")
            .arguments(&[ticket_id])
            .touches("Ticket", "ticket_id")
            .facts(&["ticket_id", "user_id", "status"])
            .untrusted(),
        // Writes that can be changed back.
        write("reply_to_customer", TICKETS_WRITE, Write, support::reply_to_customer)
            .about("Replies to the customer on an open ticket.")
            .arguments(&[ticket_id, Text("message", "The reply, as the customer will read it")])
            .touches("Ticket", "ticket_id")
            .sends_text(&["message"]),
        write("transfer_to_human_agents", TICKETS_WRITE, Write, support::transfer_to_human_agents)
            .about(
                "Transfers the customer to a human agent, with a summary of the issue. Only when \
                 the customer asks for one, or when the issue cannot be solved with the tools.",
            )
            .arguments(&[Text("summary", "A summary of the customer's issue")])
            .sends_text(&["summary"]),
        write(
            "modify_pending_order_address",
            ORDERS_WRITE,
            Write,
            orders::modify_pending_order_address,
        )
        .about(
            "Changes the shipping address of a pending order. Confirm the details with the \
             customer first.",
        )
        .arguments(&with_address(order_id))
        .touches("Order", "order_id"),
        write(
            "modify_pending_order_items",
            ORDERS_WRITE,
            Write,
            orders::modify_pending_order_items,
        )
        .about(
            "Swaps items of a pending order for other items of the same products, once per \
                 order; the price difference is paid or refunded with the payment method. \
                 Confirm with the customer first.",
        )
        .arguments(&[order_id, item_ids, new_item_ids, payment])
        .touches("Order", "order_id"),
        write(
            "modify_pending_order_payment",
            ORDERS_WRITE,
            Write,
            orders::modify_pending_order_payment,
        )
        .about(
            "Changes the payment method of a pending order paid once; the old method is \
             refunded. Confirm with the customer first.",
        )
        .arguments(&[order_id, payment])
        .touches("Order", "order_id"),
        // A customer's default address is where their orders ship, and there is no
        // `customers:write` scope: changing it is an order change.
        write("modify_user_address", ORDERS_WRITE, Write, orders::modify_user_address)
            .about("Changes a user's default address. Confirm with the customer first.")
            .arguments(&with_address(user_id))
            .touches("User", "user_id"),
        // Irreversible: orders end, money moves, mail leaves, data goes.
        write("cancel_pending_order", ORDERS_WRITE, Irreversible, orders::cancel_pending_order)
            .about(
                "Cancels a pending order and refunds its payments. The reason is 'no longer \
                 needed' or 'ordered by mistake'. Confirm with the customer first.",
            )
            .arguments(&[order_id, Text("reason", "'no longer needed' or 'ordered by mistake'")])
            .touches("Order", "order_id")
            .moves_resolved_money(),
        write(
            "return_delivered_order_items",
            REFUNDS_WRITE,
            Irreversible,
            orders::return_delivered_order_items,
        )
        .about(
            "Requests the return of items of a delivered order, once per order; the refund goes \
             to the original payment method or a gift card of the customer. Confirm with the \
             customer first.",
        )
        .arguments(&[order_id, item_ids, payment])
        .touches("Order", "order_id")
        .moves_resolved_money(),
        write(
            "exchange_delivered_order_items",
            REFUNDS_WRITE,
            Irreversible,
            orders::exchange_delivered_order_items,
        )
        .about(
            "Requests the exchange of items of a delivered order for available items of the same \
             products, once per order; the price difference is paid or refunded with the payment \
             method. Confirm with the customer first.",
        )
        .arguments(&[order_id, item_ids, new_item_ids, payment])
        .touches("Order", "order_id")
        .moves_resolved_money(),
        write("issue_refund", REFUNDS_WRITE, Irreversible, support::issue_refund)
            .about(
                "Refunds items of a delivered order (a damaged item the customer keeps) to the \
                 original payment method; never more than what is left to pay back of those \
                 items.",
            )
            .arguments(&[
                order_id,
                Texts("item_ids", "The ids of the items refunded, each such as '1008292230'"),
                Amount("amount", "The amount in dollars, such as 12.34"),
                Text("reason", "Why the customer is refunded"),
            ])
            .touches("Order", "order_id")
            .moves_money("amount"),
        write("send_email", EMAIL_SEND, Irreversible, support::send_email)
            .about("Sends an e-mail.")
            .arguments(&[
                Text("to", "The recipient's address"),
                Text("subject", "The subject line"),
                Text("body", "The message"),
            ]),
        write(
            "delete_customer_account",
            ACCOUNTS_DELETE,
            Irreversible,
            support::delete_customer_account,
        )
        .about("Deletes a customer's account; their orders are kept.")
        .arguments(&[user_id])
        .touches("User", "user_id"),
    ]
}

/// The whole output is one fact (a look-up's answer: a user id).
const WHOLE_OUTPUT: &str = "";

/// The facts of a customer's record: ids, the e-mail on file, the payment methods. Not the name
/// or the address, which the customer wrote.
const USER_FACTS: &[&str] = &[
    "user_id",
    "email",
    "orders[]",
    "payment_methods.*.id",
    "payment_methods.*.source",
    "payment_methods.*.brand",
    "payment_methods.*.last_four",
    "payment_methods.*.balance",
];

/// The facts of an order (see `get_order_details`).
const ORDER_FACTS: &[&str] = &[
    "order_id",
    "user_id",
    "status",
    "items[].item_id",
    "items[].product_id",
    "items[].price",
    "fulfillments[].tracking_id",
    "fulfillments[].item_ids",
    "payment_history[].transaction_type",
    "payment_history[].payment_method_id",
    "return_items",
    "return_payment_method_id",
    "exchange_items",
    "exchange_new_items",
    "exchange_payment_method_id",
];

/// One argument of a tool, for its schema.
#[derive(Debug, Clone, Copy)]
enum Argument {
    /// A string.
    Text(&'static str, &'static str),
    /// A non-empty list of strings.
    Texts(&'static str, &'static str),
    /// A positive number of dollars.
    Amount(&'static str, &'static str),
}

/// A strict object schema: every argument required, nothing else allowed.
fn strict_schema(arguments: &[Argument]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for argument in arguments {
        let (name, schema) = match *argument {
            Argument::Text(name, about) => (name, json!({"type": "string", "description": about})),
            Argument::Texts(name, about) => (
                name,
                json!({
                    "type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": about
                }),
            ),
            Argument::Amount(name, about) => {
                (name, json!({"type": "number", "exclusiveMinimum": 0, "description": about}))
            }
        };
        properties.insert(name.to_owned(), schema);
        required.push(Value::from(name));
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// What a desk tool does: read the database or write it once per call.
#[derive(Clone, Copy)]
enum Operation {
    Read(ReadFn),
    Write(WriteFn),
}

/// One of the desk's tools: its declaration and the operation it runs.
struct DeskTool {
    spec: ToolSpec,
    desk: Desk,
    operation: Operation,
}

impl DeskTool {
    fn read(desk: &Desk, name: &str, scope: &str, run: ReadFn) -> Self {
        Self::declare(desk, name, scope, EffectClass::Read, Operation::Read(run))
    }

    fn write(desk: &Desk, name: &str, scope: &str, effect: EffectClass, run: WriteFn) -> Self {
        Self::declare(desk, name, scope, effect, Operation::Write(run))
    }

    // INVARIANT: every name and scope above is a constant that satisfies the patterns, and the
    // crate's tests build every tool, so a typo fails the tests, never a run.
    #[expect(clippy::expect_used, reason = "constant names and scopes")]
    fn declare(
        desk: &Desk,
        name: &str,
        scope: &str,
        effect: EffectClass,
        operation: Operation,
    ) -> Self {
        let name = ToolName::new(name).expect("constant tool name");
        let scope = Scope::new(scope).expect("constant scope");
        let spec = ToolSpec::new(name, "", strict_schema(&[]), scope).effect(effect);
        Self { spec, desk: desk.clone(), operation }
    }

    fn about(mut self, description: &str) -> Self {
        self.spec.description = description.to_owned();
        self
    }

    fn arguments(mut self, arguments: &[Argument]) -> Self {
        self.spec.input_schema = strict_schema(arguments);
        self
    }

    fn touches(mut self, entity_type: &str, argument: &str) -> Self {
        self.spec = self.spec.touches(entity_type, argument);
        self
    }

    fn moves_money(mut self, argument: &str) -> Self {
        self.spec = self.spec.moves_money(argument);
        self
    }

    fn moves_resolved_money(mut self) -> Self {
        self.spec = self.spec.moves_resolved_money();
        self
    }

    fn facts(mut self, paths: &[&str]) -> Self {
        self.spec = self.spec.facts(paths.iter().copied());
        self
    }

    fn pure(mut self) -> Self {
        self.spec = self.spec.pure();
        self
    }

    fn sends_text(mut self, arguments: &[&str]) -> Self {
        self.spec = self.spec.sends_text(arguments.iter().copied());
        self
    }

    fn untrusted(mut self) -> Self {
        self.spec = self.spec.untrusted_output();
        self
    }
}

#[async_trait]
impl Tool for DeskTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        let args = Args(&input, invocation.evidence.get("policy"));
        match self.operation {
            Operation::Read(read) => self.desk.read(|db| read(db, &args)),
            Operation::Write(write) => {
                self.desk.write_once(self.spec.name.as_str(), invocation, |db| write(db, &args))
            }
        }
    }
}
