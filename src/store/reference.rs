//! Identities whose key is a [`KeyReference`]: what every store writes for a key that stays in
//! its hardware, and how a store opens it again.

use std::sync::Arc;

use super::{Identity, StoreError, StoreName};
use crate::keys::{KeyCreation, KeyReference, OpenKeyError, Signer};

/// Opens the key `reference` names, creating it first with [`KeyCreation::IfMissing`] (a
/// PKCS#11 key is generated inside the token, sensitive and not extractable; a KMS key is
/// created when an alias names none; a Transit key is created non-exportable).
///
/// A Vault Transit key is reached with [`VaultConfig::from_env`](crate::store::VaultConfig::from_env)
/// (`VAULT_ADDR` and `VAULT_TOKEN`, or AppRole); PKCS#11 and KMS keys as
/// [`KeyReference::open`] does. Register the result with
/// [`RegisterOptions::signer`](crate::register::RegisterOptions::signer): every store then
/// writes the reference, never key material.
pub async fn open_key(
    reference: &KeyReference,
    creation: KeyCreation,
) -> Result<Arc<dyn Signer>, OpenKeyError> {
    match reference {
        #[cfg(feature = "vault")]
        KeyReference::VaultTransit(key) => {
            let config = super::VaultConfig::from_env().map_err(|e| OpenKeyError::Config {
                reference: reference.to_string(),
                reason: format!("{e}; a Vault Transit key is reached through VAULT_ADDR and VAULT_TOKEN (or AppRole)"),
            })?;
            let backend = |e: StoreError| OpenKeyError::Backend {
                reference: reference.to_string(),
                hint: "check that Vault is reachable and the Transit key exists".to_owned(),
                source: Box::new(e),
            };
            let store = super::VaultStore::new(config).map_err(backend)?;
            let signer = match creation {
                KeyCreation::IfMissing => store.create_transit_key(key.mount(), key.name()).await,
                _ => store.transit_signer(key.mount(), key.name()).await,
            }
            .map_err(|e| match e {
                StoreError::Missing { .. } => OpenKeyError::KeyNotFound {
                    reference: reference.to_string(),
                    hint: "create it (`bao write -f transit/keys/<name> type=ecdsa-p256`)"
                        .to_owned(),
                },
                other => backend(other),
            })?;
            Ok(Arc::new(signer))
        }
        other => other.open(creation).await,
    }
}

/// What `store` writes for a key that lives in `signer`: its reference and thumbprint, or the
/// refusal to save a signer that no reference names (the store could not find it again).
pub(crate) fn reference_of(
    signer: &dyn Signer,
    store: &StoreName,
) -> Result<(String, String), StoreError> {
    let location = signer.key_location().ok_or_else(|| unnamed_signer(store))?;
    Ok((
        location.reference.to_string(),
        signer.thumbprint().as_str().to_owned(),
    ))
}

fn unnamed_signer(store: &StoreName) -> StoreError {
    StoreError::Config {
        store: store.clone(),
        reason: "the identity's key lives in a signer that names no key reference (PKCS#11, AWS KMS, Vault Transit), so this store could not find it again; implement Signer::key_location, or keep the identity in a store of your own".to_owned(),
    }
}

/// Opens the reference a store read from `what` and checks it is still the key recorded with
/// the identity (`recorded_jkt`). A failure to open changes nothing stored.
pub(crate) async fn open_stored(
    store: &StoreName,
    what: &str,
    client_id: String,
    text: &str,
    recorded_jkt: Option<&str>,
) -> Result<Identity, StoreError> {
    let reference = KeyReference::parse(text).map_err(|e| StoreError::Corrupt {
        store: store.clone(),
        what: what.to_owned(),
        reason: format!("its key reference cannot be read ({e})"),
    })?;
    let signer = open_key(&reference, KeyCreation::Existing)
        .await
        .map_err(|e| store_error(store, e))?;
    if let Some(jkt) = recorded_jkt
        && jkt != signer.thumbprint().as_str()
    {
        return Err(StoreError::Corrupt {
            store: store.clone(),
            what: what.to_owned(),
            reason: format!(
                "the key {reference} now has thumbprint {}, but the identity was registered with key {jkt}",
                signer.thumbprint()
            ),
        });
    }
    tracing::debug!(store = %store, client_id = %client_id, key = %reference, "loaded the identity");
    Ok(Identity::with_signer(client_id, signer))
}

/// An [`OpenKeyError`] as the [`StoreError`] of the store that holds the reference; the open
/// error stays the cause where it carries more than its message.
pub(crate) fn store_error(store: &StoreName, error: OpenKeyError) -> StoreError {
    let store = store.clone();
    match error {
        OpenKeyError::TokenNotFound { reference, hint } => StoreError::Missing {
            store,
            what: format!("the token of the key {reference}"),
            hint,
        },
        OpenKeyError::KeyNotFound { reference, hint } => StoreError::Missing {
            store,
            what: format!("the key {reference}"),
            hint,
        },
        e @ OpenKeyError::PinRefused { .. } => StoreError::Denied {
            store,
            action: "log in to the PKCS#11 token".to_owned(),
            hint: "nothing stored was changed".to_owned(),
            source: Some(Box::new(e)),
        },
        OpenKeyError::Denied {
            reference,
            hint,
            source,
        } => StoreError::Denied {
            store,
            action: format!("open the key {reference}"),
            hint,
            source: Some(source),
        },
        OpenKeyError::Backend {
            reference,
            hint,
            source,
        } => StoreError::Backend {
            store,
            action: format!("open the key {reference}"),
            hint: format!("{hint}; nothing stored was changed"),
            source: Some(source),
        },
        other => StoreError::Config {
            store,
            reason: other.to_string(),
        },
    }
}

/// What a store read for an identity: the key itself, or a reference still to be opened
/// (which is async and may log in to a token, so stores that read on a blocking thread open
/// it after).
pub(crate) enum Loaded {
    Identity(Identity),
    Reference {
        client_id: String,
        text: String,
        recorded_jkt: Option<String>,
        what: String,
    },
}

impl Loaded {
    pub(crate) async fn open(self, store: &StoreName) -> Result<Identity, StoreError> {
        match self {
            Self::Identity(identity) => Ok(identity),
            Self::Reference {
                client_id,
                text,
                recorded_jkt,
                what,
            } => open_stored(store, &what, client_id, &text, recorded_jkt.as_deref()).await,
        }
    }
}

/// The report of a store that reads its entries itself (`read`: the file and keyring
/// stores), completed, when the identity names a key by reference, by opening that key
/// (`loaded` reads the identity; it runs only when `read` succeeded without reporting a key of
/// the store's own). A store that cannot be read gives a report of kind `kind` whose one
/// problem says why.
pub(crate) async fn report_with_key(
    read: Result<super::StoreReport, StoreError>,
    loaded: impl std::future::Future<Output = Result<Option<Loaded>, StoreError>>,
    kind: super::StoreKind,
    describe: String,
    store: &StoreName,
) -> super::StoreReport {
    let mut report = match read {
        Ok(report) => report,
        Err(e) => {
            let mut report = super::StoreReport::new(kind, describe, super::StoreLocation::Other);
            report.problems.push(super::StoreProblem::from_error(&e));
            return report;
        }
    };
    if report.key.is_some() {
        return report; // a key of its own, already reported by `read`
    }
    let Ok(Some(Loaded::Reference {
        client_id,
        text,
        recorded_jkt,
        what,
    })) = loaded.await
    else {
        return report;
    };
    match open_stored(store, &what, client_id, &text, recorded_jkt.as_deref()).await {
        Ok(identity) => {
            let mut key = super::KeyReport::of(identity.key());
            key.recorded_thumbprint = recorded_jkt;
            report.key = Some(key);
        }
        Err(e) => report.problems.push(super::StoreProblem::from_error(&e)),
    }
    report
}
