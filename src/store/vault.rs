//! HashiCorp Vault / OpenBao: a KV v2 credential store and a Transit signer (feature `vault`).
//!
//! Written on reqwest directly rather than with `vaultrs`: vaultrs 0.8 fits reqwest 0.13, but
//! its transport (rustify) keeps raw response bodies in its error values (`content: …`), and
//! a KV read's body holds the private key or the refresh token, which would then reach
//! `Debug` output and logs. The handful of calls needed here are small.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    CredentialStore, Identity, IdentityKey, PendingRegistration, Presence, StoreError, StoreKind,
    StoreLocation, StoreProblem, StoreReport, same_secret,
};
use crate::auth::{PrivateKey, PublicJwk, RefreshTokenRecord, SignError, Signer, Thumbprint};

/// How to authenticate to Vault.
#[derive(Clone)]
#[non_exhaustive]
pub enum VaultAuth {
    /// A Vault token (`VAULT_TOKEN`).
    Token(SecretString),
    /// AppRole login: the role id and secret id are exchanged for a token on first use.
    AppRole {
        /// Mount of the AppRole auth method (usually `approle`).
        mount: String,
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: SecretString,
    },
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token([redacted])"),
            Self::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .field("secret_id", &"[redacted]")
                .finish(),
        }
    }
}

/// Where and how to reach Vault, and where in KV v2 the credentials live.
///
/// Defaults: KV v2 mount `secret`, path `ralio`, refresh-token slot `default`. The store keeps
/// `<mount>/data/<path>/identity` (client id plus the PKCS#8 PEM key, or the Transit key's
/// name), `<mount>/data/<path>/refresh-tokens/<slot>`, and, while a registration is under
/// way, `<mount>/data/<path>/staged-keys/<jkt>` (plus `<mount>/data/<path>/pending-registration`
/// while a legacy registration waits for the owner's approval). Every write carries check-and-set (`cas`),
/// so mounts with `cas_required=true` work.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    addr: String,
    auth: VaultAuth,
    namespace: Option<String>,
    kv_mount: String,
    path: String,
    slot: String,
    allow_insecure_http: bool,
}

impl VaultConfig {
    /// Vault at `addr` (such as `http://127.0.0.1:8200`) with `auth`.
    pub fn new(addr: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            addr: addr.into().trim_end_matches('/').to_owned(),
            auth,
            namespace: None,
            kv_mount: "secret".to_owned(),
            path: "ralio".to_owned(),
            slot: "default".to_owned(),
            allow_insecure_http: false,
        }
    }

    /// Accepts a plain `http://` address off loopback (refused by default: the Vault token
    /// and the secrets would cross the network in clear text). For tests on a private network.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// From the environment, as the `ralio` command reads it ([`crate::config::vault_from_env`]):
    /// `VAULT_ADDR` with `VAULT_TOKEN`, or AppRole (`VAULT_ROLE_ID`, `VAULT_SECRET_ID`,
    /// `VAULT_APPROLE_MOUNT`); `VAULT_NAMESPACE`; `RALIO_VAULT_MOUNT` and `RALIO_VAULT_PATH`.
    pub fn from_env() -> Result<Self, StoreError> {
        crate::config::vault_from_env().map_err(|missing| StoreError::Missing {
            store: "vault store".to_owned(),
            what: missing.0.to_owned(),
            hint:
                "set VAULT_ADDR and VAULT_TOKEN (or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole)"
                    .to_owned(),
        })
    }

    /// The Vault Enterprise namespace to send (`X-Vault-Namespace`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The KV v2 mount (default `secret`).
    pub fn kv_mount(mut self, mount: impl Into<String>) -> Self {
        self.kv_mount = mount.into().trim_matches('/').to_owned();
        self
    }

    /// The path under the mount (default `ralio`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into().trim_matches('/').to_owned();
        self
    }

    /// This instance's refresh-token slot (default `default`). Give each concurrently
    /// running SDK instance its own slot: there is no lock across hosts, so two instances on
    /// one slot can present the same refresh token, which the server takes for a replay (the
    /// check-and-set save then reports the conflict, but the family is already revoked).
    pub fn refresh_token_slot(mut self, slot: impl Into<String>) -> Self {
        self.slot = super::file::slot_file_stem(&slot.into());
        self
    }
}

/// Where a legacy registration waiting for approval is kept, under the store's path.
const PENDING_REST: &str = "pending-registration";

/// The HTTP side shared by the store and the signer: address, auth, cached token.
struct VaultClient {
    config: VaultConfig,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<SecretString>>,
}

/// An error answer of the Vault API; carries Vault's own messages, which never echo secrets.
#[derive(Debug, thiserror::Error)]
#[error("Vault answered HTTP {}: {}", status.as_u16(), if errors.is_empty() { "no details".to_owned() } else { errors.join("; ") })]
struct VaultApiError {
    status: StatusCode,
    errors: Vec<String>,
}

enum Answer {
    Ok(Value),
    /// 404, with the body: a KV v2 read of a deleted secret still names its version there.
    NotFound(Value),
    /// A KV v2 write whose `cas` is not the current version: another writer got there first.
    CasMismatch,
    Forbidden(Vec<String>),
}

/// The check-and-set of a KV v2 write. Every write sends one, so a mount (or path) with
/// `cas_required=true` accepts it.
#[derive(Clone, Copy)]
enum Cas {
    /// Create only: the secret must not exist (`cas=0`).
    Create,
    /// Replace exactly this version (the one this writer read).
    Version(u64),
    /// Replace whatever is there: read the current version, then write on it.
    Replace,
}

impl VaultClient {
    fn new(config: VaultConfig) -> Result<Self, StoreError> {
        let addr = url::Url::parse(&config.addr).map_err(|e| StoreError::Config {
            store: "vault store".to_owned(),
            reason: format!("VAULT_ADDR {:?} is not a URL ({e})", config.addr),
        })?;
        let secure = match addr.scheme() {
            "https" => true,
            "http" => crate::config::is_loopback(&addr) || config.allow_insecure_http,
            _ => false,
        };
        if !secure {
            return Err(StoreError::Config {
                store: "vault store".to_owned(),
                reason: format!(
                    "VAULT_ADDR {:?} is not https://; plain http:// is accepted only for localhost, 127.0.0.0/8 and ::1, where the Vault token stays on this machine",
                    addr.origin().ascii_serialization()
                ),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            // reqwest keeps `X-Vault-Token` (and bodies) on a redirect to another origin.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StoreError::Backend {
                store: "vault store".to_owned(),
                action: "build the HTTP client".to_owned(),
                hint: "the TLS backend could not be initialised".to_owned(),
                source: Some(Box::new(e)),
            })?;
        Ok(Self {
            config,
            http,
            token: tokio::sync::Mutex::new(None),
        })
    }

    fn backend(
        &self,
        store: &str,
        action: &str,
        hint: &str,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Backend {
            store: store.to_owned(),
            action: action.to_owned(),
            hint: hint.to_owned(),
            source,
        }
    }

    async fn token(&self, store: &str) -> Result<SecretString, StoreError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let token = match &self.config.auth {
            VaultAuth::Token(token) => token.clone(),
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let body = json!({"role_id": role_id, "secret_id": secret_id.expose_secret()});
                let url = format!(
                    "{}/v1/auth/{}/login",
                    self.config.addr,
                    mount.trim_matches('/')
                );
                let answer = self
                    .send(
                        store,
                        "log in with AppRole",
                        reqwest::Method::POST,
                        &url,
                        None,
                        Some(&body),
                    )
                    .await?;
                let Answer::Ok(value) = answer else {
                    return Err(self.backend(
                        store,
                        "log in with AppRole",
                        "check the AppRole mount and that the role exists",
                        None,
                    ));
                };
                match value.pointer("/auth/client_token").and_then(Value::as_str) {
                    Some(t) => SecretString::from(t.to_owned()),
                    None => {
                        return Err(self.backend(
                            store,
                            "log in with AppRole",
                            "the login answer holds no client token",
                            None,
                        ));
                    }
                }
            }
        };
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn call(
        &self,
        store: &str,
        action: &str,
        method: reqwest::Method,
        api_path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, StoreError> {
        let url = format!("{}/v1/{api_path}", self.config.addr);
        let mut relogged = false;
        loop {
            let token = self.token(store).await?;
            match self
                .send(store, action, method.clone(), &url, Some(&token), body)
                .await?
            {
                // An AppRole token may have expired: log in again, once.
                Answer::Forbidden(_)
                    if !relogged && matches!(self.config.auth, VaultAuth::AppRole { .. }) =>
                {
                    relogged = true;
                    *self.token.lock().await = None;
                }
                Answer::Forbidden(errors) => {
                    return Err(StoreError::Denied {
                        store: store.to_owned(),
                        action: action.to_owned(),
                        hint: "check that the token is valid and its policy allows this path"
                            .to_owned(),
                        source: Some(Box::new(VaultApiError {
                            status: StatusCode::FORBIDDEN,
                            errors,
                        })),
                    });
                }
                other => return Ok(other),
            }
        }
    }

    async fn send(
        &self,
        store: &str,
        action: &str,
        method: reqwest::Method,
        url: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Answer, StoreError> {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(ns) = &self.config.namespace {
            request = request.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            self.backend(
                store,
                action,
                "check VAULT_ADDR and that the Vault server is running",
                // The store's description names the address: print it once.
                Some(Box::new(e.without_url())),
            )
        })?;
        let status = response.status();
        // 1 MiB: far above any secret this store keeps; a bigger body is cut and fails to parse.
        let bytes = crate::transport::body::read_body_capped(response, 1 << 20)
            .await
            .map_err(|e| {
                self.backend(
                    store,
                    action,
                    "the connection to Vault broke",
                    Some(Box::new(e.without_url())),
                )
            })?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Answer::Ok(Value::Null));
            }
            // A parse failure must not keep the body: it may hold a secret.
            return serde_json::from_slice(&bytes).map(Answer::Ok).map_err(|_| {
                self.backend(
                    store,
                    action,
                    "Vault answered with something that is not JSON",
                    None,
                )
            });
        }
        let parsed = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
        let errors: Vec<String> = parsed
            .get("errors")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if status == StatusCode::NOT_FOUND {
            return Ok(Answer::NotFound(parsed));
        }
        // Only a version mismatch is a conflict. "check-and-set parameter required for this
        // call" (a `cas_required` mount) and every other 400 are errors: nothing was written.
        if status == StatusCode::BAD_REQUEST
            && errors
                .iter()
                .any(|e| e.contains("did not match the current version"))
        {
            return Ok(Answer::CasMismatch);
        }
        if status == StatusCode::FORBIDDEN && token.is_some() {
            return Ok(Answer::Forbidden(errors));
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(StoreError::Denied {
                store: store.to_owned(),
                action: action.to_owned(),
                hint: "check that the token is valid and its policy allows this path".to_owned(),
                source: Some(Box::new(VaultApiError { status, errors })),
            });
        }
        let hint = match status {
            StatusCode::SERVICE_UNAVAILABLE => "Vault is sealed or unavailable",
            _ => "see Vault's message",
        };
        Err(self.backend(
            store,
            action,
            hint,
            Some(Box::new(VaultApiError { status, errors })),
        ))
    }
}

/// Credentials in HashiCorp Vault or OpenBao KV v2 (feature `vault`).
///
/// The identity is `{client_id, private_key_pem}` at `<mount>/data/<path>/identity`, or
/// `{client_id, transit_mount, transit_key}` when the key is a Transit key (see
/// [`TransitSigner`]). Each refresh token is written with check-and-set on the version this
/// writer read, so a stale writer is refused ([`StoreError::Conflict`]) instead of silently
/// overwriting a newer token.
#[derive(Clone)]
pub struct VaultStore {
    client: Arc<VaultClient>,
}

impl fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultStore")
            .field("config", &self.client.config)
            .finish()
    }
}

#[derive(Deserialize)]
struct IdentitySecret {
    client_id: Option<String>,
    private_key_pem: Option<String>,
    transit_mount: Option<String>,
    transit_key: Option<String>,
}

impl VaultStore {
    /// The store for `config`.
    pub fn new(config: VaultConfig) -> Result<Self, StoreError> {
        Ok(Self {
            client: Arc::new(VaultClient::new(config)?),
        })
    }

    /// A Transit signer for key `key` on mount `mount`, using this store's Vault connection.
    pub async fn transit_signer(
        &self,
        mount: &str,
        key: &str,
    ) -> Result<TransitSigner, StoreError> {
        TransitSigner::connect(Arc::clone(&self.client), mount, key).await
    }

    /// Creates a non-exportable P-256 key `key` on Transit mount `mount` (if it does not exist
    /// yet) and returns its signer. Register it with
    /// [`RegisterOptions::signer`](crate::register::RegisterOptions::signer).
    pub async fn create_transit_key(
        &self,
        mount: &str,
        key: &str,
    ) -> Result<TransitSigner, StoreError> {
        let path = format!("{}/keys/{key}", mount.trim_matches('/'));
        let body =
            json!({"type": "ecdsa-p256", "exportable": false, "allow_plaintext_backup": false});
        self.client
            .call(
                &self.describe(),
                "create the Transit key",
                reqwest::Method::POST,
                &path,
                Some(&body),
            )
            .await?;
        self.transit_signer(mount, key).await
    }

    fn kv_path(&self, kind: &str, rest: &str) -> String {
        let c = &self.client.config;
        format!("{}/{kind}/{}/{rest}", c.kv_mount, c.path)
    }

    fn refresh_rest(&self) -> String {
        format!("refresh-tokens/{}", self.client.config.slot)
    }

    /// Reads a KV v2 secret: its data and version, or `None` when absent or deleted.
    async fn read(&self, rest: &str, action: &str) -> Result<Option<(Value, u64)>, StoreError> {
        let answer = self
            .client
            .call(
                &self.describe(),
                action,
                reqwest::Method::GET,
                &self.kv_path("data", rest),
                None,
            )
            .await?;
        let Answer::Ok(value) = answer else {
            return Ok(None);
        };
        let version = value
            .pointer("/data/metadata/version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match value.pointer("/data/data") {
            Some(data @ Value::Object(_)) => Ok(Some((data.clone(), version))),
            _ => Ok(None),
        }
    }

    /// The current version of a KV v2 secret (0 when it never existed or its metadata was
    /// deleted): what a write must send as `cas` to replace it.
    async fn current_version(&self, rest: &str, action: &str) -> Result<u64, StoreError> {
        let answer = self
            .client
            .call(
                &self.describe(),
                action,
                reqwest::Method::GET,
                &self.kv_path("data", rest),
                None,
            )
            .await?;
        // A soft-deleted secret answers 404 but keeps its version, which `cas` must name.
        let (Answer::Ok(value) | Answer::NotFound(value)) = answer else {
            return Ok(0);
        };
        Ok(value
            .pointer("/data/metadata/version")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    /// Writes a KV v2 secret with check-and-set. `Ok(true)`: written; `Ok(false)`: another
    /// writer changed the secret first (for [`Cas::Replace`]: three times in a row), nothing
    /// was written. Every other failure, a refused write included, is an error.
    async fn write(
        &self,
        rest: &str,
        action: &str,
        data: &Value,
        cas: Cas,
    ) -> Result<bool, StoreError> {
        let attempts = if matches!(cas, Cas::Replace) { 3 } else { 1 };
        for _ in 0..attempts {
            let version = match cas {
                Cas::Create => 0,
                Cas::Version(version) => version,
                Cas::Replace => self.current_version(rest, action).await?,
            };
            let body = json!({ "data": data, "options": { "cas": version } });
            match self
                .client
                .call(&self.describe(), action, reqwest::Method::POST, &self.kv_path("data", rest), Some(&body))
                .await?
            {
                Answer::Ok(_) => return Ok(true),
                Answer::CasMismatch => {}
                Answer::NotFound(_) | Answer::Forbidden(_) => return Err(StoreError::Missing {
                    store: self.describe(),
                    what: format!("the KV v2 mount {}", self.client.config.kv_mount),
                    hint: "enable a KV v2 secrets engine there (`bao secrets enable -version=2 -path=<mount> kv`)".to_owned(),
                }),
            }
        }
        Ok(false)
    }

    /// Thumbprints of the keys under `<path>/staged-keys/` (a KV v2 LIST); none when the
    /// folder does not exist.
    async fn list_staged(&self) -> Result<Vec<String>, StoreError> {
        let answer = self
            .client
            .call(
                &self.describe(),
                "list the staged keys",
                reqwest::Method::GET,
                &format!("{}?list=true", self.kv_path("metadata", "staged-keys")),
                None,
            )
            .await?;
        let Answer::Ok(value) = answer else {
            return Ok(Vec::new());
        };
        let mut keys: Vec<String> = value
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(|k| k.trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        Ok(keys)
    }

    fn staged_rest(key: &PrivateKey) -> String {
        format!("staged-keys/{}", key.thumbprint().as_str())
    }

    fn corrupt(&self, what: &str, reason: &str) -> StoreError {
        StoreError::Corrupt {
            store: self.describe(),
            what: what.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

impl VaultStore {
    /// Saves a refresh token with check-and-set on the version holding `previous`, with its
    /// issuer (the token URL) when known.
    async fn save_record(
        &self,
        previous: Option<&SecretString>,
        token: &SecretString,
        issuer: Option<&str>,
    ) -> Result<(), StoreError> {
        let rest = self.refresh_rest();
        let mut data = json!({ "refresh_token": token.expose_secret() });
        if let (Some(issuer), Value::Object(map)) = (issuer, &mut data) {
            map.insert("issuer".to_owned(), issuer.into());
        }
        let cas = match previous {
            None => Cas::Replace,
            Some(previous) => {
                let current = self.read(&rest, "read the refresh token").await?;
                let (value, version) = match current {
                    Some((data, version)) => (
                        data.get("refresh_token")
                            .and_then(Value::as_str)
                            .map(|t| SecretString::from(t.to_owned())),
                        version,
                    ),
                    None => (None, 0),
                };
                if !same_secret(value.as_ref(), Some(previous)) {
                    return Err(StoreError::Conflict {
                        store: self.describe(),
                    });
                }
                Cas::Version(version)
            }
        };
        if self
            .write(&rest, "write the refresh token", &data, cas)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                store: self.describe(),
            })
        }
    }
}

#[async_trait]
impl CredentialStore for VaultStore {
    fn describe(&self) -> String {
        let c = &self.client.config;
        format!("vault store at {} ({}/{})", c.addr, c.kv_mount, c.path)
    }

    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        let Some((data, _)) = self.read("identity", "read the identity").await? else {
            return Ok(None);
        };
        let what = self.kv_path("data", "identity");
        let secret: IdentitySecret = serde_json::from_value(data)
            .map_err(|_| self.corrupt(&what, "its fields are not strings"))?;
        let client_id = secret
            .client_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| self.corrupt(&what, "it has no client_id"))?;
        let client_id = super::checked_client_id(&self.describe(), &what, client_id)?;
        if let Some(pem) = secret.private_key_pem {
            let key = PrivateKey::from_pem(&pem).map_err(|source| StoreError::InvalidKey {
                store: self.describe(),
                what: what.clone(),
                source,
            })?;
            return Ok(Some(Identity::new(client_id, key)));
        }
        match (secret.transit_mount, secret.transit_key) {
            (Some(mount), Some(key)) => {
                let signer = self.transit_signer(&mount, &key).await?;
                Ok(Some(Identity::with_signer(client_id, Arc::new(signer))))
            }
            _ => Err(self.corrupt(
                &what,
                "it has neither private_key_pem nor transit_mount and transit_key",
            )),
        }
    }

    async fn save_identity(&self, identity: &Identity) -> Result<String, StoreError> {
        super::check_saved_client_id(&self.describe(), identity)?;
        let where_ = self.kv_path("data", "identity");
        let data = match identity.key() {
            IdentityKey::Local(key) => json!({
                "client_id": identity.client_id(),
                "private_key_pem": key.to_pkcs8_pem().expose_secret(),
                "key_jkt": key.thumbprint().as_str(),
            }),
            IdentityKey::Remote(signer) => {
                let Some(transit) = TransitSigner::describe_remote(signer.as_ref()) else {
                    return Err(StoreError::Config {
                        store: self.describe(),
                        reason: "only local keys and Vault Transit signers can be saved in the vault store".to_owned(),
                    });
                };
                json!({
                    "client_id": identity.client_id(),
                    "transit_mount": transit.0,
                    "transit_key": transit.1,
                    "key_jkt": signer.thumbprint().as_str(),
                })
            }
        };
        if !self
            .write("identity", "write the identity", &data, Cas::Replace)
            .await?
        {
            return Err(StoreError::Backend {
                store: self.describe(),
                action: format!("write the identity to {where_}"),
                hint: "other writers kept changing it; make sure no other registration writes to this path, then try again".to_owned(),
                source: None,
            });
        }
        // The identity now holds the key: its staged copy is no longer needed.
        if let IdentityKey::Local(key) = identity.key()
            && let Err(e) = self.discard_staged_key(key).await
        {
            tracing::warn!(error = %e, "could not remove the staged copy of a saved key");
        }
        Ok(format!("Vault KV {where_} ({})", self.client.config.addr))
    }

    async fn load_refresh_token(&self) -> Result<Option<SecretString>, StoreError> {
        Ok(self
            .load_refresh_token_record()
            .await?
            .map(|record| record.refresh_token))
    }

    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        token: &SecretString,
    ) -> Result<(), StoreError> {
        self.save_record(previous, token, None).await
    }

    async fn load_refresh_token_record(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let rest = self.refresh_rest();
        let Some((data, _)) = self.read(&rest, "read the refresh token").await? else {
            return Ok(None);
        };
        let issuer = match data.get("issuer") {
            Some(Value::String(i)) if !i.is_empty() => Some(i.clone()),
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(self.corrupt(&self.kv_path("data", &rest), "issuer is not a string"));
            }
        };
        match data.get("refresh_token") {
            Some(Value::String(t)) if !t.is_empty() => Ok(Some(RefreshTokenRecord::new(
                SecretString::from(t.clone()),
                issuer,
            ))),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(self.corrupt(
                &self.kv_path("data", &rest),
                "refresh_token is not a string",
            )),
        }
    }

    async fn save_refresh_token_record(
        &self,
        previous: Option<&SecretString>,
        token: &SecretString,
        issuer: &str,
    ) -> Result<(), StoreError> {
        self.save_record(previous, token, Some(issuer)).await
    }

    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        let path = self.kv_path("metadata", &self.refresh_rest());
        self.client
            .call(
                &self.describe(),
                "delete the refresh token",
                reqwest::Method::DELETE,
                &path,
                None,
            )
            .await?;
        Ok(())
    }

    /// Writes the key to `<mount>/data/<path>/staged-keys/<jkt>` before the registration
    /// request, so a failure after the server accepted it (a refused identity write, a lost
    /// connection) cannot lose it. [`save_identity`](CredentialStore::save_identity) removes
    /// it once the identity holds the key.
    async fn stage_key(
        &self,
        key: &PrivateKey,
        _overwrite: bool,
    ) -> Result<Option<String>, StoreError> {
        let rest = Self::staged_rest(key);
        let data = json!({
            "private_key_pem": key.to_pkcs8_pem().expose_secret(),
            "key_jkt": key.thumbprint().as_str(),
        });
        if !self
            .write(&rest, "stage the new key", &data, Cas::Create)
            .await?
        {
            return Err(StoreError::AlreadyExists {
                store: self.describe(),
                what: format!("the staged key {}", self.kv_path("data", &rest)),
            });
        }
        Ok(Some(format!(
            "Vault KV {} ({})",
            self.kv_path("data", &rest),
            self.client.config.addr
        )))
    }

    /// Reads the identity (with the thumbprint it records), the refresh token's presence and
    /// issuer, and lists the staged keys.
    async fn report(&self) -> StoreReport {
        let c = &self.client.config;
        let mut report = StoreReport::new(
            StoreKind::Vault,
            self.describe(),
            StoreLocation::Vault {
                addr: c.addr.clone(),
                namespace: c.namespace.clone(),
                mount: c.kv_mount.clone(),
                path: c.path.clone(),
                identity_secret: self.kv_path("data", "identity"),
                refresh_token_secret: self.kv_path("data", &self.refresh_rest()),
            },
        );
        let recorded = match self.read("identity", "read the identity").await {
            Ok(found) => found.and_then(|(data, _)| {
                data.get("key_jkt")
                    .and_then(Value::as_str)
                    .filter(|jkt| !jkt.is_empty())
                    .map(str::to_owned)
            }),
            Err(_) => None,
        };
        report.fill_from(self).await;
        if let Some(key) = report.key.as_mut() {
            key.recorded_thumbprint = recorded;
            if key.mismatched() {
                report.problems.push(StoreProblem::ThumbprintMismatch {
                    what: self.kv_path("data", "identity"),
                    recorded: key.recorded_thumbprint.clone().unwrap_or_default(),
                    found: key.thumbprint.clone(),
                });
            }
        }
        if report.refresh_token == Presence::Present
            && let Ok(Some((data, _))) = self
                .read(&self.refresh_rest(), "read the refresh token")
                .await
        {
            report.issuer = data
                .get("issuer")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty())
                .map(str::to_owned);
        }
        match self.list_staged().await {
            Ok(keys) => report.staged_keys = Some(keys),
            Err(e) => report.problems.push(StoreProblem::from_error(&e)),
        }
        report
    }

    async fn discard_staged_key(&self, key: &PrivateKey) -> Result<(), StoreError> {
        let path = self.kv_path("metadata", &Self::staged_rest(key));
        self.client
            .call(
                &self.describe(),
                "remove the staged key",
                reqwest::Method::DELETE,
                &path,
                None,
            )
            .await?;
        Ok(())
    }

    /// Writes `<mount>/data/<path>/pending-registration` (its key stays in
    /// `staged-keys/<jkt>`).
    async fn save_pending_registration(
        &self,
        pending: &PendingRegistration,
    ) -> Result<Option<String>, StoreError> {
        let rest = PENDING_REST;
        if !self
            .write(
                rest,
                "keep the pending registration",
                &pending.to_json(),
                Cas::Replace,
            )
            .await?
        {
            return Err(StoreError::Backend {
                store: self.describe(),
                action: format!("write {}", self.kv_path("data", rest)),
                hint: "other writers kept changing it; make sure no other registration writes to this path".to_owned(),
                source: None,
            });
        }
        Ok(Some(format!(
            "Vault KV {} ({})",
            self.kv_path("data", rest),
            self.client.config.addr
        )))
    }

    async fn load_pending_registration(&self) -> Result<Option<PendingRegistration>, StoreError> {
        let Some((data, _)) = self
            .read(PENDING_REST, "read the pending registration")
            .await?
        else {
            return Ok(None);
        };
        let what = self.kv_path("data", PENDING_REST);
        let pending = PendingRegistration::from_json(&data).map_err(|r| self.corrupt(&what, &r))?;
        let staged = format!("staged-keys/{}", pending.fingerprint());
        let Some((key_data, _)) = self.read(&staged, "read the staged key").await? else {
            // A Transit signer's registration stages no key.
            return Ok(Some(pending));
        };
        let what = self.kv_path("data", &staged);
        let pem = key_data
            .get("private_key_pem")
            .and_then(Value::as_str)
            .ok_or_else(|| self.corrupt(&what, "it has no private_key_pem"))?;
        let key = PrivateKey::from_pem(pem).map_err(|source| StoreError::InvalidKey {
            store: self.describe(),
            what,
            source,
        })?;
        Ok(Some(pending.with_key(Some(key))))
    }

    async fn clear_pending_registration(&self) -> Result<(), StoreError> {
        let path = self.kv_path("metadata", PENDING_REST);
        self.client
            .call(
                &self.describe(),
                "remove the pending registration",
                reqwest::Method::DELETE,
                &path,
                None,
            )
            .await?;
        Ok(())
    }
}

/// A [`Signer`] whose P-256 key lives in Vault Transit and never leaves it.
///
/// Signing sends the message to `<mount>/sign/<key>/sha2-256` with `marshaling_algorithm=jws`
/// (raw `r‖s`); a DER (ASN.1) answer from an older server is converted. The key version is
/// pinned to the one read at connection, so a rotation in Vault cannot silently change the
/// key a binding is registered with.
pub struct TransitSigner {
    client: Arc<VaultClient>,
    mount: String,
    key: String,
    version: u64,
    public_jwk: PublicJwk,
    thumbprint: Thumbprint,
}

impl fmt::Debug for TransitSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitSigner")
            .field("addr", &self.client.config.addr)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .field("version", &self.version)
            .field("thumbprint", &self.thumbprint.as_str())
            .finish()
    }
}

impl TransitSigner {
    /// Connects to Transit key `key` on `mount` with `config`.
    pub async fn from_config(
        config: VaultConfig,
        mount: &str,
        key: &str,
    ) -> Result<Self, StoreError> {
        Self::connect(Arc::new(VaultClient::new(config)?), mount, key).await
    }

    async fn connect(client: Arc<VaultClient>, mount: &str, key: &str) -> Result<Self, StoreError> {
        let mount = mount.trim_matches('/').to_owned();
        let store = format!("vault transit key {mount}/{key}");
        let answer = client
            .call(
                &store,
                "read the Transit key",
                reqwest::Method::GET,
                &format!("{mount}/keys/{key}"),
                None,
            )
            .await?;
        let Answer::Ok(value) = answer else {
            return Err(StoreError::Missing {
                store,
                what: "the Transit key".to_owned(),
                hint: "create it (`bao write -f transit/keys/<name> type=ecdsa-p256`) or with VaultStore::create_transit_key".to_owned(),
            });
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            store: store.clone(),
            what: "the Transit key".to_owned(),
            reason: reason.to_owned(),
        };
        if value.pointer("/data/type").and_then(Value::as_str) != Some("ecdsa-p256") {
            return Err(corrupt(
                "it is not an ecdsa-p256 key; ES256 needs a P-256 key",
            ));
        }
        let version = value
            .pointer("/data/latest_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("it has no latest_version"))?;
        let pem = value
            .pointer(&format!("/data/keys/{version}/public_key"))
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("its latest version has no public key"))?;
        let public_jwk =
            PublicJwk::from_public_key_pem(pem).map_err(|source| StoreError::InvalidKey {
                store: store.clone(),
                what: "the Transit public key".to_owned(),
                source,
            })?;
        let thumbprint = public_jwk.thumbprint();
        let signer = Self {
            client,
            mount,
            key: key.to_owned(),
            version,
            public_jwk,
            thumbprint,
        };
        REMOTES.with_registry(|r| {
            r.insert(
                signer.thumbprint.as_str().to_owned(),
                (signer.mount.clone(), signer.key.clone()),
            )
        });
        Ok(signer)
    }

    /// The Transit mount and key name.
    pub fn key_name(&self) -> (&str, &str) {
        (&self.mount, &self.key)
    }

    fn describe_remote(signer: &dyn Signer) -> Option<(String, String)> {
        REMOTES.with_registry(|r| r.get(signer.thumbprint().as_str()).cloned())
    }

    fn name(&self) -> String {
        format!("vault transit key {}/{}", self.mount, self.key)
    }
}

/// Thumbprint → (mount, key) of the Transit signers this process connected, so a store can
/// record which Transit key an `Arc<dyn Signer>` stands for.
struct Remotes(std::sync::Mutex<std::collections::HashMap<String, (String, String)>>);

impl Remotes {
    fn with_registry<T>(
        &self,
        f: impl FnOnce(&mut std::collections::HashMap<String, (String, String)>) -> T,
    ) -> T {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }
}

static REMOTES: std::sync::LazyLock<Remotes> =
    std::sync::LazyLock::new(|| Remotes(std::sync::Mutex::new(std::collections::HashMap::new())));

#[async_trait]
impl Signer for TransitSigner {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public_jwk
    }

    fn thumbprint(&self) -> &Thumbprint {
        &self.thumbprint
    }

    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let body = json!({
            "input": STANDARD.encode(message),
            "key_version": self.version,
            "marshaling_algorithm": "jws",
        });
        let path = format!("{}/sign/{}/sha2-256", self.mount, self.key);
        let answer = self
            .client
            .call(
                &self.name(),
                "sign",
                reqwest::Method::POST,
                &path,
                Some(&body),
            )
            .await
            .map_err(|e| SignError::backend(self.name(), e))?;
        let bad = || SignError::BadSignature {
            signer: self.name().into(),
        };
        let Answer::Ok(value) = answer else {
            return Err(bad());
        };
        let text = value
            .pointer("/data/signature")
            .and_then(Value::as_str)
            .ok_or_else(bad)?;
        // "vault:v<version>:<signature>"
        let encoded = text.rsplit(':').next().ok_or_else(bad)?;
        if let Ok(raw) = URL_SAFE_NO_PAD.decode(encoded)
            && let Ok(raw) = <[u8; 64]>::try_from(raw.as_slice())
        {
            return Ok(raw);
        }
        // Older servers ignore marshaling_algorithm and answer ASN.1 DER in standard base64.
        let der = STANDARD.decode(encoded).map_err(|_| bad())?;
        let signature = p256::ecdsa::Signature::from_der(&der).map_err(|_| bad())?;
        let (r, s) = signature.split_bytes();
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&r);
        raw[32..].copy_from_slice(&s);
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_is_refused_off_loopback_unless_allowed() {
        use super::{VaultAuth, VaultConfig, VaultStore};
        let auth = || VaultAuth::Token(secrecy::SecretString::from("t"));
        for ok in [
            "https://vault.example",
            "http://127.0.0.1:8200",
            "http://localhost:1",
        ] {
            assert!(
                VaultStore::new(VaultConfig::new(ok, auth())).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://vault.example:8200",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "nope",
        ] {
            let err = VaultStore::new(VaultConfig::new(bad, auth())).unwrap_err();
            assert!(
                matches!(err, crate::store::StoreError::Config { .. }),
                "{bad}: {err}"
            );
        }
        let opted_out =
            VaultConfig::new("http://vault.example:8200", auth()).allow_insecure_http(true);
        assert!(VaultStore::new(opted_out).is_ok());
    }

    #[tokio::test]
    async fn a_refused_token_is_access_denied_with_what_to_check() {
        use super::{VaultAuth, VaultConfig, VaultStore};
        use crate::store::{CredentialStore as _, StoreError};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = r#"{"errors":["permission denied"]}"#;
                let answer = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let auth = VaultAuth::Token(secrecy::SecretString::from("t"));
        let store = VaultStore::new(VaultConfig::new(&addr, auth)).unwrap();
        let err = store.load_identity().await.unwrap_err();
        assert!(matches!(err, StoreError::Denied { .. }), "{err:?}");
        assert!(err.to_string().contains("policy allows this path"), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            cause.contains("403") && cause.contains("permission denied"),
            "{cause}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_vault_is_named_once_in_the_cause_chain() {
        use super::{VaultAuth, VaultConfig, VaultStore};
        use crate::store::CredentialStore as _;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let auth = VaultAuth::Token(secrecy::SecretString::from("t"));
        let store = VaultStore::new(VaultConfig::new(&addr, auth)).unwrap();
        let err = store.load_identity().await.unwrap_err();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert_eq!(text.matches(&addr).count(), 1, "{text}");
    }

    #[test]
    fn der_signatures_convert_to_raw_r_and_s() {
        use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let sig: Signature = key.sign(b"message");
        let der = sig.to_der();
        let back = Signature::from_der(der.as_bytes()).unwrap();
        assert_eq!(back, sig);
        assert_eq!(back.to_bytes().len(), 64);
    }
}
