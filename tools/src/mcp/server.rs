//! The MCP server: Warden tools served over MCP, every call checked against a Warden token.
//!
//! A tool server cannot trust its caller's runtime to have checked anything, so it checks for
//! itself. Each `tools/call` goes, in this order, through:
//!
//! 1. **Who is calling.** The token is the HTTP bearer (already verified by the middleware in
//!    [`http`](super::http)) or, over stdio, `_meta.warden_token`. No token, or one that fails
//!    verification (signature, issuer, audience, expiry, revocation), is refused here and audited;
//!    nothing about the tools is revealed to such a caller.
//! 2. **The server's own [`Pipeline`]**, built over the tools: menu (is it a tool here?), schema
//!    (the input is validated before anything else sees it), then one guard, `mcp_server`, that
//!    re-checks the token for this tool: a read accepts the task token, a write or irreversible
//!    call only a per-call token bound to this tool and these exact arguments, spent once
//!    ([`Verifier::verify_call`]); either way the token must grant the tool's scope. On a server
//!    bound to its records' owners ([`McpToolServer::with_owners`], as
//!    [`McpToolServer::for_desk`] is), the same guard then checks whose data the call touches: the
//!    record the tool declares (`ToolSpec::resource`) must be owned by the customer the token
//!    serves (`on_behalf_of`), or the call is refused `wrong_owner`, reads and writes alike
//!    ([`OwnerBinding`]). Then the durable intent record, and only then
//!    [`ToolMenu::invoke`](agent_core::ToolMenu::invoke).
//!
//! Running the pipeline is not a convenience: in Warden a tool runs only with an
//! [`Authorized`](agent_core::Authorized) call, and the pipeline is the only thing that makes one.
//! Every verdict is an audit event (stage `guard`, guard `mcp_server`, the token's `jti`, never the
//! token). Without an audit log the events still reach `tracing` (target `audit`).
//!
//! A refusal is an MCP tool error (`isError: true`) whose text names the reason code
//! (`no_credential`, `scope_missing`, `args_mismatch`, `replayed`, `expired`, `wrong_owner`, …)
//! and whose `structuredContent` is `{"refused": code}`; the detail (for `wrong_owner`, the
//! token's customer and the record's owner) stays in the audit log.

use super::http::HttpBearer;
use super::{META_CALL_ID, META_EVIDENCE, META_TOKEN};
use agent_core::audit::{
    AuditError, AuditEvent, AuditLog, AuditSink, Commit, SealedEvent, Stage, Verdict,
};
use agent_core::pipeline::CallRequest;
use agent_core::tool::ToolError;
use agent_core::{
    AgentId, CallContext, CallCredentials, CallId, Credential, Decision, EffectClass, Guard,
    Pipeline, ProposedCall, Reason, TaskId, Tool, ToolMenu, ToolSpec, canonical, menu::MenuError,
};
use async_trait::async_trait;
use axum::http::request::Parts;
use guards::credentials::{
    Claims, CredentialError, OwnerBinding, OwnerResolver, Rejection, Verifier,
};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, ListToolsResult, PaginatedRequestParams, RequestMetaObject, ServerCapabilities,
    ServerConfig, ToolAnnotations,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};

/// The guard name under which the server's token check is audited.
pub const GUARD_NAME: &str = "mcp_server";

/// Serves a list of Warden tools over MCP. Cheap to clone: clones share one pipeline.
#[derive(Clone)]
pub struct McpToolServer {
    inner: Arc<Inner>,
}

struct Inner {
    pipeline: Pipeline,
    verifier: Arc<Verifier>,
    audience: String,
    audit: AuditLog,
}

/// Why a server session could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The MCP session did not start (the client hung up or spoke something else).
    #[error("the MCP session did not start: {0}")]
    Start(String),
    /// The session's task failed.
    #[error("the MCP session ended abnormally: {0}")]
    Ended(String),
    /// The HTTP listener could not be opened.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl McpToolServer {
    /// A server for `tools`, accepting tokens that `verifier` verifies for `audience` (the name
    /// this server has in tokens' `aud`). With an `audit` log, every call's verdicts are recorded
    /// there; without one they go to `tracing` only.
    ///
    /// This server checks tokens, not whose data a call touches: a server of customers' records
    /// must also be bound to their owners ([`with_owners`](Self::with_owners)), or a valid token
    /// for one customer reads another's. The desk's server is [`for_desk`](Self::for_desk).
    ///
    /// Fails like [`ToolMenu::new`]: two tools with one name, or an input schema that is not a
    /// JSON Schema for an object.
    pub fn new(
        tools: Vec<Arc<dyn Tool>>,
        verifier: Arc<Verifier>,
        audience: impl Into<String>,
        audit: Option<AuditLog>,
    ) -> Result<Self, MenuError> {
        let audience = audience.into();
        let audit = audit.unwrap_or_else(|| AuditLog::new(Arc::new(TracingOnly::default())));
        let menu = Arc::new(ToolMenu::new(tools)?);
        Ok(Self::assemble(menu, verifier, audience, audit, None))
    }

    /// This server, also refusing every call whose record (the tool's `resource`) is not owned by
    /// the customer its token serves, as `owners` tells from the server's own data: reads and
    /// writes alike, and any owned record for a token that serves no customer. The refusal is the
    /// tool error `wrong_owner`, an audit event of the server's (guard `mcp_server`, with the
    /// token's `jti`, its customer and the owner) and a `tracing` event (target `audit`).
    #[must_use]
    pub fn with_owners(self, owners: Arc<dyn OwnerResolver>) -> Self {
        let Inner { pipeline, verifier, audience, audit, .. } = &*self.inner;
        let menu = Arc::clone(pipeline.menu());
        let binding = Some(OwnerBinding::new(owners));
        Self::assemble(menu, Arc::clone(verifier), audience.clone(), audit.clone(), binding)
    }

    /// The audience this server verifies tokens for.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Serves one client on this process's stdin and stdout until the client hangs up.
    pub async fn serve_stdio(self) -> Result<(), ServeError> {
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|error| ServeError::Start(error.to_string()))?;
        running.waiting().await.map_err(|error| ServeError::Ended(error.to_string()))?;
        Ok(())
    }

    /// Serves one client on a byte stream (a pipe, a socket, `tokio::io::duplex` in tests),
    /// tokens in `_meta` as over stdio. The session runs until either side closes it; drop or
    /// [`cancel`](RunningService::cancel) the returned handle to stop it.
    pub async fn serve_stream<T>(
        self,
        io: T,
    ) -> Result<RunningService<RoleServer, Self>, ServeError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.serve(io).await.map_err(|error| ServeError::Start(error.to_string()))
    }

    pub(crate) fn verifier(&self) -> &Arc<Verifier> {
        &self.inner.verifier
    }

    /// The server's pipeline over `menu`: the token check (and, with `owners`, whose data) is its
    /// one guard.
    fn assemble(
        menu: Arc<ToolMenu>,
        verifier: Arc<Verifier>,
        audience: String,
        audit: AuditLog,
        owners: Option<OwnerBinding>,
    ) -> Self {
        let check =
            TokenCheck { verifier: Arc::clone(&verifier), audience: audience.clone(), owners };
        let pipeline = Pipeline::new(menu, audit.clone())
            .with_guard(Arc::new(check))
            .with_call_credentials(Arc::new(PresentedToken));
        Self { inner: Arc::new(Inner { pipeline, verifier, audience, audit }) }
    }

    pub(crate) fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }
}

impl std::fmt::Debug for McpToolServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpToolServer")
            .field("audience", &self.inner.audience)
            .field("menu", self.inner.pipeline.menu())
            .finish_non_exhaustive()
    }
}

impl ServerHandler for McpToolServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("warden-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Every call needs a Warden token: the bearer header over HTTP, `_meta.warden_token` \
                 over stdio. Writes need a per-call token bound to the tool and its arguments.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // A caller sees only what its token lets it call; without a valid token, nothing.
        let tools = match self.inner.identify(presented(&context)) {
            Ok((_, claims)) => self
                .inner
                .pipeline
                .menu()
                .specs()
                .filter(|spec| claims.grants(&spec.required_scope))
                .map(mcp_tool)
                .collect(),
            Err(_) => Vec::new(),
        };
        // The list depends on the caller's token: no one may cache it for anyone else.
        Ok(ListToolsResult {
            ttl_ms: Some(0),
            cache_scope: Some(CacheScope::Private),
            ..ListToolsResult::with_all_items(tools)
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResponse::Complete(self.inner.call(request, &context).await))
    }
}

impl Inner {
    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let input = Value::Object(request.arguments.unwrap_or_default());
        // The caller's call id is its claim, kept as an attribute: the pipeline mints ours.
        let mut call = CallRequest::new(request.name.into_owned(), input);
        call.proposer_id = caller_call_id(&context.meta);

        // 1. Who is calling: nothing else happens for a caller who cannot prove it.
        let (credential, claims) = match self.identify(presented(context)) {
            Ok(identity) => identity,
            Err(rejection) => {
                self.record_unidentified(&call, &rejection).await;
                return refused(rejection.code());
            }
        };

        // 2. The pipeline, as that caller: menu, schema, the token check for this tool, intent.
        let mut ctx = CallContext::new(AgentId::new(claims.actor()), TaskId::new(&*claims.task));
        ctx.chain = claims.chain();
        ctx.on_behalf_of = claims.on_behalf_of.clone();
        ctx.serves = claims.serves.iter().map(TaskId::new).collect();
        ctx.credential = Some(credential);
        let authorized = match self.pipeline.authorize(&call, &ctx).await {
            Ok(authorized) => authorized,
            Err(denied) => return refused(&denied.reason.code),
        };
        // What the caller's guards found (a hand-off's unvouched mentions) reaches the tool as
        // information; the server's own checks above decided whether it runs.
        let authorized = match context.meta.get(META_EVIDENCE).and_then(Value::as_object) {
            Some(evidence) => authorized.with_forwarded_evidence(evidence.clone()),
            None => authorized,
        };
        match self.pipeline.menu().invoke(authorized).await {
            Ok(output) => CallToolResult::success(vec![ContentBlock::text(output.content)]),
            Err(error) => tool_failed(&error),
        }
    }

    /// The caller's token and its claims, verified for this audience.
    fn identify(&self, presented: Presented) -> Result<(Credential, Claims), Rejection> {
        match presented {
            Presented::Http(bearer) => {
                let HttpBearer { credential, claims } = *bearer;
                Ok((credential, claims))
            }
            Presented::Meta(credential) => {
                let claims = self.verifier.verify(credential.expose(), &self.audience)?;
                Ok((credential, claims))
            }
            Presented::Missing => Err(Rejection { error: CredentialError::Missing, jti: None }),
        }
    }

    /// Records a call refused before anyone could be named: there is no agent or task to file it
    /// under, only the `jti` the token claims (if any).
    async fn record_unidentified(&self, call: &CallRequest, rejection: &Rejection) {
        let unknown = AgentId::new(UNIDENTIFIED);
        let mut event = AuditEvent::for_task(
            &unknown,
            std::slice::from_ref(&unknown),
            &TaskId::new(UNIDENTIFIED),
            Stage::Guard,
            Verdict::Deny,
        )
        .with_reason(Reason::new(rejection.code(), rejection.to_string()))
        .with_detail(json!({ "jti": rejection.jti, "proposer_id": call.proposer_id }));
        event.call_id = Some(CallId::mint());
        event.tool = Some(call.tool.chars().take(MAX_LOGGED_NAME).collect());
        event.guard = Some(GUARD_NAME.to_owned());
        event.args_digest = Some(canonical::digest(&call.input));
        event.args = Some(call.input.clone());
        if let Err(error) = self.audit.record(event, Commit::Buffered).await {
            tracing::error!(target: "audit", %error, "a refused MCP call was not recorded");
        }
    }
}

/// The agent and task named in the audit events of calls whose token did not verify.
pub(crate) const UNIDENTIFIED: &str = "unidentified";

/// The longest caller-chosen call id kept.
const MAX_CALL_ID: usize = 128;

/// The longest tool name copied from a refused call into the audit log.
const MAX_LOGGED_NAME: usize = 128;

/// The refusal a caller sees: the reason code, nothing more.
/// A tool's own failure, saying which kind: `rejected` (a business rule refused the call, nothing
/// happened) or `failed` (it broke inside, and may have done part of its work). The caller gives a
/// budget reservation back only for the first.
fn tool_failed(error: &ToolError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(error.model_message())]);
    result.structured_content = Some(match error {
        ToolError::Rejected(_) => json!({ "rejected": true }),
        // It ran (or may have): the caller keeps its reservation.
        ToolError::Internal(_) | ToolError::OutputTooLarge { .. } => json!({ "failed": true }),
    });
    result
}

fn refused(code: &str) -> CallToolResult {
    let text = format!("The tool server refused this call ({code}). It was not executed.");
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json!({ "refused": code }));
    result
}

/// A tool's declaration as MCP lists it. The annotations are hints for other clients; Warden's
/// own client ignores them and takes the effect class from its menu.
fn mcp_tool(spec: &ToolSpec) -> rmcp::model::Tool {
    let schema = spec.input_schema.as_object().cloned().unwrap_or_default();
    let annotations = ToolAnnotations::new()
        .read_only(spec.effect == EffectClass::Read)
        .destructive(spec.effect == EffectClass::Irreversible);
    rmcp::model::Tool::new(spec.name.to_string(), spec.description.clone(), Arc::new(schema))
        .annotate(annotations)
}

/// Where a caller's token came from.
enum Presented {
    /// The HTTP bearer, verified by the middleware.
    Http(Box<HttpBearer>),
    /// `_meta.warden_token`, not verified yet.
    Meta(Credential),
    /// No token.
    Missing,
}

/// Over HTTP the token is the bearer and only the bearer; over any other transport it is
/// `_meta.warden_token`. One place per transport, so two tokens can never be played off against
/// each other.
fn presented(context: &RequestContext<RoleServer>) -> Presented {
    if let Some(parts) = context.extensions.get::<Parts>() {
        return parts
            .extensions
            .get::<HttpBearer>()
            .cloned()
            .map_or(Presented::Missing, |bearer| Presented::Http(Box::new(bearer)));
    }
    match context.meta.get(META_TOKEN).and_then(Value::as_str) {
        Some(token) => Presented::Meta(Credential::new(token)),
        None => Presented::Missing,
    }
}

/// The server's guard: the presented token must allow this call of this tool and, when the
/// server is bound to owners, of this record.
struct TokenCheck {
    verifier: Arc<Verifier>,
    audience: String,
    owners: Option<OwnerBinding>,
}

impl TokenCheck {
    fn verified(&self, call: &ProposedCall<'_>, token: &Credential) -> Result<Claims, Rejection> {
        self.verifier.verify_presented(token.expose(), &self.audience, call.spec, call.input)
    }
}

impl Guard for TokenCheck {
    fn name(&self) -> &str {
        GUARD_NAME
    }

    fn check(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Decision {
        self.check_explained(call, ctx).0
    }

    fn check_explained(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> (Decision, Value) {
        let Some(token) = &ctx.credential else {
            let reason = Reason::new("no_credential", "the call carried no token");
            return (Decision::Deny(reason), Value::Null);
        };
        match self.verified(call, token) {
            Ok(claims) => {
                let kind = if claims.is_call_token() { "call" } else { "task" };
                let mut detail = json!({ "jti": claims.jti, "token_kind": kind });
                // Whose data: only after the token proved who is calling, so a caller without a
                // valid token learns nothing about any record.
                let owned =
                    self.owners.as_ref().map(|owners| owners.check(call.spec, call.input, &claims));
                if let Some(Err(refusal)) = owned {
                    detail["customer"] = json!(claims.on_behalf_of);
                    detail["owner"] = json!(refusal.owner());
                    let reason = Reason::new(refusal.code(), refusal.to_string());
                    return (Decision::Deny(reason), detail);
                }
                (Decision::Allow, detail)
            }
            Err(rejection) => {
                let reason = Reason::new(rejection.code(), rejection.to_string());
                (Decision::Deny(reason), json!({ "jti": rejection.jti }))
            }
        }
    }
}

/// Hands the tool the token the caller presented, for tools that check it themselves.
struct PresentedToken;

impl CallCredentials for PresentedToken {
    fn for_call(
        &self,
        _call: &ProposedCall<'_>,
        ctx: &CallContext,
    ) -> Result<Option<Credential>, Reason> {
        Ok(ctx.credential.clone())
    }
}

/// The sink of a server given no audit log: it keeps nothing, and [`AuditLog`] still mirrors
/// every event to `tracing` (target `audit`), which is then the only record.
#[derive(Default)]
struct TracingOnly {
    seq: AtomicU64,
}

#[async_trait]
impl AuditSink for TracingOnly {
    async fn append(&self, event: AuditEvent, _commit: Commit) -> Result<SealedEvent, AuditError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        Ok(SealedEvent { seq, event, prev_hash: String::new(), hash: String::new() })
    }
}

/// The caller's id for the call when it sent a sensible one, so both audit logs can be matched:
/// an attribute of the call, never a key (the pipeline mints the id it keys on).
fn caller_call_id(meta: &RequestMetaObject) -> Option<String> {
    let sensible = |id: &&str| {
        (1..=MAX_CALL_ID).contains(&id.len()) && id.chars().all(|c| c.is_ascii_graphic())
    };
    meta.get(META_CALL_ID).and_then(Value::as_str).filter(sensible).map(str::to_owned)
}
