//! [`RegisterOptions`] and the progress a registration reports.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::keys::Signer;
use crate::scope::Scope;
use crate::transport::ConfigureHttp;

/// What registration reports to a [`RegisterOptions::on_progress`] callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationProgress {
    /// The public key is being sent with the ticket.
    #[non_exhaustive]
    Submitting {
        /// Thumbprint of the key being registered.
        fingerprint: String,
    },
    /// Legacy flow: the server is waiting for the owner to approve; registration keeps polling.
    #[non_exhaustive]
    AwaitingApproval {
        /// Thumbprint the owner sees in the console.
        fingerprint: String,
        /// Time spent waiting so far.
        elapsed: Duration,
        /// Time left before registration gives up.
        remaining: Duration,
        /// The status of the last answer (`pending_approval`, or one this SDK does not know,
        /// which is polled through as well); `None` before the first answer.
        status: Option<String>,
    },
    /// The binding is active.
    #[non_exhaustive]
    Active {
        /// The new binding's client id.
        client_id: String,
    },
}

type ProgressFn = Arc<dyn Fn(&RegistrationProgress) + Send + Sync>;

/// Options of [`register`](crate::register::register). `Default` is: ticket from `RALIO_REGISTRATION_TICKET`, API from
/// `RALIO_API_URL` (else production), a freshly generated key, the ticket's full scope ceiling,
/// no overwrite, legacy polling every 3 s for up to 15 minutes.
#[derive(Clone)]
pub struct RegisterOptions {
    pub(super) ticket: Option<SecretString>,
    pub(super) base_url: Option<String>,
    pub(super) requested_scopes: Vec<Scope>,
    pub(super) client_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub(super) overwrite: bool,
    pub(super) signer: Option<Arc<dyn Signer>>,
    pub(super) poll_interval: Duration,
    pub(super) approval_timeout: Duration,
    pub(super) progress: Option<ProgressFn>,
    pub(super) http: crate::transport::HttpConfig,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        Self {
            ticket: None,
            base_url: None,
            requested_scopes: Vec::new(),
            client_metadata: None,
            overwrite: false,
            signer: None,
            poll_interval: Duration::from_secs(3),
            approval_timeout: Duration::from_secs(15 * 60),
            progress: None,
            http: crate::transport::HttpConfig::default(),
        }
    }
}

impl fmt::Debug for RegisterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterOptions")
            .field("ticket", &self.ticket.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("requested_scopes", &self.requested_scopes)
            .field("overwrite", &self.overwrite)
            .field("signer", &self.signer)
            .field("poll_interval", &self.poll_interval)
            .field("approval_timeout", &self.approval_timeout)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl RegisterOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The one-time `ralio-reg-…` ticket (instead of `RALIO_REGISTRATION_TICKET`).
    pub fn ticket(mut self, ticket: impl Into<String>) -> Self {
        self.ticket = Some(SecretString::from(ticket.into()));
        self
    }

    /// The API origin (instead of `RALIO_API_URL` or production). A trailing `/` is dropped.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Scopes to request (at most the ticket's ceiling): [`Scope`]s or their wire strings.
    /// Empty (the default) lets the server grant the full ceiling.
    pub fn requested_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Scope>,
    {
        self.requested_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Free-form client metadata shown to the owner (host name, version, ...).
    pub fn client_metadata(mut self, metadata: serde_json::Map<String, serde_json::Value>) -> Self {
        self.client_metadata = Some(metadata);
        self
    }

    /// Replace an identity or key file that already exists (default false: refuse).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Register this signer's key (for example a Vault Transit key) instead of generating one.
    pub fn signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Adjusts the HTTP client registration builds (TLS roots, a client certificate, a
    /// proxy), as [`RalioClientBuilder::configure_http`](crate::RalioClientBuilder::configure_http)
    /// does (see [`ConfigureHttp`]; 10 s to connect). That one client sends the registration,
    /// the legacy flow's polls and the first token request; each answer must arrive, whole,
    /// within 60 s.
    pub fn configure_http(mut self, configure: impl ConfigureHttp) -> Self {
        self.http.configure(configure);
        self
    }

    /// Legacy flow: time between two polls (default 3 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Legacy flow: how long to wait for the owner's approval (default 15 minutes).
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.approval_timeout = timeout;
        self
    }

    /// Called as registration advances (to drive a spinner, for example).
    pub fn on_progress(
        mut self,
        f: impl Fn(&RegistrationProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    pub(super) fn report(&self, event: RegistrationProgress) {
        if let Some(f) = &self.progress {
            f(&event);
        }
    }
}
