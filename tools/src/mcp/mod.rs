//! MCP: Warden tools served to any MCP client, and any MCP server's tools imported into a menu.
//!
//! Both directions keep Warden's rule that nothing across a trust boundary is taken on its word.
//!
//! - [`McpToolServer`] serves a list of [`Tool`](agent_core::Tool)s over stdio or streamable HTTP.
//!   Every call must carry a Warden token (the HTTP bearer, or `_meta.warden_token` over stdio);
//!   reads accept the task token, writes and irreversible calls only a per-call token bound to the
//!   tool and the exact arguments, spent once. The server runs each call through its own Warden
//!   [`Pipeline`](agent_core::Pipeline) (menu, schema, the token check, a durable intent record),
//!   so a refused call never reaches the tool. `tools/list` shows a caller only what its token
//!   grants. The desk's server ([`McpToolServer::for_desk`]) also checks whose data each call
//!   touches: the record must be owned by the customer the token serves, or the call is refused
//!   `wrong_owner` (the private `owner` module says who owns what on the desk).
//! - [`McpToolSource`] connects to a server (a command spawned with a cleared environment, or a
//!   URL) and imports only the tools a menu names, as [`McpTool`]s. Their scope, effect class and
//!   trust come from the menu, never from the server; a tool can be pinned to a digest of its
//!   definition ([`pin_digest`]), and a server that changes a pinned definition is refused and
//!   audited. The definition stays pinned for the whole session: on the server's `list_changed`
//!   and periodically the tools are listed again, and one that was changed, duplicated or
//!   dropped is withdrawn, so the pipeline refuses its calls. Each call forwards the
//!   invocation's own credential and is bounded by a timeout.
//!
//! [`sample`] holds three small tools (a read, an irreversible refund, an email) that exercise
//! each path; the tests, the benchmark and the `support-desk-mcp` binary use them until the
//! desk's own tools are wired in.

mod client;
mod http;
mod http_client;
mod owner;
mod pin;
pub mod sample;
mod server;

pub use client::{
    Import, ImportRefusal, ListingTokens, McpEndpoint, McpTool, McpToolSource, OfferedTool,
    SourceError, SourceOptions, ToolImport, Withdrawal,
};
pub use http::{HttpServer, MCP_PATH};
pub use pin::pin_digest;
pub use server::{GUARD_NAME, McpToolServer, ServeError};

/// The `_meta` key that carries a Warden token over stdio (and any byte stream): over HTTP the
/// token is the bearer header instead, and this key is ignored.
pub const META_TOKEN: &str = "warden_token";

/// The `_meta` key that carries the caller's call id, so the server's audit events can be joined
/// with the caller's.
pub const META_CALL_ID: &str = "warden_call_id";

/// The `_meta` key that carries what the caller's guards found about the call
/// ([`Invocation::evidence`](agent_core::tool::Invocation): the policy guard's argument provenance
/// and outbound mentions), so a tool that keeps provenance with what it records (a hand-off) has
/// it over MCP as in process. It is information for the tool, never authorization.
pub const META_EVIDENCE: &str = "warden_evidence";
