//! The scripted payment agent: deterministic answers to balance questions, payment requests and
//! "recent payments", with tool events around each action.

use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::Config;
use crate::state::{Inner, Message, PaymentInstruction, PaymentIntent, decimal_2dp, money};

/// One SSE event: name and JSON data.
pub(crate) type Event = (&'static str, Value);

/// What one chat turn produced.
pub(crate) struct Turn {
    pub(crate) conversation_id: String,
    /// Tool events, in order (text deltas and the reply are derived from `reply`).
    pub(crate) tool_events: Vec<Event>,
    pub(crate) reply: String,
    pub(crate) new_messages: Vec<Message>,
    pub(crate) payment_intent_id: Option<String>,
}

static PAY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*(?:please\s+)?(?:pay|send|transfer)\s+
          (?P<pre>£|€|\$|[a-z]{3}\s+)?
          (?P<amount>\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)
          \s*(?P<post>[a-z]{3}\b|pounds?\b|quid\b|euros?\b|dollars?\b)?
          \s+to\s+(?P<name>.+?)
          (?:\s+for\s+(?P<reference>.+?))?
          \s*[.!]?\s*$",
    )
    .ok()
});

fn currency_of(token: &str) -> Option<&'static str> {
    match token.trim().to_ascii_lowercase().as_str() {
        "" | "£" | "gbp" | "pound" | "pounds" | "quid" => Some("GBP"),
        "€" | "eur" | "euro" | "euros" => Some("EUR"),
        "$" | "usd" | "dollar" | "dollars" => Some("USD"),
        _ => None,
    }
}

const HELP: &str = "I can check your balance (\"What is my current balance?\"), make a payment \
(\"Pay £20 to Alice for lunch\") or list your recent payments (\"Show my recent payments\").";

/// Runs one turn for `agent_id`, applying its effects (intents, transactions, balance).
pub(crate) fn run_turn(
    inner: &mut Inner,
    config: &Config,
    agent_id: &str,
    conversation_id: Option<String>,
    message: &str,
) -> Turn {
    let now = inner.now();
    let conversation_id = conversation_id.unwrap_or_else(|| inner.new_id("conv"));
    let user_msg = Message {
        id: inner.new_id("msg"),
        role: "user".into(),
        content: message.to_owned(),
        created_at: now,
    };
    let call_id = inner.new_id("call");
    let mut tool_events: Vec<Event> = Vec::new();
    let mut payment_intent_id = None;
    let lower = message.to_lowercase();

    let reply = if let Some(caps) = PAY.as_ref().and_then(|re| re.captures(message)) {
        let pre = caps.name("pre").map_or("", |m| m.as_str());
        let post = caps.name("post").map_or("", |m| m.as_str());
        let currency = match (pre.trim(), post.trim()) {
            ("", p) => currency_of(p),
            (p, "") => currency_of(p),
            (a, b) => currency_of(a).filter(|c| currency_of(b) == Some(c)),
        };
        let amount = caps
            .name("amount")
            .and_then(|m| Decimal::from_str(&m.as_str().replace(',', "")).ok());
        let name = caps
            .name("name")
            .map_or("", |m| m.as_str())
            .trim()
            .to_owned();
        let reference = caps.name("reference").map(|m| m.as_str().trim().to_owned());
        tool_events.push(("tool_started", json!({ "tool_name": "create_payment_intent", "tool_call_id": call_id,
            "input": { "amount": caps.name("amount").map(|m| m.as_str()), "currency": currency, "creditor_name": name, "reference": reference } })));
        match (currency, amount) {
            (Some("GBP"), Some(amount)) if amount > Decimal::ZERO => {
                let (intent_id, text, failed) = create_intent(
                    inner,
                    config,
                    agent_id,
                    &conversation_id,
                    message,
                    amount,
                    &name,
                    reference,
                );
                payment_intent_id = Some(intent_id.clone());
                if let Some(reason) = failed {
                    tool_events.push(("tool_failed", json!({ "tool_name": "create_payment_intent", "tool_call_id": call_id, "error": reason, "payment_intent_id": intent_id })));
                } else {
                    tool_events.push(("tool_completed", json!({ "tool_name": "create_payment_intent", "tool_call_id": call_id, "payment_intent_id": intent_id })));
                }
                text
            }
            (Some(other), Some(_)) if other != "GBP" => {
                let error =
                    format!("this account holds GBP only; {other} payments are not supported");
                tool_events.push(("tool_failed", json!({ "tool_name": "create_payment_intent", "tool_call_id": call_id, "error": error })));
                format!(
                    "I can't make that payment: {error}. Try an amount in pounds, for example \"Pay £20 to {name}\"."
                )
            }
            _ => {
                let error =
                    "the amount must be a positive number with at most two decimals".to_owned();
                tool_events.push(("tool_failed", json!({ "tool_name": "create_payment_intent", "tool_call_id": call_id, "error": error })));
                format!("I can't make that payment: {error}.")
            }
        }
    } else if lower.contains("balance") || lower.contains("how much") {
        tool_events.push((
            "tool_started",
            json!({ "tool_name": "get_balance", "tool_call_id": call_id }),
        ));
        let balance = inner
            .agents
            .get(agent_id)
            .map_or(Decimal::ZERO, |a| a.balance);
        tool_events.push(("tool_completed", json!({ "tool_name": "get_balance", "tool_call_id": call_id, "output": { "balance": decimal_2dp(balance), "currency": "GBP" } })));
        format!("Your current balance is GBP {}.", money(balance))
    } else if ["recent", "payments", "transactions", "history"]
        .iter()
        .any(|k| lower.contains(k))
    {
        tool_events.push((
            "tool_started",
            json!({ "tool_name": "list_transactions", "tool_call_id": call_id }),
        ));
        let recent: Vec<String> = inner
            .agents
            .get(agent_id)
            .map(|a| {
                a.transactions
                    .iter()
                    .rev()
                    .take(5)
                    .map(|t| {
                        format!(
                            "GBP {} to {}{}",
                            t.amount,
                            t.creditor.as_deref().unwrap_or("unknown"),
                            t.reference
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        tool_events.push(("tool_completed", json!({ "tool_name": "list_transactions", "tool_call_id": call_id, "output": { "count": recent.len() } })));
        if recent.is_empty() {
            "You have no payments yet.".to_owned()
        } else {
            format!("Your recent payments: {}.", recent.join("; "))
        }
    } else {
        format!("Sorry, I didn't understand that. {HELP}")
    };

    let assistant = Message {
        id: inner.new_id("msg"),
        role: "assistant".into(),
        content: reply.clone(),
        created_at: inner.now(),
    };
    if let Some(agent) = inner.agents.get_mut(agent_id) {
        let conv = agent
            .conversations
            .entry(conversation_id.clone())
            .or_default();
        conv.push(user_msg.clone());
        conv.push(assistant.clone());
    }
    Turn {
        conversation_id,
        tool_events,
        reply,
        new_messages: vec![user_msg, assistant],
        payment_intent_id,
    }
}

/// Creates the intent and decides it by policy. Returns (id, reply text, failure reason).
#[allow(clippy::too_many_arguments)]
fn create_intent(
    inner: &mut Inner,
    config: &Config,
    agent_id: &str,
    conversation_id: &str,
    message: &str,
    amount: Decimal,
    name: &str,
    reference: Option<String>,
) -> (String, String, Option<String>) {
    let now = inner.now();
    let id = inner.new_id("pi");
    let idem = inner.new_id("idem");
    let creditor_account = format!(
        "GB{:02}SAND{:014}",
        amount.mantissa().unsigned_abs() % 90 + 10,
        name.len() * 1_000_003
    );
    let Some(agent) = inner.agents.get(agent_id) else {
        return (
            id,
            "I can't find this agent's account.".into(),
            Some("unknown agent".into()),
        );
    };
    let (balance, agent_name, debtor_account) =
        (agent.balance, agent.name.clone(), agent.account.clone());
    let amount_s = decimal_2dp(amount);
    let (approval, execution, reason, failed) = if amount > config.spend_limit {
        let r = format!(
            "Amount GBP {} exceeds the per-payment spend limit of GBP {}",
            money(amount),
            money(config.spend_limit)
        );
        ("rejected", "not_executed", Some(r.clone()), Some(r))
    } else if amount > balance {
        let r = format!("Insufficient funds: the balance is GBP {}", money(balance));
        ("rejected", "not_executed", Some(r.clone()), Some(r))
    } else if amount > config.approval_threshold {
        ("pending_approval", "not_started", None, None)
    } else {
        (
            "auto_approved",
            "pending",
            Some(format!(
                "Within the auto-approval threshold of GBP {}",
                money(config.approval_threshold)
            )),
            None,
        )
    };
    let intent = PaymentIntent {
        id: id.clone(),
        agent_id: agent_id.to_owned(),
        agent_name: Some(agent_name.clone()),
        approval_status: approval.into(),
        execution_status: execution.into(),
        total_amount: amount_s.clone(),
        currency: "GBP".into(),
        instruction_count: 1,
        instructions: vec![PaymentInstruction {
            amount: amount_s,
            currency: "GBP".into(),
            status: if failed.is_some() {
                "rejected".into()
            } else {
                "pending".into()
            },
            idempotency_key: Some(idem),
            creditor_account: Some(creditor_account),
            creditor_name: Some(name.to_owned()),
            debtor_account: Some(debtor_account),
            debtor_name: Some(agent_name),
            reference: reference.clone(),
            transaction_id: None,
            transaction_status: None,
            execution_error: None,
        }],
        conversation_id: Some(conversation_id.to_owned()),
        created_at: now,
        user_request_summary: Some(message.to_owned()),
        decision_reason: reason,
        decided_at: if approval == "pending_approval" {
            None
        } else {
            Some(now)
        },
        alignment_outcome: Some("aligned".into()),
        amount,
    };
    let Some(agent) = inner.agents.get_mut(agent_id) else {
        return (
            id,
            "I can't find this agent's account.".into(),
            Some("unknown agent".into()),
        );
    };
    agent.intents.push(intent);
    let idx = agent.intents.len() - 1;
    let for_ref = reference.map(|r| format!(" for {r}")).unwrap_or_default();
    let text = match (approval, &failed) {
        (_, Some(reason)) => format!(
            "I couldn't pay GBP {} to {name}: {reason}. Payment intent {id} was rejected.",
            money(amount)
        ),
        ("pending_approval", None) => format!(
            "Payment of GBP {} to {name}{for_ref} is above the approval threshold of GBP {}, so it needs your approval. Payment intent {id} is pending approval.",
            money(amount),
            money(config.approval_threshold)
        ),
        _ => {
            inner.execute_intent(agent_id, idx);
            let balance = inner
                .agents
                .get(agent_id)
                .map_or(Decimal::ZERO, |a| a.balance);
            format!(
                "Done: paid GBP {} to {name}{for_ref} (payment intent {id}). Your balance is now GBP {}.",
                money(amount),
                money(balance)
            )
        }
    };
    (id, text, failed)
}

/// Splits a reply into `text_delta` chunks of a few words (whitespace kept, so they join back).
pub(crate) fn deltas(reply: &str) -> Vec<String> {
    let words: Vec<&str> = reply.split_inclusive(' ').collect();
    words.chunks(3).map(|c| c.concat()).collect()
}
