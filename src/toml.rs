//! A hand-written parser for the subset of TOML 1.0 that agent-exec's
//! `config.toml` needs, and a little more so that files written for newer
//! versions (with keys we do not know yet) still load.
//!
//! Supported: comments; blank lines; LF and CRLF line endings; `[table]`,
//! dotted `[a.b]` and array-of-tables `[[a]]` headers; bare keys
//! (`A-Za-z0-9_-`), quoted keys and dotted keys (`a.b = 1`); basic strings
//! with the TOML 1.0 escapes (`\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX`);
//! literal strings; multi-line basic and literal strings (first newline
//! trimmed, line-ending backslash, CRLF read as LF); integers (decimal with
//! `_` separators and optional sign, `0x`/`0o`/`0b`); floats (including
//! `inf`/`nan`); booleans; offset and local date-times, local dates and
//! local times (checked, and kept as written: no key of ours takes one, but
//! a file that holds one for another tool, or for a newer version, loads);
//! arrays (mixed types, multi-line, trailing comma, comments inside);
//! inline tables (single line, as TOML 1.0 requires).
//!
//! Rejected with a line-numbered error: duplicate keys; an impossible date
//! or time (`2023-02-29`, `24:00:00`); defining a table twice, or
//! extending one in a way TOML forbids (a `[header]` over a table made by
//! dotted keys, dotted keys into a table defined by a header, anything into an
//! inline table or a static array); invalid or TOML-1.1-only escapes (`\e`,
//! `\xHH`); unterminated strings, arrays and inline tables; control
//! characters in strings and comments; anything but a comment after a
//! value; integers outside `i64`; leading zeros.
//!
//! Limits, so that hostile input cannot hang, panic or exhaust the stack:
//! input over `MAX_INPUT_BYTES` (1 MiB) is refused before parsing; nesting
//! (tables, arrays, inline tables and dotted key parts together) deeper than
//! `MAX_DEPTH` (64) is refused, which bounds every recursion here; keys are
//! looked up through hash maps and the current table is kept as a direct
//! reference, so no input makes the parser quadratic.
//!
//! Invariants: tables keep keys in source order; every entry records the
//! 1-based line its key was written on (for a table: the header or dotted
//! key that defined it), so callers can point at the line of a bad value.
//!
//! Rejected alternatives: the `toml` crate (pulls in several crates the
//! project does not otherwise need, and the project keeps its dependency
//! list short); a JSON config (no comments, worse for hand editing); a
//! line-oriented `key=value` format (cannot express the shell argv array).

use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// Inputs longer than this are refused outright.
pub const MAX_INPUT_BYTES: usize = 1 << 20;
/// Deepest permitted nesting of tables, arrays and dotted key parts.
pub const MAX_DEPTH: usize = 64;

/// A parsed TOML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A date, time or date-time, as written (validated, not interpreted).
    Datetime(String),
    Array(Vec<Value>),
    Table(Table),
}

impl Value {
    /// The TOML name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Datetime(_) => "date-time",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }
}

/// One key of a table, with the line it was defined on.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    /// 1-based source line of the key (or of the header that made it).
    pub line: usize,
}

/// A table: entries in source order, plus an index for O(1) lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Table {
    /// The entry for `key` directly in this table.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).and_then(|&i| self.entries.get(i))
    }

    /// Every entry of this table, in source order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The value for `key` directly in this table.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry at a dotted path, e.g. `["gc", "max_jobs"]`; `None` if any
    /// step is missing or is not a table. An empty path has no entry.
    pub fn lookup(&self, path: &[&str]) -> Option<&Entry> {
        let (last, parents) = path.split_last()?;
        let mut t = self;
        for key in parents {
            t = t.get(key)?.as_table()?;
        }
        t.entry(last)
    }

    /// Callers guarantee `key` is new (the builder checked it).
    fn push_new(&mut self, key: String, value: Value, line: usize) {
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push(Entry { key, value, line });
    }
}

/// Entries in source order: `for entry in &table`.
impl<'a> IntoIterator for &'a Table {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// What went wrong, and on which 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole document into its root table.
pub fn parse(src: &str) -> Result<Table, ParseError> {
    if src.len() > MAX_INPUT_BYTES {
        return Err(ParseError {
            line: 1,
            message: format!(
                "input is {} bytes; the limit is {MAX_INPUT_BYTES}",
                src.len()
            ),
        });
    }
    let mut p = Parser {
        src,
        b: src.as_bytes(),
        pos: 0,
        line: 1,
    };
    let root = p.document()?;
    Ok(root.finish())
}

// ---------------------------------------------------------------------------
// Table building. While parsing we need to know how each table came to be,
// because TOML's rules for extending a table depend on it; the public
// `Table` has no place for that, so we build this shadow tree and convert
// it once at the end.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Created only as the parent of a header, e.g. `a` for `[a.b]`; may be
    /// defined later by its own `[a]`, or by dotted keys from its parent.
    Implicit,
    /// Defined by a `[header]` (or the root, or an array-of-tables element).
    Header,
    /// Created by a dotted key `a.b = 1`.
    Dotted,
}

enum Slot {
    /// A finished value: scalars, static arrays and inline tables. Frozen.
    Leaf(Value),
    Table(Builder),
    /// Built by `[[header]]`s; extended by the next one.
    TableArray(Vec<Builder>),
}

struct BuildEntry {
    key: String,
    slot: Slot,
    line: usize,
}

struct Builder {
    kind: Kind,
    entries: Vec<BuildEntry>,
    index: HashMap<String, usize>,
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        Builder {
            kind,
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut BuildEntry> {
        let i = *self.index.get(key)?;
        self.entries.get_mut(i)
    }

    fn insert(&mut self, key: &str, slot: Slot, line: usize) -> Option<&mut BuildEntry> {
        self.index.insert(key.to_owned(), self.entries.len());
        self.entries.push(BuildEntry {
            key: key.to_owned(),
            slot,
            line,
        });
        self.entries.last_mut()
    }

    fn finish(self) -> Table {
        let mut t = Table::default();
        for e in self.entries {
            let value = match e.slot {
                Slot::Leaf(v) => v,
                Slot::Table(b) => Value::Table(b.finish()),
                Slot::TableArray(v) => {
                    Value::Array(v.into_iter().map(|b| Value::Table(b.finish())).collect())
                }
            };
            t.push_new(e.key, value, e.line);
        }
        t
    }
}

fn slot_desc(slot: &Slot) -> &'static str {
    match slot {
        Slot::Leaf(Value::Table(_)) => "an inline table",
        Slot::Leaf(Value::Array(_)) => "an array value",
        Slot::Leaf(v) => match v {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            _ => "a boolean",
        },
        Slot::Table(_) => "a table",
        Slot::TableArray(_) => "an array of tables",
    }
}

/// A key path for messages: bare parts as written, others quoted; long
/// keys shortened so an error stays one readable line.
fn show_key(parts: &[String]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if !part.is_empty() && part.bytes().all(is_bare_key_byte) {
            out.push_str(part);
        } else {
            // Debug quoting escapes anything unprintable; writing to a
            // String cannot fail.
            let _ = write!(out, "{part:?}");
        }
    }
    if out.chars().count() > 80 {
        out = out.chars().take(77).collect();
        out.push_str("...");
    }
    out
}

fn is_bare_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Bytes that can start or continue a number, boolean or date token.
fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'+' | b'-' | b'.' | b':')
}

/// Control characters TOML forbids in strings and comments (tab allowed).
fn is_forbidden_control(c: u8) -> bool {
    (c < 0x20 && c != b'\t') || c == 0x7f
}

// ---------------------------------------------------------------------------
// The parser proper: a cursor over the bytes. `src` is valid UTF-8 and we
// only ever stop at ASCII bytes, so every slice of it is valid UTF-8 too.

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    line: usize,
}

type PResult<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> PResult<T> {
        self.err_at(self.line, message)
    }

    fn err_at<T>(&self, line: usize, message: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.b.get(self.pos + ahead).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.b
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(s))
    }

    /// Describes what is at the cursor, for "expected X, found Y".
    fn found(&self) -> String {
        match self.src.get(self.pos..).and_then(|s| s.chars().next()) {
            None => "end of input".to_owned(),
            Some('\n' | '\r') => "end of line".to_owned(),
            Some(c) if c.is_control() => format!("control character U+{:04X}", u32::from(c)),
            Some(c) => format!("`{c}`"),
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consumes LF or CRLF and counts the line; false if not at one.
    fn eat_newline(&mut self) -> bool {
        let len = if self.peek() == Some(b'\n') {
            1
        } else if self.starts_with(b"\r\n") {
            2
        } else {
            return false;
        };
        self.pos += len;
        self.line += 1;
        true
    }

    /// Skips a comment, if one starts here, up to (not over) its newline.
    fn skip_comment(&mut self) -> PResult<()> {
        if self.peek() != Some(b'#') {
            return Ok(());
        }
        while let Some(c) = self.peek() {
            if c == b'\n' || (c == b'\r' && self.peek_at(1) == Some(b'\n')) {
                break;
            }
            if is_forbidden_control(c) {
                return self.err(format!(
                    "control character U+{c:04X} is not allowed in a comment"
                ));
            }
            self.pos += 1;
        }
        Ok(())
    }

    /// After a header or key/value pair only a comment may follow on the
    /// line; consumes through the newline.
    fn end_of_line(&mut self, after: &str) -> PResult<()> {
        self.skip_ws();
        self.skip_comment()?;
        if self.peek().is_none() || self.eat_newline() {
            return Ok(());
        }
        if self.peek() == Some(b'\r') {
            return self.err("carriage return not followed by a line feed");
        }
        self.err(format!("unexpected {} after {after}", self.found()))
    }

    /// Whitespace, newlines and comments, as allowed between array items.
    fn skip_blank(&mut self) -> PResult<()> {
        loop {
            self.skip_ws();
            self.skip_comment()?;
            if !self.eat_newline() {
                return Ok(());
            }
        }
    }

    fn document(&mut self) -> PResult<Builder> {
        let mut root = Builder::new(Kind::Header);
        // The table that key/value lines go into, held directly so that a
        // long run of keys under a deep header never re-walks the path.
        let mut current: &mut Builder = &mut root;
        let mut current_depth = 0;
        loop {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(b'#') => self.skip_comment()?,
                Some(b'\n' | b'\r') => {
                    if !self.eat_newline() {
                        return self.err("carriage return not followed by a line feed");
                    }
                }
                Some(b'[') => {
                    let (table, depth) = self.header(&mut root)?;
                    current = table;
                    current_depth = depth;
                    self.end_of_line("table header")?;
                }
                Some(_) => {
                    self.keyval(current, current_depth)?;
                    self.end_of_line("value")?;
                }
            }
        }
        Ok(root)
    }

    /// Parses `[a.b]` or `[[a.b]]`, creates or reopens the table, and
    /// returns it with its nesting depth.
    fn header<'r>(&mut self, root: &'r mut Builder) -> PResult<(&'r mut Builder, usize)> {
        let line = self.line;
        self.pos += 1; // '['
        let is_array = self.eat(b'[');
        self.skip_ws();
        let key = self.key()?;
        self.skip_ws();
        let close: &[u8] = if is_array { b"]]" } else { b"]" };
        if !self.starts_with(close) {
            return self.err(format!(
                "expected `{}` to close the table header, found {}",
                if is_array { "]]" } else { "]" },
                self.found()
            ));
        }
        self.pos += close.len();

        let Some((last, parents)) = key.split_last() else {
            return self.err("empty table header");
        };
        let mut t = root;
        let mut depth = 0;
        for (i, part) in parents.iter().enumerate() {
            depth += 1;
            if t.get_mut(part).is_none() {
                t.insert(part, Slot::Table(Builder::new(Kind::Implicit)), line);
            }
            let Some(entry) = t.get_mut(part) else {
                return self.err("internal error: table vanished");
            };
            t = match &mut entry.slot {
                Slot::Table(b) => b,
                Slot::TableArray(v) => {
                    depth += 1;
                    match v.last_mut() {
                        Some(b) => b,
                        None => return self.err("internal error: empty array of tables"),
                    }
                }
                slot @ Slot::Leaf(_) => {
                    return self.err(format!(
                        "cannot use `{}` as a table: it is already {} (line {})",
                        show_key(&key[..=i]),
                        slot_desc(slot),
                        entry.line
                    ))
                }
            };
        }
        depth += if is_array { 2 } else { 1 };
        if depth > MAX_DEPTH {
            return self.err(format!("tables nested deeper than {MAX_DEPTH} levels"));
        }

        let name = show_key(&key);
        if t.get_mut(last).is_none() {
            let slot = if is_array {
                Slot::TableArray(vec![Builder::new(Kind::Header)])
            } else {
                Slot::Table(Builder::new(Kind::Header))
            };
            t.insert(last, slot, line);
        } else if let Some(entry) = t.get_mut(last) {
            let first = entry.line;
            match (&mut entry.slot, is_array) {
                (Slot::Table(b), false) => match b.kind {
                    Kind::Implicit => {
                        b.kind = Kind::Header;
                        entry.line = line;
                    }
                    Kind::Header => {
                        return self.err(format!(
                            "table [{name}] is defined more than once (first on line {first})"
                        ))
                    }
                    Kind::Dotted => {
                        return self.err(format!(
                            "table [{name}] was already defined by dotted keys on line {first}"
                        ))
                    }
                },
                (Slot::TableArray(v), true) => v.push(Builder::new(Kind::Header)),
                (slot, _) => {
                    return self.err(format!(
                        "cannot define {} `{name}`: it is already {} (line {first})",
                        if is_array { "array of tables" } else { "table" },
                        slot_desc(slot)
                    ))
                }
            }
        }
        let table = match t.get_mut(last).map(|e| &mut e.slot) {
            Some(Slot::Table(b)) => b,
            Some(Slot::TableArray(v)) => match v.last_mut() {
                Some(b) => b,
                None => return self.err("internal error: empty array of tables"),
            },
            _ => return self.err("internal error: header table missing"),
        };
        Ok((table, depth))
    }

    /// A key: one or more simple keys joined by dots (spaces allowed
    /// around the dots).
    fn key(&mut self) -> PResult<Vec<String>> {
        let mut parts = Vec::new();
        loop {
            parts.push(self.simple_key()?);
            if parts.len() > MAX_DEPTH {
                return self.err(format!("key has more than {MAX_DEPTH} dotted parts"));
            }
            self.skip_ws();
            if !self.eat(b'.') {
                return Ok(parts);
            }
            self.skip_ws();
        }
    }

    fn simple_key(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"') if self.starts_with(b"\"\"\"") => {
                self.err("a multi-line string cannot be a key")
            }
            Some(b'\'') if self.starts_with(b"'''") => {
                self.err("a multi-line string cannot be a key")
            }
            Some(b'"') => self.basic_string(),
            Some(b'\'') => self.literal_string(),
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(is_bare_key_byte) {
                    self.pos += 1;
                }
                if start == self.pos {
                    return self.err(format!("expected a key, found {}", self.found()));
                }
                Ok(self.src.get(start..self.pos).unwrap_or_default().to_owned())
            }
        }
    }

    /// `key = value` into `table`, whose own nesting depth is `depth`.
    fn keyval(&mut self, table: &mut Builder, depth: usize) -> PResult<()> {
        let line = self.line;
        let key = self.key()?;
        if depth + key.len() > MAX_DEPTH {
            return self.err(format!("keys nested deeper than {MAX_DEPTH} levels"));
        }
        if !self.eat(b'=') {
            return self.err(format!(
                "expected `=` after key `{}`, found {}",
                show_key(&key),
                self.found()
            ));
        }
        self.skip_ws();
        let value = self.value(depth + key.len())?;

        let Some((last, parents)) = key.split_last() else {
            return self.err_at(line, "empty key");
        };
        let mut t = table;
        for (i, part) in parents.iter().enumerate() {
            if t.get_mut(part).is_none() {
                t.insert(part, Slot::Table(Builder::new(Kind::Dotted)), line);
            }
            let Some(entry) = t.get_mut(part) else {
                return self.err_at(line, "internal error: table vanished");
            };
            // Dotted keys may extend tables that dotted keys made, and may
            // define a table so far only implied by a deeper header (TOML
            // forbids only redefining tables "defined in [table] form"; this
            // is also how Python's tomllib reads it). Header tables are
            // closed to them.
            let what = match &entry.slot {
                Slot::Table(b) if b.kind != Kind::Header => None,
                Slot::Table(_) => Some("a table defined by a [header]"),
                other => Some(slot_desc(other)),
            };
            if let Some(what) = what {
                return self.err_at(
                    line,
                    format!(
                        "cannot add keys to `{}` with a dotted key: it is already {what} \
                         (line {})",
                        show_key(&key[..=i]),
                        entry.line
                    ),
                );
            }
            t = match &mut entry.slot {
                Slot::Table(b) => {
                    if b.kind == Kind::Implicit {
                        // Now defined, by this line: a later `[header]` for
                        // it would be a redefinition.
                        b.kind = Kind::Dotted;
                        entry.line = line;
                    }
                    b
                }
                _ => return self.err_at(line, "internal error: dotted table vanished"),
            };
        }
        if let Some(existing) = t.get_mut(last) {
            return self.err_at(
                line,
                format!(
                    "duplicate key `{}` (first defined on line {})",
                    show_key(&key),
                    existing.line
                ),
            );
        }
        t.insert(last, Slot::Leaf(value), line);
        Ok(())
    }

    /// A value nested inside `depth` containers.
    fn value(&mut self, depth: usize) -> PResult<Value> {
        match self.peek() {
            Some(b'"') if self.starts_with(b"\"\"\"") => self.ml_basic_string().map(Value::Str),
            Some(b'\'') if self.starts_with(b"'''") => self.ml_literal_string().map(Value::Str),
            Some(b'"') => self.basic_string().map(Value::Str),
            Some(b'\'') => self.literal_string().map(Value::Str),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return self.err(format!("values nested deeper than {MAX_DEPTH} levels"));
                }
                self.array(depth + 1).map(Value::Array)
            }
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return self.err(format!("values nested deeper than {MAX_DEPTH} levels"));
                }
                // Unlike an array, whose items sit one level below it, an
                // inline table's keys add their own levels in `keyval`.
                self.inline_table(depth).map(Value::Table)
            }
            Some(c) if is_token_byte(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_token_byte) {
                    self.pos += 1;
                }
                // A date and a time may be split by one space (`1979-05-27
                // 07:32:00`): one token, if a time follows the space.
                if self.pos - start == 10
                    && is_date(self.src.as_bytes().get(start..self.pos).unwrap_or_default())
                    && self.peek() == Some(b' ')
                    && self
                        .src
                        .as_bytes()
                        .get(self.pos + 1..self.pos + 4)
                        .is_some_and(|b| {
                            b[0].is_ascii_digit() && b[1].is_ascii_digit() && b[2] == b':'
                        })
                {
                    self.pos += 1;
                    while self.peek().is_some_and(is_token_byte) {
                        self.pos += 1;
                    }
                }
                let token = self.src.get(start..self.pos).unwrap_or_default();
                match scalar(token) {
                    Ok(v) => Ok(v),
                    Err(msg) => self.err(msg),
                }
            }
            _ => self.err(format!("expected a value, found {}", self.found())),
        }
    }

    fn array(&mut self, depth: usize) -> PResult<Vec<Value>> {
        let start_line = self.line;
        self.pos += 1; // '['
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            if self.eat(b']') {
                return Ok(items);
            }
            if self.peek().is_none() {
                return self.err_at(start_line, "unterminated array");
            }
            items.push(self.value(depth)?);
            self.skip_blank()?;
            if self.eat(b']') {
                return Ok(items);
            }
            if !self.eat(b',') {
                if self.peek().is_none() {
                    return self.err_at(start_line, "unterminated array");
                }
                return self.err(format!(
                    "expected `,` or `]` in array, found {}",
                    self.found()
                ));
            }
        }
    }

    fn inline_table(&mut self, depth: usize) -> PResult<Table> {
        let start_line = self.line;
        self.pos += 1; // '{'
        let mut table = Builder::new(Kind::Header);
        self.skip_ws();
        if self.eat(b'}') {
            return Ok(table.finish());
        }
        loop {
            self.skip_ws();
            match self.peek() {
                None => return self.err_at(start_line, "unterminated inline table"),
                Some(b'\n' | b'\r') => {
                    return self.err("newlines are not allowed inside an inline table")
                }
                Some(b'}') => return self.err("trailing comma is not allowed in an inline table"),
                Some(_) => {}
            }
            self.keyval(&mut table, depth)?;
            self.skip_ws();
            if self.eat(b'}') {
                return Ok(table.finish());
            }
            if !self.eat(b',') {
                return match self.peek() {
                    None => self.err_at(start_line, "unterminated inline table"),
                    Some(b'\n' | b'\r') => {
                        self.err("newlines are not allowed inside an inline table")
                    }
                    _ => self.err(format!(
                        "expected `,` or `}}` in inline table, found {}",
                        self.found()
                    )),
                };
            }
        }
    }

    /// Collected string bytes to a `String`. They are always valid UTF-8
    /// (copied from a `&str` at char boundaries, or encoded from a char),
    /// but we report rather than assume.
    fn utf8(&self, bytes: Vec<u8>) -> PResult<String> {
        String::from_utf8(bytes).or_else(|_| self.err("internal error: invalid UTF-8 in string"))
    }

    fn basic_string(&mut self) -> PResult<String> {
        let start_line = self.line;
        self.pos += 1; // '"'
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return self.err_at(start_line, "unterminated string"),
                Some(b'\r') if self.peek_at(1) == Some(b'\n') => {
                    return self.err_at(start_line, "unterminated string")
                }
                Some(b'"') => {
                    self.pos += 1;
                    return self.utf8(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(c) if is_forbidden_control(c) => {
                    return self.err(format!(
                        "control character U+{c:04X} is not allowed in a string; use an escape"
                    ))
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// The escape after a backslash (already consumed) in a basic string.
    fn escape(&mut self, out: &mut Vec<u8>) -> PResult<()> {
        let simple = match self.peek() {
            Some(b'b') => Some(0x08),
            Some(b't') => Some(b'\t'),
            Some(b'n') => Some(b'\n'),
            Some(b'f') => Some(0x0c),
            Some(b'r') => Some(b'\r'),
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            _ => None,
        };
        if let Some(c) = simple {
            self.pos += 1;
            out.push(c);
            return Ok(());
        }
        let width = match self.peek() {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => {
                return self.err(format!(
                    "invalid escape sequence: `\\` followed by {}",
                    self.found()
                ))
            }
        };
        self.pos += 1;
        let hex = self.b.get(self.pos..self.pos + width).unwrap_or_default();
        let code = if hex.len() == width {
            hex.iter().try_fold(0u32, |acc, &h| {
                char::from(h).to_digit(16).map(|d| acc * 16 + d)
            })
        } else {
            None
        };
        let Some(code) = code else {
            return self.err(format!(
                "invalid escape sequence: expected {width} hex digits after `\\{}`",
                if width == 4 { 'u' } else { 'U' }
            ));
        };
        let Some(ch) = char::from_u32(code) else {
            return self.err(format!(
                "escape `\\{}{code:0width$X}` is not a Unicode scalar value",
                if width == 4 { 'u' } else { 'U' }
            ));
        };
        self.pos += width;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn literal_string(&mut self) -> PResult<String> {
        let start_line = self.line;
        self.pos += 1; // '\''
        let start = self.pos;
        loop {
            match self.peek() {
                None | Some(b'\n') => return self.err_at(start_line, "unterminated string"),
                Some(b'\r') if self.peek_at(1) == Some(b'\n') => {
                    return self.err_at(start_line, "unterminated string")
                }
                Some(b'\'') => {
                    let s = self.src.get(start..self.pos).unwrap_or_default().to_owned();
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) if is_forbidden_control(c) => {
                    return self.err(format!(
                        "control character U+{c:04X} is not allowed in a string"
                    ))
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Handles a run of the delimiter quote inside a multi-line string:
    /// one or two are content, three close the string, four or five close
    /// it with the extras as content (TOML allows `""""` endings), more is
    /// an error. Returns true when the string is closed.
    fn ml_quotes(&mut self, quote: u8, out: &mut Vec<u8>) -> PResult<bool> {
        let mut n = 0;
        while self.peek() == Some(quote) {
            n += 1;
            self.pos += 1;
        }
        match n {
            1 | 2 => {
                out.extend(std::iter::repeat(quote).take(n));
                Ok(false)
            }
            3..=5 => {
                out.extend(std::iter::repeat(quote).take(n - 3));
                Ok(true)
            }
            _ => self.err("too many quotes at the end of a multi-line string"),
        }
    }

    /// Newline handling shared by both multi-line forms: CRLF becomes LF;
    /// a lone CR is an error. Returns false if not at a newline.
    fn ml_newline(&mut self, out: &mut Vec<u8>) -> PResult<bool> {
        if self.eat_newline() {
            out.push(b'\n');
            return Ok(true);
        }
        if self.peek() == Some(b'\r') {
            return self.err("carriage return not followed by a line feed");
        }
        Ok(false)
    }

    fn ml_basic_string(&mut self) -> PResult<String> {
        let start_line = self.line;
        self.pos += 3;
        // A newline straight after the opening delimiter is not content.
        self.eat_newline();
        let mut out = Vec::new();
        loop {
            if self.ml_newline(&mut out)? {
                continue;
            }
            match self.peek() {
                None => return self.err_at(start_line, "unterminated multi-line string"),
                Some(b'"') => {
                    if self.ml_quotes(b'"', &mut out)? {
                        return self.utf8(out);
                    }
                }
                Some(b'\\') => {
                    self.pos += 1;
                    if !self.line_ending_backslash()? {
                        self.escape(&mut out)?;
                    }
                }
                Some(c) if is_forbidden_control(c) => {
                    return self.err(format!(
                        "control character U+{c:04X} is not allowed in a string; use an escape"
                    ))
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// After a `\` in a multi-line basic string: if only whitespace follows
    /// on the line, skips it and all whitespace and newlines after it and
    /// returns true. Whitespace then something else is an invalid escape.
    fn line_ending_backslash(&mut self) -> PResult<bool> {
        let save = self.pos;
        self.skip_ws();
        if !self.eat_newline() {
            if self.pos != save {
                return self.err("invalid escape sequence: `\\` followed by whitespace");
            }
            if self.peek() == Some(b'\r') {
                return self.err("carriage return not followed by a line feed");
            }
            return Ok(false);
        }
        loop {
            self.skip_ws();
            if !self.eat_newline() {
                return Ok(true);
            }
        }
    }

    fn ml_literal_string(&mut self) -> PResult<String> {
        let start_line = self.line;
        self.pos += 3;
        self.eat_newline();
        let mut out = Vec::new();
        loop {
            if self.ml_newline(&mut out)? {
                continue;
            }
            match self.peek() {
                None => return self.err_at(start_line, "unterminated multi-line string"),
                Some(b'\'') => {
                    if self.ml_quotes(b'\'', &mut out)? {
                        return self.utf8(out);
                    }
                }
                Some(c) if is_forbidden_control(c) => {
                    return self.err(format!(
                        "control character U+{c:04X} is not allowed in a string"
                    ))
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Scalars: a maximal run of token bytes, classified afterwards. Reading the
// whole run first means `truex`, `1_000x` or `12:30` are reported as one bad
// token rather than as a value followed by garbage.

/// Two ASCII digits as a number.
fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [x, y] if x.is_ascii_digit() && y.is_ascii_digit() => {
            Some(u32::from(x - b'0') * 10 + u32::from(y - b'0'))
        }
        _ => None,
    }
}

/// `YYYY-MM-DD`, a day that exists (leap years counted).
fn is_date(b: &[u8]) -> bool {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let year = b[..4]
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let (Some(month), Some(day)) = (two_digits(&b[5..7]), two_digits(&b[8..10])) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// `HH:MM:SS` with optional fraction (`.` and digits), then, where
/// `offset`, optionally `Z` or `±HH:MM`.
fn is_time(b: &[u8], offset: bool) -> bool {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let ok = matches!(
        (two_digits(&b[..2]), two_digits(&b[3..5]), two_digits(&b[6..8])),
        (Some(h), Some(m), Some(s)) if h < 24 && m < 60 && s <= 60
    );
    let mut rest = &b[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    ok && match rest {
        [] => true,
        [b'Z' | b'z'] => offset,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            offset
                && two_digits(&[*h1, *h2]).is_some_and(|h| h < 24)
                && two_digits(&[*m1, *m2]).is_some_and(|m| m < 60)
        }
        _ => false,
    }
}

/// A TOML 1.0 offset or local date-time, local date or local time (the
/// date and time apart by `T`, `t` or one space).
fn is_datetime(b: &[u8]) -> bool {
    if b.len() >= 3 && b[2] == b':' {
        return is_time(b, false);
    }
    match b.get(10) {
        None => is_date(b),
        Some(b'T' | b't' | b' ') => is_date(&b[..10]) && is_time(&b[11..], true),
        Some(_) => false,
    }
}

fn scalar(token: &str) -> Result<Value, String> {
    match token {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let b = token.as_bytes();
    let looks_like_date = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-';
    if looks_like_date || token.contains(':') {
        return if is_datetime(b) {
            Ok(Value::Datetime(token.to_owned()))
        } else {
            Err(format!(
                "invalid date or time `{}` (TOML takes 1979-05-27, 07:32:00, 1979-05-27T07:32:00 and 1979-05-27T07:32:00Z or +01:00)",
                clip(token)
            ))
        };
    }
    let (negative, signed, body) = match b.first() {
        Some(b'-') => (true, true, &token[1..]),
        Some(b'+') => (false, true, &token[1..]),
        _ => (false, false, token),
    };
    match body {
        "inf" => {
            let inf = f64::INFINITY;
            return Ok(Value::Float(if negative { -inf } else { inf }));
        }
        "nan" => return Ok(Value::Float(f64::NAN)),
        _ => {}
    }
    let radix = match body.get(..2) {
        Some("0x") => 16,
        Some("0o") => 8,
        Some("0b") => 2,
        _ => 10,
    };
    if radix != 10 {
        if signed {
            return Err(format!(
                "a sign is not allowed on a hex, octal or binary integer (`{}`)",
                clip(token)
            ));
        }
        return radix_int(&body[2..], radix)
            .map(Value::Int)
            .ok_or_else(|| format!("invalid or out-of-range integer `{}`", clip(token)));
    }
    if body.bytes().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        return float(body, negative)
            .map(Value::Float)
            .ok_or_else(|| format!("invalid value `{}`", clip(token)));
    }
    if !digits_ok(body.as_bytes(), 10) {
        return Err(format!("invalid value `{}`", clip(token)));
    }
    if body.len() > 1 && body.starts_with('0') {
        return Err(format!(
            "leading zeros are not allowed in integers (`{}`)",
            clip(token)
        ));
    }
    decimal_int(body, negative)
        .map(Value::Int)
        .ok_or_else(|| format!("integer `{}` is out of range", clip(token)))
}

/// Shortens a token (or any value) quoted in an error message, so that
/// a huge one is not echoed whole.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= 40 {
        s.to_owned()
    } else {
        // Cut at a character boundary: values from a config file need
        // not be ASCII.
        let end = s
            .char_indices()
            .map(|(i, _)| i)
            .take_while(|&i| i <= 37)
            .last()
            .unwrap_or(0);
        format!("{}...", &s[..end])
    }
}

/// Non-empty digits of `radix`, with `_` only between two digits.
fn digits_ok(s: &[u8], radix: u32) -> bool {
    let is_digit = |c: u8| char::from(c).is_digit(radix);
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) if is_digit(first) && is_digit(last) => {}
        _ => return false,
    }
    s.iter().all(|&c| c == b'_' || is_digit(c)) && !s.windows(2).any(|w| w == b"__")
}

fn radix_int(digits: &str, radix: u32) -> Option<i64> {
    if !digits_ok(digits.as_bytes(), radix) {
        return None;
    }
    digits
        .bytes()
        .filter(|&c| c != b'_')
        .try_fold(0i64, |acc, c| {
            let d = char::from(c).to_digit(radix)?;
            acc.checked_mul(i64::from(radix))?.checked_add(i64::from(d))
        })
}

/// Validated decimal digits (with `_`) to i64. Accumulating downwards for
/// negative numbers lets `-9223372036854775808` parse.
fn decimal_int(digits: &str, negative: bool) -> Option<i64> {
    digits
        .bytes()
        .filter(|&c| c != b'_')
        .try_fold(0i64, |acc, c| {
            let d = i64::from(c - b'0');
            let shifted = acc.checked_mul(10)?;
            if negative {
                shifted.checked_sub(d)
            } else {
                shifted.checked_add(d)
            }
        })
}

/// TOML float grammar: int part (no leading zeros), then a `.` fraction,
/// an exponent, or both. Validated here because Rust's own parser accepts
/// forms TOML does not (`.5`, `5.`, `1_0.0` is fine in TOML but `_` is not in
/// Rust).
fn float(body: &str, negative: bool) -> Option<f64> {
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    if !digits_ok(int_part.as_bytes(), 10) || (int_part.len() > 1 && int_part.starts_with('0')) {
        return None;
    }
    if let Some(frac) = frac {
        if !digits_ok(frac.as_bytes(), 10) {
            return None;
        }
    }
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if !digits_ok(digits.as_bytes(), 10) {
            return None;
        }
    }
    let plain: String = body.chars().filter(|&c| c != '_').collect();
    let v: f64 = plain.parse().ok()?;
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Table {
        match parse(src) {
            Ok(t) => t,
            Err(e) => panic!("unexpected error {e} for {src:?}"),
        }
    }

    /// Asserts `src` fails on `line` with a message containing `needle`.
    fn bad(src: &str, line: usize, needle: &str) {
        match parse(src) {
            Ok(t) => panic!("expected an error for {src:?}, got {t:?}"),
            Err(e) => {
                assert_eq!(e.line, line, "line for {src:?}: {e}");
                assert!(
                    e.message.contains(needle),
                    "message for {src:?} was {:?}, wanted {needle:?}",
                    e.message
                );
            }
        }
    }

    fn at<'a>(t: &'a Table, path: &[&str]) -> &'a Value {
        match t.lookup(path) {
            Some(e) => &e.value,
            None => panic!("missing {path:?} in {t:?}"),
        }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    #[test]
    fn agent_exec_example() {
        let t = ok(r#"
# comment
[shell]
unix    = ["sh", "-lc"]   # argv prefix
windows = ["cmd", "/C"]

[gc]
auto = true
older_than = "30d"
max_jobs = 200
max_bytes = 1_073_741_824
scan_limit = 200
delete_limit = 20

[notify]
sink_timeout = "30s"
"#);
        assert_eq!(
            at(&t, &["shell", "unix"]),
            &Value::Array(vec![s("sh"), s("-lc")])
        );
        assert_eq!(at(&t, &["gc", "auto"]), &Value::Bool(true));
        assert_eq!(at(&t, &["gc", "older_than"]), &s("30d"));
        assert_eq!(at(&t, &["gc", "max_bytes"]), &Value::Int(1_073_741_824));
        assert_eq!(at(&t, &["notify", "sink_timeout"]), &s("30s"));
        assert_eq!(t.lookup(&["gc", "max_jobs"]).map(|e| e.line), Some(10));
        assert_eq!(t.entry("gc").map(|e| e.line), Some(7));
        let keys: Vec<&str> = t.into_iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["shell", "gc", "notify"]);
        let gc: Vec<&str> = at(&t, &["gc"])
            .as_table()
            .unwrap()
            .into_iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(
            gc,
            [
                "auto",
                "older_than",
                "max_jobs",
                "max_bytes",
                "scan_limit",
                "delete_limit"
            ]
        );
    }

    #[test]
    fn empty_and_blank_documents() {
        assert_eq!(ok("").into_iter().count(), 0);
        assert_eq!(ok("\n\n  \t\n# only a comment\n").into_iter().count(), 0);
        assert_eq!(ok("\r\n# crlf\r\na = 1\r\n").get("a"), Some(&Value::Int(1)));
        assert_eq!(ok("a = 1").get("a"), Some(&Value::Int(1)));
        assert_eq!(ok("a=1#c\nb=2").get("b"), Some(&Value::Int(2)));
    }

    #[test]
    fn keys_bare_quoted_dotted() {
        let t = ok(concat!(
            "bare_key-1 = 1\n",
            "1234 = 2\n",
            "\"quoted key\" = 3\n",
            "'lit.key' = 4\n",
            "\"\" = 5\n",
            "a . b.\"c d\" = 6\n",
            "a.e = 7\n",
            "true = 8\n",
            "3.14 = 9\n",
            "\"\\u00e9\" = 10\n",
        ));
        assert_eq!(t.get("bare_key-1"), Some(&Value::Int(1)));
        assert_eq!(t.get("1234"), Some(&Value::Int(2)));
        assert_eq!(t.get("quoted key"), Some(&Value::Int(3)));
        assert_eq!(t.get("lit.key"), Some(&Value::Int(4)));
        assert_eq!(t.get(""), Some(&Value::Int(5)));
        assert_eq!(at(&t, &["a", "b", "c d"]), &Value::Int(6));
        assert_eq!(at(&t, &["a", "e"]), &Value::Int(7));
        assert_eq!(t.get("true"), Some(&Value::Int(8)));
        assert_eq!(at(&t, &["3", "14"]), &Value::Int(9));
        assert_eq!(t.get("é"), Some(&Value::Int(10)));
        assert!(t.lookup(&[]).is_none());
        assert!(t.lookup(&["a", "b", "c d", "deeper"]).is_none());
    }

    #[test]
    fn headers() {
        let t = ok(concat!(
            "top = 0\n",
            "[a]\n",
            "x = 1\n",
            "[ a . \"b c\" ]\n",
            "y = 2\n",
            "[d.e.f]\n",
            "z = 3\n",
            "[d]\n", // defining an implicitly created table is fine
            "w = 4\n",
            "[d.e]\n",
            "v = 5\n",
        ));
        assert_eq!(t.get("top"), Some(&Value::Int(0)));
        assert_eq!(at(&t, &["a", "x"]), &Value::Int(1));
        assert_eq!(at(&t, &["a", "b c", "y"]), &Value::Int(2));
        assert_eq!(at(&t, &["d", "e", "f", "z"]), &Value::Int(3));
        assert_eq!(at(&t, &["d", "w"]), &Value::Int(4));
        assert_eq!(at(&t, &["d", "e", "v"]), &Value::Int(5));
        assert_eq!(t.entry("d").map(|e| e.line), Some(8));
    }

    #[test]
    fn dotted_keys_and_headers_interact_as_toml_says() {
        let t = ok(concat!(
            "[fruit]\n",
            "apple.color = \"red\"\n",
            "apple.taste.sweet = true\n",
            "[fruit.apple.texture]\n",
            "smooth = true\n",
        ));
        assert_eq!(at(&t, &["fruit", "apple", "color"]), &s("red"));
        assert_eq!(
            at(&t, &["fruit", "apple", "texture", "smooth"]),
            &Value::Bool(true)
        );
        bad(
            "[fruit]\napple.color = 1\n[fruit.apple]\n",
            3,
            "already defined by dotted keys on line 2",
        );
        bad(
            "[fruit]\napple.taste.sweet = 1\n[fruit.apple.taste]\n",
            3,
            "dotted keys",
        );
        bad(
            "[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n",
            4,
            "cannot add keys to `b.c` with a dotted key: it is already a table defined by a \
             [header] (line 1)",
        );
        bad(
            "[a.b]\n[a]\nb.x = 1\n",
            3,
            "already a table defined by a [header]",
        );
        // A table only implied by a deeper header may be defined by dotted
        // keys once; after that it is closed to a header of its own.
        let t = ok("[a.b.c]\n[a]\nb.d = 1\n[a.b.e]\n");
        assert_eq!(at(&t, &["a", "b", "d"]), &Value::Int(1));
        assert!(t.lookup(&["a", "b", "c"]).is_some());
        assert!(t.lookup(&["a", "b", "e"]).is_some());
        bad(
            "[a.b.c]\n[a]\nb.d = 1\n[a.b]\n",
            4,
            "table [a.b] was already defined by dotted keys on line 3",
        );
        bad("[[a.b]]\n[a]\nb.y = 2\n", 3, "array of tables");
        bad(
            "a = 1\na.b = 2\n",
            2,
            "cannot add keys to `a` with a dotted key: it is already an integer (line 1)",
        );
    }

    #[test]
    fn arrays_of_tables() {
        let t = ok(concat!(
            "[[hook]]\n",
            "name = \"a\"\n",
            "[hook.env]\n",
            "X = 1\n",
            "[[hook]]\n",
            "name = \"b\"\n",
            "[[hook.step]]\n",
            "n = 1\n",
        ));
        let hooks = at(&t, &["hook"]).as_array().unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].as_table().unwrap().get("name"), Some(&s("a")));
        assert_eq!(
            hooks[0]
                .as_table()
                .unwrap()
                .lookup(&["env", "X"])
                .map(|e| &e.value),
            Some(&Value::Int(1))
        );
        let second = hooks[1].as_table().unwrap();
        assert_eq!(second.get("name"), Some(&s("b")));
        let steps = second.get("step").and_then(Value::as_array).unwrap();
        assert_eq!(steps.len(), 1);
        let step = steps[0].as_table().unwrap().entry("n").unwrap();
        assert_eq!((&step.value, step.line), (&Value::Int(1), 8));
        bad("a = []\n[[a]]\n", 2, "cannot define array of tables `a`");
        bad("[a]\n[[a]]\n", 2, "cannot define array of tables `a`");
        bad(
            "[[a]]\n[a]\n",
            2,
            "cannot define table `a`: it is already an array of tables",
        );
    }

    #[test]
    fn basic_strings_and_escapes() {
        let t = ok(concat!(
            r#"a = "tab\there \"q\" back\\slash""#,
            "\n",
            r#"b = "\b\f\n\r\u00E9\U0001F600""#,
            "\n",
            "c = \"raw\ttab and é ünïcode\"\n",
            "d = \"\"\n",
            "e = \"# not a comment\" # a comment\n",
        ));
        assert_eq!(t.get("a"), Some(&s("tab\there \"q\" back\\slash")));
        assert_eq!(t.get("b"), Some(&s("\u{8}\u{c}\n\ré😀")));
        assert_eq!(t.get("c"), Some(&s("raw\ttab and é ünïcode")));
        assert_eq!(t.get("d"), Some(&s("")));
        assert_eq!(t.get("e"), Some(&s("# not a comment")));
    }

    #[test]
    fn literal_strings() {
        let t = ok("a = 'C:\\Users\\x'\nb = '<\\i\\c*\\s*>'\nc = ''\n");
        assert_eq!(t.get("a"), Some(&s("C:\\Users\\x")));
        assert_eq!(t.get("b"), Some(&s("<\\i\\c*\\s*>")));
        assert_eq!(t.get("c"), Some(&s("")));
    }

    #[test]
    fn multi_line_strings() {
        let t = ok(concat!(
            "a = \"\"\"\nline one\nline two\"\"\"\n",
            "b = \"\"\"\\\n    The quick \\\n\n    fox.\\\n    \"\"\"\n",
            "c = \"\"\"quotes \"\" inside and at end\"\"\"\"\"\n",
            "d = '''\nraw \\n text\n'''\n",
            "e = '''one '' two''''\n",
            "f = \"\"\"crlf\r\nline\"\"\"\n",
            "g = \"\"\"esc \\t \\u0041\"\"\"\n",
            "h = \"\"\"\"\"\"\"\n",
        ));
        assert_eq!(t.get("a"), Some(&s("line one\nline two")));
        assert_eq!(t.get("b"), Some(&s("The quick fox.")));
        assert_eq!(t.get("c"), Some(&s("quotes \"\" inside and at end\"\"")));
        assert_eq!(t.get("d"), Some(&s("raw \\n text\n")));
        assert_eq!(t.get("e"), Some(&s("one '' two'")));
        assert_eq!(t.get("f"), Some(&s("crlf\nline")));
        assert_eq!(t.get("g"), Some(&s("esc \t A")));
        assert_eq!(t.get("h"), Some(&s("\"")));
        // Lines inside multi-line strings are counted.
        assert_eq!(
            ok("a = \"\"\"\n1\n2\n\"\"\"\nb = 1\n")
                .entry("b")
                .map(|e| e.line),
            Some(5)
        );
    }

    #[test]
    fn integers() {
        let t = ok(concat!(
            "a = 0\nb = +99\nc = -17\nd = 1_000\ne = 5_349_221\n",
            "f = 0xDEAD_beef\ng = 0o755\nh = 0b1101\ni = -0\nj = +0\n",
            "max = 9223372036854775807\nmin = -9223372036854775808\n",
            "hmax = 0x7FFFFFFFFFFFFFFF\n",
        ));
        let want: &[(&str, i64)] = &[
            ("a", 0),
            ("b", 99),
            ("c", -17),
            ("d", 1000),
            ("e", 5_349_221),
            ("f", 0xDEAD_BEEF),
            ("g", 0o755),
            ("h", 0b1101),
            ("i", 0),
            ("j", 0),
            ("max", i64::MAX),
            ("min", i64::MIN),
            ("hmax", i64::MAX),
        ];
        for &(k, v) in want {
            assert_eq!(t.get(k), Some(&Value::Int(v)), "{k}");
        }
    }

    #[test]
    fn integer_rejections() {
        bad("a = 9223372036854775808", 1, "out of range");
        bad("a = -9223372036854775809", 1, "out of range");
        bad("a = 0x8000000000000000", 1, "out-of-range");
        bad(
            "a = 99999999999999999999999999999999999999999",
            1,
            "out of range",
        );
        bad("a = 012", 1, "leading zeros");
        bad("a = 1__0", 1, "invalid value");
        bad("a = _1", 1, "invalid value");
        bad("a = 1_", 1, "invalid value");
        bad("a = +0x10", 1, "sign is not allowed");
        bad("a = 0x", 1, "invalid or out-of-range");
        bad("a = 0xG", 1, "invalid or out-of-range");
        bad("a = 0o8", 1, "invalid or out-of-range");
        bad("a = 0b2", 1, "invalid or out-of-range");
        bad("a = 0X10", 1, "invalid value");
        bad("a = 1x", 1, "invalid value");
        bad("a = --1", 1, "invalid value");
        bad("a = +", 1, "invalid value");
    }

    #[test]
    fn floats() {
        let t = ok(concat!(
            "a = 1.5\nb = -0.01\nc = 5e+22\nd = 1e06\ne = -2E-2\n",
            "f = 6.626e-34\ng = 224_617.445_991\nh = inf\ni = -inf\nj = nan\nk = +nan\n",
        ));
        assert_eq!(t.get("a"), Some(&Value::Float(1.5)));
        assert_eq!(t.get("b"), Some(&Value::Float(-0.01)));
        assert_eq!(t.get("c"), Some(&Value::Float(5e22)));
        assert_eq!(t.get("d"), Some(&Value::Float(1e6)));
        assert_eq!(t.get("e"), Some(&Value::Float(-2e-2)));
        assert_eq!(t.get("f"), Some(&Value::Float(6.626e-34)));
        assert_eq!(t.get("g"), Some(&Value::Float(224_617.445_991)));
        assert_eq!(t.get("h"), Some(&Value::Float(f64::INFINITY)));
        assert_eq!(t.get("i"), Some(&Value::Float(f64::NEG_INFINITY)));
        assert!(matches!(t.get("j"), Some(Value::Float(f)) if f.is_nan()));
        assert!(matches!(t.get("k"), Some(Value::Float(f)) if f.is_nan()));
        for text in [
            ".5", "5.", "1.e3", "1e", "1e+", "01.5", "1.5_", "1._5", "1e_3", "1.2.3",
        ] {
            bad(&format!("x = {text}"), 1, "invalid");
        }
    }

    #[test]
    fn booleans() {
        let t = ok("a = true\nb = false\n");
        assert_eq!(t.get("a"), Some(&Value::Bool(true)));
        assert_eq!(t.get("b"), Some(&Value::Bool(false)));
        bad("a = True", 1, "invalid value");
        bad("a = truex", 1, "invalid value");
        bad("a = yes", 1, "invalid value");
    }

    #[test]
    fn dates_and_times_load_as_written_and_impossible_ones_are_refused() {
        for text in [
            "1979-05-27T07:32:00Z",
            "1979-05-27t07:32:00z",
            "1979-05-27",
            "07:32:00",
            "00:32:00.999999",
            "1979-05-27 07:32:00",
            "1979-05-27T00:32:00.999999-07:00",
            "1979-05-27 00:32:00+05:30",
            "2024-02-29T23:59:60Z",
        ] {
            let t = ok(&format!("d = {text} # note\n[x]\ne = [{text}, {text}]\n"));
            assert_eq!(
                t.get("d"),
                Some(&Value::Datetime(text.to_owned())),
                "{text}"
            );
        }
        // A date alone, then a comment: not joined with what follows.
        let t = ok("d = 1979-05-27 # 07:32:00\n");
        assert_eq!(t.get("d"), Some(&Value::Datetime("1979-05-27".to_owned())));
        for text in [
            "2023-02-29",
            "1979-13-01",
            "1979-00-10",
            "1979-04-31",
            "24:00:00",
            "07:60:00",
            "07:32",
            "07:32:00Z",
            "07:32:00.",
            "1979-05-27T07:32:00+24:00",
            "1979-05-27T07:32:00+0100",
            "1979-05-27X07:32:00",
            "1979-5-27",
            "1979-05-27T",
        ] {
            bad(&format!("d = {text}"), 1, "invalid date or time");
        }
        // A space then no time: the date, then garbage after the value.
        bad("d = 1979-05-27 7:32:00", 1, "");
    }

    #[test]
    fn arrays() {
        let t = ok(concat!(
            "a = []\n",
            "b = [1, 2, 3,]\n",
            "c = [\n  \"x\", # first\n  # own line\n\n  'y',\n]\n",
            "d = [[1, 2], [\"a\"], []]\n",
            "e = [1, \"mixed\", true, 1.5, { k = 1 }]\n",
            "f = [ ]\n",
        ));
        assert_eq!(t.get("a"), Some(&Value::Array(vec![])));
        assert_eq!(
            t.get("b"),
            Some(&Value::Array(vec![
                Value::Int(1),
                Value::Int(2),
                Value::Int(3)
            ]))
        );
        assert_eq!(t.get("c"), Some(&Value::Array(vec![s("x"), s("y")])));
        assert_eq!(
            t.get("d"),
            Some(&Value::Array(vec![
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
                Value::Array(vec![s("a")]),
                Value::Array(vec![]),
            ]))
        );
        assert_eq!(
            t.get("e").and_then(Value::as_array).map(<[Value]>::len),
            Some(5)
        );
        assert_eq!(t.get("f"), Some(&Value::Array(vec![])));
        assert_eq!(t.entry("d").map(|e| e.line), Some(9));
    }

    #[test]
    fn array_rejections() {
        bad("a = [1, 2", 1, "unterminated array");
        bad("a = [1,\n2,\n", 1, "unterminated array");
        bad("a = [1 2]", 1, "expected `,` or `]` in array, found `2`");
        bad("a = [,]", 1, "expected a value, found `,`");
        bad("a = [1,,2]", 1, "expected a value, found `,`");
        bad("a = [\n1,\n}\n]", 3, "expected a value, found `}`");
    }

    #[test]
    fn inline_tables() {
        let t = ok(concat!(
            "a = {}\n",
            "b = { x = 1, y = \"two\" }\n",
            "c = { p.q = 1, p.r = 2, s = { t = [1] } }\n",
        ));
        assert_eq!(t.get("a"), Some(&Value::Table(Table::default())));
        assert_eq!(at(&t, &["b", "x"]), &Value::Int(1));
        assert_eq!(at(&t, &["b", "y"]), &s("two"));
        assert_eq!(at(&t, &["c", "p", "r"]), &Value::Int(2));
        assert_eq!(at(&t, &["c", "s", "t"]), &Value::Array(vec![Value::Int(1)]));
        bad("a = { x = 1, }", 1, "trailing comma");
        bad("a = { x = 1,\n y = 2 }", 1, "newlines are not allowed");
        bad("a = {\n}", 1, "newlines are not allowed");
        bad("a = { x = 1", 1, "unterminated inline table");
        bad("a = { x = 1 y = 2 }", 1, "expected `,` or `}`");
        bad("a = { x = 1, x = 2 }", 1, "duplicate key `x`");
        bad("a = { p.q = 1, p = 2 }", 1, "duplicate key `p`");
        bad("a = { x = 1 }\n[a]\n", 2, "it is already an inline table");
        bad("a = { x = 1 }\n[a.b]\n", 2, "cannot use `a` as a table");
        bad("a = { x = 1 }\na.y = 2\n", 2, "already an inline table");
        bad("a = [1]\n[a.b]\n", 2, "already an array value");
    }

    #[test]
    fn duplicate_keys_and_tables() {
        bad(
            "a = 1\nb = 2\na = 3\n",
            3,
            "duplicate key `a` (first defined on line 1)",
        );
        bad("a = 1\n\"a\" = 2\n", 2, "duplicate key `a`");
        bad(
            "[t]\nx = 1\n[t]\n",
            3,
            "table [t] is defined more than once (first on line 1)",
        );
        bad("[t.u]\n[t.u]\n", 2, "defined more than once");
        bad(
            "[t]\nu = 1\n[t.u]\n",
            3,
            "cannot define table `t.u`: it is already an integer",
        );
        bad(
            "[t.u]\n[t]\nu = 1\n",
            3,
            "duplicate key `u` (first defined on line 1)",
        );
        bad("a.b = 1\na.b = 2\n", 2, "duplicate key `a.b`");
        bad("a.b = 1\na = 2\n", 2, "duplicate key `a`");
    }

    #[test]
    fn string_rejections() {
        bad("a = \"abc", 1, "unterminated string");
        bad("a = \"abc\nb = 1", 1, "unterminated string");
        bad("\n\na = 'abc", 3, "unterminated string");
        bad("a = \"\"\"abc\n\n", 1, "unterminated multi-line string");
        bad("x = 1\na = '''abc\n", 2, "unterminated multi-line string");
        bad(
            "a = \"\\q\"",
            1,
            "invalid escape sequence: `\\` followed by `q`",
        );
        bad("a = \"\\e\"", 1, "invalid escape");
        bad("a = \"\\x41\"", 1, "invalid escape");
        bad("a = \"\\u12\"", 1, "expected 4 hex digits");
        bad("a = \"\\u12G4\"", 1, "expected 4 hex digits");
        bad("a = \"\\uD800\"", 1, "not a Unicode scalar value");
        bad("a = \"\\U00110000\"", 1, "not a Unicode scalar value");
        bad("a = \"\\", 1, "invalid escape");
        bad("a = \"x\u{1}y\"", 1, "control character U+0001");
        bad("a = 'x\u{7f}y'", 1, "control character U+007F");
        bad("a = \"x\ry\"", 1, "control character U+000D");
        bad("a = \"\"\"x\u{0}\"\"\"", 1, "control character U+0000");
        bad("a = '''a\rb'''", 1, "carriage return");
        bad("a = \"\"\"\\  x\"\"\"", 1, "followed by whitespace");
        bad("a = \"\"\"x\"\"\"\"\"\"", 1, "too many quotes");
        bad("\"\"\"k\"\"\" = 1", 1, "multi-line string cannot be a key");
        bad("'''k''' = 1", 1, "multi-line string cannot be a key");
    }

    #[test]
    fn line_structure_rejections() {
        bad("a = 1 b = 2", 1, "unexpected `b` after value");
        bad("a = \"x\" \"y\"", 1, "unexpected `\"` after value");
        bad("a = 1\n\nb = [1] x", 3, "after value");
        bad("[a] x = 1", 1, "unexpected `x` after table header");
        bad("[a]]\n", 1, "unexpected `]` after table header");
        bad("[a\n", 1, "expected `]`");
        bad("[[a]\n", 1, "expected `]]`");
        bad("[]\n", 1, "expected a key");
        bad("[a.]\n", 1, "expected a key");
        bad("a\n", 1, "expected `=`");
        bad("a =\n", 1, "expected a value, found end of line");
        bad("a = ", 1, "expected a value, found end of input");
        bad("= 1", 1, "expected a key");
        bad("a = 1\r", 1, "carriage return");
        bad("\r", 1, "carriage return");
        bad(
            "# bell \u{7}\n",
            1,
            "control character U+0007 is not allowed in a comment",
        );
        bad("a = 1 # x\u{0}", 1, "control character");
        bad("a = @", 1, "expected a value, found `@`");
        bad("a = é", 1, "expected a value, found `é`");
        bad("é = 1", 1, "expected a key, found `é`");
        bad("a = \u{1}", 1, "control character U+0001");
    }

    #[test]
    fn limits() {
        let big = "#".repeat(MAX_INPUT_BYTES + 1);
        bad(&big, 1, "limit");
        let ok_big = format!("#{}\na = 1", "x".repeat(MAX_INPUT_BYTES - 10));
        assert_eq!(ok(&ok_big).get("a"), Some(&Value::Int(1)));

        let deep = |n: usize| format!("a = {}{}", "[".repeat(n), "]".repeat(n));
        // `a` is level 1, so the innermost of 63 arrays holds level 64.
        assert!(parse(&deep(MAX_DEPTH - 1)).is_ok());
        bad(&deep(MAX_DEPTH), 1, "nested deeper");
        bad(&deep(100_000), 1, "nested deeper");
        bad(
            &format!("a = {}", "{ b = ".repeat(100_000)),
            1,
            "nested deeper",
        );

        let header = |n: usize| format!("[{}]\nx = 1\n", vec!["k"; n].join("."));
        assert!(parse(&header(MAX_DEPTH - 1)).is_ok());
        bad(&header(MAX_DEPTH + 1), 1, "more than 64 dotted parts");
        // 64 parts is a legal key, but the table would sit at level 64 and
        // its keys below the limit.
        bad(&header(MAX_DEPTH), 2, "keys nested deeper than 64 levels");
        bad(&header(50_000), 1, "more than 64 dotted parts");
        // Header depth plus dotted key depth plus value depth all count.
        let mixed = format!(
            "[{}]\n{} = [[1]]\n",
            vec!["h"; 30].join("."),
            vec!["k"; 33].join(".")
        );
        bad(&mixed, 2, "nested deeper");
        // Dotted keys inside nested inline tables count too.
        let inline = format!("a = {}1{}", "{ b.c.d = ".repeat(30), " }".repeat(30));
        bad(&inline, 1, "nested deeper");
    }

    #[test]
    fn many_keys_under_deep_header_is_fast() {
        // Would be quadratic if each key/value line re-walked the header path.
        let long = "k".repeat(1000);
        let mut src = format!("[{}]\n", vec![long.as_str(); 60].join("."));
        let mut i = 0;
        while src.len() < MAX_INPUT_BYTES - 32 {
            src.push_str(&format!("a{i} = {i}\n"));
            i += 1;
        }
        let start = std::time::Instant::now();
        let t = ok(&src);
        assert!(start.elapsed().as_secs() < 10);
        assert_eq!(t.into_iter().count(), 1);
    }

    #[test]
    fn error_display() {
        let e = parse("a = 1\na = 2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: duplicate key `a` (first defined on line 1)"
        );
        let e = parse("\"x\" = 1\nx = 2").unwrap_err();
        assert!(e.message.contains("`x`"));
        let long = "k".repeat(500);
        let e = parse(&format!("{long} = 1\n{long} = 2")).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
    }

    #[test]
    fn value_accessors() {
        let t = ok("s = 'x'\ni = 1\nb = true\na = [1]\nt = {}\nf = 1.0\n");
        assert_eq!(t.get("s").and_then(Value::as_str), Some("x"));
        assert_eq!(t.get("i").and_then(Value::as_int), Some(1));
        assert_eq!(t.get("b").and_then(Value::as_bool), Some(true));
        assert_eq!(
            t.get("a").and_then(Value::as_array).map(<[Value]>::len),
            Some(1)
        );
        assert!(t.get("t").and_then(Value::as_table).is_some());
        assert_eq!(t.get("s").and_then(Value::as_int), None);
        let names: Vec<&str> = t.into_iter().map(|e| e.value.type_name()).collect();
        assert_eq!(
            names,
            ["string", "integer", "boolean", "array", "table", "float"]
        );
    }

    // ---- deterministic fuzzing -------------------------------------------

    /// xorshift64*: tiny, deterministic, good enough to drive mutations.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const SEEDS: &[&str] = &[
        "[shell]\nunix = [\"sh\", \"-lc\"]\n[gc]\nauto = true\nolder_than = \"30d\"\nmax_bytes = 1_073_741_824\n",
        "a.b.\"c\" = { d = [1, 2.5, 'x', \"\"\"m\nl\"\"\"], e = 0x1F }\n[[t]]\n[t.u]\nv = -0o17 # c\n",
        "s = '''\nlit\n'''\nb = \"\\u00e9\\n\\t\"\n[x.y]\nz = [\n  1,\n  # c\n  2,\n]\n",
        "k = 1e10\nn = -inf\n[a]\n[[a.b]]\nc = true\n",
    ];

    const PIECES: &[&str] = &[
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        "=",
        ",",
        ".",
        "\"",
        "'",
        "\"\"\"",
        "'''",
        "\\",
        "\\u",
        "\\U0010FFFF",
        "#",
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        "a",
        "1",
        "-",
        "+",
        "_",
        "0x",
        "e",
        "true",
        "inf",
        "nan",
        ":",
        "é",
        "\u{0}",
        "\u{7f}",
        "1979-05-27",
        "[a.b]",
        "x = 1\n",
        "[[t]]\n",
        "{ a = 1 }",
        "[1, [2]]",
    ];

    fn mutate(rng: &mut Rng, input: &str) -> String {
        let mut chars: Vec<char> = input.chars().collect();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(chars.len() + 1);
            match rng.below(5) {
                0 if !chars.is_empty() => {
                    let at = at.min(chars.len() - 1);
                    chars.remove(at);
                }
                1 => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    for (i, c) in piece.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                2 if !chars.is_empty() => {
                    let at = at.min(chars.len() - 1);
                    chars[at] = char::from(rng.below(128) as u8);
                }
                3 if !chars.is_empty() => {
                    // Duplicate a span: makes duplicate keys and headers.
                    let from = rng.below(chars.len());
                    let len = rng.below(40).min(chars.len() - from);
                    let span: Vec<char> = chars[from..from + len].to_vec();
                    for (i, c) in span.into_iter().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                _ => chars.truncate(at),
            }
        }
        chars.into_iter().collect()
    }

    #[test]
    fn fuzz_mutated_inputs_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let start = std::time::Instant::now();
        let mut parsed = 0;
        for round in 0..20_000 {
            let seed = SEEDS[round % SEEDS.len()];
            let mut input = mutate(&mut rng, seed);
            if round % 3 == 0 {
                input = mutate(&mut rng, &input);
            }
            let result = std::panic::catch_unwind(|| parse(&input));
            match result {
                Ok(Ok(_)) => parsed += 1,
                Ok(Err(e)) => {
                    let lines = input.split('\n').count();
                    assert!(
                        e.line >= 1 && e.line <= lines,
                        "line {} of {lines}: {input:?}",
                        e.line
                    );
                    assert!(!e.message.is_empty());
                }
                Err(_) => panic!("parser panicked on {input:?}"),
            }
        }
        // Mutations should leave a fair share of inputs valid, or the fuzz
        // is only exercising the first error path.
        assert!(parsed > 1_000, "only {parsed} inputs parsed");
        assert!(start.elapsed().as_secs() < 30);
    }

    #[test]
    fn fuzz_random_bytes_never_panic() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let alphabet: Vec<char> = "[]{}=,.\"'\\#\n\r \tabc019+-_xoeE:é\u{0}".chars().collect();
        let start = std::time::Instant::now();
        for _ in 0..20_000 {
            let len = rng.below(64);
            let input: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            if std::panic::catch_unwind(|| parse(&input)).is_err() {
                panic!("parser panicked on {input:?}");
            }
        }
        // Large hostile shapes, once each.
        for shape in [
            "[",
            "{a=",
            "a.",
            "\"\\",
            "[[a]]\n",
            "a=[",
            "'''",
            "\"\"\"\\\n",
            "[a.b]\n",
        ] {
            for prefix in ["", "x = ", "x = [", "[t]\nx.y = {z = "] {
                let reps = (MAX_INPUT_BYTES - prefix.len()) / shape.len();
                let input = format!("{prefix}{}", shape.repeat(reps));
                assert!(std::panic::catch_unwind(|| parse(&input)).is_ok());
            }
        }
        assert!(start.elapsed().as_secs() < 30);
    }
}
