//! Interoperability: a Warden token verifies with an independent implementation, from nothing but
//! the published JWK set. Here the independent side is `ed25519-dalek` (pure Rust, no code shared
//! with the `jsonwebtoken`/aws-lc path that signs) plus plain JSON and base64 handling, following
//! RFC 7515 and RFC 8037 by hand. CI also checks with PyJWT (`tests/interop/verify_with_pyjwt.py`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use support::*;

/// Verifies a JWS compact token against a JWK set, as RFC 7515 §5.2 and RFC 8037 describe.
fn independent_verify(token: &str, jwks: &Value) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err("not three parts".into());
    };
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
    if header["alg"] != "EdDSA" {
        return Err(format!("alg {}", header["alg"]));
    }
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == header["kid"])
        .ok_or("unknown kid")?;
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    let x: [u8; 32] =
        URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "signature length")?;
    let signing_input = format!("{header_b64}.{payload_b64}");
    key.verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|e| e.to_string())?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).unwrap()).unwrap())
}

#[test]
fn a_warden_token_verifies_with_an_independent_implementation_from_the_published_jwks() {
    let fx = Fixture::new();
    let token = fx.issuer.mint_task(&fx.grant(&["orders:read", "refunds:write"])).unwrap();
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(fx.dir.path().join("keys/jwks.json")).unwrap(),
    )
    .unwrap();

    let claims = independent_verify(token.expose(), &jwks).unwrap();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"][0], AUDIENCE);
    assert_eq!(claims["scope"], "orders:read refunds:write");
    let now = now();
    assert!(claims["nbf"].as_u64().unwrap() <= now && now < claims["exp"].as_u64().unwrap());

    // Positive control for the independent verifier itself: it does reject a forged token.
    let mut parts: Vec<String> = token.expose().split('.').map(str::to_owned).collect();
    let mut forged: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    forged["scope"] = Value::from("accounts:delete");
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    assert!(independent_verify(&parts.join("."), &jwks).is_err());
}

#[test]
fn a_rotated_jwks_still_verifies_older_tokens_independently() {
    let fx = Fixture::new();
    let before = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    fx.issuer.rotate().unwrap();
    let after = fx.issuer.mint_task(&fx.grant(&["orders:read"])).unwrap();
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(fx.dir.path().join("keys/jwks.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    independent_verify(before.expose(), &jwks).unwrap();
    independent_verify(after.expose(), &jwks).unwrap();
}
