//! Compact JWS for RFC 7523 client assertions and RFC 9449 DPoP proofs, and the `htu` type.
//!
//! The SDK encodes its JWS here rather than with `jsonwebtoken` (which the sandbox verifies
//! with, so the two still check each other). Two reasons. Every signature goes through the
//! [`Signer`] trait, which a remote key such as a Vault Transit key also implements;
//! jsonwebtoken 12 signs only with an `EncodingKey` it holds. And a proof is on every request:
//! aws-lc-rs signs P-256 in about 18 µs with the key parsed once, while jsonwebtoken 12's ES256
//! `encode` parses the PKCS#8 key again on every call.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use url::Url;

use super::key::{PublicJwk, Thumbprint};
use super::signer::{SignError, Signer};

/// The `htu` of a DPoP proof: scheme, host, port and path of a URL, never a query or fragment.
///
/// [`Htu::parse`] refuses a URL with a query or fragment (for configured URLs, where one is a
/// mistake); [`Htu::from_request_url`] drops them (for request URLs, which may carry a query).
#[derive(Clone, PartialEq, Eq, Hash)]
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
        let mut clean = url.clone();
        clean.set_query(None);
        clean.set_fragment(None);
        Ok(Self(clean.into()))
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

impl fmt::Debug for Htu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Htu({})", self.0)
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

/// A fresh `jti`: 128 bits from the operating system's CSPRNG, base64url.
pub(crate) fn new_jti() -> Result<String, SignError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SignError::Crypto)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// base64url(SHA-256(access token)), the proof's `ath`.
pub(crate) fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// The HTTP method, uppercase (`GET`, `POST`).
    pub htm: &'a str,
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
        let jti = new_jti()?;
        let claims = ProofClaims {
            htm: req.htm,
            htu: req.htu.as_str(),
            iat: req.iat,
            jti: &jti,
            ath,
            nonce: req.nonce,
        };
        self.sign(&self.proof_header, &claims).await.map(DpopProof)
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
        self.sign(&self.assertion_header, &claims)
            .await
            .map(ClientAssertion)
    }

    async fn sign<C: Serialize>(
        &self,
        header: &str,
        claims: &C,
    ) -> Result<SecretString, SignError> {
        // Serialising plain strings and integers cannot fail; an empty object would be refused
        // by the server rather than panic here.
        let claims = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = String::with_capacity(header.len() + claims.len() * 4 / 3 + 90);
        out.push_str(header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut out);
        let signature = match self.signer.try_sign_es256_now(out.as_bytes()) {
            Some(result) => result?,
            None => self.signer.sign_es256(out.as_bytes()).await?,
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Ok(SecretString::from(out))
    }
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

    #[test]
    fn jti_is_128_bits_and_unique() {
        let a = new_jti().unwrap();
        let b = new_jti().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
        assert_ne!(a, b);
    }
}
