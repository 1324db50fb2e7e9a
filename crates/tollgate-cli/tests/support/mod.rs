//! End-to-end helpers: start the real `tollgate` binary, run CLI commands, and speak HTTP/1.1
//! over a plain TcpStream. A dozen lines of client keep hyper-util/reqwest (and their TLS and
//! pooling machinery) out of the dev-dependencies; `Connection: close` keeps parsing trivial.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod shell;

#[allow(unused_imports)] // not every test binary that includes `support` runs CLI commands
pub use shell::Shell;

pub const BINARY: &str = env!("CARGO_BIN_EXE_tollgate");
/// How long a test waits for the server to start or stop before failing (not a sleep).
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `tollgate serve`.
pub struct Server {
    child: Option<Child>,
    pub address: String,
    stderr: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Server {
    /// Starts `tollgate serve --listen 127.0.0.1:0 <args>` in `directory` with extra environment.
    pub fn start(directory: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BINARY);
        command.current_dir(directory).arg("serve").arg("--listen").arg("127.0.0.1:0").args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command
            .env_remove("TOLLGATE_DB")
            .env_remove("TOLLGATE_DATABASE_URL")
            .env_remove("TOLLGATE_LISTEN")
            .env_remove("RUST_LOG");
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn tollgate serve");
        let stdout = child.stdout.take().expect("stdout");
        let (line_sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_sender.send(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let (log_sender, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_sender.send(line);
            }
        });
        let mut server = Self { child: Some(child), address: String::new(), stderr: log, log: Vec::new() };
        let line = lines.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            server.collect_log();
            panic!("no address printed; log:\n{}", server.log.join("\n"))
        });
        let address = line.split("http://").nth(1).expect("tollgate listening on http://ADDR").trim().to_owned();
        server.address = address;
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code.
    pub fn terminate(&mut self) -> i32 {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success());
        self.wait()
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait());
        });
        let status = receiver.recv_timeout(PATIENCE).expect("the server exits").expect("wait");
        self.collect_log();
        status.code().unwrap_or(-1)
    }

    /// Collects the standard error lines printed so far.
    pub fn collect_log(&mut self) -> &[String] {
        while let Ok(line) = self.stderr.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// Waits (bounded) until a log line contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.log.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        loop {
            let line = self.stderr.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub fn request(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&str>) -> Reply {
        http(&self.address, method, path, bearer, body).expect("HTTP exchange")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `tollgate <args>` in `directory`.
pub fn cli(directory: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .current_dir(directory)
        .args(args)
        .env_remove("TOLLGATE_DB")
        .env_remove("TOLLGATE_DATABASE_URL")
        .output()
        .expect("run tollgate")
}

/// Runs `tollgate <args>` in `directory` with `input` on standard input; returns its JSON output.
pub fn cli_with_input(directory: &Path, args: &[&str], input: &str) -> serde_json::Value {
    let mut child = Command::new(BINARY)
        .current_dir(directory)
        .args(args)
        .env_remove("TOLLGATE_DB")
        .env_remove("TOLLGATE_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tollgate");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("json output")
}

/// Runs `tollgate <args>` in `directory`, which must succeed; returns its JSON output.
pub fn cli_json(directory: &Path, args: &[&str]) -> serde_json::Value {
    let output = cli(directory, args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("json output")
}

/// The owner named `name` in `db`: the user or service account of that name, else a new service
/// account; returns its id.
pub fn ensure_owner(directory: &Path, db: &Path, name: &str) -> String {
    let db = db.to_str().expect("utf-8 path");
    let id_of = |output: Output| -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(value["id"].as_str()?.to_owned())
    };
    for show in [["service-account", "show"], ["user", "show"]] {
        let output = cli(directory, &["--db", db, "--json", show[0], show[1], name]);
        if output.status.success() {
            return id_of(output).expect("an id");
        }
    }
    let output = cli(directory, &["--db", db, "--json", "service-account", "create", "--name", name]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    id_of(output).expect("an id")
}

/// Creates a token with the CLI (and its owner, a service account, when none has the name); returns (secret, id).
pub fn create_token(directory: &Path, db: &Path, owner: &str, permission: &str) -> (String, String) {
    ensure_owner(directory, db, owner);
    let db = db.to_str().expect("utf-8 path");
    let args = ["--db", db, "--json", "token", "create", "--name", "t", "--owner", owner, "--permission", permission];
    let output = cli(directory, &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    (created["token"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned())
}

/// A temporary directory and the database path inside it.
pub fn workspace() -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().expect("temp dir");
    let db = directory.path().join("tollgate.db");
    (directory, db)
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// One HTTP/1.1 exchange over a fresh connection.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(bearer) = bearer {
        request.push_str(&format!("Authorization: Bearer {bearer}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

fn parse(raw: &[u8]) -> Option<Reply> {
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(key, value)| key == "transfer-encoding" && value.contains("chunked")) {
        body = dechunk(&body)?;
    }
    Some(Reply { status, headers, body: String::from_utf8(body).ok()? })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|window| window == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
