//! Minting tokens: a task token per task, a per-call token per write, a narrower token per
//! subagent.

use super::claims::{Actor, Claims, join_scopes};
use super::keys::{KeyError, KeyRing};
use super::verifier::{Rejection, Verifier};
use super::{MAX_LIFETIME_SECONDS, now_seconds, random_hex};
use agent_core::credential::{CallCredentials, Delegator};
use agent_core::guard::{CallContext, ProposedCall, Reason};
use agent_core::{AgentId, Credential, EffectClass, Scope, TaskId};
use jsonwebtoken::{Algorithm, Header};
use serde_json::Value;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Mints Warden tokens with the keys of one [`KeyRing`].
pub struct Issuer {
    name: String,
    keys: RwLock<KeyRing>,
    own_tokens: Verifier,
    task_lifetime: u64,
    call_lifetime: u64,
}

/// What a task may do: the claims of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGrant {
    /// The agent that runs the task.
    pub agent: AgentId,
    /// The task.
    pub task: TaskId,
    /// The tool servers it may reach.
    pub audience: Vec<String>,
    /// What it may do there.
    pub scopes: Vec<Scope>,
    /// The customer it serves, if any.
    pub on_behalf_of: Option<String>,
    /// How long the token lives; the issuer's default when `None`. At most one hour.
    pub lifetime: Option<Duration>,
}

/// How to narrow a token for a subagent. Anything wider than the parent is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowing {
    /// The subagent.
    pub subagent: AgentId,
    /// The sub-task's id.
    pub task: TaskId,
    /// Scopes: each must be granted by the parent.
    pub scopes: Vec<Scope>,
    /// Audiences: each must be in the parent's; the parent's when `None`.
    pub audience: Option<Vec<String>>,
    /// Lifetime; the token never outlives its parent whatever is asked.
    pub lifetime: Option<Duration>,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// A lifetime above the hard maximum (one hour) or of zero.
    #[error("token lifetime of {0} s is outside 1 s to 1 hour")]
    Lifetime(u64),
    /// A grant with no scope or no audience.
    #[error("a token must name at least one scope and one audience")]
    Empty,
    /// A subagent asked for a scope its parent does not hold.
    #[error("scope `{0}` is not granted to the parent, so a subagent cannot hold it")]
    ScopeEscalation(String),
    /// A subagent asked for an audience its parent cannot reach.
    #[error("audience `{0}` is not in the parent's token, so a subagent cannot reach it")]
    AudienceEscalation(String),
    /// The parent token does not verify.
    #[error("the parent token is not valid: {0}")]
    Parent(Rejection),
    /// Every key is retired.
    #[error("the key ring has no signing key")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl IssueError {
    /// The reason code for audit events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Lifetime(_) => "lifetime_invalid",
            Self::Empty => "empty_grant",
            Self::ScopeEscalation(_) => "scope_escalation",
            Self::AudienceEscalation(_) => "audience_escalation",
            Self::Parent(rejection) => rejection.code(),
            Self::NoSigningKey | Self::Sign(_) | Self::Keys(_) => "issuer_failed",
        }
    }
}

/// The JWS `typ` of signed documents, never of tokens.
pub const DOCUMENT_TYPE: &str = "warden-document+jwt";

/// Per-call tokens live this long by default: long enough to reach the tool server.
pub const DEFAULT_CALL_LIFETIME: Duration = Duration::from_secs(30);

/// Task tokens live this long by default.
pub const DEFAULT_TASK_LIFETIME: Duration = Duration::from_secs(300);

impl Issuer {
    /// An issuer named `name` (the `iss` claim) signing with `keys`.
    pub fn new(name: impl Into<String>, keys: KeyRing) -> Result<Self, IssueError> {
        let name = name.into();
        let own_tokens = Verifier::from_jwks(name.clone(), &keys.jwks())
            .map_err(|error| IssueError::Sign(error.to_string()))?;
        Ok(Self {
            name,
            keys: RwLock::new(keys),
            own_tokens,
            task_lifetime: DEFAULT_TASK_LIFETIME.as_secs(),
            call_lifetime: DEFAULT_CALL_LIFETIME.as_secs(),
        })
    }

    /// Sets the default task-token lifetime and the per-call token lifetime.
    pub fn with_lifetimes(mut self, task: Duration, call: Duration) -> Result<Self, IssueError> {
        self.task_lifetime = checked_lifetime(task)?;
        self.call_lifetime = checked_lifetime(call)?;
        Ok(self)
    }

    /// The `iss` claim.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public keys, as a JWK set.
    pub fn jwks(&self) -> Value {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).jwks()
    }

    /// A verifier trusting this issuer's current keys.
    pub fn verifier(&self) -> Result<Verifier, IssueError> {
        Verifier::from_jwks(self.name.clone(), &self.jwks())
            .map_err(|error| IssueError::Sign(error.to_string()))
    }

    /// Rotates the signing key (see [`KeyRing::rotate`]); returns the new key id.
    pub fn rotate(&self) -> Result<String, IssueError> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let kid = keys.rotate(now_seconds())?;
        self.refresh(&keys)?;
        Ok(kid)
    }

    /// Removes retired keys whose tokens have all expired; returns their ids.
    pub fn prune(&self, now: u64) -> Result<Vec<String>, IssueError> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let removed = keys.prune(now, MAX_LIFETIME_SECONDS)?;
        self.refresh(&keys)?;
        Ok(removed)
    }

    /// Mints a task token valid from now.
    pub fn mint_task(&self, grant: &TaskGrant) -> Result<Credential, IssueError> {
        self.mint_task_at(grant, now_seconds())
    }

    /// Mints a task token as if issued at `now` (seconds since the epoch).
    pub fn mint_task_at(&self, grant: &TaskGrant, now: u64) -> Result<Credential, IssueError> {
        let lifetime = match grant.lifetime {
            Some(lifetime) => checked_lifetime(lifetime)?,
            None => self.task_lifetime,
        };
        if grant.scopes.is_empty() || grant.audience.is_empty() {
            return Err(IssueError::Empty);
        }
        let claims = Claims {
            iss: self.name.clone(),
            sub: grant.agent.to_string(),
            aud: grant.audience.clone(),
            task: grant.task.to_string(),
            serves: Vec::new(),
            on_behalf_of: grant.on_behalf_of.clone(),
            scope: join_scopes(&grant.scopes),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime),
            jti: new_jti()?,
            act: None,
            tool: None,
            args_digest: None,
        };
        self.sign(&claims)
    }

    /// Mints a single-use token for one call of `tool` with the arguments whose digest is
    /// `args_digest`, derived from (and never outliving) the task token: one scope, one tool
    /// server, seconds of life.
    pub fn mint_call(
        &self,
        task_token: &Credential,
        audience: &str,
        tool: &str,
        scope: &Scope,
        args_digest: &str,
    ) -> Result<Credential, IssueError> {
        let parent =
            self.own_tokens.verify(task_token.expose(), audience).map_err(IssueError::Parent)?;
        if !parent.grants(scope) {
            return Err(IssueError::ScopeEscalation(scope.to_string()));
        }
        let now = now_seconds();
        let claims = Claims {
            aud: vec![audience.to_owned()],
            scope: scope.to_string(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.call_lifetime).min(parent.exp),
            jti: new_jti()?,
            tool: Some(tool.to_owned()),
            args_digest: Some(args_digest.to_owned()),
            ..parent
        };
        self.sign(&claims)
    }

    /// Mints a subagent's token from its parent's: scopes and audiences a subset, expiry no
    /// later, and the subagent added to the delegation chain. Anything wider is an error here.
    pub fn attenuate(
        &self,
        parent: &Credential,
        narrowing: &Narrowing,
    ) -> Result<Credential, IssueError> {
        let parent =
            self.own_tokens.verify_any_audience(parent.expose()).map_err(IssueError::Parent)?;
        if parent.is_call_token() {
            return Err(IssueError::Parent(Rejection {
                error: super::CredentialError::NotATaskToken,
                jti: Some(parent.jti),
            }));
        }
        if let Some(scope) = narrowing.scopes.iter().find(|scope| !parent.grants(scope)) {
            return Err(IssueError::ScopeEscalation(scope.to_string()));
        }
        let audience = match &narrowing.audience {
            None => parent.aud.clone(),
            Some(audience) => {
                if let Some(wider) = audience.iter().find(|aud| !parent.aud.contains(aud)) {
                    return Err(IssueError::AudienceEscalation(wider.clone()));
                }
                audience.clone()
            }
        };
        if narrowing.scopes.is_empty() || audience.is_empty() {
            return Err(IssueError::Empty);
        }
        let now = now_seconds();
        let lifetime = match narrowing.lifetime {
            Some(lifetime) => checked_lifetime(lifetime)?,
            None => self.task_lifetime,
        };
        let act =
            Actor { sub: narrowing.subagent.to_string(), act: parent.act.clone().map(Box::new) };
        let mut serves = parent.serves.clone();
        serves.push(parent.task.clone());
        let claims = Claims {
            aud: audience,
            task: narrowing.task.to_string(),
            serves,
            scope: join_scopes(&narrowing.scopes),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime).min(parent.exp),
            jti: new_jti()?,
            act: Some(act),
            ..parent
        };
        self.sign(&claims)
    }

    fn sign(&self, claims: &Claims) -> Result<Credential, IssueError> {
        self.sign_with_type("JWT", claims).map(Credential::new)
    }

    /// Signs a document that is not a token (an approval record) as a compact JWS with the
    /// current key, with the issuer's name and the time. Its `typ` and its shape keep it from ever
    /// passing as a token: it has no audience, scope or task. Verify with
    /// [`Verifier::verify_document`](super::Verifier::verify_document).
    pub fn sign_document<T: serde::Serialize>(
        &self,
        kind: &str,
        document: &T,
    ) -> Result<String, IssueError> {
        let signed = serde_json::json!({
            "iss": self.name,
            "iat": now_seconds(),
            "kind": kind,
            "document": document,
        });
        self.sign_with_type(DOCUMENT_TYPE, &signed)
    }

    fn sign_with_type<T: serde::Serialize>(
        &self,
        typ: &str,
        payload: &T,
    ) -> Result<String, IssueError> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let (kid, key) = keys.signing_key().ok_or(IssueError::NoSigningKey)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, payload, key)
            .map_err(|error| IssueError::Sign(error.to_string()))
    }

    fn refresh(&self, keys: &KeyRing) -> Result<(), IssueError> {
        self.own_tokens
            .replace_keys(&keys.jwks())
            .map_err(|error| IssueError::Sign(error.to_string()))
    }
}

impl Delegator for Issuer {
    fn attenuate(
        &self,
        parent: &Credential,
        subagent: &AgentId,
        task: &TaskId,
        scopes: &[Scope],
    ) -> Result<Credential, Reason> {
        let narrowing = Narrowing {
            subagent: subagent.clone(),
            task: task.clone(),
            scopes: scopes.to_vec(),
            audience: None,
            lifetime: None,
        };
        Issuer::attenuate(self, parent, &narrowing)
            .map_err(|error| Reason::new(error.code(), error.to_string()))
    }
}

/// Mints the credential each authorized call carries to its tool server: the task token for
/// reads, a per-call token bound to the tool and the argument digest for writes and
/// irreversible calls.
pub struct CallTokens {
    issuer: Arc<Issuer>,
    audience: String,
}

impl CallTokens {
    /// Call tokens for the tool server `audience`.
    pub fn new(issuer: Arc<Issuer>, audience: impl Into<String>) -> Self {
        Self { issuer, audience: audience.into() }
    }
}

impl CallCredentials for CallTokens {
    fn for_call(
        &self,
        call: &ProposedCall<'_>,
        ctx: &CallContext,
    ) -> Result<Option<Credential>, Reason> {
        let Some(task_token) = &ctx.credential else {
            return Err(Reason::new(
                "no_credential",
                "the task has no credential to derive a call token from",
            ));
        };
        match call.spec.effect {
            EffectClass::Read => Ok(Some(task_token.clone())),
            EffectClass::Write | EffectClass::Irreversible => self
                .issuer
                .mint_call(
                    task_token,
                    &self.audience,
                    call.spec.name.as_str(),
                    &call.spec.required_scope,
                    call.args_digest,
                )
                .map(Some)
                .map_err(|error| Reason::new(error.code(), error.to_string())),
        }
    }
}

fn checked_lifetime(lifetime: Duration) -> Result<u64, IssueError> {
    let seconds = lifetime.as_secs();
    if seconds == 0 || seconds > MAX_LIFETIME_SECONDS {
        return Err(IssueError::Lifetime(seconds));
    }
    Ok(seconds)
}

fn new_jti() -> Result<String, IssueError> {
    random_hex(16).map_err(|_| IssueError::Sign("no randomness for a token id".to_owned()))
}
