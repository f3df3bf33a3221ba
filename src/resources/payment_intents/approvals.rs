//! Payment approvals end to end: one intent by id, where it stands ([`IntentStage`]), waiting
//! for its outcome ([`PaymentIntents::wait_for_outcome`], the one way to wait for a decision),
//! and the intents a chat turn created ([`TurnIntents`]).
//!
//! The API has no endpoint that returns one payment intent and no link from a chat reply to
//! the intents it created, so everything here is built on the paged list
//! (`GET /api/payment-intents`, newest first):
//!
//! - [`PaymentIntents::get`] pages through the list until it meets the id (one request for a
//!   recent intent; never more pages than `total` allows, and never past the newest 5,000
//!   intents or a minute, whatever `total` the server claims).
//! - [`TurnIntents`] notes the newest intent ids before a turn; afterwards
//!   [`PaymentIntents::created_in_turn`] lists the intents that are new since then and belong
//!   to the turn's conversation, and adds any intent id the stream's tool events named. This
//!   works against any server: the ids in tool events (`payment_intent_id` on
//!   `tool_completed` / `tool_failed` / `reply`) are used when the server sends them, and are
//!   not required.
//!
//! ```no_run
//! # async fn run(client: &ralio::RalioClient) -> Result<(), ralio::Error> {
//! use std::time::Duration;
//! use ralio::IntentStage;
//!
//! let turn = client.payment_intents().before_turn().await?;
//! let reply = client.chat().send("Pay £250 to Erin for the June rent").await?;
//! for intent in client.payment_intents().created_in_turn(&turn, &reply.conversation_id).await? {
//!     let outcome = client
//!         .payment_intents()
//!         .wait_for_outcome(&intent.id)
//!         .timeout(Duration::from_secs(600))
//!         .on_change(|i| println!("{}: {}", i.id, IntentStage::of(i)))
//!         .await?;
//!     match outcome.stage {
//!         IntentStage::Executed => println!("paid"),
//!         IntentStage::Rejected => println!("refused: {:?}", outcome.intent.decision_reason),
//!         IntentStage::ExecutionFailed => println!("approved, but the payment failed"),
//!         _ => println!("no decision yet; wait again later"),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use tokio::time::Instant;

use super::PaymentIntents;
use crate::error::{Error, Result};
use crate::stream::ChatEvent;
use crate::types::{ApprovalStatus, PaymentIntent, PaymentStatus};

/// The first poll of a wait comes this long after the first look.
const FIRST_POLL: Duration = Duration::from_millis(500);
/// Polls back off (×1.5) up to this interval.
const MAX_POLL: Duration = Duration::from_secs(5);
/// The default limit of [`WaitForOutcome`].
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);
/// Page size used to look for one intent.
const LOOKUP_PER_PAGE: u64 = 50;
/// The most payment intents one lookup walks (newest first): a server that claims a billion
/// intents, or pages that never end, cost at most this many items (100 requests).
const LOOKUP_MAX_INTENTS: usize = 5_000;
/// How long a lookup may take when no wait bounds it ([`PaymentIntents::get`],
/// [`PaymentIntents::created_in_turn`]).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How far past a wait's deadline a lookup already in flight may run before it is cut: the
/// wait returns within its timeout plus a second.
const GRACE: Duration = Duration::from_millis(700);

/// `from + d`, or far ahead when that overflows (`Duration::MAX`).
fn deadline_after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .unwrap_or_else(|| from + Duration::from_secs(86_400 * 365 * 30))
}

/// A lookup cut at its deadline, as the error its caller returns.
fn lookup_timed_out(operation: &'static str, origin: &str, started: Instant) -> Error {
    Error::Timeout {
        what: crate::error::Awaited::Response {
            operation,
            origin: Some(origin.to_owned()),
        },
        waited: started.elapsed(),
    }
}

/// Where a payment intent stands, from its approval and execution statuses.
///
/// Status values are open sets: an approval status this SDK does not know counts as still
/// awaiting a decision unless the execution status says the payment ran, failed or was
/// called off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IntentStage {
    /// Waiting for the owner's decision.
    AwaitingApproval,
    /// Approved (by the owner or the agent's rules); the payment has not finished executing.
    Executing,
    /// Approved and executed (`completed` or `delivered`). Final.
    Executed,
    /// Rejected, by the owner or by the agent's rules (spend limit, funds); nothing was paid.
    /// Final.
    Rejected,
    /// Approved, but the payment failed or was cancelled. Final.
    ExecutionFailed,
}

impl IntentStage {
    /// The stage of `intent`.
    pub fn of(intent: &PaymentIntent) -> IntentStage {
        let approved = matches!(
            intent.approval_status,
            ApprovalStatus::ApprovedByUser | ApprovalStatus::AutoApproved
        );
        let rejected = matches!(
            intent.approval_status,
            ApprovalStatus::RejectedByUser | ApprovalStatus::Rejected
        );
        if rejected {
            return IntentStage::Rejected;
        }
        match intent.execution_status {
            PaymentStatus::Completed | PaymentStatus::Delivered => IntentStage::Executed,
            PaymentStatus::Failed => IntentStage::ExecutionFailed,
            PaymentStatus::Cancelled | PaymentStatus::NotExecuted if approved => {
                IntentStage::ExecutionFailed
            }
            // Not approved and never going to run: a refusal under a name this SDK does not
            // know (for example an expired approval).
            PaymentStatus::Cancelled | PaymentStatus::NotExecuted
                if !intent.approval_status.is_pending() =>
            {
                IntentStage::Rejected
            }
            _ if approved => IntentStage::Executing,
            _ => IntentStage::AwaitingApproval,
        }
    }

    /// Whether nothing more will happen to the intent: executed, rejected or failed.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            IntentStage::Executed | IntentStage::Rejected | IntentStage::ExecutionFailed
        )
    }

    /// The stage as a `snake_case` word, as it is serialised: `awaiting_approval`,
    /// `executing`, `executed`, `rejected`, `execution_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStage::AwaitingApproval => "awaiting_approval",
            IntentStage::Executing => "executing",
            IntentStage::Executed => "executed",
            IntentStage::Rejected => "rejected",
            IntentStage::ExecutionFailed => "execution_failed",
        }
    }
}

impl std::fmt::Display for IntentStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`WaitForOutcome`] saw last: the intent, its stage, and how long the wait took.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IntentOutcome {
    /// The intent as last read.
    pub intent: PaymentIntent,
    /// Its stage. Not [final](IntentStage::is_final) when the time limit passed first.
    pub stage: IntentStage,
    /// How long the wait took.
    pub waited: Duration,
}

impl IntentOutcome {
    /// Whether the intent reached a final stage (executed, rejected, execution failed) before
    /// the time limit.
    pub fn is_final(&self) -> bool {
        self.stage.is_final()
    }
}

type StatusCallback<'a> = Box<dyn FnMut(&PaymentIntent) + Send + 'a>;

/// A wait for one intent's outcome; await it. Built by [`PaymentIntents::wait_for_outcome`].
#[must_use = "the wait starts only when awaited"]
pub struct WaitForOutcome<'a> {
    intents: PaymentIntents<'a>,
    id: String,
    timeout: Duration,
    on_change: Option<StatusCallback<'a>>,
}

impl std::fmt::Debug for WaitForOutcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitForOutcome")
            .field("id", &self.id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<'a> WaitForOutcome<'a> {
    /// How long to wait for a final stage (default [`DEFAULT_WAIT`], 10 minutes). The time
    /// covers every lookup: the wait returns within it plus a second, however slow the server
    /// or long its list. With `Duration::ZERO` the intent is read once (if the server answers
    /// within that second).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Called with the intent when it is first read and whenever its approval or execution
    /// status changes (not on every poll).
    pub fn on_change(mut self, f: impl FnMut(&PaymentIntent) + Send + 'a) -> Self {
        self.on_change = Some(Box::new(f));
        self
    }
}

impl<'a> IntoFuture for WaitForOutcome<'a> {
    type Output = Result<IntentOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<IntentOutcome>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let WaitForOutcome {
                intents,
                id,
                timeout,
                mut on_change,
            } = self;
            let started = Instant::now();
            let deadline = deadline_after(started, timeout);
            // Every lookup runs under the wait's deadline (one in flight when it passes gets
            // `GRACE`), so the timeout counts the lookups too, not only the sleeps between.
            let cutoff = deadline + GRACE;
            let mut interval = FIRST_POLL;
            // The intent as last read.
            let mut seen: Option<PaymentIntent> = None;
            loop {
                let read = intents
                    .find_until(&id, "payment_intents.wait_for_outcome", cutoff)
                    .await;
                let now = Instant::now();
                match read {
                    Some(Ok(intent)) => {
                        let changed = seen.as_ref().is_none_or(|s| {
                            (&s.approval_status, &s.execution_status)
                                != (&intent.approval_status, &intent.execution_status)
                        });
                        if changed && let Some(f) = on_change.as_mut() {
                            f(&intent);
                        }
                        seen = Some(intent);
                    }
                    // Cut at the deadline (`now` is past it): the intent as last read is the
                    // answer, or, with none read, the timeout below.
                    None => {}
                    // A transient failure (after the retry policy's own retries) does not end
                    // the wait while time is left.
                    Some(Err(e)) if e.is_retryable() && now + interval < deadline => {
                        tracing::debug!(error = %e, "reading the payment intent failed; trying again");
                    }
                    Some(Err(e)) => return Err(e),
                }
                if let Some(intent) =
                    seen.take_if(|i| now >= deadline || IntentStage::of(i).is_final())
                {
                    return Ok(IntentOutcome {
                        stage: IntentStage::of(&intent),
                        intent,
                        waited: started.elapsed(),
                    });
                }
                if now >= deadline {
                    // No intent read, and no time left for another read.
                    return Err(Error::Timeout {
                        what: crate::error::Awaited::Decision { intent_id: id },
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep_until((now + interval).min(deadline)).await;
                interval = (interval * 3 / 2).min(MAX_POLL);
            }
        })
    }
}

/// The newest payment intents before a chat turn, and the intent ids the turn's stream named:
/// what [`PaymentIntents::created_in_turn`] needs to find the intents the turn created.
///
/// Take it with [`PaymentIntents::before_turn`] right before sending the message; feed it the
/// stream's events with [`observe`](TurnIntents::observe) when streaming.
#[derive(Debug, Clone, Default)]
pub struct TurnIntents {
    /// Ids on the first page before the turn.
    before: HashSet<String>,
    /// Intent ids named by the turn's tool events or reply, in order, without repeats.
    named: Vec<String>,
}

impl TurnIntents {
    /// Notes the payment intent id a stream event names, if any (`payment_intent_id` in the
    /// data of `tool_completed`, `tool_failed` or `reply`).
    pub fn observe(&mut self, event: &ChatEvent) {
        let id = match event {
            ChatEvent::ToolCompleted(t) | ChatEvent::ToolFailed(t) => t.payment_intent_id(),
            ChatEvent::Reply(r) => r.payment_intent_id(),
            _ => None,
        };
        if let Some(id) = id
            && !self.named.iter().any(|n| n == id)
        {
            self.named.push(id.to_owned());
        }
    }

    /// The intent ids the observed events named, in order.
    pub fn named_ids(&self) -> &[String] {
        &self.named
    }
}

fn not_found(id: &str, operation: &'static str) -> Error {
    Error::UnknownId {
        operation,
        resource: crate::error::ResourceKind::PaymentIntent,
        id: id.to_owned(),
    }
}

impl<'a> PaymentIntents<'a> {
    /// One payment intent by id. Fails with [`Error::UnknownId`] when no intent of this
    /// credential has it.
    ///
    /// The API has no single-intent endpoint: this pages through the list (newest first, 50 a
    /// page) and stops at the first match, so a recent intent costs one request; it never asks
    /// for more pages than the list's `total` holds, and looks among the newest 5,000 intents
    /// at most (an older one is [`Error::UnknownId`] too). It takes a minute at most, whatever
    /// the server does: past that, [`Error::Timeout`].
    pub async fn get(&self, id: &str) -> Result<PaymentIntent> {
        const OP: &str = "payment_intents.get";
        let started = Instant::now();
        self.find_until(id, OP, deadline_after(started, LOOKUP_TIMEOUT))
            .await
            .unwrap_or_else(|| Err(lookup_timed_out(OP, self.client.base_url(), started)))
    }

    /// The newest [`LOOKUP_MAX_INTENTS`] intents, newest first, [`LOOKUP_PER_PAGE`] a page:
    /// the bounded walk every lookup makes, whatever `total` the server claims.
    fn newest(&self) -> impl Stream<Item = Result<PaymentIntent>> + Send + 'a {
        self.list()
            .per_page(LOOKUP_PER_PAGE)
            .all()
            .take(LOOKUP_MAX_INTENTS)
    }

    /// Walks the list (newest first) until it meets `id`: at most [`LOOKUP_MAX_INTENTS`] items
    /// and until `cutoff` (`None` when the cutoff came first), whatever `total` the server
    /// claims.
    async fn find_until(
        &self,
        id: &str,
        operation: &'static str,
        cutoff: Instant,
    ) -> Option<Result<PaymentIntent>> {
        let walk = async {
            let mut all = std::pin::pin!(self.newest());
            while let Some(intent) = all.try_next().await? {
                if intent.id == id {
                    return Ok(intent);
                }
            }
            Err(not_found(id, operation))
        };
        tokio::time::timeout_at(cutoff, walk).await.ok()
    }

    /// Waits for the owner's decision on the intent `id` and, once approved, for the payment to
    /// run: until it is executed, rejected or has failed, or until the time limit (default 10
    /// minutes) passes; await it.
    ///
    /// A time limit is not an error: the returned [`IntentOutcome`] then has a stage that is
    /// not [final](IntentOutcome::is_final) (still awaiting approval, or executing), and the
    /// wait can be resumed with another call. Polls start 500 ms apart and back off to every
    /// 5 s; each poll is one [`get`](Self::get). A retryable failure of one poll (a 503, a rate
    /// limit) does not end the wait while time is left; any other error does
    /// ([`Error::UnknownId`] for an unknown id).
    pub fn wait_for_outcome(&self, id: impl Into<String>) -> WaitForOutcome<'a> {
        WaitForOutcome {
            intents: *self,
            id: id.into(),
            timeout: DEFAULT_WAIT,
            on_change: None,
        }
    }

    /// Notes the newest payment intents (one request: the first page) before a chat turn; see
    /// [`created_in_turn`](Self::created_in_turn).
    pub async fn before_turn(&self) -> Result<TurnIntents> {
        let page = self.list().per_page(LOOKUP_PER_PAGE).await?;
        Ok(TurnIntents {
            before: page.items.into_iter().map(|i| i.id).collect(),
            named: Vec::new(),
        })
    }

    /// The payment intents a chat turn created, oldest first: those listed before any intent
    /// [`before_turn`](Self::before_turn) saw, whose `conversation_id` is the turn's
    /// `conversation_id` (or absent), plus any intent the turn's events named
    /// ([`TurnIntents::observe`]).
    ///
    /// Usually one request. Intents that other conversations created meanwhile are left out;
    /// so is an intent the server lists under another conversation id. Bounded whatever the
    /// server claims: the walk stops after the newest 5,000 intents, and the whole call (the
    /// walk and the lookups of named intents) after a minute, with [`Error::Timeout`].
    pub async fn created_in_turn(
        &self,
        turn: &TurnIntents,
        conversation_id: &str,
    ) -> Result<Vec<PaymentIntent>> {
        const OP: &str = "payment_intents.created_in_turn";
        let started = Instant::now();
        let cutoff = deadline_after(started, LOOKUP_TIMEOUT);
        let walk = async {
            let mut created = Vec::new();
            let mut all = std::pin::pin!(self.newest());
            while let Some(intent) = all.try_next().await? {
                if turn.before.contains(&intent.id) {
                    break;
                }
                let ours = intent
                    .conversation_id
                    .as_deref()
                    .is_none_or(|c| c == conversation_id)
                    || turn.named.contains(&intent.id);
                if ours && !created.iter().any(|c: &PaymentIntent| c.id == intent.id) {
                    created.push(intent);
                }
            }
            Ok::<_, Error>(created)
        };
        let mut created = tokio::time::timeout_at(cutoff, walk)
            .await
            .unwrap_or_else(|_| Err(lookup_timed_out(OP, self.client.base_url(), started)))?;
        created.reverse();
        for id in &turn.named {
            if created.iter().any(|c| &c.id == id) {
                continue;
            }
            match self.find_until(id, "payment_intents.get", cutoff).await {
                None => return Err(lookup_timed_out(OP, self.client.base_url(), started)),
                Some(Ok(intent)) => created.push(intent),
                Some(Err(Error::UnknownId { .. })) => {
                    tracing::warn!(
                        payment_intent_id = %id,
                        "the chat stream named a payment intent the list does not have"
                    );
                }
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{StreamedReply, ToolEvent};

    fn intent(approval: &str, execution: &str) -> PaymentIntent {
        serde_json::from_value(serde_json::json!({
            "id": "pi_1", "agent_id": "ag_1", "approval_status": approval,
            "execution_status": execution, "total_amount": "1.00", "currency": "GBP",
            "instruction_count": 1,
        }))
        .unwrap()
    }

    #[test]
    fn stages_follow_approval_then_execution() {
        use IntentStage::*;
        let cases = [
            ("pending_approval", "not_started", AwaitingApproval),
            ("approved_by_user", "pending", Executing),
            ("approved_by_user", "submitted", Executing),
            ("auto_approved", "completed", Executed),
            ("approved_by_user", "delivered", Executed),
            ("approved_by_user", "failed", ExecutionFailed),
            ("approved_by_user", "cancelled", ExecutionFailed),
            ("rejected_by_user", "cancelled", Rejected),
            ("rejected", "not_executed", Rejected),
            // Open sets: an unknown approval waits, unless execution settled it.
            ("escalated", "not_started", AwaitingApproval),
            ("expired", "cancelled", Rejected),
            ("escalated", "completed", Executed),
            ("approved_by_user", "settling", Executing),
        ];
        for (approval, execution, stage) in cases {
            assert_eq!(
                IntentStage::of(&intent(approval, execution)),
                stage,
                "{approval}/{execution}"
            );
        }
        assert!(Executed.is_final() && Rejected.is_final() && ExecutionFailed.is_final());
        assert!(!AwaitingApproval.is_final() && !Executing.is_final());
        assert_eq!(
            serde_json::to_value(ExecutionFailed).unwrap(),
            "execution_failed"
        );
        assert_eq!(ExecutionFailed.to_string(), "execution_failed");
    }

    #[test]
    fn turn_intents_collect_ids_named_by_events() {
        let tool = |name: &str, data: serde_json::Value| ToolEvent {
            tool_name: name.to_owned(),
            error: None,
            data,
        };
        let mut turn = TurnIntents::default();
        turn.observe(&ChatEvent::ToolStarted(tool(
            "create_payment_intent",
            serde_json::json!({"payment_intent_id": "pi_ignored_on_start"}),
        )));
        turn.observe(&ChatEvent::ToolCompleted(tool(
            "create_payment_intent",
            serde_json::json!({"payment_intent_id": "pi_a"}),
        )));
        turn.observe(&ChatEvent::ToolFailed(tool(
            "create_payment_intent",
            serde_json::json!({"payment_intent_id": "pi_b", "error": "limit"}),
        )));
        turn.observe(&ChatEvent::ToolCompleted(tool(
            "get_balance",
            serde_json::json!({"payment_intent_id": ""}),
        )));
        turn.observe(&ChatEvent::Reply(StreamedReply {
            data: serde_json::json!({"payment_intent_id": "pi_a"}),
            ..StreamedReply::default()
        }));
        assert_eq!(turn.named_ids(), ["pi_a", "pi_b"]);
    }
}
