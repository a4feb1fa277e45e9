//! The MCP client adapter: another server's tools, imported into a Warden menu on Warden's terms.
//!
//! An MCP server is outside the trust boundary. It says what its tools are called and what they
//! do; it does not get to say how dangerous they are. So an import names each tool it wants in a
//! [`ToolImport`], with the scope a credential must grant and the effect class the guards reason
//! about, and nothing the server says can change those:
//!
//! ```text
//! wrong: effect = if tool.annotations.read_only_hint { Read } else { Write }   // the server decides
//! right: effect = entry.effect                                                 // the operator decides
//! ```
//!
//! - Only the tools the menu names are imported; everything else the server offers is ignored.
//! - A menu entry may pin the tool's definition ([`pin_digest`](super::pin_digest)). A server
//!   offering anything else under that name (a reworded description is the classic poisoning),
//!   or two tools of that name, is refused at import, and audited with the digests.
//! - The definition stays pinned for the whole session. One rule (`pinning::definition`) decides at
//!   import and at every re-check: exactly one tool of that name, with the pinned digest (or,
//!   unpinned, the digest seen at import). The source lists the tools again when the server says
//!   they changed (`notifications/tools/list_changed`), every
//!   [`relist_every`](SourceOptions::relist_every) (a server need not say), and at
//!   [`McpToolSource::refresh`]; a tool changed, duplicated or dropped since import is withdrawn
//!   at once and for good, and audited. The pipeline then refuses it at the menu stage
//!   ([`Tool::withdrawn`]), before any other check or intent record.
//! - Output is untrusted unless the menu says otherwise, so it taints the task that reads it; an
//!   untrusted server's error text is not shown to the model either.
//! - Each call forwards the invocation's own credential (a read's task token, a write's per-call
//!   token) in `_meta.warden_token` over stdio, as the bearer of that one request over HTTP, and is
//!   bounded by a timeout: a server that dies mid-task costs one prompt error, not a hung task.
//! - A server started by command runs with a cleared environment plus what the endpoint passes
//!   explicitly, so no secret in this process's environment reaches it.

mod pinning;

use super::http_client::{CallBearer, PerCallBearerClient};
use super::pin::pin_digest;
use super::{META_CALL_ID, META_EVIDENCE, META_TOKEN};
use agent_core::audit::{AuditEvent, AuditLog, Commit, Stage, Verdict};
use agent_core::tool::{Invocation, ResourceRef, ToolError, ToolOutput};
use agent_core::{
    AgentId, Credential, Derivation, EffectClass, FieldPath, MoneyMoved, Reason, Scope, TaskId,
    Tool, ToolName, ToolSpec,
};
use async_trait::async_trait;
use pinning::{Imported, Refusal, When, definition, watch_listing};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    ClientRequest, Implementation, ListToolsRequest, PaginatedRequestParams, RequestMetaObject,
    ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;

/// Where an MCP server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpEndpoint {
    /// A command to spawn, speaking MCP on its stdin and stdout. It starts with an empty
    /// environment plus `env`: give `program` as a path, or pass `PATH` explicitly.
    Command {
        /// The program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// The only environment variables it gets.
        env: Vec<(String, String)>,
    },
    /// A streamable HTTP endpoint, such as `http://127.0.0.1:8808/mcp`.
    Url(String),
}

impl McpEndpoint {
    /// A server spawned from `program`, with no arguments and an empty environment.
    pub fn command(program: impl Into<PathBuf>) -> Self {
        Self::Command { program: program.into(), args: Vec::new(), env: Vec::new() }
    }

    /// A server at `url`.
    pub fn url(url: impl Into<String>) -> Self {
        Self::Url(url.into())
    }

    /// Adds an argument (commands only).
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        if let Self::Command { args, .. } = &mut self {
            args.push(arg.into());
        }
        self
    }

    /// Passes one environment variable (commands only): the child gets nothing else.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let Self::Command { env, .. } = &mut self {
            env.push((key.into(), value.into()));
        }
        self
    }
}

/// How the endpoint is named in audit events and errors: the program, or the URL without its
/// query (which may hold a secret).
impl fmt::Display for McpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command { program, .. } => write!(f, "{}", program.display()),
            Self::Url(url) => f.write_str(url.split(['?', '#']).next().unwrap_or_default()),
        }
    }
}

/// One tool a menu imports from an MCP server, with what the operator (not the server) declares
/// about it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ToolImport {
    /// The tool's name on the server, which is also its name on the menu.
    pub name: ToolName,
    /// The scope a credential must grant to call it.
    pub scope: Scope,
    /// How much a call can change.
    pub effect: EffectClass,
    /// The [`pin_digest`](super::pin_digest) of the reviewed definition; any other definition is
    /// refused.
    #[serde(default)]
    pub pin: Option<String>,
    /// Whether the tool's output may be trusted (it is untrusted by default: it crossed a trust
    /// boundary).
    #[serde(default)]
    pub trusted_output: bool,
    /// The description the model sees, instead of the server's.
    #[serde(default)]
    pub description: Option<String>,
    /// The entity the call touches, for policy.
    #[serde(default)]
    pub resource: Option<ResourceRef>,
    /// Whether and how the call moves money, for budgets and policy.
    #[serde(default)]
    pub money: Option<MoneyMoved>,
    /// The output fields that are facts of the server's system of record (see
    /// [`ToolSpec::facts`]). None by default: a server's word vouches for nothing until the
    /// operator says which fields are facts.
    #[serde(default)]
    pub facts: Vec<FieldPath>,
    /// Whether the tool is pure (see [`ToolSpec::derivation`]).
    #[serde(default)]
    pub derivation: Derivation,
    /// The arguments whose text is sent to a person (see [`ToolSpec::outbound_text`]).
    #[serde(default)]
    pub outbound_text: Vec<String>,
}

impl ToolImport {
    /// Imports `name` with `scope` and `effect`, unpinned, its output untrusted.
    pub fn new(name: ToolName, scope: Scope, effect: EffectClass) -> Self {
        Self {
            name,
            scope,
            effect,
            pin: None,
            trusted_output: false,
            description: None,
            resource: None,
            money: None,
            facts: Vec::new(),
            derivation: Derivation::Source,
            outbound_text: Vec::new(),
        }
    }

    /// Imports a tool declared locally as `spec`: the same scope, effect, trust, resource, money,
    /// facts, derivation and outbound text, pinned to exactly that definition.
    pub fn declared_as(spec: &ToolSpec) -> Self {
        Self {
            name: spec.name.clone(),
            scope: spec.required_scope.clone(),
            effect: spec.effect,
            pin: Some(super::pin_digest(spec.name.as_str(), &spec.description, &spec.input_schema)),
            trusted_output: !spec.untrusted_output,
            description: Some(spec.description.clone()),
            resource: spec.resource.clone(),
            money: spec.money.clone(),
            facts: spec.facts.clone(),
            derivation: spec.derivation,
            outbound_text: spec.outbound_text.clone(),
        }
    }

    /// Pins the definition to `digest`.
    #[must_use]
    pub fn pinned(mut self, digest: impl Into<String>) -> Self {
        self.pin = Some(digest.into());
        self
    }

    /// Trusts the tool's output (do this only for a server inside the trust boundary).
    #[must_use]
    pub fn trusted_output(mut self) -> Self {
        self.trusted_output = true;
        self
    }

    /// Shows the model `description` instead of the server's.
    #[must_use]
    pub fn described_as(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Declares the entity the call touches (see [`ToolSpec::touches`]).
    #[must_use]
    pub fn touches(mut self, entity_type: impl Into<String>, argument: impl Into<String>) -> Self {
        self.resource =
            Some(ResourceRef { entity_type: entity_type.into(), argument: argument.into() });
        self
    }

    /// Declares the argument holding the money the call moves (see [`ToolSpec::moves_money`]).
    #[must_use]
    pub fn moves_money(mut self, argument: impl Into<String>) -> Self {
        self.money = Some(MoneyMoved::Argument(argument.into()));
        self
    }

    /// The menu's declaration of the tool: the operator's scope, effect and trust, the server's
    /// schema, and the server's description unless the operator gave one.
    fn spec(&self, offered: &OfferedTool) -> ToolSpec {
        let description = self.description.clone().unwrap_or_else(|| offered.description.clone());
        let mut spec = ToolSpec::new(
            self.name.clone(),
            description,
            offered.input_schema.clone(),
            self.scope.clone(),
        )
        .effect(self.effect);
        spec.untrusted_output = !self.trusted_output;
        spec.resource = self.resource.clone();
        spec.money = self.money.clone();
        spec.facts = self.facts.clone();
        spec.derivation = self.derivation;
        spec.outbound_text = self.outbound_text.clone();
        spec
    }
}

/// A tool as a server lists it, with the digest a menu would pin.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedTool {
    /// Its name.
    pub name: String,
    /// Its description (`""` when the server gives none).
    pub description: String,
    /// Its input schema.
    pub input_schema: Value,
    /// [`pin_digest`](super::pin_digest) of the three.
    pub digest: String,
}

impl From<rmcp::model::Tool> for OfferedTool {
    fn from(tool: rmcp::model::Tool) -> Self {
        let name = tool.name.into_owned();
        let description = tool.description.map(|text| text.into_owned()).unwrap_or_default();
        let input_schema = Value::Object(Arc::unwrap_or_clone(tool.input_schema));
        let digest = pin_digest(&name, &description, &input_schema);
        Self { name, description, input_schema, digest }
    }
}

/// Mints a fresh token for listing a server's tools: see [`SourceOptions::renew_listing_token`].
pub type ListingTokens = Arc<dyn Fn() -> Result<Credential, String> + Send + Sync>;

/// Options for a connection.
#[derive(Clone)]
#[non_exhaustive]
pub struct SourceOptions {
    /// How long one call may take before it fails (default 30 s).
    pub call_timeout: Duration,
    /// How long connecting (spawning and the MCP handshake) may take (default 10 s).
    pub connect_timeout: Duration,
    /// Where pin drifts, withdrawals and failed re-lists are recorded; without a log they go to
    /// `tracing` only.
    pub audit: Option<AuditLog>,
    /// The agent named in those records (default `mcp-import`).
    pub agent: AgentId,
    /// How often the imported tools are checked against a fresh listing, besides whenever the
    /// server sends `notifications/tools/list_changed` (default 30 s, at least 10 ms). It bounds
    /// how long a server that changes a tool without saying so keeps it.
    pub relist_every: Duration,
    /// How many re-lists in a row may fail before every imported tool is withdrawn
    /// `relist_failed` (default 2: one failure is audited and retried at the next check, the
    /// second withdraws; at least 1). A closed connection withdraws at its first failed re-list.
    pub relist_failure_limit: u32,
    /// Where each listing's token comes from when the connection's own token would expire during
    /// the session (default: none, every listing presents the connection's token). A re-list with
    /// an expired token sees nothing and withdraws every tool, so a session that outlives its
    /// token needs fresh ones.
    pub listing_tokens: Option<ListingTokens>,
}

impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceOptions")
            .field("call_timeout", &self.call_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("agent", &self.agent)
            .field("relist_every", &self.relist_every)
            .field("relist_failure_limit", &self.relist_failure_limit)
            .field("listing_tokens", &self.listing_tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            audit: None,
            agent: AgentId::new("mcp-import"),
            relist_every: Duration::from_secs(30),
            relist_failure_limit: 2,
            listing_tokens: None,
        }
    }
}

impl SourceOptions {
    /// Sets the per-call timeout.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets the connection timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Records pin drifts in `audit`, as `agent`.
    #[must_use]
    pub fn audit(mut self, audit: AuditLog, agent: AgentId) -> Self {
        self.audit = Some(audit);
        self.agent = agent;
        self
    }

    /// Sets how often the imported tools are re-checked without being told (see
    /// [`relist_every`](Self::relist_every)).
    #[must_use]
    pub fn relist_every(mut self, every: Duration) -> Self {
        self.relist_every = every;
        self
    }

    /// Lists with a token from `mint` each time (a fresh, short-lived one), instead of the
    /// connection's: for sessions that outlive the connection's token. A token `mint` cannot make
    /// fails that listing (audited, and withdrawing at the limit like any failed re-list).
    #[must_use]
    pub fn renew_listing_token(mut self, mint: ListingTokens) -> Self {
        self.listing_tokens = Some(mint);
        self
    }

    /// Sets how many re-lists in a row may fail before the tools are withdrawn (see
    /// [`relist_failure_limit`](Self::relist_failure_limit)).
    #[must_use]
    pub fn relist_failure_limit(mut self, limit: u32) -> Self {
        self.relist_failure_limit = limit;
        self
    }
}

/// What an import produced: the tools for the menu, and the entries refused.
#[derive(Default)]
pub struct Import {
    /// The imported tools, in menu order, ready for [`ToolMenu::new`](agent_core::ToolMenu::new).
    pub tools: Vec<Arc<dyn Tool>>,
    /// The menu entries not imported, and why.
    pub refused: Vec<ImportRefusal>,
}

impl fmt::Debug for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.tools.iter().map(|tool| tool.spec().name.as_str()).collect();
        f.debug_struct("Import").field("tools", &names).field("refused", &self.refused).finish()
    }
}

/// A menu entry that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRefusal {
    /// The tool.
    pub tool: String,
    /// Why: `not_offered`, `ambiguous`, `duplicate`, `pin_mismatch` or `schema_invalid`.
    pub code: &'static str,
    /// A sentence for the operator.
    pub detail: String,
}

/// An imported tool withdrawn because its server no longer offers the one definition it was
/// imported with, or can no longer be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// The tool.
    pub tool: String,
    /// Why: `pin_mismatch` (one definition, another than the pinned one), `ambiguous` (two or
    /// more under its name), `not_listed` (none), or `relist_failed` (the tools could not be
    /// listed again: the connection is closed, or too many re-lists in a row failed). Whichever
    /// it is, the tool is withdrawn for good: every later call is refused without reaching the
    /// server, and only a new import, after review, brings it back.
    pub code: &'static str,
    /// The digest it was imported with.
    pub expected_digest: String,
    /// The digest offered now, when exactly one definition is offered under its name.
    pub actual_digest: Option<String>,
    /// Every digest offered under its name now (none when it is not listed or was not listed).
    pub offered_digests: Vec<String>,
}

/// Why a server could not be reached or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The command could not be started.
    #[error("cannot start MCP server `{server}`: {source}")]
    Spawn {
        /// The endpoint.
        server: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build an HTTP client for `{server}`: {message}")]
    Client {
        /// The endpoint.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The MCP handshake failed or took too long (for HTTP, a refused token ends here).
    #[error("cannot connect to MCP server `{server}`: {message}")]
    Connect {
        /// The endpoint.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// A request failed: the server timed out or answered nonsense.
    #[error("MCP server `{server}` failed to answer `{method}`: {message}")]
    Request {
        /// The endpoint.
        server: String,
        /// The MCP method.
        method: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The connection is closed: [`McpToolSource::close`] was called, or the server went away.
    #[error("the connection to MCP server `{server}` is closed")]
    Closed {
        /// The endpoint.
        server: String,
    },
}

/// A connection to one MCP server, from which tools are imported and against which they stay
/// pinned for the whole session.
///
/// The token given at connection lists the tools (a server shows only what it grants) and, over
/// HTTP, authenticates the session; each call carries its own invocation's credential instead.
///
/// A background watcher lists the tools again whenever the server sends
/// `notifications/tools/list_changed`, and every [`SourceOptions::relist_every`] whether it does
/// or not (a server that changes a tool need not say so), and holds each imported tool to the
/// rule import applied ([`refresh`](Self::refresh) says how). It holds the source only weakly,
/// and stops at [`close`](Self::close), when the connection closes, or when the source and
/// every tool imported from it are dropped. It does not stop while an imported tool is still on
/// a menu: that tool can still call the server, so it must still be checked.
pub struct McpToolSource {
    shared: Arc<Shared>,
}

/// What the source, its tools and its watcher share. The watcher holds it weakly, so it never
/// keeps open a connection that nothing can call any more.
struct Shared {
    connection: Connection,
    imported: Mutex<Vec<Arc<Imported>>>,
    /// Held while one listing is applied (at import or a re-check), so two never interleave and
    /// a tool is never judged by a listing older than the one it was imported from; it counts
    /// the re-lists that failed in a row.
    relist: tokio::sync::Mutex<u32>,
    relist_failure_limit: u32,
    audit: Option<AuditLog>,
    agent: AgentId,
    /// `true` tells the watcher to stop; the sender's dropping, with the last holder of `Shared`,
    /// stops it too.
    stop: watch::Sender<bool>,
}

struct Connection {
    label: String,
    service: RunningService<RoleClient, ListChanged>,
    carrier: Carrier,
    token: Credential,
    listing_tokens: Option<ListingTokens>,
    call_timeout: Duration,
}

/// Where a call's token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    /// `_meta.warden_token` (stdio and other byte streams).
    Meta,
    /// The `Authorization` header of the request (HTTP).
    Bearer,
}

/// The client's side of the MCP session: it passes the server's
/// `notifications/tools/list_changed` on to the watcher and does nothing else. It declares the
/// default client capabilities (no sampling, roots or elicitation): `list_changed` is the
/// server's capability, so there is nothing to claim for it.
struct ListChanged {
    info: ClientConfig,
    changed: Arc<Notify>,
}

impl ClientHandler for ListChanged {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        // A permit is kept while the watcher is busy, so a change announced during a re-check
        // is checked again right after it.
        self.changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }
}

/// The most pages of `tools/list` followed before giving up on a server.
const MAX_PAGES: usize = 64;

/// The shortest interval between periodic re-lists; a shorter one is taken as this.
const MIN_RELIST_INTERVAL: Duration = Duration::from_millis(10);

impl McpToolSource {
    /// Connects to `endpoint`, presenting `token`.
    pub async fn connect(
        endpoint: &McpEndpoint,
        token: Credential,
        options: SourceOptions,
    ) -> Result<Self, SourceError> {
        let label = endpoint.to_string();
        match endpoint {
            McpEndpoint::Command { program, args, env } => {
                let mut command = tokio::process::Command::new(program);
                command.args(args).env_clear().envs(env.iter().cloned()).kill_on_drop(true);
                let (transport, _) = TokioChildProcess::builder(command)
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|source| SourceError::Spawn { server: label.clone(), source })?;
                Self::start(label, transport, Carrier::Meta, token, options).await
            }
            McpEndpoint::Url(url) => {
                let client = PerCallBearerClient::new().map_err(|error| SourceError::Client {
                    server: label.clone(),
                    message: error.to_string(),
                })?;
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .auth_header(token.expose());
                let transport = StreamableHttpClientTransport::with_client(client, config);
                Self::start(label, transport, Carrier::Bearer, token, options).await
            }
        }
    }

    /// Connects over a byte stream already open to a server (a pipe, a socket, or
    /// `tokio::io::duplex` in tests), tokens in `_meta` as over stdio. `label` names the server in
    /// audit events and errors.
    pub async fn over_stream<T>(
        label: impl Into<String>,
        io: T,
        token: Credential,
        options: SourceOptions,
    ) -> Result<Self, SourceError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::start(label.into(), io, Carrier::Meta, token, options).await
    }

    async fn start<T, E, A>(
        label: String,
        transport: T,
        carrier: Carrier,
        token: Credential,
        options: SourceOptions,
    ) -> Result<Self, SourceError>
    where
        T: IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let changed = Arc::new(Notify::new());
        let handler = ListChanged {
            info: ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("warden", env!("CARGO_PKG_VERSION")),
            ),
            changed: Arc::clone(&changed),
        };
        let connect_error =
            |message: String| SourceError::Connect { server: label.clone(), message };
        let service = tokio::time::timeout(options.connect_timeout, handler.serve(transport))
            .await
            .map_err(|_| {
                connect_error(format!("no handshake within {:?}", options.connect_timeout))
            })?
            .map_err(|error| connect_error(error.to_string()))?;
        let connection = Connection {
            label,
            service,
            carrier,
            token,
            listing_tokens: options.listing_tokens.clone(),
            call_timeout: options.call_timeout,
        };
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            connection,
            imported: Mutex::default(),
            relist: tokio::sync::Mutex::new(0),
            relist_failure_limit: options.relist_failure_limit.max(1),
            audit: options.audit,
            agent: options.agent,
            stop,
        });
        let every = options.relist_every.max(MIN_RELIST_INTERVAL);
        tokio::spawn(watch_listing(Arc::downgrade(&shared), changed, stopped, every));
        Ok(Self { shared })
    }

    /// The server's name in audit events and errors.
    pub fn label(&self) -> &str {
        self.shared.label()
    }

    /// The tools the server offers to this connection's token, with their digests.
    pub async fn offered(&self) -> Result<Vec<OfferedTool>, SourceError> {
        self.shared.connection.list().await
    }

    /// Imports the tools `menu` names, and only those. An entry is refused (and the rest still
    /// imported) when the server does not offer it (`not_offered`), offers it twice
    /// (`ambiguous`), offers a definition other than the pinned one (`pin_mismatch`), or offers a
    /// schema that is not for an object (`schema_invalid`); a menu naming a tool twice has its
    /// second entry refused (`duplicate`). `ambiguous` and `pin_mismatch` are audited: they are
    /// the server's doing. The rule is the one every later re-check applies, so a listing
    /// refused here is refused there too.
    pub async fn import(&self, menu: &[ToolImport]) -> Result<Import, SourceError> {
        let shared = &self.shared;
        let _one_listing_at_a_time = shared.relist.lock().await;
        let listing = shared.connection.list().await?;
        let mut import = Import::default();
        for (index, entry) in menu.iter().enumerate() {
            let name = entry.name.as_str();
            let refuse =
                |code, detail: String| ImportRefusal { tool: name.to_owned(), code, detail };
            if menu[..index].iter().any(|earlier| earlier.name == entry.name) {
                import.refused.push(refuse("duplicate", format!("`{name}` is on the menu twice")));
                continue;
            }
            let pin = entry.pin.as_deref();
            let tool = match definition(&listing, name, pin) {
                Ok(tool) => tool,
                Err(refusal) => {
                    if !matches!(refusal, Refusal::Absent) {
                        shared.record_refusal(name, pin, &refusal, When::Import).await;
                    }
                    let detail = refusal.sentence(shared.label(), name, pin, When::Import);
                    import.refused.push(refuse(refusal.code(When::Import), detail));
                    continue;
                }
            };
            if tool.input_schema.get("type").and_then(Value::as_str) != Some("object") {
                let detail = format!("the input schema of `{name}` is not for an object");
                import.refused.push(refuse("schema_invalid", detail));
                continue;
            }
            let imported = Arc::new(Imported {
                name: name.to_owned(),
                expected_digest: tool.digest.clone(),
                withdrawn: Mutex::new(None),
            });
            shared
                .imported
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&imported));
            import.tools.push(Arc::new(McpTool {
                spec: entry.spec(tool),
                imported,
                source: Arc::clone(shared),
            }));
        }
        Ok(import)
    }

    /// Lists the tools again now and holds each imported tool to the rule of import, against the
    /// digest it was imported with (its pin): exactly one definition under its name, with that
    /// digest. A changed (`pin_mismatch`), duplicated (`ambiguous`) or missing (`not_listed`)
    /// definition withdraws the tool at once and for good, and is audited; the withdrawals are
    /// returned, each once. The watcher runs the same check on `list_changed` and periodically.
    ///
    /// A re-list that fails is an error, audited, and retried at the next check; it leaves the
    /// tools as they were until [`SourceOptions::relist_failure_limit`] re-lists in a row have
    /// failed, or at once if the connection is closed: then every imported tool is withdrawn
    /// `relist_failed` (and audited) before the error returns. A server that cannot be asked what
    /// its tools are is not trusted to still run the ones imported.
    pub async fn refresh(&self) -> Result<Vec<Withdrawal>, SourceError> {
        self.shared.recheck(When::Refresh).await
    }

    /// Closes the connection now (and, for a command, ends the server process), and stops the
    /// watcher, even while tools imported from it are still on a menu: their calls then fail as
    /// "server gone", and a later [`refresh`](Self::refresh) withdraws them (`relist_failed`).
    /// Dropping the source and every tool imported from it closes it too.
    pub fn close(&self) {
        self.shared.stop.send_replace(true);
        self.shared.connection.service.cancellation_token().cancel();
    }
}

impl fmt::Debug for McpToolSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpToolSource")
            .field("server", &self.shared.connection.label)
            .field("carrier", &self.shared.connection.carrier)
            .finish_non_exhaustive()
    }
}

/// A tool imported from an MCP server: calls go to the server with the invocation's credential.
pub struct McpTool {
    spec: ToolSpec,
    imported: Arc<Imported>,
    source: Arc<Shared>,
}

impl McpTool {
    /// The digest of the definition the tool was imported with.
    pub fn imported_digest(&self) -> &str {
        &self.imported.expected_digest
    }

    /// The server's name in audit events and errors.
    pub fn server(&self) -> &str {
        self.source.label()
    }
}

impl fmt::Debug for McpTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.spec.name)
            .field("server", &self.source.label())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        let name = self.spec.name.as_str();
        // The pipeline refuses a withdrawn tool at the menu stage; this catches a withdrawal that
        // came between that check and the call.
        if let Some(withdrawn) = self.imported.withdrawn() {
            return Err(ToolError::Rejected(format!(
                "`{name}` was withdrawn ({}); it was not called",
                withdrawn.code
            )));
        }
        // The server checks every call itself; a call without a credential of its own would only
        // be refused there, or worse, ride on a connection's token. It is not sent.
        let Some(credential) = &invocation.credential else {
            return Err(ToolError::Rejected(format!(
                "`{name}` needs a credential for each call and this one has none; it was not sent"
            )));
        };
        let Value::Object(arguments) = input else {
            return Err(ToolError::Rejected("the arguments must be a JSON object".to_owned()));
        };
        let mut request = CallToolRequest::new(
            CallToolRequestParams::new(name.to_owned()).with_arguments(arguments),
        );
        let mut meta = RequestMetaObject::new();
        meta.insert(META_CALL_ID.to_owned(), Value::String(invocation.call_id.to_string()));
        if !invocation.evidence.is_empty() {
            let evidence = invocation.evidence.clone().into_iter().collect();
            meta.insert(META_EVIDENCE.to_owned(), Value::Object(evidence));
        }
        let connection = &self.source.connection;
        match connection.carrier {
            Carrier::Meta => {
                meta.insert(META_TOKEN.to_owned(), Value::String(credential.expose().to_owned()));
            }
            Carrier::Bearer => {
                request.extensions.insert(CallBearer(credential.clone()));
            }
        }
        match connection.send(ClientRequest::CallToolRequest(request), Some(meta)).await {
            Ok(ServerResult::CallToolResult(result)) => self.output(result),
            Ok(_) => Err(ToolError::Internal(format!(
                "`{}` answered a call of `{name}` with something other than a tool result",
                connection.label
            ))),
            Err(error) => Err(connection.failure(name, self.spec.effect, &error)),
        }
    }

    /// The withdrawal's code and sentence, once the server changed, duplicated or dropped the
    /// definition, or could no longer be listed: the pipeline then refuses every call at the
    /// menu stage (`tool_withdrawn`).
    fn withdrawn(&self) -> Option<String> {
        self.imported
            .withdrawn()
            .map(|withdrawn| format!("{}: {}", withdrawn.code, withdrawn.sentence))
    }
}

impl McpTool {
    /// The server's answer as the model will see it. An error from an untrusted server is not
    /// relayed word for word: it is text from outside the trust boundary, and unlike output it
    /// would not taint the task. Only a Warden refusal code passes.
    fn output(&self, result: CallToolResult) -> Result<ToolOutput, ToolError> {
        let text = text_of(&result);
        if result.is_error != Some(true) {
            return Ok(ToolOutput::text(text));
        }
        // Only a call the server says was refused (by its checks or by the tool's business rule)
        // did nothing; any other error may have happened after money moved, so it is a failure,
        // whose budget reservation stays spent.
        let rejected = result
            .structured_content
            .as_ref()
            .is_some_and(|content| content.get("rejected") == Some(&Value::Bool(true)));
        if !self.spec.untrusted_output {
            if rejected || refusal_code(&result).is_some() {
                return Err(ToolError::Rejected(text));
            }
            return Err(ToolError::Internal(format!(
                "`{}` reported a failure: {text}",
                self.source.connection.label
            )));
        }
        match refusal_code(&result) {
            Some(code) => Err(ToolError::Rejected(format!(
                "The tool server refused this call ({code}). It was not executed."
            ))),
            None => Err(ToolError::Internal(format!(
                "`{}` reported an error: {text}",
                self.source.connection.label
            ))),
        }
    }
}

impl Connection {
    /// Whether the connection is closed: cancelled here, or its transport gone.
    fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// The tools the server offers to this connection's token, every page of them.
    async fn list(&self) -> Result<Vec<OfferedTool>, SourceError> {
        let mut tools = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let request = ClientRequest::ListToolsRequest(ListToolsRequest {
                method: Default::default(),
                params: Some(PaginatedRequestParams::default().with_cursor(cursor)),
                extensions: Default::default(),
            });
            let token = match &self.listing_tokens {
                None => self.token.clone(),
                Some(mint) => mint().map_err(|error| {
                    self.list_failed(&format!("no fresh token to list with: {error}"))
                })?,
            };
            let (request, meta) = match self.carrier {
                Carrier::Meta => (request, Some(token_meta(&token))),
                Carrier::Bearer => (with_bearer(request, token), None),
            };
            let page = match self.send(request, meta).await {
                Ok(ServerResult::ListToolsResult(page)) => page,
                Ok(_) => return Err(self.list_failed("an answer that is not a tool list")),
                Err(_) if self.is_closed() => {
                    return Err(SourceError::Closed { server: self.label.clone() });
                }
                Err(error) => return Err(self.list_failed(&error.to_string())),
            };
            tools.extend(page.tools.into_iter().map(OfferedTool::from));
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(self.list_failed(&format!("more than {MAX_PAGES} pages")))
    }

    fn list_failed(&self, message: &str) -> SourceError {
        SourceError::Request {
            server: self.label.clone(),
            method: "tools/list",
            message: message.to_owned(),
        }
    }

    /// Sends one request and waits for its answer, bounded by the call timeout. rmcp enforces the
    /// timeout (and tells the server to cancel); the outer bound only guards against a request
    /// that cannot even be queued.
    async fn send(
        &self,
        request: ClientRequest,
        meta: Option<RequestMetaObject>,
    ) -> Result<ServerResult, ServiceError> {
        if self.is_closed() {
            return Err(ServiceError::TransportClosed);
        }
        let mut options = PeerRequestOptions::with_timeout(self.call_timeout);
        if let Some(meta) = meta {
            options = options.with_meta(meta);
        }
        let exchange = async {
            let handle = self.service.peer().send_request_with_option(request, options).await?;
            handle.await_response().await
        };
        let bound = self.call_timeout.saturating_add(Duration::from_secs(1));
        tokio::time::timeout(bound, exchange)
            .await
            .unwrap_or(Err(ServiceError::Timeout { timeout: self.call_timeout }))
    }

    /// A failed exchange as a tool error: the detail is for the audit log (the model is told only
    /// that the tool failed).
    fn failure(&self, tool: &str, effect: EffectClass, error: &ServiceError) -> ToolError {
        let server = &self.label;
        let unknown = match effect {
            EffectClass::Read => "",
            EffectClass::Write | EffectClass::Irreversible => {
                "; whether it ran is unknown, check before retrying"
            }
        };
        ToolError::Internal(match error {
            ServiceError::Timeout { timeout } => {
                format!(
                    "`{server}` did not answer the call of `{tool}` within {timeout:?}{unknown}"
                )
            }
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                format!("MCP server `{server}` is gone (the connection closed){unknown}")
            }
            other => format!("the call of `{tool}` on `{server}` failed: {other}{unknown}"),
        })
    }
}

/// A listing request whose HTTP bearer is `token` (the per-request client reads it from the
/// extensions, which are never serialized).
fn with_bearer(mut request: ClientRequest, token: Credential) -> ClientRequest {
    if let ClientRequest::ListToolsRequest(list) = &mut request {
        list.extensions.insert(CallBearer(token));
    }
    request
}

/// `_meta` carrying a token.
fn token_meta(token: &Credential) -> RequestMetaObject {
    let mut meta = RequestMetaObject::new();
    meta.insert(META_TOKEN.to_owned(), Value::String(token.expose().to_owned()));
    meta
}

/// The text of a result: its text blocks, other blocks as JSON, or the structured content when
/// there are no blocks.
fn text_of(result: &CallToolResult) -> String {
    let mut parts: Vec<String> = result
        .content
        .iter()
        .map(|block| match block.as_text() {
            Some(text) => text.text.clone(),
            None => serde_json::to_string(block).unwrap_or_default(),
        })
        .collect();
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    parts.join("\n")
}

/// A Warden server's refusal code (`{"refused": "scope_missing"}`), if the result is one. Only a
/// short `snake_case` word passes, so even a lying server can send nothing else this way.
fn refusal_code(result: &CallToolResult) -> Option<&str> {
    let code = result.structured_content.as_ref()?.get("refused")?.as_str()?;
    let word =
        (1..=40).contains(&code.len()) && code.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    word.then_some(code)
}
