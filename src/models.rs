//! Domain types returned by [`RalioClient`](crate::RalioClient).
//!
//! Amounts are [`Decimal`]s, read from the decimal strings the API sends (`"500.00"`), never
//! floats. Status fields are open enums: the known values plus `Other(String)`, so a status the
//! server adds later never breaks a client. Unknown fields are ignored. Timestamps are read
//! leniently (RFC 3339, or a date-time without offset taken as UTC); one that cannot be read at
//! all becomes `None` rather than failing the whole call.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
pub use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of the SDK does not know, kept as sent.
            Other(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::from(s.as_ref()))
            }
        }
    };
}

open_enum! {
    /// Whether a payment intent may execute.
    ApprovalStatus {
        /// Waiting for the owner's decision in the console.
        PendingApproval = "pending_approval",
        /// Approved by the owner.
        ApprovedByUser = "approved_by_user",
        /// Within the agent's rules: approved without asking.
        AutoApproved = "auto_approved",
        /// Refused by the owner.
        RejectedByUser = "rejected_by_user",
        /// Refused by the agent's rules (for example over the spend limit).
        Rejected = "rejected",
    }
}

impl ApprovalStatus {
    /// Whether the intent still waits for a decision.
    pub fn is_pending(&self) -> bool {
        matches!(self, ApprovalStatus::PendingApproval)
    }
}

open_enum! {
    /// Execution state of a payment intent, one of its instructions, or a transaction.
    PaymentStatus {
        /// Not started.
        Pending = "pending",
        /// Sent to the bank.
        Submitted = "submitted",
        /// Being executed.
        Executing = "executing",
        /// Done.
        Completed = "completed",
        /// Delivered to the creditor.
        Delivered = "delivered",
        /// Failed.
        Failed = "failed",
        /// Cancelled before execution (for example after a rejection).
        Cancelled = "cancelled",
        /// Waiting for approval before execution.
        NotStarted = "not_started",
        /// Not executed because the intent was rejected.
        NotExecuted = "not_executed",
    }
}

open_enum! {
    /// Who wrote a chat message.
    MessageRole {
        /// The caller.
        User = "user",
        /// The agent.
        Assistant = "assistant",
        /// A tool result.
        Tool = "tool",
        /// A system message.
        System = "system",
    }
}

/// An agent the credential can reach.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Agent {
    /// The agent id (use it with `chat().send(…).agent_id(…)`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The agent's account number, when it has one.
    #[serde(default)]
    pub agent_number: Option<String>,
    /// The bank behind the agent's account.
    #[serde(default)]
    pub banking_provider: Option<String>,
    /// When the agent was created.
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
}

/// A message of a conversation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Message {
    /// Message id.
    pub id: String,
    /// Who wrote it.
    pub role: MessageRole,
    /// Its text.
    pub content: String,
    /// When it was written.
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
}

/// The answer to a chat message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct ChatReply {
    /// The agent's reply text.
    pub reply: String,
    /// Pass it with the next message to continue the conversation.
    pub conversation_id: String,
    /// The messages this exchange added (the user's, tool results, the agent's).
    #[serde(default)]
    pub new_messages: Vec<Message>,
}

/// An executed payment.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Transaction {
    /// Transaction id.
    pub id: String,
    /// Amount, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Execution status.
    pub status: PaymentStatus,
    /// Booking date.
    #[serde(default, deserialize_with = "lenient_time")]
    pub date: Option<DateTime<Utc>>,
    /// Who was paid.
    #[serde(default)]
    pub creditor: Option<String>,
    /// Who paid.
    #[serde(default)]
    pub debtor: Option<String>,
    /// Payment reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// The payment intent this transaction executed.
    #[serde(default)]
    pub payment_intent_id: Option<String>,
}

/// What the agent proposed to pay, with per-leg execution detail.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct PaymentIntent {
    /// Intent id.
    pub id: String,
    /// The agent that proposed it.
    pub agent_id: String,
    /// That agent's name.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// Whether it may execute.
    pub approval_status: ApprovalStatus,
    /// Whether it executed.
    pub execution_status: PaymentStatus,
    /// Sum of the instructions, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub total_amount: Decimal,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Number of instructions.
    pub instruction_count: u64,
    /// The individual payments.
    #[serde(default)]
    pub instructions: Vec<PaymentInstruction>,
    /// The conversation that produced it.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// When it was proposed.
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    /// The agent's summary of what was asked.
    #[serde(default)]
    pub user_request_summary: Option<String>,
    /// Why it was approved or rejected.
    #[serde(default)]
    pub decision_reason: Option<String>,
    /// When it was decided.
    #[serde(default, deserialize_with = "lenient_time")]
    pub decided_at: Option<DateTime<Utc>>,
    /// The outcome of the alignment check, when the server ran one.
    #[serde(default)]
    pub alignment_outcome: Option<String>,
}

/// One payment of an intent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct PaymentInstruction {
    /// Amount, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Execution status of this leg.
    pub status: PaymentStatus,
    /// Idempotency key used with the bank.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Creditor account.
    #[serde(default)]
    pub creditor_account: Option<String>,
    /// Creditor name.
    #[serde(default)]
    pub creditor_name: Option<String>,
    /// Debtor account.
    #[serde(default)]
    pub debtor_account: Option<String>,
    /// Debtor name.
    #[serde(default)]
    pub debtor_name: Option<String>,
    /// Payment reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// The transaction that executed it.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// That transaction's status.
    #[serde(default)]
    pub transaction_status: Option<PaymentStatus>,
    /// Why execution failed.
    #[serde(default)]
    pub execution_error: Option<String>,
}

/// RFC 3339, or a naive date-time / date taken as UTC; anything else → `None`.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    Ok(parse_time(&s))
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_are_exact_decimals() {
        let t: Transaction = serde_json::from_str(
            r#"{"id":"tx_1","amount":"0.10","currency":"GBP","status":"completed","date":"2026-04-01T10:00:00Z","new_field":[1]}"#,
        )
        .unwrap();
        assert_eq!(t.amount, Decimal::from_str("0.10").unwrap());
        assert_eq!(t.amount.to_string(), "0.10", "scale is kept");
        assert_eq!(t.status, PaymentStatus::Completed);
        assert!(t.date.is_some());
    }

    #[test]
    fn float_amounts_are_refused() {
        let r = serde_json::from_str::<Transaction>(
            r#"{"id":"tx_1","amount":0.1,"currency":"GBP","status":"completed"}"#,
        );
        // A float would lose exactness; rust_decimal's str mode refuses it.
        assert!(r.is_err());
    }

    #[test]
    fn unknown_statuses_are_kept_not_fatal() {
        let i: PaymentIntent = serde_json::from_str(
            r#"{"id":"pi_1","agent_id":"ag_1","approval_status":"escalated_to_cfo","execution_status":"queued",
                "total_amount":"500.00","currency":"GBP","instruction_count":1,
                "instructions":[{"amount":"500.00","currency":"GBP","status":"submitted","transaction_status":"settling"}],
                "created_at":"2026-04-01T10:00:00.123456"}"#,
        )
        .unwrap();
        assert_eq!(
            i.approval_status,
            ApprovalStatus::Other("escalated_to_cfo".into())
        );
        assert_eq!(i.approval_status.to_string(), "escalated_to_cfo");
        assert!(!i.approval_status.is_pending());
        assert_eq!(i.execution_status.as_str(), "queued");
        assert_eq!(i.instructions[0].status, PaymentStatus::Submitted);
        assert_eq!(
            i.instructions[0].transaction_status,
            Some(PaymentStatus::Other("settling".into()))
        );
        assert!(i.created_at.is_some(), "naive timestamps are read as UTC");
        assert_eq!(
            serde_json::to_value(&i.approval_status).unwrap(),
            "escalated_to_cfo"
        );
    }

    #[test]
    fn odd_timestamps_become_none() {
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2026-04-01").is_some());
        assert!(parse_time("2026-04-01 10:00:00").is_some());
        let a: Agent =
            serde_json::from_str(r#"{"id":"a","name":"n","created_at":"soon"}"#).unwrap();
        assert_eq!(a.created_at, None);
        let a: Agent = serde_json::from_str(r#"{"id":"a","name":"n","created_at":null}"#).unwrap();
        assert_eq!(a.created_at, None);
    }
}
