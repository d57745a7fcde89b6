//! The output contract: one document on stdout, diagnostics on stderr.
//!
//! A command returns an `Output`; `main` hands it to `emit`, the only
//! code that writes a response to stdout. Success documents are
//! `{"schema_version":"0.1","ok":true,"type":<kind>, ...fields}` with the
//! body's fields in declaration order; errors are
//! `{"schema_version":"0.1","ok":false,"type":"error","error":{code,
//! message, retryable, details?}}`.
//!
//! Invariants
//! - A body is serialized once, to compact JSON, when the response is
//!   built; JSON output splices it into the envelope, YAML output re-reads
//!   that text order-preservingly (`yaml::json_to_yaml`).
//! - A closed stdout (EPIPE) ends the process quietly: nobody is reading.
//! - A panic anywhere prints an `internal_error` envelope (once).
//!
//! Rejected: `serde_json::Value` for bodies (sorts keys without the
//! `preserve_order` feature, which would add a dependency).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use serde::Serialize;

use crate::error::Error;

pub const SCHEMA_VERSION: &str = "0.1";

/// A success document: the whole envelope as compact JSON and a newline,
/// built in one buffer (the body is serialized straight after the
/// envelope's first fields, not copied in: a listing is tens of KiB).
#[derive(Debug, Clone)]
pub struct Response {
    text: String,
}

impl Response {
    pub fn new<T: Serialize>(kind: &'static str, body: &T) -> Result<Response, Error> {
        Response::with_capacity(kind, body, 4096)
    }

    /// `new`, for a document of about `bytes` (growing a buffer past
    /// 4 KiB copies it each time and maps fresh pages). A document the
    /// memory left cannot hold (log text as large as the caller's
    /// `--max-bytes` asked for) is an `io_error` (ENOMEM): the buffer
    /// grows fallibly (`write_json`).
    pub fn with_capacity<T: Serialize>(
        kind: &'static str,
        body: &T,
        bytes: usize,
    ) -> Result<Response, Error> {
        let mut buf = Response::head(kind, bytes).into_bytes();
        let at = buf.len();
        if let Err(e) = write_json(&mut buf, body) {
            if matches!(e, Error::Io { .. }) {
                return Err(e);
            }
            buf.truncate(at);
        }
        // The closing bytes, so that they never double a full buffer.
        buf.try_reserve_exact(2)
            .map_err(|_| crate::observe::out_of_memory("build the answer"))?;
        Ok(Response::finish(buf, at))
    }

    /// A body that is already a JSON object's text (e.g. an embedded
    /// document whose key order we keep as written).
    pub fn raw(kind: &'static str, body: String) -> Response {
        let mut buf = Response::head(kind, body.len() + 64).into_bytes();
        let at = buf.len();
        buf.extend_from_slice(body.trim().as_bytes());
        Response::finish(buf, at)
    }

    fn head(kind: &str, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes.max(128));
        s.push_str("{\"schema_version\":\"0.1\",\"ok\":true,\"type\":");
        s.push_str(&serde_json::to_string(kind).unwrap_or_default());
        s
    }

    /// `buf[at..]` holds the body object: its fields join the envelope's.
    fn finish(mut buf: Vec<u8>, at: usize) -> Response {
        let object = buf.len() >= at + 2 && buf[at] == b'{' && buf.ends_with(b"}");
        if object
            && buf[at + 1..]
                .iter()
                .any(|b| !b.is_ascii_whitespace() && *b != b'}')
        {
            buf[at] = b','; // `{"a":1}` becomes `,"a":1}`
        } else {
            buf.truncate(at); // empty or not an object: no fields
            buf.push(b'}');
        }
        buf.push(b'\n');
        Response {
            // Only whole JSON texts were appended to a valid UTF-8 head.
            text: String::from_utf8(buf).unwrap_or_default(),
        }
    }

    /// The full envelope as compact JSON (no trailing newline).
    #[cfg(test)]
    pub fn to_json(&self) -> String {
        self.text.trim_end_matches('\n').to_string()
    }
}

/// Serialize `value` as compact JSON onto the end of `out`, which grows
/// fallibly: out of memory is `io_error` (ENOMEM), never the abort (no
/// document, exit 134) an infallible growth ends in. Any other failure
/// (a body that is not serializable) is `internal_error`.
pub fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    struct Fallible<'a>(&'a mut Vec<u8>);
    impl Write for Fallible<'_> {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            // Doubling first (few copies); near the limit, only what this
            // piece needs: a log's text comes as one piece, and doubling
            // past it could fail where the text itself fits.
            self.0
                .try_reserve(b.len())
                .or_else(|_| self.0.try_reserve_exact(b.len()))
                .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Fallible(out), value).map_err(|e| {
        if e.is_io() {
            crate::observe::out_of_memory("build the answer")
        } else {
            Error::internal(e.to_string())
        }
    })
}

/// What a command hands back to `main`.
pub enum Output {
    Doc(Response),
    /// Human text (help, completion scripts): printed as is.
    Text(String),
    /// The command already printed its one document (`serve`).
    Done,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<serde_json::Value>,
}

/// The error envelope as compact JSON.
pub fn error_json(e: &Error) -> String {
    #[derive(Serialize)]
    struct Env<'a> {
        schema_version: &'a str,
        ok: bool,
        #[serde(rename = "type")]
        kind: &'a str,
        error: ErrorBody<'a>,
    }
    let env = Env {
        schema_version: SCHEMA_VERSION,
        ok: false,
        kind: "error",
        error: ErrorBody {
            code: e.code(),
            message: e.to_string(),
            retryable: e.retryable(),
            details: e.details(),
        },
    };
    serde_json::to_string(&env).unwrap_or_default()
}

static YAML: AtomicBool = AtomicBool::new(false);
static PRINTED: AtomicBool = AtomicBool::new(false);

/// Choose the format for every document this process prints.
pub fn set_yaml(on: bool) {
    YAML.store(on, Ordering::Relaxed);
}

/// Whether documents are printed as YAML (`--yaml`).
pub fn yaml() -> bool {
    YAML.load(Ordering::Relaxed)
}

fn render(json: &str) -> String {
    if YAML.load(Ordering::Relaxed) {
        crate::yaml::json_to_yaml(json).unwrap_or_else(|_| format!("{json}\n"))
    } else {
        format!("{json}\n")
    }
}

/// A writer to our stdout that waits while a non-blocking stdout is full
/// (an agent harness may hand us the write end of a pipe it made
/// O_NONBLOCK): EAGAIN cut a document at 64 KiB, and lost the rest.
/// Used for every stdout write (documents, follow lines, MCP messages).
pub struct Patient<W: Write>(pub W);

impl<W: Write> Write for Patient<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        patiently(|| self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        patiently(|| self.0.flush())
    }
}

/// `op` on stdout, again each time stdout was full (EAGAIN) once poll
/// says it takes more.
fn patiently<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => crate::sys::wait_writable(1),
            r => return r,
        }
    }
}

/// Write one document to stdout. EPIPE ends the process quietly.
fn write_stdout(text: &str) {
    PRINTED.store(true, Ordering::SeqCst);
    let mut out = Patient(io::stdout().lock());
    let res = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    if let Err(e) = res {
        // A reader that went away (`| head`) is the usual end of a pipe:
        // nothing said, and the exit status is the command's own (an
        // error's stays an error: it exited 0, which `set -o pipefail`
        // read as success).
        if e.kind() == io::ErrorKind::BrokenPipe {
            GONE.store(true, Ordering::SeqCst);
            return;
        }
        // Anything else (a full disk, a closed stdout) lost the answer:
        // the caller must not read success from the exit status.
        use std::io::Write as _;
        let _ = writeln!(
            io::stderr(),
            "agent-exec: error: could not write the answer to stdout: {e}"
        );
        UNWRITTEN.store(true, Ordering::SeqCst);
    }
}

/// Set when a document could not be written to stdout (not EPIPE). (A
/// stdout closed at start cannot be told apart: Rust's runtime puts
/// /dev/null there before main, as it should.)
static UNWRITTEN: AtomicBool = AtomicBool::new(false);

/// Set when stdout's reader had gone (EPIPE) at a write.
static GONE: AtomicBool = AtomicBool::new(false);

/// Did a document fail to reach stdout (its reader gone, or a write that
/// failed)? `serve` stops then: nobody could learn its port.
pub fn answer_lost() -> bool {
    UNWRITTEN.load(Ordering::SeqCst) || GONE.load(Ordering::SeqCst)
}

/// The exit status once the answer is out: `code`, or 1 if the answer
/// could not be written (and `code` said success).
pub fn exit_status(code: i32) -> i32 {
    if code == 0 && UNWRITTEN.load(Ordering::SeqCst) {
        1
    } else {
        code
    }
}

/// `--table`: the document as a table for people (`table::render`); a
/// document that is not one of a table's prints as itself. `short`: a
/// job's short id, for documents that carry none (`status`).
pub fn print_table(r: &Response, short: &dyn Fn(&str) -> Option<String>) {
    let now = crate::time::now_unix();
    match crate::table::render(&r.text, now, crate::table::width_from_env(), short) {
        Some(t) => {
            write_stdout(&t);
            if let Some(note) = crate::table::cut_note(&r.text) {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{note}");
            }
        }
        None => print_response(r),
    }
}

pub fn print_response(r: &Response) {
    if YAML.load(Ordering::Relaxed) {
        write_stdout(&render(r.text.trim_end_matches('\n')));
    } else {
        write_stdout(&r.text);
    }
}

/// The human line every error gets on stderr (whatever its code), beside
/// the document on stdout. A closed stderr is ignored.
pub fn error_line(e: &Error) {
    use std::io::Write;
    let text = e.to_string();
    let _ = writeln!(std::io::stderr(), "agent-exec: error: {}", printable(&text));
}

/// `text` for a terminal: control characters (an escape sequence in a
/// job id given as an argument, a newline in a path) written as Rust
/// escapes, so that what a caller passed can neither drive the terminal
/// nor forge a line of its own. The JSON document escapes them already.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

pub fn print_error(e: &Error) {
    write_stdout(&render(&error_json(e)));
}

pub fn print_text(t: &str) {
    write_stdout(t);
}

/// Install the hook that turns a panic into an `internal_error` envelope.
/// Threads that catch their own panics (the HTTP workers) set
/// `quiet_panics` so the hook stays silent for them.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if QUIET_PANICS.with(|q| q.get()) {
            return;
        }
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(io::stderr(), "agent-exec: internal error: {msg}{loc}");
        if !PRINTED.swap(true, Ordering::SeqCst) {
            let e = Error::internal(format!("internal error: {msg}"));
            let mut out = Patient(io::stdout().lock());
            let _ = out.write_all(render(&error_json(&e)).as_bytes());
            let _ = out.flush();
        }
        std::process::exit(1);
    }));
}

thread_local! {
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Mark the current thread as one that catches its own panics.
pub fn quiet_panics() {
    QUIET_PANICS.with(|q| q.set(true));
}

// ---------------------------------------------------------------------------
// Diagnostics on stderr
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

/// `RUST_LOG=error|warn|info|debug|trace` wins when it parses (also in
/// the `target=level` form, for our own target, `agent_exec` or
/// `agent-exec`: see `parse_level`); otherwise `-v` counts up from warn.
pub fn init_logging(verbose: u8) {
    let from_env = std::env::var("RUST_LOG").ok().and_then(|v| parse_level(&v));
    let level = from_env.unwrap_or(match verbose {
        0 => Level::Warn,
        1 => Level::Info,
        2 => Level::Debug,
        _ => Level::Trace,
    });
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Our level in a `RUST_LOG` list, read as env_logger reads one: a bare
/// level is the default for every target; `target=level` (or a bare
/// target: every level) is that target's, and wins over the default
/// when the target is ours. A directive for another program's target
/// says nothing about us (`other=trace` raised our level). The last of
/// each kind wins; None: nothing here applies.
fn parse_level(spec: &str) -> Option<Level> {
    let named = |s: &str| match s.trim().to_ascii_lowercase().as_str() {
        "error" | "off" => Some(Level::Error),
        "warn" => Some(Level::Warn),
        "info" => Some(Level::Info),
        "debug" => Some(Level::Debug),
        "trace" => Some(Level::Trace),
        _ => None,
    };
    // Our lines have the one target: a narrower one (agent_exec::x)
    // names none of them.
    let ours = |t: &str| matches!(t.trim(), "agent_exec" | "agent-exec");
    let (mut default, mut own) = (None, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some((target, lvl)) if ours(target) => own = named(lvl).or(own),
            Some(_) => {}
            None if ours(part) => own = Some(Level::Trace),
            None => default = named(part).or(default),
        }
    }
    own.or(default)
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// One diagnostic line on stderr. Never starts with `{`.
pub fn log(level: Level, msg: std::fmt::Arguments<'_>) {
    if enabled(level) {
        let tag = match level {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let _ = writeln!(
            io::stderr(),
            "{} {tag} agent-exec: {msg}",
            crate::time::now_ts()
        );
    }
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::output::log($crate::output::Level::Warn, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::output::log($crate::output::Level::Info, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::output::log($crate::output::Level::Debug, format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {

    #[test]
    fn error_lines_escape_control_characters() {
        assert_eq!(super::printable("plain: job 01AB"), "plain: job 01AB");
        assert_eq!(
            super::printable("job not found: \u{1b}[31mX\nY"),
            "job not found: \\u{1b}[31mX\\nY"
        );
    }
    use super::*;

    #[test]
    fn envelope_keeps_field_order() {
        #[derive(Serialize)]
        struct B {
            zeta: u8,
            alpha: &'static str,
        }
        let r = Response::new(
            "status",
            &B {
                zeta: 1,
                alpha: "a",
            },
        )
        .unwrap();
        assert_eq!(
            r.to_json(),
            r#"{"schema_version":"0.1","ok":true,"type":"status","zeta":1,"alpha":"a"}"#
        );
        #[derive(Serialize)]
        struct Empty {}
        let r = Response::new("health", &Empty {}).unwrap();
        assert_eq!(
            r.to_json(),
            r#"{"schema_version":"0.1","ok":true,"type":"health"}"#
        );
    }

    #[test]
    fn error_envelope_shape() {
        let j = error_json(&Error::JobNotFound("x".into()));
        assert_eq!(
            j,
            r#"{"schema_version":"0.1","ok":false,"type":"error","error":{"code":"job_not_found","message":"job not found: x","retryable":false,"details":{"job_id":"x"}}}"#
        );
    }

    #[test]
    fn rust_log_levels() {
        assert_eq!(parse_level("debug"), Some(Level::Debug));
        assert_eq!(parse_level("agent_exec=trace"), Some(Level::Trace));
        assert_eq!(parse_level("nonsense"), None);
        // Another program's target says nothing about us; ours wins over
        // the default in either order.
        assert_eq!(parse_level("other=trace"), None);
        assert_eq!(parse_level("warn,other=trace"), Some(Level::Warn));
        assert_eq!(parse_level("agent-exec=error,debug"), Some(Level::Error));
        assert_eq!(
            parse_level("info,agent_exec::supervisor=debug"),
            Some(Level::Info)
        );
        assert_eq!(parse_level("agent_exec::x=trace"), None);
        assert_eq!(parse_level("agent_exec"), Some(Level::Trace));
    }
}
