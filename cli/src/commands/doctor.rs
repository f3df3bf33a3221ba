//! `ralio doctor`: one line per check, ok / warn / fail, with the fix.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use owo_colors::OwoColorize as _;
use ralio::Scope;
use ralio::auth::AuthError;
use ralio::keys::PrivateKey;
use ralio::store::{
    CredentialStore, FileLocation, Identity, Presence, StoreKind as ReportKind, StoreLocation,
    StoreProblem, StoreReport,
};

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

/// What the token check runs with: the store as every command uses it, or (when the store
/// refuses its own contents, for example a key file other users can read) the key file
/// directly, so the remaining checks still say something.
enum Credentials {
    Store(Arc<dyn CredentialStore>),
    KeyFile(Identity),
}

/// Whether `problem` is about the file at `path`.
fn is_about(problem: &StoreProblem, path: &Path) -> bool {
    let shown = path.display().to_string();
    match problem {
        StoreProblem::InsecurePermissions { path: p, .. } => p == path,
        StoreProblem::Corrupt { what, .. } | StoreProblem::ThumbprintMismatch { what, .. } => {
            *what == shown
        }
        StoreProblem::Io { action, .. } => action.ends_with(&shown),
        StoreProblem::Missing { what } => what.ends_with(&shown),
        _ => false,
    }
}

/// The `credentials` check of the file store, from its report.
fn file_credentials(report: &StoreReport, loc: &FileLocation) -> Check {
    const NAME: &str = "credentials";
    let path = &loc.credentials_file;
    let problem = report.problems.iter().find(|p| is_about(p, path));
    match (problem, &report.client_id) {
        (Some(p @ StoreProblem::Io { .. }), _) => Check::fail(
            NAME,
            p.to_string(),
            format!(
                "make it readable by this user: chown $USER {}",
                path.display()
            ),
        ),
        (Some(p), _) => Check::fail(
            NAME,
            p.to_string(),
            format!("restore it from a backup, or {REGISTER_FORCE_FIX}"),
        ),
        (None, Some(client_id)) => Check::ok(NAME, format!("{client_id} in {}", loc.dir.display())),
        (None, None) => Check::fail(
            NAME,
            format!("no {}", path.display()),
            format!(
                "{REGISTER_FIX}, or point --config-dir / RALIO_CONFIG_DIR at the right directory"
            ),
        ),
    }
}

/// The `key permissions` check of the file store, from its report.
fn key_permissions(report: &StoreReport, key_file: &Path, mode: Option<u32>) -> Check {
    const NAME: &str = "key permissions";
    let problem = report.problems.iter().find(|p| {
        is_about(p, key_file)
            && matches!(
                p,
                StoreProblem::Missing { .. }
                    | StoreProblem::InsecurePermissions { .. }
                    | StoreProblem::Io { .. }
            )
    });
    match (problem, mode) {
        (Some(StoreProblem::Missing { .. }), _) => Check::fail(
            NAME,
            format!("the key file {} is missing", key_file.display()),
            format!("restore the key file from a backup, or {REGISTER_FORCE_FIX}"),
        ),
        (Some(StoreProblem::InsecurePermissions { mode, .. }), _) => Check::fail(
            NAME,
            format!(
                "{} is mode {mode:04o}: other users can read the private key",
                key_file.display()
            ),
            format!(
                "chmod 600 {}; if others may already have copied it, revoke the binding and register again",
                key_file.display()
            ),
        ),
        (Some(p), _) => Check::fail(
            NAME,
            p.to_string(),
            "check the ownership of the credential directory",
        ),
        (None, None) => Check::skip(NAME, "file modes are not checked on this platform"),
        (None, Some(mode)) => Check::ok(NAME, format!("{} is mode {mode:04o}", key_file.display())),
    }
}

/// The `key thumbprint` check of the file store, from its report.
fn key_thumbprint(report: &StoreReport, key_file: &Path) -> Check {
    const NAME: &str = "key thumbprint";
    let Some(key) = &report.key else {
        let detail = match report.problems.iter().find(|p| is_about(p, key_file)) {
            Some(StoreProblem::Missing { .. }) | None => {
                format!("the key file {} is missing", key_file.display())
            }
            Some(p) => p.to_string(),
        };
        return Check::fail(
            NAME,
            detail,
            format!("restore the key file from a backup, or {REGISTER_FORCE_FIX}"),
        );
    };
    match &key.recorded_thumbprint {
        Some(jkt) if key.mismatched() => Check::fail(
            NAME,
            format!(
                "the key file holds key {} but the binding was registered with key {jkt}",
                key.thumbprint
            ),
            format!(
                "put the registered key back at {}, or {REGISTER_FORCE_FIX} (and revoke the old binding)",
                key_file.display()
            ),
        ),
        Some(jkt) => Check::ok(NAME, format!("the key matches the stored thumbprint {jkt}")),
        None => Check::warn(
            NAME,
            format!(
                "credentials.json has no key_jkt to compare with key {}",
                key.thumbprint
            ),
            "nothing to do if the token check passes; registering again records it",
        ),
    }
}

/// A `store` check for a problem no other check covers.
fn other_problem(problem: &StoreProblem) -> Check {
    let fix = match problem {
        StoreProblem::InsecurePermissions { path, .. } => format!("chmod 600 {}", path.display()),
        StoreProblem::Corrupt { .. } | StoreProblem::Missing { .. } => {
            "remove the entry named, or register again".to_owned()
        }
        _ => "fix the store as the message says".to_owned(),
    };
    Check::fail("store", problem.to_string(), fix)
}

/// A `staged keys` check, only when a keyring or Vault store holds keys that a registration
/// staged and no saved identity uses (the file store's `keys/` also keeps earlier keys, so
/// its list is no sign of trouble).
fn staged_keys(report: &StoreReport) -> Option<Check> {
    let staged = report.staged_keys.as_ref().filter(|s| !s.is_empty())?;
    if report.kind == ReportKind::File {
        return None;
    }
    let r#where = match &report.location {
        StoreLocation::Vault { mount, path, .. } => {
            format!("under {mount}/data/{path}/staged-keys/")
        }
        _ => format!("in the {}", report.description),
    };
    Some(Check::warn(
        "staged keys",
        format!(
            "{} key(s) staged by a registration that did not finish: {} {where}",
            staged.len(),
            staged.join(", ")
        ),
        "if `ralio register` said the binding is active but could not be saved, save that identity with the staged key (see its message); otherwise delete the staged entries",
    ))
}

/// The store's report as JSON for `--json`: locations, presence, thumbprints, problems; no
/// secret is in a report.
fn report_json(report: &StoreReport) -> serde_json::Value {
    use serde_json::json;
    let presence = |p: Presence| match p {
        Presence::Present => json!(true),
        Presence::Absent => json!(false),
        _ => serde_json::Value::Null,
    };
    let location = match &report.location {
        StoreLocation::File(loc) => json!({
            "dir": loc.dir,
            "credentials_file": loc.credentials_file,
            "key_file": loc.key_file,
            "key_file_mode": loc.key_file_mode.map(|m| format!("{m:04o}")),
            "refresh_token_file": loc.refresh_token_file,
        }),
        StoreLocation::Keyring {
            backend,
            service,
            client_id_account,
            key_account,
            refresh_token_account,
        } => json!({
            "backend": backend,
            "service": service,
            "client_id_account": client_id_account,
            "key_account": key_account,
            "refresh_token_account": refresh_token_account,
        }),
        StoreLocation::Vault {
            addr,
            namespace,
            mount,
            path,
            identity_secret,
            refresh_token_secret,
        } => json!({
            "addr": addr,
            "namespace": namespace,
            "mount": mount,
            "path": path,
            "identity_secret": identity_secret,
            "refresh_token_secret": refresh_token_secret,
        }),
        StoreLocation::Env {
            variables,
            set,
            key_file,
        } => json!({
            "variables": variables,
            "set": set,
            "key_file": key_file,
        }),
        _ => serde_json::Value::Null,
    };
    json!({
        "kind": report.kind.name(),
        "description": report.description,
        "location": location,
        "identity": presence(report.identity),
        "client_id": report.client_id,
        "key": report.key.as_ref().map(|k| json!({
            "algorithm": k.algorithm,
            "thumbprint": k.thumbprint,
            "recorded_thumbprint": k.recorded_thumbprint,
            "remote": k.remote,
            "location": k.location.as_ref().map(|l| json!({
                "reference": l.reference.to_string(),
                "kind": l.reference.kind(),
                "description": l.description,
                "extractable": l.extractable,
            })),
        })),
        "refresh_token": presence(report.refresh_token),
        "issuer": report.issuer,
        "staged_keys": report.staged_keys,
        "problems": report.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
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

/// Mints a token through the client every command uses (its auth layer and, with the store,
/// its refresh-token persistence); returns the check and the granted scopes.
async fn token(ctx: &Context, credentials: Credentials) -> (Check, Option<Vec<Scope>>) {
    const NAME: &str = "token";
    let (builder, note) = match credentials {
        Credentials::Store(store) => (ctx.client_builder().store(store), ""),
        Credentials::KeyFile(identity) => (
            ctx.client_builder().identity(identity),
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

/// The checks of the file store, from its report: the files one by one, then whether the
/// client can load the store as it is.
async fn file_checks(
    store: Arc<dyn CredentialStore>,
    report: &StoreReport,
    checks: &mut Vec<Check>,
) -> Option<Credentials> {
    let StoreLocation::File(loc) = &report.location else {
        return store_checks(store, report, "the file store", checks).await;
    };
    let credentials = file_credentials(report, loc);
    let failed = credentials.status == Status::Fail;
    checks.push(credentials);
    let key_file = match (&loc.key_file, failed) {
        (Some(key_file), false) => key_file,
        // `key_ref`: a key that stays in its hardware.
        (None, false) if report.client_id.is_some() => {
            return referenced_key_checks(store, report, checks).await;
        }
        _ => return None,
    };
    checks.push(key_permissions(report, key_file, loc.key_file_mode));
    checks.push(key_thumbprint(report, key_file));
    // Anything else the store found (a refresh-token file other users can read, ...).
    for problem in report
        .problems
        .iter()
        .filter(|p| !is_about(p, &loc.credentials_file) && !is_about(p, key_file))
    {
        checks.push(other_problem(problem));
    }
    // The checks above name the problems; the token check only needs to know whether the
    // client can load the store as it is, else it tries the key file the store named.
    if matches!(store.load_identity().await, Ok(Some(_))) {
        return Some(Credentials::Store(store));
    }
    let client_id = report.client_id.clone()?;
    report.key.as_ref()?;
    let key = PrivateKey::from_pem_file(key_file).ok()?;
    Some(Credentials::KeyFile(Identity::new(client_id, key)))
}

/// The `key location` check of a key that stays in its hardware: where it is (the token and
/// the key, or the KMS key) and whether it can be read out. Never the PIN.
fn key_location(report: &StoreReport) -> Option<Check> {
    const NAME: &str = "key location";
    let location = report.key.as_ref()?.location.as_ref()?;
    // The description names the kind ("PKCS#11 token …", "AWS KMS key …").
    let detail = location.description.clone();
    Some(match location.extractable {
        Some(true) => Check::fail(
            NAME,
            format!(
                "{detail}: the token lets the private key be read out (CKA_EXTRACTABLE is true)"
            ),
            "register a key generated in the token (`ralio register --force --key 'pkcs11:…;object=<new label>'` makes it sensitive and not extractable)",
        ),
        Some(false) => Check::ok(NAME, format!("{detail}; not extractable")),
        None => Check::ok(NAME, detail),
    })
}

/// The file store's checks for a key reference: the key opened (or why not), where it lives,
/// and its thumbprint.
async fn referenced_key_checks(
    store: Arc<dyn CredentialStore>,
    report: &StoreReport,
    checks: &mut Vec<Check>,
) -> Option<Credentials> {
    let Some(key) = &report.key else {
        for problem in &report.problems {
            let mut check = other_problem(problem);
            check.name = "key location";
            checks.push(check);
        }
        return None;
    };
    checks.extend(key_location(report));
    checks.push(match &key.recorded_thumbprint {
        Some(jkt) => Check::ok(
            "key thumbprint",
            format!("the key matches the stored thumbprint {jkt}"),
        ),
        None => Check::skip("key thumbprint", "credentials.json has no key_jkt"),
    });
    for problem in &report.problems {
        checks.push(other_problem(problem));
    }
    matches!(store.load_identity().await, Ok(Some(_))).then_some(Credentials::Store(store))
}

/// The checks of a keyring or Vault store, which guard the key themselves, from its report.
async fn store_checks(
    store: Arc<dyn CredentialStore>,
    report: &StoreReport,
    guard: &str,
    checks: &mut Vec<Check>,
) -> Option<Credentials> {
    let unreadable_fix = match report.kind {
        ReportKind::Vault => {
            "check VAULT_ADDR and VAULT_TOKEN (or AppRole), that the server is unsealed, and that the token's policy can read and write the KV path"
        }
        ReportKind::Keyring => {
            "unlock the keyring (a desktop session, or gnome-keyring-daemon --unlock)"
        }
        _ => "fix the store named above",
    };
    let problems = || {
        report
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (Some(client_id), Some(key)) = (&report.client_id, &report.key) else {
        if report.identity == Presence::Absent && report.problems.is_empty() {
            checks.push(Check::fail(
                "credentials",
                format!("nothing in the {}", report.description),
                REGISTER_FIX,
            ));
        } else {
            checks.push(Check::fail(
                "credentials",
                format!("{}: {}", report.description, problems()),
                unreadable_fix,
            ));
        }
        return None;
    };
    checks.push(Check::ok(
        "credentials",
        format!("{client_id} in the {}", report.description),
    ));
    match key_location(report) {
        Some(check) => checks.push(check),
        None => checks.push(Check::skip(
            "key permissions",
            format!("{guard} guards the key"),
        )),
    }
    checks.push(match &key.recorded_thumbprint {
        Some(jkt) if key.mismatched() => Check::fail(
            "key thumbprint",
            format!(
                "the stored key is {} but the identity records key {jkt}",
                key.thumbprint
            ),
            format!("{REGISTER_FORCE_FIX} (and revoke the old binding)"),
        ),
        Some(jkt) => Check::ok(
            "key thumbprint",
            format!("the key matches the stored thumbprint {jkt}"),
        ),
        None => Check::skip(
            "key thumbprint",
            format!(
                "{guard} stores no separate thumbprint; the key is {} ({})",
                key.thumbprint, key.algorithm
            ),
        ),
    });
    if let Some(check) = staged_keys(report) {
        checks.push(check);
    }
    for problem in report
        .problems
        .iter()
        .filter(|p| !matches!(p, StoreProblem::ThumbprintMismatch { .. }))
    {
        checks.push(other_problem(problem));
    }
    Some(Credentials::Store(store))
}

async fn run_checks(ctx: &Context) -> (Vec<Check>, Option<StoreReport>) {
    let mut checks = Vec::new();
    let (credentials, report) = match ctx.store() {
        Err(e) => {
            let fix = match (&e, ctx.store_kind) {
                (CliError::VaultSettings { .. }, _) => "set the variables named above",
                (_, StoreKind::Vault) => {
                    "check VAULT_ADDR and VAULT_TOKEN (or AppRole), that the server is unsealed, and that the token's policy can read and write the KV path"
                }
                (_, StoreKind::Keyring) => {
                    "unlock the keyring (a desktop session, or gnome-keyring-daemon --unlock)"
                }
                (_, StoreKind::File) => "check --config-dir / RALIO_CONFIG_DIR",
            };
            checks.push(Check::fail(
                "credentials",
                crate::error::chain(&e).join(": "),
                fix,
            ));
            (None, None)
        }
        Ok(store) => {
            let report = store.report().await;
            let credentials = match ctx.store_kind {
                StoreKind::File => file_checks(store, &report, &mut checks).await,
                StoreKind::Vault => store_checks(store, &report, "Vault", &mut checks).await,
                StoreKind::Keyring => {
                    store_checks(store, &report, "the keyring", &mut checks).await
                }
            };
            (credentials, Some(report))
        }
    };
    let (reach, skew) = reachability(&ctx.api_url).await;
    let reachable = reach.status != Status::Fail;
    checks.push(reach);
    checks.push(clock(skew));
    match (credentials, reachable) {
        (Some(credentials), true) => {
            let (check, granted) = token(ctx, credentials).await;
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
    (checks, report)
}

/// Runs every check; fails with [`CliError::DoctorFailed`] when one failed.
pub async fn run(ctx: &Context) -> Result<(), CliError> {
    let (checks, report) = run_checks(ctx).await;
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
            "store": report.as_ref().map(report_json),
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
