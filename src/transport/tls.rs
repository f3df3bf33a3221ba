//! Recognising a TLS handshake that failed because this client does not trust the server's
//! certificate: a settings problem (a private CA not configured, an expired certificate, the
//! wrong host), which retrying cannot fix and "check the network" does not describe.

use std::error::Error as StdError;

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
