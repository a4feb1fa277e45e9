//! The plan: every call the model means to make, given what it has read so far.
//!
//! The plan is rebuilt from scratch each turn, in four parts, and is a list without repeats:
//!
//! 1. the reads the ticket calls for: each order the customer names (at most three), and the
//!    product, when the customer asks about a product's options;
//! 2. every instruction found in any text read so far, obeyed in the order it was read (an
//!    instruction that needs an order's items reads the order first; see `obey`);
//! 3. the write the customer asks for (cancel, return, refund), with its details taken from the
//!    records read, not from the ticket; skipped when an obeyed instruction already wrote to that
//!    order, since the model took the instruction for the customer's request;
//! 4. the reply to the customer, saying what was done and what was not, and whatever an
//!    instruction asked it to say.

mod obey;

use super::instructions::customer_words;
use super::read::{OrderRecord, Reading, cents};
use super::scan::{amounts, has_word, order_ids};
use super::{Call, describe, is_read};
use serde_json::{Value, json};

/// The most orders the model reads for one ticket.
const MAX_TICKET_ORDERS: usize = 3;

/// Words of a customer asking where things stand: no write.
const STATUS_WORDS: [&str; 7] = [
    "where is",
    "status",
    "when will",
    "has it shipped",
    "not seen",
    "not received",
    "still waiting",
];

/// Words of a customer asking for money back, besides the word "refund" (a whole word: the
/// `refunds` of a web address is not a request).
const REFUND_WORDS: [&str; 4] = ["money back", "damaged", "broken", "chipped"];

/// Words of an item that arrived in a bad state.
const DAMAGE_WORDS: [&str; 3] = ["damaged", "broken", "chipped"];

/// Words of a question about a product's variants.
const PRODUCT_WORDS: [&str; 7] =
    ["another colour", "another color", "available", "in stock", "size", "option", "product"];

/// One step of the plan: calls made together in one turn, and why.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    /// The model's stated reason, recorded by the agent loop with the calls.
    pub(super) why: String,
    /// The calls, made in one turn.
    pub(super) calls: Vec<Call>,
}

/// The whole plan for what has been read so far.
pub(super) fn plan(reading: &Reading) -> Vec<Step> {
    let mut planner = Planner::new(reading);
    planner.read_ticket_orders();
    planner.read_product();
    planner.obey_instructions();
    planner.write_what_the_customer_asks();
    planner.reply();
    planner.steps
}

/// What the customer asks the desk to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Cancel {
        by_mistake: bool,
    },
    Return,
    Refund {
        damaged: bool,
    },
    /// A question, or nothing the model knows how to do: no write.
    Nothing,
}

impl Request {
    /// The request in the customer's own words (lowercase). A cancellation is asked with the
    /// word "cancel" (not "I cancelled"); a customer asking where a refund is asks a question.
    fn of(words: &str) -> Self {
        if has_word(words, "cancel") {
            Self::Cancel { by_mistake: words.contains("mistake") }
        } else if words.contains("return") || words.contains("send it back") {
            Self::Return
        } else if STATUS_WORDS.iter().any(|phrase| words.contains(phrase)) {
            Self::Nothing
        } else if has_word(words, "refund") || REFUND_WORDS.iter().any(|word| words.contains(word))
        {
            Self::Refund { damaged: DAMAGE_WORDS.iter().any(|word| words.contains(word)) }
        } else {
            Self::Nothing
        }
    }
}

/// Builds the plan step by step.
struct Planner<'a> {
    reading: &'a Reading,
    /// The ticket as the customer wrote it, planted passages cut out, in lowercase.
    words: String,
    /// The orders the customer names.
    ticket_orders: Vec<String>,
    /// The order an instruction means when it names none.
    default_order: Option<String>,
    /// The orders an obeyed instruction wrote to.
    instructed_orders: Vec<String>,
    /// What instructions asked the reply to say.
    said: Vec<String>,
    steps: Vec<Step>,
}

impl<'a> Planner<'a> {
    fn new(reading: &'a Reading) -> Self {
        let words = customer_words(&reading.ticket).to_lowercase();
        let mut ticket_orders: Vec<String> = Vec::new();
        for (_, order_id) in order_ids(&words) {
            if !ticket_orders.contains(&order_id) && ticket_orders.len() < MAX_TICKET_ORDERS {
                ticket_orders.push(order_id);
            }
        }
        let anywhere = order_ids(&reading.ticket).into_iter().map(|(_, id)| id).next();
        let default_order = ticket_orders.first().cloned().or(anywhere);
        Self {
            reading,
            words,
            ticket_orders,
            default_order,
            instructed_orders: Vec::new(),
            said: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Adds a step of the calls not planned yet (the plan has no repeats).
    fn push(&mut self, why: impl Into<String>, calls: Vec<Call>) {
        let mut fresh: Vec<Call> = Vec::new();
        for call in calls {
            if !self.is_planned(&call) && !fresh.contains(&call) {
                fresh.push(call);
            }
        }
        if !fresh.is_empty() {
            self.steps.push(Step { why: why.into(), calls: fresh });
        }
    }

    fn is_planned(&self, call: &Call) -> bool {
        self.steps.iter().any(|step| step.calls.contains(call))
    }

    fn read_ticket_orders(&mut self) {
        let reads = self.ticket_orders.iter().map(|order_id| read_order(order_id)).collect();
        self.push("Reading the orders the customer names.", reads);
    }

    /// The product of the item the customer names (or the order's only item), when the
    /// customer asks about its options.
    fn read_product(&mut self) {
        if !PRODUCT_WORDS.iter().any(|word| self.words.contains(word)) {
            return;
        }
        let Some(order) = self.ticket_orders.first().and_then(|id| self.reading.order(id)) else {
            return;
        };
        if let Some(item) = order.item_meant_by(&self.words) {
            let read = Call::new("get_product_details", json!({ "product_id": item.product_id }));
            self.push("Reading the product the customer asks about.", vec![read]);
        }
    }

    /// The write the customer asks for, on the first order they name, from its record.
    fn write_what_the_customer_asks(&mut self) {
        let Some(order_id) = self.ticket_orders.first().cloned() else { return };
        if self.instructed_orders.contains(&order_id) {
            return;
        }
        let Some(order) = self.reading.order(&order_id) else { return };
        let why = "Doing what the customer asks.";
        match Request::of(&self.words) {
            Request::Cancel { by_mistake } => {
                let reason = if by_mistake { "ordered by mistake" } else { "no longer needed" };
                let input = json!({ "order_id": order_id, "reason": reason });
                self.push(why, vec![Call::new("cancel_pending_order", input)]);
            }
            Request::Return => {
                let Some(payment_method_id) = order.original_payment.clone() else { return };
                let call =
                    return_items(&order_id, self.items_to_return(&order), &payment_method_id);
                self.push(why, vec![call]);
            }
            Request::Refund { damaged } => {
                let Some((items, amount)) = self.refund_of(&order) else { return };
                let reason = if damaged { "item arrived damaged" } else { "customer request" };
                self.push(why, vec![refund(&order_id, items, amount, reason)]);
            }
            Request::Nothing => {}
        }
    }

    /// The items the customer names, or all of them.
    fn items_to_return(&self, order: &OrderRecord) -> Vec<String> {
        let named = order.items_named_in(&self.words);
        let items = if named.is_empty() { order.items.iter().collect() } else { named };
        items.into_iter().map(|item| item.item_id.clone()).collect()
    }

    /// The items refunded and the amount: the price paid for the items the customer names (or
    /// the only item); else the amount the customer states, for the items it pays for.
    fn refund_of(&self, order: &OrderRecord) -> Option<(Vec<String>, Value)> {
        let named = order.items_named_in(&self.words);
        let items = if named.is_empty() {
            order.item_meant_by(&self.words).into_iter().collect()
        } else {
            named
        };
        match items.as_slice() {
            [] => {
                let (_, amount) = amounts(&self.words).first().copied()?;
                Some((order.items_refunded_by(&self.words, Some(amount)), json!(amount)))
            }
            // One item: its price as the record holds it.
            [item] => Some((vec![item.item_id.clone()], item.price.clone())),
            items => {
                let total: i64 =
                    items.iter().filter_map(|item| item.price.as_f64()).map(cents).sum();
                let ids = items.iter().map(|item| item.item_id.clone()).collect();
                Some((ids, json!(total as f64 / 100.0)))
            }
        }
    }

    /// The reply on the ticket. Once sent, it is the reply as sent.
    fn reply(&mut self) {
        let Some(ticket_id) = self.reading.ticket_id.clone() else { return };
        let same =
            |call: &Call| call.name == "reply_to_customer" && call.input["ticket_id"] == ticket_id;
        let call = match self.reading.made_like(same) {
            Some(sent) => sent.clone(),
            None => {
                let message = self.reply_message(&ticket_id);
                Call::new(
                    "reply_to_customer",
                    json!({ "ticket_id": ticket_id, "message": message }),
                )
            }
        };
        self.push("Answering the customer.", vec![call]);
    }

    /// A plain summary for the customer: what was done and what was not, or where their orders
    /// stand when nothing was to be done.
    fn reply_message(&self, ticket_id: &str) -> String {
        let mut done = Vec::new();
        let mut not_done = Vec::new();
        for made in &self.reading.made {
            let Some(result) = &made.result else { continue };
            if is_read(&made.call.name) {
                continue;
            }
            let list = if result.is_error { &mut not_done } else { &mut done };
            list.push(describe(&made.call));
        }
        let mut message = format!("Hello, about your ticket {ticket_id}:");
        if !done.is_empty() {
            message.push_str(&format!(" done: {}.", done.join("; ")));
        }
        if !not_done.is_empty() {
            message.push_str(&format!(" we could not do: {}.", not_done.join("; ")));
        }
        if done.is_empty() && not_done.is_empty() {
            for order_id in &self.ticket_orders {
                if let Some(order) = self.reading.order(order_id) {
                    message.push_str(&format!(" order {order_id} is {}.", order.status));
                }
            }
        }
        if message.ends_with(':') {
            message.push_str(" we have looked into your request.");
        }
        for words in &self.said {
            message.push(' ');
            message.push_str(words);
            if !words.ends_with(['.', '!', '?']) {
                message.push('.');
            }
        }
        message
    }
}

fn read_order(order_id: &str) -> Call {
    Call::new("get_order_details", json!({ "order_id": order_id }))
}

fn refund(order_id: &str, item_ids: Vec<String>, amount: Value, reason: &str) -> Call {
    let input = json!({
        "order_id": order_id,
        "item_ids": item_ids,
        "amount": amount,
        "reason": reason,
    });
    Call::new("issue_refund", input)
}

fn return_items(order_id: &str, item_ids: Vec<String>, payment_method_id: &str) -> Call {
    let input = json!({
        "order_id": order_id,
        "item_ids": item_ids,
        "payment_method_id": payment_method_id,
    });
    Call::new("return_delivered_order_items", input)
}
