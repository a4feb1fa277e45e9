//! The audit review: what each agent did in a period, what it was refused and why, and what it
//! was allowed to do but never did, computed from the audit chain and written as Markdown.
//!
//! The chain answers "what happened to call X?"; a review answers "is this agent's setup still
//! right?". Build one with [`Review::from_events`] over the (verified) events of a period and
//! print [`Review::to_markdown`]. Per agent it shows:
//!
//! - **Calls**: tasks run, tool calls asked for, executed (the tool ran, successfully or not) and
//!   denied (some stage refused it), in total and per tool on the menu.
//! - **Scope to trim**: tools on the agent's menu (as recorded when each task started) that the
//!   agent never asked for in the period. Each is a grant nobody uses, and every grant is
//!   something a prompt-injected model can reach for. Unless the tool is for a rare job that did
//!   not come up this period, take it off the agent's menu; if only some tasks need it, give it
//!   to a subagent cut for those tasks instead.
//! - **Denials by reason**: refusals grouped by where they happened (menu, schema, which guard,
//!   approval) and the reason code, with one example call each. A steady reason is usually a
//!   model or prompt problem (the agent keeps asking for something policy never allows); a new
//!   one is worth reading in the log (`audit query --task …`).
//! - **Approvals**: how each request put to a human ended (`approved`, `denied`, `expired`,
//!   `channel_failed`, …) and how long it waited. Many `expired` answers mean the reviewers are
//!   not there when asked; long waits mean the approval rule asks too often.
//! - **Budget use**: money moved by calls that succeeded, as a guard recorded it before the call
//!   (`detail.context.amount_cents`, the policy guard's Cedar context), and irreversible calls
//!   that ran (the effect classes come from the task-start event's `detail.effects`). An agent
//!   whose menu moves no money (`detail.moves_money` is empty) is shown no money at all.
//! - **Anomalies**: money paid back on one record or to one subject across several tasks (a
//!   cap per ticket walked around one ticket at a time); tasks with [`DENIAL_BURST`] or more denials (a model pushing against its
//!   limits, often an injected one), calls to tools not on the menu, tasks that ended other than
//!   `completed`, and tools that failed.
//!
//! Above all of it stands the **integrity** of the log the review was built from: the verdict of
//! [`check_log`](super::check_log) (intact and sealed, intact but not sealed, or tampered) in
//! words nobody can miss ([`Review::with_integrity`]), and the signed checkpoints of the period,
//! with the longest stretch between two of them and any events left unsigned at the end.
//!
//! A review never shows what a call asked for: arguments come from the model and may carry an
//! attacker's text. It names calls by task, tool and reason code only, and every name it prints
//! is escaped for Markdown (see [`Review::to_markdown`]).

mod markdown;

use super::integrity::Integrity;
use super::{SealedEvent, SignedHead, Stage, Verdict};
use crate::ids::{AgentId, TaskId};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How many denials in one task make a burst worth a look.
pub const DENIAL_BURST: u64 = 3;

/// What the agents of one period did, ready to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The period covered; `None` when it was not given and there were no events to span.
    pub period: Option<Period>,
    /// How many events the review is built from.
    pub events: u64,
    /// One entry per agent, by agent id.
    pub agents: Vec<AgentReview>,
    /// The signed checkpoints of the period, in order.
    pub checkpoints: Vec<CheckpointMark>,
    /// Events of the period after its last checkpoint (or all, without one): not yet signed.
    pub unsigned_events: u64,
    /// The verdict on the whole log, when it was checked.
    pub integrity: Option<Integrity>,
}

/// One signed checkpoint, as the review shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointMark {
    /// When it was signed.
    pub time: String,
    /// How many events of the log it covers.
    pub size: u64,
    /// Whether it sealed the log.
    pub sealed: bool,
}

/// The longest stretch between two checkpoints (or from the last one to the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointGap {
    /// The checkpoint it starts at.
    pub from: String,
    /// The checkpoint it ends at.
    pub to: String,
    /// How long, in milliseconds.
    pub millis: i64,
    /// How many events were signed at its end.
    pub events: u64,
}

/// The stretch of time a review covers, both ends included, as RFC 3339 UTC with milliseconds:
/// the log's own format, so an event's time compares with the ends as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// The first instant covered.
    pub from: String,
    /// The last instant covered.
    pub to: String,
}

/// Why a period could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeriodError {
    /// A time is not RFC 3339.
    #[error("`{0}` is not an RFC 3339 time (such as `2026-11-19T00:00:00Z`)")]
    InvalidTime(String),
    /// The period ends before it starts.
    #[error("the period starts at `{from}`, after it ends at `{to}`")]
    Reversed {
        /// The start given.
        from: String,
        /// The end given.
        to: String,
    },
}

/// One agent's part of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReview {
    /// The agent.
    pub agent: AgentId,
    /// Tasks started in the period.
    pub tasks: u64,
    /// Every call the agent asked for.
    pub calls: CallCounts,
    /// Calls per tool on the agent's menu, by tool name (unused tools included).
    pub tools: Vec<ToolUse>,
    /// Tools on the menu never asked for in the period, by name.
    pub scope_to_trim: Vec<String>,
    /// Denials grouped by stage, guard and reason code; most frequent first.
    pub denials: Vec<DenialGroup>,
    /// Approval requests grouped by outcome; most frequent first.
    pub approvals: Vec<ApprovalGroup>,
    /// Money and irreversible effects.
    pub budget: BudgetUse,
    /// What deserves a look.
    pub anomalies: Anomalies,
}

/// How many calls were asked for, executed and denied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls the model asked for.
    pub asked: u64,
    /// Calls whose tool ran (its outcome, success or failure, is on record).
    pub executed: u64,
    /// Calls some stage refused.
    pub denied: u64,
}

/// One menu tool's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolUse {
    /// The tool.
    pub tool: String,
    /// Its calls.
    pub calls: CallCounts,
}

/// Denials with the same stage, guard and reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialGroup {
    /// The stage that refused.
    pub stage: Stage,
    /// The guard that refused, for [`Stage::Guard`].
    pub guard: Option<String>,
    /// The reason code.
    pub code: String,
    /// How many calls.
    pub count: u64,
    /// The first of them.
    pub example: CallRef,
}

/// A call named safely: its task and tool, never its arguments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallRef {
    /// The task.
    pub task: TaskId,
    /// The tool as the model named it (untrusted text: escape it before showing it).
    pub tool: String,
}

/// Approval requests that ended the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalGroup {
    /// `approved`, `denied`, `expired`, `channel_failed`, or another refusal code.
    pub outcome: String,
    /// How many requests.
    pub count: u64,
    /// The median wait in milliseconds, over the requests whose wait is on record.
    pub median_wait_ms: Option<u64>,
    /// The longest wait in milliseconds.
    pub max_wait_ms: Option<u64>,
}

/// What the agent's executed calls spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetUse {
    /// Money moved by calls that succeeded, in cents.
    pub money_cents: i64,
    /// How many succeeded calls moved money.
    pub money_calls: u64,
    /// Calls to irreversible tools that ran; `None` when no task recorded its tools' effects.
    pub irreversible_calls: Option<u64>,
    /// Whether any tool on the agent's menu moves money; `None` when no task recorded it. An
    /// agent with no such tool has no money to show, and the review shows none.
    pub moves_money: Option<bool>,
}

/// What deserves a look, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Tasks with [`DENIAL_BURST`] or more denials, with how many.
    pub denial_bursts: Vec<(TaskId, u64)>,
    /// Calls to tools not on the menu, grouped by tool name.
    pub off_menu: Vec<Occurrences>,
    /// Tasks that ended other than `completed`, with the end's reason code.
    pub abnormal_ends: Vec<(TaskId, String)>,
    /// Calls whose tool failed, grouped by tool and reason code.
    pub failures: Vec<Occurrences>,
    /// Money paid back on one record, or to one subject, across several tasks: one ticket after
    /// another refunding the same order or the same customer is how a cap per task is walked
    /// around.
    pub repeated_paybacks: Vec<RepeatedPaybacks>,
}

/// Money-moving calls that ran on one record (or for one subject) in more than one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedPaybacks {
    /// `record` (what the calls touched, such as `Order::#W2611340`) or `subject` (whom the
    /// tasks served).
    pub by: &'static str,
    /// The record or the subject.
    pub key: String,
    /// How many tasks.
    pub tasks: u64,
    /// How many calls.
    pub calls: u64,
    /// The money they moved, in cents.
    pub money_cents: i64,
}

/// Calls with the same tool and reason code, with a count and the first call's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrences {
    /// The tool as the model named it (untrusted text).
    pub tool: String,
    /// The reason code.
    pub code: String,
    /// How many calls.
    pub count: u64,
    /// The task of the first.
    pub example_task: TaskId,
}

impl Anomalies {
    /// How many anomalies of every kind.
    pub fn len(&self) -> usize {
        self.denial_bursts.len()
            + self.off_menu.len()
            + self.abnormal_ends.len()
            + self.failures.len()
            + self.repeated_paybacks.len()
    }

    /// Whether nothing deserves a look.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Period {
    /// The period from `from` to `to`, each RFC 3339 in any offset.
    pub fn new(from: &str, to: &str) -> Result<Self, PeriodError> {
        let (from_time, to_time) = (parse_time(from)?, parse_time(to)?);
        if from_time > to_time {
            return Err(PeriodError::Reversed { from: from.to_owned(), to: to.to_owned() });
        }
        Ok(Self { from: log_time(from_time), to: log_time(to_time) })
    }

    /// The `days` days up to and including `to`: the default week of a weekly review.
    pub fn days_before(to: &str, days: u32) -> Result<Self, PeriodError> {
        let to_time = parse_time(to)?;
        let from_time = to_time - time::Duration::days(i64::from(days));
        Ok(Self { from: log_time(from_time), to: log_time(to_time) })
    }

    /// Whether an event at `time` (as the log writes it) falls in the period.
    pub fn contains(&self, time: &str) -> bool {
        self.from.as_str() <= time && time <= self.to.as_str()
    }
}

impl Review {
    /// The review of `events` (in any order) that fall in `period`; of all of them, spanning the
    /// first to the last, when `period` is `None`. Verify the chain before: the review trusts
    /// what it is given.
    pub fn from_events(
        events: impl IntoIterator<Item = SealedEvent>,
        period: Option<Period>,
    ) -> Self {
        let mut events: Vec<SealedEvent> = events
            .into_iter()
            .filter(|sealed| period.as_ref().is_none_or(|p| p.contains(&sealed.event.time)))
            .collect();
        events.sort_by_key(|sealed| sealed.seq);
        let period = period.or_else(|| span_of(&events));
        let mut tallies: BTreeMap<AgentId, AgentTally> = BTreeMap::new();
        let mut checkpoints = Vec::new();
        let mut unsigned_events = 0;
        for sealed in &events {
            match sealed.event.stage {
                // The log's own lines: its header, and the checkpoints that sign it.
                Stage::Log => unsigned_events += 1,
                Stage::Checkpoint => {
                    if let Ok(signed) =
                        serde_json::from_value::<SignedHead>(sealed.event.detail.clone())
                    {
                        checkpoints.push(CheckpointMark {
                            time: signed.head.time,
                            size: signed.head.size,
                            sealed: signed.head.sealed,
                        });
                    }
                    unsigned_events = 0;
                }
                _ => {
                    unsigned_events += 1;
                    tallies.entry(sealed.event.agent.clone()).or_default().add(sealed);
                }
            }
        }
        Self {
            period,
            events: events.len() as u64,
            agents: tallies.into_iter().map(|(agent, tally)| tally.into_review(agent)).collect(),
            checkpoints,
            unsigned_events,
            integrity: None,
        }
    }

    /// Puts the verdict on the log at the top of the review.
    #[must_use]
    pub fn with_integrity(mut self, integrity: Integrity) -> Self {
        self.integrity = Some(integrity);
        self
    }

    /// The longest stretch of time between two consecutive checkpoints of the period.
    pub fn longest_checkpoint_gap(&self) -> Option<CheckpointGap> {
        self.checkpoints
            .windows(2)
            .filter_map(|pair| {
                let millis = millis_between(&pair[0].time, &pair[1].time)?;
                Some(CheckpointGap {
                    from: pair[0].time.clone(),
                    to: pair[1].time.clone(),
                    millis,
                    events: pair[1].size.saturating_sub(pair[0].size),
                })
            })
            .max_by_key(|gap| gap.millis)
    }

    /// Calls of every agent, added up.
    pub fn total_calls(&self) -> CallCounts {
        self.agents.iter().fold(CallCounts::default(), |total, agent| CallCounts {
            asked: total.asked + agent.calls.asked,
            executed: total.executed + agent.calls.executed,
            denied: total.denied + agent.calls.denied,
        })
    }
}

/// Milliseconds from one RFC 3339 time to another.
fn millis_between(from: &str, to: &str) -> Option<i64> {
    let from = OffsetDateTime::parse(from, &Rfc3339).ok()?;
    let to = OffsetDateTime::parse(to, &Rfc3339).ok()?;
    i64::try_from((to - from).whole_milliseconds()).ok()
}

/// Everything seen of one agent so far, while walking the events in order.
#[derive(Default)]
struct AgentTally {
    tasks: BTreeSet<TaskId>,
    menu: BTreeSet<String>,
    effects: BTreeMap<String, String>,
    effects_recorded: bool,
    /// The menu's tools that move money, once a task start recorded them.
    money_tools: Option<BTreeSet<String>>,
    /// By task and the runtime's call id (minted per call, so a model repeating its own ids
    /// cannot fold two calls into one here).
    calls: BTreeMap<(TaskId, String), CallTally>,
    /// Waits of approval requests by outcome (`None` when the wait is not on record).
    approvals: BTreeMap<String, Vec<Option<u64>>>,
    abnormal_ends: Vec<(TaskId, String)>,
    /// Whom each task served (`on_behalf_of` of its start).
    subjects: BTreeMap<TaskId, String>,
}

/// One call's fate, as its events tell it.
struct CallTally {
    seq: u64,
    task: TaskId,
    tool: String,
    denial: Option<Denial>,
    ran: bool,
    failure: Option<String>,
    amount_cents: Option<i64>,
    /// What the call touched, as the policy guard recorded it (`Order::#W…`).
    resource: Option<String>,
}

/// Where and why a call was refused.
struct Denial {
    stage: Stage,
    guard: Option<String>,
    code: String,
}

impl AgentTally {
    fn add(&mut self, sealed: &SealedEvent) {
        if sealed.event.stage == Stage::Task {
            self.add_task_event(sealed);
        } else {
            self.add_call_event(sealed);
        }
    }

    fn add_call_event(&mut self, sealed: &SealedEvent) {
        let event = &sealed.event;
        let Some(call_id) = &event.call_id else { return };
        let call = self
            .calls
            .entry((event.task.clone(), call_id.as_str().to_owned()))
            .or_insert_with(|| CallTally {
                seq: sealed.seq,
                task: event.task.clone(),
                tool: event.tool.clone().unwrap_or_default(),
                denial: None,
                ran: false,
                failure: None,
                amount_cents: None,
                resource: None,
            });
        let code = event.reasons.first().map(|reason| reason.code.clone()).unwrap_or_default();
        match (event.stage, event.verdict) {
            (stage, Verdict::Deny) => {
                call.denial =
                    Some(Denial { stage, guard: event.guard.clone(), code: code.clone() });
            }
            (Stage::Guard, Verdict::Allow | Verdict::NeedsApproval) => {
                call.amount_cents = call.amount_cents.or_else(|| amount_cents(&event.detail));
                call.resource = call.resource.take().or_else(|| {
                    event
                        .detail
                        .pointer("/context/resource")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            }
            (Stage::Outcome, Verdict::Succeeded) => call.ran = true,
            (Stage::Outcome, _) => {
                call.ran = true;
                call.failure = Some(code.clone());
            }
            _ => {}
        }
        if event.stage == Stage::Approval {
            let outcome =
                if event.verdict == Verdict::Allow { "approved".to_owned() } else { code };
            let waited = event.detail.pointer("/record/waited_ms").and_then(Value::as_u64);
            self.approvals.entry(outcome).or_default().push(waited);
        }
    }

    fn add_task_event(&mut self, sealed: &SealedEvent) {
        let event = &sealed.event;
        match event.verdict {
            Verdict::Started => {
                self.tasks.insert(event.task.clone());
                if let Some(subject) = event.detail.get("on_behalf_of").and_then(Value::as_str) {
                    self.subjects.insert(event.task.clone(), subject.to_owned());
                }
                self.menu.extend(strings(event.detail.get("menu")));
                if let Some(money) = event.detail.get("moves_money") {
                    self.money_tools.get_or_insert_with(BTreeSet::new).extend(strings(Some(money)));
                }
                if let Some(effects) = event.detail.get("effects").and_then(Value::as_object) {
                    self.effects_recorded = true;
                    for (tool, effect) in effects {
                        let effect = effect.as_str().unwrap_or_default().to_owned();
                        self.effects.insert(tool.clone(), effect);
                    }
                }
            }
            Verdict::Ended => {
                let code = event.reasons.first().map_or("", |reason| reason.code.as_str());
                if code != "completed" {
                    self.abnormal_ends.push((event.task.clone(), code.to_owned()));
                }
            }
            _ => {}
        }
    }

    fn into_review(self, agent: AgentId) -> AgentReview {
        let tools = self.tool_uses();
        let scope_to_trim =
            tools.iter().filter(|tool| tool.calls.asked == 0).map(|t| t.tool.clone()).collect();
        AgentReview {
            agent,
            tasks: self.tasks.len() as u64,
            calls: counts(self.calls.values()),
            scope_to_trim,
            tools,
            denials: self.denial_groups(),
            approvals: approval_groups(&self.approvals),
            budget: self.budget_use(),
            anomalies: self.anomalies(),
        }
    }

    fn tool_uses(&self) -> Vec<ToolUse> {
        self.menu
            .iter()
            .map(|tool| ToolUse {
                tool: tool.clone(),
                calls: counts(self.calls.values().filter(|call| &call.tool == tool)),
            })
            .collect()
    }

    fn calls_in_order(&self) -> Vec<&CallTally> {
        let mut calls: Vec<&CallTally> = self.calls.values().collect();
        calls.sort_by_key(|call| call.seq);
        calls
    }

    fn denial_groups(&self) -> Vec<DenialGroup> {
        // Calls in order, so the first call of a group is its example.
        let mut groups: BTreeMap<(&str, Option<&str>, &str), DenialGroup> = BTreeMap::new();
        for call in self.calls_in_order() {
            let Some(denial) = &call.denial else { continue };
            let key = (denial.stage.as_str(), denial.guard.as_deref(), denial.code.as_str());
            let group = groups.entry(key).or_insert_with(|| DenialGroup {
                stage: denial.stage,
                guard: denial.guard.clone(),
                code: denial.code.clone(),
                count: 0,
                example: CallRef { task: call.task.clone(), tool: call.tool.clone() },
            });
            group.count += 1;
        }
        most_frequent_first(groups.into_values().collect(), |group| group.count)
    }

    fn budget_use(&self) -> BudgetUse {
        let succeeded = self.calls.values().filter(|call| call.ran && call.failure.is_none());
        let moved: Vec<i64> = succeeded.filter_map(|call| call.amount_cents).collect();
        let irreversible = self.calls.values().filter(|call| {
            call.ran && self.effects.get(&call.tool).is_some_and(|effect| effect == "irreversible")
        });
        BudgetUse {
            money_cents: moved.iter().sum(),
            money_calls: moved.iter().filter(|cents| **cents != 0).count() as u64,
            irreversible_calls: self.effects_recorded.then(|| irreversible.count() as u64),
            moves_money: self.money_tools.as_ref().map(|tools| !tools.is_empty()),
        }
    }

    fn anomalies(&self) -> Anomalies {
        let calls = self.calls_in_order();
        let mut denials_per_task: BTreeMap<&TaskId, u64> = BTreeMap::new();
        for call in calls.iter().filter(|call| call.denial.is_some()) {
            *denials_per_task.entry(&call.task).or_default() += 1;
        }
        let off_menu = occurrences(&calls, |call| {
            let denial = call.denial.as_ref().filter(|denial| denial.stage == Stage::Menu)?;
            Some(denial.code.clone())
        });
        let failures = occurrences(&calls, |call| call.failure.clone());
        let mut abnormal_ends = self.abnormal_ends.clone();
        abnormal_ends.sort();
        Anomalies {
            denial_bursts: denials_per_task
                .into_iter()
                .filter(|(_, denials)| *denials >= DENIAL_BURST)
                .map(|(task, denials)| (task.clone(), denials))
                .collect(),
            off_menu,
            abnormal_ends,
            failures,
            repeated_paybacks: self.repeated_paybacks(),
        }
    }

    /// Records and subjects that money-moving calls paid back in two tasks or more.
    fn repeated_paybacks(&self) -> Vec<RepeatedPaybacks> {
        let paid: Vec<&CallTally> = self
            .calls_in_order()
            .into_iter()
            .filter(|call| call.ran && call.failure.is_none())
            .filter(|call| call.amount_cents.is_some_and(|cents| cents > 0))
            .collect();
        let mut found = Vec::new();
        for by in ["record", "subject"] {
            let mut groups: BTreeMap<String, (BTreeSet<&TaskId>, u64, i64)> = BTreeMap::new();
            for call in &paid {
                let key = match by {
                    "record" => call.resource.clone(),
                    _ => self.subjects.get(&call.task).cloned(),
                };
                let Some(key) = key else { continue };
                let group = groups.entry(key).or_default();
                group.0.insert(&call.task);
                group.1 += 1;
                group.2 += call.amount_cents.unwrap_or(0);
            }
            found.extend(groups.into_iter().filter(|(_, (tasks, _, _))| tasks.len() > 1).map(
                |(key, (tasks, calls, money_cents))| RepeatedPaybacks {
                    by,
                    key,
                    tasks: tasks.len() as u64,
                    calls,
                    money_cents,
                },
            ));
        }
        found
    }
}

/// Groups the calls for which `code_of` gives a reason code, by tool and code: counts, and the
/// first call's task as the example (`calls` are in order).
fn occurrences(
    calls: &[&CallTally],
    code_of: impl Fn(&CallTally) -> Option<String>,
) -> Vec<Occurrences> {
    let mut groups: BTreeMap<(String, String), Occurrences> = BTreeMap::new();
    for call in calls {
        let Some(code) = code_of(call) else { continue };
        let group = groups.entry((call.tool.clone(), code.clone())).or_insert_with(|| {
            Occurrences { tool: call.tool.clone(), code, count: 0, example_task: call.task.clone() }
        });
        group.count += 1;
    }
    most_frequent_first(groups.into_values().collect(), |group| group.count)
}

/// Sorts by count, highest first; a stable sort, so equal counts keep their (sorted) order.
fn most_frequent_first<T>(mut items: Vec<T>, count: impl Fn(&T) -> u64) -> Vec<T> {
    items.sort_by_key(|item| std::cmp::Reverse(count(item)));
    items
}

fn counts<'a>(calls: impl Iterator<Item = &'a CallTally>) -> CallCounts {
    calls.fold(CallCounts::default(), |total, call| CallCounts {
        asked: total.asked + 1,
        executed: total.executed + u64::from(call.ran),
        denied: total.denied + u64::from(call.denial.is_some()),
    })
}

fn approval_groups(approvals: &BTreeMap<String, Vec<Option<u64>>>) -> Vec<ApprovalGroup> {
    let groups: Vec<ApprovalGroup> = approvals
        .iter()
        .map(|(outcome, waits)| {
            let mut known: Vec<u64> = waits.iter().flatten().copied().collect();
            known.sort_unstable();
            ApprovalGroup {
                outcome: outcome.clone(),
                count: waits.len() as u64,
                median_wait_ms: median(&known),
                max_wait_ms: known.last().copied(),
            }
        })
        .collect();
    most_frequent_first(groups, |group| group.count)
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
fn median(sorted: &[u64]) -> Option<u64> {
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => sorted.get(middle).copied(),
        _ => Some(sorted.get(middle - 1)?.midpoint(*sorted.get(middle)?)),
    }
}

/// The amount a guard recorded for a call, in cents: the policy guard puts it in its Cedar
/// context.
fn amount_cents(detail: &Value) -> Option<i64> {
    detail
        .pointer("/context/amount_cents")
        .or_else(|| detail.get("amount_cents"))
        .and_then(Value::as_i64)
}

fn strings(value: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
}

/// The first to the last event's time.
fn span_of(events: &[SealedEvent]) -> Option<Period> {
    let from = events.iter().map(|sealed| &sealed.event.time).min()?;
    let to = events.iter().map(|sealed| &sealed.event.time).max()?;
    Some(Period { from: from.clone(), to: to.clone() })
}

fn parse_time(text: &str) -> Result<OffsetDateTime, PeriodError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| PeriodError::InvalidTime(text.to_owned()))
}

/// A time as the log writes it: RFC 3339 UTC with milliseconds.
fn log_time(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let utc = time.to_offset(time::UtcOffset::UTC);
    utc.format(&format).unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests;
