//! A tool that checks the caller's token itself, as a tool server would.
//!
//! The pipeline's [`CredentialGuard`](super::CredentialGuard) checks the task token before a call
//! is authorized; a tool server must not take that on trust. An MCP server does its own check
//! ([`Verifier::verify_presented`]); [`TokenCheckedTool`] gives a tool that runs in the agent's
//! own process the same defence in depth: reads need a task token with the tool's scope, writes a
//! per-call token bound to the tool and the exact arguments, spent on first use.

use super::Verifier;
use agent_core::Tool;
use agent_core::tool::{Invocation, ToolError, ToolOutput, ToolSpec};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// Wraps a tool so that it refuses any call whose credential does not allow it.
pub struct TokenCheckedTool {
    inner: Arc<dyn Tool>,
    verifier: Arc<Verifier>,
    audience: String,
}

impl TokenCheckedTool {
    /// `inner`, reachable only with a token `verifier` accepts for `audience`.
    pub fn new(inner: Arc<dyn Tool>, verifier: Arc<Verifier>, audience: impl Into<String>) -> Self {
        Self { inner, verifier, audience: audience.into() }
    }
}

#[async_trait]
impl Tool for TokenCheckedTool {
    fn spec(&self) -> &ToolSpec {
        self.inner.spec()
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        let token = invocation.credential.as_ref().ok_or_else(|| {
            ToolError::Rejected("refused by the tool server: no credential".into())
        })?;
        self.verifier
            .verify_presented(token.expose(), &self.audience, self.inner.spec(), &input)
            .map_err(|rejection| {
            ToolError::Rejected(format!("refused by the tool server: {}", rejection.code()))
        })?;
        self.inner.call(input, invocation).await
    }
}
