//! The owner's console (`/sandbox/console`) in a real browser: headless Chromium driven over
//! WebDriver plays the account owner while the `ralio` command and the SDK wait, as a person
//! trying an agent's approval flow by hand would.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them a
//! test skips saying so, and fails under `CI=true`. One browser runs at a time.
//!
//! `RALIO_CONSOLE_SCREENSHOT=path.png` makes the first test save what the owner sees (the
//! README's picture: `just console-screenshot`).

#[path = "../common/mod.rs"]
mod common;
mod webdriver;

use std::sync::Arc;

use common::{Env, Running, pending_payment};
use ralio::IntentStage;
use ralio_sandbox::{Sandbox, TicketSpec};
use serde_json::json;
use webdriver::Browser;

/// One Chromium at a time: the tests of this file would otherwise start several at once.
static ONE_BROWSER: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The SDK on the credentials `ralio register` stored (its own refresh-token slot).
async fn sdk_client(env: &Env) -> ralio::RalioClient {
    let store: Arc<dyn ralio::store::CredentialStore> =
        Arc::new(ralio::store::FileStore::new(env.config_dir()));
    ralio::RalioClient::builder()
        .base_url(env.sandbox.base_url())
        .store(store)
        .build()
        .await
        .unwrap()
}

fn card(id: &str) -> String {
    format!("li.intent[data-intent-id=\"{id}\"]")
}

/// The console's own page loaded nothing from elsewhere and broke none of its rules.
async fn assert_self_contained(browser: &Browser, origin: &str) {
    let loaded = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .concat([location.href]);",
            json!([]),
        )
        .await;
    for url in loaded.as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(&format!("{origin}/")) || url.starts_with("data:"),
            "the console loaded {url} (from outside {origin})"
        );
    }
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_in_the_browser_while_the_cli_and_the_sdk_wait() {
    let _one = ONE_BROWSER.acquire().await.unwrap();
    let Some(browser) = Browser::start(&[]).await else {
        return;
    };
    let env = Env::new().await;
    env.register().await;
    let console = env.sandbox.console_url().unwrap();
    // Some history first: a payment under the threshold goes through by itself.
    let run = env.run(&["chat", "Pay £20 to Alice for lunch"]).await;
    assert!(run.stdout.contains("Done"), "{}", run.transcript());
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;

    // The command waits, and says where the owner decides.
    let mut cli_wait = Running::spawn(&env, &env.config_dir(), &["intents", "wait", &id], "");
    let hint = cli_wait.until("sandbox's console").await;
    assert!(hint.ends_with(&console), "{hint}");
    // So does a program on the SDK.
    let client = sdk_client(&env).await;
    let waited_id = id.clone();
    let sdk_wait = tokio::spawn(async move {
        client
            .payment_intents()
            .wait_for_outcome(waited_id)
            .timeout(std::time::Duration::from_secs(600))
            .await
    });

    browser.goto(&console).await;
    assert_eq!(browser.title().await, "Ralio sandbox console");
    browser.wait_for_text("#connection", "live").await;
    let card = browser.wait_for(&card(&id)).await;
    let text = browser.text(&card).await;
    for expected in [
        "GBP 250.00",
        "Erin (GB",
        "the June rent",
        "Pay £250 to Erin for the June rent",
        "Sandbox Payments Agent",
        &id,
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not in the card:\n{text}"
        );
    }
    let account = browser.text(&browser.wait_for("#account").await).await;
    for expected in ["GBP 9,980.00", "GBP 1,000.00", "GBP 100.00"] {
        assert!(
            account.contains(expected),
            "{expected:?} not in:\n{account}"
        );
    }
    browser.wait_for_text("#recent-transactions", "Alice").await;
    assert_self_contained(&browser, env.sandbox.base_url()).await;
    if let Some(path) = std::env::var_os("RALIO_CONSOLE_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await).unwrap();
    }

    let approve = browser
        .wait_for_text(&format!("{} button.approve", self::card(&id)), "Approve")
        .await;
    browser.click(&approve).await;

    // Both waits end with the payment made.
    let outcome = sdk_wait.await.unwrap().unwrap();
    assert_eq!(outcome.stage, IntentStage::Executed);
    let (code, stdout, stderr) = cli_wait.finish().await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{id} approved and executed")),
        "{stdout}"
    );
    // The page follows: the card leaves, the balance drops, the history shows the payment.
    browser.wait_for_none(&self::card(&id)).await;
    browser
        .wait_for_text("#notice", &format!("Approved {id}"))
        .await;
    browser.wait_for_text("#account", "GBP 9,730.00").await;
    browser
        .wait_for_text(
            &format!("#recent-intents tr[data-intent-id=\"{id}\"]"),
            "approved_by_user",
        )
        .await;
    browser.wait_for_text("#recent-transactions", "Erin").await;
    assert_self_contained(&browser, env.sandbox.base_url()).await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_with_a_reason_in_the_browser_shows_in_intents_show() {
    let _one = ONE_BROWSER.acquire().await.unwrap();
    let Some(browser) = Browser::start(&[]).await else {
        return;
    };
    let env = Env::new().await;
    env.register().await;
    let console = env.sandbox.console_url().unwrap();
    let mut chat = Running::spawn(
        &env,
        &env.config_dir(),
        &["chat", "--wait", "Pay £400 to Mallory for consulting"],
        "",
    );
    chat.until("sandbox's console").await;
    let id = env.sandbox.pending_intent_ids().first().unwrap().clone();

    browser.goto(&console).await;
    let reject = browser
        .wait_for_text(&format!("{} button.reject", card(&id)), "Reject")
        .await;
    browser.click(&reject).await;
    let what = browser.wait_for_text("#reject-what", "GBP 400.00").await;
    assert!(browser.text(&what).await.contains("Mallory"));
    let reason = browser.wait_for("#reject-reason").await;
    browser
        .type_into(&reason, "Not a supplier we use; ask me first")
        .await;
    browser
        .click(&browser.wait_for("#reject-confirm").await)
        .await;
    browser.wait_for_none(&card(&id)).await;
    browser
        .wait_for_text(
            &format!("#recent-intents tr[data-intent-id=\"{id}\"]"),
            "Not a supplier we use; ask me first",
        )
        .await;

    // `ralio chat --wait` hears the decision (exit 4); `ralio intents show` says why.
    let (code, stdout, stderr) = chat.finish().await;
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(
        stdout.contains("rejected: Not a supplier we use; ask me first"),
        "{stdout}"
    );
    let show = env.run(&["intents", "show", &id]).await;
    assert_eq!(show.code, 0, "{}", show.transcript());
    for expected in [
        "approval      rejected_by_user",
        "Not a supplier we use; ask me first",
    ] {
        assert!(show.stdout.contains(expected), "{}", show.transcript());
    }
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_payee_name_is_shown_as_text() {
    let _one = ONE_BROWSER.acquire().await.unwrap();
    let Some(browser) = Browser::start(&[]).await else {
        return;
    };
    let env = Env::new().await;
    env.register().await;
    let payee = r#"<img src=x onerror="document.title='owned'">"#;
    let reference = "<script>document.title='owned'</script>";
    let id = pending_payment(&env, &format!("Pay £250 to {payee} for {reference}")).await;

    browser.goto(&env.sandbox.console_url().unwrap()).await;
    browser.wait_for_text("#connection", "live").await;
    let shown = browser
        .wait_for_text(&format!("{} .payee", card(&id)), payee)
        .await;
    assert!(browser.text(&shown).await.starts_with(payee));
    let shown = browser.wait_for(&format!("{} .reference", card(&id))).await;
    assert_eq!(browser.text(&shown).await, reference);
    // The reject dialog names the payee as text too.
    browser
        .click(
            &browser
                .wait_for(&format!("{} button.reject", card(&id)))
                .await,
        )
        .await;
    browser.wait_for_text("#reject-what", payee).await;
    browser
        .click(&browser.wait_for("#reject-cancel").await)
        .await;
    let parsed = browser
        .execute(
            "return document.querySelectorAll('#live img, #live script, #reject-what *').length;",
            json!([]),
        )
        .await;
    assert_eq!(parsed, json!(0), "the payee's markup became elements");
    assert_eq!(browser.title().await, "Ralio sandbox console");
    assert_self_contained(&browser, env.sandbox.base_url()).await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_host_gets_no_console_and_a_foreign_page_cannot_approve() {
    let _one = ONE_BROWSER.acquire().await.unwrap();
    // `rebind.test` resolves to 127.0.0.1, as an attacker's name does after DNS rebinding.
    let Some(browser) = Browser::start(&["rebind.test"]).await else {
        return;
    };
    let env = Env::new().await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;
    let port = env.sandbox.local_addr().port();

    // The console answers only to its own name.
    browser
        .goto(&format!("http://rebind.test:{port}/sandbox/console"))
        .await;
    let page = browser.body_text().await;
    assert!(page.contains("DNS rebinding"), "{page}");
    assert!(!page.contains(&id), "{page}");

    // A page of another origin that knows the intent's id tries to approve it: a no-cors
    // fetch and a JSON fetch (its preflight is not granted), then a form post.
    let approve = format!(
        "{}/sandbox/payment-intents/{id}/approve",
        env.sandbox.base_url()
    );
    let tried = browser
        .execute_async(
            "const [url, done] = [arguments[0], arguments[arguments.length - 1]];
             const out = {};
             fetch(url, { method: 'POST', mode: 'no-cors' })
               .then(() => { out.no_cors = 'sent'; }, e => { out.no_cors = 'failed: ' + e; })
               .then(() => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }))
               .then(r => { out.json = 'answered ' + r.status; }, e => { out.json = 'failed: ' + e; })
               .then(() => done(out));",
            json!([approve]),
        )
        .await;
    assert!(
        tried["json"].as_str().unwrap().starts_with("failed"),
        "the preflight was granted: {tried}"
    );
    assert_eq!(
        env.sandbox.pending_intent_ids(),
        std::slice::from_ref(&id),
        "a fetch from a foreign page decided the payment ({tried})"
    );
    browser
        .execute(
            "const f = document.createElement('form');
             f.method = 'POST'; f.action = arguments[0];
             document.body.appendChild(f); f.submit();",
            json!([approve]),
        )
        .await;
    browser
        .wait_for_text("body", "refuses writes from web pages of other origins")
        .await;
    assert_eq!(
        env.sandbox.pending_intent_ids(),
        std::slice::from_ref(&id),
        "a form post from a foreign page decided the payment"
    );
    let show = env.run(&["intents", "show", &id]).await;
    assert!(
        show.stdout.contains("approval      pending_approval"),
        "{}",
        show.transcript()
    );

    // On its own address the same browser gets the console, and its buttons work.
    browser.goto(&env.sandbox.console_url().unwrap()).await;
    browser.wait_for(&card(&id)).await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_and_tickets_from_the_browser() {
    let _one = ONE_BROWSER.acquire().await.unwrap();
    let Some(browser) = Browser::start(&[]).await else {
        return;
    };
    let env = Env::with(
        Sandbox::builder()
            .seed(3)
            .admin_api(true)
            .legacy_registration(true),
    )
    .await;
    browser.goto(&env.sandbox.console_url().unwrap()).await;
    browser
        .wait_for_text("#pending-registrations", "Nothing waits for you")
        .await;

    // A ticket minted in the browser, shown once with the line that uses it.
    browser.click(&browser.wait_for("#mint-ticket").await).await;
    browser
        .wait_for_text("#register-line", "ralio register")
        .await;
    let ticket = browser
        .execute(
            "return document.getElementById('ticket-value').value;",
            json!([]),
        )
        .await;
    let ticket = ticket.as_str().unwrap().to_owned();
    assert!(ticket.starts_with("ralio-reg-"), "{ticket}");
    let line = browser
        .text(&browser.wait_for("#register-line").await)
        .await;
    assert_eq!(
        line,
        format!(
            "RALIO_API_URL={} RALIO_REGISTRATION_TICKET={ticket} ralio register",
            env.sandbox.base_url()
        )
    );

    // Copy puts it on the clipboard (or, where the browser refuses, leaves it selected).
    browser.click(&browser.wait_for("#copy-ticket").await).await;
    let notice = browser.wait_for_text("#notice", "ticket").await;
    let notice = browser.text(&notice).await;
    let selected = browser
        .execute("return String(window.getSelection());", json!([]))
        .await;
    assert!(
        notice.contains("Copied the ticket") || selected == json!(ticket),
        "{notice} / {selected}"
    );

    // The host registers with it and waits; the owner approves in the browser.
    let mut register = Running::spawn(
        &env,
        &env.config_dir(),
        &["register", "--ticket-stdin"],
        &ticket,
    );
    register.until("waiting for the owner to approve key").await;
    // The command says where the owner decides.
    let hint = register.until("sandbox's console").await;
    assert!(
        hint.ends_with(&env.sandbox.console_url().unwrap()),
        "{hint}"
    );
    let fingerprint = env.sandbox.pending_binding_fingerprints()[0].clone();
    let approve = browser
        .wait_for(&format!(
            "li.registration[data-fingerprint=\"{fingerprint}\"] button.approve"
        ))
        .await;
    browser.click(&approve).await;
    let (code, stdout, stderr) = register.finish().await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    browser
        .wait_for_text("#notice", "Approved the registration")
        .await;
    let whoami = env.run(&["whoami"]).await;
    assert_eq!(whoami.code, 0, "{}", whoami.transcript());

    // Another host is turned away.
    let other = tempfile::tempdir().unwrap();
    let ticket = env.sandbox.mint_ticket(TicketSpec::default());
    let mut register = Running::spawn(&env, other.path(), &["register", "--ticket-stdin"], &ticket);
    register.until("waiting for the owner to approve key").await;
    let reject = browser.wait_for("li.registration button.reject").await;
    browser.click(&reject).await;
    let (code, stdout, stderr) = register.finish().await;
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stderr.contains("reject"), "{stderr}");
    browser.wait_for_none("li.registration").await;
    browser.quit().await;
}
