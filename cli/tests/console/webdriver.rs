//! Just enough of a W3C WebDriver client to drive headless Chromium through `chromedriver`
//! (Debian's `chromium` and `chromium-driver`), over the reqwest the tests already build: the
//! dozen commands these tests use, no new crates to compile.
//!
//! Chromium runs with a fresh profile and with the switches a closed network needs (no
//! background networking, component updates, sync or QUIC). Every host name but the ones the
//! test maps resolves to nothing, so a page that tried to load anything from outside would
//! fail loudly instead of waiting on the network.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for something to show on the page may take before the test fails. A bound
/// against a hang, never an assertion about speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The first of `names` found on `PATH` (or the path in the environment variable `var`).
fn locate(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Headless Chromium under chromedriver, with one session. Dropping it ends both (the whole
/// process group, so not even a panicking test leaves a browser behind).
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

/// An element on the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts Chromium; `None` when it or chromedriver is not installed (then the test skips,
    /// saying how to install them). Under `CI=true` a missing browser fails the test instead.
    /// `host_map` names hosts that resolve to 127.0.0.1 (a rebinding attacker's name).
    pub async fn start(host_map: &[&str]) -> Option<Browser> {
        let chromium = locate(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let driver = locate("CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let message = "headless Chromium and chromedriver are needed for the console's \
                           browser tests: apt-get install chromium chromium-driver (or set \
                           CHROMIUM and CHROMEDRIVER to their paths)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("skipping: {message}");
            return None;
        };
        // A free port for the driver (it cannot report one it chose itself).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        let mut cmd = std::process::Command::new(&driver);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            http,
            session: base.clone(),
            driver,
            _profile: profile,
        };
        browser.wait_until_ready(&base).await;

        // Everything that is not mapped resolves to nothing: the page can load nothing from
        // outside, and a test notices if it tries.
        let mut rules: Vec<String> = host_map
            .iter()
            .map(|h| format!("MAP {h} 127.0.0.1"))
            .collect();
        rules.push("MAP * ~NOTFOUND".to_owned());
        rules.push("EXCLUDE 127.0.0.1".to_owned());
        rules.push("EXCLUDE localhost".to_owned());
        let user_data = browser._profile.path().join("profile");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1500".to_owned(),
            format!("--user-data-dir={}", user_data.display()),
            format!("--host-resolver-rules={}", rules.join(", ")),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let value = browser
            .command(reqwest::Method::POST, "/session", caps)
            .await;
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver gave no session: {value}"));
        browser.session = format!("{base}/session/{id}");
        Some(browser)
    }

    async fn wait_until_ready(&mut self, base: &str) {
        let started = std::time::Instant::now();
        loop {
            if let Ok(res) = self.http.get(format!("{base}/status")).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited: {status}");
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One WebDriver command; panics with the driver's error.
    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        match self.try_command(method.clone(), path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    async fn try_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Value> {
        let url = format!("{}{path}", self.session);
        let mut req = self.http.request(method.clone(), &url);
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            req = req.json(&body);
        }
        let res = req.send().await.map_err(|e| json!(e.to_string()))?;
        let ok = res.status().is_success();
        let v: Value = res.json().await.map_err(|e| json!(e.to_string()))?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// The first element `css` matches now, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        self.try_command(
            reqwest::Method::POST,
            "/element",
            json!({ "using": "css selector", "value": css }),
        )
        .await
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(|id| Element(id.to_owned())))
    }

    /// Every element `css` matches now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .command(
                reqwest::Method::POST,
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `css` matches an element whose text contains `needle`, and returns it.
    /// The page updates itself (the live part is replaced), so this looks again each time.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> Element {
        let started = std::time::Instant::now();
        loop {
            for el in self.find_all(css).await {
                if let Ok(text) = self.try_text(&el).await
                    && text.contains(needle)
                {
                    return el;
                }
            }
            if started.elapsed() > PATIENCE {
                panic!(
                    "no {css:?} with {needle:?} on the page; it shows:\n{}",
                    self.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches an element.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_text(css, "").await
    }

    /// Waits until no element matches `css`.
    pub async fn wait_for_none(&self, css: &str) {
        let started = std::time::Instant::now();
        while self.find(css).await.is_some() {
            if started.elapsed() > PATIENCE {
                panic!("{css:?} is still on the page:\n{}", self.body_text().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_text(&self, el: &Element) -> Result<String, Value> {
        let v = self
            .try_command(
                reqwest::Method::GET,
                &format!("/element/{}/text", el.0),
                Value::Null,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The element's rendered text.
    pub async fn text(&self, el: &Element) -> String {
        self.try_text(el)
            .await
            .unwrap_or_else(|e| panic!("reading an element's text: {e}"))
    }

    /// The whole page's rendered text.
    pub async fn body_text(&self) -> String {
        match self.find("body").await {
            Some(body) => self.try_text(&body).await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// Clicks the element as a user would (it must be visible and enabled).
    pub async fn click(&self, el: &Element) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.0),
            json!({}),
        )
        .await;
    }

    /// Types `text` into the element.
    pub async fn type_into(&self, el: &Element, text: &str) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its
    /// value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Runs `script` in the page; it ends by calling the last argument with its result.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.command(reqwest::Method::GET, "/title", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// What the page wrote to the browser's console, severe entries only (errors, refused
    /// loads, Content-Security-Policy violations).
    pub async fn console_errors(&self) -> Vec<String> {
        let v = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                json!({ "type": "browser" }),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap()
    }

    /// Ends the session (Chromium quits), then the driver.
    pub async fn quit(self) {
        let _ = self
            .try_command(reqwest::Method::DELETE, "", Value::Null)
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver leads its own process group, which Chromium's processes join.
        let pgid = self.driver.id();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}
