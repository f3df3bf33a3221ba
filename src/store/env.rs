//! The environment store, for containers.

use std::ffi::OsString;
use std::path::PathBuf;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};

use super::NamedStore;
use super::private_files::read_secret_file;
use super::{
    CredentialStore, Identity, MemorySlot, RefreshTokenLock, RefreshTokenRecord, StoreError,
    StoreKind, StoreLocation, StoreReport,
};
use crate::keys::PrivateKey;

/// Variable holding the binding's client id.
pub const CLIENT_ID_VAR: &str = "RALIO_CLIENT_ID";
/// Variable holding the private key as a JWK (JSON with `d`).
pub const PRIVATE_JWK_VAR: &str = "RALIO_PRIVATE_JWK";
/// Variable holding the private key as PEM text.
pub const PRIVATE_KEY_PEM_VAR: &str = "RALIO_PRIVATE_KEY_PEM";
/// Variable holding the path of a PEM private key file.
pub const PRIVATE_KEY_PATH_VAR: &str = "RALIO_PRIVATE_KEY_PATH";

/// An identity from environment variables: `RALIO_CLIENT_ID` plus exactly one of
/// `RALIO_PRIVATE_JWK` (a private JWK as JSON), `RALIO_PRIVATE_KEY_PEM` (PEM text) or
/// `RALIO_PRIVATE_KEY_PATH` (a PEM file, refused when group or others can read it).
///
/// The variables are read once, when the store is built. Empty variables count as unset.
/// Refresh tokens live in memory. The store is read-only: registration cannot save into it.
#[derive(Clone)]
pub struct EnvStore {
    client_id: Option<String>,
    jwk: Option<SecretString>,
    pem: Option<SecretString>,
    path: Option<PathBuf>,
    refresh_token: MemorySlot,
}

impl std::fmt::Debug for EnvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvStore")
            .field("client_id", &self.client_id)
            .field("jwk", &self.jwk.as_ref().map(|_| "[redacted]"))
            .field("pem", &self.pem.as_ref().map(|_| "[redacted]"))
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EnvStore {
    /// Reads the variables from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars_os())
    }

    /// Reads the variables from `vars` instead of the process environment (for tests, or
    /// a configuration that arrives some other way).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut store = Self {
            client_id: None,
            jwk: None,
            pem: None,
            path: None,
            refresh_token: MemorySlot::default(),
        };
        for (key, value) in vars {
            let (key, value) = (key.into(), value.into());
            if crate::config::is_unset(&value) {
                continue;
            }
            let text = || value.clone().into_string().ok();
            match key.to_str() {
                Some(CLIENT_ID_VAR) => store.client_id = text().map(|s| s.trim().to_owned()),
                Some(PRIVATE_JWK_VAR) => store.jwk = text().map(SecretString::from),
                Some(PRIVATE_KEY_PEM_VAR) => store.pem = text().map(SecretString::from),
                Some(PRIVATE_KEY_PATH_VAR) => store.path = Some(PathBuf::from(value)),
                _ => {}
            }
        }
        store
    }

    fn missing(&self, what: &str, hint: &str) -> StoreError {
        StoreError::Missing {
            store: self.name(),
            what: what.to_owned(),
            hint: hint.to_owned(),
        }
    }

    fn invalid(&self, what: &str, source: crate::keys::KeyError) -> StoreError {
        StoreError::InvalidKey {
            store: self.name(),
            what: what.to_owned(),
            source,
        }
    }

    fn load_key(&self) -> Result<Option<PrivateKey>, StoreError> {
        let set = [self.jwk.is_some(), self.pem.is_some(), self.path.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(StoreError::Config {
                store: self.name(),
                reason: format!(
                    "more than one of {PRIVATE_JWK_VAR}, {PRIVATE_KEY_PEM_VAR} and {PRIVATE_KEY_PATH_VAR} is set; set exactly one"
                ),
            });
        }
        if let Some(jwk) = &self.jwk {
            return PrivateKey::from_jwk(jwk.expose_secret())
                .map(Some)
                .map_err(|e| self.invalid(PRIVATE_JWK_VAR, e));
        }
        if let Some(pem) = &self.pem {
            return PrivateKey::from_pem(pem.expose_secret())
                .map(Some)
                .map_err(|e| self.invalid(PRIVATE_KEY_PEM_VAR, e));
        }
        if let Some(path) = &self.path {
            let Some(bytes) = read_secret_file(path, &self.name())? else {
                return Err(self.missing(
                    &format!(
                        "the key file {} named by {PRIVATE_KEY_PATH_VAR}",
                        path.display()
                    ),
                    "point the variable at an existing PEM file",
                ));
            };
            let what = path.display().to_string();
            let pem =
                std::str::from_utf8(bytes.expose_secret()).map_err(|_| StoreError::Corrupt {
                    store: self.name(),
                    what: what.clone(),
                    reason: "not a text PEM file".to_owned(),
                })?;
            return PrivateKey::from_pem(pem)
                .map(Some)
                .map_err(|e| self.invalid(&what, e));
        }
        Ok(None)
    }
}

#[async_trait]
impl CredentialStore for EnvStore {
    fn describe(&self) -> String {
        "environment store".to_owned()
    }

    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        let key = self.load_key()?;
        match (&self.client_id, key) {
            (None, None) => Ok(None),
            (Some(id), Some(key)) => {
                let id = super::checked_client_id(&self.name(), CLIENT_ID_VAR, id.clone())?;
                Ok(Some(Identity::new(id, key)))
            }
            (Some(_), None) => Err(self.missing(
                "the private key",
                &format!(
                    "{CLIENT_ID_VAR} is set; also set {PRIVATE_JWK_VAR}, {PRIVATE_KEY_PEM_VAR} or {PRIVATE_KEY_PATH_VAR}"
                ),
            )),
            (None, Some(_)) => Err(self.missing(
                CLIENT_ID_VAR,
                "a private key variable is set; also set RALIO_CLIENT_ID to the binding's cb_… id",
            )),
        }
    }

    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        Err(StoreError::Config {
            store: self.name(),
            reason: format!(
                "environment variables cannot be written from here; register into another store and export {CLIENT_ID_VAR}={} with the key in {PRIVATE_JWK_VAR}",
                identity.client_id()
            ),
        })
    }

    /// Refuses: the environment cannot be written, so a registration into this store would
    /// lose its key once the server accepted it. Failing here stops it before any request.
    async fn stage_key(
        &self,
        _key: &crate::keys::PrivateKey,
        _overwrite: bool,
    ) -> Result<Option<String>, StoreError> {
        Err(StoreError::Config {
            store: self.name(),
            reason: format!(
                "registration cannot save into environment variables; register into a file, keyring or vault store, then export {CLIENT_ID_VAR} and {PRIVATE_JWK_VAR}"
            ),
        })
    }

    /// Names the variables the store reads and those that were set (never their values),
    /// and loads the identity from them. Nothing is ever staged here.
    async fn report(&self) -> StoreReport {
        let set = [
            (CLIENT_ID_VAR, self.client_id.is_some()),
            (PRIVATE_JWK_VAR, self.jwk.is_some()),
            (PRIVATE_KEY_PEM_VAR, self.pem.is_some()),
            (PRIVATE_KEY_PATH_VAR, self.path.is_some()),
        ];
        let mut report = StoreReport::new(
            StoreKind::Env,
            self.describe(),
            StoreLocation::Env {
                variables: set.iter().map(|(name, _)| (*name).to_owned()).collect(),
                set: set
                    .iter()
                    .filter(|(_, set)| *set)
                    .map(|(name, _)| (*name).to_owned())
                    .collect(),
                key_file: self.path.clone(),
            },
        );
        report.fill_from(self).await;
        report.staged_keys = Some(Vec::new());
        report
    }

    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        Ok(self.refresh_token.load())
    }

    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        self.refresh_token.save(|| self.name(), previous, record)
    }

    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.refresh_token.clear();
        Ok(())
    }

    async fn lock_refresh_token(&self) -> Result<RefreshTokenLock, StoreError> {
        Ok(self.refresh_token.lock().await)
    }
}

impl NamedStore for EnvStore {
    const KIND: StoreKind = StoreKind::Env;
}
