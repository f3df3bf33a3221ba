//! Streaming chat: `cargo run --example streaming [message]`.
//!
//! Prints every event as it arrives: text as it is written, tool calls on their own lines,
//! events this SDK version does not know yet by name. Runs on the embedded sandbox unless
//! `RALIO_API_URL` is set (see `quickstart.rs`).

mod common;

use std::io::Write;

use futures::StreamExt;
use ralio::ChatEvent;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (client, _target) = common::connect().await?;
    let message = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Pay £25 to Bob for the April invoice".to_owned());
    println!("> {message}");

    let mut stream = client.chat().stream(&message).await?;
    let mut conversation = None;
    while let Some(event) = stream.next().await {
        // A cut connection, an `error` event or a silent connection end the stream with an
        // error here, never with a silent end: the agent may have acted, so check the payment
        // intents before sending the message again.
        match event? {
            ChatEvent::Conversation {
                conversation_id, ..
            } => conversation = Some(conversation_id),
            ChatEvent::ToolStarted(tool) => println!("\n[tool] {} …", tool.tool_name),
            ChatEvent::ToolCompleted(tool) => println!("[tool] {} done", tool.tool_name),
            ChatEvent::ToolFailed(tool) => {
                println!(
                    "[tool] {} failed: {}",
                    tool.tool_name,
                    tool.error.as_deref().unwrap_or("no reason given")
                )
            }
            ChatEvent::TextDelta { text, .. } => {
                print!("{text}");
                std::io::stdout().flush()?;
            }
            ChatEvent::Reply(reply) => println!(
                "\n[reply complete: {} characters]",
                reply.text.chars().count()
            ),
            ChatEvent::Unknown { event, .. } => println!("[event {event}]"),
            _ => {}
        }
    }

    // Continue the same conversation, collecting the reply without printing the events.
    if let Some(id) = conversation {
        let reply = client
            .chat()
            .stream("What is my current balance?")
            .conversation_id(id)
            .await?
            .final_reply()
            .await?;
        println!("> What is my current balance?\n{}", reply.text);
    }
    Ok(())
}
