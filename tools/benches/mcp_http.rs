//! Calls per second through the MCP server over streamable HTTP on loopback, every call verified.
//!
//! Run: `cargo bench -p tools --bench mcp_http` (set `MCP_BENCH_CALLS` and `MCP_BENCH_CLIENTS` to
//! change the defaults of 4,000 calls from 4 concurrent clients).
//!
//! Two cases, each `CALLS` calls spread over `CLIENTS` connections (sessions), after a warm-up:
//!
//! - **reads**: `get_order_details` with a task token as the bearer, from plain rmcp clients. The
//!   server's middleware verifies the bearer (cached after the first verification), then its
//!   pipeline checks menu, schema, token and scope and records five audit events (to `tracing`
//!   only: no audit log is configured, so no disk is measured).
//! - **writes through Warden's adapter**: `issue_refund` through a client-side pipeline that mints
//!   a per-call token for each call, sent as the bearer of that one request; the server verifies
//!   its signature in the middleware and again when it spends it (`verify_call`). The callers share
//!   one adapter connection, as the tasks of one agent do.
//!
//! Prints calls per second (wall time), and the median and 99th percentile latency per call.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use agent_core::audit::{AuditLog, MemorySink};
use agent_core::pipeline::CallRequest;
use agent_core::{
    AgentId, CallContext, Credential, EffectClass, Pipeline, Scope, TaskId, ToolMenu, ToolName,
};
use guards::credentials::{CallTokens, Issuer, KeyRing, TaskGrant};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mcp::sample::SampleTools;
use tools::mcp::{McpEndpoint, McpToolServer, McpToolSource, SourceOptions, ToolImport};

const AUDIENCE: &str = "support-desk";

fn main() {
    let calls = env_number("MCP_BENCH_CALLS", 4_000);
    let clients = env_number("MCP_BENCH_CLIENTS", 4).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench(calls, clients));
}

async fn bench(calls: usize, clients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let issuer = Arc::new(
        Issuer::new("warden", KeyRing::open(dir.path().join("keys"), now).unwrap()).unwrap(),
    );
    let server = McpToolServer::new(
        SampleTools::new().tools(),
        Arc::new(issuer.verifier().unwrap()),
        AUDIENCE,
        None,
    )
    .unwrap();
    let listening = server.serve_http("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = listening.url();
    let grant = TaskGrant {
        agent: AgentId::new("bench"),
        task: TaskId::new("T-bench"),
        audience: vec![AUDIENCE.to_owned()],
        scopes: vec![Scope::new("orders:read").unwrap(), Scope::new("refunds:write").unwrap()],
        on_behalf_of: None,
        lifetime: Some(Duration::from_secs(3600)),
    };
    let token = issuer.mint_task(&grant).unwrap();
    println!(
        "MCP over streamable HTTP on loopback: {calls} calls from {clients} concurrent clients"
    );

    let latencies = run_clients(clients, calls, |_| {
        let url = url.clone();
        let token = token.clone();
        async move { ReadClient::connect(&url, &token).await }
    })
    .await;
    report("reads, task token as bearer (plain rmcp client)", &latencies);

    let source = Arc::new(
        McpToolSource::connect(
            &McpEndpoint::url(url.clone()),
            token.clone(),
            SourceOptions::default(),
        )
        .await
        .unwrap(),
    );
    let latencies = run_clients(clients, calls, |_| {
        let (source, issuer, token) = (Arc::clone(&source), Arc::clone(&issuer), token.clone());
        async move { WriteClient::new(&source, issuer, token).await }
    })
    .await;
    report("writes, a per-call token each (Warden adapter + client pipeline)", &latencies);
    listening.shutdown().await;
}

trait Client: Send + 'static {
    fn call(&mut self, n: usize) -> impl Future<Output = ()> + Send;
}

/// Runs `calls` calls over `clients` clients (each after 50 warm-up calls) and returns every
/// latency and the wall time.
async fn run_clients<C, F, Fut>(clients: usize, calls: usize, make: F) -> (Vec<Duration>, Duration)
where
    C: Client,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = C>,
{
    let mut connected = Vec::new();
    for index in 0..clients {
        let mut client = make(index).await;
        for n in 0..50 {
            client.call(n).await;
        }
        connected.push(client);
    }
    let per_client = calls / clients;
    let started = Instant::now();
    let tasks: Vec<_> = connected
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for n in 0..per_client {
                    let call = Instant::now();
                    client.call(n).await;
                    latencies.push(call.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (latencies, started.elapsed())
}

fn report(case: &str, (latencies, wall): &(Vec<Duration>, Duration)) {
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    let at =
        |fraction: f64| sorted[((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1)];
    println!(
        "  {case}: {:.0} calls/s, median {:.0} µs, p99 {:.0} µs ({} calls in {:.2} s)",
        sorted.len() as f64 / wall.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        sorted.len(),
        wall.as_secs_f64(),
    );
}

struct ReadClient {
    service: rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>,
}

impl ReadClient {
    async fn connect(url: &str, token: &Credential) -> Self {
        let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token.expose());
        let service = ClientConfig::default()
            .serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap();
        Self { service }
    }
}

impl Client for ReadClient {
    async fn call(&mut self, n: usize) {
        let args = json!({"order_id": format!("#W{n}")});
        let params = CallToolRequestParams::new("get_order_details")
            .with_arguments(args.as_object().unwrap().clone());
        let result = self.service.call_tool(params).await.unwrap();
        assert_eq!(result.is_error, Some(false), "{result:?}");
    }
}

struct WriteClient {
    pipeline: Pipeline,
    token: Credential,
    id: usize,
}

impl WriteClient {
    async fn new(source: &McpToolSource, issuer: Arc<Issuer>, token: Credential) -> Self {
        let entry = ToolImport::new(
            ToolName::new("issue_refund").unwrap(),
            Scope::new("refunds:write").unwrap(),
            EffectClass::Irreversible,
        );
        let import = source.import(&[entry]).await.unwrap();
        let menu = Arc::new(ToolMenu::new(import.tools).unwrap());
        let pipeline = Pipeline::new(menu, AuditLog::new(Arc::new(MemorySink::new())))
            .with_call_credentials(Arc::new(CallTokens::new(issuer, AUDIENCE)));
        Self { pipeline, token, id: 0 }
    }
}

impl Client for WriteClient {
    async fn call(&mut self, n: usize) {
        self.id += 1;
        let mut ctx = CallContext::new(AgentId::new("bench"), TaskId::new("T-bench"));
        ctx.credential = Some(self.token.clone());
        let request = CallRequest {
            proposer_id: Some(format!("toolu_{}_{n}", self.id)),
            tool: "issue_refund".to_owned(),
            input: json!({"order_id": format!("#W{n}"), "amount": 5.0, "reason": "bench"}),
            stated_reason: String::new(),
        };
        let authorized = self.pipeline.authorize(&request, &ctx).await.unwrap();
        let output = self.pipeline.menu().invoke(authorized).await.unwrap();
        let _: Value = serde_json::from_str(&output.content).unwrap();
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}
