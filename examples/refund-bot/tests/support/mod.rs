//! Shared helpers: run the demo queue in-process against a fresh audit dir.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use refund_bot::demo::{self, DemoOutcome, ModelChoice, Presentation};
use refund_bot::manifest::{ApprovalChannel, Manifest, ToolSource, default_path};
use refund_bot::runtime::{Settings, offered_tools};
use refund_bot::transcript::Style;

/// Runs the shipped queue with `model`, `approver` and `tools`, its audit under `dir`; returns the
/// outcome and the transcript.
pub async fn run_demo(
    dir: &std::path::Path,
    model: &ModelChoice,
    approver: ApprovalChannel,
    tools: ToolSource,
) -> (DemoOutcome, String) {
    run_demo_logged(dir, "audit.jsonl", model, approver, tools).await
}

/// [`run_demo`] with the log named `log_name` in `dir` (two runs sharing one dir and its keys).
pub async fn run_demo_logged(
    dir: &std::path::Path,
    log_name: &str,
    model: &ModelChoice,
    approver: ApprovalChannel,
    tools: ToolSource,
) -> (DemoOutcome, String) {
    let mut manifest = Manifest::load(default_path(), &offered_tools()).unwrap();
    manifest.audit.dir = dir.to_owned();
    manifest.audit.witness_dir = dir.join("witness");
    let settings = Settings {
        tools: Some(tools),
        database: None,
        approver: Some(approver),
        audit_log: Some(dir.join(log_name)),
        ledger: Some(dir.join("ledger.sqlite")),
        ..Settings::default()
    };
    let presentation = Presentation { style: Style::new(false), progress: false };
    let mut transcript = Vec::new();
    let outcome = demo::run(manifest, settings, model, presentation, &mut transcript).await;
    let transcript = String::from_utf8(transcript).unwrap();
    match outcome {
        Ok(outcome) => (outcome, transcript),
        Err(error) => panic!("the demo failed to run: {error}\n{transcript}"),
    }
}

/// Per ticket: id, verdict word, tools run, tools refused with their reason codes.
pub fn fingerprint(outcome: &DemoOutcome) -> Vec<String> {
    outcome
        .tickets
        .iter()
        .map(|ticket| {
            format!(
                "{} {} ran={:?} denied={:?}",
                ticket.id,
                refund_bot::transcript::verdict_word(&ticket.verdict),
                ticket.executed,
                ticket.denied
            )
        })
        .collect()
}

/// The shipped manifest copied into `dir` as `file_name`: its paths made absolute (a manifest's
/// paths are relative to it), its audit dir and budget ledger in `dir`, then `edit` applied to
/// the TOML; loaded.
pub fn manifest_in(
    dir: &std::path::Path,
    file_name: &str,
    edit: impl FnOnce(&mut toml::Table),
) -> Manifest {
    let shipped = default_path();
    let base = shipped.parent().unwrap();
    let mut file: toml::Table = std::fs::read_to_string(&shipped).unwrap().parse().unwrap();
    for (section, key) in [("tools", "database"), ("policy", "bundle"), ("queue", "tickets")] {
        let relative = file[section][key].as_str().unwrap();
        let path = base.join(relative).canonicalize().unwrap();
        set(&mut file, &[section, key], path.display().to_string().into());
    }
    set(&mut file, &["audit", "dir"], dir.join("audit").display().to_string().into());
    let ledger = dir.join("manifest-ledger.sqlite").display().to_string();
    set(&mut file, &["budget", "ledger"], ledger.into());
    edit(&mut file);
    let path = dir.join(file_name);
    std::fs::write(&path, file.to_string()).unwrap();
    Manifest::load(&path, &offered_tools()).unwrap()
}

/// Sets the value at `path` (tables, then a key) in a TOML document.
pub fn set(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let (key, tables) = path.split_last().unwrap();
    let mut at = table;
    for name in tables {
        at = at.get_mut(*name).and_then(toml::Value::as_table_mut).unwrap();
    }
    at.insert((*key).to_owned(), value);
}

/// Whether `event` belongs to the call the runtime numbered `call`.
pub fn is_call(event: &agent_core::SealedEvent, call: &str) -> bool {
    event.event.call_id.as_ref().is_some_and(|id| id.as_str() == call)
}

/// The policy guard's event for `call`.
pub fn policy_event<'e>(
    log: &'e [agent_core::SealedEvent],
    call: &str,
) -> &'e agent_core::AuditEvent {
    let found = log.iter().find(|e| is_call(e, call) && e.event.guard.as_deref() == Some("policy"));
    &found.unwrap_or_else(|| panic!("no policy event for {call}")).event
}

/// The demo's log at `log` reopened for appending as the runtime would: signed with the keys
/// beside it, anchored in its witness. Close it to seal the log again.
pub fn signing_sink(log: &std::path::Path) -> agent_core::audit::JsonlSink {
    use agent_core::audit::{Checkpoints, Fsync, JsonlSink};
    use std::sync::Arc;
    let manifest = Manifest::load(default_path(), &offered_tools()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let keys =
        guards::credentials::KeyRing::open(log.parent().unwrap().join("keys"), now.as_secs())
            .unwrap();
    let issuer =
        Arc::new(guards::credentials::Issuer::new(&manifest.credentials.issuer, keys).unwrap());
    let witness = refund_bot::runtime::witness_for(&manifest, log);
    let checkpoints = Checkpoints::new(Arc::new(guards::notary::IssuerNotary::new(issuer)))
        .with_anchor(Arc::new(witness));
    JsonlSink::open_signed(log, Fsync::OnCommit, checkpoints).unwrap()
}

/// Runs the `refund-bot` binary with `args`, never against the real API.
pub fn refund_bot(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_refund-bot"))
        // Never the real API from a test, whatever the developer's shell holds.
        .env_remove("ANTHROPIC_API_KEY")
        .args(args)
        .output()
        .unwrap()
}
