//! `refund-bot`: the runnable Warden demo.
//!
//! ```text
//! cargo run -p refund-bot                       # the demo, offline
//! cargo run -p refund-bot -- --help             # every option
//! cargo run -p refund-bot -- audit review       # the weekly review of the last run's audit log
//! ```
//!
//! See `examples/refund-bot/README.md` for a walk-through of the transcript.

use refund_bot::demo::{self, ModelChoice, Presentation};
use refund_bot::manifest::{self, Manifest};
use refund_bot::options::{Options, USAGE};
use refund_bot::runtime::{self, Settings};
use refund_bot::{audit_cli, transcript::Style};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Logs, including the `audit` mirror of every event, go to stderr when RUST_LOG asks for them
    // (for example `RUST_LOG=audit=info`); the transcript on stdout is for people.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("audit") => return audit_cli::run(&args[1..]),
        // The child side of `--tools mcp-stdio`; stdout belongs to MCP.
        Some("serve-desk") => {
            return match runtime::serve_desk(&args[1..]).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("refund-bot serve-desk: {message}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let options = match Options::parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<bool, String> {
    let path = options.manifest.clone().unwrap_or_else(manifest::default_path);
    let manifest = Manifest::load(&path, &runtime::offered_tools()).map_err(|e| e.to_string())?;
    let model = ModelChoice::from_env(options.model.as_deref().unwrap_or(&manifest.agent.model));
    let terminal = std::io::stdout().is_terminal();
    let presentation = Presentation {
        style: Style::new(terminal && !options.no_colour && std::env::var_os("NO_COLOR").is_none()),
        progress: std::io::stderr().is_terminal(),
    };
    let settings = Settings {
        tools: options.tools,
        database: options.database,
        approver: options.approver,
        audit_log: options.audit_log,
        ledger: options.ledger,
        ..Settings::default()
    };
    let outcome =
        demo::run(manifest, settings, &model, presentation, &mut std::io::stdout().lock()).await?;
    Ok(outcome.all_good())
}
