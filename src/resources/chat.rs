//! `client.chat()`: send a message, or stream the reply.

use std::future::IntoFuture;
use std::time::Duration;

use super::BoxFuture;
use crate::RalioClient;
use crate::api;
use crate::error::Error;
use crate::error::Result;
use crate::stream::{ChatStream, StreamError};
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
            timeout: None,
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
    timeout: Option<Duration>,
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
    /// with [`Error::Timeout`]. Default: none (the connect and read timeouts still apply). The
    /// agent may have acted before the deadline: check the payment intents before sending
    /// the message again.
    pub fn timeout(mut self, deadline: Duration) -> Self {
        self.timeout = Some(deadline);
        self
    }

    /// The request body; the agent lookup's failure is named after `operation`, the call the
    /// caller made.
    async fn body(&self, operation: &'static str) -> Result<api::types::ChatRequest> {
        let agent_id = match &self.agent_id {
            Some(id) => id.clone(),
            None => self
                .client
                .single_agent()
                .await
                .map_err(|e| e.during(operation))?,
        };
        Ok(api::types::ChatRequest {
            agent_id,
            message: self.message.clone(),
            conversation_id: self.conversation_id.clone(),
        })
    }
}

impl<'a> IntoFuture for SendMessage<'a> {
    type Output = Result<ChatReply>;
    type IntoFuture = BoxFuture<'a, Result<ChatReply>>;

    fn into_future(self) -> Self::IntoFuture {
        let deadline = self.timeout;
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
            match deadline {
                None => turn.await,
                Some(waited) => tokio::time::timeout(waited, turn)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Timeout {
                            what: crate::error::Awaited::ChatReply,
                            waited,
                        })
                    }),
            }
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
    /// none.
    pub fn timeout(self, deadline: Duration) -> Self {
        StreamMessage(self.0.timeout(deadline))
    }
}

impl<'a> IntoFuture for StreamMessage<'a> {
    type Output = Result<ChatStream>;
    type IntoFuture = BoxFuture<'a, Result<ChatStream>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let deadline = self.0.timeout.map(|d| (tokio::time::Instant::now() + d, d));
            let open = async {
                let body = self.0.body("chat.stream").await?;
                let client = self.0.client;
                let api = &client.inner.api;
                let bytes = client
                    .call("chat.stream", api.chat_stream().body(body).send())
                    .await?;
                Ok::<_, Error>(ChatStream::from_bytes(
                    bytes.into_inner(),
                    client.inner.shared.read_idle,
                ))
            };
            match deadline {
                None => open.await,
                Some((at, d)) => match tokio::time::timeout_at(at, open).await {
                    Ok(stream) => Ok(stream?.with_deadline_at(at, d)),
                    Err(_) => Err(Error::Stream(StreamError::DeadlineExceeded { deadline: d })),
                },
            }
        })
    }
}

impl<'a> Chat<'a> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        Chat { client }
    }
}
