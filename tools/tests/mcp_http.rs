//! The MCP server over streamable HTTP on 127.0.0.1: no bearer (or a bad one) is an HTTP 401
//! before MCP is spoken, a valid bearer works, and Warden's adapter sends each call's own token as
//! the bearer of that one request (a write's per-call token, spent once).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mcp_support;

use agent_core::audit::Verdict;
use mcp_support::*;
use reqwest::StatusCode;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tools::mcp::{McpEndpoint, McpToolSource, SourceError, SourceOptions};

const ALL: [&str; 3] = ["orders:read", "refunds:write", "email:send"];

fn order() -> Value {
    json!({"order_id": "#W2611340"})
}

fn refund() -> Value {
    json!({"order_id": "#W2611340", "amount": 54.0, "reason": "arrived broken"})
}

/// An `initialize` POST with `bearer` (if any), as any MCP client would send first.
async fn initialize(url: &str, bearer: Option<&str>) -> reqwest::Response {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "probe", "version": "1"}}
    });
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn no_bearer_or_a_bad_one_is_a_401_and_a_valid_one_is_served() {
    let fixture = Fixture::new();
    let (_samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let listening = server.serve_http("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = listening.url();
    let token = fixture.task_token(&["orders:read"]);

    let none = initialize(&url, None).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], r#"Bearer realm="warden""#);
    assert_eq!(none.headers()["connection"], "close");
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"]["data"], json!({"refused": "no_credential"}), "{body}");
    assert_eq!(body["error"]["message"], "unauthorized: no_credential");

    let forged = initialize(&url, Some(&tampered(&token))).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let challenge = forged.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["data"], json!({"refused": "bad_signature"}), "{body}");

    let grant = fixture.grant(&["orders:read"]);
    let expired = fixture.issuer.mint_task_at(&grant, now() - 1_000).unwrap();
    assert_eq!(initialize(&url, Some(expired.expose())).await.status(), StatusCode::UNAUTHORIZED);

    let served = initialize(&url, Some(token.expose())).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert!(served.headers().contains_key("mcp-session-id"));

    let refusals: Vec<String> = sink
        .events()
        .into_iter()
        .filter(|sealed| sealed.event.verdict == Verdict::Deny)
        .map(|sealed| sealed.event.reasons[0].code.clone())
        .collect();
    assert_eq!(refusals, ["no_credential", "bad_signature", "expired"]);
    listening.shutdown().await;
}

#[tokio::test]
async fn the_adapter_sends_each_calls_own_token_as_the_bearer() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, sink) = fixture.server(tools);
    let listening = server.serve_http("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let endpoint = McpEndpoint::url(listening.url());
    let source =
        McpToolSource::connect(&endpoint, fixture.task_token(&ALL), SourceOptions::default())
            .await
            .unwrap();
    let import = source.import(&sample_imports()).await.unwrap();
    assert_eq!(import.tools.len(), 3);
    let pipeline = client_pipeline(&fixture, import.tools);
    let task = fixture.task_token(&["orders:read", "refunds:write"]);

    let details = call_through(&pipeline, "get_order_details", order(), &task).await.unwrap();
    assert!(details.contains("delivered"));
    let refunded = call_through(&pipeline, "issue_refund", refund(), &task).await.unwrap();
    assert!(refunded.contains("54"));
    assert_eq!(samples.ran().len(), 2);

    // Over HTTP the server reads only the bearer: a per-call token seen there came in the header
    // of that one request, and the task's read came with the task's token, not the connection's.
    let seen: Vec<(String, String)> = sink
        .events()
        .into_iter()
        .filter(|sealed| sealed.event.guard.as_deref() == Some("mcp_server"))
        .map(|sealed| {
            let kind = sealed.event.detail["token_kind"].as_str().unwrap().to_owned();
            (kind, sealed.event.detail["jti"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], ("task".to_owned(), jti(task.expose())));
    assert_eq!(seen[1].0, "call");

    // A task without the refund scope: the client cannot even mint the call token.
    let reader = fixture.task_token(&["orders:read"]);
    assert!(call_through(&pipeline, "issue_refund", refund(), &reader).await.is_err());
    assert_eq!(samples.ran().len(), 2);
    listening.shutdown().await;
}

#[tokio::test]
async fn tools_list_over_http_shows_only_what_the_bearer_grants() {
    let fixture = Fixture::new();
    let (_samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let listening = server.serve_http("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let endpoint = McpEndpoint::url(listening.url());

    let reader = fixture.task_token(&["orders:read"]);
    let source = McpToolSource::connect(&endpoint, reader, SourceOptions::default()).await.unwrap();
    let names: Vec<String> =
        source.offered().await.unwrap().into_iter().map(|tool| tool.name).collect();
    assert_eq!(names, ["get_order_details"]);
    let import = source.import(&sample_imports()).await.unwrap();
    assert_eq!(import.tools.len(), 1);
    assert!(import.refused.iter().all(|refusal| refusal.code == "not_offered"));

    let forged = tampered(&fixture.task_token(&["orders:read"]));
    let refused = McpToolSource::connect(
        &endpoint,
        agent_core::Credential::new(forged),
        SourceOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(refused, SourceError::Connect { .. }), "{refused:?}");
    listening.shutdown().await;
}

#[tokio::test]
async fn a_per_call_bearer_is_spent_once_and_a_task_token_cannot_write() {
    let fixture = Fixture::new();
    let (samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let listening = server.serve_http("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let connect = |bearer: String| {
        let config =
            StreamableHttpClientTransportConfig::with_uri(listening.url()).auth_header(bearer);
        ClientConfig::default().serve(StreamableHttpClientTransport::from_config(config))
    };
    let call = || {
        CallToolRequestParams::new("issue_refund")
            .with_arguments(refund().as_object().unwrap().clone())
    };
    let task = fixture.task_token(&["refunds:write"]);

    let with_task = connect(task.expose().to_owned()).await.unwrap();
    let result = with_task.call_tool(call()).await.unwrap();
    assert_eq!(refusal(&result).as_deref(), Some("not_a_call_token"));

    let token = fixture.call_token(&task, "issue_refund", "refunds:write", &refund());
    let with_call = connect(token.expose().to_owned()).await.unwrap();
    let first = with_call.call_tool(call()).await.unwrap();
    assert_eq!(first.is_error, Some(false), "{first:?}");
    let replay = with_call.call_tool(call()).await.unwrap();
    assert_eq!(refusal(&replay).as_deref(), Some("replayed"));
    assert_eq!(samples.ran().len(), 1);
    listening.shutdown().await;
}

#[tokio::test]
async fn a_renewed_listing_token_is_the_bearer_of_each_listing() {
    let fixture = Fixture::new();
    let (_samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let listening = server.serve_http("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let endpoint = McpEndpoint::url(listening.url());
    // Connected with a reader's token (which lists one tool, as the test above shows), listing
    // with fresh tokens of every scope: the listing shows what the fresh bearer grants.
    let issuer = std::sync::Arc::clone(&fixture.issuer);
    let grant = fixture.grant(&ALL);
    let mint: tools::mcp::ListingTokens =
        std::sync::Arc::new(move || issuer.mint_task(&grant).map_err(|error| error.to_string()));
    let options = SourceOptions::default().renew_listing_token(mint);
    let reader = fixture.task_token(&["orders:read"]);
    let source = McpToolSource::connect(&endpoint, reader, options).await.unwrap();
    let names: Vec<String> =
        source.offered().await.unwrap().into_iter().map(|tool| tool.name).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    listening.shutdown().await;
}
