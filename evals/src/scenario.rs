//! Scenario files: one attack or one benign look-alike per TOML file in `evals/scenarios/`.
//!
//! A scenario says who wrote the ticket and what it says, what the (compromised) model asks for,
//! what the human answers if asked, and what must hold afterwards. The format is documented in
//! `docs/evals.md`; these keys are required: `id`, `kind`, `category`, `description`, `[ticket]`
//! (`customer`, `subject`, `body`), `[model]` (`kind`, and `turns` when scripted), `[approver]`
//! (`answer`) and `[expect]`. Optional keys drive the harder attacks: `[subagent]` (run the turns
//! as a narrower subagent) or `[[subagent]]` (helpers the task delegates to, each with its own
//! script, sharing the task's tally and budgets), `id` on a scripted call (the `tool_use` id the
//! model sends, which it may reuse), `[credentials]` (token lifetime, leeway, revocation
//! mid-task) and `[[mcp.drift]]` (serve changed tool definitions over MCP). Any other key is an
//! error naming the file and the key: a misspelt `not_executed` must never make an attack pass.

use agent_core::model::{ScriptedCall, ScriptedTurn};
use refund_bot::queue::Expect;
use serde::{Deserialize, Deserializer};
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
    pub expect: ExpectSpec,
    /// The subagents the task delegates to (`[subagent]` for one, `[[subagent]]` for several),
    /// in the order they run.
    #[serde(default, rename = "subagent", deserialize_with = "one_or_many")]
    pub subagents: Vec<SubagentSpec>,
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
    /// A single call's `tool_use` id (default `toolu_scripted_N`, N counting the script's calls).
    pub id: Option<String>,
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
    /// Its `tool_use` id (default `toolu_scripted_N`); two calls of one turn may share one.
    pub id: Option<String>,
}

/// Calls a reviewer approves: this tool, with input containing these fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallPattern {
    /// The tool.
    pub tool: String,
    /// Fields the input must contain (equal values).
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
    pub approve_only: Vec<CallPattern>,
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

/// `[subagent]` or one `[[subagent]]`: a subagent of the refund bot, which the ticket's task
/// delegates to through `Task::delegate`, so that it shares the task's tally (approvals asked,
/// refusals, calls proposed) and its spend counts against the task's budgets.
///
/// A subagent with its own `turns` plays them, and the refund bot plays `[model]` before it. A
/// subagent without `turns` plays `[model]` itself, and the refund bot does not think: at most
/// one may do so (the single `[subagent]` table of the older scenarios is this).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubagentSpec {
    /// Its id (a principal the policy knows: `lookup-helper`, or `refund-bot` for a helper that
    /// is another copy of the bot, with its role).
    pub id: String,
    /// Its menu, cut from the refund bot's.
    pub menu: Vec<String>,
    /// The scopes its token is narrowed to.
    pub scopes: Vec<String>,
    /// What the refund bot asks of it (default: the ticket's own instructions).
    #[serde(default)]
    pub instructions: Option<String>,
    /// Its own script, as `[[model.turns]]` (default: it plays `[model]`).
    #[serde(default)]
    pub turns: Vec<TurnSpec>,
}

/// `[expect]`: the checks the demo's queue shares (`refund_bot::queue::Expect`), and the
/// harness's own checks on a whole run.
#[derive(Debug, Clone, Default)]
pub struct ExpectSpec {
    /// `executed`, `not_executed`, `approval_requested`, `forbidden`, `order_status`,
    /// `refund_total` and `not_sent`.
    pub checks: Expect,
    /// `[expect.refunded]`: the money refunded during the run, over every order of the desk (by
    /// the task and every subagent), in dollars.
    pub refunded: Option<Bounds>,
    /// `[expect.ledger]`: the ticket's money in the deployment's budget ledger after the run (the
    /// task's row, which every sub-task's spend rolls up into), in dollars. Checked only with the
    /// controls on: the positive control keeps no ledger.
    pub ledger: Option<Bounds>,
}

/// Bounds on an amount, in dollars.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// It must be at most this.
    pub at_most: Option<f64>,
    /// It must be at least this.
    pub at_least: Option<f64>,
}

impl Bounds {
    /// Why `cents` breaks these bounds, naming `what`; `None` when it keeps them.
    pub fn broken_by(&self, cents: i64, what: &str) -> Option<String> {
        let dollars = cents as f64 / 100.0;
        // Half a cent of slack for amounts written in dollars.
        if self.at_most.is_some_and(|most| dollars > most + 0.004) {
            return Some(format!(
                "{what} ${dollars:.2}, above ${:.2}",
                self.at_most.unwrap_or(0.0)
            ));
        }
        if self.at_least.is_some_and(|least| dollars + 0.004 < least) {
            return Some(format!(
                "{what} only ${dollars:.2}, below ${:.2}",
                self.at_least.unwrap_or(0.0)
            ));
        }
        None
    }
}

impl<'de> Deserialize<'de> for ExpectSpec {
    /// The harness's keys are taken out, and the rest must be exactly the queue's `Expect`
    /// (unknown keys still fail, naming the key).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut bounds = |key: &str| -> Result<Option<Bounds>, D::Error> {
            let Some(value) = table.remove(key) else { return Ok(None) };
            let bounds: Bounds =
                value.try_into().map_err(|e| D::Error::custom(format!("`expect.{key}`: {e}")))?;
            if bounds.at_most.is_none() && bounds.at_least.is_none() {
                return Err(D::Error::custom(format!(
                    "`expect.{key}` needs `at_most` or `at_least`"
                )));
            }
            Ok(Some(bounds))
        };
        let refunded = bounds("refunded")?;
        let ledger = bounds("ledger")?;
        let checks = toml::Value::Table(table)
            .try_into()
            .map_err(|e| D::Error::custom(format!("`expect`: {e}")))?;
        Ok(Self { checks, refunded, ledger })
    }
}

/// `[subagent]` (one table) or `[[subagent]]` (an array of them).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SubagentSpec>, D::Error> {
    use serde::de::Error;
    match toml::Value::deserialize(deserializer)? {
        toml::Value::Array(items) => {
            items.into_iter().map(|item| item.try_into().map_err(D::Error::custom)).collect()
        }
        one => Ok(vec![one.try_into().map_err(D::Error::custom)?]),
    }
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
            let start = error.span().map_or(0, |span| span.start);
            invalid(unknown_key_offset(&text, start, error.message()), error.message().to_owned())
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
            if !turn.well_formed() {
                return Err(invalid(
                    nth_offset(&text, "[[model.turns]]", index),
                    format!(
                        "`model.turns[{index}]` must hold `tool` (with `input` and `id`), \
                         `tools`, or `text`"
                    ),
                ));
            }
        }
        // Subagent turns are numbered across the file, as their headers appear in it.
        let mut header = 0;
        for (number, sub) in scenario.subagents.iter().enumerate() {
            for (index, turn) in sub.turns.iter().enumerate() {
                if !turn.well_formed() {
                    return Err(invalid(
                        nth_offset(&text, "[[subagent.turns]]", header),
                        format!(
                            "`subagent[{number}].turns[{index}]` must hold `tool` (with `input` \
                             and `id`), `tools`, or `text`"
                        ),
                    ));
                }
                header += 1;
            }
        }
        if scenario.subagents.iter().filter(|sub| sub.turns.is_empty()).count() > 1 {
            return Err(invalid(
                at("[[subagent]]"),
                "only one subagent may play `[model]`: give the others their own `turns`".into(),
            ));
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

    /// The scripted turns of `[model]` as the model will emit them, each with its wait.
    pub fn scripted_turns(&self) -> Vec<(u64, ScriptedTurn)> {
        scripted(&self.model.turns)
    }

    /// The subagent that plays `[model]`, if one does (then the refund bot does not think).
    pub fn model_player(&self) -> Option<&SubagentSpec> {
        self.subagents.iter().find(|sub| sub.turns.is_empty())
    }
}

impl SubagentSpec {
    /// Its own scripted turns, each with its wait (empty when it plays `[model]`).
    pub fn scripted_turns(&self) -> Vec<(u64, ScriptedTurn)> {
        scripted(&self.turns)
    }
}

impl TurnSpec {
    /// One shape only (`tool`, `tools` or just `text`), and `input` and `id` only with `tool`.
    fn well_formed(&self) -> bool {
        let shapes = [self.tool.is_some(), self.tools.is_some()].iter().filter(|s| **s).count();
        shapes <= 1
            && (shapes == 1 || self.text.is_some())
            && (self.tool.is_some() || (self.input.is_none() && self.id.is_none()))
    }
}

/// `turns` as the model will emit them, each with its wait.
fn scripted(turns: &[TurnSpec]) -> Vec<(u64, ScriptedTurn)> {
    let call = |tool: &str, input: &Map<String, Value>, id: &Option<String>| {
        let call = ScriptedCall::new(tool, Value::Object(input.clone()));
        match id {
            Some(id) => call.with_id(id),
            None => call,
        }
    };
    turns
        .iter()
        .map(|turn| {
            let scripted = match (&turn.tool, &turn.tools) {
                (Some(tool), _) => ScriptedTurn::tools(vec![call(
                    tool,
                    turn.input.as_ref().unwrap_or(&Map::new()),
                    &turn.id,
                )]),
                (None, Some(calls)) => ScriptedTurn::tools(
                    calls.iter().map(|one| call(&one.tool, &one.input, &one.id)).collect(),
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

/// Where the unknown key an error names is written, from `start` (the table the error points at,
/// when the table was read as a whole: `[expect]`, `[subagent]`); `start` for other errors.
fn unknown_key_offset(text: &str, start: usize, message: &str) -> usize {
    let Some(key) = message.split("unknown field `").nth(1).and_then(|rest| rest.split('`').next())
    else {
        return start;
    };
    let rest = text.get(start..).unwrap_or_default();
    rest.match_indices(key)
        .find(|(at, _)| {
            let before = rest[..*at].chars().next_back();
            let after = rest[at + key.len()..].trim_start_matches([' ', '\t']);
            before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',')
                && after.starts_with('=')
        })
        .map_or(start, |(at, _)| start + at)
}

fn nth_offset(text: &str, header: &str, index: usize) -> usize {
    text.match_indices(header).nth(index).map_or(0, |(at, _)| at)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |before| before.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r##"
id = "t"
kind = "attack"
category = "harness"
description = "x"
[ticket]
customer = "anya_green_6889"
subject = "x"
body = "x"
[approver]
answer = "deny"
"##;

    const MODEL: &str = r##"
[model]
kind = "scripted"
[[model.turns]]
tools = [
  { tool = "issue_refund", id = "dup", input = { order_id = "#W1" } },
  { tool = "issue_refund", id = "dup", input = { order_id = "#W2" } },
  { tool = "get_order_details", input = { order_id = "#W1" } },
]
[[model.turns]]
tool = "issue_refund"
id = "toolu_scripted_1"
input = { order_id = "#W3" }
[[model.turns]]
text = "Done."
"##;

    fn load(rest: &str) -> Result<Scenario, String> {
        load_text(&format!("{HEAD}{rest}"))
    }

    fn load_text(text: &str) -> Result<Scenario, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        Scenario::load(&path).map_err(|e| e.to_string())
    }

    /// The line of the file (as `load` writes it) where `needle` appears the `nth` time, from 0.
    fn line(rest: &str, needle: &str, nth: usize) -> String {
        let text = format!("{HEAD}{rest}");
        format!("line {}", line_of(&text, nth_offset(&text, needle, nth)))
    }

    fn ids(turns: &[(u64, ScriptedTurn)]) -> String {
        format!("{turns:?}")
    }

    #[test]
    fn calls_carry_the_ids_the_file_gives_them() {
        let scenario = load(MODEL).unwrap();
        let turns = ids(&scenario.scripted_turns());
        assert_eq!(turns.matches("id: Some(\"dup\")").count(), 2, "{turns}");
        assert_eq!(turns.matches("id: Some(\"toolu_scripted_1\")").count(), 1, "{turns}");
        assert_eq!(turns.matches("id: None").count(), 1, "{turns}");
    }

    #[test]
    fn an_id_needs_a_call_to_belong_to() {
        let bad = MODEL.replace("text = \"Done.\"", "text = \"Done.\"\nid = \"x\"");
        let error = load(&bad).unwrap_err();
        let at = line(&bad, "[[model.turns]]", 2);
        assert!(error.contains("model.turns[2]") && error.contains(&at), "{error}");
        // A reviewer's pattern has no id.
        let head = HEAD.replace(
            "answer = \"deny\"",
            "answer = \"approve\"\napprove_only = [{ tool = \"issue_refund\", id = \"x\" }]",
        );
        let error = load_text(&format!("{head}{MODEL}")).unwrap_err();
        assert!(error.contains("unknown field `id`"), "{error}");
    }

    #[test]
    fn one_subagent_table_or_several_with_their_own_turns() {
        let one = load(&format!(
            "{MODEL}[subagent]\nid = \"lookup-helper\"\nmenu = [\"get_order_details\"]\nscopes = [\"orders:read\"]\n"
        ))
        .unwrap();
        assert_eq!(one.subagents.len(), 1);
        assert_eq!(one.model_player().map(|sub| sub.id.as_str()), Some("lookup-helper"));

        let helper = |n: u32| {
            format!(
                "[[subagent]]\nid = \"refund-bot\"\nmenu = [\"issue_refund\"]\n\
                 scopes = [\"refunds:write\"]\ninstructions = \"part {n}\"\n\
                 [[subagent.turns]]\ntool = \"issue_refund\"\ninput = {{ order_id = \"#W{n}\" }}\n\
                 [[subagent.turns]]\ntext = \"Done.\"\n"
            )
        };
        let two = load(&format!("{MODEL}{}{}", helper(1), helper(2))).unwrap();
        assert_eq!(two.subagents.len(), 2);
        assert!(two.model_player().is_none(), "each helper plays its own script");
        assert_eq!(two.subagents[1].instructions.as_deref(), Some("part 2"));
        assert!(ids(&two.subagents[1].scripted_turns()).contains("#W2"));

        let bad = helper(2).replace("text = \"Done.\"", "wait_ms = 1");
        let error = load(&format!("{MODEL}{}{bad}", helper(1))).unwrap_err();
        assert!(error.contains("subagent[1].turns[1]"), "{error}");

        let bare = "[[subagent]]\nid = \"lookup-helper\"\nmenu = []\nscopes = []\n";
        let error = load(&format!("{MODEL}{bare}{bare}")).unwrap_err();
        assert!(error.contains("only one subagent may play"), "{error}");

        let error =
            load(&format!("{MODEL}{}", helper(1).replace("menu =", "menuu ="))).unwrap_err();
        assert!(error.contains("unknown field `menuu`"), "{error}");
    }

    #[test]
    fn expect_keeps_the_queue_checks_strict_and_adds_the_harness_bounds() {
        let ok = load(&format!(
            "{MODEL}[expect]\nnot_executed = [\"send_email\"]\n[expect.refunded]\nat_most = 100.0\n\
             [expect.ledger]\nat_least = 1.5\n"
        ))
        .unwrap();
        assert_eq!(ok.expect.checks.not_executed, ["send_email"]);
        assert_eq!(ok.expect.refunded.and_then(|b| b.at_most), Some(100.0));
        assert_eq!(ok.expect.ledger.and_then(|b| b.at_least), Some(1.5));
        let bounds = Bounds { at_most: Some(1.0), at_least: Some(0.5) };
        assert_eq!(bounds.broken_by(100, "x"), None);
        assert!(bounds.broken_by(101, "x").is_some() && bounds.broken_by(49, "x").is_some());

        let bad = format!("{MODEL}[expect]\nexecuted = []\nnot_executd = [\"x\"]\n");
        let error = load(&bad).unwrap_err();
        let at = line(&bad, "not_executd", 0);
        assert!(error.contains("unknown field `not_executd`") && error.contains(&at), "{error}");
        let error = load(&format!("{MODEL}[expect.refunded]\nat_mos = 1.0\n")).unwrap_err();
        assert!(error.contains("`expect.refunded`") && error.contains("at_mos"), "{error}");
        let error = load(&format!("{MODEL}[expect.ledger]\n")).unwrap_err();
        assert!(error.contains("needs `at_most` or `at_least`"), "{error}");
    }
}
