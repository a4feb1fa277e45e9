//! The refund bot assembled from its manifest: the desk, the tools (in this process or over MCP),
//! the keys and tokens, the guards, the approver and the audit log.
//!
//! [`Runtime::start`] is the one place where the agent's controls are put together, in the order
//! the pipeline runs them: the menu, the schema, the credential guard (the task token), the policy
//! guard (Cedar, with the budget), the approver, then the durable intent record; each write gets a
//! per-call token that the tool server checks again itself.

use crate::manifest::{ApprovalChannel, Manifest, ToolSource};
use crate::queue::QueueTicket;
use agent_core::approval::ScriptedAnswer;
use agent_core::audit::{Anchor, AuditLog, AuditStore, Checkpoints, JsonlSink, WitnessFile};
use agent_core::model::Model;
use agent_core::{Agent, AgentId, Approver, Pipeline, Scope, ScriptedApprover, Task, TaskId, Tool};
use agent_core::{Credential, ToolMenu};
use guards::approval::{TerminalApprover, WebConsole, WebConsoleConfig};
use guards::budget::BudgetStore;
use guards::credentials::{
    CallTokens, CredentialGuard, Issuer, KeyRing, Revocations, TaskGrant, TokenCheckedTool,
    Verifier,
};
use guards::notary::IssuerNotary;
use guards::policy::{PolicyBundle, PolicyGuard};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tools::Desk;
use tools::mcp::{McpEndpoint, McpToolServer, McpToolSource, SourceOptions, ToolImport};

/// What the command line (or a harness) chose, on top of the manifest.
#[derive(Clone, Default)]
pub struct Settings {
    /// Where the tools run (`--tools`), else the manifest's choice.
    pub tools: Option<ToolSource>,
    /// Another database of the desk's shape (`--db`), else the manifest's.
    pub database: Option<PathBuf>,
    /// Who answers approvals (`--approver`), else the manifest's channel.
    pub approver: Option<ApprovalChannel>,
    /// Where the audit log goes (`--audit-log`), else a new file in the manifest's audit dir.
    pub audit_log: Option<PathBuf>,
    /// The budget ledger (`--ledger`), else the manifest's.
    pub ledger: Option<PathBuf>,
    /// A reviewer to ask instead of any channel: the eval harness's scripted human.
    pub reviewer: Option<Arc<dyn Approver>>,
    /// What an MCP server offers instead of the desk's own tools: the eval harness serves
    /// drifted definitions to prove that pinning refuses them.
    pub served_tools: Option<ServeTools>,
    /// The controls: enforced, unless a harness turns them off for a positive control.
    pub controls: Controls,
}

/// Makes the tools an MCP server offers over a desk.
pub type ServeTools = Arc<dyn Fn(&Desk) -> Vec<Arc<dyn Tool>> + Send + Sync>;

/// Whether the runtime's controls are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Controls {
    /// Every control the manifest describes.
    #[default]
    Enforced,
    /// DANGER: every desk tool on the menu, no guard but an allow-all, no approvals, no token
    /// checks. Only for the eval harness's positive controls, which must show that an attack
    /// works when nothing stops it (otherwise a broken scenario would pass as a stopped attack).
    DangerouslyOff,
}

/// The running refund bot.
pub struct Runtime {
    /// The manifest it was built from.
    pub manifest: Manifest,
    /// The desk (in this process, or the one the in-process MCP HTTP server serves).
    pub desk: Desk,
    /// Where the tools run.
    pub source: ToolSource,
    /// The pipeline every call goes through.
    pub pipeline: Arc<Pipeline>,
    /// Mints the task tokens.
    pub issuer: Arc<Issuer>,
    /// The hash-chained audit log, the source of truth.
    pub audit_path: PathBuf,
    /// The SQLite query store mirrored from it.
    pub store_path: PathBuf,
    /// The approval channel in use, for the transcript.
    pub approver: ApprovalChannel,
    /// The revocation list every verifier here consults: revoke a task to stop it mid-flight.
    pub revocations: Arc<Revocations>,
    /// Menu tools an MCP server offered in a form other than the reviewed one, each with the
    /// reason code (`pin_mismatch`, `not_offered`, …): they are off the menu for this run.
    pub refused_tools: Vec<(String, String)>,
    /// Names this run: task ids are `<ticket>@<run>`, so that a persistent ledger never mistakes
    /// this run's work on a ticket for another run's (the demo replays its queue on a freshly
    /// seeded desk), while the per-customer and per-agent daily caps hold across runs.
    pub run_id: String,
    /// Where the stdio child keeps the desk's state.
    state_path: PathBuf,
    /// Keeps an MCP connection or server alive for the run.
    _mcp: Option<McpSession>,
}

/// An MCP connection (and the HTTP server, when it runs here) that lives as long as the runtime.
struct McpSession {
    source: McpToolSource,
    server: Option<tools::mcp::HttpServer>,
    /// Menu tools refused at import, with the reason code.
    refused: Vec<(String, String)>,
}

impl Drop for McpSession {
    fn drop(&mut self) {
        self.source.close();
        // The HTTP server stops with the runtime; its task is aborted when the handle drops.
        drop(self.server.take());
    }
}

/// The tools the desk offers, with the scope each requires, for validating a manifest.
pub fn offered_tools() -> Vec<(String, String)> {
    tools::all_tools(&Desk::default())
        .iter()
        .map(|tool| (tool.spec().name.to_string(), tool.spec().required_scope.to_string()))
        .collect()
}

impl Runtime {
    /// Builds everything the manifest describes. Any error stops the start: nothing runs with a
    /// control missing.
    pub async fn start(
        manifest: Manifest,
        settings: Settings,
        tickets: &[QueueTicket],
    ) -> Result<Self, String> {
        let audit_dir = &manifest.audit.dir;
        std::fs::create_dir_all(audit_dir)
            .map_err(|e| format!("cannot create `{}`: {e}", audit_dir.display()))?;
        let audit_path = match settings.audit_log {
            Some(path) => path,
            None => new_log_path(audit_dir),
        };
        if let Some(parent) = audit_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        remember_latest(audit_dir, &audit_path);

        // The signing keys live beside the log they sign for: runs with their own logs (tests,
        // evals) never share a key directory. Every directory from the keys up to the audit dir
        // (or up to the log's own directory, for a log kept elsewhere) must be safe from others.
        let key_dir = key_dir(&audit_path);
        let log_dir = audit_path.parent().unwrap_or(Path::new("."));
        let trusted_root =
            if log_dir.starts_with(audit_dir) { audit_dir.as_path() } else { log_dir };
        let keys = KeyRing::open_within(trusted_root, &key_dir, now_seconds())
            .map_err(|e| e.to_string())?;
        let issuer =
            Arc::new(Issuer::new(&manifest.credentials.issuer, keys).map_err(|e| e.to_string())?);
        let revocations = Arc::new(Revocations::new());
        let verifier = || {
            issuer.verifier().map(|verifier| {
                Arc::new(
                    verifier
                        .with_revocations(Arc::clone(&revocations))
                        .with_leeway(manifest.credentials.leeway_seconds),
                )
            })
        };
        let database = settings.database.clone().unwrap_or_else(|| manifest.tools.database.clone());
        let desk = Desk::load(&database).map_err(|e| e.to_string())?;
        for ticket in tickets {
            desk.file_ticket(filed(ticket));
        }
        // Over stdio the desk lives in a child process, which keeps its state in this file (saved
        // after every write) so that the checks here can read what it did.
        let state_path = audit_path.with_extension("desk.json");
        let source = settings.tools.unwrap_or(manifest.tools.source);
        if source == ToolSource::McpStdio {
            desk.save(&state_path).map_err(|e| e.to_string())?;
        }

        // The log signs its head with the issuer's key (the key of the JWK set it publishes), and
        // keeps the latest signed head in its witness, apart from the logs, and in the store.
        let store_path = audit_path.with_extension("sqlite");
        let store = Arc::new(AuditStore::open(&store_path).map_err(|e| e.to_string())?);
        let checkpoints = Checkpoints::new(Arc::new(IssuerNotary::new(Arc::clone(&issuer))))
            .with_policy(manifest.audit.checkpoints)
            .with_anchor(Arc::new(witness_for(&manifest, &audit_path)))
            .with_anchor(Arc::clone(&store) as Arc<dyn Anchor>);
        let sink = JsonlSink::open_signed(&audit_path, manifest.audit.fsync, checkpoints)
            .map_err(|e| e.to_string())?;
        let audit = AuditLog::new(Arc::new(sink)).with_mirror(store);

        if settings.controls == Controls::DangerouslyOff {
            let pipeline = dangerously_unguarded(&desk, audit)?;
            return Ok(Self {
                manifest,
                desk,
                source: ToolSource::InProcess,
                pipeline: Arc::new(pipeline),
                issuer,
                audit_path,
                store_path,
                approver: ApprovalChannel::Approve,
                revocations,
                refused_tools: Vec::new(),
                run_id: run_id(),
                state_path,
                _mcp: None,
            });
        }
        let server_verifier = verifier().map_err(|e| e.to_string())?;
        let served = settings.served_tools.clone();
        let tool_server = ToolServer { verifier: server_verifier, served, state_path: &state_path };
        let (menu_tools, mcp) =
            menu_tools(&manifest, &desk, &issuer, tool_server, source, audit.clone()).await?;
        let refused_tools = mcp.as_ref().map(|session| session.refused.clone()).unwrap_or_default();
        let menu = ToolMenu::new(menu_tools).map_err(|e| e.to_string())?;

        // The Cedar rules, validated against their schema, with their test cases run: a broken
        // policy stops the start here, never lets a call through.
        let bundle = PolicyBundle::load(&manifest.policy).map_err(|e| e.to_string())?;
        // Every menu tool has an action, filed under the effect its spec declares: a rule about
        // writes covers every tool the budgets and tokens treat as a write.
        bundle.check_menu(menu.specs()).map_err(|e| e.to_string())?;
        // One ledger per deployment, named in the manifest: it outlives this process, and other
        // processes on this machine that share it wait for SQLite's write lock.
        let ledger = settings.ledger.clone().unwrap_or_else(|| manifest.ledger.clone());
        if let Some(parent) = ledger.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        let budget = Arc::new(BudgetStore::open(&ledger).map_err(|e| e.to_string())?);
        let policy = PolicyGuard::new(Arc::new(bundle), Arc::new(desk.clone()))
            .with_budget(budget, manifest.budget);
        let verifier = verifier().map_err(|e| e.to_string())?;
        let audience = manifest.credentials.audience.clone();
        let (approver, approver_in_use) = match &settings.reviewer {
            Some(reviewer) => (Arc::clone(reviewer), ApprovalChannel::Approve),
            None => {
                let choice = settings.approver.unwrap_or(manifest.approval.channel);
                approver(choice, &manifest).await?
            }
        };
        let pipeline = Pipeline::new(Arc::new(menu), audit)
            .with_guard(Arc::new(CredentialGuard::new(verifier, &audience)))
            .with_guard(Arc::new(policy))
            .with_approver(approver, manifest.approval.timeout)
            .with_approval_limit(manifest.approval.max_requests_per_task)
            .with_size_limits(manifest.sizes)
            .with_notary(Arc::new(IssuerNotary::new(Arc::clone(&issuer))))
            .with_call_credentials(Arc::new(CallTokens::new(Arc::clone(&issuer), &audience)));
        Ok(Self {
            manifest,
            desk,
            source,
            pipeline: Arc::new(pipeline),
            issuer,
            audit_path,
            store_path,
            approver: approver_in_use,
            revocations,
            refused_tools,
            run_id: run_id(),
            state_path,
            _mcp: mcp,
        })
    }

    /// The agent the manifest describes, thinking with `model`.
    pub fn agent(&self, model: Arc<dyn Model>) -> Agent {
        Agent::builder(AgentId::new(&self.manifest.agent.id), model, Arc::clone(&self.pipeline))
            .system_prompt(&self.manifest.agent.system_prompt)
            .limits(self.manifest.agent.limits)
            .build()
    }

    /// The desk as it is now, wherever the tools run: for the checks after a ticket.
    pub fn desk_now(&self) -> Result<Desk, String> {
        match self.source {
            ToolSource::McpStdio => Desk::load(&self.state_path).map_err(|e| e.to_string()),
            ToolSource::InProcess | ToolSource::McpHttp => Ok(self.desk.clone()),
        }
    }

    /// The task for one ticket (filed in the desk's queue at the start), with its own
    /// short-lived token for this agent, this task and this customer, carrying the manifest's
    /// scopes and nothing else.
    pub fn task(&self, ticket: &QueueTicket) -> Result<Task, String> {
        let task_id = self.task_id(&ticket.id);
        let token = self.mint(&task_id, Some(&ticket.customer))?;
        let text = format!("Subject: {}\n\n{}", ticket.subject, ticket.body);
        Ok(Task::new(
            task_id.as_str(),
            format!("Resolve ticket {} from customer {}.", ticket.id, ticket.customer),
        )
        .on_behalf_of(ticket.customer.as_str())
        .untrusted_input("ticket", text)
        .credential(token))
    }

    /// Closes the audit log cleanly: the seal (the signed final head) is written, made durable
    /// and given to the witness. A run that ends without it verifies as "not sealed".
    pub fn close(&self) -> Result<(), String> {
        self.pipeline.audit().close().map(|_| ()).map_err(|e| e.to_string())
    }

    /// The task id of this run's work on `ticket`.
    pub fn task_id(&self, ticket: &str) -> String {
        format!("{ticket}@{}", self.run_id)
    }

    fn mint(&self, task: &str, customer: Option<&str>) -> Result<Credential, String> {
        mint(&self.issuer, &self.manifest, task, customer, self.manifest.credentials.token_lifetime)
    }
}

/// DANGER: a pipeline with every desk tool on the menu and one allow-all guard, for
/// [`Controls::DangerouslyOff`]. The audit log still records every call.
fn dangerously_unguarded(desk: &Desk, audit: AuditLog) -> Result<Pipeline, String> {
    let menu = ToolMenu::new(tools::all_tools(desk)).map_err(|e| e.to_string())?;
    Ok(Pipeline::new(Arc::new(menu), audit)
        .with_guard(Arc::new(agent_core::danger::DangerousAllowAll::named("controls_off"))))
}

/// A queue ticket as the desk files it.
fn filed(ticket: &QueueTicket) -> tools::records::Ticket {
    tools::records::Ticket {
        ticket_id: ticket.id.clone(),
        user_id: ticket.customer.clone(),
        subject: ticket.subject.clone(),
        body: ticket.body.clone(),
        status: tools::records::TicketStatus::Open,
        replies: Vec::new(),
        extra: serde_json::Map::new(),
    }
}

fn mint(
    issuer: &Issuer,
    manifest: &Manifest,
    task: &str,
    customer: Option<&str>,
    lifetime: Duration,
) -> Result<Credential, String> {
    let scopes = manifest
        .credentials
        .scopes
        .iter()
        .map(|scope| Scope::new(scope).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    issuer
        .mint_task(&TaskGrant {
            agent: AgentId::new(&manifest.agent.id),
            task: TaskId::new(task),
            audience: vec![manifest.credentials.audience.clone()],
            scopes,
            on_behalf_of: customer.map(str::to_owned),
            lifetime: Some(lifetime),
        })
        .map_err(|e| e.to_string())
}

/// The menu's tools from where the manifest (or `--tools`) says they run.
/// The tool server's side: its verifier, what it offers, and (over stdio) its state file.
struct ToolServer<'a> {
    verifier: Arc<Verifier>,
    served: Option<ServeTools>,
    state_path: &'a Path,
}

async fn menu_tools(
    manifest: &Manifest,
    desk: &Desk,
    issuer: &Arc<Issuer>,
    server: ToolServer<'_>,
    source: ToolSource,
    audit: AuditLog,
) -> Result<(Vec<Arc<dyn Tool>>, Option<McpSession>), String> {
    let ToolServer { verifier: server_verifier, served, state_path } = server;
    let audience = &manifest.credentials.audience;
    let local: Vec<Arc<dyn Tool>> =
        manifest.tools.menu.iter().filter_map(|name| tools::tool(desk, name)).collect();
    match source {
        ToolSource::InProcess => {
            // Defence in depth: each tool checks the call's token itself, as a server would.
            let verifier = server_verifier;
            let checked = local
                .into_iter()
                .map(|tool| {
                    Arc::new(
                        TokenCheckedTool::new(tool, Arc::clone(&verifier), audience.as_str())
                            .with_owners(Arc::new(desk.clone())),
                    ) as Arc<dyn Tool>
                })
                .collect();
            Ok((checked, None))
        }
        ToolSource::McpHttp => {
            let offered = match served {
                Some(serve) => serve(desk),
                None => tools::all_tools(desk),
            };
            let server = McpToolServer::new(offered, server_verifier, audience.as_str(), None)
                .map_err(|e| e.to_string())?
                .with_owners(Arc::new(desk.clone()));
            let listening = server
                .serve_http(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| e.to_string())?;
            let endpoint = McpEndpoint::url(listening.url());
            let (tools, source, refused) =
                import(manifest, issuer, &local, &endpoint, audit).await?;
            Ok((tools, Some(McpSession { source, server: Some(listening), refused })))
        }
        ToolSource::McpStdio => {
            let program = std::env::current_exe().map_err(|e| e.to_string())?;
            let jwks = key_dir(state_path).join("jwks.json");
            let endpoint = McpEndpoint::command(program)
                .arg("serve-desk")
                .arg("--jwks")
                .arg(jwks.display().to_string())
                .arg("--issuer")
                .arg(&manifest.credentials.issuer)
                .arg("--audience")
                .arg(audience)
                .arg("--state")
                .arg(state_path.display().to_string());
            let (tools, source, refused) =
                import(manifest, issuer, &local, &endpoint, audit).await?;
            Ok((tools, Some(McpSession { source, server: None, refused })))
        }
    }
}

/// Imports the menu from an MCP server, each tool pinned to the definition the desk declares
/// here, with the scope, effect, record and money declared here (never the server's word). A tool
/// whose definition the server changed (a rug pull) is refused: it stays off the menu, the
/// refusal is in the audit log, and the run goes on without it.
async fn import(
    manifest: &Manifest,
    issuer: &Arc<Issuer>,
    local: &[Arc<dyn Tool>],
    endpoint: &McpEndpoint,
    audit: AuditLog,
) -> Result<(Vec<Arc<dyn Tool>>, McpToolSource, Vec<(String, String)>), String> {
    // The session's token only lists tools (each call carries its own token). The source re-lists
    // all session long, each time with a fresh short-lived token: one that expired would see
    // nothing and withdraw every tool.
    let lifetime = manifest.credentials.token_lifetime;
    let token = mint(issuer, manifest, "mcp-session", None, lifetime)?;
    let listing = {
        let (issuer, manifest) = (Arc::clone(issuer), manifest.clone());
        move || mint(&issuer, &manifest, "mcp-session", None, lifetime)
    };
    let options = SourceOptions::default()
        .audit(audit, AgentId::new(&manifest.agent.id))
        .renew_listing_token(Arc::new(listing));
    let source =
        McpToolSource::connect(endpoint, token, options).await.map_err(|e| e.to_string())?;
    let imports: Vec<ToolImport> = local.iter().map(|tool| declared_import(tool.spec())).collect();
    let import = source.import(&imports).await.map_err(|e| e.to_string())?;
    for refused in &import.refused {
        tracing::warn!(?refused, "an MCP tool was refused at import and is off the menu");
    }
    let refused = import
        .refused
        .iter()
        .map(|refusal| (refusal.tool.clone(), refusal.code.to_owned()))
        .collect();
    Ok((import.tools, source, refused))
}

/// What the operator declares about a desk tool imported over MCP: everything the local
/// declaration says, pinned to its exact definition.
fn declared_import(spec: &agent_core::ToolSpec) -> ToolImport {
    ToolImport::declared_as(spec)
}

/// The approval channel, and which one that turned out to be.
async fn approver(
    choice: ApprovalChannel,
    manifest: &Manifest,
) -> Result<(Arc<dyn Approver>, ApprovalChannel), String> {
    use std::io::IsTerminal;
    let choice = match choice {
        ApprovalChannel::Auto
            if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() =>
        {
            ApprovalChannel::Terminal
        }
        ApprovalChannel::Auto => {
            eprintln!(
                "note: no terminal to ask a reviewer on, so approval requests are answered no \
                 (pass --approver approve, terminal or web to choose)"
            );
            ApprovalChannel::Deny
        }
        other => other,
    };
    let approver: Arc<dyn Approver> = match choice {
        ApprovalChannel::Approve => Arc::new(ScriptedApprover::new(ScriptedAnswer::Approve)),
        ApprovalChannel::Deny | ApprovalChannel::Auto => {
            Arc::new(ScriptedApprover::new(ScriptedAnswer::Deny))
        }
        ApprovalChannel::Terminal => Arc::new(TerminalApprover::open().map_err(|e| e.to_string())?),
        ApprovalChannel::Web => web_console(manifest).await?,
    };
    Ok((approver, choice))
}

/// Starts the web approval console on loopback with a fresh reviewer token, and says where.
async fn web_console(manifest: &Manifest) -> Result<Arc<dyn Approver>, String> {
    let mut secret = [0u8; 24];
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| "no randomness for a reviewer token".to_owned())?;
    let reviewer_token: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
    let config = WebConsoleConfig {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        reviewer_token: reviewer_token.clone(),
        reviewer_name: "demo-reviewer".to_owned(),
    };
    let (console, address) = WebConsole::start(config).await.map_err(|e| e.to_string())?;
    eprintln!(
        "approval console at http://{address}/ (reviewer token: {reviewer_token}); requests wait \
         {} s for an answer",
        manifest.approval.timeout.as_secs()
    );
    Ok(console)
}

/// A run id, unique across processes and across runtimes of one process (tests and harnesses
/// start several in one millisecond), so that no two runs share task ids on one ledger.
fn run_id() -> String {
    agent_core::ids::unique_suffix()
}

/// A fresh log file in `dir`, named by the time.
fn new_log_path(dir: &Path) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    dir.join(format!("audit-{stamp}.jsonl"))
}

/// Where the keys for the log at `log` live: `keys/` beside it.
fn key_dir(log: &Path) -> PathBuf {
    log.parent().unwrap_or(Path::new(".")).join("keys")
}

/// The JWK set to verify the log at `log` with: every key that ever signed for it
/// (`keys/audit-jwks.json`, which keeps pruned keys).
pub fn audit_jwks_for(log: &Path) -> PathBuf {
    key_dir(log).join("audit-jwks.json")
}

/// The witness of the log at `log`: in the manifest's witness dir for a log in the audit dir,
/// and in `witness/` beside a log kept elsewhere (a test's, an eval's), as its keys are.
pub fn witness_for(manifest: &Manifest, log: &Path) -> WitnessFile {
    let log_dir = log.parent().unwrap_or(Path::new("."));
    if log_dir.starts_with(&manifest.audit.dir) {
        WitnessFile::for_log(&manifest.audit.witness_dir, log)
    } else {
        WitnessFile::for_log(log_dir.join("witness"), log)
    }
}

/// The file in the audit dir naming the latest log, for `refund-bot audit` without a path.
pub const LATEST: &str = "latest";

/// Records `log` as the latest; losing this pointer loses nothing but a default.
fn remember_latest(dir: &Path, log: &Path) {
    let absolute = std::path::absolute(log).unwrap_or_else(|_| log.to_owned());
    if let Err(error) = std::fs::write(dir.join(LATEST), absolute.display().to_string()) {
        tracing::warn!(%error, "cannot record the latest audit log");
    }
}

/// The latest audit log the demo wrote under the manifest's audit dir.
pub fn latest_log(audit_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(audit_dir.join(LATEST)).ok()?;
    Some(PathBuf::from(text.trim()))
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Serves the desk over MCP on stdin and stdout: the child side of `--tools mcp-stdio`. The desk
/// is loaded from `--state` and saved back there after every write that changed it.
pub async fn serve_desk(args: &[String]) -> Result<(), String> {
    let value = |flag: &str| -> Result<String, String> {
        let at = args.iter().position(|arg| arg == flag).ok_or(format!("`{flag}` is required"))?;
        args.get(at + 1).cloned().ok_or(format!("`{flag}` needs a value"))
    };
    let jwks = PathBuf::from(value("--jwks")?);
    let verifier =
        Verifier::from_jwks_file(value("--issuer")?, &jwks).map_err(|e| e.to_string())?;
    let state = PathBuf::from(value("--state")?);
    let desk = Desk::load(&state).map_err(|e| e.to_string())?;
    let tools = tools::all_tools(&desk)
        .into_iter()
        .map(|tool| {
            Arc::new(SavedAfterWrites { inner: tool, desk: desk.clone(), path: state.clone() })
                as Arc<dyn Tool>
        })
        .collect();
    let server = McpToolServer::new(tools, Arc::new(verifier), value("--audience")?, None)
        .map_err(|e| e.to_string())?
        .with_owners(Arc::new(desk.clone()));
    server.serve_stdio().await.map_err(|e| e.to_string())
}

/// A desk tool whose successful writes are saved to the state file before the result returns.
struct SavedAfterWrites {
    inner: Arc<dyn Tool>,
    desk: Desk,
    path: PathBuf,
}

#[async_trait::async_trait]
impl Tool for SavedAfterWrites {
    fn spec(&self) -> &agent_core::ToolSpec {
        self.inner.spec()
    }

    async fn call(
        &self,
        input: serde_json::Value,
        invocation: &agent_core::tool::Invocation,
    ) -> Result<agent_core::ToolOutput, agent_core::ToolError> {
        let output = self.inner.call(input, invocation).await?;
        if self.inner.spec().effect != agent_core::EffectClass::Read {
            // A write that cannot be saved is reported as failed: the state file must not lag.
            self.desk
                .save(&self.path)
                .map_err(|e| agent_core::ToolError::Internal(e.to_string()))?;
        }
        Ok(output)
    }
}
