//! Memory for a million keys: inserts 1,000,000 keys into a limiter capped at 1,000,000, then 200,000 more,
//! printing the process's resident memory (VmRSS) and the key count at each stage.
//! Run with `cargo run --release -p tollgate-ratelimit --example memory` (Linux only: reads /proc/self/status).

use std::error::Error;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use tollgate_ratelimit::{FakeRelativeClock, LocalLimiter, RateKey, RateQuota};

const CAP: usize = 1_000_000;

fn resident_megabytes() -> Result<f64, Box<dyn Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).ok_or("no VmRSS line")?;
    let kilobytes: f64 = line.split_whitespace().nth(1).ok_or("no VmRSS value")?.parse()?;
    Ok(kilobytes / 1024.0)
}

fn key(n: u64) -> RateKey {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    RateKey::from_bytes(bytes)
}

fn insert(limiter: &LocalLimiter<FakeRelativeClock>, keys: std::ops::Range<u64>) -> Result<(), Box<dyn Error>> {
    let quota = RateQuota::new(100, Duration::from_secs(60), 20)?;
    let started = Instant::now();
    let count = keys.end - keys.start;
    for n in keys {
        limiter.check(&key(n), &quota, 1)?;
        assert!(limiter.len() <= CAP);
    }
    println!("  {count} checks on new keys took {:?}", started.elapsed());
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let clock = FakeRelativeClock::default();
    let limiter = LocalLimiter::with_clock(NonZeroUsize::new(CAP).ok_or("zero cap")?, clock.clone());
    let baseline = resident_megabytes()?;
    println!("baseline: {baseline:.1} MB");

    insert(&limiter, 0..CAP as u64)?;
    let full = resident_megabytes()?;
    println!("1,000,000 keys: len {}, VmRSS {full:.1} MB ({:.1} MB above baseline)", limiter.len(), full - baseline);

    // Every key is still active (the clock has not moved): the cap forces evictions of active keys.
    insert(&limiter, CAP as u64..CAP as u64 + 200_000)?;
    let stats = limiter.stats();
    println!(
        "+200,000 new keys: len {}, VmRSS {:.1} MB, evicted active {}, untracked {}",
        limiter.len(),
        resident_megabytes()?,
        stats.evicted_active,
        stats.untracked
    );

    clock.advance(Duration::from_secs(13)); // every bucket is full again
    let evicted = limiter.evict_idle();
    println!("after evict_idle: evicted {evicted}, len {}, VmRSS {:.1} MB", limiter.len(), resident_megabytes()?);
    Ok(())
}
