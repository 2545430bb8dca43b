//! Alerts: what the control plane decides (guard trips, alarms, operator actions, refused
//! reloads) sent to where people look, per `[[alert]]` sink: a generic JSON webhook,
//! Prometheus Alertmanager (`POST /api/v2/alerts`) or a Slack-compatible webhook.
//!
//! Never on the request path and never blocking: `Alerts::send` puts the alert in a bounded
//! queue (a full queue drops it, counted); one task delivers each alert to each subscribed sink,
//! retrying with back-off for `GIVE_UP_AFTER` (a receiver that is down for a while still gets
//! it), and drops repeats of the same alert within `DEDUP_WINDOW`. Every outcome is counted in
//! `switchyard_alerts_total{sink, kind, result}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use settings::{AlertConfig, AlertSink};
use tokio::sync::{Semaphore, mpsc};

/// Alerts waiting for delivery; past it new ones are dropped (counted).
const QUEUE: usize = 1024;
/// The same alert (kind, model, version) again within this window is not sent again.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(60);
/// How long a delivery is retried before it is given up (counted as failed).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(300);
/// One attempt's limit: connect, send, read the status.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 64;

/// Something that happened, to tell people about.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// One of `settings::ALERT_KINDS`.
    pub kind: &'static str,
    pub model: Option<String>,
    pub version: Option<u32>,
    /// One line for people: what happened and the figures that made it happen.
    pub summary: String,
    /// The evidence, as the registry event records it.
    pub detail: Value,
}

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    tx: Option<mpsc::Sender<Alert>>,
}

impl Alerts {
    /// Alerts that go nowhere (no `[[alert]]` configured).
    pub fn none() -> Alerts {
        Alerts { tx: None }
    }

    /// Starts delivering to `sinks`, naming this gateway `replica` in what it sends. Must be
    /// called within a tokio runtime.
    pub fn start(sinks: Vec<AlertConfig>, replica: String) -> Alerts {
        if sinks.is_empty() {
            return Alerts::none();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(dispatch(rx, Arc::new(sinks), Arc::new(replica)));
        Alerts { tx: Some(tx) }
    }

    /// Queues `alert` for every sink that subscribes to its kind.
    pub fn send(&self, alert: Alert) {
        let Some(tx) = &self.tx else { return };
        let kind = alert.kind;
        if tx.try_send(alert).is_err() {
            metrics::counter!("switchyard_alerts_total", "sink" => "queue", "kind" => kind, "result" => "dropped")
                .increment(1);
            tracing::warn!(kind, "alert queue full; alert dropped");
        }
    }
}

async fn dispatch(mut rx: mpsc::Receiver<Alert>, sinks: Arc<Vec<AlertConfig>>, replica: Arc<String>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut last_sent: HashMap<(&'static str, Option<String>, Option<u32>), Instant> = HashMap::new();
    while let Some(alert) = rx.recv().await {
        let now = Instant::now();
        let key = (alert.kind, alert.model.clone(), alert.version);
        if last_sent.get(&key).is_some_and(|t| now.duration_since(*t) < DEDUP_WINDOW) {
            metrics::counter!("switchyard_alerts_total", "sink" => "all", "kind" => alert.kind, "result" => "deduplicated")
                .increment(1);
            continue;
        }
        last_sent.retain(|_, t| now.duration_since(*t) < DEDUP_WINDOW);
        last_sent.insert(key, now);
        let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        for (i, sink) in sinks.iter().enumerate() {
            if !sink.events.iter().any(|e| e == alert.kind) {
                continue;
            }
            let body = payload(sink.sink, &alert, &replica, &at);
            let url = match sink.sink {
                AlertSink::Alertmanager => format!("{}/api/v2/alerts", sink.url.trim_end_matches('/')),
                _ => sink.url.clone(),
            };
            let (kind, label) = (alert.kind, sink_label(sink.sink));
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { return };
            tokio::spawn(async move {
                let result = deliver(&url, &body).await;
                drop(permit);
                metrics::counter!("switchyard_alerts_total", "sink" => label, "kind" => kind, "result" => result)
                    .increment(1);
                if result != "sent" {
                    tracing::error!(sink = i, url, kind, "alert could not be delivered; given up");
                }
            });
        }
    }
}

fn sink_label(sink: AlertSink) -> &'static str {
    match sink {
        AlertSink::Webhook => "webhook",
        AlertSink::Alertmanager => "alertmanager",
        AlertSink::Slack => "slack",
    }
}

/// The body each kind of receiver expects.
pub fn payload(sink: AlertSink, alert: &Alert, replica: &str, at: &str) -> Value {
    match sink {
        AlertSink::Webhook => json!({
            "kind": alert.kind, "model": alert.model, "version": alert.version, "summary": alert.summary,
            "detail": alert.detail, "replica": replica, "at": at,
        }),
        AlertSink::Alertmanager => {
            let mut labels = json!({ "alertname": alert.kind, "replica": replica, "severity": severity(alert.kind) });
            if let Some(m) = &alert.model {
                labels["model"] = json!(m);
            }
            if let Some(v) = alert.version {
                labels["version"] = json!(v.to_string());
            }
            json!([{
                "labels": labels,
                "annotations": { "summary": alert.summary, "detail": alert.detail.to_string() },
                "startsAt": at,
            }])
        }
        AlertSink::Slack => json!({ "text": format!("[switchyard {replica}] {}", alert.summary) }),
    }
}

/// Alertmanager's `severity` label: what needs a person now, and what is a record.
fn severity(kind: &str) -> &'static str {
    match kind {
        "guard_no_healthy_backup" | "lineage_store_unhealthy" => "critical",
        "guard_trip" | "guard_shadow_breach" | "reload_failed" => "warning",
        _ => "info",
    }
}

/// POSTs `body` until a 2xx, retrying connection failures and 5xx/429 with back-off for
/// `GIVE_UP_AFTER`; a 4xx other than 429 is final. Returns `sent`, `rejected` or `failed`.
async fn deliver(url: &str, body: &Value) -> &'static str {
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, post(url, body)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => return "sent",
            Ok(Ok(status)) if status != 429 && (400..500).contains(&status) => {
                tracing::error!(url, status, "alert receiver refused the alert");
                return "rejected";
            }
            Ok(Ok(status)) => tracing::debug!(url, status, "alert receiver failed; retrying"),
            Ok(Err(e)) => tracing::debug!(url, error = %e, "alert receiver unreachable; retrying"),
            Err(_) => tracing::debug!(url, "alert receiver timed out; retrying"),
        }
        if started.elapsed() + pause > GIVE_UP_AFTER {
            return "failed";
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// One HTTP/1.1 POST of a JSON body; the answer's status.
async fn post(url: &str, body: &Value) -> Result<u16, String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            kind: "guard_trip",
            model: Some("mlp".into()),
            version: Some(1),
            summary: "mlp: traffic moved from version 1 to 2".into(),
            detail: json!({"from": 1, "to": 2}),
        }
    }

    #[test]
    fn each_receiver_gets_its_own_shape() {
        let w = payload(AlertSink::Webhook, &alert(), "gw:1", "2026-12-08T00:00:00.000Z");
        assert_eq!(
            (w["kind"].as_str(), w["version"].as_u64(), w["detail"]["to"].as_u64()),
            (Some("guard_trip"), Some(1), Some(2))
        );
        let am = payload(AlertSink::Alertmanager, &alert(), "gw:1", "2026-12-08T00:00:00.000Z");
        let first = &am[0];
        assert_eq!(first["labels"]["alertname"], "guard_trip");
        assert_eq!(first["labels"]["severity"], "warning");
        assert_eq!(first["labels"]["version"], "1", "Alertmanager label values are strings");
        assert!(first["annotations"]["summary"].is_string() && first["startsAt"].is_string());
        let slack = payload(AlertSink::Slack, &alert(), "gw:1", "t");
        assert_eq!(slack["text"], "[switchyard gw:1] mlp: traffic moved from version 1 to 2");
    }
}
