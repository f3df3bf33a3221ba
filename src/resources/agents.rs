//! `client.agents()`.

use crate::RalioClient;
use crate::api;
use crate::error::Result;
use crate::models::Agent;

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
        Ok(agents.into_iter().map(agent_from).collect())
    }
}

impl<'a> Agents<'a> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        Agents { client }
    }
}

fn agent_from(a: api::types::Agent) -> Agent {
    Agent {
        id: a.id,
        name: a.name,
        agent_number: a.agent_number,
        banking_provider: a.banking_provider,
        created_at: a.created_at,
    }
}
