//! Accept loop: serves one listener with hyper (HTTP/1.1 and h2c) until shutdown is signalled,
//! then stops accepting and lets in-flight connections finish, up to a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How long a client may take to send its request headers (slowloris guard).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-listener limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections; past it, new ones wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Largest request head (HTTP/1 read buffer; HTTP/2 header list); 431 above it.
    pub max_header_bytes: usize,
}

/// Serves `listener` with `handler` until `shutdown` turns true, then drains connections for at
/// most `drain` before returning.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    limits: Limits,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder.http2().max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // A connection slot first: at the limit, new connections wait in the backlog rather
        // than being accepted and starved.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                // Set by the first request: until then the connection is on probation.
                let spoke = Arc::new(AtomicBool::new(false));
                let heard = Arc::clone(&spoke);
                let service = hyper::service::service_fn(move |req| {
                    heard.store(true, Ordering::Relaxed);
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    tokio::pin!(conn);
                    // A connection that has not completed one request head in time is closed:
                    // HTTP/1's header timeout only starts once a request line begins, and
                    // protocol detection (HTTP/1 or h2c) waits for bytes with no deadline.
                    let result = tokio::select! {
                        r = &mut conn => r,
                        () = tokio::time::sleep(HEADER_READ_TIMEOUT) => {
                            if spoke.load(Ordering::Relaxed) {
                                conn.await
                            } else {
                                tracing::debug!(%peer, "no request within the header timeout; closing");
                                Ok(())
                            }
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(?drain, "connections still open after the drain deadline; closing them");
    }
}
