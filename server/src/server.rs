//! The server proper: the accept loop, per-connection routing, and the shutdown sequence.
//!
//! [`Server::new`] does everything that can fail before the server announces itself (open the
//! latency log); [`Server::run`] accepts until its shutdown future resolves, then stops
//! accepting, ends emulated pauses, tells every connection to go away, waits for them within a
//! bounded time, and hands back a [`ServerReport`]. One task per connection, never per message,
//! and none while a socket is parked (see `park`): the accept loop also takes parked sockets
//! out of the lot as they become readable or due and spawns their tasks.
//! Writing result files and signal handling belong to the binary edge (`run_main`).

use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use tokio::io::ReadBuf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at, Instant};
use wsbench_core::clock::{now_ns, process_cpu_ns};
use wsbench_core::layout::SERVER_LATENCY_LOG;
use wsbench_core::plan::{ServerPlan, Workload};

use crate::engine::{self, ConnectionContext, Upgraded, CLOSE_WAIT};
use crate::http::{self, ReadError, Refusal, Route};
use crate::limits::{Budget, Limits};
use crate::metrics::{Metrics, OpenSocket, ParkedSocket};
use crate::park::{self, IdleConnection, Lot, Parked, Wake};
use crate::pause::{PauseGate, PauseTicker};
use crate::recorder::{Harvester, IntervalLogFile, Recorder};
use crate::report::ServerReport;
use crate::gate::Gate;
use crate::routes::{client_page, metrics_text, CLIENT_CONTENT_TYPE, HEALTH_BODY, METRICS_CONTENT_TYPE};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::transport::{Stream, Tls};
use crate::trim::Trimmer;
use crate::workload::{Hub, QUEUE_BYTES};
use wsbench_core::codec::{deflate, MAX_HEADER_LEN};
use crate::ServeError;

/// Extra time, beyond [`CLOSE_WAIT`], that shutdown grants connection tasks before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(150);

/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound, ready server.
#[derive(Debug)]
pub struct Server {
    plan: ServerPlan,
    listener: TcpListener,
    local_addr: SocketAddr,
    ctx: Arc<ConnectionContext>,
    latency_log: Option<IntervalLogFile>,
}

impl Server {
    /// Prepares a server for `plan` on `listener` (whose address may differ from `plan.listen`,
    /// e.g. when port 0 was asked for). Creates `plan.out` and opens the latency log in it.
    pub fn new(plan: ServerPlan, listener: TcpListener) -> Result<Self, ServeError> {
        Self::with_pause_gate(plan, listener, Arc::new(PauseGate::new()))
    }

    /// As [`Server::new`], pausing through `gate`, which the caller may also have wired into
    /// the runtime's thread hooks.
    pub fn with_pause_gate(
        plan: ServerPlan,
        listener: TcpListener,
        gate: Arc<PauseGate>,
    ) -> Result<Self, ServeError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| ServeError::listen(plan.listen, &e))?;
        let max_message_size = usize::try_from(plan.max_message_size).map_err(|_| {
            ServeError::Config(format!(
                "--max-message-size {} does not fit in memory",
                plan.max_message_size
            ))
        })?;
        // A broadcast is queued whole for every member: it must fit a member's queue.
        let max_message_size = if plan.workload == Workload::Broadcast {
            max_message_size.min(QUEUE_BYTES - MAX_HEADER_LEN)
        } else {
            max_message_size
        };
        let latency_log = match &plan.out {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| ServeError::Output {
                    path: dir.clone(),
                    source,
                })?;
                let path = dir.join(SERVER_LATENCY_LOG);
                Some(
                    IntervalLogFile::create(&path)
                        .map_err(|source| ServeError::Output { path, source })?,
                )
            }
            None => None,
        };
        let tls = match &plan.tls {
            Some(files) => Some(
                Tls::from_pem_files(&files.cert, &files.key)
                    .map_err(|e| ServeError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let ctx = Arc::new(ConnectionContext {
            tls,
            subprotocols: plan.subprotocols.clone(),
            require_subprotocol: plan.require_subprotocol,
            gate: Gate::default(),
            deflate: plan.deflate,
            engine: plan.engine,
            workload: plan.workload,
            handler: plan.handler,
            max_message_size,
            limits: Limits::default(),
            budget: Budget::new(Limits::default().max_buffered),
            metrics: Arc::new(Metrics::default()),
            pause: gate,
            recorder: Arc::new(Recorder::new()),
            hub: Arc::new(Hub::new(plan.workload, plan.engine, plan.fanout)),
            go_away: Notify::new(),
            lot: Lot::new().map_err(ServeError::Park)?,
        });
        Ok(Self {
            plan,
            listener,
            local_addr,
            ctx,
            latency_log,
        })
    }

    /// Enforces `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        let ctx = Arc::get_mut(&mut self.ctx).expect("the context is shared only once running");
        ctx.limits = limits;
        ctx.budget = Budget::new(limits.max_buffered);
        self
    }

    /// Lets upgrades in through `gate` instead of letting everyone in.
    pub fn with_gate(mut self, gate: Gate) -> Self {
        let ctx = Arc::get_mut(&mut self.ctx).expect("the context is shared only once running");
        ctx.gate = gate;
        self
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's live counters (what `/metrics` shows).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.ctx.metrics)
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully (clients get close code
    /// 1001 and half a second to answer; stragglers are dropped soon after) and reports what
    /// happened.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<ServerReport, ServeError> {
        let Self {
            plan,
            listener,
            local_addr: _,
            ctx,
            latency_log,
        } = self;
        let started_at = SystemTime::now();
        let start_ns = now_ns();
        let start_cpu_ns = process_cpu_ns();

        let harvester =
            Harvester::start(Arc::clone(&ctx.recorder), latency_log, started_at, start_ns)
                .map_err(ServeError::Thread)?;
        let ticker = match plan.pause {
            Some(p) => Some(
                PauseTicker::start(Arc::clone(&ctx.pause), p, Arc::clone(&ctx.metrics))
                    .map_err(ServeError::Thread)?,
            ),
            None => None,
        };
        let trimmer = Trimmer::start(Arc::clone(&ctx.metrics)).map_err(ServeError::Thread)?;
        let trigger = ShutdownTrigger::new();
        let mut tasks = JoinSet::new();
        let parked = ctx.lot.readiness().map_err(ServeError::Park)?;

        tokio::pin!(shutdown);
        loop {
            // The lot's next sweep for deadlines, if anything is parked.
            let due = ctx.lot.next_due();
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        ctx.pause.safepoint();
                        // Latency is what we measure; Nagle's algorithm would add up to 40 ms.
                        if stream.set_nodelay(true).is_err() {
                            continue; // the peer is gone already
                        }
                        if let Some((stream, slot, deadline)) = park_pending(stream, &ctx) {
                            tasks.spawn(connection(stream, Arc::clone(&ctx), trigger.subscribe(), slot, deadline));
                        }
                    }
                    Err(e) => {
                        eprintln!("wsbench server: accept failed: {e}; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                woken = poll_fn(|cx| {
                    let mut woken = Vec::new();
                    ctx.lot.poll_woken(&parked, cx, &mut woken).map(|()| woken)
                }) => {
                    for (p, wake) in woken {
                        unpark(p, wake, &ctx, &trigger, &mut tasks);
                    }
                }
                () = sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => report_panic(done),
            }
        }

        // New clients are refused from here on; pauses end so closing is not delayed by them.
        drop(listener);
        if let Some(t) = ticker {
            t.stop();
        }
        trigger.trigger();
        ctx.go_away.notify_waiters();
        // Parked connections are served again to be closed like the others (1001); pending
        // handshakes are dropped, as a waiting one would be.
        for p in ctx.lot.close() {
            unpark(p, Wake::Ready, &ctx, &trigger, &mut tasks);
        }
        drop(parked);
        let deadline = Instant::now() + CLOSE_WAIT + SHUTDOWN_GRACE;
        loop {
            match timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(done)) => report_panic(done),
                Ok(None) => break,
                Err(_) => {
                    eprintln!(
                        "wsbench server: {} connections did not close in time; dropping them",
                        tasks.len()
                    );
                    tasks.shutdown().await;
                    break;
                }
            }
        }
        let duration = Duration::from_nanos(now_ns().saturating_sub(start_ns));
        let cpu_ns = process_cpu_ns().saturating_sub(start_cpu_ns);

        drop(trimmer);
        let harvest = tokio::task::spawn_blocking(move || harvester.finish())
            .await
            .map_err(|_| {
                ServeError::Thread(std::io::Error::other("the histogram harvester panicked"))
            })?;
        Ok(ServerReport {
            complete: true,
            started_at,
            duration,
            metrics: ctx.snapshot(),
            one_way_latency_ns: harvest.total,
            allocations: ctx.recorder.allocation_window(),
            cpu_pct: if duration.is_zero() {
                0.0
            } else {
                cpu_ns as f64 / duration.as_nanos() as f64 * 100.0
            },
            log_error: harvest.log_error,
            limits: ctx.limits,
            fanout: matches!(plan.workload, Workload::Broadcast | Workload::Push)
                .then(|| ctx.hub.counts.snapshot()),
            gate: ctx.gate.config().clone(),
            deflate_agreements: ctx.metrics.deflate_agreements(),
        })
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// A socket just accepted: parked at once when it has no input yet and the server has room
/// for it (it needs no task until its client speaks); else handed back, with its place in the
/// socket count and its handshake deadline, to be served by a task.
fn park_pending(
    stream: TcpStream,
    ctx: &Arc<ConnectionContext>,
) -> Option<(TcpStream, Option<ParkedSocket>, Instant)> {
    // One deadline for the TLS handshake and the request head, however slowly they come.
    let deadline = Instant::now() + ctx.limits.handshake_timeout;
    let slot = ctx
        .metrics
        .open_socket(ctx.limits.max_connections)
        .map(OpenSocket::park);
    let Some(slot) = slot else {
        return Some((stream, None, deadline));
    };
    if park::has_input(&stream) {
        return Some((stream, Some(slot), deadline));
    }
    let socket = match stream.into_std() {
        Ok(s) => s,
        Err(_) => {
            drop(ctx.metrics.resume_socket(slot));
            return None;
        }
    };
    match ctx.lot.park(Parked::Pending {
        socket,
        deadline,
        slot,
    }) {
        Ok(()) => None,
        Err(Parked::Pending { socket, slot, .. }) => match TcpStream::from_std(socket) {
            Ok(stream) => Some((stream, Some(slot), deadline)),
            Err(_) => {
                drop(ctx.metrics.resume_socket(slot));
                None
            }
        },
        Err(Parked::Idle { .. }) => unreachable!("a pending socket comes back as it went in"),
    }
}

/// A socket out of the lot: a task for it again, or (a pending handshake past its deadline)
/// the end, counted as a handshake timeout.
fn unpark(
    parked: Parked,
    wake: Wake,
    ctx: &Arc<ConnectionContext>,
    trigger: &ShutdownTrigger,
    tasks: &mut JoinSet<()>,
) {
    match parked {
        Parked::Pending { slot, .. } if wake == Wake::Due => {
            ctx.metrics.handshake_timeout();
            drop(ctx.metrics.resume_socket(slot));
        }
        // Shutdown: a socket that never spoke is dropped, as a waiting one would be.
        Parked::Pending { slot, .. } if trigger.is_triggered() => {
            drop(ctx.metrics.resume_socket(slot));
        }
        Parked::Pending {
            socket,
            deadline,
            slot,
        } => match TcpStream::from_std(socket) {
            Ok(stream) => {
                tasks.spawn(connection(
                    stream,
                    Arc::clone(ctx),
                    trigger.subscribe(),
                    Some(slot),
                    deadline,
                ));
            }
            Err(_) => drop(ctx.metrics.resume_socket(slot)),
        },
        Parked::Idle { conn, slot, .. } => {
            tasks.spawn(resumed(conn, slot, Arc::clone(ctx), trigger.subscribe()));
        }
    }
}

fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            eprintln!("wsbench server: a connection task panicked: {e}");
        }
    }
}

/// One accepted socket: wait for its first bytes, read its request head, then answer it or
/// hand it to the engine.
///
/// Until its client sends something, a socket holds only this task (and its registration):
/// the wait needs no buffer and no waiter of its own, so a flood of connections that never
/// send a request costs the server as little as tokio allows. The HTTP part, with its head
/// buffer and shutdown wait, is boxed and built only once bytes have arrived: it lasts a
/// moment, while an idle WebSocket connection keeps its task for its whole life, and the task
/// is most of what such a connection costs. Unboxed, every task would be as large as the HTTP
/// part's future, which is larger than the zero-alloc engine's.
async fn connection(
    tcp: TcpStream,
    ctx: Arc<ConnectionContext>,
    mut shutdown: Shutdown,
    slot: Option<ParkedSocket>,
    deadline: Instant,
) {
    let socket = slot.map(|s| ctx.metrics.resume_socket(s));
    // A full server answers a plain socket at once; over TLS the answer waits for the handshake.
    if socket.is_none() && ctx.tls.is_none() {
        ctx.metrics.refused_busy();
        Box::pin(http::busy(Stream::Plain(tcp), ctx.limits.max_connections)).await;
        return;
    }
    // A TLS client speaks first too (its ClientHello), so the wait is the same for both.
    match first_bytes(&tcp, deadline, &ctx, &mut shutdown).await {
        FirstBytes::Arrived => {}
        FirstBytes::TimedOut => {
            ctx.metrics.handshake_timeout();
            return;
        }
        FirstBytes::Shutdown => return,
    }
    let Some((upgraded, shutdown)) = Box::pin(upgrade(tcp, &ctx, socket.is_some(), shutdown, deadline)).await else {
        return;
    };
    // Boxed too: the engines' futures (TLS stream, fan-out inbox) would otherwise make every
    // pending socket's task as large as an upgraded connection's.
    let idle = Box::pin(engine::serve(upgraded, &ctx, shutdown.clone())).await;
    park_or_end(idle, &ctx, socket, shutdown).await;
}

/// A parked connection served again, until it ends or is parked anew.
async fn resumed(
    idle: IdleConnection,
    slot: Option<ParkedSocket>,
    ctx: Arc<ConnectionContext>,
    shutdown: Shutdown,
) {
    let socket = slot.map(|s| ctx.metrics.resume_socket(s));
    let idle = Box::pin(engine::resume(idle, &ctx, shutdown.clone())).await;
    park_or_end(idle, &ctx, socket, shutdown).await;
}

/// After the engine: parks a quiet connection (its task ends here), or counts the end of one
/// that is over. A connection the lot will not take (the server is shutting down) is served on.
async fn park_or_end(
    mut idle: Option<IdleConnection>,
    ctx: &ConnectionContext,
    mut socket: Option<OpenSocket<'_>>,
    shutdown: Shutdown,
) {
    while let Some(conn) = idle {
        let deadline = conn.keep_alive.idle_deadline(&ctx.limits);
        let parked = Parked::Idle {
            conn,
            deadline,
            slot: socket.take().map(OpenSocket::park),
        };
        match ctx.lot.park(parked) {
            Ok(()) => return,
            Err(Parked::Idle { conn, slot, .. }) => {
                socket = slot.map(|s| ctx.metrics.resume_socket(s));
                idle = Box::pin(engine::resume(conn, ctx, shutdown.clone())).await;
            }
            Err(Parked::Pending { .. }) => unreachable!("an idle connection comes back as it went in"),
        }
    }
    drop(socket);
    ctx.recorder.connection_ended();
}

/// Once bytes have arrived: the TLS handshake if any, a 503 when the server is full
/// (`has_slot` false), else the request head and its answer.
async fn upgrade(
    tcp: TcpStream,
    ctx: &ConnectionContext,
    has_slot: bool,
    shutdown: Shutdown,
    deadline: Instant,
) -> Option<(Upgraded, Shutdown)> {
    // Asked here rather than kept from accept: the pending task stays as small as it was.
    let peer = tcp.peer_addr().ok()?.ip();
    let stream = secure(tcp, ctx, deadline).await?;
    if !has_slot {
        ctx.metrics.refused_busy();
        http::busy(stream, ctx.limits.max_connections).await;
        return None;
    }
    answer(stream, ctx, shutdown, deadline, peer).await
}

/// The TLS handshake when the server has TLS, by `deadline` (the handshake timeout from the
/// socket's accept); `None` when it failed or timed out (counted as a TLS failure or a
/// handshake timeout).
async fn secure(tcp: TcpStream, ctx: &ConnectionContext, deadline: Instant) -> Option<Stream> {
    let Some(tls) = &ctx.tls else {
        return Some(Stream::Plain(tcp));
    };
    match tokio::time::timeout_at(deadline, tls.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(_)) => {
            ctx.metrics.tls_failure();
            None
        }
        Err(_) => {
            ctx.metrics.handshake_timeout();
            None
        }
    }
}

/// What ended a pending handshake's wait for its client's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstBytes {
    /// The socket is readable: bytes, end of stream or an error, which reading will tell.
    Arrived,
    TimedOut,
    Shutdown,
}

/// Waits until `stream` has bytes (or has ended), `deadline` passes or the server shuts down,
/// holding no buffer meanwhile. A socket is peeked (one byte, on the stack) rather than asked
/// for readiness alone: tokio reports a new registration ready until a read says otherwise,
/// which would build the HTTP part for every silent socket. The peek wakes through the
/// registration's own reader slot, with no waiter of its own as `readable()` has (150
/// bytes); shutdown is `go_away` (64 bytes) rather than the watch channel's wait.
async fn first_bytes(
    stream: &TcpStream,
    deadline: Instant,
    ctx: &ConnectionContext,
    shutdown: &mut Shutdown,
) -> FirstBytes {
    // Made before `is_requested` is first asked: the trigger fires before `go_away` is
    // notified, so no shutdown falls between the two.
    let go_away = ctx.go_away.notified();
    let timer = sleep_until(deadline);
    tokio::pin!(go_away, timer);
    poll_fn(|cx| {
        if go_away.as_mut().poll(cx).is_ready() || shutdown.is_requested() {
            return Poll::Ready(FirstBytes::Shutdown);
        }
        let mut byte = [0u8; 1];
        if stream.poll_peek(cx, &mut ReadBuf::new(&mut byte)).is_ready() {
            return Poll::Ready(FirstBytes::Arrived);
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(FirstBytes::TimedOut);
        }
        Poll::Pending
    })
    .await
}

/// Reads the request head (by `deadline`) and answers it; for a WebSocket upgrade from `peer`
/// that the gate lets in, answers 101 and hands back what the engine needs (the request's own
/// buffers are freed by then).
async fn answer(
    mut stream: Stream,
    ctx: &ConnectionContext,
    mut shutdown: Shutdown,
    deadline: Instant,
    peer: IpAddr,
) -> Option<(Upgraded, Shutdown)> {
    let request = tokio::select! {
        r = http::read_request(&mut stream, deadline) => r,
        () = shutdown.wait() => return None,
    };
    let request = match request {
        Ok(r) => r,
        Err(ReadError::Gone) => return None,
        Err(ReadError::TimedOut) => {
            ctx.metrics.handshake_timeout();
            return None;
        }
        Err(ReadError::Refused(refusal)) => {
            let _ = http::refuse(&mut stream, refusal).await;
            return None;
        }
    };
    ctx.pause.safepoint();
    // A failed answer means the client left; there is no one to tell.
    let _ = match request.route {
        Route::Health => {
            http::respond(
                &mut stream,
                "200 OK",
                "",
                "text/plain; charset=utf-8",
                HEALTH_BODY,
            )
            .await
        }
        Route::Metrics => {
            let body = metrics_text(&ctx.snapshot());
            http::respond(&mut stream, "200 OK", "", METRICS_CONTENT_TYPE, &body).await
        }
        Route::Refuse(refusal) => http::refuse(&mut stream, refusal).await,
        Route::Client if ctx.gate.client_page() => {
            let token = ctx.gate.page_token("/", SystemTime::now());
            let body = client_page(token.as_deref());
            http::respond(&mut stream, "200 OK", "Cache-Control: no-store\r\n", CLIENT_CONTENT_TYPE, &body).await
        }
        Route::Client => http::refuse(&mut stream, Refusal::NotFound).await,
        Route::WebSocket { accept, offered, room, origin, target, extensions } => {
            let now_unix = wsbench_core::token::unix_seconds(SystemTime::now());
            let checked = ctx.gate.check(peer, origin.as_deref(), &target, std::time::Instant::now(), now_unix);
            if let Err(denial) = checked {
                ctx.metrics.denied(denial);
                let _ = http::refuse(&mut stream, Refusal::Denied(denial)).await;
                return None;
            }
            if let Some(room) = room.filter(|&r| ctx.workload == Workload::Broadcast && !ctx.hub.has_room(r)) {
                let rooms = ctx.hub.fanout().rooms;
                let _ = http::refuse(&mut stream, Refusal::NoSuchRoom { room, rooms }).await;
                return None;
            }
            let chosen = http::choose_subprotocol(&ctx.subprotocols, &offered);
            if chosen.is_none() && ctx.require_subprotocol {
                let refusal = Refusal::BadRequest(
                    "none of the offered subprotocols is spoken here (Sec-WebSocket-Protocol)",
                );
                let _ = http::refuse(&mut stream, refusal).await;
                return None;
            }
            // Only the zero-alloc engine compresses (`--deflate` requires it); without the flag
            // every offer is declined by answering without the extension.
            let deflate = ctx.deflate.as_ref().and_then(|config| {
                let offers: Vec<&str> = extensions.iter().map(String::as_str).collect();
                let negotiated = deflate::negotiate(config, &offers);
                ctx.metrics.deflate_negotiation(!extensions.is_empty(), negotiated.as_ref().map(|(a, _)| a));
                negotiated
            });
            let response = deflate.as_ref().map(|(_, r)| r.as_str());
            if http::switch_protocols(&mut stream, &accept, chosen, response)
                .await
                .is_err()
            {
                return None;
            }
            let upgraded = Upgraded {
                stream,
                leftover: request.leftover,
                room,
                deflate: deflate.map(|(a, _)| a),
            };
            return Some((upgraded, shutdown));
        }
    };
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::ShutdownTrigger;

    /// A pending handshake costs its task, whose size is this future's: the largest of the
    /// handshake wait and the engine, plus the arguments. Measured 512 bytes (rustc 1.95), 488
    /// before the wait moved out of the boxed HTTP part; tokio rounds a task to 128 bytes, so
    /// past 544 every connection, pending or upgraded, costs 128 more.
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let ctx = Arc::new(ConnectionContext::for_test());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let trigger = ShutdownTrigger::new();
        let deadline = Instant::now() + ctx.limits.handshake_timeout;
        let slot = ctx.metrics.open_socket(1).map(OpenSocket::park);
        let task = connection(stream, Arc::clone(&ctx), trigger.subscribe(), slot, deadline);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 544, "a connection task's future is {size} bytes");
        drop((task, client));
    }
}
