//! A runtime killed mid-call leaves a log that verifies as "not sealed", never as tampered: the
//! checkpoints before the kill are signed, the witness is never ahead of the log, and a line torn
//! by the crash is named as torn.
//!
//! The runtime here is a real process: this test binary started again as a child (the
//! `child_runtime` test, which does nothing unless `WARDEN_CRASH_DIR` is set). It signs its log
//! with the issuer's key, checkpoints every 50 ms, and runs a refund whose tool never returns; the
//! parent waits for the intent record, then kills it with SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_core::audit::{
    AuditLog, CheckpointPolicy, Checkpoints, Fsync, IntegrityVerdict, JsonlSink, WitnessCheck,
    WitnessFile, check_log, verify_file,
};
use agent_core::pipeline::CallRequest;
use agent_core::tool::Invocation;
use agent_core::{
    CallContext, EffectClass, Pipeline, Scope, Tool, ToolError, ToolMenu, ToolName, ToolOutput,
    ToolSpec,
};
use guards::credentials::{Issuer, KeyRing};
use guards::notary::{IssuerNotary, LogSignatures};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "warden-crash-test";
const CHILD: &str = "WARDEN_CRASH_DIR";

/// A refund that starts and never finishes: the process dies while it runs.
struct HangingRefund(ToolSpec);

#[async_trait::async_trait]
impl Tool for HangingRefund {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    async fn call(&self, _input: Value, _call: &Invocation) -> Result<ToolOutput, ToolError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Err(ToolError::Internal("unreachable: the process is killed first".to_owned()))
    }
}

fn signed_sink(dir: &Path) -> JsonlSink {
    let keys = KeyRing::open(dir.join("keys"), now()).unwrap();
    let issuer = Arc::new(Issuer::new(ISSUER, keys).unwrap());
    let policy = CheckpointPolicy { every_events: 1000, every: Duration::from_millis(50) };
    let checkpoints = Checkpoints::new(Arc::new(IssuerNotary::new(issuer)))
        .with_policy(policy)
        .with_anchor(Arc::new(witness(dir)));
    JsonlSink::open_signed(dir.join("audit.jsonl"), Fsync::OnCommit, checkpoints).unwrap()
}

fn witness(dir: &Path) -> WitnessFile {
    WitnessFile::for_log(dir.join("witness"), dir.join("audit.jsonl"))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The child: a runtime that signs its log and hangs in a refund. Does nothing as a plain test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_runtime() {
    let Some(dir) = std::env::var_os(CHILD) else { return };
    let dir = Path::new(&dir);
    let spec = ToolSpec::new(
        ToolName::new("issue_refund").unwrap(),
        "Refunds an order.",
        json!({"type": "object"}),
        Scope::new("refunds:write").unwrap(),
    )
    .effect(EffectClass::Irreversible);
    let menu = ToolMenu::new([Arc::new(HangingRefund(spec)) as Arc<dyn Tool>]).unwrap();
    let pipeline = Pipeline::new(Arc::new(menu), AuditLog::new(Arc::new(signed_sink(dir))));
    let ctx = CallContext::new("refund-bot".into(), "T-crash".into());
    for n in 0..5 {
        let request = CallRequest::new("issue_refund", json!({"order_id": format!("#W{n}")}));
        let authorized = pipeline.authorize(&request, &ctx).await.unwrap();
        // Give the signer a moment on the way, so the log holds timed checkpoints too.
        tokio::time::sleep(Duration::from_millis(60)).await;
        if n == 4 {
            // The intent is durable; the tool hangs until the parent kills this process.
            let _ = pipeline.menu().invoke(authorized).await;
        }
    }
}

#[test]
fn a_runtime_killed_between_intent_and_outcome_is_unsealed_not_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_runtime", "--nocapture"])
        .env(CHILD, dir.path())
        .spawn()
        .unwrap();
    let log = dir.path().join("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let intents = || {
        std::fs::read_to_string(&log).unwrap_or_default().matches("\"stage\":\"intent\"").count()
    };
    while intents() < 5 {
        assert!(Instant::now() < deadline, "the child never reached its last intent");
        assert!(child.try_wait().unwrap().is_none(), "the child ended before it was killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let jwks = dir.path().join("keys/audit-jwks.json");
    let signatures = LogSignatures::from_jwks_file(ISSUER, &jwks).unwrap();
    let expect_witness = WitnessCheck::Expect(witness(dir.path()));
    let integrity = check_log(&log, &signatures, &expect_witness).unwrap();
    assert_eq!(integrity.verdict, IntegrityVerdict::Unsealed, "{}", integrity.describe());
    assert!(integrity.findings.is_empty(), "{}", integrity.describe());
    assert!(integrity.checkpoints.len() >= 2, "timed checkpoints were signed before the kill");
    assert!(!integrity.last_checkpoint().unwrap().head.sealed);
    assert_eq!(integrity.torn_line, None);
    let described = integrity.describe();
    assert!(described.contains("INTACT, NOT SEALED"), "{described}");
    assert!(described.contains("signed checkpoints; the last (line"), "{described}");

    // The crash tore a line in the middle of its write.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"seq\":");
    std::fs::write(&log, &bytes).unwrap();
    let torn = check_log(&log, &signatures, &expect_witness).unwrap();
    assert_eq!(torn.verdict, IntegrityVerdict::Unsealed, "{}", torn.describe());
    assert_eq!(torn.torn_line, Some(integrity.events + 1));
    assert!(torn.describe().contains("is torn"), "{}", torn.describe());
    // The chain-only check calls the same log broken: telling a crash from an attack is the
    // full check's work.
    assert!(verify_file(&log).is_err());

    // Positive control: the same kind of run closed cleanly is sealed.
    let clean = tempfile::tempdir().unwrap();
    let sink = signed_sink(clean.path());
    sink.close().unwrap();
    let signatures =
        LogSignatures::from_jwks_file(ISSUER, &clean.path().join("keys/audit-jwks.json")).unwrap();
    let sealed = check_log(
        clean.path().join("audit.jsonl"),
        &signatures,
        &WitnessCheck::Expect(witness(clean.path())),
    )
    .unwrap();
    assert_eq!(sealed.verdict, IntegrityVerdict::Sealed, "{}", sealed.describe());
}

/// A key rotated away (and pruned, once its tokens have all expired) still verifies the
/// checkpoints it signed: the audit JWK set keeps every key that ever signed.
#[tokio::test]
async fn checkpoints_signed_before_a_rotation_and_a_prune_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyRing::open(dir.path().join("keys"), now()).unwrap();
    let issuer = Arc::new(Issuer::new(ISSUER, keys).unwrap());
    let checkpoints = Checkpoints::new(Arc::new(IssuerNotary::new(Arc::clone(&issuer))))
        .with_anchor(Arc::new(witness(dir.path())));
    let log = dir.path().join("audit.jsonl");
    let sink = JsonlSink::open_signed(&log, Fsync::OnCommit, checkpoints).unwrap();
    let first = sink.checkpoint_now().unwrap();
    assert!(first.is_none(), "nothing unsigned after the header's checkpoint");
    let old_key = witness(dir.path()).read().unwrap().unwrap().key_id;
    issuer.rotate().unwrap();
    let removed = issuer.prune(now() + 10 * 24 * 3600).unwrap();
    assert_eq!(
        removed,
        std::slice::from_ref(&old_key),
        "the old key is gone from the token JWK set"
    );
    let sealed = sink.close().unwrap().unwrap();
    assert_ne!(sealed.key_id, old_key, "the seal is signed with the new key");

    let audit_jwks = dir.path().join("keys/audit-jwks.json");
    let signatures = LogSignatures::from_jwks_file(ISSUER, &audit_jwks).unwrap();
    let witness = WitnessCheck::Expect(witness(dir.path()));
    let integrity = check_log(&log, &signatures, &witness).unwrap();
    assert_eq!(integrity.verdict, IntegrityVerdict::Sealed, "{}", integrity.describe());
    let signers: Vec<&str> = integrity.checkpoints.iter().map(|c| c.key_id.as_str()).collect();
    assert_eq!(signers, [old_key.as_str(), sealed.key_id.as_str()]);

    // Positive control: the token JWK set no longer holds the old key, so it cannot verify the
    // first checkpoint; only the audit JWK set can.
    let tokens_only =
        LogSignatures::from_jwks_file(ISSUER, &dir.path().join("keys/jwks.json")).unwrap();
    let with_token_keys = check_log(&log, &tokens_only, &witness).unwrap();
    assert_eq!(with_token_keys.verdict, IntegrityVerdict::Tampered);
}
