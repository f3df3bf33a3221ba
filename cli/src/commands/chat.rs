//! `ralio chat`: one message, or an interactive session.

use std::io::{IsTerminal as _, Write as _};

use futures::StreamExt as _;
use owo_colors::OwoColorize as _;
use ralio::{ChatEvent, RalioClient};
use ralio::{IntentStage, TurnIntents};
use tokio::io::AsyncBufReadExt as _;

use super::{intents, note, out, out_json};
use crate::cli::ChatArgs;
use crate::context::Context;
use crate::error::CliError;
use crate::terminal::{safe_line, safe_text};

/// Options of one turn.
struct Turn<'a> {
    client: &'a RalioClient,
    agent: Option<&'a str>,
    stream: bool,
    json: bool,
    timeout: Option<std::time::Duration>,
}

fn flush_stdout() -> Result<(), CliError> {
    std::io::stdout().flush().map_err(|source| CliError::Io {
        action: "write to stdout",
        source,
    })
}

/// A tool event line; `text` holds server text (tool names, errors).
fn tool_line(symbol: &str, text: &str) {
    note(format!("{} {}", symbol.dimmed(), safe_line(text).dimmed()));
}

impl Turn<'_> {
    /// Sends one message, prints the reply, returns the conversation id.
    /// With `watch`, the stream's events are noted in it (the intents they name).
    async fn send(
        &self,
        message: &str,
        conversation: Option<&str>,
        mut watch: Option<&mut TurnIntents>,
    ) -> Result<Option<String>, CliError> {
        if !self.stream {
            let mut req = self.client.chat().send(message);
            if let Some(agent) = self.agent {
                req = req.agent_id(agent);
            }
            if let Some(conv) = conversation {
                req = req.conversation_id(conv);
            }
            if let Some(deadline) = self.timeout {
                req = req.timeout(deadline);
            }
            let reply = req.await?;
            if self.json {
                out_json(&serde_json::json!({
                    "reply": reply.reply,
                    "conversation_id": reply.conversation_id,
                    "new_messages": reply.new_messages,
                }))?;
            } else {
                out(safe_text(&reply.reply))?;
            }
            return Ok(Some(reply.conversation_id));
        }
        let mut req = self.client.chat().stream(message);
        if let Some(agent) = self.agent {
            req = req.agent_id(agent);
        }
        if let Some(conv) = conversation {
            req = req.conversation_id(conv);
        }
        if let Some(deadline) = self.timeout {
            req = req.timeout(deadline);
        }
        let mut events = req.await?;
        let mut conversation_id = conversation.map(str::to_owned);
        let mut printed = false;
        let mut tools = Vec::new();
        let mut stdout = anstream::stdout();
        let write_err = |source| CliError::Io {
            action: "write to stdout",
            source,
        };
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    if printed && !self.json {
                        writeln!(stdout).map_err(write_err)?;
                    }
                    return Err(e.into());
                }
            };
            if let Some(watch) = watch.as_deref_mut() {
                watch.observe(&event);
            }
            match event {
                ChatEvent::Conversation {
                    conversation_id: id,
                    ..
                } => conversation_id = Some(id),
                ChatEvent::ToolStarted(t) => {
                    tools.push(t.tool_name.clone());
                    if !self.json {
                        tool_line("⚙", &format!("{}…", t.tool_name));
                    }
                }
                ChatEvent::ToolCompleted(t) if !self.json => {
                    tool_line("✓", &t.tool_name);
                }
                ChatEvent::ToolFailed(t) if !self.json => {
                    let why = t.error.as_deref().unwrap_or("no reason given");
                    tool_line("✗", &format!("{} failed: {why}", t.tool_name));
                }
                ChatEvent::TextDelta { text, .. } if !self.json => {
                    write!(stdout, "{}", safe_text(&text)).map_err(write_err)?;
                    stdout.flush().map_err(write_err)?;
                    printed = true;
                }
                ChatEvent::Reply(reply) => {
                    if let Some(id) = reply.conversation_id.clone() {
                        conversation_id = Some(id);
                    }
                    if self.json {
                        out_json(&serde_json::json!({
                            "reply": reply.text,
                            "conversation_id": conversation_id,
                            "tools": tools,
                        }))?;
                    } else if printed {
                        writeln!(stdout).map_err(write_err)?;
                    } else {
                        writeln!(stdout, "{}", safe_text(&reply.text)).map_err(write_err)?;
                    }
                    flush_stdout()?;
                    return Ok(conversation_id);
                }
                ChatEvent::Unknown { event, .. } => {
                    tracing::debug!(event, "chat stream event this version does not show");
                }
                _ => {}
            }
        }
        // ChatStream ends with an error when no reply came; reaching here means it ended cleanly.
        Ok(conversation_id)
    }
}

/// Sends the message, or runs an interactive session when there is none.
pub async fn run(ctx: &Context, args: ChatArgs) -> Result<(), CliError> {
    let session = ctx.client().await?;
    let turn = Turn {
        client: &session.client,
        agent: args.agent.as_deref(),
        stream: !args.no_stream,
        json: ctx.json,
        timeout: args.timeout,
    };
    if let Some(message) = args.message {
        let mut watch = match args.wait {
            true => Some(session.client.payment_intents().before_turn().await?),
            false => None,
        };
        let conversation = turn
            .send(&message, args.conversation.as_deref(), watch.as_mut())
            .await?;
        if let (Some(id), false) = (&conversation, ctx.json) {
            note(format!(
                "{}",
                format!(
                    "conversation {id} (continue with --conversation {id})",
                    id = safe_line(id)
                )
                .dimmed()
            ));
        }
        if let (Some(watch), Some(id)) = (watch, conversation) {
            let created = intents::created_in_turn(&session.client, &watch, &id).await?;
            if created.is_empty() {
                return intents::note_none(ctx);
            }
            return intents::wait_all(ctx, &session.client, &created, args.wait_timeout).await;
        }
        return Ok(());
    }
    let waiting = Waiting {
        always: args.wait,
        timeout: args.wait_timeout,
    };
    interactive(ctx, &turn, args.conversation, waiting).await
}

/// What the interactive session does when a turn creates payment intents.
struct Waiting {
    /// `--wait`: wait for every intent a turn created, without asking.
    always: bool,
    /// `--timeout`.
    timeout: std::time::Duration,
}

async fn interactive(
    ctx: &Context,
    turn: &Turn<'_>,
    mut conversation: Option<String>,
    waiting: Waiting,
) -> Result<(), CliError> {
    let terminal = std::io::stdin().is_terminal();
    // At a terminal a turn that leaves a payment pending asks whether to wait for the decision.
    let ask = terminal && !ctx.json && !waiting.always;
    if terminal && !ctx.json {
        note(format!(
            "{}",
            "Talking to the agent. An empty line does nothing; /exit or Ctrl-D ends the session."
                .dimmed()
        ));
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        if terminal && !ctx.json {
            let mut err = anstream::stderr();
            let _ = write!(err, "{} ", "you>".bold());
            let _ = err.flush();
        }
        let line = lines.next_line().await.map_err(|source| CliError::Io {
            action: "read the message from stdin",
            source,
        })?;
        let Some(line) = line else { break };
        let message = line.trim();
        if message.is_empty() {
            continue;
        }
        if matches!(message, "/exit" | "/quit") {
            break;
        }
        let mut watch = None;
        if ask || waiting.always {
            match turn.client.payment_intents().before_turn().await {
                Ok(w) => watch = Some(w),
                // Asking is a convenience: without `transactions:read` the session goes on.
                Err(e) if ask => tracing::debug!(error = %e, "cannot list payment intents"),
                Err(e) => return Err(e.into()),
            }
        }
        let result = match turn
            .send(message, conversation.as_deref(), watch.as_mut())
            .await
        {
            Ok(Some(id)) => {
                conversation = Some(id.clone());
                match watch {
                    Some(watch) => {
                        after_turn(ctx, turn, &watch, &id, &waiting, ask, &mut lines).await
                    }
                    None => Ok(()),
                }
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {}
            // The outcome of a wait is printed already; the session goes on.
            Err(CliError::Outcome { .. }) => {}
            // At a terminal one failed message does not end the session; a script stops.
            Err(e) if terminal => crate::error::report(&e, ctx.json),
            Err(e) => return Err(e),
        }
    }
    if let (Some(id), false) = (conversation, ctx.json) {
        note(format!(
            "{}",
            format!(
                "conversation {id} (continue with --conversation {id})",
                id = safe_line(&id)
            )
            .dimmed()
        ));
    }
    Ok(())
}

/// After a turn of the session: wait for the intents it created (`--wait`), or ask whether to
/// when some are pending.
async fn after_turn(
    ctx: &Context,
    turn: &Turn<'_>,
    watch: &TurnIntents,
    conversation_id: &str,
    waiting: &Waiting,
    ask: bool,
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
) -> Result<(), CliError> {
    let created = intents::created_in_turn(turn.client, watch, conversation_id).await?;
    if waiting.always {
        if created.is_empty() {
            return intents::note_none(ctx);
        }
        return intents::wait_all(ctx, turn.client, &created, waiting.timeout).await;
    }
    let pending: Vec<_> = created
        .into_iter()
        .filter(|i| !IntentStage::of(i).is_final())
        .collect();
    if !ask || pending.is_empty() {
        return Ok(());
    }
    intents::ask_to_wait(&pending)?;
    let answer = lines.next_line().await.map_err(|source| CliError::Io {
        action: "read the answer from stdin",
        source,
    })?;
    let yes = match answer.as_deref().map(str::trim) {
        None => false,
        Some(a) => a.is_empty() || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes"),
    };
    if !yes {
        return intents::note_not_waiting(&pending);
    }
    intents::wait_all(ctx, turn.client, &pending, waiting.timeout).await
}
