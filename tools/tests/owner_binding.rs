//! The tool server checks whose data it serves (issue 12, section 6).
//!
//! An outside review found that a task token issued for customer A read customer B's orders and
//! profile through the desk's MCP server, and that a correctly signed per-call token for A
//! refunded B's order. Each attack here is run by a plain MCP client (no Warden runtime in front
//! to stop it) on the demo data and on tau2-bench's retail database, over the stdio transport's
//! token path (`_meta.warden_token`, on an in-process pipe as the other MCP tests use) and over
//! streamable HTTP (the bearer), and in process through `TokenCheckedTool`. Each has two positive
//! controls: the identical request succeeds on a server that is not bound to owners (the attack
//! is real), and the same call succeeds with the rightful customer's token (the check refuses
//! only what it should).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mcp_support;

use agent_core::audit::{AuditLog, MemorySink, Verdict};
use agent_core::pipeline::CallRequest;
use agent_core::tool::ToolError;
use agent_core::{AgentId, CallContext, Credential, Pipeline, TaskId, Tool, ToolMenu, ToolSpec};
use guards::credentials::{CallTokens, TaskGrant, TokenCheckedTool};
use mcp_support::{AUDIENCE, Fixture, jti, refusal, scope};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, RequestMetaObject};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, RoleServer, ServiceExt};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tools::Desk;
use tools::mcp::{HttpServer, McpToolServer};
use tools::records::Order;
use tracing_subscriber::layer::SubscriberExt;

const READS: [&str; 2] = ["orders:read", "customers:read"];
const REFUNDS: [&str; 3] = ["orders:read", "customers:read", "refunds:write"];

/// A database and two of its real customers, A (the attacker's token) and B (the victim), each
/// with an order of their own.
struct Case {
    label: &'static str,
    desk: Desk,
    a: &'static str,
    b: &'static str,
    b_order: &'static str,
    a_order: &'static str,
}

impl Case {
    /// The committed demo data (`tools/data/demo-db.json`).
    fn demo() -> Self {
        Self::checked(Case {
            label: "demo",
            desk: Desk::demo().unwrap(),
            a: "raj_nguyen_6328",
            a_order: "#W2779097",
            b: "kenji_johansson_1194",
            b_order: "#W6423780",
        })
    }

    /// tau2-bench's retail `db.json`, loaded unchanged; `None` (said on stderr) where the
    /// workspace has no copy of it, as in a fresh clone.
    fn tau2() -> Option<Self> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/tau2-retail/db.json");
        if !path.exists() {
            eprintln!("tau2-bench's db.json is not at {}: the demo data only", path.display());
            return None;
        }
        Some(Self::checked(Case {
            label: "tau2",
            desk: Desk::load(&path).unwrap(),
            a: "noah_brown_6181",
            a_order: "#W7678072",
            b: "ivan_santos_6635",
            b_order: "#W6893533",
        }))
    }

    /// Both databases, each freshly loaded.
    fn all() -> Vec<Self> {
        std::iter::once(Self::demo()).chain(Self::tau2()).collect()
    }

    /// The case, once the data says what the case assumes.
    fn checked(self) -> Self {
        assert_eq!(self.desk.order(self.a_order).unwrap().user_id, self.a, "{}", self.label);
        assert_eq!(self.desk.order(self.b_order).unwrap().user_id, self.b, "{}", self.label);
        assert!(self.desk.user(self.a).is_some() && self.desk.user(self.b).is_some());
        self
    }

    fn order_of_b(&self) -> Value {
        json!({ "order_id": self.b_order })
    }

    fn profile_of_b(&self) -> Value {
        json!({ "user_id": self.b })
    }

    /// What of B's would show that B's data leaked: B's e-mail address.
    fn b_email(&self) -> String {
        self.desk.user(self.b).unwrap().email
    }

    fn refunded_on_b(&self) -> i64 {
        self.desk.refunds_total(self.b_order).unwrap()
    }

    /// Arguments for a small refund of B's order, built from `issue_refund`'s own schema (its
    /// `required` list), so the call passes the server's schema check whatever arguments the tool
    /// asks for.
    fn refund_of_b(&self) -> Value {
        let tool = tools::tool(&self.desk, "issue_refund").unwrap();
        arguments_for(tool.spec(), &self.desk.order(self.b_order).unwrap())
    }
}

/// Arguments satisfying `spec`'s schema for a call about `order`: its id, one of its items where
/// a list is asked for, a dollar where a number is.
fn arguments_for(spec: &ToolSpec, order: &Order) -> Value {
    let schema = &spec.input_schema;
    let mut arguments = Map::new();
    for name in schema["required"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let value = match (name, schema["properties"][name]["type"].as_str()) {
            ("order_id", _) => json!(order.order_id),
            ("reason", _) => json!("arrived broken"),
            (_, Some("number")) => json!(1.0),
            (_, Some("integer")) => json!(1),
            (_, Some("array")) => json!([order.items[0].item_id]),
            (_, _) => json!("x"),
        };
        arguments.insert(name.to_owned(), value);
    }
    Value::Object(arguments)
}

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// A task token for `customer` (or for no customer) with `scopes`, for a task of its own (so the
/// audit events of tests running side by side can be told apart).
fn task_token(fixture: &Fixture, customer: Option<&str>, scopes: &[&str]) -> Credential {
    let serial = NEXT_TASK.fetch_add(1, Ordering::Relaxed);
    let grant = TaskGrant {
        agent: AgentId::new("refund-bot"),
        task: TaskId::new(format!("T-{}-{serial}", customer.unwrap_or("operator"))),
        audience: vec![AUDIENCE.to_owned()],
        scopes: scopes.iter().map(|name| scope(name)).collect(),
        on_behalf_of: customer.map(str::to_owned),
        lifetime: None,
    };
    fixture.issuer.mint_task(&grant).unwrap()
}

/// The desk's server, bound to the desk's owners: what `support-desk-mcp` serves.
fn bound_server(fixture: &Fixture, desk: &Desk) -> (McpToolServer, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let audit = Some(AuditLog::new(sink.clone()));
    let server = McpToolServer::for_desk(desk, Arc::clone(&fixture.verifier), AUDIENCE, audit);
    (server.unwrap(), sink)
}

/// The positive control: the desk's tools served with the token checks only, as before issue 12.
fn unbound_server(fixture: &Fixture, desk: &Desk) -> McpToolServer {
    McpToolServer::new(tools::all_tools(desk), Arc::clone(&fixture.verifier), AUDIENCE, None)
        .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    /// The stdio transport's framing and token path (`_meta.warden_token`), on an in-process
    /// pipe.
    Stdio,
    /// Streamable HTTP on 127.0.0.1, the token as the bearer.
    Http,
}

const TRANSPORTS: [Transport; 2] = [Transport::Stdio, Transport::Http];

/// A server being served, and how a plain MCP client reaches it.
enum Served {
    Stdio {
        client: RunningService<RoleClient, ()>,
        _server: RunningService<RoleServer, McpToolServer>,
    },
    Http(HttpServer),
}

impl Served {
    async fn start(server: McpToolServer, transport: Transport) -> Self {
        match transport {
            Transport::Stdio => {
                let (client, server) = mcp_support::raw_client(server).await;
                Self::Stdio { client, _server: server }
            }
            Transport::Http => {
                Self::Http(server.serve_http("127.0.0.1:0".parse().unwrap()).await.unwrap())
            }
        }
    }

    /// A `tools/call` of `tool` with `arguments`, carrying `token` the transport's way.
    async fn call(&self, tool: &str, arguments: &Value, token: &Credential) -> CallToolResult {
        let mut params = CallToolRequestParams::new(tool.to_owned())
            .with_arguments(arguments.as_object().unwrap().clone());
        match self {
            Self::Stdio { client, .. } => {
                let mut meta = RequestMetaObject::new();
                meta.insert("warden_token".to_owned(), json!(token.expose()));
                params.meta = Some(meta);
                client.call_tool(params).await.unwrap()
            }
            Self::Http(listening) => {
                let config = StreamableHttpClientTransportConfig::with_uri(listening.url())
                    .auth_header(token.expose().to_owned());
                let client = ClientConfig::default()
                    .serve(StreamableHttpClientTransport::from_config(config))
                    .await
                    .unwrap();
                let result = client.call_tool(params).await.unwrap();
                let _ = client.cancel().await;
                result
            }
        }
    }

    async fn stop(self) {
        if let Self::Http(listening) = self {
            listening.shutdown().await;
        }
    }
}

/// The whole text a caller got back.
fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|text| text.text.clone())
        .collect()
}

/// Asserts that `result` is the owner refusal, and that it says nothing of `b`'s.
fn assert_refused_wrong_owner(result: &CallToolResult, case: &Case, what: &str) {
    assert_eq!(result.is_error, Some(true), "{what} on {}: {result:?}", case.label);
    assert_eq!(
        refusal(result).as_deref(),
        Some("wrong_owner"),
        "{what} on {}: {result:?}",
        case.label
    );
    let text = text_of(result);
    for secret in [case.b, case.b_order, &case.b_email()] {
        assert!(
            !text.contains(secret),
            "{what} on {}: the refusal names `{secret}`: {text}",
            case.label
        );
    }
}

#[tokio::test]
async fn a_task_token_for_one_customer_cannot_read_anothers_order() {
    for transport in TRANSPORTS {
        for case in Case::all() {
            let fixture = Fixture::new();
            let token_a = task_token(&fixture, Some(case.a), &READS);
            let what = format!("{transport:?}: A reads B's order");

            let (server, sink) = bound_server(&fixture, &case.desk);
            let served = Served::start(server, transport).await;
            let attack = served.call("get_order_details", &case.order_of_b(), &token_a).await;
            assert_refused_wrong_owner(&attack, &case, &what);
            let denial = sink
                .events()
                .into_iter()
                .find(|sealed| sealed.event.verdict == Verdict::Deny)
                .expect("the refusal is in the server's audit log");
            assert_eq!(denial.event.guard.as_deref(), Some("mcp_server"));
            assert_eq!(denial.event.reasons[0].code, "wrong_owner");
            assert_eq!(denial.event.detail["jti"], jti(token_a.expose()));
            assert_eq!(denial.event.detail["customer"], case.a);
            assert_eq!(denial.event.detail["owner"], case.b);

            // Control: B's own token, the identical request, runs.
            let token_b = task_token(&fixture, Some(case.b), &READS);
            let rightful = served.call("get_order_details", &case.order_of_b(), &token_b).await;
            assert_eq!(rightful.is_error, Some(false), "{what} on {}: {rightful:?}", case.label);
            assert!(text_of(&rightful).contains(case.b_order));
            // And A still reads A's own.
            let own = served
                .call("get_order_details", &json!({"order_id": case.a_order}), &token_a)
                .await;
            assert_eq!(own.is_error, Some(false), "{what} on {}: {own:?}", case.label);
            served.stop().await;

            // Control: without the owner binding, A's identical request reads B's order.
            let served = Served::start(unbound_server(&fixture, &case.desk), transport).await;
            let leaked = served.call("get_order_details", &case.order_of_b(), &token_a).await;
            assert_eq!(
                leaked.is_error,
                Some(false),
                "{what} unbound on {}: {leaked:?}",
                case.label
            );
            assert!(text_of(&leaked).contains(case.b), "B's order names B: {leaked:?}");
            served.stop().await;
        }
    }
}

#[tokio::test]
async fn a_task_token_for_one_customer_cannot_read_anothers_profile() {
    for transport in TRANSPORTS {
        for case in Case::all() {
            let fixture = Fixture::new();
            let token_a = task_token(&fixture, Some(case.a), &READS);
            let what = format!("{transport:?}: A reads B's profile");

            let (server, _sink) = bound_server(&fixture, &case.desk);
            let served = Served::start(server, transport).await;
            let attack = served.call("get_user_details", &case.profile_of_b(), &token_a).await;
            assert_refused_wrong_owner(&attack, &case, &what);

            let token_b = task_token(&fixture, Some(case.b), &READS);
            let rightful = served.call("get_user_details", &case.profile_of_b(), &token_b).await;
            assert_eq!(rightful.is_error, Some(false), "{what} on {}: {rightful:?}", case.label);
            assert!(text_of(&rightful).contains(&case.b_email()));
            served.stop().await;

            let served = Served::start(unbound_server(&fixture, &case.desk), transport).await;
            let leaked = served.call("get_user_details", &case.profile_of_b(), &token_a).await;
            assert_eq!(
                leaked.is_error,
                Some(false),
                "{what} unbound on {}: {leaked:?}",
                case.label
            );
            assert!(text_of(&leaked).contains(&case.b_email()), "B's PII leaks: {leaked:?}");
            served.stop().await;
        }
    }
}

#[tokio::test]
async fn a_signed_per_call_token_for_one_customer_cannot_refund_anothers_order() {
    for transport in TRANSPORTS {
        for case in Case::all() {
            let fixture = Fixture::new();
            let task_a = task_token(&fixture, Some(case.a), &REFUNDS);
            let refund = case.refund_of_b();
            let what = format!("{transport:?}: A refunds B's order");
            let before = case.refunded_on_b();

            let (server, _sink) = bound_server(&fixture, &case.desk);
            let served = Served::start(server, transport).await;
            let call_a = fixture.call_token(&task_a, "issue_refund", "refunds:write", &refund);
            let attack = served.call("issue_refund", &refund, &call_a).await;
            assert_refused_wrong_owner(&attack, &case, &what);
            assert_eq!(
                case.refunded_on_b(),
                before,
                "{what} on {}: nothing was refunded",
                case.label
            );

            // The owner is checked before the tool runs: a refund the tool itself would refuse
            // (far more than was paid) is refused for whose order it is, not by the tool.
            let mut excessive = refund.clone();
            excessive["amount"] = json!(1_000_000.0);
            let call_a = fixture.call_token(&task_a, "issue_refund", "refunds:write", &excessive);
            let attack = served.call("issue_refund", &excessive, &call_a).await;
            assert_refused_wrong_owner(&attack, &case, &what);

            // Control: B's own per-call token for the identical arguments gets past the server.
            let task_b = task_token(&fixture, Some(case.b), &REFUNDS);
            let call_b = fixture.call_token(&task_b, "issue_refund", "refunds:write", &refund);
            let rightful = served.call("issue_refund", &refund, &call_b).await;
            assert_reached_the_tool(&rightful, &case, &what, before);
            served.stop().await;

            // Control: without the owner binding, A's identical call refunds B's order.
            let before = case.refunded_on_b();
            let served = Served::start(unbound_server(&fixture, &case.desk), transport).await;
            let call_a = fixture.call_token(&task_a, "issue_refund", "refunds:write", &refund);
            let stolen = served.call("issue_refund", &refund, &call_a).await;
            assert_reached_the_tool(&stolen, &case, &what, before);
            served.stop().await;
        }
    }
}

/// Asserts that the server let a refund through to the tool: no refusal of the server's, and a
/// refund recorded if the tool accepted it. (The tool's own rules may change; the server's check
/// must not depend on them.)
fn assert_reached_the_tool(result: &CallToolResult, case: &Case, what: &str, before: i64) {
    assert_eq!(refusal(result), None, "{what} on {}: {result:?}", case.label);
    if result.is_error == Some(false) {
        assert!(case.refunded_on_b() > before, "{what} on {}: the refund is recorded", case.label);
    }
}

#[tokio::test]
async fn whether_another_customers_record_exists_is_not_revealed() {
    for transport in TRANSPORTS {
        let case = Case::demo();
        let fixture = Fixture::new();
        let token_a = task_token(&fixture, Some(case.a), &READS);
        let (server, _sink) = bound_server(&fixture, &case.desk);
        let served = Served::start(server, transport).await;

        let theirs = served.call("get_order_details", &case.order_of_b(), &token_a).await;
        let nobodys =
            served.call("get_order_details", &json!({"order_id": "#W0000000"}), &token_a).await;
        assert_eq!(refusal(&nobodys).as_deref(), Some("wrong_owner"), "{transport:?}");
        assert_eq!(
            (text_of(&theirs), &theirs.structured_content),
            (text_of(&nobodys), &nobodys.structured_content)
        );
        let no_profile =
            served.call("get_user_details", &json!({"user_id": "nobody_0000"}), &token_a).await;
        assert_eq!(text_of(&no_profile), text_of(&theirs), "{transport:?}");
        served.stop().await;
    }
}

#[tokio::test]
async fn a_token_serving_no_customer_touches_no_customers_records() {
    for transport in TRANSPORTS {
        let case = Case::demo();
        let fixture = Fixture::new();
        let operator =
            task_token(&fixture, None, &["orders:read", "customers:read", "catalog:read"]);
        let (server, _sink) = bound_server(&fixture, &case.desk);
        let served = Served::start(server, transport).await;

        let order = served.call("get_order_details", &case.order_of_b(), &operator).await;
        assert_refused_wrong_owner(
            &order,
            &case,
            &format!("{transport:?}: operator reads an order"),
        );
        let profile = served.call("get_user_details", &case.profile_of_b(), &operator).await;
        assert_refused_wrong_owner(
            &profile,
            &case,
            &format!("{transport:?}: operator reads a profile"),
        );

        // What nobody owns stays open to it: a product, and a call that names no record.
        let product_id = case.desk.snapshot().products.keys().next().unwrap().clone();
        let product =
            served.call("get_product_details", &json!({"product_id": product_id}), &operator).await;
        assert_eq!(product.is_error, Some(false), "{transport:?}: {product:?}");
        let catalogue = served.call("list_all_product_types", &json!({}), &operator).await;
        assert_eq!(catalogue.is_error, Some(false), "{transport:?}: {catalogue:?}");
        served.stop().await;
    }
}

#[tokio::test]
async fn the_refusal_is_a_structured_audit_event_on_the_servers_side() {
    let audit = audit_capture();
    for transport in TRANSPORTS {
        let case = Case::demo();
        let fixture = Fixture::new();
        let task_a = task_token(&fixture, Some(case.a), &REFUNDS);
        let refund = case.refund_of_b();
        let call_a = fixture.call_token(&task_a, "issue_refund", "refunds:write", &refund);
        let (server, _sink) = bound_server(&fixture, &case.desk);
        let served = Served::start(server, transport).await;

        let attack = served.call("issue_refund", &refund, &call_a).await;
        assert_refused_wrong_owner(&attack, &case, &format!("{transport:?}"));
        served.stop().await;

        let task = claim(&task_a, "task");
        let events = audit.of(&task);
        let event = events
            .iter()
            .find(|fields| fields.get("reason").map(String::as_str) == Some("wrong_owner"))
            .unwrap_or_else(|| panic!("{transport:?}: no wrong_owner event in {events:#?}"));
        assert_eq!(event["tool"], "issue_refund");
        assert_eq!(event["jti"], jti(call_a.expose()));
        assert_eq!(event["customer"], case.a);
        assert_eq!(event["owner"], case.b);
        assert!(
            !events.iter().flat_map(BTreeMap::values).any(|value| value.contains(call_a.expose()))
        );
    }
}

#[tokio::test]
async fn in_process_the_checked_tool_refuses_another_customers_records() {
    let audit = audit_capture();
    for case in Case::all() {
        let fixture = Fixture::new();
        let bound = in_process(&fixture, &case.desk, true);
        let unbound = in_process(&fixture, &case.desk, false);
        let reads_a = task_token(&fixture, Some(case.a), &REFUNDS);
        let reads_b = task_token(&fixture, Some(case.b), &REFUNDS);
        let refund = case.refund_of_b();
        let label = case.label;

        for (tool, arguments) in
            [("get_order_details", case.order_of_b()), ("get_user_details", case.profile_of_b())]
        {
            let attack = call_in_process(&bound, tool, &arguments, &reads_a).await;
            assert_eq!(
                attack.unwrap_err().model_message(),
                "refused by the tool server: wrong_owner",
                "{tool} on {label}"
            );
            // Controls: B's own token runs it; without the binding, A's leaks B's record.
            let rightful = call_in_process(&bound, tool, &arguments, &reads_b).await;
            assert!(rightful.is_ok_and(|text| text.contains(case.b)), "{tool} on {label}");
            let leaked = call_in_process(&unbound, tool, &arguments, &reads_a).await;
            assert!(leaked.is_ok_and(|text| text.contains(case.b)), "{tool} unbound on {label}");
        }

        // A write: the pipeline mints A a correctly signed per-call token for these arguments.
        let before = case.refunded_on_b();
        let attack = call_in_process(&bound, "issue_refund", &refund, &reads_a).await;
        assert_eq!(
            attack.unwrap_err().model_message(),
            "refused by the tool server: wrong_owner",
            "{label}"
        );
        assert_eq!(case.refunded_on_b(), before, "{label}: nothing was refunded");
        let event = audit.of(&claim(&reads_a, "task")).into_iter().rev().find(|fields| {
            fields.get("reason").map(String::as_str) == Some("wrong_owner")
                && fields.get("tool").map(String::as_str) == Some("issue_refund")
        });
        let event = event.expect("the in-process refusal is an audit event too");
        assert_eq!(
            (event["tool"].as_str(), event["customer"].as_str(), event["owner"].as_str()),
            ("issue_refund", case.a, case.b)
        );

        let rightful = call_in_process(&bound, "issue_refund", &refund, &reads_b).await;
        assert_in_process_reached(&rightful, &case, before);
        let before = case.refunded_on_b();
        let stolen = call_in_process(&unbound, "issue_refund", &refund, &reads_a).await;
        assert_in_process_reached(&stolen, &case, before);
    }
}

/// The in-process counterpart of [`assert_reached_the_tool`]: the wrapper let the call through.
fn assert_in_process_reached(result: &Result<String, ToolError>, case: &Case, before: i64) {
    match result {
        Ok(_) => assert!(case.refunded_on_b() > before, "{}: the refund is recorded", case.label),
        Err(error) => assert!(
            !error.model_message().contains("refused by the tool server"),
            "{}: {error:?}",
            case.label
        ),
    }
}

/// The desk's tools in process, each wrapped in `TokenCheckedTool` (bound to the desk's owners or
/// not), behind a guard-less pipeline that hands reads the task token and mints writes a per-call
/// token, as the refund bot's runtime does.
fn in_process(fixture: &Fixture, desk: &Desk, bound: bool) -> Pipeline {
    let tools: Vec<Arc<dyn Tool>> = tools::all_tools(desk)
        .into_iter()
        .map(|tool| {
            let checked = TokenCheckedTool::new(tool, Arc::clone(&fixture.verifier), AUDIENCE);
            let checked = if bound { checked.with_owners(Arc::new(desk.clone())) } else { checked };
            Arc::new(checked) as Arc<dyn Tool>
        })
        .collect();
    let menu = Arc::new(ToolMenu::new(tools).unwrap());
    Pipeline::new(menu, AuditLog::new(Arc::new(MemorySink::new())))
        .with_call_credentials(Arc::new(CallTokens::new(Arc::clone(&fixture.issuer), AUDIENCE)))
}

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// One call through `pipeline` with `token` as the task's credential: the tool's output, or its
/// error.
async fn call_in_process(
    pipeline: &Pipeline,
    tool: &str,
    arguments: &Value,
    token: &Credential,
) -> Result<String, ToolError> {
    let mut ctx = CallContext::new(AgentId::new("refund-bot"), TaskId::new("T-in-process"));
    ctx.credential = Some(token.clone());
    let request = CallRequest {
        proposer_id: Some(format!("toolu_{}", NEXT_CALL.fetch_add(1, Ordering::Relaxed))),
        tool: tool.to_owned(),
        input: arguments.clone(),
        stated_reason: String::new(),
    };
    let authorized = pipeline
        .authorize(&request, &ctx)
        .await
        .unwrap_or_else(|denied| panic!("the guard-less pipeline denied: {denied:?}"));
    pipeline.menu().invoke(authorized).await.map(|output| output.content)
}

/// Captures every `audit` event of this test process from now on.
///
/// One capturing subscriber for the whole process, installed on first use: a thread-local one
/// can miss events while tests on other threads register and drop theirs.
fn audit_capture() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(captured.clone());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

/// The claim `name` of `token`, read without verifying it.
fn claim(token: &Credential, name: &str) -> String {
    use base64::Engine;
    let payload = token.expose().split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims[name].as_str().unwrap().to_owned()
}

/// A `tracing` layer keeping the fields of every event of target `audit`, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl Captured {
    /// The events of `task` so far.
    fn of(&self, task: &str) -> Vec<BTreeMap<String, String>> {
        let events = self.0.lock().unwrap();
        let ours = |fields: &&BTreeMap<String, String>| {
            fields.get("task").map(String::as_str) == Some(task)
        };
        events.iter().filter(ours).cloned().collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields<'a>(&'a mut BTreeMap<String, String>);
        impl tracing::field::Visit for Fields<'_> {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
        }
        if event.metadata().target() == "audit" {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}
