//! Mints a Warden task token with a key ring in a directory, for interoperability checks.
//!
//! ```text
//! cargo run -p guards --example mint_token -- KEY_DIR
//! ```
//!
//! Prints one JSON object: `token`, `jwks` (the path of the published JWK set), `issuer`,
//! `audience`, and `tampered` (the same token with its scope changed, which must fail).

use agent_core::{AgentId, Scope, TaskId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guards::credentials::{Issuer, KeyRing, TaskGrant};
use serde_json::{Value, json};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<Value, Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: mint_token KEY_DIR")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let keys = KeyRing::open(&dir, now)?;
    let jwks = keys.jwks_path();
    let issuer = Issuer::new("warden-interop", keys)?;
    let token = issuer.mint_task(&TaskGrant {
        agent: AgentId::new("refund-bot"),
        task: TaskId::new("T-interop"),
        audience: vec!["support-desk".into()],
        scopes: vec![Scope::new("orders:read")?, Scope::new("refunds:write")?],
        on_behalf_of: Some("noah_brown_6181".into()),
        lifetime: None,
    })?;
    let mut parts: Vec<String> = token.expose().split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1])?)?;
    claims["scope"] = json!("accounts:delete");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    Ok(json!({
        "token": token.expose(),
        "tampered": parts.join("."),
        "jwks": jwks,
        "issuer": "warden-interop",
        "audience": "support-desk",
    }))
}
