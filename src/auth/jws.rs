//! Compact JWS for RFC 7523 client assertions and RFC 9449 DPoP proofs, and the `htu` type.
//!
//! The SDK encodes its JWS here rather than with `jsonwebtoken` (which the sandbox verifies
//! with, so the two still check each other). Two reasons. Every signature goes through the
//! [`Signer`] trait, which a remote key such as a Vault Transit key also implements;
//! jsonwebtoken 12 signs only with an `EncodingKey` it holds. And a proof is on every request:
//! aws-lc-rs signs P-256 in about 18 µs with the key parsed once, while jsonwebtoken 12's ES256
//! `encode` parses the PKCS#8 key again on every call: a whole proof costs 26.5 µs here against
//! 37.1 µs with `jsonwebtoken::encode` (the sandbox's `es256_proof` bench, one run, this
//! project's 2-vCPU dev machine). The claims are written by hand (`ProofClaims::to_json`,
//! byte-for-byte `serde_json`'s output) for the same reason.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::keys::{PublicJwk, SignError, Signer, Thumbprint};

/// The `htu` of a DPoP proof: scheme, host, port and path of a URL, never a query or fragment.
///
/// [`Htu::parse`] refuses a URL with a query or fragment (for configured URLs, where one is a
/// mistake); [`Htu::from_request_url`] drops them (for request URLs, which may carry a query).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Htu(String);

/// Why a URL cannot be an `htu`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HtuError {
    /// Not an absolute URL.
    #[error("not an absolute URL")]
    NotAbsolute,
    /// Neither `http` nor `https`.
    #[error("only http and https URLs can be DPoP targets")]
    NotHttp,
    /// The URL has a query string.
    #[error("a DPoP htu cannot have a query; remove the `?…` part")]
    HasQuery,
    /// The URL has a fragment.
    #[error("a DPoP htu cannot have a fragment; remove the `#…` part")]
    HasFragment,
    /// The URL carries a user name or password.
    #[error("a DPoP htu cannot carry credentials (user:password@)")]
    HasCredentials,
    /// A token URL with `http://` to a host that is not loopback: the client assertion and the
    /// refresh token would travel in clear text.
    #[error("a token URL must use https:// (http:// is allowed for loopback hosts only)")]
    Insecure,
}

impl Htu {
    /// Parses a URL that must have neither query nor fragment.
    pub fn parse(url: &str) -> Result<Self, HtuError> {
        let parsed = Url::parse(url).map_err(|_| HtuError::NotAbsolute)?;
        if parsed.query().is_some() {
            return Err(HtuError::HasQuery);
        }
        if parsed.fragment().is_some() {
            return Err(HtuError::HasFragment);
        }
        Self::from_request_url(&parsed)
    }

    /// The `htu` of a request URL: its query and fragment are dropped.
    pub fn from_request_url(url: &Url) -> Result<Self, HtuError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HtuError::NotHttp);
        }
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(HtuError::NotAbsolute);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HtuError::HasCredentials);
        }
        // The URL up to the end of its path: no query, no fragment.
        Ok(Self(url[..url::Position::AfterPath].to_owned()))
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Htu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! secret_jwt {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// The compact JWS. It is a credential: send it, never log it.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_jwt!(
    /// A signed DPoP proof (RFC 9449), for the `DPoP` header of one request.
    DpopProof
);
secret_jwt!(
    /// A signed client assertion (RFC 7523), for one token request.
    ClientAssertion
);

/// The `DPoP` request header, named once (a `&str` name is parsed on every insert).
pub(crate) const DPOP: reqwest::header::HeaderName =
    reqwest::header::HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header.
pub(crate) const DPOP_NONCE: reqwest::header::HeaderName =
    reqwest::header::HeaderName::from_static("dpop-nonce");

/// A fresh `jti`: 128 random bits, base64url (see [`fill_jti`]).
pub(crate) fn new_jti() -> Result<String, SignError> {
    let mut buf = [0u8; JTI_LEN];
    Ok(fill_jti(&mut buf)?.to_owned())
}

/// Length of a base64url `jti` of 128 bits.
const JTI_LEN: usize = 22;

/// Writes a fresh `jti` into `buf` (no allocation: one is signed into every proof).
///
/// The 128 bits come from `rand`'s thread-local CSPRNG (ChaCha12, seeded and periodically
/// reseeded from the operating system): a `jti` must be unique, not secret, and this costs a
/// tenth of aws-lc's `RAND_bytes`, which mixes fresh entropy into every call (callgrind: about
/// 2,300 instructions per proof, for 16 bytes). The signature's own nonce still comes from
/// aws-lc.
///
/// aws-lc's generator notices a `fork`; `rand`'s does not, so a parent and its forked child
/// would draw the same sequence. The process id is mixed into the first four bytes, so their
/// proofs never share a `jti` even then.
fn fill_jti(buf: &mut [u8; JTI_LEN]) -> Result<&str, SignError> {
    use rand::RngCore as _;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    for (b, p) in bytes.iter_mut().zip(std::process::id().to_le_bytes()) {
        *b ^= p;
    }
    let n = URL_SAFE_NO_PAD
        .encode_slice(bytes, buf)
        .map_err(|_| SignError::Crypto)?;
    std::str::from_utf8(&buf[..n]).map_err(|_| SignError::Crypto)
}

/// Appends `s` as a JSON string, byte for byte what `serde_json` writes: a string with no
/// character JSON must escape (every method, `htu`, `jti` and `ath`: URLs and base64url) is
/// copied between quotes; any other goes through `serde_json`.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a `&str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

impl ProofClaims<'_> {
    /// The claims as JSON, the same bytes `serde_json::to_vec(self)` gives, written directly:
    /// this runs on every request, and the derived serializer costs several times as much.
    fn to_json(&self) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = Vec::with_capacity(
            80 + self.htu.len() + self.ath.map_or(0, str::len) + self.nonce.map_or(0, str::len),
        );
        out.extend_from_slice(b"{\"htm\":");
        push_json_str(&mut out, self.htm);
        out.extend_from_slice(b",\"htu\":");
        push_json_str(&mut out, self.htu);
        // Writing an integer into a `Vec` cannot fail.
        let _ = write!(out, ",\"iat\":{}", self.iat);
        out.extend_from_slice(b",\"jti\":");
        push_json_str(&mut out, self.jti);
        if let Some(ath) = self.ath {
            out.extend_from_slice(b",\"ath\":");
            push_json_str(&mut out, ath);
        }
        if let Some(nonce) = self.nonce {
            out.extend_from_slice(b",\"nonce\":");
            push_json_str(&mut out, nonce);
        }
        out.push(b'}');
        out
    }
}

/// base64url(SHA-256(access token)), the proof's `ath`.
pub(crate) fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

#[cfg_attr(test, derive(Serialize))]
struct ProofClaims<'a> {
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    jti: &'a str,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    ath: Option<&'a str>,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    nonce: Option<&'a str>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
}

/// What a DPoP proof is for.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The request's HTTP method (`htm`).
    pub htm: &'a http::Method,
    /// The target URL.
    pub htu: &'a Htu,
    /// The access token the request carries (its hash becomes `ath`); `None` at the token endpoint.
    pub access_token: Option<&'a str>,
    /// The server's latest nonce for this origin.
    pub nonce: Option<&'a str>,
    /// `iat`, in Unix seconds by the server's clock.
    pub iat: i64,
}

/// Signs DPoP proofs and client assertions with one [`Signer`], with the JWS headers
/// serialised once.
#[derive(Debug, Clone)]
pub struct JwsSigner {
    signer: Arc<dyn Signer>,
    proof_header: Arc<str>,
    assertion_header: Arc<str>,
}

impl JwsSigner {
    /// Wraps a signer.
    pub fn new(signer: Arc<dyn Signer>) -> Self {
        let jwk = signer.public_jwk().to_json();
        let proof_header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#));
        let assertion_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"ES256","kid":"{}","typ":"JWT"}}"#,
            signer.thumbprint().as_str()
        ));
        Self {
            signer,
            proof_header: proof_header.into(),
            assertion_header: assertion_header.into(),
        }
    }

    /// The public key.
    pub fn public_jwk(&self) -> &PublicJwk {
        self.signer.public_jwk()
    }

    /// The key's thumbprint.
    pub fn thumbprint(&self) -> &Thumbprint {
        self.signer.thumbprint()
    }

    /// Signs a DPoP proof with a fresh `jti`.
    pub async fn dpop_proof(&self, req: &ProofRequest<'_>) -> Result<DpopProof, SignError> {
        let ath = req.access_token.map(ath);
        self.dpop_proof_with_ath(req, ath.as_deref()).await
    }

    /// [`JwsSigner::dpop_proof`] with the `ath` of `req.access_token` already computed (the
    /// token manager keeps it with the token).
    pub(crate) async fn dpop_proof_with_ath(
        &self,
        req: &ProofRequest<'_>,
        ath: Option<&str>,
    ) -> Result<DpopProof, SignError> {
        let mut jti = [0u8; JTI_LEN];
        let claims = ProofClaims {
            htm: req.htm.as_str(),
            htu: req.htu.as_str(),
            iat: req.iat,
            jti: fill_jti(&mut jti)?,
            ath,
            nonce: req.nonce,
        };
        self.sign(&self.proof_header, &claims.to_json())
            .await
            .map(DpopProof)
    }

    /// Signs a client assertion: `iss = sub = client_id`, `aud`, `iat`, `exp = iat + lifetime`,
    /// a fresh `jti`.
    pub async fn client_assertion(
        &self,
        client_id: &str,
        audience: &str,
        iat: i64,
        lifetime_secs: i64,
    ) -> Result<ClientAssertion, SignError> {
        let jti = new_jti()?;
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: audience,
            iat,
            exp: iat.saturating_add(lifetime_secs),
            jti: &jti,
        };
        // Serialising plain strings and integers cannot fail; an empty object would be refused
        // by the server rather than panic here.
        let claims = serde_json::to_vec(&claims).unwrap_or_default();
        self.sign(&self.assertion_header, &claims)
            .await
            .map(ClientAssertion)
    }

    async fn sign(&self, header: &str, claims: &[u8]) -> Result<SecretString, SignError> {
        // base64 straight into a buffer of the final size: `encode_string` goes through a
        // chunked encoder that checks UTF-8 chunk by chunk, twice the cost for these sizes.
        let mut out = Vec::with_capacity(
            header.len() + 4 * claims.len().div_ceil(3) + ES256_SIGNATURE_B64_LEN + 2,
        );
        out.extend_from_slice(header.as_bytes());
        out.push(b'.');
        append_base64(&mut out, claims)?;
        let signature = match self.signer.try_sign_es256_now(&out) {
            Some(result) => result?,
            None => self.signer.sign_es256(&out).await?,
        };
        out.push(b'.');
        append_base64(&mut out, &signature)?;
        // Header (base64url of our own JSON) and base64url parts: ASCII by construction.
        String::from_utf8(out)
            .map(SecretString::from)
            .map_err(|_| SignError::Crypto)
    }
}

/// Length of an ES256 signature (64 bytes) in unpadded base64url.
const ES256_SIGNATURE_B64_LEN: usize = match base64::encoded_len(64, false) {
    Some(n) => n,
    None => 0,
};

/// Appends the unpadded base64url of `bytes` to `out`.
fn append_base64(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), SignError> {
    let encoded = base64::encoded_len(bytes.len(), false).ok_or(SignError::Crypto)?;
    let start = out.len();
    out.resize(start + encoded, 0);
    let written = URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut out[start..])
        .map_err(|_| SignError::Crypto)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_refuses_query_and_fragment_and_strips_them_from_requests() {
        assert_eq!(
            Htu::parse("https://a.example/x?y=1"),
            Err(HtuError::HasQuery)
        );
        assert_eq!(
            Htu::parse("https://a.example/x#f"),
            Err(HtuError::HasFragment)
        );
        assert_eq!(Htu::parse("ftp://a.example/x"), Err(HtuError::NotHttp));
        assert_eq!(Htu::parse("/relative"), Err(HtuError::NotAbsolute));
        assert_eq!(
            Htu::parse("https://u:p@a.example/"),
            Err(HtuError::HasCredentials)
        );
        let url = Url::parse("https://API.example:443/a/b?page=2#frag").unwrap();
        let htu = Htu::from_request_url(&url).unwrap();
        assert_eq!(htu.as_str(), "https://api.example/a/b");
        let htu = Htu::parse("http://127.0.0.1:8080/oauth/token").unwrap();
        assert_eq!(htu.as_str(), "http://127.0.0.1:8080/oauth/token");
    }

    /// The hand-written encoder must give exactly serde_json's bytes (the sandbox and every
    /// server parse them as JSON; any difference would be a bug, not a style).
    #[test]
    fn proof_claims_json_is_byte_for_byte_serde_json() {
        let awkward = [
            "",
            "GET",
            "https://api.example/a/b",
            "http://127.0.0.1:8080/api/x%20y",
            "quote\"inside",
            "back\\slash",
            "tab\tnew\nline\r\u{0}\u{1f}",
            "del\u{7f}",
            "unicode é ✓ 😀",
            "</script>",
            "\u{2028}\u{2029}",
        ];
        for (i, a) in awkward.iter().enumerate() {
            for b in &awkward {
                let claims = ProofClaims {
                    htm: a,
                    htu: b,
                    iat: [0, -1, i64::MIN, i64::MAX, 1_764_000_000][i % 5],
                    jti: b,
                    ath: (i % 2 == 0).then_some(*a),
                    nonce: (i % 3 != 0).then_some(*b),
                };
                assert_eq!(
                    String::from_utf8(claims.to_json()).unwrap(),
                    serde_json::to_string(&claims).unwrap(),
                    "htm {a:?}, htu {b:?}"
                );
            }
        }
    }

    #[test]
    fn jti_is_128_bits_and_unique() {
        let a = new_jti().unwrap();
        let b = new_jti().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
        assert_ne!(a, b);
    }
}
