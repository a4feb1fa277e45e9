//! Operations: what each tool does to the database, with the business rules it keeps.
//!
//! Reads take `&Database`; writes take `&mut Database` and are written in two halves: first every
//! check (a failed one is a [`ToolError::Rejected`] with a sentence for the model), then the
//! changes, which cannot fail. That is what makes a write all-or-nothing: a multi-item exchange
//! whose third item is unavailable changes nothing.
//!
//! The rules and the state changes follow tau2-bench's retail tools; where this desk deliberately
//! differs, the operation says so.

pub(crate) mod calculator;
pub(crate) mod lookups;
pub(crate) mod orders;
pub(crate) mod support;

use crate::records::{Database, Order, User};
use agent_core::tool::{ToolError, ToolOutput};
use serde::Serialize;
use serde_json::Value;

/// What a read does.
pub(crate) type ReadFn = fn(&Database, &Args<'_>) -> Result<ToolOutput, ToolError>;

/// What a write does.
pub(crate) type WriteFn = fn(&mut Database, &Args<'_>) -> Result<ToolOutput, ToolError>;

/// A call's arguments. The schema stage has already checked them; these accessors still refuse
/// a missing or mistyped argument rather than assume it. The second field is what the runtime's
/// guards found about the call ([`Invocation::evidence`](agent_core::tool::Invocation)), for
/// tools that keep provenance with what they record.
pub(crate) struct Args<'a>(pub(crate) &'a Value, pub(crate) Option<&'a Value>);

impl Args<'_> {
    /// The mentions in the argument `name`'s outbound text that nothing vouches for, as the
    /// policy guard found them (each with its kind, text and origin); empty when it found none
    /// or the call came without the runtime's evidence.
    pub(crate) fn unvouched_mentions(&self, name: &str) -> Vec<Value> {
        let Some(mentions) =
            self.1.and_then(|evidence| evidence.get("outbound_mentions")).and_then(Value::as_array)
        else {
            return Vec::new();
        };
        mentions
            .iter()
            .filter(|mention| mention.get("argument").and_then(Value::as_str) == Some(name))
            .filter(|mention| {
                mention.pointer("/origin/origin").and_then(Value::as_str) != Some("trusted")
            })
            .cloned()
            .collect()
    }

    /// The string argument `name`.
    pub(crate) fn text(&self, name: &str) -> Result<&str, ToolError> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| rejected(format!("the argument `{name}` must be a string")))
    }

    /// The list-of-strings argument `name`.
    pub(crate) fn texts(&self, name: &str) -> Result<Vec<String>, ToolError> {
        let wrong = || rejected(format!("the argument `{name}` must be a list of strings"));
        let items = self.0.get(name).and_then(Value::as_array).ok_or_else(wrong)?;
        items.iter().map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong)).collect()
    }

    /// The number argument `name`.
    pub(crate) fn number(&self, name: &str) -> Result<f64, ToolError> {
        self.0
            .get(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| rejected(format!("the argument `{name}` must be a number")))
    }
}

/// A business-rule refusal, shown to the model.
pub(crate) fn rejected(message: impl Into<String>) -> ToolError {
    ToolError::Rejected(message.into())
}

/// A record as the tool's JSON output.
pub(crate) fn json_output(record: &impl Serialize) -> Result<ToolOutput, ToolError> {
    serde_json::to_value(record)
        .map(|value| ToolOutput::json(&value))
        .map_err(|error| ToolError::Internal(format!("cannot write the output as JSON: {error}")))
}

/// The order `order_id`, or a clear refusal.
pub(crate) fn find_order<'a>(db: &'a Database, order_id: &str) -> Result<&'a Order, ToolError> {
    db.orders.get(order_id).ok_or_else(|| order_not_found(order_id))
}

/// The customer `user_id`, or a clear refusal.
pub(crate) fn find_user<'a>(db: &'a Database, user_id: &str) -> Result<&'a User, ToolError> {
    db.users.get(user_id).ok_or_else(|| user_not_found(user_id))
}

/// The refusal for an unknown order.
pub(crate) fn order_not_found(order_id: &str) -> ToolError {
    rejected(format!("order `{order_id}` not found (order ids look like `#W0000000`)"))
}

/// The refusal for an unknown customer.
pub(crate) fn user_not_found(user_id: &str) -> ToolError {
    rejected(format!("user `{user_id}` not found"))
}

/// Dollars from cents, for messages: `1999` → `$19.99`.
pub(crate) fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}${}.{:02}", cents / 100, cents % 100)
}
