//! The web approval console in a real browser: headless Chromium, driven through chromedriver,
//! signs in through the form and clicks Approve on one request and Deny on another.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`),
//! so it is ignored by default. Run it with
//!
//! ```text
//! cargo test -p guards --test browser -- --ignored --nocapture
//! ```
//!
//! It saves a screenshot of the console, taken before anything is clicked, to
//! `$CARGO_TARGET_TMPDIR/approval-console.png` and prints the path. `CHROMEDRIVER` and
//! `CHROMIUM` override the programs' paths.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::{ApprovalAnswer, ApprovalRequest, Approver};
use fantoccini::{Client, ClientBuilder, Locator};
use guards::approval::web::WebConsole;
use serde_json::{Map, Value, json};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::approval::{REVIEWER, REVIEWER_TOKEN, console, refund_request, wait_for_pending};
use tokio::task::JoinHandle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium and chromium-driver; .ci/run installs them and runs it with --ignored"]
async fn a_reviewer_approves_one_request_and_denies_another_in_a_real_browser() {
    let driver = Chromedriver::start();
    let (console, base) = console().await;
    let refund = refund_request("T-1001", "toolu_01", 120.0);
    let other = refund_request("T-1002", "toolu_07", 75.5);
    let refund_answer = ask(&console, refund.clone());
    let other_answer = ask(&console, other.clone());
    wait_for_pending(&base, 2).await;

    let browser = driver.browser().await;
    // Not signed in: the console sends the browser to the login form.
    browser.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/login");
    browser
        .find(Locator::Css(r#"input[name="token"]"#))
        .await
        .unwrap()
        .send_keys(REVIEWER_TOKEN)
        .await
        .unwrap();
    browser
        .find(Locator::Css(r#"form.login button[type="submit"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&card(&refund, "")))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/");

    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("approval-console.png");
    std::fs::write(&screenshot, browser.screenshot().await.unwrap()).unwrap();
    println!("screenshot of the console: {}", screenshot.display());

    // Approve the first with a comment, then deny the second: real clicks on the buttons.
    let comment = "Amount matches the order total; customer confirmed by phone.";
    browser
        .find(Locator::Css(&card(&refund, " textarea")))
        .await
        .unwrap()
        .send_keys(comment)
        .await
        .unwrap();
    browser
        .find(Locator::Css(&card(&refund, " button.approve")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let ApprovalAnswer::Approved(approved) = answer(refund_answer).await else {
        panic!("the first request was not approved")
    };
    assert_eq!(approved.request_id, refund.id);
    assert_eq!(approved.args_digest, refund.args_digest);
    assert_eq!(approved.approver, REVIEWER);
    assert_eq!(approved.channel, "web");
    assert_eq!(approved.comment.as_deref(), Some(comment));
    assert!(!other_answer.is_finished(), "approving one request answered the other");

    // After the post the browser is back on the console, where only the second is left.
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&card(&other, " button.deny")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let ApprovalAnswer::Denied(denied) = answer(other_answer).await else {
        panic!("the second request was not denied")
    };
    assert_eq!(denied.request_id, other.id);
    assert_eq!(denied.args_digest, other.args_digest);
    assert_eq!(denied.comment, None);

    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("p.empty"))
        .await
        .unwrap();
    let page = browser.source().await.unwrap();
    assert!(page.contains(r#"<span class="badge good">approved</span>"#));
    assert!(page.contains(r#"<span class="badge bad">denied</span>"#));
    browser.close().await.unwrap();
}

/// A CSS selector for something inside the card of `request`.
fn card(request: &ApprovalRequest, inside: &str) -> String {
    format!(r#"article[data-request-id="{}"]{inside}"#, request.id)
}

fn ask(console: &Arc<WebConsole>, request: ApprovalRequest) -> JoinHandle<ApprovalAnswer> {
    let console = Arc::clone(console);
    tokio::spawn(async move { console.decide(request).await })
}

async fn answer(waiting: JoinHandle<ApprovalAnswer>) -> ApprovalAnswer {
    tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap()
}

/// chromedriver on a free local port, killed when dropped (also when the test fails).
struct Chromedriver {
    process: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Chromedriver {
    fn start() -> Self {
        let port =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let process = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run `{program}` (apt-get install chromium-driver): {error}")
            });
        let driver = Self { process, port, profile: tempfile::tempdir().unwrap() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A fresh headless Chromium session, with the flags this network needs (no background
    /// traffic to hosts it refuses) and a window tall enough for two requests.
    async fn browser(&self) -> Client {
        let mut options = json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,3000",
                format!("--user-data-dir={}", self.profile.path().display()),
            ],
        });
        if let Ok(binary) = std::env::var("CHROMIUM") {
            options["binary"] = Value::String(binary);
        }
        let mut capabilities = Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap()
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
