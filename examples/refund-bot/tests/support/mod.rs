//! Shared helpers: run the demo queue in-process against a fresh audit dir.

#![allow(dead_code, clippy::unwrap_used)]

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
    let mut manifest = Manifest::load(default_path(), &offered_tools()).unwrap();
    manifest.audit.dir = dir.to_owned();
    let settings = Settings {
        tools: Some(tools),
        database: None,
        approver: Some(approver),
        audit_log: Some(dir.join("audit.jsonl")),
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
