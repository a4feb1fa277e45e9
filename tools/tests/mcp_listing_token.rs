//! A session outlives its listing token: the source lists with fresh tokens, so the session-long
//! re-check keeps holding the server to its pins instead of withdrawing every tool when the first
//! token expires.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mcp_support;

use guards::credentials::Verifier;
use mcp_support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mcp::{McpToolServer, SourceOptions};

const ALL: [&str; 3] = ["orders:read", "refunds:write", "email:send"];

/// A token for the server that lives one second.
fn one_second_token(fixture: &Fixture) -> agent_core::Credential {
    let mut grant = fixture.grant(&ALL);
    grant.lifetime = Some(Duration::from_secs(1));
    fixture.issuer.mint_task(&grant).unwrap()
}

/// Imports the sample tools over a server that allows no clock leeway, listing with `options`,
/// and waits until the first token is long expired (2.5 s); returns whether `get_order_details`
/// was withdrawn by then.
async fn withdrawn_after_the_token_expires(fixture: &Fixture, options: SourceOptions) -> bool {
    let verifier = Verifier::from_jwks(ISSUER, &fixture.issuer.jwks()).unwrap().with_leeway(0);
    let (_samples, tools) = samples();
    let server = McpToolServer::new(tools, Arc::new(verifier), AUDIENCE, None).unwrap();
    let options = options.relist_every(Duration::from_millis(100));
    let (source, _server) = source(server, one_second_token(fixture), options).await;
    let import = source.import(&sample_imports()).await.unwrap();
    let lookup = import.tools.iter().find(|tool| tool.spec().name.as_str() == "get_order_details");
    let lookup = Arc::clone(lookup.unwrap());
    assert!(lookup.withdrawn().is_none(), "imported while the token was fresh");
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until && lookup.withdrawn().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lookup.withdrawn().is_some()
}

#[tokio::test]
async fn with_fresh_listing_tokens_the_pins_outlive_the_first_token() {
    let fixture = Fixture::new();
    let issuer = Arc::clone(&fixture.issuer);
    let grant = fixture.grant(&ALL);
    let mint: tools::mcp::ListingTokens =
        Arc::new(move || issuer.mint_task(&grant).map_err(|error| error.to_string()));
    let options = SourceOptions::default().renew_listing_token(mint);
    assert!(!withdrawn_after_the_token_expires(&fixture, options).await);
}

#[tokio::test]
async fn control_listing_with_the_expired_token_withdraws_every_tool() {
    let fixture = Fixture::new();
    assert!(withdrawn_after_the_token_expires(&fixture, SourceOptions::default()).await);
}

#[tokio::test]
async fn a_listing_token_that_cannot_be_minted_fails_the_listing_closed() {
    let fixture = Fixture::new();
    let mint: tools::mcp::ListingTokens = Arc::new(|| Err("the key ring is gone".to_owned()));
    let options = SourceOptions::default().renew_listing_token(mint);
    let (_samples, tools) = samples();
    let (server, _sink) = fixture.server(tools);
    let (source, _server) = source(server, fixture.task_token(&ALL), options).await;
    let error = source.import(&sample_imports()).await.unwrap_err();
    assert!(error.to_string().contains("no fresh token"), "{error}");
}
