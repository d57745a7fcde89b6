//! The HTTP/1.1 protocol for `serve`, by hand, on std::net: reading one
//! request at a time from a connection (its head first, then, once the
//! caller has looked at the head, its body), writing one response, and
//! the small text helpers a router needs (percent-decoding, query pairs).
//!
//! Supported subset: origin-form targets (`/path?query`) and the
//! absolute form (`http://host:port/path?query`, which RFC 9112 3.2.2
//! says a server MUST accept: its path and query are the target, its
//! authority is kept for the server's Host checks); HTTP/1.1 with
//! keep-alive and `Connection: close`; HTTP/1.0 (closes unless it asks
//! for keep-alive, and `close` anywhere wins); HTTP/1.2 and later minor
//! versions, served as 1.1; request bodies framed by `Content-Length`
//! only; pipelined requests (answered in order); `Expect: 100-continue`
//! (ignored from HTTP/1.0, which is never sent a 1xx).
//! Rejected with an answer, then the connection is closed: a malformed
//! request line or header, or an HTTP/1.1 request without `Host` (400),
//! an HTTP major version other than 1 (505), a request line plus headers
//! over `MAX_HEAD` bytes or more than `MAX_HEADERS` fields (431), a
//! chunked body (411: we need a length), any other transfer coding (501:
//! one we do not implement, RFC 9112 6.1), a body over `MAX_BODY` (413,
//! with the head, before the body).
//!
//! Invariants
//! - Everything read is bounded: the head by `MAX_HEAD`, the body by
//!   `MAX_BODY`; nothing is buffered beyond that.
//! - Time is bounded: a connection waits at most the caller's first-byte
//!   time for a request to begin (the server gives `IDLE`, on a new
//!   connection as between keep-alive requests); once a request's first byte is
//!   in, its head must be complete within `HEAD_TIME` (a client that
//!   trickles bytes — slowloris — is answered 408 `request_timeout` and
//!   dropped when that runs out), and its body within `BODY_TIME` of the
//!   head. A connection on which no request began is dropped without a
//!   word when its wait runs out.
//! - The head is handed out before the body is read (`next_head`, then
//!   `read_body` or `skip_buffered_body`), so the server can refuse an
//!   unauthenticated request without waiting for, or holding, its body;
//!   `100 Continue` is only sent from `read_body`, i.e. once accepted.
//! - Nothing here panics on any input; every malformed input is a
//!   `ReadError::Bad` carrying a status and an error for the envelope.
//! - Steady state allocates nothing: the read buffer and the `Request`
//!   are reused from one request to the next on a connection.
//!
//! Rejected: an HTTP crate (not in our dependency budget, and the subset
//! we need is small); chunked request bodies (nobody sends them to a
//! JSON API, and the framing is a classic source of smuggling bugs);
//! obsolete header line folding (RFC 9112 says reject it); one deadline
//! for head and body together (10 s for a head let a slowloris hold a
//! connection five times longer than any real client needs).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::error::Error;

/// Request line plus headers, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Header fields per request.
pub const MAX_HEADERS: usize = 100;
/// Request body, in bytes.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a connection may sit before a request begins: a new one,
/// or a keep-alive one between requests.
pub const IDLE: Duration = Duration::from_secs(5);
/// How long a request head may take to arrive, from its first byte.
pub const HEAD_TIME: Duration = Duration::from_secs(2);
/// How long a request body may take to arrive, once its head is in.
pub const BODY_TIME: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Options,
    /// Another method HTTP defines (PUT, DELETE, PATCH, CONNECT,
    /// TRACE): 405 where a route does not serve it.
    Other,
    /// A method HTTP does not define: 501 (RFC 9110 9.1), answered once
    /// the head is read, never routed.
    Unknown,
}

/// One parsed request. Fields are reused across requests on a connection
/// (cleared, not reallocated); an empty string means "header absent".
#[derive(Debug, Default)]
pub struct Request {
    pub method: Method,
    /// The request target as sent: path, then `?query` if any.
    target: String,
    path_end: usize,
    pub http10: bool,
    /// False when the client asked to close (or is HTTP/1.0 without
    /// `Connection: keep-alive`).
    pub keep_alive: bool,
    pub content_length: usize,
    authorization: String,
    origin: String,
    host: String,
    /// The authority of an absolute-form target (`http://AUTHORITY/...`).
    authority: String,
    expect_continue: bool,
    pub body: Vec<u8>,
}

impl Request {
    /// The path, still percent-encoded.
    pub fn path(&self) -> &str {
        &self.target[..self.path_end]
    }
    /// The query string without its `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.target.get(self.path_end + 1..).unwrap_or_default()
    }
    pub fn authorization(&self) -> Option<&str> {
        some(&self.authorization)
    }
    pub fn origin(&self) -> Option<&str> {
        some(&self.origin)
    }
    pub fn host(&self) -> Option<&str> {
        some(&self.host)
    }
    /// The authority named by an absolute-form target, if it was one.
    pub fn target_authority(&self) -> Option<&str> {
        some(&self.authority)
    }

    fn reset(&mut self) {
        self.method = Method::Get;
        self.target.clear();
        self.path_end = 0;
        self.http10 = false;
        self.keep_alive = true;
        self.content_length = 0;
        self.authorization.clear();
        self.origin.clear();
        self.host.clear();
        self.authority.clear();
        self.expect_continue = false;
        if self.body.capacity() > 64 * 1024 {
            // A one-off big body is not kept for the connection's life.
            self.body = Vec::new();
        } else {
            self.body.clear();
        }
    }
}

fn some(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Why no request came out of the connection.
#[derive(Debug)]
pub enum ReadError {
    /// End of stream, reset, or no request begun in the time allowed:
    /// drop the connection without a word (there is nobody to answer).
    Closed,
    /// A request we refuse: answer with this status and error, then close.
    Bad(u16, Error),
}

fn bad(msg: impl Into<String>) -> ReadError {
    ReadError::Bad(400, Error::InvalidRequest(msg.into()))
}

/// What a connection needs beyond `Read`: per-read timeouts, and a way
/// to send the interim `100 Continue` before the body.
pub trait Source: Read {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
    fn send_interim(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// A borrowed socket, so that a connection's reader and writer share one
/// descriptor.
impl Source for &TcpStream {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        // A zero duration means "no timeout" to the socket API.
        self.set_read_timeout(Some(t.max(Duration::from_millis(1))))
    }
    fn send_interim(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
}

/// Reads requests from one connection, one at a time.
pub struct Reader<S: Source> {
    src: S,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// The timeout last set on `src`, to skip redundant system calls.
    timeout: Option<Duration>,
    pub req: Request,
}

/// Read buffer size: a whole maximal head fits, with room for a body
/// that arrives in the same packets.
const BUF: usize = MAX_HEAD + 8 * 1024;

impl<S: Source> Reader<S> {
    pub fn new(src: S) -> Reader<S> {
        Reader {
            src,
            buf: vec![0u8; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            timeout: None,
            req: Request::default(),
        }
    }

    /// Is a further (pipelined) request already buffered, at least in part?
    pub fn has_buffered(&self) -> bool {
        self.pos < self.end
    }

    fn set_timeout(&mut self, t: Duration) -> Result<(), ReadError> {
        if self.timeout != Some(t) {
            self.src.set_timeout(t).map_err(|_| ReadError::Closed)?;
            self.timeout = Some(t);
        }
        Ok(())
    }

    /// Read more bytes into `buf[end..]`, waiting until `deadline`;
    /// Closed on EOF or error, and on a timeout before a request began
    /// (`begun` false: an idle connection is dropped without a word);
    /// a timeout once it began is answered 408.
    fn fill(&mut self, deadline: Instant, begun: bool) -> Result<(), ReadError> {
        let late = || {
            if begun {
                timed_out("the request's head")
            } else {
                ReadError::Closed
            }
        };
        if self.pos > 0 {
            // Usually nothing is left and this is free; at most a partial
            // head (< MAX_HEAD) moves.
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            // Full with no request boundary found: the caller checks
            // sizes before asking for more, so this means a bad head.
            return Err(ReadError::Bad(
                431,
                Error::PayloadTooLarge(too_large_head()),
            ));
        }
        let t = deadline
            .checked_duration_since(Instant::now())
            .filter(|t| !t.is_zero())
            .ok_or_else(late)?;
        self.set_timeout(t)?;
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(late()),
                Err(_) => return Err(ReadError::Closed),
            }
        }
    }

    /// Read the next request, head and body, into `self.req` (a
    /// keep-alive wait of `IDLE` for it to begin). The server reads the
    /// two apart; this is for the tests.
    #[cfg(test)]
    pub fn next_request(&mut self) -> Result<&Request, ReadError> {
        self.next_head(IDLE)?;
        self.read_body()?;
        Ok(&self.req)
    }

    /// Read the next request's head into `self.req`, waiting up to
    /// `first_byte` for it to begin; its body is left unread (see
    /// `read_body`, `skip_buffered_body`). A body over `MAX_BODY` is
    /// refused here, from its `Content-Length`.
    pub fn next_head(&mut self, first_byte: Duration) -> Result<&Request, ReadError> {
        if !self.has_buffered() {
            self.fill(Instant::now() + first_byte, false)?;
        }
        let deadline = Instant::now() + HEAD_TIME;
        // Find the end of the head, scanning only new bytes each round.
        let mut scanned = 0;
        let head_len = loop {
            // Tolerate empty lines before the request line (RFC 9112 2.2).
            while self.pos < self.end && matches!(self.buf[self.pos], b'\r' | b'\n') {
                self.pos += 1;
                scanned = 0;
            }
            let avail = &self.buf[self.pos..self.end];
            if let Some(n) = find_head_end(avail, scanned) {
                break n;
            }
            if avail.len() >= MAX_HEAD {
                return Err(ReadError::Bad(
                    431,
                    Error::PayloadTooLarge(too_large_head()),
                ));
            }
            scanned = avail.len();
            // Only blank lines so far is no request yet.
            self.fill(deadline, !avail.is_empty())?;
        };
        if head_len > MAX_HEAD {
            return Err(ReadError::Bad(
                431,
                Error::PayloadTooLarge(too_large_head()),
            ));
        }
        let start = self.pos;
        self.pos += head_len;
        parse_head(&self.buf[start..start + head_len], &mut self.req)?;
        let want = self.req.content_length;
        if want > MAX_BODY {
            return Err(ReadError::Bad(
                413,
                Error::PayloadTooLarge(format!(
                    "request body of {want} bytes exceeds the {MAX_BODY}-byte limit"
                )),
            ));
        }
        Ok(&self.req)
    }

    /// Pass over the body of the request whose head was just read,
    /// without waiting for any of it: true when it was already buffered
    /// in full (or empty), so the connection can go on to the next
    /// request; false when some of it is still to come (the caller
    /// answers and closes).
    pub fn skip_buffered_body(&mut self) -> bool {
        let want = self.req.content_length;
        if self.end - self.pos >= want {
            self.pos += want;
            true
        } else {
            false
        }
    }

    /// Read the body of the request whose head was just read (within
    /// `BODY_TIME`), sending `100 Continue` first if it was asked for.
    pub fn read_body(&mut self) -> Result<(), ReadError> {
        let want = self.req.content_length;
        if want == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + BODY_TIME;
        let body = &mut self.req.body;
        let have = (self.end - self.pos).min(want);
        body.extend_from_slice(&self.buf[self.pos..self.pos + have]);
        self.pos += have;
        if body.len() == want {
            return Ok(());
        }
        if self.req.expect_continue {
            self.src
                .send_interim(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|_| ReadError::Closed)?;
        }
        let mut got = body.len();
        body.resize(want, 0);
        while got < want {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|t| !t.is_zero())
                .ok_or_else(|| timed_out("the request's body"))?;
            if self.timeout != Some(left) {
                self.src.set_timeout(left).map_err(|_| ReadError::Closed)?;
                self.timeout = Some(left);
            }
            match self.src.read(&mut self.req.body[got..]) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(timed_out("the request's body")),
                Err(_) => return Err(ReadError::Closed),
            }
        }
        Ok(())
    }
}

/// A socket read that gave up at its timeout (SO_RCVTIMEO: EAGAIN).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A request that began but did not arrive whole in time: 408.
fn timed_out(what: &str) -> ReadError {
    ReadError::Bad(
        408,
        Error::RequestTimeout(format!("{what} did not arrive in time")),
    )
}

fn too_large_head() -> String {
    format!("request line and headers exceed {MAX_HEAD} bytes")
}

/// Length of the head (through its blank line) in `b`, if complete.
/// Lines end in LF, optionally preceded by CR. `from` skips bytes
/// already scanned (minus a little, as a terminator may straddle reads).
fn find_head_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(3);
    while let Some(off) = b[i..].iter().position(|&c| c == b'\n') {
        let nl = i + off;
        // An empty line: "\n\n" or "\n\r\n". A line of more CRs ends
        // the head too, and parsing refuses its bare CR at once (RFC 9112
        // 2.2): the head waited for was never to come, and the client
        // got a retryable 408 after the head's time limit.
        let crs = b[..nl].iter().rev().take_while(|&&c| c == b'\r').count();
        if nl > crs && b[nl - crs - 1] == b'\n' {
            return Some(nl + 1);
        }
        i = nl + 1;
    }
    None
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Parse the request line and headers of `head` (which ends with the
/// blank line) into `req`.
fn parse_head(head: &[u8], req: &mut Request) -> Result<(), ReadError> {
    req.reset();
    let mut lines = head
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    parse_request_line(line, req)?;
    let mut count = 0;
    let mut seen = Seen::default();
    for line in lines {
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(ReadError::Bad(
                431,
                Error::PayloadTooLarge(format!("more than {MAX_HEADERS} header fields")),
            ));
        }
        if matches!(line[0], b' ' | b'\t') {
            return Err(bad("obsolete header line folding is not supported"));
        }
        let colon = line
            .iter()
            .position(|&c| c == b':')
            .ok_or_else(|| bad("malformed header line (no colon)"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err(bad("malformed header name"));
        }
        let value = trim_ows(&line[colon + 1..]);
        if value.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f) {
            return Err(bad("control character in a header value"));
        }
        header(name, value, req, &mut seen)?;
    }
    if req.method == Method::Unknown {
        return Err(ReadError::Bad(
            501,
            Error::InvalidRequest(
                "request method not implemented here (GET, HEAD, POST and OPTIONS are)".into(),
            ),
        ));
    }
    // Decided on all the fields, so that a second Transfer-Encoding line
    // counts too.
    if seen.transfer_encoding {
        return Err(if seen.other_coding {
            ReadError::Bad(
                501,
                Error::InvalidRequest(
                    "only the chunked transfer coding is known here, and request bodies are taken with Content-Length only".into(),
                ),
            )
        } else {
            ReadError::Bad(
                411,
                Error::InvalidRequest(
                    "chunked request bodies are not supported; send the body with Content-Length"
                        .into(),
                ),
            )
        });
    }
    // RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request
    // without one (an empty value is allowed).
    if !req.http10 && !seen.host {
        return Err(bad("an HTTP/1.1 request must carry a Host header"));
    }
    Ok(())
}

/// What the header fields of one request have shown so far.
#[derive(Default)]
struct Seen {
    length: bool,
    host: bool,
    authorization: bool,
    origin: bool,
    transfer_encoding: bool,
    /// A transfer coding other than chunked (gzip, ...).
    other_coding: bool,
    /// A `close` connection option.
    close: bool,
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_request_line(line: &[u8], req: &mut Request) -> Result<(), ReadError> {
    let mut parts = line.split(|&c| c == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if method.is_empty() || method.len() > 32 || !method.iter().all(|&c| is_tchar(c)) {
        return Err(bad("malformed request method"));
    }
    req.method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"POST" => Method::Post,
        b"OPTIONS" => Method::Options,
        b"PUT" | b"DELETE" | b"PATCH" | b"CONNECT" | b"TRACE" => Method::Other,
        _ => Method::Unknown,
    };
    // The version before the target: another major version is 505
    // whatever its target looks like (HTTP/2's preface, `PRI *
    // HTTP/2.0`, was a 400 for its `*`).
    req.http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        // A later minor version of HTTP/1 is served as 1.1, the highest
        // we speak (RFC 9110 2.5, 6.2: 505 is for another major version).
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b] if b.is_ascii_digit() => false,
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            return Err(ReadError::Bad(
                505,
                Error::InvalidRequest("HTTP version not supported (use HTTP/1.1)".into()),
            ))
        }
        _ => return Err(bad("malformed HTTP version")),
    };
    req.keep_alive = !req.http10;
    if !target.iter().all(|&c| (0x21..0x7f).contains(&c)) {
        return Err(bad("request target must be printable ASCII"));
    }
    let target = if target.first() == Some(&b'/') {
        target
    } else {
        let (authority, rest) = split_absolute(target).ok_or_else(|| {
            bad("request target must be an absolute path (/path) or an absolute URI (http://host/path)")
        })?;
        // Printable ASCII, checked above.
        req.authority
            .push_str(std::str::from_utf8(authority).unwrap_or_default());
        if rest.first() != Some(&b'/') {
            // `http://host` and `http://host?q` name the root.
            req.target.push('/');
        }
        rest
    };
    // The target is printable ASCII, checked above.
    req.target
        .push_str(std::str::from_utf8(target).unwrap_or_default());
    req.path_end = req.target.find('?').unwrap_or(req.target.len());
    Ok(())
}

/// An absolute-form target `http://AUTHORITY[/path][?query]` (or https)
/// as its authority and the rest. None for any other scheme, an empty
/// authority, or one with userinfo (`user@host`, which RFC 9110 4.2.4
/// says to treat as an error: it hides the real host from a reader).
fn split_absolute(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = target.iter().position(|&c| c == b':')?;
    let scheme = &target[..colon];
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return None;
    }
    let rest = target[colon + 1..].strip_prefix(&b"//"[..])?;
    let end = rest
        .iter()
        .position(|&c| c == b'/' || c == b'?')
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains(&b'@') {
        return None;
    }
    Some((authority, path))
}

fn header(name: &[u8], value: &[u8], req: &mut Request, seen: &mut Seen) -> Result<(), ReadError> {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    let text = || std::str::from_utf8(value).map_err(|_| bad("header value is not UTF-8"));
    if is("content-length") {
        let n = parse_length(value).ok_or_else(|| bad("invalid Content-Length"))?;
        if seen.length && n != req.content_length {
            return Err(bad("conflicting Content-Length headers"));
        }
        seen.length = true;
        req.content_length = n;
    } else if is("transfer-encoding") {
        // A list of codings, each maybe with `;parameters`; empty
        // elements are allowed by the list syntax.
        let mut any = false;
        for element in value.split(|&c| c == b',') {
            let coding = trim_ows(element.split(|&c| c == b';').next().unwrap_or_default());
            if coding.is_empty() {
                continue;
            }
            any = true;
            if !coding.eq_ignore_ascii_case(b"chunked") {
                seen.other_coding = true;
            }
        }
        if !any {
            return Err(bad("malformed Transfer-Encoding (no coding)"));
        }
        seen.transfer_encoding = true;
    } else if is("connection") {
        // `close` anywhere, in any Connection field, ends the connection
        // after this request (RFC 9112 9.6), whatever else is listed
        // before or after it.
        for token in value.split(|&c| c == b',') {
            let t = trim_ows(token);
            if t.eq_ignore_ascii_case(b"close") {
                seen.close = true;
                req.keep_alive = false;
            } else if t.eq_ignore_ascii_case(b"keep-alive") && req.http10 && !seen.close {
                req.keep_alive = true;
            }
        }
    } else if is("authorization") {
        // One value, not a list (RFC 9110 11.6.2): two are refused, as
        // two Host headers are, rather than one of them silently
        // counting (a proxy that checked the other is then fooled).
        if seen.authorization {
            return Err(bad("more than one Authorization header"));
        }
        seen.authorization = true;
        req.authorization.push_str(text()?);
    } else if is("origin") {
        if seen.origin {
            return Err(bad("more than one Origin header"));
        }
        seen.origin = true;
        req.origin.push_str(text()?);
    } else if is("host") {
        if seen.host {
            return Err(bad("more than one Host header"));
        }
        seen.host = true;
        req.host.push_str(text()?);
    } else if is("expect") {
        if value.eq_ignore_ascii_case(b"100-continue") {
            // An HTTP/1.0 client may not know 1xx answers: its
            // expectation is ignored (RFC 9110 10.1.1, 15.2).
            req.expect_continue = !req.http10;
        } else {
            return Err(ReadError::Bad(
                417,
                Error::InvalidRequest("unsupported Expect header".into()),
            ));
        }
    }
    Ok(())
}

/// A Content-Length: decimal digits only, no sign, no overflow.
fn parse_length(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// One response's status line and headers. `Content-Type` is JSON
/// whenever there is a body.
pub struct Head<'a> {
    pub status: u16,
    pub content_length: usize,
    /// Close the connection after this response.
    pub close: bool,
    /// Say `Connection: keep-alive` (an HTTP/1.0 client that asked).
    pub keep_alive_10: bool,
    /// Further `(name, value)` header fields.
    pub extra: &'a [(&'a str, &'a str)],
}

/// Write the status line and headers. Header values come from the
/// server itself, never from the request, so they cannot inject lines.
pub fn write_head(w: &mut impl Write, h: &Head<'_>) -> io::Result<()> {
    write!(w, "HTTP/1.1 {} {}\r\n", h.status, reason(h.status))?;
    w.write_all(b"Date: ")?;
    with_date(|d| w.write_all(d))?;
    w.write_all(b"\r\n")?;
    if h.content_length > 0 || h.status != 204 {
        write!(
            w,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            h.content_length
        )?;
    }
    if h.close {
        w.write_all(b"Connection: close\r\n")?;
    } else if h.keep_alive_10 {
        w.write_all(b"Connection: keep-alive\r\n")?;
    }
    for (k, v) in h.extra {
        w.write_all(k.as_bytes())?;
        w.write_all(b": ")?;
        w.write_all(v.as_bytes())?;
        w.write_all(b"\r\n")?;
    }
    w.write_all(b"\r\n")
}

/// A `Date` header line for a head the caller writes itself (a
/// follow's stream): every answer carries one (RFC 9110 6.6.1).
pub fn push_date(out: &mut String) {
    out.push_str("Date: ");
    with_date(|d| out.push_str(std::str::from_utf8(d).unwrap_or_default()));
    out.push_str("\r\n");
}

thread_local! {
    /// The `Date` value for the current second, per thread.
    static DATE: RefCell<(i64, [u8; 29])> = const { RefCell::new((i64::MIN, [0u8; 29])) };
}

/// Call `f` with the current time as an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), formatted once a second.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = crate::time::now_unix();
    DATE.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.0 != now {
            c.1 = imf_fixdate(now);
            c.0 = now;
        }
        f(&c.1)
    })
}

fn imf_fixdate(secs: i64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let mut iso = [0u8; 20];
    crate::time::write_ts(&mut iso, secs);
    // 1970-01-01 was a Thursday.
    let wd = (secs.div_euclid(86_400) + 4).rem_euclid(7) as usize;
    let month = ((iso[5] - b'0') * 10 + (iso[6] - b'0')) as usize;
    let mut out = [b' '; 29];
    out[..3].copy_from_slice(DAYS[wd]);
    out[3] = b',';
    out[5..7].copy_from_slice(&iso[8..10]);
    out[8..11].copy_from_slice(MONTHS[month.clamp(1, 12) - 1]);
    out[12..16].copy_from_slice(&iso[0..4]);
    out[17..25].copy_from_slice(&iso[11..19]);
    out[26..29].copy_from_slice(b"GMT");
    out
}

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

/// Decode `%XX` escapes (and `+` as a space when `plus` is set, as in
/// query strings). None on a broken escape or a result that is not UTF-8.
pub fn percent_decode(s: &str, plus: bool) -> Option<String> {
    if !s.bytes().any(|c| c == b'%' || (plus && c == b'+')) {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The decoded `key=value` pairs of a query string, in order. A key
/// without `=` has no value (None: `?all` says a true/false parameter
/// is true; `all=`, an empty value, is no boolean); empty pieces
/// (`a=1&&b=2`) are skipped.
pub fn query_pairs(q: &str) -> impl Iterator<Item = Result<(String, Option<String>), Error>> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        let v = v.map(|v| percent_decode(v, true));
        match (percent_decode(k, true), v) {
            (Some(k), None) => Ok((k, None)),
            (Some(k), Some(Some(v))) => Ok((k, Some(v))),
            // Escapes that are well formed decoded to bytes that are no
            // text (`%FF`): said so, not called malformed.
            _ if well_formed_escapes(p) => Err(Error::InvalidRequest(format!(
                "query parameter {p:?} is not valid UTF-8 once decoded"
            ))),
            _ => Err(Error::InvalidRequest(format!(
                "malformed percent-encoding in query parameter {p:?}"
            ))),
        }
    })
}

/// Is every `%` in `s` followed by two hex digits?
fn well_formed_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%' || (i + 2 < b.len() && hex(b[i + 1]).is_some() && hex(b[i + 2]).is_some())
    })
}

/// Compare two byte strings in time that depends only on their lengths,
/// not on where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn every_status_we_answer_has_its_reason_phrase() {
        for s in [
            200, 204, 400, 401, 403, 404, 405, 408, 409, 411, 413, 417, 431, 500, 501, 503, 505,
        ] {
            assert_ne!(reason(s), "Unknown", "{s}");
        }
        assert_eq!(reason(409), "Conflict");
    }

    /// A connection that yields the given chunks, one per read, then EOF
    /// (or a timeout error when `stall` is set).
    struct Script {
        chunks: VecDeque<Vec<u8>>,
        stall: bool,
        interim: Vec<u8>,
    }

    impl Script {
        fn new(chunks: &[&[u8]]) -> Script {
            Script {
                chunks: chunks.iter().map(|c| c.to_vec()).collect(),
                stall: false,
                interim: Vec::new(),
            }
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(mut c) = self.chunks.pop_front() else {
                if self.stall {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                return Ok(0);
            };
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            if n < c.len() {
                self.chunks.push_front(c.split_off(n));
            }
            Ok(n)
        }
    }

    impl Source for Script {
        fn set_timeout(&mut self, _t: Duration) -> io::Result<()> {
            Ok(())
        }
        fn send_interim(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.interim.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn one(input: &[u8]) -> Result<Request, ReadError> {
        let mut r = Reader::new(Script::new(&[input]));
        r.next_request()?;
        Ok(std::mem::take(&mut r.req))
    }

    fn status_of(input: &[u8]) -> u16 {
        match one(input) {
            Err(ReadError::Bad(s, _)) => s,
            Err(ReadError::Closed) => 0,
            Ok(_) => 200,
        }
    }

    /// A line of bare CRs where the blank line belongs ends the head, as
    /// a bad one: 400 at once (it was awaited, a 408 two seconds on).
    #[test]
    fn a_bare_cr_blank_line_is_refused_at_once() {
        assert_eq!(status_of(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\r\n"), 400);
        assert_eq!(
            status_of(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\r\r\n"),
            400
        );
        assert_eq!(status_of(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
        assert_eq!(status_of(b"GET /health HTTP/1.1\nHost: x\n\n"), 200);
    }

    #[test]
    fn parses_a_simple_get() {
        let r = one(b"GET /status/01ABC?x=1&y=%20 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n\r\n")
            .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path(), "/status/01ABC");
        assert_eq!(r.query(), "x=1&y=%20");
        assert_eq!(r.host(), Some("127.0.0.1"));
        assert_eq!(r.authorization(), Some("Bearer t"));
        for twice in ["Authorization: Bearer a", "Origin: http://a"] {
            let head = format!("GET / HTTP/1.1\r\nHost: h\r\n{twice}\r\n{twice}\r\n\r\n");
            assert_eq!(status_of(head.as_bytes()), 400, "{twice}");
        }
        assert_eq!(r.origin(), None);
        assert!(r.keep_alive && !r.http10);
    }

    #[test]
    fn bare_lf_and_leading_blank_lines_are_tolerated() {
        let r = one(b"\r\n\nGET /health HTTP/1.1\nHost: x\n\n").unwrap();
        assert_eq!(r.path(), "/health");
        assert_eq!(r.query(), "");
    }

    #[test]
    fn connection_semantics() {
        assert!(
            !one(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!one(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        let r = one(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(r.keep_alive && r.http10);
        assert!(
            !one(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        // `close` wins wherever it is: before keep-alive, in another
        // field, in any case.
        for conn in [
            &b"Connection: close, keep-alive\r\n"[..],
            b"Connection: keep-alive, CLOSE\r\n",
            b"Connection: Close\r\nConnection: keep-alive\r\n",
            b"Connection: keep-alive\r\nConnection: close\r\n",
        ] {
            let mut req = b"GET / HTTP/1.0\r\n".to_vec();
            req.extend_from_slice(conn);
            req.extend_from_slice(b"\r\n");
            assert!(
                !one(&req).unwrap().keep_alive,
                "{:?}",
                String::from_utf8_lossy(conn)
            );
        }
    }

    #[test]
    fn body_by_content_length_across_reads_and_pipelining() {
        let mut r = Reader::new(Script::new(&[
            b"POST /exec HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234",
            b"56789GET /health HTTP/1.1\r\nHost: h\r\n\r\n",
        ]));
        let req = r.next_request().unwrap();
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.body, b"0123456789");
        let req = r.next_request().unwrap();
        assert_eq!(req.path(), "/health");
        assert!(req.body.is_empty());
        assert!(matches!(r.next_request(), Err(ReadError::Closed)));
    }

    #[test]
    fn head_before_body() {
        // The head is handed out with its body unread; a body that came
        // with it can be passed over, and the next request follows.
        let mut r = Reader::new(Script::new(&[
            b"POST /exec HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}GET /health HTTP/1.1\r\nHost: h\r\n\r\n",
        ]));
        let req = r.next_head(IDLE).unwrap();
        assert_eq!((req.method, req.content_length), (Method::Post, 2));
        assert!(req.body.is_empty());
        assert!(r.skip_buffered_body());
        assert_eq!(r.next_head(IDLE).unwrap().path(), "/health");
        assert!(r.src.interim.is_empty());
        // A body still to come cannot be passed over, and no
        // `100 Continue` is sent for a request that is not read on.
        let mut r = Reader::new(Script::new(&[
            b"POST /exec HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nab",
        ]));
        r.next_head(IDLE).unwrap();
        assert!(!r.skip_buffered_body());
        assert!(r.src.interim.is_empty());
        // An oversized body is refused with the head.
        let big = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let mut r = Reader::new(Script::new(&[big.as_bytes()]));
        assert!(matches!(r.next_head(IDLE), Err(ReadError::Bad(413, _))));
    }

    #[test]
    fn head_split_byte_by_byte() {
        let text = b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        let mut r = Reader::new(Script::new(&chunks));
        assert_eq!(r.next_request().unwrap().path(), "/health");
    }

    #[test]
    fn expect_continue_sends_interim_only_when_body_missing() {
        let mut r = Reader::new(Script::new(&[
            b"POST /exec HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            b"{}",
        ]));
        assert_eq!(r.next_request().unwrap().body, b"{}");
        assert_eq!(r.src.interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n"),
            417
        );
        // Never to HTTP/1.0 (RFC 9110 10.1.1): the body is just read.
        let mut r = Reader::new(Script::new(&[
            b"POST /exec HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            b"{}",
        ]));
        assert_eq!(r.next_request().unwrap().body, b"{}");
        assert!(r.src.interim.is_empty());
    }

    #[test]
    fn malformed_request_lines() {
        for bad_line in [
            &b"GET\r\n\r\n"[..],
            b"GET /x\r\n\r\n",
            b"GET  /x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /x HTTP/1.1 extra\r\n\r\n",
            b"GET x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
            b"G(T /x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /x HTTX/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
            b"\x00\x01\x02\r\n\r\n",
        ] {
            assert_eq!(
                status_of(bad_line),
                400,
                "{:?}",
                String::from_utf8_lossy(bad_line)
            );
        }
        assert_eq!(status_of(b"GET / HTTP/2.0\r\n\r\n"), 505);
        // HTTP/2's preface: its `*` target is no reason for a 400.
        assert_eq!(status_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        assert_eq!(status_of(b"GET / HTTP/0.9\r\n\r\n"), 505);
        // A later HTTP/1 minor version is served as 1.1 (RFC 9110 6.2).
        let r = one(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n").unwrap();
        assert!(!r.http10 && r.keep_alive);
        assert_eq!(status_of(b"GET / HTTP/1.9\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 200);
        assert_eq!(
            one(b"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().method,
            Method::Other
        );
        // A method HTTP does not define is not implemented (RFC 9110
        // 9.1); one it defines is refused by the route (405).
        assert_eq!(status_of(b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
        assert_eq!(status_of(b"get / HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
    }

    #[test]
    fn absolute_form_targets_are_their_path_and_query() {
        for (line, path, query, authority) in [
            (
                "GET http://127.0.0.1:8/health HTTP/1.1",
                "/health",
                "",
                "127.0.0.1:8",
            ),
            ("GET HTTP://h/tail/x?a=1 HTTP/1.1", "/tail/x", "a=1", "h"),
            ("GET https://[::1]:9 HTTP/1.1", "/", "", "[::1]:9"),
            ("GET http://h?a=1 HTTP/1.1", "/", "a=1", "h"),
        ] {
            let r = one(format!("{line}\r\nHost: h\r\n\r\n").as_bytes()).unwrap();
            assert_eq!(
                (r.path(), r.query(), r.target_authority()),
                (path, query, Some(authority)),
                "{line}"
            );
        }
        let r = one(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.target_authority(), None);
    }

    #[test]
    fn http11_needs_a_host_and_http10_does_not() {
        assert_eq!(status_of(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET http://h/ HTTP/1.1\r\n\r\n"), 400);
        // An empty value is a Host (RFC 9112 3.2: no authority to name).
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"), 200);
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET / HTTP/1.0\r\n\r\n"), 200);
    }

    #[test]
    fn transfer_codings() {
        let te = |v: &str| {
            status_of(
                format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {v}\r\n\r\n").as_bytes(),
            )
        };
        // Chunked is a coding we know but do not take: a length is needed.
        assert_eq!(te("chunked"), 411);
        assert_eq!(te("Chunked, "), 411);
        // Any other is one we do not implement (RFC 9112 6.1).
        for v in ["gzip", "gzip, chunked", "chunked;x=1, br", "identity"] {
            assert_eq!(te(v), 501, "{v}");
        }
        assert_eq!(te(" , "), 400);
        let two = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(status_of(two), 501);
    }

    #[test]
    fn malformed_headers() {
        for h in [
            &b"NoColon\r\n"[..],
            b": empty-name\r\n",
            b"Bad Name: x\r\n",
            b"X: a\x01b\r\n",
            b"X: a\x7fb\r\n",
            b"X: a\r\n folded\r\n",
            b"Content-Length: -1\r\n",
            b"Content-Length: 1x\r\n",
            b"Content-Length: 99999999999999999999999\r\n",
            b"Content-Length: 1\r\nContent-Length: 2\r\n",
            b"Host: a\r\nHost: b\r\n",
            b"Origin: \xff\r\n",
        ] {
            let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
            req.extend_from_slice(h);
            req.extend_from_slice(b"\r\n");
            assert_eq!(status_of(&req), 400, "{:?}", String::from_utf8_lossy(h));
        }
        let same = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(one(same).unwrap().body, b"x");
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            411
        );
    }

    #[test]
    fn limits() {
        let mut big = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 100, b'a');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status_of(&big), 431);
        // Over the limit without ever ending: refused, not waited on.
        let mut endless = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
        endless.resize(3 * MAX_HEAD, b'a');
        assert_eq!(status_of(&endless), 431);
        let mut many = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status_of(&many), 431);
        let body = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(status_of(body.as_bytes()), 413);
        let at_limit = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {MAX_BODY}\r\n\r\n");
        let mut r = Reader::new(Script::new(&[at_limit.as_bytes(), &vec![b'x'; MAX_BODY]]));
        assert_eq!(r.next_request().unwrap().body.len(), MAX_BODY);
    }

    #[test]
    fn truncated_input_closes_quietly_and_a_stalled_request_is_a_408() {
        assert!(matches!(one(b""), Err(ReadError::Closed)));
        assert!(matches!(
            one(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Err(ReadError::Closed)
        ));
        assert!(matches!(
            one(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"),
            Err(ReadError::Closed)
        ));
        let stalled = |parts: &[&[u8]]| {
            let mut s = Script::new(parts);
            s.stall = true;
            Reader::new(s).next_request().map(|_| ()).unwrap_err()
        };
        // Nothing, or only blank lines, before the stall: no request.
        assert!(matches!(stalled(&[]), ReadError::Closed));
        assert!(matches!(stalled(&[b"\r\n"]), ReadError::Closed));
        // A head or a body cut short by the stall: 408 request_timeout.
        for parts in [
            &[&b"GET / HTTP/1.1\r\nHost: h\r\n"[..]][..],
            &[&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"[..]][..],
        ] {
            match stalled(parts) {
                ReadError::Bad(408, e) => {
                    assert_eq!(e.code(), "request_timeout");
                    assert!(e.retryable());
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b", false).unwrap(), "a b");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("a+b", true).unwrap(), "a b");
        assert_eq!(percent_decode("%e2%9c%93", false).unwrap(), "✓");
        assert_eq!(percent_decode("%2F", false).unwrap(), "/");
        assert!(percent_decode("%", false).is_none());
        assert!(percent_decode("%2", false).is_none());
        assert!(percent_decode("%zz", false).is_none());
        assert!(percent_decode("%ff", false).is_none());
    }

    #[test]
    fn query_pair_parsing() {
        let v: Vec<_> = query_pairs("a=1&&b=x%2By&c&d=e=f")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            v,
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("x+y".into())),
                ("c".into(), None),
                ("d".into(), Some("e=f".into()))
            ]
        );
        assert!(query_pairs("a=%").any(|r| r.is_err()));
        let e = query_pairs("grep=%FF").next().unwrap().unwrap_err();
        assert!(e.to_string().contains("not valid UTF-8"), "{e}");
        let e = query_pairs("grep=%F").next().unwrap().unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
        assert_eq!(query_pairs("").count(), 0);
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn response_head_and_date() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Head {
                status: 405,
                content_length: 3,
                close: true,
                keep_alive_10: false,
                extra: &[("Allow", "GET, HEAD")],
            },
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("HTTP/1.1 405 Method Not Allowed\r\nDate: "),
            "{s}"
        );
        assert!(
            s.contains("\r\nContent-Length: 3\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\n")
        );
        assert_eq!(&imf_fixdate(784111777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
