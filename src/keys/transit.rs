//! [`TransitSigner`]: a P-256 key that lives in Vault / OpenBao Transit (feature `vault`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{KeyLocation, KeyReference, PublicJwk, SignError, Signer, TransitKey};
use crate::vault::{Answer, VaultCall, VaultClient};

/// A [`Signer`] whose P-256 key lives in Vault Transit and never leaves it.
///
/// Get one from [`VaultStore::transit_signer`](crate::store::VaultStore::transit_signer) or
/// [`VaultStore::create_transit_key`](crate::store::VaultStore::create_transit_key). It holds
/// its own connection to Vault and the key's name, so it signs on its own, and a
/// [`VaultStore`](crate::store::VaultStore) that saves an identity with it records which key
/// it is.
///
/// Signing sends the message to `<mount>/sign/<key>/sha2-256` with `marshaling_algorithm=jws`
/// (raw `r‖s`); a DER (ASN.1) answer from an older server is converted. The key version is
/// pinned to the one read at connection, so a rotation in Vault cannot silently change the
/// key a binding is registered with.
pub struct TransitSigner {
    client: Arc<VaultClient>,
    key: TransitKey,
    version: u64,
    public_jwk: PublicJwk,
}

impl fmt::Debug for TransitSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitSigner")
            .field("addr", &self.client.config.addr)
            .field("mount", &self.key.mount())
            .field("key", &self.key.name())
            .field("version", &self.version)
            .field("thumbprint", &self.public_jwk.thumbprint().as_str())
            .finish()
    }
}

impl TransitSigner {
    /// A signer for `key` at `version`, whose public key is `public_jwk`, over `client`.
    pub(crate) fn new(
        client: Arc<VaultClient>,
        key: TransitKey,
        version: u64,
        public_jwk: PublicJwk,
    ) -> Self {
        Self {
            client,
            key,
            version,
            public_jwk,
        }
    }

    /// The Transit key this signer signs with.
    pub fn key(&self) -> &TransitKey {
        &self.key
    }

    /// The key version signatures are made with (the latest when the signer was built).
    pub fn version(&self) -> u64 {
        self.version
    }

    fn name(&self) -> String {
        format!("vault transit key {}", self.key)
    }
}

#[async_trait]
impl Signer for TransitSigner {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public_jwk
    }

    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let body = json!({
            "input": STANDARD.encode(message),
            "key_version": self.version,
            "marshaling_algorithm": "jws",
        });
        let path = format!("{}/sign/{}/sha2-256", self.key.mount(), self.key.name());
        let answer = self
            .client
            .call(VaultCall::post("sign", path, &body))
            .await
            .map_err(|e| SignError::backend(self.name(), e))?;
        let bad = || SignError::bad_signature(self.name());
        let Answer::Ok(value) = answer else {
            return Err(bad());
        };
        let text = value
            .pointer("/data/signature")
            .and_then(Value::as_str)
            .ok_or_else(bad)?;
        raw_signature(text).ok_or_else(bad)
    }

    fn key_location(&self) -> Option<KeyLocation> {
        Some(KeyLocation {
            reference: KeyReference::VaultTransit(self.key.clone()),
            description: format!(
                "Vault Transit key {} version {} at {}",
                self.key, self.version, self.client.config.addr
            ),
            extractable: None,
        })
    }
}

/// The raw `r‖s` of a Transit signature `vault:v<version>:<signature>`: base64url of the 64
/// bytes (`marshaling_algorithm=jws`), or, from older servers that ignore it, ASN.1 DER in
/// standard base64.
fn raw_signature(text: &str) -> Option<[u8; 64]> {
    let encoded = text.rsplit(':').next()?;
    if let Ok(raw) = URL_SAFE_NO_PAD.decode(encoded)
        && let Ok(raw) = <[u8; 64]>::try_from(raw.as_slice())
    {
        return Some(raw);
    }
    let der = STANDARD.decode(encoded).ok()?;
    let signature = p256::ecdsa::Signature::from_der(&der).ok()?;
    let (r, s) = signature.split_bytes();
    let mut raw = [0u8; 64];
    raw[..32].copy_from_slice(&r);
    raw[32..].copy_from_slice(&s);
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_and_jws_signatures_convert_to_raw_r_and_s() {
        use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let sig: Signature = key.sign(b"message");
        let expected: [u8; 64] = sig.to_bytes().into();
        let der = STANDARD.encode(sig.to_der().as_bytes());
        assert_eq!(raw_signature(&format!("vault:v1:{der}")), Some(expected));
        let jws = URL_SAFE_NO_PAD.encode(expected);
        assert_eq!(raw_signature(&format!("vault:v3:{jws}")), Some(expected));
        assert_eq!(raw_signature("vault:v1:not base64!"), None);
    }
}
