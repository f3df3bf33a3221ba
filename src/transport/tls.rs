//! Recognising a TLS handshake that failed because this client does not trust the server's
//! certificate: a settings problem (a private CA not configured, an expired certificate, the
//! wrong host), which retrying cannot fix and "check the network" does not describe.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};

/// Why the server's certificate was refused, when that is why `error` happened.
pub(crate) fn untrusted_certificate(error: &reqwest::Error) -> Option<CertificateProblem> {
    if !error.is_connect() {
        return None;
    }
    let mut cause: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(current) = cause {
        if let Some(problem) = certificate_problem(current) {
            return Some(problem);
        }
        // `io::Error::source` skips the error it wraps (its `Display` already shows it), and
        // the TLS layer's error sits inside one or two of them: look inside explicitly.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    None
}

fn certificate_problem(error: &(dyn StdError + 'static)) -> Option<CertificateProblem> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(why) = error.downcast_ref::<rustls::Error>()? else {
        return None;
    };
    Some(match why {
        C::UnknownIssuer | C::BadSignature => CertificateProblem::UnknownIssuer,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            CertificateProblem::OutsideValidity
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => CertificateProblem::OtherHost,
        C::Revoked => CertificateProblem::Revoked,
        _ => CertificateProblem::Other,
    })
}

/// Why a server's certificate was not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateProblem {
    /// Issued by a certificate authority this client does not trust (a private CA).
    UnknownIssuer,
    /// Expired, or not valid yet.
    OutsideValidity,
    /// Issued for another host name.
    OtherHost,
    /// Revoked.
    Revoked,
    /// Another defect.
    Other,
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertificateProblem::UnknownIssuer => {
                "it was issued by a certificate authority this client does not trust"
            }
            CertificateProblem::OutsideValidity => "it has expired or is not valid yet",
            CertificateProblem::OtherHost => "it was issued for another host name",
            CertificateProblem::Revoked => "it was revoked",
            CertificateProblem::Other => "it failed verification",
        })
    }
}

/// The message of an error that carries the URL of the request and its transport failure: the
/// certificate problem when there is one, else `{prefix}{url}{suffix}` (the error's own words).
pub(crate) struct Unreached<'a> {
    request: &'static str,
    url: &'a str,
    source: &'a reqwest::Error,
    otherwise: (&'static str, &'static str),
}

impl<'a> Unreached<'a> {
    pub(crate) fn new(
        request: &'static str,
        url: &'a str,
        source: &'a reqwest::Error,
        otherwise: (&'static str, &'static str),
    ) -> Self {
        Unreached {
            request,
            url,
            source,
            otherwise,
        }
    }
}

impl std::fmt::Display for Unreached<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match untrusted_certificate(self.source) {
            Some(problem) => write!(
                f,
                "the {} to {} was not sent: {}",
                self.request,
                self.url,
                Untrusted(Some(problem))
            ),
            None => write!(f, "{}{}{}", self.otherwise.0, self.url, self.otherwise.1),
        }
    }
}

/// "this client does not trust the server's TLS certificate (why); what to do".
pub(crate) struct Untrusted(Option<CertificateProblem>);

impl Untrusted {
    pub(crate) fn of(error: &reqwest::Error) -> Self {
        Untrusted(untrusted_certificate(error))
    }
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this client does not trust the server's TLS certificate ({}); if the server uses a \
             private certificate authority, add it with `configure_http` \
             (`add_root_certificate`), else check the URL",
            self.0.unwrap_or(CertificateProblem::Other)
        )
    }
}

/// Where a request went, without its query: `scheme://host[:port]/path`, or `?` when the
/// error carries no URL.
pub(crate) fn shown_url(error: &reqwest::Error) -> String {
    match error.url() {
        Some(url) => format!("{}{}", url.origin().ascii_serialization(), url.path()),
        None => "?".to_owned(),
    }
}

/// How many times this process built the shared TLS configuration (once, or never).
#[cfg(test)]
static SHARED_BUILT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The TLS configuration every HTTP client the SDK builds without the caller's adjustments
/// shares ([`HttpConfig`](super::HttpConfig), the Vault client): the platform's certificate
/// verifier, which reads the system's root store on its first handshake and keeps it, so a
/// process reads it once however many clients it builds (a registration then a client, a
/// client per tenant, a Vault store beside them). It is what reqwest builds by default: the
/// process's rustls crypto provider (else aws-lc-rs), TLS 1.2 and 1.3, ALPN `h2` then
/// `http/1.1`. `None` when the platform verifier cannot be made; each client then builds its
/// own, as reqwest does.
pub(crate) fn shared_client_config() -> Option<rustls::ClientConfig> {
    static SHARED: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            #[cfg(test)]
            SHARED_BUILT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
            let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider)).ok()?;
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(rustls::ALL_VERSIONS)
                .ok()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(config)
        })
        .clone()
}

/// `builder` with the [shared TLS configuration](shared_client_config), when there is one.
/// Only for a builder the caller does not adjust: a preconfigured TLS backend would silently
/// drop the roots, certificates and TLS settings a caller adds.
pub(crate) fn with_shared_tls(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    match shared_client_config() {
        Some(config) => builder.tls_backend_preconfigured(config),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every client built without the caller's adjustments shares one verifier (one root
    /// store), and still negotiates HTTP/2 where the server offers it.
    #[test]
    fn clients_without_adjustments_share_one_tls_configuration() {
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(super::super::HttpConfig::default().client().unwrap());
        }
        clients.push(with_shared_tls(reqwest::Client::builder()).build().unwrap());
        assert_eq!(SHARED_BUILT.load(std::sync::atomic::Ordering::SeqCst), 1);
        let config = shared_client_config().unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(SHARED_BUILT.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
