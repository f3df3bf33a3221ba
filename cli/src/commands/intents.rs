//! `ralio intents show|wait`, and the wait for the owner's decision that `ralio chat --wait`
//! and the interactive session share.
//!
//! Every line this module writes goes through [`emit`] (or [`emit_lines`]), and every spinner
//! message too: the one place to sanitise server text (payee names, reasons) for the terminal.
//! Each call is one line: a newline inside server text is shown as `␊`, never obeyed, so a payee
//! named `Alice\n  status  executed` cannot print a row of its own.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};
use ralio::{IntentStage, TurnIntents};
use ralio::{PaymentIntent, RalioClient};
use tokio::time::Instant;

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
/// through here and [`emit_lines`].
fn emit(to: To<'_>, line: &str) -> Result<(), CliError> {
    // Controls, line breaks and bidi overrides in server text (payee, reference, decision
    // reason) become visible stand-ins: one call, one line.
    write_to(to, &crate::terminal::safe_line(line))
}

/// Writes several lines at once; each is made safe on its own, so only the breaks between them
/// reach the terminal.
fn emit_lines(to: To<'_>, lines: &[String]) -> Result<(), CliError> {
    let text: Vec<_> = lines
        .iter()
        .map(|l| crate::terminal::safe_line(l))
        .collect();
    write_to(to, &text.join("\n"))
}

fn write_to(to: To<'_>, text: &str) -> Result<(), CliError> {
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

/// The most payment intents one lookup walks (newest first) to find an id: a server that
/// claims a billion intents, or never shows the id, costs at most this many items
/// (`LOOKUP_MAX_INTENTS / LOOKUP_PER_PAGE` requests) and the lookup's time.
pub const LOOKUP_MAX_INTENTS: usize = 5_000;
const LOOKUP_PER_PAGE: u64 = 50;
/// How long a lookup may take when nothing else bounds it (`intents show`, the intents a chat
/// turn created when no wait follows).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How far past a wait's deadline a lookup already in flight may run before it is cut: the
/// command returns within the user's timeout plus a second (this, and printing the outcome).
pub const GRACE: Duration = Duration::from_millis(700);
const FIRST_POLL: Duration = Duration::from_millis(500);
const MAX_POLL: Duration = Duration::from_secs(5);

/// `now + d`, or far ahead when that overflows (`--timeout 1000000000h`).
pub fn deadline_in(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

/// The time a wait may take: when it started counting (before the lookups it covers) and its
/// deadline.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When the time started to count.
    pub started: Instant,
    /// When the wait ends, decided or not.
    pub deadline: Instant,
}

impl Window {
    /// A window of `d` from now.
    pub fn new(d: Duration) -> Window {
        Window {
            started: Instant::now(),
            deadline: deadline_in(d),
        }
    }
}

/// When the command promised to be done (a wait's deadline plus a second), if it promised: the
/// end of the command does not wait past it for background work (see `main`).
static PROMISED_END: OnceLock<Instant> = OnceLock::new();

/// See [`PROMISED_END`].
pub fn promised_end() -> Option<Instant> {
    PROMISED_END.get().copied()
}

fn promise(deadline: Instant) {
    let _ = PROMISED_END.set(deadline + Duration::from_secs(1));
}

/// Promises the command ends within `d` from now, plus a second.
pub fn promise_within(d: Duration) {
    promise(deadline_in(d));
}

/// Runs `work` until `cutoff`; past it, [`CliError::TimedOut`] naming `what`.
pub async fn within<T>(
    cutoff: Instant,
    what: impl FnOnce() -> String,
    work: impl Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    let started = Instant::now();
    match tokio::time::timeout_at(cutoff, work).await {
        Ok(result) => result,
        Err(_) => Err(CliError::TimedOut {
            what: what(),
            waited: started.elapsed(),
        }),
    }
}

/// Payment intent `id`: walks the list (newest first) until it meets it, at most
/// [`LOOKUP_MAX_INTENTS`] items and until `cutoff`, whatever `total` the server claims.
pub async fn find(
    client: &RalioClient,
    id: &str,
    cutoff: Instant,
) -> Result<PaymentIntent, CliError> {
    let walk = async {
        let all = client
            .payment_intents()
            .list()
            .per_page(LOOKUP_PER_PAGE)
            .all()
            .take(LOOKUP_MAX_INTENTS);
        let mut all = std::pin::pin!(all);
        let mut walked = 0;
        while let Some(intent) = all.try_next().await? {
            if intent.id == id {
                return Ok(intent);
            }
            walked += 1;
        }
        Err(CliError::IntentNotFound {
            id: id.to_owned(),
            searched: walked,
        })
    };
    within(cutoff, || format!("looking up payment intent {id}"), walk).await
}

/// `ralio intents`, `ralio intents show ID`, `ralio intents wait ID`.
pub async fn run(ctx: &Context, args: IntentsArgs) -> Result<(), CliError> {
    match args.command {
        None => list::run(ctx, Kind::Intents, args.list).await,
        Some(IntentsCommand::Show(args)) => show(ctx, args).await,
        Some(IntentsCommand::Wait(args)) => {
            // The timeout covers everything: opening the store, the first lookup, the polls.
            let window = Window::new(args.timeout);
            promise(window.deadline);
            let cutoff = window.deadline + GRACE;
            let what = || format!("waiting for payment intent {}", args.id);
            let session = within(cutoff, what, ctx.client()).await?;
            let client = &session.client;
            let intent = find(client, &args.id, cutoff).await?;
            wait_all(ctx, client, &[intent], window).await
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
    let intent = find(&session.client, &args.id, deadline_in(LOOKUP_TIMEOUT)).await?;
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
    emit_lines(To::Out, &lines)
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

/// Ctrl-C while waiting: a counter that goes up on each press. A wait stops when it changes.
/// At any other time Ctrl-C stops the command (see [`interrupted`]): `main` then lets a token
/// renewal in flight finish and save the refresh token the server rotated, and exits with 130
/// as the default action would; a second press ends the process at once. The handler, once
/// installed, stays for the life of the process.
struct Interrupts {
    presses: tokio::sync::watch::Receiver<u64>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    stop: tokio::sync::watch::Receiver<bool>,
}

static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();

/// How many tasks run for the life of the process (the Ctrl-C listener, once a wait started
/// it): the end of the command does not wait for them.
pub fn permanent_tasks() -> usize {
    usize::from(INTERRUPTS.get().is_some())
}

fn interrupts() -> &'static Interrupts {
    INTERRUPTS.get_or_init(|| {
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
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
                    if stop_tx.send_replace(true) {
                        std::process::exit(130);
                    }
                    continue;
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Interrupts {
            presses: rx,
            waiting,
            stop,
        }
    })
}

/// Installs the Ctrl-C handler of [`Interrupts`] for the whole command (a press outside a wait
/// no longer kills the process in the middle of a token renewal).
pub fn listen_for_interrupts() {
    let _ = interrupts();
}

/// Resolves when Ctrl-C was pressed outside a wait: the command should stop.
pub async fn interrupted() {
    let mut stop = interrupts().stop.clone();
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        // The listener ended (no signal handling here): never interrupted.
        std::future::pending::<()>().await;
    }
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
    window: Window,
) -> Result<Waited, CliError> {
    let deadline = window.deadline;
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
    let wait = poll_outcome(
        client,
        &intent.id,
        Some(intent.clone()),
        deadline,
        move |i| {
            if lines {
                let _ = emit(To::Err, &status_line(i));
            }
            if let Ok(mut last) = seen.lock() {
                *last = i.clone();
            }
        },
    );
    let interrupts = interrupts();
    interrupts
        .waiting
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _guard = WaitGuard(interrupts);
    let mut presses = interrupts.presses.clone();
    presses.mark_unchanged();
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
                    let left = deadline.saturating_duration_since(Instant::now());
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
        // The time the user gave counts from the window's start (lookups before the wait too).
        Some(Polled { intent, stage, .. }) => Ok(Waited {
            intent,
            stage,
            waited: window.started.elapsed(),
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
                waited: window.started.elapsed(),
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

/// What a poll of one intent ended with.
pub struct Polled {
    /// The intent as last seen.
    pub intent: PaymentIntent,
    /// Its stage.
    pub stage: IntentStage,
    /// How long the polling took.
    pub waited: Duration,
}

/// Polls intent `id` until it reaches a final stage or `deadline` passes, calling `on_change`
/// whenever its statuses change (first on the first poll); `seen` is the intent as already
/// known, if it is. Every lookup is bounded by count ([`find`]) and by the deadline: one in
/// flight when it passes gets [`GRACE`], then the intent as last seen stands (and when none was
/// ever seen, [`CliError::TimedOut`]). A retryable failure of one poll (a 503, a rate limit)
/// does not end the wait while time is left; any other error does.
pub async fn poll_outcome(
    client: &RalioClient,
    id: &str,
    seen: Option<PaymentIntent>,
    deadline: Instant,
    mut on_change: impl FnMut(&PaymentIntent),
) -> Result<Polled, CliError> {
    let started = Instant::now();
    let cutoff = deadline + GRACE;
    let mut interval = FIRST_POLL;
    let mut last = seen;
    let mut statuses = None;
    loop {
        match find(client, id, cutoff).await {
            Ok(intent) => {
                let now = Some((
                    intent.approval_status.clone(),
                    intent.execution_status.clone(),
                ));
                if statuses != now {
                    on_change(&intent);
                    statuses = now;
                }
                last = Some(intent);
            }
            // Cut at the deadline: the intent as last seen is the answer.
            Err(e @ CliError::TimedOut { .. }) => match last {
                Some(_) => break,
                None => return Err(e),
            },
            Err(CliError::Sdk(e)) if e.is_retryable() && Instant::now() + interval < deadline => {
                tracing::debug!(error = %e, "reading the payment intent failed; trying again");
            }
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        let settled = last.as_ref().is_some_and(|i| IntentStage::of(i).is_final());
        if settled || now >= deadline {
            break;
        }
        tokio::time::sleep_until((now + interval).min(deadline)).await;
        interval = (interval * 3 / 2).min(MAX_POLL);
    }
    let Some(intent) = last else {
        return Err(CliError::TimedOut {
            what: format!("looking up payment intent {id}"),
            waited: started.elapsed(),
        });
    };
    Ok(Polled {
        stage: IntentStage::of(&intent),
        intent,
        waited: started.elapsed(),
    })
}

/// Waits for each intent in turn (all within one `window`) and prints each outcome. Fails with
/// [`CliError::Outcome`] (exit 4, 5 or 6) unless all were executed; Ctrl-C stops waiting and
/// reports what is still pending.
pub async fn wait_all(
    ctx: &Context,
    client: &RalioClient,
    intents: &[PaymentIntent],
    window: Window,
) -> Result<(), CliError> {
    let started = window.started;
    let deadline = window.deadline;
    let mut stages = Vec::new();
    let mut interrupted = false;
    let awaiting = intents
        .iter()
        .any(|i| IntentStage::of(i) == IntentStage::AwaitingApproval);
    // Against a sandbox, the person trying this plays the owner: say where, once.
    let mut console = match awaiting {
        true => super::console::owner_hint(ctx).await,
        false => None,
    };
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
                deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .ceil() as u64,
            );
            if !ctx.json && !std::io::stderr().is_terminal() {
                emit(
                    To::Err,
                    &format!("{} (up to {})…", waiting_for(intent), human_duration(left)),
                )?;
            }
            if stage == IntentStage::AwaitingApproval
                && let Some(hint) = console.take()
            {
                emit(To::Err, &hint)?;
            }
            wait_one(ctx, client, intent, window).await?
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

/// After a chat turn: the intents it created, looked up until `cutoff` (the SDK's walk stops at
/// the intents that existed before the turn; a server that never shows them is cut by time).
pub async fn created_in_turn(
    client: &RalioClient,
    turn: &TurnIntents,
    conversation_id: &str,
    cutoff: Instant,
) -> Result<Vec<PaymentIntent>, CliError> {
    let lookup = async {
        Ok(client
            .payment_intents()
            .created_in_turn(turn, conversation_id)
            .await?)
    };
    within(
        cutoff,
        || "looking up the payment intents this message created".to_owned(),
        lookup,
    )
    .await
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
