//! A small W3C WebDriver client for Debian's `chromedriver` driving the system `chromium` headless:
//! JSON over HTTP/1.1 on loopback, one connection per command. No browser download, no extra crate.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where the driver and the browser are, when this machine has them.
pub fn installed() -> Option<(PathBuf, PathBuf)> {
    let driver =
        std::env::var_os("TOLLGATE_CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    let browser =
        std::env::var_os("TOLLGATE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    (driver.exists() && browser.exists()).then_some((driver, browser))
}

/// A running chromedriver (killed on drop) and one browser session in it.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium `width` pixels wide.
    pub async fn start(driver: &Path, chromium: &Path, width: u32) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self { driver: child, port, session: String::new(), _profile: profile };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.call("GET", "/status", None).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            format!("--window-size={width},900"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ]);
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        } } });
        let created = browser.call("POST", "/session", Some(capabilities)).await.expect("new session");
        browser.session = created["sessionId"].as_str().expect("session id").to_owned();
        browser
    }

    /// One command: the `value` of its answer, or the WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.map_err(|error| error.to_string())?;
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.map_err(|error| error.to_string())?;
        stream.write_all(body.as_bytes()).await.map_err(|error| error.to_string())?;
        // chromedriver keeps the connection open whatever the request says: read by Content-Length.
        let mut raw = Vec::new();
        let mut buffer = [0u8; 64 * 1024];
        let (headers, payload) = loop {
            let read = stream.read(&mut buffer).await.map_err(|error| error.to_string())?;
            if read == 0 {
                return Err("the driver closed the connection".to_owned());
            }
            raw.extend_from_slice(&buffer[..read]);
            let Some(end) = raw.windows(4).position(|window| window == b"\r\n\r\n") else { continue };
            let headers = String::from_utf8_lossy(&raw[..end]).into_owned();
            let length = headers
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok());
            let body_start = end + 4;
            match length {
                Some(length) if raw.len() >= body_start + length => {
                    break (headers, String::from_utf8_lossy(&raw[body_start..body_start + length]).into_owned());
                }
                Some(_) => continue,
                None if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") => {
                    if raw.ends_with(b"0\r\n\r\n") {
                        break (headers, dechunk(&String::from_utf8_lossy(&raw[body_start..])));
                    }
                }
                None => return Err("an answer without Content-Length".to_owned()),
            }
        };
        let status: u16 = headers.split(' ').nth(1).and_then(|code| code.parse().ok()).ok_or("no status")?;
        let json: Value = serde_json::from_str(&payload).map_err(|error| format!("{error}: {payload}"))?;
        if status >= 400 {
            return Err(json["value"]["message"].as_str().unwrap_or("webdriver error").to_owned());
        }
        Ok(json["value"].clone())
    }

    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await.unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.command("GET", "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn source(&self) -> String {
        self.command("GET", "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Every element matching a CSS selector.
    pub async fn all(&self, selector: &str) -> Vec<Element> {
        let found =
            self.command("POST", "/elements", Some(json!({ "using": "css selector", "value": selector }))).await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item[ELEMENT].as_str())
            .map(|id| Element(id.to_owned()))
            .collect()
    }

    /// The element matching `selector`, waiting up to five seconds for it.
    pub async fn find(&self, selector: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(element) = self.all(selector).await.into_iter().next() {
                return element;
            }
            assert!(Instant::now() < deadline, "no element {selector} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn text(&self, element: &Element) -> String {
        self.command("GET", &format!("/element/{}/text", element.0), None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        self.command("GET", &format!("/element/{}/attribute/{name}", element.0), None).await.as_str().map(str::to_owned)
    }

    pub async fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        self.command("POST", &format!("/element/{}/clear", element.0), Some(json!({}))).await;
        self.command("POST", &format!("/element/{}/value", element.0), Some(json!({ "text": text }))).await;
    }

    pub async fn click(&self, selector: &str) {
        let element = self.find(selector).await;
        self.command("POST", &format!("/element/{}/click", element.0), Some(json!({}))).await;
    }

    /// Accepts the `confirm()` the page opened.
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let path = format!("/session/{}/alert/accept", self.session);
        while self.call("POST", &path, Some(json!({}))).await.is_err() {
            assert!(Instant::now() < deadline, "no dialog opened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (an async function body whose last argument is the callback) in the page.
    pub async fn run_async(&self, script: &str) -> Value {
        self.command("POST", "/execute/async", Some(json!({ "script": script, "args": [] }))).await
    }

    pub async fn run(&self, script: &str) -> Value {
        self.command("POST", "/execute/sync", Some(json!({ "script": script, "args": [] }))).await
    }

    /// Presses a key (a WebDriver key code such as `\u{E004}`, Tab) on the focused element.
    pub async fn press(&self, key: &str) {
        let actions = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
            { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key },
        ] }] });
        self.command("POST", "/actions", Some(actions)).await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.command("POST", "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    pub async fn delete_cookies(&self) {
        self.command("DELETE", "/cookie", None).await;
    }

    /// Saves a PNG of the viewport to `directory/name.png`.
    pub async fn screenshot(&self, directory: &Path, name: &str) {
        let encoded = self.command("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap_or_default()).expect("png");
        std::fs::create_dir_all(directory).unwrap();
        std::fs::write(directory.join(format!("{name}.png")), png).unwrap();
    }
}

fn dechunk(payload: &str) -> String {
    let mut out = String::new();
    let mut rest = payload;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
