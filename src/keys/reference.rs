//! [`KeyReference`]: where a key that never leaves its hardware lives, in a form a store can
//! write down and read back (a PKCS#11 URI, an AWS KMS key, a Vault Transit key).
//!
//! Parsing and printing need no feature: a store built without `pkcs11` still reads a PKCS#11
//! reference and says which feature opens it, instead of calling the entry damaged.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::SecretString;

use super::{BoxError, Signer};

/// The variable that holds a PKCS#11 user PIN when the URI has no `pin-source`.
pub const PKCS11_PIN_VAR: &str = "RALIO_PKCS11_PIN";
/// The variable that names the PKCS#11 module (a `.so`/`.dylib`/`.dll` path) when the URI
/// has no `module-path`.
pub const PKCS11_MODULE_VAR: &str = "RALIO_PKCS11_MODULE";

/// A key kept outside this process, by a name its owner gave it.
///
/// Its text form (`Display`, [`FromStr`](std::str::FromStr)) is what stores write:
///
/// | kind | text |
/// | --- | --- |
/// | PKCS#11 (RFC 7512) | `pkcs11:token=ralio;object=agent?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/ralio/pin` |
/// | AWS KMS | `arn:aws:kms:eu-west-1:111122223333:key/…`, `alias/ralio-agent`, `aws-kms:<key id>` |
/// | Vault / OpenBao Transit | `vault-transit:transit/agent` (mount, then key name) |
///
/// A PKCS#11 `pin-value` is accepted when parsing but never printed: the text form holds no
/// secret, so a store never writes a PIN.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyReference {
    /// A private key object in a PKCS#11 token (an HSM, a smart card, a TPM, SoftHSM).
    Pkcs11(Pkcs11Uri),
    /// An AWS KMS asymmetric key (`ECC_NIST_P256`, `SIGN_VERIFY`).
    AwsKms(KmsKeyId),
    /// A Vault / OpenBao Transit key (`ecdsa-p256`, not exportable).
    VaultTransit(TransitKey),
}

impl KeyReference {
    /// Parses the text form (see the type's docs).
    pub fn parse(text: &str) -> Result<Self, KeyReferenceError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("pkcs11:") {
            return Pkcs11Uri::parse_body(rest).map(Self::Pkcs11);
        }
        if let Some(rest) = text.strip_prefix("vault-transit:") {
            let rest = rest.trim_matches('/');
            return match rest.rsplit_once('/') {
                Some((mount, name)) if !mount.is_empty() && !name.is_empty() => {
                    Ok(Self::VaultTransit(TransitKey::new(mount, name)))
                }
                _ => Err(KeyReferenceError::new(
                    "a Vault Transit reference is vault-transit:<mount>/<key>, such as vault-transit:transit/agent",
                )),
            };
        }
        if let Some(id) = KmsKeyId::parse(text) {
            return Ok(Self::AwsKms(id));
        }
        Err(KeyReferenceError::new(
            "it is not a key reference: use a PKCS#11 URI (pkcs11:…), an AWS KMS key ARN (arn:aws:kms:…), alias (alias/…) or aws-kms:<key id>, or vault-transit:<mount>/<key>",
        ))
    }

    /// The cargo feature that opens this kind of key.
    pub(crate) fn feature(&self) -> &'static str {
        match self {
            Self::Pkcs11(_) => "pkcs11",
            Self::AwsKms(_) => "aws-kms",
            Self::VaultTransit(_) => "vault",
        }
    }

    /// A short name of the kind: `PKCS#11`, `AWS KMS`, `Vault Transit`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pkcs11(_) => "PKCS#11",
            Self::AwsKms(_) => "AWS KMS",
            Self::VaultTransit(_) => "Vault Transit",
        }
    }
}

impl fmt::Display for KeyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pkcs11(uri) => uri.fmt(f),
            Self::AwsKms(id) => id.fmt(f),
            Self::VaultTransit(key) => write!(f, "vault-transit:{key}"),
        }
    }
}

impl fmt::Debug for KeyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The text form holds no secret (a pin-value is never printed).
        f.debug_tuple("KeyReference")
            .field(&self.to_string())
            .finish()
    }
}

impl std::str::FromStr for KeyReference {
    type Err = KeyReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a text is not a [`KeyReference`]. The message says what is wrong without echoing the
/// text (a PKCS#11 URI may carry a `pin-value`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct KeyReferenceError {
    reason: String,
}

impl KeyReferenceError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Which Transit key: its mount and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransitKey {
    mount: String,
    name: String,
}

impl TransitKey {
    /// Key `name` on the Transit mount `mount` (surrounding `/` are dropped from the mount).
    pub fn new(mount: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            mount: mount.into().trim_matches('/').to_owned(),
            name: name.into(),
        }
    }

    /// The Transit secrets engine's mount, such as `transit`.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The key's name on that mount.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for TransitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.mount, self.name)
    }
}

/// A PKCS#11 URI (RFC 7512) naming one private key: the token by label, serial, manufacturer
/// or model (or slot id), the key by label (`object`) and/or `id`, and, in the query, the
/// module (`module-path`, or `module-name` for the loader's search path) and the PIN
/// (`pin-source`, a file; `pin-value`, accepted but never written anywhere).
///
/// Without `module-path`/`module-name`, [`PKCS11_MODULE_VAR`] names the module; without a
/// PIN in the URI, [`PKCS11_PIN_VAR`] holds it.
#[derive(Clone, Default)]
pub struct Pkcs11Uri {
    token: Option<String>,
    manufacturer: Option<String>,
    serial: Option<String>,
    model: Option<String>,
    slot_id: Option<u64>,
    object: Option<String>,
    id: Option<Vec<u8>>,
    module_path: Option<PathBuf>,
    module_name: Option<String>,
    pin_source: Option<String>,
    pin_value: Option<SecretString>,
}

impl PartialEq for Pkcs11Uri {
    fn eq(&self, other: &Self) -> bool {
        // The PIN is not part of which key this is.
        self.to_string() == other.to_string()
    }
}

impl Eq for Pkcs11Uri {}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("uri", &self.to_string())
            .field("pin_value", &self.pin_value.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Pkcs11Uri {
    /// Parses `pkcs11:…`.
    pub fn parse(text: &str) -> Result<Self, KeyReferenceError> {
        match text.trim().strip_prefix("pkcs11:") {
            Some(rest) => Self::parse_body(rest),
            None => Err(KeyReferenceError::new("a PKCS#11 URI starts with pkcs11:")),
        }
    }

    fn parse_body(body: &str) -> Result<Self, KeyReferenceError> {
        let (path, query) = match body.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (body, None),
        };
        let mut uri = Self::default();
        for (attr, raw) in pairs(path, ';')? {
            let value = || pct_decode_text(attr, raw);
            match attr {
                "token" => set(&mut uri.token, attr, value()?)?,
                "manufacturer" => set(&mut uri.manufacturer, attr, value()?)?,
                "serial" => set(&mut uri.serial, attr, value()?)?,
                "model" => set(&mut uri.model, attr, value()?)?,
                "object" => set(&mut uri.object, attr, value()?)?,
                "id" => set(&mut uri.id, attr, pct_decode(attr, raw)?)?,
                "slot-id" => {
                    let id = value()?.parse::<u64>().map_err(|_| {
                        KeyReferenceError::new("the PKCS#11 URI's slot-id is not a number")
                    })?;
                    set(&mut uri.slot_id, attr, id)?;
                }
                "type" => {
                    if value()? != "private" {
                        return Err(KeyReferenceError::new(
                            "the PKCS#11 URI names a type other than private; name the private key (type=private, or leave type out)",
                        ));
                    }
                }
                // Attributes that narrow the library or slot: nothing to check them against
                // that the token's own attributes do not already pin.
                "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer" => {}
                other if other.starts_with("x-") => {}
                other => {
                    return Err(KeyReferenceError::new(format!(
                        "the PKCS#11 URI has an unknown attribute `{}`",
                        other.escape_debug()
                    )));
                }
            }
        }
        for (attr, raw) in query
            .map(|q| pairs(q, '&'))
            .transpose()?
            .unwrap_or_default()
        {
            match attr {
                "module-path" => set(
                    &mut uri.module_path,
                    attr,
                    PathBuf::from(pct_decode_text(attr, raw)?),
                )?,
                "module-name" => set(&mut uri.module_name, attr, pct_decode_text(attr, raw)?)?,
                "pin-source" => set(&mut uri.pin_source, attr, pct_decode_text(attr, raw)?)?,
                "pin-value" => set(
                    &mut uri.pin_value,
                    attr,
                    SecretString::from(pct_decode_text(attr, raw)?),
                )?,
                other if other.starts_with("x-") => {}
                other => {
                    return Err(KeyReferenceError::new(format!(
                        "the PKCS#11 URI has an unknown query attribute `{}`",
                        other.escape_debug()
                    )));
                }
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(KeyReferenceError::new(
                "the PKCS#11 URI names no key: add object=<label> (or id=<%xx bytes>)",
            ));
        }
        Ok(uri)
    }

    /// A reference to the key labelled `object` in the token labelled `token`.
    pub fn new(token: impl Into<String>, object: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            object: Some(object.into()),
            ..Self::default()
        }
    }

    /// The same reference with the module at `path`.
    pub fn with_module_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.module_path = Some(path.into());
        self
    }

    /// The same reference reading its PIN from the file `path` (`pin-source`).
    pub fn with_pin_source(mut self, path: impl Into<String>) -> Self {
        self.pin_source = Some(path.into());
        self
    }

    /// The same reference with the key's `id` (`CKA_ID`).
    pub fn with_id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The token label (`token=`).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The token serial number (`serial=`).
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_deref()
    }

    /// The token manufacturer (`manufacturer=`).
    pub fn manufacturer(&self) -> Option<&str> {
        self.manufacturer.as_deref()
    }

    /// The token model (`model=`).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The slot id (`slot-id=`).
    pub fn slot_id(&self) -> Option<u64> {
        self.slot_id
    }

    /// The key label (`object=`, `CKA_LABEL`).
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The key id (`id=`, `CKA_ID`).
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// The module: `module-path`, else `module-name`, else [`PKCS11_MODULE_VAR`]; `None`
    /// when none is given.
    pub fn module(&self) -> Option<PathBuf> {
        self.module_path
            .clone()
            .or_else(|| self.module_name.as_ref().map(PathBuf::from))
            .or_else(|| crate::config::env_var_os(PKCS11_MODULE_VAR).map(PathBuf::from))
    }

    /// The `pin-source` (a file path, or a `file:` URI).
    pub fn pin_source(&self) -> Option<&str> {
        self.pin_source.as_deref()
    }

    /// The same reference without its `pin-value`: what a signer keeps once it is logged in.
    #[cfg(feature = "pkcs11")]
    pub(crate) fn without_pin(mut self) -> Self {
        self.pin_value = None;
        self
    }

    /// The user PIN: `pin-value`, else the first line of the `pin-source` file, else
    /// [`PKCS11_PIN_VAR`]; `Ok(None)` when none is given. The error names the file, never
    /// its content.
    #[cfg(feature = "pkcs11")]
    pub(crate) fn resolve_pin(&self) -> Result<Option<SecretString>, PinError> {
        if let Some(pin) = &self.pin_value {
            return Ok(Some(pin.clone()));
        }
        if let Some(source) = &self.pin_source {
            let path = source
                .strip_prefix("file://")
                .or_else(|| source.strip_prefix("file:"))
                .unwrap_or(source);
            let text = std::fs::read(path).map_err(|source| PinError {
                path: PathBuf::from(path),
                source,
            })?;
            let text = zeroize::Zeroizing::new(text);
            let line = String::from_utf8_lossy(&text);
            let pin = line.lines().next().unwrap_or("").to_owned();
            return Ok(Some(SecretString::from(pin)));
        }
        Ok(crate::config::env_var(PKCS11_PIN_VAR).map(SecretString::from))
    }

    /// The PIN's source in words (for messages): never the PIN itself.
    #[cfg(feature = "pkcs11")]
    pub(crate) fn pin_origin(&self) -> String {
        if self.pin_value.is_some() {
            "the URI's pin-value".to_owned()
        } else if let Some(source) = &self.pin_source {
            format!("the pin-source file {source}")
        } else {
            PKCS11_PIN_VAR.to_owned()
        }
    }
}

/// A `pin-source` file that could not be read.
#[cfg(feature = "pkcs11")]
#[derive(Debug, thiserror::Error)]
#[error("could not read the PIN file {}", path.display())]
pub(crate) struct PinError {
    pub(crate) path: PathBuf,
    #[source]
    pub(crate) source: std::io::Error,
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pkcs11:")?;
        let mut path: Vec<String> = Vec::new();
        let mut text = |name: &str, value: &Option<String>| {
            if let Some(v) = value {
                path.push(format!("{name}={}", pct_encode(v.as_bytes())));
            }
        };
        text("token", &self.token);
        text("manufacturer", &self.manufacturer);
        text("serial", &self.serial);
        text("model", &self.model);
        text("object", &self.object);
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02x}")).collect();
            path.push(format!("id={hex}"));
        }
        if let Some(slot) = self.slot_id {
            path.push(format!("slot-id={slot}"));
        }
        path.push("type=private".to_owned());
        f.write_str(&path.join(";"))?;
        let mut query: Vec<String> = Vec::new();
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                pct_encode(p.to_string_lossy().as_bytes())
            ));
        }
        if let Some(n) = &self.module_name {
            query.push(format!("module-name={}", pct_encode(n.as_bytes())));
        }
        if let Some(p) = &self.pin_source {
            query.push(format!("pin-source={}", pct_encode(p.as_bytes())));
        }
        // pin-value: never.
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

fn pairs(text: &str, sep: char) -> Result<Vec<(&str, &str)>, KeyReferenceError> {
    text.split(sep)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.split_once('=')
                .ok_or_else(|| KeyReferenceError::new("every PKCS#11 URI attribute is name=value"))
        })
        .collect()
}

fn set<T>(slot: &mut Option<T>, attr: &str, value: T) -> Result<(), KeyReferenceError> {
    if slot.is_some() {
        return Err(KeyReferenceError::new(format!(
            "the PKCS#11 URI gives `{attr}` twice"
        )));
    }
    *slot = Some(value);
    Ok(())
}

fn pct_decode(attr: &str, raw: &str) -> Result<Vec<u8>, KeyReferenceError> {
    let bad = || KeyReferenceError::new(format!("the PKCS#11 URI's {attr} has a bad %-escape"));
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn pct_decode_text(attr: &str, raw: &str) -> Result<String, KeyReferenceError> {
    String::from_utf8(pct_decode(attr, raw)?)
        .map_err(|_| KeyReferenceError::new(format!("the PKCS#11 URI's {attr} is not UTF-8")))
}

/// RFC 7512's unreserved characters plus those it allows in values unescaped; `;`, `?`, `&`,
/// `=`, `%` and anything else are escaped.
fn pct_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An AWS KMS key: its key id, key ARN, alias name (`alias/…`) or alias ARN.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KmsKeyId {
    id: String,
}

impl KmsKeyId {
    /// `id` as KMS takes it in `KeyId`: a key id, a key ARN, `alias/<name>` or an alias ARN.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }

    fn parse(text: &str) -> Option<Self> {
        if let Some(id) = text.strip_prefix("aws-kms:") {
            return (!id.is_empty()).then(|| Self::new(id));
        }
        let arn_kms = text.starts_with("arn:")
            && text.split(':').nth(2) == Some("kms")
            && text.split(':').count() >= 6;
        let alias = text
            .strip_prefix("alias/")
            .is_some_and(|name| !name.is_empty());
        (arn_kms || alias).then(|| Self::new(text))
    }

    /// The id as KMS takes it.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The region of an ARN (`arn:aws:kms:<region>:…`); `None` for ids and alias names.
    pub fn region(&self) -> Option<&str> {
        self.id
            .starts_with("arn:")
            .then(|| self.id.split(':').nth(3))
            .flatten()
            .filter(|r| !r.is_empty())
    }
}

impl fmt::Display for KmsKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.id.starts_with("arn:") || self.id.starts_with("alias/") {
            f.write_str(&self.id)
        } else {
            write!(f, "aws-kms:{}", self.id)
        }
    }
}

impl fmt::Debug for KmsKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KmsKeyId").field(&self.id).finish()
    }
}

/// Where a signer's key lives, for diagnostics (`ralio doctor`) and for stores that write the
/// reference down. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyLocation {
    /// The reference a store writes, from which the key is opened again.
    pub reference: KeyReference,
    /// Where the key is, in words: the token (label, manufacturer, model, serial) and the key
    /// (label, id), or the KMS key's ARN.
    pub description: String,
    /// Whether the backend would let the private key be read out (`CKA_EXTRACTABLE`); `None`
    /// when the backend has no such notion or did not say. KMS and Transit keys created by
    /// this SDK are never exportable.
    pub extractable: Option<bool>,
}

impl KeyLocation {
    /// The key `reference` names, described as `description` (for a [`Signer`] of your own;
    /// `extractable` unknown).
    pub fn new(reference: KeyReference, description: impl Into<String>) -> Self {
        Self {
            reference,
            description: description.into(),
            extractable: None,
        }
    }

    /// The same location, saying whether the backend lets the private key be read out.
    pub fn with_extractable(mut self, extractable: bool) -> Self {
        self.extractable = Some(extractable);
        self
    }
}

/// Whether opening a key may create it when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyCreation {
    /// Open an existing key only; a missing one is [`OpenKeyError::KeyNotFound`].
    #[default]
    Existing,
    /// Generate the key inside the token (sensitive, not extractable) or create it in KMS
    /// when it is not there yet.
    IfMissing,
}

/// Why a referenced key could not be opened. Each variant says what to fix; none holds a PIN
/// or any other secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenKeyError {
    /// This build of the SDK cannot open this kind of key.
    #[error(
        "the key {reference} needs ralio's cargo feature `{feature}`, which this build does not have; rebuild with `--features {feature}`"
    )]
    #[non_exhaustive]
    FeatureDisabled {
        /// The reference.
        reference: String,
        /// The feature that opens it.
        feature: &'static str,
    },
    /// Something the reference needs is not configured (the module, the PIN, the region).
    #[error("the key {reference} cannot be opened: {reason}")]
    #[non_exhaustive]
    Config {
        /// The reference.
        reference: String,
        /// What is missing and how to give it.
        reason: String,
    },
    /// The token refused the PIN.
    #[error("the token of {reference} refused the PIN from {origin}{}", if *locked { "; the PIN is locked: unlock it with the token's security officer PIN" } else { "; check the PIN (a wrong PIN counts against the token's retry limit)" })]
    #[non_exhaustive]
    PinRefused {
        /// The reference.
        reference: String,
        /// Where the PIN came from, in words (never the PIN).
        origin: String,
        /// Whether the token now locks the PIN.
        locked: bool,
    },
    /// No token matches the reference (removed, not initialised, another label).
    #[error("no token matches {reference}; {hint}")]
    #[non_exhaustive]
    TokenNotFound {
        /// The reference.
        reference: String,
        /// What to check.
        hint: String,
    },
    /// The token or KMS has no such key.
    #[error("the key {reference} does not exist; {hint}")]
    #[non_exhaustive]
    KeyNotFound {
        /// The reference.
        reference: String,
        /// What to check.
        hint: String,
    },
    /// The key exists but is not a P-256 signing key.
    #[error("the key {reference} cannot sign ES256: {reason}")]
    #[non_exhaustive]
    Unsuitable {
        /// The reference.
        reference: String,
        /// What it is instead.
        reason: String,
    },
    /// The backend refused this process access (an IAM policy, a key policy).
    #[error("access to the key {reference} was denied; {hint}")]
    #[non_exhaustive]
    Denied {
        /// The reference.
        reference: String,
        /// What to check.
        hint: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The backend failed or could not be reached.
    #[error("the key {reference} could not be opened; {hint}")]
    #[non_exhaustive]
    Backend {
        /// The reference.
        reference: String,
        /// What to check.
        hint: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl OpenKeyError {
    /// The refusal to open `reference` in a build without its feature.
    pub(crate) fn feature_disabled(reference: &KeyReference) -> Self {
        Self::FeatureDisabled {
            reference: reference.to_string(),
            feature: reference.feature(),
        }
    }
}

impl KeyReference {
    /// Opens the PKCS#11 or AWS KMS key this names, creating it first with
    /// [`KeyCreation::IfMissing`]. A Vault Transit key is opened through a
    /// [`VaultStore`](crate::store::VaultStore) (it needs the store's Vault connection):
    /// [`open_key`](crate::store::open_key) opens any reference, Transit included.
    pub async fn open(&self, creation: KeyCreation) -> Result<Arc<dyn Signer>, OpenKeyError> {
        let _ = creation;
        match self {
            #[cfg(feature = "pkcs11")]
            Self::Pkcs11(uri) => {
                let signer = super::pkcs11::Pkcs11Signer::open_with(uri.clone(), creation).await?;
                Ok(Arc::new(signer))
            }
            #[cfg(feature = "aws-kms")]
            Self::AwsKms(id) => {
                let signer = super::aws_kms::AwsKmsSigner::open_with(id, creation).await?;
                Ok(Arc::new(signer))
            }
            #[cfg(feature = "vault")]
            Self::VaultTransit(_) => Err(OpenKeyError::Config {
                reference: self.to_string(),
                reason: "a Vault Transit key needs a Vault connection: open it with ralio::store::open_key (VAULT_ADDR and VAULT_TOKEN) or VaultStore::transit_signer".to_owned(),
            }),
            // Reached in builds without one of the features above.
            #[allow(unreachable_patterns)]
            _ => Err(OpenKeyError::feature_disabled(self)),
        }
    }

    /// The PIN is never part of the text form; this is the form with it, for nothing but
    /// tests of that rule.
    #[cfg(test)]
    fn pin_value(&self) -> Option<&str> {
        match self {
            Self::Pkcs11(uri) => uri
                .pin_value
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs11_uris_parse_and_print_without_the_pin() {
        let text = "pkcs11:token=My%20Token;object=agent;id=%01%ff;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234";
        let reference = KeyReference::parse(text).unwrap();
        let KeyReference::Pkcs11(uri) = &reference else {
            panic!("not pkcs11")
        };
        assert_eq!(uri.token(), Some("My Token"));
        assert_eq!(uri.object(), Some("agent"));
        assert_eq!(uri.id(), Some(&[1u8, 0xff][..]));
        assert_eq!(reference.pin_value(), Some("1234"));
        let printed = reference.to_string();
        assert_eq!(
            printed,
            "pkcs11:token=My%20Token;object=agent;id=%01%ff;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
        );
        assert!(!format!("{reference:?}").contains("1234"));
        assert_eq!(KeyReference::parse(&printed).unwrap(), reference);
    }

    #[test]
    fn bad_pkcs11_uris_say_why_without_echoing_them() {
        for (text, why) in [
            ("pkcs11:token=t", "names no key"),
            ("pkcs11:token=t;object=a;object=b", "twice"),
            (
                "pkcs11:token=t;object=a;type=public",
                "type other than private",
            ),
            ("pkcs11:token=t;object=a;bogus=1", "unknown attribute"),
            ("pkcs11:token=t;object=%zz", "bad %-escape"),
            (
                "pkcs11:token=t;object=a?pin-value=secret-pin&nope=1",
                "unknown query",
            ),
        ] {
            let err = KeyReference::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(!err.contains("secret-pin"), "{err}");
        }
    }

    #[test]
    fn kms_and_transit_references() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let r = KeyReference::parse(arn).unwrap();
        assert_eq!(r.to_string(), arn);
        let KeyReference::AwsKms(id) = &r else {
            panic!()
        };
        assert_eq!(id.region(), Some("eu-west-1"));
        assert_eq!(
            KeyReference::parse("alias/ralio").unwrap().to_string(),
            "alias/ralio"
        );
        assert_eq!(
            KeyReference::parse("aws-kms:1234").unwrap().to_string(),
            "aws-kms:1234"
        );
        let t = KeyReference::parse("vault-transit:transit/agent").unwrap();
        assert_eq!(t.to_string(), "vault-transit:transit/agent");
        assert!(KeyReference::parse("/home/me/.ralio/keys/x.pem").is_err());
        assert!(KeyReference::parse("arn:aws:s3:::bucket").is_err());
    }

    #[test]
    fn a_transit_key_names_its_mount_and_key() {
        let key = TransitKey::new("/transit/", "agent");
        assert_eq!((key.mount(), key.name()), ("transit", "agent"));
        assert_eq!(key.to_string(), "transit/agent");
    }
}
