//! The console's live part, rendered on the server from the sandbox's state: what waits for the
//! owner, the account, recent intents and transactions.

use chrono::{DateTime, Utc};

use super::html::Html;
use crate::Config;
use crate::state::{Inner, PaymentIntent, Transaction, money};

/// Rows in each "recent" table.
const RECENT: usize = 10;

/// The live part of the page (what `/sandbox/console/fragment` answers).
pub(crate) fn live(inner: &Inner, config: &Config) -> Html {
    let intents = all_intents(inner);
    let mut h = Html::default();
    h.fragment(pending_intents(&intents, config))
        .fragment(pending_registrations(inner, config))
        .fragment(account(inner, config))
        .fragment(recent_intents(&intents))
        .fragment(recent_transactions(inner));
    h
}

fn when(t: DateTime<Utc>) -> Html {
    let mut h = Html::default();
    h.raw("<time datetime=\"")
        .text(&t.to_rfc3339())
        .raw("\">")
        .text(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .raw("</time>");
    h
}

/// The time of day, with the full timestamp on hover: tables stay narrow.
fn time_of_day(t: DateTime<Utc>) -> Html {
    let mut h = Html::default();
    h.raw("<time datetime=\"")
        .text(&t.to_rfc3339())
        .raw("\" title=\"")
        .text(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .raw("\">")
        .text(&t.format("%H:%M:%S").to_string())
        .raw("</time>");
    h
}

/// A status's look: waiting, done, refused or failed (the class names are this crate's own).
fn status(value: &str) -> Html {
    let class = match value {
        "pending_approval" | "not_started" | "pending" | "processing" => {
            "<span class=\"status waiting\">"
        }
        "approved_by_user" | "auto_approved" | "completed" => "<span class=\"status done\">",
        "rejected" | "rejected_by_user" | "cancelled" | "not_executed" | "failed" => {
            "<span class=\"status refused\">"
        }
        _ => "<span class=\"status\">",
    };
    let mut h = Html::default();
    h.raw(class).text(value).raw("</span>");
    h
}

/// `parts` joined by `; `, or `-` when there is none.
fn joined<S: std::borrow::Borrow<str>>(parts: &[S]) -> String {
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The payees' names only (the cards show the accounts too).
fn payee_names(intent: &PaymentIntent) -> String {
    let names: Vec<&str> = intent
        .instructions
        .iter()
        .map(|i| i.creditor_name.as_deref().unwrap_or("unnamed payee"))
        .collect();
    joined(&names)
}

fn gbp(currency: &str, amount: &str) -> String {
    match amount.parse() {
        Ok(d) => format!("{currency} {}", money(d)),
        Err(_) => format!("{currency} {amount}"),
    }
}

/// The payees of an intent's legs, `Name (account)`, joined.
fn payees(intent: &PaymentIntent) -> String {
    let names: Vec<String> = intent
        .instructions
        .iter()
        .map(|i| {
            let name = i.creditor_name.as_deref().unwrap_or("unnamed payee");
            match i.creditor_account.as_deref() {
                Some(account) => format!("{name} ({account})"),
                None => name.to_owned(),
            }
        })
        .collect();
    joined(&names)
}

fn references(intent: &PaymentIntent) -> String {
    let refs: Vec<&str> = intent
        .instructions
        .iter()
        .filter_map(|i| i.reference.as_deref())
        .filter(|r| !r.is_empty())
        .collect();
    joined(&refs)
}

fn all_intents(inner: &Inner) -> Vec<&PaymentIntent> {
    let mut intents: Vec<&PaymentIntent> = inner
        .agents
        .values()
        .flat_map(|a| a.intents.iter())
        .collect();
    // Newest first; the id breaks ties within one second.
    intents.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    intents
}

fn pending_intents(intents: &[&PaymentIntent], config: &Config) -> Html {
    let pending: Vec<&PaymentIntent> = intents
        .iter()
        .copied()
        .filter(|i| i.approval_status == "pending_approval")
        .collect();
    let mut h = Html::default();
    h.raw("<section id=\"pending-intents\" aria-labelledby=\"h-pending-intents\">")
        .raw("<h2 id=\"h-pending-intents\">Payments waiting for your approval <span class=\"count\">")
        .text(&pending.len().to_string())
        .raw("</span></h2>");
    if pending.is_empty() {
        h.raw("<p class=\"empty\">Nothing waits for you. A payment above the approval threshold (")
            .text(&format!("GBP {}", money(config.approval_threshold)))
            .raw(") that an agent proposes appears here at once.</p>");
    }
    h.raw("<ul class=\"cards\">");
    for intent in pending {
        let amount = gbp(&intent.currency, &intent.total_amount);
        let payees = payees(intent);
        h.raw("<li class=\"card intent\" data-intent-id=\"")
            .text(&intent.id)
            .raw("\"><p class=\"amount\">")
            .text(&amount)
            .raw("</p><dl><dt>Payee</dt><dd class=\"payee\">")
            .text(&payees)
            .raw("</dd><dt>Reference</dt><dd class=\"reference\">")
            .text(&references(intent))
            .raw("</dd><dt>The agent's summary</dt><dd class=\"summary\">")
            .text(intent.user_request_summary.as_deref().unwrap_or("-"))
            .raw("</dd><dt>Agent</dt><dd class=\"agent\">")
            .text(intent.agent_name.as_deref().unwrap_or(&intent.agent_id))
            .raw("</dd><dt>Proposed</dt><dd class=\"created\">")
            .fragment(when(intent.created_at))
            .raw("</dd><dt>Payment intent</dt><dd><code class=\"id\">")
            .text(&intent.id)
            .raw("</code></dd></dl><div class=\"actions\">")
            .raw("<button type=\"button\" class=\"approve\" data-action=\"approve-intent\" data-id=\"")
            .text(&intent.id)
            .raw("\">Approve</button>")
            .raw("<button type=\"button\" class=\"reject\" data-action=\"reject-intent\" data-id=\"")
            .text(&intent.id)
            .raw("\" data-what=\"")
            .text(&format!("{amount} to {payees}"))
            .raw("\">Reject…</button></div></li>");
    }
    h.raw("</ul></section>");
    h
}

fn pending_registrations(inner: &Inner, config: &Config) -> Html {
    let now = inner.now();
    let pending: Vec<_> = inner.pending.iter().filter(|p| p.waiting(now)).collect();
    let mut h = Html::default();
    // Registrations wait only in legacy mode; otherwise the section would always be empty.
    if !config.legacy_registration && pending.is_empty() {
        return h;
    }
    h.raw("<section id=\"pending-registrations\" aria-labelledby=\"h-pending-registrations\">")
        .raw("<h2 id=\"h-pending-registrations\">Registrations waiting for your approval <span class=\"count\">")
        .text(&pending.len().to_string())
        .raw("</span></h2>");
    if pending.is_empty() {
        h.raw("<p class=\"empty\">Nothing waits for you. A host that registers with a ticket appears here until you decide.</p>");
    }
    h.raw("<ul class=\"cards\">");
    for p in pending {
        let agent = inner
            .agents
            .get(&p.agent_id)
            .map_or(p.agent_id.as_str(), |a| a.name.as_str());
        h.raw("<li class=\"card registration\" data-fingerprint=\"")
            .text(&p.jkt)
            .raw("\"><dl><dt>Key fingerprint</dt><dd><code class=\"fingerprint\">")
            .text(&p.jkt)
            .raw("</code></dd><dt>Agent</dt><dd>")
            .text(agent)
            .raw("</dd><dt>Scopes</dt><dd>")
            .text(&p.scopes.join(" "))
            .raw("</dd><dt>Waits until</dt><dd>")
            .fragment(when(p.expires_at))
            .raw("</dd></dl><div class=\"actions\">")
            .raw("<button type=\"button\" class=\"approve\" data-action=\"approve-registration\" data-id=\"")
            .text(&p.jkt)
            .raw("\">Approve</button>")
            .raw("<button type=\"button\" class=\"reject\" data-action=\"reject-registration\" data-id=\"")
            .text(&p.jkt)
            .raw("\">Reject</button></div></li>");
    }
    h.raw("</ul></section>");
    h
}

fn account(inner: &Inner, config: &Config) -> Html {
    let mut h = Html::default();
    h.raw("<section id=\"account\" aria-labelledby=\"h-account\"><h2 id=\"h-account\">Account</h2>")
        .raw("<dl class=\"limits\"><dt>Spend limit (one payment)</dt><dd class=\"spend-limit\">")
        .text(&format!("GBP {}", money(config.spend_limit)))
        .raw("</dd><dt>Approval threshold</dt><dd class=\"approval-threshold\">")
        .text(&format!("GBP {}", money(config.approval_threshold)))
        .raw("</dd></dl><table><thead><tr><th scope=\"col\">Agent</th><th scope=\"col\">Id</th><th scope=\"col\">Account</th><th scope=\"col\" class=\"num\">Balance</th></tr></thead><tbody>");
    for agent in inner.agents.values() {
        h.raw("<tr data-agent-id=\"")
            .text(&agent.id)
            .raw("\"><td>")
            .text(&agent.name)
            .raw("</td><td><code>")
            .text(&agent.id)
            .raw("</code></td><td><code>")
            .text(&agent.account)
            .raw("</code></td><td class=\"num balance\">")
            .text(&format!("GBP {}", money(agent.balance)))
            .raw("</td></tr>");
    }
    h.raw("</tbody></table></section>");
    h
}

fn recent_intents(intents: &[&PaymentIntent]) -> Html {
    let mut h = Html::default();
    h.raw("<section id=\"recent-intents\" aria-labelledby=\"h-recent-intents\"><h2 id=\"h-recent-intents\">Recent payment intents</h2>");
    if intents.is_empty() {
        h.raw("<p class=\"empty\">None yet. Ask the agent to pay someone: <code>ralio chat \"Pay £250 to Alice for rent\"</code></p></section>");
        return h;
    }
    h.raw("<table><thead><tr><th scope=\"col\">Time (UTC)</th><th scope=\"col\">Id</th><th scope=\"col\" class=\"num\">Amount</th><th scope=\"col\">Payee</th><th scope=\"col\">Approval</th><th scope=\"col\">Execution</th><th scope=\"col\">Decision</th></tr></thead><tbody>");
    for &i in intents.iter().take(RECENT) {
        h.raw("<tr data-intent-id=\"")
            .text(&i.id)
            .raw("\"><td class=\"nowrap\">")
            .fragment(time_of_day(i.created_at))
            .raw("</td><td class=\"nowrap\"><code>")
            .text(&i.id)
            .raw("</code></td><td class=\"num\">")
            .text(&gbp(&i.currency, &i.total_amount))
            .raw("</td><td class=\"payee\">")
            .text(&payee_names(i))
            .raw("</td><td class=\"approval\">")
            .fragment(status(&i.approval_status))
            .raw("</td><td class=\"execution\">")
            .fragment(status(&i.execution_status))
            .raw("</td><td class=\"reason\">")
            .text(i.decision_reason.as_deref().unwrap_or("-"))
            .raw("</td></tr>");
    }
    h.raw("</tbody></table></section>");
    h
}

fn recent_transactions(inner: &Inner) -> Html {
    let mut txs: Vec<&Transaction> = inner
        .agents
        .values()
        .flat_map(|a| a.transactions.iter())
        .collect();
    txs.sort_by(|a, b| b.date.cmp(&a.date).then(b.id.cmp(&a.id)));
    let mut h = Html::default();
    h.raw("<section id=\"recent-transactions\" aria-labelledby=\"h-recent-transactions\"><h2 id=\"h-recent-transactions\">Recent transactions</h2>");
    if txs.is_empty() {
        h.raw("<p class=\"empty\">No money has moved yet.</p></section>");
        return h;
    }
    h.raw("<table><thead><tr><th scope=\"col\">Time (UTC)</th><th scope=\"col\">Id</th><th scope=\"col\" class=\"num\">Amount</th><th scope=\"col\">Payee</th><th scope=\"col\">Reference</th><th scope=\"col\">Status</th></tr></thead><tbody>");
    for t in txs.into_iter().take(RECENT) {
        h.raw("<tr data-transaction-id=\"")
            .text(&t.id)
            .raw("\"><td class=\"nowrap\">")
            .fragment(time_of_day(t.date))
            .raw("</td><td class=\"nowrap\"><code>")
            .text(&t.id)
            .raw("</code></td><td class=\"num\">")
            .text(&gbp(&t.currency, &t.amount))
            .raw("</td><td class=\"payee\">")
            .text(t.creditor.as_deref().unwrap_or("-"))
            .raw("</td><td>")
            .text(t.reference.as_deref().unwrap_or("-"))
            .raw("</td><td>")
            .fragment(status(&t.status))
            .raw("</td></tr>");
    }
    h.raw("</tbody></table></section>");
    h
}
