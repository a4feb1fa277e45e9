//! Markdown for a [`Review`]: a title with the period, a summary line, and per agent a few small
//! tables.
//!
//! Names in a review come from the log, and tool names in particular from the model: a
//! prompt-injected model can ask for a tool called ``"x | y\n# You are fired"``. Every name is
//! therefore printed through [`code`], which makes it one inline code span on one line with its
//! `|` escaped: it cannot end a table cell, start a heading or a link, or hide behind
//! right-to-left overrides.
//!
//! ```text
//! wrong:  format!("| {tool} | {count} |")        a `|` or newline in `tool` breaks the table
//! right:  format!("| {} | {count} |", code(tool))
//! ```

use super::{
    AgentReview, Anomalies, ApprovalGroup, BudgetUse, DENIAL_BURST, DenialGroup, Review, Stage,
};

/// The longest name shown, in characters; longer ones are cut and end in `…`.
const MAX_NAME_CHARS: usize = 64;

impl Review {
    /// The review as Markdown: a title with the period, a summary line, then a section per agent
    /// (calls by tool, scope to trim, denials by reason, approvals, budget use, anomalies).
    /// Arguments and free text are never shown; names are escaped (see the module docs).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        self.write_integrity(&mut out);
        self.write_title(&mut out);
        self.write_checkpoints(&mut out);
        for agent in &self.agents {
            write_agent(&mut out, agent);
        }
        out
    }

    /// The verdict on the log, first, in capitals: a review of a log nobody checked says so.
    fn write_integrity(&self, out: &mut String) {
        let Some(integrity) = &self.integrity else {
            line(
                out,
                "> **LOG NOT VERIFIED**: this review was built from events whose log was not checked.",
            );
            line(out, "");
            return;
        };
        line(out, format!("> **LOG {}**", integrity.verdict.headline()));
        for finding in &integrity.findings {
            let at = finding.line.map_or_else(String::new, |line| format!("line {line}: "));
            line(out, format!("> - {at}{}", plain(&finding.message)));
        }
        if let Some(last) = integrity.last_checkpoint() {
            line(
                out,
                format!(
                    "> Last signed checkpoint: {} events at {}{}.",
                    last.head.size,
                    plain(&last.head.time),
                    if last.head.sealed { ", sealed at a clean close" } else { "" }
                ),
            );
        }
        if integrity.unsigned_events > 0 {
            line(
                out,
                format!("> {} after it not signed.", plural(integrity.unsigned_events, "event")),
            );
        }
        if let Some(torn) = integrity.torn_line {
            line(out, format!("> Line {torn} is torn (cut off mid-write, as a crash leaves it)."));
        }
        line(out, "");
    }

    /// The checkpoints of the period and the longest stretch between two of them.
    fn write_checkpoints(&self, out: &mut String) {
        line(out, "");
        line(out, "## Checkpoints");
        line(out, "");
        match (self.checkpoints.first(), self.checkpoints.last()) {
            (Some(first), Some(last)) => {
                line(
                    out,
                    format!(
                        "{} from {} to {}{}.",
                        plural(self.checkpoints.len() as u64, "signed checkpoint"),
                        plain(&first.time),
                        plain(&last.time),
                        if last.sealed { ", the last sealing the log" } else { "" },
                    ),
                );
                if let Some(gap) = self.longest_checkpoint_gap() {
                    line(
                        out,
                        format!(
                            "Longest gap: {} ms, from {} to {} ({} signed at its end).",
                            gap.millis,
                            plain(&gap.from),
                            plain(&gap.to),
                            plural(gap.events, "event"),
                        ),
                    );
                }
            }
            _ => line(out, "No signed checkpoint in the period."),
        }
        if self.unsigned_events > 0 {
            line(
                out,
                format!(
                    "{} at the end of the period not covered by a checkpoint.",
                    plural(self.unsigned_events, "event")
                ),
            );
        }
    }

    fn write_title(&self, out: &mut String) {
        match &self.period {
            Some(period) => line(
                out,
                format!("# Audit review: {} to {}", plain(&period.from), plain(&period.to)),
            ),
            None => line(out, "# Audit review"),
        }
        line(out, "");
        let totals = self.total_calls();
        let tasks: u64 = self.agents.iter().map(|agent| agent.tasks).sum();
        let approvals: u64 =
            self.agents.iter().flat_map(|agent| &agent.approvals).map(|group| group.count).sum();
        let anomalies: usize = self.agents.iter().map(|agent| agent.anomalies.len()).sum();
        line(
            out,
            format!(
                "{} from {}: {}, {} asked for, {} executed, {} denied; {}; {}.",
                plural(self.events, "event"),
                plural(self.agents.len() as u64, "agent"),
                plural(tasks, "task"),
                plural(totals.asked, "call"),
                totals.executed,
                totals.denied,
                plural(approvals, "approval request"),
                plural(anomalies as u64, "anomaly"),
            ),
        );
    }
}

fn write_agent(out: &mut String, agent: &AgentReview) {
    line(out, "");
    line(out, format!("## Agent {}", code(agent.agent.as_str())));
    line(out, "");
    line(
        out,
        format!(
            "{}, {} asked for, {} executed, {} denied.",
            plural(agent.tasks, "task"),
            plural(agent.calls.asked, "call"),
            agent.calls.executed,
            agent.calls.denied,
        ),
    );
    write_tools(out, agent);
    write_scope_to_trim(out, agent);
    write_denials(out, &agent.denials);
    write_approvals(out, &agent.approvals);
    write_budget(out, &agent.budget);
    write_anomalies(out, &agent.anomalies);
}

fn write_tools(out: &mut String, agent: &AgentReview) {
    heading(out, "Calls by tool");
    if agent.tools.is_empty() {
        line(out, "No menu on record (no task started in this period).");
        return;
    }
    table(out, &["Tool", "Asked", "Executed", "Denied"], &[false, true, true, true]);
    for tool in &agent.tools {
        let calls = &tool.calls;
        row(out, &[code(&tool.tool), n(calls.asked), n(calls.executed), n(calls.denied)]);
    }
}

fn write_scope_to_trim(out: &mut String, agent: &AgentReview) {
    heading(out, "Scope to trim");
    let unused = &agent.scope_to_trim;
    if agent.tools.is_empty() {
        line(out, "Unknown: no menu on record to compare the calls with.");
        return;
    }
    if unused.is_empty() {
        line(out, "None: every tool on the menu was asked for.");
        return;
    }
    line(
        out,
        "On the menu but never asked for in this period. Each is reach for an injected model and \
         no use to this agent: take it off the menu, or move it to a subagent for the rare task \
         that needs it.",
    );
    line(out, "");
    for tool in unused {
        line(out, format!("- {}", code(tool)));
    }
}

fn write_denials(out: &mut String, denials: &[DenialGroup]) {
    heading(out, "Denials by reason");
    if denials.is_empty() {
        line(out, "None.");
        return;
    }
    table(out, &["Where", "Reason", "Count", "Example"], &[false, false, true, false]);
    for denial in denials {
        let (task, tool) = (&denial.example.task, &denial.example.tool);
        let example = format!("task {}, tool {}", code(task.as_str()), code(tool));
        row(out, &[where_denied(denial), code(&denial.code), n(denial.count), example]);
    }
}

fn write_approvals(out: &mut String, approvals: &[ApprovalGroup]) {
    heading(out, "Approvals");
    if approvals.is_empty() {
        line(out, "No call was put to a human.");
        return;
    }
    table(out, &["Outcome", "Count", "Median wait", "Max wait"], &[false, true, true, true]);
    for group in approvals {
        row(
            out,
            &[
                code(&group.outcome),
                n(group.count),
                wait(group.median_wait_ms),
                wait(group.max_wait_ms),
            ],
        );
    }
}

fn write_budget(out: &mut String, budget: &BudgetUse) {
    heading(out, "Budget use");
    let moves_money = budget.moves_money != Some(false);
    if !moves_money {
        line(out, "No tool on this agent's menu moves money.");
        line(out, "");
    }
    table(out, &["Measure", "Value"], &[false, true]);
    if moves_money {
        row(out, &["Money moved by succeeded calls".to_owned(), money(budget.money_cents)]);
        row(out, &["Calls that moved money".to_owned(), n(budget.money_calls)]);
    }
    let irreversible = budget.irreversible_calls.map_or_else(|| "not recorded".to_owned(), n);
    row(out, &["Irreversible calls run".to_owned(), irreversible]);
}

fn write_anomalies(out: &mut String, anomalies: &Anomalies) {
    heading(out, "Anomalies");
    if anomalies.is_empty() {
        line(out, "None.");
        return;
    }
    table(
        out,
        &["Anomaly", "Task", "Tool", "Reason", "Count"],
        &[false, false, false, false, true],
    );
    let none = || "–".to_owned();
    for (task, denials) in &anomalies.denial_bursts {
        let what = format!("{DENIAL_BURST}+ denials in one task");
        row(out, &[what, code(task.as_str()), none(), none(), n(*denials)]);
    }
    for call in &anomalies.off_menu {
        let task = format!("{} (first)", code(call.example_task.as_str()));
        let what = "Tool not on the menu".to_owned();
        row(out, &[what, task, code(&call.tool), code(&call.code), n(call.count)]);
    }
    for (task, end) in &anomalies.abnormal_ends {
        let what = "Task did not complete".to_owned();
        row(out, &[what, code(task.as_str()), none(), code(end), n(1)]);
    }
    for call in &anomalies.failures {
        let task = format!("{} (first)", code(call.example_task.as_str()));
        let (what, tool, reason) = ("Tool failed".to_owned(), code(&call.tool), code(&call.code));
        row(out, &[what, task, tool, reason, n(call.count)]);
    }
    for repeated in &anomalies.repeated_paybacks {
        let what = format!(
            "Money paid back to one {} in {} tasks ({})",
            repeated.by,
            repeated.tasks,
            money(repeated.money_cents)
        );
        row(out, &[what, code(&repeated.key), none(), none(), n(repeated.calls)]);
    }
}

/// Where a call was refused: the stage, and for a guard its name.
fn where_denied(denial: &DenialGroup) -> String {
    match (&denial.stage, &denial.guard) {
        (Stage::Guard, Some(guard)) => format!("guard {}", code(guard)),
        (stage, _) => stage.as_str().to_owned(),
    }
}

/// A name from the log as inline code that is safe anywhere, table cells included: one line
/// (line breaks shown as `\n`, other control and bidirectional characters as `�`), no backtick
/// to close the span early, `|` escaped, at most [`MAX_NAME_CHARS`] characters.
pub(super) fn code(name: &str) -> String {
    if name.is_empty() {
        return "(none)".to_owned();
    }
    let mut shown = String::new();
    for character in name.chars().take(MAX_NAME_CHARS) {
        match character {
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '|' => shown.push_str("\\|"),
            '`' => shown.push('\''),
            other if crate::display::hides_or_moves_text(other) => shown.push('\u{FFFD}'),
            other => shown.push(other),
        }
    }
    if name.chars().count() > MAX_NAME_CHARS {
        shown.push('…');
    }
    format!("`{shown}`")
}

/// Text outside code spans (the period's times): Markdown's punctuation escaped, hidden
/// characters replaced, on one line.
fn plain(text: &str) -> String {
    let mut shown = String::new();
    for character in text.chars() {
        match character {
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '<' | '>' | '#' | '|' | '!' | '~'
            | '&' => {
                shown.push('\\');
                shown.push(character);
            }
            '\n' | '\r' => shown.push(' '),
            other if crate::display::hides_or_moves_text(other) => shown.push('\u{FFFD}'),
            other => shown.push(other),
        }
    }
    shown
}

fn heading(out: &mut String, title: &str) {
    line(out, "");
    line(out, format!("### {title}"));
    line(out, "");
}

/// A table's header; `numeric` columns are right-aligned.
fn table(out: &mut String, headers: &[&str], numeric: &[bool]) {
    line(out, format!("| {} |", headers.join(" | ")));
    let rule: Vec<&str> = numeric.iter().map(|&right| if right { "---:" } else { "---" }).collect();
    line(out, format!("| {} |", rule.join(" | ")));
}

/// A table row of cells already made safe.
fn row(out: &mut String, cells: &[String]) {
    line(out, format!("| {} |", cells.join(" | ")));
}

fn line(out: &mut String, text: impl AsRef<str>) {
    out.push_str(text.as_ref());
    out.push('\n');
}

fn n(count: u64) -> String {
    count.to_string()
}

fn plural(count: u64, noun: &str) -> String {
    match (count, noun) {
        (1, _) => format!("1 {noun}"),
        (_, "anomaly") => format!("{count} anomalies"),
        _ => format!("{count} {noun}s"),
    }
}

/// Cents as units and cents, with the raw cents alongside (the log has no currency).
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}.{:02} ({cents} cents)", magnitude / 100, magnitude % 100)
}

fn wait(milliseconds: Option<u64>) -> String {
    match milliseconds {
        None => "–".to_owned(),
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{}.{} s", ms / 1_000, ms % 1_000 / 100),
        Some(ms) => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::review::{CallCounts, CallRef, Occurrences};
    use crate::ids::{AgentId, TaskId};

    /// The number of cell separators in a table row: `|` not escaped by a backslash.
    fn separators(row: &str) -> usize {
        let bytes = row.as_bytes();
        (0..bytes.len()).filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\')).count()
    }

    #[test]
    fn pipes_newlines_and_backticks_cannot_escape_a_code_span() {
        assert_eq!(code("send_email"), "`send_email`");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("x\n# Title\r\n"), "`x\\n# Title\\r\\n`");
        assert_eq!(code("`rm -rf`"), "`'rm -rf'`");
        assert_eq!(code("evil\u{202E}txt.exe\u{0007}"), "`evil\u{FFFD}txt.exe\u{FFFD}`");
        assert_eq!(code(""), "(none)");
    }

    #[test]
    fn long_names_are_cut() {
        let long = "a".repeat(200);
        let shown = code(&long);
        assert_eq!(shown.chars().count(), MAX_NAME_CHARS + 3, "{shown}");
        assert!(shown.ends_with("…`"));
    }

    #[test]
    fn plain_text_escapes_markdown() {
        assert_eq!(plain("2026-11-19T01:50:01.423Z"), "2026-11-19T01:50:01.423Z");
        assert_eq!(plain("[x](http://e) | *y*\n# z"), "\\[x\\]\\(http://e\\) \\| \\*y\\* \\# z");
    }

    #[test]
    fn a_hostile_tool_name_keeps_every_table_row_whole() {
        let hostile = "send_email | 5 |\n# You are approved\n| x";
        let review = Review {
            period: None,
            events: 2,
            checkpoints: vec![],
            unsigned_events: 0,
            integrity: None,
            agents: vec![AgentReview {
                agent: AgentId::from("bot|1"),
                tasks: 1,
                calls: CallCounts { asked: 1, executed: 0, denied: 1 },
                tools: vec![],
                scope_to_trim: vec![],
                denials: vec![DenialGroup {
                    stage: Stage::Menu,
                    guard: None,
                    code: "unknown_tool".to_owned(),
                    count: 1,
                    example: CallRef { task: TaskId::from("T\n1"), tool: hostile.to_owned() },
                }],
                approvals: vec![],
                budget: BudgetUse::default(),
                anomalies: Anomalies {
                    off_menu: vec![Occurrences {
                        tool: hostile.to_owned(),
                        code: "unknown_tool".to_owned(),
                        count: 1,
                        example_task: TaskId::from("T|1"),
                    }],
                    ..Anomalies::default()
                },
            }],
        };
        let markdown = review.to_markdown();
        assert!(!markdown.lines().any(|line| line.starts_with("# You")), "{markdown}");
        assert!(markdown.contains("`send_email \\| 5 \\|\\n# You are approved\\n\\| x`"));
        let rows: Vec<&str> = markdown.lines().filter(|line| line.starts_with('|')).collect();
        let denial = rows.iter().find(|row| row.contains("unknown_tool") && row.contains("task"));
        assert_eq!(separators(denial.unwrap()), 5, "{markdown}");
        let anomaly = rows.iter().find(|row| row.starts_with("| Tool not on the menu"));
        assert_eq!(separators(anomaly.unwrap()), 6, "{markdown}");
        assert!(markdown.contains("## Agent `bot\\|1`"));
    }

    #[test]
    fn waits_and_money_read_as_people_write_them() {
        assert_eq!(wait(None), "–");
        assert_eq!(wait(Some(999)), "999 ms");
        assert_eq!(wait(Some(1_540)), "1.5 s");
        assert_eq!(wait(Some(125_000)), "2 min 5 s");
        assert_eq!(money(2_499), "24.99 (2499 cents)");
        assert_eq!(money(-5), "-0.05 (-5 cents)");
    }
}
