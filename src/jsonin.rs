//! JSON that callers send (HTTP bodies, MCP messages) and serde_json
//! cannot hold: a number past a double's range (`1e309`) is valid JSON,
//! but the parse of the whole text fails on it ("number out of range"),
//! so the request lost its id (MCP answered `id: null`, the client waited
//! for ever) and its field's name (HTTP said `invalid_request` at a
//! column, not `invalid_duration` naming `timeout`).
//!
//! `quote_huge_numbers` writes each such number as a one-member object,
//! `{"$huge_number": "1e309"}`, and the caller parses again: the member
//! then fails the check of its field as a value of the wrong type (a
//! duration field is `invalid_duration` naming it). Not as a string: a
//! string field took it for text (`"data": 1e309` sent "1e309"). An MCP
//! id that is such a number is answered as written (`huge_text`). Only a
//! text that failed that way is rewritten: every other request is parsed
//! as sent.
//!
//! Rejected: serde_json's `arbitrary_precision` (every number of every
//! document we read and write would change representation).

/// The member name of the object a huge number becomes.
const MARK: &str = "$huge_number";

/// `text` with every number outside a double's range turned into the
/// object `{"$huge_number": "<its characters>"}`; None when there is
/// none (or the text is not JSON enough to find its numbers, which the
/// parse then says).
pub fn quote_huge_numbers(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut changed = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c == b'"' {
            let end = string_end(text, i)?;
            out.extend_from_slice(&text[i..end]);
            i = end;
        } else if c == b'-' || c.is_ascii_digit() {
            let end = number_end(text, i);
            let token = &text[i..end];
            let huge = std::str::from_utf8(token)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            if huge {
                out.extend_from_slice(b"{\"");
                out.extend_from_slice(MARK.as_bytes());
                out.extend_from_slice(b"\":\"");
                out.extend_from_slice(token);
                out.extend_from_slice(b"\"}");
                changed = true;
            } else {
                out.extend_from_slice(token);
            }
            i = end.max(i + 1);
        } else {
            out.push(c);
            i += 1;
        }
    }
    changed.then_some(out)
}

/// `text` with each `\u` escape of a lone surrogate (one of a pair's
/// halves alone: valid JSON syntax, RFC 8259 8.2, but no character, so
/// serde_json refuses the whole text) written as `\ufffd`; None when
/// there is none. For an MCP request that holds one: read so, it keeps
/// its id, and is refused as the request it is, not as unparsable.
pub fn replace_lone_surrogates(text: &[u8]) -> Option<Vec<u8>> {
    let unit = |at: usize| -> Option<u16> {
        let hex = text.get(at..at + 6)?;
        if &hex[..2] != b"\\u" {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    };
    let mut out = Vec::with_capacity(text.len());
    let mut changed = false;
    let (mut i, mut in_string) = (0, false);
    while i < text.len() {
        let c = text[i];
        if !in_string {
            in_string = c == b'"';
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_string = false;
                out.push(c);
                i += 1;
            }
            b'\\' => match unit(i) {
                Some(0xd800..=0xdbff)
                    if unit(i + 6).is_some_and(|lo| (0xdc00..=0xdfff).contains(&lo)) =>
                {
                    out.extend_from_slice(&text[i..i + 12]);
                    i += 12;
                }
                Some(0xd800..=0xdfff) => {
                    out.extend_from_slice(b"\\ufffd");
                    changed = true;
                    i += 6;
                }
                _ => {
                    // Any other escape: its two bytes (a `\"` does not
                    // end the string).
                    out.extend_from_slice(text.get(i..i + 2).unwrap_or(&text[i..]));
                    i += 2;
                }
            },
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// `serde_json::from_slice`, and when the text failed on a number past
/// a double's range, the same parse of it with such numbers quoted.
pub fn from_slice<T: serde::de::DeserializeOwned>(text: &[u8]) -> serde_json::Result<T> {
    match serde_json::from_slice(text) {
        Err(e) if is_huge_number(&e) => match quote_huge_numbers(text) {
            Some(q) => serde_json::from_slice(&q),
            None => Err(e),
        },
        read => read,
    }
}

/// The text of a huge number `quote_huge_numbers` stood in for, if `v`
/// is one.
pub fn huge_text(v: &serde_json::Value) -> Option<&str> {
    let o = v.as_object().filter(|o| o.len() == 1)?;
    o.get(MARK)?.as_str()
}

/// A value as a message shows it: a huge number as it was written
/// (`1e309`), not the object that stands in for it; anything else as
/// JSON.
pub struct Shown<'a>(pub &'a serde_json::Value);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match huge_text(self.0) {
            Some(t) => f.write_str(t),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The first huge number's text in `v` (itself, or in its arrays and
/// objects, depth first).
pub fn first_huge(v: &serde_json::Value) -> Option<&str> {
    huge_text(v).or_else(|| match v {
        serde_json::Value::Array(a) => a.iter().find_map(first_huge),
        serde_json::Value::Object(o) => o.values().find_map(first_huge),
        _ => None,
    })
}

/// Does serde_json's error say a number was out of range?
pub fn is_huge_number(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

/// The index just past the string that starts at `at` (a `"`), escapes
/// skipped; None when it never ends.
fn string_end(text: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the number token that starts at `at`: a sign,
/// digits, a fraction and an exponent, as JSON writes them (anything
/// else stops it, and the parse judges what follows).
fn number_end(text: &[u8], at: usize) -> usize {
    let mut i = at;
    let digits = |mut i: usize| {
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    if text.get(i) == Some(&b'-') {
        i += 1;
    }
    i = digits(i);
    if text.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(i);
    }
    i
}

/// A JSON object's fields in order, each name once: a repeated one is
/// refused, as `/exec`'s are (`duplicate field`), never decided by the
/// last (which is what a `serde_json::Map` does). HTTP's `/send` body and
/// an MCP call's arguments are read so.
pub struct Fields(pub Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Fields, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<Fields, A::Error> {
                let mut v: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some(k) = a.next_key::<String>()? {
                    if v.iter().any(|(n, _)| *n == k) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate field `{k}`"
                        )));
                    }
                    v.push((k, a.next_value()?));
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lone_surrogates_become_replacement_escapes() {
        let f =
            |t: &str| replace_lone_surrogates(t.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(f(r#"{"a":"\ud800"}"#).as_deref(), Some(r#"{"a":"\ufffd"}"#));
        assert_eq!(
            f(r#"{"a":"x\udc00y","id":1}"#).as_deref(),
            Some(r#"{"a":"x\ufffdy","id":1}"#)
        );
        assert_eq!(
            f(r#"["\ud800\u0041"]"#).as_deref(),
            Some(r#"["\ufffd\u0041"]"#)
        );
        // A pair, other escapes, and the same bytes outside a string stay.
        assert_eq!(f(r#"{"a":"\ud83d\ude00 \\ud800 \" \n"}"#), None);
        assert_eq!(f(r#"{"a":1}"#), None);
        let v: serde_json::Value = serde_json::from_slice(
            &replace_lone_surrogates(br#"{"id":"s","x":"\ud800"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(v["id"], "s");
    }

    use super::*;

    fn quoted(s: &str) -> Option<String> {
        quote_huge_numbers(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn only_numbers_past_a_double_are_quoted() {
        assert_eq!(
            quoted(r#"{"id":2,"a":{"timeout":1e309,"b":[-1E+400,1.5e3]}}"#).as_deref(),
            Some(
                r#"{"id":2,"a":{"timeout":{"$huge_number":"1e309"},"b":[{"$huge_number":"-1E+400"},1.5e3]}}"#
            )
        );
        let v: serde_json::Value = from_slice(br#"{"id":1e999}"#).unwrap();
        assert_eq!(huge_text(&v["id"]), Some("1e999"));
        assert_eq!(huge_text(&serde_json::json!("1e999")), None);
        // Small, tiny (1e-400 is 0 to serde too) and long integers stay.
        assert_eq!(
            quoted(r#"{"a":1e-400,"b":18446744073709551616,"c":0.5}"#),
            None
        );
        // Inside strings, escaped quotes included, nothing is touched.
        assert_eq!(quoted(r#"{"a":"1e309 \" 1e309","b":"\\"}"#), None);
        assert_eq!(
            quoted(r#"{"a":"\"","b":1e999}"#).as_deref(),
            Some(r#"{"a":"\"","b":{"$huge_number":"1e999"}}"#)
        );
        // An unterminated string: nothing to say.
        assert_eq!(quoted(r#"{"a":"1e309"#), None);
        let e = serde_json::from_str::<serde_json::Value>("[1e309]").unwrap_err();
        assert!(is_huge_number(&e), "{e}");
        let e = serde_json::from_str::<serde_json::Value>("[1e3").unwrap_err();
        assert!(!is_huge_number(&e), "{e}");
    }
}
