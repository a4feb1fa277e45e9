//! Verifying a token: the checks a runtime's guard and a tool server both run.
//!
//! In order: three base64url parts; a header naming `EdDSA` (so no `none`, no HS256 keyed with
//! the public key, no RSA confusion) and a `kid` in the JWK set; the signature; `iss`, `aud`,
//! `exp` and `nbf` with a small leeway; a lifetime within the hard maximum; not revoked. A
//! per-call token must also name the tool called, carry the digest of the exact arguments
//! received, and not have been seen before.

use super::claims::Claims;
use super::revocation::{ReplayCache, Revocations};
use super::{MAX_LIFETIME_SECONDS, now_seconds};
use agent_core::canonical;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Checks Warden tokens against a JWK set.
pub struct Verifier {
    issuer: String,
    keys: RwLock<HashMap<String, DecodingKey>>,
    leeway: u64,
    revocations: Arc<Revocations>,
    replay: ReplayCache,
    verified: Mutex<HashMap<(String, String), Claims>>,
}

/// How many verified task tokens are remembered before the memory starts afresh.
const VERIFIED_TOKENS: usize = 4096;

/// A refused token: what is wrong, and the `jti` it claims (for the audit log; the token itself
/// is never recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What is wrong.
    pub error: CredentialError,
    /// The `jti` the token claims, read even when the signature is bad.
    pub jti: Option<String>,
}

impl Rejection {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        self.error.code()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.jti {
            Some(jti) => write!(f, "{} (token jti `{jti}`)", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for Rejection {}

/// Why a token is refused. Each variant has a stable code for audit and scorecards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The call carried no token.
    #[error("no credential was presented")]
    Missing,
    /// Not a JWT, or its claims are missing or of the wrong type.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// The header names another algorithm than EdDSA.
    #[error("the token uses algorithm `{0}`; only EdDSA is accepted")]
    WrongAlgorithm(String),
    /// The `kid` is absent or not in the JWK set (a removed or foreign key).
    #[error("the token is signed by unknown key `{0}`")]
    UnknownKey(String),
    /// The signature does not match: the token was tampered with or signed by another key.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Another issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// Not issued for this tool server.
    #[error("the token is not for audience `{0}`")]
    WrongAudience(String),
    /// Valid for longer than any Warden token may be.
    #[error("the token is valid for {0} s, longer than the maximum")]
    TooLongLived(u64),
    /// Revoked.
    #[error("the token is revoked: {0}")]
    Revoked(String),
    /// A single-use token presented a second time.
    #[error("the single-use token was already used")]
    Replayed,
    /// A per-call token presented with other arguments than it was minted for.
    #[error("the arguments do not match the token's digest")]
    ArgsMismatch,
    /// A per-call token presented for another tool.
    #[error("the token is for tool `{expected}`, not `{found}`")]
    WrongTool {
        /// The tool named in the token.
        expected: String,
        /// The tool called.
        found: String,
    },
    /// A task token presented where a per-call token is required.
    #[error("a per-call token is required for this call")]
    NotACallToken,
    /// A per-call token presented where the task's token is required.
    #[error("a per-call token cannot stand in for a task token")]
    NotATaskToken,
    /// The token does not grant the scope the tool requires.
    #[error("the token does not grant scope `{0}`")]
    ScopeMissing(String),
    /// The token was issued to another agent or delegation chain.
    #[error("the token was issued to `{token}`, not to `{caller}`")]
    WrongAgent {
        /// Who the token names.
        token: String,
        /// Who presented it.
        caller: String,
    },
    /// The token was issued for another task.
    #[error("the token was issued for task `{token}`, not `{caller}`")]
    WrongTask {
        /// The task the token names.
        token: String,
        /// The task presenting it.
        caller: String,
    },
    /// The token serves another customer than the task.
    #[error("the token serves another customer than the task")]
    WrongCustomer,
}

impl CredentialError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "no_credential",
            Self::Malformed(_) => "malformed_token",
            Self::WrongAlgorithm(_) => "wrong_algorithm",
            Self::UnknownKey(_) => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience(_) => "wrong_audience",
            Self::TooLongLived(_) => "too_long_lived",
            Self::Revoked(_) => "revoked",
            Self::Replayed => "replayed",
            Self::ArgsMismatch => "args_mismatch",
            Self::WrongTool { .. } => "wrong_tool",
            Self::NotACallToken => "not_a_call_token",
            Self::NotATaskToken => "not_a_task_token",
            Self::ScopeMissing(_) => "scope_missing",
            Self::WrongAgent { .. } => "wrong_agent",
            Self::WrongTask { .. } => "wrong_task",
            Self::WrongCustomer => "wrong_customer",
        }
    }
}

/// Why a JWK set cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The file could not be read.
    #[error("cannot read JWK set `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not a JWK set, or a key in it is unusable.
    #[error("invalid JWK set: {0}")]
    Invalid(String),
    /// The set holds no EdDSA key: nothing could ever verify.
    #[error("the JWK set holds no Ed25519 key")]
    Empty,
}

/// The default leeway for `exp` and `nbf`, in seconds: clocks drift a little, tokens live minutes.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 5;

impl Verifier {
    /// A verifier for tokens from `issuer`, trusting every Ed25519 key in the JWK set `jwks`.
    pub fn from_jwks(issuer: impl Into<String>, jwks: &Value) -> Result<Self, JwksError> {
        Ok(Self {
            issuer: issuer.into(),
            keys: RwLock::new(decoding_keys(jwks)?),
            leeway: DEFAULT_LEEWAY_SECONDS,
            revocations: Arc::default(),
            replay: ReplayCache::default(),
            verified: Mutex::default(),
        })
    }

    /// [`from_jwks`](Self::from_jwks), reading the set from a file (such as an issuer's
    /// `jwks.json`).
    pub fn from_jwks_file(issuer: impl Into<String>, path: &Path) -> Result<Self, JwksError> {
        let io = |source| JwksError::Io { path: path.display().to_string(), source };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let jwks: Value =
            serde_json::from_str(&text).map_err(|error| JwksError::Invalid(error.to_string()))?;
        Self::from_jwks(issuer, &jwks)
    }

    /// Shares a revocation list (the runtime's), so revocations reach this verifier at once.
    #[must_use]
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }

    /// Sets the leeway for `exp` and `nbf`.
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Replaces the trusted keys (after the issuer rotated).
    pub fn replace_keys(&self, jwks: &Value) -> Result<(), JwksError> {
        let keys = decoding_keys(jwks)?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        // A token verified with a key that is gone must fail from now on.
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(())
    }

    /// The revocation list this verifier consults.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// Verifies a token presented to `audience`.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Claims, Rejection> {
        self.check(token, Some(audience))
    }

    /// Verifies a per-call token received by the tool server `audience` with a call of `tool`
    /// with `args`: bound to that tool and those exact arguments, and used once.
    pub fn verify_call(
        &self,
        token: &str,
        audience: &str,
        tool: &str,
        args: &Value,
    ) -> Result<Claims, Rejection> {
        let claims = self.check(token, Some(audience))?;
        let reject = |error| Rejection { error, jti: Some(claims.jti.clone()) };
        let (Some(bound_tool), Some(bound_digest)) = (&claims.tool, &claims.args_digest) else {
            return Err(reject(CredentialError::NotACallToken));
        };
        if bound_tool != tool {
            return Err(reject(CredentialError::WrongTool {
                expected: bound_tool.clone(),
                found: tool.to_owned(),
            }));
        }
        if *bound_digest != canonical::digest(args) {
            return Err(reject(CredentialError::ArgsMismatch));
        }
        let expires = claims.exp.saturating_add(self.leeway);
        if !self.replay.first_use(&claims.jti, expires, now_seconds()) {
            return Err(reject(CredentialError::Replayed));
        }
        Ok(claims)
    }

    /// What a tool server checks before it runs a call of the tool `spec` with `input`: reads
    /// accept the task token (or a per-call token, on its own terms), writes only a per-call token
    /// bound to this tool and these exact arguments, spent here; either way the token must grant
    /// the tool's scope.
    pub fn verify_presented(
        &self,
        token: &str,
        audience: &str,
        spec: &agent_core::ToolSpec,
        input: &Value,
    ) -> Result<Claims, Rejection> {
        let tool = spec.name.as_str();
        let claims = match spec.effect {
            agent_core::EffectClass::Read => {
                let claims = self.verify(token, audience)?;
                if claims.is_call_token() {
                    self.verify_call(token, audience, tool, input)?
                } else {
                    claims
                }
            }
            agent_core::EffectClass::Write | agent_core::EffectClass::Irreversible => {
                self.verify_call(token, audience, tool, input)?
            }
        };
        if !claims.grants(&spec.required_scope) {
            return Err(Rejection {
                error: CredentialError::ScopeMissing(spec.required_scope.to_string()),
                jti: Some(claims.jti),
            });
        }
        Ok(claims)
    }

    /// Verifies a signed document of `kind` (see `Issuer::sign_document`): the algorithm, the key,
    /// the signature, the issuer and the kind. Documents do not expire; tokens are refused here.
    pub fn verify_document<T: serde::de::DeserializeOwned>(
        &self,
        jws: &str,
        kind: &str,
    ) -> Result<T, Rejection> {
        let reject = |error| Rejection { error, jti: None };
        let header = unverified_header(jws)
            .map_err(|message| reject(CredentialError::Malformed(message)))?;
        let algorithm = header.get("alg").and_then(Value::as_str).unwrap_or("(none)");
        if algorithm != "EdDSA" {
            return Err(reject(CredentialError::WrongAlgorithm(algorithm.to_owned())));
        }
        if header.get("typ").and_then(Value::as_str) != Some(super::issuer::DOCUMENT_TYPE) {
            return Err(reject(CredentialError::Malformed("not a signed document".to_owned())));
        }
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("(none)");
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let key =
            keys.get(kid).ok_or_else(|| reject(CredentialError::UnknownKey(kid.to_owned())))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
        validation.set_issuer(&[&self.issuer]);
        let signed = jsonwebtoken::decode::<Value>(jws, key, &validation)
            .map_err(|error| reject(map_error(error.kind(), None)))?
            .claims;
        if signed.get("kind").and_then(Value::as_str) != Some(kind) {
            return Err(reject(CredentialError::Malformed(format!("not a signed `{kind}`"))));
        }
        serde_json::from_value(signed.get("document").cloned().unwrap_or(Value::Null))
            .map_err(|error| reject(CredentialError::Malformed(error.to_string())))
    }

    /// Verifies a token for any audience: used by the issuer on a parent token it narrows.
    pub(crate) fn verify_any_audience(&self, token: &str) -> Result<Claims, Rejection> {
        self.check(token, None)
    }

    fn check(&self, token: &str, audience: Option<&str>) -> Result<Claims, Rejection> {
        if let Some(audience) = audience {
            let cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(claims) = cache.get(&(audience.to_owned(), token.to_owned())) {
                let claims = claims.clone();
                drop(cache);
                return self.recheck(claims);
            }
        }
        let claims = self.check_signed(token, audience)?;
        if let Some(audience) = audience.filter(|_| !claims.is_call_token()) {
            let mut cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= VERIFIED_TOKENS {
                cache.clear();
            }
            cache.insert((audience.to_owned(), token.to_owned()), claims.clone());
        }
        Ok(claims)
    }

    /// The checks that depend on time and revocation, for a token whose signature, issuer and
    /// audience were verified before: the signature check (most of the cost) is not repeated.
    fn recheck(&self, claims: Claims) -> Result<Claims, Rejection> {
        let reject = |error| Err(Rejection { error, jti: Some(claims.jti.clone()) });
        let now = now_seconds();
        if now > claims.exp.saturating_add(self.leeway) {
            return reject(CredentialError::Expired);
        }
        if claims.nbf > now.saturating_add(self.leeway) {
            return reject(CredentialError::NotYetValid);
        }
        if let Some(why) = self.revocations.revoked(&claims.jti, &claims.task) {
            return reject(CredentialError::Revoked(why));
        }
        Ok(claims)
    }

    /// Every check, the signature included.
    fn check_signed(&self, token: &str, audience: Option<&str>) -> Result<Claims, Rejection> {
        let claimed_jti = unverified_jti(token);
        let reject = |error| Rejection { error, jti: claimed_jti.clone() };
        let header = unverified_header(token)
            .map_err(|message| reject(CredentialError::Malformed(message)))?;
        let algorithm = header.get("alg").and_then(Value::as_str).unwrap_or("(none)");
        if algorithm != "EdDSA" {
            return Err(reject(CredentialError::WrongAlgorithm(algorithm.to_owned())));
        }
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("(none)");
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let key =
            keys.get(kid).ok_or_else(|| reject(CredentialError::UnknownKey(kid.to_owned())))?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        match audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|error| reject(map_error(error.kind(), audience)))?
            .claims;
        drop(keys);

        let reject = |error| Rejection { error, jti: Some(claims.jti.clone()) };
        let lifetime = claims.exp.saturating_sub(claims.iat.min(claims.nbf));
        if lifetime > MAX_LIFETIME_SECONDS {
            return Err(reject(CredentialError::TooLongLived(lifetime)));
        }
        if let Some(why) = self.revocations.revoked(&claims.jti, &claims.task) {
            return Err(reject(CredentialError::Revoked(why)));
        }
        Ok(claims)
    }
}

fn map_error(kind: &ErrorKind, audience: Option<&str>) -> CredentialError {
    match kind {
        ErrorKind::InvalidSignature => CredentialError::BadSignature,
        ErrorKind::ExpiredSignature => CredentialError::Expired,
        ErrorKind::ImmatureSignature => CredentialError::NotYetValid,
        ErrorKind::InvalidIssuer => CredentialError::WrongIssuer,
        ErrorKind::InvalidAudience => {
            CredentialError::WrongAudience(audience.unwrap_or_default().to_owned())
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            CredentialError::WrongAlgorithm("mismatch".to_owned())
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            CredentialError::Malformed(format!("missing claim `{claim}`"))
        }
        other => CredentialError::Malformed(format!("{other:?}")),
    }
}

/// The header, decoded without trusting it, to pick the key and refuse other algorithms early.
fn unverified_header(token: &str) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWT has three dot-separated parts".to_owned());
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|error| format!("header: {error}"))?;
    serde_json::from_slice(&bytes).map_err(|error| format!("header: {error}"))
}

/// The `jti` a token claims, read without verifying it: for the audit record of a refusal.
fn unverified_jti(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let jti = claims.get("jti")?.as_str()?;
    // A forged token could carry anything here: keep it short and printable.
    Some(jti.chars().filter(|c| c.is_ascii_graphic()).take(64).collect())
}

fn decoding_keys(jwks: &Value) -> Result<HashMap<String, DecodingKey>, JwksError> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone())
        .map_err(|error| JwksError::Invalid(error.to_string()))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            continue;
        };
        if params.curve != jsonwebtoken::jwk::EllipticCurve::Ed25519 {
            continue;
        }
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| JwksError::Invalid("an Ed25519 key has no `kid`".to_owned()))?;
        let key =
            DecodingKey::from_jwk(jwk).map_err(|error| JwksError::Invalid(error.to_string()))?;
        keys.insert(kid, key);
    }
    if keys.is_empty() {
        return Err(JwksError::Empty);
    }
    Ok(keys)
}
