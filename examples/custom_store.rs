//! Write your own credential store: here, a table in a (pretend) database.
//!
//! ```text
//! cargo run --example custom_store
//! ```
//!
//! `CredentialStore` is a small async trait: load and save the identity, load and save the
//! refresh token. Implement it over whatever your service already trusts with secrets (a
//! database, a secret manager, an HSM). Runs against an embedded sandbox, with no set-up.

mod common;

use std::collections::HashMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ralio::RalioClient;
use ralio::keys::PrivateKey;
use ralio::register::{RegisterOptions, register};
use ralio::store::{
    CredentialStore, Identity, RefreshTokenLock, RefreshTokenRecord, StoreError, StoreName,
};
use ralio_sandbox::{Sandbox, TicketSpec};
use secrecy::{ExposeSecret as _, SecretString};

/// Stands in for a database table `credentials(name TEXT PRIMARY KEY, value TEXT)`.
/// In real code these would be SQL statements; a row update with `WHERE value = $previous`
/// gives the compare-and-set that `save_refresh_token` needs.
#[derive(Default)]
struct Table(Mutex<HashMap<String, String>>);

impl Table {
    fn get(&self, name: &str) -> Option<String> {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn put(&self, name: &str, value: String) {
        if let Ok(mut rows) = self.0.lock() {
            rows.insert(name.to_owned(), value);
        }
    }

    /// `UPDATE … SET value = $new WHERE name = $name AND value IS NOT DISTINCT FROM $old`
    fn compare_and_set(&self, name: &str, old: Option<&str>, new: String) -> bool {
        let Ok(mut rows) = self.0.lock() else {
            return false;
        };
        if rows.get(name).map(String::as_str) != old {
            return false;
        }
        rows.insert(name.to_owned(), new);
        true
    }

    fn delete(&self, name: &str) {
        if let Ok(mut rows) = self.0.lock() {
            rows.remove(name);
        }
    }
}

/// One agent host's credentials in the table: rows `<agent>/client_id`, `<agent>/key` and
/// `<agent>/refresh/<worker>`.
struct DatabaseStore {
    table: Arc<Table>,
    agent: String,
    worker: String,
    // Serialises this process's rotations; a real database could use an advisory lock.
    rotation: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for DatabaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the rows: they hold the key and the refresh token.
        f.debug_struct("DatabaseStore")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl DatabaseStore {
    fn row(&self, what: &str) -> String {
        format!("{}/{what}", self.agent)
    }
}

#[async_trait]
impl CredentialStore for DatabaseStore {
    fn describe(&self) -> String {
        format!("database store (agent {})", self.agent)
    }

    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        let (Some(client_id), Some(pem)) = (
            self.table.get(&self.row("client_id")),
            self.table.get(&self.row("key")),
        ) else {
            return Ok(None);
        };
        let key = PrivateKey::from_pem(&pem).map_err(|source| StoreError::InvalidKey {
            store: StoreName::other(self.describe()),
            what: self.row("key"),
            source,
        })?;
        Ok(Some(Identity::new(client_id, key)))
    }

    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        let Some(key) = identity.private_key() else {
            return Err(StoreError::Config {
                store: StoreName::other(self.describe()),
                reason: "this store keeps local keys only".to_owned(),
            });
        };
        self.table.put(
            &self.row("key"),
            key.to_pkcs8_pem().expose_secret().to_owned(),
        );
        self.table
            .put(&self.row("client_id"), identity.client_id().to_owned());
        Ok(format!("database row {}", self.row("key")))
    }

    /// The token and its issuer live in two rows here; a real table keeps them as two columns
    /// of one row, written together.
    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let token = self
            .table
            .get(&self.row(&format!("refresh/{}", self.worker)));
        let issuer = self
            .table
            .get(&self.row(&format!("issuer/{}", self.worker)));
        Ok(token.map(|t| RefreshTokenRecord::new(SecretString::from(t), issuer)))
    }

    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let row = self.row(&format!("refresh/{}", self.worker));
        let new = record.refresh_token.expose_secret().to_owned();
        let saved = match previous {
            None => {
                self.table.put(&row, new);
                true
            }
            Some(old) => self
                .table
                .compare_and_set(&row, Some(old.expose_secret()), new),
        };
        if !saved {
            return Err(StoreError::Conflict {
                store: StoreName::other(self.describe()),
            });
        }
        let issuer_row = self.row(&format!("issuer/{}", self.worker));
        match &record.issuer {
            Some(issuer) => self.table.put(&issuer_row, issuer.clone()),
            None => self.table.delete(&issuer_row),
        }
        Ok(())
    }

    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.table
            .delete(&self.row(&format!("refresh/{}", self.worker)));
        self.table
            .delete(&self.row(&format!("issuer/{}", self.worker)));
        Ok(())
    }

    async fn lock_refresh_token(&self) -> Result<RefreshTokenLock, StoreError> {
        Ok(RefreshTokenLock::new(
            Arc::clone(&self.rotation).lock_owned().await,
        ))
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let sandbox = Sandbox::builder().start().await?;
    let table = Arc::new(Table::default());
    let store = Arc::new(DatabaseStore {
        table: Arc::clone(&table),
        agent: "treasury-bot".to_owned(),
        worker: "worker-1".to_owned(),
        rotation: Arc::default(),
    });

    let binding = register(
        store.as_ref(),
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .ticket(sandbox.mint_ticket(TicketSpec::default())),
    )
    .await?;
    println!(
        "registered {}; key in {}",
        binding.client_id, binding.key_location
    );

    let client = RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store as Arc<dyn CredentialStore>)
        .build()
        .await?;
    let agents = client.agents().list().await?;
    println!(
        "this credential reaches {} agent(s): {}",
        agents.len(),
        agents
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let reply = client.chat().send("What is my current balance?").await?;
    println!("agent: {}", reply.reply);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::exit_code(run().await)
}
