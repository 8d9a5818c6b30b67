//! Accepting connections and serving HTTP/1.1 on them, with the limits a
//! slow or hostile client meets (SPEC §8, "Hostile connections"):
//!
//! - a connection must send a whole request head within the header timeout
//!   of being opened or of its previous response, so neither a trickled
//!   head nor an idle keep-alive connection holds a descriptor for long;
//! - a body must arrive within the request timeout of its head (enforced
//!   where the body is read, [`super::body`], through [`BodyDeadline`]);
//! - when the process runs out of file descriptors, the accept loop waits
//!   for a connection to close instead of spinning, and keeps serving the
//!   connections it has.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower_service::Service;

/// How long the accept loop waits, out of descriptors, when no connection
/// of its own closes: descriptors may also be freed elsewhere.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How often running out of descriptors is reported while it lasts: a
/// flood must not turn into a flood of log lines.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// The time limits a connection works under.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From a connection's opening, or the end of its previous response,
    /// to the end of the next request head.
    pub header_timeout: Duration,
    /// From the end of a request head to the end of its body.
    pub request_timeout: Duration,
}

/// When the body of a request must have arrived; a request extension set
/// by [`serve`]. Absent when the router is called some other way.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Instant);

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish, closes idle connections and returns once
/// every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let open = Arc::new(OpenConnections::default());
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut last_report: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = Connection {
                    builder: builder.clone(),
                    router: router.clone(),
                    limits,
                    peer,
                    stop: stop.clone(),
                    _open: OpenConnection::new(&open),
                };
                tokio::spawn(connection.run(stream));
            }
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                // Out of descriptors (or memory): the pending connection
                // stays in the kernel's queue until one of ours closes.
                if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                    last_report = Some(Instant::now());
                    tracing::warn!(
                        error = %err,
                        open_connections = open.count(),
                        "cannot accept connections; serving the open ones, accepting as they close"
                    );
                }
                tokio::select! {
                    () = open.one_closed() => {}
                    () = tokio::time::sleep(ACCEPT_RETRY) => {}
                    () = &mut shutdown => break,
                }
            }
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    open.all_closed().await;
}

/// Errors that concern one connection that is already gone, not the
/// listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// One accepted connection and what serving it needs.
struct Connection {
    builder: http1::Builder,
    router: Router,
    limits: ConnectionLimits,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    _open: OpenConnection,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let Self {
            builder,
            router,
            limits,
            peer,
            mut stop,
            _open,
        } = self;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let extensions = request.extensions_mut();
            extensions.insert(ConnectInfo(peer));
            extensions.insert(BodyDeadline(Instant::now() + limits.request_timeout));
            let mut router = router.clone();
            async move { router.call(request).await }
        });
        let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
        tokio::select! {
            // Errors here are the client's (a timeout, a reset, a bad
            // head that hyper already answered): nothing to report.
            _ = connection.as_mut() => return,
            _ = stop.wait_for(|stop| *stop) => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// How many connections are open, and a signal each time one closes.
#[derive(Default)]
struct OpenConnections {
    count: AtomicUsize,
    closed: Notify,
}

impl OpenConnections {
    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Completes when a connection closes after this was called.
    async fn one_closed(&self) {
        self.closed.notified().await;
    }

    /// Completes once no connection is open.
    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            let mut closed = pin!(closed);
            // Registered before the count is read, so a close between the
            // two is not missed.
            closed.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Counts one open connection for as long as it lives.
struct OpenConnection(Arc<OpenConnections>);

impl OpenConnection {
    fn new(open: &Arc<OpenConnections>) -> Self {
        open.count.fetch_add(1, Ordering::Relaxed);
        Self(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::Release);
        self.0.closed.notify_waiters();
    }
}

/// Raises this process's open-file soft limit to its hard limit, so that
/// the descriptors an operator allows are the ones jwtd can use. Returns
/// the limit now in force.
pub fn raise_open_file_limit() -> io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}
