//! Human approval: the channels a reviewer answers through, and the notary that signs every
//! answer.
//!
//! The pipeline (`agent_core::Pipeline`) asks an [`agent_core::Approver`] only after every guard
//! has run, binds the answer to the request id and the argument digest, uses it once, and turns
//! silence past its timeout into `expired` and a crashed channel into `channel_failed`. The
//! channels here put the request in front of a person:
//!
//! - [`TerminalApprover`]: a prompt on stderr, the answer read from the TTY; without a TTY it
//!   refuses at once rather than hang.
//! - `WebConsole`: a small web console on `127.0.0.1`, with reviewer login, CSRF protection
//!   and JSON endpoints.
//! - `agent_core::ScriptedApprover` for tests and evals.
//!
//! Every answer, yes or no, becomes an `agent_core::approval::ApprovalRecord` that the
//! [`crate::notary::IssuerNotary`] signs with the runtime's key, so the audit log can prove who
//! said yes to what.

mod terminal;
pub mod web;

pub use terminal::{OpenTerminalError, TerminalApprover, render};
pub use web::{StartError, WebConsole, WebConsoleConfig};
