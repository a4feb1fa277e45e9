//! The real-Claude path without a network: the same queue through a fake Messages API (wiremock)
//! gives the same outcomes as offline.
//!
//! The fake answers each request in the API's own JSON shape, with the tool calls the gullible
//! model decides on for that exact conversation: so the client's request encoding, the response
//! parsing, tool_use ids, and the loop's handling of real API turns are all exercised, and the
//! outcomes can be compared ticket by ticket with the offline run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::model::{AnthropicConfig, RetryPolicy};
use refund_bot::demo::ModelChoice;
use refund_bot::manifest::{ApprovalChannel, ToolSource};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{fingerprint, run_demo};
use tools::gullible::GullibleModel;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Claude as the gullible model would answer, in the API's shape; it checks that every request
/// advertises the menu.
struct GullibleClaude {
    served: AtomicUsize,
}

impl Respond for GullibleClaude {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert!(body["tools"].as_array().is_some_and(|tools| !tools.is_empty()), "no menu sent");
        self.served.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .set_body_json(GullibleModel::answer_api_request(&request.body).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_through_a_fake_claude_gives_the_offline_outcomes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "test-key"))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(GullibleClaude { served: AtomicUsize::new(0) })
        .mount(&server)
        .await;
    let claude = ModelChoice::Claude(AnthropicConfig {
        api_key: "test-key".to_owned(),
        base_url: server.uri(),
        model: "claude-test".to_owned(),
        total_timeout: Duration::from_secs(30),
        retry: RetryPolicy::default(),
    });

    let online = tempfile::tempdir().unwrap();
    let (through_api, transcript) =
        run_demo(online.path(), &claude, ApprovalChannel::Deny, ToolSource::InProcess).await;
    let offline = tempfile::tempdir().unwrap();
    let (direct, _) = run_demo(
        offline.path(),
        &ModelChoice::Gullible,
        ApprovalChannel::Deny,
        ToolSource::InProcess,
    )
    .await;

    assert!(transcript.contains("claude-test at http://127.0.0.1"), "{transcript}");
    assert!(through_api.all_good(), "{transcript}");
    assert_eq!(fingerprint(&through_api), fingerprint(&direct));
    assert!(server.received_requests().await.unwrap().len() > 20);
}
