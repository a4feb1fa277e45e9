//! A fresh issuer in a temporary key directory, and helpers to read and forge tokens;
//! [`approval`] has the web approval console's.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod approval;

use agent_core::{AgentId, Credential, Scope, TaskId, canonical};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use guards::credentials::{Issuer, KeyRing, Narrowing, TaskGrant, Verifier};
use serde_json::Value;
use std::sync::Arc;

pub const ISSUER: &str = "warden-test";
pub const AUDIENCE: &str = "support-desk";

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub issuer: Arc<Issuer>,
    pub verifier: Verifier,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::open(dir.path().join("keys"), now()).unwrap();
        let issuer = Arc::new(Issuer::new(ISSUER, keys).unwrap());
        let verifier = issuer.verifier().unwrap();
        Self { dir, issuer, verifier }
    }

    pub fn grant(&self, scopes: &[&str]) -> TaskGrant {
        self.grant_for("T-1001", scopes)
    }

    pub fn grant_for(&self, task: &str, scopes: &[&str]) -> TaskGrant {
        TaskGrant {
            agent: AgentId::new("refund-bot"),
            task: TaskId::new(task),
            audience: vec![AUDIENCE.to_owned()],
            scopes: scopes.iter().map(|scope| Scope::new(*scope).unwrap()).collect(),
            on_behalf_of: Some("noah_brown_6181".to_owned()),
            lifetime: None,
        }
    }

    pub fn narrowing(&self, task: &str, scopes: &[&str]) -> Narrowing {
        Narrowing {
            subagent: AgentId::new(task.rsplit('/').next().unwrap()),
            task: TaskId::new(task),
            scopes: scopes.iter().map(|scope| Scope::new(*scope).unwrap()).collect(),
            audience: None,
            lifetime: None,
        }
    }

    pub fn mint_call(
        &self,
        task: &Credential,
        tool: &str,
        scope: &str,
        args: &Value,
    ) -> Credential {
        self.issuer
            .mint_call(task, AUDIENCE, tool, &Scope::new(scope).unwrap(), &canonical::digest(args))
            .unwrap()
    }

    /// The current signing key's id.
    pub fn kid(&self) -> String {
        let jwks = self.issuer.jwks();
        jwks["keys"].as_array().unwrap().last().unwrap()["kid"].as_str().unwrap().to_owned()
    }

    pub fn claims_of(&self, token: &Credential) -> Value {
        part(token.expose(), 1)
    }

    pub fn header_of(&self, token: &Credential) -> Value {
        part(token.expose(), 0)
    }

    /// Signs arbitrary claims with the issuer's real private key, read from its key file: what a
    /// misconfigured or compromised issuer could produce.
    pub fn sign_with_real_key(&self, claims: &Value) -> String {
        let kid = self.kid();
        let file = self.dir.path().join("keys").join(format!("{kid}.key.json"));
        let stored: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let der = STANDARD.decode(stored["pkcs8"].as_str().unwrap()).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(&der))
            .unwrap()
    }
}

fn part(token: &str, index: usize) -> Value {
    let encoded = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}
