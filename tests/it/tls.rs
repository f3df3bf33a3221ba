//! Over real TLS, with a private certificate authority made in the test: the CA the caller
//! configures reaches registration, the token request and resource calls alike; without it,
//! each fails at once, with an error that says the certificate is not trusted and names the
//! request that failed.
//!
//! The body runs in a child process without `SSL_CERT_FILE` and `SSL_CERT_DIR`, so nothing
//! but the caller's settings can make the certificate trusted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ralio::error::RequestKind;
use ralio::register::{RegisterOptions, register};
use ralio::store::{CredentialStore, MemoryStore};
use ralio::{Error, RalioClient};
use ralio_sandbox::{Sandbox, TicketSpec};
use tokio_rustls::rustls;

#[tokio::test]
async fn a_private_ca_reaches_registration_token_and_resource_calls() {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tls::private_ca_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RALIO_TLS_CHILD", "1")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the TLS test failed in its child process: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("TLS OK"),
        "the child did not reach its end: {stdout}"
    );
}

/// A certificate authority and a `localhost` certificate it issued.
struct Pki {
    ca_pem: String,
    server: rustls::ServerConfig,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ralio test CA (made by the test)");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
    .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// Terminates TLS on `listener` and passes the bytes on to `backend`; counts the connections
/// accepted (handshakes tried).
fn terminate_tls(
    listener: tokio::net::TcpListener,
    server: rustls::ServerConfig,
    backend: SocketAddr,
) -> Arc<AtomicUsize> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to pass on.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    accepted
}

#[tokio::test]
#[ignore = "run by a_private_ca_reaches_registration_token_and_resource_calls in a child process"]
async fn private_ca_child() {
    if std::env::var_os("RALIO_TLS_CHILD").is_none() {
        return;
    }
    assert!(std::env::var_os("SSL_CERT_FILE").is_none());
    assert!(std::env::var_os("SSL_CERT_DIR").is_none());

    let pki = pki();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    // The sandbox listens in plain HTTP behind the TLS terminator, and checks proofs against
    // the URL clients use.
    let sb = Sandbox::builder()
        .public_url(Some(&url))
        .start()
        .await
        .unwrap();
    let handshakes = terminate_tls(listener, pki.server, sb.local_addr());
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let trusting = move |http: reqwest::ClientBuilder| http.add_root_certificate(ca.clone());

    // Without the CA: registration fails at once (not retried), saying why, and keeps nothing.
    let store = Arc::new(MemoryStore::new());
    let e = register(
        &*store,
        RegisterOptions::new()
            .ticket(sb.mint_ticket(TicketSpec::default()))
            .base_url(&url),
    )
    .await
    .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("registration request")
            && message.contains("does not trust the server's TLS certificate")
            && message.contains("certificate authority this client does not trust"),
        "{message}: {e:?}"
    );
    assert!(!message.contains("check the network"), "{message}");
    assert!(store.load_identity().await.unwrap().is_none());
    assert_eq!(handshakes.load(Ordering::SeqCst), 1, "tried once");
    assert_eq!(sb.counters().registrations, 0);

    // With it: registration (and its first token), then a client's token and resource calls.
    let binding = register(
        &*store,
        RegisterOptions::new()
            .ticket(sb.mint_ticket(TicketSpec::default()))
            .base_url(&url)
            .configure_http(trusting.clone()),
    )
    .await
    .unwrap();
    assert!(binding.client_id.starts_with("cb_"), "{binding:?}");
    let client = RalioClient::builder()
        .base_url(&url)
        .store(Arc::clone(&store) as Arc<dyn CredentialStore>)
        .configure_http(trusting)
        .build()
        .await
        .unwrap();
    let agents = client.agents().list().await.unwrap();
    assert_eq!(agents.len(), 1);
    client.transactions().list().await.unwrap();
    let counters = sb.counters();
    assert_eq!(counters.registrations, 1);
    // Registration's first token, then the client's (a refresh with the token it saved).
    assert_eq!(
        counters.requests.get("POST /oauth/token"),
        Some(&2),
        "{counters:?}"
    );

    // A client without the CA: its call fails on the token request it needs first, at once.
    let before = handshakes.load(Ordering::SeqCst);
    let untrusting = RalioClient::builder()
        .base_url(&url)
        .store(Arc::clone(&store) as Arc<dyn CredentialStore>)
        .build()
        .await
        .unwrap();
    let e = untrusting.agents().list().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::UntrustedCertificate {
                request: RequestKind::Token,
                ..
            }
        ),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.starts_with("agents.list: the token request to ")
            && message.contains("/oauth/token was not sent")
            && message.contains("does not trust the server's TLS certificate")
            && message.contains("configure_http"),
        "{message}"
    );
    assert!(!e.is_retryable());
    assert_eq!(handshakes.load(Ordering::SeqCst), before + 1, "tried once");
    println!("TLS OK");
}

/// The clients the SDK builds without the caller's TLS settings share one TLS configuration
/// (the platform verifier, one root store per process): over real TLS, with the test CA as
/// the system's only root (`SSL_CERT_FILE`, read by the platform verifier on Linux), a
/// registration and then a client both verify the server and run, and ALPN still offers
/// HTTP/2.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn clients_without_tls_settings_trust_the_system_roots() {
    // The child writes its CA there before its first handshake reads the file.
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots.pem");
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tls::system_roots_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RALIO_TLS_CHILD", "1")
        .env("SSL_CERT_FILE", &roots)
        .env_remove("SSL_CERT_DIR")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SYSTEM ROOTS OK"),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
#[ignore = "run by clients_without_tls_settings_trust_the_system_roots in a child process"]
async fn system_roots_child() {
    if std::env::var_os("RALIO_TLS_CHILD").is_none() {
        return;
    }
    // This CA is the only root: the server certificate comes from it.
    let pki = pki();
    let roots = std::env::var_os("SSL_CERT_FILE").unwrap();
    std::fs::write(&roots, &pki.ca_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let sb = Sandbox::builder()
        .public_url(Some(&url))
        .start()
        .await
        .unwrap();
    let mut server = pki.server;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let handshakes = terminate_tls(listener, server, sb.local_addr());

    let store = Arc::new(MemoryStore::new());
    register(
        &*store,
        RegisterOptions::new()
            .ticket(sb.mint_ticket(TicketSpec::default()))
            .base_url(&url),
    )
    .await
    .unwrap();
    let client = RalioClient::builder()
        .base_url(&url)
        .store(Arc::clone(&store) as Arc<dyn CredentialStore>)
        .build()
        .await
        .unwrap();
    assert_eq!(client.agents().list().await.unwrap().len(), 1);
    // Registration's client and the resource client: two clients, each its own connection.
    assert!(handshakes.load(Ordering::SeqCst) >= 2);
    println!("SYSTEM ROOTS OK");
}
