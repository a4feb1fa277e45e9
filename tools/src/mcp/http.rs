//! The MCP server over streamable HTTP: an axum router whose every request needs a Warden bearer.
//!
//! rmcp's HTTP service does not look at `Authorization`, so the check sits in front of it, in
//! axum middleware: no bearer, or a bearer that does not verify for the server's audience, is an
//! HTTP 401 before rmcp parses a byte. A verified bearer travels on to the handler in the request's
//! extensions, where [`McpToolServer`](super::McpToolServer) reads it: over HTTP the bearer is the
//! call's credential, and a write's bearer is its per-call token (one header per request).
//!
//! ```no_run
//! # async fn run(server: tools::mcp::McpToolServer) -> Result<(), tools::mcp::ServeError> {
//! // Mount it in your own app…
//! let app = axum::Router::new().merge(server.router());
//! // …or let it listen by itself.
//! let listening = server.serve_http("127.0.0.1:8808".parse().unwrap()).await?;
//! println!("MCP at {}", listening.url());
//! # Ok(()) }
//! ```

use super::server::{GUARD_NAME, McpToolServer, ServeError, UNIDENTIFIED};
use agent_core::audit::{AuditEvent, AuditLog, Commit, Stage, Verdict};
use agent_core::{AgentId, Credential, Reason, TaskId};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONNECTION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use guards::credentials::{Claims, CredentialError, Rejection, Verifier};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The path the MCP endpoint is mounted at.
pub const MCP_PATH: &str = "/mcp";

/// A verified bearer: what the middleware hands the MCP handler.
#[derive(Clone)]
pub(crate) struct HttpBearer {
    pub(crate) credential: Credential,
    pub(crate) claims: Claims,
}

impl McpToolServer {
    /// The MCP endpoint at [`MCP_PATH`], behind the bearer check. Only loopback `Host`s are
    /// accepted (rmcp's guard against DNS rebinding); serve it behind a proxy that sets `Host`
    /// accordingly to expose it further.
    pub fn router(&self) -> Router {
        self.router_with(StreamableHttpServerConfig::default())
    }

    /// Binds `addr` (port 0 picks a free one) and serves [`router`](Self::router) on it until
    /// [`HttpServer::shutdown`].
    pub async fn serve_http(self, addr: SocketAddr) -> Result<HttpServer, ServeError> {
        let bind_error = |source| ServeError::Bind { addr: addr.to_string(), source };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let config = StreamableHttpServerConfig::default();
        // Open sessions (a client's event stream) would hold a graceful shutdown forever: end them
        // when the server is asked to stop.
        let sessions = config.cancellation_token.clone();
        let router = self.router_with(config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    sessions.cancel();
                })
                .await
        });
        Ok(HttpServer { addr: local, stop, task })
    }

    fn router_with(&self, config: StreamableHttpServerConfig) -> Router {
        let server = self.clone();
        let service: StreamableHttpService<McpToolServer, LocalSessionManager> =
            StreamableHttpService::new(move || Ok(server.clone()), Arc::default(), config);
        let check = Arc::new(BearerCheck {
            verifier: Arc::clone(self.verifier()),
            audience: self.audience().to_owned(),
            audit: self.audit().clone(),
        });
        Router::new()
            .nest_service(MCP_PATH, service)
            .layer(middleware::from_fn_with_state(check, require_bearer))
    }
}

/// A running HTTP server. Dropping it leaves the server running until the runtime stops; call
/// [`shutdown`](Self::shutdown) to stop it.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint's URL, such as `http://127.0.0.1:40123/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// Stops accepting, ends open sessions, and waits (up to five seconds) for requests in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "the MCP HTTP server stopped with an error")
            }
            Ok(Err(error)) => tracing::warn!(%error, "the MCP HTTP server task failed"),
            Err(_) => tracing::warn!("the MCP HTTP server did not stop within 5 s"),
        }
    }
}

struct BearerCheck {
    verifier: Arc<Verifier>,
    audience: String,
    audit: AuditLog,
}

/// The bearer check in front of rmcp: 401 unless the request carries a token valid for this
/// server. Which tools the token may call is the handler's business; this only says who it is.
async fn require_bearer(
    State(check): State<Arc<BearerCheck>>,
    mut request: Request,
    next: Next,
) -> Response {
    let verified = match bearer(request.headers()) {
        None => Err(Rejection { error: CredentialError::Missing, jti: None }),
        Some(token) => check
            .verifier
            .verify(token, &check.audience)
            .map(|claims| HttpBearer { credential: Credential::new(token), claims }),
    };
    match verified {
        Ok(bearer) => {
            request.extensions_mut().insert(bearer);
            next.run(request).await
        }
        Err(rejection) => {
            // Only the method is kept: a request body is not `Sync`, so it is not held across
            // the audit write.
            let method = request.method().as_str().to_owned();
            drop(request);
            record_refusal(&check.audit, &method, &rejection).await;
            unauthorized(&rejection)
        }
    }
}

/// The token of an `Authorization: Bearer …` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// RFC 6750: a challenge without an error code when no token was sent, `invalid_token` when one
/// was refused. The body is a JSON-RPC error (MCP clients surface it) carrying the reason code;
/// the detail goes to the audit log. The request body was never read, so the connection is closed
/// rather than reused.
fn unauthorized(rejection: &Rejection) -> Response {
    let code = rejection.code();
    let challenge = match rejection.error {
        CredentialError::Missing => r#"Bearer realm="warden""#.to_owned(),
        _ => format!(r#"Bearer realm="warden", error="invalid_token", error_description="{code}""#),
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": UNAUTHORIZED_CODE,
            "message": format!("unauthorized: {code}"),
            "data": { "refused": code },
        },
    });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The JSON-RPC error code of a refused bearer (in the range JSON-RPC leaves to servers).
const UNAUTHORIZED_CODE: i64 = -32001;

async fn record_refusal(audit: &AuditLog, method: &str, rejection: &Rejection) {
    let unknown = AgentId::new(UNIDENTIFIED);
    let mut event = AuditEvent::for_task(
        &unknown,
        std::slice::from_ref(&unknown),
        &TaskId::new(UNIDENTIFIED),
        Stage::Guard,
        Verdict::Deny,
    )
    .with_reason(Reason::new(rejection.code(), rejection.to_string()))
    .with_detail(json!({
        "transport": "http",
        "method": method,
        "jti": rejection.jti,
    }));
    event.guard = Some(GUARD_NAME.to_owned());
    if let Err(error) = audit.record(event, Commit::Buffered).await {
        tracing::error!(target: "audit", %error, "a refused MCP request was not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer(&headers("Bearer abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(bearer(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&headers("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer(&headers("abc.def.ghi")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn a_refusal_says_why_in_its_challenge_and_its_body() {
        let missing = unauthorized(&Rejection { error: CredentialError::Missing, jti: None });
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(missing.headers()[WWW_AUTHENTICATE], r#"Bearer realm="warden""#);
        let expired = unauthorized(&Rejection { error: CredentialError::Expired, jti: None });
        let challenge = expired.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
        assert!(challenge.contains(r#"error_description="expired""#), "{challenge}");
        assert_eq!(expired.headers()[CONNECTION], "close");
    }
}
