//! The demo's command line.

use std::io::IsTerminal;
use std::path::PathBuf;

/// What the command line asked for.
pub struct Options {
    /// Where the audit log goes.
    pub audit_path: PathBuf,
    /// Who answers approval requests.
    pub approver: ApproverChoice,
    /// The Claude model id, used when `ANTHROPIC_API_KEY` is set.
    pub model: String,
}

/// The model the demo asks for when a key is set; ids move fast, so `--model` overrides it.
pub const DEFAULT_MODEL: &str = "claude-sonnet-5";

/// Who answers approval requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproverChoice {
    /// A person at this terminal.
    Terminal,
    /// A person in the web console.
    Web,
    /// A script that says yes.
    Approve,
    /// A script that says no.
    Deny,
}

/// The usage text.
pub const USAGE: &str = "\
Usage: refund-bot [--audit-log PATH] [--approver terminal|web|approve|deny] [--model ID]
       refund-bot audit verify PATH
       refund-bot audit query PATH [--agent A] [--task T] [--tool T] [--verdict V] [--since TIME] [--json]

Runs the offline refund-bot demo: three support tickets, one of them a prompt injection, handled
by a model that obeys the injection, with Warden's guards in front of every tool call.

Options:
  --audit-log PATH   where to write the hash-chained audit log
                     (default: target/refund-bot/audit-<time>.jsonl)
  --approver WHO     who answers when a policy asks for a human:
                       terminal  a prompt on this terminal (the default when interactive)
                       web       the web console on 127.0.0.1 (prints its address and token)
                       approve   a script that says yes
                       deny      a script that says no (the default when not interactive)
  --model ID         the Claude model when ANTHROPIC_API_KEY is set (default: claude-sonnet-5)
  -h, --help         print this help

Environment:
  ANTHROPIC_API_KEY  run the tickets on real Claude instead of the offline scripted model
  ANTHROPIC_BASE_URL where the Messages API is (default: the public API)
  RUST_LOG           log filter for stderr, e.g. `audit=info` to mirror every audit event";

impl Options {
    /// Parses the arguments; `Ok(None)` when help was printed.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Self>, String> {
        let mut args = args.into_iter();
        let mut audit_path = None;
        let mut approver = None;
        let mut model = DEFAULT_MODEL.to_owned();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                "--audit-log" => {
                    audit_path =
                        Some(PathBuf::from(args.next().ok_or("`--audit-log` needs a path")?));
                }
                "--approver" => {
                    let who = args
                        .next()
                        .ok_or("`--approver` needs one of terminal, web, approve, deny")?;
                    approver = Some(match who.as_str() {
                        "terminal" => ApproverChoice::Terminal,
                        "web" => ApproverChoice::Web,
                        "approve" => ApproverChoice::Approve,
                        "deny" => ApproverChoice::Deny,
                        other => {
                            return Err(format!(
                                "unknown approver `{other}`: use terminal, web, approve or deny"
                            ));
                        }
                    });
                }
                "--model" => model = args.next().ok_or("`--model` needs a model id")?,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis())
            .unwrap_or(0);
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        Ok(Some(Self {
            audit_path: audit_path
                .unwrap_or_else(|| PathBuf::from(format!("target/refund-bot/audit-{stamp}.jsonl"))),
            approver: approver.unwrap_or(if interactive {
                ApproverChoice::Terminal
            } else {
                ApproverChoice::Deny
            }),
            model,
        }))
    }
}
