//! `ralio chat`: one message, or an interactive session.

use std::io::{IsTerminal as _, Write as _};

use futures::StreamExt as _;
use owo_colors::OwoColorize as _;
use ralio::{ChatEvent, RalioClient};
use tokio::io::AsyncBufReadExt as _;

use super::{note, out, out_json};
use crate::cli::ChatArgs;
use crate::context::Context;
use crate::error::CliError;

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

fn tool_line(symbol: &str, text: &str) {
    note(format!("{} {}", symbol.dimmed(), text.dimmed()));
}

impl Turn<'_> {
    /// Sends one message, prints the reply, returns the conversation id.
    async fn send(
        &self,
        message: &str,
        conversation: Option<&str>,
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
                out(&reply.reply)?;
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
            match event {
                ChatEvent::Conversation {
                    conversation_id: id,
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
                ChatEvent::TextDelta { text } if !self.json => {
                    write!(stdout, "{text}").map_err(write_err)?;
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
                        writeln!(stdout, "{}", reply.text).map_err(write_err)?;
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
        let conversation = turn.send(&message, args.conversation.as_deref()).await?;
        if let (Some(id), false) = (conversation, ctx.json) {
            note(format!(
                "{}",
                format!("conversation {id} (continue with --conversation {id})").dimmed()
            ));
        }
        return Ok(());
    }
    interactive(ctx, &turn, args.conversation).await
}

async fn interactive(
    ctx: &Context,
    turn: &Turn<'_>,
    mut conversation: Option<String>,
) -> Result<(), CliError> {
    let terminal = std::io::stdin().is_terminal();
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
        match turn.send(message, conversation.as_deref()).await {
            Ok(Some(id)) => conversation = Some(id),
            Ok(None) => {}
            // At a terminal one failed message does not end the session; a script stops.
            Err(e) if terminal => crate::error::report(&e, ctx.json),
            Err(e) => return Err(e),
        }
    }
    if let (Some(id), false) = (conversation, ctx.json) {
        note(format!(
            "{}",
            format!("conversation {id} (continue with --conversation {id})").dimmed()
        ));
    }
    Ok(())
}
