//! JWS verification for client assertions and DPoP proofs, with `jsonwebtoken` (its `aws_lc_rs`
//! backend): an implementation the SDK does not share, so the sandbox catches the SDK's encoding
//! mistakes instead of repeating them.
//!
//! jsonwebtoken parses the JOSE header (refusing `crit` it does not understand and `b64: false`),
//! checks `alg` against the [`Validation`], verifies the signature with the key, decodes the
//! claims and checks the claims the `Validation` names (required claims, `iss`, `sub`, `aud`).
//! Before that, the sandbox reads the header itself for what jsonwebtoken's typed header cannot
//! express: its exact `alg` and `typ` strings (for precise error messages) and the exact member
//! names of an embedded JWK (a private `d` must be refused, not ignored).
//!
//! Time checks (`exp`, `iat`, a proof's age, an assertion's lifetime) stay in the callers:
//! jsonwebtoken 12 compares `exp` with `SystemTime::now()` and has no `iat` check, while every
//! sandbox time check must follow the sandbox's clock, which the clock-offset fault moves.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A compact JWS whose header has been read but whose signature is not verified yet.
pub(crate) struct Jws<'a> {
    compact: &'a str,
    /// The JOSE header as JSON, for the sandbox's own checks before verification.
    pub(crate) header: Map<String, Value>,
}

impl<'a> Jws<'a> {
    /// Reads the header of `header.payload.signature`; it must be a base64url JSON object.
    pub(crate) fn parse(compact: &'a str) -> Result<Self, &'static str> {
        let mut parts = compact.split('.');
        let (Some(h), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS (expected three dot-separated parts)");
        };
        let header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .ok_or("JWS header is not a base64url-encoded JSON object")?;
        Ok(Self { compact, header })
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// Verifies the signature with `key` and the claims `validation` names, with jsonwebtoken;
    /// returns the claims. [`describe`] turns the error into words.
    pub(crate) fn verify(
        &self,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Map<String, Value>>(self.compact, key, validation)
            .map(|data| Claims(data.claims))
    }

    /// The claims before verification, only to find the key that must verify them (an
    /// assertion's `iss` names the binding). Never trust them before [`Jws::verify`].
    pub(crate) fn unverified_claims(&self) -> Option<Claims> {
        jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(self.compact)
            .ok()
            .map(Claims)
    }
}

/// What a jsonwebtoken error means for the client that sent the JWS (never echoes the token).
pub(crate) fn describe(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::InvalidSignature => "signature does not verify".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "alg must be ES256".into(),
        ErrorKind::InvalidToken => {
            "header is not acceptable (a crit or b64 member this server does not support?)".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("has no {c} claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("{c} claim has the wrong type"),
        ErrorKind::InvalidAudience => "aud is not this server's URL".into(),
        ErrorKind::InvalidIssuer => "iss is not the expected client".into(),
        ErrorKind::InvalidSubject => "sub must equal iss (the client_id)".into(),
        ErrorKind::Base64(_) => "a part is not unpadded base64url".into(),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => "header or payload is not a JSON object".into(),
        other => format!("is not acceptable ({other:?})"),
    }
}

/// Verified JWT claims.
pub(crate) struct Claims(Map<String, Value>);

impl Claims {
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim as whole seconds (fractions are truncated, as RFC 7519 allows).
    pub(crate) fn time(&self, name: &str) -> Option<i64> {
        let v = self.0.get(name)?;
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
    }
}

/// A `Validation` for ES256 only that checks no time and no audience; callers add the rest.
pub(crate) fn es256_validation() -> Validation {
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v
}

/// [`es256_validation`], built once (building one allocates; proofs need no other).
pub(crate) fn es256_validation_ref() -> &'static Validation {
    static V: std::sync::LazyLock<Validation> = std::sync::LazyLock::new(es256_validation);
    &V
}

/// A validated P-256 public key and its RFC 7638 thumbprint.
pub(crate) struct PublicJwk {
    pub(crate) key: DecodingKey,
    pub(crate) jkt: String,
    sec1: Vec<u8>,
}

impl PublicJwk {
    /// `Err` with the reason when (x, y) is not a point of P-256 (checked with aws-lc-rs).
    pub(crate) fn on_curve(&self) -> Result<(), String> {
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.sec1)
            .map(|_| ())
            .map_err(|_| "the point (x, y) is not on the P-256 curve".to_owned())
    }
}

/// Validates a public JWK strictly: exactly `crv`, `kty`, `x`, `y`; `EC`/`P-256`; 32-byte
/// unpadded base64url coordinates. The key and its thumbprint come from jsonwebtoken. Whether
/// the point is on the curve is [`PublicJwk::on_curve`]'s question: jsonwebtoken's verification
/// refuses such a key anyway, so proofs ask only to explain a failed signature.
pub(crate) fn parse_public_jwk(v: &Value) -> Result<PublicJwk, String> {
    let Value::Object(m) = v else {
        return Err("public_key_jwk must be a JSON object".into());
    };
    let mut names: Vec<&str> = m.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names != ["crv", "kty", "x", "y"] {
        return Err(format!(
            "public_key_jwk must have exactly the members crv, kty, x, y (got {}); never send the private member d",
            names.join(", ")
        ));
    }
    if m.get("kty").and_then(Value::as_str) != Some("EC") {
        return Err("kty must be \"EC\"".into());
    }
    if m.get("crv").and_then(Value::as_str) != Some("P-256") {
        return Err("crv must be \"P-256\" (only ES256 keys are accepted)".into());
    }
    let coord = |name: &str| -> Result<Vec<u8>, String> {
        let s = m
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{name} must be a string"))?;
        let b = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| format!("{name} must be unpadded base64url"))?;
        if b.len() != 32 {
            return Err(format!(
                "{name} must encode exactly 32 bytes (got {})",
                b.len()
            ));
        }
        Ok(b)
    };
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(4);
    sec1.extend_from_slice(&coord("x")?);
    sec1.extend_from_slice(&coord("y")?);
    let jwk: Jwk = serde_json::from_value(v.clone())
        .map_err(|_| "public_key_jwk is not a JWK jsonwebtoken can read".to_owned())?;
    if !matches!(&jwk.algorithm, AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256)
    {
        return Err("the JWK is not a P-256 EC key".into());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "the JWK is not a usable key".to_owned())?;
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| "the JWK has no RFC 7638 thumbprint".to_owned())?;
    Ok(PublicJwk { key, jkt, sec1 })
}

/// How many DPoP proof headers [`proof_key`] remembers.
const PROOF_KEY_CACHE: usize = 256;

/// Validated keys by the exact base64url header segment of the proofs that carried them.
struct ProofKeys {
    keys: std::collections::HashMap<String, std::sync::Arc<PublicJwk>>,
    /// Insertion order, oldest first, for eviction.
    order: std::collections::VecDeque<String>,
}

static PROOF_KEYS: std::sync::Mutex<Option<ProofKeys>> = std::sync::Mutex::new(None);

/// What a DPoP proof's header must be: `typ` `dpop+jwt`, `alg` `ES256`, and a `jwk` that
/// [`parse_public_jwk`] accepts; returns that key. `Err` is the description for the client.
///
/// A client sends the same header with every proof (the header carries no per-request
/// member), so the outcome is remembered per exact header segment (bounded, oldest evicted):
/// the checks are a pure function of those bytes, and a repeated header skips the JSON
/// parsing, the JWK decoding and the thumbprint. Only accepted headers are remembered.
/// jsonwebtoken still reads the header again when it verifies the signature.
pub(crate) fn proof_key(compact: &str) -> Result<std::sync::Arc<PublicJwk>, String> {
    let segment = compact.split('.').next().unwrap_or("");
    {
        let cache = PROOF_KEYS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = cache.as_ref().and_then(|c| c.keys.get(segment)) {
            return Ok(std::sync::Arc::clone(key));
        }
    }
    let jws = Jws::parse(compact).map_err(|e| format!("DPoP proof is malformed: {e}"))?;
    if jws.header_str("typ") != Some("dpop+jwt") {
        return Err("DPoP proof header typ must be \"dpop+jwt\"".into());
    }
    if jws.header_str("alg") != Some("ES256") {
        return Err("DPoP proof header alg must be \"ES256\"".into());
    }
    let jwk = jws
        .header
        .get("jwk")
        .ok_or_else(|| "DPoP proof header has no jwk".to_owned())?;
    let key = std::sync::Arc::new(
        parse_public_jwk(jwk).map_err(|e| format!("DPoP proof jwk is not acceptable: {e}"))?,
    );
    let mut cache = PROOF_KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(|| ProofKeys {
        keys: std::collections::HashMap::new(),
        order: std::collections::VecDeque::new(),
    });
    if !cache.keys.contains_key(segment) {
        if cache.order.len() >= PROOF_KEY_CACHE
            && let Some(oldest) = cache.order.pop_front()
        {
            cache.keys.remove(&oldest);
        }
        cache.order.push_back(segment.to_owned());
        cache
            .keys
            .insert(segment.to_owned(), std::sync::Arc::clone(&key));
    }
    Ok(key)
}

/// Verifies `compact`'s signature with `key` and the claims `validation` names (jsonwebtoken),
/// without reading its header first: for a header [`proof_key`] already checked.
pub(crate) fn verify_compact(
    compact: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Claims, jsonwebtoken::errors::Error> {
    jsonwebtoken::decode::<Map<String, Value>>(compact, key, validation)
        .map(|data| Claims(data.claims))
}

/// `ath`: base64url(SHA-256(access token)).
pub(crate) fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// A fresh 256-bit random token from the OS-seeded CSPRNG, base64url.
pub(crate) fn random_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}
