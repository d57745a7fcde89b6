//! `serve [--bind HOST:PORT | --port N] [--insecure] [--allow-origin O]`:
//! the job API over HTTP/1.1 (protocol in `crate::http`; routes here).
//!
//! Routes (bodies are the CLI's documents, field for field and in the
//! same order): `GET /health`, `POST /exec` (= `run`), `GET /status/{id}`,
//! `GET /tail/{id}` (`?since=CURSOR`, `grep=`, ... as `tail`'s flags;
//! `follow=true[&until=S]` streams NDJSON in a chunked body, unframed to
//! HTTP/1.0, closing the connection after it), `GET /wait/{id}` (`output=`, `output_match_type`,
//! `output_stream`, `since`: readiness, as `wait --output`), `GET
//! /wait?ids=A,B[&any=true]` (several jobs, as `wait A B`),
//! `POST /kill/{id}`, `POST /restart/{id}` (`restart`'s flags in the
//! query: `signal`, `kill_after`, `until`, ...), `POST /send/{id}` (a JSON body: `data` and
//! `send`'s flags, each of a JSON type its flag can be), `GET /list`. Every route but /exec is a door onto the
//! CLI command of the same name: its parameters are that command's flags
//! under their HTTP names from the one table (`Query::for_cmd`,
//! `cli::matches_from_params`), checked by the same rules, and the route
//! calls the same operation the command does.
//! GET routes answer HEAD too, with the head GET would send (a follow's
//! included). Every failure is the JSON error envelope
//! with the status from `Error::http_status` (404 unknown path, 405 with
//! `Allow`, 401, 400 ...).
//!
//! Lifecycle: check the flags, bind, print one `serve` document (bind,
//! port, pid), then nothing more on stdout. SIGTERM/SIGINT/SIGHUP (blocked in
//! every thread, taken by one thread with sigwait) stop the accept loop;
//! requests in flight get up to `GRACE` to finish (a `/restart` still
//! stopping the old run, until it has started the new one); exit 0. A request
//! that waits on a job (`/wait`, a waiting `/exec` or `/restart`, `/send`
//! in its yield, `/kill` watching for the end) does not finish: the stop
//! shuts every socket for reading and makes `Server::stop` readable,
//! which wakes its wait, and it is answered 503 `unavailable` at once,
//! naming the job in `details.job_id` (a wait on several: the first, in
//! the order given, it was still waiting for; the job goes on; bytes
//! sent and signals given stay so). A follow, woken the same way, ends
//! its stream with the end object, as `tail --follow` stopped by
//! SIGTERM does.
//!
//! Invariants
//! - One thread per connection, at most `MAX_CONNS` (128) served, and at
//!   most `MAX_THREADS` (256) threads counting evicted ones that are
//!   still closing. Threads have small stacks and a connection holds two
//!   descriptors (its socket, and the pool's handle on it), so an idle
//!   server stays small and a full one stays within 1024 open files.
//!   Under a lower limit, a connection accepted with no descriptor left
//!   for the pool's handle is answered 503 on its own socket (`refuse`,
//!   which needs no second one), not closed without a word.
//! - Idle and unauthenticated clients cannot starve the others. Every
//!   connection is in the `Pool`, with its phase: *evictable* while it
//!   waits for or reads a request, or is answered without having shown
//!   the token (/health, a 401); *not* while a request that carried the
//!   token (or needed none) is served, and again once its answer has
//!   waited `STUCK_ANSWER` (1 s) for a client that does not read it (one
//!   that pipelined requests and read nothing held its slot answer after
//!   answer, each for the write's time limit). It is *trusted* once it has shown
//!   the token (without a token: sent a request). When all `MAX_CONNS`
//!   are taken, the accept thread evicts the evictable connection that
//!   has been in its phase longest, untrusted ones before trusted ones,
//!   so a new client always gets a slot while one is evictable; only
//!   with none does it answer 503. Eviction shuts the socket for
//!   reading: the thread waits for nothing more, but a request the
//!   client had already sent in full (its thread may not have run yet)
//!   is still read, and answered 503, never dropped unanswered; so is a
//!   connection evicted before its first request came (or with part of
//!   one in), whose request may be on its way. Only a keep-alive
//!   connection idle between requests is closed without a word, and a
//!   connection evicted while it is answered without the token (which
//!   may come from a client that does not read) is shut both ways.
//!   Every such 503 is closed through `Linger` (read until the client
//!   closes, at most `LINGER`), so that a request still arriving does
//!   not reset the connection before the client reads its answer;
//!   `Linger` holds at most `MAX_LINGER` sockets and no thread or slot.
//!   Time bounds do the rest: a head within `http::HEAD_TIME` (2 s) of
//!   the first byte, and a request's first byte within `http::IDLE`
//!   (5 s), on a new connection as on a keep-alive one.
//! - The token is checked on the head (`gate`), before any body is read
//!   or `100 Continue` sent: an unauthenticated request costs no body.
//!   A refused request's body is passed over when it came with the head
//!   (the connection goes on), else the answer closes the connection.
//! - Long observations (`/wait`, a waiting `/exec` or `/restart`, a
//!   waiting `/kill`)
//!   hold at most `MAX_LONG` (96) slots, counted from before the wait
//!   to after it; one that finds them all taken waits up to `LONG_WAIT`
//!   for one to be given back (a brief one ends: `until=0`, a `/kill`),
//!   then gets 503, so short requests always find room.
//! - A client that leaves is noticed while its `/wait` waits
//!   (`observe::wait_terminal_or` on its socket; `wait_output` and the
//!   follower of `/tail?follow=true` poll it too, and a follow also stops
//!   on a failed write): if it closed (EOF,
//!   reset, or a half-close: an HTTP client that wants its answer keeps
//!   its side open), the request is dropped unanswered and its slot
//!   freed at once; if it pipelined its next request, the wait goes on,
//!   looking for a hangup every `HANGUP_TICK`. `/exec` and `/restart`
//!   launch without waiting and wait here the same way: a client that
//!   leaves is answered at once with the job's state then (it names the
//!   job just started; one that only half-closed still reads it).
//!   `/kill` (3 s) and `/send` (its yield) are bounded and do not look
//!   at the client, only at the stop.
//! - A panic while answering a request is a 500 `internal_error` for
//!   that request only (`catch_unwind`; the worker marks itself with
//!   `output::quiet_panics`).
//! - Jobs start through `launch::launch` (double fork): the server never
//!   has children to reap.
//! - Security (beyond 0.2.3, see DECISIONS D23): with
//!   `AGENT_EXEC_SERVE_TOKEN` set, every route but /health needs
//!   `Authorization: Bearer <token>` (constant-time compare); a
//!   non-loopback bind needs `--insecure` and the token. Browsers are
//!   kept out unless invited: a request carrying an `Origin` other than
//!   `--allow-origin` is refused (403), which stops a web page from
//!   POSTing `/exec` to a local server or holding a wait open (and it
//!   gets no CORS header, so it could read nothing); without a token, a
//!   `Host` that is
//!   a dotted DNS name (other than `*.localhost`) is refused (403), which
//!   stops DNS rebinding from reading job output.
//! - `/exec` never writes `env` values into meta.json (they go to
//!   env.json only) and never runs auto-GC.
//!
//! Rejected: a thread pool with a queue (a slow `/wait` would hold a
//! pool thread anyway, and idle workers cost memory); non-blocking I/O
//! with an event loop (would hold idle sockets without threads, but is
//! far more code; eviction keeps threads bounded instead); refusing new
//! connections when full (70 idle sockets made /health answer 503);
//! separate fixed budgets for unauthenticated and authenticated
//! connections (either budget can still be filled; eviction order by
//! trust gives the same protection without a split that wastes slots);
//! sorted-key JSON bodies as in 0.2.3 (the CLI's order is the contract).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::http::{self, Method, ReadError, Reader, Request};
use crate::jsonin::Shown;
use crate::launch::{self, Spec, StdinSrc};
use crate::output::{self, Output, Response};
use crate::store::Store;
use crate::{job, observe, sys};

/// Connections served at once. When all are taken, a new one evicts the
/// oldest evictable one (see `Pool`); only when none is evictable is it
/// told to come back (503).
const MAX_CONNS: usize = 128;
/// Connection threads at most: the served connections plus evicted ones
/// that have not finished closing yet.
const MAX_THREADS: usize = 2 * MAX_CONNS;
/// How long the accept thread waits for evicted threads to finish when
/// `MAX_THREADS` are alive, before it answers 503.
const THREAD_WAIT: Duration = Duration::from_millis(50);
/// Long observations (`/wait`, a waiting `/exec`, a `/kill` that waits)
/// at once; the rest of the pool stays for short requests, so `/health`
/// and `/status` always find a slot.
const MAX_LONG: usize = 96;
/// How long a long request that finds all `MAX_LONG` taken waits for one
/// to be given back before it is answered 503: a brief one in progress
/// (`until=0`, a `/kill`) does not turn away one that came with it.
const LONG_WAIT: Duration = Duration::from_millis(250);
/// After a client pipelined its next request during a `/wait`, how
/// often the wait looks for the client hanging up.
const HANGUP_TICK: Duration = Duration::from_millis(250);
/// Stack of a connection thread: enough for serde and a launch, small
/// enough that `MAX_THREADS` of them cost little.
const STACK: usize = 256 * 1024;
/// How long an answer may go without the client taking a byte of it
/// (`Patient`).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The socket's send timeout: how often a blocked write comes back to
/// `Patient` to see whether the client took anything meanwhile.
const WRITE_SLICE: Duration = Duration::from_secs(1);
/// How long in-flight requests get to finish at shutdown.
const GRACE: Duration = Duration::from_secs(2);
/// How long the stop waits for the answer of a restart that held it
/// (see `serve`), once that restart's old run is stopped.
const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// Default deadline of `GET /wait/{id}`, in seconds.
const WAIT_DEFAULT_SECS: u64 = 30;

const HEALTH: &[u8] = b"{\"schema_version\":\"0.1\",\"ok\":true,\"type\":\"health\"}\n";

#[derive(Serialize)]
struct ServeBody {
    bind: String,
    port: u16,
    pid: u32,
}

/// What every connection thread shares.
struct Server {
    store: Store,
    token: Option<String>,
    allow_origin: Option<String>,
    /// No token: refuse `Host` names that are not the loopback.
    check_host: bool,
    shell_wrapper: Vec<String>,
    /// The config read at the start (the server's user's, as `run`
    /// reads it): `/exec` takes its `[log]` and `[queue.NAME]` defaults
    /// from it, as `run` does from the one it reads.
    cfg: crate::config::Config,
    pool: Pool,
    /// Refused sockets on their way out.
    linger: Linger,
    /// Long observations in progress (at most `MAX_LONG`).
    long: Mutex<usize>,
    /// Signalled when a long observation ends.
    long_freed: Condvar,
    in_flight: AtomicUsize,
    /// `/restart`s stopping an old run and starting the new one: the
    /// server's stop waits for these past `GRACE`, as a `restart` on the
    /// command line finishes that before its signal ends it. Cut off,
    /// the job was left TERMed, never KILLed nor restarted, and the
    /// client got no answer at all.
    restarting: AtomicUsize,
    stopping: AtomicBool,
    /// Readable from the server's stop on (a byte written and never
    /// read): the accept loop polls it, and so do requests that wait
    /// without watching their client (`/send`'s yield, `/kill`'s
    /// observation), so that the stop ends their wait too.
    stop: File,
}

pub fn exec(m: &Matches) -> Result<Output> {
    // Before any thread exists (`use_watches` starts one), so that every
    // thread inherits the mask and only the signal thread ever takes
    // these signals: a thread started with them unblocked, even for an
    // instant, is one a SIGINT can land on and kill the process by.
    // What stops the server cleanly: TERM, INT, and HUP too (a server
    // started from a terminal that closes got it, and died at once,
    // cutting its answers), each unless the caller ignored it (`nohup`).
    sys::block_signals(sys::taken_stop_signals())
        .map_err(|e| Error::io("block SIGTERM/SIGINT/SIGHUP", e))?;
    let addr = bind_addr(m)?;
    // Set but not UTF-8 is no missing token: refused, as a token no
    // request could carry (it ran the server with no token at all).
    let token = match std::env::var("AGENT_EXEC_SERVE_TOKEN") {
        Ok(t) => token_from(Some(t)),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Error::InvalidConfig(
                "AGENT_EXEC_SERVE_TOKEN is not valid UTF-8: no request could carry it in its Authorization header".into(),
            ))
        }
    };
    if token
        .as_deref()
        .is_some_and(|t| t.chars().any(|c| c.is_control()))
    {
        return Err(Error::InvalidConfig(
            "AGENT_EXEC_SERVE_TOKEN holds a control character (a line break, say): no request could carry it in its Authorization header".into(),
        ));
    }
    check_bind(addr, m.has("insecure"), token.is_some())?;
    // Read once: not passed on to the jobs this server starts, which
    // inherit its environment (a job running `env` wrote it to its log).
    // Before any thread exists, so no other reads the environment.
    std::env::remove_var("AGENT_EXEC_SERVE_TOKEN");
    let allow_origin = m.get("allow-origin").map(check_origin).transpose()?;
    let cfg = crate::config::load(None)?;
    let shell_wrapper = launch::resolve_wrapper(None, &cfg)?;
    // A long-lived process: waits must not leave blocked threads behind.
    crate::observe::use_watches();
    crate::launch::set_long_lived();

    let listener = TcpListener::bind(addr).map_err(|e| Error::io(format!("bind {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("read the bound address", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("set the listener non-blocking", e))?;
    let (wake_r, wake_w) = sys::pipe().map_err(|e| Error::io("pipe", e))?;

    let srv = Arc::new(Server {
        store: super::store(m),
        check_host: token.is_none(),
        token,
        allow_origin,
        shell_wrapper,
        cfg,
        pool: Pool::default(),
        linger: Linger::default(),
        long: Mutex::new(0),
        long_freed: Condvar::new(),
        in_flight: AtomicUsize::new(0),
        restarting: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        stop: File::from(wake_r),
    });
    let s2 = Arc::clone(&srv);
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Ok(sig) = sys::wait_signal(sys::taken_stop_signals()) {
                crate::info!("serve: {} received, shutting down", sys::signal_name(sig));
                s2.stopping.store(true, Ordering::SeqCst);
                let _ = File::from(wake_w).write_all(b"x");
            }
        })
        .map_err(|e| Error::io("start the signal thread", e))?;

    let s3 = Arc::clone(&srv);
    std::thread::Builder::new()
        .name("linger".into())
        .stack_size(64 * 1024)
        .spawn(move || s3.linger.run())
        .map_err(|e| Error::io("start the linger thread", e))?;

    output::print_response(&Response::new(
        "serve",
        &ServeBody {
            bind: local.to_string(),
            port: local.port(),
            pid: std::process::id(),
        },
    )?);
    // Its document could not be written: nobody can learn where it
    // listens, and serving on would leave a server behind for good.
    if output::answer_lost() {
        return Err(Error::io(
            "announce the server on stdout",
            std::io::Error::other("its document could not be written"),
        ));
    }
    crate::info!("serve listening on {local}");
    accept_loop(&listener, &srv);
    drop(listener);
    srv.pool.wake_all();
    let mut until = Instant::now() + GRACE;
    while srv.in_flight.load(Ordering::SeqCst) > 0 {
        if srv.restarting.load(Ordering::SeqCst) > 0 {
            // A restart still stopping its old run holds the stop, and
            // its answer (503, or its document) then gets a moment to be
            // written: past GRACE, the stop ended as the restart let go,
            // and its client was left with no answer at all.
            until = until.max(Instant::now() + ANSWER_GRACE);
        } else if Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(Output::Done)
}

/// The token from `AGENT_EXEC_SERVE_TOKEN`, without surrounding
/// whitespace: an HTTP header value cannot carry it (clients and we trim
/// it from `Authorization`), so a token read with its trailing newline
/// would otherwise never match. Empty, or whitespace only, is no token
/// at all, as an empty variable always was (and a non-loopback bind is
/// then refused for want of one).
fn token_from(var: Option<String>) -> Option<String> {
    var.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// `--port N` means 127.0.0.1:N; otherwise `--bind` (an IP literal).
fn bind_addr(m: &Matches) -> Result<SocketAddr> {
    if m.has("port") {
        // Checked as a `Ty::Port` while the arguments were parsed.
        let p = m.get("port").unwrap_or_default();
        let port: u16 = p
            .parse()
            .map_err(|_| Error::usage(format!("invalid port '{p}': expected 0 to 65535")))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let b = m.get("bind").unwrap_or("127.0.0.1:19263");
    b.parse().map_err(|_| {
        Error::InvalidConfig(format!(
            "invalid bind address '{b}': expected an IP address and a port, e.g. 127.0.0.1:19263 or [::1]:19263"
        ))
    })
}

/// 127.0.0.0/8 and ::1 only. An IPv4-mapped `::ffff:127.x` is not
/// loopback here (as in 0.2.3): what an IPv6 socket bound to a mapped
/// address accepts depends on the system's dual-stack settings, so it
/// is treated as any other address (`--insecure` and the token).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

fn check_bind(addr: SocketAddr, insecure: bool, has_token: bool) -> Result<()> {
    if is_loopback(addr.ip()) {
        return Ok(());
    }
    if !insecure {
        return Err(Error::ServeUnsafeBind(format!(
            "refusing to bind to non-loopback address {addr} without --insecure"
        )));
    }
    if !has_token {
        return Err(Error::ServeUnsafeBind(format!(
            "refusing to bind to non-loopback address {addr} without AGENT_EXEC_SERVE_TOKEN"
        )));
    }
    Ok(())
}

/// An origin is `scheme://host[:port]`, exactly as browsers send it.
fn check_origin(o: &str) -> Result<String> {
    if o == "*" {
        return Err(Error::InvalidConfig(
            "wildcard '*' origin is not allowed; name one origin, e.g. http://localhost:3000"
                .into(),
        ));
    }
    let bad = || {
        Error::InvalidConfig(format!(
            "invalid origin '{o}': expected scheme://host[:port] with no path, e.g. http://localhost:3000"
        ))
    };
    let (scheme, default_port, rest) = if let Some(r) = o.strip_prefix("http://") {
        ("http", "80", r)
    } else if let Some(r) = o.strip_prefix("https://") {
        ("https", "443", r)
    } else {
        return Err(bad());
    };
    let ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-.:[]_".contains(&c));
    if !ok {
        return Err(bad());
    }
    // Host and port as a browser serialises them in `Origin`: the host
    // in lower case, the scheme's default port left out. Any other
    // spelling would name the same origin and never match.
    let (host, port) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('0') => (p != default_port).then_some(p),
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "invalid origin '{o}': the port must be a number from 1 to 65535"
                )))
            }
        },
    };
    let host = host.to_ascii_lowercase();
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

// ---------------------------------------------------------------------------
// Accepting
// ---------------------------------------------------------------------------

fn accept_loop(listener: &TcpListener, srv: &Arc<Server>) {
    loop {
        let mut fds = [
            sys::poll_fd(listener.as_raw_fd(), sys::POLLIN),
            sys::poll_fd(srv.stop.as_raw_fd(), sys::POLLIN),
        ];
        if let Err(e) = sys::poll(&mut fds, -1) {
            crate::warn!("serve: poll failed: {e}");
            return;
        }
        if fds[1].revents != 0 || srv.stopping.load(Ordering::SeqCst) {
            return;
        }
        loop {
            match listener.accept() {
                Ok((stream, _)) => admit(stream, srv),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // Out of descriptors or memory: back off instead of
                    // spinning on a listener that stays readable.
                    crate::warn!("serve: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The connection pool
// ---------------------------------------------------------------------------

/// The connections being served, so that the accept thread can shed an
/// idle or unauthenticated one to make room for a new client.
#[derive(Default)]
struct Pool {
    slots: Mutex<Slots>,
    /// Signalled when a connection thread ends.
    freed: Condvar,
}

#[derive(Default)]
struct Slots {
    next_id: u64,
    /// One per connection thread alive, evicted or not.
    all: Vec<Slot>,
}

struct Slot {
    id: u64,
    /// A handle on the connection's socket, to shut it down on eviction
    /// (which wakes the thread from whatever read or write it is in).
    stream: TcpStream,
    /// When the connection entered its current phase.
    since: Instant,
    phase: Phase,
    /// Has shown the token (or, without a token, sent a request). Such
    /// connections are evicted only when no other is evictable.
    trusted: bool,
    evicted: bool,
}

/// What a connection is doing, for eviction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for, or reading, a request. Evictable; eviction shuts
    /// the socket for reading only, so that a request the client has
    /// already sent in full is still read, and answered 503 instead of
    /// being dropped unanswered.
    Reading,
    /// Answering a request that did not carry the token. Evictable;
    /// eviction shuts the socket both ways, so that a client that does
    /// not read cannot keep the thread in its write.
    Refusing,
    /// Serving a request that carried the token (or needed none): not
    /// evictable until it is answered.
    Serving,
    /// Writing the answer of a request served: evictable once it has
    /// been at it for `STUCK_ANSWER` (a client that does not read, which
    /// held its slot for the write's time limit, answer after pipelined
    /// answer: 128 of them kept every other client out), and shut both
    /// ways then. What was done is done; only its answer is not read.
    Answering,
}

/// How long a connection's answer may wait for its client to read it
/// before that connection may be evicted for a new one.
const STUCK_ANSWER: Duration = Duration::from_secs(1);

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic never happens while the lock is held (plain field
        // updates); recover the data anyway rather than cascade.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection, evicting one if all are taken; None
    /// when none can be had (the caller answers 503).
    fn admit(&self, stream: TcpStream) -> Option<u64> {
        let mut g = self.lock();
        let give_up = Instant::now() + THREAD_WAIT;
        while g.all.len() >= MAX_THREADS {
            // Evicted threads are still on their way out: give them a
            // moment (they only have to notice a shutdown socket).
            let left = give_up.checked_duration_since(Instant::now())?;
            g = self
                .freed
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let live = g.all.iter().filter(|s| !s.evicted).count();
        if live >= MAX_CONNS {
            let victim = g
                .all
                .iter_mut()
                .filter(|s| match s.phase {
                    Phase::Serving => false,
                    Phase::Answering => s.since.elapsed() >= STUCK_ANSWER,
                    Phase::Reading | Phase::Refusing => true,
                })
                .filter(|s| !s.evicted)
                .min_by_key(|s| (s.trusted, s.since))?;
            victim.evicted = true;
            // Wakes the thread from its read (or write); see `Phase`.
            let how = match victim.phase {
                Phase::Reading => Shutdown::Read,
                _ => Shutdown::Both,
            };
            let _ = victim.stream.shutdown(how);
        }
        g.next_id += 1;
        let id = g.next_id;
        g.all.push(Slot {
            id,
            stream,
            since: Instant::now(),
            phase: Phase::Reading,
            trusted: false,
            evicted: false,
        });
        Some(id)
    }

    /// At shutdown: shut every connection's socket for reading, so that
    /// each thread waiting on its client (a wait, a follow) wakes now and
    /// answers (`handle`: 503 while stopping) instead of being cut off
    /// when the process exits. Writing still works.
    fn wake_all(&self) {
        for s in self.lock().all.iter().filter(|s| !s.evicted) {
            let _ = s.stream.shutdown(Shutdown::Read);
        }
    }

    /// Record the phase of connection `id`; false if it was evicted (its
    /// socket is then shut for reading, at least: nothing more from the
    /// client is waited for).
    fn enter(&self, id: u64, phase: Phase, trusted: bool) -> bool {
        let mut g = self.lock();
        match g.all.iter_mut().find(|s| s.id == id) {
            Some(s) if !s.evicted => {
                s.phase = phase;
                s.trusted |= trusted;
                s.since = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Was connection `id` evicted?
    fn is_evicted(&self, id: u64) -> bool {
        self.lock().all.iter().any(|s| s.id == id && s.evicted)
    }

    fn remove(&self, id: u64) {
        let mut g = self.lock();
        if let Some(i) = g.all.iter().position(|s| s.id == id) {
            g.all.swap_remove(i);
        }
        drop(g);
        self.freed.notify_all();
    }
}

/// Gives the connection's slot back however the thread ends.
struct ConnSlot(Arc<Server>, u64);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.pool.remove(self.1);
    }
}

/// One of the `MAX_LONG` long observations, given back on drop.
struct LongSlot<'a>(&'a Server);

impl Drop for LongSlot<'_> {
    fn drop(&mut self) {
        *self.0.lock_long() -= 1;
        // Every waiter looks again: one that has just timed out must not
        // swallow the only wake-up.
        self.0.long_freed.notify_all();
    }
}

impl Server {
    fn lock_long(&self) -> MutexGuard<'_, usize> {
        // Nothing panics while this lock is held.
        self.long.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One of the `MAX_LONG` long observations; when all are taken, wait
    /// up to `LONG_WAIT` for one to be given back, then 503.
    fn long_slot(&self) -> Result<LongSlot<'_>> {
        let mut n = self.lock_long();
        let give_up = Instant::now() + LONG_WAIT;
        while *n >= MAX_LONG {
            let Some(left) = give_up
                .checked_duration_since(Instant::now())
                .filter(|l| !l.is_zero())
            else {
                return Err(Error::Unavailable(format!(
                    "server busy: {MAX_LONG} long requests (wait, follow, exec, restart, send, kill) are in progress; retry shortly"
                )));
            };
            n = self
                .long_freed
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *n += 1;
        Ok(LongSlot(self))
    }
}

fn admit(stream: TcpStream, srv: &Arc<Server>) {
    let _ = stream.set_nonblocking(false);
    let Ok(handle) = stream.try_clone() else {
        // Out of descriptors (or memory) for the pool's handle: the
        // client is still told to come back, on the accepted socket
        // itself, without blocking (as a shed connection is).
        refuse(
            srv,
            stream,
            "server busy: out of file descriptors for a new connection; retry shortly",
        );
        return;
    };
    let Some(id) = srv.pool.admit(handle) else {
        refuse(srv, stream, &pool_full());
        return;
    };
    // The slot travels inside the closure: if the spawn fails, dropping
    // the closure releases it. The connection waits beside it, so that
    // a spawn that fails (out of threads) still answers the client 503
    // on it, as a shed connection is answered, not a reset.
    let slot = ConnSlot(Arc::clone(srv), id);
    let conn = Arc::new(Mutex::new(Some(stream)));
    let theirs = Arc::clone(&conn);
    let spawned = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let slot = slot;
            let stream = theirs.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(stream) = stream {
                serve_conn(stream, &slot.0, slot.1);
            }
        });
    if let Err(e) = spawned {
        crate::warn!("serve: cannot start a connection thread: {e}");
        let stream = conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(stream) = stream {
            refuse(
                srv,
                stream,
                "server busy: out of threads for a new connection; retry shortly",
            );
        }
    }
}

fn pool_full() -> String {
    format!("server busy: {MAX_CONNS} connections are being served; retry shortly")
}

/// Over the connection limit (or out of descriptors): answer 503 without
/// waiting on the client (from the accept thread, or for an evicted
/// connection), stop writing, and hand the socket to `Linger` to be
/// closed.
fn refuse(srv: &Server, stream: TcpStream, why: &str) {
    let _ = stream.set_nonblocking(true);
    let e = Error::Unavailable(why.to_string());
    let body = error_body(&e);
    let mut out = Vec::with_capacity(256 + body.len());
    let head = http::Head {
        status: 503,
        content_length: body.len(),
        close: true,
        keep_alive_10: false,
        extra: &[("Retry-After", "1")],
    };
    if http::write_head(&mut out, &head).is_ok() {
        out.extend_from_slice(&body);
        // A fresh socket's send buffer takes a few hundred bytes at once.
        let _ = (&stream).write_all(&out);
    }
    let _ = stream.shutdown(Shutdown::Write);
    srv.linger.close(stream);
}

/// Sockets answered 503 (`refuse`) and shut for writing, read from and
/// discarded until their client closes, or `LINGER` has passed, before
/// they are closed: a socket closed with unread bytes (the request, or
/// its tail, still arriving) is reset, and a reset can destroy the
/// answer before the client reads it. One thread holds them all.
///
/// Bounded, so that refused clients cannot pin the server: at most
/// `MAX_LINGER` sockets, each at most `LINGER` and `LINGER_BYTES`; past
/// that, a socket is drained of what has arrived and closed at once.
/// No connection slot or connection thread is held meanwhile.
#[derive(Default)]
struct Linger {
    /// Each socket (non-blocking), when it is closed at the latest, and
    /// how many more bytes are read from it.
    held: Mutex<Vec<(TcpStream, Instant, usize)>>,
    /// Signalled when a socket is handed over.
    added: Condvar,
}

const LINGER: Duration = Duration::from_millis(100);
const MAX_LINGER: usize = 128;
const LINGER_BYTES: usize = 64 * 1024;
/// How often the linger thread takes in sockets handed over while it
/// polls the others.
const LINGER_TICK: Duration = Duration::from_millis(20);

/// Read what has arrived; false when the socket is done with (end of
/// stream, an error, or its byte allowance spent).
fn drain(s: &TcpStream, left: &mut usize) -> bool {
    let mut sink = [0u8; 4096];
    loop {
        match (&*s).read(&mut sink) {
            Ok(0) => return false,
            Ok(n) => {
                *left = left.saturating_sub(n);
                if *left == 0 {
                    return false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

impl Linger {
    fn lock(&self) -> MutexGuard<'_, Vec<(TcpStream, Instant, usize)>> {
        // Nothing panics while this lock is held.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Close `s` (answered, shut for writing, non-blocking) once its
    /// client has closed too, or `LINGER` from now.
    fn close(&self, s: TcpStream) {
        let mut left = LINGER_BYTES;
        if !drain(&s, &mut left) {
            return;
        }
        let mut g = self.lock();
        if g.len() >= MAX_LINGER {
            return;
        }
        g.push((s, Instant::now() + LINGER, left));
        drop(g);
        self.added.notify_one();
    }

    /// The linger thread: poll the held sockets, drain those that stir,
    /// close those done or due.
    fn run(&self) {
        let mut fds = Vec::with_capacity(MAX_LINGER);
        loop {
            let mut g = self.lock();
            while g.is_empty() {
                g = self.added.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            fds.clear();
            fds.extend(
                g.iter()
                    .map(|(s, _, _)| sys::poll_fd(s.as_raw_fd(), sys::POLLIN)),
            );
            let first_due = g.iter().map(|e| e.1).min().unwrap_or_else(Instant::now);
            drop(g);
            let wait = first_due
                .saturating_duration_since(Instant::now())
                .min(LINGER_TICK);
            let _ = sys::poll(&mut fds, wait.as_millis().max(1) as i32);
            // Only this thread removes sockets: the first `fds.len()` are
            // still the ones polled, in order.
            let now = Instant::now();
            let mut i = 0;
            self.lock().retain_mut(|(s, due, left)| {
                let stirred = fds.get(i).is_some_and(|p| p.revents != 0);
                i += 1;
                if (stirred || now >= *due) && !drain(s, left) {
                    return false;
                }
                now < *due
            });
        }
    }
}

// ---------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------

/// What a route answers.
struct Reply {
    status: u16,
    body: Body,
    /// For 405: the methods the path serves.
    allow: Option<&'static str>,
    /// An OPTIONS preflight from the allowed origin.
    preflight: bool,
}

enum Body {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Static(b) => b,
            Body::Owned(v) => v,
        }
    }
}

impl Reply {
    /// A success document of `kind`, built in the connection's buffer
    /// `buf` (taken, and handed back after the write), so that a
    /// keep-alive connection serializes without fresh allocations.
    fn doc<T: Serialize>(buf: &mut Vec<u8>, kind: &str, body: &T) -> Result<Reply> {
        let mut out = std::mem::take(buf);
        write_doc(&mut out, kind, body)?;
        Ok(Reply {
            status: 200,
            body: Body::Owned(out),
            allow: None,
            preflight: false,
        })
    }

    /// `doc` of a body about one job: an error building it (the memory
    /// left cannot hold it) names the job, as every error about one does.
    fn job_doc<T: Serialize>(buf: &mut Vec<u8>, kind: &str, body: &T, id: &str) -> Result<Reply> {
        Reply::doc(buf, kind, body).map_err(|e| e.in_job(id))
    }

    fn error(e: &Error) -> Reply {
        Reply {
            status: e.http_status(),
            body: Body::Owned(error_body(e)),
            allow: match e {
                Error::MethodNotAllowed { allow } => Some(allow),
                _ => None,
            },
            preflight: false,
        }
    }

    /// 0.2.3's CORS layer's answer to an OPTIONS request: 200, empty.
    fn empty(allow: Option<&'static str>, preflight: bool) -> Reply {
        Reply {
            status: 200,
            body: Body::Static(b""),
            allow,
            preflight,
        }
    }
}

/// The success envelope of `output::Response::to_json` plus a newline,
/// written into `out` (cleared first): the body's object is serialized
/// straight after the envelope's fields, its `{` turned into a comma.
fn write_doc<T: Serialize>(out: &mut Vec<u8>, kind: &str, body: &T) -> Result<()> {
    out.clear();
    out.extend_from_slice(b"{\"schema_version\":\"");
    out.extend_from_slice(output::SCHEMA_VERSION.as_bytes());
    out.extend_from_slice(b"\",\"ok\":true,\"type\":");
    serde_json::to_writer(&mut *out, kind).map_err(|e| Error::internal(e.to_string()))?;
    let start = out.len();
    // Fallibly: a body too large for the memory left (log text as large
    // as `max_bytes` asked for) answers io_error, not the end of the
    // server.
    output::write_json(out, body)?;
    match &out[start..] {
        b"{}" => {
            out.truncate(start);
            out.push(b'}');
        }
        [b'{', ..] => out[start] = b',',
        _ => return Err(Error::internal(format!("{kind} body is not a JSON object"))),
    }
    // The closing newline, fallibly too: a buffer grown to just the
    // document would double to take it (the end of the server).
    out.try_reserve_exact(1)
        .map_err(|_| crate::observe::out_of_memory("build the answer"))?;
    out.push(b'\n');
    Ok(())
}

fn error_body(e: &Error) -> Vec<u8> {
    let mut b = output::error_json(e).into_bytes();
    b.push(b'\n');
    b
}

fn serve_conn(stream: TcpStream, srv: &Server, id: u64) {
    output::quiet_panics();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_SLICE));
    let mut reader = Reader::new(&stream);
    let mut w = BufWriter::with_capacity(8 * 1024, Patient(&stream));
    // The response body buffer, reused from request to request.
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut fresh = true;
    loop {
        // Waiting for a request: evictable. Once evicted, reads stop
        // waiting: a request the client had already sent is still read,
        // and gets a 503 below; nothing else is waited for.
        srv.pool.enter(id, Phase::Reading, false);
        // A request may begin within `IDLE` (5 s, as documented), on a
        // new connection as between keep-alive requests: an idle client
        // costs no more than an evictable slot meanwhile.
        let head = reader.next_head(http::IDLE);
        if let Err(e) = head {
            // Evicted before a whole head came: a new connection, or one
            // with part of a request in, is told to come back (its
            // request may be on its way: a client's first bytes can
            // trail its connect). A keep-alive connection idle between
            // requests is closed without a word, as idle ones may be.
            if srv.pool.is_evicted(id) && (fresh || reader.has_buffered()) {
                refuse_conn(srv, &stream);
            } else {
                refuse_request(&mut w, e);
            }
            return;
        }
        fresh = false;
        // The head decides, before the body is read, whether this client
        // is let in at all.
        let authed = match gate(srv, &reader.req) {
            Ok(authed) => authed,
            Err(e) => {
                if !srv.pool.enter(id, Phase::Refusing, false) {
                    refuse_conn(srv, &stream);
                    return;
                }
                // Refused: its body is not waited for. Already here in
                // full, it is passed over and the connection goes on;
                // otherwise the answer closes the connection.
                let whole = reader.skip_buffered_body();
                let close = !whole || !reader.req.keep_alive || srv.stopping.load(Ordering::SeqCst);
                let sent = write_reply(&mut w, srv, &reader.req, &Reply::error(&e), close).is_ok()
                    && w.flush().is_ok();
                if !sent {
                    return;
                }
                if close {
                    linger_close(w.get_ref().0);
                    return;
                }
                continue;
            }
        };
        // A body still to come: read it ranked as what the head showed
        // (evicted meanwhile: what has arrived is read, then 503 below).
        if reader.req.content_length > 0 {
            srv.pool.enter(id, Phase::Reading, authed);
        }
        if let Err(e) = reader.read_body() {
            // Evicted while its body came: told to come back, as one
            // evicted before its head was in (it read EOF, no answer).
            if srv.pool.is_evicted(id) {
                refuse_conn(srv, &stream);
            } else {
                refuse_request(&mut w, e);
            }
            return;
        }
        // Serving a request that carried the token (or needs none): not
        // evictable until it is answered. A connection evicted before
        // that has a complete request: it is told to come back (503),
        // never dropped without a word.
        let phase = if authed {
            Phase::Serving
        } else {
            Phase::Refusing
        };
        if !srv.pool.enter(id, phase, authed) {
            refuse_conn(srv, &stream);
            return;
        }
        let req = &reader.req;
        srv.in_flight.fetch_add(1, Ordering::SeqCst);
        let reply = panic::catch_unwind(AssertUnwindSafe(|| {
            handle(srv, req, &mut buf, w.get_ref().0)
        }))
        .unwrap_or_else(|p| Some(Reply::error(&Error::internal(panic_text(p.as_ref())))));
        let Some(reply) = reply else {
            // The client left while its request waited: nobody to answer.
            srv.in_flight.fetch_sub(1, Ordering::SeqCst);
            return;
        };
        let close = !req.keep_alive || srv.stopping.load(Ordering::SeqCst);
        // Served (a Serving connection is never evicted, so this holds).
        srv.pool.enter(id, Phase::Answering, authed);
        let sent = write_reply(&mut w, srv, req, &reply, close).is_ok() && w.flush().is_ok();
        srv.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Body::Owned(v) = reply.body {
            // Keep a modest buffer; let a one-off big answer go.
            if v.capacity() <= 64 * 1024 {
                buf = v;
            }
        }
        if !sent {
            return;
        }
        if close {
            let _ = w.get_ref().0.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// A connection's socket, written to as a client that reads slowly is
/// owed and one that stops reading is cut off: after `WRITE_TIMEOUT`
/// without taking a byte. The socket's send timeout alone counted from
/// the start of each write, which a big answer's first bytes (the
/// socket's buffer filling) had begun long before the client stopped:
/// one stalled 20 s before the cut. Each write here blocks in slices of
/// `WRITE_SLICE`, and a slice that sent anything returns it, so the
/// next write's count starts after the last byte taken.
struct Patient<'a>(&'a TcpStream);

impl Write for Patient<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let since = Instant::now();
        loop {
            let tried = Instant::now();
            match (&*self.0).write(buf) {
                // A slice that ran out: try again, until the whole time
                // without progress has passed. (Back at once, the socket
                // is non-blocking, as a refused connection's is made:
                // that is an error, never a spin.)
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && tried.elapsed() >= WRITE_SLICE / 2
                        && since.elapsed() < WRITE_TIMEOUT => {}
                done => return done,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `refuse` for a connection thread's own socket: the linger holds a
/// second handle on it, the thread ends at once.
fn refuse_conn(srv: &Server, stream: &TcpStream) {
    if let Ok(s) = stream.try_clone() {
        refuse(srv, s, &pool_full());
    }
}

/// A request that could not be read: answer a malformed one, then close
/// (a closed or timed-out one gets no answer).
fn refuse_request(w: &mut BufWriter<Patient>, e: ReadError) {
    let ReadError::Bad(status, e) = e else {
        return;
    };
    let body = error_body(&e);
    let head = http::Head {
        status,
        content_length: body.len(),
        close: true,
        keep_alive_10: false,
        extra: &[],
    };
    if http::write_head(w, &head).is_ok() && w.write_all(&body).is_ok() && w.flush().is_ok() {
        linger_close(w.get_ref().0);
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    format!("internal error: {msg}")
}

/// Close after an error answer without resetting the connection under
/// the client's feet: stop writing, then read and discard (briefly,
/// boundedly) what it is still sending.
fn linger_close(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sink = [0u8; 4096];
    let mut left: usize = 256 * 1024;
    while left > 0 {
        let Some(t) = deadline
            .checked_duration_since(Instant::now())
            .filter(|t| !t.is_zero())
        else {
            break;
        };
        let _ = s.set_read_timeout(Some(t.min(Duration::from_millis(500))));
        match (&*s).read(&mut sink) {
            Ok(n) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
}

fn write_reply(
    w: &mut impl Write,
    srv: &Server,
    req: &Request,
    reply: &Reply,
    close: bool,
) -> std::io::Result<()> {
    let mut extra: [(&str, &str); 8] = [("", ""); 8];
    let mut n = 0;
    if let Some(a) = reply.allow {
        extra[n] = ("Allow", a);
        n += 1;
    }
    if reply.status == 401 {
        extra[n] = ("WWW-Authenticate", "Bearer");
        n += 1;
    }
    if reply.status == 503 {
        extra[n] = ("Retry-After", "1");
        n += 1;
    }
    if let Some(o) = srv.allow_origin.as_deref() {
        extra[n] = ("Vary", "Origin");
        n += 1;
        if req.origin() == Some(o) {
            extra[n] = ("Access-Control-Allow-Origin", o);
            n += 1;
            if reply.preflight {
                extra[n] = ("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
                extra[n + 1] = (
                    "Access-Control-Allow-Headers",
                    "authorization, content-type",
                );
                extra[n + 2] = ("Access-Control-Max-Age", "600");
                n += 3;
            }
        }
    }
    let body = reply.body.bytes();
    let head = http::Head {
        status: reply.status,
        content_length: body.len(),
        close,
        keep_alive_10: req.http10 && !close,
        extra: &extra[..n],
    };
    http::write_head(w, &head)?;
    if req.method != Method::Head {
        w.write_all(body)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Route {
    Health,
    Exec,
    List,
    Status(String),
    Tail(String),
    Wait(String),
    /// `/wait?ids=A,B`: several jobs (`wait A B`).
    WaitMany,
    Kill(String),
    Restart(String),
    Send(String),
}

const GET_ALLOW: &str = "GET, HEAD";
const POST_ALLOW: &str = "POST";
/// With CORS (`--allow-origin`), OPTIONS is answered on every route.
const GET_ALLOW_CORS: &str = "GET, HEAD, OPTIONS";
const POST_ALLOW_CORS: &str = "POST, OPTIONS";

impl Route {
    fn parse(path: &str) -> Option<Route> {
        match path {
            "/health" => return Some(Route::Health),
            "/exec" => return Some(Route::Exec),
            "/list" => return Some(Route::List),
            "/wait" => return Some(Route::WaitMany),
            _ => {}
        }
        let rest = path.strip_prefix('/')?;
        let (name, id) = rest.split_once('/')?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        // A segment that does not decode (a broken escape, or bytes that
        // are not UTF-8) is taken as typed, as if its `%` had been
        // escaped: like any other id that names no job, it is answered
        // `job_not_found` by the route (D4), never "no such route".
        let id = http::percent_decode(id, false).unwrap_or_else(|| id.to_string());
        Some(match name {
            "status" => Route::Status(id),
            "tail" => Route::Tail(id),
            "wait" => Route::Wait(id),
            "kill" => Route::Kill(id),
            "restart" => Route::Restart(id),
            "send" => Route::Send(id),
            _ => return None,
        })
    }

    /// The routes that act (POST); the others read (GET, HEAD).
    fn acts(&self) -> bool {
        matches!(
            self,
            Route::Exec | Route::Kill(_) | Route::Restart(_) | Route::Send(_)
        )
    }

    /// The methods the route takes, OPTIONS among them with CORS.
    fn allow(&self, cors: bool) -> &'static str {
        match (self.acts(), cors) {
            (true, false) => POST_ALLOW,
            (true, true) => POST_ALLOW_CORS,
            (false, false) => GET_ALLOW,
            (false, true) => GET_ALLOW_CORS,
        }
    }

    fn accepts(&self, m: Method) -> bool {
        match self.acts() {
            true => m == Method::Post,
            false => matches!(m, Method::Get | Method::Head),
        }
    }
}

/// The answer to a request; None when its client left while it waited
/// (the connection is then dropped without a word).
fn handle(srv: &Server, req: &Request, buf: &mut Vec<u8>, client: &TcpStream) -> Option<Reply> {
    match dispatch(srv, req, buf, client) {
        // Not the client that left: the server that stops (`wake_all`).
        // A waiting request gets a clear answer; a follow has already
        // written its own stream.
        Ok(None) if srv.stopping.load(Ordering::SeqCst) && !req.path().starts_with("/tail/") => {
            Some(Reply::error(&Error::Unavailable(
                "the server is shutting down; the job goes on (ask again, or use the CLI)".into(),
            )))
        }
        Ok(r) => r,
        Err(e) => {
            let e = over_http(e);
            crate::debug!("serve: {} -> {}", req.path(), e.code());
            Some(Reply::error(&e))
        }
    }
}

/// A bad request over HTTP is `invalid_request`: `usage_error` is the
/// command line's code (README, error table), so one that an operation
/// shared with the CLI raises is renamed here, whatever route it comes
/// from (its `details`, such as a job id, are kept).
fn over_http(e: Error) -> Error {
    match e {
        Error::Usage(msg) => Error::InvalidRequest(msg),
        Error::InJob(id, inner) => Error::InJob(id, Box::new(over_http(*inner))),
        e => e,
    }
}

/// The checks on a request's head, made before its body is read:
/// a malformed `Host`, a request (a preflight too) from another origin,
/// an untrusted `Host` without a token, a missing or wrong token (every
/// route but /health; with CORS, OPTIONS from no origin or the allowed
/// one is answered to anyone, as 0.2.3's CORS layer answers it before
/// its routes and their token; without, OPTIONS is a method no route
/// takes: 401 without the token, else 405). Ok(true) when the request
/// carries the token, or none is set.
fn gate(srv: &Server, req: &Request) -> Result<bool> {
    let authed = match &srv.token {
        None => true,
        Some(t) => authorized(req.authorization(), t),
    };
    // A Host no URI could hold (a space, a userinfo `@`, a port that is
    // not digits), or such an absolute-form target's authority: 400, as
    // RFC 9112 3.2 asks, before anything else.
    let bad_host = [req.host(), req.target_authority()]
        .into_iter()
        .flatten()
        .find(|h| !valid_host(h));
    if let Some(h) = bad_host {
        return Err(Error::InvalidRequest(format!(
            "invalid Host header '{h}': expected a host name or IP address, and optionally ':' and a port number"
        )));
    }
    // A browser page from another origin may read nothing (no CORS
    // header for it) but could still *send* a simple request: refuse
    // every one (a POST would launch or kill jobs; a GET would still
    // run a wait or a follow on the server), as the README says; its
    // preflight too. Only browsers send Origin; other clients are not
    // affected.
    if let Some(o) = req.origin() {
        if srv.allow_origin.as_deref() != Some(o) {
            return Err(Error::Forbidden(format!(
                "origin '{o}' is not allowed (see serve --allow-origin)"
            )));
        }
    }
    if req.method == Method::Options && srv.allow_origin.is_some() {
        return Ok(authed);
    }
    if srv.check_host {
        // An absolute-form target names the host as well as `Host`
        // does (and wins over it, RFC 9112 3.2.2): both are checked.
        for h in [req.host(), req.target_authority()].into_iter().flatten() {
            if !trusted_host(h) {
                return Err(Error::Forbidden(format!(
                    "host '{h}' is not served without a token (a DNS name could be rebound to this server); use 127.0.0.1 or localhost, or set AGENT_EXEC_SERVE_TOKEN"
                )));
            }
        }
    }
    if !authed && req.path() != "/health" {
        return Err(Error::Unauthorized);
    }
    Ok(authed)
}

/// Route a request that passed `gate`.
fn dispatch(
    srv: &Server,
    req: &Request,
    buf: &mut Vec<u8>,
    client: &TcpStream,
) -> Result<Option<Reply>> {
    let route = Route::parse(req.path());
    let cors = srv.allow_origin.is_some();
    if req.method == Method::Options && cors {
        // Every OPTIONS, as 0.2.3's CORS layer answers it: before the
        // routes (an unknown path too), 200 and no body.
        let preflight = srv.allow_origin.as_deref() == req.origin();
        return Ok(Some(Reply::empty(route.map(|r| r.allow(true)), preflight)));
    }
    let Some(route) = route else {
        return Err(Error::RouteNotFound(req.path().to_string()));
    };
    if !route.accepts(req.method) {
        return Err(Error::MethodNotAllowed {
            allow: route.allow(cors),
        });
    }
    let reply = match route {
        Route::Health => {
            // No parameters, and like every route it says so.
            no_params(req)?;
            Reply {
                status: 200,
                body: Body::Static(HEALTH),
                allow: None,
                preflight: false,
            }
        }
        Route::Exec => return exec_route(srv, req, buf, client),
        Route::List => list_route(srv, req, buf)?,
        Route::Status(id) => {
            Query::for_cmd(req, "status", Some(&id))?;
            let job = srv.store.lookup(&id)?;
            let body = status_body(&job).map_err(|e| e.in_job(&job.id))?;
            Reply::job_doc(buf, "status", &body, &job.id)?
        }
        Route::Tail(id) => {
            let q = Query::for_cmd(req, "tail", Some(&id))?;
            // HEAD too: its answer is the head GET would send.
            if q.bool("follow")?.unwrap_or(false) {
                if q.get("grep").is_some() {
                    return Err(Error::InvalidRequest(
                        "grep and follow=true cannot be used together".into(),
                    ));
                }
                return follow_route(srv, req, &q, &id, client);
            }
            // Choices were checked against the table by `for_cmd`.
            let grep_type = q.get("grep_type").unwrap_or("contains");
            let stream = q.get("output_stream").unwrap_or("either");
            let treq = super::tail::TailReq {
                lines: q.u64("tail_lines")?.unwrap_or(50),
                max_bytes: q.u64("max_bytes")?.unwrap_or(65536),
                since: q.get("since"),
                grep: q.get("grep").map(|p| (p, grep_type == "regex", stream)),
            };
            let job = srv.store.lookup(&id)?;
            let body = super::tail::tail_body(&job, &treq).map_err(|e| e.in_job(&job.id))?;
            Reply::job_doc(buf, "tail", &body, &job.id)?
        }
        Route::Wait(id) => {
            let q = Query::for_cmd(req, "wait", Some(&id))?;
            return wait_route(srv, q, buf, &id, client);
        }
        Route::WaitMany => return wait_many_route(srv, req, buf, client),
        Route::Restart(id) => {
            no_body_params(req)?;
            return restart_route(srv, req, buf, &id, client);
        }
        Route::Send(id) => send_route(srv, req, buf, &id)?,
        Route::Kill(id) => {
            no_body_params(req)?;
            let q = Query::for_cmd(req, "kill", Some(&id))?;
            let name = q.get("signal").unwrap_or("TERM");
            let sig = sys::parse_signal(name).ok_or_else(|| {
                Error::InvalidSignal(format!(
                    "invalid signal '{name}': expected a name such as TERM, SIGTERM or a number such as 15"
                ))
            })?;
            let no_wait = q.bool("no_wait")?.unwrap_or(false);
            let job = srv.store.lookup(&id)?;
            // Its observation is bounded (3 s), but counts as long; a
            // signal that ends nothing (CONT, STOP...) is not watched for.
            let _long = if no_wait || !super::kill::ends_job(sig) {
                None
            } else {
                Some(srv.long_slot()?)
            };
            let body = super::kill::kill_job_within(
                &job,
                sig,
                no_wait,
                Some(srv.stop.as_raw_fd()),
                super::kill::OBSERVE,
            )
            .map_err(|e| e.in_job(&job.id))?;
            // Its observation cut short by the stop: the signal was sent,
            // the end was not seen; answered as every waiting request is.
            if !no_wait && cut_by_stop(srv, body.state) {
                return Err(shutting_down(&job.id));
            }
            Reply::job_doc(buf, "kill", &body, &job.id)?
        }
    };
    Ok(Some(reply))
}

// ---------------------------------------------------------------------------
// GET /tail/{id}?follow=true
// ---------------------------------------------------------------------------

/// The client's socket as `observe` watches it while a request waits.
fn watched<'a>(client: &TcpStream, look: &'a dyn Fn() -> observe::Stir) -> observe::Client<'a> {
    observe::Client {
        fd: client.as_raw_fd(),
        events: sys::POLLIN | libc::POLLRDHUP,
        look,
    }
}

fn stir(client: &TcpStream) -> observe::Stir {
    match peer(client) {
        Peer::Quiet => observe::Stir::Quiet,
        Peer::Sent => observe::Stir::Sent,
        Peer::Left => observe::Stir::Left,
    }
}

/// A follow's body: one chunk per batch of NDJSON lines, or for an
/// HTTP/1.0 client (which must not be sent a transfer coding, RFC 9112
/// 6.1) the batches as they are, the body ending where the connection
/// does.
struct Chunked<'a> {
    to: &'a TcpStream,
    frame: Vec<u8>,
    chunked: bool,
    /// A write failed (the client stopped taking bytes for
    /// `WRITE_TIMEOUT`, or left): nothing more is written. The end line
    /// written after such a failure waited out a second `WRITE_TIMEOUT`,
    /// and a stalled follow was cut 20 s after its last byte, not 10.
    broken: bool,
}

impl super::tail::Batches for Chunked<'_> {
    fn send(&mut self, batch: &[u8]) -> std::io::Result<()> {
        if self.broken {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let sent = self.frame_and_send(batch);
        self.broken = sent.is_err();
        sent
    }
}

impl Chunked<'_> {
    fn frame_and_send(&mut self, batch: &[u8]) -> std::io::Result<()> {
        if !self.chunked {
            return Patient(self.to).write_all(batch);
        }
        // One write per chunk (size line, data, CRLF): no tiny packets.
        self.frame.clear();
        write!(self.frame, "{:x}\r\n", batch.len())?;
        self.frame.extend_from_slice(batch);
        self.frame.extend_from_slice(b"\r\n");
        Patient(self.to).write_all(&self.frame)?;
        self.frame.clear();
        self.frame.shrink_to(64 * 1024 + 1024);
        Ok(())
    }
}

/// `tail --follow` over HTTP (`?follow=true[&since=][&until=S]`): the
/// same NDJSON lines in a chunked body, ending with the end object and
/// the zero-length chunk; the connection closes after it. To HTTP/1.0,
/// the lines unframed, ended by the close. Errors before
/// the stream starts (job, cursor) are the usual error answer. A client
/// that leaves stops it: a failed write, or its socket polled while the
/// follower sleeps. The server's stop ends it too, with the end object
/// (state `running` while the job runs), as SIGTERM ends `tail
/// --follow`. Always None: the answer was written here.
fn follow_route(
    srv: &Server,
    req: &Request,
    q: &Query,
    id: &str,
    client: &TcpStream,
) -> Result<Option<Reply>> {
    let until_ms = q.duration_ms("until")?;
    let job = srv.store.lookup(id)?;
    let since = q
        .get("since")
        .map(|c| crate::cursor::Cursor::decode(c, &job.id))
        .transpose()
        .map_err(|e| e.in_job(&job.id))?;
    let mut f = observe::Follower::new(&job, since.as_ref()).map_err(|e| e.in_job(&job.id))?;
    let head_only = req.method == Method::Head;
    let _long = if head_only {
        None
    } else {
        Some(srv.long_slot()?)
    };
    let deadline = until_ms.and_then(crate::time::deadline_after);
    let chunked = !req.http10;
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    http::push_date(&mut head);
    head.push_str("Content-Type: application/x-ndjson\r\n");
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    head.push_str("Cache-Control: no-store\r\nConnection: close\r\n");
    if let Some(o) = srv.allow_origin.as_deref() {
        head.push_str("Vary: Origin\r\n");
        if req.origin() == Some(o) {
            head.push_str(&format!("Access-Control-Allow-Origin: {o}\r\n"));
        }
    }
    head.push_str("\r\n");
    if Patient(client).write_all(head.as_bytes()).is_err() {
        return Ok(None);
    }
    if head_only {
        let _ = client.shutdown(Shutdown::Write);
        return Ok(None);
    }
    let look = || stir(client);
    let mut sink = super::tail::Ndjson::new(Chunked {
        to: client,
        frame: Vec::with_capacity(4096),
        chunked,
        broken: false,
    });
    let run = match f.run(&job, &mut sink, deadline, Some(watched(client, &look))) {
        // A client that half-closed (or the server's stop, which shuts
        // the socket for reading) looks like one that left; it may still
        // read, so the stream ends as `tail --follow` stopped by SIGTERM
        // does: with its end line (the state now, the cursor to read on
        // from). To a client that did leave, it is one failed write.
        Ok(observe::FollowEnd::Left) => observe::current_state(&job).map(observe::FollowEnd::Until),
        run => run,
    };
    let end = match run {
        Ok(end) => end,
        Err(e) => {
            // Mid-stream: the error is the stream's last line.
            let mut line = output::error_json(&e.in_job(&job.id)).into_bytes();
            line.push(b'\n');
            let _ = super::tail::Batches::send(&mut sink.to, &line);
            observe::FollowEnd::Left
        }
    };
    // After an error line the body still ends properly; after a failed
    // write nothing more goes (`Chunked::broken`).
    if sink.end(&end, &job, &f.cursor()).is_ok() && chunked && !sink.to.broken {
        let _ = Patient(client).write_all(b"0\r\n\r\n");
    }
    let _ = client.shutdown(Shutdown::Write);
    Ok(None)
}

// ---------------------------------------------------------------------------
// GET /wait
// ---------------------------------------------------------------------------

/// `/wait/{id}?until=S|forever&max_bytes=&tail_bytes=`: None when the
/// client leaves first.
fn wait_route(
    srv: &Server,
    q: Query,
    buf: &mut Vec<u8>,
    id: &str,
    client: &TcpStream,
) -> Result<Option<Reply>> {
    let until_ms = q.duration_ms("until")?;
    let budget = super::wait::Budget {
        max_bytes: q.u64("max_bytes")?.unwrap_or(65536),
        tail_bytes: q.u64("tail_bytes")?.unwrap_or(super::run::TAIL_BYTES),
    };
    let forever = q.bool("forever")?.unwrap_or(false);
    // Choices were checked against the table by `for_cmd`.
    let match_type = q.get("output_match_type").unwrap_or("contains");
    let stream = q.get("output_stream").unwrap_or("either");
    let ready = q.get("output").map(|p| super::wait::Ready {
        pattern: p,
        regex: match_type == "regex",
        stream,
        since: q.get("since"),
    });
    if ready.is_none() && q.get("since").is_some() {
        return Err(Error::InvalidRequest("since needs output".into()));
    }
    let job = srv.store.lookup(id)?;
    let until_ms = if forever {
        None
    } else {
        Some(until_ms.unwrap_or(WAIT_DEFAULT_SECS * 1000))
    };
    let _long = srv.long_slot()?;
    // A budget too large for the clock is no deadline (never a panic).
    let deadline = until_ms.and_then(crate::time::deadline_after);
    if let Some(r) = &ready {
        // Readiness: the client's socket is watched as in a plain wait.
        let look = || stir(client);
        let body = super::wait::wait_ready(&job, r, deadline, budget, Some(watched(client, &look)))
            .map_err(|e| e.in_job(&job.id))?;
        let body = match body {
            Some(b) => b,
            None if srv.stopping.load(Ordering::SeqCst) => return Err(shutting_down(&job.id)),
            // The client left: as a plain `/wait`, answered at once with
            // the state then (no match), which one that only half-closed
            // still reads.
            None => crate::observe::current_state(&job)
                .and_then(|st| super::wait::wait_body(&job, &st, budget))
                .map_err(|e| e.in_job(&job.id))?,
        };
        return Reply::job_doc(buf, "wait", &body, &job.id).map(Some);
    }
    let st = if deadline.is_some_and(|d| d <= Instant::now()) {
        // Nothing to wait for (`until=0`): one read, without setting up
        // (and closing) a watch while holding the slot.
        crate::observe::current_state(&job).map_err(|e| e.in_job(&job.id))?
    } else {
        let Some(st) =
            wait_while_client_stays(srv, &job, deadline, client).map_err(|e| e.in_job(&job.id))?
        else {
            if srv.stopping.load(Ordering::SeqCst) {
                return Err(shutting_down(&job.id));
            }
            return Ok(None);
        };
        st
    };
    let body = super::wait::wait_body(&job, &st, budget).map_err(|e| e.in_job(&job.id))?;
    Reply::job_doc(buf, "wait", &body, &job.id).map(Some)
}

/// `/wait?ids=A,B[&any=true]` and `wait`'s other parameters: several
/// jobs, as `wait A B` (one id answers as `/wait/{id}`). `ids` is comma
/// separated and may be repeated.
fn wait_many_route(
    srv: &Server,
    req: &Request,
    buf: &mut Vec<u8>,
    client: &TcpStream,
) -> Result<Option<Reply>> {
    let cmd = crate::cli::find("wait").ok_or_else(|| Error::internal("no wait command"))?;
    let mut pairs = http_params(req, cmd)?;
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        // An empty one (`ids=A,,B`, `ids=A,`) is an id that names no
        // job, as `wait A ''` and MCP's ids are: job_not_found, not
        // skipped (the wait answered for A alone).
        .map(str::to_string)
        .collect();
    pairs.retain(|(k, _)| k != "ids");
    // The ids as the command line's operands: an error about a read
    // (`output`'s pattern) names the first, as `wait --output '(' A B` does.
    let m =
        crate::cli::matches_from_params(cmd, None, &pairs, ids.clone()).map_err(|e| match e {
            // `ids` is a parameter of this route too: name it with the rest.
            Error::InvalidRequest(msg) => {
                Error::InvalidRequest(msg.replace("expected one of ", "expected one of ids, "))
            }
            e => e,
        })?;
    match ids.len() {
        0 => {
            return Err(Error::InvalidRequest(
                "ids is required: /wait?ids=ID[,ID...] (or /wait/{id})".into(),
            ))
        }
        1 => return wait_route(srv, Query::of(pairs), buf, &ids[0], client),
        _ => {}
    }
    if m.has("output") || m.has("since") {
        return Err(Error::InvalidRequest(
            "output and since take one job: use /wait/{id}".into(),
        ));
    }
    let jobs = super::wait::lookup_all(&srv.store, &ids)?;
    let budget = super::wait::Budget {
        max_bytes: m.u64("max-bytes").unwrap_or(65536),
        tail_bytes: m.u64("tail-bytes").unwrap_or(super::run::TAIL_BYTES),
    };
    let until_ms = if m.has("forever") {
        None
    } else {
        Some(m.duration_ms("until").unwrap_or(WAIT_DEFAULT_SECS * 1000))
    };
    let _long = srv.long_slot()?;
    let deadline = until_ms.and_then(crate::time::deadline_after);
    let look = || stir(client);
    let body = super::wait::wait_many(
        &jobs,
        m.has("any"),
        deadline,
        budget,
        Some(watched(client, &look)),
    )?;
    let Some(b) = body else {
        return Ok(None);
    };
    // Cut short by the server's stop (the stop shuts the client's socket
    // for reading, which ends the wait as a client leaving does), not
    // over nor timed out: answered as a wait on one job is, naming the
    // first job still waited for.
    let cut = srv.stopping.load(Ordering::SeqCst) && !deadline.is_some_and(|d| Instant::now() >= d);
    match b.waiting.as_deref().filter(|_| cut) {
        Some(id) => Err(shutting_down(id)),
        None => Reply::doc(buf, "wait", &b).map(Some),
    }
}

/// What a client's socket says while its request waits.
#[derive(Debug, PartialEq)]
enum Peer {
    /// Nothing new.
    Quiet,
    /// It sent more (a pipelined request): it is still there.
    Sent,
    /// It closed, half-closed or reset: nobody will read an answer.
    Left,
}

/// Look, without blocking or consuming anything, at what the client did.
/// A half-close counts as leaving (it cannot be told from a close): the
/// wait ends, and `/wait` answers with what it knows then, which a
/// client that only half-closed still reads.
fn peer(client: &TcpStream) -> Peer {
    let mut p = [sys::poll_fd(
        client.as_raw_fd(),
        sys::POLLIN | libc::POLLRDHUP,
    )];
    if sys::poll(&mut p, 0).is_err() {
        return Peer::Quiet;
    }
    let r = p[0].revents;
    if r & (libc::POLLHUP | libc::POLLERR | libc::POLLRDHUP | libc::POLLNVAL) != 0 {
        return Peer::Left;
    }
    if r & sys::POLLIN == 0 {
        return Peer::Quiet;
    }
    // Readable: data (still there) or end of stream (gone). The poll
    // said readable, so this peek does not block.
    match client.peek(&mut [0u8; 1]) {
        Ok(0) | Err(_) => Peer::Left,
        Ok(_) => Peer::Sent,
    }
}

/// `observe::wait_terminal`, for as long as the client stays and the
/// server runs: None once the server stops. A client that leaves (closes,
/// half-closes or resets: they cannot be told apart) is answered at once
/// with the state then, which one that only half-closed still reads
/// (`nc -N`, `printf ... | nc`), and one that is gone costs one failed
/// write. `/exec` and `/restart` waited on for a client that had left
/// (their answer names the job just started): a client that gave up on
/// a long one held its place among the 96 until `until` (any length) or
/// the job's end, and 96 such retries refused every long request. The wait
/// wakes when the socket stirs (the server's stop shuts every socket for
/// reading: `Pool::wake_all`); once the client has pipelined its next
/// request (which stays unread in the socket, keeping it readable), the
/// wait goes on in `HANGUP_TICK` slices, looking for a hangup and the
/// stop between them.
fn wait_while_client_stays(
    srv: &Server,
    job: &crate::job::Job,
    deadline: Option<Instant>,
    client: &TcpStream,
) -> Result<Option<job::State>> {
    let mut watch = Some(client.as_raw_fd());
    loop {
        let until = match watch {
            Some(_) => deadline,
            None => {
                let tick = Instant::now() + HANGUP_TICK;
                Some(deadline.map_or(tick, |d| d.min(tick)))
            }
        };
        let st = crate::observe::wait_terminal_or(job, until, watch)?;
        if st.status().is_terminal() || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Some(st));
        }
        if srv.stopping.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match peer(client) {
            Peer::Left => return Ok(Some(st)),
            Peer::Sent => watch = None,
            Peer::Quiet => {}
        }
    }
}

/// Did the server's stop end an observation that saw the job in `state`
/// (a `/send` yield, a `/kill` watch)? Not if the job had ended: that
/// answer is whole.
fn cut_by_stop(srv: &Server, state: Option<&str>) -> bool {
    let ended = [
        job::Status::Exited,
        job::Status::Killed,
        job::Status::Failed,
    ]
    .iter()
    .any(|s| state == Some(s.as_str()));
    srv.stopping.load(Ordering::SeqCst) && !ended
}

/// The answer to a request whose wait the server's stop cut short: 503,
/// naming the job (`details.job_id`), which goes on.
fn shutting_down(job_id: &str) -> Error {
    Error::Unavailable(
        "the server is shutting down; the job goes on (ask again, or use the CLI)".into(),
    )
    .in_job(job_id)
}

/// The wait of `/exec` and `/restart` for the job they have just
/// launched (without waiting), up to `deadline`: its state then, or the
/// stop's 503 naming the job.
fn wait_launched(
    srv: &Server,
    job: &crate::job::Job,
    deadline: Option<Instant>,
    client: &TcpStream,
) -> Result<job::State> {
    wait_while_client_stays(srv, job, deadline, client)
        .map_err(|e| e.in_job(&job.id))?
        .ok_or_else(|| shutting_down(&job.id))
}

/// `status`'s document, read with fewer allocations than the CLI path
/// (same result): only what status shows is taken from meta.json, and both
/// files are read into a reused per-thread buffer. A job that reads as
/// running goes through `observe::current_state`, which reconciles a
/// lost supervisor.
fn status_body(job: &crate::job::Job) -> Result<super::status::StatusBody> {
    let part: super::status::MetaPart = read_json_reusing(&job.path(job::META))?;
    // Missing or unreadable: `read_state` says which (a job being started
    // by `run` has no state.json yet).
    let mut st: crate::job::State = match read_json_reusing(&job.path(job::STATE)) {
        Ok(st) => st,
        Err(_) => job.read_state()?,
    };
    // Also a finished job whose `job.finished` is still owed: the general
    // read has it sent if nobody does (`observe`).
    if matches!(
        st.status(),
        job::Status::Running | job::Status::Created | job::Status::Queued
    ) || st.finished_owed
    {
        st = crate::observe::as_shown(job, crate::observe::current_state(job)?);
    }
    Ok(super::status::StatusBody::from_parts(job, part, &st))
}

thread_local! {
    static FILE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `job::read_json` (same errors), into a per-thread buffer that
/// survives from request to request. Reads until EOF without asking
/// for the size first (two system calls fewer than `read_to_end`).
fn read_json_reusing<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let io_err = |e| Error::io(format!("read {}", path.display()), e);
    FILE_BUF.with(|cell| {
        let mut buf = cell.borrow_mut();
        // Never through a symlink, never a FIFO; at most MAX_JSON bytes.
        let mut f = crate::sys::open_read(path).map_err(io_err)?;
        let mut n = 0;
        loop {
            if n > crate::job::MAX_JSON {
                return Err(job::damaged(path, "too large".to_string()));
            }
            if buf.len() - n < 1024 {
                let grown = (buf.len() * 2).max(4096);
                buf.resize(grown, 0);
            }
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            }
        }
        let v = serde_json::from_slice(&buf[..n]).map_err(|e| job::damaged(path, e.to_string()));
        if buf.len() > 64 * 1024 {
            *buf = Vec::new();
        }
        v
    })
}

fn authorized(header: Option<&str>, token: &str) -> bool {
    let given = header
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim_matches(' '))
        .unwrap_or("");
    http::constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Is `h` a `Host` value RFC 9110 allows: `uri-host [":" port]`, the host
/// a bracketed IPv6 literal or a name of unreserved, sub-delim and `%`
/// characters (which takes IPv4 too), the port digits (maybe none)?
fn valid_host(h: &str) -> bool {
    let (host_ok, port) = match h.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((lit, after)) => (
                lit.parse::<std::net::Ipv6Addr>().is_ok(),
                match after {
                    "" => Some(""),
                    a => a.strip_prefix(':'),
                },
            ),
            None => (false, None),
        },
        None => {
            let (name, port) = h.rsplit_once(':').unwrap_or((h, ""));
            let name_ok = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b));
            (name_ok, Some(port))
        }
    };
    host_ok && port.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Could a browser have sent this `Host` (with or without a port) to a
/// loopback server without DNS rebinding? IP literals, `localhost`,
/// `*.localhost` and single-label names (`myhost`, resolved from
/// /etc/hosts or the local search domain) yes; a dotted DNS name, which
/// an attacker can point at 127.0.0.1, no.
fn trusted_host(h: &str) -> bool {
    let host = if let Some(rest) = h.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.starts_with(':') => {
                ip.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => false,
        };
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|c| c.is_ascii_digit()) => host,
            Some(_) => return false,
            None => h,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    !host.contains('.') || host.ends_with(".localhost") || host.parse::<Ipv4Addr>().is_ok()
}

/// The query parameters of a request, checked against what the route
/// knows (an unknown name is a 400, as a typo would be on the CLI).
struct Query(Vec<(String, Option<String>)>);

/// A route's query as parameters of `cmd` (`cli::matches_from_params`):
/// a key given bare (`?no_wait`) is true when the flag is a boolean,
/// else empty; `no_wait=` (an empty value) is left empty, which no
/// boolean is.
fn http_params(req: &Request, cmd: &crate::cli::Cmd) -> Result<Vec<(String, String)>> {
    http::query_pairs(req.query())
        .map(|pair| {
            let (k, v) = pair?;
            let v = v.unwrap_or_else(|| {
                let boolean = cmd.http_flag(&k).is_some_and(crate::cli::Flag::is_boolean);
                if boolean { "true" } else { "" }.to_string()
            });
            Ok((k, v))
        })
        .collect()
}

impl Query {
    /// The query of a route that is a door onto `cmd`: the parameter
    /// names are the command's flags as the one table names them for
    /// HTTP (`Flag::http_name`), and every value is checked by the same
    /// rules as on the command line (types, choices, durations, signals,
    /// tags, conflicts), with the same error codes. `id`: the route's job
    /// as the path gives it, which an error about its read names.
    fn for_cmd(req: &Request, cmd: &str, id: Option<&str>) -> Result<Query> {
        let c = crate::cli::find(cmd)
            .ok_or_else(|| Error::internal(format!("no command {cmd} in the table")))?;
        let v = http_params(req, c)?;
        let pos = id.map(str::to_string).into_iter().collect();
        crate::cli::matches_from_params(c, None, &v, pos)?;
        // Each under its flag's first name, so that the route reads a
        // value given under the second (`lines` for `tail_lines`): it was
        // checked, then passed over, and /tail answered 50 lines.
        let v = v
            .into_iter()
            .map(|(k, val)| {
                let first = c.http_flag(&k).and_then(crate::cli::Flag::http_name);
                (first.unwrap_or(k), val)
            })
            .collect();
        Ok(Query::of(v))
    }

    /// A duration parameter in milliseconds (a bare number is seconds,
    /// as on the command line); `for_cmd` has checked its form.
    fn duration_ms(&self, k: &str) -> Result<Option<u64>> {
        self.get(k).map(crate::time::parse_duration_ms).transpose()
    }

    fn parse(req: &Request, known: &[&str]) -> Result<Query> {
        let mut v = Vec::new();
        for pair in http::query_pairs(req.query()) {
            let (k, val) = pair?;
            if !known.contains(&k.as_str()) {
                return Err(Error::InvalidRequest(if known.is_empty() {
                    format!("unknown query parameter '{k}': this route takes none")
                } else {
                    format!(
                        "unknown query parameter '{k}': expected one of {}",
                        known.join(", ")
                    )
                }));
            }
            v.push((k, val));
        }
        Ok(Query(v))
    }

    /// Parameters already resolved (`http_params`): every one has a value.
    fn of(params: Vec<(String, String)>) -> Query {
        Query(params.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    /// The last value given for `k` (a bare key's is empty).
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
            .collect()
    }

    fn u64(&self, k: &str) -> Result<Option<u64>> {
        self.get(k)
            .map(|v| {
                v.parse().map_err(|_| {
                    Error::InvalidRequest(format!(
                        "query parameter {k}: expected a non-negative integer, got '{v}'"
                    ))
                })
            })
            .transpose()
    }

    /// `true`/`1`/bare name, `false`/`0` (an empty value is neither).
    fn bool(&self, k: &str) -> Result<Option<bool>> {
        let Some((_, v)) = self.0.iter().rev().find(|(n, _)| n == k) else {
            return Ok(None);
        };
        let Some(v) = v else {
            return Ok(Some(true));
        };
        crate::cli::switch_value(v).map(Some).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "query parameter {k}: expected true or false (or 1 or 0), got '{v}'"
            ))
        })
    }
}

fn no_params(req: &Request) -> Result<()> {
    Query::parse(req, &[]).map(|_| ())
}

/// `/kill` and `/restart` take their parameters in the query. Their body
/// is ignored, as 0.2.3 ignored it, unless it is a JSON object with
/// fields: those would be parameters the caller meant (`{"signal":
/// "KILL"}`), and acting without them (a TERM, a wait) is refused instead.
fn no_body_params(req: &Request) -> Result<()> {
    let read = crate::jsonin::from_slice::<serde_json::Map<String, serde_json::Value>>(&req.body);
    // An object that cannot be read (nested past the parser's depth, a
    // lone surrogate) may hold fields all the same: acting without them
    // (`{"signal": "KILL", ...}` sent TERM) is refused as they would be.
    if let (Some(true), Err(e)) = (opens_object(&req.body), &read) {
        return Err(invalid(format!("invalid JSON: {e}")));
    }
    let fields = read
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    if fields.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "this route takes its parameters in the query string (?{}=...), not in a JSON body: {}",
        fields[0],
        fields.join(", ")
    )))
}

// ---------------------------------------------------------------------------
// POST /exec
// ---------------------------------------------------------------------------

/// The `/exec` body. Unknown fields are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecRequest {
    command: Option<Vec<String>>,
    cwd: Option<String>,
    env: Option<BTreeMap<String, String>>,
    /// The durations are JSON values, read by `exec_millis` and
    /// `exec_seconds_ms`, so that a bad one is `invalid_duration` naming
    /// its field (the code `run --timeout -1` has), not a JSON error.
    timeout_ms: Option<serde_json::Value>,
    /// Seconds (fractions allowed), or duration text, as `until`.
    timeout: Option<serde_json::Value>,
    kill_after_ms: Option<serde_json::Value>,
    wait: Option<bool>,
    /// Seconds (fractions allowed), or duration text (`500ms`, `2m`), as
    /// `until` is everywhere else (`exec_duration_ms`).
    until: Option<serde_json::Value>,
    max_bytes: Option<u64>,
    /// `run --tail-bytes` (0: none).
    tail_bytes: Option<u64>,
    tags: Option<Vec<String>>,
    stdin: Option<String>,
    /// `run --queue/--parallel/--after/--after-ok` (see `queue`).
    queue: Option<String>,
    parallel: Option<u64>,
    after: Option<Vec<String>>,
    after_ok: Option<Vec<String>>,
    /// `--max-log-bytes` (0: no cap).
    max_log_bytes: Option<u64>,
    /// `--no-full-log`, and `--full-log` (full.log where the config
    /// says none; false asks for the default, as MCP's does).
    no_full_log: Option<bool>,
    full_log: Option<bool>,
    /// `-i`: stdin stays open for `/send` (after any `stdin` text).
    interactive: Option<bool>,
    /// `--tty` (implies `interactive`), and its `--tty-size` COLSxROWS.
    tty: Option<bool>,
    tty_size: Option<String>,
    /// `--retry N` and its `--retry-delay` (seconds, fractions allowed,
    /// or duration text, as `until`).
    retry: Option<u64>,
    retry_delay: Option<serde_json::Value>,
}

/// The body of `/exec`: JSON that does not parse is "invalid JSON"; a
/// member of the wrong type (`"max_log_bytes": "1k"`) is named, as the
/// CLI names its flag and MCP its parameter, instead of a column number.
fn exec_request(body: &[u8]) -> Result<ExecRequest> {
    // Only an object: serde takes a struct from an array too (its
    // members in field order), and names the struct when it refuses
    // anything else. As `/send` says it.
    if opens_object(body) == Some(false) {
        return Err(invalid("invalid JSON: expected a JSON object"));
    }
    // Parsed directly first: it refuses a repeated member, which a
    // parse into a map would drop.
    let e = match crate::jsonin::from_slice::<ExecRequest>(body) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    // Every field is optional: the first member that fails alone is the
    // one at fault.
    let culprit = crate::jsonin::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.as_object()?.iter().find_map(|(k, val)| {
                let one =
                    serde_json::Value::Object([(k.clone(), val.clone())].into_iter().collect());
                serde_json::from_value::<ExecRequest>(one)
                    .err()
                    .map(|e| match k.as_str() {
                        // Its values may be secrets: serde's message quotes them.
                        "env" => {
                            "invalid JSON: field env: expected an object of NAME: value strings"
                                .to_string()
                        }
                        // serde names the object standing in for a
                        // number past a double's range ("invalid type:
                        // map"): the number as written instead.
                        _ => match crate::jsonin::first_huge(val) {
                            Some(t) => format!("invalid JSON: field {k}: {t} is out of range"),
                            None => format!("invalid JSON: field {k}: {e}"),
                        },
                    })
            })
        });
    Err(invalid(
        culprit.unwrap_or_else(|| format!("invalid JSON: {e}")),
    ))
}

/// Does a JSON body open an object (its first byte past white space a
/// `{`)? None: the body is empty or white space.
fn opens_object(body: &[u8]) -> Option<bool> {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .map(|&b| b == b'{')
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidRequest(msg.into())
}

/// One JSON field of a body that carries a command's flags (`/send`),
/// as the text the table checks: only of a JSON type the flag can be
/// (the types MCP's inputSchema declares, with the same words when it
/// is not), so that a number is never taken for text nor a string for
/// a switch by accident. Text is always accepted, as in a query.
fn body_param(name: &str, flag: &crate::cli::Flag, v: &serde_json::Value) -> Result<String> {
    use crate::cli::{Http, Kind, Ty};
    use serde_json::Value;
    let want = match flag.kind {
        Kind::Switch | Kind::OptBool => "boolean or string",
        Kind::Value(Ty::U64) => "integer or string",
        Kind::Value(Ty::Duration) if matches!(flag.http, Http::Millis(_)) => "integer or string",
        Kind::Value(Ty::Duration) => "number or string",
        Kind::Value(Ty::Signal) => "string or integer",
        Kind::Value(_) => "string",
    };
    if let Some(t) = crate::jsonin::huge_text(v) {
        return Err(super::mcp::huge(name, flag, t));
    }
    let wrong = || {
        invalid(format!(
            "parameter {name}: expected {want}, got {}",
            Shown(v)
        ))
    };
    match v {
        // A query's `?eof` (no value) is the switch on, by the query's
        // custom; a JSON "" is no boolean (it closed a job's stdin), as
        // MCP has it.
        Value::String(s) if s.is_empty() && want.starts_with("boolean") => Err(invalid(format!(
            "parameter {name}: expected true or false, got \"\""
        ))),
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) if want.starts_with("boolean") => Ok(b.to_string()),
        // Seconds, fractions allowed, as `until` is in /exec.
        Value::Number(n) if want.starts_with("number") => n
            .as_f64()
            .and_then(crate::time::seconds_text)
            .ok_or_else(|| {
                Error::InvalidDuration(format!(
                    "parameter {name}: expected a non-negative number of seconds, got {n}"
                ))
            }),
        // Whole (2.0 is an integer to JSON too), written as digits so
        // that the table reads it; a negative one is refused there.
        Value::Number(n) if want.contains("integer") => match n.as_f64() {
            _ if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            Some(f) if f.fract() == 0.0 => Ok((f as i128).to_string()),
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}

/// `POST /restart/{id}`: `restart`'s flags as query parameters under
/// their HTTP names (`signal`, `kill_after`, `until`, `no_wait`, ...),
/// the answer `restart`'s document. Stopping the old run and waiting for
/// the new one count as a long observation.
fn restart_route(
    srv: &Server,
    req: &Request,
    buf: &mut Vec<u8>,
    id: &str,
    client: &TcpStream,
) -> Result<Option<Reply>> {
    let cmd = crate::cli::find("restart").ok_or_else(|| Error::internal("no restart command"))?;
    let mut params = http_params(req, cmd)?;
    let m = crate::cli::matches_from_params(cmd, None, &params, vec![id.to_string()])?;
    let plan = super::run::WaitPlan::from_matches(&m);
    let job = srv.store.lookup(id)?;
    let _long = srv.long_slot()?;
    // Counted while the old run is stopped and the new one started (not
    // while the new one is watched: the stop answers that at once).
    struct Restarting<'a>(&'a AtomicUsize);
    impl Drop for Restarting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    srv.restarting.fetch_add(1, Ordering::SeqCst);
    let restarting = Restarting(&srv.restarting);
    if !plan.wait {
        let mut body =
            super::restart::restart_job(&srv.store, &job, &m).map_err(|e| e.in_job(&job.id))?;
        drop(restarting);
        body.inline.env_vars.clear();
        return Reply::job_doc(buf, "restart", &body, &job.id).map(Some);
    }
    // The same restart without its wait; the wait is then this route's
    // own, so that the server's stop answers it (`wait_launched`).
    params.retain(|(k, _)| !matches!(k.as_str(), "wait" | "no_wait" | "forever"));
    params.push(("no_wait".into(), "true".into()));
    let launch_only = crate::cli::matches_from_params(cmd, None, &params, vec![id.to_string()])?;
    let launched = super::restart::restart_job(&srv.store, &job, &launch_only)?;
    drop(restarting);
    let body = super::restart::watch_relaunched(&job, launched, plan, None, |deadline| {
        wait_launched(srv, &job, deadline, client).map(Some)
    })?;
    let mut body = body.ok_or_else(|| shutting_down(&job.id))?;
    body.inline.env_vars.clear();
    Reply::job_doc(buf, "restart", &body, &job.id).map(Some)
}

/// The answer of `/exec` or `/restart` about the job they launched and
/// then waited on from `waited_from` (as `run::observe_inline` builds
/// it), without the masked env display (not part of the HTTP answer,
/// as in 0.2.3; the keys are still in meta.json's env_keys).
fn launched_body(
    job: &crate::job::Job,
    st: &job::State,
    plan: super::run::WaitPlan,
    t0: Instant,
    waited_from: Instant,
) -> Result<super::run::InlineBody> {
    (|| {
        let meta = job.read_meta()?;
        let mut body = super::run::inline_body(
            job,
            &meta,
            st,
            (plan.max_bytes, plan.tail_bytes),
            t0.elapsed().as_millis() as u64,
            waited_from.elapsed().as_millis() as u64,
        )?;
        body.env_vars.clear();
        Ok(body)
    })()
    .map_err(|e: Error| e.in_job(&job.id))
}

/// `POST /send/{id}` with a JSON object: `data` (the text), and `send`'s
/// flags under their HTTP names (`eof`, `newline`, `no_record`,
/// `max_bytes`, `yield_ms`), checked by the same table as the command
/// line and carried out by the same operation. Answers like `send`;
/// `invalid_state` is 400, as on every route, and `stdin_closed` 409.
fn send_route(srv: &Server, req: &Request, buf: &mut Vec<u8>, id: &str) -> Result<Reply> {
    no_params(req)?;
    let body: crate::jsonin::Fields = if req.body.iter().all(u8::is_ascii_whitespace) {
        crate::jsonin::Fields(Vec::new())
    } else {
        crate::jsonin::from_slice(&req.body).map_err(|e| invalid(format!("invalid JSON: {e}")))?
    };
    let cmd = crate::cli::find("send").ok_or_else(|| Error::internal("no send command"))?;
    let mut data = None;
    let mut params = Vec::new();
    for (k, v) in &body.0 {
        // Absent, as an optional field of /exec is (and as MCP has it).
        if v.is_null() {
            continue;
        }
        if k == "data" {
            // The text itself: never a number or a boolean turned into
            // text (`1.5e3` would send "1500.0").
            let text = v.as_str().ok_or_else(|| {
                invalid(format!(
                    "parameter data: expected a string, got {}",
                    Shown(v)
                ))
            })?;
            data = Some(text.to_string());
            continue;
        }
        let flag = cmd.http_flag(k);
        let text = match flag {
            Some(flag) => body_param(k, flag, v)?,
            // Unknown: `matches_from_params` names the parameters there are.
            None => String::new(),
        };
        params.push((k.clone(), text));
    }
    let mut pos = vec![id.to_string()];
    pos.extend(data);
    let m = crate::cli::matches_from_params(cmd, None, &params, pos).map_err(|e| match e {
        // The body's own field is a parameter too: name it with the rest.
        Error::InvalidRequest(msg) => {
            Error::InvalidRequest(msg.replace("expected one of ", "expected one of data, "))
        }
        e => e,
    })?;
    // The CLI's `usage_error` for this case names TEXT and --file; over
    // HTTP it is a bad request like any other, in the route's words.
    if m.pos(1).is_none() && !m.has("eof") && !m.has("newline") {
        return Err(invalid("nothing to send: give data (or eof, or newline)"));
    }
    // The whole request is checked before the job is looked at: a bad
    // body is a 400 whatever state the job is in.
    let req = super::send::request_from(&m)?;
    let job = srv.store.lookup(id)?;
    let _long = srv.long_slot()?;
    // The yield ends at the server's stop too (the bytes are in by then).
    let answer = super::send::send_job_or(&job, &req, Some(srv.stop.as_raw_fd()))
        .map_err(|e| e.in_job(&job.id));
    match answer {
        // Cut short by the stop: answered as every waiting request is.
        Ok(b) if cut_by_stop(srv, Some(b.state)) => Err(shutting_down(&job.id)),
        Ok(b) => Reply::job_doc(buf, "send", &b, &job.id),
        Err(e) => Err(e),
    }
}

fn exec_route(
    srv: &Server,
    req: &Request,
    buf: &mut Vec<u8>,
    client: &TcpStream,
) -> Result<Option<Reply>> {
    no_params(req)?;
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("request body is required"));
    }
    let r: ExecRequest = exec_request(&req.body)?;
    let (spec, plan) = exec_spec(r, &srv.shell_wrapper, &srv.cfg)?;
    // Waiting for the job counts as a long observation (bounded by
    // `until`).
    let _long = if plan.wait {
        Some(srv.long_slot()?)
    } else {
        None
    };
    let t0 = Instant::now();
    let deadline = plan.deadline();
    // Launched as `run` does, but without its wait: the wait is this
    // route's own, so that the server's stop answers it (503 naming the
    // job) instead of cutting it off (`wait_launched`).
    let launch_only = super::run::WaitPlan {
        wait: false,
        ..plan
    };
    let mut body = super::run::run_spec(&srv.store, &spec, launch_only, None)?;
    if plan.wait {
        let waited_from = Instant::now();
        let job = srv
            .store
            .lookup(&body.job_id)
            .map_err(|e| e.in_job(&body.job_id))?;
        let st = wait_launched(srv, &job, deadline, client).map_err(|e| e.in_job(&job.id))?;
        body = launched_body(&job, &st, plan, t0, waited_from).map_err(|e| e.in_job(&job.id))?;
    }
    // The masked env display is not part of the HTTP answer (0.2.3 left
    // it out too); keys are still in meta.json's env_keys.
    body.env_vars.clear();
    Reply::job_doc(buf, "run", &body, &body.job_id).map(Some)
}

fn exec_spec(
    r: ExecRequest,
    shell_wrapper: &[String],
    cfg: &crate::config::Config,
) -> Result<(Spec, super::run::WaitPlan)> {
    let command = r.command.unwrap_or_default();
    if command.is_empty() {
        return Err(invalid("command field is required and must be non-empty"));
    }
    if command.iter().any(|c| c.contains('\0')) {
        return Err(invalid("command must not contain NUL characters"));
    }
    let mut spec = Spec::new(command);
    spec.shell_wrapper = shell_wrapper.to_vec();
    if let Some(cwd) = r.cwd {
        if cwd.is_empty() || cwd.contains('\0') {
            return Err(invalid("cwd must be a non-empty path without NUL"));
        }
        spec.cwd = Some(cwd);
    }
    for (k, v) in r.env.unwrap_or_default() {
        let entry = launch::env_entry(&k, &v).map_err(invalid)?;
        // Every key masked: meta.json records names, never values
        // (those live in env.json, 0600).
        spec.mask.push(k);
        spec.env.push(entry);
    }
    spec.timeout_ms = match (&r.timeout_ms, &r.timeout) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "timeout_ms and timeout cannot both be set (timeout_ms is milliseconds, timeout seconds)",
            ))
        }
        (Some(ms), None) => exec_millis("timeout_ms", ms)?,
        (None, Some(s)) => exec_duration_ms("timeout", s)?,
        (None, None) => 0,
    };
    spec.kill_after_ms = r
        .kill_after_ms
        .as_ref()
        .map_or(Ok(0), |v| exec_millis("kill_after_ms", v))?;
    let tags = r.tags.unwrap_or_default();
    for t in &tags {
        // Named as the body names it, as a duration field is.
        job::validate_tag(t).map_err(|e| e.about("tags"))?;
    }
    spec.tags = job::dedup(&tags.iter().map(String::as_str).collect::<Vec<_>>());
    if let Some(s) = r.stdin {
        spec.stdin = StdinSrc::Value(s);
    }
    // Bad values are the route's `invalid_request`, like its other fields.
    if let Some(q) = &r.queue {
        crate::queue::check_name(q).map_err(|e| invalid(e.to_string()))?;
    }
    spec.parallel = match (r.parallel, &r.queue) {
        (Some(_), None) => return Err(invalid("parallel needs queue")),
        (Some(n), Some(_)) => {
            Some(crate::queue::check_parallel(n).map_err(|e| invalid(e.to_string()))?)
        }
        // The server's user's config, as `run --queue` reads it.
        (None, Some(q)) => cfg.queue_parallel(q),
        (None, None) => None,
    };
    spec.queue = r.queue;
    spec.after = r.after.unwrap_or_default();
    spec.after_ok = r.after_ok.unwrap_or_default();
    // As `run`'s flags over `[log]`: a field given wins (0: no cap),
    // else the config's default.
    spec.max_log_bytes = r.max_log_bytes.or(cfg.log.max_bytes).filter(|&n| n > 0);
    spec.no_full_log = match (r.full_log, r.no_full_log) {
        (Some(true), Some(true)) => {
            return Err(invalid("full_log and no_full_log cannot be used together"))
        }
        (Some(true), _) => false,
        (_, Some(no)) => no,
        _ => !cfg.log.full,
    };
    spec.tty = match (r.tty.unwrap_or(false), r.tty_size) {
        (true, size) => Some(
            launch::parse_tty_size(size.as_deref().unwrap_or("80x24"))
                .map_err(|e| invalid(super::mcp::argument_names("run", &e.to_string())))?,
        ),
        (false, Some(_)) => return Err(invalid("tty_size needs tty")),
        (false, None) => None,
    };
    spec.interactive = r.interactive.unwrap_or(false) || spec.tty.is_some();
    // As `--retry-delay` needs `--retry` given, 0 included (checked, and
    // then no retry), as on the command line and over MCP.
    let delay_ms = match (r.retry, &r.retry_delay) {
        (None, Some(_)) => return Err(invalid("retry_delay needs retry")),
        (_, delay) => delay
            .as_ref()
            .map_or(Ok(0), |v| exec_duration_ms("retry_delay", v))?,
    };
    spec.retry = match r.retry.unwrap_or(0) {
        0 => None,
        n => Some(job::Retry {
            times: u32::try_from(n).map_err(|_| invalid("retry is too large"))?,
            delay_ms,
            // The server's user's config, as `run --retry` reads it.
            keep_runs: cfg.keep_runs,
        }),
    };
    let plan = super::run::WaitPlan {
        wait: r.wait.unwrap_or(true),
        until_ms: Some(
            r.until
                .as_ref()
                .map_or(Ok(10_000), |v| exec_duration_ms("until", v))?,
        ),
        max_bytes: r.max_bytes.unwrap_or(65536),
        tail_bytes: r.tail_bytes.unwrap_or(super::run::TAIL_BYTES),
    };
    Ok((spec, plan))
}

/// `/exec`'s `until` or `timeout` in milliseconds: a JSON number is
/// seconds, fractions allowed (huge ones saturate: "practically never");
/// a string is a duration as the command line's flag takes it (a bare
/// number in it is seconds too), as MCP takes both. Anything else is
/// `invalid_duration`, the code these have on every door. (`timeout`
/// took numbers only: "2s" was refused here and taken everywhere else.)
fn exec_duration_ms(name: &str, v: &serde_json::Value) -> Result<u64> {
    match v {
        serde_json::Value::Number(_) => exec_seconds_ms(name, v),
        serde_json::Value::String(s) => crate::time::parse_duration_ms(s).map_err(|e| match e {
            Error::InvalidDuration(m) => Error::InvalidDuration(format!("{name}: {m}")),
            other => other,
        }),
        other => Err(Error::InvalidDuration(format!(
            "{name}: expected a number of seconds or a duration such as 500ms, got {}",
            Shown(other)
        ))),
    }
}

/// A duration field of `/exec` in seconds (`timeout`, `until`): a JSON
/// number, fractions allowed, huge ones saturating ("practically
/// never"); anything else is `invalid_duration` naming the field.
fn exec_seconds_ms(name: &str, v: &serde_json::Value) -> Result<u64> {
    let n = v
        .as_number()
        .filter(|n| n.as_f64().is_some_and(|s| s >= 0.0));
    match n {
        Some(n) => Ok(match n.as_u64() {
            Some(s) => s.saturating_mul(1000),
            // A fraction of a millisecond rounds up, as the command
            // line's parser has it: a positive limit never becomes 0, no
            // limit (`timeout: 0.0001` ran unlimited). To the microsecond
            // first, so that binary fractions (0.3 s is 300.00000000000006
            // ms) do not round up a whole millisecond.
            None => {
                let f = n.as_f64().unwrap_or_default();
                let ms = ((f * 1e6).round() / 1e3).ceil() as u64;
                // Under a microsecond too (1e-7): still a limit.
                if f > 0.0 {
                    ms.max(1)
                } else {
                    ms
                }
            }
        }),
        None => Err(Error::InvalidDuration(format!(
            "{name}: expected a non-negative number of seconds, got {}",
            Shown(v)
        ))),
    }
}

/// A duration field of `/exec` in milliseconds (`timeout_ms`,
/// `kill_after_ms`): a whole non-negative JSON number (past u64 it
/// saturates, as every duration does); anything else is
/// `invalid_duration` naming the field.
fn exec_millis(name: &str, v: &serde_json::Value) -> Result<u64> {
    match v.as_number() {
        Some(n) if n.is_u64() => Ok(n.as_u64().unwrap_or(u64::MAX)),
        Some(n) if n.as_f64().is_some_and(|f| f >= 0.0 && f.fract() == 0.0) => {
            Ok(n.as_f64().unwrap_or_default() as u64)
        }
        _ => Err(Error::InvalidDuration(format!(
            "{name}: expected a non-negative whole number of milliseconds, got {}",
            Shown(v)
        ))),
    }
}

// ---------------------------------------------------------------------------
// GET /list
// ---------------------------------------------------------------------------

/// `list`'s filters as query parameters: `limit`, `state`, `cwd`, `all`,
/// `tag` (repeatable). Without `cwd` or `all`, the server's working
/// directory is the scope, as for `/exec` without `cwd`.
fn list_route(srv: &Server, req: &Request, buf: &mut Vec<u8>) -> Result<Reply> {
    // The table has checked `state`'s choices and that `cwd` and `all`
    // are not given together.
    let q = Query::for_cmd(req, "list", None)?;
    let all = q.bool("all")?.unwrap_or(false);
    let cwd = q.get("cwd");
    if cwd == Some("") {
        return Err(invalid("cwd must not be empty"));
    }
    let state = q.get("state");
    let query = super::list::ListQuery {
        limit: q.u64("limit")?.unwrap_or(50),
        state: state.map(str::to_string),
        cwd: if all {
            None
        } else {
            Some(cwd.map_or_else(super::list::current_dir, str::to_string))
        },
        tags: q.all("tag").into_iter().map(str::to_string).collect(),
        active: false,
    };
    let body = super::list::list_jobs(&srv.store, &query)?;
    Reply::doc(buf, "list", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once a write of a follow's stream failed, nothing more is written
    /// (its end line waited out a second WRITE_TIMEOUT for a client that
    /// had stopped reading, audit 37): the next batch fails at once.
    #[test]
    fn a_follow_stream_whose_write_failed_writes_nothing_more() {
        use super::super::tail::Batches;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (peer, _) = l.accept().unwrap();
        let mut c = Chunked {
            to: &to,
            frame: Vec::new(),
            chunked: true,
            broken: false,
        };
        c.send(b"one\n").unwrap();
        c.broken = true;
        let t0 = Instant::now();
        assert!(c.send(b"two\n").is_err());
        assert!(t0.elapsed() < Duration::from_secs(1));
        drop(to);
        let mut got = Vec::new();
        (&peer).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"4\r\none\n\r\n");
    }

    #[test]
    fn documents_match_the_cli_envelope() {
        #[derive(Serialize)]
        struct B {
            zeta: u8,
            alpha: &'static str,
        }
        #[derive(Serialize)]
        struct Empty {}
        let mut out = b"stale".to_vec();
        write_doc(
            &mut out,
            "status",
            &B {
                zeta: 1,
                alpha: "a\"",
            },
        )
        .unwrap();
        let cli = Response::new(
            "status",
            &B {
                zeta: 1,
                alpha: "a\"",
            },
        )
        .unwrap()
        .to_json();
        assert_eq!(out, format!("{cli}\n").as_bytes());
        write_doc(&mut out, "health", &Empty {}).unwrap();
        let cli = Response::new("health", &Empty {}).unwrap().to_json();
        assert_eq!(out, format!("{cli}\n").as_bytes());
        assert_eq!(out, HEALTH);
        assert!(write_doc(&mut out, "x", &[1, 2]).is_err());
    }

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/health"), Some(Route::Health));
        assert_eq!(
            Route::parse("/status/01AB"),
            Some(Route::Status("01AB".into()))
        );
        assert_eq!(Route::parse("/kill/a%42c"), Some(Route::Kill("aBc".into())));
        assert_eq!(
            Route::parse("/restart/01AB"),
            Some(Route::Restart("01AB".into()))
        );
        for p in [
            "/",
            "/health/",
            "/status",
            "/status/",
            "/status/a/b",
            "/nope/x",
            "/nope/%FF",
        ] {
            assert_eq!(Route::parse(p), None, "{p}");
        }
        // Undecodable ids are kept as typed (and then not found).
        assert_eq!(
            Route::parse("/status/%zz"),
            Some(Route::Status("%zz".into()))
        );
        assert_eq!(
            Route::parse("/send/%FF%FE"),
            Some(Route::Send("%FF%FE".into()))
        );
    }

    #[test]
    fn trusted_hosts() {
        for h in [
            "localhost",
            "LOCALHOST:80",
            "127.0.0.1",
            "127.1.2.3:19263",
            "10.0.0.1",
            "[::1]",
            "[::1]:5",
            "a.localhost",
            "localhost.",
            "myhost:19263",
        ] {
            assert!(trusted_host(h), "{h}");
        }
        for h in [
            "evil.com",
            "evil.com:19263",
            "EVIL.COM.",
            "[::1",
            "[::1]x",
            "localhost:x",
            "127.0.0.1.evil.com",
            "localhost.evil.com",
        ] {
            assert!(!trusted_host(h), "{h}");
        }
    }

    #[test]
    fn bearer_tokens() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(authorized(Some("bearer s3cret"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Basic s3cret"), "s3cret"));
        assert!(!authorized(Some("s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }

    #[test]
    fn blank_tokens_are_none_and_padding_is_dropped() {
        let t = |v: &str| token_from(Some(v.to_string()));
        assert_eq!(t(""), None);
        assert_eq!(t("  \t\n"), None);
        assert_eq!(t(" s3cret\n").as_deref(), Some("s3cret"));
        assert_eq!(t("a b").as_deref(), Some("a b"));
        assert_eq!(token_from(None), None);
    }

    #[test]
    fn bind_rules() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(check_bind(a("127.0.0.1:1"), false, false).is_ok());
        assert!(check_bind(a("[::1]:1"), false, false).is_ok());
        let e = check_bind(a("[::ffff:127.0.0.1]:1"), false, true).unwrap_err();
        assert_eq!(e.code(), "serve_unsafe_bind");
        assert!(check_bind(a("[::ffff:127.0.0.1]:1"), true, true).is_ok());
        let e = check_bind(a("0.0.0.0:1"), false, true).unwrap_err();
        assert_eq!(e.code(), "serve_unsafe_bind");
        assert!(e.to_string().contains("--insecure"));
        let e = check_bind(a("0.0.0.0:1"), true, false).unwrap_err();
        assert!(e.to_string().contains("AGENT_EXEC_SERVE_TOKEN"));
        assert!(check_bind(a("0.0.0.0:1"), true, true).is_ok());
    }

    #[test]
    fn usage_errors_are_invalid_requests_over_http() {
        let e = over_http(Error::usage("x"));
        assert_eq!((e.code(), e.http_status()), ("invalid_request", 400));
        let e = over_http(Error::usage("x").in_job("J"));
        assert_eq!(e.code(), "invalid_request");
        assert_eq!(e.details().unwrap()["job_id"], "J");
        let e = over_http(Error::JobNotFound("J".into()));
        assert_eq!(e.code(), "job_not_found");
    }

    #[test]
    fn origins() {
        assert_eq!(check_origin("*").unwrap_err().code(), "invalid_config");
        assert!(check_origin("http://localhost:3000").is_ok());
        assert!(check_origin("https://app.example.com").is_ok());
        // As a browser sends it: lower case, no default port.
        for (given, sent) in [
            ("http://LocalHost:3000", "http://localhost:3000"),
            ("http://localhost:80", "http://localhost"),
            ("https://App.example.com:443", "https://app.example.com"),
            ("https://app.example.com:80", "https://app.example.com:80"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[::1]", "http://[::1]"),
        ] {
            assert_eq!(check_origin(given).unwrap(), sent, "{given}");
        }
        for o in [
            "http://x:99999",
            "http://x:0",
            "http://x:",
            "http://:80",
            "http://x:08",
        ] {
            assert_eq!(check_origin(o).unwrap_err().code(), "invalid_config", "{o}");
        }
        for o in [
            "localhost:3000",
            "http://",
            "http://x/path",
            "http://x\r\nSet-Cookie: a",
            "null",
        ] {
            assert_eq!(check_origin(o).unwrap_err().code(), "invalid_config", "{o}");
        }
    }

    fn req(json: &str) -> Result<(Spec, super::super::run::WaitPlan)> {
        let r: ExecRequest = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        exec_spec(r, &["sh".into(), "-lc".into()], &Default::default())
    }

    #[test]
    fn exec_takes_log_and_queue_defaults_from_the_config() {
        let mut cfg = crate::config::Config::default();
        cfg.log.max_bytes = Some(4096);
        cfg.log.full = false;
        cfg.queues.push(("q".into(), 3));
        let spec = |json: &str| {
            let r: ExecRequest = serde_json::from_str(json).unwrap();
            exec_spec(r, &["sh".into(), "-c".into()], &cfg).unwrap().0
        };
        let s = spec(r#"{"command":["true"],"queue":"q"}"#);
        assert_eq!(s.max_log_bytes, Some(4096));
        assert!(s.no_full_log);
        assert_eq!(s.parallel, Some(3));
        // Fields given win over the config, 0 meaning no cap.
        let s = spec(
            r#"{"command":["true"],"max_log_bytes":0,"no_full_log":false,"queue":"q","parallel":1}"#,
        );
        assert_eq!(s.max_log_bytes, None);
        assert!(!s.no_full_log);
        assert_eq!(s.parallel, Some(1));
    }

    #[test]
    fn exec_bodies() {
        let (s, p) = req(r#"{"command":["echo","hi"],"env":{"B":"2","A":"1"},"timeout":1.5,"tags":["x","x"],"wait":false,"until":3,"max_bytes":7,"stdin":"in"}"#).unwrap();
        assert_eq!(s.command, ["echo", "hi"]);
        assert_eq!(s.env, ["A=1", "B=2"]);
        assert_eq!(s.mask, ["A", "B"]);
        assert_eq!(s.timeout_ms, 1500);
        // A positive limit under a millisecond is one, never 0 (none);
        // binary fractions do not round a whole millisecond up.
        for (t, ms) in [
            ("0.0001", 1),
            ("0.3", 300),
            ("0.0006", 1),
            ("2.0005", 2001),
            ("1e-7", 1),
            ("4.9e-324", 1),
            ("0.0", 0),
        ] {
            let body = format!(r#"{{"command":["x"],"timeout":{t}}}"#);
            assert_eq!(req(&body).unwrap().0.timeout_ms, ms, "{t}");
        }
        assert_eq!(s.tags, ["x"]);
        assert!(matches!(s.stdin, StdinSrc::Value(ref v) if v == "in"));
        assert!(!p.wait);
        assert_eq!((p.until_ms, p.max_bytes), (Some(3000), 7));
        assert_eq!(p.tail_bytes, super::super::run::TAIL_BYTES);
        assert_eq!(
            req(r#"{"command":["x"],"tail_bytes":12}"#)
                .unwrap()
                .1
                .tail_bytes,
            12
        );
        let (s, _) = req(r#"{"command":["x"],"max_log_bytes":100,"no_full_log":true}"#).unwrap();
        assert_eq!((s.max_log_bytes, s.no_full_log), (Some(100), true));
        // `full_log`, as the command line's --full-log.
        let (s, _) = req(r#"{"command":["x"],"full_log":true}"#).unwrap();
        assert!(!s.no_full_log);
        assert!(req(r#"{"command":["x"],"full_log":true,"no_full_log":true}"#).is_err());
        let (s, _) = req(r#"{"command":["x"],"max_log_bytes":0}"#).unwrap();
        assert_eq!((s.max_log_bytes, s.no_full_log), (None, false));
        assert_eq!(
            req(r#"{"command":["x"],"timeout_ms":5}"#)
                .unwrap()
                .0
                .timeout_ms,
            5
        );
        for bad in [
            r#"{}"#,
            r#"{"command":[]}"#,
            r#"{"command":null}"#,
            r#"{"command":["x"],"timeout":1,"timeout_ms":1}"#,
            r#"{"command":["x"],"env":{"A=B":"c"}}"#,
            r#"{"command":["x"],"env":{"":"c"}}"#,
            r#"{"command":["x\u0000"]}"#,
            r#"{"command":["x"],"cwd":""}"#,
        ] {
            assert_eq!(req(bad).unwrap_err().code(), "invalid_request", "{bad}");
        }
        let e = req(r#"{"command":["x"],"tags":["bad tag"]}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_tag");
        assert!(e.to_string().starts_with("tags: "), "{e}");
        // A duration field that is not one: the CLI's code, naming it.
        for (field, v) in [
            ("timeout", "-1"),
            ("timeout", "\"soon\""),
            ("timeout", "true"),
            ("timeout_ms", "-1"),
            ("timeout_ms", "1.5"),
            ("timeout_ms", "\"5\""),
            ("kill_after_ms", "-1"),
            ("kill_after_ms", "[]"),
        ] {
            let e = req(&format!(r#"{{"command":["x"],"{field}":{v}}}"#)).unwrap_err();
            assert_eq!(e.code(), "invalid_duration", "{field}: {v}");
            assert!(e.to_string().contains(field), "{e}");
        }
        let (s, _) = req(r#"{"command":["x"],"timeout_ms":2.0,"kill_after_ms":1e30}"#).unwrap();
        assert_eq!((s.timeout_ms, s.kill_after_ms), (2, u64::MAX));
        // `timeout` takes text as `until` does.
        let (s, _) = req(r#"{"command":["x"],"timeout":"5s"}"#).unwrap();
        assert_eq!(s.timeout_ms, 5000);
        // `until` as everywhere else: seconds with fractions, or text.
        for (until, ms) in [
            ("0.2", 200),
            ("3", 3000),
            ("\"1.5s\"", 1500),
            ("\"500ms\"", 500),
            ("\"2\"", 2000),
            ("1e30", u64::MAX),
            ("null", 10_000),
        ] {
            let (_, p) = req(&format!(r#"{{"command":["x"],"until":{until}}}"#)).unwrap();
            assert_eq!(p.until_ms, Some(ms), "{until}");
        }
        for bad in ["-1", "-0.1", "\"soon\"", "true", "{}"] {
            let e = req(&format!(r#"{{"command":["x"],"until":{bad}}}"#)).unwrap_err();
            assert_eq!(e.code(), "invalid_duration", "{bad}");
            // Naming the field, whatever the form.
            assert!(e.to_string().contains("until"), "{bad}: {e}");
        }
        let (_, p) = req(r#"{"command":["x"],"until":-0}"#).unwrap();
        assert_eq!(p.until_ms, Some(0));
        assert!(serde_json::from_str::<ExecRequest>(r#"{"command":["x"],"bogus":1}"#).is_err());
        assert!(serde_json::from_str::<ExecRequest>(r#"{"command":"x"}"#).is_err());
    }
}
