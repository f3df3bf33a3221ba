//! The file store: `~/.ralio`, in the layout the Python SDK reads and writes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::NamedStore;
use super::private_files::{
    absolute, ensure_private_dir, read_optional, read_secret_file, write_atomic,
};
use super::reference::{Loaded, reference_of};
use super::{
    CredentialStore, FileLocation, Identity, IdentityKey, KeyReport, MemorySlot,
    PendingRegistration, Presence, RefreshTokenLock, RefreshTokenRecord, StoreError, StoreKind,
    StoreLocation, StoreName, StoreProblem, StoreReport, same_secret,
};
use crate::keys::PrivateKey;

const CREDENTIALS_FILE: &str = "credentials.json";
const KEYS_DIR: &str = "keys";
const REFRESH_DIR: &str = "refresh-tokens";
const PENDING_FILE: &str = "pending-registration.json";

/// Credentials in a directory (default `~/.ralio`, or `RALIO_CONFIG_DIR`), in the layout the
/// Python SDK uses, so both read what the other writes:
///
/// - `credentials.json` (0600): `client_id`, `key_jkt`, `key_path`, `auth_method`;
/// - `keys/<jkt>.pem` (0600): the PKCS#8 PEM private key;
/// - `refresh-tokens/<slot>.json` (0600): `{"refresh_token": …, "issuer": …}` for an instance
///   that was given a slot with [`with_refresh_token_slot`](Self::with_refresh_token_slot).
///   `issuer` is the token URL that issued the token (a token is never sent to another); a
///   file without it (the Python SDK's) holds a token that is used as before, and fields
///   neither SDK knows are ignored. Without a slot the refresh token lives in this value's
///   memory only.
/// - `pending-registration.json` (0600, this SDK only): a legacy registration waiting for the
///   owner's approval (poll token, API URL, thumbprint, requested scopes, `key_path` of the
///   staged key), until [`resume`](crate::register::resume) ends it.
///
/// Directories are created 0700. Every write goes to a temporary file in the same directory
/// (mode 0600 from its creation), is flushed to disk, renamed over the target, and the
/// directory is flushed too, so a crash leaves the old file or the new one, never half of one.
/// A key or refresh-token file that group or others can access is refused, with the `chmod`
/// that fixes it.
///
/// Rotations of one slot are serialised across processes with a lock on
/// `refresh-tokens/<slot>.lock` ([`CredentialStore::lock_refresh_token`]).
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    key_path: Option<PathBuf>,
    slot: Option<String>,
    memory_token: MemorySlot,
}

#[derive(Serialize, Deserialize)]
struct CredentialsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_jkt: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_path: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_method: Option<serde_json::Value>,
    /// This SDK only: the [`KeyReference`](crate::keys::KeyReference) of a key that stays in
    /// its hardware (`key_path` then holds the same text, which the Python SDK cannot open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_ref: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RefreshTokenFile {
    refresh_token: Option<serde_json::Value>,
    #[serde(default)]
    issuer: Option<serde_json::Value>,
}

impl FileStore {
    /// The store in `RALIO_CONFIG_DIR`, else `~/.ralio` (an empty variable counts as unset).
    pub fn from_env() -> Result<Self, StoreError> {
        match crate::config::env_var_os("RALIO_CONFIG_DIR") {
            Some(dir) => Ok(Self::new(dir)),
            None => match std::env::home_dir() {
                Some(home) => Ok(Self::new(home.join(".ralio"))),
                None => Err(StoreError::Config {
                    store: StoreName::new(StoreKind::File, "file store"),
                    reason: "no home directory is known; set RALIO_CONFIG_DIR to the credential directory".to_owned(),
                }),
            },
        }
    }

    /// The store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            key_path: None,
            slot: None,
            memory_token: MemorySlot::default(),
        }
    }

    /// Persists this instance's refresh tokens in `refresh-tokens/<slot>.json`. Characters
    /// outside `[A-Za-z0-9._-]` become `_`. Processes on this host that share a slot take turns
    /// through `refresh-tokens/<slot>.lock` and never present a token another has rotated; a
    /// slot per process saves them the waiting. The Python SDK does not take this lock: never
    /// share a slot with a Python instance.
    pub fn with_refresh_token_slot(mut self, slot: &str) -> Result<Self, StoreError> {
        let safe = slot_file_stem(slot);
        if safe.is_empty() {
            return Err(StoreError::Config {
                store: self.name(),
                reason: "the refresh-token slot name is empty; pass a name such as the worker id"
                    .to_owned(),
            });
        }
        self.slot = Some(safe);
        Ok(self)
    }

    /// Registration keeps the key at `path` instead of `keys/<jkt>.pem`, and
    /// `credentials.json` points to it. The key is staged in `keys/<jkt>.pem` until the server
    /// accepted it and only then written to `path`, so a refused re-registration leaves the
    /// key already at `path` (and the binding that uses it) as it was.
    pub fn with_key_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_path = Some(path.into());
        self
    }

    /// The credential directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `credentials.json` in the credential directory.
    pub fn credentials_path(&self) -> PathBuf {
        self.dir.join(CREDENTIALS_FILE)
    }

    /// Where the key with thumbprint `jkt` is kept by default: `keys/<jkt>.pem`.
    pub fn key_path_for(&self, jkt: &str) -> PathBuf {
        self.dir.join(KEYS_DIR).join(format!("{jkt}.pem"))
    }

    /// The refresh-token file of this instance's slot, if it has one.
    pub fn refresh_token_path(&self) -> Option<PathBuf> {
        self.slot
            .as_ref()
            .map(|slot| self.dir.join(REFRESH_DIR).join(format!("{slot}.json")))
    }

    /// `pending-registration.json` in the credential directory.
    pub fn pending_registration_path(&self) -> PathBuf {
        self.dir.join(PENDING_FILE)
    }

    fn save_pending_blocking(&self, pending: &PendingRegistration) -> Result<String, StoreError> {
        let mut value = pending.to_json();
        if let (Some(key), serde_json::Value::Object(map)) = (pending.key(), &mut value) {
            map.insert(
                "key_path".to_owned(),
                absolute(&self.staged_key_path(key))
                    .to_string_lossy()
                    .into_owned()
                    .into(),
            );
        }
        let body = secrecy::SecretBox::new(Box::new(value.to_string().into_bytes()));
        ensure_private_dir(&self.dir)
            .map_err(self.io_err(format!("create {}", self.dir.display())))?;
        let path = self.pending_registration_path();
        write_atomic(&path, body.expose_secret(), true)
            .map_err(self.io_err(format!("write {}", path.display())))?;
        Ok(absolute(&path).display().to_string())
    }

    /// The pending record and the `key_path` it names, if any.
    fn read_pending_blocking(
        &self,
    ) -> Result<Option<(PendingRegistration, Option<PathBuf>)>, StoreError> {
        let path = self.pending_registration_path();
        let Some(raw) = read_secret_file(&path, &self.name())? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            store: self.name(),
            what: path.display().to_string(),
            reason,
        };
        let value: serde_json::Value = serde_json::from_slice(raw.expose_secret())
            .map_err(|_| corrupt("not a JSON object".to_owned()))?;
        let pending = PendingRegistration::from_json(&value).map_err(corrupt)?;
        let key_path = match value.get("key_path") {
            Some(serde_json::Value::String(p)) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => None,
        };
        Ok(Some((pending, key_path)))
    }

    fn load_pending_blocking(&self) -> Result<Option<PendingRegistration>, StoreError> {
        let Some((pending, key_path)) = self.read_pending_blocking()? else {
            return Ok(None);
        };
        let Some(key_path) = key_path else {
            return Ok(Some(pending));
        };
        let key = self.read_key(&key_path)?;
        if key.thumbprint().as_str() != pending.fingerprint() {
            return Err(StoreError::Corrupt {
                store: self.name(),
                what: key_path.display().to_string(),
                reason: format!(
                    "its thumbprint is {}, but the pending registration is for key {}",
                    key.thumbprint(),
                    pending.fingerprint()
                ),
            });
        }
        Ok(Some(pending.with_key(Some(key))))
    }

    /// Runs file work on tokio's blocking pool (fsync can take milliseconds), on a handle
    /// that shares this one's in-memory refresh token.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&FileStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let handle = FileStore {
            dir: self.dir.clone(),
            key_path: self.key_path.clone(),
            slot: self.slot.clone(),
            memory_token: self.memory_token.clone(),
        };
        let describe = self.name();
        tokio::task::spawn_blocking(move || op(&handle))
            .await
            .map_err(|join| StoreError::Backend {
                store: describe,
                action: "finish a file operation".to_owned(),
                hint: "the blocking task was cancelled or panicked (is the runtime shutting down?); retry".to_owned(),
                source: Some(Box::new(join)),
            })?
    }

    fn lock_path(&self) -> Option<PathBuf> {
        self.slot
            .as_ref()
            .map(|slot| self.dir.join(REFRESH_DIR).join(format!("{slot}.lock")))
    }

    fn target_key_path(&self, key: &PrivateKey) -> PathBuf {
        self.key_path
            .clone()
            .unwrap_or_else(|| self.staged_key_path(key))
    }

    /// Where registration stages a key until the server accepted it: `keys/<jkt>.pem`, a name
    /// no other key has, so a staged key never replaces the live one (with
    /// [`with_key_path`](Self::with_key_path), `save_identity` copies it there afterwards).
    fn staged_key_path(&self, key: &PrivateKey) -> PathBuf {
        self.key_path_for(key.thumbprint().as_str())
    }

    /// Removes `path` if it holds `key`: never someone else's key (nor a file that is not one).
    fn remove_key_file_holding(&self, path: &Path, key: &PrivateKey) -> Result<(), StoreError> {
        match self.read_key(path) {
            Ok(found) if found.thumbprint() == key.thumbprint() => {
                fs::remove_file(path).map_err(self.io_err(format!("remove {}", path.display())))?;
                // No empty `keys/` left behind (`remove_dir` keeps a directory that is not
                // empty).
                let keys = self.dir.join(KEYS_DIR);
                if path.parent() == Some(keys.as_path()) {
                    let _ = fs::remove_dir(&keys);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn io_err(&self, action: String) -> impl FnOnce(io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            store: self.name(),
            action,
            source,
        }
    }

    fn load_identity_blocking(&self) -> Result<Option<Loaded>, StoreError> {
        let path = self.credentials_path();
        let Some(raw) =
            read_optional(&path).map_err(self.io_err(format!("read {}", path.display())))?
        else {
            return Ok(None);
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            store: self.name(),
            what: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let file: CredentialsFile =
            serde_json::from_slice(&raw).map_err(|_| corrupt("not a JSON object"))?;
        let client_id = match file.client_id {
            Some(serde_json::Value::String(id)) if !id.is_empty() => id,
            _ => return Err(corrupt("it has no client_id")),
        };
        let client_id =
            super::checked_client_id(&self.name(), &path.display().to_string(), client_id)?;
        let key_jkt = match file.key_jkt {
            Some(serde_json::Value::String(jkt)) if !jkt.is_empty() => Some(jkt),
            _ => None,
        };
        if let Some(serde_json::Value::String(text)) = file.key_ref {
            return Ok(Some(Loaded::Reference {
                client_id,
                text,
                recorded_jkt: key_jkt,
                what: path.display().to_string(),
            }));
        }
        let Some(key_path) = self.resolve_key_path(file.key_path, key_jkt.as_deref()) else {
            return Err(corrupt("it has neither key_path nor key_jkt"));
        };
        let key = self.read_key(&key_path)?;
        if let Some(jkt) = key_jkt
            && jkt != key.thumbprint().as_str()
        {
            return Err(StoreError::Corrupt {
                store: self.name(),
                what: key_path.display().to_string(),
                reason: format!(
                    "its thumbprint is {}, but credentials.json says key_jkt {jkt}",
                    key.thumbprint()
                ),
            });
        }
        tracing::debug!(
            store = %self.describe(),
            client_id = %client_id,
            thumbprint = %key.thumbprint(),
            "loaded the identity"
        );
        Ok(Some(Loaded::Identity(Identity::new(client_id, key))))
    }

    /// The key file `credentials.json` names: its `key_path` as written (a relative one is
    /// relative to the working directory, as for any path), else `keys/<key_jkt>.pem`.
    /// [`load_identity`](CredentialStore::load_identity) and [`report`](CredentialStore::report)
    /// both resolve it here, so `ralio doctor` inspects the file the client loads.
    fn resolve_key_path(
        &self,
        key_path: Option<serde_json::Value>,
        key_jkt: Option<&str>,
    ) -> Option<PathBuf> {
        match (key_path, key_jkt) {
            (Some(serde_json::Value::String(p)), _) if !p.is_empty() => Some(PathBuf::from(p)),
            (_, Some(jkt)) => Some(self.key_path_for(jkt)),
            _ => None,
        }
    }

    fn read_key(&self, path: &Path) -> Result<PrivateKey, StoreError> {
        let Some(pem) = read_secret_file(path, &self.name())? else {
            return Err(StoreError::Missing {
                store: self.name(),
                what: format!("the private key {}", path.display()),
                hint: "the binding may have been revoked and its key removed; register again with a fresh ticket".to_owned(),
            });
        };
        let pem = std::str::from_utf8(pem.expose_secret()).map_err(|_| StoreError::Corrupt {
            store: self.name(),
            what: path.display().to_string(),
            reason: "not a text PEM file".to_owned(),
        })?;
        PrivateKey::from_pem(pem).map_err(|source| StoreError::InvalidKey {
            store: self.name(),
            what: path.display().to_string(),
            source,
        })
    }

    fn write_key(
        &self,
        path: PathBuf,
        key: &PrivateKey,
        overwrite: bool,
    ) -> Result<PathBuf, StoreError> {
        if path.parent() == Some(self.dir.join(KEYS_DIR).as_path()) {
            ensure_private_dir(&self.dir)
                .map_err(self.io_err(format!("create {}", self.dir.display())))?;
            let keys = self.dir.join(KEYS_DIR);
            ensure_private_dir(&keys).map_err(self.io_err(format!("create {}", keys.display())))?;
        } else if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            ensure_private_dir(parent)
                .map_err(self.io_err(format!("create {}", parent.display())))?;
        }
        let pem = key.to_pkcs8_pem();
        match write_atomic(&path, pem.expose_secret().as_bytes(), overwrite) {
            Ok(()) => Ok(absolute(&path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::AlreadyExists {
                store: self.name(),
                what: format!("the key file {}", path.display()),
            }),
            Err(e) => Err(self.io_err(format!("write {}", path.display()))(e)),
        }
    }

    fn save_identity_blocking(&self, identity: &Identity) -> Result<String, StoreError> {
        super::check_saved_client_id(&self.name(), identity)?;
        // A key in its hardware: the reference, where the Python SDK looks for `key_path` (it
        // then says the key file is missing, naming the reference, instead of misreading it).
        let (key_path, key_jkt, key_ref) = match identity.key() {
            IdentityKey::Local(key) => {
                let path = self.write_key(self.target_key_path(key), key, true)?;
                let path = path.to_string_lossy().into_owned();
                (path, key.thumbprint().as_str().to_owned(), None)
            }
            IdentityKey::Remote(signer) => {
                let (text, jkt) = reference_of(signer.as_ref(), &self.name())?;
                (text.clone(), jkt, Some(text))
            }
        };
        let file = CredentialsFile {
            client_id: Some(identity.client_id().into()),
            key_jkt: Some(key_jkt.into()),
            key_path: Some(key_path.clone().into()),
            auth_method: Some("private_key_jwt".into()),
            key_ref: key_ref.map(Into::into),
        };
        let mut json = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Io {
            store: self.name(),
            action: "encode credentials.json".to_owned(),
            source: io::Error::other(e),
        })?;
        json.push(b'\n');
        ensure_private_dir(&self.dir)
            .map_err(self.io_err(format!("create {}", self.dir.display())))?;
        let path = self.credentials_path();
        write_atomic(&path, &json, true)
            .map_err(self.io_err(format!("write {}", path.display())))?;
        // The identity now holds the key (at the configured key path): its staged copy goes.
        if let IdentityKey::Local(key) = identity.key() {
            let staged = self.staged_key_path(key);
            if self.key_path.is_some() && absolute(&staged).as_path() != Path::new(&key_path) {
                self.remove_key_file_holding(&staged, key)?;
            }
        }
        tracing::debug!(
            store = %self.describe(),
            client_id = %identity.client_id(),
            key = %key_path,
            "saved the identity"
        );
        Ok(key_path)
    }

    /// [`CredentialStore::report`], file by file: a failure in one file is recorded and the
    /// inspection goes on, so the report names every problem at once.
    fn report_blocking(&self) -> StoreReport {
        let mut location = FileLocation {
            dir: self.dir.clone(),
            credentials_file: self.credentials_path(),
            key_file: None,
            key_file_mode: None,
            refresh_token_file: self.refresh_token_path(),
        };
        let mut report = StoreReport::new(StoreKind::File, self.describe(), StoreLocation::Other);
        let mut problems = Vec::new();
        self.report_identity(&mut report, &mut location, &mut problems);
        report.staged_keys = self.unreferenced_keys(location.key_file.as_deref(), &report);
        let record = match self.refresh_token_path() {
            Some(path) => self.load_slot_record(&path),
            None => Ok(self.memory_token.load()),
        };
        match record {
            Ok(record) => {
                report.refresh_token = Presence::from_bool(record.is_some());
                report.issuer = record.and_then(|r| r.issuer);
            }
            Err(e) => problems.push(StoreProblem::from_error(&e)),
        }
        report.location = StoreLocation::File(location);
        report.problems = problems;
        report
    }

    fn report_identity(
        &self,
        report: &mut StoreReport,
        location: &mut FileLocation,
        problems: &mut Vec<StoreProblem>,
    ) {
        let path = self.credentials_path();
        let shown = path.display().to_string();
        let raw = match read_optional(&path) {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                report.identity = Presence::Absent;
                return;
            }
            Err(e) => {
                problems.push(StoreProblem::io(format!("read {shown}"), &e));
                return;
            }
        };
        let corrupt = |reason: &str| StoreProblem::Corrupt {
            what: shown.clone(),
            reason: reason.to_owned(),
        };
        // Never the parser's message: it may quote a value, and the Python SDK keeps tokens in
        // this file.
        let Ok(file) = serde_json::from_slice::<CredentialsFile>(&raw) else {
            problems.push(corrupt("it is not a JSON object"));
            return;
        };
        match file.client_id {
            Some(serde_json::Value::String(id)) if !id.is_empty() => {
                match super::validate_client_id(&id) {
                    Ok(()) => {
                        report.identity = Presence::Present;
                        report.client_id = Some(id);
                    }
                    Err(reason) => problems.push(corrupt(&format!(
                        "its client_id is not a valid client id ({reason})"
                    ))),
                }
            }
            _ => problems.push(corrupt("it has no client_id")),
        }
        let key_jkt = match file.key_jkt {
            Some(serde_json::Value::String(jkt)) if !jkt.is_empty() => Some(jkt),
            _ => None,
        };
        if file.key_ref.is_some() {
            return; // a key reference: `report` opens it
        }
        let Some(key_path) = self.resolve_key_path(file.key_path, key_jkt.as_deref()) else {
            problems.push(corrupt("it has neither key_path nor key_jkt"));
            return;
        };
        location.key_file = Some(key_path.clone());
        let key_shown = key_path.display().to_string();
        match fs::metadata(&key_path) {
            Ok(meta) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = meta.permissions().mode() & 0o777;
                    location.key_file_mode = Some(mode);
                    if mode & 0o077 != 0 {
                        problems.push(StoreProblem::InsecurePermissions {
                            path: key_path.clone(),
                            mode,
                        });
                    }
                }
                #[cfg(not(unix))]
                let _ = meta;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                problems.push(StoreProblem::Missing {
                    what: format!("the private key {key_shown}"),
                });
                return;
            }
            Err(e) => {
                problems.push(StoreProblem::io(format!("inspect {key_shown}"), &e));
                return;
            }
        }
        // Read whatever the mode: the thumbprint is worth knowing even while the mode is
        // wrong (the problem above says so).
        let pem = match fs::read(&key_path) {
            Ok(bytes) => secrecy::SecretBox::new(Box::new(bytes)),
            Err(e) => {
                problems.push(StoreProblem::io(format!("read {key_shown}"), &e));
                return;
            }
        };
        let key = std::str::from_utf8(pem.expose_secret())
            .map_err(|_| "not a text PEM file".to_owned())
            .and_then(|pem| {
                PrivateKey::from_pem(pem).map_err(|e| format!("not a usable P-256 key: {e}"))
            });
        let key = match key {
            Ok(key) => key,
            Err(reason) => {
                problems.push(StoreProblem::Corrupt {
                    what: key_shown,
                    reason,
                });
                return;
            }
        };
        let mut key_report = KeyReport::of(&IdentityKey::Local(key));
        key_report.recorded_thumbprint = key_jkt;
        if let Some(recorded) = key_report
            .recorded_thumbprint
            .clone()
            .filter(|_| key_report.mismatched())
        {
            problems.push(StoreProblem::ThumbprintMismatch {
                what: key_shown,
                recorded,
                found: key_report.thumbprint.clone(),
            });
        }
        report.key = Some(key_report);
    }

    /// Thumbprints of the key files in `keys/` other than the identity's key.
    fn unreferenced_keys(
        &self,
        key_file: Option<&Path>,
        report: &StoreReport,
    ) -> Option<Vec<String>> {
        let entries = match fs::read_dir(self.dir.join(KEYS_DIR)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(Vec::new()),
            Err(_) => return None,
        };
        let current = report.key.as_ref().map(|k| k.thumbprint.as_str());
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| key_file.is_none_or(|k| k.file_name() != Some(&entry.file_name())))
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let jkt = name.strip_suffix(".pem")?;
                (Some(jkt) != current && !jkt.starts_with(".tmp-")).then(|| jkt.to_owned())
            })
            .collect();
        found.sort();
        Some(found)
    }

    fn load_slot_record(&self, path: &Path) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let Some(raw) = read_secret_file(path, &self.name())? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            store: self.name(),
            what: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let file: RefreshTokenFile = serde_json::from_slice(raw.expose_secret())
            .map_err(|_| corrupt("not a JSON object"))?;
        let issuer = match file.issuer {
            Some(serde_json::Value::String(issuer)) if !issuer.is_empty() => Some(issuer),
            None | Some(serde_json::Value::Null) => None,
            Some(_) => return Err(corrupt("issuer is not a string")),
        };
        match file.refresh_token {
            Some(serde_json::Value::String(token)) if !token.is_empty() => Ok(Some(
                RefreshTokenRecord::new(SecretString::from(token), issuer),
            )),
            Some(serde_json::Value::String(_)) | Some(serde_json::Value::Null) | None => Ok(None),
            Some(_) => Err(corrupt("refresh_token is not a string")),
        }
    }

    fn save_slot_record(
        &self,
        path: &Path,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        if previous.is_some() {
            let current = self.load_slot_record(path)?.map(|r| r.refresh_token);
            if !same_secret(current.as_ref(), previous) {
                return Err(StoreError::Conflict { store: self.name() });
            }
        }
        let dir = self.dir.join(REFRESH_DIR);
        ensure_private_dir(&self.dir)
            .map_err(self.io_err(format!("create {}", self.dir.display())))?;
        ensure_private_dir(&dir).map_err(self.io_err(format!("create {}", dir.display())))?;
        let mut value =
            serde_json::json!({ "refresh_token": record.refresh_token.expose_secret() });
        if let (Some(issuer), serde_json::Value::Object(map)) = (&record.issuer, &mut value) {
            map.insert("issuer".to_owned(), issuer.as_str().into());
        }
        let body = secrecy::SecretBox::new(Box::new(value.to_string().into_bytes()));
        write_atomic(path, body.expose_secret(), true)
            .map_err(self.io_err(format!("write {}", path.display())))?;
        tracing::debug!(
            store = %self.describe(),
            file = %path.display(),
            rotation = previous.is_some(),
            "saved the refresh token"
        );
        Ok(())
    }
}

impl NamedStore for FileStore {
    const KIND: StoreKind = StoreKind::File;
}

#[async_trait]
impl CredentialStore for FileStore {
    fn describe(&self) -> String {
        format!("file store at {}", self.dir.display())
    }

    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        match self.blocking(|s| s.load_identity_blocking()).await? {
            Some(loaded) => loaded.open(&self.name()).await.map(Some),
            None => Ok(None),
        }
    }

    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        let identity = identity.clone();
        self.blocking(move |s| s.save_identity_blocking(&identity))
            .await
    }

    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        match self.refresh_token_path() {
            Some(path) => self.blocking(move |s| s.load_slot_record(&path)).await,
            None => Ok(self.memory_token.load()),
        }
    }

    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        match self.refresh_token_path() {
            Some(path) => {
                let (previous, record) = (previous.cloned(), record.clone());
                self.blocking(move |s| s.save_slot_record(&path, previous.as_ref(), &record))
                    .await
            }
            None => self.memory_token.save(|| self.name(), previous, record),
        }
    }

    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.memory_token.clear();
        if let Some(path) = self.refresh_token_path() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_err(format!("remove {}", path.display()))(e)),
            }
        }
        Ok(())
    }

    async fn lock_refresh_token(&self) -> Result<RefreshTokenLock, StoreError> {
        let Some(path) = self.lock_path() else {
            return Ok(self.memory_token.lock().await);
        };
        let dir = self.dir.join(REFRESH_DIR);
        ensure_private_dir(&self.dir)
            .map_err(self.io_err(format!("create {}", self.dir.display())))?;
        ensure_private_dir(&dir).map_err(self.io_err(format!("create {}", dir.display())))?;
        super::lock::lock_file(&path, &self.name()).await
    }

    async fn stage_key(
        &self,
        key: &PrivateKey,
        overwrite: bool,
    ) -> Result<Option<String>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| {
            // The configured key path is checked now, so that a refusal comes before any
            // request; it is written only once the server accepted the key (`save_identity`).
            if let Some(path) = &s.key_path
                && !overwrite
                && fs::symlink_metadata(path).is_ok()
            {
                return Err(StoreError::AlreadyExists {
                    store: s.name(),
                    what: format!("the key file {}", path.display()),
                });
            }
            s.write_key(s.staged_key_path(&key), &key, overwrite)
        })
        .await
        .map(|path| Some(path.display().to_string()))
    }

    async fn discard_staged_key(&self, key: &PrivateKey) -> Result<(), StoreError> {
        // Never the configured key path: it holds the live key (or nothing), not a staged one.
        let mut paths = vec![self.staged_key_path(key)];
        // A resumed registration's key is where the pending record says (a registration
        // started by an earlier version staged it at the configured key path).
        if let Ok(Some((_, Some(pending_key)))) = self.read_pending_blocking()
            && !paths.contains(&pending_key)
        {
            paths.push(pending_key);
        }
        for path in paths {
            self.remove_key_file_holding(&path, key)?;
        }
        Ok(())
    }

    async fn save_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<Option<String>, StoreError> {
        let pending = pending.clone();
        self.blocking(move |s| s.save_pending_blocking(&pending))
            .await
            .map(Some)
    }

    async fn load_pending_registration(&self) -> Result<Option<PendingRegistration>, StoreError> {
        self.blocking(|s| s.load_pending_blocking()).await
    }

    async fn clear_pending_registration(&self) -> Result<(), StoreError> {
        let path = self.pending_registration_path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err(format!("remove {}", path.display()))(e)),
        }
    }

    async fn report(&self) -> StoreReport {
        let read = self.blocking(|s| Ok(s.report_blocking())).await;
        let loaded = self.blocking(|s| s.load_identity_blocking());
        let (kind, describe) = (StoreKind::File, self.describe());
        super::reference::report_with_key(read, loaded, kind, describe, &self.name()).await
    }
}

/// `slot` with every character outside `[A-Za-z0-9._-]` replaced by `_` (docs/protocol.md).
pub(crate) fn slot_file_stem(slot: &str) -> String {
    slot.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_map_like_the_python_sdk_for_ascii() {
        assert_eq!(slot_file_stem("worker-1"), "worker-1");
        assert_eq!(slot_file_stem("a b/c:d"), "a_b_c_d");
        assert_eq!(slot_file_stem("host.example_2"), "host.example_2");
        assert_eq!(slot_file_stem("../etc"), ".._etc");
    }
}
