//! Small helpers shared by the integration tests.

use ralio::register::{Binding, RegisterOptions, register};
use ralio::store::CredentialStore;
use ralio_sandbox::{Sandbox, TicketSpec};

/// Registers a new binding into `store` with a fresh sandbox ticket made from `spec`.
pub(crate) async fn register_with_ticket(
    sb: &Sandbox,
    store: &dyn CredentialStore,
    spec: TicketSpec,
) -> Binding {
    register(
        store,
        RegisterOptions::new()
            .ticket(sb.mint_ticket(spec))
            .base_url(sb.base_url()),
    )
    .await
    .unwrap()
}

/// Registers the key of `signer` into `store` with a fresh default sandbox ticket.
pub(crate) async fn register_signer(
    sb: &Sandbox,
    store: &dyn CredentialStore,
    signer: std::sync::Arc<dyn ralio::keys::Signer>,
) -> Binding {
    register(
        store,
        RegisterOptions::new()
            .base_url(sb.base_url())
            .ticket(sb.mint_ticket(TicketSpec::default()))
            .signer(signer),
    )
    .await
    .unwrap()
}

/// A client on `sb` with a memory store, registered with a default ticket.
pub(crate) async fn registered_client(sb: &Sandbox) -> ralio::RalioClient {
    let store = std::sync::Arc::new(ralio::store::MemoryStore::new());
    register_with_ticket(sb, &*store, TicketSpec::default()).await;
    ralio::RalioClient::builder()
        .base_url(sb.base_url())
        .store(store)
        .build()
        .await
        .unwrap()
}

/// The refresh token `store` holds, with its issuer.
pub(crate) async fn held(
    store: &ralio::store::MemoryStore,
) -> Option<ralio::store::RefreshTokenRecord> {
    store.load_refresh_token().await.unwrap()
}

/// The refresh token `store` holds, as text (the store must hold one).
pub(crate) async fn held_token(store: &ralio::store::MemoryStore) -> String {
    use secrecy::ExposeSecret as _;
    held(store)
        .await
        .expect("the store holds a refresh token")
        .refresh_token
        .expose_secret()
        .to_owned()
}

/// A memory store holding the refresh token `token`, issued by `issuer` when given.
pub(crate) async fn holding(
    token: secrecy::SecretString,
    issuer: Option<&str>,
) -> std::sync::Arc<ralio::store::MemoryStore> {
    let store = ralio::store::MemoryStore::new();
    let record = ralio::store::RefreshTokenRecord::new(token, issuer.map(str::to_owned));
    store.save_refresh_token(None, &record).await.unwrap();
    std::sync::Arc::new(store)
}
