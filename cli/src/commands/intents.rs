//! `ralio intents show|wait`, and the wait for the owner's decision that `ralio chat --wait`
//! and the interactive session share.
//!
//! Every line this module writes goes through [`emit`], and every spinner message too: the one
//! place to sanitise server text (payee names, reasons) for the terminal.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ralio::{IntentOutcome, IntentStage, TurnIntents};
use ralio::{PaymentIntent, RalioClient};

use super::{human_duration, note, out, out_json};
use crate::cli::{IntentIdArgs, IntentsArgs, IntentsCommand};
use crate::commands::list::{self, Kind};
use crate::context::Context;
use crate::error::{self, CliError};

/// Where a line goes.
enum To<'a> {
    /// stdout: the result.
    Out,
    /// stderr: progress and notes.
    Err,
    /// The spinner's message (stderr, redrawn).
    Spinner(&'a ProgressBar),
    /// A question on stderr, without a newline.
    Prompt,
}

/// Writes one line (or sets the spinner's message). Server text reaches the terminal only
/// through here.
fn emit(to: To<'_>, text: &str) -> Result<(), CliError> {
    // Controls and bidi overrides in server text (payee, reference, decision reason) become
    // visible stand-ins; the line breaks this module puts between lines stay.
    let text = &*crate::terminal::safe_text(text);
    match to {
        To::Out => out(text),
        To::Err => {
            note(text);
            Ok(())
        }
        To::Spinner(bar) => {
            bar.set_message(text.to_owned());
            Ok(())
        }
        To::Prompt => {
            use std::io::Write as _;
            let mut err = anstream::stderr();
            let _ = write!(err, "{text}");
            let _ = err.flush();
            Ok(())
        }
    }
}

/// `ralio intents`, `ralio intents show ID`, `ralio intents wait ID`.
pub async fn run(ctx: &Context, args: IntentsArgs) -> Result<(), CliError> {
    match args.command {
        None => list::run(ctx, Kind::Intents, args.list).await,
        Some(IntentsCommand::Show(args)) => show(ctx, args).await,
        Some(IntentsCommand::Wait(args)) => {
            let session = ctx.client().await?;
            let client = &session.client;
            let intent = client.payment_intents().get(&args.id).await?;
            wait_all(ctx, client, &[intent], args.timeout).await
        }
    }
}

/// The intent as JSON: the API's fields, plus `stage`.
fn intent_json(intent: &PaymentIntent) -> serde_json::Value {
    let mut value = serde_json::to_value(intent).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("stage".into(), IntentStage::of(intent).as_str().into());
    }
    value
}

/// `GBP 250.00 to Erin` (payees of every leg).
pub fn summary(intent: &PaymentIntent) -> String {
    let payees: Vec<&str> = intent
        .instructions
        .iter()
        .filter_map(|i| i.creditor_name.as_deref().or(i.creditor_account.as_deref()))
        .collect();
    let to = if payees.is_empty() {
        String::new()
    } else {
        format!(" to {}", payees.join(", "))
    };
    format!("{} {}{to}", intent.currency, intent.total_amount)
}

fn or_dash(s: Option<&str>) -> &str {
    match s {
        None | Some("") => "-",
        Some(s) => s,
    }
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

async fn show(ctx: &Context, args: IntentIdArgs) -> Result<(), CliError> {
    let session = ctx.client().await?;
    let intent = session.client.payment_intents().get(&args.id).await?;
    if ctx.json {
        return out_json(&intent_json(&intent));
    }
    let agent = match intent.agent_name.as_deref() {
        Some(name) if !name.is_empty() => format!("{name} ({})", intent.agent_id),
        _ => intent.agent_id.clone(),
    };
    let legs = if intent.instruction_count == 1 {
        "1 leg".to_owned()
    } else {
        format!("{} legs", intent.instruction_count)
    };
    let mut lines = vec![
        format!("payment intent {}", intent.id),
        format!(
            "  amount        {} {} ({legs})",
            intent.currency, intent.total_amount
        ),
        format!("  stage         {}", IntentStage::of(&intent)),
        format!("  approval      {}", intent.approval_status),
        format!("  execution     {}", intent.execution_status),
        format!(
            "  reason        {}",
            or_dash(intent.decision_reason.as_deref())
        ),
        format!("  created       {}", time(intent.created_at)),
        format!("  decided       {}", time(intent.decided_at)),
        format!("  agent         {agent}"),
        format!(
            "  conversation  {}",
            or_dash(intent.conversation_id.as_deref())
        ),
        format!(
            "  request       {}",
            or_dash(intent.user_request_summary.as_deref())
        ),
        format!(
            "  alignment     {}",
            or_dash(intent.alignment_outcome.as_deref())
        ),
    ];
    for (n, leg) in intent.instructions.iter().enumerate() {
        lines.push(format!("leg {}", n + 1));
        lines.push(format!("  amount        {} {}", leg.currency, leg.amount));
        let payee = match (
            leg.creditor_name.as_deref(),
            leg.creditor_account.as_deref(),
        ) {
            (Some(name), Some(account)) => format!("{name} ({account})"),
            (name, account) => or_dash(name.or(account)).to_owned(),
        };
        lines.push(format!("  payee         {payee}"));
        let payer = match (leg.debtor_name.as_deref(), leg.debtor_account.as_deref()) {
            (Some(name), Some(account)) => format!("{name} ({account})"),
            (name, account) => or_dash(name.or(account)).to_owned(),
        };
        lines.push(format!("  from          {payer}"));
        lines.push(format!(
            "  reference     {}",
            or_dash(leg.reference.as_deref())
        ));
        lines.push(format!("  status        {}", leg.status));
        let tx = match (&leg.transaction_id, &leg.transaction_status) {
            (Some(id), Some(status)) => format!("{id} ({status})"),
            (Some(id), None) => id.clone(),
            (None, _) => "-".to_owned(),
        };
        lines.push(format!("  transaction   {tx}"));
        if let Some(e) = leg.execution_error.as_deref().filter(|e| !e.is_empty()) {
            lines.push(format!("  error         {e}"));
        }
    }
    emit(To::Out, &lines.join("\n"))
}

/// The exit code of one outcome (0, or 4, 5, 6 as `ralio intents wait --help` documents).
fn exit_code(stage: IntentStage) -> u8 {
    match stage {
        IntentStage::Executed => error::EXIT_OK,
        IntentStage::Rejected => error::EXIT_REJECTED,
        IntentStage::ExecutionFailed => error::EXIT_EXECUTION_FAILED,
        _ => error::EXIT_STILL_PENDING,
    }
}

/// What the wait is for, in words.
fn waiting_for(intent: &PaymentIntent) -> String {
    match IntentStage::of(intent) {
        IntentStage::Executing => format!(
            "{} ({}) is approved; waiting for it to execute ({})",
            intent.id,
            summary(intent),
            intent.execution_status
        ),
        _ => format!(
            "waiting for the owner to approve or reject {} ({})",
            intent.id,
            summary(intent)
        ),
    }
}

/// One line of the non-terminal progress: the statuses as they changed.
fn status_line(intent: &PaymentIntent) -> String {
    format!(
        "{}: {} (approval {}, execution {})",
        intent.id,
        IntentStage::of(intent),
        intent.approval_status,
        intent.execution_status
    )
}

/// Why a failed payment failed: the legs' errors, else the execution status.
fn failure_reason(intent: &PaymentIntent) -> String {
    let errors: Vec<&str> = intent
        .instructions
        .iter()
        .filter_map(|i| i.execution_error.as_deref())
        .filter(|e| !e.is_empty())
        .collect();
    if errors.is_empty() {
        format!("execution {}", intent.execution_status)
    } else {
        errors.join("; ")
    }
}

/// The result line of a wait.
fn outcome_text(
    intent: &PaymentIntent,
    stage: IntentStage,
    waited: Duration,
    interrupted: bool,
) -> String {
    let id = &intent.id;
    let what = summary(intent);
    let reason = intent
        .decision_reason
        .as_deref()
        .filter(|r| !r.is_empty())
        .unwrap_or("no reason given");
    match stage {
        IntentStage::Executed => format!("{id} approved and executed: {what} ({reason})"),
        IntentStage::Rejected => format!("{id} rejected: {reason}; nothing was paid ({what})"),
        IntentStage::ExecutionFailed => format!(
            "{id} approved, but the payment failed: {} ({what})",
            failure_reason(intent)
        ),
        IntentStage::Executing | IntentStage::AwaitingApproval => {
            let state = if stage == IntentStage::Executing {
                format!(
                    "is approved but not executed yet ({})",
                    intent.execution_status
                )
            } else {
                "is still pending approval".to_owned()
            };
            let when = if interrupted {
                "stopped waiting".to_owned()
            } else {
                format!("after {}", human_duration(waited))
            };
            format!("{when}: {id} {state} ({what}); `ralio intents wait {id}` waits again")
        }
        _ => format!("{id}: {stage}"),
    }
}

/// Ctrl-C while waiting: a counter that goes up on each press. A wait stops when it changes;
/// at any other time Ctrl-C ends the process with 130 as the default action would (a signal
/// handler, once installed, stays for the life of the process).
struct Interrupts {
    presses: tokio::sync::watch::Receiver<u64>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

fn interrupts() -> &'static Interrupts {
    static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();
    INTERRUPTS.get_or_init(|| {
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waits = Arc::clone(&waiting);
        // On Unix the handler is in place before the first wait starts (`ctrl_c()` would
        // install it only when its task first runs).
        #[cfg(unix)]
        let mut sigint =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        tokio::spawn(async move {
            loop {
                #[cfg(unix)]
                let pressed = match sigint.as_mut() {
                    Some(s) => s.recv().await.is_some(),
                    None => tokio::signal::ctrl_c().await.is_ok(),
                };
                #[cfg(not(unix))]
                let pressed = tokio::signal::ctrl_c().await.is_ok();
                if !pressed {
                    break;
                }
                if waits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    std::process::exit(130);
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Interrupts {
            presses: rx,
            waiting,
        }
    })
}

/// Marks a wait in progress for [`Interrupts`] while it lives.
struct WaitGuard(&'static Interrupts);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// How one wait ended.
struct Waited {
    intent: PaymentIntent,
    stage: IntentStage,
    waited: Duration,
    interrupted: bool,
}

/// Waits for one intent's outcome: a spinner on a terminal, else one line per status change on
/// stderr (nothing with --json). Ctrl-C stops the wait and returns the intent as last seen.
async fn wait_one(
    ctx: &Context,
    client: &RalioClient,
    intent: &PaymentIntent,
    timeout: Duration,
) -> Result<Waited, CliError> {
    let terminal = std::io::stderr().is_terminal() && !ctx.json;
    let spinner = terminal.then(|| {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let last = Arc::new(Mutex::new(intent.clone()));
    let seen = Arc::clone(&last);
    let lines = !terminal && !ctx.json;
    let wait = client
        .payment_intents()
        .wait_for_outcome(&intent.id)
        .timeout(timeout)
        .on_change(move |i| {
            if lines {
                let _ = emit(To::Err, &status_line(i));
            }
            if let Ok(mut last) = seen.lock() {
                *last = i.clone();
            }
        })
        .into_future();
    let interrupts = interrupts();
    interrupts
        .waiting
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _guard = WaitGuard(interrupts);
    let mut presses = interrupts.presses.clone();
    presses.mark_unchanged();
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut wait = std::pin::pin!(wait);
    let result = loop {
        tokio::select! {
            outcome = &mut wait => break outcome.map(Some),
            changed = presses.changed() => {
                if changed.is_ok() {
                    break Ok(None);
                }
            }
            _ = tick.tick() => {
                if let Some(bar) = &spinner {
                    let current = last.lock().map(|l| l.clone()).unwrap_or_else(|_| intent.clone());
                    let left = timeout.saturating_sub(started.elapsed());
                    emit(To::Spinner(bar), &format!(
                        "{} ({} left; Ctrl-C stops waiting)",
                        waiting_for(&current),
                        human_duration(left)
                    ))?;
                }
            }
        }
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    match result? {
        Some(IntentOutcome {
            intent,
            stage,
            waited,
            ..
        }) => Ok(Waited {
            intent,
            stage,
            waited,
            interrupted: false,
        }),
        None => {
            let intent = last
                .lock()
                .map(|l| l.clone())
                .unwrap_or_else(|_| intent.clone());
            Ok(Waited {
                stage: IntentStage::of(&intent),
                intent,
                waited: started.elapsed(),
                interrupted: true,
            })
        }
    }
}

fn report_outcome(ctx: &Context, w: &Waited) -> Result<(), CliError> {
    if ctx.json {
        return out_json(&serde_json::json!({
            "payment_intent_id": w.intent.id,
            "outcome": w.stage,
            "final": w.stage.is_final(),
            "interrupted": w.interrupted,
            "waited_secs": w.waited.as_secs(),
            "exit_code": exit_code(w.stage),
            "payment_intent": intent_json(&w.intent),
        }));
    }
    emit(
        To::Out,
        &outcome_text(&w.intent, w.stage, w.waited, w.interrupted),
    )
}

/// Waits for each intent in turn (within one overall `timeout`) and prints each outcome. Fails
/// with [`CliError::Outcome`] (exit 4, 5 or 6) unless all were executed; Ctrl-C stops waiting
/// and reports what is still pending.
pub async fn wait_all(
    ctx: &Context,
    client: &RalioClient,
    intents: &[PaymentIntent],
    timeout: Duration,
) -> Result<(), CliError> {
    let started = tokio::time::Instant::now();
    let mut stages = Vec::new();
    let mut interrupted = false;
    for intent in intents {
        let stage = IntentStage::of(intent);
        let waited = if interrupted || stage.is_final() {
            Waited {
                intent: intent.clone(),
                stage,
                waited: started.elapsed(),
                interrupted,
            }
        } else {
            // Whole seconds, rounded up: "up to 10m 00s", not "up to 9m 59s".
            let left = Duration::from_secs(
                timeout
                    .saturating_sub(started.elapsed())
                    .as_secs_f64()
                    .ceil() as u64,
            );
            if !ctx.json && !std::io::stderr().is_terminal() {
                emit(
                    To::Err,
                    &format!("{} (up to {})…", waiting_for(intent), human_duration(left)),
                )?;
            }
            wait_one(ctx, client, intent, left).await?
        };
        interrupted |= waited.interrupted;
        report_outcome(ctx, &waited)?;
        stages.push(waited.stage);
    }
    let code = [
        error::EXIT_EXECUTION_FAILED,
        error::EXIT_REJECTED,
        error::EXIT_STILL_PENDING,
    ]
    .into_iter()
    .find(|code| stages.iter().any(|s| exit_code(*s) == *code));
    match code {
        None => Ok(()),
        Some(code) => Err(CliError::Outcome {
            code,
            summary: format!(
                "{} of {} payment intent(s) not executed",
                stages
                    .iter()
                    .filter(|s| **s != IntentStage::Executed)
                    .count(),
                stages.len()
            ),
        }),
    }
}

/// After a chat turn: the intents it created, or a note that there were none.
pub async fn created_in_turn(
    client: &RalioClient,
    turn: &TurnIntents,
    conversation_id: &str,
) -> Result<Vec<PaymentIntent>, CliError> {
    Ok(client
        .payment_intents()
        .created_in_turn(turn, conversation_id)
        .await?)
}

/// Says that a turn created no payment intent (nothing to wait for).
pub fn note_none(ctx: &Context) -> Result<(), CliError> {
    if ctx.json {
        return Ok(());
    }
    emit(
        To::Err,
        "no payment intent was created by this message; nothing to wait for",
    )
}

/// Asks the interactive session's question when a turn left intents pending.
pub fn ask_to_wait(pending: &[PaymentIntent]) -> Result<(), CliError> {
    let what: Vec<String> = pending
        .iter()
        .map(|i| format!("{} ({})", i.id, summary(i)))
        .collect();
    let verb = if pending.len() == 1 { "is" } else { "are" };
    emit(
        To::Prompt,
        &format!(
            "{} {verb} pending approval. wait for the decision? [Y/n] ",
            what.join(", ")
        ),
    )
}

/// Says the session goes on without waiting.
pub fn note_not_waiting(pending: &[PaymentIntent]) -> Result<(), CliError> {
    for intent in pending {
        emit(
            To::Err,
            &format!(
                "not waiting; `ralio intents wait {}` waits for it later",
                intent.id
            ),
        )?;
    }
    Ok(())
}
