//! The one error type of agent-exec.
//!
//! Every failure a command can report is a variant here. The contract with
//! callers is the `code()` string (stable, snake_case) and `retryable()`;
//! `message` text is for humans and may change. `exit_code()` is the only
//! place that maps errors to process exit statuses: 2 for anything wrong
//! with the command line (including values that fail validation while the
//! arguments are parsed), 1 for everything else.
//!
//! Rejected: a string-typed error with a code field (codes drift), and
//! anyhow-style chains (the envelope needs a code before a message).

use std::fmt;
use std::io;

use serde_json::{json, Value};

#[derive(Debug)]
pub enum Error {
    /// Anything wrong with the shape of the command line.
    Usage(String),
    /// A `--tag` value (or tag filter) that breaks the tag rules.
    InvalidTag(String),
    /// A signal name or number we do not know.
    InvalidSignal(String),
    /// A duration such as `30d` that does not parse.
    InvalidDuration(String),
    /// An output-match or `tail --grep` regex that does not compile.
    InvalidPattern(String),
    /// A `--since` cursor that is not one of this job's, or that names a
    /// position the logs no longer have (deleted, replaced, shorter).
    InvalidCursor(String),
    /// No job directory matches the id or prefix (message echoes the input).
    JobNotFound(String),
    /// A prefix that matches two or more jobs.
    AmbiguousJobId {
        prefix: String,
        candidates: Vec<String>,
        /// How many more matched than are listed (`truncated` when any).
        more: usize,
    },
    /// The job is in a state that does not allow the operation.
    InvalidState(String),
    /// `invalid_state` for now only: another caller is changing the job
    /// (a launch in progress, the supervisor of the run that just ended
    /// still at its last steps). Retryable: the same call a moment later
    /// finds the job settled and gets a clear answer (D6: contention).
    Busy(String),
    /// `--stdin -` while standard input is a terminal.
    StdinRequired,
    /// `send` to a job whose stdin was closed (or that has ended).
    StdinClosed(String),
    /// Materialised stdin would exceed `--stdin-max-bytes`.
    StdinTooLarge(u64),
    /// A config file (or server configuration) that cannot be used.
    InvalidConfig(String),
    /// An operating-system failure, with what we were doing.
    Io { context: String, source: io::Error },
    /// A bug or an impossible state; also what a panic becomes.
    Internal(String),
    /// `serve` refusing a non-loopback bind.
    ServeUnsafeBind(String),
    /// A bad HTTP request (body, query or header).
    InvalidRequest(String),
    /// Missing or wrong bearer token.
    Unauthorized,
    /// A request the server refuses whoever sends it (a browser origin
    /// or host name it does not serve).
    Forbidden(String),
    /// No HTTP route at this path.
    RouteNotFound(String),
    /// A known path with a method it does not serve.
    MethodNotAllowed { allow: &'static str },
    /// Request line, headers or body over the server's limits.
    PayloadTooLarge(String),
    /// The server is at its connection limit; try again.
    Unavailable(String),
    /// A request that began but did not arrive whole in the time allowed.
    RequestTimeout(String),
    /// A file in a job directory that is a symlink or not a regular file,
    /// or a job directory that is not a directory: never followed.
    UnsafePath(String),
    /// Any error about one job: the inner error, plus the job's id in
    /// `details.job_id`, so a caller always knows which job it concerns.
    InJob(String, Box<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Is `e` the file system's "no room": no block or no inode left, or a
/// quota reached?
pub fn no_room(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

impl Error {
    /// A refused value's error with `what` (`parameter until`, `tags`)
    /// before its message: the codes of their own (a duration, signal,
    /// tag or pattern) say what was wrong, not which of a call's values.
    /// Any other error is returned as it is.
    pub fn about(self, what: &str) -> Error {
        match self {
            Error::InvalidDuration(m) => Error::InvalidDuration(format!("{what}: {m}")),
            Error::InvalidSignal(m) => Error::InvalidSignal(format!("{what}: {m}")),
            Error::InvalidTag(m) => Error::InvalidTag(format!("{what}: {m}")),
            Error::InvalidPattern(m) => Error::InvalidPattern(format!("{what}: {m}")),
            other => other,
        }
    }

    /// Did this fail for want of room on the file system (`no_room`)?
    pub fn is_no_room(&self) -> bool {
        match self {
            Error::Io { source, .. } => no_room(source),
            Error::InJob(_, e) => e.is_no_room(),
            _ => false,
        }
    }

    /// Did this fail because the process ran out of file descriptors
    /// (EMFILE/ENFILE)? A scan then stops with this error rather than
    /// count a job it could not open as one that is not a job.
    pub fn out_of_descriptors(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
            }
            Error::InJob(_, e) => e.out_of_descriptors(),
            _ => false,
        }
    }

    /// Wrap an `io::Error` with what we were doing. A refused symlink
    /// (ELOOP from an O_NOFOLLOW open, ENOTDIR from a directory opened
    /// O_NOFOLLOW) or a non-regular file is `unsafe_path`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        let context = context.into();
        if matches!(source.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
            || crate::sys::is_not_regular(&source)
        {
            // Said as what it likely is: ENOTDIR is a file (or a link to
            // one) where a directory should be.
            let what = match source.raw_os_error() {
                Some(libc::ENOTDIR) => "a file or symlink where a directory should be",
                Some(libc::ELOOP) => "a symlink",
                _ => "a file that is not regular",
            };
            return Error::UnsafePath(format!("{context}: refusing {what} ({source})"));
        }
        Error::Io { context, source }
    }

    /// An I/O error about a path the user named (the jobs root), taken
    /// as it is: there a file in a directory's place (ENOTDIR) is a
    /// mistyped path, not a planted link, and says so (`io_error`).
    pub fn io_as_is(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Say which job this error is about (once; the innermost id wins).
    pub fn in_job(self, id: &str) -> Error {
        match self {
            e @ Error::InJob(..) => e,
            e => Error::InJob(id.to_string(), Box::new(e)),
        }
    }

    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Error {
        Error::Internal(msg.into())
    }

    /// The stable code: the contract with every caller.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InJob(_, e) => e.code(),
            Error::UnsafePath(_) => "unsafe_path",
            Error::Usage(_) => "usage_error",
            Error::InvalidTag(_) => "invalid_tag",
            Error::InvalidSignal(_) => "invalid_signal",
            Error::InvalidDuration(_) => "invalid_duration",
            Error::InvalidPattern(_) => "invalid_pattern",
            Error::InvalidCursor(_) => "invalid_cursor",
            Error::JobNotFound(_) => "job_not_found",
            Error::AmbiguousJobId { .. } => "ambiguous_job_id",
            Error::InvalidState(_) | Error::Busy(_) => "invalid_state",
            Error::StdinRequired => "stdin_required",
            Error::StdinClosed(_) => "stdin_closed",
            Error::StdinTooLarge(_) => "stdin_too_large",
            Error::InvalidConfig(_) => "invalid_config",
            Error::Io { .. } => "io_error",
            Error::Internal(_) => "internal_error",
            Error::ServeUnsafeBind(_) => "serve_unsafe_bind",
            Error::InvalidRequest(_) => "invalid_request",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::RouteNotFound(_) => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::Unavailable(_) => "unavailable",
            Error::RequestTimeout(_) => "request_timeout",
        }
    }

    /// True where the same call, repeated later, may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::InJob(_, e) => e.retryable(),
            Error::Unavailable(_) | Error::RequestTimeout(_) | Error::Busy(_) => true,
            Error::Io { source, .. } => io_retryable(source),
            _ => false,
        }
    }

    /// The one mapping from errors to process exit statuses.
    pub fn exit_code(&self) -> i32 {
        if self.is_usage() {
            2
        } else {
            1
        }
    }

    /// Errors about the command line itself (exit 2).
    pub fn is_usage(&self) -> bool {
        if let Error::InJob(_, e) = self {
            return e.is_usage();
        }
        matches!(
            self,
            Error::Usage(_)
                | Error::InvalidTag(_)
                | Error::InvalidSignal(_)
                | Error::InvalidDuration(_)
                | Error::InvalidPattern(_)
                | Error::InvalidCursor(_)
        )
    }

    /// The HTTP status that carries this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InJob(_, e) => e.http_status(),
            Error::JobNotFound(_) | Error::RouteNotFound(_) => 404,
            Error::Unauthorized => 401,
            Error::Forbidden(_) => 403,
            Error::MethodNotAllowed { .. } => 405,
            Error::PayloadTooLarge(_) => 413,
            Error::Unavailable(_) => 503,
            Error::RequestTimeout(_) => 408,
            // A job in the wrong state for the request is 400, on every
            // route, as 0.2.3 answers /kill of a created job (its table of
            // statuses); a job whose stdin is closed, 409.
            Error::StdinClosed(_) => 409,
            Error::Io { .. } | Error::Internal(_) => 500,
            _ => 400,
        }
    }

    /// Structured details, for the errors that have them.
    pub fn details(&self) -> Option<Value> {
        match self {
            Error::InJob(id, e) => {
                let mut d = e.details().unwrap_or_else(|| json!({}));
                if let Some(m) = d.as_object_mut() {
                    m.insert("job_id".into(), Value::String(id.clone()));
                }
                Some(d)
            }
            // The id as given: an error about a job names it, whichever
            // door (one id, several, a dependency) it came through.
            Error::AmbiguousJobId {
                prefix,
                candidates,
                more,
            } => Some(json!({
                "candidates": candidates,
                "job_id": prefix,
                "truncated": *more > 0,
            })),
            Error::JobNotFound(id) => Some(json!({ "job_id": id })),
            _ => None,
        }
    }
}

/// errno values that say "not now" rather than "never".
fn io_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::AddrInUse
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EBUSY | libc::EMFILE | libc::ENFILE | libc::ENOSPC)
    )
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::InvalidTag(m)
            | Error::InvalidSignal(m)
            | Error::InvalidDuration(m)
            | Error::InvalidPattern(m)
            | Error::InvalidCursor(m)
            | Error::InvalidState(m)
            | Error::Busy(m)
            | Error::InvalidConfig(m)
            | Error::Internal(m)
            | Error::ServeUnsafeBind(m)
            | Error::InvalidRequest(m)
            | Error::Forbidden(m)
            | Error::PayloadTooLarge(m)
            | Error::Unavailable(m)
            | Error::RequestTimeout(m)
            | Error::UnsafePath(m)
            | Error::StdinClosed(m) => f.write_str(m),
            Error::InJob(_, e) => e.fmt(f),
            Error::JobNotFound(id) => write!(f, "job not found: {id}"),
            Error::AmbiguousJobId {
                prefix,
                candidates,
                more,
            } => {
                write!(
                    f,
                    "ambiguous job ID prefix '{prefix}': matches {}",
                    candidates.join(", ")
                )?;
                if *more > 0 {
                    write!(f, ", ... and {more} more")?;
                }
                Ok(())
            }
            Error::StdinRequired => f.write_str(
                "stdin_required: --stdin - requires non-interactive stdin (pipe/heredoc/redirect)",
            ),
            Error::StdinTooLarge(n) => {
                write!(f, "stdin_too_large: input exceeds {n} byte limit")?;
                // Limits in whole mebibytes (send's 16 MiB) also as such.
                const MIB: u64 = 1 << 20;
                if *n >= MIB && n % MIB == 0 {
                    write!(f, " ({} MiB)", n / MIB)?;
                }
                Ok(())
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Unauthorized => f.write_str("missing or invalid Bearer token"),
            Error::RouteNotFound(p) => write!(f, "no route for {p}"),
            Error::MethodNotAllowed { allow } => {
                write!(f, "method not allowed; allowed: {allow}")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_family_exits_2_everything_else_1() {
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::InvalidSignal("x".into()).exit_code(), 2);
        assert_eq!(Error::InvalidDuration("x".into()).exit_code(), 2);
        assert_eq!(Error::InvalidCursor("x".into()).exit_code(), 2);
        assert_eq!(Error::InvalidCursor("x".into()).http_status(), 400);
        assert_eq!(Error::JobNotFound("x".into()).exit_code(), 1);
        assert_eq!(Error::internal("x").exit_code(), 1);
    }

    #[test]
    fn retryable_only_where_retrying_can_help() {
        assert!(Error::Unavailable("full".into()).retryable());
        let e = Error::io("bind", io::Error::from(io::ErrorKind::AddrInUse));
        assert!(e.retryable());
        let e = Error::io("open", io::Error::from(io::ErrorKind::NotFound));
        assert!(!e.retryable());
        assert!(!Error::JobNotFound("x".into()).retryable());
        // Contention over a job: same code as a settled refusal, but
        // worth another try.
        let busy = Error::Busy("x".into()).in_job("J");
        assert_eq!(busy.code(), "invalid_state");
        assert!(busy.retryable());
        assert!(!Error::InvalidState("x".into()).retryable());
    }

    #[test]
    fn ambiguous_has_details() {
        let e = Error::AmbiguousJobId {
            prefix: "01".into(),
            candidates: vec!["01A".into(), "01B".into()],
            more: 0,
        };
        let d = e.details().unwrap();
        assert_eq!(d["candidates"][1], "01B");
        assert_eq!(d["truncated"], false);
        assert_eq!(d["job_id"], "01");
        assert!(e.to_string().ends_with("matches 01A, 01B"));
        let e = Error::AmbiguousJobId {
            prefix: "01".into(),
            candidates: vec!["01A".into(), "01B".into()],
            more: 3,
        };
        assert_eq!(e.details().unwrap()["truncated"], true);
        assert!(e.to_string().ends_with("matches 01A, 01B, ... and 3 more"));
    }
}
