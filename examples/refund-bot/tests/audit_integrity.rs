//! The audit log against someone who can write it: each attack an outside review made on a real
//! demo log, made again here and caught, with its positive control.
//!
//! Every attack leaves a log whose hash chain still verifies (the chain-only check,
//! `verify_file`, passes: that is the control), so what catches it is a signature or the
//! witness, never the chain. The untouched log of the same run is intact and sealed, so the
//! checks do not simply refuse every log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::audit::{
    AuditStore, FindingKind, Integrity, IntegrityVerdict, WitnessCheck, WitnessFile, check_log,
    verify_file,
};
use guards::notary::LogSignatures;
use refund_bot::demo::ModelChoice;
use refund_bot::manifest::{ApprovalChannel, Manifest, ToolSource, default_path};
use refund_bot::runtime::{audit_jwks_for, offered_tools, witness_for};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use support::{refund_bot, run_demo_logged};

/// One demo run's log, with the keys and witness the runtime kept for it.
struct Run {
    _dir: tempfile::TempDir,
    log: PathBuf,
}

/// Runs the offline demo (every approval answered no) into a fresh directory.
async fn demo() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, transcript) = run_demo_logged(
        dir.path(),
        "audit.jsonl",
        &ModelChoice::Gullible,
        ApprovalChannel::Deny,
        ToolSource::InProcess,
    )
    .await;
    assert!(outcome.all_good(), "{transcript}");
    assert_eq!(outcome.integrity, IntegrityVerdict::Sealed, "{transcript}");
    Run { log: outcome.audit_path, _dir: dir }
}

fn manifest() -> Manifest {
    Manifest::load(default_path(), &offered_tools()).unwrap()
}

/// The full check, with the JWK set and witness the runtime kept.
fn check(log: &Path) -> Integrity {
    let manifest = manifest();
    let signatures =
        LogSignatures::from_jwks_file(&manifest.credentials.issuer, &audit_jwks_for(log)).unwrap();
    let witness = WitnessCheck::Expect(witness_for(&manifest, log));
    check_log(log, &signatures, &witness).unwrap()
}

fn kinds(integrity: &Integrity) -> Vec<FindingKind> {
    integrity.findings.iter().map(|finding| finding.kind).collect()
}

/// The full check of `log`, which must find it tampered, with a finding of `kind`.
fn tampered_with(log: &Path, kind: FindingKind) -> Integrity {
    let integrity = check(log);
    assert_eq!(integrity.verdict, IntegrityVerdict::Tampered, "{}", integrity.describe());
    assert!(kinds(&integrity).contains(&kind), "no {kind:?} in {}", integrity.describe());
    integrity
}

/// The positive control: the tampered log passes the chain-only check.
fn chain_only_passes(log: &Path) {
    verify_file(log).unwrap_or_else(|error| panic!("the attack broke the chain itself: {error}"));
}

fn lines(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// Writes `events` as a fresh, valid chain: renumbered, every link and hash recomputed, as an
/// attacker who knows the format would.
fn write_rechained(log: &Path, events: Vec<Value>) {
    let mut previous = agent_core::audit::GENESIS_HASH.to_owned();
    let mut text = String::new();
    for (seq, mut event) in events.into_iter().enumerate() {
        let fields = event.as_object_mut().unwrap();
        fields.insert("seq".to_owned(), json!(seq));
        fields.insert("prev_hash".to_owned(), json!(previous));
        fields.remove("hash");
        let hash = agent_core::canonical::digest(&event);
        event["hash"] = json!(hash);
        previous = hash;
        text.push_str(&serde_json::to_string(&event).unwrap());
        text.push('\n');
    }
    std::fs::write(log, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_log_is_intact_and_sealed_with_its_approvals_verified() {
    let run = demo().await;
    let integrity = check(&run.log);
    assert_eq!(integrity.verdict, IntegrityVerdict::Sealed, "{}", integrity.describe());
    assert!(integrity.findings.is_empty());
    assert!(integrity.approvals_verified > 0, "the demo asks a reviewer: {}", integrity.describe());
    assert_eq!(integrity.unsigned_events, 0);
    let last = integrity.last_checkpoint().unwrap();
    assert!(last.head.sealed);
    assert_eq!(last.head.size + 1, integrity.events, "the seal is the last line");

    // The command says the same, with its own exit code, and the same as JSON.
    let verify = refund_bot(&["audit", "verify", run.log.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stdout));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("INTACT AND SEALED"));
    let json = refund_bot(&["audit", "verify", run.log.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["verdict"], "sealed");
    assert_eq!(report["events"], integrity.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_last_lines_is_truncation() {
    let run = demo().await;
    let kept: Vec<Value> = lines(&run.log);
    let kept = kept[..kept.len() - 20].to_vec();
    let text: String = kept.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(&run.log, text).unwrap();
    chain_only_passes(&run.log);

    tampered_with(&run.log, FindingKind::Truncated);
    let verify = refund_bot(&["audit", "verify", run.log.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("cut short"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_only_the_first_line_is_truncation() {
    let run = demo().await;
    let first = std::fs::read_to_string(&run.log).unwrap().lines().next().unwrap().to_owned();
    std::fs::write(&run.log, format!("{first}\n")).unwrap();
    chain_only_passes(&run.log);
    let integrity = check(&run.log);
    assert_eq!(kinds(&integrity), [FindingKind::Truncated], "{}", integrity.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_file_is_tampering() {
    let run = demo().await;
    std::fs::write(&run.log, "").unwrap();
    chain_only_passes(&run.log);
    tampered_with(&run.log, FindingKind::Empty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_attack_ticket_and_rechaining_breaks_the_signed_heads() {
    let run = demo().await;
    let events = lines(&run.log);
    let attack = events
        .iter()
        .filter_map(|event| event["task"].as_str())
        .find(|task| task.starts_with("T-21"))
        .unwrap()
        .to_owned();
    let kept: Vec<Value> = events.into_iter().filter(|event| event["task"] != attack).collect();
    write_rechained(&run.log, kept);
    chain_only_passes(&run.log);

    tampered_with(&run.log, FindingKind::CheckpointMismatch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_every_deny_into_allow_and_rechaining_breaks_the_signed_heads() {
    let run = demo().await;
    let mut events = lines(&run.log);
    let mut flipped = 0;
    for event in &mut events {
        if event["verdict"] == "deny" {
            event["verdict"] = json!("allow");
            flipped += 1;
        }
    }
    assert!(flipped > 0, "the demo denies calls");
    write_rechained(&run.log, events);
    chain_only_passes(&run.log);

    let integrity = tampered_with(&run.log, FindingKind::CheckpointMismatch);
    assert!(kinds(&integrity).contains(&FindingKind::Replaced), "the witness sees it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_flipped_to_approved_fail_their_own_signatures() {
    let run = demo().await;
    let mut events = lines(&run.log);
    let mut flipped = 0;
    for event in &mut events {
        if event["stage"] == "approval" && event["detail"]["record"]["decision"] == "denied" {
            event["detail"]["record"]["decision"] = json!("approved");
            event["verdict"] = json!("allow");
            event["reasons"] = json!([]);
            flipped += 1;
        }
    }
    assert!(flipped > 0);
    write_rechained(&run.log, events);
    chain_only_passes(&run.log);

    let integrity = check(&run.log);
    let mismatched = integrity
        .findings
        .iter()
        .filter(|finding| finding.kind == FindingKind::ApprovalMismatch)
        .count();
    assert_eq!(mismatched, flipped, "{}", integrity.describe());
    // The review, which would have counted them as approved, refuses the log.
    let review = refund_bot(&["audit", "review", run.log.to_str().unwrap()]);
    assert_eq!(review.status.code(), Some(1));
    assert!(review.stdout.is_empty());
    assert!(String::from_utf8_lossy(&review.stderr).contains("TAMPERED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_runs_log_in_its_place_is_replacement() {
    let dir = tempfile::tempdir().unwrap();
    // Two runs in one directory: one key set, so every signature in the other log verifies.
    let mut logs = Vec::new();
    for name in ["first.jsonl", "second.jsonl"] {
        let (outcome, transcript) = run_demo_logged(
            dir.path(),
            name,
            &ModelChoice::Gullible,
            ApprovalChannel::Deny,
            ToolSource::InProcess,
        )
        .await;
        assert_eq!(outcome.integrity, IntegrityVerdict::Sealed, "{transcript}");
        logs.push(outcome.audit_path);
    }
    std::fs::copy(&logs[1], &logs[0]).unwrap();
    chain_only_passes(&logs[0]);
    let integrity = check(&logs[0]);
    assert_eq!(kinds(&integrity), [FindingKind::Replaced], "{}", integrity.describe());
    assert!(integrity.findings[0].message.contains("replaced"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_witness_is_missing_evidence() {
    let run = demo().await;
    let witness = witness_for(&manifest(), &run.log);
    assert!(witness.read().unwrap().is_some(), "the runtime kept a witness");
    std::fs::remove_file(witness.path()).unwrap();
    chain_only_passes(&run.log);

    let integrity = check(&run.log);
    assert_eq!(kinds(&integrity), [FindingKind::WitnessMissing], "{}", integrity.describe());
    // A log signed by the runtime has a witness whether or not the auditor expects one.
    let signatures =
        LogSignatures::from_jwks_file(&manifest().credentials.issuer, &audit_jwks_for(&run.log))
            .unwrap();
    let if_signed = WitnessCheck::IfSigned(WitnessFile::at(witness.path()));
    let lenient = check_log(&run.log, &signatures, &if_signed).unwrap();
    assert_eq!(kinds(&lenient), [FindingKind::WitnessMissing]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_rows_deleted_no_longer_mirrors_its_log_and_is_rebuilt() {
    let run = demo().await;
    let store_path = run.log.with_extension("sqlite");
    let integrity = check(&run.log);
    {
        let store = AuditStore::open(&store_path).unwrap();
        assert_eq!(
            store.mismatch_with(&integrity).unwrap(),
            None,
            "the run's store mirrors its log"
        );
        assert_eq!(store.head().unwrap().unwrap().head, integrity.last_checkpoint().unwrap().head);
    }
    let connection = rusqlite::Connection::open(&store_path).unwrap();
    let deleted = connection.execute("DELETE FROM events WHERE verdict = 'deny'", []).unwrap();
    assert!(deleted > 0);
    drop(connection);
    let store = AuditStore::open(&store_path).unwrap();
    let why = store.mismatch_with(&integrity).unwrap().expect("the deletion is seen");
    assert!(why.contains("lacks event"), "{why}");
    drop(store);

    // The command says so, rebuilds the store from the checked log, and answers in full.
    let query = refund_bot(&["audit", "query", run.log.to_str().unwrap(), "--verdict", "deny"]);
    assert!(query.status.success(), "{}", String::from_utf8_lossy(&query.stderr));
    assert!(String::from_utf8_lossy(&query.stderr).contains("does not mirror its log"));
    let rows = String::from_utf8_lossy(&query.stdout).lines().count();
    assert_eq!(rows, deleted);
    let store = AuditStore::open(&store_path).unwrap();
    assert_eq!(store.mismatch_with(&integrity).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rewritten_as_never_signed_with_its_witness_gone_is_still_tampered() {
    let run = demo().await;
    let mut events = lines(&run.log);
    // The forger claims the log was never signed: no checkpoints, a header that says so.
    events.retain(|event| event["stage"] != "checkpoint");
    events[0]["detail"]["signed"] = json!(false);
    events[0]["detail"].as_object_mut().unwrap().remove("witness");
    write_rechained(&run.log, events);
    std::fs::remove_file(witness_for(&manifest(), &run.log).path()).unwrap();
    chain_only_passes(&run.log);

    // The refund bot signs every log it writes, so a log of its without a witness is tampered.
    let verify = refund_bot(&["audit", "verify", run.log.to_str().unwrap(), "--json"]);
    assert_eq!(verify.status.code(), Some(1), "{}", String::from_utf8_lossy(&verify.stdout));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["findings"][0]["kind"], "witness_missing", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_without_closing_is_not_sealed_and_says_what_is_unsigned() {
    use agent_core::audit::{AuditEvent, AuditLog, Commit, Stage, Verdict};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let audit = AuditLog::new(std::sync::Arc::new(support::signing_sink(&log)));
    let agent = agent_core::AgentId::from("refund-bot");
    for task in ["T-1", "T-2"] {
        let started = AuditEvent::for_task(
            &agent,
            std::slice::from_ref(&agent),
            &agent_core::TaskId::from(task),
            Stage::Task,
            Verdict::Started,
        );
        audit.record(started, Commit::Durable).await.unwrap();
    }
    // The process stops here: no close, no seal.
    drop(audit);

    let verify = refund_bot(&["audit", "verify", log.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(3), "{said}");
    assert!(said.contains("INTACT, NOT SEALED"), "{said}");
    assert!(said.contains("2 events after the last checkpoint are not signed"), "{said}");
    // A torn last line, as a crash mid-write leaves it, is named, and is still no tampering.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(br#"{"seq":4,"time":"#);
    std::fs::write(&log, bytes).unwrap();
    let torn = refund_bot(&["audit", "verify", log.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&torn.stdout);
    assert_eq!(torn.status.code(), Some(3), "{said}");
    assert!(said.contains("line 5 is torn"), "{said}");
    // Query and review still answer, with a warning.
    let query = refund_bot(&["audit", "query", log.to_str().unwrap()]);
    assert!(query.status.success(), "{}", String::from_utf8_lossy(&query.stderr));
    assert!(String::from_utf8_lossy(&query.stderr).contains("NOT SEALED"));
}
