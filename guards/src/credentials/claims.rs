//! The claims of a Warden token: who may do what, for which task, until when.

use agent_core::{AgentId, Scope};
use serde::{Deserialize, Deserializer, Serialize};

/// The payload of a task token or a per-call token.
///
/// A task token names the agent (`sub`), the tool servers it may reach (`aud`), the task, the
/// customer it serves, and its scopes. A per-call token adds the tool and the digest of the exact
/// arguments, lives for seconds, and is accepted once. A subagent's token carries the delegation
/// chain in `act` (RFC 8693): the outermost `act.sub` is the agent acting now, each nested `act`
/// the one that delegated to it, and `sub` the root agent the chain started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The root agent the token was first issued to.
    pub sub: String,
    /// The tool servers the token may be presented to.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// The task the token serves.
    pub task: String,
    /// For a delegated sub-task, the tasks it serves, root first (the last is its parent's):
    /// budgets count its spend against each of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serves: Vec<String>,
    /// The customer or user the task serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Not valid before.
    pub nbf: u64,
    /// Not valid from.
    pub exp: u64,
    /// The token's unique id: what audit events name, never the token itself.
    pub jti: String,
    /// The delegation chain, for subagents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Per-call tokens: the tool this token lets the holder call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Per-call tokens: the SHA-256 of the canonical arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_digest: Option<String>,
}

/// One link of a delegation chain (RFC 8693 `act`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting agent.
    pub sub: String,
    /// The agent that delegated to it, if it was itself a delegate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Claims {
    /// The scopes granted.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    /// Whether `scope` is granted.
    pub fn grants(&self, scope: &Scope) -> bool {
        self.scopes().any(|granted| granted == scope.as_str())
    }

    /// The agent acting now: the outermost `act.sub`, or `sub` for a root token.
    pub fn actor(&self) -> &str {
        self.act.as_ref().map_or(&self.sub, |act| &act.sub)
    }

    /// The chain from the root agent to the acting one.
    pub fn chain(&self) -> Vec<AgentId> {
        let mut delegates = Vec::new();
        let mut link = self.act.as_ref();
        while let Some(actor) = link {
            delegates.push(AgentId::new(actor.sub.clone()));
            link = actor.act.as_deref();
        }
        let mut chain = vec![AgentId::new(self.sub.clone())];
        chain.extend(delegates.into_iter().rev());
        chain
    }

    /// Whether this is a per-call token.
    pub fn is_call_token(&self) -> bool {
        self.tool.is_some() || self.args_digest.is_some()
    }
}

/// `aud` may be one string or a list (RFC 7519 §4.1.3).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(audience) => vec![audience],
        OneOrMany::Many(audiences) => audiences,
    })
}

/// Joins scopes the way tokens carry them.
pub(crate) fn join_scopes<'a>(scopes: impl IntoIterator<Item = &'a Scope>) -> String {
    let mut names: Vec<&str> = scopes.into_iter().map(Scope::as_str).collect();
    names.sort_unstable();
    names.dedup();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_reads_from_the_root_to_the_acting_agent() {
        let claims = Claims {
            iss: "warden".into(),
            sub: "refund-bot".into(),
            aud: vec!["support-desk".into()],
            task: "t".into(),
            serves: Vec::new(),
            on_behalf_of: None,
            scope: "orders:read".into(),
            iat: 0,
            nbf: 0,
            exp: 1,
            jti: "j".into(),
            act: Some(Actor {
                sub: "lookup-helper".into(),
                act: Some(Box::new(Actor { sub: "triage".into(), act: None })),
            }),
            tool: None,
            args_digest: None,
        };
        assert_eq!(claims.actor(), "lookup-helper");
        let chain: Vec<String> = claims.chain().iter().map(ToString::to_string).collect();
        assert_eq!(chain, ["refund-bot", "triage", "lookup-helper"]);
    }

    #[test]
    fn audience_may_be_a_single_string() {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": "s", "aud": "support-desk", "task": "t", "scope": "a b",
            "iat": 0, "nbf": 0, "exp": 1, "jti": "j"
        }))
        .unwrap();
        assert_eq!(claims.aud, ["support-desk"]);
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["a", "b"]);
    }
}
