//! Three small stand-in tools, one per kind of call, that record every time they run.
//!
//! `get_order_details` reads (scope `orders:read`), `issue_refund` moves money for good (scope
//! `refunds:write`, irreversible) and `send_email` sends a message (scope `email:send`,
//! irreversible). They answer from fixed data: they exist to exercise the MCP layer (the tests,
//! the benchmark, the interoperability check and, until the support desk's own tools are wired
//! in, the `support-desk-mcp` binary), not to model a desk. [`SampleTools::ran`] lists every call
//! that reached a tool, which is how a test proves a refused call never ran.

use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{EffectClass, Scope, Tool, ToolName, ToolSpec};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, PoisonError};

/// The three sample tools and the record of the calls they ran.
#[derive(Debug, Clone, Default)]
pub struct SampleTools {
    ran: Arc<Mutex<Vec<Ran>>>,
}

/// One call a sample tool ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    /// The tool.
    pub tool: String,
    /// The arguments it ran with.
    pub input: Value,
}

impl SampleTools {
    /// Fresh tools with an empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tools, in the order `get_order_details`, `issue_refund`, `send_email`.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        SAMPLES
            .iter()
            .filter_map(|sample| {
                let spec = sample.spec()?;
                let tool: Arc<dyn Tool> = Arc::new(SampleTool {
                    spec,
                    answer: sample.answer,
                    ran: Arc::clone(&self.ran),
                });
                Some(tool)
            })
            .collect()
    }

    /// Every call that reached a tool, in order.
    pub fn ran(&self) -> Vec<Ran> {
        self.ran.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A sample tool's declaration, as data.
struct Sample {
    name: &'static str,
    description: &'static str,
    scope: &'static str,
    effect: EffectClass,
    /// The argument naming the `Order` the call touches.
    order_argument: Option<&'static str>,
    /// The argument holding the money the call moves.
    money_argument: Option<&'static str>,
    schema: fn() -> Value,
    answer: fn(&Value) -> Value,
}

impl Sample {
    fn spec(&self) -> Option<ToolSpec> {
        // The names and scopes below are valid literals; a typo would drop the tool, and every
        // test that uses it would fail.
        let name = ToolName::new(self.name).ok()?;
        let scope = Scope::new(self.scope).ok()?;
        let mut spec =
            ToolSpec::new(name, self.description, (self.schema)(), scope).effect(self.effect);
        if let Some(argument) = self.order_argument {
            spec = spec.touches("Order", argument);
        }
        if let Some(argument) = self.money_argument {
            spec = spec.moves_money(argument);
        }
        Some(spec)
    }
}

const SAMPLES: [Sample; 3] = [
    Sample {
        name: "get_order_details",
        description: "Looks up an order: its status, items and total.",
        scope: "orders:read",
        effect: EffectClass::Read,
        order_argument: Some("order_id"),
        money_argument: None,
        schema: || {
            json!({
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
                "additionalProperties": false
            })
        },
        answer: |input| {
            json!({
                "order_id": input["order_id"],
                "status": "delivered",
                "items": [{"name": "blender", "price": 54.0}],
                "total": 54.0
            })
        },
    },
    Sample {
        name: "issue_refund",
        description: "Refunds part of an order to its original payment method.",
        scope: "refunds:write",
        effect: EffectClass::Irreversible,
        order_argument: Some("order_id"),
        money_argument: Some("amount"),
        schema: || {
            json!({
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "amount": {"type": "number", "exclusiveMinimum": 0},
                    "reason": {"type": "string"}
                },
                "required": ["order_id", "amount", "reason"],
                "additionalProperties": false
            })
        },
        answer: |input| json!({"order_id": input["order_id"], "refunded": input["amount"]}),
    },
    Sample {
        name: "send_email",
        description: "Sends an email to a customer.",
        scope: "email:send",
        effect: EffectClass::Irreversible,
        order_argument: None,
        money_argument: None,
        schema: || {
            json!({
                "type": "object",
                "properties": {
                    "to": {"type": "string"},
                    "subject": {"type": "string"},
                    "body": {"type": "string"}
                },
                "required": ["to", "subject", "body"],
                "additionalProperties": false
            })
        },
        answer: |input| json!({"sent_to": input["to"]}),
    },
];

struct SampleTool {
    spec: ToolSpec,
    answer: fn(&Value) -> Value,
    ran: Arc<Mutex<Vec<Ran>>>,
}

#[async_trait]
impl Tool for SampleTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, _invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        let answer = (self.answer)(&input);
        self.ran
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Ran { tool: self.spec.name.to_string(), input });
        Ok(ToolOutput::json(&answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_declares_a_valid_spec() {
        let tools = SampleTools::new().tools();
        let names: Vec<&str> = tools.iter().map(|tool| tool.spec().name.as_str()).collect();
        assert_eq!(names, ["get_order_details", "issue_refund", "send_email"]);
        assert!(agent_core::ToolMenu::new(tools).is_ok());
    }
}
