//! [`RedactedString`]: the type of every secret field in the generated wire types
//! ([`crate::api::types`]).
//!
//! The vendored document marks secrets the OpenAPI way (`"format": "password"`: registration
//! tickets, client assertions, access and refresh tokens) and `build.rs` maps that format to
//! this type, so a `Debug` of a request or response never prints one.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string as it travels on the wire: `Debug` prints `[redacted]`, there is no
/// `Display`, and the memory is zeroised on drop. Serialising it writes the secret (it has to
/// reach the server); only do that into a request body.
#[derive(Clone)]
pub struct RedactedString(SecretString);

impl RedactedString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    /// The secret itself. Whatever receives it must not log, print or persist it in clear
    /// except where the protocol requires (a header, a request body, the credential store).
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Converts into a [`SecretString`] for code that holds secrets with `secrecy`.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl fmt::Debug for RedactedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Constant-time comparison, so equality checks on secrets leak no timing.
impl PartialEq for RedactedString {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            self.expose_secret().as_bytes(),
            other.expose_secret().as_bytes(),
        )
        .is_ok()
    }
}

impl Eq for RedactedString {}

impl From<String> for RedactedString {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl From<&str> for RedactedString {
    fn from(secret: &str) -> Self {
        Self::new(secret)
    }
}

impl From<SecretString> for RedactedString {
    fn from(secret: SecretString) -> Self {
        Self(secret)
    }
}

impl Serialize for RedactedString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for RedactedString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::RedactedString;

    /// Every secret of the wire types (a token answer read from the server, a registration
    /// request built for it) stays out of `Debug`, while the value itself survives the round
    /// trip through JSON; equality compares the secrets.
    #[test]
    fn secrets_in_the_wire_types_never_reach_debug() {
        let answer: crate::api::types::TokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "at-SECRET-1",
            "refresh_token": "rt-SECRET-2",
            "token_type": "DPoP",
            "expires_in": 300,
            "scope": "agents:execute",
        }))
        .unwrap();
        let shown = format!("{answer:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_eq!(answer.access_token.expose_secret(), "at-SECRET-1");
        assert_eq!(
            answer
                .refresh_token
                .as_ref()
                .map(RedactedString::expose_secret),
            Some("rt-SECRET-2")
        );
        let back = serde_json::to_value(&answer).unwrap();
        assert_eq!(back["access_token"], "at-SECRET-1");

        let jwk: crate::api::types::PublicKeyJwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA",
        }))
        .unwrap();
        let request = crate::api::types::RegistrationRequest::builder(
            jwk,
            RedactedString::new("ralio-reg-SECRET-3"),
        );
        let request: crate::api::types::RegistrationRequest = request.try_into().unwrap();
        let shown = format!("{request:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(
            serde_json::to_value(&request).unwrap()["ticket"],
            "ralio-reg-SECRET-3"
        );

        assert_eq!(answer.access_token, RedactedString::from("at-SECRET-1"));
        assert_ne!(answer.access_token, RedactedString::from("at-SECRET-X"));
        assert_ne!(
            answer.access_token,
            RedactedString::from("at-SECRET-1-longer")
        );
    }
}
