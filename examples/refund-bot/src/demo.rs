//! The demo run: the agent works through the ticket queue; the transcript shows every call and
//! every verdict; the summary says what ran, what was stopped and where the audit log is.
//!
//! The run succeeds only if every attack was stopped and every honest ticket was resolved (or
//! held by a human's no). The checks read the desk and the task reports, never the model's words.

use crate::manifest::Manifest;
use crate::queue::{Queue, TicketKind, Verdict as TicketVerdict};
use crate::runtime::{Runtime, Settings};
use crate::transcript::{self, Style};
use agent_core::TaskReport;
use agent_core::agent::CallOutcome;
use agent_core::audit::{AuditQuery, AuditStore};
use agent_core::model::{AnthropicClient, AnthropicConfig, Model};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

/// Which model thinks for the agent.
#[derive(Debug, Clone)]
pub enum ModelChoice {
    /// Real Claude (or anything speaking the Messages API at the configured address).
    Claude(AnthropicConfig),
    /// The offline stand-in for a prompt-injected Claude.
    Gullible,
}

impl ModelChoice {
    /// Claude when `ANTHROPIC_API_KEY` is set, else the gullible offline model.
    pub fn from_env(model_id: &str) -> Self {
        match AnthropicConfig::from_env(model_id) {
            Ok(config) => Self::Claude(config),
            Err(_) => Self::Gullible,
        }
    }

    fn build(&self) -> Result<Arc<dyn Model>, String> {
        Ok(match self {
            Self::Claude(config) => {
                Arc::new(AnthropicClient::new(config.clone()).map_err(|e| e.to_string())?)
            }
            Self::Gullible => Arc::new(tools::gullible::GullibleModel::new()),
        })
    }
}

/// How the demo talks to the person running it.
#[derive(Debug, Clone, Copy)]
pub struct Presentation {
    /// Colours in the transcript.
    pub style: Style,
    /// A progress line on stderr while the model works.
    pub progress: bool,
}

/// What became of one ticket.
#[derive(Debug, Clone)]
pub struct TicketResult {
    /// The ticket.
    pub id: String,
    /// Honest or an attack.
    pub kind: TicketKind,
    /// Stopped, resolved, held or failed.
    pub verdict: TicketVerdict,
    /// The tools that ran, in order.
    pub executed: Vec<String>,
    /// The tools refused, in order, each with the reason code.
    pub denied: Vec<(String, String)>,
    /// Calls put to a human.
    pub approvals: usize,
    /// Money that left the shop while the ticket was handled, in cents.
    pub refunded_cents: i64,
}

/// What the whole run did.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// Per ticket, in queue order.
    pub tickets: Vec<TicketResult>,
    /// The audit log.
    pub audit_path: std::path::PathBuf,
    /// The SQLite store mirrored from it.
    pub store_path: std::path::PathBuf,
    /// Events in the log.
    pub events: u64,
    /// The log's verdict, checked as an auditor would (chain, signatures, witness).
    pub integrity: agent_core::audit::IntegrityVerdict,
    /// Signed checkpoints in the log.
    pub checkpoints: usize,
    /// The desk as the run left it.
    pub desk: tools::Desk,
}

impl DemoOutcome {
    /// Every attack stopped and every honest ticket resolved or held.
    pub fn all_good(&self) -> bool {
        self.tickets.iter().all(|ticket| ticket.verdict.is_good())
    }
}

/// Runs the queue the manifest names, writing the transcript to `out`.
pub async fn run(
    manifest: Manifest,
    settings: Settings,
    model: &ModelChoice,
    presentation: Presentation,
    out: &mut dyn Write,
) -> Result<DemoOutcome, String> {
    let style = presentation.style;
    let queue = Queue::load(&manifest.queue).map_err(|e| e.to_string())?;
    let runtime = Runtime::start(manifest, settings, &queue.tickets).await?;
    let model_line = match model {
        ModelChoice::Claude(config) => format!("{} at {}", config.model, config.base_url),
        ModelChoice::Gullible => "gullible, offline: it obeys any instruction it reads (set \
                                  ANTHROPIC_API_KEY to run on Claude)"
            .to_owned(),
    };
    let refused = if runtime.refused_tools.is_empty() {
        String::new()
    } else {
        let named: Vec<String> =
            runtime.refused_tools.iter().map(|(tool, code)| format!("{tool} ({code})")).collect();
        style.bad(&format!("; refused at import, off the menu: {}", named.join(", ")))
    };
    let intro = format!(
        "{}\n   model:     {model_line}\n   tools:     {} ({} on the menu{refused})\n   \
         approvals: {}\n",
        style.bold(&format!("Warden refund bot · {} tickets", queue.tickets.len())),
        runtime.source.as_str(),
        runtime.pipeline.menu().specs().count(),
        approver_words(runtime.approver),
    );
    emit(out, &intro)?;
    let store = AuditStore::open(&runtime.store_path).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    let total = queue.tickets.len();
    let mut refunded_before = refunded_total(&runtime.desk_now()?);
    // One client for the whole queue (one connection pool to the API); the offline model keeps
    // no state between tasks either.
    let thinker = model.build()?;
    for (index, ticket) in queue.tickets.iter().enumerate() {
        if presentation.progress {
            eprint!("\r\x1b[2K⏳ ticket {}/{total} ({}) …", index + 1, ticket.id);
        }
        let agent = runtime.agent(Arc::clone(&thinker));
        let report = agent.run(runtime.task(ticket)?).await;
        if presentation.progress {
            eprint!("\r\x1b[2K");
        }
        let desk = runtime.desk_now()?;
        let verdict = ticket.expect.check(ticket.kind, &report, &desk);
        let refunded_after = refunded_total(&desk);
        let events = task_events(&store, report.task.as_str())?;
        let mut text = transcript::ticket_heading(style, ticket, index + 1, total);
        text.push_str(&transcript::calls(style, &report, &events));
        let _ = writeln!(text, "{}\n", transcript::verdict(style, ticket.kind, &verdict));
        emit(out, &text)?;
        results.push(result(ticket, &report, verdict, refunded_after - refunded_before));
        refunded_before = refunded_after;
    }
    // The seal: the signed final head, durable and in the witness. Then the log is checked as
    // an auditor would check it.
    runtime.close()?;
    let evidence = crate::audit_cli::Evidence::default();
    let integrity = crate::audit_cli::check(&runtime.manifest, &runtime.audit_path, &evidence)?;
    let outcome = DemoOutcome {
        tickets: results,
        audit_path: runtime.audit_path.clone(),
        store_path: runtime.store_path.clone(),
        events: integrity.events,
        integrity: integrity.verdict,
        checkpoints: integrity.checkpoints.len(),
        desk: runtime.desk_now()?,
    };
    emit(out, &summary_table(style, &outcome))?;
    Ok(outcome)
}

fn approver_words(channel: crate::manifest::ApprovalChannel) -> &'static str {
    use crate::manifest::ApprovalChannel::{Approve, Auto, Deny, Terminal, Web};
    match channel {
        Terminal => "asked on this terminal",
        Web => "asked in the web console",
        Approve => "a script that says yes (a rubber stamp: attacks gated by a human get through)",
        Deny | Auto => "a script that says no",
    }
}

fn result(
    ticket: &crate::queue::QueueTicket,
    report: &TaskReport,
    verdict: TicketVerdict,
    refunded_cents: i64,
) -> TicketResult {
    TicketResult {
        id: ticket.id.clone(),
        kind: ticket.kind,
        verdict,
        executed: report.executed().map(|call| call.tool.clone()).collect(),
        denied: report
            .calls
            .iter()
            .filter_map(|call| match &call.outcome {
                CallOutcome::Denied(denied) => {
                    Some((call.tool.clone(), denied.reason.code.clone()))
                }
                _ => None,
            })
            .collect(),
        approvals: report.approvals().len(),
        refunded_cents,
    }
}

/// The task's events, oldest first.
fn task_events(store: &AuditStore, task: &str) -> Result<Vec<agent_core::SealedEvent>, String> {
    let query = AuditQuery { task: Some(task.to_owned()), ..AuditQuery::default() };
    let mut events = store.query(&query).map_err(|e| e.to_string())?;
    events.reverse();
    Ok(events)
}

/// Everything refunded on every order, in cents.
fn refunded_total(desk: &tools::Desk) -> i64 {
    desk.snapshot().orders.values().map(tools::records::Order::refunded_cents).sum()
}

fn summary_table(style: Style, outcome: &DemoOutcome) -> String {
    let mut out = format!("{}\n", style.bold("━━ summary ━━"));
    let _ = writeln!(
        out,
        "   {:<8} {:<7} {:>5} {:>7} {:>10} {:>10}  verdict",
        "ticket", "kind", "ran", "denied", "approvals", "refunded"
    );
    for ticket in &outcome.tickets {
        let kind = match ticket.kind {
            TicketKind::Honest => "honest",
            TicketKind::Attack => "attack",
        };
        let word = transcript::verdict_word(&ticket.verdict);
        let word = if ticket.verdict.is_good() { style.good(word) } else { style.bad(word) };
        let _ = writeln!(
            out,
            "   {:<8} {:<7} {:>5} {:>7} {:>10} {:>10}  {word}",
            ticket.id,
            kind,
            ticket.executed.len(),
            ticket.denied.len(),
            ticket.approvals,
            dollars(ticket.refunded_cents),
        );
    }
    let count = |kind| outcome.tickets.iter().filter(|t| t.kind == kind).count();
    let good =
        |kind| outcome.tickets.iter().filter(|t| t.kind == kind && t.verdict.is_good()).count();
    let held = outcome.tickets.iter().filter(|t| t.verdict == TicketVerdict::Held).count();
    let sum = |field: fn(&TicketResult) -> usize| outcome.tickets.iter().map(field).sum::<usize>();
    let _ = writeln!(
        out,
        "\n   tickets {} · tools run {} · denied {} · approvals asked {} · refunded {}",
        outcome.tickets.len(),
        sum(|t| t.executed.len()),
        sum(|t| t.denied.len()),
        sum(|t| t.approvals),
        dollars(outcome.tickets.iter().map(|t| t.refunded_cents).sum()),
    );
    let attacks =
        format!("attacks stopped {}/{}", good(TicketKind::Attack), count(TicketKind::Attack));
    let honest = format!(
        "honest tickets resolved {}/{} ({held} held by a human)",
        good(TicketKind::Honest),
        count(TicketKind::Honest)
    );
    let paint = |ok: bool, text: &str| if ok { style.good(text) } else { style.bad(text) };
    let _ = writeln!(
        out,
        "   {} · {}",
        paint(good(TicketKind::Attack) == count(TicketKind::Attack), &attacks),
        paint(good(TicketKind::Honest) == count(TicketKind::Honest), &honest),
    );
    let _ = writeln!(
        out,
        "   audit log   {} ({} events, {} signed checkpoints: {})\n   query store {}",
        outcome.audit_path.display(),
        outcome.events,
        outcome.checkpoints,
        paint(
            outcome.integrity == agent_core::audit::IntegrityVerdict::Sealed,
            &outcome.integrity.headline().to_lowercase()
        ),
        outcome.store_path.display()
    );
    let _ = writeln!(
        out,
        "   next        cargo run -q -p refund-bot -- audit query --verdict deny\n               \
         cargo run -q -p refund-bot -- audit review"
    );
    out
}

fn dollars(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, (cents % 100).abs())
}

fn emit(out: &mut dyn Write, text: &str) -> Result<(), String> {
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| e.to_string())
}
