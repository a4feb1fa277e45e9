//! Helpers shared by the desk's tests: the mini fixture, and a harness that calls the desk's
//! tools the only way Warden calls a tool, through a pipeline (with no guards: these tests are
//! about the tools' own rules, not the policy's).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_core::audit::{AuditLog, MemorySink};
use agent_core::pipeline::CallRequest;
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{AgentId, CallContext, CallId, Pipeline, TaskId, ToolMenu};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tools::{Desk, all_tools};

/// The hand-written fixture: 3 users, 7 orders in every status, 3 tickets.
pub fn mini_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-db.json")
}

/// tau2-bench's retail `db.json`, where the workspace keeps a copy of it (not in a fresh clone).
pub fn tau2_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/tau2-retail/db.json")
}

/// A desk over the mini fixture.
pub fn mini_desk() -> Desk {
    Desk::load(mini_path()).unwrap()
}

/// Calls the desk's tools through a guard-less pipeline, within one task.
pub struct Harness {
    pub desk: Desk,
    pipeline: Pipeline,
    context: CallContext,
}

impl Harness {
    /// A harness over the mini fixture.
    pub fn mini() -> Self {
        Self::over(mini_desk())
    }

    /// A harness over `desk`, offering every tool.
    pub fn over(desk: Desk) -> Self {
        let menu = Arc::new(ToolMenu::new(all_tools(&desk)).unwrap());
        let pipeline = Pipeline::new(menu, AuditLog::new(Arc::new(MemorySink::new())));
        let context = CallContext::new(AgentId::from("tester"), TaskId::from("task-1"));
        Self { desk, pipeline, context }
    }

    /// The same desk and tools in another task.
    pub fn in_task(mut self, task: &str) -> Self {
        self.context = CallContext::new(AgentId::from("tester"), TaskId::from(task));
        self
    }

    /// Calls `tool` with `input` as call `call_id`; panics if the pipeline refuses the call (a
    /// schema error, say), which these tests do not expect.
    pub async fn call(
        &self,
        call_id: &str,
        tool: &str,
        input: Value,
    ) -> Result<ToolOutput, ToolError> {
        let request = CallRequest {
            proposer_id: Some(call_id.to_string()),
            tool: tool.to_owned(),
            input,
            stated_reason: String::new(),
        };
        let authorized = match self.pipeline.authorize(&request, &self.context).await {
            Ok(authorized) => authorized,
            Err(denied) => panic!("the pipeline refused `{tool}`: {denied}"),
        };
        self.pipeline.menu().invoke(authorized).await
    }

    /// Calls `tool` directly as the runtime's call `call_id` (no pipeline, so calling again with
    /// the same id is the runtime retrying that very call, as after a lost answer).
    pub async fn retry(
        &self,
        call_id: &str,
        tool: &str,
        input: Value,
    ) -> Result<ToolOutput, ToolError> {
        let tools = all_tools(&self.desk);
        let tool = tools.iter().find(|candidate| candidate.spec().name.as_str() == tool).unwrap();
        let invocation = Invocation::new(
            CallId::new(call_id),
            self.context.task.clone(),
            self.context.agent.clone(),
            agent_core::canonical::digest(&input),
        );
        tool.call(input, &invocation).await
    }

    /// Whether the pipeline's schema stage refuses `input` for `tool`.
    pub async fn schema_refuses(&self, tool: &str, input: Value) -> bool {
        let request = CallRequest {
            proposer_id: Some("schema-check".to_string()),
            tool: tool.to_owned(),
            input,
            stated_reason: String::new(),
        };
        self.pipeline.authorize(&request, &self.context).await.is_err()
    }

    /// Calls and expects success; the output parsed as JSON when it is JSON.
    pub async fn ok(&self, call_id: &str, tool: &str, input: Value) -> Value {
        let output = self
            .call(call_id, tool, input)
            .await
            .unwrap_or_else(|error| panic!("`{tool}` failed: {error}"));
        serde_json::from_str(&output.content).unwrap_or(Value::String(output.content))
    }

    /// Calls and expects a business-rule refusal; its message.
    pub async fn rejected(&self, call_id: &str, tool: &str, input: Value) -> String {
        match self.call(call_id, tool, input).await {
            Err(ToolError::Rejected(message)) => message,
            other => panic!("`{tool}` was expected to be rejected, got {other:?}"),
        }
    }
}

/// The desk's whole state as JSON, to compare before and after.
pub fn state(desk: &Desk) -> Value {
    serde_json::to_value(desk.snapshot()).unwrap()
}
