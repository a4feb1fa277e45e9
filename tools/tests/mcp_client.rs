//! The MCP client adapter end to end, against Warden's own server: only the menu's tools are
//! imported, with the menu's scope and effect; calls carry each invocation's credential; pinned
//! definitions that drift are refused and audited; an untrusted server's error text is not
//! relayed; a server that hangs, dies, or is killed costs a clear error within a bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mcp_support;

use agent_core::audit::{AuditLog, MemorySink, Stage, Verdict};
use agent_core::tool::ToolError;
use agent_core::{AgentId, EffectClass, Pipeline, ToolMenu};
use mcp_support::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mcp::{McpEndpoint, McpToolSource, SourceOptions, ToolImport, pin_digest};

const ALL: [&str; 3] = ["orders:read", "refunds:write", "email:send"];

fn order() -> Value {
    json!({"order_id": "#W2611340"})
}

fn refund() -> Value {
    json!({"order_id": "#W2611340", "amount": 54.0, "reason": "arrived broken"})
}

#[tokio::test]
async fn only_the_menus_tools_are_imported_with_the_menus_scope_and_effect() {
    let fixture = Fixture::new();
    let (_samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (source, _server) =
        source(server, fixture.task_token(&ALL), SourceOptions::default()).await;
    assert_eq!(source.offered().await.unwrap().len(), 3, "the server offers three tools");

    // The operator declares the read as a write: the server's read-only hint does not matter.
    let menu = [
        ToolImport::new(name("get_order_details"), scope("orders:read"), EffectClass::Write),
        ToolImport::new(name("issue_refund"), scope("refunds:write"), EffectClass::Irreversible)
            .described_as("Refunds an order. Needs a reviewer above $50."),
        ToolImport::new(name("close_account"), scope("accounts:delete"), EffectClass::Irreversible),
    ];
    let import = source.import(&menu).await.unwrap();

    let names: Vec<&str> = import.tools.iter().map(|tool| tool.spec().name.as_str()).collect();
    assert_eq!(names, ["get_order_details", "issue_refund"], "send_email was not asked for");
    let read = import.tools[0].spec();
    assert_eq!(read.effect, EffectClass::Write);
    assert_eq!(read.required_scope, scope("orders:read"));
    assert!(read.untrusted_output, "output from across the boundary is untrusted by default");
    assert_eq!(read.input_schema["required"], json!(["order_id"]));
    assert_eq!(import.tools[1].spec().description, "Refunds an order. Needs a reviewer above $50.");
    assert_eq!(import.refused.len(), 1);
    assert_eq!(import.refused[0].code, "not_offered");
    assert!(ToolMenu::new(import.tools).is_ok());
}

#[tokio::test]
async fn calls_carry_each_invocations_credential_through_a_warden_pipeline() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, server_sink) = fixture.server(tools);
    let (source, _server) =
        source(server, fixture.task_token(&ALL), SourceOptions::default()).await;
    let import = source.import(&sample_imports()).await.unwrap();
    let pipeline = client_pipeline(&fixture, import.tools);
    let task = fixture.task_token(&["orders:read", "refunds:write"]);

    let details = call_through(&pipeline, "get_order_details", order(), &task).await.unwrap();
    assert!(details.contains("delivered"), "{details}");
    // A write: the client pipeline mints a per-call token, the server verifies and spends it.
    let refunded = call_through(&pipeline, "issue_refund", refund(), &task).await.unwrap();
    assert!(refunded.contains("54"), "{refunded}");
    let ran: Vec<(String, Value)> =
        samples.ran().into_iter().map(|ran| (ran.tool, ran.input)).collect();
    assert_eq!(
        ran,
        [("get_order_details".to_owned(), order()), ("issue_refund".to_owned(), refund())]
    );

    // The server's audit names the caller's call ids and the token kinds it saw.
    let kinds: Vec<(String, String)> = server_sink
        .events()
        .into_iter()
        .filter(|sealed| sealed.event.guard.as_deref() == Some("mcp_server"))
        .map(|sealed| {
            let call = sealed.event.call_id.unwrap().to_string();
            (call, sealed.event.detail["token_kind"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(kinds.len(), 2);
    // The server keys on ids it minted; the caller's id (its runtime's, never the model's) is
    // kept as an attribute of each call.
    assert!(kinds.iter().all(|(call, _)| call.starts_with("call-")), "{kinds:?}");
    let callers: Vec<String> = server_sink
        .events()
        .into_iter()
        .filter(|sealed| sealed.event.stage == agent_core::audit::Stage::Menu)
        .filter_map(|sealed| sealed.event.detail["proposer_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(callers.len(), 2, "{callers:?}");
    assert!(callers.iter().all(|id| id.starts_with("call-")), "{callers:?}");
    assert_eq!(kinds[0].1, "task");
    assert_eq!(kinds[1].1, "call");

    // This task may not send email: the server refuses, and the model is told only the code.
    let email = json!({"to": "noah@example.com", "subject": "Refund", "body": "Done."});
    let mailer = fixture.task_token(&["orders:read", "email:send"]);
    let refused = call_through(&pipeline, "send_email", email.clone(), &task).await.unwrap_err();
    assert!(refused.model_message().contains("denied at the client"), "{refused:?}");
    let reader = fixture.task_token(&["refunds:write"]);
    let refused = call_through(&pipeline, "get_order_details", order(), &reader).await.unwrap_err();
    assert_eq!(
        refused,
        ToolError::Rejected(
            "The tool server refused this call (scope_missing). It was not executed.".to_owned()
        )
    );
    assert_eq!(samples.ran().len(), 2, "nothing else ran");
    call_through(&pipeline, "send_email", email, &mailer).await.unwrap();
    assert_eq!(samples.ran().len(), 3);
}

#[tokio::test]
async fn a_call_without_its_own_credential_is_not_sent() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (source, _server) =
        source(server, fixture.task_token(&ALL), SourceOptions::default()).await;
    let import = source.import(&sample_imports()).await.unwrap();
    // A pipeline that mints no call credentials: invocations carry none.
    let menu = Arc::new(ToolMenu::new(import.tools).unwrap());
    let pipeline = Pipeline::new(menu, AuditLog::new(Arc::new(MemorySink::new())));

    let error = call_through(&pipeline, "get_order_details", order(), &fixture.task_token(&ALL))
        .await
        .unwrap_err();
    assert!(error.model_message().contains("needs a credential"), "{error:?}");
    assert!(samples.ran().is_empty());
}

#[tokio::test]
async fn a_pinned_tool_whose_definition_changed_is_refused_at_import_and_audited() {
    let fixture = Fixture::new();
    let tool = Switchable::new();
    let (server, _sink) = fixture.server(vec![tool.clone()]);
    let audit = Arc::new(MemorySink::new());
    let options =
        SourceOptions::default().audit(AuditLog::new(audit.clone()), AgentId::new("refund-bot"));
    let (source, _server) = source(server, fixture.task_token(&ALL), options).await;

    let offered = source.offered().await.unwrap();
    let reviewed = pin_digest(&offered[0].name, &offered[0].description, &offered[0].input_schema);
    assert_eq!(offered[0].digest, reviewed);
    let entry = ToolImport::new(name("get_order_details"), scope("orders:read"), EffectClass::Read)
        .pinned(reviewed.clone());
    // Positive control: the reviewed definition imports.
    let import = source.import(std::slice::from_ref(&entry)).await.unwrap();
    assert_eq!(import.tools.len(), 1);
    assert!(audit.events().is_empty());

    tool.poison();
    let import = source.import(std::slice::from_ref(&entry)).await.unwrap();
    assert!(import.tools.is_empty(), "the poisoned definition is refused");
    assert_eq!(import.refused[0].code, "pin_mismatch");
    let events = audit.events();
    assert_eq!(events.len(), 1);
    let drift = &events[0].event;
    assert_eq!((drift.stage, drift.verdict), (Stage::Menu, Verdict::Deny));
    assert_eq!(drift.tool.as_deref(), Some("get_order_details"));
    assert_eq!(drift.reasons[0].code, "pin_mismatch");
    assert_eq!(drift.detail["expected_digest"], reviewed);
    let actual = source.offered().await.unwrap()[0].digest.clone();
    assert_ne!(actual, reviewed);
    assert_eq!(drift.detail["actual_digest"], actual);
}

#[tokio::test]
async fn a_definition_that_changes_after_import_withdraws_the_tool_on_refresh() {
    let fixture = Fixture::new();
    let tool = Switchable::new();
    let (server, _sink) = fixture.server(vec![tool.clone()]);
    let audit = Arc::new(MemorySink::new());
    let options =
        SourceOptions::default().audit(AuditLog::new(audit.clone()), AgentId::new("refund-bot"));
    let (source, _server) = source(server, fixture.task_token(&ALL), options).await;
    // Not pinned: the definition seen at import is the one held to.
    let entry = ToolImport::new(name("get_order_details"), scope("orders:read"), EffectClass::Read);
    let import = source.import(&[entry]).await.unwrap();
    let pipeline = client_pipeline(&fixture, import.tools);
    let task = fixture.task_token(&["orders:read"]);
    assert!(call_through(&pipeline, "get_order_details", order(), &task).await.is_ok());
    assert!(source.refresh().await.unwrap().is_empty(), "nothing changed yet");

    tool.poison();
    let changes = source.refresh().await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].code, "pin_mismatch");
    let error = call_through(&pipeline, "get_order_details", order(), &task).await.unwrap_err();
    assert!(error.model_message().contains("withdrawn"), "{error:?}");
    let events = audit.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.detail["when"], "refresh");
    assert!(source.refresh().await.unwrap().is_empty(), "a withdrawn tool is reported once");
}

#[tokio::test]
async fn an_untrusted_servers_error_text_is_not_relayed_to_the_model() {
    let fixture = Fixture::new();
    let hostile = Hostile::new();
    let (server, _sink) = fixture.server(vec![hostile]);
    let (source, _server) =
        source(server, fixture.task_token(&ALL), SourceOptions::default()).await;
    let task = fixture.task_token(&["orders:read"]);
    let entry = ToolImport::new(name("lookup_ticket"), scope("orders:read"), EffectClass::Read);

    let untrusted = source.import(std::slice::from_ref(&entry)).await.unwrap();
    let pipeline = client_pipeline(&fixture, untrusted.tools);
    let error = call_through(&pipeline, "lookup_ticket", json!({}), &task).await.unwrap_err();
    assert!(
        matches!(&error, ToolError::Internal(detail) if detail.contains(Hostile::TEXT)),
        "the audit log keeps it: {error:?}"
    );
    assert!(!error.model_message().contains("SYSTEM"), "the model does not see it");

    // Positive control: a server the operator trusts has its errors relayed.
    let trusted = source.import(&[entry.trusted_output()]).await.unwrap();
    let pipeline = client_pipeline(&fixture, trusted.tools);
    let error = call_through(&pipeline, "lookup_ticket", json!({}), &task).await.unwrap_err();
    assert_eq!(error, ToolError::Rejected(Hostile::TEXT.to_owned()));
}

#[tokio::test]
async fn a_server_that_does_not_answer_fails_the_call_at_its_timeout() {
    let fixture = Fixture::new();
    let (server, _sink) = fixture.server(vec![Hang::new()]);
    let options = SourceOptions::default().call_timeout(Duration::from_millis(300));
    let (source, _server) = source(server, fixture.task_token(&ALL), options).await;
    let entry = ToolImport::new(name("wait_forever"), scope("orders:read"), EffectClass::Read);
    let import = source.import(&[entry]).await.unwrap();
    let pipeline = client_pipeline(&fixture, import.tools);

    let started = Instant::now();
    let error = call_through(&pipeline, "wait_forever", json!({}), &fixture.task_token(&ALL))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(
        matches!(&error, ToolError::Internal(detail) if detail.contains("did not answer")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_goes_away_mid_task_fails_the_next_call_at_once() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (source, server) = source(server, fixture.task_token(&ALL), SourceOptions::default()).await;
    let import = source.import(&sample_imports()).await.unwrap();
    let pipeline = client_pipeline(&fixture, import.tools);
    let task = fixture.task_token(&ALL);
    assert!(call_through(&pipeline, "get_order_details", order(), &task).await.is_ok());

    // The server side of the stream goes away.
    drop(server);
    let started = Instant::now();
    let error = call_through(&pipeline, "issue_refund", refund(), &task).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let ToolError::Internal(detail) = &error else { panic!("{error:?}") };
    assert!(detail.contains("gone"), "{detail}");
    assert!(detail.contains("whether it ran is unknown"), "a write says its outcome is unknown");
    assert_eq!(samples.ran().len(), 1);
}

/// The stdio binary, spawned as a child with a cleared environment, then killed mid-task.
///
/// The server is started through `sh` so the test learns its process id (`exec` keeps it) and the
/// environment it was given. It imports `get_order_details` (scope `orders:read`): when the
/// binary's stand-in tools are replaced by the desk's, that tool must still exist there.
#[tokio::test]
async fn the_stdio_binary_runs_with_a_cleared_environment_and_its_death_is_reported() {
    let fixture = Fixture::new();
    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("pid");
    let env_file = scratch.path().join("env");
    let script = r#"echo $$ > "$PID_FILE"; env > "$ENV_FILE"; exec "$SERVER" --jwks "$JWKS" --issuer "$ISSUER" --audience "$AUDIENCE""#;
    let endpoint = McpEndpoint::command("/bin/sh")
        .arg("-c")
        .arg(script)
        .env("PID_FILE", pid_file.display().to_string())
        .env("ENV_FILE", env_file.display().to_string())
        .env("SERVER", env!("CARGO_BIN_EXE_support-desk-mcp"))
        .env("JWKS", fixture.jwks_path().display().to_string())
        .env("ISSUER", ISSUER)
        .env("AUDIENCE", AUDIENCE);
    // The token serves the demo order's owner: the binary checks whose data it serves.
    let mut grant = fixture.grant(&["orders:read"]);
    grant.on_behalf_of = Some("emma_muller_1757".to_owned());
    let token = fixture.issuer.mint_task(&grant).unwrap();
    let source =
        McpToolSource::connect(&endpoint, token.clone(), SourceOptions::default()).await.unwrap();

    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains("AUDIENCE=support-desk"), "what was passed arrives: {env}");
    assert!(
        !env.lines().any(|line| line.starts_with("CARGO") || line.starts_with("HOME=")),
        "nothing else does: {env}"
    );

    let entry = ToolImport::new(name("get_order_details"), scope("orders:read"), EffectClass::Read);
    let import = source.import(&[entry]).await.unwrap();
    assert_eq!(import.tools.len(), 1, "{import:?}");
    let pipeline = client_pipeline(&fixture, import.tools);
    // An order of the desk's committed demo data, which the binary serves without `--db`.
    let demo_order = json!({"order_id": "#W7673522"});
    let answered = call_through(&pipeline, "get_order_details", demo_order, &token).await;
    assert!(
        answered.as_ref().is_ok_and(|output| output.contains("#W7673522")),
        "the server answers: {answered:?}"
    );

    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let killed = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let error = call_through(&pipeline, "get_order_details", order(), &token).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let ToolError::Internal(detail) = &error else { panic!("{error:?}") };
    assert!(detail.contains("gone"), "{detail}");
}

#[tokio::test]
async fn closing_the_source_ends_the_connection_its_tools_use() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (source, _server) =
        source(server, fixture.task_token(&ALL), SourceOptions::default()).await;
    let import = source.import(&sample_imports()).await.unwrap();
    let pipeline = client_pipeline(&fixture, import.tools);
    let task = fixture.task_token(&ALL);
    assert!(call_through(&pipeline, "get_order_details", order(), &task).await.is_ok());

    source.close();
    let error = call_through(&pipeline, "get_order_details", order(), &task).await.unwrap_err();
    assert!(matches!(&error, ToolError::Internal(detail) if detail.contains("gone")), "{error:?}");
    assert_eq!(samples.ran().len(), 1);
}
