//! The gRPC listener: HTTP/2 (h2c) connections served by hyper with the tonic routes
//! (inference, health, reflection) until shutdown is signalled, then drained until the deadline.
//! hyper directly rather than tonic's own server: tonic's would answer a call past its
//! `grpc-timeout` with CANCELLED and drop it unrecorded, where the pipeline answers
//! DEADLINE_EXCEEDED and records it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tonic::service::Routes;
use tonic::{Code, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceExt;

use super::Inference;
use super::pb::grpc_inference_service_server::GrpcInferenceServiceServer;
use crate::app::App;

/// Limits of the gRPC listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections; past it, new ones wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Largest header list a request may send.
    pub max_header_bytes: usize,
}

/// How long a new connection may take to start its first call (as REST's header read timeout).
const FIRST_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on a quiet connection, and how long the answer may take before it is closed.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The service every gRPC client is told about in health checks.
const SERVICE_NAME: &str = "inference.GRPCInferenceService";

/// What the listener serves: the inference service, health and reflection, built (and checked)
/// before the listener accepts anything.
#[derive(Debug)]
pub struct Services {
    routes: Routes,
    health: HealthReporter,
    /// Largest message accepted (`[server] max_body_bytes`).
    limit: usize,
}

impl Services {
    /// The services on `app`; health answers SERVING from here on.
    pub async fn new(app: Arc<App>) -> anyhow::Result<Services> {
        let limit = app.max_body_bytes;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", ServingStatus::Serving).await;
        health.set_service_status(SERVICE_NAME, ServingStatus::Serving).await;
        // Both reflection versions: grpcurl and older clients ask v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(super::DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let inference = GrpcInferenceServiceServer::new(Inference::new(app)).max_decoding_message_size(limit);
        let routes = Routes::new(inference)
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .prepare();
        Ok(Services { routes, health, limit })
    }
}

/// Serves `listener` until `shutdown` turns true, then lets calls in flight finish until `drain`
/// after the signal (health turns NOT_SERVING at the signal).
pub async fn serve(
    listener: TcpListener,
    services: Services,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    limits: Limits,
) {
    let Services { routes, health, limit } = services;
    let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // Peers that vanished without closing give their slot back.
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let called = Arc::new(AtomicBool::new(false));
        let first_call = Arc::clone(&called);
        let service = hyper::service::service_fn(move |req| {
            first_call.store(true, Ordering::Relaxed);
            let routes = routes.clone();
            async move {
                let response = routes.oneshot(req).await.unwrap_or_else(|never: Infallible| match never {});
                Ok::<_, Infallible>(size_response(response, limit))
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
        tokio::spawn(async move {
            tokio::pin!(conn);
            // A connection that makes no call in time is closed (it holds a slot): the protocol
            // preface and settings have no deadline of their own.
            let result = tokio::select! {
                r = &mut conn => r,
                () = tokio::time::sleep(FIRST_CALL_TIMEOUT) => {
                    if called.load(Ordering::Relaxed) {
                        conn.await
                    } else {
                        tracing::debug!(%peer, "no gRPC call within the first-call timeout; closing");
                        Ok(())
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "gRPC connection ended with an error");
            }
            drop(permit);
        });
    }
    let deadline = tokio::time::Instant::now() + drain;
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
    if tokio::time::timeout_at(deadline, graceful.shutdown()).await.is_err() {
        tracing::warn!(?drain, "gRPC connections still open after the drain deadline; closing them");
    }
}

/// tonic refuses a message over the decoding limit with OUT_OF_RANGE; gRPC's own servers (and
/// clients) say RESOURCE_EXHAUSTED, which is what a message over `[server] max_body_bytes` gets
/// here. Nothing else in these services answers OUT_OF_RANGE.
pub(super) fn size_status(status: Status, limit: usize) -> Status {
    if status.code() == Code::OutOfRange { Status::resource_exhausted(too_large(limit)) } else { status }
}

fn too_large(limit: usize) -> String {
    format!("the request message is larger than the limit of {limit} bytes ([server] max_body_bytes)")
}

/// `size_status` for a unary call refused before its handler ran: the status is in the
/// response's headers (a trailers-only response).
fn size_response<B>(mut response: http::Response<B>, limit: usize) -> http::Response<B> {
    let h = response.headers_mut();
    if h.get("grpc-status").is_some_and(|s| s.as_bytes() == b"11") {
        // The message is visible ASCII with no '%' (gRPC's percent-encoding leaves it as is).
        if let Ok(message) = http::HeaderValue::from_str(&too_large(limit)) {
            h.insert("grpc-status", http::HeaderValue::from_static("8"));
            h.insert("grpc-message", message);
        }
    }
    response
}
