//! A rate limit per client address: a token bucket each, refilled at `rate` per second up to
//! `burst`. The table is bounded: when it is full, buckets that have refilled completely (their
//! clients idle) are dropped first, and a client that finds no room is limited, so a flood of
//! new addresses cannot grow memory or lift the limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most client addresses tracked at once.
const MAX_CLIENTS: usize = 10_000;

/// Token buckets by client address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` requests per second per client, bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate, burst: burst.max(1.0), buckets: Mutex::default() }
    }

    /// Takes one token for `client` at `now`; `Err(wait)` when it has none (retry after `wait`).
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&client) && buckets.len() >= MAX_CLIENTS {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refilled(b, now, rate, burst) < burst);
            if buckets.len() >= MAX_CLIENTS {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = refilled(bucket, now, self.rate, self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

fn refilled(bucket: &Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate_and_others_are_not_affected() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(ip(1), t0).is_ok());
        }
        let wait = limiter.check(ip(1), t0).expect_err("burst spent");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.check(ip(2), t0).is_ok(), "another client has its own bucket");
        assert!(limiter.check(ip(1), t0 + Duration::from_millis(100)).is_ok(), "one token back after 1/rate");
        assert!(limiter.check(ip(1), t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn the_table_is_bounded_and_idle_clients_make_room() {
        let limiter = RateLimiter::new(1.0, 1.0);
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS {
            let addr = IpAddr::from(std::net::Ipv6Addr::from(i as u128));
            assert!(limiter.check(addr, t0).is_ok());
        }
        assert!(limiter.check(ip(1), t0).is_err(), "full of busy clients: a new one waits");
        // A second later every bucket has refilled: their clients are idle and make room.
        assert!(limiter.check(ip(1), t0 + Duration::from_secs(1)).is_ok());
    }
}
