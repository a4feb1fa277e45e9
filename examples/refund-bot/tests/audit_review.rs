//! `refund-bot audit review` over the log of a real demo run: it names the agent, groups the
//! denials by reason, lists the tools granted and never used, and refuses a broken chain.
//!
//! The demo's ticket set changes as the demo grows, so these tests check the review's structure
//! and compare it with the log itself rather than with fixed numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::refund_bot;

use agent_core::audit::{AuditEvent, AuditLog, Commit, Stage, Verdict};
use agent_core::{AgentId, TaskId};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

const SECTIONS: [&str; 6] = [
    "### Calls by tool",
    "### Scope to trim",
    "### Denials by reason",
    "### Approvals",
    "### Budget use",
    "### Anomalies",
];

#[test]
fn the_review_of_a_demo_run_names_the_agent_and_its_denials_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    run_demo(&log);

    let review = refund_bot(&["audit", "review", log.to_str().unwrap()]);
    let markdown = String::from_utf8_lossy(&review.stdout);
    assert!(review.status.success(), "{markdown}\n{}", String::from_utf8_lossy(&review.stderr));
    // The verdict on the log first, in words nobody can miss; then the review.
    assert!(markdown.starts_with("> **LOG INTACT AND SEALED**"), "{markdown}");
    assert!(markdown.contains("\n# Audit review: "), "{markdown}");
    assert!(markdown.contains("## Checkpoints\n\n2 signed checkpoints"), "{markdown}");
    assert!(markdown.contains("## Agent `refund-bot`"), "{markdown}");
    for section in SECTIONS {
        assert!(markdown.contains(section), "no `{section}` in\n{markdown}");
    }

    // Every refusal in the log shows up, grouped under its reason code.
    let events = events_of(&log);
    let codes: BTreeSet<&str> = events
        .iter()
        .filter(|event| event["verdict"] == "deny")
        .map(|event| event["reasons"][0]["code"].as_str().unwrap())
        .collect();
    assert!(!codes.is_empty(), "the demo refused nothing");
    let denials = section(&markdown, "Denials by reason");
    for code in &codes {
        assert!(denials.iter().any(|row| row.contains(&format!("| `{code}` |"))), "{markdown}");
    }

    // Scope to trim is exactly the menu minus the tools asked for.
    let unused = unused_tools(&events);
    let scope = section(&markdown, "Scope to trim");
    if unused.is_empty() {
        assert_eq!(scope, ["None: every tool on the menu was asked for."]);
    }
    for tool in &unused {
        assert!(scope.contains(&format!("- `{tool}`")), "{tool} missing from\n{markdown}");
    }

    // What the model asked for (ticket text, addresses, amounts) never reaches the review.
    for event in &events {
        for value in event["args"].as_object().into_iter().flat_map(|args| args.values()) {
            if let Some(text) = value.as_str().filter(|text| text.len() > 8) {
                assert!(!markdown.contains(text), "argument `{text}` echoed in\n{markdown}");
            }
        }
    }
}

#[tokio::test]
async fn a_tool_granted_and_never_used_is_listed_as_scope_to_trim() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    run_demo(&log);
    // One more task, on a menu with a tool nobody asks for, appended to the chain as the
    // runtime would.
    let menu: Vec<String> =
        menu_of(&events_of(&log)).into_iter().chain(["wipe_account".to_owned()]).collect();
    append_task_start(&log, "T-9001", &menu).await;

    let out = dir.path().join("review.md");
    let review =
        refund_bot(&["audit", "review", log.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(review.status.success(), "{}", String::from_utf8_lossy(&review.stderr));
    assert!(review.stdout.is_empty());
    let said = String::from_utf8_lossy(&review.stderr);
    assert!(said.contains(&format!("written to {}", out.display())), "{said}");
    let markdown = std::fs::read_to_string(&out).unwrap();
    assert!(section(&markdown, "Scope to trim").contains(&"- `wipe_account`".to_owned()));
    assert!(markdown.contains("| `wipe_account` | 0 | 0 | 0 |"), "{markdown}");
}

#[test]
fn a_review_since_a_time_after_every_event_is_empty_and_bad_times_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    run_demo(&log);
    let events = events_of(&log);
    let newest = events.last().unwrap()["time"].as_str().unwrap().to_owned();
    let in_period: Vec<&Value> =
        events.iter().filter(|event| event["time"] == newest.as_str()).collect();
    // The newest line is the seal: the log's own line, no agent's.
    let agents: BTreeSet<&str> = in_period
        .iter()
        .filter(|event| event["stage"] != "checkpoint" && event["stage"] != "log")
        .filter_map(|event| event["agent"].as_str())
        .collect();
    let in_period = in_period.len();

    let review = refund_bot(&["audit", "review", log.to_str().unwrap(), "--since", &newest]);
    let markdown = String::from_utf8_lossy(&review.stdout);
    assert!(review.status.success());
    assert!(markdown.contains(&format!("\n# Audit review: {newest} to {newest}")), "{markdown}");
    let plural = if in_period == 1 { "" } else { "s" };
    let agents = match agents.len() {
        1 => "1 agent".to_owned(),
        n => format!("{n} agents"),
    };
    assert!(markdown.contains(&format!("\n{in_period} event{plural} from {agents}")), "{markdown}");

    let bad = refund_bot(&["audit", "review", log.to_str().unwrap(), "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`yesterday` is not an RFC 3339 time"));
}

#[test]
fn a_broken_chain_gets_no_review() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    run_demo(&log);
    // Someone turns a refusal into an allowance after the fact.
    let text = std::fs::read_to_string(&log).unwrap();
    let edited = text.replacen("\"verdict\":\"deny\"", "\"verdict\":\"allow\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&log, edited).unwrap();

    let review = refund_bot(&["audit", "review", log.to_str().unwrap()]);
    assert_eq!(review.status.code(), Some(1));
    assert!(review.stdout.is_empty(), "{}", String::from_utf8_lossy(&review.stdout));
    assert!(!review.stderr.is_empty());
}

/// Runs the offline demo with every approval answered no, writing its audit log to `log`.
fn run_demo(log: &Path) {
    let ledger = log.with_extension("ledger.sqlite");
    let run = refund_bot(&[
        "--approver",
        "deny",
        "--audit-log",
        log.to_str().unwrap(),
        "--ledger",
        ledger.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "demo failed:\n{}", String::from_utf8_lossy(&run.stderr));
}

fn events_of(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// The tools on the menus the log's tasks started with.
fn menu_of(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|event| event["stage"] == "task" && event["verdict"] == "started")
        .flat_map(|event| event["detail"]["menu"].as_array().cloned().unwrap_or_default())
        .map(|tool| tool.as_str().unwrap().to_owned())
        .collect()
}

/// The tools on the menu that no call asked for.
fn unused_tools(events: &[Value]) -> BTreeSet<String> {
    let asked: BTreeSet<&str> = events.iter().filter_map(|event| event["tool"].as_str()).collect();
    menu_of(events).into_iter().filter(|tool| !asked.contains(tool.as_str())).collect()
}

/// The non-empty lines of one `### title` section.
fn section(markdown: &str, title: &str) -> Vec<String> {
    let heading = format!("### {title}");
    markdown
        .lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| !line.starts_with('#'))
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Appends a task-start event for `task` on `menu` to the chain at `log`.
async fn append_task_start(log: &Path, task: &str, menu: &[String]) {
    let agent = AgentId::from("refund-bot");
    let chain = std::slice::from_ref(&agent);
    let event =
        AuditEvent::for_task(&agent, chain, &TaskId::from(task), Stage::Task, Verdict::Started)
            .with_detail(json!({ "model": "scripted", "menu": menu }));
    // Appended as the runtime appends, signed and sealed again: an unsigned line after the seal
    // would (rightly) make the log tampered, and the review refuse it.
    let audit = AuditLog::new(Arc::new(support::signing_sink(log)));
    audit.record(event, Commit::Durable).await.unwrap();
    audit.close().unwrap();
}
