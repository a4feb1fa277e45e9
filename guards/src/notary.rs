//! The runtime's signatures on its audit log: approval records and checkpoints, made with the
//! issuer's Ed25519 key, checked against a JWK set.
//!
//! A signature is stored as a JWS in its flattened JSON serialization (RFC 7515 §7.2.2):
//! `{"protected": …, "payload": …, "signature": …}`. The compact form (`a.b.c`) looks like a bearer
//! token, and the audit log redacts bearer tokens; the flattened form is the same signature,
//! kept whole. Each is a signed document of its own kind (`approval`, `checkpoint`; see
//! [`Issuer::sign_document`]), so neither can pass for the other or for a token.
//!
//! - [`IssuerNotary`] signs: it is the pipeline's `ApprovalNotary` and the audit sink's
//!   `HeadSigner`.
//! - [`LogSignatures`] checks, for `agent_core::audit::check_log`, from a JWK set alone: the
//!   JWK set an auditor is given (`audit-jwks.json`, which keeps pruned keys) is all it needs.

use crate::credentials::{CredentialError, Issuer, JwksError, Rejection, Verifier};
use agent_core::approval::{ApprovalNotary, ApprovalRecord};
use agent_core::audit::{HeadSigner, Signature, SignatureCheck, TreeHead};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// The kind of signed document an approval record is.
const KIND: &str = "approval";
/// The kind of signed document a checkpoint is.
const CHECKPOINT: &str = "checkpoint";

/// Signs approval records and checkpoints with an [`Issuer`]'s current key (`EdDSA`).
pub struct IssuerNotary {
    issuer: Arc<Issuer>,
}

impl IssuerNotary {
    /// A notary signing with `issuer`'s keys.
    pub fn new(issuer: Arc<Issuer>) -> Self {
        Self { issuer }
    }
}

impl ApprovalNotary for IssuerNotary {
    fn sign(&self, record: &ApprovalRecord) -> Result<Value, String> {
        let compact = self.issuer.sign_document(KIND, record).map_err(|error| error.to_string())?;
        flattened(&compact)
    }
}

impl HeadSigner for IssuerNotary {
    fn sign(&self, head: &TreeHead) -> Result<Signature, String> {
        let compact =
            self.issuer.sign_document(CHECKPOINT, head).map_err(|error| error.to_string())?;
        let value = flattened(&compact)?;
        let key_id = key_id(&value).ok_or("the signer named no key")?;
        Ok(Signature { key_id, value })
    }
}

/// A compact JWS in its flattened JSON form.
fn flattened(compact: &str) -> Result<Value, String> {
    let mut parts = compact.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(protected), Some(payload), Some(signature)) => {
            Ok(json!({ "protected": protected, "payload": payload, "signature": signature }))
        }
        _ => Err("the signer produced a malformed JWS".to_owned()),
    }
}

/// The `kid` in a flattened JWS's protected header (not verified: read it only to say which key).
fn key_id(signature: &Value) -> Option<String> {
    let protected = signature.get("protected").and_then(Value::as_str)?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).ok()?).ok()?;
    header.get("kid").and_then(Value::as_str).map(str::to_owned)
}

/// Checks a log's signatures against the keys of one issuer.
pub struct LogSignatures {
    verifier: Verifier,
}

impl LogSignatures {
    /// Checks against `verifier`'s keys and issuer.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }

    /// Checks against the JWK set in `path` (an `audit-jwks.json`), for tokens of `issuer`.
    pub fn from_jwks_file(issuer: impl Into<String>, path: &Path) -> Result<Self, JwksError> {
        Verifier::from_jwks_file(issuer, path).map(Self::new)
    }
}

impl SignatureCheck for LogSignatures {
    fn checkpoint(&self, signature: &Value) -> Result<(TreeHead, String), String> {
        let compact = compact(signature).map_err(|rejection| rejection.error.to_string())?;
        let head: TreeHead = self
            .verifier
            .verify_document(&compact, CHECKPOINT)
            .map_err(|rejection| rejection.error.to_string())?;
        // The signature verified with the key its header names, so the name is now vouched for.
        let key_id = key_id(signature).unwrap_or_default();
        Ok((head, key_id))
    }

    fn approval(&self, signature: &Value) -> Result<Value, String> {
        let record = verify_approval(signature, &self.verifier)
            .map_err(|rejection| rejection.error.to_string())?;
        serde_json::to_value(record).map_err(|error| error.to_string())
    }
}

/// The compact form of a flattened JWS.
fn compact(signature: &Value) -> Result<String, Rejection> {
    let part = |name: &str| signature.get(name).and_then(Value::as_str);
    match (part("protected"), part("payload"), part("signature")) {
        (Some(protected), Some(payload), Some(signed)) => {
            Ok(format!("{protected}.{payload}.{signed}"))
        }
        _ => Err(Rejection {
            error: CredentialError::Malformed("not a flattened JWS".to_owned()),
            jti: None,
        }),
    }
}

/// The approval record a signature (as stored in an approval event's `signature`) vouches for,
/// if it verifies against `verifier`'s keys: what an auditor runs to prove who approved what.
pub fn verify_approval(
    signature: &Value,
    verifier: &Verifier,
) -> Result<ApprovalRecord, Rejection> {
    verifier.verify_document(&compact(signature)?, KIND)
}
