//! The MCP server's own checks, seen by a plain MCP client over an in-process stream: every
//! refusal (no token, bad signature, expired, wrong audience, missing scope, a task token for a
//! write, a per-call token for other arguments or another tool, a replayed one, and, on a server
//! bound to owners, another customer's record) with its positive control, `tools/list` filtered
//! by scope, and the audit trail (the token's `jti`, never the token).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mcp_support;

use agent_core::audit::{Stage, Verdict};
use mcp_support::*;
use serde_json::{Value, json};

fn order() -> Value {
    json!({"order_id": "#W2611340"})
}

fn refund() -> Value {
    json!({"order_id": "#W2611340", "amount": 54.0, "reason": "arrived broken"})
}

#[tokio::test]
async fn a_read_with_the_task_token_runs_and_is_audited_by_jti_only() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;
    let token = fixture.task_token(&["orders:read"]);

    let result = raw_call(&client, "get_order_details", &order(), Some(token.expose())).await;

    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert!(result.content[0].as_text().unwrap().text.contains("delivered"));
    assert_eq!(samples.ran().len(), 1);
    let events = sink.events();
    let guard = events
        .iter()
        .find(|sealed| sealed.event.guard.as_deref() == Some("mcp_server"))
        .expect("the token check is audited");
    assert_eq!(guard.event.verdict, Verdict::Allow);
    assert_eq!(guard.event.detail["jti"], jti(token.expose()));
    assert_eq!(guard.event.detail["token_kind"], "task");
    assert_eq!(guard.event.agent.as_str(), AGENT);
    assert_eq!(guard.event.task.as_str(), TASK);
    assert!(events.iter().any(|sealed| sealed.event.stage == Stage::Outcome));
    assert!(!events_text(&events).contains(token.expose()), "the token itself is never logged");
}

#[tokio::test]
async fn no_token_is_refused_before_anything_else() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;

    let result = raw_call(&client, "get_order_details", &order(), None).await;
    assert_eq!(refusal(&result).as_deref(), Some("no_credential"));
    // An unknown tool answers the same to a caller without a token: nothing leaks.
    let unknown = raw_call(&client, "delete_everything", &json!({}), None).await;
    assert_eq!(refusal(&unknown).as_deref(), Some("no_credential"));
    assert!(samples.ran().is_empty());
    let denied = sink.events();
    assert!(denied.iter().all(|sealed| sealed.event.verdict == Verdict::Deny));
    assert_eq!(denied.len(), 2);
    assert_eq!(denied[0].event.guard.as_deref(), Some("mcp_server"));
    assert_eq!(denied[0].event.reasons[0].code, "no_credential");

    // Positive control: the same call with a token runs.
    let token = fixture.task_token(&["orders:read"]);
    let result = raw_call(&client, "get_order_details", &order(), Some(token.expose())).await;
    assert_eq!(result.is_error, Some(false));
}

#[tokio::test]
async fn a_tampered_token_is_refused_as_a_bad_signature() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;
    let token = fixture.task_token(&["orders:read"]);
    let forged = tampered(&token);

    let result = raw_call(&client, "issue_refund", &refund(), Some(&forged)).await;
    assert_eq!(refusal(&result).as_deref(), Some("bad_signature"));
    assert!(samples.ran().is_empty());
    let events = sink.events();
    assert_eq!(events[0].event.detail["jti"], jti(&forged), "the claimed jti is recorded");
    assert!(!events_text(&events).contains(&forged));

    let result = raw_call(&client, "get_order_details", &order(), Some(token.expose())).await;
    assert_eq!(result.is_error, Some(false), "the genuine token works");
}

#[tokio::test]
async fn an_expired_token_and_one_for_another_server_are_refused() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;

    let grant = fixture.grant(&["orders:read"]);
    let expired = fixture.issuer.mint_task_at(&grant, now() - 1_000).unwrap();
    let result = raw_call(&client, "get_order_details", &order(), Some(expired.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("expired"));

    let mut elsewhere = fixture.grant(&["orders:read"]);
    elsewhere.audience = vec!["mail-server".to_owned()];
    let elsewhere = fixture.issuer.mint_task(&elsewhere).unwrap();
    let result = raw_call(&client, "get_order_details", &order(), Some(elsewhere.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("wrong_audience"));
    assert!(samples.ran().is_empty());

    let fresh = fixture.issuer.mint_task(&grant).unwrap();
    let result = raw_call(&client, "get_order_details", &order(), Some(fresh.expose())).await;
    assert_eq!(result.is_error, Some(false), "the same grant, minted now, for this server works");
}

#[tokio::test]
async fn a_token_without_the_tools_scope_is_refused() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;
    let mailer = fixture.task_token(&["email:send"]);

    let result = raw_call(&client, "get_order_details", &order(), Some(mailer.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("scope_missing"));
    assert!(samples.ran().is_empty());
    let denial =
        sink.events().into_iter().find(|sealed| sealed.event.verdict == Verdict::Deny).unwrap();
    assert_eq!(denial.event.stage, Stage::Guard);
    assert_eq!(denial.event.guard.as_deref(), Some("mcp_server"));
    assert_eq!(denial.event.detail["jti"], jti(mailer.expose()));

    let reader = fixture.task_token(&["orders:read"]);
    let result = raw_call(&client, "get_order_details", &order(), Some(reader.expose())).await;
    assert_eq!(result.is_error, Some(false));
}

#[tokio::test]
async fn a_write_needs_a_per_call_token_not_the_task_token() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;
    let task = fixture.task_token(&["orders:read", "refunds:write"]);

    let result = raw_call(&client, "issue_refund", &refund(), Some(task.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("not_a_call_token"));
    assert!(samples.ran().is_empty());

    let call = fixture.call_token(&task, "issue_refund", "refunds:write", &refund());
    let result = raw_call(&client, "issue_refund", &refund(), Some(call.expose())).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(samples.ran().len(), 1);
}

#[tokio::test]
async fn a_per_call_token_is_bound_to_its_arguments_and_its_tool() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;
    let task = fixture.task_token(&["refunds:write", "email:send"]);
    let call = fixture.call_token(&task, "issue_refund", "refunds:write", &refund());

    let mut bigger = refund();
    bigger["amount"] = json!(5400.0);
    let result = raw_call(&client, "issue_refund", &bigger, Some(call.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("args_mismatch"));

    let email = json!({"to": "noah@example.com", "subject": "Refund", "body": "Done."});
    let result = raw_call(&client, "send_email", &email, Some(call.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("wrong_tool"));
    assert!(samples.ran().is_empty());

    // The refusals did not spend it: with its own arguments, the token still works, once.
    let result = raw_call(&client, "issue_refund", &refund(), Some(call.expose())).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(samples.ran()[0].input, refund());
}

#[tokio::test]
async fn a_per_call_token_is_spent_by_its_first_use() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;
    let task = fixture.task_token(&["refunds:write"]);
    let call = fixture.call_token(&task, "issue_refund", "refunds:write", &refund());

    let first = raw_call(&client, "issue_refund", &refund(), Some(call.expose())).await;
    assert_eq!(first.is_error, Some(false));
    let replay = raw_call(&client, "issue_refund", &refund(), Some(call.expose())).await;
    assert_eq!(refusal(&replay).as_deref(), Some("replayed"));
    assert_eq!(samples.ran().len(), 1, "the refund ran once");

    let events = sink.events();
    let verdicts: Vec<(&str, &str)> = events
        .iter()
        .filter(|sealed| sealed.event.guard.as_deref() == Some("mcp_server"))
        .map(|sealed| {
            (
                sealed.event.verdict.as_str(),
                sealed.event.detail["token_kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(verdicts, [("allow", "call"), ("deny", "")]);
    assert!(!events_text(&events).contains(call.expose()));
}

#[tokio::test]
async fn unknown_tools_and_invalid_input_are_refused_for_a_valid_caller() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;
    let token = fixture.task_token(&["orders:read"]);

    let result = raw_call(&client, "delete_everything", &json!({}), Some(token.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("unknown_tool"));
    let result =
        raw_call(&client, "get_order_details", &json!({"order": 1}), Some(token.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("schema_invalid"));
    assert!(samples.ran().is_empty());
}

#[tokio::test]
async fn tools_list_shows_only_what_the_token_grants() {
    let fixture = Fixture::new();
    let (_samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (client, _server) = raw_client(server).await;

    let reader = fixture.task_token(&["orders:read"]);
    assert_eq!(raw_list(&client, Some(reader.expose())).await, ["get_order_details"]);
    let writer = fixture.task_token(&["refunds:write", "email:send"]);
    assert_eq!(raw_list(&client, Some(writer.expose())).await, ["issue_refund", "send_email"]);
    let all = fixture.task_token(&["orders:read", "refunds:write", "email:send"]);
    assert_eq!(raw_list(&client, Some(all.expose())).await.len(), 3);

    assert!(raw_list(&client, None).await.is_empty(), "no token: nothing exists");
    assert!(raw_list(&client, Some(&tampered(&all))).await.is_empty(), "a forged token: nothing");
    let grant = fixture.grant(&["orders:read"]);
    let expired = fixture.issuer.mint_task_at(&grant, now() - 1_000).unwrap();
    assert!(raw_list(&client, Some(expired.expose())).await.is_empty());
}

#[tokio::test]
async fn a_server_without_an_audit_log_still_checks_every_call() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let server = tools::mcp::McpToolServer::new(
        tools,
        std::sync::Arc::clone(&fixture.verifier),
        AUDIENCE,
        None,
    )
    .unwrap();
    let (client, _server) = raw_client(server).await;
    let task = fixture.task_token(&["refunds:write"]);

    let result = raw_call(&client, "issue_refund", &refund(), Some(task.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("not_a_call_token"));
    let call = fixture.call_token(&task, "issue_refund", "refunds:write", &refund());
    let result = raw_call(&client, "issue_refund", &refund(), Some(call.expose())).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(samples.ran().len(), 1);
}

/// Sample orders and their owners: `#W2611340` is someone else's, `#W7678072` the fixture
/// customer's own.
struct SampleOwners;

impl guards::credentials::OwnerResolver for SampleOwners {
    fn owner(
        &self,
        _entity_type: &str,
        id: &str,
    ) -> Result<guards::credentials::Ownership, String> {
        use guards::credentials::Ownership::{Customer, Missing};
        Ok(match id {
            "#W2611340" => Customer("james_li_5688".to_owned()),
            "#W7678072" => Customer("noah_brown_6181".to_owned()),
            _ => Missing,
        })
    }
}

#[tokio::test]
async fn a_server_bound_to_owners_refuses_anothers_record_before_the_tool_runs() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let (client, _server) = raw_client(server.with_owners(std::sync::Arc::new(SampleOwners))).await;
    let task = fixture.task_token(&["orders:read", "refunds:write"]);

    // The fixture's token serves noah_brown_6181; `#W2611340` is james_li_5688's.
    let result = raw_call(&client, "get_order_details", &order(), Some(task.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("wrong_owner"));
    let call = fixture.call_token(&task, "issue_refund", "refunds:write", &refund());
    let result = raw_call(&client, "issue_refund", &refund(), Some(call.expose())).await;
    assert_eq!(refusal(&result).as_deref(), Some("wrong_owner"));
    assert!(samples.ran().is_empty(), "neither call reached its tool");
    let denials: Vec<_> =
        sink.events().into_iter().filter(|sealed| sealed.event.verdict == Verdict::Deny).collect();
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[1].event.detail["jti"], jti(call.expose()));
    assert_eq!(denials[1].event.detail["owner"], "james_li_5688");
    assert!(!events_text(&sink.events()).contains(call.expose()));

    // Control: on a server not bound to owners, the identical read reaches the tool.
    let (unbound, _unbound_sink) = fixture.server(samples.tools());
    let (plain, _plain_server) = raw_client(unbound).await;
    let result = raw_call(&plain, "get_order_details", &order(), Some(task.expose())).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(samples.ran().len(), 1);

    // The customer's own order: the bound server runs both.
    let own = json!({"order_id": "#W7678072"});
    let result = raw_call(&client, "get_order_details", &own, Some(task.expose())).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let own_refund = json!({"order_id": "#W7678072", "amount": 54.0, "reason": "arrived broken"});
    let call = fixture.call_token(&task, "issue_refund", "refunds:write", &own_refund);
    let result = raw_call(&client, "issue_refund", &own_refund, Some(call.expose())).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(samples.ran().len(), 3);
}
