//! The Anthropic client against a local fake of the Messages API (wiremock), never the network:
//! the wire format, tool-use round trips, retries, error mapping and the total timeout.

// The helpers are test code too: a failed unwrap there is a failed test. (clippy's
// `allow-unwrap-in-tests` covers only `#[test]` functions, not the helpers they call.)
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use agent_core::model::{
    AnthropicClient, AnthropicConfig, ContentBlock, Message, Model, ModelError, ModelRequest,
    RetryPolicy, Role, StopReason, ToolDefinition,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-ant-test-key-do-not-leak";
const MODEL: &str = "claude-sonnet-5";

/// A client for `server` with millisecond backoffs, so retry tests are fast.
fn client(server: &MockServer) -> AnthropicClient {
    client_with(server, |_| {})
}

fn client_with(server: &MockServer, adjust: impl FnOnce(&mut AnthropicConfig)) -> AnthropicClient {
    let mut config = AnthropicConfig::new(KEY, MODEL);
    config.base_url = server.uri();
    config.total_timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    };
    adjust(&mut config);
    AnthropicClient::new(config).unwrap()
}

fn refund_tool() -> ToolDefinition {
    ToolDefinition {
        name: "refund".to_owned(),
        description: "Refunds part of an order.".to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": { "order_id": { "type": "string" }, "cents": { "type": "integer" } },
            "required": ["order_id", "cents"]
        }),
    }
}

fn request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        model: MODEL.to_owned(),
        max_tokens: 1024,
        system: Some("You are a support agent.".to_owned()),
        messages,
        tools: vec![refund_tool()],
    }
}

fn first_request() -> ModelRequest {
    request(vec![Message::user_text("Please refund 5 dollars on order A-1.")])
}

fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": { "input_tokens": 42, "output_tokens": 7, "cache_read_input_tokens": 0 }
    })
}

fn end_turn(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(message(json!([{ "type": "text", "text": text }]), "end_turn"))
}

fn api_error(status: u16, kind: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({ "type": "error", "error": { "type": kind, "message": text } }))
}

/// Serves `template` for the next `times` requests (mount order decides among mocks).
async fn serve(server: &MockServer, template: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(template)
        .up_to_n_times(times)
        .mount(server)
        .await;
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap();
    requests.iter().map(|request| serde_json::from_slice(&request.body).unwrap()).collect()
}

async fn request_count(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn tool_use_round_trip_echoes_the_assistant_turn_verbatim() {
    let server = MockServer::start().await;
    let turn_one = json!([
        { "type": "thinking", "thinking": "The user wants a refund.", "signature": "EqQBCkYIARgCKkD" },
        { "type": "text", "text": "I'll refund that." },
        { "type": "tool_use", "id": "toolu_01A", "name": "refund",
          "input": { "order_id": "A-1", "cents": 500 } }
    ]);
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(message(turn_one.clone(), "tool_use")),
        1,
    )
    .await;
    serve(&server, end_turn("Refunded."), 1).await;
    let model = client(&server);

    let first = model.respond(&first_request()).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(first.text(), "I'll refund that.");
    let calls: Vec<_> = first.tool_uses().collect();
    assert_eq!(calls, vec![("toolu_01A", "refund", &json!({ "order_id": "A-1", "cents": 500 }))]);
    assert!(matches!(&first.content[0], ContentBlock::Other(block) if block["type"] == "thinking"));

    let mut conversation = first_request().messages;
    conversation.push(Message { role: Role::Assistant, content: first.content.clone() });
    conversation.push(Message {
        role: Role::User,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: "toolu_01A".to_owned(),
            content: "refunded 500 cents".to_owned(),
            is_error: false,
        }],
    });
    let second = model.respond(&request(conversation)).await.unwrap();
    assert_eq!(second.stop_reason, StopReason::EndTurn);
    assert_eq!(second.text(), "Refunded.");

    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2);
    let echoed = &sent[1]["messages"];
    assert_eq!(echoed[1]["role"], "assistant");
    assert_eq!(echoed[1]["content"], turn_one, "the assistant turn must be echoed verbatim");
    assert_eq!(echoed[2]["role"], "user");
    assert_eq!(
        echoed[2]["content"],
        json!([{ "type": "tool_result", "tool_use_id": "toolu_01A",
                 "content": "refunded 500 cents", "is_error": false }])
    );
    for body in &sent {
        assert_eq!(body["tools"][0]["name"], "refund", "tools must be sent on every request");
        assert_eq!(body["tools"][0]["input_schema"]["required"], json!(["order_id", "cents"]));
        assert_eq!(body["model"], MODEL);
        assert_eq!(body["max_tokens"], 1024);
        assert_eq!(body["system"], "You are a support agent.");
        assert!(body.get("temperature").is_none(), "no sampling parameters by default");
    }
}

#[tokio::test]
async fn sends_the_key_version_and_content_type_and_captures_the_request_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .respond_with(end_turn("hello").insert_header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy"))
        .expect(1)
        .mount(&server)
        .await;

    let response = client(&server).respond(&first_request()).await.unwrap();
    assert_eq!(response.request_id.as_deref(), Some("req_011CSHoEeqs5C35K2UUqR7Fy"));
    assert_eq!(response.id, "msg_01");
    assert_eq!(response.usage.input_tokens, 42);
    assert_eq!(response.usage.output_tokens, 7);
}

#[tokio::test]
async fn the_configured_model_id_is_sent_and_described() {
    let server = MockServer::start().await;
    serve(&server, end_turn("hi"), 1).await;
    let model = client(&server);
    let mut other = first_request();
    other.model = "claude-opus-4-1".to_owned();

    model.respond(&other).await.unwrap();
    assert_eq!(bodies(&server).await[0]["model"], MODEL);
    assert_eq!(model.describe(), MODEL);
}

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    let limited = api_error(429, "rate_limit_error", "slow down").insert_header("retry-after", "0");
    serve(&server, limited, 1).await;
    serve(&server, end_turn("ok"), 1).await;

    let response = client(&server).respond(&first_request()).await.unwrap();
    assert_eq!(response.text(), "ok");
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn server_error_is_retried() {
    let server = MockServer::start().await;
    serve(&server, api_error(500, "api_error", "internal"), 1).await;
    serve(&server, end_turn("ok"), 1).await;

    client(&server).respond(&first_request()).await.unwrap();
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn overload_is_retried() {
    let server = MockServer::start().await;
    serve(&server, api_error(529, "overloaded_error", "Overloaded"), 2).await;
    serve(&server, end_turn("ok"), 1).await;

    client(&server).respond(&first_request()).await.unwrap();
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn invalid_request_is_not_retried() {
    let server = MockServer::start().await;
    let rejected = api_error(400, "invalid_request_error", "max_tokens: field required")
        .insert_header("request-id", "req_bad");
    serve(&server, rejected, 1).await;
    serve(&server, end_turn("must not be reached"), 1).await;

    let error = client(&server).respond(&first_request()).await.unwrap_err();
    assert_eq!(
        error,
        ModelError::Api {
            status: 400,
            kind: "invalid_request_error".to_owned(),
            message: "max_tokens: field required".to_owned(),
            request_id: Some("req_bad".to_owned()),
        }
    );
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn authentication_error_is_not_retried() {
    let server = MockServer::start().await;
    serve(&server, api_error(401, "authentication_error", "invalid x-api-key"), 1).await;
    serve(&server, end_turn("must not be reached"), 1).await;

    let error = client(&server).respond(&first_request()).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::Api { status: 401, kind, .. } if kind == "authentication_error"),
        "{error:?}"
    );
    assert!(!error.to_string().contains(KEY));
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    for (status, kind) in [
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
    ] {
        let server = MockServer::start().await;
        serve(&server, api_error(status, kind, "no"), 1).await;
        serve(&server, end_turn("must not be reached"), 1).await;

        let error = client(&server).respond(&first_request()).await.unwrap_err();
        assert!(matches!(error, ModelError::Api { status: got, .. } if got == status), "{error:?}");
        assert_eq!(request_count(&server).await, 1, "status {status} was retried");
    }
}

#[tokio::test]
async fn exhausted_retries_return_the_last_error() {
    let server = MockServer::start().await;
    serve(&server, api_error(500, "api_error", "internal"), 1).await;
    serve(&server, api_error(529, "overloaded_error", "Overloaded"), 10).await;
    let model = client_with(&server, |config| config.retry.max_retries = 2);

    let error = model.respond(&first_request()).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::Api { status: 529, kind, message, .. }
            if kind == "overloaded_error" && message == "Overloaded"),
        "{error:?}"
    );
    assert_eq!(request_count(&server).await, 3, "one attempt and two retries");
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_returns_the_error_at_once() {
    let server = MockServer::start().await;
    let limited =
        api_error(429, "rate_limit_error", "slow down").insert_header("retry-after", "60");
    serve(&server, limited, 1).await;
    serve(&server, end_turn("must not be reached"), 1).await;
    let model = client_with(&server, |config| {
        config.total_timeout = Duration::from_secs(5);
        config.retry.max_backoff = Duration::from_secs(120);
    });

    let error = model.respond(&first_request()).await.unwrap_err();
    assert!(matches!(error, ModelError::Api { status: 429, .. }), "{error:?}");
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn a_non_json_error_body_still_gives_the_status() {
    let server = MockServer::start().await;
    let gateway = ResponseTemplate::new(502)
        .set_body_string("<html>\n  <body>Bad   Gateway</body>\n</html>")
        .insert_header("content-type", "text/html");
    serve(&server, gateway, 10).await;
    let model = client_with(&server, |config| config.retry.max_retries = 1);

    let error = model.respond(&first_request()).await.unwrap_err();
    let ModelError::Api { status, message, .. } = &error else { panic!("{error:?}") };
    assert_eq!(*status, 502);
    assert_eq!(message, "<html> <body>Bad Gateway</body> </html>");
    assert_eq!(request_count(&server).await, 2, "502 is retried");
}

#[tokio::test]
async fn malformed_json_is_a_malformed_response() {
    let server = MockServer::start().await;
    serve(&server, ResponseTemplate::new(200).set_body_string("{\"content\": [tru"), 1).await;

    let error = client(&server).respond(&first_request()).await.unwrap_err();
    assert!(matches!(error, ModelError::MalformedResponse(_)), "{error:?}");
    assert_eq!(request_count(&server).await, 1, "a malformed answer is not retried");
}

#[tokio::test]
async fn json_that_is_not_a_message_is_a_malformed_response() {
    for body in [
        json!({ "type": "error", "error": { "type": "api_error", "message": "oops" } }),
        json!({ "hello": "world" }),
        json!([1, 2, 3]),
        json!({ "type": "message", "content": "not a list", "stop_reason": "end_turn" }),
    ] {
        let server = MockServer::start().await;
        serve(&server, ResponseTemplate::new(200).set_body_json(&body), 1).await;

        let error = client(&server).respond(&first_request()).await.unwrap_err();
        assert!(matches!(error, ModelError::MalformedResponse(_)), "{body}: {error:?}");
    }
}

#[tokio::test]
async fn refusal_parses() {
    let server = MockServer::start().await;
    serve(&server, ResponseTemplate::new(200).set_body_json(message(json!([]), "refusal")), 1)
        .await;

    let response = client(&server).respond(&first_request()).await.unwrap();
    assert_eq!(response.stop_reason, StopReason::Refusal);
    assert!(response.content.is_empty());
}

#[tokio::test]
async fn an_unknown_stop_reason_is_kept() {
    let server = MockServer::start().await;
    let body = message(json!([{ "type": "text", "text": "hm" }]), "brand_new_reason");
    serve(&server, ResponseTemplate::new(200).set_body_json(body), 1).await;

    let response = client(&server).respond(&first_request()).await.unwrap();
    assert_eq!(response.stop_reason, StopReason::Other("brand_new_reason".to_owned()));
    assert_eq!(response.stop_reason.as_str(), "brand_new_reason");
}

#[tokio::test]
async fn max_tokens_with_a_cut_off_tool_call_parses() {
    let server = MockServer::start().await;
    let body = message(
        json!([
            { "type": "text", "text": "Let me refund" },
            { "type": "tool_use", "id": "toolu_01B", "name": "refund", "input": {} }
        ]),
        "max_tokens",
    );
    serve(&server, ResponseTemplate::new(200).set_body_json(body), 1).await;

    let response = client(&server).respond(&first_request()).await.unwrap();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    let calls: Vec<_> = response.tool_uses().collect();
    assert_eq!(calls, vec![("toolu_01B", "refund", &json!({}))]);
}

#[tokio::test]
async fn the_total_timeout_bounds_the_exchange() {
    let server = MockServer::start().await;
    serve(&server, end_turn("too late").set_delay(Duration::from_secs(2)), 10).await;
    let timeout = Duration::from_millis(300);
    let model = client_with(&server, |config| config.total_timeout = timeout);

    let error = model.respond(&first_request()).await.unwrap_err();
    assert_eq!(error, ModelError::Timeout(timeout));
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error_without_the_key() {
    // Bind a port, then free it: nothing listens there any more.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = AnthropicConfig::new(KEY, MODEL);
    config.base_url = format!("http://{address}");
    config.retry = RetryPolicy {
        max_retries: 1,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };
    let model = AnthropicClient::new(config).unwrap();

    let error = model.respond(&first_request()).await.unwrap_err();
    assert!(matches!(error, ModelError::Transport(_)), "{error:?}");
    assert!(!error.to_string().contains(KEY));
    assert!(!format!("{error:?}").contains(KEY));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    serve(&elsewhere, end_turn("stolen"), 1).await;
    let redirect = ResponseTemplate::new(307)
        .insert_header("location", format!("{}/v1/messages", elsewhere.uri()).as_str());
    serve(&server, redirect, 1).await;

    let error = client(&server).respond(&first_request()).await.unwrap_err();
    assert!(matches!(error, ModelError::Api { status: 307, .. }), "{error:?}");
    assert_eq!(request_count(&elsewhere).await, 0, "the key must not follow a redirect");
}
