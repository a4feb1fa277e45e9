//! `cargo run -p evals -- run`: the red-team suite and release gate.
//!
//! ```text
//! cargo run -p evals -- run [--scenarios DIR]... [--db PATH] [--manifest PATH]
//!                           [--json OUT] [--markdown OUT]
//! ```
//!
//! Prints one line per scenario, the figures, and last `N passed, N failed`; writes the Markdown
//! scorecard (default `evals/report.md`) and, when asked, the JSON. Exits 1 if any scenario
//! failed: an executed attack, an inert attack, or a benign ticket not served.

use agent_core::model::AnthropicConfig;
use evals::report::{figures, to_json, to_markdown};
use evals::{Harness, ScenarioResult, load_dirs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
Usage: evals run [--scenarios DIR]... [--db PATH] [--manifest PATH] [--json OUT] [--markdown OUT]

Runs every scenario (*.toml) in the scenario directories against a fresh copy of the database,
through the agent manifest's real pipeline, with the scripted reviewer each file describes. Every
attack also runs with the controls off: it must then succeed, or it is reported as inert. Exits 1
if any attack executed, any attack is inert, or any benign scenario was not served.

Options:
  --scenarios DIR   a directory of scenario files (repeatable; default: evals/scenarios)
  --db PATH         the database (default: the manifest's, tools/data/demo-db.json)
  --manifest PATH   the agent manifest (default: examples/refund-bot/agent.toml)
  --json OUT        also write the scorecard as JSON
  --markdown OUT    where the Markdown scorecard goes (default: evals/report.md)
  -h, --help        print this help

Environment:
  ANTHROPIC_API_KEY  run the `kind = \"claude\"` scenarios too (skipped without it)";

struct Options {
    scenarios: Vec<PathBuf>,
    database: Option<PathBuf>,
    manifest: PathBuf,
    json: Option<PathBuf>,
    markdown: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<bool, String> {
    let started = Instant::now();
    let scenarios = load_dirs(&options.scenarios).map_err(|e| e.to_string())?;
    let harness = Harness {
        manifest: options.manifest,
        database: options.database,
        claude: AnthropicConfig::from_env("claude-sonnet-5").ok(),
    };
    let mut results = Vec::new();
    for scenario in &scenarios {
        let result = harness.run(scenario).await?;
        println!("{}", line(&result));
        results.push(result);
    }
    let scorecard = evals::Scorecard::new(results);
    let seconds = started.elapsed().as_secs_f64();
    println!();
    for (name, value) in figures(&scorecard.metrics) {
        println!("{name:<30} {value}");
    }
    write(&options.markdown, &to_markdown(&scorecard, seconds))?;
    println!("scorecard                      {}", options.markdown.display());
    if let Some(path) = &options.json {
        write(path, &to_json(&scorecard).map_err(|e| e.to_string())?)?;
        println!("json                           {}", path.display());
    }
    println!("time                           {seconds:.1} s");
    let metrics = &scorecard.metrics;
    println!("{} passed, {} failed", metrics.passed, metrics.failed);
    Ok(scorecard.gate_open())
}

/// One scenario's line.
fn line(result: &ScenarioResult) -> String {
    let status = match (result.skipped, result.passed) {
        (true, _) => "skip",
        (false, true) => "pass",
        (false, false) => "FAIL",
    };
    let why =
        if result.passed { String::new() } else { format!("  ({})", result.failures.join("; ")) };
    format!("{status}  {:<44} {:>5} ms{why}", result.id, result.millis)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("run") => {}
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return Ok(None);
        }
        Some(other) => return Err(format!("unknown command `{other}`")),
    }
    let mut options = Options {
        scenarios: Vec::new(),
        database: None,
        manifest: refund_bot::manifest::default_path(),
        json: None,
        markdown: here.join("report.md"),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().map(PathBuf::from).ok_or(format!("`{arg}` needs a path"));
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--scenarios" => options.scenarios.push(value()?),
            "--db" => options.database = Some(value()?),
            "--manifest" => options.manifest = value()?,
            "--json" => options.json = Some(value()?),
            "--markdown" => options.markdown = value()?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.scenarios.is_empty() {
        options.scenarios.push(here.join("scenarios"));
    }
    Ok(Some(options))
}
