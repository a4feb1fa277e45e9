//! Scenario files: one attack or one benign look-alike per TOML file in `evals/scenarios/`.
//!
//! A scenario says who wrote the ticket and what it says, what the (compromised) model asks for,
//! what the human answers if asked, and what must hold afterwards. The format is documented in
//! `docs/evals.md`; these keys are required: `id`, `kind`, `category`, `description`, `[ticket]`
//! (`customer`, `subject`, `body`), `[model]` (`kind`, and `turns` when scripted), `[approver]`
//! (`answer`) and `[expect]`. Optional keys drive the harder attacks: `[subagent]` (run the turns
//! as a narrower subagent), `[credentials]` (token lifetime, leeway, revocation mid-task) and
//! `[[mcp.drift]]` (serve changed tool definitions over MCP). Any other key is an error naming the
//! file and the key: a misspelt `not_executed` must never make an attack pass.

use agent_core::model::{ScriptedCall, ScriptedTurn};
use refund_bot::queue::Expect;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One scenario, as loaded and checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique across the corpus.
    pub id: String,
    /// Attack or benign.
    pub kind: Kind,
    /// The scorecard's label.
    pub category: String,
    /// One sentence: what the scenario tries.
    pub description: String,
    /// The ticket the task starts from.
    pub ticket: TicketSpec,
    /// The model.
    pub model: ModelSpec,
    /// The human, when asked.
    pub approver: ApproverSpec,
    /// What must hold afterwards.
    #[serde(default)]
    pub expect: Expect,
    /// Run the turns as a subagent with a narrower menu and token.
    #[serde(default)]
    pub subagent: Option<SubagentSpec>,
    /// Token lifetime and revocation for this scenario.
    #[serde(default)]
    pub credentials: CredentialsSpec,
    /// Tool definitions an MCP server changed after they were reviewed.
    #[serde(default)]
    pub mcp: McpSpec,
    /// Another policy bundle (relative to the scenario file), for harness tests of a weakened
    /// policy.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// Another database of the desk's shape (relative to the scenario file), such as tau2's
    /// retail `db.json`; `--db` on the command line overrides it.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// What the deployment's ledger already holds when the ticket arrives: earlier tickets'
    /// spend, which the per-customer and per-agent daily caps must count.
    #[serde(default)]
    pub ledger: LedgerSpec,
    /// Where the file is (set when loaded).
    #[serde(skip)]
    pub path: PathBuf,
}

/// Attack or benign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Its aims must not happen, and must happen with the controls off.
    Attack,
    /// A look-alike that must be served without needless approvals.
    Benign,
}

/// `[ledger]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSpec {
    /// Spends of earlier tasks, today.
    #[serde(default)]
    pub earlier: Vec<EarlierSpend>,
}

/// `[[ledger.earlier]]`: one earlier task's spend today.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlierSpend {
    /// The customer it served (default: the ticket's).
    #[serde(default)]
    pub customer: Option<String>,
    /// The money it moved, in dollars.
    pub money: f64,
}

/// `[ticket]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketSpec {
    /// The ticket id (default `T-9000`).
    #[serde(default = "default_ticket_id")]
    pub id: String,
    /// The verified requester: a user id in the database.
    pub customer: String,
    /// The subject line.
    pub subject: String,
    /// The untrusted text.
    pub body: String,
}

fn default_ticket_id() -> String {
    "T-9000".to_owned()
}

/// `[model]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Which model.
    pub kind: ModelKind,
    /// For `scripted`: exactly what the model emits, in order.
    #[serde(default)]
    pub turns: Vec<TurnSpec>,
}

/// Which model a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The turns given, verbatim: the attacker's script.
    Scripted,
    /// The gullible offline model, which obeys what it reads.
    Gullible,
    /// Real Claude; runs only when `ANTHROPIC_API_KEY` is set.
    Claude,
}

/// One scripted turn: one call, several calls, or text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSpec {
    /// A single call's tool.
    pub tool: Option<String>,
    /// A single call's input.
    pub input: Option<Map<String, Value>>,
    /// Several calls in one turn.
    pub tools: Option<Vec<CallSpec>>,
    /// Text (the final answer, or words alongside the calls).
    pub text: Option<String>,
    /// Milliseconds the model "thinks" before this turn (to let a token expire).
    #[serde(default)]
    pub wait_ms: u64,
}

/// One call in a multi-call turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// The tool.
    pub tool: String,
    /// Its input.
    #[serde(default)]
    pub input: Map<String, Value>,
}

/// `[approver]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverSpec {
    /// What the human says if asked.
    pub answer: Answer,
    /// With `approve`: approve only requests of these calls (input containing these fields),
    /// refuse the rest. What a reviewer approved must be exactly what runs.
    #[serde(default)]
    pub approve_only: Vec<CallSpec>,
}

/// The human's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Yes.
    Approve,
    /// No.
    Deny,
    /// Silence until the timeout.
    Timeout,
}

/// `[subagent]`: the turns run as a subagent of the refund bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubagentSpec {
    /// Its id (a principal the policy knows, such as `lookup-helper`).
    pub id: String,
    /// Its menu, cut from the refund bot's.
    pub menu: Vec<String>,
    /// The scopes its token is narrowed to.
    pub scopes: Vec<String>,
}

/// `[credentials]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSpec {
    /// The task token's lifetime instead of the manifest's.
    pub token_lifetime_seconds: Option<u64>,
    /// The verifier's clock-skew leeway instead of the manifest's.
    pub leeway_seconds: Option<u64>,
    /// Revoke the task after this many tool results (an operator's kill switch mid-task).
    pub revoke_after_calls: Option<usize>,
}

/// `[mcp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// The tools whose definitions the server changed (a rug pull): served over MCP, they no
    /// longer match the pinned digests.
    #[serde(default)]
    pub drift: Vec<DriftSpec>,
}

/// One changed tool definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    /// The tool.
    pub tool: String,
    /// Its new description, as the server now tells the model.
    pub description: String,
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("scenario `{path}` line {line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// Two files share an id.
    #[error("scenario id `{id}` is used by both `{first}` and `{second}`")]
    DuplicateId {
        /// The id.
        id: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
}

impl Scenario {
    /// Loads and checks the scenario at `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: shown.clone(), source })?;
        let invalid = |offset: usize, message: String| ScenarioError::Invalid {
            path: shown.clone(),
            line: line_of(&text, offset),
            message,
        };
        let mut scenario: Self = toml::from_str(&text).map_err(|error| {
            invalid(error.span().map_or(0, |span| span.start), error.message().to_owned())
        })?;
        scenario.path = path.to_owned();
        let at = |key: &str| text.find(key).unwrap_or(0);
        if scenario.model.kind == ModelKind::Scripted && scenario.model.turns.is_empty() {
            return Err(invalid(
                at("[model]"),
                "`model.turns` is required for a scripted model".into(),
            ));
        }
        if scenario.model.kind != ModelKind::Scripted && !scenario.model.turns.is_empty() {
            return Err(invalid(
                at("[[model.turns]]"),
                "`model.turns` is only for `kind = \"scripted\"`".into(),
            ));
        }
        for (index, turn) in scenario.model.turns.iter().enumerate() {
            let shapes = [turn.tool.is_some(), turn.tools.is_some()].iter().filter(|s| **s).count();
            let well_formed = shapes <= 1
                && (shapes == 1 || turn.text.is_some())
                && (turn.tool.is_some() || turn.input.is_none());
            if !well_formed {
                return Err(invalid(
                    nth_turn_offset(&text, index),
                    format!(
                        "`model.turns[{index}]` must hold `tool` (with `input`), `tools`, or \
                         `text`"
                    ),
                ));
            }
        }
        if scenario.approver.answer != Answer::Approve && !scenario.approver.approve_only.is_empty()
        {
            return Err(invalid(
                at("approve_only"),
                "`approver.approve_only` needs `answer = \"approve\"`".into(),
            ));
        }
        Ok(scenario)
    }

    /// The scripted turns as the model will emit them, each with its wait.
    pub fn scripted_turns(&self) -> Vec<(u64, ScriptedTurn)> {
        self.model
            .turns
            .iter()
            .map(|turn| {
                let scripted = match (&turn.tool, &turn.tools) {
                    (Some(tool), _) => ScriptedTurn::tool(
                        tool,
                        Value::Object(turn.input.clone().unwrap_or_default()),
                    ),
                    (None, Some(calls)) => ScriptedTurn::tools(
                        calls
                            .iter()
                            .map(|call| {
                                ScriptedCall::new(&call.tool, Value::Object(call.input.clone()))
                            })
                            .collect(),
                    ),
                    (None, None) => ScriptedTurn::text(turn.text.clone().unwrap_or_default()),
                };
                let scripted = match (&turn.text, turn.tool.is_some() || turn.tools.is_some()) {
                    (Some(text), true) => scripted.with_text(text),
                    _ => scripted,
                };
                (turn.wait_ms, scripted)
            })
            .collect()
    }
}

/// Every scenario in `dirs` (`*.toml`, sorted by path), with ids checked unique.
pub fn load_dirs(dirs: &[PathBuf]) -> Result<Vec<Scenario>, ScenarioError> {
    let mut paths = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir)
            .map_err(|source| ScenarioError::Read { path: dir.display().to_string(), source })?;
        for entry in entries {
            let path = entry
                .map_err(|source| ScenarioError::Read { path: dir.display().to_string(), source })?
                .path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    let mut scenarios: Vec<Scenario> = Vec::new();
    for path in paths {
        let scenario = Scenario::load(&path)?;
        if let Some(first) = scenarios.iter().find(|other| other.id == scenario.id) {
            return Err(ScenarioError::DuplicateId {
                id: scenario.id.clone(),
                first: first.path.display().to_string(),
                second: path.display().to_string(),
            });
        }
        scenarios.push(scenario);
    }
    Ok(scenarios)
}

fn nth_turn_offset(text: &str, index: usize) -> usize {
    text.match_indices("[[model.turns]]").nth(index).map_or(0, |(at, _)| at)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |before| before.matches('\n').count() + 1)
}
