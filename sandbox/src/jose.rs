//! Compact JWS parsing and ES256 verification, written against RFC 7515/7518/7638 directly so the
//! sandbox does not share code (or bugs) with the SDK it checks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A parsed, not yet verified, compact JWS.
pub(crate) struct Jws {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jws {
    /// Splits and decodes `header.payload.signature`; both JSON parts must be objects.
    pub(crate) fn parse(compact: &str) -> Result<Self, &'static str> {
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS (expected three dot-separated parts)");
        };
        let header = decode_object(h).ok_or("JWS header is not base64url-encoded JSON object")?;
        let claims =
            decode_object(p).ok_or("JWS payload is not a base64url-encoded JSON object")?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "JWS signature is not unpadded base64url")?;
        Ok(Self {
            header,
            claims,
            signing_input: format!("{h}.{p}"),
            signature,
        })
    }

    /// `true` when the raw `r‖s` signature verifies under `key`.
    pub(crate) fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(sig) = Signature::from_slice(&self.signature) else {
            return false;
        };
        self.signature.len() == 64 && key.verify(self.signing_input.as_bytes(), &sig).is_ok()
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim as whole seconds (fractions are truncated, as RFC 7519 allows).
    pub(crate) fn claim_time(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A validated P-256 public key and its RFC 7638 thumbprint.
pub(crate) struct PublicJwk {
    pub(crate) key: VerifyingKey,
    pub(crate) jkt: String,
}

/// Validates a public JWK strictly: exactly `crv`, `kty`, `x`, `y`; `EC`/`P-256`; 32-byte
/// unpadded base64url coordinates; a point on the curve.
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
    let x = coord("x")?;
    let y = coord("y")?;
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(4);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    let key = VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| "the point (x, y) is not on the P-256 curve".to_owned())?;
    Ok(PublicJwk {
        key,
        jkt: thumbprint(&m["x"], &m["y"]),
    })
}

/// RFC 7638 thumbprint of a P-256 key from its (already validated) coordinates.
fn thumbprint(x: &Value, y: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        x.as_str().unwrap_or_default(),
        y.as_str().unwrap_or_default()
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
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
