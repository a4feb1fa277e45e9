//! The demo's command line.

use crate::manifest::{ApprovalChannel, ToolSource};
use std::path::PathBuf;

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The manifest to run (default: `agent.toml` beside this crate).
    pub manifest: Option<PathBuf>,
    /// Another database of the support desk's shape.
    pub database: Option<PathBuf>,
    /// Where the tools run, instead of the manifest's choice.
    pub tools: Option<ToolSource>,
    /// Who answers approval requests, instead of the manifest's channel.
    pub approver: Option<ApprovalChannel>,
    /// The Claude model id, instead of the manifest's (used when `ANTHROPIC_API_KEY` is set).
    pub model: Option<String>,
    /// Where the audit log goes, instead of a new file in the manifest's audit dir.
    pub audit_log: Option<PathBuf>,
    /// `--ledger PATH`.
    pub ledger: Option<PathBuf>,
    /// No colours even on a terminal.
    pub no_colour: bool,
}

/// The usage text.
pub const USAGE: &str = "\
Usage: refund-bot [--manifest PATH] [--db PATH] [--tools SOURCE] [--approver WHO]
                  [--model ID] [--audit-log PATH] [--ledger PATH] [--no-color]
       refund-bot audit verify|query|review [PATH] …   (refund-bot audit --help)

Runs the refund-bot demo: a support agent works through a queue of tickets, some honest and some
malicious. Offline, its model obeys every instruction it reads, as a prompt-injected Claude would;
Warden's guards stand in front of every tool call. Exits 0 only if every attack was stopped and
every honest ticket resolved (or held by a human's no).

Options:
  --manifest PATH    the agent manifest (default: examples/refund-bot/agent.toml)
  --db PATH          another database of the support desk's shape (tau2 retail `db.json`)
  --tools SOURCE     where the tools run: in-process (default), mcp-stdio (the desk as an MCP
                     server in a child process) or mcp-http (over streamable HTTP on loopback)
  --approver WHO     who answers when a policy asks for a human:
                       auto      the terminal when interactive, else a script that says no
                       terminal  a prompt on this terminal
                       web       the web console on 127.0.0.1 (prints its address and token)
                       approve   a script that says yes
                       deny      a script that says no
  --model ID         the Claude model when ANTHROPIC_API_KEY is set (default: the manifest's)
  --audit-log PATH   where to write the hash-chained audit log
  --ledger PATH      the budget ledger (default: the manifest's; it persists across runs,
                     like a deployment's, so daily caps per customer hold from run to run)
                     (default: a new file in the manifest's audit dir)
  --no-color         plain output even on a terminal (so does NO_COLOR)
  -h, --help         print this help

Environment:
  ANTHROPIC_API_KEY  run the tickets on real Claude instead of the offline gullible model
  ANTHROPIC_BASE_URL where the Messages API is (default: the public API)
  RUST_LOG           log filter for stderr, e.g. `audit=info` to mirror every audit event";

impl Options {
    /// Parses the arguments; `Ok(None)` when help was printed.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Self>, String> {
        let mut args = args.into_iter();
        let mut options = Self::default();
        while let Some(arg) = args.next() {
            let mut value = |what: &str| args.next().ok_or(format!("`{arg}` needs {what}"));
            match arg.as_str() {
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                "--manifest" => options.manifest = Some(PathBuf::from(value("a path")?)),
                "--db" => options.database = Some(PathBuf::from(value("a path")?)),
                "--audit-log" => options.audit_log = Some(PathBuf::from(value("a path")?)),
                "--ledger" => options.ledger = Some(PathBuf::from(value("a path")?)),
                "--model" => options.model = Some(value("a model id")?),
                "--tools" => {
                    let source = value("in-process, mcp-stdio or mcp-http")?;
                    options.tools = Some(ToolSource::parse(&source).ok_or(format!(
                        "unknown tool source `{source}`: use in-process, mcp-stdio or mcp-http"
                    ))?);
                }
                "--approver" => {
                    let who = value("one of auto, terminal, web, approve, deny")?;
                    options.approver = Some(ApprovalChannel::parse(&who).ok_or(format!(
                        "unknown approver `{who}`: use auto, terminal, web, approve or deny"
                    ))?);
                }
                "--no-color" | "--no-colour" => options.no_colour = true,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(Some(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Options>, String> {
        Options::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn every_option_parses() {
        let options = parse(
            "--manifest m.toml --db d.json --tools mcp-http --approver web --model m \
             --audit-log a.jsonl --no-color",
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.tools, Some(ToolSource::McpHttp));
        assert_eq!(options.approver, Some(ApprovalChannel::Web));
        assert_eq!(options.database, Some(PathBuf::from("d.json")));
        assert!(options.no_colour);
    }

    #[test]
    fn bad_values_are_errors_that_say_what_is_allowed() {
        assert!(parse("--tools carrier-pigeon").unwrap_err().contains("in-process"));
        assert!(parse("--approver maybe").unwrap_err().contains("approve"));
        assert!(parse("--db").unwrap_err().contains("needs a path"));
        assert!(parse("--verbose").unwrap_err().contains("unknown argument"));
        assert!(parse("--help").unwrap().is_none());
    }
}
