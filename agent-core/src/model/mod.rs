//! The model: one request, one response, in the shape of the Anthropic Messages API.
//!
//! Warden treats the model as an untrusted planner. It proposes tool calls; the pipeline decides.
//! Everything the agent loop needs from a model is the [`Model`] trait, so the same loop runs on
//! real Claude ([`AnthropicClient`]), on a fixed script for tests and evals ([`ScriptedModel`]), or
//! on any other implementation a crate plugs in (the refund bot's gullible offline model).
//!
//! The types below follow the wire format closely so that a conversation can be sent to the API
//! and echoed back verbatim: content blocks Warden does not know (`thinking` with its signature,
//! server tools, …) are kept as [`ContentBlock::Other`] and passed back unchanged.

mod anthropic;
mod scripted;

pub use anthropic::{AnthropicClient, AnthropicConfig, RetryPolicy};
pub use scripted::{ScriptedCall, ScriptedModel, ScriptedTurn};

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A language model that answers one Messages request with one response.
#[async_trait]
pub trait Model: Send + Sync {
    /// Sends one request and returns the model's turn.
    async fn respond(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError>;

    /// A short description of the model for transcripts and audit, such as `claude-sonnet-5`.
    fn describe(&self) -> String;
}

/// One request to the model: the whole conversation so far and the tools it may ask for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRequest {
    /// The model id, from configuration (ids move fast; never hard-code one).
    pub model: String,
    /// The most tokens the model may produce in this turn.
    pub max_tokens: u32,
    /// The system prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation, alternating user and assistant turns.
    pub messages: Vec<Message>,
    /// The tools advertised: exactly the agent's menu, nothing more.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
}

/// A tool as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The tool's name (`^[a-zA-Z0-9_-]{1,64}$`).
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// The JSON Schema of the tool's input.
    pub input_schema: Value,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said, block by block.
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message holding one text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![ContentBlock::Text { text: text.into() }] }
    }
}

/// The author of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user side: prompts, untrusted input and tool results.
    User,
    /// The model.
    Assistant,
}

/// One block of message content.
///
/// Serialized exactly as the Messages API does, with a `type` tag. Blocks of any other type are
/// kept whole in [`ContentBlock::Other`] so they can be sent back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// The model asks for a tool call.
    ToolUse {
        /// The call id chosen by the model, echoed in the matching result.
        id: String,
        /// The tool's name (may name a tool that is not on the menu: the pipeline refuses it).
        name: String,
        /// The arguments, unvalidated.
        input: Value,
    },
    /// The result of a tool call, sent back in the next user message.
    ToolResult {
        /// The id of the `tool_use` block this answers.
        tool_use_id: String,
        /// The output, or a short refusal or error sentence.
        content: String,
        /// Whether the call was refused or failed.
        is_error: bool,
    },
    /// Any block Warden does not interpret, kept verbatim.
    Other(Value),
}

impl Serialize for ContentBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = match self {
            Self::Text { text } => serde_json::json!({ "type": "text", "text": text }),
            Self::ToolUse { id, name, input } => {
                serde_json::json!({ "type": "tool_use", "id": id, "name": name, "input": input })
            }
            Self::ToolResult { tool_use_id, content, is_error } => serde_json::json!({
                "type": "tool_result",
                "tool_use_id": tool_use_id,
                "content": content,
                "is_error": is_error,
            }),
            Self::Other(value) => value.clone(),
        };
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(content_block_from_value(value))
    }
}

/// Interprets a block by its `type`; a block whose known type lacks the expected fields is kept
/// whole rather than guessed at.
fn content_block_from_value(value: Value) -> ContentBlock {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    match value.get("type").and_then(Value::as_str) {
        // A text block with more than its text (citations, say) is kept whole so it is echoed
        // back exactly; `ModelResponse::text` still reads its text.
        Some("text") => match (field("text"), value.as_object().map(serde_json::Map::len)) {
            (Some(text), Some(2)) => ContentBlock::Text { text },
            _ => ContentBlock::Other(value),
        },
        Some("tool_use") => match (field("id"), field("name"), value.get("input")) {
            (Some(id), Some(name), Some(input)) => {
                ContentBlock::ToolUse { id, name, input: input.clone() }
            }
            _ => ContentBlock::Other(value),
        },
        Some("tool_result") => match (field("tool_use_id"), tool_result_text(&value)) {
            (Some(tool_use_id), Some(content)) => ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error: value.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            },
            _ => ContentBlock::Other(value),
        },
        _ => ContentBlock::Other(value),
    }
}

/// A tool result's content is a string or a list of text blocks.
fn tool_result_text(value: &Value) -> Option<String> {
    match value.get("content") {
        None => Some(String::new()),
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Option<Vec<_>>>()
            .map(|texts| texts.join("")),
        Some(_) => None,
    }
}

/// The model's turn.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelResponse {
    /// The message id given by the API.
    #[serde(default)]
    pub id: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// What the model said, block by block, to be echoed back verbatim.
    pub content: Vec<ContentBlock>,
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// Token counts, when the API reports them.
    #[serde(default)]
    pub usage: Usage,
    /// The API's `request-id` header, for support tickets and logs.
    #[serde(skip)]
    pub request_id: Option<String>,
}

impl ModelResponse {
    /// The tool calls the model asked for, in order.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|block| match block {
            ContentBlock::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }

    /// The text blocks of the turn joined: the model's stated reason for its calls.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text } => Some(text.as_str()),
                ContentBlock::Other(value) if value.get("type") == Some(&Value::from("text")) => {
                    value.get("text").and_then(Value::as_str)
                }
                _ => None,
            })
            .collect();
        texts.join("\n")
    }
}

/// Token counts of one turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    /// Tokens read.
    #[serde(default)]
    pub input_tokens: u64,
    /// Tokens written.
    #[serde(default)]
    pub output_tokens: u64,
}

/// Why the model stopped. Unknown reasons are kept, not rejected: the API adds new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The model finished its turn.
    EndTurn,
    /// The turn hit `max_tokens`; a tool call in it may be cut off.
    MaxTokens,
    /// A stop sequence was produced.
    StopSequence,
    /// The model asks for tool calls.
    ToolUse,
    /// A long-running server turn paused; send the conversation back to continue.
    PauseTurn,
    /// The model declined to answer.
    Refusal,
    /// The conversation no longer fits the context window.
    ModelContextWindowExceeded,
    /// A reason this version of Warden does not know.
    Other(String),
}

impl StopReason {
    /// The reason as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::ToolUse => "tool_use",
            Self::PauseTurn => "pause_turn",
            Self::Refusal => "refusal",
            Self::ModelContextWindowExceeded => "model_context_window_exceeded",
            Self::Other(other) => other,
        }
    }
}

impl From<&str> for StopReason {
    fn from(reason: &str) -> Self {
        match reason {
            "end_turn" => Self::EndTurn,
            "max_tokens" => Self::MaxTokens,
            "stop_sequence" => Self::StopSequence,
            "tool_use" => Self::ToolUse,
            "pause_turn" => Self::PauseTurn,
            "refusal" => Self::Refusal,
            "model_context_window_exceeded" => Self::ModelContextWindowExceeded,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let reason = Option::<String>::deserialize(deserializer)?;
        Ok(reason.as_deref().map_or(Self::Other("none".to_owned()), Self::from))
    }
}

impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why a model request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No API key was configured.
    #[error("no API key: set `ANTHROPIC_API_KEY`")]
    MissingApiKey,
    /// The API answered with an error (after any retries).
    #[error("the model API answered {status} {kind}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error type, such as `invalid_request_error` or `overloaded_error`.
        kind: String,
        /// The API's message.
        message: String,
        /// The API's `request-id` header, when present.
        request_id: Option<String>,
    },
    /// The request could not be sent or the answer could not be read.
    #[error("could not reach the model API: {0}")]
    Transport(String),
    /// The whole exchange, retries included, took longer than the configured total timeout.
    #[error("the model API did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The API answered 2xx with a body that is not a Messages response.
    #[error("the model API sent a malformed response: {0}")]
    MalformedResponse(String),
    /// A scripted or offline model has nothing more to say, or refused to play.
    #[error("the model failed: {0}")]
    Other(String),
}
