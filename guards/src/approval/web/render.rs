//! The console's HTML, rendered on the server: no script, no build step, every string escaped.
//!
//! Everything a request carries may have been chosen by an attacker (the arguments, the stated
//! reason, even tool and policy names in the evidence), so every interpolation goes through
//! [`escape`], and the page's Content-Security-Policy allows no script and only this module's
//! stylesheet. The layout puts what does not depend on the model first: which arguments came only
//! from untrusted text, why policy asked, and the budget used; the model's own account comes
//! after, labelled as a claim.

use super::board::{Outcome, PendingView, Settled};
use agent_core::ApprovalRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The Content-Security-Policy for every page: no script, no frames, forms only to this console,
/// and only the stylesheet below (by its hash).
pub(super) fn content_security_policy() -> &'static str {
    static POLICY: LazyLock<String> = LazyLock::new(|| {
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    });
    &POLICY
}

/// The login form, with an error line after a wrong token.
pub(super) fn login_page(error: Option<&str>) -> String {
    let error = error.map(|error| format!(r#"<p class="alarm">{}</p>"#, escape(error)));
    page(
        "Warden · sign in",
        &format!(
            r#"<main><form class="login" method="post" action="/login">
<h1>Warden approval console</h1>
<p class="hint">Sign in with the reviewer token. Agent credentials are never accepted here.</p>
{error}
<label>Reviewer token<input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button class="approve" type="submit">Sign in</button>
</form></main>"#,
            error = error.unwrap_or_default(),
        ),
    )
}

/// A short page for an answer that was not taken, with a way back.
pub(super) fn message_page(title: &str, message: &str) -> String {
    page(
        &format!("Warden · {title}"),
        &format!(
            r#"<main><article><h2>{title}</h2><p>{message}</p><p><a href="/">Back to the console</a></p></article></main>"#,
            title = escape(title),
            message = escape(message),
        ),
    )
}

/// The console: the pending requests, oldest first, then the recent decisions.
pub(super) fn console_page(
    reviewer: &str,
    csrf: &str,
    pending: &[PendingView],
    recent: &[Settled],
) -> String {
    let mut body = format!(
        r#"<header><strong>Warden</strong><span>approval console</span>
<span class="who">signed in as <b>{reviewer}</b></span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button class="quiet" type="submit">Sign out</button></form>
</header><main>
<h1>Waiting for your decision <span class="count">{count}</span></h1>
<p class="hint">Every guard let these calls through except for one thing: policy wants a person's yes.
Approve only a call you would make yourself, with exactly these arguments. Reload for new requests.</p>
"#,
        reviewer = escape(reviewer),
        csrf = escape(csrf),
        count = pending.len(),
    );
    if pending.is_empty() {
        body.push_str(r#"<p class="empty">Nothing is waiting.</p>"#);
    }
    for view in pending {
        body.push_str(&request_card(view, csrf));
    }
    body.push_str(&recent_table(recent));
    body.push_str("</main>");
    page(&format!("Warden · {} waiting", pending.len()), &body)
}

fn request_card(view: &PendingView, csrf: &str) -> String {
    let request = &view.request;
    let policy = request.evidence.get("policy");
    let provenance = policy.and_then(|policy| policy.get("argument_provenance"));
    let provenance = provenance.and_then(Value::as_object);
    let untrusted: Vec<&str> = provenance
        .into_iter()
        .flatten()
        .filter(|(_, origin)| origin_of(origin) == Some("untrusted_only"))
        .map(|(name, _)| name.as_str())
        .collect();
    let alarm = if untrusted.is_empty() {
        String::new()
    } else {
        let names: Vec<String> =
            untrusted.iter().map(|name| format!("<code>{}</code>", escape(name))).collect();
        format!(
            r#"<p class="alarm">⚠ {count} argument{s} came only from untrusted text: {names}. The text the agent was reading may have told it to make this call.</p>"#,
            count = untrusted.len(),
            s = if untrusted.len() == 1 { "" } else { "s" },
            names = names.join(", "),
        )
    };
    let handle = view.handle;
    let pretty_args =
        serde_json::to_string_pretty(&request.args).unwrap_or_else(|_| request.args.to_string());
    format!(
        r#"<article class="request{tainted}" id="request-{handle}" data-request-id="{id}">
<div class="head"><span class="tool">{tool}</span><code>{id}</code><span class="expiry">{expiry}</span></div>
{alarm}
<h3>Why a person must decide</h3>{needs}
<h3>Arguments and where each value came from</h3>{arguments}
<h3>Exact arguments</h3><pre>{pretty_args}</pre>
<p>SHA-256 of the canonical arguments: <code>{digest}</code></p>
<div class="grid"><div><h3>Who is asking</h3>{who}</div><div>{usage}{policies}</div></div>
<h3>The agent's stated reason <span class="claim-label">(the model's claim, not a justification: a successful injection writes this too)</span></h3>
<blockquote class="claim">{reason}</blockquote>
{evidence}
<form class="decide" method="post" action="/requests/{handle}/deny">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="args_digest" value="{digest}">
<label>Comment (optional, kept in the audit log)<textarea name="comment" maxlength="{max_comment}"></textarea></label>
<button class="approve" id="approve-{handle}" type="submit" formaction="/requests/{handle}/approve">Approve</button>
<button class="deny" id="deny-{handle}" type="submit">Deny</button>
</form></article>
"#,
        tainted = if untrusted.is_empty() { "" } else { " tainted" },
        id = escape(&request.id),
        tool = escape(request.tool.as_str()),
        expiry = escape(&expiry(&request.expires_at)),
        needs = needs_list(request),
        arguments = arguments_table(&request.args, provenance),
        pretty_args = escape(&pretty_args),
        digest = escape(&request.args_digest),
        who = who_list(request, &view.received_at),
        usage = usage_section(policy.and_then(|policy| policy.get("usage"))),
        policies = policies_section(policy.and_then(|policy| policy.get("policies"))),
        reason = escape(&request.stated_reason),
        evidence = evidence_details(request),
        csrf = escape(csrf),
        max_comment = super::routes::MAX_COMMENT_CHARS,
    )
}

fn needs_list(request: &ApprovalRequest) -> String {
    if request.needs.is_empty() {
        return r#"<p class="empty">No reason was given.</p>"#.to_owned();
    }
    let items: Vec<String> = request
        .needs
        .iter()
        .map(|need| {
            let policies: Vec<String> = need
                .policies
                .iter()
                .map(|policy| format!(r#" <span class="badge plain">{}</span>"#, escape(policy)))
                .collect();
            format!(
                "<li><code>{code}</code> {detail}{policies}</li>",
                code = escape(&need.reason.code),
                detail = escape(&need.reason.detail),
                policies = policies.concat(),
            )
        })
        .collect();
    format!("<ul>{}</ul>", items.concat())
}

fn arguments_table(args: &Value, provenance: Option<&Map<String, Value>>) -> String {
    let rows: Vec<(String, &Value)> = match args {
        Value::Object(fields) => fields.iter().map(|(name, value)| (name.clone(), value)).collect(),
        other => vec![("(arguments)".to_owned(), other)],
    };
    let mut table = String::from(
        "<table><tr><th>argument</th><th>value</th><th>where the value came from</th></tr>",
    );
    for (name, value) in rows {
        let origin = provenance.and_then(|provenance| provenance.get(&name));
        let untrusted = origin.and_then(origin_of) == Some("untrusted_only");
        table.push_str(&format!(
            r#"<tr{class}><td><code>{name}</code></td><td><code>{value}</code></td><td>{badge}</td></tr>"#,
            class = if untrusted { r#" class="untrusted""# } else { "" },
            name = escape(&name),
            value = escape(&value.to_string()),
            badge = origin_badge(origin),
        ));
    }
    table.push_str("</table>");
    table
}

/// A badge for one argument's provenance: `{"origin":"untrusted_only","sources":["ticket"]}`,
/// `{"origin":"trusted"}` or `{"origin":"unseen"}`.
fn origin_badge(origin: Option<&Value>) -> String {
    let Some(origin) = origin else {
        return r#"<span class="badge plain">no provenance recorded</span>"#.to_owned();
    };
    match origin_of(origin) {
        Some("untrusted_only") => {
            let sources: Vec<&str> = origin
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let label = if sources.is_empty() {
                "from untrusted text only".to_owned()
            } else {
                format!("from untrusted {} text", sources.join(" / "))
            };
            format!(r#"<span class="badge bad">⚠ {}</span>"#, escape(&label))
        }
        Some("trusted") => {
            let sources = listed(origin, "sources");
            let label = if sources.is_empty() {
                "vouched for by our records".to_owned()
            } else {
                format!("vouched for: {sources}")
            };
            format!(r#"<span class="badge good">{}</span>"#, escape(&label))
        }
        Some("own_write_echo") => {
            let label = format!(
                "only in what this task itself wrote ({}): vouches for nothing",
                listed(origin, "sources")
            );
            format!(r#"<span class="badge unknown">{}</span>"#, escape(&label))
        }
        Some("unseen") => {
            r#"<span class="badge unknown">not seen in anything the agent read</span>"#.to_owned()
        }
        Some(other) => format!(r#"<span class="badge plain">{}</span>"#, escape(other)),
        None => format!(r#"<span class="badge plain">{}</span>"#, escape(&origin.to_string())),
    }
}

/// The strings of `origin[field]`, joined.
fn listed(origin: &Value, field: &str) -> String {
    let items: Vec<&str> = origin
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    items.join(", ")
}

fn origin_of(origin: &Value) -> Option<&str> {
    origin.get("origin").and_then(Value::as_str)
}

fn who_list(request: &ApprovalRequest, received_at: &str) -> String {
    let chain: Vec<&str> = request.chain.iter().map(|agent| agent.as_str()).collect();
    let chain =
        if chain.is_empty() { request.agent.as_str().to_owned() } else { chain.join(" → ") };
    format!(
        "<dl><dt>agent</dt><dd><code>{agent}</code></dd><dt>delegation chain</dt><dd><code>{chain}</code></dd>\
         <dt>task</dt><dd><code>{task}</code></dd><dt>call</dt><dd><code>{call}</code></dd>\
         <dt>on behalf of</dt><dd>{customer}</dd><dt>received</dt><dd>{received}</dd></dl>",
        agent = escape(request.agent.as_str()),
        chain = escape(&chain),
        task = escape(request.task.as_str()),
        call = escape(request.call_id.as_str()),
        customer = request.on_behalf_of.as_deref().map_or_else(
            || "<i>no customer named</i>".to_owned(),
            |customer| format!("<code>{}</code>", escape(customer))
        ),
        received = escape(received_at),
    )
}

/// The budget used so far, one row per scope (`task`, `agent_today`, `customer_today`).
fn usage_section(usage: Option<&Value>) -> String {
    let Some(usage) = usage else { return String::new() };
    let rows = match usage.as_object() {
        Some(scopes) => scopes
            .iter()
            .map(|(scope, counters)| {
                let counters = match counters.as_object() {
                    Some(counters) => counters
                        .iter()
                        .map(|(name, value)| format!("{name} {value}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => counters.to_string(),
                };
                format!(
                    r#"<tr><td class="nowrap">{}</td><td>{}</td></tr>"#,
                    escape(scope),
                    escape(&counters)
                )
            })
            .collect::<String>(),
        None => format!(r#"<tr><td colspan="2">{}</td></tr>"#, escape(&usage.to_string())),
    };
    format!("<h3>Budget used so far</h3><table>{rows}</table>")
}

fn policies_section(policies: Option<&Value>) -> String {
    let names: Vec<String> = policies
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|policy| {
            let name = policy.as_str().map_or_else(|| policy.to_string(), str::to_owned);
            format!(r#"<span class="badge plain">{}</span> "#, escape(&name))
        })
        .collect();
    if names.is_empty() {
        return String::new();
    }
    format!("<h3>Determining policies</h3><p>{}</p>", names.concat())
}

fn evidence_details(request: &ApprovalRequest) -> String {
    if request.evidence.is_empty() {
        return String::new();
    }
    let evidence = serde_json::to_string_pretty(&request.evidence).unwrap_or_default();
    format!(
        "<details><summary>Everything the guards recorded</summary><pre>{}</pre></details>",
        escape(&evidence)
    )
}

/// "expires in 4 min 10 s (23:10:04 UTC)", from the request's RFC 3339 expiry.
fn expiry(expires_at: &str) -> String {
    let Ok(expires) = OffsetDateTime::parse(expires_at, &Rfc3339) else {
        return format!("expires {expires_at}");
    };
    let clock = expires
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!("[hour]:[minute]:[second] UTC"))
        .unwrap_or_else(|_| expires_at.to_owned());
    let left = (expires - OffsetDateTime::now_utc()).whole_seconds();
    if left <= 0 {
        format!("expired at {clock}")
    } else {
        format!("expires in {} min {} s ({clock})", left / 60, left % 60)
    }
}

fn recent_table(recent: &[Settled]) -> String {
    let mut table = String::from("<h1>Recent decisions</h1>");
    if recent.is_empty() {
        table.push_str(r#"<p class="empty">None yet.</p>"#);
        return table;
    }
    table.push_str(
        "<article><table><tr><th>when</th><th>request</th><th>tool</th><th>decision</th>\
         <th>by</th><th>comment</th></tr>",
    );
    for settled in recent {
        let class = match settled.decision {
            Outcome::Approved => "good",
            Outcome::Denied => "bad",
            Outcome::Expired | Outcome::Closed => "plain",
        };
        table.push_str(&format!(
            r#"<tr><td>{when}</td><td><code>{id}</code></td><td><code>{tool}</code></td><td><span class="badge {class}">{decision}</span></td><td>{by}</td><td>{comment}</td></tr>"#,
            when = escape(&settled.decided_at),
            id = escape(&settled.request_id),
            tool = escape(&settled.tool),
            decision = settled.decision.as_str(),
            by = escape(settled.reviewer.as_deref().unwrap_or("")),
            comment = escape(settled.comment.as_deref().unwrap_or("")),
        ));
    }
    table.push_str("</table></article>");
    table
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>"#,
        title = escape(title),
    )
}

/// The one stylesheet; the Content-Security-Policy names its hash, so edit it only here.
const STYLE: &str = "\
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f3f4f6;color:#111827}
header{display:flex;align-items:center;gap:1rem;padding:.7rem 1.5rem;background:#111827;color:#f9fafb}
header .who{margin-left:auto;color:#d1d5db}
header form{margin:0}
main{max-width:72rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.4rem;margin:.4rem 0}
h2{font-size:1.15rem;margin:0 0 .5rem}
h3{font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:#4b5563;margin:1.1rem 0 .4rem}
.hint{color:#4b5563;margin:0 0 1.2rem}
.count{display:inline-block;min-width:1.6em;padding:0 .45em;border-radius:1em;background:#1d4ed8;color:#fff;text-align:center;font-size:1rem}
article{background:#fff;border:1px solid #d1d5db;border-radius:.6rem;padding:1.1rem 1.3rem;margin:0 0 1.4rem;box-shadow:0 1px 2px rgba(0,0,0,.06)}
article.tainted{border-left:.5rem solid #b91c1c}
.head{display:flex;flex-wrap:wrap;align-items:baseline;gap:.4rem 1rem}
.tool{font:700 1.2rem ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.expiry{margin-left:auto;color:#92400e;font-weight:600}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88rem}
pre{background:#f9fafb;border:1px solid #e5e7eb;border-radius:.4rem;padding:.6rem .8rem;white-space:pre-wrap;word-break:break-word;margin:0}
.alarm{background:#fef2f2;border:1px solid #fca5a5;color:#7f1d1d;border-radius:.4rem;padding:.6rem .8rem;margin:.8rem 0 0;font-weight:600}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e5e7eb;vertical-align:top;word-break:break-word}
th{font-size:.8rem;color:#6b7280;font-weight:600}
tr.untrusted td{background:#fef2f2}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:.3rem;font-size:.8rem;font-weight:700}
.bad{background:#b91c1c;color:#fff}
.good{background:#dcfce7;color:#166534}
.unknown{background:#fef3c7;color:#92400e}
.plain{background:#e5e7eb;color:#374151}
.nowrap{white-space:nowrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dt{color:#6b7280}
dd{margin:0;word-break:break-word}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:0 2rem}
.claim{border-left:.3rem solid #9ca3af;background:#f9fafb;margin:0;padding:.5rem .8rem;font-style:italic;white-space:pre-wrap;word-break:break-word}
.claim-label{font-weight:400;text-transform:none;letter-spacing:0;color:#6b7280}
details{margin-top:.8rem}
summary{cursor:pointer;color:#374151}
form.decide{display:flex;flex-wrap:wrap;align-items:flex-end;gap:.8rem;margin-top:1.2rem;padding-top:1rem;border-top:1px solid #e5e7eb}
form.decide label{flex:1 1 20rem;display:flex;flex-direction:column;gap:.25rem;color:#4b5563;font-size:.85rem}
textarea,input{font:inherit;padding:.45rem .55rem;border:1px solid #d1d5db;border-radius:.35rem}
textarea{min-height:2.6rem;resize:vertical}
button{font:600 1rem system-ui,sans-serif;border:0;border-radius:.4rem;padding:.6rem 1.6rem;cursor:pointer}
button.approve{background:#15803d;color:#fff}
button.deny{background:#b91c1c;color:#fff}
button.quiet{background:transparent;color:#e5e7eb;border:1px solid #6b7280;padding:.3rem .8rem;font-size:.85rem}
.empty{color:#6b7280;background:#fff;border:1px dashed #d1d5db;border-radius:.6rem;padding:1rem 1.3rem}
form.login{max-width:26rem;margin:4rem auto;background:#fff;border:1px solid #d1d5db;border-radius:.6rem;padding:1.5rem;display:flex;flex-direction:column;gap:.9rem}
form.login label{display:flex;flex-direction:column;gap:.3rem;color:#4b5563}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralizes_markup_in_text_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn an_untrusted_argument_gets_a_red_badge_naming_its_source() {
        let origin = serde_json::json!({"origin": "untrusted_only", "sources": ["ticket"]});
        let badge = origin_badge(Some(&origin));
        assert!(badge.contains("badge bad"), "{badge}");
        assert!(badge.contains("from untrusted ticket text"), "{badge}");
    }
}
