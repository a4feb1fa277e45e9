//! Every token check, written as the attack it stops, each next to a positive control: the same
//! request with the right token passes, so a refusal is the check's doing, not a broken fixture.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::{AgentId, Credential, Scope};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guards::credentials::{IssueError, KeyRing, Revocations, Verifier};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn code(
    result: Result<guards::credentials::Claims, guards::credentials::Rejection>,
) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(rejection) => rejection.code(),
    }
}

/// Rebuilds a token with a new header and/or payload, keeping (or dropping) the signature.
fn forge(
    token: &Credential,
    header: Option<Value>,
    payload: impl FnOnce(&mut Value),
    signature: Option<&str>,
) -> String {
    let parts: Vec<&str> = token.expose().split('.').collect();
    let header = match header {
        Some(header) => URL_SAFE_NO_PAD.encode(header.to_string()),
        None => parts[0].to_owned(),
    };
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.{}", signature.unwrap_or(parts[2]))
}

#[test]
fn an_expired_token_is_refused() {
    let fx = Fixture::new();
    let mut grant = fx.grant(&["orders:read"]);
    grant.lifetime = Some(Duration::from_secs(300));
    let stale = fx.issuer.mint_task_at(&grant, now() - 3600).unwrap();
    assert_eq!(code(fx.verifier.verify(stale.expose(), AUDIENCE)), "expired");
    // Positive control: the same grant minted now verifies.
    let fresh = fx.issuer.mint_task(&grant).unwrap();
    assert_eq!(code(fx.verifier.verify(fresh.expose(), AUDIENCE)), "accepted");
}

#[test]
fn a_token_not_yet_valid_is_refused() {
    let fx = Fixture::new();
    let early = fx.issuer.mint_task_at(&fx.grant(&["orders:read"]), now() + 600).unwrap();
    assert_eq!(code(fx.verifier.verify(early.expose(), AUDIENCE)), "not_yet_valid");
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let fx = Fixture::new();
    let token = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    assert_eq!(code(fx.verifier.verify(token.expose(), "mail-server")), "wrong_audience");
    assert_eq!(code(fx.verifier.verify(token.expose(), AUDIENCE)), "accepted");
}

#[test]
fn a_token_signed_by_an_unknown_key_is_refused() {
    let fx = Fixture::new();
    // An attacker runs their own issuer with the same name.
    let rogue = Fixture::new();
    let forged = rogue.issuer.mint_task(&fx.grant(&["refunds:write"])).unwrap();
    assert_eq!(code(fx.verifier.verify(forged.expose(), AUDIENCE)), "unknown_key");
    // ...and copies our key id into their token's header: the signature gives them away.
    let our_kid = fx.kid();
    let relabelled =
        forge(&forged, Some(json!({"alg": "EdDSA", "typ": "JWT", "kid": our_kid})), |_| {}, None);
    assert_eq!(code(fx.verifier.verify(&relabelled, AUDIENCE)), "bad_signature");
    // Positive control.
    let genuine = fx.issuer.mint_task(&fx.grant(&["refunds:write"])).unwrap();
    assert_eq!(code(fx.verifier.verify(genuine.expose(), AUDIENCE)), "accepted");
}

#[test]
fn an_alg_none_token_is_refused() {
    let fx = Fixture::new();
    let token = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    for alg in ["none", "None", "NONE"] {
        let unsigned = forge(
            &token,
            Some(json!({"alg": alg, "typ": "JWT", "kid": fx.kid()})),
            |_| {},
            Some(""),
        );
        assert_eq!(code(fx.verifier.verify(&unsigned, AUDIENCE)), "wrong_algorithm", "alg {alg}");
    }
    assert_eq!(code(fx.verifier.verify(token.expose(), AUDIENCE)), "accepted");
}

#[test]
fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let fx = Fixture::new();
    let jwks = fx.issuer.jwks();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let public_key = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let claims = fx.claims_of(&fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap());
    // The classic key-confusion attack: sign with HMAC, using the public key (every form of it
    // an attacker can find) as the shared secret.
    for secret in [public_key.clone(), x.clone().into_bytes(), jwks.to_string().into_bytes()] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(fx.kid());
        let mut escalated = claims.clone();
        escalated["scope"] = json!("orders:read refunds:write accounts:delete");
        let forged = jsonwebtoken::encode(
            &header,
            &escalated,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(code(fx.verifier.verify(&forged, AUDIENCE)), "wrong_algorithm");
    }
}

#[test]
fn a_tampered_payload_is_refused() {
    let fx = Fixture::new();
    let token = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    let escalated =
        forge(&token, None, |claims| claims["scope"] = json!("orders:read refunds:write"), None);
    assert_eq!(code(fx.verifier.verify(&escalated, AUDIENCE)), "bad_signature");
    let extended = forge(&token, None, |claims| claims["exp"] = json!(now() + 3000), None);
    assert_eq!(code(fx.verifier.verify(&extended, AUDIENCE)), "bad_signature");
    let other_customer =
        forge(&token, None, |claims| claims["on_behalf_of"] = json!("ava_lee_2290"), None);
    assert_eq!(code(fx.verifier.verify(&other_customer, AUDIENCE)), "bad_signature");
    assert_eq!(code(fx.verifier.verify("not.a.jwt", AUDIENCE)), "malformed_token");
    assert_eq!(code(fx.verifier.verify("", AUDIENCE)), "malformed_token");
    assert_eq!(code(fx.verifier.verify(token.expose(), AUDIENCE)), "accepted");
}

#[test]
fn lifetimes_above_an_hour_are_refused_by_the_issuer_and_the_verifier() {
    let fx = Fixture::new();
    let mut grant = fx.grant(&["orders:read"]);
    grant.lifetime = Some(Duration::from_secs(2 * 3600));
    assert!(matches!(fx.issuer.mint_task(&grant), Err(IssueError::Lifetime(7200))));
    // A token from a misconfigured issuer holding the real key: the verifier still refuses it.
    let mut claims = fx.claims_of(&fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap());
    claims["exp"] = json!(now() + 7 * 24 * 3600);
    let long_lived = fx.sign_with_real_key(&claims);
    assert_eq!(code(fx.verifier.verify(&long_lived, AUDIENCE)), "too_long_lived");
    // Positive control: the same claims with a sane expiry, signed the same way, verify.
    claims["exp"] = json!(now() + 600);
    assert_eq!(code(fx.verifier.verify(&fx.sign_with_real_key(&claims), AUDIENCE)), "accepted");
    grant.lifetime = Some(Duration::from_secs(3600));
    assert!(fx.issuer.mint_task(&grant).is_ok());
}

#[test]
fn a_replayed_per_call_token_is_refused() {
    let fx = Fixture::new();
    let task = fx.issuer.mint_task(&fx.grant(&["refunds:write"])).unwrap();
    let args = json!({"order_id": "#W1001", "amount": 20});
    let call = fx.mint_call(&task, "issue_refund", "refunds:write", &args);
    // Positive control: the first use is accepted.
    assert_eq!(
        code(fx.verifier.verify_call(call.expose(), AUDIENCE, "issue_refund", &args)),
        "accepted"
    );
    assert_eq!(
        code(fx.verifier.verify_call(call.expose(), AUDIENCE, "issue_refund", &args)),
        "replayed"
    );
}

#[test]
fn a_per_call_token_reused_with_other_arguments_or_another_tool_is_refused() {
    let fx = Fixture::new();
    let task = fx.issuer.mint_task(&fx.grant(&["refunds:write", "orders:write"])).unwrap();
    let approved = json!({"order_id": "#W1001", "amount": 20});
    let call = fx.mint_call(&task, "issue_refund", "refunds:write", &approved);
    let inflated = json!({"order_id": "#W1001", "amount": 2000});
    assert_eq!(
        code(fx.verifier.verify_call(call.expose(), AUDIENCE, "issue_refund", &inflated)),
        "args_mismatch"
    );
    let elsewhere = json!({"order_id": "#W2002", "amount": 20});
    assert_eq!(
        code(fx.verifier.verify_call(call.expose(), AUDIENCE, "issue_refund", &elsewhere)),
        "args_mismatch"
    );
    assert_eq!(
        code(fx.verifier.verify_call(call.expose(), AUDIENCE, "cancel_pending_order", &approved)),
        "wrong_tool"
    );
    // A task token is no per-call token.
    assert_eq!(
        code(fx.verifier.verify_call(task.expose(), AUDIENCE, "issue_refund", &approved)),
        "not_a_call_token"
    );
    // Positive control: key order does not matter, the digest is over canonical JSON.
    let reordered: Value =
        serde_json::from_str(r##"{"amount": 20, "order_id": "#W1001"}"##).unwrap();
    assert_eq!(
        code(fx.verifier.verify_call(call.expose(), AUDIENCE, "issue_refund", &reordered)),
        "accepted"
    );
}

#[test]
fn a_per_call_token_never_outlives_its_task_token_and_holds_one_scope() {
    let fx = Fixture::new();
    let mut grant = fx.grant(&["refunds:write", "orders:read"]);
    grant.lifetime = Some(Duration::from_secs(10));
    let task = fx.issuer.mint_task(&grant).unwrap();
    let call = fx.mint_call(&task, "issue_refund", "refunds:write", &json!({}));
    let (task_claims, call_claims) = (fx.claims_of(&task), fx.claims_of(&call));
    assert!(call_claims["exp"].as_u64() <= task_claims["exp"].as_u64());
    assert_eq!(call_claims["scope"], "refunds:write");
    assert_eq!(call_claims["aud"], json!([AUDIENCE]));
    // A per-call token for a scope the task lacks cannot be minted.
    let minted = fx.issuer.mint_call(
        &task,
        AUDIENCE,
        "delete_customer_account",
        &Scope::new("accounts:delete").unwrap(),
        "x",
    );
    assert_eq!(minted.unwrap_err().code(), "scope_escalation");
}

#[test]
fn revocation_takes_effect_at_the_next_check() {
    let fx = Fixture::new();
    let revocations = Arc::new(Revocations::new());
    let verifier = fx.issuer.verifier().unwrap().with_revocations(Arc::clone(&revocations));
    let token = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    let other_task = fx.issuer.mint_task(&fx.grant_for("T-2002", &["orders:read"])).unwrap();
    assert_eq!(code(verifier.verify(token.expose(), AUDIENCE)), "accepted");

    revocations.revoke_task("T-1001");
    assert_eq!(code(verifier.verify(token.expose(), AUDIENCE)), "revoked");
    // Other tasks are untouched.
    assert_eq!(code(verifier.verify(other_task.expose(), AUDIENCE)), "accepted");
    // A single token, by jti.
    revocations.revoke_token(fx.claims_of(&other_task)["jti"].as_str().unwrap());
    assert_eq!(code(verifier.verify(other_task.expose(), AUDIENCE)), "revoked");
}

#[test]
fn revoking_a_task_revokes_its_subagents_tokens() {
    let fx = Fixture::new();
    let revocations = Arc::new(Revocations::new());
    let verifier = fx.issuer.verifier().unwrap().with_revocations(Arc::clone(&revocations));
    let parent = fx.issuer.mint_task(&fx.grant(&["orders:read", "refunds:write"])).unwrap();
    let child =
        fx.issuer.attenuate(&parent, &fx.narrowing("T-1001/lookup", &["orders:read"])).unwrap();
    assert_eq!(code(verifier.verify(child.expose(), AUDIENCE)), "accepted");
    revocations.revoke_task("T-1001");
    assert_eq!(code(verifier.verify(child.expose(), AUDIENCE)), "revoked");
    // A task whose id merely starts with the same letters is not a sub-task.
    let lookalike = fx.issuer.mint_task(&fx.grant_for("T-10011", &["orders:read"])).unwrap();
    assert_eq!(code(verifier.verify(lookalike.expose(), AUDIENCE)), "accepted");
}

#[test]
fn a_subagent_cannot_be_given_more_than_its_parent() {
    let fx = Fixture::new();
    let parent = fx.issuer.mint_task(&fx.grant(&["orders:read", "refunds:write"])).unwrap();

    let wider = fx
        .issuer
        .attenuate(&parent, &fx.narrowing("T-1001/helper", &["orders:read", "accounts:delete"]));
    assert!(
        matches!(&wider, Err(IssueError::ScopeEscalation(scope)) if scope == "accounts:delete"),
        "{wider:?}"
    );

    let mut elsewhere = fx.narrowing("T-1001/helper", &["orders:read"]);
    elsewhere.audience = Some(vec!["mail-server".into()]);
    assert!(matches!(
        fx.issuer.attenuate(&parent, &elsewhere),
        Err(IssueError::AudienceEscalation(_))
    ));

    // A child of a child cannot climb back to what the grandparent had.
    let child =
        fx.issuer.attenuate(&parent, &fx.narrowing("T-1001/helper", &["orders:read"])).unwrap();
    let grandchild =
        fx.issuer.attenuate(&child, &fx.narrowing("T-1001/helper/sub", &["refunds:write"]));
    assert!(matches!(grandchild, Err(IssueError::ScopeEscalation(_))));

    // Positive control: a subset is granted, never outlives the parent, and records the chain.
    let mut longer = fx.narrowing("T-1001/helper", &["orders:read"]);
    longer.lifetime = Some(Duration::from_secs(3600));
    let narrowed = fx.issuer.attenuate(&parent, &longer).unwrap();
    let claims = fx.verifier.verify(narrowed.expose(), AUDIENCE).unwrap();
    assert_eq!(claims.scope, "orders:read");
    assert!(claims.exp <= fx.claims_of(&parent)["exp"].as_u64().unwrap());
    assert_eq!(claims.actor(), "helper");
    assert_eq!(claims.chain(), [AgentId::new("refund-bot"), AgentId::new("helper")]);
    // A forged parent is no parent.
    let forged =
        Credential::new(forge(&parent, None, |c| c["scope"] = json!("accounts:delete"), None));
    assert_eq!(
        fx.issuer
            .attenuate(&forged, &fx.narrowing("T-1001/x", &["orders:read"]))
            .unwrap_err()
            .code(),
        "bad_signature"
    );
}

#[test]
fn tokens_minted_before_a_rotation_verify_until_their_key_is_removed() {
    let fx = Fixture::new();
    let before = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    let new_kid = fx.issuer.rotate().unwrap();
    let after = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    assert_eq!(fx.header_of(&after)["kid"], new_kid);
    assert_ne!(fx.header_of(&before)["kid"], new_kid);

    // Tool servers refresh their keys from the published set: both tokens verify.
    let verifier = Verifier::from_jwks_file(ISSUER, &fx.dir.path().join("keys/jwks.json")).unwrap();
    assert_eq!(code(verifier.verify(before.expose(), AUDIENCE)), "accepted");
    assert_eq!(code(verifier.verify(after.expose(), AUDIENCE)), "accepted");

    // Pruning now keeps the old key: tokens it signed may still be valid.
    assert!(fx.issuer.prune(now()).unwrap().is_empty());
    // Once its last token must have expired, the old key goes, and with it any token it signed.
    let removed = fx.issuer.prune(now() + 3601).unwrap();
    assert_eq!(removed.len(), 1);
    verifier.replace_keys(&fx.issuer.jwks()).unwrap();
    assert_eq!(code(verifier.verify(before.expose(), AUDIENCE)), "unknown_key");
    assert_eq!(code(verifier.verify(after.expose(), AUDIENCE)), "accepted");
    // The removal survives a restart.
    let reopened = KeyRing::open(fx.dir.path().join("keys"), now()).unwrap();
    assert_eq!(reopened.jwks()["keys"].as_array().unwrap().len(), 1);
}

#[test]
fn keys_are_private_files_and_bad_ones_stop_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    KeyRing::open(&keys, now()).unwrap();
    let key_file = std::fs::read_dir(&keys)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with(".key.json"))
        .unwrap();
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o700);
    // Reopening loads the same key: tokens survive a restart.
    let first = KeyRing::open(&keys, now()).unwrap().jwks();
    assert_eq!(KeyRing::open(&keys, now()).unwrap().jwks(), first);

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = KeyRing::open(&keys, now()).err().unwrap().to_string();
    assert!(error.contains("has mode 644") && error.contains("chmod 600"), "{error}");

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&key_file, "{\"kid\": \"x\", \"created\": 1, \"pkcs8\": \"bm90IGEga2V5\"}")
        .unwrap();
    let error = KeyRing::open(&keys, now()).err().unwrap().to_string();
    assert!(
        error.contains(&key_file.display().to_string()) && error.contains("not a valid key"),
        "{error}"
    );

    std::fs::write(&key_file, "garbage").unwrap();
    assert!(KeyRing::open(&keys, now()).is_err());
}

#[test]
fn grants_must_name_a_scope_and_an_audience() {
    let fx = Fixture::new();
    let mut grant = fx.grant(&[]);
    assert!(matches!(fx.issuer.mint_task(&grant), Err(IssueError::Empty)));
    grant = fx.grant(&["orders:read"]);
    grant.audience.clear();
    assert!(matches!(fx.issuer.mint_task(&grant), Err(IssueError::Empty)));
}

#[test]
fn a_token_verified_once_still_expires_and_can_still_be_revoked() {
    let fx = Fixture::new();
    let revocations = Arc::new(Revocations::new());
    let verifier =
        fx.issuer.verifier().unwrap().with_leeway(0).with_revocations(Arc::clone(&revocations));
    let mut grant = fx.grant(&["orders:read"]);
    grant.lifetime = Some(Duration::from_secs(1));
    let short = fx.issuer.mint_task(&grant).unwrap();
    // Verified (and remembered), then verified again from memory.
    assert_eq!(code(verifier.verify(short.expose(), AUDIENCE)), "accepted");
    assert_eq!(code(verifier.verify(short.expose(), AUDIENCE)), "accepted");
    // The remembered verification does not outlive the token.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(code(verifier.verify(short.expose(), AUDIENCE)), "expired");

    let long = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    assert_eq!(code(verifier.verify(long.expose(), AUDIENCE)), "accepted");
    revocations.revoke_task("T-1001");
    assert_eq!(code(verifier.verify(long.expose(), AUDIENCE)), "revoked");
    // Nor does it carry over to another audience.
    assert_eq!(code(verifier.verify(long.expose(), "mail-server")), "wrong_audience");
}

#[test]
fn processes_opening_one_new_key_directory_together_agree_on_one_key() {
    // Two demo runs started at once share `target/refund-bot/keys`: without the directory lock,
    // both minted a key, or one renamed the other's `jwks.json.tmp` away mid-publish.
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let opened: Vec<Result<Value, String>> = (0..8)
            .map(|_| {
                let (keys, barrier) = (keys.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    KeyRing::open(&keys, now()).map(|ring| ring.jwks()).map_err(|e| e.to_string())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect();
        let first = opened[0].clone().unwrap();
        assert_eq!(first["keys"].as_array().unwrap().len(), 1, "{first}");
        for jwks in opened {
            assert_eq!(jwks.unwrap(), first, "every opener sees the one key");
        }
    }
}
