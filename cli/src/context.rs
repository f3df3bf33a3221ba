//! Settings every command shares: API origin, credential store, and the authenticated client.

use std::path::PathBuf;
use std::sync::Arc;

use ralio::auth::TokenManager;
use ralio::store::{CredentialStore, FileStore, KeyringStore, VaultStore};
use ralio::{ConfigError, RalioClient};

use crate::cli::{GlobalArgs, StoreKind};
use crate::env::var as env_var;
use crate::error::CliError;

/// The keyring service name the CLI uses unless `RALIO_KEYRING_SERVICE` names another.
pub const KEYRING_SERVICE: &str = "ralio";
/// The refresh-token slot of the command in every store: its own, apart from the default slot
/// an agent process on the same host uses, so that the two never rotate one token family.
pub const REFRESH_TOKEN_SLOT: &str = "cli";

/// Resolved global settings.
#[derive(Debug)]
pub struct Context {
    /// API origin, validated, without a trailing `/`.
    pub api_url: String,
    /// The credential directory of the file store.
    pub config_dir: PathBuf,
    /// Which store holds the credentials.
    pub store_kind: StoreKind,
    /// `--json`.
    pub json: bool,
}

impl Context {
    /// Flag, else environment variable, else default (PROTOCOL.md precedence).
    pub fn resolve(global: &GlobalArgs) -> Result<Self, CliError> {
        // The flag, else what the SDK resolves (RALIO_API_URL, else production), checked
        // by the SDK's rules before anything is sent.
        let mut builder = RalioClient::builder();
        if let Some(url) = global.api_url.as_deref().filter(|u| !u.trim().is_empty()) {
            builder = builder.base_url(url);
        }
        let api_url = builder.resolved_base_url()?;
        let config_dir = match global
            .config_dir
            .clone()
            .filter(|d| !d.as_os_str().is_empty())
        {
            Some(dir) => dir,
            None => FileStore::from_env()?.dir().to_path_buf(),
        };
        let store_kind = match global.store {
            Some(kind) => kind,
            None => match env_var("RALIO_STORE").as_deref() {
                None | Some("file") => StoreKind::File,
                Some("keyring") => StoreKind::Keyring,
                Some("vault") => StoreKind::Vault,
                Some(other) => {
                    return Err(CliError::Usage(format!(
                        "RALIO_STORE={other:?} is not a store; use file, keyring or vault"
                    )));
                }
            },
        };
        Ok(Context {
            api_url,
            config_dir,
            store_kind,
            json: global.json,
        })
    }

    /// The file store in the credential directory.
    pub fn file_store(&self) -> FileStore {
        FileStore::new(&self.config_dir)
    }

    /// The configured credential store, keeping refresh tokens in the command's own slot
    /// ([`REFRESH_TOKEN_SLOT`]).
    pub fn store(&self) -> Result<Arc<dyn CredentialStore>, CliError> {
        match self.store_kind {
            StoreKind::File => Ok(Arc::new(
                self.file_store()
                    .with_refresh_token_slot(REFRESH_TOKEN_SLOT)?,
            )),
            StoreKind::Keyring => {
                let service =
                    env_var("RALIO_KEYRING_SERVICE").unwrap_or_else(|| KEYRING_SERVICE.into());
                Ok(Arc::new(
                    KeyringStore::new(service).with_refresh_token_slot(REFRESH_TOKEN_SLOT),
                ))
            }
            StoreKind::Vault => Ok(Arc::new(VaultStore::new(
                ralio::store::VaultConfig::from_env()
                    .map_err(|e| CliError::VaultSettings {
                        missing: e.name().to_owned(),
                    })?
                    .refresh_token_slot(REFRESH_TOKEN_SLOT),
            )?)),
        }
    }

    /// The authenticated client on the configured store: the SDK's own auth layer, retry
    /// policy and refresh-token persistence (a refresh token minted by one run is used by the
    /// next).
    pub async fn client(&self) -> Result<Session, CliError> {
        let store = self.store()?;
        let client = self
            .client_builder()
            .store(Arc::clone(&store))
            .build()
            .await;
        let client = match client {
            Ok(client) => client,
            Err(ralio::Error::Config(ConfigError::NoCredentials { .. })) => {
                return Err(CliError::NoCredentials {
                    store: store.describe(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Session { client, store })
    }

    /// The client builder with this command's API origin and user agent; no credentials yet.
    pub fn client_builder(&self) -> ralio::RalioClientBuilder {
        RalioClient::builder()
            .base_url(&self.api_url)
            .user_agent_suffix(concat!("ralio-cli/", env!("CARGO_PKG_VERSION")))
    }
}

/// An authenticated client and the store it reads.
#[derive(Debug)]
pub struct Session {
    /// The API client (it holds the token manager).
    pub client: RalioClient,
    /// Where the credentials come from.
    pub store: Arc<dyn CredentialStore>,
}

impl Session {
    /// The client's token manager: client id, key thumbprint, token facts.
    pub fn tokens(&self) -> Result<&TokenManager, CliError> {
        self.client
            .token_manager()
            .ok_or_else(|| CliError::NoCredentials {
                store: self.store.describe(),
            })
    }
}
