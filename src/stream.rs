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
    /// The names of the tools the agent used, in order (from `tool_started` events).
    pub tools: Vec<String>,
    /// The `reply` event's data as sent, including fields not modelled here.
    pub data: Value,
}

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
            done: false,
            deadline: None,
        }
    }

    /// Ends the stream with [`StreamError::DeadlineExceeded`] if it has not delivered its
    /// final reply within `deadline` from now, whatever arrives meanwhile (keep-alive comments
    /// included, which the read-idle timeout counts as activity). Needs a Tokio runtime.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        self.with_deadline_at(tokio::time::Instant::now() + deadline, deadline)
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
                        self.tools.push(tool.tool_name.clone());
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
mod tests {
    use super::*;
    use futures::stream;

    const FULL: &str = "event: conversation\ndata: {\"conversation_id\":\"conv_1\"}\n\n\
: keep-alive\n\n\
event: tool_started\ndata: {\"tool_name\":\"create_payment\",\"amount\":\"25.00\"}\n\n\
event: tool_completed\ndata: {\"tool_name\":\"create_payment\"}\n\n\
event: text_delta\ndata: {\"text\":\"Paid \\u00a325 \"}\n\n\
event: text_delta\ndata: {\"text\":\"to Bob.\"}\n\n\
event: reply\ndata: {\"text\":\"Paid \\u00a325 to Bob.\"}\n\n";

    fn chunks(parts: Vec<Vec<u8>>) -> ChatStream {
        let s = stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from(p))),
        );
        ChatStream::from_bytes(s, None)
    }

    async fn run(parts: Vec<Vec<u8>>) -> Vec<std::result::Result<ChatEvent, String>> {
        chunks(parts)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    fn expected_full() -> Vec<ChatEvent> {
        vec![
            ChatEvent::Conversation {
                conversation_id: "conv_1".into(),
            },
            ChatEvent::ToolStarted(ToolEvent {
                tool_name: "create_payment".into(),
                error: None,
                data: serde_json::json!({"tool_name": "create_payment", "amount": "25.00"}),
            }),
            ChatEvent::ToolCompleted(ToolEvent {
                tool_name: "create_payment".into(),
                error: None,
                data: serde_json::json!({"tool_name": "create_payment"}),
            }),
            ChatEvent::TextDelta {
                text: "Paid £25 ".into(),
            },
            ChatEvent::TextDelta {
                text: "to Bob.".into(),
            },
            ChatEvent::Reply(StreamedReply {
                text: "Paid £25 to Bob.".into(),
                conversation_id: Some("conv_1".into()),
                tools: vec!["create_payment".into()],
                data: serde_json::json!({"text": "Paid £25 to Bob."}),
            }),
        ]
    }

    #[tokio::test]
    async fn a_whole_stream_gives_typed_events_and_ends_after_the_reply() {
        let got = run(vec![FULL.as_bytes().to_vec()]).await;
        let want: Vec<_> = expected_full().into_iter().map(Ok).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn an_endless_event_is_cut_at_the_limit_not_buffered() {
        // One data line that never ends, then many lines of one event that never ends: both
        // stop with TooLarge once the limit is passed, in any chunking.
        let line = vec![b'x'; 64 * 1024];
        let mut endless_line = vec![b"event: text_delta\ndata: ".to_vec()];
        endless_line.extend(std::iter::repeat_n(
            line.clone(),
            2 * MAX_EVENT_BYTES / line.len(),
        ));
        let mut many_lines = vec![b"event: text_delta\n".to_vec()];
        let mut data_line = b"data: ".to_vec();
        data_line.extend_from_slice(&line);
        data_line.extend_from_slice(b"\r\n");
        many_lines.extend(std::iter::repeat_n(
            data_line,
            2 * MAX_EVENT_BYTES / line.len(),
        ));
        for parts in [endless_line, many_lines] {
            let got = run(parts).await;
            assert_eq!(
                got.len(),
                1,
                "{:?}",
                got.iter().map(|r| r.is_ok()).collect::<Vec<_>>()
            );
            let err = got[0].as_ref().unwrap_err();
            assert!(err.contains("larger than 1048576 bytes"), "{err}");
        }
        // Many events that together pass the limit are fine: the cap is per event.
        let mut events = Vec::new();
        let mut delta = b"event: text_delta\ndata: {\"text\":\"".to_vec();
        delta.extend(std::iter::repeat_n(b'y', 60 * 1024));
        delta.extend_from_slice(b"\"}\n\n");
        events.extend(std::iter::repeat_n(
            delta,
            2 * MAX_EVENT_BYTES / (60 * 1024),
        ));
        events.push(b"event: reply\ndata: {\"text\":\"done\"}\n\n".to_vec());
        let got = run(events).await;
        assert!(got.iter().all(|r| r.is_ok()));
        assert!(matches!(got.last(), Some(Ok(ChatEvent::Reply(_)))));
    }

    #[tokio::test]
    async fn every_two_way_split_gives_the_same_events() {
        let bytes = FULL.as_bytes();
        let want: Vec<_> = expected_full().into_iter().map(Ok).collect();
        for cut in 0..=bytes.len() {
            let got = run(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()]).await;
            assert_eq!(got, want, "split at byte {cut}");
        }
    }

    #[tokio::test]
    async fn byte_by_byte_and_crlf_framing_give_the_same_events() {
        let want: Vec<_> = expected_full().into_iter().map(Ok).collect();
        let singles = FULL.bytes().map(|b| vec![b]).collect();
        assert_eq!(run(singles).await, want);
        let crlf = FULL.replace('\n', "\r\n");
        let singles = crlf.bytes().map(|b| vec![b]).collect();
        assert_eq!(run(singles).await, want, "CRLF byte by byte");
        let cr = FULL.replace('\n', "\r");
        assert_eq!(run(vec![cr.into_bytes()]).await, want, "bare CR");
    }

    #[tokio::test]
    async fn a_truncated_stream_always_ends_with_an_error_never_silently() {
        let bytes = FULL.as_bytes();
        let reply_start = FULL.find("event: reply").unwrap();
        let reply_json_end = FULL.rfind('}').unwrap() + 1;
        for cut in 0..bytes.len() {
            let got = run(vec![bytes[..cut].to_vec()]).await;
            let last = got
                .last()
                .expect("a truncated stream yields at least one item");
            if cut >= reply_json_end {
                // The reply's data is complete; only its blank line is missing: delivered.
                assert!(
                    matches!(last, Ok(ChatEvent::Reply(_))),
                    "cut at {cut}: {last:?}"
                );
            } else {
                let err = last.as_ref().expect_err("must end with an error");
                assert!(err.contains("cut after"), "cut at {cut}: {err}");
                assert!(
                    got[..got.len() - 1].iter().all(Result::is_ok),
                    "cut at {cut}"
                );
                if cut <= reply_start {
                    assert!(!got.iter().any(|e| matches!(e, Ok(ChatEvent::Reply(_)))));
                }
            }
        }
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream_with_its_message() {
        let body = "event: text_delta\ndata: {\"text\":\"Work\"}\n\n\
event: error\ndata: {\"message\":\"payment provider unavailable\"}\n\n\
event: reply\ndata: {\"text\":\"never\"}\n\n";
        let got = run(vec![body.as_bytes().to_vec()]).await;
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Ok(ChatEvent::TextDelta {
                text: "Work".into()
            })
        );
        let err = got[1].as_ref().unwrap_err();
        assert!(err.contains("payment provider unavailable"), "{err}");
        // Non-JSON error data is still surfaced.
        let got = run(vec![b"event: error\ndata: boom\n\n".to_vec()]).await;
        assert!(got[0].as_ref().unwrap_err().contains("boom"));
    }

    #[tokio::test]
    async fn unknown_events_pass_through_and_multiline_data_joins() {
        let body = "event: thinking\ndata: {\"a\":1}\ndata: second line\n\n\
data: default-named\n\n\
event: reply\ndata: {\"text\":\"ok\",\"conversation_id\":\"c9\"}\n\n";
        let got = run(vec![body.as_bytes().to_vec()]).await;
        assert_eq!(
            got[0],
            Ok(ChatEvent::Unknown {
                event: "thinking".into(),
                data: "{\"a\":1}\nsecond line".into()
            })
        );
        assert_eq!(
            got[1],
            Ok(ChatEvent::Unknown {
                event: "message".into(),
                data: "default-named".into()
            })
        );
        let Ok(ChatEvent::Reply(reply)) = &got[2] else {
            panic!("{got:?}")
        };
        assert_eq!(reply.conversation_id.as_deref(), Some("c9"));
        assert_eq!(got.len(), 3);
    }

    #[tokio::test]
    async fn malformed_known_event_is_an_error_not_a_skip() {
        let body =
            "event: text_delta\ndata: {\"txt\":1}\n\nevent: reply\ndata: {\"text\":\"x\"}\n\n";
        let got = run(vec![body.as_bytes().to_vec()]).await;
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap_err().contains("`text_delta`"));
    }

    #[tokio::test]
    async fn a_tool_failure_carries_its_reason() {
        let body = "event: tool_failed\ndata: {\"tool_name\":\"create_payment\",\"error\":\"over the spend limit\"}\n\n";
        let got = run(vec![body.as_bytes().to_vec()]).await;
        let Ok(ChatEvent::ToolFailed(tool)) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(tool.error.as_deref(), Some("over the spend limit"));
        assert!(got[1].is_err(), "no reply follows: cut");
    }

    #[tokio::test]
    async fn a_transport_error_mid_stream_is_an_error() {
        let parts = vec![
            Ok(Bytes::from_static(
                b"event: text_delta\ndata: {\"text\":\"a\"}\n\n",
            )),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
        ];
        let got: Vec<_> = ChatStream::from_bytes(stream::iter(parts), None)
            .collect()
            .await;
        assert!(got[0].is_ok());
        let err = got[1].as_ref().unwrap_err();
        assert!(
            matches!(err, Error::Stream(StreamError::Transport(_))),
            "{err:?}"
        );
        assert_eq!(got.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_hits_the_read_idle_timeout() {
        // One event, then nothing ever again.
        let first = stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(
            b"event: text_delta\ndata: {\"text\":\"a\"}\n\n",
        ))]);
        let s = first.chain(stream::pending());
        let mut chat = ChatStream::from_bytes(s, Some(Duration::from_secs(30)));
        assert!(matches!(
            chat.next().await,
            Some(Ok(ChatEvent::TextDelta { .. }))
        ));
        let err = chat.next().await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Stream(StreamError::IdleTimeout { idle }) if idle == Duration::from_secs(30))
        );
        assert!(
            chat.next().await.is_none(),
            "the stream ends after its error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_reset_the_idle_timer() {
        // A keep-alive every 20 s for 100 s, then the reply: a 30 s idle timeout never fires.
        let s = stream::unfold(0u32, |n| async move {
            if n < 5 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                Some((
                    Ok::<_, std::io::Error>(Bytes::from_static(b": ping\n\n")),
                    n + 1,
                ))
            } else if n == 5 {
                Some((
                    Ok(Bytes::from_static(
                        b"event: reply\ndata: {\"text\":\"done\"}\n\n",
                    )),
                    n + 1,
                ))
            } else {
                None
            }
        });
        let reply = ChatStream::from_bytes(s, Some(Duration::from_secs(30)))
            .final_reply()
            .await
            .unwrap();
        assert_eq!(reply.text, "done");
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_forever_end_at_the_turn_deadline() {
        // A server that sends only `: keep-alive` forever: the idle timer never fires, the
        // total deadline does.
        let s = stream::unfold((), |()| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from_static(b": keep-alive\n\n")),
                (),
            ))
        });
        let mut chat = ChatStream::from_bytes(s, Some(Duration::from_secs(30)))
            .with_deadline(Duration::from_secs(300));
        let err = chat.next().await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Stream(StreamError::DeadlineExceeded { deadline }) if deadline == Duration::from_secs(300)),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("check the payment intents"),
            "{err}"
        );
        assert!(
            chat.next().await.is_none(),
            "the stream ends after its error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_before_the_deadline_is_delivered() {
        let mut chat = chunks(vec![FULL.as_bytes().to_vec()]).with_deadline(Duration::from_secs(1));
        let mut last = None;
        while let Some(item) = chat.next().await {
            last = Some(item.unwrap());
        }
        assert!(matches!(last, Some(ChatEvent::Reply(_))));
    }

    #[tokio::test]
    async fn collect_reply_returns_the_final_reply_or_the_error() {
        let reply = chunks(vec![FULL.as_bytes().to_vec()])
            .final_reply()
            .await
            .unwrap();
        assert_eq!(reply.text, "Paid £25 to Bob.");
        assert_eq!(reply.tools, vec!["create_payment".to_string()]);
        let err = chunks(vec![FULL.as_bytes()[..40].to_vec()])
            .final_reply()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Stream(StreamError::Cut { .. })));
        let empty = chunks(vec![]).final_reply().await.unwrap_err();
        assert!(matches!(
            empty,
            Error::Stream(StreamError::Cut { events: 0 })
        ));
    }

    #[tokio::test]
    async fn split_multibyte_characters_survive() {
        let body = "event: reply\ndata: {\"text\":\"£25 — paid ✓\"}\n\n"
            .as_bytes()
            .to_vec();
        for cut in 0..body.len() {
            let reply = chunks(vec![body[..cut].to_vec(), body[cut..].to_vec()])
                .final_reply()
                .await
                .unwrap();
            assert_eq!(reply.text, "£25 — paid ✓", "split at {cut}");
        }
    }
}
