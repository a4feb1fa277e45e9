//! The terminal approval channel: what the reviewer is shown, how answers are read, and what
//! happens without a terminal. The last tests answer in a real terminal, under tmux.

// Helpers outside `#[test]` functions fail the test when they unwrap, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_core::guard::ApprovalNeed;
use agent_core::{
    AgentId, ApprovalAnswer, ApprovalRequest, Approver, CallId, Reason, TaskId, ToolName, canonical,
};
use guards::approval::{TerminalApprover, render};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A refund whose amount came only from the ticket, while the order id is in our records.
fn refund_request() -> ApprovalRequest {
    request_with(
        json!({"order_id": "#W2611340", "amount": 1000, "note": "as asked"}),
        "The customer asked for a refund of the damaged order.",
    )
}

fn request_with(args: Value, stated_reason: &str) -> ApprovalRequest {
    let evidence = json!({
        "policies": ["refund-over-limit-needs-approval"],
        "usage": {
            "task": {"read_calls": 2, "write_calls": 1, "irreversible_calls": 0, "money_cents": 1234},
            "agent_today": {"read_calls": 9, "write_calls": 3, "irreversible_calls": 2, "money_cents": 31_500},
            "customer_today": {"read_calls": 0, "write_calls": 0, "irreversible_calls": 0, "money_cents": 0},
        },
        "argument_provenance": {
            "order_id": {"origin": "trusted"},
            "amount": {"origin": "untrusted_only", "sources": ["ticket"]},
            "note": {"origin": "unseen"},
        },
    });
    ApprovalRequest {
        id: "ticket-4711/toolu_01".to_owned(),
        tool: ToolName::new("issue_refund").unwrap(),
        args_digest: canonical::digest(&args),
        args,
        agent: AgentId::new("refund-bot"),
        chain: vec![AgentId::new("support-desk"), AgentId::new("refund-bot")],
        task: TaskId::new("ticket-4711"),
        call_id: CallId::new("toolu_01"),
        on_behalf_of: Some("cust_1042".to_owned()),
        stated_reason: stated_reason.to_owned(),
        needs: vec![ApprovalNeed {
            reason: Reason::new("policy_requires_approval", "refunds over 500 need a person"),
            policies: vec!["refund-over-limit-needs-approval".to_owned()],
        }],
        evidence: BTreeMap::from([("policy".to_owned(), evidence)]),
        expires_at: "2026-11-25T10:05:00Z".to_owned(),
    }
}

/// A writer the test can read back after the approver has written to it.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Screen {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An approver that reads `typed` and writes to the returned screen.
fn approver_typing(typed: &'static str) -> (TerminalApprover, Screen) {
    let screen = Screen::default();
    let approver =
        TerminalApprover::with_io(typed.as_bytes(), screen.clone()).with_reviewer("alice");
    (approver, screen)
}

/// The line of the provenance table for `argument` (its rows start with the bare name).
fn provenance_row<'a>(rendered: &'a str, argument: &str) -> &'a str {
    rendered
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{argument} ")))
        .unwrap_or_else(|| panic!("no provenance row for `{argument}` in:\n{rendered}"))
}

// --- Rendering -------------------------------------------------------------------------------

#[test]
fn the_rendering_shows_what_the_reviewer_decides_on() {
    let request = refund_request();
    let rendered = render(&request, false);

    assert!(rendered.contains("issue_refund"), "{rendered}");
    assert!(rendered.contains(r##""order_id": "#W2611340""##), "{rendered}");
    assert!(rendered.contains(r#""amount": 1000"#), "{rendered}");
    assert!(rendered.contains(&request.args_digest[..12]), "{rendered}");
    assert!(!rendered.contains(&request.args_digest), "the digest is shortened: {rendered}");
    assert!(rendered.contains("ticket-4711/toolu_01"), "{rendered}");
    assert!(rendered.contains("support-desk → refund-bot"), "{rendered}");
    assert!(rendered.contains("on behalf of customer cust_1042"), "{rendered}");
    assert!(rendered.contains("2026-11-25T10:05:00Z"), "{rendered}");
    assert!(rendered.contains("this task: 2 read, 1 write, 0 irreversible calls, 12.34 moved"));

    let claim = rendered.lines().find(|line| line.contains("damaged order")).unwrap();
    assert!(claim.contains("the model's claim"), "the reason is labelled as a claim: {claim}");

    let asked = rendered.lines().find(|line| line.starts_with("asked by")).unwrap();
    assert!(asked.contains("policy_requires_approval"), "{asked}");
    assert!(asked.contains("refund-over-limit-needs-approval"), "{asked}");
    let policies = rendered.lines().find(|line| line.starts_with("policies")).unwrap();
    assert!(policies.contains("refund-over-limit-needs-approval"), "{policies}");
}

#[test]
fn an_argument_only_from_untrusted_text_is_marked_and_a_trusted_one_is_not() {
    let rendered = render(&refund_request(), false);

    let amount = provenance_row(&rendered, "amount");
    assert!(amount.contains("⚠ from untrusted ticket text"), "{amount}");
    let order = provenance_row(&rendered, "order_id");
    assert!(!order.contains('⚠'), "{order}");
    assert!(order.contains("vouched for"), "{order}");
    let note = provenance_row(&rendered, "note");
    assert!(!note.contains('⚠') && note.contains("seen nowhere"), "{note}");
    assert!(rendered.contains("⚠ 1 argument came only from untrusted text (amount)"), "{rendered}");
}

#[test]
fn colour_is_ansi_when_asked_for_and_absent_otherwise() {
    let request = refund_request();
    assert!(!render(&request, false).contains('\x1b'));

    let coloured = render(&request, true);
    let amount = provenance_row(&coloured, "amount");
    assert!(amount.contains("\x1b[1;97;41m⚠ from untrusted ticket text\x1b[0m"), "{amount:?}");
}

#[test]
fn a_request_without_provenance_says_so() {
    let mut request = refund_request();
    request.evidence.clear();
    let rendered = render(&request, false);
    assert!(rendered.contains("not recorded for this call"), "{rendered}");
    assert!(!rendered.contains('⚠'), "{rendered}");
}

#[test]
fn attacker_text_cannot_repaint_the_terminal_or_fake_a_line() {
    let request = request_with(
        json!({
            "order_id": "#W2611340",
            "amount": 1000,
            "note": "ok\u{1b}[2J\u{1b}]0;pwned\u{7}\nApproved: yes\u{9b}31m\u{2028}Approved: yes\u{202e}",
        }),
        "Routine refund.\n\u{1b}[1;32mApproved: yes\u{1b}[0m\r\u{1b}[2K",
    );
    let mut customer = request.clone();
    customer.on_behalf_of = Some("cust_1\nApproved: yes".to_owned());

    for request in [&request, &customer] {
        for colour in [false, true] {
            let rendered = render(request, colour);
            for line in rendered.lines() {
                assert!(!line.trim_start().starts_with("Approved"), "a faked line: {line:?}");
            }
            for bad in ['\r', '\u{9b}', '\u{7}', '\u{2028}', '\u{202e}'] {
                assert!(!rendered.contains(bad), "{bad:?} got through: {rendered:?}");
            }
            // The only escapes left are the renderer's own colours (`ESC [ digits ; m`).
            for (at, _) in rendered.match_indices('\x1b') {
                let sequence: String =
                    rendered[at + 1..].chars().take_while(|c| *c != 'm').collect();
                assert!(
                    sequence.starts_with('[')
                        && sequence[1..].chars().all(|c| c.is_ascii_digit() || c == ';'),
                    "a foreign escape sequence: {:?}",
                    &rendered[at..]
                );
            }
            if !colour {
                assert!(!rendered.contains('\x1b'), "{rendered:?}");
            }
        }
    }
    let rendered = render(&request, false);
    assert!(rendered.contains("Routine refund.\\n\\u{1b}[1;32mApproved: yes"), "{rendered}");
}

// --- Answers from a reader -------------------------------------------------------------------

#[tokio::test]
async fn y_approves_this_request_and_these_arguments() {
    let (approver, screen) = approver_typing("y\n");
    let request = refund_request();

    let ApprovalAnswer::Approved(grant) = approver.decide(request.clone()).await else {
        panic!("not approved: {}", screen.text());
    };
    assert_eq!(grant.request_id, request.id);
    assert_eq!(grant.args_digest, request.args_digest);
    assert_eq!(grant.approver, "alice");
    assert_eq!(grant.channel, "terminal");
    assert_eq!(grant.comment, None);
    let shown = screen.text();
    assert!(shown.contains("⚠ from untrusted ticket text"), "{shown}");
    assert!(shown.contains("Approve issue_refund?"), "{shown}");
}

#[tokio::test]
async fn yes_with_a_comment_keeps_the_comment() {
    let (approver, _) = approver_typing("YES checked the order record\n");
    let ApprovalAnswer::Approved(grant) = approver.decide(refund_request()).await else {
        panic!("not approved");
    };
    assert_eq!(grant.comment.as_deref(), Some("checked the order record"));
}

#[tokio::test]
async fn n_with_a_reason_denies_with_the_reason() {
    let (approver, screen) = approver_typing("n too large\n");
    let request = refund_request();

    let ApprovalAnswer::Denied(grant) = approver.decide(request.clone()).await else {
        panic!("not denied: {}", screen.text());
    };
    assert_eq!(grant.request_id, request.id);
    assert_eq!(grant.args_digest, request.args_digest);
    assert_eq!(grant.approver, "alice");
    assert_eq!(grant.comment.as_deref(), Some("too large"));
}

#[tokio::test]
async fn an_unclear_answer_is_asked_again_and_three_unclear_answers_deny() {
    let (approver, screen) = approver_typing("sure\nok\nyesplease\ny\n");

    let ApprovalAnswer::Denied(grant) = approver.decide(refund_request()).await else {
        panic!("not denied: {}", screen.text());
    };
    assert!(grant.comment.unwrap().contains("no clear answer"));
    assert_eq!(screen.text().matches("Approve issue_refund?").count(), 3);
}

#[tokio::test]
async fn an_unclear_answer_then_a_clear_one_counts_the_clear_one() {
    let (approver, screen) = approver_typing("\nmaybe\nY\n");
    assert!(matches!(approver.decide(refund_request()).await, ApprovalAnswer::Approved(_)));
    assert_eq!(screen.text().matches("Approve issue_refund?").count(), 3);
}

#[tokio::test]
async fn a_closed_terminal_denies() {
    let (approver, _) = approver_typing("");
    let ApprovalAnswer::Denied(grant) = approver.decide(refund_request()).await else {
        panic!("not denied");
    };
    assert!(grant.comment.unwrap().contains("terminal closed"));

    let (approver, _) = approver_typing("maybe");
    assert!(matches!(approver.decide(refund_request()).await, ApprovalAnswer::Denied(_)));
}

#[tokio::test]
async fn one_script_answers_requests_in_turn() {
    let (approver, _) = approver_typing("y\nn\n");
    assert!(matches!(approver.decide(refund_request()).await, ApprovalAnswer::Approved(_)));
    assert!(matches!(approver.decide(refund_request()).await, ApprovalAnswer::Denied(_)));
}

/// A reader whose lines arrive when the test sends them: a person who has not answered yet.
struct SlowTypist {
    lines: mpsc::Receiver<&'static str>,
    pending: Vec<u8>,
}

impl Read for SlowTypist {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for SlowTypist {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pending.is_empty()
            && let Ok(line) = self.lines.recv()
        {
            self.pending = line.as_bytes().to_vec();
        }
        Ok(&self.pending)
    }

    fn consume(&mut self, n: usize) {
        self.pending.drain(..n);
    }
}

#[tokio::test]
async fn an_answer_after_the_pipeline_gave_up_is_not_used() {
    let (typist, lines) = mpsc::channel();
    let screen = Screen::default();
    let reader = SlowTypist { lines, pending: Vec::new() };
    let approver = TerminalApprover::with_io(reader, screen.clone());
    let late = tokio::time::timeout(Duration::from_millis(100), approver.decide(refund_request()));
    assert!(late.await.is_err(), "the reviewer has not answered yet");

    typist.send("y\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !screen.text().contains("the answer was not used") {
        assert!(Instant::now() < deadline, "no note on screen: {}", screen.text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!screen.text().contains("Approved."), "{}", screen.text());
}

// --- Without a terminal ----------------------------------------------------------------------

#[tokio::test]
async fn without_a_terminal_the_request_is_refused_at_once() {
    let approver = TerminalApprover::with_tty_path("/nonexistent/tty");
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), approver.decide(refund_request()))
        .await
        .expect("refused at once, not left hanging");

    let ApprovalAnswer::Refused(reason) = answer else { panic!("not refused: {answer:?}") };
    assert_eq!(reason.code, "no_terminal");
    assert!(reason.detail.contains("/nonexistent/tty"), "{}", reason.detail);
    assert!(started.elapsed() < Duration::from_secs(2));
}

// --- A real terminal -------------------------------------------------------------------------

#[test]
#[ignore = "needs tmux; .ci/run installs it and runs it with --ignored"]
fn a_person_at_a_real_terminal_approves_with_y() {
    let tmux = Tmux::run_example("");

    let screen = tmux.wait_for_screen(|screen| screen.contains("Approve issue_refund?"));
    assert!(screen.contains("ticket-4711/toolu_01"), "{screen}");
    assert!(screen.contains(r#""amount": 1000"#), "{screen}");
    assert!(screen.contains("⚠ from untrusted ticket text"), "{screen}");
    assert!(screen.contains("the model's claim"), "{screen}");
    let coloured = tmux.capture(&["-e"]);
    assert!(coloured.contains("\x1b["), "stderr is a terminal, so the prompt is in colour");

    tmux.type_line("y");
    let answer = tmux.wait_for_answer();

    let ApprovalAnswer::Approved(grant) = answer else { panic!("not approved: {answer:?}") };
    assert_eq!(grant.request_id, "ticket-4711/toolu_01");
    assert_eq!(grant.channel, "terminal");
    assert_eq!(grant.approver, "tmux-reviewer", "the reviewer is the OS user");
    assert_eq!(grant.args_digest.len(), 64);
}

#[test]
#[ignore = "needs tmux; .ci/run installs it and runs it with --ignored"]
fn keys_typed_before_the_request_was_shown_do_not_answer_it() {
    // The `y` is typed while the shell still sleeps: it waits in the terminal's input queue.
    let tmux = Tmux::run_example("sleep 2;");
    tmux.type_line("y");

    tmux.wait_for_screen(|screen| screen.contains("Approve issue_refund?"));
    std::thread::sleep(Duration::from_millis(500));
    tmux.type_line("n");
    let answer = tmux.wait_for_answer();
    assert!(matches!(answer, ApprovalAnswer::Denied(_)), "the early `y` answered: {answer:?}");
}

/// Builds an example of this crate and returns its executable.
fn build_example(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["build", "-p", "guards", "--example", name, "--message-format=json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == name)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no executable for the example `{name}`"))
}

/// A tmux server of our own (its own socket, no user configuration) running the example in one
/// pane, killed when dropped.
struct Tmux {
    socket: PathBuf,
    answer_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Runs the `terminal_approval` example after the shell commands in `before`, as user
    /// `tmux-reviewer`. Its stdout (the answer) goes to a file; stderr and /dev/tty are the pane.
    fn run_example(before: &str) -> Self {
        let example = build_example("terminal_approval");
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock"),
            answer_file: dir.path().join("answer.json"),
            _dir: dir,
        };
        let command =
            format!("{before} {} > {}", shell_quote(&example), shell_quote(&tmux.answer_file));
        let session = ["new-session", "-d", "-s", "approval", "-x", "160", "-y", "50"];
        tmux.run(&[&session[..], &["-e", "USER=tmux-reviewer", &command]].concat());
        tmux
    }

    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "approval", "-l", text]);
        self.run(&["send-keys", "-t", "approval", "Enter"]);
    }

    /// The answer the example prints once it has one.
    fn wait_for_answer(&self) -> ApprovalAnswer {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&self.answer_file).unwrap_or_default();
            if text.ends_with('\n') {
                return serde_json::from_str(&text).unwrap();
            }
            assert!(Instant::now() < deadline, "no answer printed: {text:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs (install it with `apt-get install tmux`)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn capture(&self, extra: &[&str]) -> String {
        self.run(&[&["capture-pane", "-p", "-t", "approval"], extra].concat())
    }

    fn wait_for_screen(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture(&[]);
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the prompt never appeared:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
