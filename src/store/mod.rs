//! Credential stores: where a host keeps its stable identity (client id and key) and the
//! rotating refresh token of each SDK instance.
//!
//! Every store implements [`CredentialStore`], an async, object-safe trait, so a client takes
//! an `Arc<dyn CredentialStore>` and does not care where the secrets live:
//!
//! | store | identity | refresh tokens |
//! | --- | --- | --- |
//! | [`FileStore`] | `~/.ralio` (shared with the Python SDK) | `refresh-tokens/<slot>.json`, else memory |
//! | [`KeyringStore`] (feature `keyring`) | OS keyring | OS keyring, one entry per slot |
//! | [`VaultStore`] (feature `vault`) | Vault / OpenBao KV v2, or a Transit key | KV v2 with check-and-set |
//! | [`EnvStore`] | `RALIO_CLIENT_ID` + key variables | memory |
//! | [`MemoryStore`] | memory | memory |
//!
//! # Refresh tokens
//!
//! A refresh-token slot holds one token family (see the protocol notes on rotation). The
//! client's token manager renews as `lock_refresh_token` → `load_refresh_token` (read afresh
//! each time) → refresh with the server → `save_refresh_token(previous, new)` → drop the lock.
//! The save is a compare-and-set: when the stored token is no longer `previous`, another writer
//! rotated it and the save fails with [`StoreError::Conflict`] instead of silently overwriting a
//! newer token. So several processes may share a slot (they take turns, and none presents a
//! token another has rotated, which the server would take for a replay and revoke the family);
//! a slot of its own per process still avoids the waiting.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};

use crate::keys::{KeyError, PrivateKey, PublicJwk, Signer, Thumbprint};
use crate::scope::Scope;

mod env;
mod file;
#[cfg(feature = "keyring")]
mod keyring;
mod lock;
mod memory;
mod private_files;
mod reference;
mod report;
#[cfg(feature = "vault")]
mod vault;

#[cfg(feature = "vault")]
pub use crate::config::MissingEnvVar;
pub use env::EnvStore;
pub use file::FileStore;
#[cfg(feature = "keyring")]
pub use keyring::{KeyringBackend, KeyringStore};
pub use memory::MemoryStore;
pub use reference::open_key;
pub use report::{FileLocation, KeyReport, Presence, StoreLocation, StoreProblem, StoreReport};
#[cfg(feature = "vault")]
pub use vault::{VaultAuth, VaultConfig, VaultStore};

/// The key half of an [`Identity`].
#[derive(Clone)]
#[non_exhaustive]
pub enum IdentityKey {
    /// The private key itself, held in this process.
    Local(PrivateKey),
    /// A signer whose key lives elsewhere (a PKCS#11 token, AWS KMS, a Vault Transit key).
    /// Stores save it by its [`KeyReference`](crate::keys::KeyReference)
    /// ([`Signer::key_location`]).
    Remote(Arc<dyn Signer>),
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(key) => f.debug_tuple("Local").field(key).finish(),
            Self::Remote(signer) => f
                .debug_tuple("Remote")
                .field(&signer.thumbprint().as_str())
                .finish(),
        }
    }
}

/// The stable identity of a credential binding: its client id and the key it was registered
/// with.
///
/// `Debug` shows the client id and the key's thumbprint, never key material.
#[derive(Clone)]
pub struct Identity {
    client_id: String,
    key: IdentityKey,
}

impl Identity {
    /// An identity whose private key is held in this process.
    pub fn new(client_id: impl Into<String>, key: PrivateKey) -> Self {
        Self {
            client_id: client_id.into(),
            key: IdentityKey::Local(key),
        }
    }

    /// An identity whose key is held by a [`Signer`] (for example a [`TransitSigner`](crate::keys::TransitSigner)).
    pub fn with_signer(client_id: impl Into<String>, signer: Arc<dyn Signer>) -> Self {
        Self {
            client_id: client_id.into(),
            key: IdentityKey::Remote(signer),
        }
    }

    /// The binding's client id (`cb_…`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The key, local or remote.
    pub fn key(&self) -> &IdentityKey {
        &self.key
    }

    /// The private key, when it is held in this process.
    pub fn private_key(&self) -> Option<&PrivateKey> {
        match &self.key {
            IdentityKey::Local(key) => Some(key),
            IdentityKey::Remote(_) => None,
        }
    }

    /// A signer for assertions and DPoP proofs, whichever kind of key this is.
    pub fn signer(&self) -> Arc<dyn Signer> {
        match &self.key {
            IdentityKey::Local(key) => Arc::new(key.clone()),
            IdentityKey::Remote(signer) => Arc::clone(signer),
        }
    }

    /// The public JWK of the key.
    pub fn public_jwk(&self) -> &PublicJwk {
        match &self.key {
            IdentityKey::Local(key) => key.public_jwk(),
            IdentityKey::Remote(signer) => signer.public_jwk(),
        }
    }

    /// The RFC 7638 thumbprint (`jkt`) of the key.
    pub fn thumbprint(&self) -> &Thumbprint {
        match &self.key {
            IdentityKey::Local(key) => key.thumbprint(),
            IdentityKey::Remote(signer) => signer.thumbprint(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("client_id", &self.client_id)
            .field("thumbprint", &self.thumbprint().as_str())
            .finish()
    }
}

/// Held while an instance rotates its refresh token; dropping it releases the lock.
///
/// Obtained from [`CredentialStore::lock_refresh_token`].
#[must_use = "the lock is released when this value is dropped"]
pub struct RefreshTokenLock {
    _guard: Option<Box<dyn Send + Sync>>,
}

impl RefreshTokenLock {
    /// A lock that holds nothing: for stores whose refresh token no other process can see.
    pub fn unshared() -> Self {
        Self { _guard: None }
    }

    /// A lock that releases when `guard` is dropped (a file lock, a mutex guard, ...).
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _guard: Some(Box::new(guard)),
        }
    }
}

impl fmt::Debug for RefreshTokenLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenLock")
            .field("held", &self._guard.is_some())
            .finish()
    }
}

/// A stored refresh token and the token URL that issued it.
///
/// `Debug` is redacted.
#[derive(Clone)]
#[non_exhaustive]
pub struct RefreshTokenRecord {
    /// The refresh token. It is a credential.
    pub refresh_token: SecretString,
    /// The token URL that issued it (`None`: not recorded, e.g. by the Python SDK).
    pub issuer: Option<String>,
}

impl RefreshTokenRecord {
    /// A record of `refresh_token` issued by the token URL `issuer`.
    pub fn new(refresh_token: SecretString, issuer: Option<String>) -> Self {
        Self {
            refresh_token,
            issuer,
        }
    }
}

impl fmt::Debug for RefreshTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("refresh_token", &"[redacted]")
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// Where a store keeps credentials and how it holds them.
///
/// Implement it to keep credentials somewhere the SDK does not know (a database, a
/// secret manager); see `examples/custom_store.rs`. Methods are async; implementations that
/// call blocking APIs should move them off the runtime (`tokio::task::spawn_blocking`).
///
/// Errors name the store (from [`describe`](Self::describe)) and what failed, never a secret.
#[async_trait]
pub trait CredentialStore: Send + Sync + fmt::Debug {
    /// A short human description used in messages, such as `file store at /home/me/.ralio`.
    fn describe(&self) -> String;

    /// Loads the stable identity; `Ok(None)` when none has been saved yet (register first).
    async fn load_identity(&self) -> Result<Option<Identity>, StoreError>;

    /// Saves the identity after a successful registration, replacing any previous one.
    ///
    /// Returns where the key now lives, in words (a path, a keyring entry, a Vault path), for
    /// the registration result.
    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError>;

    /// Loads this instance's refresh token with the token URL that issued it, when the store
    /// recorded one; `Ok(None)` when there is none. Read afresh on every renewal (under
    /// [`lock_refresh_token`](Self::lock_refresh_token)), so a token another process rotated
    /// is the one presented.
    ///
    /// A client never presents a refresh token to another token URL than its issuer (and
    /// leaves it in place); a token without an issuer (saved by the Python SDK, for example)
    /// is presented to whichever token URL the client has.
    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Saves a refresh token and its issuer, compare-and-set: `previous` is the token this
    /// writer replaced (`None` for the first token of a new family after a fresh mint, which
    /// replaces whatever is stored). When the stored token is no longer `previous`, another
    /// writer got there first and this fails with [`StoreError::Conflict`], leaving the stored
    /// token in place. A store that cannot keep the issuer may drop it.
    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError>;

    /// Removes this instance's refresh token (after the server rejected it, for example).
    async fn clear_refresh_token(&self) -> Result<(), StoreError>;

    /// Takes the lock that serialises rotations of this instance's refresh token across
    /// processes. Hold it from the load to the save of one rotation.
    ///
    /// The default returns [`RefreshTokenLock::unshared`], right for stores whose refresh
    /// token lives in this process only.
    async fn lock_refresh_token(&self) -> Result<RefreshTokenLock, StoreError> {
        Ok(RefreshTokenLock::unshared())
    }

    /// Called by [`register`](crate::register::register) before the registration request.
    ///
    /// A store that persists keys writes the key now, durably, and returns where: a failure
    /// between the server's answer and [`save_identity`](Self::save_identity) (a crash, a
    /// refused write) must not lose the only copy of a key the server already accepted, and a
    /// staged key must never replace the live one: a refused re-registration leaves the
    /// previous binding working. The file store writes `keys/<jkt>.pem` (refusing, unless
    /// `overwrite` is set, when a configured key path already holds a file); the keyring and
    /// Vault stores write a `staged-key` entry. `save_identity` moves the key into place. A
    /// store that cannot save an identity at all refuses here, so nothing is sent. The default
    /// does nothing, which suits stores whose keys live only in this process.
    async fn stage_key(
        &self,
        key: &PrivateKey,
        overwrite: bool,
    ) -> Result<Option<String>, StoreError> {
        let _ = (key, overwrite);
        Ok(None)
    }

    /// Removes a key written by [`stage_key`](Self::stage_key) after the registration failed.
    async fn discard_staged_key(&self, key: &PrivateKey) -> Result<(), StoreError> {
        let _ = key;
        Ok(())
    }

    /// Keeps a legacy registration that waits for the owner's approval, next to its staged
    /// key, so that [`resume`](crate::register::resume) can continue polling later (after a
    /// timeout, a lost connection, or a restart). Returns where it is kept, in words; `None`
    /// when this store cannot keep one (the default), and the registration then cannot be
    /// resumed. One pending registration per store: a new one replaces it.
    ///
    /// The record holds the poll token, which is a secret: keep it as carefully as the key.
    async fn save_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<Option<String>, StoreError> {
        let _ = pending;
        Ok(None)
    }

    /// The pending registration kept by
    /// [`save_pending_registration`](Self::save_pending_registration), with its staged key;
    /// `Ok(None)` when there is none (the default).
    async fn load_pending_registration(&self) -> Result<Option<PendingRegistration>, StoreError> {
        Ok(None)
    }

    /// Forgets the pending registration (not its key: see
    /// [`discard_staged_key`](Self::discard_staged_key)). Called once the registration ended:
    /// active, rejected or expired. Removing a record that is not there is not an error.
    async fn clear_pending_registration(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A structured account of the store for diagnostics (`ralio doctor`): its kind and
    /// location, whether an identity, a key (algorithm and thumbprint), a refresh token and
    /// staged keys are present, and what is wrong (a key file other users can read, a key that
    /// is not the registered one, an unreachable backend). It never holds a secret, and it
    /// reports failures as [`StoreProblem`]s instead of failing.
    ///
    /// The default loads the identity and the refresh token ([`StoreReport::fill_from`]) and
    /// names the store [`StoreKind::Other`] at [`StoreLocation::Other`].
    async fn report(&self) -> StoreReport {
        let mut report = StoreReport::new(StoreKind::Other, self.describe(), StoreLocation::Other);
        report.fill_from(self).await;
        report
    }
}

/// A legacy registration that the server accepted (`202` with a poll token) and that waits
/// for the owner's approval: what [`resume`](crate::register::resume) needs to continue
/// polling. Kept by [`CredentialStore::save_pending_registration`].
///
/// `Debug` shows the API URL and the key's thumbprint, never the poll token or the key.
#[derive(Clone)]
pub struct PendingRegistration {
    poll_token: SecretString,
    base_url: String,
    fingerprint: String,
    requested_scopes: Vec<Scope>,
    key: Option<PrivateKey>,
}

impl PendingRegistration {
    /// A pending registration of the key with thumbprint `fingerprint` at the API origin
    /// `base_url`, polled with `poll_token`. `key` is the private key when it is held locally
    /// (`None` for a remote signer, which resuming must be given again).
    pub fn new(
        poll_token: SecretString,
        base_url: impl Into<String>,
        fingerprint: impl Into<String>,
        requested_scopes: Vec<Scope>,
        key: Option<PrivateKey>,
    ) -> Self {
        Self {
            poll_token,
            base_url: base_url.into(),
            fingerprint: fingerprint.into(),
            requested_scopes,
            key,
        }
    }

    /// The poll token (a secret: never log it).
    pub fn poll_token(&self) -> &SecretString {
        &self.poll_token
    }

    /// The API origin the registration was sent to; polling continues there.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The RFC 7638 thumbprint of the key being registered.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The scopes that were requested (empty: the ticket's full ceiling).
    pub fn requested_scopes(&self) -> &[Scope] {
        &self.requested_scopes
    }

    /// The private key being registered, when it is held locally.
    pub fn key(&self) -> Option<&PrivateKey> {
        self.key.as_ref()
    }

    /// The same record with `key` as its key (a store sets it from its staged copy on load).
    pub fn with_key(mut self, key: Option<PrivateKey>) -> Self {
        self.key = key;
        self
    }

    /// The JSON a store keeps (the key is not in it: it stays in the staged-key entry).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "poll_token": self.poll_token.expose_secret(),
            "base_url": self.base_url,
            "fingerprint": self.fingerprint,
            "requested_scopes": self.requested_scopes,
        })
    }

    /// Reads what [`to_json`](Self::to_json) wrote; `Err` says which field is wrong, without
    /// echoing any value. Unknown fields are ignored.
    pub(crate) fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        let text = |field: &str| match value.get(field) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(format!("its {field} is missing or not a string")),
        };
        let requested_scopes = match value.get("requested_scopes") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().and_then(|s| s.parse::<Scope>().ok()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| "its requested_scopes are not scope strings".to_owned())?,
            Some(_) => return Err("its requested_scopes are not a list".to_owned()),
        };
        let fingerprint = text("fingerprint")?;
        // A thumbprint is base64url; it names the staged-key entry, so nothing else is taken.
        if fingerprint.len() > 64
            || !fingerprint
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("its fingerprint is not a key thumbprint".to_owned());
        }
        Ok(Self {
            poll_token: SecretString::from(text("poll_token")?),
            base_url: text("base_url")?,
            fingerprint,
            requested_scopes,
            key: None,
        })
    }
}

impl fmt::Debug for PendingRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingRegistration")
            .field("poll_token", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("fingerprint", &self.fingerprint)
            .field("requested_scopes", &self.requested_scopes)
            .field("key_held", &self.key.is_some())
            .finish()
    }
}

/// Which kind of store: in a [`StoreReport`], and in every [`StoreError`] ([`StoreName::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// [`FileStore`].
    File,
    /// [`KeyringStore`] (feature `keyring`).
    Keyring,
    /// [`VaultStore`] (feature `vault`).
    Vault,
    /// [`EnvStore`].
    Env,
    /// [`MemoryStore`].
    Memory,
    /// A store from outside this crate.
    Other,
}

impl StoreKind {
    /// A short lowercase name: `file`, `keyring`, `vault`, `env`, `memory`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Keyring => "keyring",
            Self::Vault => "vault",
            Self::Env => "env",
            Self::Memory => "memory",
            Self::Other => "other",
        }
    }
}

/// A store of this crate, named in its errors by its kind and [description](CredentialStore::describe).
pub(crate) trait NamedStore: CredentialStore {
    /// The store's kind.
    const KIND: StoreKind;

    /// This store in errors.
    fn name(&self) -> StoreName {
        StoreName::new(Self::KIND, self.describe())
    }
}

/// The store an error comes from: its [kind](StoreKind), to branch on, and its own description
/// (`file store at /home/me/.ralio`, as [`CredentialStore::describe`] says it), which
/// `Display` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreName {
    kind: StoreKind,
    // `Box<str>`: no spare capacity, so a `StoreError` is no bigger than with a `String`.
    description: Box<str>,
}

impl StoreName {
    /// A store of `kind` described as `description`.
    pub fn new(kind: StoreKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into().into_boxed_str(),
        }
    }

    /// A store from outside this crate ([`StoreKind::Other`]), described as `description`.
    pub fn other(description: impl Into<String>) -> Self {
        Self::new(StoreKind::Other, description)
    }

    /// Which kind of store it is.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Its description.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Why a credential store failed. Messages name the store and what to do; they never contain
/// a key, a token or any other secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Something the store needs is not there (a key file that `credentials.json` points to,
    /// a variable).
    #[error("{store}: {what} is missing; {hint}")]
    Missing {
        /// The store, as [`CredentialStore::describe`] names it.
        store: StoreName,
        /// What is missing.
        what: String,
        /// What to do about it.
        hint: String,
    },
    /// An entry exists but cannot be used.
    #[error("{store}: {what} is unreadable ({reason}); fix or remove it, or register again")]
    Corrupt {
        /// The store.
        store: StoreName,
        /// Which entry.
        what: String,
        /// What is wrong with it, in words; never its content.
        reason: String,
    },
    /// The stored private key is not a usable P-256 key.
    #[error("{store}: the private key in {what} cannot be used")]
    InvalidKey {
        /// The store.
        store: StoreName,
        /// Which entry.
        what: String,
        /// Why the key was refused.
        #[source]
        source: KeyError,
    },
    /// A secret file can be read by other users.
    #[error(
        "{store}: {} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}` and try again",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The store.
        store: StoreName,
        /// The file.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key or identity is already stored and replacing it was not asked for.
    #[error("{store}: {what} already exists; pass overwrite to replace it")]
    AlreadyExists {
        /// The store.
        store: StoreName,
        /// What exists (a path, an entry).
        what: String,
    },
    /// The refresh token was rotated by another writer since this one read it.
    #[error(
        "{store}: the refresh token was changed by another writer since this instance read it; give each SDK instance its own refresh-token slot"
    )]
    Conflict {
        /// The store.
        store: StoreName,
    },
    /// Another process held the refresh-token rotation lock longer than this one waits.
    #[error(
        "{store}: the refresh-token lock {} is held by another process and was not released within {}s; if a process using these credentials hangs, stop it (the lock is freed when its holder exits), or give this instance its own refresh-token slot",
        path.display(),
        waited.as_secs()
    )]
    LockTimeout {
        /// The store.
        store: StoreName,
        /// The lock file.
        path: std::path::PathBuf,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// The store was configured wrongly (a bad slot name, an unusable setting).
    #[error("{store}: {reason}")]
    Config {
        /// The store.
        store: StoreName,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A file operation failed.
    #[error("{store}: could not {action}")]
    Io {
        /// The store.
        store: StoreName,
        /// What was being done, with the path.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The backend refused this process access (a Vault token whose policy does not cover
    /// the path, a keyring that stays locked).
    #[error("{store}: access denied while trying to {action}; {hint}")]
    Denied {
        /// The store.
        store: StoreName,
        /// What was being done.
        action: String,
        /// What to check.
        hint: String,
        /// The backend's error; never carries secret values.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The backend (keyring daemon, Vault server) failed or could not be reached.
    #[error("{store}: could not {action}; {hint}")]
    Backend {
        /// The store.
        store: StoreName,
        /// What was being done.
        action: String,
        /// What to check.
        hint: String,
        /// The backend's error; never carries secret values.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A failure of the backend behind a store of your own (a database, a secret manager):
    /// `store` names it, `action` says what was being done ("read the refresh token"), `hint`
    /// what to check. `source` is the backend's error; it must never carry a secret.
    pub fn backend(
        store: impl Into<String>,
        action: impl Into<String>,
        hint: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            store: StoreName::other(store),
            action: action.into(),
            hint: hint.into(),
            source,
        }
    }

    /// The store that failed.
    pub fn store(&self) -> &StoreName {
        match self {
            StoreError::Missing { store, .. }
            | StoreError::Corrupt { store, .. }
            | StoreError::InvalidKey { store, .. }
            | StoreError::InsecurePermissions { store, .. }
            | StoreError::AlreadyExists { store, .. }
            | StoreError::Conflict { store }
            | StoreError::LockTimeout { store, .. }
            | StoreError::Config { store, .. }
            | StoreError::Io { store, .. }
            | StoreError::Denied { store, .. }
            | StoreError::Backend { store, .. } => store,
        }
    }

    /// True when a save was refused because another writer replaced the refresh token since
    /// it was read ([`StoreError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// The longest client id accepted (`cb_` included); real ones are far shorter.
pub const CLIENT_ID_MAX_LEN: usize = 128;

/// Why a string is not a client id ([`validate_client_id`]). `Display` says why in words,
/// without echoing the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidClientId {
    /// It does not start with `cb_`.
    #[error("it does not start with cb_")]
    NoPrefix,
    /// Nothing follows `cb_`, or it is longer than [`CLIENT_ID_MAX_LEN`].
    #[error("it must be cb_ followed by 1 to 125 characters")]
    Length,
    /// It holds a character outside `[A-Za-z0-9_-]`.
    #[error("it holds characters other than A-Z, a-z, 0-9, _ and -")]
    Charset,
}

/// Checks that `id` looks like a credential binding's client id: `cb_` followed by 1 to 125
/// characters from `[A-Za-z0-9_-]`.
///
/// Registration checks the server's answer with it before anything is written, and every
/// store checks what it loads: a client id names keyring entries and is shown in messages, so
/// `../../etc/x`, a newline, or a name that could collide with another entry is refused.
pub fn validate_client_id(id: &str) -> Result<(), InvalidClientId> {
    let Some(rest) = id.strip_prefix("cb_") else {
        return Err(InvalidClientId::NoPrefix);
    };
    if rest.is_empty() || id.len() > CLIENT_ID_MAX_LEN {
        return Err(InvalidClientId::Length);
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(InvalidClientId::Charset);
    }
    Ok(())
}

/// A loaded client id, or [`StoreError::Corrupt`] naming `what` when it is not a valid one.
pub(crate) fn checked_client_id(
    store: &StoreName,
    what: &str,
    id: String,
) -> Result<String, StoreError> {
    match validate_client_id(&id) {
        Ok(()) => Ok(id),
        Err(reason) => Err(StoreError::Corrupt {
            store: store.clone(),
            what: what.to_owned(),
            reason: format!("its client_id is not a valid client id ({reason})"),
        }),
    }
}

/// Refuses to save an identity whose client id is not valid ([`StoreError::Config`]).
pub(crate) fn check_saved_client_id(
    store: &StoreName,
    identity: &Identity,
) -> Result<(), StoreError> {
    validate_client_id(identity.client_id()).map_err(|reason| StoreError::Config {
        store: store.clone(),
        reason: format!("refusing to save an identity whose client id is not valid ({reason})"),
    })
}

/// A refresh-token slot in process memory, shared by clones: saves are compare-and-set and
/// rotations are serialised by a lock. The slot of [`MemoryStore`], [`EnvStore`], and a
/// [`FileStore`] without a named slot.
#[derive(Clone, Default)]
pub(crate) struct MemorySlot {
    token: Arc<std::sync::Mutex<Option<RefreshTokenRecord>>>,
    rotation: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for MemorySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.token().is_some();
        f.debug_struct("MemorySlot")
            .field("token", &if held { "[redacted]" } else { "none" })
            .finish()
    }
}

impl MemorySlot {
    fn token(&self) -> std::sync::MutexGuard<'_, Option<RefreshTokenRecord>> {
        // Poisoning only means another thread panicked while holding the guard; the Option
        // inside is still whole.
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn load(&self) -> Option<RefreshTokenRecord> {
        self.token().clone()
    }

    /// [`CredentialStore::save_refresh_token`] on this slot; `store` names it in a conflict.
    pub(crate) fn save(
        &self,
        store: impl FnOnce() -> StoreName,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut slot = self.token();
        if previous.is_some() && !same_secret(slot.as_ref().map(|r| &r.refresh_token), previous) {
            return Err(StoreError::Conflict { store: store() });
        }
        *slot = Some(record.clone());
        Ok(())
    }

    pub(crate) fn clear(&self) {
        *self.token() = None;
    }

    pub(crate) async fn lock(&self) -> RefreshTokenLock {
        RefreshTokenLock::new(Arc::clone(&self.rotation).lock_owned().await)
    }
}

/// Compares two optional secrets without exposing them beyond this function.
pub(crate) fn same_secret(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_cb_and_a_bounded_charset() {
        for good in [
            "cb_1",
            "cb_0123456789abcdef",
            "cb_A-b_c",
            &format!("cb_{}", "x".repeat(125)),
        ] {
            assert_eq!(validate_client_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "cb_",
            "cb",
            "xx_123",
            "../../etc/x",
            "cb_../../etc/x",
            "cb_a/refresh-token/default",
            "cb_a b",
            "cb_a\n",
            "cb_\u{1b}[2J",
            "client-id",
            "CB_123",
            &format!("cb_{}", "x".repeat(126)),
        ] {
            assert!(validate_client_id(bad).is_err(), "{bad:?} was accepted");
        }
        for (bad, why) in [
            ("xx_1", InvalidClientId::NoPrefix),
            ("cb_", InvalidClientId::Length),
            ("cb_a/b", InvalidClientId::Charset),
        ] {
            assert_eq!(validate_client_id(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn messages_tell_the_caller_what_to_do() {
        let store = || StoreName::new(StoreKind::File, "file store at /home/me/.ralio");
        let errors = [
            StoreError::Missing {
                store: store(),
                what: "the private key /home/me/.ralio/keys/abc.pem".to_owned(),
                hint: "the binding may have been revoked and its key removed; register again with a fresh ticket".to_owned(),
            },
            StoreError::Corrupt {
                store: store(),
                what: "/home/me/.ralio/credentials.json".to_owned(),
                reason: "it has no client_id".to_owned(),
            },
            StoreError::InvalidKey {
                store: store(),
                what: "/home/me/.ralio/keys/abc.pem".to_owned(),
                source: KeyError::EncryptedPem,
            },
            StoreError::InsecurePermissions {
                store: store(),
                path: "/home/me/.ralio/keys/abc.pem".into(),
                mode: 0o644,
            },
            StoreError::AlreadyExists {
                store: store(),
                what: "the key file /srv/agent.pem".to_owned(),
            },
            StoreError::Conflict { store: store() },
            StoreError::Config {
                store: StoreName::new(StoreKind::Env, "environment store"),
                reason: "more than one of RALIO_PRIVATE_JWK, RALIO_PRIVATE_KEY_PEM and RALIO_PRIVATE_KEY_PATH is set; set exactly one".to_owned(),
            },
            StoreError::Io {
                store: store(),
                action: "write /home/me/.ralio/credentials.json".to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            },
            StoreError::Denied {
                store: StoreName::new(StoreKind::Vault, "vault store at https://vault.example:8200 (secret/ralio)"),
                action: "read the identity".to_owned(),
                hint: "check that the token is valid and its policy allows this path".to_owned(),
                source: None,
            },
            StoreError::Backend {
                store: StoreName::new(StoreKind::Keyring, "keyring store (Secret Service, service ralio)"),
                action: "open the keyring".to_owned(),
                hint: "check that a Secret Service (gnome-keyring-daemon, KWallet) runs on the D-Bus session bus and is unlocked".to_owned(),
                source: None,
            },
        ];
        let text: Vec<String> = errors
            .iter()
            .map(|e| {
                let mut line = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    line.push_str(&format!("\n    caused by: {cause}"));
                    source = cause.source();
                }
                line
            })
            .collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
