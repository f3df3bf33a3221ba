//! `ralio whoami`.

use chrono::{DateTime, SecondsFormat, Utc};

use super::register::scopes_text;
use super::{human_duration, out, out_json};
use crate::context::Context;
use crate::error::CliError;
use crate::terminal::safe_line;

/// Prints the identity and the facts of a current token; never a secret.
pub async fn run(ctx: &Context) -> Result<(), CliError> {
    let session = ctx.client().await?;
    // Listing the agents mints (or refreshes) the token through the client's own auth layer.
    let agents = session.client.agents().list().await?;
    let tokens = session.tokens()?;
    let info = tokens.token_info();
    let client_id = tokens.config().client_id();
    let thumbprint = tokens.thumbprint();
    let scopes = info.as_ref().map(|i| i.scopes.clone()).unwrap_or_default();
    let expires_at = info
        .as_ref()
        .map(|i| DateTime::<Utc>::from(i.expires_at).to_rfc3339_opts(SecondsFormat::Secs, true));
    let expires_in = info.as_ref().map(|i| i.expires_in);
    if ctx.json {
        return out_json(&serde_json::json!({
            "client_id": client_id,
            "key_thumbprint": thumbprint.as_str(),
            "store": session.store.describe(),
            "api_url": ctx.api_url,
            "agents": agents.iter().map(|a| serde_json::json!({"id": a.id, "name": a.name})).collect::<Vec<_>>(),
            "scopes": scopes,
            "token_expires_at": expires_at,
            "token_expires_in_secs": expires_in.map(|d| d.as_secs()),
            "refresh_token_held": info.as_ref().is_some_and(|i| i.has_refresh_token),
        }));
    }
    let agent = match agents.as_slice() {
        [] => "(none)".to_owned(),
        list => list
            .iter()
            .map(|a| format!("{} ({})", safe_line(&a.name), safe_line(&a.id)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    out(format!("client id  {client_id}"))?;
    out(format!("key        {thumbprint}"))?;
    out(format!("store      {}", session.store.describe()))?;
    out(format!("api        {}", ctx.api_url))?;
    out(format!("agent      {agent}"))?;
    out(format!("scopes     {}", safe_line(&scopes_text(&scopes))))?;
    match (expires_at, expires_in) {
        (Some(at), Some(left)) => out(format!(
            "token      expires {at} (in {})",
            human_duration(left)
        ))?,
        _ => out("token      none")?,
    }
    Ok(())
}
