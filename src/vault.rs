//! The Vault / OpenBao HTTP client shared by the KV v2 credential store
//! ([`VaultStore`](crate::store::VaultStore)) and the Transit signer
//! ([`TransitSigner`](crate::keys::TransitSigner)): address, login (token or AppRole), the
//! cached Vault token, and one request with its answer classified (feature `vault`).
//!
//! Below both `store` and `keys`, so neither imports the other for it. Its errors are its own
//! ([`VaultError`]): the store turns them into a `StoreError` naming itself, the signer into a
//! `SignError` naming the key.
//!
//! Written on reqwest directly rather than with `vaultrs`: vaultrs 0.8 fits reqwest 0.13, but
//! its transport (rustify) keeps raw response bodies in its error values (`content: …`), and
//! a KV read's body holds the private key or the refresh token, which would then reach
//! `Debug` output and logs. The handful of calls needed here are small.

use std::fmt;

use http::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::config::MissingEnvVar;

/// The AppRole auth mount used unless `VAULT_APPROLE_MOUNT` names another.
pub(crate) const DEFAULT_APPROLE_MOUNT: &str = "approle";

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
            // The role id is half of the login: not a secret on its own, but kept out of logs.
            Self::AppRole { mount, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", &"[redacted]")
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
    pub(crate) addr: String,
    pub(crate) auth: VaultAuth,
    pub(crate) namespace: Option<String>,
    pub(crate) kv_mount: String,
    pub(crate) path: String,
    pub(crate) slot: String,
    pub(crate) allow_insecure_http: bool,
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

    /// From the environment, as the `ralio` command reads it: `VAULT_ADDR` with
    /// `VAULT_TOKEN`, or AppRole (`VAULT_ROLE_ID`, `VAULT_SECRET_ID`, `VAULT_APPROLE_MOUNT`,
    /// default `approle`); a token wins when both are set. `VAULT_NAMESPACE`; the KV v2 mount
    /// and path from `RALIO_VAULT_MOUNT` and `RALIO_VAULT_PATH` (defaults `secret` and
    /// `ralio`). A blank variable counts as unset.
    ///
    /// Fails with the first variable that is missing.
    pub fn from_env() -> Result<Self, MissingEnvVar> {
        Self::from_lookup(crate::config::env_var)
    }

    /// [`from_env`](Self::from_env) over any lookup (tests).
    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, MissingEnvVar> {
        let addr = var("VAULT_ADDR").ok_or(MissingEnvVar("VAULT_ADDR"))?;
        let auth = match (
            var("VAULT_TOKEN"),
            var("VAULT_ROLE_ID"),
            var("VAULT_SECRET_ID"),
        ) {
            (Some(token), _, _) => VaultAuth::Token(SecretString::from(token)),
            (None, Some(role_id), Some(secret_id)) => VaultAuth::AppRole {
                mount: var("VAULT_APPROLE_MOUNT").unwrap_or_else(|| DEFAULT_APPROLE_MOUNT.into()),
                role_id,
                secret_id: SecretString::from(secret_id),
            },
            (None, Some(_), None) => return Err(MissingEnvVar("VAULT_SECRET_ID")),
            (None, None, _) => return Err(MissingEnvVar("VAULT_TOKEN")),
        };
        let mut config = VaultConfig::new(addr, auth);
        if let Some(namespace) = var("VAULT_NAMESPACE") {
            config = config.namespace(namespace);
        }
        if let Some(mount) = var("RALIO_VAULT_MOUNT") {
            config = config.kv_mount(mount);
        }
        if let Some(path) = var("RALIO_VAULT_PATH") {
            config = config.path(path);
        }
        Ok(config)
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
}

/// The HTTP side shared by the store and the signer: address, auth, cached token.
pub(crate) struct VaultClient {
    pub(crate) config: VaultConfig,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<SecretString>>,
}

/// An error answer of the Vault API; carries Vault's own messages, which never echo secrets.
#[derive(Debug, thiserror::Error)]
#[error("Vault answered HTTP {}: {}", status.as_u16(), if errors.is_empty() { "no details".to_owned() } else { errors.join("; ") })]
pub(crate) struct VaultApiError {
    status: StatusCode,
    errors: Vec<String>,
}

/// Why a Vault call failed. The callers name themselves (the store, the Transit key) around it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VaultError {
    /// The settings cannot work (an address that is not a URL, plain http off loopback).
    #[error("{reason}")]
    Config { reason: String },
    /// Vault refused this token (or the AppRole login) access.
    #[error("access denied while trying to {action}; {DENIED_HINT}")]
    Denied {
        action: String,
        #[source]
        source: VaultApiError,
    },
    /// Vault failed, could not be reached, or answered something unusable.
    #[error("could not {action}; {hint}")]
    Backend {
        action: String,
        hint: &'static str,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// What to check when Vault refuses access.
pub(crate) const DENIED_HINT: &str =
    "check that the token is valid and its policy allows this path";

impl VaultError {
    fn backend(
        action: &str,
        hint: &'static str,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        VaultError::Backend {
            action: action.to_owned(),
            hint,
            source,
        }
    }
}

/// A Vault answer the callers act on; every other answer is a [`VaultError`].
pub(crate) enum Answer {
    Ok(Value),
    /// 404, with the body: a KV v2 read of a deleted secret still names its version there.
    NotFound(Value),
    /// A KV v2 write whose `cas` is not the current version: another writer got there first.
    CasMismatch,
    Forbidden(Vec<String>),
}

impl VaultClient {
    pub(crate) fn new(config: VaultConfig) -> Result<Self, VaultError> {
        let addr = url::Url::parse(&config.addr).map_err(|e| VaultError::Config {
            reason: format!("VAULT_ADDR {:?} is not a URL ({e})", config.addr),
        })?;
        let secure = match addr.scheme() {
            "https" => true,
            "http" => crate::config::is_loopback(&addr) || config.allow_insecure_http,
            _ => false,
        };
        if !secure {
            return Err(VaultError::Config {
                reason: format!(
                    "VAULT_ADDR {:?} is not https://; plain http:// is accepted only for localhost, 127.0.0.0/8 and ::1, where the Vault token stays on this machine",
                    addr.origin().ascii_serialization()
                ),
            });
        }
        let http = crate::transport::tls::with_shared_tls(reqwest::Client::builder())
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            // reqwest keeps `X-Vault-Token` (and bodies) on a redirect to another origin.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                VaultError::backend(
                    "build the HTTP client",
                    "the TLS backend could not be initialised",
                    Some(Box::new(e)),
                )
            })?;
        Ok(Self {
            config,
            http,
            token: tokio::sync::Mutex::new(None),
        })
    }

    async fn token(&self) -> Result<SecretString, VaultError> {
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
                const LOGIN: &str = "log in with AppRole";
                let body = json!({"role_id": role_id, "secret_id": secret_id.expose_secret()});
                let url = format!(
                    "{}/v1/auth/{}/login",
                    self.config.addr,
                    mount.trim_matches('/')
                );
                let answer = self
                    .send(LOGIN, reqwest::Method::POST, &url, None, Some(&body))
                    .await?;
                let Answer::Ok(value) = answer else {
                    return Err(VaultError::backend(
                        LOGIN,
                        "check the AppRole mount and that the role exists",
                        None,
                    ));
                };
                match value.pointer("/auth/client_token").and_then(Value::as_str) {
                    Some(t) => SecretString::from(t.to_owned()),
                    None => {
                        return Err(VaultError::backend(
                            LOGIN,
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

    /// One authenticated call; an AppRole login that expired is renewed once.
    pub(crate) async fn call(&self, call: VaultCall<'_>) -> Result<Answer, VaultError> {
        let VaultCall {
            action,
            method,
            path,
            body,
        } = call;
        let url = format!("{}/v1/{path}", self.config.addr);
        let mut relogged = false;
        loop {
            let token = self.token().await?;
            match self
                .send(action, method.clone(), &url, Some(&token), body)
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
                    return Err(VaultError::Denied {
                        action: action.to_owned(),
                        source: VaultApiError {
                            status: StatusCode::FORBIDDEN,
                            errors,
                        },
                    });
                }
                other => return Ok(other),
            }
        }
    }

    /// The request, with the token marked sensitive: HTTP/2's header compression leaves it
    /// out of its tables, and `Debug` of the request (a tracing layer's, a middleware's)
    /// shows `Sensitive`.
    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<reqwest::RequestBuilder, VaultError> {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(token.expose_secret())
                .map_err(|_| VaultError::Config {
                    reason: "the Vault token is not a valid HTTP header value (a newline or control character in VAULT_TOKEN?)".to_owned(),
                })?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(ns) = &self.config.namespace {
            request = request.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Ok(request)
    }

    async fn send(
        &self,
        action: &str,
        method: reqwest::Method,
        url: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Answer, VaultError> {
        let request = self.request(method, url, token, body)?;
        let response = request.send().await.map_err(|e| {
            VaultError::backend(
                action,
                "check VAULT_ADDR and that the Vault server is running",
                // The caller's description names the address: print it once.
                Some(Box::new(e.without_url())),
            )
        })?;
        let status = response.status();
        // 1 MiB: far above any secret this store keeps; a bigger body is cut and fails to parse.
        let bytes = crate::transport::body::read_body_capped(response, 1 << 20)
            .await
            .map_err(|e| {
                VaultError::backend(
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
                VaultError::backend(
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
            return Err(VaultError::Denied {
                action: action.to_owned(),
                source: VaultApiError { status, errors },
            });
        }
        let hint = match status {
            StatusCode::SERVICE_UNAVAILABLE => "Vault is sealed or unavailable",
            _ => "see Vault's message",
        };
        Err(VaultError::backend(
            action,
            hint,
            Some(Box::new(VaultApiError { status, errors })),
        ))
    }
}

/// One request to Vault's HTTP API: what it is for (`action`, named in errors), the method,
/// the path under `/v1/` and the JSON body.
pub(crate) struct VaultCall<'a> {
    action: &'a str,
    method: reqwest::Method,
    path: String,
    body: Option<&'a Value>,
}

impl<'a> VaultCall<'a> {
    pub(crate) fn get(action: &'a str, path: impl Into<String>) -> Self {
        Self::new(action, reqwest::Method::GET, path.into(), None)
    }

    pub(crate) fn post(action: &'a str, path: impl Into<String>, body: &'a Value) -> Self {
        Self::new(action, reqwest::Method::POST, path.into(), Some(body))
    }

    pub(crate) fn delete(action: &'a str, path: impl Into<String>) -> Self {
        Self::new(action, reqwest::Method::DELETE, path.into(), None)
    }

    fn new(
        action: &'a str,
        method: reqwest::Method,
        path: String,
        body: Option<&'a Value>,
    ) -> Self {
        Self {
            action,
            method,
            path,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const ADDR: (&str, &str) = ("VAULT_ADDR", "http://127.0.0.1:8200");

    /// The `Debug` text of the settings read from these variables.
    fn debug_of(pairs: &[(&str, &str)]) -> String {
        format!("{:?}", VaultConfig::from_lookup(lookup(pairs)).unwrap())
    }

    #[test]
    fn vault_settings_take_a_token_or_approle() {
        let shown = debug_of(&[
            ADDR,
            ("VAULT_TOKEN", "s.secret"),
            ("VAULT_ROLE_ID", "role"),
            ("VAULT_SECRET_ID", "sid"),
        ]);
        assert!(shown.contains("Token([redacted])"), "{shown}");
        assert!(!shown.contains("s.secret"), "{shown}");

        let shown = debug_of(&[
            ADDR,
            ("VAULT_ROLE_ID", "role-1"),
            ("VAULT_SECRET_ID", "sid-secret"),
            ("RALIO_VAULT_MOUNT", "kv"),
            ("RALIO_VAULT_PATH", "agents/a"),
        ]);
        assert!(shown.contains("AppRole"), "{shown}");
        assert!(shown.contains("mount: \"approle\""), "{shown}");
        assert!(!shown.contains("role-1"), "no role id in Debug: {shown}");
        assert!(!shown.contains("sid-secret"), "{shown}");
        assert!(shown.contains("kv_mount: \"kv\""), "{shown}");
        assert!(shown.contains("path: \"agents/a\""), "{shown}");
    }

    #[test]
    fn the_vault_token_header_is_sensitive_and_hidden_from_debug() {
        let token = SecretString::from("s.token-value".to_owned());
        let client = VaultClient::new(VaultConfig::new(
            "http://127.0.0.1:8200",
            VaultAuth::Token(token.clone()),
        ))
        .unwrap();
        let request = client
            .request(
                reqwest::Method::GET,
                "http://127.0.0.1:8200/v1/secret/data/x",
                Some(&token),
                None,
            )
            .unwrap()
            .build()
            .unwrap();
        let header = request.headers().get("x-vault-token").unwrap();
        assert!(header.is_sensitive());
        let shown = format!("{request:?} {:?}", request.headers());
        assert!(!shown.contains("s.token-value"), "{shown}");

        let bad = SecretString::from("s.a\nb".to_owned());
        assert!(matches!(
            client.request(
                reqwest::Method::GET,
                "http://127.0.0.1:8200/v1/x",
                Some(&bad),
                None
            ),
            Err(VaultError::Config { .. })
        ));
    }

    #[test]
    fn vault_settings_name_the_missing_variable() {
        assert_eq!(
            VaultConfig::from_lookup(lookup(&[])).unwrap_err(),
            MissingEnvVar("VAULT_ADDR")
        );
        assert_eq!(
            VaultConfig::from_lookup(lookup(&[ADDR])).unwrap_err(),
            MissingEnvVar("VAULT_TOKEN")
        );
        assert_eq!(
            VaultConfig::from_lookup(lookup(&[ADDR, ("VAULT_ROLE_ID", "r")])).unwrap_err(),
            MissingEnvVar("VAULT_SECRET_ID")
        );
    }
}
