//! Finding the owner's console of a sandbox, to name it while a payment waits for the owner.

use std::time::Duration;

/// The console's path on a sandbox (`ralio-sandbox`'s admin API).
const CONSOLE_PATH: &str = "/sandbox/console";

/// How long the look at the console may take: it is on this machine, and only a hint.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The URL of the sandbox's console when `api_url` is a sandbox on this machine that serves
/// one; `None` otherwise. Only a loopback API is asked (one GET): a real Ralio API never gets
/// a request it has no use for.
pub async fn sandbox_console(api_url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(api_url).ok()?;
    if !ralio::config::is_loopback(&parsed) {
        return None;
    }
    let console = format!("{}{CONSOLE_PATH}", api_url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()?;
    let res = http.get(&console).send().await.ok()?;
    let html = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    (res.status().is_success() && html).then_some(console)
}
