//! `refund-bot audit …`: check and question an audit log.
//!
//! Each takes the log's path first, or reads the latest demo run's log without one. Every
//! subcommand checks the log first, as an auditor would ([`agent_core::audit::check_log`]): the
//! chain, every checkpoint and approval signature against the JWK set, and the witness.
//!
//! - `refund-bot audit verify PATH [--json]`: prints the verdict; exits 0 when the log is intact
//!   and sealed, 3 when it is intact but not sealed (running, or stopped without a clean close),
//!   1 when it was tampered with (naming each line and kind), 4 when it cannot be checked.
//! - `refund-bot audit query PATH [filters] [--json]`: refuses a tampered log; otherwise queries
//!   the run's query store, after checking that the store mirrors this very log (same signed
//!   head, every event intact), rebuilding it from the log when it does not.
//! - `refund-bot audit review PATH [--since RFC3339] [--out FILE]`: refuses a tampered log;
//!   otherwise writes the weekly review, the log's verdict at its top. See
//!   [`agent_core::audit::review`] for how to read it.
//!
//! The JWK set is `keys/audit-jwks.json` beside the log and the witness is where the runtime
//! kept it (see [`crate::runtime::witness_for`]); `--jwks FILE` and `--witness FILE` name others,
//! as an auditor given a copy of the log and the published keys would.

use crate::manifest::Manifest;
use crate::runtime::{audit_jwks_for, witness_for};
use agent_core::audit::review::{Period, Review};
use agent_core::audit::{
    AuditQuery, AuditStore, Integrity, IntegrityVerdict, StoreError, WitnessCheck, WitnessFile,
    check_log,
};
use guards::notary::LogSignatures;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How far back a review looks when `--since` is not given.
const REVIEW_DAYS: u32 = 7;

/// Exit codes of `audit verify`, one per verdict.
pub mod exit {
    /// Intact and sealed.
    pub const SEALED: u8 = 0;
    /// Tampered with.
    pub const TAMPERED: u8 = 1;
    /// The command line was wrong.
    pub const USAGE: u8 = 2;
    /// Intact, not sealed.
    pub const UNSEALED: u8 = 3;
    /// The log, the keys or the witness could not be read.
    pub const CANNOT_CHECK: u8 = 4;
}

/// The usage text of the `audit` subcommands.
pub const AUDIT_USAGE: &str = "\
Usage: refund-bot audit verify [PATH] [--json] [--jwks FILE] [--witness FILE]
       refund-bot audit query [PATH] [--agent A] [--task T] [--tool T] [--verdict V]
                                     [--since RFC3339] [--limit N] [--json]
       refund-bot audit review [PATH] [--since RFC3339] [--out FILE]

PATH is an audit log; without it, the log of the latest demo run.

verify  checks the log as an auditor would: the hash chain, every signed checkpoint and every
        signed approval against the JWK set, and that the log reaches the head its witness holds.
        Exit 0: intact and sealed. 3: intact, not sealed (still running, or stopped without a
        clean close; says what is unsigned and whether the last line is torn). 1: tampered
        (each line and kind). 4: cannot be checked. --json prints the same for machines.
query   prints the events of the checked log matching every filter given, newest first, from
        the run's query store once it is shown to mirror this log (rebuilt when it does not)
review  writes the weekly review of the checked log as Markdown, the verdict at its top: per
        agent, calls, tools never used (scope to trim), denials by reason, approvals, budget
        use and anomalies, and the signed checkpoints with the gaps between them; covers the
        7 days up to the newest event unless --since says otherwise

A tampered log is refused by query and review (exit 1). --jwks and --witness name the JWK set
(default keys/audit-jwks.json beside the log) and the witness (default: where the runtime
keeps it).";

/// The log a subcommand reads, and the flags after it: the path given first, or else the latest
/// log the demo wrote (named in `latest` in the shipped manifest's audit dir). `None` when there
/// is neither.
fn log_and_flags(args: &[String]) -> Option<(String, &[String])> {
    match args.split_first() {
        Some((path, flags)) if !path.starts_with("--") => Some((path.clone(), flags)),
        _ => {
            let manifest = shipped_manifest().ok()?;
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

fn shipped_manifest() -> Result<Manifest, String> {
    Manifest::load(crate::manifest::default_path(), &crate::runtime::offered_tools())
        .map_err(|error| error.to_string())
}

/// Runs an `audit` subcommand with the arguments after `audit`.
pub fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("verify") => verify(&args[1..]),
        Some("query") => query(&args[1..]),
        Some("review") => review(&args[1..]),
        _ => usage(None),
    }
}

fn usage(problem: Option<String>) -> ExitCode {
    match problem {
        Some(problem) => eprintln!("{problem}\n\n{AUDIT_USAGE}"),
        None => eprintln!("{AUDIT_USAGE}"),
    }
    ExitCode::from(exit::USAGE)
}

/// Where the keys and the witness of a log are, as the runtime laid them out or as given.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The JWK set; by default `keys/audit-jwks.json` beside the log.
    pub jwks: Option<PathBuf>,
    /// The witness; by default where the runtime keeps it.
    pub witness: Option<PathBuf>,
}

/// Checks the log at `path` with the issuer, keys and witness `manifest` describes (or
/// `evidence` names): what every subcommand does first, and the demo at its end. The error is
/// for a log or keys that cannot be read.
pub fn check(manifest: &Manifest, path: &Path, evidence: &Evidence) -> Result<Integrity, String> {
    let jwks = evidence.jwks.clone().unwrap_or_else(|| audit_jwks_for(path));
    let signatures = LogSignatures::from_jwks_file(&manifest.credentials.issuer, &jwks)
        .map_err(|error| format!("cannot check signatures with `{}`: {error}", jwks.display()))?;
    // The refund bot signs every log it writes and keeps a witness for each, where the log's
    // header says (or, for a header that names none, where the manifest says): a log without
    // one is tampered with, even one rewritten to claim it was never signed.
    let witness = match &evidence.witness {
        Some(file) => WitnessCheck::Expect(WitnessFile::at(file)),
        None => WitnessCheck::Named(witness_for(manifest, path)),
    };
    check_log(path, &signatures, &witness)
        .map_err(|error| format!("cannot read `{}`: {error}", path.display()))
}

fn verify(args: &[String]) -> ExitCode {
    let Some((path, flags)) = log_and_flags(args) else { return usage(None) };
    let (mut json, mut evidence) = (false, Evidence::default());
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let target = match flag.as_str() {
            "--json" => {
                json = true;
                continue;
            }
            "--jwks" => &mut evidence.jwks,
            "--witness" => &mut evidence.witness,
            other => return usage(Some(format!("unknown option `{other}`"))),
        };
        match flags.next() {
            Some(value) => *target = Some(PathBuf::from(value)),
            None => return usage(Some(format!("`{flag}` needs a value"))),
        }
    }
    let manifest = match shipped_manifest() {
        Ok(manifest) => manifest,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(exit::CANNOT_CHECK);
        }
    };
    let integrity = match check(&manifest, Path::new(&path), &evidence) {
        Ok(integrity) => integrity,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(exit::CANNOT_CHECK);
        }
    };
    if json {
        println!("{}", serde_json::to_string(&integrity).unwrap_or_default());
    } else {
        print!("{}", integrity.describe());
    }
    ExitCode::from(exit_code(integrity.verdict))
}

/// The exit code of a verdict.
pub fn exit_code(verdict: IntegrityVerdict) -> u8 {
    match verdict {
        IntegrityVerdict::Sealed => exit::SEALED,
        IntegrityVerdict::Unsealed => exit::UNSEALED,
        IntegrityVerdict::Tampered => exit::TAMPERED,
    }
}

/// The log checked, refused when tampered; unsealed logs are used with a warning on stderr.
fn checked(path: &str) -> Result<Integrity, ExitCode> {
    let manifest = shipped_manifest().map_err(|error| {
        eprintln!("{error}");
        ExitCode::from(exit::CANNOT_CHECK)
    })?;
    let integrity = check(&manifest, Path::new(path), &Evidence::default()).map_err(|error| {
        eprintln!("{error}");
        ExitCode::from(exit::CANNOT_CHECK)
    })?;
    match integrity.verdict {
        IntegrityVerdict::Tampered => {
            eprint!("{}", integrity.describe());
            eprintln!("refusing to answer from a tampered log");
            Err(ExitCode::from(exit::TAMPERED))
        }
        IntegrityVerdict::Unsealed => {
            eprintln!(
                "warning: {path} is intact but NOT SEALED (run `audit verify` for what is unsigned)"
            );
            Ok(integrity)
        }
        IntegrityVerdict::Sealed => Ok(integrity),
    }
}

/// The run's query store for the checked log: the store beside the log when it mirrors this
/// log exactly, else rebuilt from the log (and said so).
fn store_for(path: &str, integrity: &Integrity) -> Result<AuditStore, StoreError> {
    let store_path = Path::new(path).with_extension("sqlite");
    // A log read where its store cannot be written (a copy on read-only media) is queried from
    // a store in memory, rebuilt from the log.
    let store = AuditStore::open(&store_path).or_else(|_| AuditStore::in_memory())?;
    if let Some(why) = store.mismatch_with(integrity)? {
        eprintln!(
            "the query store `{}` does not mirror its log: {why}; rebuilding it from the log",
            store_path.display()
        );
        store.rebuild_from(path)?;
        if let Some(still) = store.mismatch_with(integrity)? {
            return Err(StoreError::Corrupt(format!("the rebuilt store still differs: {still}")));
        }
    }
    Ok(store)
}

fn query(args: &[String]) -> ExitCode {
    let Some((path, flags)) = log_and_flags(args) else { return usage(None) };
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
                    None => return usage(Some("`--limit` needs a number".to_owned())),
                }
                continue;
            }
            other => return usage(Some(format!("unknown option `{other}`"))),
        };
        match value() {
            Some(value) => *target = Some(value),
            None => return usage(Some(format!("`{flag}` needs a value"))),
        }
    }
    let integrity = match checked(&path) {
        Ok(integrity) => integrity,
        Err(code) => return code,
    };
    let events = store_for(&path, &integrity).and_then(|store| store.query(&filter));
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
                "{:>6}  {}  {:<12} {:<10} {:<26} {:<10} {:<14} {}",
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
    let Some((path, flags)) = log_and_flags(args) else { return usage(None) };
    let (mut since, mut out) = (None, None);
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let target = match flag.as_str() {
            "--since" => &mut since,
            "--out" => &mut out,
            other => return usage(Some(format!("unknown option `{other}`"))),
        };
        match flags.next() {
            Some(value) => *target = Some(value.clone()),
            None => return usage(Some(format!("`{flag}` needs a value"))),
        }
    }
    let integrity = match checked(&path) {
        Ok(integrity) => integrity,
        Err(code) => return code,
    };
    let markdown = match review_markdown(&path, integrity, since.as_deref()) {
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

/// The review of the checked log at `path` as Markdown, from `since` (or a week before the
/// newest event) to the newest event, its verdict at the top.
fn review_markdown(
    path: &str,
    integrity: Integrity,
    since: Option<&str>,
) -> Result<String, String> {
    let store = store_for(path, &integrity).map_err(|e| e.to_string())?;
    let newest = store.query(&AuditQuery { limit: Some(1), ..AuditQuery::default() });
    let Some(newest) = newest.map_err(|e| e.to_string())?.pop() else {
        return Ok(Review::from_events([], None).with_integrity(integrity).to_markdown());
    };
    let period = match since {
        Some(since) => Period::new(since, &newest.event.time),
        None => Period::days_before(&newest.event.time, REVIEW_DAYS),
    }
    .map_err(|e| e.to_string())?;
    let filter = AuditQuery { since: Some(period.from.clone()), ..AuditQuery::default() };
    let events = store.query(&filter).map_err(|e: StoreError| e.to_string())?;
    Ok(Review::from_events(events, Some(period)).with_integrity(integrity).to_markdown())
}
