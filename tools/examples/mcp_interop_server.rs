//! Serves the sample tools over streamable HTTP with a fresh issuer, for clients Warden did not
//! write (the official MCP Python SDK in `tools/tests/interop/mcp_python_client.py`).
//!
//! ```text
//! cargo run -p tools --example mcp_interop_server
//! ```
//!
//! Prints one JSON line on stdout, then serves until its stdin closes:
//! `url`; `read_token` (a task token granting `orders:read`); `forged_token` (that token with its
//! scope widened, signature unchanged); `refund_args` and `refund_tokens` (per-call tokens for
//! `issue_refund` with exactly those arguments, one per client run, each good for one call).

use agent_core::{AgentId, Scope, TaskId, canonical};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guards::credentials::{Issuer, KeyRing, TaskGrant};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tools::mcp::McpToolServer;
use tools::mcp::sample::SampleTools;

const AUDIENCE: &str = "support-desk";

/// How many per-call refund tokens to print: one per client run (legacy and auto modes).
const REFUND_TOKENS: usize = 2;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mcp_interop_server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let keys_dir = tempfile::tempdir()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let issuer = Issuer::new("warden-interop", KeyRing::open(keys_dir.path().join("keys"), now)?)?;
    let server = McpToolServer::new(
        SampleTools::new().tools(),
        Arc::new(issuer.verifier()?),
        AUDIENCE,
        None,
    )?;
    let listening = server.serve_http("127.0.0.1:0".parse()?).await?;

    let grant = |scopes: &[&str]| -> Result<TaskGrant, agent_core::tool::InvalidName> {
        Ok(TaskGrant {
            agent: AgentId::new("interop-client"),
            task: TaskId::new("T-interop"),
            audience: vec![AUDIENCE.to_owned()],
            scopes: scopes.iter().map(|scope| Scope::new(*scope)).collect::<Result<_, _>>()?,
            on_behalf_of: None,
            lifetime: None,
        })
    };
    let read_token = issuer.mint_task(&grant(&["orders:read"])?)?;
    let refunder = issuer.mint_task(&grant(&["orders:read", "refunds:write"])?)?;
    let refund_args = json!({"order_id": "#W2611340", "amount": 54.0, "reason": "arrived broken"});
    let refund_tokens = (0..REFUND_TOKENS)
        .map(|_| {
            issuer
                .mint_call(
                    &refunder,
                    AUDIENCE,
                    "issue_refund",
                    &Scope::new("refunds:write")?,
                    &canonical::digest(&refund_args),
                )
                .map(|token| token.expose().to_owned())
                .map_err(Box::<dyn std::error::Error>::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "{}",
        json!({
            "url": listening.url(),
            "read_token": read_token.expose(),
            "forged_token": widened(read_token.expose())?,
            "refund_args": refund_args,
            "refund_tokens": refund_tokens,
        })
    );

    // Serve until the client closes our stdin.
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    listening.shutdown().await;
    Ok(())
}

/// The token with its scope widened and its signature kept: it must fail verification.
fn widened(token: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = parts.get(1).ok_or("a token has three parts")?;
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    claims["scope"] = json!("orders:read refunds:write email:send");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    Ok(parts.join("."))
}
