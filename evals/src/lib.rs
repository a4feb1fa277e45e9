//! The adversarial eval harness: scenario files, compromised-model replay, positive controls, the
//! scorecard and the release gate.
//!
//! Assume the model is fully compromised. A scenario ([`scenario`]) scripts what the attacker
//! makes the model ask for, and the runtime, not the model, must hold: [`harness`] runs it against
//! a fresh database through the refund bot's manifest and real pipeline, with the scripted human
//! the file describes. Every attack also runs with the controls off, as a positive control: if
//! its aims do not happen even then, the scenario is **inert** and fails, so a broken fixture
//! cannot pass as a stopped attack. [`metrics`] and [`report`] turn the results into the scorecard
//! (`evals/report.md`) and JSON; `cargo run -p evals -- run` is the release gate.

pub mod approver;
pub mod drift;
pub mod harness;
pub mod metrics;
pub mod model;
pub mod report;
pub mod scenario;

pub use harness::{Harness, ScenarioResult};
pub use metrics::{Metrics, Scorecard};
pub use scenario::{Scenario, ScenarioError, load_dirs};

/// Runs every scenario in order and returns the scorecard.
pub async fn run_all(harness: &Harness, scenarios: &[Scenario]) -> Result<Scorecard, String> {
    let mut results = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        results.push(harness.run(scenario).await?);
    }
    Ok(Scorecard::new(results))
}
