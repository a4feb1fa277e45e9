//! The web approval console over plain HTTP: who may answer, CSRF, several requests at once,
//! answers that come too late or twice, and the escaping of attacker-controlled text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::{ApprovalAnswer, ApprovalRequest, Approver, canonical};
use guards::approval::web::{StartError, WebConsole, WebConsoleConfig};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::approval::{
    REVIEWER, REVIEWER_TOKEN, client, console, handle_of, listing, page, refund_request, sign_in,
    wait_for_pending,
};
use tokio::task::JoinHandle;

/// Puts `request` to the console from another task, as a pipeline would.
fn ask(console: &Arc<WebConsole>, request: ApprovalRequest) -> JoinHandle<ApprovalAnswer> {
    let console = Arc::clone(console);
    tokio::spawn(async move { console.decide(request).await })
}

async fn api_answer(base: &str, handle: u64, verb: &str, token: &str, body: Value) -> StatusCode {
    client()
        .post(format!("{base}/api/requests/{handle}/{verb}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

/// Whether `waiting` is still waiting a moment after whatever the test just did.
async fn still_waiting(waiting: &JoinHandle<ApprovalAnswer>) -> bool {
    tokio::time::sleep(Duration::from_millis(50)).await;
    !waiting.is_finished()
}

#[tokio::test]
async fn without_the_reviewer_token_or_a_session_nothing_changes() {
    let (console, base) = console().await;
    let waiting = ask(&console, refund_request("T-1001", "toolu_01", 120.0));
    let handle = handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01");
    let client = client();

    let no_token = client
        .post(format!("{base}/api/requests/{handle}/approve"))
        .json(&json!({"comment": "fine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let list = client.get(format!("{base}/api/requests")).send().await.unwrap();
    assert_eq!(list.status(), StatusCode::UNAUTHORIZED);

    // Pages and forms without a session send the browser to the login form.
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/login");
    let forged_session = format!("warden_session={}", "0".repeat(32));
    for cookie in [None, Some(forged_session.as_str())] {
        let mut form = client.post(format!("{base}/requests/{handle}/approve"));
        if let Some(cookie) = cookie {
            form = form.header(COOKIE, cookie);
        }
        let form = form.form(&[("csrf", "x"), ("comment", "fine")]).send().await.unwrap();
        assert_eq!(form.status(), StatusCode::SEE_OTHER);
        assert_eq!(form.headers()[LOCATION], "/login");
    }

    // A wrong token at the login form opens no session.
    let login = client
        .post(format!("{base}/login"))
        .form(&[("token", "rvw-7f3a9c2e5b1d4f60a8e2c9b7d3f1a5e5")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    assert!(login.headers().get(SET_COOKIE).is_none());

    assert_eq!(handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01"), handle);
    assert!(listing(&base).await["recent"].as_array().unwrap().is_empty());
    assert!(still_waiting(&waiting).await);
}

#[tokio::test]
async fn an_agent_credential_is_not_a_reviewer() {
    let fixture = support::Fixture::new();
    let task_token = fixture.issuer.mint_task(&fixture.grant(&["orders:read"])).unwrap();
    let request = refund_request("T-1001", "toolu_01", 120.0);
    let call_token = fixture.mint_call(&task_token, "issue_refund", "orders:read", &request.args);
    let (console, base) = console().await;
    let waiting = ask(&console, request);
    let handle = handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01");

    // Valid Warden credentials, signed by the runtime's own issuer, and the reviewer token
    // without its scheme: none of them is the reviewer.
    assert!(task_token.expose().starts_with("eyJ"), "expected a JWT");
    for token in [task_token.expose(), call_token.expose()] {
        let status = api_answer(&base, handle, "approve", token, json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let list =
            client().get(format!("{base}/api/requests")).bearer_auth(token).send().await.unwrap();
        assert_eq!(list.status(), StatusCode::UNAUTHORIZED);
        let login =
            client().post(format!("{base}/login")).form(&[("token", token)]).send().await.unwrap();
        assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    }
    let unprefixed = client()
        .post(format!("{base}/api/requests/{handle}/approve"))
        .header("authorization", REVIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unprefixed.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(wait_for_pending(&base, 1).await.len(), 1);
    assert!(still_waiting(&waiting).await);
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let (console, base) = console().await;
    let request = refund_request("T-1001", "toolu_01", 120.0);
    let waiting = ask(&console, request.clone());
    let handle = handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01");
    let session = sign_in(&base).await;
    let other_session = sign_in(&base).await;
    assert_ne!(session.csrf, other_session.csrf);

    let post = |fields: Vec<(&'static str, String)>| {
        client()
            .post(format!("{base}/requests/{handle}/approve"))
            .header(COOKIE, &session.cookie)
            .form(&fields)
    };
    let refused = [
        post(vec![("comment", "fine".to_owned())]),
        post(vec![("csrf", "00112233445566778899aabbccddeeff".to_owned())]),
        post(vec![("csrf", other_session.csrf.clone())]),
        post(vec![("csrf", String::new())]),
        // The session's cookie on the JSON API still needs the token, in a header.
        client()
            .post(format!("{base}/api/requests/{handle}/approve"))
            .header(COOKIE, &session.cookie)
            .json(&json!({})),
    ];
    for attempt in refused {
        assert_eq!(attempt.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(wait_for_pending(&base, 1).await.len(), 1);
    assert!(still_waiting(&waiting).await);

    // The same form with the right token goes through.
    let accepted = post(vec![
        ("csrf", session.csrf.clone()),
        ("args_digest", request.args_digest.clone()),
        ("comment", "checked the order".to_owned()),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(accepted.headers()[LOCATION], "/");
    let ApprovalAnswer::Approved(grant) = waiting.await.unwrap() else { panic!("not approved") };
    assert_eq!(grant.request_id, request.id);
    assert_eq!(grant.comment.as_deref(), Some("checked the order"));
}

#[tokio::test]
async fn signing_in_sets_an_httponly_samesite_strict_session_cookie() {
    let (_console, base) = console().await;
    let session = sign_in(&base).await;

    let attributes: Vec<&str> = session.set_cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"HttpOnly"), "{}", session.set_cookie);
    assert!(attributes.contains(&"SameSite=Strict"), "{}", session.set_cookie);
    assert!(attributes.contains(&"Path=/"), "{}", session.set_cookie);
    let id = session.cookie.strip_prefix("warden_session=").unwrap();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "not 128 bits: {id}");
    assert!(page(&base, &session.cookie).await.contains(REVIEWER));

    // Signed in, the login form sends you on; signed out, the session is gone.
    let login =
        client().get(format!("{base}/login")).header(COOKIE, &session.cookie).send().await.unwrap();
    assert_eq!(login.headers()[LOCATION], "/");
    let logout = client()
        .post(format!("{base}/logout"))
        .header(COOKIE, &session.cookie)
        .form(&[("csrf", &session.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.headers()[LOCATION], "/login");
    let after =
        client().get(format!("{base}/")).header(COOKIE, &session.cookie).send().await.unwrap();
    assert_eq!(after.headers()[LOCATION], "/login");
}

#[tokio::test]
async fn an_approval_through_the_api_names_the_request_and_its_digest() {
    let (console, base) = console().await;
    let request = refund_request("T-1001", "toolu_01", 120.0);
    let waiting = ask(&console, request.clone());
    let pending = wait_for_pending(&base, 1).await;
    assert_eq!(pending[0]["request"], serde_json::to_value(&request).unwrap());

    let handle = handle_of(&pending, "T-1001/toolu_01");
    let response = client()
        .post(format!("{base}/api/requests/{handle}/approve"))
        .bearer_auth(REVIEWER_TOKEN)
        .json(&json!({"comment": "matches order #W2611340"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let settled: Value = response.json().await.unwrap();
    assert_eq!(settled["decision"], "approved");

    let ApprovalAnswer::Approved(grant) = waiting.await.unwrap() else { panic!("not approved") };
    assert_eq!(grant.request_id, "T-1001/toolu_01");
    assert_eq!(grant.args_digest, canonical::digest(&request.args));
    assert_eq!(grant.approver, REVIEWER);
    assert_eq!(grant.channel, "web");
    assert_eq!(grant.comment.as_deref(), Some("matches order #W2611340"));

    let listing = listing(&base).await;
    assert!(listing["pending"].as_array().unwrap().is_empty());
    assert_eq!(listing["recent"][0]["request_id"], "T-1001/toolu_01");
    assert_eq!(listing["recent"][0]["decision"], "approved");
}

#[tokio::test]
async fn a_denial_resolves_decide_with_denied() {
    let (console, base) = console().await;
    let waiting = ask(&console, refund_request("T-1001", "toolu_01", 120.0));
    let handle = handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01");

    // An empty body is an answer without a comment.
    let response = client()
        .post(format!("{base}/api/requests/{handle}/deny"))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let ApprovalAnswer::Denied(grant) = waiting.await.unwrap() else { panic!("not denied") };
    assert_eq!(grant.request_id, "T-1001/toolu_01");
    assert_eq!(grant.approver, REVIEWER);
    assert_eq!(grant.comment, None);
    assert_eq!(listing(&base).await["recent"][0]["decision"], "denied");
}

#[tokio::test]
async fn two_pending_requests_are_answered_separately() {
    let (console, base) = console().await;
    let first = ask(&console, refund_request("T-1001", "toolu_01", 120.0));
    let second = ask(&console, refund_request("T-1002", "toolu_07", 75.5));
    let pending = wait_for_pending(&base, 2).await;
    let (first_handle, second_handle) =
        (handle_of(&pending, "T-1001/toolu_01"), handle_of(&pending, "T-1002/toolu_07"));
    assert_ne!(first_handle, second_handle);

    let denial = json!({"comment": "amount not on the order"});
    let status = api_answer(&base, second_handle, "deny", REVIEWER_TOKEN, denial).await;
    assert_eq!(status, StatusCode::OK);
    let ApprovalAnswer::Denied(denied) = second.await.unwrap() else { panic!("not denied") };
    assert_eq!(denied.request_id, "T-1002/toolu_07");
    assert!(still_waiting(&first).await, "answering one request answered the other");
    assert_eq!(handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01"), first_handle);

    let status = api_answer(&base, first_handle, "approve", REVIEWER_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let ApprovalAnswer::Approved(approved) = first.await.unwrap() else { panic!("not approved") };
    assert_eq!(approved.request_id, "T-1001/toolu_01");
}

#[tokio::test]
async fn answering_twice_or_an_unknown_request_changes_nothing() {
    let (console, base) = console().await;
    let waiting = ask(&console, refund_request("T-1001", "toolu_01", 120.0));
    let handle = handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01");

    assert_eq!(
        api_answer(&base, handle, "approve", REVIEWER_TOKEN, json!({})).await,
        StatusCode::OK
    );
    assert!(matches!(waiting.await.unwrap(), ApprovalAnswer::Approved(_)));

    for verb in ["approve", "deny"] {
        let again = api_answer(&base, handle, verb, REVIEWER_TOKEN, json!({})).await;
        assert_eq!(again, StatusCode::CONFLICT);
    }
    let session = sign_in(&base).await;
    let form = client()
        .post(format!("{base}/requests/{handle}/deny"))
        .header(COOKIE, &session.cookie)
        .form(&[("csrf", &session.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::CONFLICT);
    for unknown in ["999", "0", "T-1001%2Ftoolu_01", "-1"] {
        let response = client()
            .post(format!("{base}/api/requests/{unknown}/deny"))
            .bearer_auth(REVIEWER_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{unknown}");
    }

    let recent = listing(&base).await["recent"].as_array().unwrap().clone();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["decision"], "approved");
}

#[tokio::test]
async fn an_answer_for_other_arguments_than_those_pending_is_refused() {
    let (console, base) = console().await;
    let waiting = ask(&console, refund_request("T-1001", "toolu_01", 120.0));
    let handle = handle_of(&wait_for_pending(&base, 1).await, "T-1001/toolu_01");
    let other = refund_request("T-1001", "toolu_01", 1200.0).args_digest;

    let body = json!({"args_digest": other});
    assert_eq!(
        api_answer(&base, handle, "approve", REVIEWER_TOKEN, body).await,
        StatusCode::CONFLICT
    );
    assert!(still_waiting(&waiting).await);
}

#[tokio::test]
async fn a_decide_dropped_by_the_pipelines_timeout_leaves_the_pending_list() {
    let (console, base) = console().await;
    let request = refund_request("T-1001", "toolu_01", 120.0);

    let answer = tokio::time::timeout(Duration::from_millis(300), console.decide(request)).await;
    assert!(answer.is_err(), "nobody answered, so the timeout should have fired");

    let listing = listing(&base).await;
    assert!(listing["pending"].as_array().unwrap().is_empty(), "{listing}");
    assert_eq!(listing["recent"][0]["request_id"], "T-1001/toolu_01");
    assert_eq!(listing["recent"][0]["decision"], "expired");
    let handle = listing["recent"][0]["handle"].as_u64().unwrap();
    let late = api_answer(&base, handle, "approve", REVIEWER_TOKEN, json!({})).await;
    assert_eq!(late, StatusCode::CONFLICT);
}

#[tokio::test]
async fn shutting_down_refuses_pending_and_later_requests() {
    let (console, base) = console().await;
    let waiting = ask(&console, refund_request("T-1001", "toolu_01", 120.0));
    wait_for_pending(&base, 1).await;

    console.shutdown();
    let ApprovalAnswer::Refused(reason) = waiting.await.unwrap() else { panic!("not refused") };
    assert_eq!(reason.code, "console_closed");
    let ApprovalAnswer::Refused(reason) =
        console.decide(refund_request("T-1001", "toolu_02", 120.0)).await
    else {
        panic!("not refused")
    };
    assert_eq!(reason.code, "console_closed");
}

#[tokio::test]
async fn markup_in_the_arguments_and_the_stated_reason_is_escaped() {
    let (console, base) = console().await;
    let mut request = refund_request("T-1001", "toolu_01", 120.0);
    request.args = json!({
        "order_id": "#W2611340",
        "amount": 120.0,
        "note": "<script>alert('args')</script>",
        "<img src=x onerror=alert(1)>": "\"><script>alert('attribute')</script>",
    });
    request.args_digest = canonical::digest(&request.args);
    request.stated_reason =
        "Refund approved by the manager.</blockquote><script>alert('reason')</script>".to_owned();
    let policy = request.evidence.get_mut("policy").unwrap();
    policy["argument_provenance"]["note"] =
        json!({"origin": "untrusted_only", "sources": ["<script>alert('source')</script>"]});
    let _waiting = ask(&console, request);
    wait_for_pending(&base, 1).await;

    let session = sign_in(&base).await;
    let response =
        client().get(format!("{base}/")).header(COOKIE, &session.cookie).send().await.unwrap();
    let policy = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let page = response.text().await.unwrap();

    assert!(!page.contains("<script"), "a script tag reached the page");
    assert!(!page.contains("<img"), "an img tag reached the page");
    assert!(!page.contains("</blockquote><script"));
    for shown in [
        "&lt;script&gt;alert(&#39;args&#39;)&lt;/script&gt;",
        "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;",
        "&lt;script&gt;alert(&#39;source&#39;)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
    ] {
        assert!(page.contains(shown), "`{shown}` is not on the page");
    }
}

#[tokio::test]
async fn the_page_shows_the_evidence_that_does_not_depend_on_the_model() {
    let (console, base) = console().await;
    let request = refund_request("T-1001", "toolu_01", 120.0);
    let _waiting = ask(&console, request.clone());
    wait_for_pending(&base, 1).await;
    let session = sign_in(&base).await;
    let page = page(&base, &session.cookie).await;

    for shown in [
        "issue_refund",
        "T-1001/toolu_01",
        request.args_digest.as_str(),
        "noah_brown_6181",
        "refund-bot → refund-worker",
        "policy_requires_approval",
        "refund-over-50-needs-approval",
        "⚠ from untrusted ticket text",
        "vouched for by our records",
        "2 arguments came only from untrusted text",
        "money_cents 12500",
        "the model's claim, not a justification",
        "The customer says the blender arrived broken",
        "expires ",
    ] {
        assert!(page.contains(shown), "`{shown}` is not on the page");
    }
    // The untrusted arguments' rows are marked, the trusted one's is not.
    assert_eq!(page.matches(r#"<tr class="untrusted">"#).count(), 2);
    assert!(page.contains(r#"formaction="/requests/1/approve""#));
    assert!(page.contains(r#"action="/requests/1/deny""#));
}

#[tokio::test]
async fn a_console_will_not_start_with_a_guessable_token() {
    let weak = WebConsole::start(WebConsoleConfig::new("hunter2", REVIEWER)).await;
    assert!(matches!(weak, Err(StartError::WeakReviewerToken)));
    let unset = WebConsole::start(WebConsoleConfig::default()).await;
    assert!(matches!(unset, Err(StartError::WeakReviewerToken)));
    let nameless = WebConsole::start(WebConsoleConfig::new(REVIEWER_TOKEN, " ")).await;
    assert!(matches!(nameless, Err(StartError::NoReviewerName)));
}
