//! The refresh-token lock of a [`VaultStore`], held in Vault itself, so that renewals on one
//! slot take turns across processes and hosts (a lock file could serialise only one host).
//!
//! The lock is the KV v2 secret `<path>/refresh-tokens/<slot>.lock` (under the policy path the
//! refresh token already needs). Taking it is a check-and-set write: `cas=0` creates it, and a
//! released lock (or a soft-deleted one) is taken by writing on the version read, so of two
//! writers on one version exactly one succeeds. The holder renews its lease every
//! [`HEARTBEAT`] with check-and-set on its own last version, and releases the lock by writing
//! `released` on that version, which fails harmlessly when someone else holds it by then.
//!
//! A dead holder (a crash, a lost network) cannot block the others: a waiter that sees the same
//! version of a held lock for a whole [`LEASE`] (by its own monotonic clock, so the hosts'
//! clocks do not matter) takes it over. A holder whose lease lapsed that way finds out at its
//! next renewal (its check-and-set fails) and logs it; the refresh token's own check-and-set
//! save then keeps whichever token the new holder stored.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::VaultStore;
use super::kv::kv_version;
use crate::store::lock::LOCK_WAIT;
use crate::store::{CredentialStore as _, NamedStore as _, RefreshTokenLock, StoreError};
use crate::vault::Answer;

/// A held lock whose version does not change for this long belongs to a dead holder.
const LEASE: Duration = Duration::from_secs(30);
/// How often a holder renews its lease (well inside [`LEASE`]).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Time between two looks at a lock another holder has (plus up to as much again, at random,
/// so that waiters on several hosts do not knock in step).
const POLL: Duration = Duration::from_millis(50);

const ACTION: &str = "take the refresh-token lock";

/// What a read of the lock found.
enum Seen {
    /// Nobody holds it: take it with this `cas`.
    Free { cas: u64 },
    /// Held, at this version.
    Held { version: u64 },
}

impl VaultStore {
    fn lock_rest(&self) -> String {
        format!("{}.lock", self.refresh_rest())
    }

    async fn read_lock(&self, rest: &str) -> Result<Seen, StoreError> {
        let answer = self.read_data(rest, ACTION).await?;
        Ok(match answer {
            Answer::Ok(value) => {
                let version = kv_version(&value);
                let released = value
                    .pointer("/data/data/released")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let live = value.pointer("/data/data").is_some_and(Value::is_object);
                if released || !live {
                    Seen::Free { cas: version }
                } else {
                    Seen::Held { version }
                }
            }
            // Never written, or soft-deleted (its version is what `cas` must name).
            Answer::NotFound(value) => Seen::Free {
                cas: kv_version(&value),
            },
            _ => Seen::Free { cas: 0 },
        })
    }

    /// Takes the slot's lock, waiting up to [`LOCK_WAIT`] for another holder.
    pub(super) async fn lock_slot(&self) -> Result<RefreshTokenLock, StoreError> {
        let rest = self.lock_rest();
        let holder = format!("{:032x}", rand::random::<u128>());
        let started = Instant::now();
        // The held version this waiter watches, and since when.
        let mut watched: Option<(u64, Instant)> = None;
        loop {
            let cas = match self.read_lock(&rest).await? {
                Seen::Free { cas } => Some(cas),
                Seen::Held { version } => match watched {
                    Some((seen, since)) if seen == version && since.elapsed() >= LEASE => {
                        tracing::warn!(
                            store = %self.describe(),
                            "taking over a refresh-token lock whose holder stopped renewing it"
                        );
                        Some(version)
                    }
                    Some((seen, _)) if seen == version => None,
                    _ => {
                        watched = Some((version, Instant::now()));
                        None
                    }
                },
            };
            if let Some(cas) = cas
                && let Some(version) = self.write_cas(&rest, ACTION, &lease(&holder), cas).await?
            {
                return Ok(RefreshTokenLock::new(Lease::start(
                    self.clone(),
                    rest,
                    holder,
                    version,
                )));
            }
            let waited = started.elapsed();
            if waited >= LOCK_WAIT {
                return Err(StoreError::LockTimeout {
                    store: self.name(),
                    path: self.kv_path("data", &rest).into(),
                    waited,
                });
            }
            let jitter = POLL.mul_f64(rand::random::<f64>());
            tokio::time::sleep((POLL + jitter).min(LOCK_WAIT - waited)).await;
        }
    }
}

/// What a holder writes: who holds it and, for people reading Vault, until when.
fn lease(holder: &str) -> Value {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_add(LEASE.as_secs());
    json!({ "holder": holder, "lease_secs": LEASE.as_secs(), "expires_at": until })
}

/// A held lock: a task renews its lease until this is dropped, then releases it.
struct Lease {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Lease {
    fn start(store: VaultStore, rest: String, holder: String, version: u64) -> Lease {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut version = version;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(HEARTBEAT) => {
                        match store.write_cas(&rest, ACTION, &lease(&holder), version).await {
                            Ok(Some(renewed)) => version = renewed,
                            Ok(None) => {
                                tracing::warn!(
                                    store = %store.describe(),
                                    "the refresh-token lock was taken over after this holder's lease lapsed"
                                );
                                return;
                            }
                            Err(e) => tracing::warn!(error = %e, "could not renew the refresh-token lock's lease"),
                        }
                    }
                }
            }
            let released = json!({ "released": true, "holder": holder });
            match store.write_cas(&rest, ACTION, &released, version).await {
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!(
                    store = %store.describe(),
                    "the refresh-token lock was taken over after this holder's lease lapsed"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not release the refresh-token lock; others take it over when its lease lapses"
                ),
            }
        });
        Lease { _stop: stop }
    }
}
