//! The audit store answering filtered queries over 1,000,000 events.
//!
//! Run: `cargo bench -p agent-core --bench audit_store` (about a minute: most of it fills the
//! store). Prints the median and p99 of each query over 200 runs; figures in
//! docs/performance.md. `AUDIT_BENCH_EVENTS` changes the size.

// A bench binary: its output is for people, and it has no API to document.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use agent_core::audit::{AuditEvent, AuditQuery, AuditStore, Chain, Stage, Verdict};
use agent_core::guard::Reason;
use agent_core::{AgentId, CallId, TaskId};
use serde_json::json;
use std::time::{Duration, Instant};

const AGENTS: [&str; 4] = ["refund-bot", "triage", "lookup-helper", "mail-bot"];
const TOOLS: [&str; 6] = [
    "get_order_details",
    "issue_refund",
    "read_ticket",
    "reply_to_customer",
    "cancel_pending_order",
    "send_email",
];
const STAGES: [(Stage, Verdict); 5] = [
    (Stage::Menu, Verdict::Allow),
    (Stage::Guard, Verdict::Allow),
    (Stage::Guard, Verdict::Deny),
    (Stage::Intent, Verdict::Intent),
    (Stage::Outcome, Verdict::Succeeded),
];

fn event(n: u64) -> AuditEvent {
    let agent = AgentId::new(AGENTS[(n % 4) as usize]);
    let (stage, verdict) = STAGES[(n % 5) as usize];
    // A day of events, a few milliseconds apart.
    let seconds = n * 86_400 / 1_000_000;
    let time = format!(
        "2026-11-25T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        n % 1000
    );
    AuditEvent {
        time,
        agent: agent.clone(),
        chain: vec![agent],
        task: TaskId::new(format!("T-{}", n / 20)),
        call_id: Some(CallId::new(format!("toolu_{n}"))),
        tool: Some(TOOLS[(n / 5 % 6) as usize].to_owned()),
        stage,
        guard: (stage == Stage::Guard).then(|| "policy".to_owned()),
        verdict,
        reasons: if verdict == Verdict::Deny {
            vec![Reason::new("cross_customer", "another customer's order")]
        } else {
            vec![]
        },
        args_digest: Some(format!("{n:064x}")),
        args: Some(json!({"order_id": format!("#W{:07}", n % 9_999_999), "amount": 20})),
        detail: serde_json::Value::Null,
    }
}

fn report(name: &str, mut samples: Vec<Duration>, found: usize) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<58} median {:>9.1} µs   p99 {:>9.1} µs   ({found} events)",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
}

fn main() {
    let count: u64 =
        std::env::var("AUDIT_BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = AuditStore::open(dir.path().join("audit.sqlite")).unwrap();
    let started = Instant::now();
    let mut chain = Chain::default();
    let mut batch = Vec::with_capacity(10_000);
    for n in 0..count {
        batch.push(chain.seal(event(n)));
        if batch.len() == 10_000 {
            store.insert_all(&batch).unwrap();
            batch.clear();
        }
    }
    store.insert_all(&batch).unwrap();
    println!("filled {} events in {:.1} s", store.len().unwrap(), started.elapsed().as_secs_f64());

    let queries = [
        (
            "denials of one agent, newest 50",
            AuditQuery {
                agent: Some("refund-bot".into()),
                verdict: Some("deny".into()),
                limit: Some(50),
                ..AuditQuery::default()
            },
        ),
        (
            "one task's events",
            AuditQuery { task: Some(format!("T-{}", count / 40)), ..AuditQuery::default() },
        ),
        (
            "one tool's denials since 18:00, newest 100",
            AuditQuery {
                tool: Some("issue_refund".into()),
                verdict: Some("deny".into()),
                since: Some("2026-11-25T18:00:00.000Z".into()),
                limit: Some(100),
                ..AuditQuery::default()
            },
        ),
    ];
    for (name, query) in queries {
        let mut samples = Vec::with_capacity(200);
        let mut found = 0;
        for _ in 0..200 {
            let start = Instant::now();
            found = store.query(&query).unwrap().len();
            samples.push(start.elapsed());
        }
        report(name, samples, found);
    }
}
