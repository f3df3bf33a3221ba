//! Router assembly and the listening task.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::state::Shared;
use crate::{Config, Sandbox, SandboxError};

const OPENAPI: &str = include_str!("../../openapi/ralio.json");

pub(crate) async fn start(config: Config) -> Result<Sandbox, SandboxError> {
    let addr = config.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { addr, source })?;
    let state = Arc::new(Shared::new(config));
    let app = Router::new()
        .route(
            "/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .with_state(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Sandbox {
        base_url: format!("http://{local}"),
        state,
        shutdown: Some(tx),
    })
}
