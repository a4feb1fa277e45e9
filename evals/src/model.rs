//! The scenario's model: a script (or the gullible model, or Claude), paced as the file says,
//! with the task revoked mid-flight when the scenario asks.

use agent_core::model::{
    ContentBlock, Model, ModelError, ModelRequest, ModelResponse, ScriptedModel, ScriptedTurn,
};
use async_trait::async_trait;
use guards::credentials::Revocations;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// After this many tool results, revoke this task in this list.
pub type RevokeAfter = Option<(usize, Arc<Revocations>, String)>;

/// A model for one scenario run.
pub struct ScenarioModel {
    inner: Arc<dyn Model>,
    waits: Vec<u64>,
    turn: AtomicUsize,
    revoke: RevokeAfter,
}

impl ScenarioModel {
    /// The scripted turns, each after its wait in milliseconds.
    pub fn new(turns: Vec<(u64, ScriptedTurn)>, revoke: RevokeAfter) -> Self {
        let waits = turns.iter().map(|(wait, _)| *wait).collect();
        let script = ScriptedModel::new(turns.into_iter().map(|(_, turn)| turn).collect());
        Self { inner: Arc::new(script), waits, turn: AtomicUsize::new(0), revoke }
    }

    /// Another model, unpaced.
    pub fn wrap(inner: Arc<dyn Model>, revoke: RevokeAfter) -> Self {
        Self { inner, waits: Vec::new(), turn: AtomicUsize::new(0), revoke }
    }
}

#[async_trait]
impl Model for ScenarioModel {
    async fn respond(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        if let Some((after, revocations, task)) = &self.revoke {
            let results = request
                .messages
                .iter()
                .flat_map(|message| &message.content)
                .filter(|block| matches!(block, ContentBlock::ToolResult { .. }))
                .count();
            if results >= *after {
                revocations.revoke_task(task.clone());
            }
        }
        let turn = self.turn.fetch_add(1, Ordering::SeqCst);
        if let Some(&wait) = self.waits.get(turn).filter(|wait| **wait > 0) {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        self.inner.respond(request).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
