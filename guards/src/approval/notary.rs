//! Signing approval records with the runtime's key, and checking them.
//!
//! A signature is stored as a JWS in its flattened JSON serialization (RFC 7515 §7.2.2):
//! `{"protected": …, "payload": …, "signature": …}`. The compact form (`a.b.c`) looks like a bearer
//! token, and the audit log redacts bearer tokens; the flattened form is the same signature,
//! kept whole.

use crate::credentials::{CredentialError, Issuer, Rejection, Verifier};
use agent_core::approval::{ApprovalNotary, ApprovalRecord};
use serde_json::{Value, json};
use std::sync::Arc;

/// The kind of signed document an approval record is.
const KIND: &str = "approval";

/// Signs approval records with an [`Issuer`]'s current key (`EdDSA`).
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
        let mut parts = compact.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(protected), Some(payload), Some(signature)) => {
                Ok(json!({ "protected": protected, "payload": payload, "signature": signature }))
            }
            _ => Err("the signer produced a malformed JWS".to_owned()),
        }
    }
}

/// The approval record a signature (as stored in an approval event's `signature`) vouches for,
/// if it verifies against `verifier`'s keys: what an auditor runs to prove who approved what.
pub fn verify_approval(
    signature: &Value,
    verifier: &Verifier,
) -> Result<ApprovalRecord, Rejection> {
    let part = |name: &str| signature.get(name).and_then(Value::as_str);
    let (Some(protected), Some(payload), Some(signed)) =
        (part("protected"), part("payload"), part("signature"))
    else {
        return Err(Rejection {
            error: CredentialError::Malformed("not a flattened JWS".to_owned()),
            jti: None,
        });
    };
    verifier.verify_document(&format!("{protected}.{payload}.{signed}"), KIND)
}
