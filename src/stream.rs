//! Typed chat events over the server-sent-events byte stream of `POST /api/chat/stream`.
//!
//! The SSE framing is parsed by the [`eventsource_stream`] crate; this module adds what a chat
//! needs on top: typed events, an `error` event surfaced as an error, a connection cut before
//! the final `reply` surfaced as an error (never a silent end), and a read-idle timeout that
//! catches a dead connection. Dropping a [`ChatStream`] drops the response body, which closes
//! the connection and so cancels the request.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

pub use crate::error::StreamError;
use crate::error::{Error, Result};

/// One event of a streamed chat reply.
///
/// Events the SDK does not know yet arrive as [`ChatEvent::Unknown`], so a server that adds
/// events never breaks a client; match with a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// The conversation this exchange belongs to (first event of a stream).
    #[non_exhaustive]
    Conversation {
        /// Pass it to the next message to continue the conversation.
        conversation_id: String,
    },
    /// The agent started a tool (for example a balance lookup or a payment).
    ToolStarted(ToolEvent),
    /// A tool finished.
    ToolCompleted(ToolEvent),
    /// A tool failed; [`ToolEvent::error`] says why when the server said.
    ToolFailed(ToolEvent),
    /// A piece of the reply text, to print as it arrives.
    #[non_exhaustive]
    TextDelta {
        /// The text fragment.
        text: String,
    },
    /// The final reply: the last event of a successful stream.
    Reply(StreamedReply),
    /// An event this version of the SDK does not know, passed through untouched.
    #[non_exhaustive]
    Unknown {
        /// The SSE event name.
        event: String,
        /// The raw data (joined `data:` lines).
        data: String,
    },
}

/// A tool event: which tool, and everything the server sent with it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolEvent {
    /// The tool's name (for example `get_balance`, `create_payment`).
    pub tool_name: String,
    /// The failure reason of a `tool_failed` event, when given.
    pub error: Option<String>,
    /// The whole event data as sent, including fields not modelled here.
    pub data: Value,
}

/// The final reply of a chat stream.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct StreamedReply {
    /// The complete reply text.
    pub text: String,
    /// The conversation id, from the `reply` event or the earlier `conversation` event.
    pub conversation_id: Option<String>,
    /// The names of the tools the agent used, in order (from `tool_started` events), up to
    /// [`MAX_KEPT_TOOL_NAME_BYTES`] of them.
    pub tools: Vec<String>,
    /// The `reply` event's data as sent, including fields not modelled here.
    pub data: Value,
}

impl ToolEvent {
    /// The payment intent this tool event is about (`payment_intent_id` in its data), when the
    /// server names one. The sandbox does on `tool_completed` / `tool_failed` of
    /// `create_payment_intent`; the API does not promise it.
    pub fn payment_intent_id(&self) -> Option<&str> {
        payment_intent_id(&self.data)
    }
}

impl StreamedReply {
    /// The payment intent the reply event names (`payment_intent_id` in its data), when the
    /// server sends one.
    pub fn payment_intent_id(&self) -> Option<&str> {
        payment_intent_id(&self.data)
    }
}

fn payment_intent_id(data: &Value) -> Option<&str> {
    data.get("payment_intent_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// How many events one chat turn may deliver before its stream ends with
/// [`StreamError::TooManyEvents`], unless [`ChatStream::with_max_events`] or
/// [`StreamMessage::max_events`](crate::resources::StreamMessage::max_events) says otherwise. A
/// real turn sends a few per tool and one per piece of text.
pub const DEFAULT_MAX_EVENTS: usize = 10_000;

/// The most bytes of tool names a stream keeps for [`StreamedReply::tools`]; names past it are
/// still delivered as [`ChatEvent::ToolStarted`] events, but not kept.
pub const MAX_KEPT_TOOL_NAME_BYTES: usize = 64 * 1024;

/// The largest chat event (all its lines) the SDK buffers. Real events are a few KiB; the SSE
/// parser keeps an event in memory until its blank line, so without a cap a server could make
/// it grow without bound.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Error of the byte-level adapter below.
#[derive(Debug)]
enum ByteError {
    Idle(Duration),
    TooLarge(usize),
    Transport(Box<dyn StdError + Send + Sync + 'static>),
}

impl std::fmt::Display for ByteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ByteError::Idle(d) => write!(f, "idle for {d:?}"),
            ByteError::TooLarge(limit) => write!(f, "an event over {limit} bytes"),
            ByteError::Transport(_) => f.write_str("transport error"),
        }
    }
}

pin_project_lite::pin_project! {
    /// Wraps the response bytes: a read-idle timer reset by every chunk (keep-alive comments
    /// included), and a blank line appended at a clean end so a record still open at the end of
    /// the stream is delivered (PROTOCOL.md).
    struct Bytestream<S> {
        #[pin]
        inner: S,
        idle: Option<Duration>,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        at_eof: Arc<AtomicBool>,
        waiting: bool,
        finished: bool,
        // Size of the event being received (bytes since the last blank line) and the line
        // state needed to find blank lines across chunks (`\n`, `\r\n` or `\r` endings).
        event_bytes: usize,
        line_empty: bool,
        last_cr: bool,
    }
}

/// Advances the blank-line tracking over `chunk`; returns the size of the open event.
fn track_event_size(
    chunk: &[u8],
    event_bytes: &mut usize,
    line_empty: &mut bool,
    last_cr: &mut bool,
) -> usize {
    for &b in chunk {
        match b {
            b'\n' if *last_cr => *last_cr = false,
            b'\n' | b'\r' => {
                *last_cr = b == b'\r';
                if *line_empty {
                    *event_bytes = 0;
                }
                *line_empty = true;
            }
            _ => {
                *last_cr = false;
                *line_empty = false;
                *event_bytes += 1;
            }
        }
    }
    *event_bytes
}

impl<S, E> Stream for Bytestream<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    type Item = std::result::Result<Bytes, ByteError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.finished {
            return Poll::Ready(None);
        }
        match this.inner.poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                *this.waiting = false;
                let open =
                    track_event_size(&chunk, this.event_bytes, this.line_empty, this.last_cr);
                if open > MAX_EVENT_BYTES {
                    *this.finished = true;
                    return Poll::Ready(Some(Err(ByteError::TooLarge(MAX_EVENT_BYTES))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.finished = true;
                Poll::Ready(Some(Err(ByteError::Transport(e.into()))))
            }
            Poll::Ready(None) => {
                *this.finished = true;
                this.at_eof.store(true, Ordering::Release);
                Poll::Ready(Some(Ok(Bytes::from_static(b"\n\n"))))
            }
            Poll::Pending => {
                let Some(idle) = *this.idle else {
                    return Poll::Pending;
                };
                // Idle time counts from when the stream starts waiting, not from the last
                // chunk, so a consumer that is slow to poll does not trip it. Created on first
                // use, so building a stream needs no runtime.
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if !*this.waiting {
                    *this.waiting = true;
                    timer.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    *this.finished = true;
                    return Poll::Ready(Some(Err(ByteError::Idle(idle))));
                }
                Poll::Pending
            }
        }
    }
}

type SseEvents = Pin<
    Box<
        dyn Stream<
                Item = std::result::Result<eventsource_stream::Event, EventStreamError<ByteError>>,
            > + Send,
    >,
>;

/// A stream of [`ChatEvent`]s; the item type is `Result<ChatEvent, ralio::Error>`.
///
/// It ends after the [`ChatEvent::Reply`] event, or with one error item (an `error` event, a
/// cut connection, a read-idle timeout). Dropping it closes the connection.
#[must_use = "a chat stream does nothing unless polled"]
pub struct ChatStream {
    events: SseEvents,
    at_eof: Arc<AtomicBool>,
    seen: usize,
    conversation_id: Option<String>,
    tools: Vec<String>,
    /// Bytes of the names in `tools`.
    tool_bytes: usize,
    max_events: usize,
    done: bool,
    /// The turn's total deadline: the timer and the duration it was set for.
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("events_seen", &self.seen)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// Parse chat events from an SSE byte stream, for example a response body.
    ///
    /// `read_idle` ends the stream with [`StreamError::IdleTimeout`] when no byte arrives for
    /// that long (keep-alive comments count as bytes). `None` waits forever. Needs a Tokio
    /// runtime for the timer.
    pub fn from_bytes<S, E>(bytes: S, read_idle: Option<Duration>) -> Self
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        let at_eof = Arc::new(AtomicBool::new(false));
        let adapter = Bytestream {
            inner: bytes,
            idle: read_idle,
            timer: None,
            waiting: false,
            at_eof: Arc::clone(&at_eof),
            finished: false,
            event_bytes: 0,
            line_empty: true,
            last_cr: false,
        };
        ChatStream {
            events: Box::pin(adapter.eventsource()),
            at_eof,
            seen: 0,
            conversation_id: None,
            tools: Vec::new(),
            tool_bytes: 0,
            max_events: DEFAULT_MAX_EVENTS,
            done: false,
            deadline: None,
        }
    }

    /// Ends the stream with [`StreamError::TooManyEvents`] when more than `max` events arrive
    /// before the final reply (default [`DEFAULT_MAX_EVENTS`]; at least 1).
    pub fn with_max_events(mut self, max: usize) -> Self {
        self.max_events = max.max(1);
        self
    }

    /// Ends the stream with [`StreamError::DeadlineExceeded`] if it has not delivered its
    /// final reply within `deadline` from now, whatever arrives meanwhile (keep-alive comments
    /// included, which the read-idle timeout counts as activity). Needs a Tokio runtime.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        self.with_deadline_at(deadline_from_now(deadline), deadline)
    }

    /// [`with_deadline`](Self::with_deadline) with the turn's start time (the request was sent
    /// at `at - deadline`).
    pub(crate) fn with_deadline_at(mut self, at: tokio::time::Instant, deadline: Duration) -> Self {
        self.deadline = Some((Box::pin(tokio::time::sleep_until(at)), deadline));
        self
    }

    /// Drive the stream to its end and return the final reply, ignoring the other events.
    pub async fn final_reply(self) -> Result<StreamedReply> {
        collect_reply(self).await
    }
}

/// `now + d`, or a point decades away when that is past what an `Instant` holds (a deadline
/// set to `Duration::MAX` means "no deadline", never a panic).
pub(crate) fn deadline_from_now(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

/// Drive any chat event stream to its end and return the final reply.
///
/// Fails with the stream's error, or with [`StreamError::Cut`] if the stream ends without a
/// reply.
pub async fn collect_reply<S>(stream: S) -> Result<StreamedReply>
where
    S: Stream<Item = Result<ChatEvent>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut seen = 0;
    while let Some(event) = stream.next().await {
        seen += 1;
        if let ChatEvent::Reply(reply) = event? {
            return Ok(reply);
        }
    }
    Err(StreamError::Cut { events: seen }.into())
}

#[derive(Deserialize)]
struct ConversationData {
    conversation_id: String,
}

#[derive(Deserialize)]
struct ToolData {
    tool_name: String,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct TextData {
    text: String,
}

#[derive(Deserialize)]
struct ReplyData {
    #[serde(default)]
    text: String,
    #[serde(default)]
    conversation_id: Option<String>,
}

impl ChatStream {
    fn decode(
        &mut self,
        event: eventsource_stream::Event,
    ) -> std::result::Result<ChatEvent, StreamError> {
        let name = event.event;
        let data = event.data;
        let malformed = |name: &str, source| {
            if self.at_eof.load(Ordering::Acquire) {
                // The last record was cut mid-way: report the cut, not a parse error.
                StreamError::Cut { events: self.seen }
            } else {
                StreamError::Malformed {
                    event: name.to_owned(),
                    source,
                }
            }
        };
        Ok(match name.as_str() {
            "conversation" => {
                let d: ConversationData =
                    serde_json::from_str(&data).map_err(|e| malformed(&name, e))?;
                self.conversation_id = Some(d.conversation_id.clone());
                ChatEvent::Conversation {
                    conversation_id: d.conversation_id,
                }
            }
            "tool_started" | "tool_completed" | "tool_failed" => {
                let value: Value = serde_json::from_str(&data).map_err(|e| malformed(&name, e))?;
                let d: ToolData =
                    serde_json::from_value(value.clone()).map_err(|e| malformed(&name, e))?;
                let error = d.error.map(|e| match e {
                    Value::String(s) => s,
                    other => other.to_string(),
                });
                let tool = ToolEvent {
                    tool_name: d.tool_name,
                    error,
                    data: value,
                };
                match name.as_str() {
                    "tool_started" => {
                        let bytes = self.tool_bytes.saturating_add(tool.tool_name.len());
                        if bytes <= MAX_KEPT_TOOL_NAME_BYTES {
                            self.tool_bytes = bytes;
                            self.tools.push(tool.tool_name.clone());
                        }
                        ChatEvent::ToolStarted(tool)
                    }
                    "tool_completed" => ChatEvent::ToolCompleted(tool),
                    _ => ChatEvent::ToolFailed(tool),
                }
            }
            "text_delta" => {
                let d: TextData = serde_json::from_str(&data).map_err(|e| malformed(&name, e))?;
                ChatEvent::TextDelta { text: d.text }
            }
            "reply" => {
                let value: Value = serde_json::from_str(&data).map_err(|e| malformed(&name, e))?;
                let d: ReplyData =
                    serde_json::from_value(value.clone()).map_err(|e| malformed(&name, e))?;
                ChatEvent::Reply(StreamedReply {
                    text: d.text,
                    conversation_id: d.conversation_id.or_else(|| self.conversation_id.clone()),
                    tools: std::mem::take(&mut self.tools),
                    data: value,
                })
            }
            "error" => {
                let message = match serde_json::from_str::<Value>(&data) {
                    Ok(v) => v
                        .get("message")
                        .or_else(|| v.get("detail"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                    Err(_) => data.clone(),
                };
                return Err(StreamError::Server { message });
            }
            _ => ChatEvent::Unknown { event: name, data },
        })
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some((timer, deadline)) = this.deadline.as_mut()
            && std::future::Future::poll(timer.as_mut(), cx).is_ready()
        {
            this.done = true;
            return Poll::Ready(Some(Err(Error::Stream(StreamError::DeadlineExceeded {
                deadline: *deadline,
            }))));
        }
        let outcome = match this.events.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(event))) => this.decode(event),
            Poll::Ready(Some(Err(e))) => Err(match e {
                EventStreamError::Transport(ByteError::Idle(idle)) => {
                    StreamError::IdleTimeout { idle }
                }
                EventStreamError::Transport(ByteError::Transport(source)) => {
                    StreamError::Transport(source)
                }
                EventStreamError::Transport(ByteError::TooLarge(limit)) => {
                    StreamError::TooLarge { limit }
                }
                EventStreamError::Utf8(e) => StreamError::InvalidUtf8(e),
                // The SSE grammar accepts every line; this cannot happen with well-formed UTF-8,
                // but it must not be a silent end either.
                EventStreamError::Parser(_) => StreamError::Cut { events: this.seen },
            }),
            Poll::Ready(None) => Err(StreamError::Cut { events: this.seen }),
        };
        match outcome {
            Ok(event) => {
                this.seen += 1;
                if this.seen > this.max_events && !matches!(event, ChatEvent::Reply(_)) {
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::Stream(StreamError::TooManyEvents {
                        limit: this.max_events,
                    }))));
                }
                if matches!(event, ChatEvent::Reply(_)) {
                    this.done = true;
                }
                Poll::Ready(Some(Ok(event)))
            }
            Err(e) => {
                this.done = true;
                Poll::Ready(Some(Err(Error::Stream(e))))
            }
        }
    }
}

#[cfg(test)]
mod tests;
