//! The support desk as an MCP server that verifies Warden tokens itself.
//!
//! ```text
//! cargo run -p tools --bin support-desk-mcp -- --jwks PATH --issuer ISS --audience AUD \
//!     [--http 127.0.0.1:PORT] [--db PATH] [--audit-log PATH]
//! ```
//!
//! Without `--http` it speaks MCP on stdin and stdout (tokens in `_meta.warden_token`) until its
//! client hangs up, and prints nothing else on stdout. With `--http` it prints the endpoint's URL
//! (`http://127.0.0.1:PORT/mcp`) on stdout and serves until Ctrl-C (tokens as bearer headers; no
//! token or a bad one is an HTTP 401). Either way it trusts only tokens signed by a key in the JWK
//! set at `--jwks` (an issuer's `jwks.json`), issued by `--issuer` for `--audience`.

use agent_core::audit::{AuditLog, Fsync, JsonlSink};
use guards::credentials::Verifier;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tools::mcp::McpToolServer;

/// The tools this server offers: the support desk's, over the database at `db_path` (`--db`, any
/// file of tau2's retail shape), or over the committed demo data.
fn load_desk(db_path: Option<&Path>) -> Result<tools::Desk, String> {
    match db_path {
        Some(path) => tools::Desk::load(path),
        None => tools::Desk::demo(),
    }
    .map_err(|error| error.to_string())
}

const USAGE: &str = "\
Usage: support-desk-mcp --jwks PATH --issuer ISS --audience AUD [--http ADDR] [--db PATH] [--audit-log PATH]

Serves the support desk's tools over MCP. Every call must carry a Warden token for AUD, signed by
a key in the JWK set at PATH: reads accept the task token, writes only a per-call token bound to
the tool and its exact arguments. Callers see only the tools their token's scopes allow, and a
call touching a record of another customer than the token serves is refused (`wrong_owner`).

Options:
  --jwks PATH        the issuer's published JWK set (its `jwks.json`)
  --issuer ISS       the `iss` tokens must carry
  --audience AUD     this server's name in tokens' `aud`
  --http ADDR        serve streamable HTTP on ADDR (such as 127.0.0.1:8808) instead of stdio;
                     prints the endpoint URL on stdout and runs until Ctrl-C
  --db PATH          the desk's database
  --audit-log PATH   append every call's verdicts to this hash-chained audit log
                     (default: the `audit` tracing target only)
  -h, --help         print this help

Environment:
  RUST_LOG           log filter for stderr, e.g. `audit=info` to mirror every audit event";

struct Options {
    jwks: PathBuf,
    issuer: String,
    audience: String,
    http: Option<SocketAddr>,
    db: Option<PathBuf>,
    audit_log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr: over stdio, stdout belongs to MCP.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("support-desk-mcp: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("support-desk-mcp: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let verifier = Verifier::from_jwks_file(options.issuer, &options.jwks)
        .map_err(|error| error.to_string())?;
    let audit = match &options.audit_log {
        None => None,
        Some(path) => {
            let sink = JsonlSink::open(path, Fsync::OnCommit).map_err(|error| error.to_string())?;
            Some(AuditLog::new(Arc::new(sink)))
        }
    };
    let desk = load_desk(options.db.as_deref())?;
    // The server resolves whose record each call touches and refuses a token bound to another
    // customer, whatever the caller's own runtime decided.
    let server = McpToolServer::for_desk(&desk, Arc::new(verifier), options.audience, audit)
        .map_err(|error| error.to_string())?;
    match options.http {
        None => server.serve_stdio().await.map_err(|error| error.to_string()),
        Some(addr) => {
            let listening = server.serve_http(addr).await.map_err(|error| error.to_string())?;
            println!("{}", listening.url());
            let stop = tokio::signal::ctrl_c().await;
            listening.shutdown().await;
            stop.map_err(|error| format!("cannot wait for Ctrl-C: {error}"))
        }
    }
}

/// Parses the arguments; `Ok(None)` when help was printed.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut args = args.into_iter();
    let (mut jwks, mut issuer, mut audience) = (None, None, None);
    let (mut http, mut db, mut audit_log) = (None, None, None);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("`{arg}` needs {what}"));
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--jwks" => jwks = Some(PathBuf::from(value("a path")?)),
            "--issuer" => issuer = Some(value("an issuer name")?),
            "--audience" => audience = Some(value("an audience")?),
            "--db" => db = Some(PathBuf::from(value("a path")?)),
            "--audit-log" => audit_log = Some(PathBuf::from(value("a path")?)),
            "--http" => {
                let addr = value("an address such as 127.0.0.1:8808")?;
                let parsed = addr.parse().map_err(|_| format!("`{addr}` is not an address"))?;
                http = Some(parsed);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(Options {
        jwks: jwks.ok_or("`--jwks` is required")?,
        issuer: issuer.ok_or("`--issuer` is required")?,
        audience: audience.ok_or("`--audience` is required")?,
        http,
        db,
        audit_log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_required_options_and_an_address_parse() {
        let options =
            parse(args("--jwks k.json --issuer warden --audience desk --http 127.0.0.1:8808"))
                .unwrap()
                .unwrap();
        assert_eq!(options.jwks, PathBuf::from("k.json"));
        assert_eq!((options.issuer.as_str(), options.audience.as_str()), ("warden", "desk"));
        assert_eq!(options.http, Some("127.0.0.1:8808".parse().unwrap()));
        assert!(options.db.is_none() && options.audit_log.is_none());
    }

    #[test]
    fn missing_or_unknown_options_are_errors_and_help_is_not() {
        assert!(parse(args("--help")).unwrap().is_none());
        let missing = parse(args("--jwks k.json --issuer warden")).err().unwrap();
        assert_eq!(missing, "`--audience` is required");
        assert!(parse(args("--jwks")).err().unwrap().contains("needs a path"));
        assert!(parse(args("--http nowhere")).err().unwrap().contains("not an address"));
        assert!(parse(args("--verbose")).err().unwrap().contains("unknown argument"));
    }

    #[test]
    fn the_committed_demo_desk_loads() {
        assert!(!load_desk(None).unwrap().snapshot().orders.is_empty());
    }
}
