//! `client.chat()`: send a message, or stream the reply.

use std::future::IntoFuture;

use super::BoxFuture;
use crate::RalioClient;
use crate::api;
use crate::error::Result;
use crate::stream::ChatStream;
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

    async fn body(&self) -> Result<api::types::ChatRequest> {
        let agent_id = match &self.agent_id {
            Some(id) => id.clone(),
            None => self.client.single_agent().await?,
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
        Box::pin(async move {
            let body = self.body().await?;
            let api = &self.client.inner.api;
            let r = self
                .client
                .call("chat.send", api.chat().body(body).send())
                .await?;
            Ok(r)
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
}

impl<'a> IntoFuture for StreamMessage<'a> {
    type Output = Result<ChatStream>;
    type IntoFuture = BoxFuture<'a, Result<ChatStream>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let body = self.0.body().await?;
            let client = self.0.client;
            let api = &client.inner.api;
            let bytes = client
                .call("chat.stream", api.chat_stream().body(body).send())
                .await?;
            Ok(ChatStream::from_bytes(
                bytes.into_inner(),
                client.inner.shared.read_idle,
            ))
        })
    }
}

impl<'a> Chat<'a> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        Chat { client }
    }
}
