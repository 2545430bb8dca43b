//! Accept loop: serves one listener with hyper (HTTP/1.1 and h2c) until shutdown is signalled,
//! then stops accepting (serving what the kernel had already accepted) and lets in-flight
//! connections finish, up to a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

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

/// After shutdown is signalled, how long connections that were accepted but have not yet sent
/// their first request get to send it before the drain treats them as idle and closes them. A
/// client that connected just before the signal usually has its request on the wire already.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(250);

/// Serves `listener` with `handler` until `shutdown` turns true, then drains connections until
/// `drain` after the signal before returning.
///
/// Shutdown order: stop accepting, but first take the connections the kernel has already
/// completed (the accept backlog), which would otherwise be reset; give connections that have
/// not sent a request yet `FIRST_REQUEST_GRACE` to send one; then let hyper finish every
/// request in flight and close the connections.
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
    let conns = Connections { builder, graceful: GracefulShutdown::new(), silent: Arc::new(AtomicUsize::new(0)) };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // A connection slot first: at the limit, new connections wait in the backlog rather
        // than being accepted and starved.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => conns.serve(stream, peer, permit, handler.clone()),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    // The drain's deadline counts from the signal: the backlog and the first-request grace
    // below come out of it.
    let deadline = tokio::time::Instant::now() + drain;
    // The backlog: connections the kernel completed before we stopped (closing the listener
    // would reset them). Taken while slots last.
    if let Ok(listener) = listener.into_std() {
        while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            let Ok((stream, peer)) = listener.accept() else { break }; // WouldBlock: empty
            // Accepted sockets do not inherit the listener's non-blocking mode; tokio needs it.
            match stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream)) {
                Ok(stream) => conns.serve(stream, peer, permit, handler.clone()),
                Err(e) => tracing::debug!(%peer, error = %e, "cannot serve a connection from the backlog"),
            }
        }
    }
    let grace_ends = (tokio::time::Instant::now() + FIRST_REQUEST_GRACE).min(deadline);
    while conns.silent.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < grace_ends {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if tokio::time::timeout_at(deadline, conns.graceful.shutdown()).await.is_err() {
        tracing::warn!(?drain, "connections still open after the drain deadline; closing them");
    }
}

/// How connections are served, and what the drain needs to know about them.
struct Connections {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    /// Connections that have not sent their first request yet.
    silent: Arc<AtomicUsize>,
}

impl Connections {
    /// Serves one accepted connection on a task of its own, holding `permit` until it ends.
    fn serve<H, F>(&self, stream: tokio::net::TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit, handler: H)
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let _ = stream.set_nodelay(true);
        // Until its first request the connection is on probation, and counted as silent.
        let silent = Silent::count(&self.silent);
        let first_request = Arc::clone(&silent);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            first_request.spoke();
            req.extensions_mut().insert(super::ClientAddr(peer));
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(req).await) }
        });
        let conn = self.builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = self.graceful.watch(conn);
        tokio::spawn(async move {
            tokio::pin!(conn);
            // A connection that has not completed one request head in time is closed:
            // HTTP/1's header timeout only starts once a request line begins, and
            // protocol detection (HTTP/1 or h2c) waits for bytes with no deadline.
            let result = tokio::select! {
                r = &mut conn => r,
                () = tokio::time::sleep(HEADER_READ_TIMEOUT) => {
                    if silent.has_spoken() {
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
            drop(silent);
            drop(permit);
        });
    }
}

/// One connection's place in the silent count: counted until it speaks or ends, whichever
/// comes first.
struct Silent {
    count: Arc<AtomicUsize>,
    counted: AtomicBool,
}

impl Silent {
    fn count(count: &Arc<AtomicUsize>) -> Arc<Silent> {
        count.fetch_add(1, Ordering::AcqRel);
        Arc::new(Silent { count: Arc::clone(count), counted: AtomicBool::new(true) })
    }

    fn has_spoken(&self) -> bool {
        !self.counted.load(Ordering::Acquire)
    }

    /// Leaves the silent count (once; later calls do nothing).
    fn spoke(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.spoke();
    }
}
