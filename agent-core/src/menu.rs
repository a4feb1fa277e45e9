//! The tool menu: the explicit list of tools an agent may call, and the only door to running one.
//!
//! Only menu entries are advertised to the model, and a call to any other name is refused before
//! dispatch. A subagent's menu is cut from its parent's with [`ToolMenu::subset`], which refuses
//! any tool the parent does not hold. Each entry's JSON Schema is compiled when the menu is built,
//! so a broken schema stops the start instead of failing (or passing) calls later.
//!
//! [`ToolMenu::invoke`] is the one function in Warden that runs a tool, and it takes an
//! [`Authorized`] call, which only [`Pipeline::authorize`](crate::Pipeline::authorize) can make.

use crate::audit::{AuditEvent, Commit, Stage, Verdict};
use crate::guard::Reason;
use crate::model::ToolDefinition;
use crate::pipeline::Authorized;
use crate::tool::{Tool, ToolError, ToolName, ToolOutput, ToolSpec};
use crate::unwind::catch_panic;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The tools one agent may call.
pub struct ToolMenu {
    id: u64,
    entries: Vec<MenuEntry>,
    index: HashMap<ToolName, usize>,
}

pub(crate) struct MenuEntry {
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) validator: Arc<jsonschema::Validator>,
}

/// Tells menus apart, so an authorization from one menu cannot be spent on another.
static NEXT_MENU_ID: AtomicU64 = AtomicU64::new(1);

impl ToolMenu {
    /// Builds a menu, compiling each tool's input schema.
    pub fn new(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Result<Self, MenuError> {
        let mut entries = Vec::new();
        let mut index = HashMap::new();
        for tool in tools {
            let spec = tool.spec();
            if index.contains_key(&spec.name) {
                return Err(MenuError::Duplicate(spec.name.to_string()));
            }
            let validator = compile_schema(spec)?;
            index.insert(spec.name.clone(), entries.len());
            entries.push(MenuEntry { tool, validator: Arc::new(validator) });
        }
        Ok(Self { id: NEXT_MENU_ID.fetch_add(1, Ordering::Relaxed), entries, index })
    }

    /// A menu holding only `names`, for a subagent. Naming a tool this menu lacks is an error:
    /// a subagent never gets more than its parent.
    pub fn subset<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<Self, MenuError> {
        let mut entries = Vec::new();
        let mut index = HashMap::new();
        for name in names {
            let entry = self.entry(name).ok_or_else(|| MenuError::NotInParent(name.to_owned()))?;
            let spec_name = entry.tool.spec().name.clone();
            if index.contains_key(&spec_name) {
                continue;
            }
            index.insert(spec_name, entries.len());
            entries.push(MenuEntry {
                tool: Arc::clone(&entry.tool),
                validator: Arc::clone(&entry.validator),
            });
        }
        Ok(Self { id: NEXT_MENU_ID.fetch_add(1, Ordering::Relaxed), entries, index })
    }

    /// The tool definitions advertised to the model: exactly the menu.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.entries
            .iter()
            .map(|entry| {
                let spec = entry.tool.spec();
                ToolDefinition {
                    name: spec.name.to_string(),
                    description: spec.description.clone(),
                    input_schema: spec.input_schema.clone(),
                }
            })
            .collect()
    }

    /// The declaration of the tool called `name`, if it is on the menu.
    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.entry(name).map(|entry| entry.tool.spec())
    }

    /// The declarations of the tools on the menu, in menu order.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.entries.iter().map(|entry| entry.tool.spec())
    }

    /// Whether `name` is on the menu.
    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Runs an authorized call and records its outcome in the audit log.
    ///
    /// This is the only way Warden runs a tool. A panic inside the tool is caught and reported
    /// as a failure. If the outcome cannot be recorded, the result is still returned (the tool
    /// has run; its intent record is already durable) and the failure is logged.
    pub async fn invoke(&self, authorized: Authorized) -> Result<ToolOutput, ToolError> {
        if authorized.menu_id != self.id {
            return Err(ToolError::Internal(
                "the call was authorized for another menu and was not run".to_owned(),
            ));
        }
        let Authorized {
            tool,
            input,
            invocation,
            audit,
            outcome_event,
            on_rejection,
            max_output_bytes,
            ..
        } = authorized;
        let result = match catch_panic(tool.call(input, &invocation)).await {
            Ok(Ok(output)) if output.content.len() > max_output_bytes => {
                Err(ToolError::OutputTooLarge {
                    bytes: output.content.len(),
                    limit: max_output_bytes,
                })
            }
            Ok(result) => result,
            Err(panic) => Err(ToolError::Internal(format!("the tool panicked: {panic}"))),
        };
        let event = match &result {
            Ok(output) => AuditEvent {
                verdict: Verdict::Succeeded,
                detail: json!({ "output_bytes": output.content.len() }),
                ..outcome_event
            },
            Err(error) => AuditEvent {
                verdict: Verdict::Failed,
                reasons: vec![Reason::new(
                    match error {
                        ToolError::Rejected(_) => "tool_rejected",
                        ToolError::Internal(_) => "tool_failed",
                        ToolError::OutputTooLarge { .. } => "output_too_large",
                    },
                    error.to_string(),
                )],
                ..outcome_event
            },
        };
        debug_assert_eq!(event.stage, Stage::Outcome);
        if let Err(error) = audit.record(event, Commit::Durable).await {
            tracing::error!(target: "audit", %error, "the outcome of a call that ran was not recorded");
        }
        // A tool that refused the call (a business rule) did nothing: what the guards reserved
        // for it (a budget's spend) is given back. A tool that failed inside may have done part
        // of its work, so its reservation stays spent (erring towards refusing later calls).
        if matches!(result, Err(ToolError::Rejected(_))) {
            on_rejection.run();
        }
        result
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn entry(&self, name: &str) -> Option<&MenuEntry> {
        ToolName::new(name).ok().and_then(|name| self.index.get(&name)).map(|&at| &self.entries[at])
    }
}

impl std::fmt::Debug for ToolMenu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.specs().map(|spec| spec.name.as_str()).collect();
        f.debug_struct("ToolMenu").field("id", &self.id).field("tools", &names).finish()
    }
}

/// Why a menu could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MenuError {
    /// Two tools share a name.
    #[error("tool `{0}` is on the menu twice")]
    Duplicate(String),
    /// A tool's input schema is not a valid JSON Schema for an object.
    #[error("tool `{tool}` has an invalid input schema: {message}")]
    InvalidSchema {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// A subagent's menu names a tool its parent does not hold.
    #[error("tool `{0}` is not on the parent's menu, so a subagent cannot hold it")]
    NotInParent(String),
}

fn compile_schema(spec: &ToolSpec) -> Result<jsonschema::Validator, MenuError> {
    let invalid =
        |message: String| MenuError::InvalidSchema { tool: spec.name.to_string(), message };
    if spec.input_schema.get("type").and_then(serde_json::Value::as_str) != Some("object") {
        return Err(invalid("the schema's `type` must be `object`".to_owned()));
    }
    jsonschema::validator_for(&spec.input_schema).map_err(|error| invalid(error.to_string()))
}
