//! Checking a large signed log: 1,000,000 events (guard verdicts with arguments, one signed
//! approval in every hundred) written through the signing sink on its default policy (a
//! checkpoint per 1,000 events), then checked in full (`check_log`: chain, every checkpoint and
//! approval signature, the witness) and by the chain alone (`verify_file`), three times each.
//!
//! Run: `cargo bench -p guards --bench audit_verify [-- EVENTS]` (figures in
//! docs/performance.md). The log takes about 0.6 GB in a temporary directory while it runs.

// A bench binary: its output is for people, and it has no API to document.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use agent_core::approval::{ApprovalNotary, ApprovalRecord};
use agent_core::audit::{
    AuditEvent, AuditSink, Checkpoints, Commit, Fsync, HeadSigner, JsonlSink, Stage, TreeHead,
    Verdict, WitnessCheck, WitnessFile, check_log, verify_file,
};
use agent_core::guard::Reason;
use agent_core::{AgentId, CallId, TaskId};
use guards::credentials::{Issuer, KeyRing};
use guards::notary::{IssuerNotary, LogSignatures};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let events: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let issuer = Arc::new(
        Issuer::new("warden", KeyRing::open(dir.path().join("keys"), now).unwrap()).unwrap(),
    );
    let notary = Arc::new(IssuerNotary::new(Arc::clone(&issuer)));
    let log = dir.path().join("audit.jsonl");
    let witness = WitnessFile::for_log(dir.path().join("witness"), &log);
    let checkpoints =
        Checkpoints::new(Arc::clone(&notary) as _).with_anchor(Arc::new(witness.clone()));
    let sink = JsonlSink::open_signed(&log, Fsync::Never, checkpoints).unwrap();

    // What one checkpoint costs the signing thread: the Ed25519 signature and its JWS.
    let mut signing = Vec::new();
    for size in 0..2_000 {
        let head = TreeHead {
            log_id: "log-bench".to_owned(),
            size,
            head_hash: "ab".repeat(32),
            time: "2026-12-01T00:00:00.000Z".to_owned(),
            sealed: false,
        };
        let start = Instant::now();
        HeadSigner::sign(notary.as_ref(), &head).unwrap();
        signing.push(start.elapsed());
    }
    signing.sort();
    println!(
        "signing one checkpoint: median {:.1} µs, p99 {:.1} µs (2000 heads)",
        signing[1000].as_secs_f64() * 1e6,
        signing[1980].as_secs_f64() * 1e6
    );

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let agent = AgentId::new("refund-bot");
        for n in 0..events.saturating_sub(2) {
            let task = TaskId::new(format!("T-{}@bench", n / 20));
            let call = CallId::new(format!("call-{n}"));
            let args = json!({"order_id": format!("#W{}", 1000 + n % 5000), "amount": 12.5,
                              "reason": "the mug arrived chipped"});
            let digest = agent_core::canonical::digest(&args);
            let mut event = AuditEvent::for_task(
                &agent,
                std::slice::from_ref(&agent),
                &task,
                Stage::Guard,
                Verdict::Allow,
            );
            event.call_id = Some(call.clone());
            event.tool = Some("issue_refund".to_owned());
            event.guard = Some("policy".to_owned());
            event.args_digest = Some(digest.clone());
            event.args = Some(args);
            if n % 100 == 99 {
                let record = ApprovalRecord {
                    request_id: format!("{task}/{call}"),
                    tool: "issue_refund".to_owned(),
                    task: task.clone(),
                    args_digest: digest,
                    decision: "approved".to_owned(),
                    approver: Some("alice".to_owned()),
                    channel: Some("web".to_owned()),
                    comment: None,
                    decided_at: event.time.clone(),
                    waited_ms: 900,
                };
                let signature = ApprovalNotary::sign(notary.as_ref(), &record).unwrap();
                event.stage = Stage::Approval;
                event.guard = None;
                event.detail = json!({ "record": record, "signature": signature });
            } else {
                event.reasons.push(Reason::new("allowed", "permit `refund-within-threshold`"));
            }
            sink.append(event, Commit::Buffered).await.unwrap();
        }
    });
    sink.close().unwrap();
    let written = started.elapsed();
    let bytes = std::fs::metadata(&log).unwrap().len();
    println!(
        "wrote {events} events ({:.0} MB) through the signing sink in {:.1} s",
        bytes as f64 / 1e6,
        written.as_secs_f64()
    );

    let signatures =
        LogSignatures::from_jwks_file("warden", &dir.path().join("keys/audit-jwks.json")).unwrap();
    let mut lines = 0;
    let mut full = Vec::new();
    let mut chain_only = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let integrity =
            check_log(&log, &signatures, &WitnessCheck::Expect(witness.clone())).unwrap();
        full.push(start.elapsed().as_secs_f64());
        assert_eq!(integrity.verdict, agent_core::audit::IntegrityVerdict::Sealed);
        // The run's events, the header and the checkpoints.
        assert!(integrity.events >= events);
        lines = integrity.events;
        let start = Instant::now();
        verify_file(&log).unwrap();
        chain_only.push(start.elapsed().as_secs_f64());
        if full.len() == 1 {
            println!(
                "  {} lines: {} checkpoints and {} approvals in the log",
                integrity.events,
                integrity.checkpoints.len(),
                integrity.approvals_verified
            );
        }
    }
    for (name, mut runs) in
        [("check_log (chain, signatures, witness)", full), ("verify_file (chain only)", chain_only)]
    {
        runs.sort_by(f64::total_cmp);
        let median = runs[1];
        println!(
            "{name:<40} median {median:>6.2} s   {:>8.0} lines/s   {:>6.1} MB/s",
            lines as f64 / median,
            bytes as f64 / 1e6 / median
        );
    }
}
