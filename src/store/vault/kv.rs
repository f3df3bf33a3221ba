//! The KV v2 side of [`VaultStore`]: reads with their version, and check-and-set writes.

use crate::store::NamedStore;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use super::VaultStore;
use crate::store::{RefreshTokenRecord, StoreError, same_secret};
use crate::vault::{Answer, VaultCall};

/// The check-and-set of a KV v2 write. Every write sends one, so a mount (or path) with
/// `cas_required=true` accepts it.
#[derive(Clone, Copy)]
pub(super) enum Cas {
    /// Create only: the secret must not exist (`cas=0`).
    Create,
    /// Replace exactly this version (the one this writer read).
    Version(u64),
    /// Replace whatever is there: read the current version, then write on it.
    Replace,
}

impl VaultStore {
    /// Deletes a KV v2 secret with all its versions (its metadata); a missing one is no error.
    pub(super) async fn delete(&self, rest: &str, action: &str) -> Result<(), StoreError> {
        self.call(VaultCall::delete(action, self.kv_path("metadata", rest)))
            .await?;
        Ok(())
    }

    /// Reads a KV v2 secret: its data and version, or `None` when absent or deleted.
    pub(super) async fn read(
        &self,
        rest: &str,
        action: &str,
    ) -> Result<Option<(Value, u64)>, StoreError> {
        let answer = self.read_data(rest, action).await?;
        let Answer::Ok(value) = answer else {
            return Ok(None);
        };
        let version = kv_version(&value);
        match value.pointer("/data/data") {
            Some(data @ Value::Object(_)) => Ok(Some((data.clone(), version))),
            _ => Ok(None),
        }
    }

    /// The answer to a read of the KV v2 secret at `rest`.
    pub(super) async fn read_data(&self, rest: &str, action: &str) -> Result<Answer, StoreError> {
        self.call(VaultCall::get(action, self.kv_path("data", rest)))
            .await
    }

    /// One check-and-set write of `data` to the KV v2 secret at `rest`, on `version`: the new
    /// version, or `None` when another writer changed the secret first. A refused write is an
    /// error naming the mount.
    pub(super) async fn write_cas(
        &self,
        rest: &str,
        action: &str,
        data: &Value,
        version: u64,
    ) -> Result<Option<u64>, StoreError> {
        let body = json!({ "data": data, "options": { "cas": version } });
        match self
            .call(VaultCall::post(action, self.kv_path("data", rest), &body))
            .await?
        {
            Answer::Ok(value) => Ok(Some(
                value
                    .pointer("/data/version")
                    .and_then(Value::as_u64)
                    .unwrap_or(version.saturating_add(1)),
            )),
            Answer::CasMismatch => Ok(None),
            Answer::NotFound(_) | Answer::Forbidden(_) => Err(StoreError::Missing {
                store: self.name(),
                what: format!("the KV v2 mount {}", self.client.config.kv_mount),
                hint: "enable a KV v2 secrets engine there (`bao secrets enable -version=2 -path=<mount> kv`)".to_owned(),
            }),
        }
    }

    /// The current version of a KV v2 secret (0 when it never existed or its metadata was
    /// deleted): what a write must send as `cas` to replace it.
    pub(super) async fn current_version(
        &self,
        rest: &str,
        action: &str,
    ) -> Result<u64, StoreError> {
        let answer = self.read_data(rest, action).await?;
        // A soft-deleted secret answers 404 but keeps its version, which `cas` must name.
        let (Answer::Ok(value) | Answer::NotFound(value)) = answer else {
            return Ok(0);
        };
        Ok(kv_version(&value))
    }

    /// Writes a KV v2 secret with check-and-set. `Ok(true)`: written; `Ok(false)`: another
    /// writer changed the secret first (for [`Cas::Replace`]: three times in a row), nothing
    /// was written. Every other failure, a refused write included, is an error.
    pub(super) async fn write(
        &self,
        rest: &str,
        action: &str,
        data: &Value,
        cas: Cas,
    ) -> Result<bool, StoreError> {
        let attempts = if matches!(cas, Cas::Replace) { 3 } else { 1 };
        for _ in 0..attempts {
            let version = match cas {
                Cas::Create => 0,
                Cas::Version(version) => version,
                Cas::Replace => self.current_version(rest, action).await?,
            };
            if self.write_cas(rest, action, data, version).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Thumbprints of the keys under `<path>/staged-keys/` (a KV v2 LIST); none when the
    /// folder does not exist.
    pub(super) async fn list_staged(&self) -> Result<Vec<String>, StoreError> {
        let answer = self
            .call(VaultCall::get(
                "list the staged keys",
                format!("{}?list=true", self.kv_path("metadata", "staged-keys")),
            ))
            .await?;
        let Answer::Ok(value) = answer else {
            return Ok(Vec::new());
        };
        let mut keys: Vec<String> = value
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(|k| k.trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        Ok(keys)
    }

    /// Saves a refresh token with check-and-set on the version holding `previous`, with its
    /// issuer (the token URL) when known.
    pub(super) async fn save_refresh_record(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let rest = self.refresh_rest();
        let mut data = json!({ "refresh_token": record.refresh_token.expose_secret() });
        if let (Some(issuer), Value::Object(map)) = (&record.issuer, &mut data) {
            map.insert("issuer".to_owned(), issuer.as_str().into());
        }
        let cas = match previous {
            None => Cas::Replace,
            Some(previous) => {
                let current = self.read(&rest, "read the refresh token").await?;
                let (value, version) = match current {
                    Some((data, version)) => (
                        data.get("refresh_token")
                            .and_then(Value::as_str)
                            .map(|t| SecretString::from(t.to_owned())),
                        version,
                    ),
                    None => (None, 0),
                };
                if !same_secret(value.as_ref(), Some(previous)) {
                    return Err(StoreError::Conflict { store: self.name() });
                }
                Cas::Version(version)
            }
        };
        if self
            .write(&rest, "write the refresh token", &data, cas)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Conflict { store: self.name() })
        }
    }
}

/// The version of a KV v2 secret in a read's answer (0 when it has none).
pub(super) fn kv_version(value: &Value) -> u64 {
    value
        .pointer("/data/metadata/version")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}
