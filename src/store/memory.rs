//! The in-memory store.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use secrecy::SecretString;

use super::NamedStore;
use super::{
    CredentialStore, Identity, MemorySlot, PendingRegistration, RefreshTokenLock,
    RefreshTokenRecord, StoreError, StoreKind, StoreLocation, StoreReport,
};

/// Credentials in memory: for tests and short-lived processes. Nothing survives the process.
///
/// Clones share the same contents, so one `MemoryStore` can be handed to several clients;
/// [`lock_refresh_token`](CredentialStore::lock_refresh_token) serialises their rotations.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    identity: Mutex<Option<Identity>>,
    refresh_token: MemorySlot,
    pending: Mutex<Option<PendingRegistration>>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means another thread panicked while holding the guard; the Option inside
    // is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds `identity`.
    pub fn with_identity(identity: Identity) -> Self {
        let store = Self::default();
        *guard(&store.inner.identity) = Some(identity);
        store
    }
}

#[async_trait]
impl CredentialStore for MemoryStore {
    fn describe(&self) -> String {
        "memory store".to_owned()
    }

    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        Ok(guard(&self.inner.identity).clone())
    }

    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        *guard(&self.inner.identity) = Some(identity.clone());
        Ok("memory (lost when the process exits)".to_owned())
    }

    /// The identity and refresh token held; nothing is ever staged here.
    async fn report(&self) -> StoreReport {
        let mut report =
            StoreReport::new(StoreKind::Memory, self.describe(), StoreLocation::Memory);
        report.fill_from(self).await;
        report.staged_keys = Some(Vec::new());
        report
    }

    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        Ok(self.inner.refresh_token.load())
    }

    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        self.inner
            .refresh_token
            .save(|| self.name(), previous, record)
    }

    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.inner.refresh_token.clear();
        Ok(())
    }

    async fn lock_refresh_token(&self) -> Result<RefreshTokenLock, StoreError> {
        Ok(self.inner.refresh_token.lock().await)
    }

    /// Keeps the pending registration, key included, in memory (lost with the process).
    async fn save_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<Option<String>, StoreError> {
        *guard(&self.inner.pending) = Some(pending.clone());
        Ok(Some("memory (lost when the process exits)".to_owned()))
    }

    async fn load_pending_registration(&self) -> Result<Option<PendingRegistration>, StoreError> {
        Ok(guard(&self.inner.pending).clone())
    }

    async fn clear_pending_registration(&self) -> Result<(), StoreError> {
        *guard(&self.inner.pending) = None;
        Ok(())
    }
}

impl NamedStore for MemoryStore {
    const KIND: StoreKind = StoreKind::Memory;
}
