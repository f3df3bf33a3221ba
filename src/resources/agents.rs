//! `client.agents()`.

use crate::RalioClient;
use crate::error::Result;
use crate::types::Agent;

/// `client.agents()`.
#[derive(Debug, Clone, Copy)]
pub struct Agents<'a> {
    client: &'a RalioClient,
}

impl Agents<'_> {
    /// The agents this credential can reach.
    pub async fn list(self) -> Result<Vec<Agent>> {
        let api = &self.client.inner.api;
        let agents = self
            .client
            .call("agents.list", api.list_agents().send())
            .await?;
        Ok(agents)
    }
}

impl<'a> Agents<'a> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        Agents { client }
    }
}
