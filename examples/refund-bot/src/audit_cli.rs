//! `refund-bot audit …`: check and question an audit log.
//!
//! Each takes the log's path first, or reads the latest demo run's log without one.
//!
//! - `refund-bot audit verify PATH`: walks the hash chain; exits 1 at the first break, naming the
//!   line.
//! - `refund-bot audit query PATH [--agent A] [--task T] [--tool T] [--verdict V] [--since TIME]
//!   [--limit N] [--json]`: rebuilds the query store from the chain (verifying it first) and
//!   prints the matching events, newest first, as a table or as JSON lines.
//! - `refund-bot audit review PATH [--since RFC3339] [--out FILE]`: rebuilds the query store from
//!   the chain (verifying it first) and writes the weekly review of the events since `--since`
//!   (default: the 7 days up to the newest event) as Markdown, to stdout or to FILE. See
//!   [`agent_core::audit::review`] for how to read it.

use agent_core::audit::review::{Period, Review};
use agent_core::audit::{AuditQuery, AuditStore, StoreError, verify_file};
use std::process::ExitCode;

/// How far back a review looks when `--since` is not given.
const REVIEW_DAYS: u32 = 7;

/// The usage text of the `audit` subcommands.
pub const AUDIT_USAGE: &str = "\
Usage: refund-bot audit verify [PATH]
       refund-bot audit query [PATH] [--agent A] [--task T] [--tool T] [--verdict V]
                                     [--since RFC3339] [--limit N] [--json]
       refund-bot audit review [PATH] [--since RFC3339] [--out FILE]

PATH is an audit log; without it, the log of the latest demo run.

verify  checks the hash chain of the audit log at PATH and reports the first break (exit 1)
query   prints the events of the (verified) log matching every filter given, newest first
review  writes the weekly review of the (verified) log as Markdown: per agent, calls, tools
        never used (scope to trim), denials by reason, approvals, budget use and anomalies;
        covers the 7 days up to the newest event unless --since says otherwise";

/// The log a subcommand reads, and the flags after it: the path given first, or else the latest
/// log the demo wrote (named in `latest` in the shipped manifest's audit dir). `None` when there
/// is neither.
fn log_and_flags(args: &[String]) -> Option<(String, &[String])> {
    match args.split_first() {
        Some((path, flags)) if !path.starts_with("--") => Some((path.clone(), flags)),
        _ => {
            let manifest = crate::manifest::Manifest::load(
                crate::manifest::default_path(),
                &crate::runtime::offered_tools(),
            )
            .ok()?;
            let latest = crate::runtime::latest_log(&manifest.audit.dir);
            if latest.is_none() {
                eprintln!(
                    "no audit log given and no demo run on record in `{}`: run the demo first, \
                     or name a log",
                    manifest.audit.dir.display()
                );
            }
            latest.map(|path| (path.display().to_string(), args))
        }
    }
}

/// Runs an `audit` subcommand with the arguments after `audit`.
pub fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("verify") => verify(&args[1..]),
        Some("query") => query(&args[1..]),
        Some("review") => review(&args[1..]),
        _ => {
            eprintln!("{AUDIT_USAGE}");
            ExitCode::from(2)
        }
    }
}

fn verify(args: &[String]) -> ExitCode {
    let Some((path, [])) = log_and_flags(args) else {
        eprintln!("{AUDIT_USAGE}");
        return ExitCode::from(2);
    };
    let path = path.as_str();
    match verify_file(path) {
        Ok(summary) => {
            println!(
                "{path}: {} events, hash chain intact (head {})",
                summary.events, summary.head_hash
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn query(args: &[String]) -> ExitCode {
    let Some((path, flags)) = log_and_flags(args) else {
        eprintln!("{AUDIT_USAGE}");
        return ExitCode::from(2);
    };
    let path = &path;
    let mut filter = AuditQuery::default();
    let mut json = false;
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let mut value = || flags.next().cloned();
        let target = match flag.as_str() {
            "--json" => {
                json = true;
                continue;
            }
            "--agent" => &mut filter.agent,
            "--task" => &mut filter.task,
            "--tool" => &mut filter.tool,
            "--verdict" => &mut filter.verdict,
            "--since" => &mut filter.since,
            "--limit" => {
                match value().and_then(|limit| limit.parse().ok()) {
                    Some(limit) => filter.limit = Some(limit),
                    None => {
                        eprintln!("`--limit` needs a number\n\n{AUDIT_USAGE}");
                        return ExitCode::from(2);
                    }
                }
                continue;
            }
            other => {
                eprintln!("unknown option `{other}`\n\n{AUDIT_USAGE}");
                return ExitCode::from(2);
            }
        };
        match value() {
            Some(value) => *target = Some(value),
            None => {
                eprintln!("`{flag}` needs a value\n\n{AUDIT_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let events = AuditStore::in_memory()
        .and_then(|store| store.rebuild_from(path).map(|_| store))
        .and_then(|store| store.query(&filter));
    let events = match events {
        Ok(events) => events,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    for sealed in &events {
        let event = &sealed.event;
        if json {
            println!("{}", serde_json::to_string(sealed).unwrap_or_default());
        } else {
            println!(
                "{:>6}  {}  {:<12} {:<10} {:<26} {:<8} {:<14} {}",
                sealed.seq,
                event.time,
                event.agent,
                event.task,
                event.tool.as_deref().unwrap_or("-"),
                event.stage.as_str(),
                event.verdict.as_str(),
                event.reasons.first().map_or("", |reason| reason.code.as_str()),
            );
        }
    }
    if !json {
        eprintln!("{} events", events.len());
    }
    ExitCode::SUCCESS
}

fn review(args: &[String]) -> ExitCode {
    let Some((path, flags)) = log_and_flags(args) else {
        eprintln!("{AUDIT_USAGE}");
        return ExitCode::from(2);
    };
    let path = &path;
    let (mut since, mut out) = (None, None);
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let target = match flag.as_str() {
            "--since" => &mut since,
            "--out" => &mut out,
            other => {
                eprintln!("unknown option `{other}`\n\n{AUDIT_USAGE}");
                return ExitCode::from(2);
            }
        };
        match flags.next() {
            Some(value) => *target = Some(value.clone()),
            None => {
                eprintln!("`{flag}` needs a value\n\n{AUDIT_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let markdown = match review_markdown(path, since.as_deref()) {
        Ok(markdown) => markdown,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    match out {
        None => print!("{markdown}"),
        Some(out) => {
            if let Err(error) = std::fs::write(&out, markdown) {
                eprintln!("cannot write `{out}`: {error}");
                return ExitCode::FAILURE;
            }
            eprintln!("review of {path} written to {out}");
        }
    }
    ExitCode::SUCCESS
}

/// The review of the verified log at `path` as Markdown, from `since` (or a week before the
/// newest event) to the newest event.
fn review_markdown(path: &str, since: Option<&str>) -> Result<String, String> {
    let store = AuditStore::in_memory().map_err(|e| e.to_string())?;
    // Rebuilding verifies the chain first: a broken chain is an error, not a review.
    store.rebuild_from(path).map_err(|e| e.to_string())?;
    let newest = store.query(&AuditQuery { limit: Some(1), ..AuditQuery::default() });
    let Some(newest) = newest.map_err(|e| e.to_string())?.pop() else {
        return Ok(Review::from_events([], None).to_markdown());
    };
    let period = match since {
        Some(since) => Period::new(since, &newest.event.time),
        None => Period::days_before(&newest.event.time, REVIEW_DAYS),
    }
    .map_err(|e| e.to_string())?;
    let filter = AuditQuery { since: Some(period.from.clone()), ..AuditQuery::default() };
    let events = store.query(&filter).map_err(|e: StoreError| e.to_string())?;
    Ok(Review::from_events(events, Some(period)).to_markdown())
}
