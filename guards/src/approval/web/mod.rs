//! The web approval console: a page where a reviewer sees every call waiting for a human's yes,
//! with its exact arguments and where each value came from, and approves or denies it.
//!
//! [`WebConsole`] is an [`Approver`]. `decide` puts the request on the console's pending list and
//! waits for the reviewer's answer. The pipeline bounds that wait with its own timeout; when it
//! gives up it drops the `decide` future, and the request leaves the list, recorded as `expired`.
//! Any number of pipelines can share one `Arc<WebConsole>` and have requests pending at once.
//!
//! ```no_run
//! use guards::approval::web::{WebConsole, WebConsoleConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = WebConsoleConfig::new("a long random reviewer token", "dana@support");
//! let (console, address) = WebConsole::start(config).await?;
//! println!("approve or deny at http://{address}/");
//! // Hand `console.clone()` to each pipeline as its approver.
//! # Ok(()) }
//! ```
//!
//! # Who can answer
//!
//! Only the reviewer: whoever holds the reviewer token configured here, or a browser session
//! opened with it. An agent's own credentials (task tokens, call tokens) are never accepted,
//! whatever they claim, so an agent that was talked into a bad call cannot also approve it.
//! Browsers log in through a form and get an `HttpOnly; SameSite=Strict` session cookie; every form
//! carries the session's CSRF token, and a POST without it changes nothing. Scripts send
//! `Authorization: Bearer <reviewer token>` to the JSON endpoints instead.
//!
//! # What the page can and cannot trust
//!
//! The arguments and the agent's stated reason are attacker-controlled: a prompt injection chose
//! them. Every string is escaped before it reaches the page, the page runs no script, and a
//! Content-Security-Policy forbids scripts altogether. The stated reason is shown as the model's
//! claim, next to the evidence that does not depend on the model: which arguments came only from
//! untrusted text, which policies asked, and the budget already used.
//!
//! ```text
//! wrong: format!("<pre>{}</pre>", request.stated_reason)       // the injection runs in your browser
//! right: format!("<pre>{}</pre>", escape(&request.stated_reason))
//! ```
//!
//! # Deployment
//!
//! The console speaks plain HTTP and binds to `127.0.0.1` by default. The reviewer token and the
//! session cookie cross the wire in the clear, so anything beyond the loopback interface needs TLS
//! in front (a reverse proxy); binding elsewhere logs a warning.

mod auth;
mod board;
mod render;
mod routes;

use agent_core::{ApprovalAnswer, ApprovalRequest, Approver, Reason};
use async_trait::async_trait;
use auth::Gate;
use board::Board;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// The shortest reviewer token [`WebConsole::start`] accepts, in bytes: anything shorter could be
/// guessed through the login form.
pub const MIN_REVIEWER_TOKEN_LEN: usize = 16;

/// How to run a [`WebConsole`].
#[derive(Clone)]
pub struct WebConsoleConfig {
    /// Where to listen. The default, `127.0.0.1:0`, is the loopback interface on a free port;
    /// [`WebConsole::start`] returns the port it got.
    pub bind: SocketAddr,
    /// The secret a reviewer logs in with, at least [`MIN_REVIEWER_TOKEN_LEN`] bytes. Never give
    /// it to an agent.
    pub reviewer_token: String,
    /// Who answers through this console, as written into every grant (`ApprovalGrant::approver`).
    pub reviewer_name: String,
}

impl WebConsoleConfig {
    /// A console on the loopback interface, on a free port.
    pub fn new(reviewer_token: impl Into<String>, reviewer_name: impl Into<String>) -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            reviewer_token: reviewer_token.into(),
            reviewer_name: reviewer_name.into(),
        }
    }
}

impl Default for WebConsoleConfig {
    /// The loopback interface on a free port, with no reviewer token: fill in `reviewer_token`
    /// and `reviewer_name`, or [`WebConsole::start`] refuses to start.
    fn default() -> Self {
        Self::new(String::new(), String::new())
    }
}

impl fmt::Debug for WebConsoleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConsoleConfig")
            .field("bind", &self.bind)
            .field("reviewer_token", &"<redacted>")
            .field("reviewer_name", &self.reviewer_name)
            .finish()
    }
}

/// Why a [`WebConsole`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The reviewer token is too short to resist guessing.
    #[error("the reviewer token must be at least {MIN_REVIEWER_TOKEN_LEN} bytes long")]
    WeakReviewerToken,
    /// No reviewer name, so grants could not say who approved.
    #[error("the reviewer name must not be empty")]
    NoReviewerName,
    /// The address could not be bound.
    #[error("cannot listen on `{bind}`: {source}")]
    Bind {
        /// The address asked for.
        bind: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// A web page where a reviewer approves or denies calls: an [`Approver`] for any number of
/// pipelines at once.
///
/// Dropping the last `Arc<WebConsole>` stops the server, as does [`WebConsole::shutdown`].
pub struct WebConsole {
    state: Arc<ConsoleState>,
    stop: watch::Sender<bool>,
    address: SocketAddr,
}

impl WebConsole {
    /// Binds `config.bind` and serves the console from a spawned task; returns the console and
    /// the address it actually listens on. Must be called from within a tokio runtime.
    pub async fn start(config: WebConsoleConfig) -> Result<(Arc<Self>, SocketAddr), StartError> {
        if config.reviewer_token.len() < MIN_REVIEWER_TOKEN_LEN {
            return Err(StartError::WeakReviewerToken);
        }
        if config.reviewer_name.trim().is_empty() {
            return Err(StartError::NoReviewerName);
        }
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind { bind: config.bind, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| StartError::Bind { bind: config.bind, source })?;
        if !address.ip().is_loopback() {
            tracing::warn!(
                %address,
                "the approval console listens beyond the loopback interface over plain HTTP; put TLS in front of it"
            );
        }
        let state = Arc::new(ConsoleState {
            board: Board::default(),
            gate: Gate::new(&config.reviewer_token),
            reviewer_name: config.reviewer_name,
        });
        let (stop, mut stopped) = watch::channel(false);
        let app = routes::router(Arc::clone(&state));
        tokio::spawn(async move {
            let until_stopped = async move {
                // Ends on `shutdown` or when the console is dropped (the sender goes away).
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) =
                axum::serve(listener, app).with_graceful_shutdown(until_stopped).await
            {
                tracing::error!(%error, "the approval console stopped serving");
            }
        });
        tracing::info!(%address, "approval console listening");
        Ok((Arc::new(Self { state, stop, address }), address))
    }

    /// The address the console listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the server and refuses every pending and future request (`console_closed`): with
    /// no console, nobody can say yes.
    pub fn shutdown(&self) {
        self.state.board.close();
        self.stop.send_replace(true);
    }
}

impl Drop for WebConsole {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for WebConsole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConsole").field("address", &self.address).finish_non_exhaustive()
    }
}

#[async_trait]
impl Approver for WebConsole {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        let (answer_tx, answer_rx) = oneshot::channel();
        let Some(handle) = self.state.board.add(request, answer_tx) else {
            return ApprovalAnswer::Refused(console_closed());
        };
        // If the pipeline's timeout drops this future, the request leaves the list as `expired`.
        let _leave = LeaveOnDrop { board: &self.state.board, handle };
        match answer_rx.await {
            Ok(answer) => answer,
            // The sender is dropped only when the console shuts down.
            Err(_) => ApprovalAnswer::Refused(console_closed()),
        }
    }
}

/// What the server's handlers share with the console.
struct ConsoleState {
    board: Board,
    gate: Gate,
    reviewer_name: String,
}

/// Takes a request off the pending list when its `decide` future ends, however it ends.
struct LeaveOnDrop<'a> {
    board: &'a Board,
    handle: u64,
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        self.board.expire(self.handle);
    }
}

fn console_closed() -> Reason {
    Reason::new("console_closed", "the web approval console is shut down, so nobody can answer")
}
