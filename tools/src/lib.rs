//! The support-desk domain as Warden tools: a retail desk compatible with tau2-bench.
//!
//! The desk holds tau2-bench's retail database unchanged (products, users and orders keyed by id;
//! `--db PATH` loads the benchmark's own `db.json`) plus a ticket queue, and offers the
//! benchmark's tools under their own names and arguments, and the desk's own (`read_ticket`,
//! `reply_to_customer`, `issue_refund`, `send_email`, `delete_customer_account`, …).
//!
//! Each tool is an [`agent_core::Tool`] whose [`ToolSpec`] declares what the guards need: the
//! scope it requires, its effect class, the record it touches (`order_id` → `Order`), the money
//! it moves, and whether its output is untrusted content. The business rules live in the tools
//! (an order that is not pending cannot be cancelled); what an agent may do at all lives in the
//! policy, which reads the desk's records through the desk's
//! [`EntityResolver`](guards::policy::EntityResolver).
//!
//! ```
//! use tools::{Desk, all_tools};
//!
//! let desk = Desk::demo()?;
//! let tools = all_tools(&desk);
//! assert!(tools.iter().any(|tool| tool.spec().name.as_str() == "issue_refund"));
//! # Ok::<(), tools::LoadError>(())
//! ```
//!
//! Every write applies fully or not at all, and a retried call (same task and call id) returns
//! its first result without applying again: a retried refund never refunds twice.
//!
//! [`mcp`] serves any list of Warden tools over the Model Context Protocol with a server that
//! verifies Warden tokens itself (`cargo run -p tools --bin support-desk-mcp`), and imports an
//! MCP server's tools into a menu, pinned, with the scope and effect the operator declares.

mod declarations;
mod desk;
mod entities;
pub mod generate;
pub mod gullible;
pub mod mcp;
mod operations;
pub mod paybacks;
pub mod records;

pub use agent_core::{EffectClass, Tool, ToolSpec};
pub use declarations::{all_tools, scopes, tool};
pub use desk::{Desk, LoadError, SaveError};
pub use operations::orders::CANCEL_REASONS;
pub use records::Database;
