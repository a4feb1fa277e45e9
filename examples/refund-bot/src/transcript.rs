//! The readable transcript: per ticket, what the model asked for, each stage's verdict with its
//! reason (read back from the audit store, so the transcript shows what was recorded), approvals,
//! what ran; then the summary table. Colour when stdout is a terminal, plain text otherwise.

use crate::queue::{QueueTicket, TicketKind, Verdict as TicketVerdict};
use agent_core::TaskReport;
use agent_core::audit::{SealedEvent, Stage, Verdict};
use std::fmt::Write as _;

/// Terminal styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when `colour` is true (stdout is a terminal and `NO_COLOR` is unset).
    pub fn new(colour: bool) -> Self {
        Self { colour }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    /// Bold.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Green: allowed, resolved.
    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Red: denied, failed.
    pub fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Yellow: a human was asked.
    pub fn ask(self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Dim: the customer's text, details.
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// The heading and the customer's text of a ticket.
pub fn ticket_heading(style: Style, ticket: &QueueTicket, position: usize, total: usize) -> String {
    let kind = match ticket.kind {
        TicketKind::Honest => style.good("honest"),
        TicketKind::Attack => style.bad("attack"),
    };
    let mut out = format!(
        "{} {kind} · {}\n   from {} · subject \"{}\"\n",
        style.bold(&format!("━━ {}/{total} {} ·", position, ticket.id)),
        ticket.summary,
        ticket.customer,
        printable(&ticket.subject),
    );
    for line in ticket.body.lines().filter(|line| !line.trim().is_empty()) {
        let _ = writeln!(out, "   {}", style.dim(&format!("│ {}", printable(line))));
    }
    out
}

/// One block per call: what the model asked for, each stage's verdict, and what ran. `events`
/// are the task's audit events oldest first (reverse what `AuditStore::query` returns).
pub fn calls(style: Style, report: &TaskReport, events: &[SealedEvent]) -> String {
    let mut out = String::new();
    for call in &report.calls {
        let _ = writeln!(
            out,
            "   model asks {} {}",
            style.bold(&call.tool),
            style.dim(&clip(&call.input.to_string(), 110))
        );
        let of_call =
            events.iter().filter(|sealed| sealed.event.call_id.as_ref() == Some(&call.call_id));
        let mut verdicts = Vec::new();
        for sealed in of_call {
            let event = &sealed.event;
            let who = event.guard.clone().unwrap_or_else(|| event.stage.as_str().to_owned());
            // A policy's verdict names the rules that decided it.
            let reason = event.reasons.first().map(|reason| reason.code.clone()).or_else(|| {
                let policies = event.detail["policies"].as_array()?;
                let ids: Vec<&str> = policies.iter().filter_map(|id| id.as_str()).collect();
                (!ids.is_empty()).then(|| ids.join(", "))
            });
            let line = match (event.stage, event.verdict) {
                (Stage::Intent, _) => continue,
                (_, Verdict::Allow) => style.good(&format!("{who} ✓{}", suffix(reason))),
                (_, Verdict::NeedsApproval) => {
                    style.ask(&format!("{who} asks a human{}", suffix(reason)))
                }
                (Stage::Approval, Verdict::Deny) => {
                    style.bad(&format!("human said no{}", suffix(reason)))
                }
                (_, Verdict::Deny) => style.bad(&format!(
                    "{who} ✗ {}: {}",
                    reason.unwrap_or_default(),
                    event.reasons.first().map(|r| clip(&r.detail, 100)).unwrap_or_default()
                )),
                (Stage::Outcome, Verdict::Succeeded) => style.good("→ ran"),
                (Stage::Outcome, Verdict::Failed) => style.bad(&format!(
                    "→ ran and failed: {}",
                    event.reasons.first().map(|r| clip(&r.detail, 100)).unwrap_or_default()
                )),
                (_, other) => format!("{who} {}", other.as_str()),
            };
            verdicts.push(line);
        }
        if let Some(grant) = &call.approval {
            verdicts
                .push(style.ask(&format!("approved by {} via {}", grant.approver, grant.channel)));
        }
        let _ = writeln!(out, "      {}", verdicts.join(" · "));
    }
    let _ = writeln!(out, "   task ended: {} after {} turns", report.end.code(), report.turns);
    out
}

/// The verdict line of a ticket.
pub fn verdict(style: Style, kind: TicketKind, verdict: &TicketVerdict) -> String {
    match (kind, verdict) {
        (_, TicketVerdict::Stopped) => style.good("   → attack stopped"),
        (_, TicketVerdict::NotAttempted) => {
            style.ask("   → attack not attempted: the model never asked for what it aims at")
        }
        (_, TicketVerdict::Resolved) => style.good("   → resolved"),
        (_, TicketVerdict::Held) => style.ask("   → held: a human said no to the call it needed"),
        (TicketKind::Attack, TicketVerdict::Failed(why)) => {
            style.bad(&format!("   → ATTACK SUCCEEDED: {}", why.join("; ")))
        }
        (TicketKind::Honest, TicketVerdict::Failed(why)) => {
            style.bad(&format!("   → NOT RESOLVED: {}", why.join("; ")))
        }
    }
}

/// The words for a ticket verdict in the summary table.
pub fn verdict_word(verdict: &TicketVerdict) -> &'static str {
    match verdict {
        TicketVerdict::Stopped => "stopped",
        TicketVerdict::NotAttempted => "not tried",
        TicketVerdict::Resolved => "resolved",
        TicketVerdict::Held => "held",
        TicketVerdict::Failed(_) => "FAILED",
    }
}

fn suffix(reason: Option<String>) -> String {
    reason.map(|code| format!(" ({code})")).unwrap_or_default()
}

/// Text cut to `max` characters, with an ellipsis.
pub fn clip(text: &str, max: usize) -> String {
    let text = printable(text);
    if text.chars().count() <= max {
        return text;
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Attacker text made safe for a terminal: whatever would hide or move text (escape sequences,
/// bidirectional overrides, zero-width characters, …) is shown as `�`, so a ticket cannot clear
/// the screen, recolour the transcript or reorder what the operator reads. Tabs stay tabs.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(
            |c| {
                if c != '\t' && agent_core::display::hides_or_moves_text(c) {
                    '\u{fffd}'
                } else {
                    c
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacker_control_characters_never_reach_the_terminal() {
        let shown = printable("refund\x1b[2Jnow\u{202e}gnp.exe\r");
        assert!(!shown.contains('\x1b') && !shown.contains('\u{202e}') && !shown.contains('\r'));
        assert!(shown.starts_with("refund"));
    }

    #[test]
    fn plain_style_adds_no_escape_codes_and_colour_does() {
        assert_eq!(Style::new(false).bad("x"), "x");
        assert_eq!(Style::new(true).bad("x"), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn long_text_is_clipped_with_an_ellipsis() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
