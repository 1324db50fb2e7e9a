//! What a cluster test stands on: a scratch PostgreSQL database per test (dropped at the end), a
//! TCP proxy in front of a server that the test can take away and bring back (a database restart
//! or a network cut, without touching the machine's shared server), and N `tollgate serve`
//! processes on one database sharing one set of key files.

#![allow(unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, Reply, Server};

/// The PostgreSQL server the tests use, or `None` (then the tests say loudly that they skipped).
pub fn postgres_url() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // On the process's stderr itself: the harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: the cluster tests need a PostgreSQL server; set TOLLGATE_TEST_PG_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres). .ci/run sets it. ***\n"
            );
            None
        }
    }
}

/// A database URL's scheme, user part, `host:port` and query.
fn parts(url: &str) -> (&str, Option<&str>, &str, Option<&str>) {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let (scheme, rest) = base.split_once("://").expect("a database URL has a scheme");
    let authority = rest.split('/').next().unwrap_or_default();
    let (user, host) = authority.rsplit_once('@').map_or((None, authority), |(user, host)| (Some(user), host));
    (scheme, user, host, query)
}

/// `url` naming database `name` instead of its own, at `address` instead of its host when given.
fn retarget(url: &str, name: &str, address: Option<&str>) -> String {
    let (scheme, user, host, query) = parts(url);
    let host = address.unwrap_or(host);
    let user = user.map(|user| format!("{user}@")).unwrap_or_default();
    let query = query.map(|query| format!("?{query}")).unwrap_or_default();
    format!("{scheme}://{user}{host}/{name}{query}")
}

fn psql(url: &str, sql: &str) {
    let output = Command::new("psql").arg(url).args(["-v", "ON_ERROR_STOP=1", "-qc", sql]).output().expect("psql");
    assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A database of its own on the test server, dropped (with its sessions) when this is dropped.
pub struct ScratchDatabase {
    server_url: String,
    pub name: String,
}

impl ScratchDatabase {
    pub fn create(server_url: &str, tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("tollgate_cluster_{tag}_{}_{nanos}", std::process::id());
        psql(server_url, &format!("CREATE DATABASE {name}"));
        Self { server_url: server_url.to_owned(), name }
    }

    /// The URL of this database, reached at `address` (a proxy) or directly.
    pub fn url(&self, address: Option<&str>) -> String {
        retarget(&self.server_url, &self.name, address)
    }

    /// The `host:port` of the server.
    pub fn server_address(&self) -> String {
        parts(&self.server_url).2.to_owned()
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        psql(&self.server_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A TCP proxy to `upstream` that can be taken down (every connection cut, new ones refused) and
/// brought back.
pub struct Proxy {
    pub address: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (upstream, accepting, connections) = (upstream.to_owned(), Arc::clone(&up), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !accepting.load(Ordering::Acquire) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let mut held = connections.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                drop(held);
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Self { address, up, open }
    }

    /// Cuts every open connection and refuses new ones until [`Proxy::up`].
    pub fn down(&self) {
        self.up.store(false, Ordering::Release);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::Release);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    if to.write_all(&buffer[..read]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// N nodes of `tollgate serve` on one database with one set of key files, and an admin token.
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub admin: String,
    pub directory: tempfile::TempDir,
    database_url: String,
}

impl Cluster {
    /// Bootstraps the database at `database_url` with the CLI (a service account `ops` and an admin
    /// token) and starts `count` nodes on it with `extra` serve flags.
    pub fn start(database_url: &str, count: usize, extra: &[&str]) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let mut cluster =
            Self { nodes: Vec::new(), admin: String::new(), directory, database_url: database_url.to_owned() };
        cluster.cli(&["service-account", "create", "--name", "ops"]);
        let created = cluster.cli(&["token", "create", "--name", "admin", "--owner", "ops", "--permission", "admin"]);
        cluster.admin = created["token"].as_str().unwrap().to_owned();
        for _ in 0..count {
            let node = cluster.start_node(extra);
            cluster.nodes.push(node);
        }
        cluster
    }

    fn key_flags(&self) -> Vec<String> {
        let key = |name: &str| self.directory.path().join(name).to_str().unwrap().to_owned();
        vec![
            "--database-url".into(),
            self.database_url.clone(),
            "--key-file".into(),
            key("tollgate.key"),
            "--jwt-key-file".into(),
            key("tollgate.jwt.key"),
            "--vault-key-file".into(),
            key("tollgate.vault.key"),
        ]
    }

    fn start_node(&self, extra: &[&str]) -> Server {
        let mut args = self.key_flags();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start(self.directory.path(), &args, &[])
    }

    /// Runs `tollgate --json <args>` against the cluster's database; returns its JSON output.
    pub fn cli(&self, args: &[&str]) -> serde_json::Value {
        let mut all = self.key_flags();
        all.push("--json".into());
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        support::cli_json(self.directory.path(), &all)
    }

    /// Runs `tollgate --json <args>` with `input` on standard input; returns its JSON output.
    pub fn cli_with_input(&self, args: &[&str], input: &str) -> serde_json::Value {
        let mut all = self.key_flags();
        all.push("--json".into());
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        support::cli_with_input(self.directory.path(), &all, input)
    }

    /// One request to node `index` as the admin.
    pub fn admin_request(&self, index: usize, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.nodes[index].request(method, path, Some(&self.admin), body)
    }

    /// Creates a token on node `index`; returns (secret, id).
    pub fn create_token(&self, index: usize, name: &str) -> (String, String) {
        let body = serde_json::json!({ "name": name, "owner": "ops" }).to_string();
        let created = self.admin_request(index, "POST", "/v1/tokens", Some(&body));
        assert_eq!(created.status, 201, "{}", created.body);
        let created = created.json();
        (created["token"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned())
    }

    /// The nodes' addresses, for threads (a `Server` stays with the test's thread).
    pub fn addresses(&self) -> Arc<Vec<String>> {
        Arc::new(self.nodes.iter().map(|node| node.address.clone()).collect())
    }
}

/// The status of a verify of `secret` on `server` (200 valid, 401 refused, …).
pub fn verify_status(server: &Server, secret: &str) -> u16 {
    verify_at(&server.address, secret)
}

/// The status of a verify of `secret` on the node at `address`.
pub fn verify_at(address: &str, secret: &str) -> u16 {
    support::http(address, "GET", "/v1/auth/verify", Some(secret), None).expect("HTTP exchange").status
}

/// Polls until `done` or `patience` passes; returns how long it took, `None` on time out.
pub fn until(patience: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < patience {
        if done() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// The `q`-quantile of sorted `values`.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The Redis the tests share (`TOLLGATE_TEST_REDIS_URL`), or `None` after saying so.
pub fn redis_url() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: set TOLLGATE_TEST_REDIS_URL (.ci/run sets it). ***\n");
            None
        }
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tollgate-cluster-test:{tag}:{}:{nanos:x}:", std::process::id())
}

/// A `redis-server` of the test's own, which it can stop and start again on the same port.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub const BINARY: &str = "/usr/bin/redis-server";

    /// `None` (after saying so) when the machine has no redis-server.
    pub fn start() -> Option<Self> {
        if !Path::new(Self::BINARY).exists() {
            let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {} is not installed. ***\n", Self::BINARY);
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None };
        server.resume();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn resume(&mut self) {
        let child = Command::new(Self::BINARY)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        assert!(
            until(Duration::from_secs(10), || TcpStream::connect(&address).is_ok()).is_some(),
            "redis-server started"
        );
    }

    /// Kills the server (SIGKILL: nothing is saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
