//! Settings every command shares: API origin, credential store, and the authenticated client.

use std::path::PathBuf;
use std::sync::Arc;

use ralio::RalioClient;
use ralio::auth::{TokenManager, TokenManagerConfig};
use ralio::store::{CredentialStore, FileStore, Identity};

use crate::cli::{GlobalArgs, StoreKind};
use crate::error::CliError;

/// The production origin.
pub const DEFAULT_API_URL: &str = "https://api.ralio.co";
/// The keyring service name the CLI uses.
pub const KEYRING_SERVICE: &str = "ralio";

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

/// An environment variable; empty counts as unset.
fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Context {
    /// Flag, else environment variable, else default (PROTOCOL.md precedence).
    pub fn resolve(global: &GlobalArgs) -> Result<Self, CliError> {
        let raw_url = global
            .api_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| env_nonempty("RALIO_API_URL"))
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let api_url = ralio::client::validate_base_url(&raw_url).map_err(ralio::Error::from)?;
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
            None => match env_nonempty("RALIO_STORE").as_deref() {
                None | Some("file") => StoreKind::File,
                Some("keyring") => StoreKind::Keyring,
                Some(other) => {
                    return Err(CliError::Usage(format!(
                        "RALIO_STORE={other:?} is not a store; use file or keyring"
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

    /// The configured credential store.
    pub fn store(&self) -> Result<Arc<dyn CredentialStore>, CliError> {
        match self.store_kind {
            StoreKind::File => Ok(Arc::new(self.file_store())),
            StoreKind::Keyring => Ok(Arc::new(ralio::store::KeyringStore::new(KEYRING_SERVICE))),
        }
    }

    /// The identity in the store, or [`CliError::NoCredentials`].
    pub async fn identity(&self, store: &dyn CredentialStore) -> Result<Identity, CliError> {
        store
            .load_identity()
            .await?
            .ok_or_else(|| CliError::NoCredentials {
                store: store.describe(),
            })
    }

    /// A token manager for `identity` against this API (refresh tokens in memory: each run of
    /// the command is its own token family).
    pub fn token_manager(&self, identity: &Identity) -> Result<TokenManager, CliError> {
        let config = TokenManagerConfig::ralio(&self.api_url, identity.client_id())?;
        Ok(TokenManager::builder(config, identity.signer()).build()?)
    }

    /// The authenticated client and its token manager.
    pub async fn client(&self) -> Result<Session, CliError> {
        let store = self.store()?;
        let identity = self.identity(store.as_ref()).await?;
        // The client mints its own tokens (refresh tokens in memory: each run of the command
        // is its own token family); its auth layer sits inside the retry layer, so every
        // attempt carries a fresh DPoP proof.
        let client = RalioClient::builder()
            .base_url(&self.api_url)
            .user_agent_suffix(concat!("ralio-cli/", env!("CARGO_PKG_VERSION")))
            .identity(identity.clone())
            .build()
            .await?;
        let tokens = match client.token_manager() {
            Some(tokens) => tokens.clone(),
            None => self.token_manager(&identity)?,
        };
        Ok(Session {
            client,
            tokens,
            identity,
            store,
        })
    }
}

/// An authenticated client with what it was built from.
#[derive(Debug)]
pub struct Session {
    /// The API client.
    pub client: RalioClient,
    /// Its token manager (token facts for `whoami`).
    pub tokens: TokenManager,
    /// The identity in use.
    pub identity: Identity,
    /// Where it came from.
    pub store: Arc<dyn CredentialStore>,
}
