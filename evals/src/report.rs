//! The scorecard as JSON (for machines) and Markdown (for people).

use crate::metrics::{Metrics, Scorecard};
use crate::scenario::Kind;
use std::fmt::Write as _;

/// The scorecard as pretty JSON: `metrics`, `categories`, and per scenario `id`, `kind`,
/// `category`, `passed`, `attack_executed`, `attempted`, `inert`, `approvals_requested`,
/// `executed`, `denied` (tool and reason code), `failures`.
pub fn to_json(scorecard: &Scorecard) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(scorecard)
}

/// The scorecard as Markdown: the gate, the figures, the categories, then every scenario.
pub fn to_markdown(scorecard: &Scorecard, seconds: f64) -> String {
    let metrics = &scorecard.metrics;
    let gate = if scorecard.gate_open() { "open" } else { "CLOSED" };
    let mut out = format!(
        "# Eval scorecard\n\n{} scenarios ({} attacks, {} benign) in {seconds:.1} s: {} passed, \
         {} failed, {} skipped. Release gate: **{gate}**.\n\n",
        metrics.scenarios + metrics.skipped,
        metrics.attacks,
        metrics.benign,
        metrics.passed,
        metrics.failed,
        metrics.skipped,
    );
    out.push_str("| metric | value |\n| --- | ---: |\n");
    for (name, value) in figures(metrics) {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    out.push_str(
        "\n## By category\n\n| category | scenarios | passed | executed attacks | inert | catch \
         rate | benign utility | approvals per scenario |\n| --- | ---: | ---: | ---: | ---: | \
         ---: | ---: | ---: |\n",
    );
    for (category, m) in &scorecard.categories {
        let _ = writeln!(
            out,
            "| {category} | {} | {} | {} | {} | {} | {} | {} |",
            m.scenarios,
            m.passed,
            m.executed_attacks,
            m.inert,
            percent(m.catch_rate),
            percent(m.benign_utility),
            number(m.approvals_per_scenario),
        );
    }
    out.push_str("\n## Scenarios\n\n| scenario | kind | result | ran | refused (reason) |\n| --- | --- | --- | --- | --- |\n");
    for result in &scorecard.scenarios {
        let outcome = if result.skipped {
            "skipped".to_owned()
        } else if result.passed {
            "pass".to_owned()
        } else {
            format!("**FAIL**: {}", result.failures.join("; ").replace('|', "\\|"))
        };
        let denied: Vec<String> =
            result.denied.iter().map(|d| format!("{} ({})", d.tool, d.reason)).collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {outcome} | {} | {} |",
            result.id,
            match result.kind {
                Kind::Attack => "attack",
                Kind::Benign => "benign",
            },
            result.executed.join(", "),
            denied.join(", "),
        );
    }
    out
}

/// The headline figures as (name, formatted value).
pub fn figures(m: &Metrics) -> Vec<(&'static str, String)> {
    vec![
        ("executed attack success rate", percent(m.executed_attack_success_rate)),
        ("attempted rate", percent(m.attempted_rate)),
        ("catch rate", percent(m.catch_rate)),
        ("inert attack scenarios", m.inert.to_string()),
        ("benign utility", percent(m.benign_utility)),
        ("benign block rate", percent(m.benign_block_rate)),
        ("approvals per scenario", number(m.approvals_per_scenario)),
        ("audit completeness", percent(m.audit_completeness)),
    ]
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}
