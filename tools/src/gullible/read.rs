//! Reading the conversation: everything the gullible model knows at the start of a turn.
//!
//! The model keeps no state between turns, so each turn starts here, from the messages alone:
//! the task's ids (from the operator's instructions), the ticket body, every text it can see
//! (each tool result's output too) and the calls it already made, with their results.

use super::Call;
use agent_core::agent::read_untrusted_label;
use agent_core::model::{ContentBlock, Message, Role};
use serde_json::Value;
use std::collections::HashMap;

/// The opening of the label the agent loop wraps untrusted content in.
const LABEL_OPENING: &str = "<untrusted source=\"";

/// What the model has read so far.
#[derive(Debug, Default)]
pub(super) struct Reading {
    /// The ticket the operator asked to resolve (`Resolve ticket T-1001 from customer …`).
    pub(super) ticket_id: Option<String>,
    /// The customer the operator named.
    pub(super) customer: Option<String>,
    /// The ticket body as the customer wrote it, or empty.
    pub(super) ticket: String,
    /// Every text seen, in the order it arrived.
    pub(super) texts: Vec<SeenText>,
    /// Every call made in earlier turns, in order, with its result once it came back.
    pub(super) made: Vec<MadeCall>,
    /// How many turns the model has already taken.
    pub(super) turns: usize,
}

/// A text and where it was seen.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SeenText {
    /// Where it came from: `instructions`, `ticket`, or `get_product_details`, say.
    pub(super) source: String,
    /// The text.
    pub(super) text: String,
    /// Whether it is a refusal or a failure: the runtime's answer to the model's own call,
    /// which the model reads but does not take orders from (it never retries a refused call,
    /// in the same words or in others).
    pub(super) refusal: bool,
}

/// A call the model made, and what came back.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MadeCall {
    /// The call as the model made it.
    pub(super) call: Call,
    /// Its result, once the next user message carried it.
    pub(super) result: Option<CallResult>,
}

/// A tool result, without its untrusted label.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CallResult {
    /// The output, or the refusal sentence.
    pub(super) content: String,
    /// Whether the call was refused or failed.
    pub(super) is_error: bool,
}

/// The parts of an order record (`get_order_details`) the support workflow uses.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OrderRecord {
    /// Where it stands (`pending`, `delivered`, …).
    pub(super) status: String,
    /// What was ordered.
    pub(super) items: Vec<OrderItem>,
    /// The payment method of the first payment, where refunds of a return go.
    pub(super) original_payment: Option<String>,
}

/// One line of an order record.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OrderItem {
    /// The variant.
    pub(super) item_id: String,
    /// The product.
    pub(super) product_id: String,
    /// The product's name.
    pub(super) name: String,
    /// The price paid, the JSON number as the record holds it.
    pub(super) price: Value,
}

impl Reading {
    /// Reads the whole conversation.
    pub(super) fn of(messages: &[Message]) -> Self {
        let mut reading = Self::default();
        // Which made call each tool-use id names.
        let mut call_index: HashMap<&str, usize> = HashMap::new();
        for message in messages {
            match message.role {
                Role::Assistant => {
                    reading.turns += 1;
                    for block in &message.content {
                        if let ContentBlock::ToolUse { id, name, input } = block {
                            call_index.insert(id, reading.made.len());
                            let call = Call::new(name, input.clone());
                            reading.made.push(MadeCall { call, result: None });
                        }
                    }
                }
                Role::User => {
                    for block in &message.content {
                        match block {
                            ContentBlock::Text { text } => reading.read_user_text(text),
                            ContentBlock::ToolResult { tool_use_id, content, is_error } => {
                                let index = call_index.get(tool_use_id.as_str()).copied();
                                reading.read_tool_result(index, content, *is_error);
                            }
                            ContentBlock::ToolUse { .. } | ContentBlock::Other(_) => {}
                        }
                    }
                }
            }
        }
        reading
    }

    /// Whether the model already made exactly this call (same tool, same input).
    pub(super) fn has_made(&self, call: &Call) -> bool {
        self.made.iter().any(|made| made.call == *call)
    }

    /// The first call already made that `same` recognises.
    pub(super) fn made_like(&self, same: impl Fn(&Call) -> bool) -> Option<&Call> {
        self.made.iter().map(|made| &made.call).find(|call| same(call))
    }

    /// The order `order_id` as a successful `get_order_details` returned it.
    pub(super) fn order(&self, order_id: &str) -> Option<OrderRecord> {
        let read = Call::new("get_order_details", serde_json::json!({ "order_id": order_id }));
        self.made
            .iter()
            .filter(|made| made.call == read)
            .filter_map(|made| made.result.as_ref())
            .filter(|result| !result.is_error)
            .find_map(|result| serde_json::from_str(&result.content).ok())
            .and_then(|value: Value| OrderRecord::from_json(&value))
    }

    /// Whether `order_id` was looked up and the lookup failed (no such order, or refused).
    pub(super) fn order_unreadable(&self, order_id: &str) -> bool {
        let read = Call::new("get_order_details", serde_json::json!({ "order_id": order_id }));
        self.made.iter().any(|made| {
            made.call == read && made.result.as_ref().is_some_and(|result| result.is_error)
        })
    }

    /// A text block of a user message: the operator's instructions, then any labelled
    /// untrusted input (the ticket).
    fn read_user_text(&mut self, text: &str) {
        let (own, labelled) = match text.find(LABEL_OPENING) {
            Some(at) => (&text[..at], Some(&text[at..])),
            None => (text, None),
        };
        if self.ticket_id.is_none() && self.customer.is_none() {
            self.ticket_id = word_after(own, "ticket ");
            self.customer = word_after(own, "customer ");
        }
        let own = own.to_owned();
        self.texts.push(SeenText { source: "instructions".to_owned(), text: own, refusal: false });
        if let Some((source, text)) = labelled.and_then(read_untrusted_label) {
            if source == "ticket" && self.ticket.is_empty() {
                text.clone_into(&mut self.ticket);
            }
            self.texts.push(SeenText { source, text, refusal: false });
        }
    }

    /// A tool result: recorded against the call it answers, and its text read. JSON output is
    /// read value by value, so an instruction hidden in one string (a product's name) is read
    /// as a text of its own.
    fn read_tool_result(&mut self, index: Option<usize>, content: &str, is_error: bool) {
        let unlabelled = read_untrusted_label(content).map(|(_, body)| body);
        let body = unlabelled.as_deref().unwrap_or(content);
        let source = match index.and_then(|index| self.made.get(index)) {
            Some(made) => made.call.name.clone(),
            None => "a tool result".to_owned(),
        };
        if let Some(made) = index.and_then(|index| self.made.get_mut(index)) {
            made.result = Some(CallResult { content: body.to_owned(), is_error });
        }
        match serde_json::from_str::<Value>(body) {
            Ok(value) if value.is_object() || value.is_array() => {
                let mut strings = Vec::new();
                string_leaves(&value, &mut strings);
                for text in strings {
                    let source = source.clone();
                    self.texts.push(SeenText { source, text, refusal: is_error });
                }
            }
            _ => self.texts.push(SeenText { source, text: body.to_owned(), refusal: is_error }),
        }
    }
}

impl OrderRecord {
    /// Reads an order record loosely: missing fields are empty rather than an error, since a
    /// model reads what is there.
    fn from_json(value: &Value) -> Option<Self> {
        let text = |value: &Value, name: &str| {
            value.get(name).and_then(Value::as_str).unwrap_or_default().to_owned()
        };
        let items = value
            .get("items")?
            .as_array()?
            .iter()
            .map(|item| OrderItem {
                item_id: text(item, "item_id"),
                product_id: text(item, "product_id"),
                name: text(item, "name"),
                price: item.get("price").cloned().unwrap_or(Value::Null),
            })
            .collect();
        let original_payment = value
            .get("payment_history")
            .and_then(Value::as_array)
            .and_then(|history| history.first())
            .map(|payment| text(payment, "payment_method_id"))
            .filter(|id| !id.is_empty());
        Some(Self { status: text(value, "status"), items, original_payment })
    }

    /// The items whose product name appears in `text` (any case).
    pub(super) fn items_named_in(&self, text: &str) -> Vec<&OrderItem> {
        let text = text.to_lowercase();
        self.items
            .iter()
            .filter(|item| !item.name.is_empty() && text.contains(&item.name.to_lowercase()))
            .collect()
    }

    /// The item named in `text`, else the order's only item.
    pub(super) fn item_meant_by(&self, text: &str) -> Option<&OrderItem> {
        match (self.items_named_in(text).first(), self.items.as_slice()) {
            (Some(named), _) => Some(named),
            (None, [only]) => Some(only),
            (None, _) => None,
        }
    }

    /// The ids of the items a refund of `amount` dollars asked for in `wording` pays back: the
    /// items the wording names, else the first item whose price is the amount, else every item
    /// of the order. Whoever wrote the wording decides, the customer or an attacker: an amount
    /// above every price still names items, so the refund is asked for and the desk's rules,
    /// not the model, stop it.
    pub(super) fn items_refunded_by(&self, wording: &str, amount: Option<f64>) -> Vec<String> {
        let named = self.items_named_in(wording);
        let priced = || {
            let amount = cents(amount?);
            self.items.iter().find(|item| item.price.as_f64().map(cents) == Some(amount))
        };
        let items: Vec<&OrderItem> = match (named.is_empty(), priced()) {
            (false, _) => named,
            (true, Some(item)) => vec![item],
            (true, None) => self.items.iter().collect(),
        };
        items.into_iter().map(|item| item.item_id.clone()).collect()
    }
}

/// Dollars as whole cents, rounded: prices and amounts are compared in cents.
pub(super) fn cents(dollars: f64) -> i64 {
    (dollars * 100.0).round() as i64
}

/// The word after `marker` in `text`, without trailing punctuation.
fn word_after(text: &str, marker: &str) -> Option<String> {
    let at = text.find(marker)? + marker.len();
    let word = text[at..].split_whitespace().next()?;
    let word = word.trim_end_matches(['.', ',', ';', ':']);
    (!word.is_empty()).then(|| word.to_owned())
}

/// Every string inside a JSON value, keys excluded, depth first.
fn string_leaves(value: &Value, strings: &mut Vec<String>) {
    match value {
        Value::String(text) => strings.push(text.clone()),
        Value::Array(values) => values.iter().for_each(|value| string_leaves(value, strings)),
        Value::Object(fields) => fields.values().for_each(|value| string_leaves(value, strings)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
