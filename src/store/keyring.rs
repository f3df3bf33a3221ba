//! The OS keyring store (feature `keyring`).

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use keyring_core::{CredentialStore as PlatformStore, Entry, Error as KeyringError};
use secrecy::{ExposeSecret as _, SecretString};

use super::NamedStore;
use super::RefreshTokenRecord;
use super::reference::{Loaded, reference_of};
use super::{
    CredentialStore, Identity, IdentityKey, KeyReport, PendingRegistration, Presence,
    RefreshTokenLock, StoreError, StoreKind, StoreLocation, StoreName, StoreProblem, StoreReport,
    same_secret,
};
use crate::keys::PrivateKey;

const CLIENT_ID_ACCOUNT: &str = "client-id";
const DEFAULT_SLOT: &str = "default";
const PENDING_ACCOUNT: &str = "pending-registration";

/// Which OS keyring a [`KeyringStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringBackend {
    /// The freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet, KeePassXC): persistent.
    /// The default on Linux and the BSDs.
    SecretService,
    /// The Linux kernel key retention service (keyutils). **Memory only**: entries live in the
    /// kernel's session keyring and are lost at logout or reboot, and a secret may be at most
    /// 32 KiB. Only on explicit request, for headless hosts without a Secret Service. The
    /// process needs a session keyring (a login session, or `keyctl session`); without one,
    /// entries written from one thread may not be found from another.
    KeyUtils,
    /// The platform store: the macOS login Keychain or the Windows Credential Manager.
    /// The default on macOS and Windows.
    Platform,
}

impl KeyringBackend {
    /// The persistent default for this operating system.
    pub fn platform_default() -> Self {
        if cfg!(any(target_os = "macos", target_os = "windows")) {
            Self::Platform
        } else {
            Self::SecretService
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::SecretService => "Secret Service",
            Self::KeyUtils => "kernel keyutils",
            Self::Platform => "platform keychain",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Self::SecretService => {
                "check that a Secret Service (gnome-keyring-daemon, KWallet) runs on the D-Bus session bus and is unlocked"
            }
            Self::KeyUtils => {
                "check that the process has a kernel session keyring (run under `keyctl session`)"
            }
            Self::Platform => {
                "check that the login keychain / credential manager is available and unlocked"
            }
        }
    }
}

/// Credentials in the OS keyring, through `keyring-core`.
///
/// Entries live under one service name (default `ralio`):
///
/// | account | secret |
/// | --- | --- |
/// | `client-id` | the binding's client id |
/// | `<client_id>` | the private key, PKCS#8 PEM; or, for a key that stays in its hardware, `{"key_ref": <KeyReference>, "key_jkt": …}` |
/// | `<client_id>/refresh-token/<slot>` | this instance's refresh token (slot `default` unless set): `{"refresh_token": …, "issuer": <token URL>}`, or the bare token when no issuer was recorded |
/// | `staged-key/<jkt>` | a key being registered, until its identity is saved |
/// | `pending-registration` | a legacy registration waiting for approval (JSON with its poll token) |
///
/// Client ids are checked (`cb_` and `[A-Za-z0-9_-]`) before they name an entry, so no client id
/// can address `client-id`, a staged key or another binding's refresh token.
///
/// The library never installs a process-global default keyring store: each `KeyringStore`
/// builds its own backend. Backend calls block, so each runs on a short-lived plain thread.
/// Rotations of one slot are serialised across processes of the same user by a lock file in
/// a private directory, `~/.ralio/locks` in the home directory the password database records
/// for the user (whatever `HOME`, `XDG_RUNTIME_DIR` or `RALIO_CONFIG_DIR` say, so a cron job
/// and a desktop session meet at the same lock). Waiting for it gives up after a minute.
#[derive(Clone)]
pub struct KeyringStore {
    shared: Arc<Shared>,
}

struct Shared {
    service: String,
    slot: String,
    backend: KeyringBackend,
    platform: Mutex<Option<Arc<PlatformStore>>>,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("service", &self.shared.service)
            .field("slot", &self.shared.slot)
            .field("backend", &self.shared.backend)
            .finish()
    }
}

impl KeyringStore {
    /// The store under service `service`, on this OS's persistent keyring
    /// ([`KeyringBackend::platform_default`]).
    pub fn new(service: impl Into<String>) -> Self {
        Self::with_backend(service, KeyringBackend::platform_default())
    }

    /// The store under service `service` on the given backend.
    pub fn with_backend(service: impl Into<String>, backend: KeyringBackend) -> Self {
        Self {
            shared: Arc::new(Shared {
                service: service.into(),
                slot: DEFAULT_SLOT.to_owned(),
                backend,
                platform: Mutex::new(None),
            }),
        }
    }

    /// Keeps this instance's refresh token under its own slot. Processes on this host that share
    /// a slot take turns through a lock file (in the user's `~/.ralio/locks`); a slot per
    /// process saves them the waiting.
    pub fn with_refresh_token_slot(self, slot: impl Into<String>) -> Self {
        let shared = &self.shared;
        Self {
            shared: Arc::new(Shared {
                service: shared.service.clone(),
                slot: slot.into(),
                backend: shared.backend,
                platform: Mutex::new(None),
            }),
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> KeyringBackend {
        self.shared.backend
    }

    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = Arc::clone(&self.shared);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A plain thread, not tokio's blocking pool: the Secret Service client blocks on its own
        // async runtime, which panics on a thread that is inside a tokio runtime context.
        let spawned = std::thread::Builder::new()
            .name("ralio-keyring".to_owned())
            .spawn(move || {
                let _ = tx.send(op(&shared));
            });
        let failed = |hint: &str| StoreError::Backend {
            store: self.name(),
            action: "run a keyring call".to_owned(),
            hint: hint.to_owned(),
            source: None,
        };
        if spawned.is_err() {
            return Err(failed("the operating system refused to start a thread"));
        }
        rx.await.map_err(|_| {
            failed("the keyring call panicked; this is a bug in the keyring backend")
        })?
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropping the Secret Service client blocks on its runtime, which panics inside a tokio
        // context: let a plain thread drop it.
        let platform = self
            .platform
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(platform) = platform {
            let _ = std::thread::Builder::new()
                .name("ralio-keyring-drop".to_owned())
                .spawn(move || drop(platform));
        }
    }
}

impl Shared {
    fn describe(&self) -> String {
        format!(
            "keyring store ({}, service {})",
            self.backend.name(),
            self.service
        )
    }

    /// This store in errors: its kind and description.
    fn name(&self) -> StoreName {
        StoreName::new(StoreKind::Keyring, self.describe())
    }

    fn backend_error(&self, action: &str, err: KeyringError) -> StoreError {
        let store = self.name();
        match err {
            // These variants carry the stored bytes: never keep them.
            KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(..) => StoreError::Corrupt {
                store,
                what: action.to_owned(),
                reason: "the entry's data is not valid text".to_owned(),
            },
            KeyringError::NoStorageAccess(source) => StoreError::Denied {
                store,
                action: action.to_owned(),
                hint: self.backend.hint().to_owned(),
                source: Some(source),
            },
            KeyringError::PlatformFailure(source) => StoreError::Backend {
                store,
                action: action.to_owned(),
                hint: self.backend.hint().to_owned(),
                source: Some(source),
            },
            other => StoreError::Backend {
                store,
                action: action.to_owned(),
                hint: self.backend.hint().to_owned(),
                source: Some(Box::new(other)),
            },
        }
    }

    fn platform(&self) -> Result<Arc<PlatformStore>, StoreError> {
        let mut slot = self.platform.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = slot.as_ref() {
            return Ok(Arc::clone(store));
        }
        let store = self.open_platform()?;
        *slot = Some(Arc::clone(&store));
        Ok(store)
    }

    fn open_platform(&self) -> Result<Arc<PlatformStore>, StoreError> {
        let unsupported = || StoreError::Config {
            store: self.name(),
            reason: format!(
                "the {} backend is not available on this operating system; use KeyringBackend::platform_default()",
                self.backend.name()
            ),
        };
        let opened: Result<Arc<PlatformStore>, KeyringError> = match self.backend {
            #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
            KeyringBackend::SecretService => {
                zbus_secret_service_keyring_store::Store::new().map(|s| s as Arc<PlatformStore>)
            }
            #[cfg(target_os = "linux")]
            KeyringBackend::KeyUtils => {
                linux_keyutils_keyring_store::Store::new().map(|s| s as Arc<PlatformStore>)
            }
            #[cfg(target_os = "macos")]
            KeyringBackend::Platform => {
                apple_native_keyring_store::keychain::Store::new().map(|s| s as Arc<PlatformStore>)
            }
            #[cfg(target_os = "windows")]
            KeyringBackend::Platform => {
                windows_native_keyring_store::Store::new().map(|s| s as Arc<PlatformStore>)
            }
            #[allow(unreachable_patterns)]
            _ => return Err(unsupported()),
        };
        opened.map_err(|e| self.backend_error("open the keyring", e))
    }

    fn entry(&self, account: &str) -> Result<Entry, StoreError> {
        self.platform()?
            .build(&self.service, account, None)
            .map_err(|e| self.backend_error(&format!("address entry {account}"), e))
    }

    fn get(&self, account: &str) -> Result<Option<SecretString>, StoreError> {
        match self.entry(account)?.get_password() {
            Ok(value) => Ok(Some(SecretString::from(value))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(self.backend_error(&format!("read entry {account}"), e)),
        }
    }

    fn set(&self, account: &str, value: &str) -> Result<(), StoreError> {
        self.entry(account)?
            .set_password(value)
            .map_err(|e| self.backend_error(&format!("write entry {account}"), e))
    }

    fn delete(&self, account: &str) -> Result<(), StoreError> {
        match self.entry(account)?.delete_credential() {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(self.backend_error(&format!("delete entry {account}"), e)),
        }
    }

    fn client_id(&self) -> Result<Option<String>, StoreError> {
        let Some(id) = self.get(CLIENT_ID_ACCOUNT)? else {
            return Ok(None);
        };
        let id = id.expose_secret().trim().to_owned();
        if id.is_empty() {
            return Err(StoreError::Corrupt {
                store: self.name(),
                what: format!("entry {CLIENT_ID_ACCOUNT}"),
                reason: "it is empty".to_owned(),
            });
        }
        // A client id names the key's own entry: one that is not `cb_…` could address another.
        super::checked_client_id(&self.name(), &format!("entry {CLIENT_ID_ACCOUNT}"), id).map(Some)
    }

    fn refresh_account(&self, client_id: &str) -> String {
        format!("{client_id}/refresh-token/{}", self.slot)
    }

    fn load_identity(&self) -> Result<Option<Loaded>, StoreError> {
        let Some(client_id) = self.client_id()? else {
            return Ok(None);
        };
        let Some(pem) = self.get(&client_id)? else {
            return Err(StoreError::Missing {
                store: self.name(),
                what: format!("the private key (entry {client_id})"),
                hint: "the keyring entry was removed; register again with a fresh ticket"
                    .to_owned(),
            });
        };
        if let Some((text, recorded_jkt)) = key_reference_entry(pem.expose_secret()) {
            return Ok(Some(Loaded::Reference {
                what: format!("entry {client_id}"),
                client_id,
                text,
                recorded_jkt,
            }));
        }
        let key =
            PrivateKey::from_pem(pem.expose_secret()).map_err(|source| StoreError::InvalidKey {
                store: self.name(),
                what: format!("entry {client_id}"),
                source,
            })?;
        Ok(Some(Loaded::Identity(Identity::new(client_id, key))))
    }

    /// Saves `entry` (a PEM key, or a key reference) as `client_id`'s key.
    fn save_identity(
        &self,
        client_id: &str,
        entry: &SecretString,
        staged: Option<&PrivateKey>,
    ) -> Result<String, StoreError> {
        self.set(client_id, entry.expose_secret())?;
        // The client id goes last: a half-saved identity stays invisible.
        self.set(CLIENT_ID_ACCOUNT, client_id)?;
        // The identity now holds the key: its staged copy is no longer needed.
        if let Some(key) = staged
            && let Err(e) = self.delete(&staged_account(key))
        {
            tracing::warn!(error = %e, "could not remove the staged copy of a saved key");
        }
        Ok(format!(
            "{} entry service={} account={client_id}",
            self.backend.name(),
            self.service
        ))
    }
}

/// The reference and recorded thumbprint of a key entry that holds `{"key_ref": …}`.
fn key_reference_entry(text: &str) -> Option<(String, Option<String>)> {
    if !text.starts_with('{') {
        return None;
    }
    let entry: serde_json::Value = serde_json::from_str(text).ok()?;
    let key_ref = entry.get("key_ref")?.as_str()?.to_owned();
    let jkt = entry
        .get("key_jkt")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Some((key_ref, jkt))
}

/// A refresh-token entry: `{"refresh_token": …, "issuer": …}`, or a bare token (written
/// without an issuer).
fn refresh_record(value: SecretString) -> RefreshTokenRecord {
    let text = value.expose_secret();
    if text.starts_with('{')
        && let Ok(entry) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(token) = entry
            .get("refresh_token")
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
    {
        let issuer = entry
            .get("issuer")
            .and_then(serde_json::Value::as_str)
            .filter(|i| !i.is_empty())
            .map(str::to_owned);
        return RefreshTokenRecord::new(SecretString::from(token.to_owned()), issuer);
    }
    RefreshTokenRecord::new(value, None)
}

impl Shared {
    /// [`CredentialStore::report`] on the keyring thread.
    fn report(&self) -> StoreReport {
        let mut report =
            StoreReport::new(StoreKind::Keyring, self.describe(), StoreLocation::Other);
        let mut key_account = None;
        let mut refresh_account = None;
        match self.client_id() {
            Ok(None) => {
                report.identity = Presence::Absent;
                report.refresh_token = Presence::Absent;
            }
            Err(e) => report.problems.push(StoreProblem::from_error(&e)),
            Ok(Some(client_id)) => {
                report.identity = Presence::Present;
                key_account = Some(client_id.clone());
                let account = self.refresh_account(&client_id);
                refresh_account = Some(account.clone());
                match self.get(&client_id) {
                    // A key reference: `report` opens it.
                    Ok(Some(pem)) if key_reference_entry(pem.expose_secret()).is_some() => {}
                    Ok(Some(pem)) => match PrivateKey::from_pem(pem.expose_secret()) {
                        Ok(key) => report.key = Some(KeyReport::of(&IdentityKey::Local(key))),
                        Err(e) => report.problems.push(StoreProblem::Corrupt {
                            what: format!("entry {client_id}"),
                            reason: format!("not a usable P-256 key: {e}"),
                        }),
                    },
                    Ok(None) => report.problems.push(StoreProblem::Missing {
                        what: format!("the private key (entry {client_id})"),
                    }),
                    Err(e) => report.problems.push(StoreProblem::from_error(&e)),
                }
                match self.get(&account) {
                    Ok(token) => report.refresh_token = Presence::from_bool(token.is_some()),
                    Err(e) => report.problems.push(StoreProblem::from_error(&e)),
                }
                report.client_id = Some(client_id);
            }
        }
        report.location = StoreLocation::Keyring {
            backend: self.backend.name().to_owned(),
            service: self.service.clone(),
            client_id_account: CLIENT_ID_ACCOUNT.to_owned(),
            key_account,
            refresh_token_account: refresh_account,
        };
        report
    }
}

/// The entry a key is staged in before registration: `staged-key/<jkt>`.
fn staged_account(key: &PrivateKey) -> String {
    format!("staged-key/{}", key.thumbprint().as_str())
}

impl NamedStore for KeyringStore {
    const KIND: StoreKind = StoreKind::Keyring;
}

#[async_trait]
impl CredentialStore for KeyringStore {
    fn describe(&self) -> String {
        self.shared.describe()
    }

    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        match self.run(|s| s.load_identity()).await? {
            Some(loaded) => loaded.open(&self.name()).await.map(Some),
            None => Ok(None),
        }
    }

    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        super::check_saved_client_id(&self.name(), identity)?;
        let (entry, staged) = match identity.key() {
            IdentityKey::Local(key) => (key.to_pkcs8_pem(), Some(key.clone())),
            IdentityKey::Remote(signer) => {
                let (key_ref, key_jkt) = reference_of(signer.as_ref(), &self.name())?;
                let entry = serde_json::json!({"key_ref": key_ref, "key_jkt": key_jkt});
                (SecretString::from(entry.to_string()), None)
            }
        };
        let client_id = identity.client_id().to_owned();
        self.run(move |s| s.save_identity(&client_id, &entry, staged.as_ref()))
            .await
    }

    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        self.run(|s| match s.client_id()? {
            Some(id) => Ok(s.get(&s.refresh_account(&id))?.map(refresh_record)),
            None => Ok(None),
        })
        .await
    }

    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let previous = previous.cloned();
        let token = &record.refresh_token;
        let entry = match &record.issuer {
            Some(issuer) => SecretString::from(
                serde_json::json!({ "refresh_token": token.expose_secret(), "issuer": issuer })
                    .to_string(),
            ),
            // Without an issuer the entry stays a bare token, as the Python SDK writes it.
            None => token.clone(),
        };
        self.run(move |s| {
            let Some(id) = s.client_id()? else {
                return Err(StoreError::Missing {
                    store: s.name(),
                    what: format!("entry {CLIENT_ID_ACCOUNT}"),
                    hint: "save the identity (register) before its refresh tokens".to_owned(),
                });
            };
            let account = s.refresh_account(&id);
            let current = s.get(&account)?.map(|v| refresh_record(v).refresh_token);
            if previous.is_some() && !same_secret(current.as_ref(), previous.as_ref()) {
                return Err(StoreError::Conflict { store: s.name() });
            }
            s.set(&account, entry.expose_secret())
        })
        .await
    }

    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.run(|s| match s.client_id()? {
            Some(id) => s.delete(&s.refresh_account(&id)),
            None => Ok(()),
        })
        .await
    }

    async fn lock_refresh_token(&self) -> Result<RefreshTokenLock, StoreError> {
        let name = format!(
            "{}\n{}\n{}",
            self.shared.backend.name(),
            self.shared.service,
            self.shared.slot
        );
        super::lock::lock_named(&name, &self.name()).await
    }

    /// Writes the key to entry `staged-key/<jkt>` before the registration request, so a
    /// failure after the server accepted it cannot lose it; saving the identity removes it.
    async fn stage_key(
        &self,
        key: &PrivateKey,
        _overwrite: bool,
    ) -> Result<Option<String>, StoreError> {
        let key = key.clone();
        self.run(move |s| {
            let account = staged_account(&key);
            s.set(&account, key.to_pkcs8_pem().expose_secret())?;
            Ok(Some(format!(
                "{} entry service={} account={account}",
                s.backend.name(),
                s.service
            )))
        })
        .await
    }

    async fn discard_staged_key(&self, key: &PrivateKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.run(move |s| s.delete(&staged_account(&key))).await
    }

    /// Writes entry `pending-registration` (its key stays in `staged-key/<jkt>`).
    async fn save_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<Option<String>, StoreError> {
        let body = SecretString::from(pending.to_json().to_string());
        self.run(move |s| {
            s.set(PENDING_ACCOUNT, body.expose_secret())?;
            Ok(Some(format!(
                "{} entry service={} account={PENDING_ACCOUNT}",
                s.backend.name(),
                s.service
            )))
        })
        .await
    }

    async fn load_pending_registration(&self) -> Result<Option<PendingRegistration>, StoreError> {
        self.run(|s| {
            let Some(raw) = s.get(PENDING_ACCOUNT)? else {
                return Ok(None);
            };
            let corrupt = |reason: String| StoreError::Corrupt {
                store: s.name(),
                what: format!("entry {PENDING_ACCOUNT}"),
                reason,
            };
            let value: serde_json::Value = serde_json::from_str(raw.expose_secret())
                .map_err(|_| corrupt("not a JSON object".to_owned()))?;
            let pending = PendingRegistration::from_json(&value).map_err(corrupt)?;
            let account = format!("staged-key/{}", pending.fingerprint());
            let Some(pem) = s.get(&account)? else {
                // A remote signer's registration stages no key.
                return Ok(Some(pending));
            };
            let key = PrivateKey::from_pem(pem.expose_secret()).map_err(|source| {
                StoreError::InvalidKey {
                    store: s.name(),
                    what: format!("entry {account}"),
                    source,
                }
            })?;
            Ok(Some(pending.with_key(Some(key))))
        })
        .await
    }

    async fn clear_pending_registration(&self) -> Result<(), StoreError> {
        self.run(|s| s.delete(PENDING_ACCOUNT)).await
    }

    /// Reads the client-id, key and refresh-token entries. Staged keys are not listed (the
    /// keyring backends offer no portable search): `staged_keys` is `None`.
    async fn report(&self) -> StoreReport {
        let read = self.run(|s| Ok(s.report())).await;
        let loaded = self.run(|s| s.load_identity());
        let (kind, describe) = (StoreKind::Keyring, self.describe());
        super::reference::report_with_key(read, loaded, kind, describe, &self.name()).await
    }
}
