//! Input to a running job: the supervisor owns the job's stdin (the
//! write end of a pipe, or a pseudo-terminal's master) and takes bytes
//! from callers through a Unix socket in the job directory,
//! `<job>/stdin.sock` (0600 in a 0700 directory: only the owner can
//! connect). Callers (`send`, the server) come and go; the job never sees
//! them, and a caller that dies mid-send costs the job nothing.
//!
//! Protocol, one exchange per connection: the caller sends one line of
//! JSON, `{"len":N,"eof":bool,"record":bool,"wait_ms":M,"until_ms":U}`,
//! then N bytes; the supervisor answers one line,
//! `{"bytes_written":K,"stdin_open":b}` or `{"error":"stdin_closed"}`
//! (or `{"error":"not_taken"}`: its deadline had passed when it was
//! taken, and nothing of it was written),
//! once all N bytes are in the job's stdin or the caller's deadline has
//! come (a job that stops reading never holds a caller longer than it
//! asked; what did not get in is dropped and not counted, so a caller
//! may resend exactly the rest). U is that deadline on CLOCK_MONOTONIC
//! (`sys::monotonic_now`, one clock for every process), in ms, so that it
//! holds however long the connection waited to be taken (at most
//! `MAX_CLIENTS` are, the rest wait in the listen queue). Before the
//! first byte of a message goes to the job the supervisor sends the line
//! `{"writing":true}` (only to callers that sent U: older ones read one
//! line). A caller without U has M milliseconds from when its whole
//! message is here. A caller that shuts its writing side and reads on
//! was stopped (a stop signal, the server's stop, an MCP cancel): its
//! deadline is now, and it is answered at once as at its deadline.
//!
//! Invariants
//! - Everything stays in the supervisor's poll(): no thread, no tick; a
//!   silent interactive job costs no CPU.
//! - No byte of a message is written to the job after its deadline, nor
//!   after its caller hung up, nor before `{"writing":true}` is in the
//!   caller's socket. A caller that has no answer a little after its
//!   deadline (`GRACE`) shuts its reading side (after which that line can
//!   no longer be sent) and looks once more: without the line, none of
//!   its bytes reached the job or ever will (`Unanswered::NotTaken`), so trying again
//!   sends nothing twice; with it, bytes may have, and it says so.
//! - Arrival order: one caller's bytes are never interleaved with
//!   another's, and an `eof` waits for the bytes of the callers that
//!   connected before it, also those whose header is still on its way
//!   (within its own deadline: if that comes first it closes nothing, and
//!   its answer says stdin is open). Callers after an `eof` wait for it.
//! - Bounded memory: at most `MAX_CLIENTS` connections, each holding at
//!   most `MAX_MESSAGE` bytes; a header line longer than 1 KiB or a
//!   malformed one closes that connection.
//! - A connection that stops sending before its message is whole (no
//!   byte for `IDLE`) is given up, as if it had hung up: idle ones cannot
//!   hold the `MAX_CLIENTS` places and keep every later caller in the
//!   listen queue. The bound is on the time between reads, not the
//!   whole message, so a large one that keeps coming is never cut off;
//!   and it is one more deadline of the poll, no tick.
//! - Bytes that reach the job are appended to `stdin.log` (0600) unless
//!   the caller asked not to record: input is durable like output (D38).
//! - `eof` closes the pipe once the bytes before it are written, or at
//!   its deadline after what of its own bytes got in: `--eof` means
//!   "then input is closed" whether or not all of TEXT made it (for a
//!   terminal, it sends the terminal's end-of-file character, ^D, since
//!   closing the master would hang the session up; two of them when the
//!   line written last is unfinished, as the first only ends that line;
//!   written once the terminal's input has room, after the caller is
//!   answered if need be). Either way input is closed for good: later callers get
//!   `stdin_closed`, and nothing more reaches the job.
//! - stdin.sock is 0600 from the moment it has its name, whatever the
//!   umask (`listen`).
//!
//! Rejected: a FIFO per job (no way to answer a caller, so `bytes_written`
//! could not be told); callers writing to the job's stdin directly (the
//! descriptor dies with whoever holds it, and nothing records the input).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys;

pub const SOCKET: &str = "stdin.sock";
pub const LOG: &str = "stdin.log";
/// The most bytes one message may carry.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
const MAX_CLIENTS: usize = 16;
const MAX_HEADER: usize = 1024;
/// How long after its deadline a caller waits for the supervisor's
/// answer, which is due at the deadline: room for a busy machine.
const GRACE: Duration = Duration::from_secs(2);
/// The least time a message has to get in, whatever the caller's wait:
/// `send --yield 0` still writes what the job takes at once (the trip
/// to the supervisor takes part of it).
const MIN_WAIT: Duration = Duration::from_millis(100);
/// How long a connection whose message is not whole yet may send
/// nothing before it is given up (`Client::idle_until`). `send` writes its
/// whole message as soon as it is connected, so only a caller that
/// stalled or never meant to send waits this long.
const IDLE: Duration = Duration::from_secs(2);
/// Sent before the first byte of a message is written to the job.
const WRITING: &[u8] = b"{\"writing\":true}";
/// The answer's `error` for a message taken after its deadline.
const NOT_TAKEN: &str = "not_taken";

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
pub struct Header {
    pub len: usize,
    #[serde(default)]
    pub eof: bool,
    #[serde(default = "yes")]
    pub record: bool,
    #[serde(default)]
    pub wait_ms: u64,
    /// The caller's deadline on CLOCK_MONOTONIC, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes of this message that reached the job but that stdin.log
    /// could not record, and why (`stream` "stdin"); absent when all of
    /// them were recorded or the caller asked not to record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_lost: Option<crate::job::OutputLoss>,
}

/// One caller's connection.
struct Client {
    sock: UnixStream,
    head: Vec<u8>,
    header: Option<Header>,
    data: Vec<u8>,
    /// Bytes of `data` already written to the job.
    written: usize,
    /// Of those, the bytes to record that stdin.log did not take.
    unrecorded: u64,
    deadline: Option<Instant>,
    /// The caller hung up (before or after its message was complete).
    closed: bool,
    /// `{"writing":true}` is in its socket.
    told: bool,
    /// Its deadline had passed when its header was read: it waited in
    /// the listen queue past its `--yield` (all `MAX_CLIENTS` places
    /// taken). Nothing of it is written; it is answered `not_taken`.
    taken_late: bool,
    /// While its message is not whole: when it is given up unless more
    /// of it arrives first (`IDLE` after the last byte read, or after it
    /// was taken).
    idle_until: Option<Instant>,
}

pub struct Input {
    listener: UnixListener,
    /// Where the job reads: the pipe's write end, or a dup of the master.
    sink: Option<File>,
    tty: bool,
    /// Bytes given at launch (`--stdin`, `--stdin-file`), written first.
    initial: Option<File>,
    initial_buf: Vec<u8>,
    clients: Vec<Client>,
    log: Option<File>,
    log_path: PathBuf,
    /// stdin.log could not be opened or written (a full disk, a symlink
    /// in its place): the first error, and every byte to record since,
    /// none of which is written (the log stays an exact prefix of the
    /// input, as an output log does).
    log_lost: Option<(io::Error, u64)>,
    read_buf: Vec<u8>,
    /// The last byte written to the job did not end a line: on a terminal
    /// the line discipline holds an unfinished line, and one ^D would only
    /// hand it over (see `close_input`).
    line_open: bool,
    /// A terminal's ^D that its full input did not take yet (`close_input`),
    /// and the master to write it to once it does: input is closed for
    /// callers already.
    eof_pending: Option<(File, Vec<u8>)>,
}

/// The name stdin.sock is bound under before it gets its mode: no longer
/// than `SOCKET`, so that a job directory whose stdin.sock fits in a
/// socket address (108 bytes) fits with it too.
const SOCKET_NEW: &str = ".stdin.new";

/// The address of socket `name` in `dir` for bind() or connect(): its
/// path, or, when that is too long for a socket address (108 bytes, the
/// path included: a root of about 70 bytes made every `-i` and `--tty`
/// job fail `spawn_failed`, though a root may be 4022 bytes long), the
/// same file through the directory held open, `/proc/self/fd/N/name`.
/// The open directory goes with the address: keep it until the call.
fn socket_address(dir: &Path, name: &str) -> io::Result<(PathBuf, Option<std::fs::File>)> {
    use std::os::unix::ffi::OsStrExt;
    let path = dir.join(name);
    // sun_path is 108 bytes, its NUL included.
    if path.as_os_str().as_bytes().len() < 108 {
        return Ok((path, None));
    }
    let d = sys::open_dir_lockable(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    Ok((short, Some(d)))
}

/// Bind stdin.sock in `dir`, mode 0600 whatever the umask (D22).
///
/// A socket file takes its mode from the umask at bind(), and there is no
/// way to give bind() a mode. The umask is the whole process's and the
/// supervisor has threads, so it is not changed around the bind; and
/// chmod right after bind would leave a moment in which stdin.sock is
/// wider than 0600. The directory is 0700, so nobody else could connect
/// in that moment anyway, but the file should never be seen with another
/// mode: the socket is bound under a temporary name, made 0600, and only
/// then renamed to stdin.sock (atomically replacing a stale one; a
/// listening socket keeps working under its new name). Rejected:
/// fchmod on the socket before bind (Linux then applies the socket's
/// mode, but that is an undocumented detail of one kernel).
fn listen(dir: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.join(SOCKET_NEW);
    // A leftover of a supervisor that died between bind and rename.
    let _ = std::fs::remove_file(&tmp);
    let (short, _held) = socket_address(dir, SOCKET_NEW)?;
    let listener = UnixListener::bind(short)?;
    // By path: in the 0700 directory only its owner could have put
    // anything else under this name since the bind.
    let made = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, dir.join(SOCKET)));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

impl Input {
    /// Listen in `dir` (creates stdin.sock) for a job reading `sink`.
    pub fn new(dir: &Path, sink: File, tty: bool, initial: Option<File>) -> io::Result<Input> {
        let listener = listen(dir)?;
        listener.set_nonblocking(true)?;
        sys::set_nonblocking(sink.as_raw_fd())?;
        Ok(Input {
            listener,
            sink: Some(sink),
            tty,
            initial,
            initial_buf: Vec::new(),
            clients: Vec::new(),
            log: None,
            log_path: dir.join(LOG),
            log_lost: None,
            read_buf: Vec::new(),
            line_open: false,
            eof_pending: None,
        })
    }

    /// The descriptors to poll and what for.
    pub fn poll_fds(&self, out: &mut Vec<sys::PollFd>) {
        // With every place taken, callers wait in the listen queue: not
        // polled for, or poll would return at once, again and again, for
        // connections nobody accepts (a core spun until a place freed).
        let accepting = self.clients.len() < MAX_CLIENTS;
        let ev = if accepting { sys::POLLIN } else { 0 };
        out.push(sys::poll_fd(self.listener.as_raw_fd(), ev));
        for c in &self.clients {
            // A whole message's caller may still shut its writing side
            // (it was stopped: its deadline is now), which only
            // POLLRDHUP tells without reading.
            let ev = if c.header.map_or(true, |h| c.data.len() < h.len) {
                sys::POLLIN
            } else {
                libc::POLLRDHUP
            };
            out.push(sys::poll_fd(c.sock.as_raw_fd(), ev));
        }
        if let Some(s) = &self.sink {
            if self.has_pending() {
                out.push(sys::poll_fd(s.as_raw_fd(), libc::POLLOUT));
            }
        }
        if let Some((m, _)) = &self.eof_pending {
            out.push(sys::poll_fd(m.as_raw_fd(), libc::POLLOUT));
        }
    }

    fn has_pending(&self) -> bool {
        self.initial.is_some()
            || !self.initial_buf.is_empty()
            || self.clients.iter().any(|c| c.ready_to_write())
    }

    /// The earliest moment a caller must be answered, or given up for
    /// sending nothing.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients
            .iter()
            .flat_map(|c| [c.deadline, c.idle_until])
            .flatten()
            .min()
    }

    /// What stdin.log could not record so far, as the job's state lists
    /// it (`output_lost`).
    pub fn loss(&self) -> Option<crate::job::OutputLoss> {
        let (e, n) = self.log_lost.as_ref()?;
        Some(crate::job::OutputLoss::new("stdin", *n, e))
    }

    /// Do what can be done now: accept, read, write, answer. When input
    /// that reached the job could not be recorded, `unrecorded` is given
    /// the loss so far before any caller is answered (so that the job's
    /// record says so by the time its sender knows).
    pub fn step(&mut self, unrecorded: impl FnOnce(crate::job::OutputLoss)) {
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    let _ = sock.set_nonblocking(true);
                    self.clients.push(Client {
                        sock,
                        head: Vec::new(),
                        header: None,
                        data: Vec::new(),
                        written: 0,
                        unrecorded: 0,
                        deadline: None,
                        closed: false,
                        told: false,
                        taken_late: false,
                        idle_until: Instant::now().checked_add(IDLE),
                    });
                }
                Err(_) => break,
            }
        }
        if !self.clients.is_empty() {
            // On the heap, made once: a buffer this size on the stack
            // would be probed into the supervisor's resident pages for
            // every job, also those that never take input.
            let mut buf = std::mem::take(&mut self.read_buf);
            buf.resize(64 * 1024, 0);
            for c in &mut self.clients {
                c.read_some(&mut buf);
            }
            self.read_buf = buf;
        }
        self.feed_initial();
        self.write_eof();
        // One moment for both: a caller passed over as late is answered.
        let now = Instant::now();
        for c in &mut self.clients {
            if c.idle_until.is_some_and(|t| t <= now) {
                // Read just above, and still nothing new: given up, and
                // answered (with what of its bytes got in) as a caller
                // that hung up.
                c.closed = true;
            }
        }
        let before = self.log_lost.as_ref().map_or(0, |(_, n)| *n);
        self.write_clients(now);
        if let Some(lost) = self.loss().filter(|l| l.dropped_bytes > before) {
            unrecorded(lost);
        }
        self.answer_done(now);
    }

    /// `--stdin` / `--stdin-file` bytes, before anything sent later.
    fn feed_initial(&mut self) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        loop {
            if self.initial_buf.is_empty() {
                let Some(f) = self.initial.as_mut() else {
                    return;
                };
                let mut buf = vec![0u8; 64 * 1024];
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        self.initial = None;
                        return;
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        self.initial_buf = buf;
                    }
                }
            }
            match sink.write(&self.initial_buf) {
                Ok(n) => {
                    if n > 0 {
                        self.line_open = opens_line(self.initial_buf[n - 1]);
                    }
                    self.initial_buf.drain(..n);
                }
                Err(_) => return,
            }
        }
    }

    fn write_clients(&mut self, now: Instant) {
        if self.initial.is_some() || !self.initial_buf.is_empty() {
            return;
        }
        // In arrival order: one caller's bytes are never interleaved with
        // another's. A caller whose header has not arrived yet does not
        // hold the others up, nor does one whose time is up or who hung
        // up: nothing more of theirs is written, they are answered as
        // they stand (`answer_done`). But a message that has begun is
        // finished first, before any other gets a byte: its caller may be
        // one that overtook an earlier caller whose header was still on
        // its way, and that earlier one, taken in arrival order, spliced
        // its bytes into the middle of the other's.
        let begun = self.clients.iter().position(|c| {
            c.header.is_some_and(|h| c.written > 0 && c.written < h.len)
                && !c.closed
                && !c.deadline.is_some_and(|d| d <= now)
        });
        let rest = (0..self.clients.len()).filter(|&i| Some(i) != begun);
        let order: Vec<usize> = begun.into_iter().chain(rest).collect();
        for i in order {
            let Some(h) = self.clients[i].header else {
                continue;
            };
            let c = &mut self.clients[i];
            if c.closed || c.deadline.is_some_and(|d| d <= now) {
                continue;
            }
            let Some(sink) = self.sink.as_mut() else {
                return;
            };
            if c.written < c.data.len() && c.may_write(&h) {
                let n = match sink.write(&c.data[c.written..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(_) => {
                        // The job closed its end: nothing more gets in.
                        self.sink = None;
                        return;
                    }
                };
                let from = c.written;
                c.written += n;
                if n > 0 {
                    self.line_open = opens_line(c.data[from + n - 1]);
                    if h.record {
                        let bytes = c.data[from..from + n].to_vec();
                        let missed = self.record(&bytes);
                        self.clients[i].unrecorded += missed;
                    }
                }
            }
            let c = &self.clients[i];
            if c.written < h.len || h.eof {
                // Not all in yet (the pipe is full, or more is coming),
                // or an end of file that those after it must wait for.
                break;
            }
        }
    }

    /// Append `bytes` to stdin.log; returns how many of them it did not
    /// take (counted in `log_lost`).
    fn record(&mut self, mut bytes: &[u8]) -> u64 {
        if let Some((_, n)) = &mut self.log_lost {
            *n += bytes.len() as u64;
            return bytes.len() as u64;
        }
        let log = match self.log.as_mut() {
            Some(l) => l,
            None => {
                let dir = self.log_path.parent().unwrap_or(Path::new("/"));
                let opened = sys::Dir::open(dir).and_then(|d| d.open_file(LOG, sys::How::Append));
                match opened {
                    Ok(f) => self.log.insert(f),
                    Err(e) => {
                        self.log_lost = Some((e, bytes.len() as u64));
                        return bytes.len() as u64;
                    }
                }
            }
        };
        while !bytes.is_empty() {
            let e = match log.write(bytes) {
                Ok(0) => io::Error::from_raw_os_error(libc::ENOSPC),
                Ok(n) => {
                    bytes = &bytes[n..];
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            self.log_lost = Some((e, bytes.len() as u64));
            return bytes.len() as u64;
        }
        0
    }

    /// Answer callers whose bytes are all in, or whose time is up.
    fn answer_done(&mut self, now: Instant) {
        // A caller before this one still has bytes to write, or may have
        // (its header is on its way: it connected first).
        let mut earlier = false;
        let mut i = 0;
        while i < self.clients.len() {
            let c = &self.clients[i];
            let broken = c.head.len() > MAX_HEADER || c.closed;
            let Some(h) = c.header else {
                if broken {
                    self.clients.remove(i);
                } else {
                    earlier = true;
                    i += 1;
                }
                continue;
            };
            let all_in = c.data.len() == h.len && c.written == h.len;
            // Without `until_ms`, no deadline until the whole message has
            // arrived.
            let late = c.deadline.is_some_and(|d| d <= now);
            let open = self.sink.is_some();
            // An end of file waits for the bytes before it (arrival order).
            let eof_waits = h.eof && all_in && earlier && open;
            if !(all_in || late || broken || !open) || (eof_waits && !late && !broken) {
                earlier = true;
                i += 1;
                continue;
            }
            let mut c = self.clients.remove(i);
            // Closed before this caller's turn: `stdin_closed`, also for
            // an empty message (a second `--eof`), as the docs say of
            // every send after the end of input.
            let reply = if !open && c.written == 0 {
                Reply {
                    bytes_written: None,
                    stdin_open: None,
                    error: Some("stdin_closed".into()),
                    input_lost: None,
                }
            } else if c.taken_late && c.written == 0 {
                // Taken after its deadline: none of it was written, nor
                // its `--eof` carried out. Said so, not as `bytes_written:
                // 0` of a job that did not read: its caller then took the
                // send for done (ok, exit 0) and never sent it again.
                Reply {
                    bytes_written: None,
                    stdin_open: None,
                    error: Some(NOT_TAKEN.into()),
                    input_lost: None,
                }
            } else {
                // `--eof` closes input after what of its own bytes got in,
                // all or (its time up) some; not over the bytes of callers
                // before it, nor for a caller that hung up midway.
                if h.eof && !earlier && (all_in || !broken) {
                    self.close_input();
                }
                // The error is stdin.log's first: every byte not
                // recorded since is one it caused.
                let input_lost = self
                    .log_lost
                    .as_ref()
                    .filter(|_| c.unrecorded > 0)
                    .map(|(e, _)| crate::job::OutputLoss::new("stdin", c.unrecorded, e));
                Reply {
                    bytes_written: Some(c.written as u64),
                    stdin_open: Some(self.sink.is_some()),
                    error: None,
                    input_lost,
                }
            };
            if let Ok(mut line) = serde_json::to_vec(&reply) {
                line.push(b'\n');
                // A short line into an empty socket buffer: it fits.
                let _ = c.sock.write_all(&line);
            }
        }
    }

    fn close_input(&mut self) {
        let sink = self.sink.take();
        if self.tty {
            // The terminal's end of file (VEOF, ^D by default) ends a read
            // at the start of a line; the session stays up. After an
            // unfinished line the first ^D only hands that line to the
            // reader, so a second one is needed for it to see end of file.
            // A terminal whose input is full takes it later: it is written
            // then (a write that would block had dropped it, and the job
            // waited for its end of input for ever).
            let eof = if self.line_open { vec![4, 4] } else { vec![4] };
            self.eof_pending = sink.map(|m| (m, eof));
            self.write_eof();
        }
        // Closed for callers either way, as a pipe would be: later sends
        // are `stdin_closed`. On a terminal this drops only our dup of
        // the master; the supervisor's own copy still reads the output.
    }

    /// Write what of a terminal's pending ^D it takes now; done, the dup
    /// of the master is dropped.
    fn write_eof(&mut self) {
        let Some((m, eof)) = self.eof_pending.as_mut() else {
            return;
        };
        loop {
            match m.write(eof) {
                Ok(n) if n > 0 => {
                    eof.drain(..n);
                    if eof.is_empty() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The job's side is gone: nobody is left to read it.
                _ => break,
            }
        }
        self.eof_pending = None;
    }

    /// The job ended: answer everyone still waiting, stop listening.
    pub fn finish(mut self, dir: &Path) {
        self.sink = None;
        self.eof_pending = None;
        let now = Instant::now();
        for c in &mut self.clients {
            c.deadline = Some(now);
        }
        self.answer_done(now);
        let _ = std::fs::remove_file(dir.join(SOCKET));
    }
}

impl Client {
    fn ready_to_write(&self) -> bool {
        self.header.is_some() && self.written < self.data.len()
    }

    /// Whether this caller's bytes may go to the job now: it is still
    /// there, and (for a caller that can read it) knows that they are
    /// going, before the first of them does. A caller that has shut its
    /// reading side (it gave up) refuses the line: then nothing is
    /// written, and it was right to say so.
    fn may_write(&mut self, h: &Header) -> bool {
        if sys::output_gone(self.sock.as_raw_fd()) {
            self.closed = true;
            return false;
        }
        if h.until_ms.is_some() && !self.told {
            let mut line = WRITING.to_vec();
            line.push(b'\n');
            if self.sock.write_all(&line).is_err() {
                self.closed = true;
                return false;
            }
            self.told = true;
        }
        true
    }

    /// The caller was stopped (`send`'s stop): its deadline is now, so it
    /// is answered at once with what of its bytes got in, as at its
    /// deadline, and no more of them is written.
    fn stop(&mut self) {
        let now = Instant::now();
        self.deadline = Some(self.deadline.map_or(now, |d| d.min(now)));
        self.idle_until = None;
    }

    /// Read what has arrived: the header line, then the payload.
    fn read_some(&mut self, buf: &mut [u8]) {
        loop {
            if self.header.is_some_and(|h| self.data.len() >= h.len) {
                // All here. Poll reports a hang-up whatever is asked for:
                // noticed now, it is answered and dropped, not polled in a
                // loop until its deadline.
                if sys::output_gone(self.sock.as_raw_fd()) {
                    self.closed = true;
                } else if shut_writing(self.sock.as_raw_fd()) {
                    self.stop();
                }
                return;
            }
            let n = match self.sock.read(buf) {
                // The caller shut its writing side, but reads on: it was
                // stopped, and waits for its answer.
                Ok(0) if self.header.is_some() && !sys::output_gone(self.sock.as_raw_fd()) => {
                    self.stop();
                    return;
                }
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => {
                    self.idle_until = Instant::now().checked_add(IDLE);
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.closed = true;
                    return;
                }
            };
            let mut chunk = &buf[..n];
            if self.header.is_none() {
                match chunk.iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        self.head.extend_from_slice(&chunk[..p]);
                        chunk = &chunk[p + 1..];
                        let h: Option<Header> = serde_json::from_slice(&self.head).ok();
                        match h.filter(|h| h.len <= MAX_MESSAGE) {
                            Some(h) => {
                                self.data.reserve(h.len.min(1 << 20));
                                self.header = Some(h);
                                if let Some(until) = h.until_ms {
                                    self.deadline = deadline_at(until, h.wait_ms);
                                    self.taken_late =
                                        Duration::from_millis(until) <= sys::monotonic_now();
                                }
                            }
                            None => {
                                // Malformed: answered as broken below.
                                self.head.resize(MAX_HEADER + 1, 0);
                                return;
                            }
                        }
                    }
                    None => {
                        self.head.extend_from_slice(chunk);
                        if self.head.len() > MAX_HEADER {
                            return;
                        }
                        continue;
                    }
                }
            }
            if let Some(h) = self.header {
                let take = (h.len - self.data.len()).min(chunk.len());
                self.data.extend_from_slice(&chunk[..take]);
                if self.data.len() == h.len {
                    // Whole: from now on only its deadline counts.
                    self.idle_until = None;
                }
                if self.data.len() == h.len && self.deadline.is_none() {
                    // The caller's wait counts from when its whole message
                    // is here: only the job's not reading may cost it.
                    self.deadline = Instant::now().checked_add(Duration::from_millis(h.wait_ms));
                }
            }
        }
    }
}

/// Whether the peer of `fd` has shut its writing side (POLLRDHUP).
fn shut_writing(fd: RawFd) -> bool {
    let mut p = [sys::poll_fd(fd, libc::POLLRDHUP)];
    matches!(sys::poll(&mut p, 0), Ok(1)) && p[0].revents & libc::POLLRDHUP != 0
}

/// The moment a caller's deadline `until_ms` (CLOCK_MONOTONIC) is on
/// our clock: now, if it has passed. Never later than `wait_ms` from now,
/// whatever the caller's clock said.
fn deadline_at(until_ms: u64, wait_ms: u64) -> Option<Instant> {
    let left = Duration::from_millis(until_ms)
        .saturating_sub(sys::monotonic_now())
        .min(Duration::from_millis(wait_ms));
    Instant::now().checked_add(left)
}

/// Whether writing `last` as the last byte leaves a terminal's line
/// unfinished: anything but a line end (NL; CR, which ICRNL makes one)
/// or ^D (which hands the line over as it stands).
fn opens_line(last: u8) -> bool {
    !matches!(last, b'\n' | b'\r' | 4)
}

/// Why a send got no answer from the supervisor: the inner error of the
/// `io::Error` that `send` returns then (`unanswered` tells which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Not taken by its deadline (at most `MAX_CLIENTS` callers are taken
    /// at once; the rest wait): none of its bytes reached the job, and
    /// none will.
    NotTaken,
    /// The supervisor said it was writing the bytes and no answer came
    /// (it died, or the deadline passed): some may have reached the job.
    /// Whatever the job's state is now, that is the caller's answer.
    MayHaveGotIn,
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unanswered::NotTaken => "the job's supervisor did not take the input by the deadline",
            Unanswered::MayHaveGotIn => "no answer from the job's supervisor after it began writing: some of the bytes may have reached the job",
        })
    }
}

impl std::error::Error for Unanswered {}

/// Which `Unanswered` a send's error is, if it is one.
pub fn unanswered(e: &io::Error) -> Option<Unanswered> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<Unanswered>())
        .copied()
}

/// The caller's side: send `data` (and maybe end of file) to the job
/// whose directory is `dir`, waiting at most `wait` for it to get in
/// (`MIN_WAIT` at least), and for the answer a little more (`GRACE`).
/// No answer by then is `Unanswered::NotTaken` when none of the bytes can have
/// reached the job, else `MayHaveGotIn` (some may have).
///
/// A stop ends the wait as the deadline would, at once (`stopped`: a
/// stop signal in `observe::until_stopped`, or `give_up` readable, the
/// server's stop or an MCP cancel): the caller shuts its writing side,
/// which tells the supervisor its deadline is now (`Client::read_some`),
/// and it answers with what got in, as at the deadline. A caller that
/// was not taken yet (it waits in the listen queue) has no answer: it
/// looks once more a little later (`STOP_LOOK`), as at its deadline.
pub fn send(
    dir: &Path,
    data: &[u8],
    eof: bool,
    record: bool,
    wait: Duration,
    give_up: Option<RawFd>,
) -> io::Result<Reply> {
    let path = dir.join(SOCKET);
    // Never through a symlink: the socket must be the job's own.
    let m = std::fs::symlink_metadata(&path)?;
    {
        use std::os::unix::fs::FileTypeExt;
        if !m.file_type().is_socket() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, sys::NotRegular));
        }
    }
    let wait = wait.max(MIN_WAIT);
    let until = sys::monotonic_now() + wait;
    let mut end = Instant::now() + wait + GRACE;
    let (address, _held) = socket_address(dir, SOCKET)?;
    let mut s = UnixStream::connect(address)?;
    // Every wait below is a poll that a stop cuts short (a stop signal
    // interrupts it; `give_up` is polled with the socket).
    s.set_nonblocking(true)?;
    let header = Header {
        len: data.len(),
        eof,
        record,
        wait_ms: wait.as_millis().min(u64::MAX as u128) as u64,
        until_ms: Some(until.as_millis().min(u64::MAX as u128) as u64),
    };
    let mut msg = serde_json::to_vec(&header).map_err(io::Error::other)?;
    msg.push(b'\n');
    // Not taken by the supervisor (the connection still waits to be
    // accepted), a large message blocks here: no longer than the wait.
    // The supervisor may answer (and hang up) before it has all the bytes
    // (stdin already closed, or the deadline passed): its answer is what
    // counts, so a write that fails for that reason is not an error of
    // its own; nor is one still blocked at the deadline or at a stop
    // (the answer, or its absence, says what got in).
    let mut stopped_at = None;
    'send: for mut part in [&msg[..], data] {
        while !part.is_empty() {
            match s.write(part) {
                Ok(n) => part = &part[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match ready(&s, libc::POLLOUT, Some(give_up), end) {
                        Wake::Ready => {}
                        Wake::Late => break 'send,
                        Wake::Stopped => {
                            stopped_at = Some(Instant::now());
                            break 'send;
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    break 'send
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut stopped = stopped_at.is_some();
    let mut writing = false;
    let mut shut = false;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if let Some(at) = stopped_at.take() {
            // Our deadline is now: the supervisor answers at once with
            // what got in. One that has not said it writes may not have
            // taken us at all: a short look, then as at the deadline.
            let _ = s.shutdown(std::net::Shutdown::Write);
            let look = if writing { GRACE } else { STOP_LOOK };
            end = end.min(at + look);
        }
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => {
                if line != WRITING {
                    let reply: Reply = serde_json::from_slice(&line)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    // Taken too late to be written: as if never taken.
                    if reply.error.as_deref() == Some(NOT_TAKEN) {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            Unanswered::NotTaken,
                        ));
                    }
                    return Ok(reply);
                }
                writing = true;
                line.clear();
            }
            Ok(_) if line.len() < MAX_HEADER => line.push(byte[0]),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "answer line too long",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !shut => {
                // Once stopped, only the answer (or `end`) is awaited.
                let watch = (!stopped).then_some(give_up);
                match ready(&s, sys::POLLIN, watch, end) {
                    Wake::Ready => {}
                    Wake::Stopped => {
                        stopped = true;
                        stopped_at = Some(Instant::now());
                    }
                    Wake::Late => {
                        // No answer in time. Shut our reading side: from
                        // now on the supervisor cannot say it is writing
                        // (it writes nothing it has not said), so what is
                        // in the socket now settles it. Reads no longer
                        // wait.
                        s.shutdown(std::net::Shutdown::Read)?;
                        shut = true;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // A reset after the supervisor said it writes is no answer
            // after it began (below); before, nothing of ours got in.
            Err(_) if writing => break,
            Err(e) => return Err(e),
        }
    }
    if writing {
        return Err(io::Error::other(Unanswered::MayHaveGotIn));
    }
    if shut {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            Unanswered::NotTaken,
        ));
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the job's supervisor hung up without an answer",
    ))
}

/// How long a stopped caller that the supervisor has not said it writes
/// for waits for its answer before it looks once more (as at its
/// deadline): the answer of a supervisor that took it comes at once; one
/// still in the listen queue gets none.
const STOP_LOOK: Duration = Duration::from_millis(300);

/// What ended a caller's wait in `ready`.
enum Wake {
    Ready,
    Late,
    Stopped,
}

/// Wait until `s` is ready for `ev`, `end` comes, or (with `watch`) a
/// stop: a stop signal (it interrupts the poll; `sys::stop_ends_wait`),
/// or the descriptor it holds readable or hung up.
fn ready(s: &UnixStream, ev: i16, watch: Option<Option<RawFd>>, end: Instant) -> Wake {
    let give_up = watch.flatten();
    loop {
        if watch.is_some() && sys::stop_ends_wait() {
            return Wake::Stopped;
        }
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            return Wake::Late;
        };
        let mut fds = vec![sys::poll_fd(s.as_raw_fd(), ev)];
        fds.extend(give_up.map(|fd| sys::poll_fd(fd, sys::POLLIN)));
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match sys::poll(&mut fds, ms) {
            Ok(_) if fds.get(1).is_some_and(|f| f.revents != 0) => return Wake::Stopped,
            Ok(_) if fds[0].revents != 0 => return Wake::Ready,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A poll that cannot be made: the call itself says.
            Err(_) => return Wake::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The supervisor's side driven step by step, without poll: a caller's
    //! connect() has put it in the listen queue, and its write() its bytes
    //! in the socket, by the time they return, so each `step` sees exactly
    //! what the test has done.

    use super::*;
    use std::os::fd::OwnedFd;
    use std::path::PathBuf;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ae-input-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// An `Input` whose job has not read anything: its pipe is full, so
    /// no caller's bytes get in until `drain`.
    fn full_pipe(tag: &str) -> (Input, PathBuf, OwnedFd) {
        let dir = temp_dir(tag);
        let (r, w) = sys::pipe().unwrap();
        sys::set_nonblocking(w.as_raw_fd()).unwrap();
        sys::set_nonblocking(r.as_raw_fd()).unwrap();
        let mut w = File::from(w);
        let chunk = [b'x'; 4096];
        while w.write(&chunk).is_ok() {}
        let input = Input::new(&dir, w, false, None).unwrap();
        (input, dir, r)
    }

    /// The job reads everything in its pipe.
    fn drain(r: &OwnedFd) {
        let mut f = File::from(r.try_clone().unwrap());
        let mut buf = [0u8; 65536];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }

    fn header(len: usize, eof: bool, wait: Duration) -> Vec<u8> {
        let until = sys::monotonic_now() + wait;
        let h = Header {
            len,
            eof,
            record: false,
            wait_ms: wait.as_millis() as u64,
            until_ms: Some(until.as_millis() as u64),
        };
        let mut line = serde_json::to_vec(&h).unwrap();
        line.push(b'\n');
        line
    }

    fn connect(dir: &Path) -> UnixStream {
        UnixStream::connect(dir.join(SOCKET)).unwrap()
    }

    /// The supervisor's answer, skipping `{"writing":true}`; None when it
    /// has not answered (yet).
    fn answer(s: &mut UnixStream) -> Option<Reply> {
        s.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        got.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && *l != WRITING)
            .map(|l| serde_json::from_slice(l).unwrap())
            .next()
    }

    fn open(bytes: u64) -> Reply {
        Reply {
            bytes_written: Some(bytes),
            stdin_open: Some(true),
            error: None,
            input_lost: None,
        }
    }

    #[test]
    fn an_eof_waits_for_a_caller_taken_before_it_whose_header_is_in_two_pieces() {
        let (mut input, dir, r) = full_pipe("two-pieces");
        let head = header(7, false, Duration::from_secs(30));
        let (first, rest) = head.split_at(10);
        // A connects first and sends part of its header; then the eof,
        // whole. Both are in the listen queue when the supervisor looks.
        let mut a = connect(&dir);
        a.write_all(first).unwrap();
        let mut eof = connect(&dir);
        eof.write_all(&header(0, true, Duration::from_secs(30)))
            .unwrap();
        input.step(|_| {});
        assert!(input.sink.is_some(), "closed ahead of a header on its way");
        assert_eq!(answer(&mut eof), None);
        // A's header is complete and its bytes here: they cannot get in
        // yet, and the eof still waits for them.
        a.write_all(rest).unwrap();
        a.write_all(b"DATA-A\n").unwrap();
        input.step(|_| {});
        assert!(input.sink.is_some(), "closed ahead of A's pending bytes");
        assert_eq!(answer(&mut eof), None);
        // The job reads: A's bytes, then the end of file.
        drain(&r);
        input.step(|_| {});
        assert_eq!(answer(&mut a), Some(open(7)));
        let done = answer(&mut eof).expect("the eof is answered");
        assert_eq!(done.stdin_open, Some(false), "{done:?}");
        assert!(input.sink.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_eof_whose_time_ends_behind_an_earlier_caller_closes_nothing() {
        let (mut input, dir, r) = full_pipe("late-eof");
        let mut a = connect(&dir);
        a.write_all(&header(7, false, Duration::from_secs(30)))
            .unwrap();
        a.write_all(b"DATA-A\n").unwrap();
        input.step(|_| {});
        // Taken in time, its deadline comes while it waits behind A.
        let mut eof = connect(&dir);
        eof.write_all(&header(0, true, Duration::from_millis(300)))
            .unwrap();
        input.step(|_| {});
        assert_eq!(answer(&mut eof), None);
        std::thread::sleep(Duration::from_millis(400));
        input.step(|_| {});
        assert_eq!(answer(&mut eof), Some(open(0)));
        assert!(input.sink.is_some());
        drain(&r);
        input.step(|_| {});
        assert_eq!(answer(&mut a), Some(open(7)));
        assert!(input.sink.is_some(), "A's send does not close input");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_message_taken_after_its_deadline_is_not_taken_and_writes_nothing() {
        let (mut input, dir, r) = full_pipe("taken-late");
        drain(&r);
        // Its deadline had passed when its header was read (it waited in
        // the listen queue): nothing of it is written, its eof not done.
        let mut late = connect(&dir);
        late.write_all(&header(5, true, Duration::ZERO)).unwrap();
        late.write_all(b"LATE\n").unwrap();
        input.step(|_| {});
        let got = answer(&mut late).expect("answered");
        assert_eq!(got.error.as_deref(), Some(NOT_TAKEN), "{got:?}");
        assert!(input.sink.is_some(), "its eof closed input");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_caller_that_connects_after_an_eof_finds_input_closed() {
        let (mut input, dir, _r) = full_pipe("after-eof");
        let mut eof = connect(&dir);
        eof.write_all(&header(0, true, Duration::from_secs(30)))
            .unwrap();
        let mut b = connect(&dir);
        b.write_all(&header(7, false, Duration::from_secs(30)))
            .unwrap();
        b.write_all(b"DATA-B\n").unwrap();
        input.step(|_| {});
        let done = answer(&mut eof).expect("the eof is answered");
        assert_eq!(done.stdin_open, Some(false), "{done:?}");
        let late = answer(&mut b).expect("B is answered");
        assert_eq!(late.error.as_deref(), Some("stdin_closed"), "{late:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
