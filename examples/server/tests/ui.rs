//! The web UI (issue 23) in a real headless Chromium, driven over WebDriver (fantoccini and
//! Debian's chromedriver, which `scripts/services.sh` installs as the service `chromium`),
//! against the real `vamp-server --demo` binary: every page loads without a console error
//! (screenshots of each at 1280×800 go to `$VAMP_UI_SCREENSHOTS`, by default
//! `<target>/tmp/ui-screenshots`); a weight slider moves the traffic measured through the
//! router; an editor error shows at its line; a rollout's promote button promotes it; with a
//! token the UI asks for it and shows no data. Without a browser, the size and caching of
//! the first load are checked over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use vamp_core::testkit::child::Running;
use vamp_core::testkit::services::{service, service_binary};
use vamp_core::testkit::{eventually, eventually_within, free_port};

mod common;

/// A `vamp-server --demo` of its own, in a fresh data directory.
struct Demo {
    api: u16,
    gateway: u16,
    _running: Running,
    _data: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self._running.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

impl Demo {
    fn start(more: &[&str], env: &[(&str, &str)]) -> Demo {
        let data = tempfile::tempdir().expect("tempdir");
        let (api, gateway) = (free_port(), free_port());
        let mut command = common::demo_command(data.path(), api, gateway, more);
        for (k, v) in env {
            command.env(k, v);
        }
        let running = Running::spawn(&mut command);
        running.wait_for_line("vamp demo ready", Duration::from_secs(90));
        Demo {
            api,
            gateway,
            _running: running,
            _data: data,
        }
    }

    /// Stops the server as a user does (SIGTERM): it undeploys the demo, so the demo's
    /// processes stop with it (a SIGKILL would leave them running).
    /// Never panics (it runs in `drop`); after 40 s the process is left to `Running`'s kill.
    fn stop(&mut self) {
        let pid = self._running.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while matches!(self._running.child.try_wait(), Ok(None))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ui(&self, hash: &str) -> String {
        format!("http://127.0.0.1:{}/ui/{hash}", self.api)
    }

    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/v1/{path}", self.api)
    }
}

/// Headless Chromium through a chromedriver of the test's own (stopped with it).
struct Browser {
    client: Client,
    driver_url: String,
    _driver: Running,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (SKIPPED printed) where the `chromium` service is not installed; in CI a
    /// missing browser fails the test.
    async fn start() -> Option<Browser> {
        let chromedriver = service("chromium")?;
        let chromium = service_binary("chromium");
        let port = free_port();
        let driver = Running::spawn(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1"),
        );
        driver.wait_for_line(
            "ChromeDriver was started successfully",
            Duration::from_secs(30),
        );
        let profile = tempfile::tempdir().expect("tempdir");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let driver_url = format!("http://127.0.0.1:{port}");
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .expect("a WebDriver session in headless Chromium");
        client
            .set_window_size(1280, 800)
            .await
            .expect("window size");
        Some(Browser {
            client,
            driver_url,
            _driver: driver,
            _profile: profile,
        })
    }

    /// The browser's console messages since the last call (chromedriver's log endpoint).
    async fn console(&self) -> Vec<Value> {
        let id = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/session/{id}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("log endpoint")
            .json()
            .await
            .expect("log JSON");
        answer["value"].as_array().cloned().unwrap_or_default()
    }

    /// Fails on any console error, and on errors the page recorded (`window.vampErrors`).
    async fn assert_no_errors(&self, page: &str) {
        self.assert_no_errors_but(page, &[]).await;
    }

    /// As [`assert_no_errors`](Self::assert_no_errors), but for console messages holding one
    /// of `expected` (a refusal the test asked for).
    async fn assert_no_errors_but(&self, page: &str, expected: &[&str]) {
        let errors: Vec<Value> = self
            .console()
            .await
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .filter(|e| {
                let text = e["message"].as_str().unwrap_or_default();
                !expected.iter().any(|x| text.contains(x))
            })
            .collect();
        assert!(errors.is_empty(), "console errors on {page}: {errors:?}");
        let recorded = self.js("return window.vampErrors || []").await;
        assert_eq!(recorded, json!([]), "errors recorded on {page}");
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Opens `url` and waits until the page `page` shows with nothing left loading.
    async fn open(&self, url: &str, page: &str) {
        self.client.goto(url).await.expect("goto");
        let script = format!(
            "const p = document.querySelector('#page'); return !!p && p.dataset.page === '{page}' \
             && document.querySelectorAll('.loading').length === 0 && !!p.querySelector('h1')"
        );
        eventually(&format!("the {page} page to load ({url})"), || async {
            self.js(&script).await == json!(true)
        })
        .await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// The element `css` finds, waiting for it at most 10 s.
    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} within 10 s: {e}"))
    }

    /// Clicks the element `locator` finds.
    async fn click(&self, locator: Locator<'_>) {
        let what = format!("{locator:?}");
        self.client
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Waits until the text of `css` (empty while there is none) contains `wanted`.
    async fn wait_text(&self, css: &str, wanted: &str) {
        let script =
            format!("const e = document.querySelector('{css}'); return e ? e.textContent : ''");
        eventually(&format!("'{wanted}' in {css}"), || async {
            self.js(&script)
                .await
                .as_str()
                .is_some_and(|t| t.contains(wanted))
        })
        .await;
    }

    /// Presses `keys` (WebDriver key codes) on whatever has the focus.
    async fn press(&self, keys: &[char]) {
        let mut actions = KeyActions::new("keyboard".into());
        for k in keys {
            actions = actions
                .then(KeyAction::Down { value: *k })
                .then(KeyAction::Up { value: *k });
        }
        self.client
            .perform_actions(actions)
            .await
            .expect("key actions");
    }
}

/// Where the screenshots go.
fn screenshots() -> PathBuf {
    std::env::var_os("VAMP_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"))
}

const HOME: char = '\u{E011}';
const RIGHT: char = '\u{E014}';

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

async fn put_yaml(url: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .put(url)
        .header("content-type", "application/x-yaml")
        .body(body.to_owned())
        .send()
        .await
        .expect("PUT")
        .status()
        .as_u16()
}

/// The `x-version` of `n` requests through the demo's gateway: how many each version answered.
async fn versions(port: u16, n: usize) -> BTreeMap<String, usize> {
    let client = reqwest::Client::new();
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let answer = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .expect("through the gateway");
        let version = answer
            .headers()
            .get("x-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        *seen.entry(version).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_without_errors_at_desktop_and_phone_width() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start(&["--demo-rollout"], &[]);
    assert_eq!(
        put_yaml(
            &demo.api("blueprints/ui-shop"),
            "name: ui-shop\nclusters:\n  web:\n    services:\n      - breed: demo:1.0.0\n",
        )
        .await,
        200
    );
    let pages = [
        ("dashboard", "", "dashboard"),
        ("deployments", "#/deployments", "deployments"),
        ("deployment", "#/deployments/vamp-demo", "deployments"),
        ("gateways", "#/gateways", "gateways"),
        ("gateway", "#/gateways/vamp-demo%2Fdemo%2Fweb", "gateways"),
        ("rollouts", "#/rollouts", "rollouts"),
        ("rollout", "#/rollouts/vamp-demo-release", "rollouts"),
        ("workflows", "#/workflows", "workflows"),
        ("workflow", "#/workflows/health", "workflows"),
        ("breeds", "#/artifacts/breeds", "artifacts"),
        ("breed", "#/artifacts/breeds/demo:1.0.0", "artifacts"),
        ("blueprint", "#/artifacts/blueprints/ui-shop", "artifacts"),
        ("events", "#/events", "events"),
        ("admin", "#/admin", "admin"),
    ];
    for (name, hash, page) in pages {
        browser.open(&demo.ui(hash), page).await;
        browser.screenshot(name).await;
        browser.assert_no_errors(name).await;
    }
    // The gateway page's live numbers arrive over the stream (the demo sends 20 req/s).
    browser
        .open(&demo.ui("#/gateways/vamp-demo%2Fdemo%2Fweb"), "gateways")
        .await;
    let started = Instant::now();
    eventually("live request rates on the gateway page", || async {
        let rates = browser
            .js("return [...document.querySelectorAll('tr[data-route] td.num')].map(td => td.textContent)")
            .await;
        let rates: Vec<String> = serde_json::from_value(rates).unwrap_or_default();
        rates.iter().any(|r| r.parse::<f64>().is_ok_and(|v| v > 0.0)).then_some(rates)
    })
    .await;
    // The rollout on the page moves weights and writes events: the page re-reads what changed,
    // never one resource more than once a second.
    eventually_within(
        "5 s on the gateway page",
        Duration::from_secs(10),
        || async { started.elapsed() > Duration::from_secs(5) },
    )
    .await;
    browser.screenshot("gateway-live").await;
    let fetched = browser
        .js("return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/') && !e.name.includes('/events/stream')).map(e => [e.name, e.startTime])")
        .await;
    let fetched: Vec<(String, f64)> = serde_json::from_value(fetched).expect("entries");
    let mut by_url: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (url, at) in fetched {
        by_url.entry(url).or_default().push(at);
    }
    for (url, mut times) in by_url {
        times.sort_by(f64::total_cmp);
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= 990.0,
                "{url} fetched {:.0} ms after the previous time",
                pair[1] - pair[0]
            );
        }
    }
    // At a phone's width nothing is wider than the screen.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    for (name, hash, page) in [
        ("phone-dashboard", "", "dashboard"),
        (
            "phone-gateway",
            "#/gateways/vamp-demo%2Fdemo%2Fweb",
            "gateways",
        ),
        ("phone-rollout", "#/rollouts/vamp-demo-release", "rollouts"),
    ] {
        browser.open(&demo.ui(hash), page).await;
        let overflow = browser
            .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            .await;
        assert!(
            overflow.as_f64().is_some_and(|o| o <= 0.0),
            "{name} is {overflow} px wider than the screen"
        );
        browser.screenshot(name).await;
        browser.assert_no_errors(name).await;
    }
    browser.client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slider_moves_traffic_an_editor_error_shows_at_its_line_and_promote_promotes() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start(&[], &[]);
    let gateway = "vamp-demo/demo/web";
    let canary = "vamp-demo/demo/demo:1.1.0/web";
    let stable = "vamp-demo/demo/demo:1.0.0/web";

    // The slider: the canary's weight from 10 % to 30 % with the keyboard.
    browser
        .open(&demo.ui("#/gateways/vamp-demo%2Fdemo%2Fweb"), "gateways")
        .await;
    browser
        .js(&format!(
            "document.querySelector('input[aria-label=\"weight of {canary}\"]').focus(); return true"
        ))
        .await;
    let mut keys = vec![HOME];
    keys.extend(std::iter::repeat_n(RIGHT, 30));
    browser.press(&keys).await;
    let weights = eventually("the gateway at 70/30 through the API", || async {
        let g = get_json(&demo.api(&format!("gateways/{gateway}"))).await;
        let w = (
            g["routes"][stable]["weight"].clone(),
            g["routes"][canary]["weight"].clone(),
        );
        (w == (json!("70%"), json!("30%"))).then_some(w)
    })
    .await;
    assert_eq!(weights.1, json!("30%"));
    // The page shows what was stored.
    let shown = format!("tr[data-route=\"{stable}\"] output");
    eventually("the page at 70 %", || async {
        browser.text(&shown).await == "70 %"
    })
    .await;
    browser.screenshot("gateway-slider-30").await;
    browser.assert_no_errors("the gateway page").await;
    // …and the router follows: 100 requests, 30 to the canary (smooth weighted round robin
    // is exact; a few either way for requests of the switch-over).
    let seen = versions(demo.gateway, 100).await;
    let canary_share = seen.get("1.1.0").copied().unwrap_or(0);
    assert!(
        (25..=35).contains(&canary_share),
        "30 % should reach 1.1.0: {seen:?}"
    );

    // The editor: a YAML error at line 4 shows the server's message there.
    browser
        .open(&demo.ui("#/artifacts/breeds/+new"), "artifacts")
        .await;
    let editor = browser
        .client
        .find(Locator::Css(".editor textarea"))
        .await
        .expect("editor");
    editor.clear().await.expect("clear");
    editor
        .send_keys("name: broken:1.0.0\ndeployable: [\n  foo\nports: 1\n")
        .await
        .expect("type");
    browser
        .click(Locator::XPath("//button[text()='Validate']"))
        .await;
    let error = browser.wait_for(".editor-error").await;
    assert_eq!(
        error.attr("data-line").await.expect("attr"),
        Some("4".into())
    );
    let message = error.text().await.expect("text");
    assert!(
        message.starts_with("line 4, column") && message.contains("cannot parse YAML"),
        "{message}"
    );
    assert_eq!(browser.text(".gutter .bad").await, "4");
    browser.screenshot("editor-error").await;
    // The refusal the test asked for is the only error.
    browser
        .assert_no_errors_but("the editor", &["/api/v1/breeds?validate_only=true - Failed to load resource: the server responded with a status of 400"])
        .await;
    // Nothing was stored.
    assert_eq!(
        common::get_status(&demo.api("breeds/broken:1.0.0")).await,
        404
    );

    // Promote: a rollout held by an open-ended pause goes on when its button is pressed.
    let rollout = format!(
        "name: ui-release\ngateway: {gateway}\nstable: {stable}\ncanary: {canary}\nsteps:\n  - weight: 20%\n  - pause: {{}}\nanalysis:\n  interval: 1h\n  metrics:\n    - {{metric: success-rate, min: 99%}}\n"
    );
    let status = reqwest::Client::new()
        .post(demo.api("rollouts"))
        .header("content-type", "application/x-yaml")
        .body(rollout)
        .send()
        .await
        .expect("POST rollout")
        .status()
        .as_u16();
    assert_eq!(status, 202, "the rollout is accepted");
    eventually("the rollout paused", || async {
        get_json(&demo.api("rollouts/ui-release")).await["status"]["phase"] == "Paused"
    })
    .await;
    browser
        .open(&demo.ui("#/rollouts/ui-release"), "rollouts")
        .await;
    browser
        .click(Locator::Css("button[data-command=promote]"))
        .await;
    let phase = eventually("the rollout promoted", || async {
        let r = get_json(&demo.api("rollouts/ui-release")).await;
        let phase = r["status"]["phase"].as_str().unwrap_or_default().to_owned();
        (phase == "Succeeded").then_some(phase)
    })
    .await;
    assert_eq!(phase, "Succeeded");
    eventually("the page to show it", || async {
        browser.text("[data-phase]").await == "Succeeded"
    })
    .await;
    browser.screenshot("rollout-promoted").await;
    browser.assert_no_errors("the rollout page").await;
    browser.client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_ui_asks_for_it_and_shows_no_data_without_it() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let token = "ui-test-token-0001";
    let demo = Demo::start(&[], &[("VAMP_SERVER__TOKEN", token)]);
    browser
        .client
        .goto(&demo.ui("#/deployments"))
        .await
        .expect("goto");
    let form = browser.wait_for("form input#token").await;
    // No data behind it: no page, no deployment name anywhere.
    let body = browser.text("body").await;
    assert!(!body.contains("vamp-demo"), "{body}");
    assert_eq!(
        browser.js("return !!document.querySelector('#page')").await,
        json!(false)
    );
    browser.screenshot("login").await;
    // A wrong token is refused; the right one shows the deployments.
    form.send_keys("not-the-token-123").await.expect("type");
    browser
        .click(Locator::Css("form button[type=submit]"))
        .await;
    browser.wait_text(".login .error", "refused").await;
    let form = browser
        .client
        .find(Locator::Css("form input#token"))
        .await
        .expect("the form again");
    form.clear().await.expect("clear");
    form.send_keys(token).await.expect("type");
    browser
        .click(Locator::Css("form button[type=submit]"))
        .await;
    browser.wait_text("#page", "vamp-demo").await;
    // The token is in no URL the page asked for.
    let urls = browser
        .js("return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
        .await;
    let urls: Vec<String> = serde_json::from_value(urls).expect("urls");
    assert!(urls.iter().all(|u| !u.contains(token)), "{urls:?}");
    // The 401s before signing in are the only errors.
    browser
        .assert_no_errors_but("signing in", &["the server responded with a status of 401"])
        .await;
    browser.client.close().await.expect("close");
}

/// Relative module imports and asset links of a UI file.
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for quote in ['\'', '"'] {
        for marker in [
            format!("from {quote}./"),
            format!("from{quote}./"),
            format!("from {quote}../"),
            format!("href={quote}"),
            format!("src={quote}"),
        ] {
            let mut rest = text;
            while let Some(i) = rest.find(&marker) {
                let after = &rest[i + marker.len()..];
                let end = after.find(quote).unwrap_or(0);
                let prefix = if marker.contains("../") {
                    "../"
                } else if marker.starts_with("from") {
                    "./"
                } else {
                    ""
                };
                out.push(format!("{prefix}{}", &after[..end]));
                rest = &after[end..];
            }
        }
    }
    out
}

/// Resolves `reference` against the file at `base` (both paths under /ui/<version>/).
fn resolve(base: &str, reference: &str) -> String {
    if reference.starts_with('/') {
        return reference.to_owned();
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for segment in reference.split('/') {
        match segment {
            "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[tokio::test]
async fn the_first_load_is_small_compressed_and_cached_by_version() {
    let server = common::Server::start(&[]).await;
    let origin = server.url.trim_end_matches("/api/v1").to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // `/` leads to the UI.
    let root = client
        .get(format!("{origin}/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(root.status().as_u16(), 308);
    assert_eq!(root.headers()["location"], "/ui/");
    // Every file the first page load asks for, followed from index.html, brotli-compressed.
    let mut queue = vec!["/ui/".to_owned()];
    let mut seen = BTreeSet::new();
    let mut total = 0usize;
    let mut index_etag = None;
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let answer = client
            .get(format!("{origin}{path}"))
            .header("accept-encoding", "br")
            .send()
            .await
            .expect("GET");
        assert_eq!(answer.status().as_u16(), 200, "{path}");
        let headers = answer.headers().clone();
        let cache = headers["cache-control"].to_str().expect("ascii").to_owned();
        if path == "/ui/" {
            assert_eq!(cache, "no-cache");
            index_etag = headers.get("etag").cloned();
        } else {
            assert_eq!(cache, "public, max-age=31536000, immutable", "{path}");
        }
        assert!(headers.contains_key("content-security-policy"), "{path}");
        let body = answer.bytes().await.expect("body");
        total += body.len();
        let text = if headers.get("content-encoding").is_some_and(|e| e == "br") {
            let mut plain = Vec::new();
            brotli_decompress(&body, &mut plain);
            String::from_utf8(plain).expect("utf-8")
        } else {
            String::from_utf8(body.to_vec()).expect("utf-8")
        };
        for reference in references(&text) {
            let asset = [".js", ".mjs", ".css", ".svg"]
                .iter()
                .any(|ext| reference.ends_with(ext));
            if !asset || reference.starts_with("http") {
                continue;
            }
            queue.push(resolve(&path, &reference));
        }
    }
    assert!(seen.len() >= 15, "the load followed its modules: {seen:?}");
    assert!(
        total < 200 * 1024,
        "the first load is {total} bytes compressed; the limit is 200 KB"
    );
    println!(
        "first load: {} files, {total} bytes with brotli",
        seen.len()
    );
    // The page itself is revalidated by its version.
    let etag = index_etag.expect("an ETag");
    let again = client
        .get(format!("{origin}/ui/"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status().as_u16(), 304);
    // An API answer is still never stored.
    let api = client
        .get(format!("{origin}/api/v1/info"))
        .send()
        .await
        .expect("GET");
    assert_eq!(api.headers()["cache-control"], "no-store");
}

fn brotli_decompress(input: &[u8], out: &mut Vec<u8>) {
    use std::io::Read;
    brotli::Decompressor::new(input, 4096)
        .read_to_end(out)
        .expect("brotli");
}

// What the UI reads from the API (no browser needed).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifacts_revisions_are_listed_oldest_first_with_its_deletion() {
    let server = common::Server::start(&[]).await;
    let u = &server.url;
    let breed = |port: u16| {
        format!(
            "name: rev:1.0.0\ndeployable:\n  type: command\n  definition: app\nports:\n  web: {port}/http\n"
        )
    };
    common::put(200, &format!("{u}/breeds/rev:1.0.0"), &breed(8080)).await;
    common::put(200, &format!("{u}/breeds/rev:1.0.0"), &breed(8081)).await;
    common::delete(204, &format!("{u}/breeds/rev:1.0.0"), None).await;
    let list = common::parse(&common::get(200, &format!("{u}/breeds/rev:1.0.0/revisions")).await);
    let list = list.as_array().expect("a list");
    let revisions: Vec<u64> = list.iter().filter_map(|r| r["revision"].as_u64()).collect();
    assert_eq!(revisions, [1, 2, 3]);
    assert_eq!(list[1]["value"]["ports"]["web"], "8081/http");
    assert_eq!(list[2]["deleted"], true);
    assert_eq!(list[2]["value"], Value::Null);
    assert!(list[0]["at"].is_string());
    // Never stored, or a kind that does not exist: 404.
    assert_eq!(
        common::get_status(&format!("{u}/breeds/nothing/revisions")).await,
        404
    );
    assert_eq!(
        common::get_status(&format!("{u}/nothings/x/revisions")).await,
        404
    );
    server.stop().await;
}

/// The `data:` of the first SSE message of type `event` on `response` that `wanted` accepts,
/// within 20 s.
async fn first_message(
    response: &mut reqwest::Response,
    event: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no matching '{event}' message within 20 s: {buffer}"))
            .expect("the stream")
            .expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let kind = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if kind == Some(event)
                && let Some(value) = data.and_then(|d| serde_json::from_str(d).ok())
                && wanted(&value)
            {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_each_routes_numbers_about_once_a_second() {
    let server = common::Server::start(&[]).await;
    let u = &server.url;
    let backend = vamp_gateway::testkit::backend("b").await;
    common::post(
        202,
        &format!("{u}/gateways"),
        &format!(
            "name: live\nport: 0/http\nroutes:\n  '[127.0.0.1:{backend}]':\n    weight: 100%\n"
        ),
    )
    .await;
    let port = common::gateway_port(u, "live").await;
    // Only `stats` messages on a stream that asks for them.
    let mut stream = reqwest::Client::new()
        .get(format!("{u}/events/stream?type=stats"))
        .send()
        .await
        .expect("the stream");
    assert_eq!(stream.status().as_u16(), 200);
    let load = tokio::spawn(async move {
        let client = reqwest::Client::new();
        // Bounded: 600 requests at most.
        for _ in 0..600 {
            let _ = client.get(format!("http://127.0.0.1:{port}/")).send().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let route = format!("[127.0.0.1:{backend}]");
    let message = first_message(&mut stream, "stats", |m| {
        m["routes"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["gateway"] == "live" && r["requests"].as_u64() > Some(0))
        })
    })
    .await;
    load.abort();
    let seconds = message["seconds"].as_f64().expect("seconds");
    assert!((0.5..3.0).contains(&seconds), "{message}");
    let numbers = message["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["gateway"] == "live"))
        .expect("the route");
    assert_eq!(numbers["route"], route.as_str(), "{message}");
    assert_eq!(numbers["errors"], 0);
    assert_eq!(numbers["error_ratio"], 0.0);
    let rate = numbers["rate"].as_f64().expect("rate");
    let requests = numbers["requests"].as_f64().expect("requests");
    assert!((rate - requests / seconds).abs() < 1e-6, "{message}");
    // The embedded router measures response times: percentiles, p50 ≤ p99.
    let (p50, p99) = (
        numbers["p50_ms"].as_f64().expect("p50"),
        numbers["p99_ms"].as_f64().expect("p99"),
    );
    assert!(p50 > 0.0 && p50 <= p99, "{message}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_haproxy_configuration_is_readable_where_haproxy_routes() {
    // The embedded router has none, and says so.
    let server = common::Server::start(&[]).await;
    let body = common::get(404, &format!("{}/haproxy/configuration", server.url)).await;
    assert!(body.contains("router.kind = 'embedded'"), "{body}");
    server.stop().await;
    if cfg!(not(feature = "haproxy")) {
        vamp_core::testkit::services::skipped(
            "the HAProxy routers are not in this build (feature haproxy)",
        );
        return;
    }
    let Some(haproxy) = service("haproxy") else {
        return;
    };
    let server = common::Server::start(&[
        ("router.kind", "haproxy-local"),
        ("router.haproxy", haproxy.as_str()),
    ])
    .await;
    let u = &server.url;
    let backend = vamp_gateway::testkit::backend("b").await;
    common::post(
        202,
        &format!("{u}/gateways"),
        &format!(
            "name: shown\nport: 0/http\nroutes:\n  '[127.0.0.1:{backend}]':\n    weight: 100%\n"
        ),
    )
    .await;
    let text = eventually("the gateway in the HAProxy configuration", || async {
        let answer = common::parse(&common::get(200, &format!("{u}/haproxy/configuration")).await);
        let text = answer["configuration"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (answer["router"] == "haproxy-local" && text.contains("shown")).then_some(text)
    })
    .await;
    assert!(text.contains("frontend"), "{text}");
    server.stop().await;
}
