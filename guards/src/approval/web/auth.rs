//! Who may answer: the reviewer token, the browser sessions opened with it, and their CSRF tokens.
//!
//! Only the configured reviewer token is ever accepted. The console does not parse what it is
//! given (a JWT is just a wrong token here), so no agent credential, however valid elsewhere, can
//! approve. Secrets are compared as SHA-256 digests in constant time, so the time a comparison
//! takes says nothing about how many leading bytes were right. Sessions are kept under the digest
//! of their id for the same reason.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub(super) const SESSION_COOKIE: &str = "warden_session";

/// How long a browser session lasts before the reviewer must log in again.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// At most this many sessions are kept; opening one more forgets the oldest.
const MAX_SESSIONS: usize = 32;

/// The reviewer token's digest and the open sessions.
pub(super) struct Gate {
    reviewer_digest: [u8; 32],
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

struct Session {
    csrf: String,
    opened: Instant,
}

/// How a request proved it comes from the reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reviewer {
    /// A browser session; its forms must carry this CSRF token.
    Session {
        /// The session's CSRF token.
        csrf: String,
    },
    /// The reviewer token itself, as `Authorization: Bearer …` (no CSRF: browsers never send it
    /// on their own).
    Bearer,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub(super) struct RandomFailed;

impl Gate {
    /// A gate that lets in `reviewer_token` and the sessions opened with it.
    pub fn new(reviewer_token: &str) -> Self {
        Self { reviewer_digest: digest(reviewer_token.as_bytes()), sessions: Mutex::default() }
    }

    /// Whether `presented` is the reviewer token, in constant time.
    pub fn is_reviewer_token(&self, presented: &str) -> bool {
        same_digest(&digest(presented.as_bytes()), &self.reviewer_digest)
    }

    /// Opens a session; returns its id, for the cookie.
    pub fn open_session(&self) -> Result<String, RandomFailed> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = self.lock();
        sessions.retain(|_, session| session.opened.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, session)| session.opened).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(digest(id.as_bytes()), Session { csrf, opened: Instant::now() });
        Ok(id)
    }

    /// Forgets a session.
    pub fn close_session(&self, id: &str) {
        self.lock().remove(&digest(id.as_bytes()));
    }

    /// Who sent a request to a JSON endpoint: the bearer token when there is an `Authorization`
    /// header (a wrong one is refused even alongside a good cookie), else the session cookie.
    pub fn api_reviewer(&self, headers: &HeaderMap) -> Option<Reviewer> {
        match headers.get(AUTHORIZATION) {
            Some(value) => {
                let token = value.to_str().ok()?.strip_prefix("Bearer ")?;
                self.is_reviewer_token(token).then_some(Reviewer::Bearer)
            }
            None => self.page_reviewer(headers),
        }
    }

    /// Who sent a request to a page: only a live session cookie counts.
    pub fn page_reviewer(&self, headers: &HeaderMap) -> Option<Reviewer> {
        let id = session_id(headers)?;
        let sessions = self.lock();
        let session = sessions.get(&digest(id.as_bytes()))?;
        (session.opened.elapsed() < SESSION_LIFETIME)
            .then(|| Reviewer::Session { csrf: session.csrf.clone() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reviewer {
    /// Whether a POST from this reviewer may change anything: a session must present its CSRF
    /// token, a bearer needs none.
    pub fn may_post(&self, presented_csrf: Option<&str>) -> bool {
        match self {
            Self::Bearer => true,
            Self::Session { csrf } => presented_csrf.is_some_and(|presented| {
                same_digest(&digest(presented.as_bytes()), &digest(csrf.as_bytes()))
            }),
        }
    }
}

/// The session id from the `Cookie` headers, if any.
pub(super) fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == SESSION_COOKIE).then_some(value))
}

/// Compares two digests without an early exit.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y));
    // `black_box` keeps the optimizer from turning the fold back into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// 128 random bits from the system generator, as 32 hex digits.
fn random_hex() -> Result<String, RandomFailed> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomFailed)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_reviewer_token_passes() {
        let gate = Gate::new("reviewer-token-0123456789");
        assert!(gate.is_reviewer_token("reviewer-token-0123456789"));
        assert!(!gate.is_reviewer_token("reviewer-token-012345678"));
        assert!(!gate.is_reviewer_token(""));
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_only_then() {
        let gate = Gate::new("reviewer-token-0123456789");
        let id = gate.open_session().unwrap();
        let mut headers = HeaderMap::new();
        let cookie = format!("theme=dark; {SESSION_COOKIE}={id}");
        headers.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
        let Some(Reviewer::Session { csrf }) = gate.page_reviewer(&headers) else {
            panic!("the session was not found");
        };
        assert!(Reviewer::Session { csrf: csrf.clone() }.may_post(Some(&csrf)));
        assert!(!Reviewer::Session { csrf }.may_post(Some("0000")));

        gate.close_session(&id);
        assert_eq!(gate.page_reviewer(&headers), None);
    }

    #[test]
    fn a_wrong_bearer_is_refused_even_with_a_good_cookie() {
        let gate = Gate::new("reviewer-token-0123456789");
        let id = gate.open_session().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&format!("{SESSION_COOKIE}={id}")).unwrap());
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln"),
        );
        assert_eq!(gate.api_reviewer(&headers), None);
    }
}
