//! HashiCorp Vault / OpenBao: the KV v2 credential store (feature `vault`). Its HTTP client
//! (address, login, token) is the crate's `vault` module, shared with the Transit signer
//! ([`TransitSigner`]); the KV v2 reads and check-and-set writes are in `kv`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::NamedStore;
use super::{
    CredentialStore, Identity, IdentityKey, PendingRegistration, Presence, RefreshTokenRecord,
    StoreError, StoreKind, StoreLocation, StoreName, StoreProblem, StoreReport,
};
use crate::keys::{PrivateKey, PublicJwk, Signer as _, TransitKey, TransitSigner};
use crate::vault::{Answer, DENIED_HINT, VaultCall, VaultClient, VaultError};
pub use crate::vault::{VaultAuth, VaultConfig};

mod kv;
mod lock;

use kv::Cas;

impl VaultConfig {
    /// This instance's refresh-token slot (default `default`). Instances on one slot, on this
    /// host or others, take turns renewing through a lock held in Vault
    /// (`<path>/refresh-tokens/<slot>.lock`, see [`CredentialStore::lock_refresh_token`]), so
    /// none presents a token another has rotated; a slot per instance saves them the waiting.
    pub fn refresh_token_slot(mut self, slot: impl Into<String>) -> Self {
        self.slot = super::file::slot_file_stem(&slot.into());
        self
    }
}

/// Where a legacy registration waiting for approval is kept, under the store's path.
const PENDING_REST: &str = "pending-registration";

/// Credentials in HashiCorp Vault or OpenBao KV v2 (feature `vault`).
///
/// The identity is `{client_id, private_key_pem}` at `<mount>/data/<path>/identity`, or
/// `{client_id, transit_mount, transit_key}` when the key is a Transit key (see
/// [`TransitSigner`]). Each refresh token is written with check-and-set on the version this
/// writer read, so a stale writer is refused ([`StoreError::Conflict`]) instead of silently
/// overwriting a newer token.
#[derive(Clone)]
pub struct VaultStore {
    client: Arc<VaultClient>,
}

impl fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultStore")
            .field("config", &self.client.config)
            .finish()
    }
}

#[derive(Deserialize)]
struct IdentitySecret {
    client_id: Option<String>,
    private_key_pem: Option<String>,
    transit_mount: Option<String>,
    transit_key: Option<String>,
    key_ref: Option<String>,
    key_jkt: Option<String>,
}

/// A [`VaultError`] as the [`StoreError`] of the store (or Transit key) named `store`.
fn store_error(store: StoreName, error: VaultError) -> StoreError {
    match error {
        VaultError::Config { reason } => StoreError::Config { store, reason },
        VaultError::Denied { action, source } => StoreError::Denied {
            store,
            action,
            hint: DENIED_HINT.to_owned(),
            source: Some(Box::new(source)),
        },
        VaultError::Backend {
            action,
            hint,
            source,
        } => StoreError::Backend {
            store,
            action,
            hint: hint.to_owned(),
            source,
        },
    }
}

impl VaultStore {
    /// The store for `config`.
    pub fn new(config: VaultConfig) -> Result<Self, StoreError> {
        let client = VaultClient::new(config)
            .map_err(|e| store_error(StoreName::new(StoreKind::Vault, "vault store"), e))?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    /// A signer for the Transit key `key` on mount `mount`, using this store's Vault
    /// connection. The signer keeps that connection and the key's name: it signs on its own,
    /// and [`save_identity`](CredentialStore::save_identity) records which key it is.
    pub async fn transit_signer(
        &self,
        mount: &str,
        key: &str,
    ) -> Result<TransitSigner, StoreError> {
        let key = TransitKey::new(mount, key);
        let store = StoreName::new(StoreKind::Vault, format!("vault transit key {key}"));
        let answer = self
            .client
            .call(VaultCall::get(
                "read the Transit key",
                format!("{}/keys/{}", key.mount(), key.name()),
            ))
            .await
            .map_err(|e| store_error(store.clone(), e))?;
        let Answer::Ok(value) = answer else {
            return Err(StoreError::Missing {
                store,
                what: "the Transit key".to_owned(),
                hint: "create it (`bao write -f transit/keys/<name> type=ecdsa-p256`) or with VaultStore::create_transit_key".to_owned(),
            });
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            store: store.clone(),
            what: "the Transit key".to_owned(),
            reason: reason.to_owned(),
        };
        if value.pointer("/data/type").and_then(Value::as_str) != Some("ecdsa-p256") {
            return Err(corrupt(
                "it is not an ecdsa-p256 key; ES256 needs a P-256 key",
            ));
        }
        let version = value
            .pointer("/data/latest_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("it has no latest_version"))?;
        let pem = value
            .pointer(&format!("/data/keys/{version}/public_key"))
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("its latest version has no public key"))?;
        let public_jwk =
            PublicJwk::from_public_key_pem(pem).map_err(|source| StoreError::InvalidKey {
                store: store.clone(),
                what: "the Transit public key".to_owned(),
                source,
            })?;
        Ok(TransitSigner::new(
            Arc::clone(&self.client),
            key,
            version,
            public_jwk,
        ))
    }

    /// Creates a non-exportable P-256 key `key` on Transit mount `mount` (if it does not exist
    /// yet) and returns its signer. Register it with
    /// [`RegisterOptions::signer`](crate::register::RegisterOptions::signer).
    pub async fn create_transit_key(
        &self,
        mount: &str,
        key: &str,
    ) -> Result<TransitSigner, StoreError> {
        let path = format!("{}/keys/{key}", mount.trim_matches('/'));
        let body =
            json!({"type": "ecdsa-p256", "exportable": false, "allow_plaintext_backup": false});
        self.call(VaultCall::post("create the Transit key", path, &body))
            .await?;
        self.transit_signer(mount, key).await
    }

    /// One call to Vault; a failure names this store.
    async fn call(&self, call: VaultCall<'_>) -> Result<Answer, StoreError> {
        self.client
            .call(call)
            .await
            .map_err(|e| store_error(self.name(), e))
    }

    fn kv_path(&self, kind: &str, rest: &str) -> String {
        let c = &self.client.config;
        format!("{}/{kind}/{}/{rest}", c.kv_mount, c.path)
    }

    fn refresh_rest(&self) -> String {
        format!("refresh-tokens/{}", self.client.config.slot)
    }

    fn staged_rest(key: &PrivateKey) -> String {
        format!("staged-keys/{}", key.thumbprint().as_str())
    }

    fn corrupt(&self, what: &str, reason: &str) -> StoreError {
        StoreError::Corrupt {
            store: self.name(),
            what: what.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

impl NamedStore for VaultStore {
    const KIND: StoreKind = StoreKind::Vault;
}

#[async_trait]
impl CredentialStore for VaultStore {
    fn describe(&self) -> String {
        let c = &self.client.config;
        format!("vault store at {} ({}/{})", c.addr, c.kv_mount, c.path)
    }

    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        let Some((data, _)) = self.read("identity", "read the identity").await? else {
            return Ok(None);
        };
        let what = self.kv_path("data", "identity");
        let secret: IdentitySecret = serde_json::from_value(data)
            .map_err(|_| self.corrupt(&what, "its fields are not strings"))?;
        let client_id = secret
            .client_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| self.corrupt(&what, "it has no client_id"))?;
        let client_id = super::checked_client_id(&self.name(), &what, client_id)?;
        if let Some(pem) = secret.private_key_pem {
            let key = PrivateKey::from_pem(&pem).map_err(|source| StoreError::InvalidKey {
                store: self.name(),
                what: what.clone(),
                source,
            })?;
            return Ok(Some(Identity::new(client_id, key)));
        }
        if let Some(text) = secret.key_ref {
            return super::reference::open_stored(
                &self.name(),
                &what,
                client_id,
                &text,
                secret.key_jkt.as_deref(),
            )
            .await
            .map(Some);
        }
        match (secret.transit_mount, secret.transit_key) {
            (Some(mount), Some(key)) => {
                let signer = self.transit_signer(&mount, &key).await?;
                Ok(Some(Identity::with_signer(client_id, Arc::new(signer))))
            }
            _ => Err(self.corrupt(
                &what,
                "it has neither private_key_pem nor transit_mount and transit_key",
            )),
        }
    }

    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        super::check_saved_client_id(&self.name(), identity)?;
        let where_ = self.kv_path("data", "identity");
        let data = match identity.key() {
            IdentityKey::Local(key) => json!({
                "client_id": identity.client_id(),
                "private_key_pem": key.to_pkcs8_pem().expose_secret(),
                "key_jkt": key.thumbprint().as_str(),
            }),
            IdentityKey::Remote(signer) => {
                // The Transit signers this SDK builds carry their key's name; any other signer
                // cannot be found again from what this store could record.
                // Any other key by its reference (PKCS#11, AWS KMS).
                let any: &dyn std::any::Any = signer.as_ref();
                if let Some(transit) = any.downcast_ref::<TransitSigner>() {
                    json!({
                        "client_id": identity.client_id(),
                        "transit_mount": transit.key().mount(),
                        "transit_key": transit.key().name(),
                        "key_jkt": transit.public_jwk().thumbprint().as_str(),
                    })
                } else {
                    let (key_ref, key_jkt) =
                        super::reference::reference_of(signer.as_ref(), &self.name())?;
                    json!({
                        "client_id": identity.client_id(),
                        "key_ref": key_ref,
                        "key_jkt": key_jkt,
                    })
                }
            }
        };
        if !self
            .write("identity", "write the identity", &data, Cas::Replace)
            .await?
        {
            return Err(StoreError::Backend {
                store: self.name(),
                action: format!("write the identity to {where_}"),
                hint: "other writers kept changing it; make sure no other registration writes to this path, then try again".to_owned(),
                source: None,
            });
        }
        // The identity now holds the key: its staged copy is no longer needed.
        if let IdentityKey::Local(key) = identity.key()
            && let Err(e) = self.discard_staged_key(key).await
        {
            tracing::warn!(error = %e, "could not remove the staged copy of a saved key");
        }
        Ok(format!("Vault KV {where_} ({})", self.client.config.addr))
    }

    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let rest = self.refresh_rest();
        let Some((data, _)) = self.read(&rest, "read the refresh token").await? else {
            return Ok(None);
        };
        let issuer = match data.get("issuer") {
            Some(Value::String(i)) if !i.is_empty() => Some(i.clone()),
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(self.corrupt(&self.kv_path("data", &rest), "issuer is not a string"));
            }
        };
        match data.get("refresh_token") {
            Some(Value::String(t)) if !t.is_empty() => Ok(Some(RefreshTokenRecord::new(
                SecretString::from(t.clone()),
                issuer,
            ))),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(self.corrupt(
                &self.kv_path("data", &rest),
                "refresh_token is not a string",
            )),
        }
    }

    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        self.save_refresh_record(previous, record).await
    }

    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.delete(&self.refresh_rest(), "delete the refresh token")
            .await
    }

    /// A lock held in Vault itself (`<path>/refresh-tokens/<slot>.lock`), so renewals on one
    /// slot take turns across processes and hosts: taken by a check-and-set write, kept by a
    /// lease the holder renews, released when the guard is dropped, and taken over from a
    /// holder that stopped renewing it for 30 s. Waits up to 60 s for another holder.
    async fn lock_refresh_token(&self) -> Result<super::RefreshTokenLock, StoreError> {
        self.lock_slot().await
    }

    /// Writes the key to `<mount>/data/<path>/staged-keys/<jkt>` before the registration
    /// request, so a failure after the server accepted it (a refused identity write, a lost
    /// connection) cannot lose it. [`save_identity`](CredentialStore::save_identity) removes
    /// it once the identity holds the key.
    async fn stage_key(
        &self,
        key: &PrivateKey,
        _overwrite: bool,
    ) -> Result<Option<String>, StoreError> {
        let rest = Self::staged_rest(key);
        let data = json!({
            "private_key_pem": key.to_pkcs8_pem().expose_secret(),
            "key_jkt": key.thumbprint().as_str(),
        });
        if !self
            .write(&rest, "stage the new key", &data, Cas::Create)
            .await?
        {
            return Err(StoreError::AlreadyExists {
                store: self.name(),
                what: format!("the staged key {}", self.kv_path("data", &rest)),
            });
        }
        Ok(Some(format!(
            "Vault KV {} ({})",
            self.kv_path("data", &rest),
            self.client.config.addr
        )))
    }

    async fn discard_staged_key(&self, key: &PrivateKey) -> Result<(), StoreError> {
        self.delete(&Self::staged_rest(key), "remove the staged key")
            .await
    }

    /// Writes `<mount>/data/<path>/pending-registration` (its key stays in
    /// `staged-keys/<jkt>`).
    async fn save_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<Option<String>, StoreError> {
        let rest = PENDING_REST;
        if !self
            .write(
                rest,
                "keep the pending registration",
                &pending.to_json(),
                Cas::Replace,
            )
            .await?
        {
            return Err(StoreError::Backend {
                store: self.name(),
                action: format!("write {}", self.kv_path("data", rest)),
                hint: "other writers kept changing it; make sure no other registration writes to this path".to_owned(),
                source: None,
            });
        }
        Ok(Some(format!(
            "Vault KV {} ({})",
            self.kv_path("data", rest),
            self.client.config.addr
        )))
    }

    async fn load_pending_registration(&self) -> Result<Option<PendingRegistration>, StoreError> {
        let Some((data, _)) = self
            .read(PENDING_REST, "read the pending registration")
            .await?
        else {
            return Ok(None);
        };
        let what = self.kv_path("data", PENDING_REST);
        let pending = PendingRegistration::from_json(&data).map_err(|r| self.corrupt(&what, &r))?;
        let staged = format!("staged-keys/{}", pending.fingerprint());
        let Some((key_data, _)) = self.read(&staged, "read the staged key").await? else {
            // A Transit signer's registration stages no key.
            return Ok(Some(pending));
        };
        let what = self.kv_path("data", &staged);
        let pem = key_data
            .get("private_key_pem")
            .and_then(Value::as_str)
            .ok_or_else(|| self.corrupt(&what, "it has no private_key_pem"))?;
        let key = PrivateKey::from_pem(pem).map_err(|source| StoreError::InvalidKey {
            store: self.name(),
            what,
            source,
        })?;
        Ok(Some(pending.with_key(Some(key))))
    }

    async fn clear_pending_registration(&self) -> Result<(), StoreError> {
        self.delete(PENDING_REST, "remove the pending registration")
            .await
    }

    /// Reads the identity (with the thumbprint it records), the refresh token's presence and
    /// issuer, and lists the staged keys.
    async fn report(&self) -> StoreReport {
        let c = &self.client.config;
        let mut report = StoreReport::new(
            StoreKind::Vault,
            self.describe(),
            StoreLocation::Vault {
                addr: c.addr.clone(),
                namespace: c.namespace.clone(),
                mount: c.kv_mount.clone(),
                path: c.path.clone(),
                identity_secret: self.kv_path("data", "identity"),
                refresh_token_secret: self.kv_path("data", &self.refresh_rest()),
            },
        );
        let recorded = match self.read("identity", "read the identity").await {
            Ok(found) => found.and_then(|(data, _)| {
                data.get("key_jkt")
                    .and_then(Value::as_str)
                    .filter(|jkt| !jkt.is_empty())
                    .map(str::to_owned)
            }),
            Err(_) => None,
        };
        report.fill_from(self).await;
        if let Some(key) = report.key.as_mut() {
            key.recorded_thumbprint = recorded;
            if key.mismatched() {
                report.problems.push(StoreProblem::ThumbprintMismatch {
                    what: self.kv_path("data", "identity"),
                    recorded: key.recorded_thumbprint.clone().unwrap_or_default(),
                    found: key.thumbprint.clone(),
                });
            }
        }
        if report.refresh_token == Presence::Present
            && let Ok(Some((data, _))) = self
                .read(&self.refresh_rest(), "read the refresh token")
                .await
        {
            report.issuer = data
                .get("issuer")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty())
                .map(str::to_owned);
        }
        match self.list_staged().await {
            Ok(keys) => report.staged_keys = Some(keys),
            Err(e) => report.problems.push(StoreProblem::from_error(&e)),
        }
        report
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_is_refused_off_loopback_unless_allowed() {
        use super::{VaultAuth, VaultConfig, VaultStore};
        let auth = || VaultAuth::Token(secrecy::SecretString::from("t"));
        for ok in [
            "https://vault.example",
            "http://127.0.0.1:8200",
            "http://localhost:1",
        ] {
            assert!(
                VaultStore::new(VaultConfig::new(ok, auth())).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://vault.example:8200",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "nope",
        ] {
            let err = VaultStore::new(VaultConfig::new(bad, auth())).unwrap_err();
            assert!(
                matches!(err, crate::store::StoreError::Config { .. }),
                "{bad}: {err}"
            );
        }
        let opted_out =
            VaultConfig::new("http://vault.example:8200", auth()).allow_insecure_http(true);
        assert!(VaultStore::new(opted_out).is_ok());
    }

    #[tokio::test]
    async fn a_refused_token_is_access_denied_with_what_to_check() {
        use super::{VaultAuth, VaultConfig, VaultStore};
        use crate::store::{CredentialStore as _, StoreError};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = r#"{"errors":["permission denied"]}"#;
                let answer = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let auth = VaultAuth::Token(secrecy::SecretString::from("t"));
        let store = VaultStore::new(VaultConfig::new(&addr, auth)).unwrap();
        let err = store.load_identity().await.unwrap_err();
        assert!(matches!(err, StoreError::Denied { .. }), "{err:?}");
        assert!(err.to_string().contains("policy allows this path"), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            cause.contains("403") && cause.contains("permission denied"),
            "{cause}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_vault_is_named_once_in_the_cause_chain() {
        use super::{VaultAuth, VaultConfig, VaultStore};
        use crate::store::CredentialStore as _;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let auth = VaultAuth::Token(secrecy::SecretString::from("t"));
        let store = VaultStore::new(VaultConfig::new(&addr, auth)).unwrap();
        let err = store.load_identity().await.unwrap_err();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert_eq!(text.matches(&addr).count(), 1, "{text}");
    }
}
