//! `refund-bot audit …`: check and question an audit log.
//!
//! - `refund-bot audit verify PATH`: walks the hash chain; exits 1 at the first break, naming the
//!   line.
//! - `refund-bot audit query PATH [--agent A] [--task T] [--tool T] [--verdict V] [--since TIME]
//!   [--limit N] [--json]`: rebuilds the query store from the chain (verifying it first) and
//!   prints the matching events, newest first, as a table or as JSON lines.

use agent_core::audit::{AuditQuery, AuditStore, verify_file};
use std::process::ExitCode;

/// The usage text of the `audit` subcommands.
pub const AUDIT_USAGE: &str = "\
Usage: refund-bot audit verify PATH
       refund-bot audit query PATH [--agent A] [--task T] [--tool T] [--verdict V]
                                   [--since RFC3339] [--limit N] [--json]

verify  checks the hash chain of the audit log at PATH and reports the first break (exit 1)
query   prints the events of the (verified) log matching every filter given, newest first";

/// Runs an `audit` subcommand with the arguments after `audit`.
pub fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("verify") => verify(&args[1..]),
        Some("query") => query(&args[1..]),
        _ => {
            eprintln!("{AUDIT_USAGE}");
            ExitCode::from(2)
        }
    }
}

fn verify(args: &[String]) -> ExitCode {
    let [path] = args else {
        eprintln!("{AUDIT_USAGE}");
        return ExitCode::from(2);
    };
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
    let Some((path, flags)) = args.split_first() else {
        eprintln!("{AUDIT_USAGE}");
        return ExitCode::from(2);
    };
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
