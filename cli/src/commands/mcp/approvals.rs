//! The approval tools of `ralio mcp` (`get_payment_intent`, `wait_for_decision`) and what the
//! `chat` tool says about the payment intents a turn created.

use std::time::Duration;

use ralio::{IntentStage, TurnIntents};
use ralio::{PaymentIntent, RalioClient};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{schemars, tool, tool_router};
use serde::Deserialize;

use super::{RalioMcp, json_text, sdk_error};

/// The longest `wait_for_decision` waits: below the 60 s request timeout common MCP clients
/// apply, so the tool answers "still pending" instead of the host giving up on it.
pub const MAX_WAIT_SECS: u64 = 50;
/// How long `wait_for_decision` waits when the call does not say.
const DEFAULT_WAIT_SECS: u64 = 30;

/// Arguments of `get_payment_intent`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct IntentParams {
    /// The payment intent id (starts with "pi_"), as the chat tool's payment_intents or list_payment_intents gave it.
    pub payment_intent_id: String,
}

/// Arguments of `wait_for_decision`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct WaitParams {
    /// The payment intent id (starts with "pi_"), as the chat tool's payment_intents or list_payment_intents gave it.
    pub payment_intent_id: String,
    /// How many seconds to wait at most, 0 to 50 (default 30). The owner may take longer: when the result says still_pending, call this tool again.
    #[serde(default)]
    #[schemars(range(min = 0, max = 50))]
    pub timeout_seconds: Option<u64>,
}

/// The facts about an intent an agent needs to say what happened to a payment.
pub fn intent_brief(intent: &PaymentIntent) -> serde_json::Value {
    let stage = IntentStage::of(intent);
    let payees: Vec<&str> = intent
        .instructions
        .iter()
        .filter_map(|i| i.creditor_name.as_deref())
        .collect();
    serde_json::json!({
        "id": intent.id,
        "amount": intent.total_amount,
        "currency": intent.currency,
        "payees": payees,
        "approval_status": intent.approval_status,
        "execution_status": intent.execution_status,
        "outcome": stage,
        "pending": !stage.is_final(),
        "decision_reason": intent.decision_reason,
    })
}

/// What an outcome means, for the model to relay.
fn outcome_message(intent: &PaymentIntent, stage: IntentStage, waited: Duration) -> String {
    let id = &intent.id;
    match stage {
        IntentStage::Executed => {
            format!("Payment intent {id} was approved and the payment executed.")
        }
        IntentStage::Rejected => format!(
            "Payment intent {id} was rejected ({}); nothing was paid. Do not retry it unless the user asks.",
            intent
                .decision_reason
                .as_deref()
                .unwrap_or("no reason given")
        ),
        IntentStage::ExecutionFailed => format!(
            "Payment intent {id} was approved, but the payment failed (execution status {}).",
            intent.execution_status
        ),
        IntentStage::Executing => format!(
            "Payment intent {id} is approved but has not finished executing after {} s; call wait_for_decision again to learn the result.",
            waited.as_secs()
        ),
        _ => format!(
            "Payment intent {id} is still pending the owner's approval after {} s. Call wait_for_decision again to keep waiting, or tell the user it awaits their approval in the Ralio console. Do not send the payment request again.",
            waited.as_secs()
        ),
    }
}

/// The `payment_intents` part of a `chat` result: the intents the turn created, or why they
/// could not be listed (the reply stands either way: the turn may have paid).
pub async fn turn_intents(
    client: &RalioClient,
    before: Result<TurnIntents, ralio::Error>,
    conversation_id: &str,
    result: &mut serde_json::Map<String, serde_json::Value>,
) {
    let created = match before {
        Ok(turn) => {
            client
                .payment_intents()
                .created_in_turn(&turn, conversation_id)
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(created) => {
            let pending: Vec<&str> = created
                .iter()
                .filter(|i| !IntentStage::of(i).is_final())
                .map(|i| i.id.as_str())
                .collect();
            if !pending.is_empty() {
                result.insert(
                    "next_step".into(),
                    format!(
                        "{} pending the owner's approval: call wait_for_decision with its payment_intent_id to learn whether it was paid.",
                        pending.join(", ")
                    )
                    .into(),
                );
            }
            result.insert(
                "payment_intents".into(),
                created.iter().map(intent_brief).collect(),
            );
        }
        Err(e) => {
            result.insert("payment_intents".into(), serde_json::Value::Null);
            result.insert(
                "payment_intents_error".into(),
                format!(
                    "could not list the payment intents this message created: {}",
                    sdk_error(e)
                )
                .into(),
            );
        }
    }
}

#[tool_router(router = approval_router, vis = "pub(super)")]
impl RalioMcp {
    /// One payment intent in full.
    #[tool(
        description = "Get one payment intent (a payment the agent proposed) by its id: amount, payees, each leg, approval_status, execution_status, decision_reason, timestamps, and outcome (one of awaiting_approval, executing, executed, rejected, execution_failed). Returns JSON {payment_intent, outcome, pending}. Does not wait; use wait_for_decision to wait for the owner."
    )]
    async fn get_payment_intent(
        &self,
        Parameters(p): Parameters<IntentParams>,
    ) -> Result<String, String> {
        let intent = self
            .client
            .payment_intents()
            .get(p.payment_intent_id.trim())
            .await
            .map_err(sdk_error)?;
        let stage = IntentStage::of(&intent);
        Ok(json_text(serde_json::json!({
            "payment_intent": intent,
            "outcome": stage,
            "pending": !stage.is_final(),
        })))
    }

    /// Waits, bounded, for the owner's decision and the execution.
    #[tool(
        description = "Wait for the account owner's decision on a payment intent that is pending approval, and for an approved payment to execute; waits at most timeout_seconds (0 to 50, default 30) and then returns, even without a decision. Returns JSON {payment_intent_id, outcome, final, still_pending, waited_seconds, message, payment_intent}. outcome: executed (approved and paid), rejected (nothing paid; decision_reason says why), execution_failed (approved but the payment failed), awaiting_approval or executing (still_pending is true: call wait_for_decision again to keep waiting). Never send the payment request to chat again while it is pending."
    )]
    async fn wait_for_decision(
        &self,
        Parameters(p): Parameters<WaitParams>,
    ) -> Result<String, String> {
        let secs = p.timeout_seconds.unwrap_or(DEFAULT_WAIT_SECS);
        if secs > MAX_WAIT_SECS {
            return Err(format!(
                "timeout_seconds must be between 0 and {MAX_WAIT_SECS} (got {secs}); to wait longer, call wait_for_decision again when it returns still_pending"
            ));
        }
        let outcome = self
            .client
            .payment_intents()
            .wait_for_outcome(p.payment_intent_id.trim())
            .timeout(Duration::from_secs(secs))
            .await
            .map_err(sdk_error)?;
        let message = outcome_message(&outcome.intent, outcome.stage, outcome.waited);
        Ok(json_text(serde_json::json!({
            "payment_intent_id": outcome.intent.id,
            "outcome": outcome.stage,
            "final": outcome.is_final(),
            "still_pending": !outcome.is_final(),
            "waited_seconds": outcome.waited.as_secs(),
            "message": message,
            "payment_intent": outcome.intent,
        })))
    }
}
