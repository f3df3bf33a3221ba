//! A structured account of what a credential store holds, for diagnostics: where it keeps
//! things, what is there, and what is wrong. See [`CredentialStore::report`].
//!
//! Public because only the store can see its own details (file paths and modes, entries
//! staged for a registration) and a service's health check needs them as much as `ralio
//! doctor` does; the types are `#[non_exhaustive]`, so a store can report more later.
//!
//! A report never holds a secret: no private key, refresh token, PEM text or JWK member `d`,
//! neither in its fields nor in its `Debug` output. It names keys by their RFC 7638 thumbprint.

use std::fmt;
use std::path::PathBuf;

use super::{CredentialStore, IdentityKey, StoreError, StoreKind};

/// The algorithm of every key this SDK uses.
const KEY_ALGORITHM: &str = "ES256 (P-256)";

/// What a credential store holds and where, from [`CredentialStore::report`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreReport {
    /// Which kind of store this is.
    pub kind: StoreKind,
    /// The store's own description ([`CredentialStore::describe`]).
    pub description: String,
    /// Where the store keeps its entries.
    pub location: StoreLocation,
    /// Whether an identity (client id and key) is stored: [`Presence::Unknown`] when it could
    /// not be read (see [`problems`](Self::problems)).
    pub identity: Presence,
    /// The stored client id, when one could be read (and is a valid one).
    pub client_id: Option<String>,
    /// The stored key, when one could be read.
    pub key: Option<KeyReport>,
    /// Whether this instance's refresh token is stored.
    pub refresh_token: Presence,
    /// The token URL that issued the stored refresh token, when the store records it.
    pub issuer: Option<String>,
    /// Thumbprints of keys written for a registration that no saved identity uses (the
    /// keyring's and Vault's staged-key entries; for the file store, key files in `keys/` that
    /// `credentials.json` does not name, which includes keys of earlier registrations).
    /// `None` when the store cannot list them.
    pub staged_keys: Option<Vec<String>>,
    /// What is wrong, in the order found. Empty when nothing is.
    pub problems: Vec<StoreProblem>,
}

impl StoreReport {
    /// A report of `kind` at `location` with nothing found yet.
    pub fn new(kind: StoreKind, description: impl Into<String>, location: StoreLocation) -> Self {
        Self {
            kind,
            description: description.into(),
            location,
            identity: Presence::Unknown,
            client_id: None,
            key: None,
            refresh_token: Presence::Unknown,
            issuer: None,
            staged_keys: None,
            problems: Vec::new(),
        }
    }

    /// Whether the store holds a usable identity and nothing is wrong.
    pub fn is_healthy(&self) -> bool {
        self.identity == Presence::Present
            && self.client_id.is_some()
            && self.key.is_some()
            && self.problems.is_empty()
    }

    /// Fills in the identity from [`CredentialStore::load_identity`], and the refresh token's
    /// presence from [`CredentialStore::load_refresh_token`]; a failure of either becomes a
    /// [`StoreProblem`]. What the default [`CredentialStore::report`] does, and a start for
    /// stores that add their own details.
    pub async fn fill_from<S: CredentialStore + ?Sized>(&mut self, store: &S) {
        match store.load_identity().await {
            Ok(Some(identity)) => {
                self.identity = Presence::Present;
                self.client_id = Some(identity.client_id().to_owned());
                self.key = Some(KeyReport::of(identity.key()));
            }
            Ok(None) => self.identity = Presence::Absent,
            Err(e) => {
                self.identity = Presence::Unknown;
                self.problems.push(StoreProblem::from_error(&e));
            }
        }
        match store.load_refresh_token().await {
            Ok(Some(_)) => self.refresh_token = Presence::Present,
            Ok(None) => self.refresh_token = Presence::Absent,
            Err(e) => {
                self.refresh_token = Presence::Unknown;
                self.problems.push(StoreProblem::from_error(&e));
            }
        }
    }
}

/// Where a store keeps its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// Files in a credential directory.
    File(FileLocation),
    /// Entries in an OS keyring.
    Keyring {
        /// The backend, in words (`Secret Service`, `kernel keyutils`, `platform keychain`).
        backend: String,
        /// The service name every entry is under.
        service: String,
        /// The account of the entry holding the client id.
        client_id_account: String,
        /// The account of the key's entry, once the client id is known.
        key_account: Option<String>,
        /// The account of this instance's refresh-token entry, once the client id is known.
        refresh_token_account: Option<String>,
    },
    /// Secrets in a Vault / OpenBao KV v2 mount.
    Vault {
        /// The server address.
        addr: String,
        /// The Vault Enterprise namespace, if any.
        namespace: Option<String>,
        /// The KV v2 mount.
        mount: String,
        /// The path under the mount.
        path: String,
        /// The API path of the identity secret (`<mount>/data/<path>/identity`).
        identity_secret: String,
        /// The API path of this instance's refresh-token secret.
        refresh_token_secret: String,
    },
    /// Environment variables, read once when the store was built.
    Env {
        /// The variables the store reads.
        variables: Vec<String>,
        /// Those of them that were set (not empty).
        set: Vec<String>,
        /// The key file named by `RALIO_PRIVATE_KEY_PATH`, when that is the key's source.
        key_file: Option<PathBuf>,
    },
    /// Process memory.
    Memory,
    /// A store that does not say.
    Other,
}

/// The files of a [`FileStore`](super::FileStore).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileLocation {
    /// The credential directory.
    pub dir: PathBuf,
    /// Its `credentials.json`.
    pub credentials_file: PathBuf,
    /// The key file, resolved exactly as the store resolves it when loading (`key_path`, else
    /// `keys/<key_jkt>.pem`); `None` when `credentials.json` is absent or names no key.
    pub key_file: Option<PathBuf>,
    /// The key file's permission bits (Unix), when it exists.
    pub key_file_mode: Option<u32>,
    /// This instance's refresh-token file, when it has a slot (else the token is in memory).
    pub refresh_token_file: Option<PathBuf>,
}

/// Whether something is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// It is there.
    Present,
    /// It is not there.
    Absent,
    /// It could not be told (the entry was unreadable, or the store cannot say).
    Unknown,
}

impl Presence {
    /// `Present` for `true`, `Absent` for `false`.
    pub fn from_bool(present: bool) -> Self {
        if present { Self::Present } else { Self::Absent }
    }
}

/// The stored key, by its public half.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyReport {
    /// Always `"ES256 (P-256)"`: the algorithm of every key this SDK uses.
    pub algorithm: &'static str,
    /// The key's RFC 7638 thumbprint (`jkt`).
    pub thumbprint: String,
    /// The thumbprint the store recorded with the identity (`key_jkt`), when it records one.
    pub recorded_thumbprint: Option<String>,
    /// `true` when the private key is held elsewhere (a PKCS#11 token, AWS KMS, Vault
    /// Transit).
    pub remote: bool,
    /// Where a remote key lives (its reference, the token or KMS key, whether it is
    /// extractable), when its signer names it.
    pub location: Option<crate::keys::KeyLocation>,
}

impl KeyReport {
    /// The report of `key`.
    pub fn of(key: &IdentityKey) -> Self {
        let (thumbprint, remote, location) = match key {
            IdentityKey::Local(key) => (key.thumbprint().as_str().to_owned(), false, None),
            IdentityKey::Remote(signer) => (
                signer.thumbprint().as_str().to_owned(),
                true,
                signer.key_location(),
            ),
        };
        Self {
            algorithm: KEY_ALGORITHM,
            thumbprint,
            recorded_thumbprint: None,
            remote,
            location,
        }
    }

    /// Whether the key is not the one recorded with the identity.
    pub fn mismatched(&self) -> bool {
        self.recorded_thumbprint
            .as_ref()
            .is_some_and(|recorded| *recorded != self.thumbprint)
    }
}

/// Something wrong with a store's contents or its access. Messages name entries, never their
/// content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreProblem {
    /// A secret file that group or others can access.
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An entry another one names is not there (the key file `credentials.json` points to).
    Missing {
        /// What is missing, in words.
        what: String,
    },
    /// An entry exists but its content cannot be used.
    Corrupt {
        /// Which entry.
        what: String,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// A file operation failed (an I/O error, a refused permission).
    Io {
        /// What was being done, with the path (`read /home/me/.ralio/credentials.json`).
        action: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The key is not the one recorded with the identity.
    ThumbprintMismatch {
        /// Where the key is.
        what: String,
        /// The thumbprint recorded with the identity.
        recorded: String,
        /// The thumbprint of the key found.
        found: String,
    },
    /// The store is configured in a way that cannot work.
    Config {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The backend (keyring daemon, Vault server) failed or could not be reached.
    Backend {
        /// What failed, with the backend's reason.
        reason: String,
    },
}

impl StoreProblem {
    /// An I/O failure while doing `action` (which names the path).
    pub(crate) fn io(action: String, e: &std::io::Error) -> Self {
        Self::Io {
            action,
            reason: e.to_string(),
        }
    }

    /// The problem a store error describes.
    pub fn from_error(e: &StoreError) -> Self {
        match e {
            StoreError::InsecurePermissions { path, mode, .. } => Self::InsecurePermissions {
                path: path.clone(),
                mode: *mode,
            },
            StoreError::Missing { what, .. } => Self::Missing { what: what.clone() },
            StoreError::Corrupt { what, reason, .. } => Self::Corrupt {
                what: what.clone(),
                reason: reason.clone(),
            },
            StoreError::InvalidKey { what, source, .. } => Self::Corrupt {
                what: what.clone(),
                reason: format!("not a usable P-256 key: {source}"),
            },
            StoreError::Io { action, source, .. } => Self::Io {
                action: action.clone(),
                reason: source.to_string(),
            },
            StoreError::Config { reason, .. } => Self::Config {
                reason: reason.clone(),
            },
            other => Self::Backend {
                reason: chain(other),
            },
        }
    }
}

/// `e` and its causes, joined with `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl fmt::Display for StoreProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InsecurePermissions { path, mode } => write!(
                f,
                "{} is mode {mode:04o}: other users can read it",
                path.display()
            ),
            Self::Missing { what } => write!(f, "{what} is missing"),
            Self::Corrupt { what, reason } => write!(f, "{what} is unusable: {reason}"),
            Self::Io { action, reason } => write!(f, "could not {action}: {reason}"),
            Self::ThumbprintMismatch {
                what,
                recorded,
                found,
            } => write!(
                f,
                "{what} holds key {found} but the binding was registered with key {recorded}"
            ),
            Self::Config { reason } => f.write_str(reason),
            Self::Backend { reason } => f.write_str(reason),
        }
    }
}
