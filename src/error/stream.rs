//! [`StreamError`]: why a chat stream failed after it started (the taxonomy keeps it here, so
//! the stream module names the error and not the other way round).

use std::error::Error as StdError;
use std::time::Duration;

/// Why a chat stream failed after it started.
///
/// A failed chat stream may still have moved money: the agent can have created a payment
/// before the failure. Check `payment_intents().list()` before sending the message again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The server sent an `error` event.
    #[error(
        "the chat stream reported an error: {message}; check the payment intents before sending \
         the message again"
    )]
    #[non_exhaustive]
    Server {
        /// The server's message.
        message: String,
    },
    /// The connection ended before the final `reply` event.
    #[error(
        "the chat stream was cut after {events} event(s), before the final reply; the agent may \
         have acted: check the payment intents before sending the message again"
    )]
    #[non_exhaustive]
    Cut {
        /// How many events had arrived.
        events: usize,
    },
    /// No byte arrived for the read-idle timeout.
    #[error(
        "no data on the chat stream for {idle:?}; the connection looks dead (raise the read-idle \
         timeout if the agent is slow); check the payment intents before sending again"
    )]
    #[non_exhaustive]
    IdleTimeout {
        /// The read-idle timeout that passed.
        idle: Duration,
    },
    /// The whole chat turn took longer than the deadline set with
    /// [`StreamMessage::timeout`](crate::resources::StreamMessage::timeout) or
    /// [`ChatStream::with_deadline`](crate::stream::ChatStream::with_deadline). Unlike the read-idle timeout, keep-alive comments do not
    /// extend it.
    #[error(
        "the chat turn did not finish within {deadline:?}; the agent may have acted: check the \
         payment intents before sending the message again"
    )]
    #[non_exhaustive]
    DeadlineExceeded {
        /// The deadline that passed.
        deadline: Duration,
    },
    /// A known event carried data the SDK could not read.
    #[error("the chat stream sent a `{event}` event the SDK could not read; report it")]
    #[non_exhaustive]
    Malformed {
        /// The event name.
        event: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The stream was not valid UTF-8.
    #[error("the chat stream sent bytes that are not UTF-8; report it")]
    InvalidUtf8(#[source] std::string::FromUtf8Error),
    /// Reading the stream failed.
    #[error("reading the chat stream failed; the agent may have acted: check the payment intents")]
    Transport(#[source] Box<dyn StdError + Send + Sync + 'static>),
    /// One event grew past [`MAX_EVENT_BYTES`](crate::stream::MAX_EVENT_BYTES) without ending: a broken or hostile server. The
    /// SDK stops reading rather than buffer it.
    #[error(
        "the chat stream sent an event larger than {limit} bytes without ending it; the agent may \
         have acted: check the payment intents, and report it"
    )]
    TooLarge {
        /// The limit that was passed, in bytes.
        limit: usize,
    },
    /// The turn sent more events than
    /// [`ChatStream::with_max_events`](crate::stream::ChatStream::with_max_events) allows
    /// (default [`DEFAULT_MAX_EVENTS`](crate::stream::DEFAULT_MAX_EVENTS)) without its final
    /// reply: a runaway agent or a hostile server.
    #[error(
        "the chat stream sent more than {limit} events without a final reply; the agent may have \
         acted: check the payment intents before sending the message again"
    )]
    #[non_exhaustive]
    TooManyEvents {
        /// The limit that was passed.
        limit: usize,
    },
}

impl StreamError {
    /// Whether trying again later may work. The message may have been processed already.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StreamError::Cut { .. }
                | StreamError::IdleTimeout { .. }
                | StreamError::DeadlineExceeded { .. }
                | StreamError::Transport(_)
        )
    }
}
