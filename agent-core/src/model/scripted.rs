//! A model that replays a fixed script of turns, for tests and evals.
//!
//! Tests of the agent loop and the guard pipeline must not depend on what a real model happens
//! to say today, nor reach the network. [`ScriptedModel`] answers each request with the next
//! [`ScriptedTurn`] and records every request it received, so a test can check both sides: what
//! the model "asked for", and what the loop sent back (tool results, the tools advertised).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::Value;

use super::{ContentBlock, Model, ModelError, ModelRequest, ModelResponse, StopReason, Usage};

/// What the scripted model says when the script has run out.
const END_OF_SCRIPT: &str = "(end of script)";

/// One tool call in a scripted turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// The tool's name (it need not be on the menu: that is what some tests check).
    pub name: String,
    /// The arguments, as the model would send them.
    pub input: Value,
    /// The `tool_use` id to send instead of the script's own numbering: a compromised model
    /// chooses its ids, and may reuse one (see [`ScriptedCall::with_id`]).
    pub id: Option<String>,
}

impl ScriptedCall {
    /// A call of tool `name` with `input`, under the script's own id.
    pub fn new(name: impl Into<String>, input: Value) -> Self {
        Self { name: name.into(), input, id: None }
    }

    /// The same call sent with the `tool_use` id `id`, which may repeat another call's: what a
    /// compromised model can do, and what the runtime must gain nothing from. The other calls
    /// keep their numbers (`toolu_scripted_N` is the script's N-th call, whatever ids it chose).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// One turn of the script: some text, some tool calls, or both (text first).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedTurn {
    text: Option<String>,
    calls: Vec<ScriptedCall>,
}

impl ScriptedTurn {
    /// A turn that only says `text` and ends.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: Some(text.into()), calls: Vec::new() }
    }

    /// A turn that asks for one tool call.
    pub fn tool(name: impl Into<String>, input: Value) -> Self {
        Self::tools(vec![ScriptedCall::new(name, input)])
    }

    /// A turn that asks for several tool calls at once, in order.
    pub fn tools(calls: Vec<ScriptedCall>) -> Self {
        Self { text: None, calls }
    }

    /// The same turn with `text` said before the calls: the model's stated reason.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

/// A [`Model`] that answers with the turns of a script, in order, then ends every turn with
/// "(end of script)".
///
/// Tool-use ids are `toolu_scripted_1`, `toolu_scripted_2`, … counted across the whole script,
/// unless a call chose its own ([`ScriptedCall::with_id`]); such a call still takes its number,
/// so the others keep theirs.
///
/// ```
/// use agent_core::model::{ScriptedCall, ScriptedModel, ScriptedTurn};
/// use serde_json::json;
///
/// let model = ScriptedModel::new(vec![
///     ScriptedTurn::tools(vec![
///         ScriptedCall::new("lookup_order", json!({ "order_id": "A-1" })),
///         ScriptedCall::new("refund", json!({ "order_id": "A-1", "cents": 500 })),
///     ])
///     .with_text("the customer asked for a refund"),
///     // The third call reuses the second's id, as a compromised model may.
///     ScriptedTurn::tools(vec![
///         ScriptedCall::new("refund", json!({ "order_id": "A-2", "cents": 500 }))
///             .with_id("toolu_scripted_2"),
///     ]),
///     ScriptedTurn::text("done"),
/// ]);
/// # let _ = model;
/// ```
#[derive(Debug)]
pub struct ScriptedModel {
    state: Mutex<State>,
}

impl ScriptedModel {
    /// A model that will play `turns`, in order.
    pub fn new(turns: Vec<ScriptedTurn>) -> Self {
        Self { state: Mutex::new(State { turns: turns.into(), next_id: 1, requests: Vec::new() }) }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.state().requests.clone()
    }

    /// How many turns of the script have not been played yet.
    pub fn remaining(&self) -> usize {
        self.state().turns.len()
    }

    /// The state, even if a panicking test thread poisoned the lock: the script and the
    /// recorded requests are only ever appended to or popped, so they are never half-written.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Model for ScriptedModel {
    async fn respond(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let mut state = self.state();
        state.requests.push(request.clone());
        let turn_number = state.requests.len();
        let Some(turn) = state.turns.pop_front() else {
            return Ok(response(
                turn_number,
                vec![ContentBlock::Text { text: END_OF_SCRIPT.to_owned() }],
                StopReason::EndTurn,
            ));
        };
        let mut content = Vec::with_capacity(turn.calls.len() + 1);
        if let Some(text) = turn.text {
            content.push(ContentBlock::Text { text });
        }
        let stop_reason =
            if turn.calls.is_empty() { StopReason::EndTurn } else { StopReason::ToolUse };
        for call in turn.calls {
            let number = state.next_id;
            state.next_id += 1;
            let id = call.id.unwrap_or_else(|| format!("toolu_scripted_{number}"));
            content.push(ContentBlock::ToolUse { id, name: call.name, input: call.input });
        }
        Ok(response(turn_number, content, stop_reason))
    }

    fn describe(&self) -> String {
        "scripted".to_owned()
    }
}

/// What the lock guards.
#[derive(Debug)]
struct State {
    turns: VecDeque<ScriptedTurn>,
    next_id: u64,
    requests: Vec<ModelRequest>,
}

/// A response as the API would shape it.
fn response(
    turn_number: usize,
    content: Vec<ContentBlock>,
    stop_reason: StopReason,
) -> ModelResponse {
    ModelResponse {
        id: format!("msg_scripted_{turn_number}"),
        model: "scripted".to_owned(),
        content,
        stop_reason,
        usage: Usage::default(),
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The `tool_use` ids of every call in `response`, in order.
    fn ids(response: &ModelResponse) -> Vec<String> {
        response
            .content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::ToolUse { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    fn request() -> ModelRequest {
        ModelRequest {
            model: "scripted".to_owned(),
            max_tokens: 16,
            system: None,
            messages: Vec::new(),
            tools: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_chosen_id_is_sent_and_the_other_calls_keep_their_numbers() {
        let call = |n: u64| ScriptedCall::new("refund", json!({ "n": n }));
        let model = ScriptedModel::new(vec![
            ScriptedTurn::tool("lookup", json!({})),
            // Reused across turns, then twice within one turn.
            ScriptedTurn::tools(vec![call(2).with_id("toolu_scripted_1"), call(3)]),
            ScriptedTurn::tools(vec![call(4).with_id("dup"), call(5).with_id("dup"), call(6)]),
        ]);
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(ids(&model.respond(&request()).await.unwrap()));
        }
        assert_eq!(
            seen,
            [
                vec!["toolu_scripted_1"],
                vec!["toolu_scripted_1", "toolu_scripted_3"],
                vec!["dup", "dup", "toolu_scripted_6"],
            ]
        );
    }
}
