//! Accepting connections and serving HTTP/1.1 on them, with the limits a
//! slow or hostile client meets (SPEC §8, "Hostile connections"):
//!
//! - a connection must send a whole request head within the header timeout
//!   of being opened or of its previous response, so neither a trickled
//!   head nor an idle keep-alive connection holds a descriptor for long. A
//!   watchdog per connection enforces it from two timestamps the requests
//!   leave behind, rather than a timer armed per request (which costs a
//!   trip through tokio's timer wheel on every request);
//! - a body must arrive within the request timeout of its head (enforced
//!   where the body is read, through [`Arrival`]);
//! - when the process runs out of file descriptors, the accept loop waits
//!   for a connection to close instead of spinning, and keeps serving the
//!   connections it has.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower_service::Service;

use super::HttpMetrics;

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
    /// From the shutdown signal to the end of the last request in flight.
    pub shutdown_timeout: Duration,
}

/// What the connection knows of a request: a request extension set by
/// [`serve`]. Absent when the router is called some other way.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The peer address of the connection.
    pub peer: SocketAddr,
    /// When the body must have arrived.
    pub body_deadline: Instant,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish, closes idle connections and returns once
/// every connection is closed, or the shutdown timeout has passed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    observed: Option<Arc<HttpMetrics>>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = http1::Builder::new();
    let open = Arc::new(OpenConnections::default());
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut last_report: Option<Instant> = None;
    let spawn_connection = |stream: TcpStream, peer: SocketAddr| {
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            observed: observed.clone(),
            limits,
            peer,
            stop: stop.clone(),
            _open: OpenConnection::new(&open),
        };
        tokio::spawn(connection.run(stream));
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => spawn_connection(stream, peer),
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
    // Connections the kernel completed before the signal are served, not
    // reset with the listener; from now on it completes no more (a client
    // retrying its SYN meets the closed port: connection refused). The
    // queue is emptied with accept(2) itself: the reactor's readiness may
    // not have caught up with the last arrivals.
    complete_no_more_handshakes(&listener);
    for (stream, peer) in already_accepted(listener) {
        spawn_connection(stream, peer);
    }
    let _ = stopping.send(true);
    if tokio::time::timeout(limits.shutdown_timeout, open.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open_connections = open.count(),
            "requests still in flight at shutdown_timeout; closing their connections"
        );
    }
}

/// Makes the kernel drop every packet for `listener` (SYNs, and the ACKs
/// that would complete a handshake), so its queue of completed connections
/// stops growing and can be emptied before it is closed. Without this, a
/// connection completed between the last accept and the close would be
/// reset.
#[cfg(target_os = "linux")]
fn complete_no_more_handshakes(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    // One classic BPF instruction: return 0, i.e. keep no byte of the packet.
    let mut drop_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let program = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    // SAFETY: the program and its one instruction outlive the call, which
    // copies them; the descriptor is the listener's own.
    let attached = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&program).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if attached != 0 {
        tracing::warn!(
            error = %io::Error::last_os_error(),
            "cannot stop new handshakes; a connection completed during shutdown may be reset"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn complete_no_more_handshakes(_listener: &TcpListener) {}

/// Every connection waiting in the listener's queue, accepted without
/// waiting; the listener is closed once the queue is empty.
fn already_accepted(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let mut accepted = Vec::new();
    // Non-blocking, as tokio leaves it: accept fails with WouldBlock once
    // the queue is empty.
    let Ok(listener) = listener.into_std() else {
        return accepted;
    };
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream));
                if let Ok(stream) = stream {
                    accepted.push((stream, peer));
                }
            }
            Err(err) if is_connection_error(&err) => {}
            Err(_) => return accepted,
        }
    }
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
    observed: Option<Arc<HttpMetrics>>,
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
            observed,
            limits,
            peer,
            mut stop,
            _open,
        } = self;
        let activity = Arc::new(Activity::new());
        let requests = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let arrived = requests.started();
            request.extensions_mut().insert(Arrival {
                peer,
                body_deadline: arrived + limits.request_timeout,
            });
            let route = observed.as_ref().map(|o| o.route_of(request.uri().path()));
            let answer = router.clone().call(request);
            let requests = Arc::clone(&requests);
            let observed = observed.clone();
            async move {
                let response = answer.await;
                requests.finished();
                if let (Some(observed), Some(route), Ok(response)) = (&observed, route, &response) {
                    observed.record(route, response.status().as_u16(), arrived.elapsed());
                }
                response
            }
        });
        let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
        let watchdog = tokio::time::sleep(limits.header_timeout);
        let mut watchdog = pin!(watchdog);
        let mut stopping = false;
        let mut closing = false;
        loop {
            tokio::select! {
                // Errors here are the client's (a reset, a bad head that
                // hyper already answered): nothing to report.
                _ = connection.as_mut() => return,
                // The request in flight finishes, an idle connection closes;
                // the watchdog still ends one that never sends its head.
                // A connection accepted just before the signal has not sent
                // its first request yet: that request is answered first.
                _ = stop.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    if activity.used() {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
                () = activity.first_request.notified(), if stopping && !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = watchdog.as_mut() => {
                    let now = Instant::now();
                    match activity.head_due(limits.header_timeout) {
                        // No head within the timeout: dropping the
                        // connection closes it.
                        Some(due) if due <= now => return,
                        Some(due) => watchdog.as_mut().reset(due),
                        None => watchdog.as_mut().reset(now + limits.header_timeout),
                    }
                }
            }
        }
    }
}

/// When a connection's requests started and ended, for its watchdog.
struct Activity {
    opened: Instant,
    /// Whether a request has started on this connection.
    used: AtomicBool,
    /// Signalled when the first request starts.
    first_request: Notify,
    /// Requests being answered (HTTP/1.1: at most one).
    busy: AtomicUsize,
    /// When the connection last became idle, in milliseconds after `opened`.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            used: AtomicBool::new(false),
            first_request: Notify::new(),
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// A request's head has arrived; returns the time.
    fn started(&self) -> Instant {
        self.busy.fetch_add(1, Ordering::Relaxed);
        if !self.used.swap(true, Ordering::AcqRel) {
            self.first_request.notify_one();
        }
        Instant::now()
    }

    /// Whether a request has started on this connection.
    fn used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// Its response is ready.
    fn finished(&self) {
        let idle_since = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(idle_since, Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::Release);
    }

    /// When the next request head is due: `timeout` after the connection
    /// became idle. `None` while a request is being answered.
    fn head_due(&self, timeout: Duration) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle_since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(self.opened + idle_since + timeout)
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
