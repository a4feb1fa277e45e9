//! A web approval console on a free port, refund requests carrying the policy guard's evidence,
//! and an HTTP client that signs in the way a browser does.

use agent_core::guard::ApprovalNeed;
use agent_core::{AgentId, ApprovalRequest, CallId, Reason, TaskId, ToolName, canonical};
use guards::approval::web::{WebConsole, WebConsoleConfig};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const REVIEWER_TOKEN: &str = "rvw-7f3a9c2e5b1d4f60a8e2c9b7d3f1a5e4";
pub const REVIEWER: &str = "dana@support";

/// A console on 127.0.0.1 and its base URL.
pub async fn console() -> (Arc<WebConsole>, String) {
    let config = WebConsoleConfig::new(REVIEWER_TOKEN, REVIEWER);
    let (console, address) = WebConsole::start(config).await.unwrap();
    (console, format!("http://{address}"))
}

/// A refund whose amount and payment method appear only in the ticket, as the policy guard
/// reports it.
pub fn refund_request(task: &str, call: &str, amount: f64) -> ApprovalRequest {
    let args = json!({
        "order_id": "#W2611340",
        "amount": amount,
        "payment_method_id": "credit_card_9999",
    });
    let expires = OffsetDateTime::now_utc() + time::Duration::minutes(5);
    ApprovalRequest {
        id: format!("{task}/{call}"),
        tool: ToolName::new("issue_refund").unwrap(),
        args_digest: canonical::digest(&args),
        args,
        agent: AgentId::new("refund-worker"),
        chain: vec![AgentId::new("refund-bot"), AgentId::new("refund-worker")],
        task: TaskId::new(task),
        call_id: CallId::new(call),
        on_behalf_of: Some("noah_brown_6181".to_owned()),
        stated_reason: "The customer says the blender arrived broken and asks for a refund."
            .to_owned(),
        needs: vec![ApprovalNeed {
            reason: Reason::new(
                "policy_requires_approval",
                "refunds over $50 need a person; the amount came only from the ticket",
            ),
            policies: vec!["refund-over-50-needs-approval".to_owned()],
        }],
        evidence: BTreeMap::from([(
            "policy".to_owned(),
            json!({
                "mode": "enforce",
                "policies": ["refund-over-50-needs-approval"],
                "argument_provenance": {
                    "order_id": {"origin": "trusted"},
                    "amount": {"origin": "untrusted_only", "sources": ["ticket"]},
                    "payment_method_id": {"origin": "untrusted_only", "sources": ["ticket"]},
                },
                "usage": {
                    "task": {"read_calls": 2, "write_calls": 0, "irreversible_calls": 0, "money_cents": 0},
                    "agent_today": {"read_calls": 40, "write_calls": 3, "irreversible_calls": 2, "money_cents": 12_500},
                    "customer_today": {"read_calls": 2, "write_calls": 0, "irreversible_calls": 0, "money_cents": 0},
                },
            }),
        )]),
        expires_at: expires.format(&Rfc3339).unwrap(),
    }
}

/// A client that does not follow redirects, so tests see them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `GET /api/requests` with the reviewer token.
pub async fn listing(base: &str) -> Value {
    let response = client()
        .get(format!("{base}/api/requests"))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Waits until exactly `count` requests are pending (the `decide` calls run on other tasks).
pub async fn wait_for_pending(base: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let listing = listing(base).await;
        let pending = listing["pending"].as_array().unwrap().clone();
        if pending.len() == count {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never saw {count} pending requests: {}", listing(base).await);
}

/// The console's handle for the pending request with `request_id`.
pub fn handle_of(pending: &[Value], request_id: &str) -> u64 {
    pending
        .iter()
        .find(|entry| entry["request"]["id"] == request_id)
        .and_then(|entry| entry["handle"].as_u64())
        .unwrap_or_else(|| panic!("`{request_id}` is not pending"))
}

/// A signed-in browser session: the `Cookie` header to send and the page's CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    pub set_cookie: String,
}

/// Signs in through the login form, then reads the CSRF token from the console page.
pub async fn sign_in(base: &str) -> Session {
    let response = client()
        .post(format!("{base}/login"))
        .form(&[("token", REVIEWER_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().trim().to_owned();
    let page = page(base, &cookie).await;
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    Session { cookie, csrf, set_cookie }
}

/// The console page as the session sees it.
pub async fn page(base: &str, cookie: &str) -> String {
    let response = client().get(format!("{base}/")).header(COOKIE, cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}
