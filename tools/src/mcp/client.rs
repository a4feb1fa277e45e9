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
//!   offering anything else under that name (a reworded description is the classic poisoning) is
//!   refused at import, and the drift is audited with both digests. [`McpToolSource::refresh`]
//!   lists the tools again and withdraws any imported tool whose definition changed since.
//! - Output is untrusted unless the menu says otherwise, so it taints the task that reads it; an
//!   untrusted server's error text is not shown to the model either.
//! - Each call forwards the invocation's own credential (a read's task token, a write's per-call
//!   token) in `_meta.warden_token` over stdio, as the bearer of that one request over HTTP, and is
//!   bounded by a timeout: a server that dies mid-task costs one prompt error, not a hung task.
//! - A server started by command runs with a cleared environment plus what the endpoint passes
//!   explicitly, so no secret in this process's environment reaches it.

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
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    ClientRequest, Implementation, ListToolsRequest, PaginatedRequestParams, RequestMetaObject,
    ServerResult,
};
use rmcp::service::{PeerRequestOptions, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

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

/// Options for a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SourceOptions {
    /// How long one call may take before it fails (default 30 s).
    pub call_timeout: Duration,
    /// How long connecting (spawning and the MCP handshake) may take (default 10 s).
    pub connect_timeout: Duration,
    /// Where pin drifts are recorded; without a log they go to `tracing` only.
    pub audit: Option<AuditLog>,
    /// The agent named in those records (default `mcp-import`).
    pub agent: AgentId,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            audit: None,
            agent: AgentId::new("mcp-import"),
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

/// An imported tool whose server no longer offers the definition it was imported with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// The tool.
    pub tool: String,
    /// `pin_mismatch` (the definition changed; the tool is withdrawn and every call refused) or
    /// `not_listed` (the server did not list it this time; calls still go to the server, which
    /// decides).
    pub code: &'static str,
    /// The digest it was imported with.
    pub expected_digest: String,
    /// The digest offered now, if it is offered.
    pub actual_digest: Option<String>,
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
    /// A request failed: the server is gone, timed out, or answered nonsense.
    #[error("MCP server `{server}` failed to answer `{method}`: {message}")]
    Request {
        /// The endpoint.
        server: String,
        /// The MCP method.
        method: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// A connection to one MCP server, from which tools are imported.
///
/// The token given at connection lists the tools (a server shows only what it grants) and, over
/// HTTP, authenticates the session; each call carries its own invocation's credential instead.
pub struct McpToolSource {
    connection: Arc<Connection>,
    imported: Mutex<Vec<Arc<Imported>>>,
    audit: Option<AuditLog>,
    agent: AgentId,
}

struct Connection {
    label: String,
    service: RunningService<RoleClient, ClientConfig>,
    carrier: Carrier,
    token: Credential,
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

/// The most pages of `tools/list` followed before giving up on a server.
const MAX_PAGES: usize = 64;

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
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("warden", env!("CARGO_PKG_VERSION")),
        );
        let connect_error =
            |message: String| SourceError::Connect { server: label.clone(), message };
        let service = tokio::time::timeout(options.connect_timeout, info.serve(transport))
            .await
            .map_err(|_| {
                connect_error(format!("no handshake within {:?}", options.connect_timeout))
            })?
            .map_err(|error| connect_error(error.to_string()))?;
        let connection =
            Connection { label, service, carrier, token, call_timeout: options.call_timeout };
        Ok(Self {
            connection: Arc::new(connection),
            imported: Mutex::default(),
            audit: options.audit,
            agent: options.agent,
        })
    }

    /// The server's name in audit events and errors.
    pub fn label(&self) -> &str {
        &self.connection.label
    }

    /// The tools the server offers to this connection's token, with their digests.
    pub async fn offered(&self) -> Result<Vec<OfferedTool>, SourceError> {
        let connection = &self.connection;
        let mut tools = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let request = ClientRequest::ListToolsRequest(ListToolsRequest {
                method: Default::default(),
                params: Some(PaginatedRequestParams::default().with_cursor(cursor)),
                extensions: Default::default(),
            });
            let meta = match connection.carrier {
                Carrier::Meta => Some(token_meta(&connection.token)),
                Carrier::Bearer => None,
            };
            let failed = |message: String| SourceError::Request {
                server: connection.label.clone(),
                method: "tools/list",
                message,
            };
            let page = match connection.send(request, meta).await {
                Ok(ServerResult::ListToolsResult(page)) => page,
                Ok(_) => return Err(failed("an answer that is not a tool list".to_owned())),
                Err(error) => return Err(failed(error.to_string())),
            };
            tools.extend(page.tools.into_iter().map(OfferedTool::from));
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(SourceError::Request {
            server: connection.label.clone(),
            method: "tools/list",
            message: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// Imports the tools `menu` names, and only those. An entry is refused (and the rest still
    /// imported) when the server does not offer it, offers it twice, offers a definition other
    /// than the pinned one (audited as `pin_mismatch`), or offers a schema that is not for an
    /// object; a menu naming a tool twice has its second entry refused.
    pub async fn import(&self, menu: &[ToolImport]) -> Result<Import, SourceError> {
        let offered = self.offered().await?;
        let mut import = Import::default();
        for (index, entry) in menu.iter().enumerate() {
            let name = entry.name.as_str();
            let refuse =
                |code, detail: String| ImportRefusal { tool: name.to_owned(), code, detail };
            if menu[..index].iter().any(|earlier| earlier.name == entry.name) {
                import.refused.push(refuse("duplicate", format!("`{name}` is on the menu twice")));
                continue;
            }
            let mut matching = offered.iter().filter(|tool| tool.name == name);
            let tool = match (matching.next(), matching.next()) {
                (Some(tool), None) => tool,
                (None, _) => {
                    let detail = format!("`{}` does not offer `{name}`", self.label());
                    import.refused.push(refuse("not_offered", detail));
                    continue;
                }
                (Some(_), Some(_)) => {
                    let detail = format!("`{}` offers two tools named `{name}`", self.label());
                    import.refused.push(refuse("ambiguous", detail));
                    continue;
                }
            };
            if let Some(pin) = entry.pin.as_deref().filter(|pin| *pin != tool.digest) {
                self.record_drift(name, pin, Some(&tool.digest), "import").await;
                let detail = format!(
                    "`{}` offers a definition of `{name}` other than the pinned one \
                     (pinned {pin}, offered {})",
                    self.label(),
                    tool.digest
                );
                import.refused.push(refuse("pin_mismatch", detail));
                continue;
            }
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
            self.imported
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&imported));
            import.tools.push(Arc::new(McpTool {
                spec: entry.spec(tool),
                imported,
                connection: Arc::clone(&self.connection),
            }));
        }
        Ok(import)
    }

    /// Lists the tools again and compares each imported tool with the definition it was imported
    /// with (its pin). A changed definition withdraws the tool for good (every later call is
    /// refused without reaching the server; import again after review) and is audited; a tool
    /// missing from the list is reported but not withdrawn (the listing token may have expired;
    /// the server still decides each call).
    pub async fn refresh(&self) -> Result<Vec<Withdrawal>, SourceError> {
        let offered = self.offered().await?;
        let imported = self.imported.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut changes = Vec::new();
        for tool in imported.iter().filter(|tool| tool.withdrawn().is_none()) {
            let current = offered.iter().find(|offer| offer.name == tool.name);
            match current {
                None => changes.push(Withdrawal {
                    tool: tool.name.clone(),
                    code: "not_listed",
                    expected_digest: tool.expected_digest.clone(),
                    actual_digest: None,
                }),
                Some(offer) if offer.digest != tool.expected_digest => {
                    tool.withdraw("pin_mismatch");
                    self.record_drift(
                        &tool.name,
                        &tool.expected_digest,
                        Some(&offer.digest),
                        "refresh",
                    )
                    .await;
                    changes.push(Withdrawal {
                        tool: tool.name.clone(),
                        code: "pin_mismatch",
                        expected_digest: tool.expected_digest.clone(),
                        actual_digest: Some(offer.digest.clone()),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(changes)
    }

    /// Closes the connection now (and, for a command, ends the server process), even while
    /// tools imported from it are still on a menu: their calls then fail as "server gone".
    /// Dropping the source and every tool imported from it closes it too.
    pub fn close(&self) {
        self.connection.service.cancellation_token().cancel();
    }

    async fn record_drift(&self, tool: &str, expected: &str, actual: Option<&str>, when: &str) {
        let reason = Reason::new(
            "pin_mismatch",
            format!("MCP server `{}` changed the definition of `{tool}`", self.label()),
        );
        tracing::warn!(target: "audit", server = %self.label(), tool, expected, actual, when, "MCP tool definition drifted");
        let Some(audit) = &self.audit else { return };
        let mut event = AuditEvent::for_task(
            &self.agent,
            std::slice::from_ref(&self.agent),
            &TaskId::new(format!("mcp-import:{}", self.label())),
            Stage::Menu,
            Verdict::Deny,
        )
        .with_reason(reason)
        .with_detail(json!({
            "server": self.label(),
            "when": when,
            "expected_digest": expected,
            "actual_digest": actual,
        }));
        event.tool = Some(tool.to_owned());
        event.guard = Some(PIN_CHECK.to_owned());
        if let Err(error) = audit.record(event, Commit::Durable).await {
            tracing::error!(target: "audit", %error, "an MCP pin drift was not recorded");
        }
    }
}

impl fmt::Debug for McpToolSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpToolSource")
            .field("server", &self.connection.label)
            .field("carrier", &self.connection.carrier)
            .finish_non_exhaustive()
    }
}

/// The name under which pin checks are audited.
const PIN_CHECK: &str = "mcp_pin";

/// What the source remembers of each imported tool.
struct Imported {
    name: String,
    expected_digest: String,
    withdrawn: Mutex<Option<&'static str>>,
}

impl Imported {
    fn withdrawn(&self) -> Option<&'static str> {
        *self.withdrawn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn withdraw(&self, code: &'static str) {
        *self.withdrawn.lock().unwrap_or_else(PoisonError::into_inner) = Some(code);
    }
}

/// A tool imported from an MCP server: calls go to the server with the invocation's credential.
pub struct McpTool {
    spec: ToolSpec,
    imported: Arc<Imported>,
    connection: Arc<Connection>,
}

impl McpTool {
    /// The digest of the definition the tool was imported with.
    pub fn imported_digest(&self) -> &str {
        &self.imported.expected_digest
    }

    /// The server's name in audit events and errors.
    pub fn server(&self) -> &str {
        &self.connection.label
    }
}

impl fmt::Debug for McpTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.spec.name)
            .field("server", &self.connection.label)
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
        if let Some(code) = self.imported.withdrawn() {
            return Err(ToolError::Rejected(format!(
                "`{name}` was withdrawn because its server changed it ({code}); it was not called"
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
        match self.connection.carrier {
            Carrier::Meta => {
                meta.insert(META_TOKEN.to_owned(), Value::String(credential.expose().to_owned()));
            }
            Carrier::Bearer => {
                request.extensions.insert(CallBearer(credential.clone()));
            }
        }
        match self.connection.send(ClientRequest::CallToolRequest(request), Some(meta)).await {
            Ok(ServerResult::CallToolResult(result)) => self.output(result),
            Ok(_) => Err(ToolError::Internal(format!(
                "`{}` answered a call of `{name}` with something other than a tool result",
                self.connection.label
            ))),
            Err(error) => Err(self.connection.failure(name, self.spec.effect, &error)),
        }
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
                self.connection.label
            )));
        }
        match refusal_code(&result) {
            Some(code) => Err(ToolError::Rejected(format!(
                "The tool server refused this call ({code}). It was not executed."
            ))),
            None => Err(ToolError::Internal(format!(
                "`{}` reported an error: {text}",
                self.connection.label
            ))),
        }
    }
}

impl Connection {
    /// Sends one request and waits for its answer, bounded by the call timeout. rmcp enforces the
    /// timeout (and tells the server to cancel); the outer bound only guards against a request
    /// that cannot even be queued.
    async fn send(
        &self,
        request: ClientRequest,
        meta: Option<RequestMetaObject>,
    ) -> Result<ServerResult, ServiceError> {
        if self.service.is_closed() {
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
