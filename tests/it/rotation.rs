//! Several SDK instances on one refresh-token slot (two processes of a worker pool, say).
//!
//! Each renewal takes the store's lock, reads the refresh token afresh and saves its successor
//! before letting go, so no instance ever presents a token another one has already rotated:
//! the server, which takes such a token for a replay and revokes the whole family, sees none.
//! The negative case turns the lock off and shows the replay (and the lost family) it prevents.
//!
//! The two instances are two `FileStore` values on one directory, so each takes the lock through
//! its own open file description: the same `flock` exclusion two processes get.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ralio::RalioClient;
use ralio::auth::TokenManager;
use ralio::keys::PrivateKey;
use ralio::store::{
    CredentialStore, FileStore, Identity, RefreshTokenLock, RefreshTokenRecord, StoreError,
};
use ralio_sandbox::{Sandbox, TicketSpec};
use secrecy::SecretString;

const SLOT: &str = "worker";

/// A file store on a shared slot that (optionally) ignores the lock, and widens the window
/// between reading the refresh token and presenting it: with `barrier`, every holder waits
/// there after its read until all have read.
#[derive(Debug)]
struct Racy {
    inner: FileStore,
    locking: bool,
    delay: Duration,
    barrier: Option<Arc<tokio::sync::Barrier>>,
}

#[async_trait]
impl CredentialStore for Racy {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        self.inner.load_identity().await
    }
    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        self.inner.save_identity(identity).await
    }
    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let token = self.inner.load_refresh_token().await;
        tokio::time::sleep(self.delay).await;
        if let Some(barrier) = &self.barrier {
            barrier.wait().await;
        }
        token
    }
    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        self.inner.save_refresh_token(previous, record).await
    }
    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.inner.clear_refresh_token().await
    }
    async fn lock_refresh_token(&self) -> Result<RefreshTokenLock, StoreError> {
        if self.locking {
            self.inner.lock_refresh_token().await
        } else {
            Ok(RefreshTokenLock::unshared())
        }
    }
    async fn stage_key(
        &self,
        key: &PrivateKey,
        overwrite: bool,
    ) -> Result<Option<String>, StoreError> {
        self.inner.stage_key(key, overwrite).await
    }
    async fn discard_staged_key(&self, key: &PrivateKey) -> Result<(), StoreError> {
        self.inner.discard_staged_key(key).await
    }
}

fn slot_store(dir: &std::path::Path) -> FileStore {
    FileStore::new(dir).with_refresh_token_slot(SLOT).unwrap()
}

/// A sandbox with one binding registered into `dir`'s shared slot (the registration's first
/// token is the one mint; its refresh token is the slot's first).
async fn registered() -> (Sandbox, tempfile::TempDir) {
    let sb = Sandbox::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    crate::support::register_with_ticket(&sb, &slot_store(dir.path()), TicketSpec::default()).await;
    assert_eq!(sb.counters().token_mints, 1);
    (sb, dir)
}

async fn instance(sb: &Sandbox, store: Racy) -> RalioClient {
    RalioClient::builder()
        .base_url(sb.base_url())
        .store(Arc::new(store))
        .build()
        .await
        .unwrap()
}

fn tokens(client: &RalioClient) -> &TokenManager {
    client.token_manager().unwrap()
}

/// Renews `client`'s access token through a refresh grant.
async fn renew(client: &RalioClient) {
    let tm = tokens(client);
    let current = tm.access_token().await.unwrap();
    tm.force_refresh(&current).await.unwrap();
}

#[tokio::test]
async fn instances_on_one_slot_take_turns_and_never_replay_a_refresh_token() {
    let (sb, dir) = registered().await;
    let instance_on_slot = || Racy {
        inner: slot_store(dir.path()),
        locking: true,
        delay: Duration::from_millis(40),
        barrier: None,
    };
    let a = instance(&sb, instance_on_slot()).await;
    let b = instance(&sb, instance_on_slot()).await;

    // Both need their first token at once: one refreshes, the other waits for the lock, then
    // reads the rotated token and refreshes with that.
    let (ta, tb) = tokio::join!(tokens(&a).access_token(), tokens(&b).access_token());
    ta.unwrap();
    tb.unwrap();
    for _ in 0..4 {
        tokio::join!(renew(&a), renew(&b));
    }
    assert_eq!(a.agents().list().await.unwrap().len(), 1);
    assert_eq!(b.agents().list().await.unwrap().len(), 1);

    let counters = sb.counters();
    assert_eq!(
        counters.token_mints, 1,
        "a second client-assertion grant means a refresh token was replayed and its family revoked"
    );
    // 2 first tokens + 2 × 4 renewals, each a refresh grant.
    assert_eq!(counters.refreshes, 10);
    // The slot holds the live end of the family: a third instance, started now, refreshes with it.
    let c = instance(&sb, instance_on_slot()).await;
    tokens(&c).access_token().await.unwrap();
    let counters = sb.counters();
    assert_eq!((counters.token_mints, counters.refreshes), (1, 11));
}

#[tokio::test]
async fn without_the_lock_two_instances_replay_one_token_and_lose_the_family() {
    let (sb, dir) = registered().await;
    // Both read the slot before either presents what it read.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let unlocked = || Racy {
        inner: slot_store(dir.path()),
        locking: false,
        delay: Duration::ZERO,
        barrier: Some(Arc::clone(&barrier)),
    };
    let a = instance(&sb, unlocked()).await;
    let b = instance(&sb, unlocked()).await;
    let (ta, tb) = tokio::join!(tokens(&a).access_token(), tokens(&b).access_token());
    // Both still get a token: the loser's refresh is refused (the replay revokes the family)
    // and it falls back to a client assertion.
    ta.unwrap();
    tb.unwrap();
    let counters = sb.counters();
    assert_eq!(
        counters.refreshes, 1,
        "only one refresh of the shared token succeeds"
    );
    assert_eq!(
        counters.token_mints, 2,
        "the replay cost a new client-assertion grant"
    );
}
