//! `ralio doctor`: one line per check, ok / warn / fail, with the fix.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use owo_colors::OwoColorize as _;
use ralio::Scope;
use ralio::auth::{AuthError, PrivateKey};
use ralio::store::{CredentialStore, Identity};

use super::{human_duration, out, out_json};
use crate::cli::StoreKind;
use crate::context::Context;
use crate::error::CliError;

/// A clock further off than this is worth a warning.
const SKEW_WARN: Duration = Duration::from_secs(5);
/// A clock further off than this breaks assertions and proofs.
const SKEW_FAIL: Duration = Duration::from_secs(60);
/// Both scopes a binding can hold.
const SCOPES: [(Scope, &str); 2] = [
    (Scope::AgentsExecute, "`ralio chat` and the MCP chat tool"),
    (
        Scope::TransactionsRead,
        "`ralio transactions`, `ralio intents` and their MCP tools",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Skip,
            detail: detail.into(),
            fix: None,
        }
    }
}

const REGISTER_FIX: &str = "run `ralio register` and paste the ticket from the owner when asked";
const REGISTER_FORCE_FIX: &str =
    "run `ralio register --force` and paste the ticket from the owner when asked";

/// What `credentials.json` says, as far as the doctor needs it.
struct CredentialsFile {
    client_id: String,
    key_jkt: Option<String>,
    key_path: PathBuf,
}

fn read_credentials_file(dir: &Path) -> Result<CredentialsFile, Check> {
    let path = dir.join("credentials.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Check::fail(
                "credentials",
                format!("no {}", path.display()),
                format!(
                    "{REGISTER_FIX}, or point --config-dir / RALIO_CONFIG_DIR at the right directory"
                ),
            ));
        }
        Err(e) => {
            return Err(Check::fail(
                "credentials",
                format!("cannot read {}: {e}", path.display()),
                format!(
                    "make it readable by this user: chown $USER {}",
                    path.display()
                ),
            ));
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Check::fail(
            "credentials",
            format!("{} is not JSON ({e})", path.display()),
            format!("restore it from a backup, or {REGISTER_FORCE_FIX}"),
        )
    })?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let client_id = field("client_id").ok_or_else(|| {
        Check::fail(
            "credentials",
            format!("{} has no client_id", path.display()),
            REGISTER_FORCE_FIX.to_owned(),
        )
    })?;
    let key_jkt = field("key_jkt");
    let key_path = match (field("key_path"), &key_jkt) {
        (Some(p), _) => {
            let p = PathBuf::from(p);
            if p.is_relative() { dir.join(p) } else { p }
        }
        (None, Some(jkt)) => dir.join("keys").join(format!("{jkt}.pem")),
        (None, None) => {
            return Err(Check::fail(
                "credentials",
                format!(
                    "{} names no key (neither key_path nor key_jkt)",
                    path.display()
                ),
                REGISTER_FORCE_FIX.to_owned(),
            ));
        }
    };
    Ok(CredentialsFile {
        client_id,
        key_jkt,
        key_path,
    })
}

#[cfg(unix)]
fn mode_of(path: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt as _;
    Ok(Some(std::fs::metadata(path)?.permissions().mode() & 0o777))
}

#[cfg(not(unix))]
fn mode_of(path: &Path) -> std::io::Result<Option<u32>> {
    std::fs::metadata(path).map(|_| None)
}

fn key_permissions(path: &Path) -> Check {
    const NAME: &str = "key permissions";
    match mode_of(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::fail(
            NAME,
            format!("the key file {} is missing", path.display()),
            format!("restore the key file from a backup, or {REGISTER_FORCE_FIX}"),
        ),
        Err(e) => Check::fail(
            NAME,
            format!("cannot inspect {}: {e}", path.display()),
            "check the ownership of the credential directory",
        ),
        Ok(None) => Check::skip(NAME, "file modes are not checked on this platform"),
        Ok(Some(mode)) if mode & 0o077 != 0 => Check::fail(
            NAME,
            format!(
                "{} is mode {mode:04o}: other users can read the private key",
                path.display()
            ),
            format!(
                "chmod 600 {}; if others may already have copied it, revoke the binding and register again",
                path.display()
            ),
        ),
        Ok(Some(mode)) => Check::ok(NAME, format!("{} is mode {mode:04o}", path.display())),
    }
}

fn key_thumbprint(creds: &CredentialsFile) -> (Check, Option<PrivateKey>) {
    const NAME: &str = "key thumbprint";
    let key = match PrivateKey::from_pem_file(&creds.key_path) {
        Ok(key) => key,
        Err(e) => {
            return (
                Check::fail(
                    NAME,
                    format!(
                        "{} is not a usable P-256 key ({e})",
                        creds.key_path.display()
                    ),
                    format!("restore the key file from a backup, or {REGISTER_FORCE_FIX}"),
                ),
                None,
            );
        }
    };
    let check = match &creds.key_jkt {
        Some(jkt) if jkt != key.thumbprint().as_str() => Check::fail(
            NAME,
            format!(
                "the key file holds key {} but the binding was registered with key {jkt}",
                key.thumbprint()
            ),
            format!(
                "put the registered key back at {}, or {REGISTER_FORCE_FIX} (and revoke the old binding)",
                creds.key_path.display()
            ),
        ),
        Some(jkt) => Check::ok(NAME, format!("the key matches the stored thumbprint {jkt}")),
        None => Check::warn(
            NAME,
            format!(
                "credentials.json has no key_jkt to compare with key {}",
                key.thumbprint()
            ),
            "nothing to do if the token check passes; registering again records it",
        ),
    };
    (check, Some(key))
}

/// Reaches the API without credentials; returns the check and the server's clock skew.
async fn reachability(api_url: &str) -> (Check, Option<i64>) {
    const NAME: &str = "api reachable";
    let url = format!("{api_url}/api/agents");
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            return (
                Check::fail(
                    NAME,
                    format!("cannot build an HTTP client: {e}"),
                    "check the TLS and proxy settings",
                ),
                None,
            );
        }
    };
    let sent = SystemTime::now();
    let response = match http.get(&url).send().await {
        Ok(r) => r,
        Err(e) => {
            let mut detail = format!("cannot reach {api_url}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                detail = format!("{detail}: {cause}");
                source = cause.source();
            }
            return (
                Check::fail(
                    NAME,
                    detail,
                    "check --api-url / RALIO_API_URL, the network, and any proxy (HTTPS_PROXY)",
                ),
                None,
            );
        }
    };
    let received = SystemTime::now();
    let status = response.status();
    let skew = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .map(|server| {
            // Compare with the middle of the round trip.
            let local = sent + received.duration_since(sent).unwrap_or_default() / 2;
            match server.duration_since(local) {
                Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
                Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX),
            }
        });
    let check = if status == reqwest::StatusCode::UNAUTHORIZED || status.is_success() {
        Check::ok(NAME, format!("{api_url} answered"))
    } else {
        Check::warn(
            NAME,
            format!("{api_url} answered HTTP {status} to an unauthenticated request"),
            "check that --api-url / RALIO_API_URL points at the Ralio API, not a proxy or web page",
        )
    };
    (check, skew)
}

fn clock(skew: Option<i64>) -> Check {
    const NAME: &str = "clock";
    let Some(skew) = skew else {
        return Check::skip(NAME, "the server sent no Date header to compare with");
    };
    let off = Duration::from_secs(skew.unsigned_abs());
    let direction = if skew > 0 { "behind" } else { "ahead of" };
    let fix = "synchronise the clock with NTP (for example `timedatectl set-ntp true`, or `chronyc makestep`)";
    if off > SKEW_FAIL {
        Check::fail(
            NAME,
            format!(
                "this host's clock is {} {direction} the server's: assertions and DPoP proofs will be refused",
                human_duration(off)
            ),
            fix,
        )
    } else if off > SKEW_WARN {
        Check::warn(
            NAME,
            format!(
                "this host's clock is {} {direction} the server's",
                human_duration(off)
            ),
            fix,
        )
    } else {
        Check::ok(NAME, "within 5s of the server's")
    }
}

/// Mints a token through the client every command uses (its auth layer and, when the store
/// loads, its refresh-token persistence); returns the check and the granted scopes.
async fn token(
    ctx: &Context,
    store: Option<Arc<dyn CredentialStore>>,
    identity: &Identity,
) -> (Check, Option<Vec<Scope>>) {
    const NAME: &str = "token";
    let (builder, note) = match store {
        Some(store) => (ctx.client_builder().store(store), ""),
        None => (
            ctx.client_builder().identity(identity.clone()),
            "; with the key file directly, which the store refuses until the failures above are fixed",
        ),
    };
    let client = match builder.build().await {
        Ok(client) => client,
        Err(e) => {
            return (
                Check::fail(
                    NAME,
                    crate::error::chain(&e).join(": "),
                    "fix the API URL and the store",
                ),
                None,
            );
        }
    };
    let Some(tokens) = client.token_manager() else {
        return (Check::skip(NAME, "the client has no credentials"), None);
    };
    match tokens.access_token().await {
        Ok(_) => {
            let info = tokens.token_info();
            let detail = match &info {
                Some(i) => format!(
                    "minted a token for {} (expires in {}){note}",
                    tokens.config().client_id(),
                    human_duration(i.expires_in)
                ),
                None => format!("minted a token for {}{note}", tokens.config().client_id()),
            };
            (Check::ok(NAME, detail), info.map(|i| i.scopes))
        }
        Err(e) => {
            let fix = match (&e, e.oauth_error()) {
                (AuthError::Store(_), _) => {
                    "the refresh token could not be kept: make the credential store writable by this user (file permissions, keyring unlocked, Vault policy with write on the path)"
                }
                (_, Some("invalid_client")) => {
                    "the binding is revoked or this key is not the registered one: ask the owner for a new ticket and run `ralio register --force`"
                }
                (_, Some(_)) => "see the server's description above",
                (_, None) => "check the network and the clock, then run `ralio doctor` again",
            };
            (
                Check::fail(NAME, crate::error::chain(&e).join(": "), fix),
                None,
            )
        }
    }
}

fn scopes(granted: &[Scope]) -> Check {
    const NAME: &str = "scopes";
    let missing: Vec<&(Scope, &str)> = SCOPES
        .iter()
        .filter(|(s, _)| !granted.contains(s))
        .collect();
    let granted_text = crate::commands::register::scopes_text(granted);
    if missing.is_empty() {
        return Check::ok(NAME, granted_text);
    }
    let what = missing
        .iter()
        .map(|(s, used_by)| format!("no {s} ({used_by} will be refused)"))
        .collect::<Vec<_>>()
        .join("; ");
    let status = if missing.len() == SCOPES.len() {
        Status::Fail
    } else {
        Status::Warn
    };
    Check {
        name: NAME,
        status,
        detail: format!("granted: {}; {what}", granted_text),
        fix: Some("if you need it, ask the owner for a ticket with that scope and run `ralio register --force`".to_owned()),
    }
}

/// The checks of the file store: the files one by one, then the store as the client reads it.
async fn file_checks(
    ctx: &Context,
    checks: &mut Vec<Check>,
) -> (Option<Identity>, Option<Arc<dyn CredentialStore>>) {
    let creds = match read_credentials_file(&ctx.config_dir) {
        Err(check) => {
            checks.push(check);
            return (None, None);
        }
        Ok(creds) => creds,
    };
    checks.push(Check::ok(
        "credentials",
        format!("{} in {}", creds.client_id, ctx.config_dir.display()),
    ));
    checks.push(key_permissions(&creds.key_path));
    let (check, key) = key_thumbprint(&creds);
    checks.push(check);
    let identity = key.map(|k| Identity::new(creds.client_id.clone(), k));
    // The checks above name the problem; the token check only needs to know whether the
    // client can load the store as it is.
    let store = match ctx.store() {
        Ok(store) if matches!(store.load_identity().await, Ok(Some(_))) => Some(store),
        _ => None,
    };
    (identity, store)
}

/// The checks of a keyring or Vault store, which guard the key themselves.
async fn store_checks(
    ctx: &Context,
    checks: &mut Vec<Check>,
) -> (Option<Identity>, Option<Arc<dyn CredentialStore>>) {
    let (guard, unreadable_fix) = match ctx.store_kind {
        StoreKind::Vault => (
            "Vault",
            "check VAULT_ADDR and VAULT_TOKEN (or AppRole), that the server is unsealed, and that the token's policy can read and write the KV path",
        ),
        _ => (
            "the keyring",
            "unlock the keyring (a desktop session, or gnome-keyring-daemon --unlock)",
        ),
    };
    let store = match ctx.store() {
        Ok(store) => store,
        Err(e) => {
            let fix = match e {
                CliError::VaultSettings { .. } => "set the variables named above",
                _ => unreadable_fix,
            };
            checks.push(Check::fail(
                "credentials",
                crate::error::chain(&e).join(": "),
                fix,
            ));
            return (None, None);
        }
    };
    match store.load_identity().await {
        Ok(Some(found)) => {
            checks.push(Check::ok(
                "credentials",
                format!("{} in the {}", found.client_id(), store.describe()),
            ));
            checks.push(Check::skip(
                "key permissions",
                format!("{guard} guards the key"),
            ));
            checks.push(Check::skip(
                "key thumbprint",
                format!("{guard} stores no separate thumbprint"),
            ));
            (Some(found), Some(store))
        }
        Ok(None) => {
            checks.push(Check::fail(
                "credentials",
                format!("nothing in the {}", store.describe()),
                REGISTER_FIX,
            ));
            (None, None)
        }
        Err(e) => {
            checks.push(Check::fail(
                "credentials",
                crate::error::chain(&e).join(": "),
                unreadable_fix,
            ));
            (None, None)
        }
    }
}

async fn run_checks(ctx: &Context) -> Vec<Check> {
    let mut checks = Vec::new();
    let (identity, store) = match ctx.store_kind {
        StoreKind::File => file_checks(ctx, &mut checks).await,
        StoreKind::Keyring | StoreKind::Vault => store_checks(ctx, &mut checks).await,
    };
    let (reach, skew) = reachability(&ctx.api_url).await;
    let reachable = reach.status != Status::Fail;
    checks.push(reach);
    checks.push(clock(skew));
    match (&identity, reachable) {
        (Some(identity), true) => {
            let (check, granted) = token(ctx, store, identity).await;
            checks.push(check);
            match granted {
                Some(granted) => checks.push(scopes(&granted)),
                None => checks.push(Check::skip("scopes", "no token to read them from")),
            }
        }
        (None, _) => {
            checks.push(Check::skip("token", "no usable credentials"));
            checks.push(Check::skip("scopes", "no usable credentials"));
        }
        (_, false) => {
            checks.push(Check::skip("token", "the API is unreachable"));
            checks.push(Check::skip("scopes", "the API is unreachable"));
        }
    }
    checks
}

/// Runs every check; fails with [`CliError::DoctorFailed`] when one failed.
pub async fn run(ctx: &Context) -> Result<(), CliError> {
    let checks = run_checks(ctx).await;
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if ctx.json {
        out_json(&serde_json::json!({
            "ok": failed == 0,
            "checks": checks.iter().map(|c| serde_json::json!({
                "name": c.name,
                "status": c.status.word(),
                "detail": c.detail,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        for c in &checks {
            let word = format!("{:<4}", c.status.word());
            let word = match c.status {
                Status::Ok => word.green().to_string(),
                Status::Warn => word.yellow().to_string(),
                Status::Fail => word.red().bold().to_string(),
                Status::Skip => word.dimmed().to_string(),
            };
            // Details quote server answers and stored values: keep controls off the terminal.
            let mut line = format!(
                "{word}  {:<16} {}",
                c.name,
                crate::terminal::safe_line(&c.detail)
            );
            if let Some(fix) = &c.fix {
                line.push_str(&format!(
                    " {} {}",
                    "→ fix:".bold(),
                    crate::terminal::safe_line(fix)
                ));
            }
            out(line)?;
        }
    }
    if failed > 0 {
        return Err(CliError::DoctorFailed { failed });
    }
    Ok(())
}
