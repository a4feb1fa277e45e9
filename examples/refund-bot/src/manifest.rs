//! The agent manifest: the refund bot as data (`examples/refund-bot/agent.toml`).
//!
//! A manifest says everything that makes the agent what it is, so that changing the agent is a
//! reviewed change to one file, not to code: the model and its system prompt, where the tools come
//! from and which of them are on the menu, the scopes its tokens carry and how long they live, the
//! policy bundle, the approval channel, the budgets and where the audit goes. Paths are relative to
//! the manifest's own directory.
//!
//! Loading is strict and fails closed, naming the file and line: a TOML error, an unknown key
//! (a misspelt `menu` must not silently mean "no menu"), a menu entry with no tool behind it, a
//! scope no tool needs, a zero or over-long token lifetime, a bad budget.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The manifest next to this crate, which `cargo run -p refund-bot` runs.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.toml")
}

/// A loaded, validated manifest, with its paths resolved.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The agent's identity, model and prompt.
    pub agent: AgentSection,
    /// Where the tools come from and which are on the menu.
    pub tools: ToolsSection,
    /// The task tokens.
    pub credentials: CredentialsSection,
    /// The policy bundle (resolved).
    pub policy: PathBuf,
    /// Who answers approval requests, and how long they have.
    pub approval: ApprovalSection,
    /// The spending caps.
    pub budget: guards::budget::Limits,
    /// `[limits]`: the most bytes a call's arguments and a tool's output may carry (the most
    /// bytes of conversation re-sent per turn is in `agent.limits`).
    pub sizes: agent_core::pipeline::SizeLimits,
    /// The deployment's one budget ledger (resolved): it survives restarts, and concurrent
    /// processes on this machine share it safely (SQLite's write lock).
    pub ledger: PathBuf,
    /// Where the audit log and its stores go.
    pub audit: AuditSection,
    /// The ticket queue the demo works through (resolved).
    pub queue: PathBuf,
}

/// `[agent]`.
#[derive(Debug, Clone)]
pub struct AgentSection {
    /// The `sub` of its tokens and the principal of its calls.
    pub id: String,
    /// The Claude model id, used when `ANTHROPIC_API_KEY` is set.
    pub model: String,
    /// What the model is told. A better prompt is never the control: the guards are.
    pub system_prompt: String,
    /// The loop's limits per task.
    pub limits: agent_core::agent::TaskLimits,
}

/// `[tools]`.
#[derive(Debug, Clone)]
pub struct ToolsSection {
    /// Where the tools run.
    pub source: ToolSource,
    /// The support desk's database (tau2's retail shape), resolved.
    pub database: PathBuf,
    /// The tool names on the agent's menu, in the manifest's order.
    pub menu: Vec<String>,
}

/// Where the tools run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToolSource {
    /// In this process: the desk's tools called directly (each write still checks its token).
    InProcess,
    /// The desk as an MCP server in a child process, spoken to over its stdin and stdout.
    McpStdio,
    /// The desk as an MCP server over streamable HTTP on loopback, with bearer tokens.
    McpHttp,
}

impl ToolSource {
    /// Parses `--tools`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "in-process" => Some(Self::InProcess),
            "mcp-stdio" => Some(Self::McpStdio),
            "mcp-http" => Some(Self::McpHttp),
            _ => None,
        }
    }

    /// As written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::McpStdio => "mcp-stdio",
            Self::McpHttp => "mcp-http",
        }
    }
}

/// `[credentials]`.
#[derive(Debug, Clone)]
pub struct CredentialsSection {
    /// The `iss` of the task tokens.
    pub issuer: String,
    /// The tool server's name in the tokens' `aud`.
    pub audience: String,
    /// How long a task token lives.
    pub token_lifetime: Duration,
    /// The scopes every task token carries.
    pub scopes: Vec<String>,
    /// The clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

/// `[approval]`.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalSection {
    /// Who answers, unless `--approver` says otherwise.
    pub channel: ApprovalChannel,
    /// How long a reviewer has before silence counts as no.
    pub timeout: Duration,
    /// How many approval requests one task may make; past it, a call that needs a human is
    /// refused without asking (a reviewer asked a sixteenth time stops reading).
    pub max_requests_per_task: u32,
}

/// Who answers approval requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalChannel {
    /// The terminal when interactive, otherwise a script that says no (with a note).
    Auto,
    /// A person at this terminal.
    Terminal,
    /// A person in the web console on loopback.
    Web,
    /// A script that says yes.
    Approve,
    /// A script that says no.
    Deny,
}

impl ApprovalChannel {
    /// Parses `--approver`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "terminal" => Some(Self::Terminal),
            "web" => Some(Self::Web),
            "approve" => Some(Self::Approve),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditSection {
    /// The directory for the logs, the query stores, the budget ledger and the keys (resolved).
    pub dir: PathBuf,
    /// Whether each intent record is fsynced before its tool runs.
    pub fsync: agent_core::audit::Fsync,
    /// When the runtime signs the head of its log.
    pub checkpoints: agent_core::audit::CheckpointPolicy,
    /// Where each log's witness (its latest signed head) is kept: apart from the logs, so that
    /// rewriting a log does not rewrite its witness (resolved).
    pub witness_dir: PathBuf,
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read the manifest `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Something in the file is wrong, at a line.
    #[error("manifest `{path}` line {line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Manifest {
    /// Loads and validates the manifest at `path`. `offered` names every tool the desk offers (the
    /// menu must be a subset), with the scope each requires.
    pub fn load(
        path: impl AsRef<Path>,
        offered: &[(String, String)],
    ) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ManifestError::Read { path: shown.clone(), source })?;
        let invalid = |span: std::ops::Range<usize>, message: String| ManifestError::Invalid {
            path: shown.clone(),
            line: crate::line_of(&text, span.start),
            message,
        };
        let file: File = toml::from_str(&text)
            .map_err(|error| invalid(error.span().unwrap_or(0..0), error.message().to_owned()))?;
        let dir = path.parent().unwrap_or(Path::new("."));

        let mut menu = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in file.tools.menu.get_ref() {
            let name = entry.get_ref();
            if !offered.iter().any(|(tool, _)| tool == name) {
                return Err(invalid(
                    entry.span(),
                    format!("the menu names `{name}`, but the support desk has no such tool"),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(invalid(entry.span(), format!("`{name}` is on the menu twice")));
            }
            menu.push(name.clone());
        }
        if menu.is_empty() {
            return Err(invalid(file.tools.menu.span(), "the menu is empty".to_owned()));
        }
        let needed: BTreeSet<&str> = offered
            .iter()
            .filter(|(tool, _)| seen.contains(tool))
            .map(|(_, scope)| scope.as_str())
            .collect();
        for scope in &file.credentials.scopes {
            if agent_core::Scope::new(scope.get_ref()).is_err() {
                return Err(invalid(scope.span(), format!("`{}` is not a scope", scope.get_ref())));
            }
            // Least privilege: a scope no tool on the menu needs is a scope an attacker could use.
            if !needed.contains(scope.get_ref().as_str()) {
                return Err(invalid(
                    scope.span(),
                    format!("no tool on the menu needs the scope `{}`", scope.get_ref()),
                ));
            }
        }
        let lifetime = file.credentials.token_lifetime_seconds;
        if !(1..=3600).contains(lifetime.get_ref()) {
            return Err(invalid(
                lifetime.span(),
                "`token_lifetime_seconds` must be between 1 and 3600".to_owned(),
            ));
        }
        let timeout = file.approval.timeout_seconds;
        if *timeout.get_ref() == 0 {
            return Err(invalid(timeout.span(), "`timeout_seconds` must be above 0".to_owned()));
        }
        let every_events = &file.audit.checkpoint_every_events;
        if !(1..=1_000_000).contains(every_events.get_ref()) {
            return Err(invalid(
                every_events.span(),
                "`checkpoint_every_events` must be between 1 and 1000000".to_owned(),
            ));
        }
        let every_ms = &file.audit.checkpoint_every_ms;
        if !(10..=3_600_000).contains(every_ms.get_ref()) {
            return Err(invalid(
                every_ms.span(),
                "`checkpoint_every_ms` must be between 10 and 3600000 (an hour)".to_owned(),
            ));
        }
        let budget = guards::budget::Limits {
            per_task: file.budget.per_task.caps().map_err(|(span, m)| invalid(span, m))?,
            per_agent_per_day: file
                .budget
                .per_agent_per_day
                .caps()
                .map_err(|(span, m)| invalid(span, m))?,
            per_customer_per_day: file
                .budget
                .per_customer_per_day
                .caps()
                .map_err(|(span, m)| invalid(span, m))?,
        };
        Ok(Self {
            path: path.to_owned(),
            agent: AgentSection {
                id: file.agent.id,
                model: file.agent.model,
                system_prompt: file.agent.system_prompt.trim().to_owned(),
                limits: agent_core::agent::TaskLimits {
                    max_turns: file.agent.max_turns,
                    max_tool_calls: file.agent.max_tool_calls,
                    max_wall_time: Duration::from_secs(file.agent.max_wall_time_seconds),
                    max_conversation_bytes: file.limits.max_conversation_bytes,
                },
            },
            tools: ToolsSection {
                source: file.tools.source,
                database: resolve(dir, &file.tools.database),
                menu,
            },
            credentials: CredentialsSection {
                issuer: file.credentials.issuer,
                audience: file.credentials.audience,
                token_lifetime: Duration::from_secs(*lifetime.get_ref()),
                scopes: file.credentials.scopes.into_iter().map(Spanned::into_inner).collect(),
                leeway_seconds: file.credentials.leeway_seconds,
            },
            policy: resolve(dir, &file.policy.bundle),
            approval: ApprovalSection {
                channel: file.approval.channel,
                timeout: Duration::from_secs(*timeout.get_ref()),
                max_requests_per_task: file.approval.max_requests_per_task,
            },
            budget,
            sizes: agent_core::pipeline::SizeLimits {
                max_input_bytes: file.limits.max_input_bytes,
                max_output_bytes: file.limits.max_output_bytes,
            },
            ledger: match &file.budget.ledger {
                Some(ledger) => resolve(dir, Path::new(ledger)),
                None => resolve(dir, &file.audit.dir).join("ledger.sqlite"),
            },
            audit: AuditSection {
                dir: resolve(dir, &file.audit.dir),
                fsync: match file.audit.fsync {
                    FsyncChoice::OnCommit => agent_core::audit::Fsync::OnCommit,
                    FsyncChoice::Never => agent_core::audit::Fsync::Never,
                },
                checkpoints: agent_core::audit::CheckpointPolicy {
                    every_events: *file.audit.checkpoint_every_events.get_ref(),
                    every: Duration::from_millis(*file.audit.checkpoint_every_ms.get_ref()),
                },
                witness_dir: match &file.audit.witness_dir {
                    Some(witness) => resolve(dir, witness),
                    None => resolve(dir, &file.audit.dir).join("witness"),
                },
            },
            queue: resolve(dir, &file.queue.tickets),
        })
    }
}

// ── The file as written ─────────────────────────────────────────────────────────────────────────

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    agent: AgentFile,
    tools: ToolsFile,
    credentials: CredentialsFile,
    policy: PolicyFile,
    approval: ApprovalFile,
    #[serde(default)]
    budget: BudgetFile,
    #[serde(default)]
    limits: LimitsFile,
    audit: AuditFile,
    queue: QueueFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    id: String,
    model: String,
    system_prompt: String,
    #[serde(default = "default_max_turns")]
    max_turns: u32,
    #[serde(default = "default_max_tool_calls")]
    max_tool_calls: u32,
    #[serde(default = "default_max_wall_time")]
    max_wall_time_seconds: u64,
}

fn default_max_turns() -> u32 {
    agent_core::agent::TaskLimits::default().max_turns
}

fn default_max_tool_calls() -> u32 {
    agent_core::agent::TaskLimits::default().max_tool_calls
}

fn default_max_wall_time() -> u64 {
    agent_core::agent::TaskLimits::default().max_wall_time.as_secs()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolsFile {
    source: ToolSource,
    database: PathBuf,
    menu: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    issuer: String,
    audience: String,
    token_lifetime_seconds: Spanned<u64>,
    scopes: Vec<Spanned<String>>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    guards::credentials::DEFAULT_LEEWAY_SECONDS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    bundle: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalFile {
    channel: ApprovalChannel,
    timeout_seconds: Spanned<u64>,
    #[serde(default = "default_max_requests")]
    max_requests_per_task: u32,
}

fn default_max_requests() -> u32 {
    agent_core::pipeline::DEFAULT_MAX_APPROVALS_PER_TASK
}

/// `[limits]`: sizes, in bytes; each defaults to the library's default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsFile {
    max_input_bytes: usize,
    max_output_bytes: usize,
    max_conversation_bytes: usize,
}

impl Default for LimitsFile {
    fn default() -> Self {
        let sizes = agent_core::pipeline::SizeLimits::default();
        Self {
            max_input_bytes: sizes.max_input_bytes,
            max_output_bytes: sizes.max_output_bytes,
            max_conversation_bytes: agent_core::agent::TaskLimits::default().max_conversation_bytes,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    /// The ledger file, relative to the manifest; by default `ledger.sqlite` in the audit dir.
    #[serde(default)]
    ledger: Option<String>,
    #[serde(default)]
    per_task: CapsFile,
    #[serde(default)]
    per_agent_per_day: CapsFile,
    #[serde(default)]
    per_customer_per_day: CapsFile,
}

/// Caps as an operator writes them: money in dollars.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CapsFile {
    money: Option<Spanned<f64>>,
    read_calls: Option<u64>,
    write_calls: Option<u64>,
    irreversible_calls: Option<u64>,
}

impl CapsFile {
    fn caps(&self) -> Result<guards::budget::Caps, (std::ops::Range<usize>, String)> {
        let money_cents = match &self.money {
            None => None,
            Some(money) => {
                let dollars = *money.get_ref();
                if !(0.0..=1e9).contains(&dollars) {
                    return Err((money.span(), format!("`money = {dollars}` is not an amount")));
                }
                #[expect(clippy::cast_possible_truncation, reason = "bounded to 1e11 cents above")]
                Some((dollars * 100.0).round() as i64)
            }
        };
        Ok(guards::budget::Caps {
            read_calls: self.read_calls,
            write_calls: self.write_calls,
            irreversible_calls: self.irreversible_calls,
            money_cents,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    dir: PathBuf,
    fsync: FsyncChoice,
    #[serde(default = "default_checkpoint_every_events")]
    checkpoint_every_events: Spanned<u64>,
    #[serde(default = "default_checkpoint_every_ms")]
    checkpoint_every_ms: Spanned<u64>,
    #[serde(default)]
    witness_dir: Option<PathBuf>,
}

fn default_checkpoint_every_events() -> Spanned<u64> {
    Spanned::new(0..0, agent_core::audit::CheckpointPolicy::default().every_events)
}

fn default_checkpoint_every_ms() -> Spanned<u64> {
    let every = agent_core::audit::CheckpointPolicy::default().every;
    Spanned::new(0..0, u64::try_from(every.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FsyncChoice {
    OnCommit,
    Never,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    tickets: PathBuf,
}

/// `path` relative to `dir`, with `.` and `..` folded away so that paths print readably
/// (`target/refund-bot`, not `examples/refund-bot/../../target/refund-bot`). Lexical only: the
/// manifest's paths are the operator's, not an attacker's.
fn resolve(dir: &Path, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    for component in dir.join(path).components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if resolved.file_name().is_some() => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved
}
