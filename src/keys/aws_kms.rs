//! [`AwsKmsSigner`]: a P-256 key in AWS KMS (feature `aws-kms`, Rust 1.94.1 or newer).

use std::fmt;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use sha2::{Digest as _, Sha256};

use super::reference::{KeyCreation, KeyLocation, KeyReference, KmsKeyId, OpenKeyError};
use super::{PublicJwk, SignError, Signer};

/// KMS signs a message of at most this many bytes with `MessageType=RAW`.
const RAW_LIMIT: usize = 4096;

/// A [`Signer`] whose P-256 key lives in AWS KMS (`ECC_NIST_P256`, `SIGN_VERIFY`) and never
/// leaves it.
///
/// [`open`](Self::open) finds the key by id, ARN, alias or alias ARN with the standard AWS
/// configuration (`aws-config`: region and credentials from the environment, profile files,
/// web identity, ECS or EC2 instance roles, `credential_process`; `AWS_ENDPOINT_URL` for a
/// local endpoint); [`create`](Self::create) makes a new key (and an alias). Both read the
/// public key once with `GetPublicKey`. [`from_client`](Self::from_client) takes a client you
/// configured yourself.
///
/// Each signature is one `Sign` call with `ECDSA_SHA_256` over the message itself
/// (`MessageType=RAW`; a JWS signing input is far below KMS's 4,096-byte limit, and a longer
/// one is hashed here and sent as `DIGEST`); KMS answers DER, converted to `r‖s`. A DPoP-bound
/// client signs one proof per API request, so every request costs one KMS call: its latency
/// and its price (see the README's key comparison).
///
/// The key is pinned by its ARN: a store records the ARN, not the alias, so re-pointing the
/// alias cannot change the key a binding was registered with.
#[derive(Clone)]
pub struct AwsKmsSigner {
    client: Client,
    key_arn: String,
    public_jwk: PublicJwk,
}

impl fmt::Debug for AwsKmsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsSigner")
            .field("key", &self.key_arn)
            .field("thumbprint", &self.public_jwk.thumbprint().as_str())
            .finish()
    }
}

impl AwsKmsSigner {
    /// Opens the existing key `key` with the standard AWS configuration (the ARN's region when
    /// the key is given by ARN).
    pub async fn open(key: &KmsKeyId) -> Result<Self, OpenKeyError> {
        Self::open_with(key, KeyCreation::Existing).await
    }

    /// Creates a new KMS key (`ECC_NIST_P256`, `SIGN_VERIFY`) with the standard AWS
    /// configuration, and the alias `alias` (`alias/…`) pointing to it when given.
    pub async fn create(alias: Option<&str>) -> Result<Self, OpenKeyError> {
        let client = client(None).await;
        Self::create_with_client(client, alias).await
    }

    /// Opens `key` through a client you configured.
    pub async fn from_client(client: Client, key: &KmsKeyId) -> Result<Self, OpenKeyError> {
        let reference = key.to_string();
        let answer = client
            .get_public_key()
            .key_id(key.as_str())
            .send()
            .await
            .map_err(|e| open_error(&reference, e))?;
        let unsuitable = |reason: &str| OpenKeyError::Unsuitable {
            reference: reference.clone(),
            reason: reason.to_owned(),
        };
        if answer
            .key_usage()
            .is_some_and(|u| *u != KeyUsageType::SignVerify)
        {
            return Err(unsuitable("its key usage is not SIGN_VERIFY"));
        }
        // KMS names the spec; moto leaves it out, and the public key below says it anyway.
        if answer
            .key_spec()
            .is_some_and(|s| *s != KeySpec::EccNistP256)
        {
            return Err(unsuitable(
                "it is not an ECC_NIST_P256 key; ES256 needs P-256",
            ));
        }
        let der = answer
            .public_key()
            .ok_or_else(|| unsuitable("GetPublicKey returned no public key"))?;
        let public_jwk = PublicJwk::from_public_key_der(der.as_ref())
            .map_err(|_| unsuitable("its public key is not a P-256 key"))?;
        let mut key_arn = answer
            .key_id()
            .filter(|id| !id.is_empty())
            .unwrap_or(key.as_str())
            .to_owned();
        // KMS answers the key's ARN; an emulator may answer its bare id. The ARN (with its
        // region) is what a store should record; without kms:DescribeKey the id will do.
        if !key_arn.starts_with("arn:")
            && let Ok(described) = client.describe_key().key_id(&key_arn).send().await
            && let Some(arn) = described.key_metadata().and_then(|m| m.arn())
        {
            key_arn = arn.to_owned();
        }
        tracing::debug!(key = %key_arn, thumbprint = %public_jwk.thumbprint(), "opened the AWS KMS key");
        Ok(Self {
            client,
            key_arn,
            public_jwk,
        })
    }

    /// Creates a new key through a client you configured (see [`create`](Self::create)).
    pub async fn create_with_client(
        client: Client,
        alias: Option<&str>,
    ) -> Result<Self, OpenKeyError> {
        let reference = alias.unwrap_or("a new AWS KMS key").to_owned();
        let created = client
            .create_key()
            .key_spec(KeySpec::EccNistP256)
            .key_usage(KeyUsageType::SignVerify)
            .description(
                "ralio credential binding key (ES256 for DPoP proofs and client assertions)",
            )
            .send()
            .await
            .map_err(|e| open_error(&reference, e))?;
        let arn = created
            .key_metadata()
            .and_then(|m| m.arn().or(Some(m.key_id())))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| OpenKeyError::Unsuitable {
                reference: reference.clone(),
                reason: "CreateKey returned no key id".to_owned(),
            })?
            .to_owned();
        tracing::info!(key = %arn, "created an AWS KMS key (ECC_NIST_P256, SIGN_VERIFY)");
        if let Some(alias) = alias {
            client
                .create_alias()
                .alias_name(alias)
                .target_key_id(&arn)
                .send()
                .await
                .map_err(|e| open_error(&reference, e))?;
        }
        Self::from_client(client, &KmsKeyId::new(arn)).await
    }

    pub(crate) async fn open_with(
        key: &KmsKeyId,
        creation: KeyCreation,
    ) -> Result<Self, OpenKeyError> {
        let client = client(key.region()).await;
        match Self::from_client(client.clone(), key).await {
            Err(OpenKeyError::KeyNotFound { .. })
                if creation == KeyCreation::IfMissing && key.as_str().starts_with("alias/") =>
            {
                Self::create_with_client(client, Some(key.as_str())).await
            }
            other => other,
        }
    }

    /// The key's ARN (as `GetPublicKey` named it).
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }
}

async fn client(region: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    Client::new(&loader.load().await)
}

#[async_trait]
impl Signer for AwsKmsSigner {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public_jwk
    }

    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let name = || format!("AWS KMS key {}", self.key_arn);
        let request = self
            .client
            .sign()
            .key_id(&self.key_arn)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256);
        let request = if message.len() <= RAW_LIMIT {
            request
                .message(Blob::new(message))
                .message_type(MessageType::Raw)
        } else {
            request
                .message(Blob::new(Sha256::digest(message).to_vec()))
                .message_type(MessageType::Digest)
        };
        let answer = request
            .send()
            .await
            .map_err(|e| SignError::backend(name(), KmsFailure::from_sdk(e)))?;
        let der = answer
            .signature()
            .ok_or_else(|| SignError::bad_signature(name()))?;
        let signature = p256::ecdsa::Signature::from_der(der.as_ref())
            .map_err(|_| SignError::bad_signature(name()))?;
        Ok(signature.to_bytes().into())
    }

    fn key_location(&self) -> Option<KeyLocation> {
        Some(KeyLocation {
            reference: KeyReference::AwsKms(KmsKeyId::new(self.key_arn.clone())),
            description: format!("AWS KMS key {}", self.key_arn),
            // KMS never exports an asymmetric private key.
            extractable: Some(false),
        })
    }
}

/// A failed KMS call: its error code and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{hint} ({detail})")]
struct KmsFailure {
    kind: Kind,
    hint: &'static str,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound,
    Denied,
    Disabled,
    Config,
    Unreachable,
    Other,
}

impl KmsFailure {
    fn from_sdk<E, R>(error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let code = error.code().map(str::to_owned);
        let kind = match (&error, code.as_deref()) {
            (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => Kind::Unreachable,
            (SdkError::ConstructionFailure(_), _) => Kind::Config,
            (_, Some("NotFoundException")) => Kind::NotFound,
            (
                _,
                Some(
                    "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "IncompleteSignature"
                    | "ExpiredTokenException"
                    | "InvalidSignatureException",
                ),
            ) => Kind::Denied,
            (_, Some("DisabledException" | "KMSInvalidStateException")) => Kind::Disabled,
            (
                _,
                Some("InvalidArnException" | "InvalidKeyUsageException" | "ValidationException"),
            ) => Kind::Config,
            (
                _,
                Some(
                    "KMSInternalException"
                    | "DependencyTimeoutException"
                    | "ThrottlingException"
                    | "KeyUnavailableException",
                ),
            ) => Kind::Unreachable,
            _ => Kind::Other,
        };
        let hint = match kind {
            Kind::NotFound => {
                "KMS has no such key in this account and region; check the key id, alias and AWS_REGION"
            }
            Kind::Denied => {
                "KMS refused these AWS credentials; check that the role or user may call kms:GetPublicKey and kms:Sign on the key (its IAM and key policies), and that the credentials are current"
            }
            Kind::Disabled => {
                "the key is disabled or pending deletion; enable it (`aws kms enable-key`) or cancel its deletion"
            }
            Kind::Config => {
                "the request could not be built or was refused as invalid; check the region, the credentials and the key id"
            }
            Kind::Unreachable => {
                "KMS is unavailable (no connection, a timeout, throttling or an internal error); check the network, AWS_REGION and AWS_ENDPOINT_URL, then retry (nothing stored was changed)"
            }
            Kind::Other => "KMS refused the request",
        };
        // The service's own words; never the raw response (it is noise, and a response body
        // is not this SDK's to print).
        let detail = match (code, error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code,
            (None, _) => match &error {
                SdkError::ResponseError(_) => "the response could not be read".to_owned(),
                other => DisplayErrorContext(other).to_string(),
            },
        };
        Self { kind, hint, detail }
    }
}

fn open_error<E, R>(reference: &str, error: SdkError<E, R>) -> OpenKeyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let failure = KmsFailure::from_sdk(error);
    let reference = reference.to_owned();
    match failure.kind {
        Kind::NotFound => OpenKeyError::KeyNotFound {
            reference,
            hint: format!(
                "{}; `ralio register --key alias/<name>` creates one",
                failure.hint
            ),
        },
        Kind::Denied => OpenKeyError::Denied {
            reference,
            hint: failure.hint.to_owned(),
            source: Box::new(failure),
        },
        Kind::Disabled => OpenKeyError::Unsuitable {
            reference,
            reason: failure.hint.to_owned(),
        },
        Kind::Config => OpenKeyError::Config {
            reference,
            reason: format!("{} ({})", failure.hint, failure.detail),
        },
        Kind::Unreachable | Kind::Other => OpenKeyError::Backend {
            reference,
            hint: failure.hint.to_owned(),
            source: Box::new(failure),
        },
    }
}
