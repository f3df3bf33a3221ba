//! Finding the owner's console of a sandbox, to name it while a payment waits for the owner.

use std::time::Duration;

/// The console's path on a sandbox (`ralio-sandbox`'s admin API).
const CONSOLE_PATH: &str = "/sandbox/console";

/// How long the look at the console may take: it is on this machine, and only a hint.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to tell the person at the terminal while something waits for the owner, when the API
/// is a sandbox on this machine: they play the owner, in its console. `None` with `--json` (the
/// output is for a program) or when there is no such console.
pub async fn owner_hint(ctx: &crate::context::Context) -> Option<String> {
    if ctx.json {
        return None;
    }
    let url = sandbox_console(&ctx.api_url).await?;
    Some(format!(
        "as the owner, approve or reject it in the sandbox's console: {url}"
    ))
}

/// The URL of the sandbox's console when `api_url` is a sandbox on this machine that serves
/// one; `None` otherwise. Only a loopback API is asked (one GET): a real Ralio API never gets
/// a request it has no use for.
async fn sandbox_console(api_url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(api_url).ok()?;
    if !is_loopback(&parsed) {
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

/// `localhost`, `127.0.0.0/8` or `::1`: the API is on this machine.
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_this_machine_is_asked() {
        for (url, local) in [
            ("http://127.0.0.1:8080", true),
            ("http://127.9.9.9", true),
            ("http://LOCALHOST:1", true),
            ("http://[::1]:8080", true),
            ("https://api.ralio.example", false),
            ("http://10.0.0.1:8080", false),
            ("http://localhost.example", false),
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            assert_eq!(is_loopback(&parsed), local, "{url}");
        }
    }
}
