//! The positive verify cache: token hash → record, for a short TTL. Only tokens that verified
//! are cached; revoke, rotate and update evict by token id at once.
//!
//! A lookup that read a row before an eviction must not put it back after: every eviction bumps an
//! epoch, a lookup notes the epoch before it reads the store, and its insert is dropped when the
//! epoch has moved since. A revoke is therefore refused on the very next verify in this process.
//!
//! Changes made by other processes or nodes reach the cache through the change follower
//! ([`crate::ChangeFollower`]), which confirms after every look at the audit log that it has applied
//! everything committed before that look began. With a follower attached the cache answers only
//! while that confirmation is younger than the bound; otherwise lookups read through to the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tollgate_store::HashMatch;
use tollgate_types::{RandomKeys, Timestamp, TokenHash, TokenId, TokenRecord};

/// A cached verify result.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub(crate) record: Arc<TokenRecord>,
    pub(crate) matched: HashMatch,
    cached_at: Timestamp,
}

#[derive(Debug, Default)]
struct Inner {
    // Keyed by HMAC outputs, which no caller can choose (see `RandomKeys`).
    by_hash: HashMap<TokenHash, CachedToken, RandomKeys>,
    hashes_by_id: HashMap<TokenId, Vec<TokenHash>>,
}

/// Bounded TTL cache. When full, expired entries are dropped; if still full, nothing new is cached
/// (the store answers instead), so memory stays bounded under a flood of distinct tokens.
#[derive(Debug)]
pub(crate) struct VerifyCache {
    inner: RwLock<Inner>,
    /// Bumped (under the write lock) by every eviction.
    epoch: AtomicU64,
    ttl: Duration,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Where confirmations are measured from.
    started: Instant,
    /// How old the last confirmation may be, in nanoseconds since `started`; 0 when nothing follows
    /// other processes' changes (then only the TTL bounds staleness).
    bound_nanos: AtomicU64,
    /// When the follower last began a look whose changes it has applied, in nanoseconds since `started`.
    confirmed_nanos: AtomicU64,
    /// Lookups that read through because the confirmation was too old.
    unconfirmed: AtomicU64,
}

/// How well the verify cache serves: lookups answered from memory, lookups that went to the store,
/// and entries held now. For metrics (`hits / (hits + misses)` is the hit ratio).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Verifies answered from the cache since start.
    pub hits: u64,
    /// Verifies that looked in the cache and went to the store since start.
    pub misses: u64,
    /// Tokens cached now.
    pub entries: usize,
    /// Lookups that read through because the change follower's last confirmed look was older than
    /// its bound (the database was away, or the follower is behind).
    pub unconfirmed: u64,
    /// How old the follower's last confirmed look is; `None` when no follower is attached.
    pub confirmation_age: Option<Duration>,
}

impl VerifyCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            epoch: AtomicU64::new(0),
            ttl,
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            started: Instant::now(),
            bound_nanos: AtomicU64::new(0),
            confirmed_nanos: AtomicU64::new(0),
            unconfirmed: AtomicU64::new(0),
        }
    }

    /// From now on, answer only while a confirmation younger than `bound` holds.
    pub(crate) fn require_confirmation(&self, bound: Duration, confirmed: Instant) {
        self.confirm(confirmed);
        self.bound_nanos.store(nanos(bound).max(1), Ordering::Release);
    }

    /// Everything committed elsewhere before `looked` has been applied.
    pub(crate) fn confirm(&self, looked: Instant) {
        let at = nanos(looked.saturating_duration_since(self.started));
        self.confirmed_nanos.fetch_max(at, Ordering::AcqRel);
    }

    /// How old the last confirmation is, when a follower is attached.
    fn confirmation_age(&self) -> Option<Duration> {
        let bound = self.bound_nanos.load(Ordering::Acquire);
        (bound != 0).then(|| {
            let confirmed = Duration::from_nanos(self.confirmed_nanos.load(Ordering::Acquire));
            self.started.elapsed().saturating_sub(confirmed)
        })
    }

    fn confirmed(&self) -> bool {
        let bound = self.bound_nanos.load(Ordering::Acquire);
        if bound == 0 {
            return true;
        }
        let now = nanos(self.started.elapsed());
        let fresh = now.saturating_sub(self.confirmed_nanos.load(Ordering::Acquire)) < bound;
        if !fresh {
            self.unconfirmed.fetch_add(1, Ordering::Relaxed);
        }
        fresh
    }

    pub(crate) fn get(&self, hash: &TokenHash, now: Timestamp) -> Option<CachedToken> {
        if self.ttl.is_zero() || !self.confirmed() {
            return None;
        }
        let found = self.find(hash, now);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.len(),
            unconfirmed: self.unconfirmed.load(Ordering::Relaxed),
            confirmation_age: self.confirmation_age(),
        }
    }

    fn find(&self, hash: &TokenHash, now: Timestamp) -> Option<CachedToken> {
        let inner = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let cached = inner.by_hash.get(hash)?;
        (now.duration_since(cached.cached_at) < self.ttl && now >= cached.cached_at).then(|| cached.clone())
    }

    /// The eviction epoch now: note it before reading the store, pass it to [`VerifyCache::insert`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a verified token read while the epoch was `seen`; dropped when anything was evicted since.
    pub(crate) fn insert(
        &self,
        hash: TokenHash,
        record: Arc<TokenRecord>,
        matched: HashMatch,
        now: Timestamp,
        seen: u64,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.epoch.load(Ordering::Acquire) != seen {
            return;
        }
        if inner.by_hash.len() >= self.capacity {
            let ttl = self.ttl;
            inner.by_hash.retain(|_, cached| now.duration_since(cached.cached_at) < ttl);
            let Inner { by_hash, hashes_by_id } = &mut *inner;
            hashes_by_id.retain(|_, hashes| {
                hashes.retain(|hash| by_hash.contains_key(hash));
                !hashes.is_empty()
            });
            if inner.by_hash.len() >= self.capacity {
                return;
            }
        }
        let id = record.id;
        if inner.by_hash.insert(hash, CachedToken { record, matched, cached_at: now }).is_none() {
            inner.hashes_by_id.entry(id).or_default().push(hash);
        }
    }

    /// Drops every cached secret of token `id`.
    pub(crate) fn evict(&self, id: &TokenId) {
        let mut inner = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(hashes) = inner.hashes_by_id.remove(id) {
            for hash in hashes {
                inner.by_hash.remove(&hash);
            }
        }
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        inner.by_hash.clear();
        inner.hashes_by_id.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner()).by_hash.len()
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
