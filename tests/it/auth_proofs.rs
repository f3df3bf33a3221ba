//! The exact headers and claims of DPoP proofs and client assertions, and their signatures.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ralio::auth::{Htu, JwsSigner, ProofRequest};
use ralio::keys::{PrivateKey, PublicJwk, SignError, Signer};
use serde_json::Value;
use sha2::Digest as _;

fn fixture_key() -> PrivateKey {
    PrivateKey::from_pem_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys/p256_pkcs8.pem"),
    )
    .unwrap()
}

fn decode(jwt: &str) -> (Value, Value, Vec<u8>, String) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS");
    let part = |i: usize| URL_SAFE_NO_PAD.decode(parts[i]).unwrap();
    (
        serde_json::from_slice(&part(0)).unwrap(),
        serde_json::from_slice(&part(1)).unwrap(),
        part(2),
        format!("{}.{}", parts[0], parts[1]),
    )
}

#[tokio::test]
async fn dpop_proof_for_a_resource() {
    let key = fixture_key();
    let signer = JwsSigner::new(Arc::new(key.clone()));
    let url = url::Url::parse("https://api.ralio.co/api/transactions?page=2#x").unwrap();
    let htu = Htu::from_request_url(&url).unwrap();
    let proof = signer
        .dpop_proof(&ProofRequest {
            htm: &http::Method::GET,
            htu: &htu,
            access_token: Some("rat_example_token"),
            nonce: Some("server-nonce-1"),
            iat: 1_700_000_000,
        })
        .await
        .unwrap();
    let (header, claims, sig, input) = decode(proof.expose_secret());
    assert_eq!(sig.len(), 64, "raw r‖s");
    assert!(key.public_jwk().verify_es256(input.as_bytes(), &sig));
    let expected_ath = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"rat_example_token"));
    assert_eq!(claims["ath"], expected_ath.as_str());
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );
    insta::assert_json_snapshot!("dpop_proof_header", header);
    insta::assert_json_snapshot!("dpop_proof_claims", claims, {".iat" => "[iat]", ".jti" => "[jti]"});
}

#[tokio::test]
async fn dpop_proof_for_the_token_endpoint_has_no_ath_and_no_nonce_when_none_is_known() {
    let key = fixture_key();
    let signer = JwsSigner::new(Arc::new(key));
    let htu = Htu::parse("https://api.ralio.co/oauth/token").unwrap();
    let proof = signer
        .dpop_proof(&ProofRequest {
            htm: &http::Method::POST,
            htu: &htu,
            access_token: None,
            nonce: None,
            iat: 1_700_000_000,
        })
        .await
        .unwrap();
    let (_, claims, _, _) = decode(proof.expose_secret());
    insta::assert_json_snapshot!("dpop_proof_token_endpoint_claims", claims, {".iat" => "[iat]", ".jti" => "[jti]"});
}

#[tokio::test]
async fn client_assertion() {
    let key = fixture_key();
    let signer = JwsSigner::new(Arc::new(key.clone()));
    let a = signer
        .client_assertion(
            "cb_123",
            "https://api.ralio.co/oauth/token",
            1_700_000_000,
            60,
        )
        .await
        .unwrap();
    let b = signer
        .client_assertion(
            "cb_123",
            "https://api.ralio.co/oauth/token",
            1_700_000_000,
            60,
        )
        .await
        .unwrap();
    let (header, claims, sig, input) = decode(a.expose_secret());
    assert!(key.public_jwk().verify_es256(input.as_bytes(), &sig));
    assert_eq!(header["kid"], key.thumbprint().as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    assert_ne!(
        decode(b.expose_secret()).1["jti"],
        claims["jti"],
        "fresh jti"
    );
    assert!(!format!("{a:?}").contains(a.expose_secret()));
    insta::assert_json_snapshot!("client_assertion_header", header);
    insta::assert_json_snapshot!("client_assertion_claims", claims, {".iat" => "[iat]", ".exp" => "[exp]", ".jti" => "[jti]"});
}

/// A signer whose key lives "elsewhere": only the async path, answering like a remote KMS.
#[derive(Debug)]
struct RemoteSigner {
    key: PrivateKey,
    fail: bool,
}

#[async_trait]
impl Signer for RemoteSigner {
    fn public_jwk(&self) -> &PublicJwk {
        self.key.public_jwk()
    }
    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        tokio::task::yield_now().await;
        if self.fail {
            return Err(SignError::backend(
                "test kms",
                std::io::Error::other("connection refused"),
            ));
        }
        self.key.sign_es256_now(message)
    }
}

#[tokio::test]
async fn a_custom_async_signer_signs_proofs_and_its_failures_are_typed() {
    let key = PrivateKey::generate().unwrap();
    let signer = JwsSigner::new(Arc::new(RemoteSigner {
        key: key.clone(),
        fail: false,
    }));
    let htu = Htu::parse("https://rs.example/x").unwrap();
    let req = ProofRequest {
        htm: &http::Method::GET,
        htu: &htu,
        access_token: None,
        nonce: None,
        iat: 1,
    };
    let proof = signer.dpop_proof(&req).await.unwrap();
    let (header, _, sig, input) = decode(proof.expose_secret());
    assert_eq!(
        header["jwk"],
        serde_json::to_value(key.public_jwk()).unwrap()
    );
    assert!(key.public_jwk().verify_es256(input.as_bytes(), &sig));

    let failing = JwsSigner::new(Arc::new(RemoteSigner { key, fail: true }));
    let err = failing.dpop_proof(&req).await.unwrap_err();
    assert!(matches!(err, SignError::Backend { .. }));
    assert!(err.to_string().contains("test kms"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}
