//! `client.chat()`: send a message, or stream the reply.

use std::future::IntoFuture;
use std::time::Duration;

use super::BoxFuture;
use crate::RalioClient;
use crate::api;
use crate::error::Error;
use crate::error::Result;
use crate::stream::{ChatStream, DEFAULT_MAX_EVENTS, StreamError, deadline_from_now};

/// The deadline of a chat turn unless [`SendMessage::timeout`] or [`StreamMessage::timeout`]
/// says otherwise: generous for an agent that calls several tools, and still an end for a
/// server that keeps a turn open forever (keep-alives, or tool events without a reply).
pub const DEFAULT_TURN_TIMEOUT: Duration = Duration::from_secs(600);
use crate::types::ChatReply;

/// `client.chat()`.
#[derive(Debug, Clone, Copy)]
pub struct Chat<'a> {
    client: &'a RalioClient,
}

impl<'a> Chat<'a> {
    /// Send a message and wait for the reply. Await it directly, or set
    /// [`agent_id`](SendMessage::agent_id) / [`conversation_id`](SendMessage::conversation_id)
    /// first.
    ///
    /// Never retried after the server may have received it (the agent may have paid); see
    /// [`RetryPolicy`](crate::RetryPolicy).
    pub fn send(&self, message: impl Into<String>) -> SendMessage<'a> {
        SendMessage {
            client: self.client,
            message: message.into(),
            agent_id: None,
            conversation_id: None,
            timeout: DEFAULT_TURN_TIMEOUT,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }

    /// Send a message and stream the reply as [`ChatEvent`](crate::ChatEvent)s. Await it to get
    /// the [`ChatStream`] once the server accepted the request.
    pub fn stream(&self, message: impl Into<String>) -> StreamMessage<'a> {
        StreamMessage(self.send(message))
    }
}

/// A chat message ready to send; await it. Built by [`Chat::send`].
#[derive(Debug, Clone)]
#[must_use = "a message is sent only when awaited"]
pub struct SendMessage<'a> {
    client: &'a RalioClient,
    message: String,
    agent_id: Option<String>,
    conversation_id: Option<String>,
    timeout: Duration,
    max_events: usize,
}

impl SendMessage<'_> {
    /// The agent to talk to. Default: the one agent this credential reaches (looked up once).
    pub fn agent_id(mut self, id: impl Into<String>) -> Self {
        self.agent_id = Some(id.into());
        self
    }

    /// Continue this conversation.
    pub fn conversation_id(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    /// A total deadline for the turn, from sending to the whole reply. Past it the call fails
    /// with [`Error::Timeout`]. Default: [`DEFAULT_TURN_TIMEOUT`] (10 minutes);
    /// `Duration::MAX` waits as long as the connect and read timeouts allow. The agent may have
    /// acted before the deadline: check the payment intents before sending the message again.
    pub fn timeout(mut self, deadline: Duration) -> Self {
        self.timeout = deadline;
        self
    }

    /// The request body, built from its required fields (an optional field the API adds is
    /// one more setter, a required one a compile error here); the agent lookup's failure is
    /// named after `operation`, the call the caller made.
    async fn body(&self, operation: &'static str) -> Result<api::types::builder::ChatRequest> {
        let agent_id = match &self.agent_id {
            Some(id) => id.clone(),
            None => self
                .client
                .single_agent()
                .await
                .map_err(|e| e.during(operation))?,
        };
        Ok(
            api::types::ChatRequest::builder(agent_id, self.message.clone())
                .conversation_id(self.conversation_id.clone()),
        )
    }
}

impl<'a> IntoFuture for SendMessage<'a> {
    type Output = Result<ChatReply>;
    type IntoFuture = BoxFuture<'a, Result<ChatReply>>;

    fn into_future(self) -> Self::IntoFuture {
        let waited = self.timeout;
        let at = deadline_from_now(waited);
        let turn = async move {
            let body = self.body("chat.send").await?;
            let api = &self.client.inner.api;
            let r = self
                .client
                .call("chat.send", api.chat().body(body).send())
                .await?;
            Ok(r)
        };
        Box::pin(async move {
            tokio::time::timeout_at(at, turn).await.unwrap_or_else(|_| {
                Err(Error::Timeout {
                    what: crate::error::Awaited::ChatReply,
                    waited,
                })
            })
        })
    }
}

/// A streamed chat message ready to send; await it. Built by [`Chat::stream`].
#[derive(Debug, Clone)]
#[must_use = "a message is sent only when awaited"]
pub struct StreamMessage<'a>(SendMessage<'a>);

impl StreamMessage<'_> {
    /// The agent to talk to. Default: the one agent this credential reaches.
    pub fn agent_id(self, id: impl Into<String>) -> Self {
        StreamMessage(self.0.agent_id(id))
    }

    /// Continue this conversation.
    pub fn conversation_id(self, id: impl Into<String>) -> Self {
        StreamMessage(self.0.conversation_id(id))
    }

    /// A total deadline for the turn, from sending to the final `reply` event. Past it the
    /// await, or the stream, fails with [`StreamError::DeadlineExceeded`], even when the server
    /// keeps the connection alive with comments (which reset the read-idle timeout). Default:
    /// [`DEFAULT_TURN_TIMEOUT`] (10 minutes); `Duration::MAX` for none.
    pub fn timeout(self, deadline: Duration) -> Self {
        StreamMessage(self.0.timeout(deadline))
    }

    /// The most events the turn may send before its final reply; past it the stream fails with
    /// [`StreamError::TooManyEvents`]. Default: [`DEFAULT_MAX_EVENTS`]
    /// (10,000). With the deadline, it bounds what a server that streams events forever
    /// costs; the names of started tools are kept up to
    /// [`MAX_KEPT_TOOL_NAME_BYTES`](crate::stream::MAX_KEPT_TOOL_NAME_BYTES).
    pub fn max_events(mut self, max: usize) -> Self {
        self.0.max_events = max;
        self
    }
}

impl<'a> IntoFuture for StreamMessage<'a> {
    type Output = Result<ChatStream>;
    type IntoFuture = BoxFuture<'a, Result<ChatStream>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let d = self.0.timeout;
            let at = deadline_from_now(d);
            let max_events = self.0.max_events;
            let open = async {
                let body = self.0.body("chat.stream").await?;
                let client = self.0.client;
                let api = &client.inner.api;
                let bytes = client
                    .call("chat.stream", api.chat_stream().body(body).send())
                    .await?;
                Ok::<_, Error>(
                    ChatStream::from_bytes(bytes.into_inner(), client.inner.shared.read_idle)
                        .with_max_events(max_events),
                )
            };
            match tokio::time::timeout_at(at, open).await {
                Ok(stream) => Ok(stream?.with_deadline_at(at, d)),
                Err(_) => Err(Error::Stream(StreamError::DeadlineExceeded { deadline: d })),
            }
        })
    }
}

impl<'a> Chat<'a> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        Chat { client }
    }
}
