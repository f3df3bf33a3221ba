//! P-256 keys: loading, generation, export, the canonical public JWK and its RFC 7638 thumbprint.
//!
//! Parsing goes through the RustCrypto `pkcs8`/`sec1`/`p256` crates (they name what they found,
//! which lets errors say "this is a P-384 key" instead of "bad key"); signing goes through
//! aws-lc-rs, about ten times faster than the pure-Rust implementation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::{EncodePrivateKey as _, ObjectIdentifier};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::signer::{SignError, Signer};

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Why a key could not be loaded or created.
///
/// Messages name the problem and what to do; they never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An elliptic-curve key on a curve other than P-256.
    #[error(
        "the key is on curve {found}, but only P-256 (ES256) keys are supported; generate a P-256 key"
    )]
    #[non_exhaustive]
    WrongCurve {
        /// The curve that was found (`P-384`, `secp256k1`, an OID, ...).
        found: String,
    },
    /// A key of another algorithm family (RSA, Ed25519, ...).
    #[error(
        "the key is a {found} key, but only EC P-256 (ES256) keys are supported; generate a P-256 key"
    )]
    #[non_exhaustive]
    WrongKeyType {
        /// The key type that was found (`RSA`, `Ed25519`, a JWK `kty`, ...).
        found: String,
    },
    /// A password-protected PEM.
    #[error(
        "the PEM private key is encrypted; store it unencrypted (for example `openssl pkcs8 -topk8 -nocrypt -in key.pem -out plain.pem`) or use a Signer that holds the key elsewhere"
    )]
    EncryptedPem,
    /// A JWK without one of the members a private P-256 JWK needs.
    #[error("the JWK has no `{0}` member; a private P-256 JWK needs kty, crv, x, y and d")]
    MissingJwkMember(&'static str),
    /// A public key (or certificate) where a private key was expected.
    #[error(
        "this is a public key only; signing needs the private key (PKCS#8 PEM, SEC1 PEM or a JWK with `d`)"
    )]
    PublicOnly,
    /// A PEM of a kind this loader does not read.
    #[error("expected a {expected} PEM block but found `{found}`")]
    #[non_exhaustive]
    UnexpectedPemLabel {
        /// What the called function reads.
        expected: &'static str,
        /// The PEM label that was found.
        found: String,
    },
    /// Input that is not a usable key.
    #[error("the key is malformed: {reason}")]
    #[non_exhaustive]
    Malformed {
        /// What is wrong, in words; never key material.
        reason: &'static str,
    },
    /// The key file could not be read.
    #[error("could not read the key file {}", path.display())]
    #[non_exhaustive]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cryptographic backend refused an operation on a well-formed key.
    #[error("the crypto backend failed to {operation}; this is a bug or an unsupported platform")]
    #[non_exhaustive]
    Crypto {
        /// What was being done.
        operation: &'static str,
    },
}

fn malformed(reason: &'static str) -> KeyError {
    KeyError::Malformed { reason }
}

/// The public half of a P-256 key as a JWK with exactly the RFC 7638 member set
/// (`crv`, `kty`, `x`, `y`).
///
/// Serialises to the canonical form (sorted members, no whitespace), so
/// `serde_json::to_string(&jwk)` equals [`PublicJwk::to_json`]. Deserialising validates the
/// curve, the coordinate lengths and that the point lies on the curve; unknown members are ignored.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPublicJwk")]
pub struct PublicJwk {
    crv: String,
    kty: String,
    x: String,
    y: String,
    #[serde(skip)]
    point: Vec<u8>,
    /// Computed once, when the JWK is built: every proof names it.
    #[serde(skip)]
    thumbprint: Thumbprint,
}

#[derive(Deserialize)]
struct RawPublicJwk {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl TryFrom<RawPublicJwk> for PublicJwk {
    type Error = KeyError;

    fn try_from(raw: RawPublicJwk) -> Result<Self, KeyError> {
        let (x, y) = check_public_members(raw.kty, raw.crv, raw.x, raw.y)?;
        PublicJwk::from_coordinates(&x, &y)
    }
}

fn check_public_members(
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
) -> Result<([u8; 32], [u8; 32]), KeyError> {
    let kty = kty.ok_or(KeyError::MissingJwkMember("kty"))?;
    if kty != "EC" {
        let found = match (kty.as_str(), crv.as_deref()) {
            ("OKP", Some(c)) => c.to_owned(),
            _ => kty,
        };
        return Err(KeyError::WrongKeyType { found });
    }
    let crv = crv.ok_or(KeyError::MissingJwkMember("crv"))?;
    if crv != "P-256" {
        return Err(KeyError::WrongCurve { found: crv });
    }
    let x = x.ok_or(KeyError::MissingJwkMember("x"))?;
    let y = y.ok_or(KeyError::MissingJwkMember("y"))?;
    Ok((decode_coordinate(&x, "x")?, decode_coordinate(&y, "y")?))
}

fn decode_coordinate(value: &str, member: &'static str) -> Result<[u8; 32], KeyError> {
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .map_err(|_| match member {
                "d" => malformed("the JWK member `d` is not base64url"),
                "x" => malformed("the JWK member `x` is not base64url"),
                _ => malformed("the JWK member `y` is not base64url"),
            })?,
    );
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| match member {
        "d" => malformed("the JWK member `d` is not 32 bytes, as a P-256 scalar must be"),
        "x" => malformed("the JWK member `x` is not 32 bytes, as a P-256 coordinate must be"),
        _ => malformed("the JWK member `y` is not 32 bytes, as a P-256 coordinate must be"),
    })
}

impl PublicJwk {
    /// Builds the JWK from the big-endian affine coordinates, checking the point is on P-256.
    pub fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Result<Self, KeyError> {
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        p256::PublicKey::from_sec1_bytes(&point)
            .map_err(|_| malformed("the public point is not on the P-256 curve"))?;
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let digest = Sha256::digest(canonical_json(&x, &y).as_bytes());
        Ok(Self {
            crv: "P-256".to_owned(),
            kty: "EC".to_owned(),
            x,
            y,
            point,
            thumbprint: Thumbprint(URL_SAFE_NO_PAD.encode(digest)),
        })
    }

    /// Builds the JWK from a SEC1-encoded point (uncompressed `04‖x‖y` or compressed).
    pub fn from_sec1_bytes(point: &[u8]) -> Result<Self, KeyError> {
        let key = p256::PublicKey::from_sec1_bytes(point)
            .map_err(|_| malformed("the bytes are not a P-256 public point"))?;
        Self::from_p256(&key)
    }

    /// Reads a `PUBLIC KEY` (SubjectPublicKeyInfo) PEM, as KMS and Vault Transit export it.
    pub fn from_public_key_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem_block(pem)?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::UnexpectedPemLabel {
                expected: "PUBLIC KEY",
                found: label,
            });
        }
        Self::from_public_key_der(&der)
    }

    /// Reads a DER `SubjectPublicKeyInfo` (what AWS KMS `GetPublicKey` answers), checking it
    /// is an EC P-256 key.
    pub(crate) fn from_public_key_der(der: &[u8]) -> Result<Self, KeyError> {
        use pkcs8::DecodePublicKey as _;
        let spki = pkcs8::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|_| malformed("the PUBLIC KEY PEM is not valid SubjectPublicKeyInfo"))?;
        check_algorithm(spki.algorithm.oid, spki.algorithm.parameters_oid().ok())?;
        let key = p256::PublicKey::from_public_key_der(der)
            .map_err(|_| malformed("the PUBLIC KEY PEM does not hold a valid P-256 point"))?;
        Self::from_p256(&key)
    }

    /// Parses a public JWK from JSON (extra members are ignored), validating it.
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        serde_json::from_str::<RawPublicJwk>(json)
            .map_err(|_| malformed("the JWK is not a JSON object with string members"))
            .and_then(Self::try_from)
    }

    fn from_p256(key: &p256::PublicKey) -> Result<Self, KeyError> {
        let point = key.to_encoded_point(false);
        match (point.x(), point.y()) {
            (Some(x), Some(y)) => {
                let mut xa = [0u8; 32];
                let mut ya = [0u8; 32];
                xa.copy_from_slice(x);
                ya.copy_from_slice(y);
                Self::from_coordinates(&xa, &ya)
            }
            _ => Err(malformed("the public point is the identity")),
        }
    }

    /// `"P-256"`.
    pub fn crv(&self) -> &str {
        &self.crv
    }
    /// `"EC"`.
    pub fn kty(&self) -> &str {
        &self.kty
    }
    /// The x coordinate, unpadded base64url of 32 big-endian bytes.
    pub fn x(&self) -> &str {
        &self.x
    }
    /// The y coordinate, unpadded base64url of 32 big-endian bytes.
    pub fn y(&self) -> &str {
        &self.y
    }

    /// The uncompressed SEC1 point `04‖x‖y` (65 bytes).
    pub fn sec1_uncompressed(&self) -> &[u8] {
        &self.point
    }

    /// The canonical RFC 7638 JSON: `{"crv":"P-256","kty":"EC","x":"…","y":"…"}`.
    pub fn to_json(&self) -> String {
        canonical_json(&self.x, &self.y)
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256(canonical JSON)), computed when the JWK was
    /// built.
    pub fn thumbprint(&self) -> &Thumbprint {
        &self.thumbprint
    }

    /// Verifies a raw `r‖s` ES256 signature over `message` with this key.
    pub fn verify_es256(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

/// The RFC 7638 canonical JSON of a P-256 public key (members sorted, no whitespace).
fn canonical_json(x: &str, y: &str) -> String {
    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// An RFC 7638 JWK thumbprint (`jkt`): unpadded base64url of a SHA-256 digest.
///
/// Public information (it identifies a key, like a fingerprint), so it displays freely. Ralio
/// uses it as the `kid` of client assertions and as the token's `cnf.jkt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Thumbprint(String);

impl Thumbprint {
    /// The base64url text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a thumbprint received from elsewhere (a server's `fingerprint`, a file name),
    /// checking it is 43 base64url characters (32 bytes).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == 32).then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Thumbprint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A P-256 private key held in process memory.
///
/// Cloning shares the key (reference counted). The secret scalar and its encodings are zeroised
/// when the last clone drops; `Debug` shows only the thumbprint.
#[derive(Clone)]
pub struct PrivateKey {
    inner: Arc<Inner>,
}

struct Inner {
    secret: p256::SecretKey,
    pkcs8_pem: SecretString,
    signing: EcdsaKeyPair,
    public_jwk: PublicJwk,
}

impl PrivateKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| {
            KeyError::Crypto {
                operation: "generate a P-256 key",
            }
        })?;
        let doc = pair.to_pkcs8v1().map_err(|_| KeyError::Crypto {
            operation: "encode a generated key",
        })?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Loads a PEM private key: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    ///
    /// An `EC PARAMETERS` block before the key (as `openssl ecparam -genkey` writes) is skipped.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem_block(pem)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "EC PRIVATE KEY" => Self::from_sec1_der(&der),
            _ => Err(classify_label(label, "PRIVATE KEY or EC PRIVATE KEY")),
        }
    }

    /// Loads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_pem_labelled(
            pem,
            "PRIVATE KEY",
            "PRIVATE KEY (PKCS#8)",
            Self::from_pkcs8_der,
        )
    }

    /// Loads a SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`).
    pub fn from_sec1_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_pem_labelled(
            pem,
            "EC PRIVATE KEY",
            "EC PRIVATE KEY (SEC1)",
            Self::from_sec1_der,
        )
    }

    /// A PEM block that must carry `label`, its DER read by `read`; another label is the
    /// error `classify_label` gives for one that is not `expected`.
    fn from_pem_labelled(
        pem: &str,
        label: &str,
        expected: &'static str,
        read: fn(&[u8]) -> Result<Self, KeyError>,
    ) -> Result<Self, KeyError> {
        let (found, der) = decode_pem_block(pem)?;
        if found == label {
            read(&der)
        } else {
            Err(classify_label(found, expected))
        }
    }

    /// Reads a PEM file (PKCS#8 or SEC1) and loads it as [`PrivateKey::from_pem`] does.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = Zeroizing::new(text);
        Self::from_pem(&text)
    }

    /// Loads a private JWK (`kty`, `crv`, `x`, `y`, `d`); other members are ignored.
    ///
    /// `x` and `y` must match `d`.
    pub fn from_jwk(jwk_json: &str) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        struct RawPrivateJwk {
            kty: Option<String>,
            crv: Option<String>,
            x: Option<String>,
            y: Option<String>,
            d: Option<SecretString>,
        }
        let raw: RawPrivateJwk = serde_json::from_str(jwk_json)
            .map_err(|_| malformed("the JWK is not a JSON object with string members"))?;
        let (x, y) = check_public_members(raw.kty, raw.crv, raw.x, raw.y)?;
        let d = raw.d.ok_or(KeyError::PublicOnly)?;
        let d = Zeroizing::new(decode_coordinate(d.expose_secret(), "d")?);
        let secret = p256::SecretKey::from_slice(d.as_slice())
            .map_err(|_| malformed("the JWK member `d` is not a valid P-256 private scalar"))?;
        let key = Self::from_secret(secret)?;
        let given = PublicJwk::from_coordinates(&x, &y)?;
        if given != key.inner.public_jwk {
            return Err(malformed(
                "the JWK's public members `x`/`y` do not belong to its private member `d`",
            ));
        }
        Ok(key)
    }

    /// Loads a PKCS#8 DER document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|_| malformed("the data is not a PKCS#8 PrivateKeyInfo (or it is damaged)"))?;
        check_algorithm(info.algorithm.oid, info.algorithm.parameters_oid().ok())?;
        let ec = sec1::EcPrivateKey::try_from(info.private_key)
            .map_err(|_| malformed("the PKCS#8 document does not hold a SEC1 EC private key"))?;
        check_sec1(&ec)?;
        let secret = p256::SecretKey::from_slice(ec.private_key)
            .map_err(|_| malformed("the PKCS#8 document does not hold a valid P-256 key"))?;
        let key = Self::from_secret(secret)?;
        key.check_embedded_public(ec.public_key.or(info.public_key))?;
        Ok(key)
    }

    /// Loads a SEC1 `ECPrivateKey` DER document.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        let ec = sec1::EcPrivateKey::try_from(der)
            .map_err(|_| malformed("the data is not a SEC1 ECPrivateKey (or it is damaged)"))?;
        check_sec1(&ec)?;
        let secret = p256::SecretKey::from_slice(ec.private_key)
            .map_err(|_| malformed("the private scalar is not a valid P-256 key"))?;
        let key = Self::from_secret(secret)?;
        key.check_embedded_public(ec.public_key)?;
        Ok(key)
    }

    fn check_embedded_public(&self, public: Option<&[u8]>) -> Result<(), KeyError> {
        match public {
            Some(bytes) if bytes != self.inner.public_jwk.sec1_uncompressed() => {
                match PublicJwk::from_sec1_bytes(bytes) {
                    Ok(p) if p == self.inner.public_jwk => Ok(()),
                    _ => Err(malformed(
                        "the public key stored with the private key does not match it (the file is damaged or tampered with)",
                    )),
                }
            }
            _ => Ok(()),
        }
    }

    fn from_secret(secret: p256::SecretKey) -> Result<Self, KeyError> {
        let public = secret.public_key();
        let public_jwk = PublicJwk::from_p256(&public)?;
        let scalar = Zeroizing::new(secret.to_bytes());
        let signing = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &scalar[..],
            public_jwk.sec1_uncompressed(),
        )
        .map_err(|_| KeyError::Crypto {
            operation: "load the key into aws-lc-rs",
        })?;
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::Crypto {
                operation: "encode the key as PKCS#8",
            })?;
        let pkcs8_pem = SecretString::from(pem.as_str());
        Ok(Self {
            inner: Arc::new(Inner {
                secret,
                pkcs8_pem,
                signing,
                public_jwk,
            }),
        })
    }

    /// The key as unencrypted PKCS#8 PEM (the on-disk format). Handle with care: this is the
    /// secret key.
    pub fn to_pkcs8_pem(&self) -> SecretString {
        self.inner.pkcs8_pem.clone()
    }

    /// The key as a private JWK (`{"crv","d","kty","x","y"}`), the `RALIO_PRIVATE_JWK` format.
    /// Handle with care: this is the secret key.
    pub fn to_private_jwk(&self) -> SecretString {
        let d = Zeroizing::new(URL_SAFE_NO_PAD.encode(self.inner.secret.to_bytes()));
        let jwk = &self.inner.public_jwk;
        SecretString::from(format!(
            r#"{{"crv":"P-256","d":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            d.as_str(),
            jwk.x,
            jwk.y
        ))
    }

    /// The canonical public JWK.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.inner.public_jwk
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> &Thumbprint {
        self.inner.public_jwk.thumbprint()
    }

    /// Signs `message` with ES256 and returns the raw `r‖s` signature, synchronously.
    pub fn sign_es256_now(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self
            .inner
            .signing
            .sign(&rng, message)
            .map_err(|_| SignError::Crypto)?;
        <[u8; 64]>::try_from(sig.as_ref()).map_err(|_| SignError::BadSignature {
            signer: "in-memory key".into(),
        })
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("thumbprint", &self.thumbprint().as_str())
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[async_trait]
impl Signer for PrivateKey {
    fn public_jwk(&self) -> &PublicJwk {
        &self.inner.public_jwk
    }

    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        self.sign_es256_now(message)
    }

    fn try_sign_es256_now(&self, message: &[u8]) -> Option<Result<[u8; 64], SignError>> {
        Some(self.sign_es256_now(message))
    }
}

/// Decodes the first key block of a PEM text, skipping `EC PARAMETERS`. Legacy OpenSSL
/// encryption (`Proc-Type: 4,ENCRYPTED` headers) is reported as [`KeyError::EncryptedPem`].
fn decode_pem_block(pem: &str) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    if pem.contains("Proc-Type:") && pem.contains("ENCRYPTED") {
        return Err(KeyError::EncryptedPem);
    }
    let mut rest = pem;
    let mut saw_block = false;
    while let Some(start) = rest.find("-----BEGIN ") {
        saw_block = true;
        let block = &rest[start..];
        let after_begin = &block["-----BEGIN ".len()..];
        let Some(label_end) = after_begin.find("-----") else {
            break;
        };
        let label = &after_begin[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            return Err(malformed("the PEM block has no matching END line"));
        };
        let block_text = &block[..end + end_marker.len()];
        rest = &block[end + end_marker.len()..];
        if label == "EC PARAMETERS" {
            continue;
        }
        let (label, der) = pkcs8::der::pem::decode_vec(block_text.as_bytes())
            .map_err(|_| malformed("the PEM block is not valid base64 PEM"))?;
        return Ok((label.to_owned(), Zeroizing::new(der)));
    }
    Err(if saw_block {
        malformed("the PEM holds no key block")
    } else {
        malformed("the text is not PEM (no -----BEGIN line)")
    })
}

fn classify_label(label: String, expected: &'static str) -> KeyError {
    match label.as_str() {
        "ENCRYPTED PRIVATE KEY" => KeyError::EncryptedPem,
        "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => KeyError::WrongKeyType {
            found: "RSA".into(),
        },
        "DSA PRIVATE KEY" => KeyError::WrongKeyType {
            found: "DSA".into(),
        },
        "PUBLIC KEY" | "EC PUBLIC KEY" | "CERTIFICATE" => KeyError::PublicOnly,
        _ => KeyError::UnexpectedPemLabel {
            expected,
            found: label,
        },
    }
}

fn curve_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1".into(),
        other => format!("with OID {other}"),
    }
}

fn check_algorithm(
    alg: ObjectIdentifier,
    params: Option<ObjectIdentifier>,
) -> Result<(), KeyError> {
    if alg == OID_EC_PUBLIC_KEY {
        return match params {
            Some(curve) if curve == OID_P256 => Ok(()),
            Some(curve) => Err(KeyError::WrongCurve {
                found: curve_name(curve),
            }),
            None => Err(malformed("the EC key does not name its curve")),
        };
    }
    let found = match alg.to_string().as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "RSA".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        other => format!("algorithm OID {other}"),
    };
    Err(KeyError::WrongKeyType { found })
}

fn check_sec1(ec: &sec1::EcPrivateKey<'_>) -> Result<(), KeyError> {
    if let Some(curve) = ec.parameters.and_then(|p| p.named_curve())
        && curve != OID_P256
    {
        return Err(KeyError::WrongCurve {
            found: curve_name(curve),
        });
    }
    if ec.private_key.len() != 32 {
        return Err(malformed(
            "the private scalar is not 32 bytes, so this is not a P-256 key",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pem_and_jwk() {
        let key = PrivateKey::generate().unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(
            pem.expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let again = PrivateKey::from_pem(pem.expose_secret()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
        let again = PrivateKey::from_pkcs8_pem(pem.expose_secret()).unwrap();
        assert_eq!(again.public_jwk(), key.public_jwk());
        let jwk = key.to_private_jwk();
        let again = PrivateKey::from_jwk(jwk.expose_secret()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
    }

    #[test]
    fn rfc7638_thumbprint_of_known_key() {
        // RFC 7638 gives only an RSA example; this P-256 value is computed independently:
        // python -c 'import hashlib,base64;print(base64.urlsafe_b64encode(hashlib.sha256(b"{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}").digest()).rstrip(b"="))'
        let jwk = PublicJwk::from_json(
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","use":"sig"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.to_json(),
            r#"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#
        );
        assert_eq!(serde_json::to_string(&jwk).unwrap(), jwk.to_json());
        assert_eq!(
            jwk.thumbprint().as_str(),
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
    }

    #[test]
    fn signatures_are_raw_and_verify() {
        let key = PrivateKey::generate().unwrap();
        let sig = key.sign_es256_now(b"hello").unwrap();
        assert!(key.public_jwk().verify_es256(b"hello", &sig));
        assert!(!key.public_jwk().verify_es256(b"hellO", &sig));
        let other = PrivateKey::generate().unwrap();
        assert!(!other.public_jwk().verify_es256(b"hello", &sig));
    }

    #[test]
    fn debug_is_redacted() {
        let key = PrivateKey::generate().unwrap();
        let dbg = format!("{key:?}");
        let jwk = key.to_private_jwk();
        let v: serde_json::Value = serde_json::from_str(jwk.expose_secret()).unwrap();
        let d = v["d"].as_str().unwrap();
        assert!(!dbg.contains(d));
        assert!(dbg.contains("[redacted]"));
        assert!(dbg.contains(key.thumbprint().as_str()));
        assert!(!format!("{:?}", key.to_pkcs8_pem()).contains("BEGIN"));
    }
}
