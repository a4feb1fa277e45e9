//! The terminal approval channel: the operator reads the request on stderr and answers on the TTY.
//!
//! When policy says a person must say yes, [`TerminalApprover`] shows the person running Warden
//! what the call would do (the tool, the exact arguments and their digest, who asks and for whom,
//! what the policy found) and reads `y` or `n`, optionally followed by a comment.
//!
//! # Why stderr and `/dev/tty`, not stdout and stdin
//!
//! stdout is the program's transcript, and stdin may be a pipe of tickets: an answer read from
//! stdin could have been written by whoever wrote the tickets. So the request goes to stderr and
//! the answer is read from `/dev/tty`, the controlling terminal, which only the person at the
//! keyboard types into. A process without one (a service, CI, a container started without `-t`)
//! is refused at once (`no_terminal`) instead of hanging until the pipeline's timeout.
//!
//! # Attacker text on the operator's screen
//!
//! The arguments and the model's stated reason may have been written by a prompt injection.
//! Printed raw, an escape sequence could clear the screen or repaint a line, and a newline could
//! fake a line of Warden's own, such as `Approved: yes`. [`render`] prints every piece of text it
//! did not write itself with control characters, bidirectional overrides and line separators
//! shown as visible escapes:
//!
//! ```text
//! wrong: eprintln!("reason: {}", request.stated_reason)        "\x1b[2J" clears the screen
//! right: eprintln!("reason: {}", clean(&request.stated_reason)) prints `\u{1b}[2J` as text
//! ```
//!
//! # Keys typed too early
//!
//! A key pressed before a request was shown (a second `y` meant for the previous request) must not
//! answer it. Once the request is on screen, the terminal's unread input is discarded, and only
//! then is the answer read.
//!
//! # Example
//!
//! Any reader and writer can stand in for the terminal, which is how the prompt is tested:
//!
//! ```
//! use agent_core::{ApprovalAnswer, ApprovalRequest, Approver};
//! use guards::approval::TerminalApprover;
//!
//! async fn ask(request: ApprovalRequest) -> ApprovalAnswer {
//!     let approver = TerminalApprover::with_io(&b"n amount too large\n"[..], std::io::sink());
//!     approver.decide(request).await // Denied, with the comment "amount too large"
//! }
//! ```
//!
//! In the runtime it is `TerminalApprover::new()` (or [`TerminalApprover::open`], which fails at
//! start-up when there is no terminal), passed to `Pipeline::with_approver`.

use agent_core::{ApprovalAnswer, ApprovalGrant, ApprovalRequest, Approver, Reason};
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Asks the person at the terminal: the request on stderr, the answer from `/dev/tty`.
///
/// `y` or `yes` approves, `n` or `no` denies, and the rest of the line is kept as the reviewer's
/// comment (`n amount too large`). Anything else is asked again, three times at most, and then
/// counts as no; so does a terminal that closes. One request is on screen at a time: requests
/// made together wait their turn.
pub struct TerminalApprover {
    channel: Channel,
    reviewer: String,
}

/// Why [`TerminalApprover::open`] found no terminal to ask on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenTerminalError {
    /// The terminal could not be opened: the process has no controlling terminal (a service,
    /// CI, a container started without `-t`), or it may not read it.
    #[error("cannot open the terminal `{}` to ask for approvals", .path.display())]
    Unavailable {
        /// The terminal's path.
        path: PathBuf,
        /// What opening it said.
        #[source]
        source: io::Error,
    },
}

impl TerminalApprover {
    /// Asks on the process's controlling terminal (`/dev/tty`), opened afresh for each request;
    /// a request made while there is none is refused with `no_terminal`.
    ///
    /// The reviewer named in answers is the OS user (`$USER`), or `operator`.
    pub fn new() -> Self {
        Self::with_tty_path(CONTROLLING_TERMINAL)
    }

    /// Like [`new`](Self::new), but checks now that there is a terminal to ask on, so that a
    /// runtime configured for terminal approvals fails at start-up rather than at the first
    /// request.
    pub fn open() -> Result<Self, OpenTerminalError> {
        let approver = Self::new();
        File::open(CONTROLLING_TERMINAL).map_err(|source| OpenTerminalError::Unavailable {
            path: PathBuf::from(CONTROLLING_TERMINAL),
            source,
        })?;
        Ok(approver)
    }

    /// Asks on the terminal device at `path` instead of `/dev/tty`. A path that cannot be
    /// opened gives `no_terminal` refusals, which is how that case is tested.
    pub fn with_tty_path(path: impl Into<PathBuf>) -> Self {
        Self { channel: Channel::Tty(path.into()), reviewer: reviewer_from_environment() }
    }

    /// Shows requests on `writer` (without colour) and reads answers from `reader`: a stand-in
    /// for the terminal, for tests and for channels that carry a terminal elsewhere. The reader
    /// is kept across requests, so one script of lines can answer several.
    pub fn with_io<R, W>(reader: R, writer: W) -> Self
    where
        R: BufRead + Send + 'static,
        W: Write + Send + 'static,
    {
        let streams = Streams { reader: Box::new(reader), writer: Box::new(writer) };
        Self {
            channel: Channel::Streams(Arc::new(Mutex::new(streams))),
            reviewer: reviewer_from_environment(),
        }
    }

    /// Names `reviewer` in answers instead of the OS user.
    #[must_use]
    pub fn with_reviewer(mut self, reviewer: impl Into<String>) -> Self {
        self.reviewer = reviewer.into();
        self
    }

    /// Who this approver's answers name as the reviewer.
    pub fn reviewer(&self) -> &str {
        &self.reviewer
    }
}

impl Default for TerminalApprover {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TerminalApprover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TerminalApprover");
        match &self.channel {
            Channel::Tty(path) => debug.field("tty", path),
            Channel::Streams(_) => debug.field("io", &"caller's reader and writer"),
        };
        debug.field("reviewer", &self.reviewer).finish()
    }
}

#[async_trait]
impl Approver for TerminalApprover {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return refused("channel_failed", "the terminal approver needs a Tokio runtime");
        };
        // The pipeline drops this future when its timeout passes; the thread blocked on the
        // terminal cannot be stopped, but it learns through this flag that nobody is waiting.
        let withdrawn = Arc::new(AtomicBool::new(false));
        let _withdraw_when_dropped = WithdrawWhenDropped(Arc::clone(&withdrawn));
        let prompt =
            Prompt { channel: self.channel.clone(), reviewer: self.reviewer.clone(), withdrawn };
        match runtime.spawn_blocking(move || prompt.ask(&request)).await {
            Ok(answer) => answer,
            Err(error) => {
                refused("channel_failed", format!("the terminal prompt stopped: {error}"))
            }
        }
    }
}

/// The request as the terminal shows it, with `colour` as ANSI escapes or without.
///
/// Every string taken from the request is passed through the same neutraliser, so attacker text
/// cannot move the cursor, recolour the screen or start a line of its own. With `colour` false
/// the result holds no escape character at all.
pub fn render(request: &ApprovalRequest, colour: bool) -> String {
    let paint = Paint { colour };
    let policy = request.evidence.get("policy");
    let mut out = Lines::default();

    out.line(paint.bold(&format!("━━ Approval needed: {} ━━", clean(request.tool.as_str()))));
    out.field("request", clean(&request.id));
    out.field("tool", paint.bold(&clean(request.tool.as_str())));
    out.field("agent", describe_agent(request));
    out.field("task", describe_task(request));
    if request.needs.is_empty() {
        out.field("asked by", "(no reason given)".to_owned());
    }
    for need in &request.needs {
        let mut text = format!("{}: {}", clean(&need.reason.code), clean(&need.reason.detail));
        if !need.policies.is_empty() {
            text.push_str(&format!(" (policies: {})", clean_list(&need.policies)));
        }
        out.field("asked by", text);
    }
    if let Some(policies) = policy.and_then(|policy| policy.get("policies")) {
        out.field("policies", describe_list(policies));
    }
    if let Some(usage) = policy.and_then(|policy| policy.get("usage")) {
        for (at, scope) in describe_usage(usage).into_iter().enumerate() {
            out.field(if at == 0 { "spent" } else { "" }, scope);
        }
    }
    out.field("model says", describe_claim(&request.stated_reason, &paint));

    out.line(String::new());
    out.line(format!(
        "{} (sha256 {}):",
        paint.bold("Arguments, exactly as the tool gets them"),
        short_digest(&request.args_digest)
    ));
    let pretty =
        serde_json::to_string_pretty(&request.args).unwrap_or_else(|_| request.args.to_string());
    for line in pretty.lines() {
        out.line(format!("  {}", clean(line)));
    }

    out.line(String::new());
    let provenance = policy.and_then(|policy| policy.get("argument_provenance"));
    describe_provenance(&mut out, &request.args, provenance, &paint);

    out.line(String::new());
    out.field(
        "answer by",
        format!("{} (no answer by then counts as no)", clean(&request.expires_at)),
    );
    out.0
}

/// The controlling terminal on Unix.
const CONTROLLING_TERMINAL: &str = "/dev/tty";

/// How many times the question is asked before unclear answers count as no.
const ATTEMPTS: usize = 3;

/// The longest answer line read; the rest of a longer line is read as the next answer.
const MAX_LINE: u64 = 4096;

/// How much of the model's stated reason is shown: it is a claim, and a long one would push the
/// arguments off the screen.
const MAX_CLAIM_CHARS: usize = 600;

/// How much of the reviewer's comment is kept.
const MAX_COMMENT_CHARS: usize = 500;

/// The channel named in answers.
const CHANNEL: &str = "terminal";

/// One prompt at a time on the terminal, across every approver in the process: two requests shown
/// together would interleave on screen and race for the same answer.
static TERMINAL: Mutex<()> = Mutex::new(());

/// Where requests are shown and answers read.
#[derive(Clone)]
enum Channel {
    /// The terminal device at this path, with the request on stderr.
    Tty(PathBuf),
    /// A caller's reader and writer.
    Streams(Arc<Mutex<Streams>>),
}

struct Streams {
    reader: Box<dyn BufRead + Send>,
    writer: Box<dyn Write + Send>,
}

/// One request's conversation, run on a blocking thread.
struct Prompt {
    channel: Channel,
    reviewer: String,
    withdrawn: Arc<AtomicBool>,
}

impl Prompt {
    fn ask(self, request: &ApprovalRequest) -> ApprovalAnswer {
        match &self.channel {
            Channel::Tty(path) => {
                // Opened before waiting for our turn, so a missing terminal is refused at once.
                let tty = match File::open(path) {
                    Ok(tty) => tty,
                    Err(error) => {
                        return refused(
                            "no_terminal",
                            format!("no terminal to ask on (`{}`: {error})", path.display()),
                        );
                    }
                };
                let _turn = TERMINAL.lock().unwrap_or_else(PoisonError::into_inner);
                let colour = io::stderr().is_terminal();
                let mut keyboard = BufReader::new(&tty);
                // Not `stderr().lock()`: holding it while the operator thinks would stall every
                // other thread that logs to stderr.
                let mut screen = io::stderr();
                self.converse(request, &mut keyboard, &mut screen, colour, &|| {
                    discard_typed_ahead(&tty);
                })
            }
            Channel::Streams(streams) => {
                let mut streams = streams.lock().unwrap_or_else(PoisonError::into_inner);
                let Streams { reader, writer } = &mut *streams;
                self.converse(request, reader, writer, false, &|| {})
            }
        }
    }

    /// Shows the request, then reads answers until one is clear, the attempts run out, or the
    /// reader ends.
    fn converse(
        &self,
        request: &ApprovalRequest,
        reader: &mut dyn BufRead,
        writer: &mut dyn Write,
        colour: bool,
        discard_typed_ahead: &dyn Fn(),
    ) -> ApprovalAnswer {
        if self.withdrawn.load(Ordering::SeqCst) {
            // Expired while an earlier request had the terminal: don't show it at all.
            return refused("expired", "the request expired before the terminal was free");
        }
        let paint = Paint { colour };
        if let Err(error) = show(writer, &render(request, colour)) {
            return refused("terminal_failed", format!("the request could not be shown: {error}"));
        }
        discard_typed_ahead();
        let question = paint.bold(&format!(
            "Approve {}? [y/n, then an optional comment] ",
            clean(request.tool.as_str())
        ));
        for attempt in 1..=ATTEMPTS {
            if let Err(error) = show(writer, &question) {
                return refused(
                    "terminal_failed",
                    format!("the question could not be shown: {error}"),
                );
            }
            let line = match read_line(reader) {
                Ok(Some(line)) => line,
                Ok(None) => {
                    tell(writer, "\nThe terminal closed without an answer: denied.");
                    return self.denied(request, "no answer: the terminal closed".to_owned());
                }
                Err(error) => {
                    return refused(
                        "terminal_failed",
                        format!("the answer could not be read: {error}"),
                    );
                }
            };
            if self.withdrawn.load(Ordering::SeqCst) {
                tell(writer, "This request expired before your answer; the answer was not used.");
                return refused("expired", "the request expired before the reviewer answered");
            }
            match parse_answer(&line) {
                Some((Verdict::Yes, comment)) => {
                    tell(writer, &paint.fine("Approved."));
                    let mut grant = ApprovalGrant::for_request(request, &self.reviewer, CHANNEL);
                    grant.comment = comment;
                    return ApprovalAnswer::Approved(grant);
                }
                Some((Verdict::No, comment)) => {
                    tell(writer, "Denied.");
                    return self.denied(request, comment.unwrap_or_default());
                }
                None if attempt < ATTEMPTS => {
                    tell(writer, "Please answer y (yes) or n (no), then an optional comment.");
                }
                None => {}
            }
        }
        tell(writer, &format!("No clear answer after {ATTEMPTS} tries: denied."));
        self.denied(request, format!("no clear answer after {ATTEMPTS} tries"))
    }

    fn denied(&self, request: &ApprovalRequest, comment: String) -> ApprovalAnswer {
        let mut grant = ApprovalGrant::for_request(request, &self.reviewer, CHANNEL);
        grant.comment = (!comment.is_empty()).then_some(comment);
        ApprovalAnswer::Denied(grant)
    }
}

/// Sets the flag when the `decide` future is dropped, finished or not.
struct WithdrawWhenDropped(Arc<AtomicBool>);

impl Drop for WithdrawWhenDropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Yes,
    No,
}

/// `y`/`yes` or `n`/`no` (any case), then an optional comment; `None` for anything else.
fn parse_answer(line: &str) -> Option<(Verdict, Option<String>)> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let verdict = match word.to_lowercase().as_str() {
        "y" | "yes" => Verdict::Yes,
        "n" | "no" => Verdict::No,
        _ => return None,
    };
    let comment = rest.trim();
    let comment = (!comment.is_empty()).then(|| clean(&truncate(comment, MAX_COMMENT_CHARS).0));
    Some((verdict, comment))
}

/// One line, without its newline; `None` at the end of input.
fn read_line(reader: &mut dyn BufRead) -> io::Result<Option<String>> {
    let mut bytes = Vec::new();
    if Read::take(reader, MAX_LINE).read_until(b'\n', &mut bytes)? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).trim_end_matches(['\n', '\r']).to_owned()))
}

fn show(writer: &mut dyn Write, text: &str) -> io::Result<()> {
    writer.write_all(text.as_bytes())?;
    writer.flush()
}

/// A line for the reviewer after the answer is decided: if it cannot be shown, the answer stands.
fn tell(writer: &mut dyn Write, text: &str) {
    if let Err(error) = writeln!(writer, "{text}").and_then(|()| writer.flush()) {
        tracing::debug!(%error, "a note to the reviewer could not be shown");
    }
}

fn refused(code: &str, detail: impl Into<String>) -> ApprovalAnswer {
    ApprovalAnswer::Refused(Reason::new(code, detail))
}

/// Drops input typed before the request was shown.
#[cfg(unix)]
fn discard_typed_ahead(tty: &File) {
    // Best effort: a device that is not a terminal (a file given to `with_tty_path`) has no
    // input queue to discard.
    if let Err(error) = rustix::termios::tcflush(tty, rustix::termios::QueueSelector::IFlush) {
        tracing::debug!(%error, "typed-ahead input could not be discarded");
    }
}

#[cfg(not(unix))]
fn discard_typed_ahead(_tty: &File) {}

fn reviewer_from_environment() -> String {
    std::env::var("USER")
        .ok()
        .map(|user| clean(user.trim()))
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "operator".to_owned())
}

/// Text from outside Warden, made safe to print: control characters (C0, DEL, C1, so also
/// escape sequences and newlines), bidirectional overrides, zero-width characters and Unicode
/// line separators are shown as escapes such as `\n` and `\u{1b}`.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if agent_core::display::hides_or_moves_text(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out
}

/// The first `max` characters of `text`, and how many were left out.
fn truncate(text: &str, max: usize) -> (String, usize) {
    let total = text.chars().count();
    (text.chars().take(max).collect(), total.saturating_sub(max))
}

fn clean_list(items: &[String]) -> String {
    items.iter().map(|item| clean(item)).collect::<Vec<_>>().join(", ")
}

fn describe_agent(request: &ApprovalRequest) -> String {
    let agent = clean(request.agent.as_str());
    if request.chain.len() <= 1 {
        return format!("{agent} (not delegated)");
    }
    let chain: Vec<String> = request.chain.iter().map(|agent| clean(agent.as_str())).collect();
    format!("{agent} (delegated: {})", chain.join(" → "))
}

fn describe_task(request: &ApprovalRequest) -> String {
    let task = clean(request.task.as_str());
    match &request.on_behalf_of {
        Some(customer) => format!("{task}, on behalf of customer {}", clean(customer)),
        None => format!("{task}, for no particular customer"),
    }
}

fn describe_claim(reason: &str, paint: &Paint) -> String {
    let label = paint.caution("(the model's claim, not verified)");
    if reason.trim().is_empty() {
        return format!("{label} nothing");
    }
    let (shown, left_out) = truncate(reason, MAX_CLAIM_CHARS);
    let more =
        if left_out > 0 { format!(" … ({left_out} more characters)") } else { String::new() };
    format!("{label} “{}”{more}", clean(&shown))
}

fn describe_list(value: &Value) -> String {
    match value {
        Value::Array(items) if items.is_empty() => "(none)".to_owned(),
        Value::Array(items) => items.iter().map(describe_scalar).collect::<Vec<_>>().join(", "),
        other => describe_scalar(other),
    }
}

fn describe_scalar(value: &Value) -> String {
    match value {
        Value::String(text) => clean(text),
        other => clean(&other.to_string()),
    }
}

/// The policy guard's `usage`: for each budget scope, a line of calls by class and money moved.
fn describe_usage(usage: &Value) -> Vec<String> {
    let Some(scopes) = usage.as_object() else { return vec![describe_scalar(usage)] };
    let described: Vec<String> = scopes
        .iter()
        .map(|(scope, counters)| {
            let scope = match scope.as_str() {
                "task" => "this task".to_owned(),
                "agent_today" => "agent today".to_owned(),
                "customer_today" => "customer today".to_owned(),
                other => clean(other),
            };
            format!("{scope}: {}", describe_counters(counters))
        })
        .collect();
    if described.is_empty() { vec!["(nothing recorded)".to_owned()] } else { described }
}

fn describe_counters(counters: &Value) -> String {
    let count = |name: &str| counters.get(name).and_then(Value::as_u64);
    match (
        count("read_calls"),
        count("write_calls"),
        count("irreversible_calls"),
        counters.get("money_cents").and_then(Value::as_i64),
    ) {
        (Some(read), Some(write), Some(irreversible), Some(cents)) => format!(
            "{read} read, {write} write, {irreversible} irreversible calls, {} moved",
            money(cents)
        ),
        _ => describe_scalar(counters),
    }
}

/// Integer cents as units with two decimals: `123456` as `1234.56`.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// The argument provenance table, one row per argument, with untrusted-only values marked.
fn describe_provenance(out: &mut Lines, args: &Value, provenance: Option<&Value>, paint: &Paint) {
    let Some(provenance) = provenance.and_then(Value::as_object) else {
        out.line(format!(
            "{} not recorded for this call: nothing tells where the arguments came from.",
            paint.caution("Provenance:")
        ));
        return;
    };
    out.line(paint.bold("Where each argument's value was seen:"));
    let names: Vec<&String> = match args.as_object() {
        Some(args) => {
            args.keys().chain(provenance.keys().filter(|k| !args.contains_key(*k))).collect()
        }
        None => provenance.keys().collect(),
    };
    let width = names.iter().map(|name| clean(name).chars().count()).max().unwrap_or(0).min(32);
    let mut untrusted = Vec::new();
    for name in names {
        let shown = clean(name);
        let marker = match provenance.get(name.as_str()) {
            Some(origin) => describe_origin(origin, paint),
            None => paint.caution("? not checked"),
        };
        if is_untrusted_only(provenance.get(name.as_str())) {
            untrusted.push(shown.clone());
        }
        out.line(format!("  {shown:<width$}  {marker}"));
    }
    if !untrusted.is_empty() {
        let count = match untrusted.len() {
            1 => "1 argument".to_owned(),
            n => format!("{n} arguments"),
        };
        out.line(paint.alarm(&format!(
            "⚠ {count} came only from untrusted text ({}): check against your own records.",
            untrusted.join(", ")
        )));
    }
}

/// The `sources` of an origin, cleaned and joined.
fn sources_of(origin: &Value) -> String {
    origin
        .get("sources")
        .and_then(Value::as_array)
        .map(|sources| sources.iter().map(describe_scalar).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn is_untrusted_only(origin: Option<&Value>) -> bool {
    origin.and_then(|origin| origin.get("origin")).and_then(Value::as_str) == Some("untrusted_only")
}

fn describe_origin(origin: &Value, paint: &Paint) -> String {
    match origin.get("origin").and_then(Value::as_str) {
        Some("untrusted_only") => {
            let sources = origin
                .get("sources")
                .and_then(Value::as_array)
                .map(|sources| sources.iter().map(describe_scalar).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let text = if sources.is_empty() {
                "⚠ from untrusted text".to_owned()
            } else {
                format!("⚠ from untrusted {sources} text")
            };
            paint.alarm(&text)
        }
        Some("trusted") => {
            let sources = sources_of(origin);
            if sources.is_empty() {
                paint.fine("✓ vouched for by our records")
            } else {
                paint.fine(&format!("✓ vouched for: {sources}"))
            }
        }
        Some("own_write_echo") => paint.caution(&format!(
            "? only in what this task itself wrote earlier ({}): vouches for nothing",
            sources_of(origin)
        )),
        Some("unseen") => paint.caution("? seen nowhere: the model wrote it"),
        Some(other) => paint.caution(&format!("? origin `{}`", clean(other))),
        None => paint.caution(&format!("? {}", describe_scalar(origin))),
    }
}

/// The digest as `first twelve…last four` hex digits: enough to compare with the audit log.
fn short_digest(digest: &str) -> String {
    let chars: Vec<char> = digest.chars().collect();
    if chars.len() <= 16 {
        return clean(digest);
    }
    let head: String = chars[..12].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    clean(&format!("{head}…{tail}"))
}

/// ANSI styling, or none.
struct Paint {
    colour: bool,
}

impl Paint {
    fn bold(&self, text: &str) -> String {
        self.wrap("1", text)
    }

    /// Bold white on red: an argument the reviewer must check.
    fn alarm(&self, text: &str) -> String {
        self.wrap("1;97;41", text)
    }

    fn caution(&self, text: &str) -> String {
        self.wrap("33", text)
    }

    fn fine(&self, text: &str) -> String {
        self.wrap("32", text)
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// The rendering being built, line by line.
#[derive(Default)]
struct Lines(String);

impl Lines {
    fn line(&mut self, text: String) {
        self.0.push_str(&text);
        self.0.push('\n');
    }

    fn field(&mut self, label: &str, value: String) {
        self.line(format!("{label:<10} {value}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_by_their_first_word() {
        assert_eq!(parse_answer("y"), Some((Verdict::Yes, None)));
        assert_eq!(parse_answer("  YES  "), Some((Verdict::Yes, None)));
        assert_eq!(parse_answer("n too large"), Some((Verdict::No, Some("too large".to_owned()))));
        assert_eq!(
            parse_answer("No\tcheck the order"),
            Some((Verdict::No, Some("check the order".to_owned())))
        );
        assert_eq!(parse_answer("yesplease"), None);
        assert_eq!(parse_answer("y."), None);
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("ok"), None);
    }

    #[test]
    fn clean_shows_what_would_move_or_hide_text() {
        assert_eq!(clean("a\nb"), "a\\nb");
        assert_eq!(clean("\x1b[2J"), "\\u{1b}[2J");
        assert_eq!(clean("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(clean("x\u{2028}y\u{202e}z"), "x\\u{2028}y\\u{202e}z");
        assert_eq!(clean("José → 1 000 €"), "José → 1 000 €");
    }

    #[test]
    fn digests_and_money_are_shortened_for_people() {
        let digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(short_digest(digest), "0123456789ab…cdef");
        assert_eq!(short_digest("short"), "short");
        assert_eq!(money(123_456), "1234.56");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-250), "-2.50");
    }
}
