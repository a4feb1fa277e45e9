//! Pinning for the whole session: the one rule that decides a tool's definition at import and at
//! every re-check, the withdrawal (audited) of a tool that breaks it, and the watcher that
//! re-checks when the server says its list changed and on a timer.

use super::*;

/// The one rule for a tool's definition, at import and at every re-check alike: the listing
/// offers exactly one tool under `name`, and, when a digest is pinned, that tool has it.
///
/// ```text
/// wrong: listing.iter().find(|tool| tool.name == name)   // the first of two passes the pin check,
///                                                        // and the second may be what runs
/// right: definition(&listing, name, pin)                 // two of one name are `ambiguous`
/// ```
pub(super) fn definition<'a>(
    listing: &'a [OfferedTool],
    name: &str,
    pin: Option<&str>,
) -> Result<&'a OfferedTool, Refusal> {
    let offers: Vec<&OfferedTool> = listing.iter().filter(|tool| tool.name == name).collect();
    match offers.as_slice() {
        [] => Err(Refusal::Absent),
        [only] => match pin {
            Some(pin) if pin != only.digest => {
                Err(Refusal::Changed { digest: only.digest.clone() })
            }
            _ => Ok(only),
        },
        many => Err(Refusal::Ambiguous {
            digests: many.iter().map(|tool| tool.digest.clone()).collect(),
        }),
    }
}

/// Why a tool is refused at import or withdrawn later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Nothing is listed under its name.
    Absent,
    /// Two or more definitions are listed under its name.
    Ambiguous { digests: Vec<String> },
    /// One definition is listed, and it is not the pinned one.
    Changed { digest: String },
    /// The tools could not be listed at all (never a verdict of [`definition`]).
    Unlisted { error: String },
}

/// What a listing was taken for: the audit events say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum When {
    Import,
    Refresh,
    ListChanged,
    Periodic,
}

impl When {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::Refresh => "refresh",
            Self::ListChanged => "list_changed",
            Self::Periodic => "periodic",
        }
    }
}

impl Refusal {
    pub(super) fn code(&self, when: When) -> &'static str {
        match (self, when) {
            (Self::Absent, When::Import) => "not_offered",
            (Self::Absent, _) => "not_listed",
            (Self::Ambiguous { .. }, _) => "ambiguous",
            (Self::Changed { .. }, _) => "pin_mismatch",
            (Self::Unlisted { .. }, _) => "relist_failed",
        }
    }

    /// A sentence for the operator (and the audit log): digests and the operator's own names
    /// only, never the server's text.
    pub(super) fn sentence(
        &self,
        server: &str,
        tool: &str,
        pin: Option<&str>,
        when: When,
    ) -> String {
        let pinned = pin.unwrap_or("none");
        match self {
            Self::Absent if when == When::Import => format!("`{server}` does not offer `{tool}`"),
            Self::Absent => format!("`{server}` no longer lists `{tool}`"),
            Self::Ambiguous { digests } => {
                format!("`{server}` offers {} tools named `{tool}`", digests.len())
            }
            Self::Changed { digest } => format!(
                "`{server}` offers a definition of `{tool}` other than the pinned one \
                 (pinned {pinned}, offered {digest})"
            ),
            Self::Unlisted { .. } => {
                format!(
                    "`{server}` could not be asked for its tools again, so `{tool}` is unchecked"
                )
            }
        }
    }

    pub(super) fn offered_digests(&self) -> Vec<String> {
        match self {
            Self::Ambiguous { digests } => digests.clone(),
            Self::Changed { digest } => vec![digest.clone()],
            Self::Absent | Self::Unlisted { .. } => Vec::new(),
        }
    }
}

impl Shared {
    pub(super) fn label(&self) -> &str {
        &self.connection.label
    }

    /// Lists the tools and holds every imported tool still in use to [`definition`], withdrawing
    /// (and auditing) each that fails it; see [`McpToolSource::refresh`].
    pub(super) async fn recheck(&self, when: When) -> Result<Vec<Withdrawal>, SourceError> {
        let mut failures = self.relist.lock().await;
        let live: Vec<Arc<Imported>> = self
            .imported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|tool| tool.withdrawn().is_none())
            .cloned()
            .collect();
        // The watcher has nothing to check before an import; an explicit refresh still lists.
        if live.is_empty() && when != When::Refresh {
            return Ok(Vec::new());
        }
        let listing = match self.connection.list().await {
            Ok(listing) => listing,
            Err(error) => {
                *failures = failures.saturating_add(1);
                if self.connection.is_closed() || *failures >= self.relist_failure_limit {
                    let refusal = Refusal::Unlisted { error: error.to_string() };
                    for tool in &live {
                        self.withdraw(tool, &refusal, when).await;
                    }
                } else {
                    self.record_relist_error(&error, *failures, when).await;
                }
                return Err(error);
            }
        };
        *failures = 0;
        let mut withdrawals = Vec::new();
        for tool in &live {
            if let Err(refusal) = definition(&listing, &tool.name, Some(&tool.expected_digest)) {
                withdrawals.extend(self.withdraw(tool, &refusal, when).await);
            }
        }
        Ok(withdrawals)
    }

    /// Withdraws `tool` at once, then audits it; `None` if it was already withdrawn.
    pub(super) async fn withdraw(
        &self,
        tool: &Imported,
        refusal: &Refusal,
        when: When,
    ) -> Option<Withdrawal> {
        let code = refusal.code(when);
        let pin = Some(tool.expected_digest.as_str());
        let sentence = refusal.sentence(self.label(), &tool.name, pin, when);
        if !tool.withdraw(code, sentence) {
            return None;
        }
        self.record_refusal(&tool.name, pin, refusal, when).await;
        let offered_digests = refusal.offered_digests();
        Some(Withdrawal {
            tool: tool.name.clone(),
            code,
            expected_digest: tool.expected_digest.clone(),
            actual_digest: match refusal {
                Refusal::Changed { digest } => Some(digest.clone()),
                _ => None,
            },
            offered_digests,
        })
    }

    /// Audits a refusal at import or a withdrawal: a menu-stage denial of the tool whose reason
    /// code says which rule it broke, with the pinned and offered digests.
    pub(super) async fn record_refusal(
        &self,
        tool: &str,
        pin: Option<&str>,
        refusal: &Refusal,
        when: When,
    ) {
        let code = refusal.code(when);
        let sentence = refusal.sentence(self.label(), tool, pin, when);
        tracing::warn!(
            target: "audit",
            server = %self.label(), tool, code, pin, when = when.as_str(),
            "an MCP tool definition was refused"
        );
        let error = match refusal {
            Refusal::Unlisted { error } => Some(error.as_str()),
            _ => None,
        };
        let actual = match refusal {
            Refusal::Changed { digest } => Some(digest.as_str()),
            _ => None,
        };
        let detail = json!({
            "server": self.label(),
            "when": when.as_str(),
            "expected_digest": pin,
            "actual_digest": actual,
            "offered_digests": refusal.offered_digests(),
            "error": error,
        });
        let mut event = self.event(Verdict::Deny, Reason::new(code, sentence), detail);
        event.tool = Some(tool.to_owned());
        self.commit(event).await;
    }

    /// Audits a re-list that failed and withdrew nothing (yet): it is retried at the next check.
    pub(super) async fn record_relist_error(&self, error: &SourceError, failures: u32, when: When) {
        let limit = self.relist_failure_limit;
        tracing::warn!(
            target: "audit",
            server = %self.label(), %error, failures, limit,
            "an MCP re-list failed"
        );
        let sentence = format!(
            "`{}` could not be asked for its tools again ({failures} of {limit} failures in a \
             row before its tools are withdrawn)",
            self.label()
        );
        let detail = json!({
            "server": self.label(),
            "when": when.as_str(),
            "failures": failures,
            "limit": limit,
            "error": error.to_string(),
        });
        self.commit(self.event(Verdict::Failed, Reason::new("relist_error", sentence), detail))
            .await;
    }

    pub(super) fn event(&self, verdict: Verdict, reason: Reason, detail: Value) -> AuditEvent {
        let mut event = AuditEvent::for_task(
            &self.agent,
            std::slice::from_ref(&self.agent),
            &TaskId::new(format!("mcp-import:{}", self.label())),
            Stage::Menu,
            verdict,
        )
        .with_reason(reason)
        .with_detail(detail);
        event.guard = Some(PIN_CHECK.to_owned());
        event
    }

    pub(super) async fn commit(&self, event: AuditEvent) {
        let Some(audit) = &self.audit else { return };
        if let Err(error) = audit.record(event, Commit::Durable).await {
            tracing::error!(target: "audit", %error, "an MCP pin check was not recorded");
        }
    }
}

/// Re-checks the imported tools whenever the server says its list changed and every `every`,
/// until `close`, until nothing holds the source any more, or until the connection is closed.
/// It holds the source only while a check runs.
pub(super) async fn watch_listing(
    source: Weak<Shared>,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let when = tokio::select! {
            biased;
            // `true` from `close`, or an error: the sender went with the last holder of `Shared`.
            _ = stop.changed() => return,
            () = changed.notified() => When::ListChanged,
            _ = ticks.tick() => When::Periodic,
        };
        let Some(shared) = source.upgrade() else { return };
        // A failure is audited (and, at the limit, withdraws) in `recheck`; the next check retries.
        if let Err(error) = shared.recheck(when).await {
            tracing::debug!(%error, "an MCP re-check failed");
        }
        if shared.connection.is_closed() {
            return;
        }
    }
}

/// The name under which pin checks are audited.
pub(super) const PIN_CHECK: &str = "mcp_pin";

/// What the source remembers of each imported tool.
pub(super) struct Imported {
    pub(super) name: String,
    pub(super) expected_digest: String,
    pub(super) withdrawn: Mutex<Option<Withdrawn>>,
}

/// Why a tool was withdrawn: the code and the operator's sentence.
#[derive(Debug, Clone)]
pub(super) struct Withdrawn {
    pub(super) code: &'static str,
    pub(super) sentence: String,
}

impl Imported {
    pub(super) fn withdrawn(&self) -> Option<Withdrawn> {
        self.withdrawn.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Withdraws the tool for good; the first reason stays. False if it was withdrawn already.
    pub(super) fn withdraw(&self, code: &'static str, sentence: String) -> bool {
        let mut withdrawn = self.withdrawn.lock().unwrap_or_else(PoisonError::into_inner);
        if withdrawn.is_some() {
            return false;
        }
        *withdrawn = Some(Withdrawn { code, sentence });
        true
    }
}
