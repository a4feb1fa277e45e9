//! Wall time and peak memory of the whole offline demo.
//!
//! ```text
//! cargo bench -p refund-bot --bench demo
//! ```
//!
//! Runs the shipped queue with the gullible model, in process, `RUNS` times, each with a fresh
//! audit dir (new keys, log, stores and budget ledger; intent records fsynced as in the demo), and
//! prints the median, min and max wall time, then the process's peak resident memory (`VmHWM`):
//! everything the demo needed at its largest, the bench's own few kilobytes included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use refund_bot::demo::{self, ModelChoice, Presentation};
use refund_bot::manifest::{ApprovalChannel, Manifest, default_path};
use refund_bot::runtime::{Settings, offered_tools};
use refund_bot::transcript::Style;
use std::time::{Duration, Instant};

const RUNS: usize = 9;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut times = Vec::new();
    let mut tickets = 0;
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest::load(default_path(), &offered_tools()).unwrap();
        manifest.audit.dir = dir.path().to_owned();
        let settings = Settings {
            tools: None,
            database: None,
            approver: Some(ApprovalChannel::Deny),
            audit_log: None,
            ..Settings::default()
        };
        let presentation = Presentation { style: Style::new(false), progress: false };
        let started = Instant::now();
        let outcome = runtime
            .block_on(demo::run(
                manifest,
                settings,
                &ModelChoice::Gullible,
                presentation,
                &mut std::io::sink(),
            ))
            .unwrap();
        times.push(started.elapsed());
        assert!(outcome.all_good());
        tickets = outcome.tickets.len();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "offline demo, {tickets} tickets, {RUNS} runs: median {:.1} ms (min {:.1}, max {:.1})",
        ms(times[RUNS / 2]),
        ms(times[0]),
        ms(times[RUNS - 1])
    );
    println!("peak resident memory: {}", peak_memory().unwrap_or_else(|| "unknown".to_owned()));
}

/// `VmHWM` from `/proc/self/status` (Linux).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} MiB", kib / 1024.0))
}
