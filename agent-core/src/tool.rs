//! Tools: what an agent can do in the world, each declared with the scope and effect it needs.
//!
//! A tool is only ever run by [`ToolMenu::invoke`](crate::ToolMenu::invoke) with an
//! [`Authorized`](crate::Authorized) call, so a tool's own code never has to ask "was I allowed?".
//! The [`ToolSpec`] is the declaration the guards reason about: the required scope for the
//! credential check, the effect class for policy and budgets, and whether the tool's output comes
//! from outside the trust boundary (a ticket body, a product description written by a seller).

use crate::credential::Credential;
use crate::ids::{AgentId, CallId, TaskId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// A tool an agent may call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's declaration.
    fn spec(&self) -> &ToolSpec;

    /// Runs the tool with input that has already passed the schema check and every guard.
    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError>;

    /// Why the tool may not be called any more, if it may not: an MCP tool whose server changed,
    /// duplicated or dropped its definition during the session. The pipeline asks at the menu
    /// stage of every call and refuses (`tool_withdrawn`) with this reason in the audit log, so
    /// a withdrawn tool never reaches the later checks, an intent record or its server.
    fn withdrawn(&self) -> Option<String> {
        None
    }
}

/// The declaration of a tool: how the model sees it and what the guards need to know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// The tool's name, unique within a menu.
    pub name: ToolName,
    /// What the tool does, for the model.
    pub description: String,
    /// The JSON Schema its input must satisfy.
    pub input_schema: Value,
    /// The scope a credential must grant for the call to be allowed.
    pub required_scope: Scope,
    /// How much the call can change.
    pub effect: EffectClass,
    /// Whether the tool's output is untrusted content (it was written by someone outside the
    /// trust boundary), which taints the task that reads it.
    pub untrusted_output: bool,
    /// What the call touches, for policy: the entity named by one of its arguments.
    pub resource: Option<ResourceRef>,
    /// Whether and how the call moves money: what budgets count and policies cap, whichever
    /// tool moves it.
    pub money: Option<MoneyMoved>,
    /// The fields of the output that are facts of the system of record (a price, an amount
    /// paid, a payment method id, a status), as [field paths](FieldPath). Only facts vouch for a
    /// later call's arguments; the rest of the output vouches for nothing.
    pub facts: Vec<FieldPath>,
    /// How the output relates to the input: read from a system ([`Derivation::Source`]) or
    /// computed from the arguments alone ([`Derivation::Pure`]), so carrying their labels.
    pub derivation: Derivation,
    /// The arguments whose text leaves the system for a person (a reply to a customer, a
    /// hand-off): sinks whose links, contacts and amounts policy checks like any argument.
    pub outbound_text: Vec<String>,
}

/// How much money a call moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyMoved {
    /// The amount, in currency units, is the value of this argument (`issue_refund`'s `amount`).
    Argument(String),
    /// The amount follows from the records the call touches (the price of the items a return
    /// names, what a cancelled order paid): the policy's resolver works it out, and a call it
    /// cannot price is refused.
    Resolved,
}

/// How a tool's output was derived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Derivation {
    /// The output is read from a system (or written to one): its facts are that system's.
    #[default]
    Source,
    /// The output is computed from the arguments alone (a calculator): it is exactly as
    /// trustworthy as they are, so a result computed from untrusted input is untrusted.
    Pure,
}

/// A path to fields of a JSON output: names separated by `.`, `[]` for every element of an
/// array and `*` for every value of an object. `items[].price` names the price of every item,
/// `payment_methods.*.id` every payment method's id, `orders[]` every order id in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path, as written above.
    pub fn new(path: impl Into<String>) -> Self {
        Self(path.into())
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The values at this path in `value`: leaves (strings, numbers, booleans) only; an object
    /// or array at the end of the path yields its leaves.
    pub fn values<'v>(&self, value: &'v Value) -> Vec<&'v Value> {
        let mut current = vec![value];
        for step in self.0.split('.').filter(|step| !step.is_empty()) {
            let (name, every_element) = match step.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (step, false),
            };
            let mut next = Vec::new();
            for node in current {
                let found: Vec<&Value> = match (name, node) {
                    ("", node) => vec![node],
                    ("*", Value::Object(fields)) => fields.values().collect(),
                    (name, Value::Object(fields)) => fields.get(name).into_iter().collect(),
                    _ => Vec::new(),
                };
                for child in found {
                    match (every_element, child) {
                        (true, Value::Array(items)) => next.extend(items),
                        (true, _) => {}
                        (false, child) => next.push(child),
                    }
                }
            }
            current = next;
        }
        let mut leaves = Vec::new();
        while let Some(node) = current.pop() {
            match node {
                Value::Array(items) => current.extend(items),
                Value::Object(fields) => current.extend(fields.values()),
                Value::Null => {}
                leaf => leaves.push(leaf),
            }
        }
        leaves.reverse();
        leaves
    }

    /// `value` with the fields at this path removed (what is left once the facts are taken out).
    pub fn remove(&self, value: &mut Value) {
        let steps: Vec<&str> = self.0.split('.').filter(|step| !step.is_empty()).collect();
        remove_at(value, &steps);
    }
}

fn remove_at(value: &mut Value, steps: &[&str]) {
    let Some((step, rest)) = steps.split_first() else { return };
    let (name, every_element) = match step.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (*step, false),
    };
    let Value::Object(fields) = value else { return };
    let keys: Vec<String> =
        if name == "*" { fields.keys().cloned().collect() } else { vec![name.to_owned()] };
    for key in keys {
        if rest.is_empty() && !every_element {
            fields.remove(&key);
            continue;
        }
        let Some(child) = fields.get_mut(&key) else { continue };
        match (every_element, child) {
            (true, Value::Array(items)) if rest.is_empty() => items.clear(),
            (true, Value::Array(items)) => items.iter_mut().for_each(|item| remove_at(item, rest)),
            (true, _) => {}
            (false, child) => remove_at(child, rest),
        }
    }
}

/// The entity a tool call touches: the value of `argument` is the id of an entity of
/// `entity_type` (`order_id` → `Order`). Policy resolves it to the entity's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    /// The entity type, such as `Order` or `User`.
    pub entity_type: String,
    /// The argument holding its id, such as `order_id`.
    pub argument: String,
}

impl ToolSpec {
    /// Declares a read-only tool with trusted output; refine it with the builder methods.
    pub fn new(
        name: ToolName,
        description: impl Into<String>,
        input_schema: Value,
        required_scope: Scope,
    ) -> Self {
        Self {
            name,
            description: description.into(),
            input_schema,
            required_scope,
            effect: EffectClass::Read,
            untrusted_output: false,
            resource: None,
            money: None,
            facts: Vec::new(),
            derivation: Derivation::Source,
            outbound_text: Vec::new(),
        }
    }

    /// Declares that the call moves the amount of money held in `argument` (a number, in
    /// currency units).
    #[must_use]
    pub fn moves_money(mut self, argument: impl Into<String>) -> Self {
        self.money = Some(MoneyMoved::Argument(argument.into()));
        self
    }

    /// Declares that the call moves money whose amount the records it touches determine (see
    /// [`MoneyMoved::Resolved`]).
    #[must_use]
    pub fn moves_resolved_money(mut self) -> Self {
        self.money = Some(MoneyMoved::Resolved);
        self
    }

    /// Declares which output fields are facts of the system of record (see [`FieldPath`]).
    #[must_use]
    pub fn facts<'p>(mut self, paths: impl IntoIterator<Item = &'p str>) -> Self {
        self.facts = paths.into_iter().map(FieldPath::new).collect();
        self
    }

    /// Declares the tool pure: its output is computed from its arguments alone.
    #[must_use]
    pub fn pure(mut self) -> Self {
        self.derivation = Derivation::Pure;
        self
    }

    /// Declares arguments whose text is sent to a person (see [`ToolSpec::outbound_text`]).
    #[must_use]
    pub fn sends_text<'a>(mut self, arguments: impl IntoIterator<Item = &'a str>) -> Self {
        self.outbound_text = arguments.into_iter().map(str::to_owned).collect();
        self
    }

    /// Declares the entity the call touches: the `argument` holds the id of an `entity_type`.
    #[must_use]
    pub fn touches(mut self, entity_type: impl Into<String>, argument: impl Into<String>) -> Self {
        self.resource =
            Some(ResourceRef { entity_type: entity_type.into(), argument: argument.into() });
        self
    }

    /// Sets the effect class.
    #[must_use]
    pub fn effect(mut self, effect: EffectClass) -> Self {
        self.effect = effect;
        self
    }

    /// Marks the tool's output as untrusted content.
    #[must_use]
    pub fn untrusted_output(mut self) -> Self {
        self.untrusted_output = true;
        self
    }
}

/// How much a tool call can change, from harmless to permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectClass {
    /// Reads only.
    Read,
    /// Changes state that can be changed back.
    Write,
    /// Changes state for good: money moved, messages sent, data deleted.
    Irreversible,
}

impl EffectClass {
    /// The class as written in manifests and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Irreversible => "irreversible",
        }
    }
}

/// A tool's name: 1 to 64 ASCII letters, digits, `_` or `-`, the pattern the Messages API accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ToolName(String);

impl ToolName {
    /// Checks a name against the API's pattern `^[a-zA-Z0-9_-]{1,64}$`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if (1..=64).contains(&name.len()) && name.chars().all(valid_char) {
            Ok(Self(name))
        } else {
            Err(InvalidName::Tool(name))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ToolName {
    type Error = InvalidName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl From<ToolName> for String {
    fn from(name: ToolName) -> Self {
        name.0
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission a credential grants, such as `orders:read` or `refunds:write`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    /// Checks a scope: non-empty, printable ASCII without spaces (scopes are space-separated in
    /// tokens, so a space inside one would forge two).
    pub fn new(scope: impl Into<String>) -> Result<Self, InvalidName> {
        let scope = scope.into();
        if !scope.is_empty() && scope.chars().all(|c| c.is_ascii_graphic()) {
            Ok(Self(scope))
        } else {
            Err(InvalidName::Scope(scope))
        }
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Scope {
    type Error = InvalidName;

    fn try_from(scope: String) -> Result<Self, Self::Error> {
        Self::new(scope)
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name that does not have the required form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidName {
    /// A tool name outside `^[a-zA-Z0-9_-]{1,64}$`.
    #[error("invalid tool name `{0}`: use 1 to 64 ASCII letters, digits, `_` or `-`")]
    Tool(String),
    /// A scope that is empty or holds spaces or control characters.
    #[error("invalid scope `{0}`: use printable ASCII without spaces")]
    Scope(String),
}

/// What a tool is told about the call it serves.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Invocation {
    /// The call's id: tools that write use it to make retries idempotent.
    pub call_id: CallId,
    /// The task the call belongs to.
    pub task: TaskId,
    /// The agent that made the call.
    pub agent: AgentId,
    /// The digest of the canonical arguments, as audited and (for approvals) as approved.
    pub args_digest: String,
    /// The credential minted for this call (for a tool server to verify itself), if any.
    pub credential: Option<Credential>,
    /// What the guards found about this call, by guard name (the policy guard's argument
    /// provenance and outbound mentions): for tools that keep provenance with what they record,
    /// such as a hand-off that marks which parts of its summary came from untrusted text.
    pub evidence: std::collections::BTreeMap<String, Value>,
}

impl Invocation {
    /// An invocation of call `call_id` in `task` by `agent` with arguments of `args_digest`, with
    /// no credential and no evidence: for testing a tool (its retries, its own rules) or for a
    /// tool server calling its tools outside a pipeline. It authorizes nothing: the tool's own
    /// checks (a per-call token, say) still decide.
    pub fn new(call_id: CallId, task: TaskId, agent: AgentId, args_digest: String) -> Self {
        Self {
            call_id,
            task,
            agent,
            args_digest,
            credential: None,
            evidence: std::collections::BTreeMap::new(),
        }
    }
}

/// What a tool returns to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The text sent back as the `tool_result`.
    pub content: String,
}

impl ToolOutput {
    /// Output as plain text.
    pub fn text(content: impl Into<String>) -> Self {
        Self { content: content.into() }
    }

    /// Output as compact JSON.
    pub fn json(value: &Value) -> Self {
        Self { content: value.to_string() }
    }
}

/// Why a tool call failed after it was authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The request broke a business rule (an order that is not pending cannot be cancelled);
    /// the message is meant for the model and may be shown to it.
    #[error("{0}")]
    Rejected(String),
    /// Something broke inside the tool; the model is told only that the tool failed, the detail
    /// goes to the audit log.
    #[error("internal tool failure: {0}")]
    Internal(String),
    /// The tool ran, but its output was larger than the runtime passes on, so it was withheld
    /// from the model (the pipeline's [`SizeLimits`](crate::pipeline::SizeLimits)).
    #[error("the output of {bytes} bytes is over the limit of {limit} bytes and was withheld")]
    OutputTooLarge {
        /// The output's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

impl ToolError {
    /// The sentence the model sees.
    pub fn model_message(&self) -> String {
        match self {
            Self::Rejected(message) => message.clone(),
            Self::Internal(_) => "the tool failed; the failure was logged".to_owned(),
            Self::OutputTooLarge { bytes, limit } => format!(
                "the tool ran, but its output ({bytes} bytes) is larger than the {limit} bytes the \
                 runtime passes on, so it was withheld; do not call it again to see it"
            ),
        }
    }
}
