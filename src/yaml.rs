//! YAML rendering for `--yaml`: turns the one JSON document a command
//! produced into the same value written as YAML.
//!
//! What this module owns: an order-preserving JSON tree ([`Node`]), its
//! `serde::Deserialize` impl, and a small hand-written YAML emitter
//! ([`emit`], [`json_to_yaml`]). Nothing else in the program formats YAML.
//!
//! Subset emitted: block mappings (2-space indent), block sequences (`- `,
//! not indented under their key), `- - a` for nested sequences, flow `[]`
//! and `{}` for empty collections only, plain / single-quoted /
//! double-quoted / literal (`|`) scalars. No document markers, anchors,
//! tags, comments or flow collections with content.
//!
//! Invariants:
//! - Output is one YAML document ending in exactly one `\n`.
//! - Every string reads back as the identical string, never as null, bool,
//!   int, float or timestamp, under the YAML 1.2 core schema and under
//!   YAML 1.1 (PyYAML): `yes`, `off`, `0x1F`, `1_000`, `12:30`, `.Inf`,
//!   `2026-01-02T03:04:05Z`, `<<`... are quoted. The rule ([`looks_typed`])
//!   is a simple superset of the readers' resolvers, not a mirror of them,
//!   so it errs on quoting (`1.2.3`); the tests hold it against a mirror.
//! - Map entries come out in the order they appeared in the JSON text,
//!   which for our responses is struct declaration order.
//! - [`Node::Number`] holds JSON number text and is written verbatim, so
//!   only the `Deserialize` impl (or code that upholds the same promise)
//!   should build it.
//! - No input makes the emitter panic. Recursion depth equals nesting
//!   depth; `serde_json` itself refuses JSON nested deeper than 128 levels,
//!   so [`json_to_yaml`] returns an error there rather than overflowing.
//!
//! Alternatives rejected:
//! - `serde_yaml` / other YAML crates: not in the allowed dependency set
//!   (libc, serde, serde_json, lexopt, ulid, regex-lite).
//! - `serde_json::Value`: without the `preserve_order` feature (which we
//!   may not enable) its map is a `BTreeMap`, so keys would come out
//!   sorted instead of in declaration order.
//! - Serializing responses straight to YAML with a custom `Serializer`:
//!   much more code than a tree walk, and JSON is already the canonical
//!   form, so going through it guarantees both outputs carry one value.
//! - Mirroring each reader's resolver regexes exactly to quote as little
//!   as possible: PyYAML, the 1.1 type repository and the 1.2 core schema
//!   all differ (e.g. `y`, `0o17`, `1.2.3`), a mirror has to track them,
//!   and a miss silently changes a value's type. A superset cannot miss;
//!   the cost is a few needless quotes.
//! - Quoting every string (or everything starting with a digit): simplest,
//!   but job ids, paths and words would all be quoted in every answer.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::fmt::Write as _;

/// A JSON value that keeps map entries in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    /// The number as JSON text (as serde_json prints it), e.g. `12`, `-3`, `0.5`.
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicates are kept as they came.
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
        Ok(Node::Number(n.to_string()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Number(n.to_string()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Node, E> {
        // serde_json::Number formats floats exactly as serde_json's
        // serializer does (`1.0`, `1e20`), so YAML shows the JSON text.
        // JSON has no non-finite numbers; other deserializers might, and
        // YAML has spellings for them.
        let text = match serde_json::Number::from_f64(n) {
            Some(num) => num.to_string(),
            None if n.is_nan() => ".nan".to_owned(),
            None if n > 0.0 => ".inf".to_owned(),
            None => "-.inf".to_owned(),
        };
        Ok(Node::Number(text))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        // A Vec, not a map type: the whole point is to keep entry order.
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Node>()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

/// Parses one JSON document (keeping key order) and renders it as YAML.
pub fn json_to_yaml(json: &str) -> Result<String, serde_json::Error> {
    let node: Node = serde_json::from_str(json)?;
    Ok(emit(&node))
}

/// Renders `node` as a YAML document ending in exactly one newline.
pub fn emit(node: &Node) -> String {
    let mut e = Emitter {
        out: String::new(),
        last_keep: None,
    };
    match node {
        Node::Seq(items) if !items.is_empty() => e.seq(items, 0, false),
        Node::Map(entries) if !entries.is_empty() => e.map(entries, 0, false),
        _ => e.scalar(node, 0),
    }
    // A `|+` scalar keeps its trailing blank lines, so when one is the very
    // last thing written the document would end in `\n\n`. Re-render just
    // that scalar double-quoted to keep the one-newline invariant.
    if e.out.ends_with("\n\n") {
        if let Some((start, s)) = e.last_keep {
            // `start` was `out.len()` when the header was written, so it is
            // a char boundary and everything after it is that scalar.
            e.out.truncate(start);
            push_double(&mut e.out, s);
            e.out.push('\n');
        }
    }
    e.out
}

/// How a string scalar is written.
#[derive(Debug, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Emitter<'a> {
    out: String,
    /// Output offset and text of the most recent `|+` scalar; see [`emit`].
    last_keep: Option<(usize, &'a str)>,
}

impl<'a> Emitter<'a> {
    fn indent(&mut self, col: usize) {
        self.out.extend(std::iter::repeat(' ').take(col));
    }

    /// Block sequence whose dashes sit at `col`. With `inline`, the cursor
    /// is already at `col` (after a parent `- `), so the first dash goes
    /// on the current line: this gives `- - a`.
    fn seq(&mut self, items: &'a [Node], col: usize, inline: bool) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 || !inline {
                self.indent(col);
            }
            self.out.push_str("- ");
            match item {
                Node::Seq(inner) if !inner.is_empty() => self.seq(inner, col + 2, true),
                Node::Map(inner) if !inner.is_empty() => self.map(inner, col + 2, true),
                _ => self.scalar(item, col),
            }
        }
    }

    /// Block mapping whose keys sit at `col`; `inline` as for [`Self::seq`],
    /// giving `- first: v` with later keys aligned under `first`.
    fn map(&mut self, entries: &'a [(String, Node)], col: usize, inline: bool) {
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 || !inline {
                self.indent(col);
            }
            self.key(key, col);
            match value {
                // Sequences stay at the key's column (the common style, and
                // what the original tool printed).
                Node::Seq(items) if !items.is_empty() => {
                    self.out.push('\n');
                    self.seq(items, col, false);
                }
                Node::Map(inner) if !inner.is_empty() => {
                    self.out.push('\n');
                    self.map(inner, col + 2, false);
                }
                _ => {
                    self.out.push(' ');
                    self.scalar(value, col);
                }
            }
        }
    }

    /// Writes a key and its `:`. Keys are never block scalars (a multi-line
    /// key is double-quoted). YAML caps implicit keys at 1024 characters
    /// (yaml-rust2 enforces it), so a longer one becomes an explicit
    /// `? key` / `:` pair.
    fn key(&mut self, key: &str, col: usize) {
        let start = self.out.len();
        match style(key, false) {
            Style::Plain => self.out.push_str(key),
            Style::Single => push_single(&mut self.out, key),
            Style::Double | Style::Literal => push_double(&mut self.out, key),
        }
        // Bytes >= chars, so staying under 1000 bytes is always safe.
        if self.out.len() - start > 1000 {
            let rendered = self.out.split_off(start);
            self.out.push_str("? ");
            self.out.push_str(&rendered);
            self.out.push('\n');
            self.indent(col);
        }
        self.out.push(':');
    }

    /// Writes a scalar (or an empty collection) at the cursor, then the
    /// newline. `parent` is the column of the owning key or dash; literal
    /// block content goes two columns deeper.
    fn scalar(&mut self, node: &'a Node, parent: usize) {
        match node {
            Node::Null => self.out.push_str("null"),
            Node::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Node::Number(text) => self.out.push_str(text),
            // Callers route non-empty collections elsewhere.
            Node::Seq(_) => self.out.push_str("[]"),
            Node::Map(_) => self.out.push_str("{}"),
            Node::Str(s) => match style(s, true) {
                Style::Plain => self.out.push_str(s),
                Style::Single => push_single(&mut self.out, s),
                Style::Double => push_double(&mut self.out, s),
                Style::Literal => return self.literal(s, parent),
            },
        }
        self.out.push('\n');
    }

    /// Literal block scalar; `style` has checked that `s` has a newline,
    /// some non-newline text and no whitespace the format cannot keep.
    fn literal(&mut self, s: &'a str, parent: usize) {
        let start = self.out.len();
        self.out.push('|');
        // Indentation is auto-detected from the first non-empty line; if
        // that line itself starts with a space, say the indent explicitly.
        // The digit is relative to the parent node's column, which is
        // always `parent` here (yaml-rust2 and libyaml agree).
        if s.trim_start_matches('\n').starts_with(' ') {
            self.out.push('2');
        }
        let body = match s.strip_suffix('\n') {
            Some(rest) if rest.ends_with('\n') => {
                self.out.push('+');
                self.last_keep = Some((start, s));
                rest
            }
            Some(rest) => rest,
            None => {
                self.out.push('-');
                s
            }
        };
        self.out.push('\n');
        for line in body.split('\n') {
            if !line.is_empty() {
                self.indent(parent + 2);
                self.out.push_str(line);
            }
            self.out.push('\n');
        }
    }
}

/// Picks the scalar style for `s`; `allow_literal` is false for keys.
fn style(s: &str, allow_literal: bool) -> Style {
    if s.chars().any(needs_escape) {
        return Style::Double;
    }
    if s.contains('\n') {
        // yaml-rust2 reads a literal with only empty lines as "\n" where
        // the spec says "", so all-newline strings go double-quoted too.
        // Space before a newline or at the end would be invisible (and
        // often stripped by editors), so those are escaped instead.
        let literal_ok = allow_literal
            && !s.trim_matches('\n').is_empty()
            && !s.contains(" \n")
            && !s.ends_with(' ');
        return if literal_ok {
            Style::Literal
        } else {
            Style::Double
        };
    }
    if plain_ok(s) {
        Style::Plain
    } else {
        Style::Single
    }
}

/// Characters that only a double-quoted scalar can carry: tab, CR and all
/// other controls (C0, DEL, C1 including NEL, which YAML 1.1 treats as a
/// line break), the Unicode line/paragraph separators (same reason), the
/// BOM, and the non-characters U+FFFE/U+FFFF.
fn needs_escape(c: char) -> bool {
    c != '\n'
        && (c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            ))
}

/// Whether a single-line, escape-free string can be written unquoted.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // Indicators may not start a plain scalar; `-`, `?`, `:` sometimes
    // could, but quoting them always is simpler and reads the same.
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    let ambiguous = s.starts_with(' ')
        || s.ends_with(' ')
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.starts_with("...");
    !ambiguous && !looks_typed(s)
}

/// Whether a plain `s` could be read as something other than a string by
/// a YAML 1.2 core-schema reader, yaml-rust2, or a YAML 1.1 reader
/// (PyYAML's resolvers and the 1.1 type repository).
///
/// Deliberately not a mirror of those resolvers (their regexes differ
/// between readers and versions) but a superset of them, in three parts:
/// - a few reserved words, case-insensitively: nulls, the 1.1 booleans,
///   the 1.1 `<<` merge and `=` value keys, and the `.inf`/`.nan` floats;
/// - `0x`/`0o`/`0b` (after an optional sign) with an alphanumeric tail;
/// - everything that, after an optional sign, starts with a digit or `.`,
///   and uses only the characters of decimal numbers,
///   base-60 numbers and timestamps: digits, `_ . : + -`, `e E` (exponent),
///   `t T z Z` and space (`2001-12-14t21:59:43.10-05:00`, `2001-12-14
///   21:59:43.10 -5`; a tab is escaped anyway). No digit is required: the
///   1.1 spec's own float regex matches a lone `.` (PyYAML's does not).
///
/// So `1.2.3` or `12 34` are quoted too, harmlessly, while words, paths
/// and ULIDs (`01ARZ3NDEK...`: letters outside `eEtTzZ`) stay plain.
fn looks_typed(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "true", "false", "y", "n", "yes", "no", "on", "off", "<<", "=", ".inf",
        "+.inf", "-.inf", ".nan", "+.nan", "-.nan",
    ];
    if WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        return true;
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    // Hex/octal/binary. yaml-rust2 feeds the rest to from_str_radix, which
    // also takes a sign (`0x-1`), so accept any alphanumeric-ish tail.
    // Case-sensitive: YAML only knows lowercase prefixes, and uppercase
    // ULIDs such as `0XAB...` should stay plain.
    let radix_tail = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0o"))
        .or_else(|| unsigned.strip_prefix("0b"));
    if let Some(tail) = radix_tail {
        if !tail.is_empty()
            && tail
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        {
            return true;
        }
    }
    // Every decimal int/float form (yaml-rust2 tries Rust's i64 and f64
    // parsers, which this covers), YAML 1.1 ints/floats with `_`, base-60
    // (`12:30`, `190:20:30.15`), and 1.1 timestamps.
    unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || b"_.:eE+-tTzZ ".contains(&b))
}

fn push_single(out: &mut String, s: &str) {
    out.push('\'');
    out.push_str(&s.replace('\'', "''"));
    out.push('\'');
}

/// Double-quoted, always on one line: every newline is `\n`, so no line
/// folding applies and leading/trailing spaces survive.
fn push_double(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if needs_escape(c) => {
                // Writing to a String cannot fail.
                let _ = match u32::from(c) {
                    n @ 0..=0xff => write!(out, "\\x{n:02X}"),
                    n @ 0..=0xffff => write!(out, "\\u{n:04X}"),
                    n => write!(out, "\\U{n:08X}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_rust2::{Yaml, YamlLoader};

    fn s(text: &str) -> Node {
        Node::Str(text.to_owned())
    }

    fn map(entries: &[(&str, Node)]) -> Node {
        Node::Map(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    /// yaml-rust2's tree in our terms; keys must read back as strings.
    fn from_yaml(y: &Yaml) -> Node {
        match y {
            Yaml::Null => Node::Null,
            Yaml::Boolean(b) => Node::Bool(*b),
            Yaml::Integer(i) => Node::Number(i.to_string()),
            Yaml::Real(text) => Node::Number(text.clone()),
            Yaml::String(text) => Node::Str(text.clone()),
            Yaml::Array(items) => Node::Seq(items.iter().map(from_yaml).collect()),
            Yaml::Hash(h) => Node::Map(
                h.iter()
                    .map(|(k, v)| match k {
                        Yaml::String(k) => (k.clone(), from_yaml(v)),
                        other => panic!("key did not read back as a string: {other:?}"),
                    })
                    .collect(),
            ),
            other => panic!("unexpected YAML node {other:?}"),
        }
    }

    /// Emits `node`, parses it back and demands the identical tree.
    fn round_trip(node: &Node) {
        let text = emit(node);
        assert!(
            text.ends_with('\n') && !text.ends_with("\n\n"),
            "newline invariant: {text:?}"
        );
        let docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("unparsable YAML {text:?} for {node:?}: {e}"));
        assert_eq!(docs.len(), 1, "one document expected in {text:?}");
        assert_eq!(&from_yaml(&docs[0]), node, "YAML was:\n{text}");
    }

    /// Tries `value` in every position a scalar can take.
    fn round_trip_everywhere(value: &str) {
        let v = s(value);
        round_trip(&v);
        round_trip(&map(&[("k", v.clone()), ("after", s("x"))]));
        round_trip(&map(&[(value, s("v")), ("after", v.clone())]));
        round_trip(&Node::Seq(vec![
            v.clone(),
            Node::Seq(vec![v.clone()]),
            s("x"),
        ]));
        round_trip(&Node::Seq(vec![map(&[
            ("a", v.clone()),
            (value, v.clone()),
        ])]));
        round_trip(&map(&[("n", map(&[("m", Node::Seq(vec![v.clone()]))]))]));
    }

    // One entry per line would make this list ten times longer.
    #[rustfmt::skip]
    const HOSTILE: &[&str] = &[
        "", " ", "  ", "'", "''", "\"", "it's", "say \"hi\"", "a: b", "a:", ":", "a:b", "a #b",
        "a#b", "#x", "-", "- x", "-x", "--", "---", "--- x", "...", "... x", "?", "? x", "?x",
        "*a", "&a", "!a", "!!str", "%YAML", "@x", "`x", "|", "|x", ">", ">x", "[a]", "{a}", "a,b",
        "a]", "a}", "a[", ",", "\n", "\n\n", "\n\n\n", "a\n", "a\nb", "a\nb\n", "a\n\n",
        "a\n\n\n", "\na", "\n\na\n", "\n a", "a\n\nb", " a", "a ", " a\nb", "a \nb", "a\nb ",
        "a\n \nb", "  x\n y\n", "\t", "a\tb", "a\rb", "\r\n", "\0", "a\u{1b}b", "\u{7f}",
        "\u{85}", "a\u{85}b", "\u{2028}", "\u{2029}", "\u{feff}x", "\u{fffe}", "\u{ffff}",
        "\u{9f}", "\u{a0}", "\u{a0}x\u{a0}", "日本語", "é", "😀 emoji", "a\n日本\n", "~", "null",
        "Null", "NULL", "nULL", "true", "True", "TRUE", "false", "False", "FALSE", "y", "Y", "n",
        "N", "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "<<",
        "=", "0", "1", "-1", "+1", "-0", "0123", "00", "0x1F", "0x-1", "0x+1", "0o17", "0b101",
        "0XABCDEF", "1e5", "1E5", "1e+5", "1.", ".5", "0.1", "1.5e-3", "1_000", "12:30", "1:2:3",
        "+12:30", ".inf", "-.inf", "+.inf", ".Inf", "-.Inf", ".INF", ".nan", ".NaN", ".NAN",
        "inf", "nan", "NaN", "infinity", "-Infinity", "1.2.3", "2026-05-02",
        "2026-05-02T12:00:00Z", "2026-05-02 12:00:00", "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "/tmp/a b/c", "https://x.y/z?a=b#frag", "C:\\path", "hello world", "a  b", "\\", "\\n",
        "a'b'c", "x: 'y'", "k: v # c",
    ];

    #[test]
    fn hostile_strings_round_trip_everywhere() {
        for value in HOSTILE {
            round_trip_everywhere(value);
        }
    }

    #[test]
    fn long_strings_and_keys_round_trip() {
        let long = "word ".repeat(3000) + "end";
        round_trip_everywhere(&long);
        round_trip_everywhere(&"é".repeat(1500));
        round_trip_everywhere(&"line\n".repeat(500));
        round_trip_everywhere(&"x'\"\t".repeat(400));
    }

    #[test]
    fn scalars_and_empty_collections_everywhere() {
        let scalars = [
            Node::Null,
            Node::Bool(true),
            Node::Bool(false),
            Node::Number("0".into()),
            Node::Number("-12".into()),
            Node::Number("0.5".into()),
            Node::Number("1e20".into()),
            Node::Number("18446744073709551615".into()),
            Node::Seq(vec![]),
            Node::Map(vec![]),
        ];
        for v in &scalars {
            round_trip(v);
            round_trip(&Node::Seq(vec![v.clone(), v.clone()]));
            round_trip(&Node::Seq(vec![Node::Seq(vec![v.clone()])]));
            round_trip(&map(&[("a", v.clone()), ("b", map(&[("c", v.clone())]))]));
            round_trip(&Node::Seq(vec![map(&[("a", v.clone()), ("b", v.clone())])]));
        }
    }

    #[test]
    fn nested_collections_round_trip() {
        let multi = s("line one\n  indented\n\nlast\n");
        let tree = map(&[
            (
                "seqs",
                Node::Seq(vec![
                    Node::Seq(vec![s("a"), Node::Seq(vec![s("b"), s("c")])]),
                    Node::Seq(vec![]),
                    Node::Seq(vec![Node::Seq(vec![Node::Seq(vec![s("deep")])])]),
                ]),
            ),
            (
                "maps",
                Node::Seq(vec![
                    map(&[
                        ("out", multi.clone()),
                        ("err", s(" x\ny")),
                        ("tags", Node::Seq(vec![])),
                    ]),
                    map(&[("only", s("a\n\n"))]),
                    map(&[(
                        "nested",
                        map(&[("x", multi.clone()), ("y", Node::Map(vec![]))]),
                    )]),
                ]),
            ),
            ("keep", s("end\n\n\n")),
        ]);
        round_trip(&tree);
        round_trip(&Node::Seq(vec![tree.clone(), tree]));
    }

    #[test]
    fn keep_chomped_scalar_at_document_end() {
        for v in ["a\n\n", " a\n\n\n"] {
            round_trip(&s(v));
            round_trip(&map(&[("k", s(v))]));
            round_trip(&Node::Seq(vec![s("x"), s(v)]));
        }
        assert_eq!(
            emit(&map(&[("k", s("a\n\n")), ("z", s("b"))])),
            "k: |+\n  a\n\nz: b\n"
        );
        assert_eq!(emit(&map(&[("k", s("a\n\n"))])), "k: \"a\\n\\n\"\n");
    }

    #[test]
    fn deep_nesting_round_trips() {
        let mut node = s("leaf\nline");
        for i in 0..100 {
            node = if i % 2 == 0 {
                Node::Seq(vec![node, s("x")])
            } else {
                map(&[("k", node), ("other", Node::Null)])
            };
        }
        round_trip(&node);
        // Emitting stays fine well past anything serde_json would parse.
        let mut node = Node::Null;
        for _ in 0..500 {
            node = map(&[("k", Node::Seq(vec![node]))]);
        }
        assert!(emit(&node).ends_with("- null\n"));
    }

    #[test]
    fn json_keeps_key_order_and_number_text() {
        let json = r#"{"z":1,"a":[1.0,-2,1e20,18446744073709551615,0.1],"m":{"b":null,"a":true}}"#;
        let node: Node = serde_json::from_str(json).unwrap();
        let keys: Vec<&str> = match &node {
            Node::Map(e) => e.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not a map"),
        };
        assert_eq!(keys, ["z", "a", "m"]);
        assert_eq!(
            json_to_yaml(json).unwrap(),
            "z: 1\na:\n- 1.0\n- -2\n- 1e+20\n- 18446744073709551615\n- 0.1\nm:\n  b: null\n  a: true\n"
        );
        round_trip(&node);
        assert!(json_to_yaml("{").is_err());
        assert_eq!(json_to_yaml("{}").unwrap(), "{}\n");
        assert_eq!(json_to_yaml("[]").unwrap(), "[]\n");
        assert_eq!(json_to_yaml("\"0.1\"").unwrap(), "'0.1'\n");
    }

    #[test]
    fn serde_json_depth_limit_is_an_error_not_a_crash() {
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(json_to_yaml(&ok).is_ok());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(json_to_yaml(&deep).is_err());
    }

    #[test]
    fn error_example_exact_text() {
        let json = r#"{"schema_version":"0.1","ok":false,"type":"error","error":{"code":"ambiguous_job_id","message":"ambiguous job ID prefix '01ab': matches 01AB, 01AC","retryable":false,"details":{"candidates":["01AB","01AC"],"truncated":false}}}"#;
        let expected = "\
schema_version: '0.1'
ok: false
type: error
error:
  code: ambiguous_job_id
  message: 'ambiguous job ID prefix ''01ab'': matches 01AB, 01AC'
  retryable: false
  details:
    candidates:
    - 01AB
    - 01AC
    truncated: false
";
        assert_eq!(json_to_yaml(json).unwrap(), expected);
    }

    #[test]
    fn output_example_exact_text() {
        let json = r#"{"stdout":"hello world\n","stderr":"","stdout_range":[0,12],"jobs":[{"job_id":"x","tags":[]}]}"#;
        let expected = "\
stdout: |
  hello world
stderr: ''
stdout_range:
- 0
- 12
jobs:
- job_id: x
  tags: []
";
        assert_eq!(json_to_yaml(json).unwrap(), expected);
    }

    #[test]
    fn chosen_styles() {
        let cases = [
            ("plain text", "k: plain text\n"),
            ("/tmp/x", "k: /tmp/x\n"),
            ("2026-05-02T12:00:00Z", "k: '2026-05-02T12:00:00Z'\n"),
            (
                "01ARZ3NDEKTSV4RRFFQ69G5FAV",
                "k: 01ARZ3NDEKTSV4RRFFQ69G5FAV\n",
            ),
            (".gitignore", "k: .gitignore\n"),
            ("+x", "k: +x\n"),
            ("日本語", "k: 日本語\n"),
            ("", "k: ''\n"),
            ("it's: x", "k: 'it''s: x'\n"),
            ("yes", "k: 'yes'\n"),
            ("0x1F", "k: '0x1F'\n"),
            ("a\tb", "k: \"a\\tb\"\n"),
            (
                "\u{85}\u{2028}\u{feff}\u{7f}😀",
                "k: \"\\N\\L\\uFEFF\\x7F😀\"\n",
            ),
            ("a\nb", "k: |-\n  a\n  b\n"),
            (" a\n\nb\n", "k: |2\n   a\n\n  b\n"),
            ("a \nb", "k: \"a \\nb\"\n"),
            ("\n", "k: \"\\n\"\n"),
        ];
        for (input, want) in cases {
            assert_eq!(emit(&map(&[("k", s(input))])), want, "for {input:?}");
        }
        let in_seq = Node::Seq(vec![Node::Seq(vec![s("a\nb\n")]), map(&[("k", s("c\nd"))])]);
        assert_eq!(
            emit(&in_seq),
            "- - |\n    a\n    b\n- k: |-\n    c\n    d\n"
        );
        assert_eq!(emit(&map(&[("\n", s("v"))])), "\"\\n\": v\n");
    }

    /// yaml-rust2 is a YAML 1.2 reader, so round trips cannot show that
    /// YAML 1.1 readers would mistype these; check the quoting directly.
    #[test]
    fn yaml_1_1_lookalikes_are_quoted() {
        let typed = [
            "y",
            "N",
            "yes",
            "Yes",
            "YES",
            "no",
            "on",
            "On",
            "OFF",
            "<<",
            "=",
            "1_000",
            "12:30",
            "+1:30:00",
            "2026-05-02",
            "0b101",
            "0x_1F",
            "1.5E3",
            ".5",
            "-.5",
            "+.inf",
            ".NaN",
        ];
        for t in typed {
            assert_eq!(style(t, true), Style::Single, "{t:?}");
        }
        let plain = [
            "yesterday",
            "online",
            "0XAB",
            "01AB",
            "1.2.3a",
            "v1.2",
            "a12:30",
            "inf?",
        ];
        for t in plain {
            assert_eq!(style(t, true), Style::Plain, "{t:?}");
        }
    }

    /// The implicit resolvers of the readers we promise to (PyYAML's YAML
    /// 1.1 set, the extra forms of the 1.1 type repository, the 1.2 core
    /// schema), as regexes: an independent check of [`looks_typed`], so the
    /// rule is proven without PyYAML installed. yaml-rust2's own resolver
    /// is checked by the round trips.
    fn resolvers() -> Vec<regex_lite::Regex> {
        const PATTERNS: &[&str] = &[
            // PyYAML bool, null, merge, value.
            r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            r"~|null|Null|NULL|",
            r"<<",
            r"=",
            // PyYAML float.
            r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
            r"\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
            r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
            r"[-+]?\.(?:inf|Inf|INF)",
            r"\.(?:nan|NaN|NAN)",
            // PyYAML int.
            r"[-+]?0b[0-1_]+",
            r"[-+]?0[0-7_]+",
            r"[-+]?(?:0|[1-9][0-9_]*)",
            r"[-+]?0x[0-9a-fA-F_]+",
            r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            // PyYAML timestamp.
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
            concat!(
                r"[0-9]{4}-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?",
                r":[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?",
                r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9]{2})?))?"
            ),
            // YAML 1.1 type repository, beyond PyYAML.
            r"y|Y|n|N",
            r"[-+]?(?:[0-9][0-9_]*)?\.[0-9.]*(?:[eE][-+][0-9]+)?",
            // YAML 1.2 core schema.
            r"[-+]?[0-9]+",
            r"0o[0-7]+",
            r"0x[0-9a-fA-F]+",
            r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?",
        ];
        PATTERNS
            .iter()
            .map(|p| regex_lite::Regex::new(&format!("^(?:{p})$")).unwrap())
            .collect()
    }

    fn typed_by_some_reader(res: &[regex_lite::Regex], text: &str) -> bool {
        res.iter().any(|r| r.is_match(text))
    }

    /// Every non-string form the 1.1 and 1.2 readers know, by family.
    #[rustfmt::skip]
    const TYPED: &[&str] = &[
        // timestamps and dates
        "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14T21:59:43.10-05:00",
        "2001-12-14 21:59:43.10 -5", "2001-12-15 2:59:43.10", "2001-12-15T02:59:43.1Z",
        "2026-01-02T03:04:05Z", "2002-12-14", "2001-1-2 3:04:05", "2001-12-14\t21:59:43 Z",
        // booleans
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
        "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        // nulls
        "~", "null", "Null", "NULL", "",
        // ints
        "0b1010_0111", "-0b1", "+0b1", "0x_0A_74_AE", "-0x1F", "0x1F", "014", "0_17", "-014",
        "190:20:30", "-190:20:30", "1_000", "+685_230", "0", "-0", "+0", "12", "0o17",
        // floats
        "1.5e3", "1.5e+3", "1.5E-3", "6.8523015e+5", "685.230_15e+03", "685_230.15",
        "190:20:30.15", "1_000.5", ".5", "-.5", "+1.", "1.2.3", ".inf", "-.Inf", "+.INF",
        ".NaN", ".nan", ".NAN", "1e5", "-1E5", "0.",
        // merge and value keys
        "<<", "=",
    ];

    #[test]
    fn the_resolver_mirror_types_every_listed_form() {
        let res = resolvers();
        for t in TYPED {
            assert!(typed_by_some_reader(&res, t), "mirror misses {t:?}");
        }
        for t in [
            "yesterday",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "/tmp/x",
            "1.2.3a",
            "0XAB",
            "x",
        ] {
            assert!(!typed_by_some_reader(&res, t), "mirror types {t:?}");
        }
    }

    /// Quoted in values and in keys, and read back intact by yaml-rust2.
    #[test]
    fn every_typed_form_is_quoted() {
        for t in TYPED {
            assert_ne!(style(t, true), Style::Plain, "{t:?}");
            assert_ne!(style(t, false), Style::Plain, "{t:?}");
            round_trip_everywhere(t);
        }
    }

    /// Whether `text` came out unquoted, as a value and as a key.
    fn emitted_plain(text: &str) -> [bool; 2] {
        let value = emit(&map(&[("k", s(text))])) == format!("k: {text}\n");
        let key = emit(&map(&[(text, s("v"))])) == format!("{text}: v\n");
        [value, key]
    }

    fn assert_string_to_every_reader(res: &[regex_lite::Regex], text: &str) {
        for (plain, place) in emitted_plain(text).into_iter().zip(["value", "key"]) {
            assert!(
                !(plain && typed_by_some_reader(res, text)),
                "{text:?} written plain as a {place} but a reader types it"
            );
        }
    }

    #[test]
    fn plain_scalars_are_strings_to_every_reader() {
        let res = resolvers();
        for text in HOSTILE.iter().chain(TYPED) {
            assert_string_to_every_reader(&res, text);
        }
        // Ordinary words, paths and ids really are left plain.
        for text in [
            "exited",
            "/tmp/a/b.log",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "utf-8-lossy",
        ] {
            assert_eq!(emitted_plain(text), [true, true], "{text:?}");
        }
        // Random strings built from the pieces numbers, dates and the
        // reserved words are made of.
        const PIECES: &[&str] = &[
            "0",
            "1",
            "5",
            "7",
            "9",
            "12",
            "2001",
            "-",
            "+",
            ".",
            "_",
            ":",
            " ",
            "e",
            "E",
            "x",
            "o",
            "b",
            "a",
            "F",
            "t",
            "T",
            "Z",
            "z",
            "inf",
            "Inf",
            "nan",
            "NaN",
            "y",
            "n",
            "yes",
            "no",
            "on",
            "off",
            "null",
            "~",
            "<<",
            "=",
            "2001-12-14",
            "t21:59:43.10",
            "-05:00",
            " 21:59:43",
            "0x",
            "0b",
            "0o",
            "e+3",
            ":30",
        ];
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for _ in 0..20_000 {
            let len = 1 + rng.below(6);
            let text: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            assert_string_to_every_reader(&res, &text);
        }
        for _ in 0..300 {
            let len = 1 + rng.below(6);
            let text: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            // round_trip_everywhere uses these as its own keys.
            if !["a", "k", "n", "m", "after"].contains(&text.as_str()) {
                round_trip_everywhere(&text);
            }
        }
    }

    /// xorshift64: deterministic, dependency-free randomness for fuzzing.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn string(&mut self) -> String {
            const ALPHABET: &[&str] = &[
                "\n", "\n", " ", " ", "'", "\"", "#", ":", "-", "\t", "\u{85}", "0", "1", "9", "a",
                "b", "é", "?", ".", "e", "x", "_", "+", "\r", "\u{a0}", "|", ">", "[", "{", ",",
                "~", "!", "&", "*", "%", "@", "\\", "日", "true", "null", "0x", ".inf", "yes",
                "---", "...", "\u{2028}", "\u{feff}", "\0",
            ];
            let len = self.below(10);
            (0..len)
                .map(|_| ALPHABET[self.below(ALPHABET.len())])
                .collect()
        }

        fn tree(&mut self, depth: usize) -> Node {
            let kind = if depth == 0 {
                self.below(5)
            } else {
                self.below(8)
            };
            match kind {
                0 => Node::Null,
                1 => Node::Bool(self.below(2) == 0),
                2 => Node::Number(format!("{}", self.next() as i64 % 1000)),
                3 | 4 => Node::Str(self.string()),
                5 | 6 => {
                    let mut entries: Vec<(String, Node)> = Vec::new();
                    for _ in 0..self.below(4) {
                        let key = self.string();
                        let value = self.tree(depth - 1);
                        if !entries.iter().any(|(k, _)| *k == key) {
                            entries.push((key, value));
                        }
                    }
                    Node::Map(entries)
                }
                _ => Node::Seq((0..self.below(4)).map(|_| self.tree(depth - 1)).collect()),
            }
        }
    }

    #[test]
    fn fuzz_strings_round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let text = rng.string();
            round_trip(&s(&text));
            round_trip(&map(&[(&text, s(&text)), ("z", s("end"))]));
            round_trip(&Node::Seq(vec![s(&text), Node::Seq(vec![s(&text)])]));
        }
    }

    #[test]
    fn fuzz_trees_round_trip() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        for _ in 0..2000 {
            let tree = rng.tree(5);
            round_trip(&tree);
        }
    }
}
