//! Cursors: an opaque, short string naming a position in both of a job's
//! streams, so that a loop of `tail --since` reads every byte once.
//!
//! Format (version 1): base64url without padding of
//! `[1u8, job tag: u32 LE, stdout file tag: u32 LE, stderr file tag: u32 LE,
//!   stdout offset: LEB128, stderr offset: LEB128]`
//! — 15 to 33 bytes, 20 to 44 characters. The job tag is a hash of the
//! job id; a file tag is a hash of the log's (device, inode, birth time),
//! or 0 when the log did not exist when the cursor was made.
//!
//! Invariants
//! - A cursor is only ever accepted for the job, and the very log files,
//!   it was made for: another job's cursor, garbage, an offset past the
//!   end of the log, or a log deleted or replaced since (its identity
//!   changed) is `invalid_cursor` — never a silent restart from 0, which
//!   would make a reader see bytes twice.
//! - Offsets are byte offsets into the logs (append-only, byte-exact), so
//!   a cursor stays valid while the job writes on. In a capped log
//!   (`logcap`) they are offsets in everything the job wrote, not in the
//!   file: the gap record in the job directory tells a reader that an
//!   offset lies in the dropped middle (it then continues at the kept
//!   tail and reports what it skipped), so the format needs no new field
//!   and cursors made before a cut stay valid after it.
//!
//! Rejected: plain `"<out>:<err>"` offsets (readable, so callers would
//! build them, and a cursor of another job or a replaced log would be
//! accepted and silently re-read); the full inode and job id in clear
//! (longer, and the tags are enough to recognise them: a foreign value
//! matches by chance once in 2^32); inode alone as a file identity (ext4
//! reuses a freed inode at once, so a replaced log could look the same;
//! the birth time from statx tells them apart where the file system
//! keeps one).

use std::fs::File;
use std::hash::Hasher;

use crate::error::{Error, Result};

const VERSION: u8 = 1;

/// A position just after what a response returned, in both streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub out: u64,
    pub err: u64,
    /// `file_tag` of stdout.log / stderr.log; 0: the log did not exist.
    pub out_tag: u32,
    pub err_tag: u32,
}

/// 64-bit FNV-1a: a stable hash (std's SipHash keys may change between
/// releases, which would invalidate cursors across an upgrade).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn tag32(parts: &[&[u8]]) -> u32 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for p in parts {
        h.write(p);
        h.write(&[0xff]);
    }
    let v = h.finish();
    // Never 0: 0 means "no file".
    ((v >> 32) as u32 ^ v as u32).max(1)
}

fn job_tag(job_id: &str) -> u32 {
    tag32(&[job_id.to_ascii_uppercase().as_bytes()])
}

/// The identity of an open log: device, inode and (where the file system
/// records one) birth time. Appends change none of them; replacing the
/// file (delete + create, rename over it) changes at least one.
pub fn file_tag(f: &File) -> std::io::Result<u32> {
    let id = crate::sys::file_identity(f)?;
    Ok(tag32(&[
        &id.dev.to_le_bytes(),
        &id.ino.to_le_bytes(),
        &id.born_ns.to_le_bytes(),
    ]))
}

impl Cursor {
    pub fn encode(&self, job_id: &str) -> String {
        let mut b = Vec::with_capacity(33);
        b.push(VERSION);
        b.extend_from_slice(&job_tag(job_id).to_le_bytes());
        b.extend_from_slice(&self.out_tag.to_le_bytes());
        b.extend_from_slice(&self.err_tag.to_le_bytes());
        leb128(&mut b, self.out);
        leb128(&mut b, self.err);
        b64url(&b)
    }

    /// Decode a cursor for `job_id`. Checks only what the string itself
    /// says (format, version, job); the logs are checked by the reader
    /// (`observe::since`), which knows their current size and identity.
    pub fn decode(s: &str, job_id: &str) -> Result<Cursor> {
        let (tag, c) = Cursor::parse(s)?;
        if tag != job_tag(job_id) {
            return Err(bad(s, "it belongs to another job"));
        }
        Ok(c)
    }

    /// Check what can be checked without the job (format, version), so
    /// that a malformed cursor is refused with the other arguments,
    /// before the job is looked up.
    pub fn check_form(s: &str) -> Result<()> {
        Cursor::parse(s).map(|_| ())
    }

    /// The job tag and the position a cursor string holds.
    fn parse(s: &str) -> Result<(u32, Cursor)> {
        let bad = |why: &str| bad(s, why);
        let b = un_b64url(s).ok_or_else(|| bad("not a cursor"))?;
        if b.len() < 15 {
            return Err(bad("not a cursor"));
        }
        if b[0] != VERSION {
            return Err(bad("unknown cursor version"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut rest = &b[13..];
        let out = un_leb128(&mut rest).ok_or_else(|| bad("not a cursor"))?;
        let err = un_leb128(&mut rest).ok_or_else(|| bad("not a cursor"))?;
        if !rest.is_empty() {
            return Err(bad("not a cursor"));
        }
        let c = Cursor {
            out,
            err,
            out_tag: u32_at(5),
            err_tag: u32_at(9),
        };
        // We never make a cursor past the start of a log that did not exist.
        if (c.out_tag == 0 && c.out != 0) || (c.err_tag == 0 && c.err != 0) {
            return Err(bad("not a cursor"));
        }
        Ok((u32_at(1), c))
    }
}

fn bad(s: &str, why: &str) -> Error {
    Error::InvalidCursor(format!("invalid cursor '{}': {why}", short(s)))
}

/// The start of a (possibly hostile) cursor, for messages.
fn short(s: &str) -> String {
    let mut t: String = s.chars().take(48).collect();
    if t.len() < s.len() {
        t.push_str("...");
    }
    t
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A canonical LEB128 u64 (no overlong forms, so each position has one
/// spelling).
fn un_leb128(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        let part = u64::from(byte & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        v |= part << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return None;
            }
            return Some(v);
        }
    }
    None
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 4 / 3 + 2);
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=n {
            s.push(ALPHABET[(v >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    s
}

fn un_b64url(s: &str) -> Option<Vec<u8>> {
    if s.len() > 64 || s.len() % 4 == 1 {
        return None;
    }
    let val = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let mut v = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            v |= val(c)? << (18 - 6 * i);
        }
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        let n = chunk.len() - 1;
        // Bits below the last whole byte must be zero (one spelling).
        if n < 3 && v & ((1 << (8 * (3 - n))) - 1) != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[..n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let id = "01KAE9Z6Z3A3Q1Q4V3C5WJ8M2N";
        let c = Cursor {
            out: 123_456_789_012,
            err: 0,
            out_tag: 7,
            err_tag: 0,
        };
        let s = c.encode(id);
        assert!(s.len() <= 44, "{s}");
        assert_eq!(Cursor::decode(&s, id).unwrap(), c);
        assert_eq!(Cursor::decode(&s, &id.to_lowercase()).unwrap(), c);
        let other = "01KAE9Z6Z3A3Q1Q4V3C5WJ8M2P";
        assert_eq!(
            Cursor::decode(&s, other).unwrap_err().code(),
            "invalid_cursor"
        );
        for junk in [
            "",
            "x",
            "garbage!",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
            &"A".repeat(200),
        ] {
            let e = Cursor::decode(junk, id).unwrap_err();
            assert_eq!(e.code(), "invalid_cursor", "{junk}");
            assert_eq!(e.exit_code(), 2);
        }
        // Offset without a file.
        let bad = Cursor {
            out: 5,
            ..Cursor::default()
        };
        assert!(Cursor::decode(&bad.encode(id), id).is_err());
    }

    #[test]
    fn base64_and_leb128() {
        for n in 0..10 {
            let b: Vec<u8> = (0..n).map(|i| (i * 37 + 5) as u8).collect();
            assert_eq!(un_b64url(&b64url(&b)).unwrap(), b);
        }
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            leb128(&mut b, v);
            assert_eq!(un_leb128(&mut &b[..]), Some(v));
        }
        assert_eq!(un_leb128(&mut &[0x80, 0x00][..]), None);
    }
}
