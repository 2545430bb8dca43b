//! Metric handles resolved once per loaded version, so that a request records its figures
//! without building label sets or looking keys up in the exporter's registry: a request's
//! counters and histograms are fields here, indexed by route.
//!
//! The metric names and what they mean are described in `recorder::describe_metrics`. Figures of
//! rare events (failed requests, shadow comparisons, feedback) are still recorded through the
//! `metrics` macros where they happen.

mod recorder;
pub mod slices;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use policy::router::Route;
pub use recorder::metrics_handle;

/// Routes a primary run takes, in the order of `VersionMetrics::routes`. Shadow runs are
/// counted by `http::shadow`.
const PRIMARY_ROUTES: [Route; 4] = [Route::Champion, Route::Challenger, Route::Backup, Route::Pinned];

/// One version's request figures.
pub struct VersionMetrics {
    model: String,
    version: String,
    /// `switchyard_queue_duration_seconds{model,version}`.
    pub queue: Histogram,
    /// `switchyard_compute_duration_seconds{model,version}`.
    pub compute: Histogram,
    /// `switchyard_queue_depth{model,version}`.
    pub queue_depth: Gauge,
    routes: [OnceLock<RouteMetrics>; PRIMARY_ROUTES.len()],
}

/// A version's figures for one route.
struct RouteMetrics {
    /// `switchyard_request_duration_seconds{model,version,route}`.
    duration: Histogram,
    /// `switchyard_requests_total{model,version,route,status="200"}`: the common case, kept.
    ok: Counter,
}

impl VersionMetrics {
    /// Registers (or finds) `model` v`version`'s series with the installed recorder.
    pub fn new(model: &str, version: u32) -> VersionMetrics {
        let (model, version) = (model.to_owned(), version.to_string());
        let labels = [("model", model.clone()), ("version", version.clone())];
        VersionMetrics {
            queue: metrics::histogram!("switchyard_queue_duration_seconds", &labels),
            compute: metrics::histogram!("switchyard_compute_duration_seconds", &labels),
            queue_depth: metrics::gauge!("switchyard_queue_depth", &labels),
            routes: Default::default(),
            model,
            version,
        }
    }

    /// Records one primary run: its duration, and its status in the request count.
    pub fn record_request(&self, route: Route, status: u16, elapsed: Duration) {
        let Some(at) = PRIMARY_ROUTES.iter().position(|r| *r == route) else {
            return self.record_uncommon(route, status, elapsed);
        };
        let kept = self.routes[at].get_or_init(|| self.register(route));
        kept.duration.record(elapsed.as_secs_f64());
        if status == 200 {
            kept.ok.increment(1);
        } else {
            self.count_status(route, status);
        }
    }

    /// A route's series, registered the first time the route is taken (so a scrape shows the
    /// routes a version has served, as before anything was kept).
    fn register(&self, route: Route) -> RouteMetrics {
        RouteMetrics {
            duration: metrics::histogram!("switchyard_request_duration_seconds", &self.labels(route, None)),
            ok: metrics::counter!("switchyard_requests_total", &self.labels(route, Some(200))),
        }
    }

    /// The labels of a per-route series: model, version, route, and the status if given.
    fn labels(&self, route: Route, status: Option<u16>) -> Vec<(&'static str, String)> {
        let mut labels = vec![
            ("model", self.model.clone()),
            ("version", self.version.clone()),
            ("route", route.as_str().to_owned()),
        ];
        if let Some(status) = status {
            labels.push(("status", status.to_string()));
        }
        labels
    }

    fn record_uncommon(&self, route: Route, status: u16, elapsed: Duration) {
        metrics::histogram!("switchyard_request_duration_seconds", &self.labels(route, None))
            .record(elapsed.as_secs_f64());
        self.count_status(route, status);
    }

    fn count_status(&self, route: Route, status: u16) {
        metrics::counter!("switchyard_requests_total", &self.labels(route, Some(status))).increment(1);
    }
}

impl std::fmt::Debug for VersionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionMetrics")
            .field("model", &self.model)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn kept_handles_and_the_slow_path_land_in_the_same_series() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let m = VersionMetrics::new("mlp", 3);
            m.record_request(Route::Champion, 200, Duration::from_millis(2));
            m.record_request(Route::Champion, 200, Duration::from_millis(4));
            m.record_request(Route::Pinned, 400, Duration::from_millis(1));
            m.record_request(Route::Shadow, 200, Duration::from_millis(1));
            m.queue.record(0.001);
            // What the macros would have recorded by hand joins the kept series.
            metrics::counter!("switchyard_requests_total", "model" => "mlp", "version" => "3", "route" => "champion", "status" => "200")
                .increment(1);
        });
        let text = handle.render();
        let line = |prefix: &str| {
            text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}")).to_owned()
        };
        assert!(
            line(r#"switchyard_requests_total{model="mlp",version="3",route="champion",status="200"}"#).ends_with(" 3")
        );
        assert!(
            line(r#"switchyard_requests_total{model="mlp",version="3",route="pinned",status="400"}"#).ends_with(" 1")
        );
        assert!(
            line(r#"switchyard_requests_total{model="mlp",version="3",route="shadow",status="200"}"#).ends_with(" 1")
        );
        assert!(
            line(r#"switchyard_request_duration_seconds_count{model="mlp",version="3",route="champion"}"#)
                .ends_with(" 2")
        );
        assert!(line(r#"switchyard_queue_duration_seconds_count{model="mlp",version="3"}"#).ends_with(" 1"));
        // A route never taken has no series (no zeros to mistake for traffic).
        assert!(!text.contains(r#"route="backup""#), "{text}");
    }
}
