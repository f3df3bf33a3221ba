//! [`Pkcs11Signer`]: a P-256 key inside a PKCS#11 token (feature `pkcs11`).
//!
//! Verified with SoftHSM 2.6.1: `CKM_ECDSA` over a SHA-256 digest computed here gives the raw
//! 64-byte `r‖s` ES256 needs (SoftHSM refuses `CKM_ECDSA_SHA256`, and hashing here works with
//! every token); `CKA_EC_POINT` comes back DER-wrapped (`04 41 04 …`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use sha2::{Digest as _, Sha256};

use super::reference::{KeyCreation, KeyLocation, KeyReference, OpenKeyError, Pkcs11Uri};
use super::{BoxError, PublicJwk, SignError, Signer};

/// DER of the P-256 (prime256v1) OID: what `CKA_EC_PARAMS` holds for a P-256 key.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// At most this many sessions sign at once; more callers wait for one to be free. Tokens
/// limit sessions (smart cards to a handful), and one signature takes well under a
/// millisecond on SoftHSM, so a few sessions keep up with many concurrent requests.
const MAX_SESSIONS: usize = 4;

/// A [`Signer`] whose P-256 key lives in a PKCS#11 token and never leaves it.
///
/// Open one with [`Pkcs11Signer::open`] (an existing key, found by its label `object=` and/or
/// its `id=`) or [`Pkcs11Signer::open_or_generate`] (generated inside the token when missing:
/// `CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false, so the token never lets it out), or through
/// [`KeyReference::open`]. The module comes from the URI's `module-path` or
/// [`PKCS11_MODULE_VAR`](super::PKCS11_MODULE_VAR); the user PIN from its `pin-source` file,
/// its `pin-value`, or [`PKCS11_PIN_VAR`](super::PKCS11_PIN_VAR). The PIN is used to log in
/// and is never logged, stored or shown; [`key_location`](Signer::key_location) gives the
/// reference without it.
///
/// Signing hashes the message with SHA-256 here and asks the token for `CKM_ECDSA` over the
/// digest, in one of up to four sessions (a pool shared by clones of the client: concurrent
/// requests sign in parallel, each session used by one call at a time). The calls block, so
/// they run on tokio's blocking pool.
pub struct Pkcs11Signer {
    inner: Arc<Inner>,
    public_jwk: PublicJwk,
    location: KeyLocation,
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    key: ObjectHandle,
    /// Keeps the login: a token logs the application out when its last session closes.
    _anchor: Mutex<Session>,
    idle: Mutex<Vec<Session>>,
    permits: tokio::sync::Semaphore,
    name: String,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("key", &self.location.reference.to_string())
            .field("thumbprint", &self.public_jwk.thumbprint().as_str())
            .field("extractable", &self.location.extractable)
            .finish()
    }
}

impl Pkcs11Signer {
    /// Opens the existing key `uri` names.
    pub async fn open(uri: &Pkcs11Uri) -> Result<Self, OpenKeyError> {
        Self::open_with(uri.clone(), KeyCreation::Existing).await
    }

    /// Opens the key `uri` names, generating it inside the token first when there is none
    /// (P-256, sensitive, not extractable, labelled with the URI's `object` and `id`).
    pub async fn open_or_generate(uri: &Pkcs11Uri) -> Result<Self, OpenKeyError> {
        Self::open_with(uri.clone(), KeyCreation::IfMissing).await
    }

    pub(crate) async fn open_with(
        uri: Pkcs11Uri,
        creation: KeyCreation,
    ) -> Result<Self, OpenKeyError> {
        let reference = uri.to_string();
        tokio::task::spawn_blocking(move || open_blocking(&uri, creation))
            .await
            .map_err(|join| OpenKeyError::Backend {
                reference,
                hint: "the blocking task was cancelled or panicked; retry".to_owned(),
                source: Box::new(join),
            })?
    }

    /// Whether the token would let the private key be read out (`CKA_EXTRACTABLE`), as read
    /// when the signer was opened.
    pub fn extractable(&self) -> Option<bool> {
        self.location.extractable
    }
}

#[async_trait]
impl Signer for Pkcs11Signer {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public_jwk
    }

    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let digest: [u8; 32] = Sha256::digest(message).into();
        let inner = Arc::clone(&self.inner);
        let failed = |e: BoxError| SignError::backend(self.inner.name.clone(), e);
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| failed(e.into()))?;
        tokio::task::spawn_blocking(move || inner.sign_blocking(&digest))
            .await
            .map_err(|join| failed(join.into()))?
    }

    fn key_location(&self) -> Option<KeyLocation> {
        Some(self.location.clone())
    }
}

impl Inner {
    fn sign_blocking(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        let session = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let session = match session {
            Some(session) => session,
            None => self
                .ctx
                .open_ro_session(self.slot)
                .map_err(|e| self.sign_error("open a session", e))?,
        };
        match session.sign(&Mechanism::Ecdsa, self.key, digest) {
            Ok(signature) => {
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(session);
                <[u8; 64]>::try_from(signature.as_slice())
                    .map_err(|_| SignError::bad_signature(self.name.clone()))
            }
            // The session is dropped (closed): a removed token or a reset invalidates it, and
            // the next call opens a fresh one.
            Err(e) => Err(self.sign_error("sign", e)),
        }
    }

    fn sign_error(&self, action: &'static str, error: CkError) -> SignError {
        SignError::backend(self.name.clone(), Pkcs11Failure::new(action, error))
    }
}

/// A failed PKCS#11 call, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("could not {action}: {hint}")]
struct Pkcs11Failure {
    action: &'static str,
    hint: &'static str,
    #[source]
    source: CkError,
}

impl Pkcs11Failure {
    fn new(action: &'static str, source: CkError) -> Self {
        let hint = match rv(&source) {
            Some(RvError::DeviceRemoved | RvError::TokenNotPresent | RvError::DeviceError) => {
                "the token was removed or failed; reconnect it (nothing stored was changed)"
            }
            Some(RvError::SessionHandleInvalid | RvError::SessionClosed) => {
                "the token closed the session (was it reset?); retry"
            }
            Some(RvError::UserNotLoggedIn) => {
                "the token logged this process out; restart it so it logs in again"
            }
            Some(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid) => {
                "the key is gone from the token; it was deleted, or the token was re-initialised"
            }
            Some(RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent) => {
                "the token does not let this key sign (CKA_SIGN is false)"
            }
            Some(RvError::MechanismInvalid) => "the token does not support CKM_ECDSA",
            _ => "see the PKCS#11 error",
        };
        Self {
            action,
            hint,
            source,
        }
    }
}

fn rv(error: &CkError) -> Option<RvError> {
    match error {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Loaded modules, one per path, kept for the life of the process. PKCS#11 state (the
/// initialisation, the login) belongs to the process, not to a handle: two handles on one
/// module would share it, and unloading one would pull it from under the other.
fn module(path: &Path) -> Result<Pkcs11, CkError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(path)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(e) if rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
        Err(e) => return Err(e),
    }
    modules.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

fn open_blocking(uri: &Pkcs11Uri, creation: KeyCreation) -> Result<Pkcs11Signer, OpenKeyError> {
    let reference = uri.to_string();
    let backend = |hint: &str, e: CkError| OpenKeyError::Backend {
        reference: reference.clone(),
        hint: hint.to_owned(),
        source: Box::new(e),
    };
    let Some(module_path) = uri.module() else {
        return Err(OpenKeyError::Config {
            reference,
            reason: format!(
                "no PKCS#11 module is named: add module-path=<library> to the URI or set {} (SoftHSM: /usr/lib/softhsm/libsofthsm2.so)",
                super::PKCS11_MODULE_VAR
            ),
        });
    };
    let ctx = module(&module_path).map_err(|e| OpenKeyError::Config {
        reference: reference.clone(),
        reason: format!(
            "the PKCS#11 module {} could not be loaded ({e}); check the path and that it is a PKCS#11 library",
            module_path.display()
        ),
    })?;
    let (slot, token) = find_token(&ctx, uri, &reference)?;
    let anchor = ctx
        .open_ro_session(slot)
        .map_err(|e| backend("check that the token is present", e))?;
    if token.login_required {
        login(&anchor, uri, &reference)?;
    }
    let key = match find_key(&anchor, uri, &reference)? {
        Some(key) => key,
        None if creation == KeyCreation::IfMissing => generate(&ctx, slot, uri, &reference)?,
        None => {
            return Err(OpenKeyError::KeyNotFound {
                reference,
                hint: "check the URI's object= and id= against the token's keys (`pkcs11-tool --module <module> --login --list-objects`), or let `ralio register --key <uri>` generate it".to_owned(),
            });
        }
    };
    let facts = key_facts(&anchor, key, uri, &reference)?;
    let public_jwk =
        PublicJwk::from_sec1_bytes(&facts.point).map_err(|e| OpenKeyError::Unsuitable {
            reference: reference.clone(),
            reason: format!("its public point is not a P-256 point ({e})"),
        })?;
    // The stored reference pins the key by its id as well as its label, and the token by its
    // serial, so another key given the same label later is never picked up in its place.
    let mut pinned = uri.clone().without_pin();
    if pinned.id().is_none() && !facts.id.is_empty() {
        pinned = pinned.with_id(facts.id.clone());
    }
    let description = format!(
        "PKCS#11 token \"{}\" ({} {}, serial {}), key \"{}\" id {}",
        token.label,
        token.manufacturer,
        token.model,
        token.serial,
        facts.label,
        hex(&facts.id),
    );
    let name = format!(
        "PKCS#11 key \"{}\" in token \"{}\"",
        facts.label, token.label
    );
    tracing::debug!(key = %name, thumbprint = %public_jwk.thumbprint(), extractable = ?facts.extractable, "opened the PKCS#11 key");
    Ok(Pkcs11Signer {
        inner: Arc::new(Inner {
            ctx,
            slot,
            key,
            _anchor: Mutex::new(anchor),
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(MAX_SESSIONS),
            name,
        }),
        public_jwk,
        location: KeyLocation {
            reference: KeyReference::Pkcs11(pinned),
            description,
            extractable: facts.extractable,
        },
    })
}

struct TokenFacts {
    label: String,
    manufacturer: String,
    model: String,
    serial: String,
    login_required: bool,
}

fn find_token(
    ctx: &Pkcs11,
    uri: &Pkcs11Uri,
    reference: &str,
) -> Result<(Slot, TokenFacts), OpenKeyError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| OpenKeyError::Backend {
            reference: reference.to_owned(),
            hint: "the PKCS#11 module could not list its slots".to_owned(),
            source: Box::new(e),
        })?;
    let mut found = Vec::new();
    for slot in slots {
        if uri.slot_id().is_some_and(|id| id != slot.id()) {
            continue;
        }
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let matches = |want: Option<&str>, have: &str| want.is_none_or(|w| w == have.trim());
        if matches(uri.token(), info.label())
            && matches(uri.serial(), info.serial_number())
            && matches(uri.manufacturer(), info.manufacturer_id())
            && matches(uri.model(), info.model())
        {
            found.push((
                slot,
                TokenFacts {
                    label: info.label().trim().to_owned(),
                    manufacturer: info.manufacturer_id().trim().to_owned(),
                    model: info.model().trim().to_owned(),
                    serial: info.serial_number().trim().to_owned(),
                    login_required: info.login_required(),
                },
            ));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(OpenKeyError::TokenNotFound {
            reference: reference.to_owned(),
            hint: "check that the token is connected and initialised and that its label (token=) or serial matches (list them: `pkcs11-tool --module <module> --list-token-slots`, or `softhsm2-util --show-slots`)".to_owned(),
        }),
        _ => Err(OpenKeyError::Config {
            reference: reference.to_owned(),
            reason: "several tokens match; add serial=<serial> to the URI".to_owned(),
        }),
    }
}

fn login(session: &Session, uri: &Pkcs11Uri, reference: &str) -> Result<(), OpenKeyError> {
    let pin = uri.resolve_pin().map_err(|e| OpenKeyError::Config {
        reference: reference.to_owned(),
        reason: format!("{e}: {}", e.source),
    })?;
    let Some(pin) = pin else {
        return Err(OpenKeyError::Config {
            reference: reference.to_owned(),
            reason: format!(
                "the token needs the user PIN: set {} or add pin-source=<file holding the PIN> to the URI",
                super::PKCS11_PIN_VAR
            ),
        });
    };
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) => Ok(()),
        Err(e) => match rv(&e) {
            Some(RvError::UserAlreadyLoggedIn) => Ok(()),
            Some(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange) => {
                Err(OpenKeyError::PinRefused {
                    reference: reference.to_owned(),
                    origin: uri.pin_origin(),
                    locked: false,
                })
            }
            Some(RvError::PinLocked) => Err(OpenKeyError::PinRefused {
                reference: reference.to_owned(),
                origin: uri.pin_origin(),
                locked: true,
            }),
            _ => Err(OpenKeyError::Backend {
                reference: reference.to_owned(),
                hint: "logging in to the token failed".to_owned(),
                source: Box::new(e),
            }),
        },
    }
}

fn key_template(class: ObjectClass, uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class), Attribute::KeyType(KeyType::EC)];
    if let Some(label) = uri.object() {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = uri.id() {
        template.push(Attribute::Id(id.to_vec()));
    }
    template
}

fn find_key(
    session: &Session,
    uri: &Pkcs11Uri,
    reference: &str,
) -> Result<Option<ObjectHandle>, OpenKeyError> {
    let mut keys = session
        .find_objects(&key_template(ObjectClass::PRIVATE_KEY, uri))
        .map_err(|e| OpenKeyError::Backend {
            reference: reference.to_owned(),
            hint: "searching the token for the key failed".to_owned(),
            source: Box::new(e),
        })?;
    match keys.len() {
        0 => Ok(None),
        1 => Ok(keys.pop()),
        _ => Err(OpenKeyError::Config {
            reference: reference.to_owned(),
            reason: "several EC private keys match; add id=<the key's CKA_ID> to the URI"
                .to_owned(),
        }),
    }
}

fn generate(
    ctx: &Pkcs11,
    slot: Slot,
    uri: &Pkcs11Uri,
    reference: &str,
) -> Result<ObjectHandle, OpenKeyError> {
    let backend = |hint: &str, e: CkError| OpenKeyError::Backend {
        reference: reference.to_owned(),
        hint: hint.to_owned(),
        source: Box::new(e),
    };
    // The login is the application's, so this read-write session is logged in already.
    let session = ctx.open_rw_session(slot).map_err(|e| {
        backend(
            "a read-write session is needed to create the key; is the token write-protected?",
            e,
        )
    })?;
    let id = match uri.id() {
        Some(id) => id.to_vec(),
        None => rand::random::<[u8; 16]>().to_vec(),
    };
    let label = uri.object().unwrap_or("ralio").as_bytes().to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::Label(label.clone()),
        Attribute::Id(id.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label),
        Attribute::Id(id),
    ];
    let (_, key) = session
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .map_err(|e| backend("the token could not generate a P-256 key pair", e))?;
    tracing::info!(key = %reference, "generated a P-256 key inside the PKCS#11 token (sensitive, not extractable)");
    Ok(key)
}

struct KeyFacts {
    label: String,
    id: Vec<u8>,
    point: Vec<u8>,
    extractable: Option<bool>,
}

fn key_facts(
    session: &Session,
    key: ObjectHandle,
    uri: &Pkcs11Uri,
    reference: &str,
) -> Result<KeyFacts, OpenKeyError> {
    let backend = |e: CkError| OpenKeyError::Backend {
        reference: reference.to_owned(),
        hint: "reading the key's attributes failed".to_owned(),
        source: Box::new(e),
    };
    let attributes = session
        .get_attributes(
            key,
            &[
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::EcParams,
                AttributeType::Extractable,
                AttributeType::Sign,
                AttributeType::EcPoint,
            ],
        )
        .map_err(backend)?;
    let mut facts = KeyFacts {
        label: String::new(),
        id: Vec::new(),
        point: Vec::new(),
        extractable: None,
    };
    let mut params = None;
    let mut can_sign = true;
    for attribute in attributes {
        match attribute {
            Attribute::Label(label) => facts.label = String::from_utf8_lossy(&label).into_owned(),
            Attribute::Id(id) => facts.id = id,
            Attribute::EcParams(p) => params = Some(p),
            Attribute::Extractable(e) => facts.extractable = Some(e),
            Attribute::Sign(s) => can_sign = s,
            Attribute::EcPoint(p) => facts.point = p,
            _ => {}
        }
    }
    let unsuitable = |reason: &str| OpenKeyError::Unsuitable {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    if params.as_deref() != Some(P256_PARAMS) {
        return Err(unsuitable(
            "it is not a P-256 key (CKA_EC_PARAMS is another curve); ES256 needs P-256",
        ));
    }
    if !can_sign {
        return Err(unsuitable("its CKA_SIGN is false"));
    }
    // Most tokens keep the point on the public key object only.
    if facts.point.is_empty() {
        let mut template = key_template(ObjectClass::PUBLIC_KEY, uri);
        if uri.id().is_none() && !facts.id.is_empty() {
            template.push(Attribute::Id(facts.id.clone()));
        }
        let public = session.find_objects(&template).map_err(backend)?;
        let Some(public) = public.first() else {
            return Err(unsuitable(
                "the token holds no public key object beside it, so its public key cannot be read",
            ));
        };
        for attribute in session
            .get_attributes(*public, &[AttributeType::EcPoint])
            .map_err(backend)?
        {
            if let Attribute::EcPoint(p) = attribute {
                facts.point = p;
            }
        }
    }
    facts.point = unwrap_ec_point(&facts.point)
        .ok_or_else(|| unsuitable("its CKA_EC_POINT is not an uncompressed P-256 point"))?;
    Ok(facts)
}

/// The 65-byte SEC1 point of a `CKA_EC_POINT`: DER OCTET STRING-wrapped (`04 41 04 …`, what
/// the standard says and SoftHSM does) or bare (`04 …`, what some tokens do).
fn unwrap_ec_point(value: &[u8]) -> Option<Vec<u8>> {
    match value {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 && rest[0] == 0x04 => Some(rest.to_vec()),
        [0x04, ..] if value.len() == 65 => Some(value.to_vec()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(none)".to_owned();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_come_wrapped_or_bare() {
        let mut bare = vec![0x04];
        bare.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend(&bare);
        assert_eq!(unwrap_ec_point(&wrapped), Some(bare.clone()));
        assert_eq!(unwrap_ec_point(&bare), Some(bare.clone()));
        assert_eq!(unwrap_ec_point(&bare[..40]), None);
    }
}
