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
    /// The argument holding the amount of money the call moves (in currency units), if it
    /// moves any: what budgets count and policies cap.
    pub money_argument: Option<String>,
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
            money_argument: None,
        }
    }

    /// Declares that the call moves the amount of money held in `argument` (a number, in
    /// currency units).
    #[must_use]
    pub fn moves_money(mut self, argument: impl Into<String>) -> Self {
        self.money_argument = Some(argument.into());
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
}

impl ToolError {
    /// The sentence the model sees.
    pub fn model_message(&self) -> String {
        match self {
            Self::Rejected(message) => message.clone(),
            Self::Internal(_) => "the tool failed; the failure was logged".to_owned(),
        }
    }
}
