//! The MCP door's protocol: JSON-RPC 2.0 over stdio, one message per
//! line, written by hand on serde_json. What the tools are and how a
//! call becomes a command's operation lives in `cmd::mcp`; this file
//! owns framing, the session (negotiated revision), the worker pool,
//! cancellation and progress.
//!
//! Invariants
//! - stdout carries protocol messages only, each one whole line written
//!   under one mutex (`Server::send`); logs go to stderr.
//! - A line is never held beyond `MAX_LINE` (4 MiB): stdin is read in
//!   64 KiB chunks, and an overlong line is answered with an error (id
//!   null) and skipped up to its newline; the server goes on. A BOM at
//!   the start of stdin is skipped.
//! - An answer's id is the request's text (`id_text`), not serde_json's
//!   rewriting of it.
//! - `tools/call` runs on a bounded pool (up to `WORKERS` threads, each
//!   started when a call finds none free; `QUEUE`
//!   waiting calls; beyond that the call is answered -32000 at once), so
//!   a long `wait` never delays `ping` or `tools/list` (answered on the
//!   reading thread) nor other calls.
//! - `notifications/cancelled` marks the call and writes a byte to its
//!   wake socket, which the observation polls (`observe::wait_terminal_or`,
//!   or a `Client` for readiness): it ends within one poll, and the
//!   call's answer is dropped. The job is not touched.
//! - Progress notifications come from a ticker that is joined before the
//!   answer is written, so none follows the answer.
//! - EOF on stdin stops the reading, not the answering: every request
//!   already read is carried out and answered (each is bounded by the
//!   `until` limits), then the process exits; jobs are detached and go
//!   on. A stdout nobody reads any more ends the process at once, then
//!   too (`watch_stdout`). A read error on stdin (it is a directory,
//!   say) ends the reading the same way; `serve` returns it once those
//!   calls are answered, and `cmd::mcp` puts it on stderr (exit 1),
//!   never as a document on stdout.
//! - A JSON-RPC batch (an array on one line) is taken only under the
//!   2025-03-26 revision, the one that requires it (2025-06-18 removed
//!   batches): its answers go out together, as one array, once the last
//!   is in (`Reply::Batch`); a batch of notifications gets none.
//! - Idle, the server holds no code pages it is not running: whenever
//!   a message goes out with no call in flight (the last one answered),
//!   they are given back first (`Server::rest_if_idle`).
//!
//! Rejected: an async runtime (not in the dependency budget, and 8
//! blocking workers are enough for one client); a thread per call without
//! a bound (a flood of calls would be a flood of threads); reading lines
//! with `BufRead::read_line` (it holds an unbounded line whole).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Protocol revisions we speak, newest first.
pub const REVISIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The one revision with JSON-RPC batches: servers MUST accept them.
const BATCH_REVISION: &str = "2025-03-26";
/// The longest line (message) read; longer ones are skipped.
pub const MAX_LINE: usize = 4 << 20;
const WORKERS: usize = 8;
const QUEUE: usize = 256;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const SERVER_BUSY: i64 = -32000;

/// One `tools/call` in flight: how to cancel it and report on it.
pub struct Call {
    /// The request id as JSON text (`1`, `"a"`).
    pub id: String,
    pub params: Value,
    /// The text of `params.arguments` as sent, kept only when one of
    /// them is a number serde_json holds as an f64 (`1e300`, `2.0`),
    /// which it would write otherwise: a refusal quotes it as sent
    /// (`argument_text`).
    arguments_text: Option<String>,
    /// The request's `_meta.progressToken` as sent (JSON text, as an id
    /// is kept: `1e2`, `1.5` and integers past 64 bits too), if any.
    progress_token: Option<String>,
    /// Why the arguments are refused before they are read: a name given
    /// twice (`duplicate field`), as HTTP refuses it in a body, never
    /// decided by the last (which is what the parsed `params` holds).
    pub twice: Option<String>,
    /// Where the answer goes.
    reply: Reply,
    cancelled: AtomicBool,
    /// Written to on cancel; `wake_rx` is polled by the observation.
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl Call {
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
    /// The descriptor that becomes readable when the call is cancelled.
    pub fn wake_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.wake_rx.as_raw_fd()
    }
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let _ = (&self.wake_tx).write_all(&[1]);
    }
    /// The text of the argument `key` as sent, when it is a number
    /// serde_json holds as an f64 (else None: its value says it).
    pub fn argument_text(&self, key: &str) -> Option<&str> {
        raw_member(self.arguments_text.as_deref()?.as_bytes(), &[key])
    }
    /// For a call of a batch, what is left of the batch's limit (see
    /// `Batch::due`); None for a call on its own.
    pub fn time_left(&self) -> Option<std::time::Duration> {
        match &self.reply {
            Reply::Batch(b) => Some(b.due.saturating_duration_since(std::time::Instant::now())),
            Reply::Line => None,
        }
    }

    /// Does the request ask for progress (`_meta.progressToken`)?
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }
}

/// Where a request's answer goes.
#[derive(Clone)]
enum Reply {
    /// Out at once, as its own line.
    Line,
    /// Into the batch the request came in.
    Batch(Arc<Batch>),
}

/// A batch's answers as they come in. Each request of the batch (and
/// the reader, while it goes through the batch) holds one count and
/// gives it back exactly once, with its answer or with none (a
/// notification, a cancelled call); the one that gives back the last
/// count sends the array.
struct Batch {
    left: Mutex<(usize, Vec<String>)>,
    /// When the batch's answer is due: its calls share one limit
    /// (`Call::time_left`), so that the array, which goes out once all
    /// are answered, comes within the one a call has. Eight workers took
    /// 24 waits in rounds, each round the whole limit.
    due: std::time::Instant,
}

impl Batch {
    fn hold(&self) {
        lock(&self.left).0 += 1;
    }

    /// Give back one count; the whole answer when it was the last and
    /// there is something to say (an empty array is never sent).
    fn settle(&self, answer: Option<String>) -> Option<String> {
        let mut left = lock(&self.left);
        left.1.extend(answer);
        left.0 -= 1;
        if left.0 > 0 || left.1.is_empty() {
            return None;
        }
        Some(format!("[{}]", std::mem::take(&mut left.1).join(",")))
    }
}

/// What a tool call needs from the session.
pub struct Server {
    out: Mutex<io::Stdout>,
    revision: Mutex<&'static str>,
    inflight: Mutex<HashMap<String, Arc<Call>>>,
    /// Workers done with their last call and not yet claimed for the
    /// next (see `Pool::submit`).
    free_workers: std::sync::atomic::AtomicUsize,
    /// The jobs root given with `--root`.
    pub root: Option<String>,
    pub limits: crate::cmd::mcp::Limits,
}

impl Server {
    /// Called as each message is written. With no call in flight, give back the pages of code and read-only
    /// data that serving faulted in (`sys::drop_code_pages`): an idle
    /// server keeps resident only what it touches while idle, and its
    /// size does not creep up with each kind of call it has answered.
    /// The next call faults back what it runs, from the page cache
    /// (tens of microseconds against milliseconds of work).
    fn rest_if_idle(&self) {
        if lock(&self.inflight).is_empty() {
            crate::sys::drop_code_pages();
        }
    }

    /// Write one message as one line. A closed stdout ends the process
    /// with 0: nobody reads any more. Any other failure (a full disk
    /// under a redirected stdout) ends it with 1 and says why on stderr:
    /// answers were lost.
    pub fn send(&self, msg: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut line = String::with_capacity(msg.len() + 1);
        line.push_str(msg);
        line.push('\n');
        // Before the write: once the client has its answer, the server
        // is already at rest.
        self.rest_if_idle();
        let mut out = crate::output::Patient(&mut *out);
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            crate::warn!("mcp: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }

    pub fn revision(&self) -> &'static str {
        *self.revision.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Structured results exist from 2025-06-18 on.
    pub fn structured(&self) -> bool {
        self.revision() >= "2025-06-18"
    }

    /// Deliver a request's answer (None: it has none) where it goes.
    fn deliver(&self, to: &Reply, answer: Option<String>) {
        let whole = match to {
            Reply::Line => answer,
            Reply::Batch(b) => b.settle(answer),
        };
        match whole {
            Some(msg) => self.send(&msg),
            // Nothing is written: rest here instead.
            None => self.rest_if_idle(),
        }
    }

    fn result(&self, to: &Reply, id: &str, result: &str) {
        self.deliver(
            to,
            Some(format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}"
            )),
        );
    }

    fn error(&self, to: &Reply, id: &str, code: i64, message: &str) {
        let m = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
        self.deliver(
            to,
            Some(format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":{code},\"message\":{m}}}}}"
            )),
        );
    }

    /// A progress notification for `call` (never after its answer: the
    /// caller's ticker is joined first).
    pub fn progress(&self, call: &Call, progress: u64, message: &str) {
        let Some(token) = &call.progress_token else {
            return;
        };
        // The token as it was sent (a string or any number: the client
        // matches it by its own value).
        let m = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
        self.send(&format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":{token},\"progress\":{progress},\"message\":{m}}}}}"
        ));
    }
}

/// Serve until EOF on stdin.
pub fn serve(root: Option<String>, limits: crate::cmd::mcp::Limits) -> crate::error::Result<()> {
    // A long-lived process: waits use inotify watches and wake sockets,
    // never helper threads blocked on a lock.
    crate::observe::use_watches();
    // Long-lived: supervisors start through the double fork, so that no
    // exited one is left for this process to reap.
    crate::launch::set_long_lived();
    let srv = Arc::new(Server {
        out: Mutex::new(io::stdout()),
        revision: Mutex::new(REVISIONS[0]),
        inflight: Mutex::new(HashMap::new()),
        free_workers: std::sync::atomic::AtomicUsize::new(0),
        root,
        limits,
    });
    let (tx, rx) = mpsc::sync_channel::<Arc<Call>>(QUEUE);
    let mut pool = Pool {
        tx,
        rx: Arc::new(Mutex::new(rx)),
        workers: Vec::new(),
    };
    crate::info!("mcp: serving on stdio");
    let read = read_lines(&mut io::stdin().lock(), |line| {
        handle_line(&srv, &mut pool, line)
    });
    // The client has said all it will say, but it may still be reading:
    // what it asked for is answered first (a `run` it sent last is a job
    // it must hear of).
    crate::info!("mcp: stdin closed; answering the calls in flight");
    watch_stdout();
    pool.finish();
    crate::info!("mcp: every call answered, exiting");
    read.map_err(|e| crate::error::Error::io("read stdin", e))
}

/// While the last calls finish after EOF: end the process as soon as
/// nobody reads stdout any more (a pipe whose reader is gone polls
/// POLLERR, a socket POLLHUP), rather than when a call's answer finds
/// out, which a long `wait` would put off to its `until`.
fn watch_stdout() {
    let started = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(|| loop {
            // No events asked: only the error and hang-up conditions,
            // which poll always reports, wake it.
            let mut fds = [crate::sys::poll_fd(1, 0)];
            match crate::sys::poll(&mut fds, -1) {
                Ok(n) if n > 0 && fds[0].revents != 0 => {
                    crate::info!("mcp: stdout closed, exiting");
                    std::process::exit(0);
                }
                Ok(_) => continue,
                Err(_) => return,
            }
        });
    if let Err(e) = started {
        // Then a closed stdout is found by the next answer written.
        crate::warn!("mcp: cannot watch stdout: {e}");
    }
}

/// A UTF-8 byte order mark, which some clients (Windows ones, chiefly)
/// write before their first message.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Split `input` into lines of at most `MAX_LINE` bytes, reading in
/// bounded chunks. `Err(len)` stands for a line that was too long (it is
/// not kept); trailing bytes without a newline at EOF count as a line.
/// A BOM at the very start of the input is dropped (it would make the
/// first message, `initialize`, a parse error); one anywhere else stays,
/// and is the parse error it is.
pub fn read_lines<R: Read>(
    input: &mut R,
    mut each: impl FnMut(Result<&[u8], usize>),
) -> io::Result<()> {
    let mut chunk = vec![0u8; 64 << 10];
    let mut line: Vec<u8> = Vec::new();
    let mut skipped: Option<usize> = None;
    let mut first = true;
    let mut each = |l: Result<&[u8], usize>| {
        let l = match l {
            Ok(l) if first => Ok(l.strip_prefix(BOM).unwrap_or(l)),
            l => l,
        };
        first = false;
        each(l)
    };
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let nl = rest.iter().position(|b| *b == b'\n');
            let piece = &rest[..nl.unwrap_or(rest.len())];
            match skipped.as_mut() {
                Some(len) => *len += piece.len(),
                None if line.len() + piece.len() > MAX_LINE => {
                    skipped = Some(line.len() + piece.len());
                    line = Vec::new(); // give the memory back
                }
                None => line.extend_from_slice(piece),
            }
            let Some(nl) = nl else { break };
            match skipped.take() {
                Some(len) => each(Err(len)),
                None => each(Ok(&line)),
            }
            line.clear();
            rest = &rest[nl + 1..];
        }
    }
    match skipped {
        Some(len) => each(Err(len)),
        None if !line.is_empty() => each(Ok(&line)),
        None => {}
    }
    Ok(())
}

/// The workers, started as calls need them (up to `WORKERS`): a client
/// that calls one tool at a time is served by one thread, whose stack
/// stays warm, instead of each call landing on the next of eight.
struct Pool {
    tx: SyncSender<Arc<Call>>,
    rx: Arc<Mutex<Receiver<Arc<Call>>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Queue a call for a free worker, or start one for it. A free
    /// worker is claimed here, before the call is queued: two calls in a
    /// row never count on the same idle worker (the second would wait
    /// behind the first, a long `wait` say).
    fn submit(
        &mut self,
        srv: &Arc<Server>,
        call: Arc<Call>,
    ) -> std::result::Result<(), &'static str> {
        let claimed = srv
            .free_workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !claimed && self.workers.len() < WORKERS {
            let (srv, rx) = (Arc::clone(srv), Arc::clone(&self.rx));
            let started = std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn(move || worker(&srv, &rx));
            match started {
                Ok(h) => self.workers.push(h),
                // The running workers will take it in turn.
                Err(e) if !self.workers.is_empty() => {
                    crate::warn!("mcp: cannot start a worker: {e}")
                }
                Err(_) => return Err("cannot start a worker thread"),
            }
        }
        self.tx.try_send(call).map_err(|e| match e {
            TrySendError::Full(_) => "server busy: too many calls in flight; retry",
            TrySendError::Disconnected(_) => "server is stopping",
        })
    }

    /// Take no more calls; return once the workers have answered every
    /// call queued or running (the channel hands out what it holds
    /// before it reports the sender gone).
    fn finish(self) {
        drop(self.tx);
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn handle_line(srv: &Arc<Server>, pool: &mut Pool, line: Result<&[u8], usize>) {
    let to = &Reply::Line;
    let line = match line {
        Ok(l) => l,
        Err(len) => {
            crate::warn!("mcp: skipped a message of {len} bytes");
            return srv.error(
                to,
                "null",
                INVALID_REQUEST,
                &format!("message too long: {len} bytes; at most {MAX_LINE} per line"),
            );
        }
    };
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    // A number past a double's range is valid JSON that serde_json
    // cannot hold: read as a string of its text (`jsonin`), so that the
    // request keeps its id and the member fails its own check.
    let parse_error = |e| srv.error(to, "null", PARSE_ERROR, &format!("parse error: {e}"));
    let quoted;
    let (line, msg): (&[u8], Value) = match serde_json::from_slice(line) {
        Ok(v) => (line, v),
        Err(e) => {
            let q = crate::jsonin::is_huge_number(&e)
                .then(|| crate::jsonin::quote_huge_numbers(line))
                .flatten();
            let Some(q) = q else {
                return lone_surrogate(srv, to, line).unwrap_or_else(|| parse_error(e));
            };
            quoted = q;
            match serde_json::from_slice(&quoted) {
                Ok(v) => (&quoted[..], v),
                Err(e) => return parse_error(e),
            }
        }
    };
    let Value::Array(items) = msg else {
        return handle_message(srv, pool, msg, line, to);
    };
    let rev = srv.revision();
    if rev != BATCH_REVISION {
        return srv.error(
            to,
            "null",
            INVALID_REQUEST,
            &format!(
                "not a JSON-RPC 2.0 message: batches are not taken under protocol revision {rev}"
            ),
        );
    }
    if items.is_empty() {
        return srv.error(to, "null", INVALID_REQUEST, "empty batch");
    }
    // The reader's own count: the array cannot go out before every
    // request of the batch has been seen.
    let batch = Arc::new(Batch {
        left: Mutex::new((1, Vec::new())),
        due: std::time::Instant::now() + std::time::Duration::from_millis(srv.limits.max_ms),
    });
    let to = Reply::Batch(Arc::clone(&batch));
    // Each request's own text, for its id (`id_text`).
    let raws: Vec<&RawValue> = serde_json::from_slice(line).unwrap_or_default();
    for (i, item) in items.into_iter().enumerate() {
        batch.hold();
        let raw = raws.get(i).map_or(&b""[..], |r| r.get().as_bytes());
        if item.get("method").and_then(Value::as_str) == Some("initialize") {
            // The lifecycle's rule: initialize stands alone.
            let id = item.get("id").filter(|i| is_id(i));
            let id_text = id.map_or_else(|| "null".to_string(), |id| id_text(id, raw, &["id"]));
            srv.error(
                &to,
                &id_text,
                INVALID_REQUEST,
                "initialize must not be part of a batch",
            );
            continue;
        }
        handle_message(srv, pool, item, raw, &to);
    }
    srv.deliver(&to, None);
}

/// A request whose text holds a lone surrogate escape (`"\ud800"`: JSON
/// syntax, but no character, which serde_json refuses): answered as the
/// request it is, under its id, -32602 (it was a parse error with id
/// null, and the client waited for ever); a notification (no id) is not
/// answered, as none is. None when the text is bad for another reason
/// too, or is no message (a batch: the parse error it was).
fn lone_surrogate(srv: &Server, to: &Reply, line: &[u8]) -> Option<()> {
    let fixed = crate::jsonin::replace_lone_surrogates(line)?;
    let msg: Value = serde_json::from_slice(&fixed).ok()?;
    if msg.get("method").is_some() && msg.get("id").is_none() {
        return Some(());
    }
    let id = msg.get("id").filter(|i| is_id(i))?;
    // The id as written, escapes and all: one that holds a lone surrogate
    // itself came back with U+FFFD in its place, and its client never
    // found the answer (audit 27). The stand-in escape is as long as the
    // one it replaced, so the id's place in `fixed` is its place in the
    // line.
    let id_text = if id.is_string() {
        raw_member(&fixed, &["id"])
            .and_then(|member| same_place(line, &fixed, member))
            .unwrap_or_else(|| id.to_string())
    } else {
        id_text(id, &fixed, &["id"])
    };
    srv.error(
        to,
        &id_text,
        INVALID_PARAMS,
        "a string of the request holds a lone surrogate escape (\\ud800 to \\udfff without its pair), which is no Unicode character",
    );
    Some(())
}

/// The text of `original` at the place `part` (a slice of `copy`) has
/// in `copy`, a text of the same length.
fn same_place(original: &[u8], copy: &[u8], part: &str) -> Option<String> {
    let at = (part.as_ptr() as usize).checked_sub(copy.as_ptr() as usize)?;
    let bytes = original.get(at..at.checked_add(part.len())?)?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// A JSON-RPC id: a string or a number (one past a double's range too,
/// as `jsonin` stands it in).
fn is_id(v: &Value) -> bool {
    v.is_string() || v.is_number() || crate::jsonin::huge_text(v).is_some()
}

/// An id's text in the answer (and the key its call is found by): the
/// id as it was sent. serde_json holds a number that is no i64 or u64
/// as an f64, which is written otherwise (`1e2` as `100.0`, an integer
/// past 64 bits rounded): such an id is taken as its text from `raw`,
/// the message, at `path`. Any other id is written as it was read (a
/// string with its escapes resolved is the same string).
fn id_text(id: &Value, raw: &[u8], path: &[&str]) -> String {
    // A number past a double's range, read as `jsonin`'s stand-in.
    if let Some(text) = crate::jsonin::huge_text(id) {
        return text.to_string();
    }
    if id.is_f64() {
        if let Some(text) = raw_member(raw, path) {
            return text.to_string();
        }
    }
    id.to_string()
}

/// The text of the member at `path` of the JSON object `raw`. A key
/// given twice is the last one, as when `raw` is read as a `Value`.
fn raw_member<'a>(raw: &'a [u8], path: &[&str]) -> Option<&'a str> {
    let (key, rest) = path.split_first()?;
    let mut members: HashMap<String, &RawValue> = serde_json::from_slice(raw).ok()?;
    let member = members.remove(*key)?.get();
    if rest.is_empty() {
        Some(member)
    } else {
        raw_member(member.as_bytes(), rest)
    }
}

/// One message (alone, or one of a batch; `raw` is its text); its
/// answer, or that it has none, is delivered to `to` exactly once.
fn handle_message(srv: &Arc<Server>, pool: &mut Pool, msg: Value, raw: &[u8], to: &Reply) {
    let id = msg.get("id").filter(|i| is_id(i));
    let id_text = id.map_or_else(|| "null".to_string(), |id| id_text(id, raw, &["id"]));
    let method = msg.get("method").and_then(Value::as_str);
    if !msg.is_object() || msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return srv.error(to, &id_text, INVALID_REQUEST, "not a JSON-RPC 2.0 message");
    }
    let Some(method) = method else {
        if msg.get("result").is_some() || msg.get("error").is_some() {
            // An answer to a request we never send.
            return srv.deliver(to, None);
        }
        return srv.error(to, &id_text, INVALID_REQUEST, "method is missing");
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    if msg.get("id").is_none() {
        notification(srv, method, &params, raw);
        return srv.deliver(to, None);
    }
    if id.is_none() {
        return srv.error(
            to,
            "null",
            INVALID_REQUEST,
            "id must be a string or a number",
        );
    }
    // JSON-RPC 2.0's params, when given, is a structured value, and
    // MCP's are objects: `"params":"x"` was taken as none, and the call
    // answered as if it had been well formed (audit 27). A null is
    // taken as none, as clients write it for a method without params.
    let known = matches!(method, "initialize" | "ping" | "tools/list" | "tools/call");
    if known && !(params.is_object() || params.is_null()) {
        return srv.error(to, &id_text, INVALID_PARAMS, "params must be an object");
    }
    match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let rev = REVISIONS
                .iter()
                .copied()
                .find(|r| Some(*r) == asked)
                .unwrap_or(REVISIONS[0]);
            *srv.revision.lock().unwrap_or_else(|p| p.into_inner()) = rev;
            let result = json!({
                "protocolVersion": rev,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": "agent-exec", "version": env!("CARGO_PKG_VERSION")},
                "instructions": crate::cmd::mcp::INSTRUCTIONS,
            });
            srv.result(to, &id_text, &result.to_string());
        }
        "ping" => srv.result(to, &id_text, "{}"),
        "tools/list" => {
            let tools = crate::cmd::mcp::tools(srv.structured(), srv.limits);
            srv.result(to, &id_text, &json!({ "tools": tools }).to_string());
        }
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str);
            match name {
                Some(n) if crate::cmd::mcp::is_tool(n) => {}
                Some(n) => {
                    return srv.error(to, &id_text, INVALID_PARAMS, &format!("unknown tool: {n}"))
                }
                None => return srv.error(to, &id_text, INVALID_PARAMS, "params.name is required"),
            }
            let Ok((wake_tx, wake_rx)) = UnixStream::pair() else {
                return srv.error(to, &id_text, SERVER_BUSY, "cannot make a wake socket");
            };
            let _ = wake_tx.set_nonblocking(true);
            let arguments_text = params
                .get("arguments")
                .and_then(Value::as_object)
                .filter(|args| args.values().any(Value::is_f64))
                .and_then(|_| raw_member(raw, &["params", "arguments"]))
                .map(str::to_string);
            let twice = raw_member(raw, &["params", "arguments"])
                .and_then(|text| serde_json::from_str::<crate::jsonin::Fields>(text).err())
                .map(|e| e.to_string())
                .filter(|why| why.starts_with("duplicate field"));
            let path = ["params", "_meta", "progressToken"];
            let progress_token = params
                .get("_meta")
                .and_then(|m| m.get("progressToken"))
                .filter(|t| is_id(t))
                .map(|t| self::id_text(t, raw, &path));
            let call = Arc::new(Call {
                id: id_text.clone(),
                params,
                arguments_text,
                progress_token,
                twice,
                reply: to.clone(),
                cancelled: AtomicBool::new(false),
                wake_tx,
                wake_rx,
            });
            lock(&srv.inflight).insert(id_text.clone(), Arc::clone(&call));
            if let Err(why) = pool.submit(srv, call) {
                lock(&srv.inflight).remove(&id_text);
                srv.error(to, &id_text, SERVER_BUSY, why);
            }
        }
        _ => srv.error(
            to,
            &id_text,
            METHOD_NOT_FOUND,
            &format!("method not found: {method}"),
        ),
    }
}

fn notification(srv: &Server, method: &str, params: &Value, raw: &[u8]) {
    if method == "notifications/cancelled" {
        let Some(id) = params.get("requestId").filter(|i| is_id(i)) else {
            return;
        };
        // The key the request's own id was given (`id_text`).
        let key = id_text(id, raw, &["params", "requestId"]);
        if let Some(call) = lock(&srv.inflight).get(&key) {
            crate::info!("mcp: request {} cancelled", call.id);
            call.cancel();
        }
    }
    // notifications/initialized and anything unknown: nothing to do.
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn worker(srv: &Arc<Server>, rx: &Mutex<Receiver<Arc<Call>>>) {
    crate::output::quiet_panics();
    loop {
        let next = lock(rx).recv();
        let Ok(call) = next else { return };
        if !call.cancelled() {
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::cmd::mcp::call_tool(srv, &call)
            }))
            .unwrap_or_else(|_| {
                Some(crate::cmd::mcp::error_result(
                    srv,
                    &crate::error::Error::internal("internal error while calling the tool"),
                ))
            });
            // Out of the table first: a cancel that comes later finds
            // nothing, one that came earlier drops the answer.
            lock(&srv.inflight).remove(&call.id);
            // Free again before the answer goes out: the client's next
            // call, sent as soon as it has this answer, finds us.
            srv.free_workers.fetch_add(1, Ordering::SeqCst);
            match answer {
                Some(result) if !call.cancelled() => srv.result(&call.reply, &call.id, &result),
                _ => {
                    crate::info!("mcp: request {} answered nothing (cancelled)", call.id);
                    srv.deliver(&call.reply, None);
                }
            }
        } else {
            lock(&srv.inflight).remove(&call.id);
            srv.free_workers.fetch_add(1, Ordering::SeqCst);
            srv.deliver(&call.reply, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<Vec<u8>, usize>> {
        let mut got = Vec::new();
        read_lines(&mut &input[..], |l| got.push(l.map(<[u8]>::to_vec))).unwrap();
        got
    }

    #[test]
    fn ids_that_are_no_64_bit_integer_keep_their_text() {
        let raw = br#"{"jsonrpc":"2.0", "id" :  1e2 , "params":{"requestId":123456789012345678901234567890}}"#;
        let msg: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(id_text(&msg["id"], raw, &["id"]), "1e2");
        assert_eq!(
            id_text(&msg["params"]["requestId"], raw, &["params", "requestId"]),
            "123456789012345678901234567890"
        );
        // Others are written as read.
        let raw = br#"{"id":"\u0061","x":-7}"#;
        let msg: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(id_text(&msg["id"], raw, &["id"]), r#""a""#);
        assert_eq!(id_text(&msg["x"], raw, &["x"]), "-7");
        // The last of a key given twice, as in the Value.
        let raw = br#"{"id":1.5,"id":2.50}"#;
        let msg: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(id_text(&msg["id"], raw, &["id"]), "2.50");
    }

    #[test]
    fn lines_are_split_and_overlong_ones_skipped() {
        assert_eq!(
            lines(b"a\nbc\n\nd"),
            vec![
                Ok(b"a".to_vec()),
                Ok(b"bc".to_vec()),
                Ok(vec![]),
                Ok(b"d".to_vec())
            ]
        );
        // A BOM is dropped at the start of the input only.
        assert_eq!(
            lines(b"\xEF\xBB\xBFa\n\xEF\xBB\xBFb\n"),
            vec![Ok(b"a".to_vec()), Ok(b"\xEF\xBB\xBFb".to_vec())]
        );
        assert_eq!(
            lines(b"\n\xEF\xBB\xBFa"),
            vec![Ok(vec![]), Ok(b"\xEF\xBB\xBFa".to_vec())]
        );
        let mut big = vec![b'x'; MAX_LINE + 10];
        big.extend_from_slice(b"\nok\n");
        assert_eq!(lines(&big), vec![Err(MAX_LINE + 10), Ok(b"ok".to_vec())]);
        let exact = vec![b'y'; MAX_LINE];
        assert_eq!(lines(&exact), vec![Ok(exact.clone())]);
    }
}
