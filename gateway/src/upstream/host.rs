//! One upstream server, shared by every remote version it answers: its connection pool, its
//! bound on requests in flight, its retry budget, and its health (checks and ejection).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use model_store::{Upstream, UpstreamProtocol};
use settings::UpstreamConfig;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{ErrorKind, UpstreamError};

/// Hosts in use, by base URL and protocol: versions on the same server share one pool and one
/// health state. A host lives as long as a version uses it (the map holds it weakly).
static HOSTS: LazyLock<Mutex<HashMap<HostKey, Weak<Host>>>> = LazyLock::new(Mutex::default);

/// What tells hosts apart: the base URL and the protocol spoken to it.
type HostKey = (String, UpstreamProtocol);

/// Retry tokens are kept in thousandths; a retry costs one token, a request earns `retry_budget`.
const MILLI: u64 = 1000;
/// At most this many retries can be saved up (and a new host starts with them).
const MAX_RETRY_TOKENS: u64 = 10 * MILLI;

/// One upstream server.
#[derive(Debug)]
pub struct Host {
    url: String,
    protocol: UpstreamProtocol,
    config: UpstreamConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    slots: Semaphore,
    /// Consecutive failures (checks, or connections refused) since the last success.
    failures: AtomicU32,
    ejected: AtomicBool,
    retry_tokens: AtomicU64,
    metrics: HostMetrics,
}

#[derive(Debug)]
struct HostMetrics {
    duration: metrics::Histogram,
    in_flight: metrics::Gauge,
    healthy: metrics::Gauge,
    ejections: metrics::Counter,
    retries: metrics::Counter,
}

impl Host {
    /// The host of `url` spoken to with `protocol`, made (with `config`, and its health task
    /// started) if no version uses one with the same config. Needs a tokio runtime.
    pub fn shared(url: &str, protocol: UpstreamProtocol, config: &UpstreamConfig) -> Arc<Host> {
        let mut hosts = HOSTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        hosts.retain(|_, host| host.strong_count() > 0);
        let key = (url.to_owned(), protocol);
        if let Some(host) = hosts.get(&key).and_then(Weak::upgrade)
            && host.config == *config
        {
            return host;
        }
        let host = Arc::new(Host::new(url, protocol, config));
        hosts.insert(key, Arc::downgrade(&host));
        tokio::spawn(check_health(Arc::downgrade(&host)));
        host
    }

    fn new(url: &str, protocol: UpstreamProtocol, config: &UpstreamConfig) -> Host {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.max_concurrency);
        if protocol == UpstreamProtocol::H2c {
            // One connection, its streams multiplexed; pings keep an idle one known alive.
            builder
                .http2_only(true)
                .http2_keep_alive_interval(Duration::from_secs(20))
                .http2_keep_alive_timeout(config.connect_timeout.max(Duration::from_secs(1)));
        }
        let client = builder.build(connector);
        let label = url.to_owned();
        let metrics = HostMetrics {
            duration: metrics::histogram!("switchyard_upstream_request_duration_seconds", "upstream" => label.clone()),
            in_flight: metrics::gauge!("switchyard_upstream_in_flight", "upstream" => label.clone()),
            healthy: metrics::gauge!("switchyard_upstream_healthy", "upstream" => label.clone()),
            ejections: metrics::counter!("switchyard_upstream_ejections_total", "upstream" => label.clone()),
            retries: metrics::counter!("switchyard_upstream_retries_total", "upstream" => label),
        };
        metrics.healthy.set(1.0);
        Host {
            url: url.to_owned(),
            protocol,
            config: config.clone(),
            client,
            slots: Semaphore::new(config.max_concurrency),
            failures: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            retry_tokens: AtomicU64::new(MAX_RETRY_TOKENS.min(3 * MILLI)),
            metrics,
        }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether requests are refused for failed health checks.
    pub fn ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    /// Requests in flight to it now.
    pub fn in_flight(&self) -> usize {
        self.config.max_concurrency.saturating_sub(self.slots.available_permits())
    }

    /// What the admin API shows of it: where, how it is spoken to, its health and load now.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "protocol": self.protocol.as_str(),
            "ejected": self.ejected(),
            "consecutive_failures": self.failures.load(Ordering::Acquire),
            "in_flight": self.in_flight(),
            "max_concurrency": self.config.max_concurrency,
        })
    }

    /// Every host a loaded version uses now, by URL.
    pub fn all() -> Vec<Arc<Host>> {
        let hosts = HOSTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<Arc<Host>> = hosts.values().filter_map(Weak::upgrade).collect();
        all.sort_by(|a, b| a.url.cmp(&b.url));
        all
    }

    pub(super) fn client(&self) -> &Client<HttpConnector, Full<Bytes>> {
        &self.client
    }

    /// A slot under `max_concurrency`, waited for; released (and the gauge lowered) on drop.
    pub(super) async fn slot(&self) -> Slot<'_> {
        let permit = self.slots.acquire().await.expect("the semaphore is never closed");
        self.metrics.in_flight.increment(1.0);
        Slot { _permit: permit, gauge: &self.metrics.in_flight }
    }

    /// Takes a retry token if the budget has one; every call of `answered` earns a fraction.
    pub(super) fn try_retry(&self) -> bool {
        let took = self
            .retry_tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| tokens.checked_sub(MILLI))
            .is_ok();
        if took {
            self.metrics.retries.increment(1);
        }
        took
    }

    /// The upstream answered (whatever the status): the connection works.
    pub(super) fn answered(&self) {
        self.failures.store(0, Ordering::Release);
        let earned = (self.config.retry_budget * MILLI as f64) as u64;
        let _ = self
            .retry_tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| Some((tokens + earned).min(MAX_RETRY_TOKENS)));
    }

    /// A connection could not be made: one failure towards ejection.
    pub(super) fn connect_failed(&self) {
        self.failed("connections refused");
    }

    pub(super) fn record(&self, round_trip: Duration) {
        self.metrics.duration.record(round_trip.as_secs_f64());
    }

    /// An error of a request to `upstream` on this host, counted by kind.
    pub(super) fn error(&self, upstream: &Upstream, kind: ErrorKind, message: String) -> UpstreamError {
        metrics::counter!("switchyard_upstream_errors_total", "upstream" => self.url.clone(), "kind" => kind.as_str())
            .increment(1);
        UpstreamError { upstream: upstream.to_string(), kind, message }
    }

    fn failed(&self, what: &str) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.config.eject_after && !self.ejected.swap(true, Ordering::AcqRel) {
            self.metrics.ejections.increment(1);
            self.metrics.healthy.set(0.0);
            tracing::warn!(upstream = %self.url, failures, "upstream ejected after {failures} consecutive {what}");
        }
    }

    fn check_passed(&self) {
        self.failures.store(0, Ordering::Release);
        if self.ejected.swap(false, Ordering::AcqRel) {
            self.metrics.healthy.set(1.0);
            tracing::info!(upstream = %self.url, "upstream ready again; no longer ejected");
        }
    }
}

/// A request's slot on its host.
pub(super) struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    gauge: &'a metrics::Gauge,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// Checks the host's `GET /v2/health/ready` every `health_interval` while any version uses it:
/// a 200 clears its failures (and ejection); anything else, or no answer within the interval
/// plus the connect timeout, is one failure.
async fn check_health(host: Weak<Host>) {
    let (uri, interval, timeout) = match host.upgrade() {
        Some(h) => match format!("{}/v2/health/ready", h.url).parse::<http::Uri>() {
            Ok(uri) => (uri, h.config.health_interval, h.config.health_interval + h.config.connect_timeout),
            Err(_) => return,
        },
        None => return,
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(host) = host.upgrade() else { return };
        let request = http::Request::get(uri.clone()).body(Full::new(Bytes::new())).expect("a GET of a parsed URI");
        let ready = match tokio::time::timeout(timeout, host.client.request(request)).await {
            Ok(Ok(response)) => response.status() == http::StatusCode::OK,
            _ => false,
        };
        if ready { host.check_passed() } else { host.failed("failed health checks") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(retry_budget: f64) -> Host {
        Host::new(
            "http://127.0.0.1:9",
            UpstreamProtocol::Http1,
            &UpstreamConfig { retry_budget, ..UpstreamConfig::default() },
        )
    }

    #[test]
    fn retries_are_budgeted_per_answered_request() {
        let h = host(0.1);
        // A new host has three retries saved; then each costs one, and ten answers earn one more.
        assert!((0..3).all(|_| h.try_retry()));
        assert!(!h.try_retry(), "the budget is spent");
        for _ in 0..9 {
            h.answered();
        }
        assert!(!h.try_retry(), "nine answers earn 0.9 of a retry");
        h.answered();
        assert!(h.try_retry(), "the tenth earns the retry");
        // Savings are capped: a long healthy run cannot bank a retry storm.
        for _ in 0..10_000 {
            h.answered();
        }
        assert_eq!((0..100).filter(|_| h.try_retry()).count(), 10);
        // A zero budget never retries once the start-up allowance is gone.
        let none = host(0.0);
        for _ in 0..1000 {
            none.answered();
        }
        assert_eq!((0..10).filter(|_| none.try_retry()).count(), 3);
    }

    #[test]
    fn consecutive_failures_eject_and_a_passing_check_restores() {
        let h = host(0.1);
        h.connect_failed();
        h.connect_failed();
        assert!(!h.ejected(), "two failures: not yet (eject_after = 3)");
        h.answered();
        h.connect_failed();
        h.connect_failed();
        assert!(!h.ejected(), "an answer reset the count");
        h.connect_failed();
        assert!(h.ejected());
        assert_eq!(h.view()["ejected"], true);
        h.check_passed();
        assert!(!h.ejected());
        assert_eq!(h.view()["consecutive_failures"], 0);
    }
}
