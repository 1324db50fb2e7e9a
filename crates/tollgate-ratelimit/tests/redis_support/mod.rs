//! Helpers for the Redis tests: the Redis named by `TOLLGATE_TEST_REDIS_URL` under a key prefix of the test's
//! own, a `redis-server` the test can kill and restart, keys, quotas and the comparison with the local limiter.

use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_ratelimit::{
    Decision, FakeRelativeClock, LocalLimiter, RateKey, RateQuota, RedisLimiter, RedisLimiterConfig,
};

const URL_VARIABLE: &str = "TOLLGATE_TEST_REDIS_URL";
pub(crate) const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Says a test is skipped on the process's stderr itself: the test harness captures `eprintln!` of passing
/// tests, and a skip must be seen.
pub(crate) fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A Redis to test against and a key prefix no other test uses.
pub(crate) struct TestRedis {
    url: String,
    pub(crate) prefix: String,
}

impl TestRedis {
    /// `None`, after saying so on stderr, when no Redis is configured.
    pub(crate) fn from_env() -> Option<Self> {
        match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.is_empty() => Some(Self::at(url)),
            _ => {
                skipped(&format!("{URL_VARIABLE} not set"));
                None
            }
        }
    }

    pub(crate) fn at(url: String) -> Self {
        let random = RandomState::new().hash_one(Instant::now());
        Self { url, prefix: format!("tollgate-test:{}:{random:016x}:", std::process::id()) }
    }

    fn config(&self) -> RedisLimiterConfig {
        RedisLimiterConfig::new(&self.url).with_key_prefix(&self.prefix)
    }

    /// A limiter on a connection of its own.
    pub(crate) async fn limiter(&self) -> RedisLimiter {
        RedisLimiter::connect(self.config()).await.unwrap()
    }

    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    async fn keys(&self) -> Vec<String> {
        let mut connection = self.raw().await;
        let (mut cursor, mut keys) = (0u64, Vec::new());
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut connection)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Deletes every key under the prefix and checks none is left.
    pub(crate) async fn clean_up(&self) {
        let mut connection = self.raw().await;
        for key in self.keys().await {
            redis::cmd("DEL").arg(&key).query_async::<()>(&mut connection).await.unwrap();
        }
        assert!(self.keys().await.is_empty());
    }
}

/// A distinct key per `n`.
pub(crate) fn key(n: u64) -> RateKey {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    RateKey::from_bytes(bytes)
}

pub(crate) fn quota(per_period: u32, period: Duration, burst: u32) -> RateQuota {
    RateQuota::new(per_period, period, burst).unwrap()
}

/// "100 per minute, burst 20": 20 at once, then one every 600 ms.
pub(crate) fn hundred_per_minute() -> RateQuota {
    quota(100, Duration::from_secs(60), 20)
}

pub(crate) fn local_limiter() -> LocalLimiter<FakeRelativeClock> {
    LocalLimiter::with_clock(NonZeroUsize::new(1_000).unwrap(), FakeRelativeClock::default())
}

/// `redis` is `local` seen `moved` later: the same verdict, remaining and limit, and every duration shorter by
/// at most `moved` (the local clock stands still; Redis's does not).
pub(crate) fn assert_like(redis: Decision, local: Decision, moved: Duration, step: usize) {
    let within = |ours: Duration, theirs: Duration| ours <= theirs && theirs - ours <= moved;
    let alike = match (redis, local) {
        (
            Decision::Allowed { remaining, limit, reset_after },
            Decision::Allowed { remaining: local_remaining, limit: local_limit, reset_after: local_reset },
        ) => (remaining, limit) == (local_remaining, local_limit) && within(reset_after, local_reset),
        (
            Decision::Limited { retry_after, limit, reset_after },
            Decision::Limited { retry_after: local_retry, limit: local_limit, reset_after: local_reset },
        ) => limit == local_limit && within(retry_after, local_retry) && within(reset_after, local_reset),
        _ => false,
    };
    assert!(alike, "step {step}: redis {redis:?}, local {local:?}, clocks {moved:?} apart");
}

/// A `redis-server` of the test's own, on a fixed port so it can be restarted there. Killed when dropped.
pub(crate) struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub(crate) async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) async fn restart(&mut self) {
        let port = self.port.to_string();
        let args = ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let child = Command::new(REDIS_SERVER).args(args).stdout(Stdio::null()).spawn().unwrap();
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get_multiplexed_async_connection().await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
