//! Capped logs (`--max-log-bytes N`, `[log] max_bytes`): each log keeps
//! its first part and a rolling last part, at most N bytes together, with
//! one marker line between them that counts what was dropped.
//!
//! Layout of a capped log once something was dropped:
//! `[head: H bytes][marker: M bytes][tail: the last bytes written]`,
//! H = N/2, the tail at most N - H once the job has ended; either is up
//! to 3 bytes shorter when its cut falls inside a UTF-8 character, which
//! is dropped whole (readers would show U+FFFD for both of its pieces). The marker is
//! `[agent-exec: D bytes dropped]`, its count padded with spaces to a
//! fixed width (preceded by a newline when the head does not end in one),
//! so it is rewritten in place, same length, each time more is dropped.
//!
//! Positions are *logical*: byte offsets in what the job wrote, whatever
//! was dropped. Totals, ranges, cursors and grep offsets are logical;
//! a reader maps them to file offsets through the log's gap record
//! (`Gap`: head length, marker length, bytes dropped). A cursor therefore
//! needs no new field to "recognise a gap": a position between the head
//! and the kept tail lies in the dropped bytes, and the reader continues
//! at the start of the tail and says how many it skipped.
//!
//! A line the gap cuts is not a line: its piece at the end of the head
//! (`head_mid_line`: neither the head's last byte nor the first one
//! dropped is a newline) and its piece at the start of the kept tail
//! (`tail_mid_line`: the last byte dropped is not a newline) are never
//! matched as lines by grep or readiness, which would otherwise find
//! lines the job never printed (`^93$` in the tail of `seq 1 1000`).
//! Each cut reads those bytes while they are still in the file and
//! records the answer with the gap. Byte reads still return the pieces.
//!
//! The gap records live in `<job>/log.gaps`, one fixed-size text record
//! per log (stdout, stderr, full.log), rewritten in place by the
//! supervisor (the only writer) and read with `pread` by anyone. It is
//! created, zeroed, before the logs are, so a reader that finds no such
//! file reads an uncapped log.
//!
//! Invariants
//! - Compaction (the supervisor cutting the tail back) is a seqlock: the
//!   record's generation is made odd before any byte of the log moves and
//!   even again, with the new count, after; a reader takes the record,
//!   reads, and takes it again, and uses the bytes only if the generation
//!   is the same and even. So a reader racing a compaction never returns
//!   wrong bytes (it retries), and a reader never holds the job back: the
//!   supervisor takes no lock and waits for nobody.
//! - Appends do not touch the record: between compactions the log only
//!   grows, so logical positions below a reader's snapshot stay valid.
//! - The head is never moved or rewritten: bytes below H read the same
//!   in every generation.
//! - While the job runs the tail may grow by `slack` (its own size plus a
//!   marker, at least 2 MiB) before it is cut back; when the job ends it
//!   is cut to exactly N - H (less on a full disk, below). The check follows each write (one read of
//!   the pipe, at most 128 KiB), so a log never exceeds
//!   N + M + slack + 128 KiB on disk, and N + M once the job is over.
//! - The copy moves the kept tail to just after the marker. Its source
//!   lies wholly after the destination: with the slack above for a cut
//!   while the job runs; for the final cut, which may find the tail only
//!   a few bytes past its share (fewer than the marker is long, even),
//!   the tail's first bytes that the cut writes over are first copied
//!   past the end of the file, and the record says so (`stage`): the
//!   file grows by at most one tail share for it. On a disk with no
//!   room for that copy the cut keeps a shorter tail instead, one wholly
//!   after its destination (half of what lies past it): the log keeps
//!   within its cap, and what the job writes next still finds room.
//!   Neither the marker nor the copy ever writes over bytes not yet
//!   moved, so a compaction cut short by a crash is redone from its odd
//!   record (`repair`), which names source and length.
//! - Once a log was cut, bytes that what the job's pipes already hold
//!   will push out of the tail (the backlog is the tail's share or more)
//!   are dropped unwritten (`Capper::skip`): a cut that keeps none of the
//!   file's tail and puts the last `LIVE_TAIL` bytes of the read in its
//!   place, while its record is odd. The final tail is the same: every
//!   byte a pipe held is read and logged (full.log taking at least one
//!   byte for each), the drain's last reads passing over nothing, since
//!   what comes after them is never read. A flood no longer writes each
//!   byte to the page cache only to cut it away.
//! - A job whose supervisor died has its logs cut to their final size by
//!   the reader that records `supervisor_lost` (`settle_orphaned`), under
//!   the job lock: every ended job's logs are final.
//!
//! Rejected: `fallocate(FALLOC_FL_COLLAPSE_RANGE)` — ext4 writes back and
//! evicts everything after the collapsed range on every call (a disk
//! write of the whole kept tail per compaction, synchronously, on the
//! tee's path), needs block-aligned ranges (a padded head) and tmpfs lacks
//! it, so the copy would be needed anyway; a copy of the kept tail per
//! `slack` bytes written costs at most one page-cache copy per byte,
//! made in the kernel (copy_file_range, the ranges being apart) where it
//! can be, else through a 256 KiB buffer.
//! Rewriting the log to a new file and renaming it over the old: readers
//! and the cursor's file tag would lose the file they hold. A ring buffer
//! in the file (no copying at all): the log would not read in order with
//! `cat` while the job runs. Keeping the gap in state.json: a rename per
//! compaction, and a record that readers could not pair with the bytes.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The gap records of a job's logs, in its directory.
pub const GAPS: &str = "log.gaps";
/// Record slots in `GAPS`.
pub const STDOUT: usize = 0;
pub const STDERR: usize = 1;
pub const FULL: usize = 2;
const SLOTS: usize = 3;
/// Bytes per record (fixed: rewritten in place).
const REC: usize = 160;
/// The marker without its optional leading newline: the text, the count
/// padded to 20 digits (u64::MAX), a newline.
const MARKER_TEXT: usize = "[agent-exec: ".len() + 20 + " bytes dropped]".len() + 1;
/// Least growth of the tail between two compactions. Each one is a
/// copy, a truncation and two record writes whatever the tail's size;
/// while writeback runs, the truncation waits for the pages it cuts. A
/// 1 MB cap cut every 500 KB (its tail's own size) made the tee 1.18-1.20x
/// slower than without a cap in `make bench`; every 2 MiB, 0.97-1.06x.
const MIN_SLACK: u64 = 2 * 1024 * 1024;
/// Bytes moved per read/write of a compaction.
const COPY_CHUNK: usize = 256 * 1024;
/// Least backlog (bytes already waiting in the job's pipes) for which a
/// cut log passes over what it is handed (`Capper::skip`): a job that
/// writes at a pace the tee keeps up with has every byte land in the
/// file, where a reader of the running job sees it.
const SKIP_BACKLOG: u64 = 64 * 1024;
/// What a pass-over still writes of the bytes it is handed: their last
/// part (from a line's start when one is in it), so that a reader of a
/// flooding job finds a tail, never an empty one.
const LIVE_TAIL: usize = 8 * 1024;

/// How a cap of N bytes is split between head and tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    pub head: u64,
    pub tail: u64,
}

impl Cap {
    pub fn new(max: u64) -> Cap {
        let head = max / 2;
        Cap {
            head,
            tail: max - head,
        }
    }

    /// How far the tail may outgrow `tail` before it is cut back: enough
    /// that the copy's source lies after its destination (see header).
    fn slack(&self) -> u64 {
        (self.tail + MARKER_TEXT as u64 + 1).max(MIN_SLACK)
    }
}

/// One log's gap record. `marker == 0`: nothing dropped yet, the file is
/// the stream. With an odd `gen` the record is a compaction's intent:
/// the values it will have, and the copy (`src`, `keep`) that makes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gap {
    pub gen: u64,
    pub head: u64,
    pub marker: u64,
    pub dropped: u64,
    pub src: u64,
    pub keep: u64,
    /// The head ends inside a line, which goes on in the dropped bytes
    /// (a head that ends just before a newline ends a whole line).
    pub head_mid_line: bool,
    /// The kept tail starts inside a line: the last byte dropped is not
    /// a newline.
    pub tail_mid_line: bool,
    /// An odd record's cut whose kept tail overlaps its destination has
    /// copied the tail's first bytes that the cut writes over (`at_risk`)
    /// past both (`scratch_at`): nothing was written over before this.
    pub staged: bool,
}

impl Gap {
    /// Logical position where the kept tail starts (= head when nothing
    /// was dropped).
    pub fn tail_start(&self) -> u64 {
        self.head + self.dropped
    }

    /// Whether logical bytes were dropped (a marker is in the file).
    pub fn active(&self) -> bool {
        self.marker > 0
    }

    /// The logical size of a log whose file has `file_len` bytes.
    pub fn logical_len(&self, file_len: u64) -> u64 {
        if self.active() {
            file_len.saturating_sub(self.marker) + self.dropped
        } else {
            file_len
        }
    }

    fn encode(&self) -> [u8; REC] {
        let text = format!(
            "ae-gap g={:020} h={:020} m={:04} d={:020} s={:020} k={:020} c={}{}{} g={:020}",
            self.gen,
            self.head,
            self.marker,
            self.dropped,
            self.src,
            self.keep,
            u8::from(self.head_mid_line),
            u8::from(self.tail_mid_line),
            // A third digit only for a staged cut: every other record
            // reads as it did before it was kept.
            if self.staged { "1" } else { "" },
            self.gen
        );
        let mut rec = [b' '; REC];
        rec[..text.len()].copy_from_slice(text.as_bytes());
        rec[REC - 1] = b'\n';
        rec
    }

    /// None: not a whole record (torn by a concurrent write, or never
    /// written: all zeros reads as the empty record).
    fn decode(rec: &[u8]) -> Option<Gap> {
        if rec.iter().all(|&b| b == 0) {
            return Some(Gap::default());
        }
        let text = std::str::from_utf8(rec).ok()?;
        let mut it = text.split_ascii_whitespace();
        if it.next()? != "ae-gap" {
            return None;
        }
        let num =
            |tok: Option<&str>, key: &str| -> Option<u64> { tok?.strip_prefix(key)?.parse().ok() };
        let mut g = Gap {
            gen: num(it.next(), "g=")?,
            head: num(it.next(), "h=")?,
            marker: num(it.next(), "m=")?,
            dropped: num(it.next(), "d=")?,
            src: num(it.next(), "s=")?,
            keep: num(it.next(), "k=")?,
            head_mid_line: false,
            tail_mid_line: false,
            staged: false,
        };
        // `c=` (where the gap cuts lines) lies before the last generation,
        // so a torn read cannot pair it with the wrong one. A record made
        // before it was kept has none: then a head that does not end in
        // a newline (its marker starts with one) and the tail are taken
        // to be cut, which may pass over a whole line but never makes one up.
        let mut last = it.next();
        match last.and_then(|t| t.strip_prefix("c=")) {
            Some(c) => {
                let bit = |b: u8| match b {
                    b'0' => Some(false),
                    b'1' => Some(true),
                    _ => None,
                };
                let (h, t, staged) = match *c.as_bytes() {
                    [h, t] => (h, t, b'0'),
                    [h, t, s] => (h, t, s),
                    _ => return None,
                };
                g.head_mid_line = bit(h)?;
                g.tail_mid_line = bit(t)?;
                g.staged = bit(staged)?;
                last = it.next();
            }
            None => {
                g.head_mid_line = g.marker as usize == MARKER_TEXT + 1;
                g.tail_mid_line = g.marker > 0;
            }
        }
        // The generation is written first and last: a torn read shows two.
        (num(last, "g=")? == g.gen).then_some(g)
    }
}

/// The marker line for `dropped` bytes; `newline`: the head does not end
/// in one, so the marker starts its own line.
pub fn marker(dropped: u64, newline: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(MARKER_TEXT + 1);
    if newline {
        m.push(b'\n');
    }
    let text = format!("[agent-exec: {dropped} bytes dropped]");
    m.extend_from_slice(text.as_bytes());
    m.resize(m.len() + MARKER_TEXT - 1 - text.len(), b' ');
    m.push(b'\n');
    m
}

/// Create (or zero) the gap records: before the logs exist, so that a
/// reader that finds a log also finds its records.
/// Its blocks are allocated now: a record is rewritten in place at every
/// cut, and a sparse file needs a block for the first, which a full disk
/// refused (the cut failed, and the log lost everything after it).
pub fn create(dir: &crate::sys::Dir) -> io::Result<File> {
    let f = dir.open_file(GAPS, crate::sys::How::Open)?;
    f.set_len(0)?;
    f.set_len((SLOTS * REC) as u64)?;
    match crate::sys::allocate(&f, (SLOTS * REC) as u64) {
        Err(e) if crate::error::no_room(&e) => return Err(e),
        // No fallocate here (or a file-size limit): the sparse file.
        _ => {}
    }
    Ok(f)
}

fn write_rec(gaps: &File, slot: usize, g: &Gap) -> io::Result<()> {
    gaps.write_all_at(&g.encode(), (slot * REC) as u64)
}

/// Do what an odd record says: write the marker, move the kept tail to
/// just after it, cut the file there. Redoing it gives the same file,
/// because the source lies wholly after the destination (`stage` sees to
/// it) or is the destination itself.
fn apply(f: &File, g: &Gap, buf: &mut Vec<u8>) -> io::Result<()> {
    let newline = g.marker as usize == MARKER_TEXT + 1;
    f.write_all_at(&marker(g.dropped, newline), g.head)?;
    let dest = g.head + g.marker;
    if g.staged {
        // The staged first bytes, then the rest from where it lies, which
        // nothing writes over (its destination ends where it starts):
        // each step writes only where nothing still needed lies, so the
        // whole is made again after a crash at any point.
        let risk = at_risk(g);
        copy(f, scratch_at(g), dest, risk, buf)?;
        if risk < g.keep {
            copy(f, g.src + risk, dest + risk, g.keep - risk, buf)?;
        }
    } else if g.src != dest {
        copy(f, g.src, dest, g.keep, buf)?;
    }
    f.set_len(dest + g.keep)
}

/// Copy `len` bytes of `f` from `from` to `to`, ranges that do not
/// overlap: in the kernel where it can (one page-cache copy), else
/// through `buf`.
fn copy(f: &File, from: u64, to: u64, len: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(1 << 30) as usize;
        match crate::sys::copy_range(f, from + done, f, to + done, n) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Not on this file system or kernel: the copy below.
            Err(_) => break,
        }
    }
    if done < len && buf.is_empty() {
        buf.resize(COPY_CHUNK, 0);
    }
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], from + done)?;
        f.write_all_at(&buf[..n], to + done)?;
        done += n as u64;
    }
    Ok(())
}

/// A cut whose kept tail overlaps its destination (the final cut of a
/// log that outgrew its share by less than the share plus a marker: the
/// marker alone may be longer than what is dropped) is made in two
/// steps, so that neither the marker nor the copy writes over bytes not
/// yet moved, and a cut stopped by a crash can be redone: the tail's
/// first bytes that the cut writes over (`at_risk`) are first copied
/// past the end of both ranges (`scratch_at`), then the odd record says
/// so (`staged`; `apply` then moves both parts into place and cuts the
/// file). Only those bytes, not the whole tail: the file never grows
/// past its destination's end plus one tail share (N + N/2 and a
/// marker), where a copy of the whole tail made it up to 2N on disk for
/// a moment. `g`: the odd record naming the tail itself, the last `keep`
/// bytes of the file, as on disk.
fn stage(f: &File, gaps: &File, slot: usize, g: Gap, buf: &mut Vec<u8>) -> io::Result<Gap> {
    // What an earlier try left past the tail (a crash in this step) goes:
    // the copy is made again whole.
    let end = g.src + g.keep;
    if f.metadata()?.len() > end {
        f.set_len(end)?;
    }
    copy(f, g.src, scratch_at(&g), at_risk(&g), buf)?;
    let staged = Gap { staged: true, ..g };
    write_rec(gaps, slot, &staged)?;
    Ok(staged)
}

/// How many of the kept tail's first bytes a cut writes over before it
/// reads them (the marker's, and the copy's when the tail overlaps its
/// destination): the bytes `stage` copies away first. 0 without overlap.
fn at_risk(g: &Gap) -> u64 {
    if !overlaps(g) {
        return 0;
    }
    (g.head + g.marker + g.keep - g.src).min(g.keep)
}

/// Where `stage` keeps its copy: past both the tail and its destination,
/// so that nothing the cut writes lands on it.
fn scratch_at(g: &Gap) -> u64 {
    (g.src + g.keep).max(g.head + g.marker + g.keep)
}

/// Whether the odd record `g` names a source that overlaps its
/// destination (then `stage` comes first).
fn overlaps(g: &Gap) -> bool {
    let dest = g.head + g.marker;
    g.src != dest && g.src < dest + g.keep
}

/// The supervisor's side of one capped log: counts the file's size and
/// cuts the tail back when it has grown by `slack`.
pub struct Capper {
    cap: Cap,
    gaps: File,
    slot: usize,
    /// Bytes in the file.
    size: u64,
    gap: Gap,
    buf: Vec<u8>,
}

impl Capper {
    pub fn new(cap: Cap, gaps: File, slot: usize) -> Capper {
        Capper {
            cap,
            gaps,
            slot,
            size: 0,
            gap: Gap::default(),
            buf: Vec::new(),
        }
    }

    /// The head's length: its share, or, once cut, what the cut kept.
    fn head_len(&self) -> u64 {
        if self.gap.active() {
            self.gap.head
        } else {
            self.cap.head
        }
    }

    fn tail_len(&self) -> u64 {
        self.size
            .saturating_sub(self.head_len())
            .saturating_sub(self.gap.marker)
    }

    /// `n` more bytes were appended to `f` (written at its end through
    /// its own position, which this moves back to the end after a cut).
    pub fn wrote(&mut self, f: &mut File, n: u64) -> io::Result<()> {
        self.size += n;
        if self.tail_len() >= self.cap.tail + self.cap.slack() {
            self.compact(f)?;
        }
        Ok(())
    }

    /// The file system is full (a write of the log failed for want of
    /// room) after `n` more bytes were appended: the tail, which may
    /// outgrow its share by `slack` between cuts, is cut back now if it
    /// outgrew it at all. Ok(true): cut, so there is room again. Waiting
    /// for the slack, the log stayed over its cap and lost its newest
    /// bytes for good, on a disk with room for the cap.
    pub fn cut_for_room(&mut self, f: &mut File, n: u64) -> io::Result<bool> {
        self.size += n;
        if self.tail_len() > self.cap.tail {
            self.compact(f)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether `skip` may drop bytes: the log was cut already.
    pub fn may_skip(&self) -> bool {
        self.gap.active()
    }

    /// `bytes` are to be appended, and at least `follow` more bytes will
    /// be appended after them (what the job's pipes hold already, read
    /// and written next). When that is the tail's share or more, none of
    /// `bytes`, and none of the tail now in the file, can be in the
    /// log's final tail: they are dropped without being written, by a
    /// cut that keeps none of the file's tail (no copy), but for the last
    /// `LIVE_TAIL` bytes of `bytes`, which the same cut puts in the
    /// tail's place. Ok(false): nothing dropped, append all of `bytes`.
    /// Only once the log was cut (its head and marker are in place), so
    /// a job that writes less than the cap and its slack is never touched.
    ///
    /// The bytes kept go in while the record is odd, so no reader ever
    /// finds the tail empty. Should that write fail (a full disk), they
    /// are dropped too; should the supervisor die before the record is
    /// even again, the cut is made again without them (`repair`: the
    /// file is cut at the marker's end) and the total reads that much
    /// less, as it does for what the pipe held then.
    ///
    /// This takes the tee's cost with a cap below its cost without: in a
    /// flood a capped log wrote every byte and then cut it away (a copy
    /// of the kept tail and a truncation per `slack`), which made the tee
    /// 1.15x slower in `make bench`; now most bytes are never written.
    pub fn skip(&mut self, f: &mut File, bytes: &[u8], follow: u64) -> io::Result<bool> {
        if !self.may_skip()
            || bytes.len() < 2 * LIVE_TAIL
            || follow < self.cap.tail.max(SKIP_BACKLOG)
        {
            return Ok(false);
        }
        let n = bytes.len();
        let mut start = n - LIVE_TAIL;
        match bytes[start..n - 1].iter().position(|&b| b == b'\n') {
            // From the start of a line...
            Some(p) => start += p + 1,
            // ...else of a character (the rest of one goes with the
            // dropped bytes, as in `compact`).
            None => start += crate::observe::continuation_prefix(&bytes[start..]),
        }
        let dest = self.gap.head + self.gap.marker;
        let logical = self.gap.logical_len(self.size) + start as u64;
        let mut g = Gap {
            gen: self.gap.gen + 1,
            dropped: logical - self.gap.head,
            // Nothing is moved: the cut keeps none of the file's tail.
            src: dest,
            keep: 0,
            tail_mid_line: bytes[start - 1] != b'\n',
            staged: false,
            ..self.gap
        };
        write_rec(&self.gaps, self.slot, &g)?;
        apply(f, &g, &mut self.buf)?;
        let live = &bytes[start..];
        self.size = dest;
        if f.write_all_at(live, dest).is_ok() {
            self.size += live.len() as u64;
        } else {
            let _ = f.set_len(dest);
            g.dropped += live.len() as u64;
            g.tail_mid_line = live.last() != Some(&b'\n');
        }
        g.gen += 1;
        write_rec(&self.gaps, self.slot, &g)?;
        self.gap = g;
        f.seek(SeekFrom::End(0))?;
        Ok(true)
    }

    /// The job has ended: cut the tail to exactly its share.
    pub fn finish(&mut self, f: &mut File) -> io::Result<()> {
        if self.tail_len() > self.cap.tail {
            self.compact(f)?;
        }
        Ok(())
    }

    fn compact(&mut self, f: &mut File) -> io::Result<()> {
        let mut g = self.plan(f, self.cap.tail)?;
        write_rec(&self.gaps, self.slot, &g)?;
        if overlaps(&g) {
            match stage(f, &self.gaps, self.slot, g, &mut self.buf) {
                Ok(staged) => g = staged,
                Err(e) => {
                    // No room for the staged copy (a full disk): the cut
                    // is given up with nothing moved, the file back to
                    // its length and the record to what it was, a
                    // generation on (readers that saw the intent read
                    // again). Left as intent, it had every reader try
                    // the copy and fail (io_error) while the disk was
                    // full, and cut the log at a stale place once not.
                    let _ = f.set_len(self.size);
                    let back = Gap {
                        gen: g.gen + 1,
                        ..self.gap
                    };
                    write_rec(&self.gaps, self.slot, &back)?;
                    self.gap = back;
                    f.seek(SeekFrom::End(0))?;
                    // Then it keeps a shorter tail instead, one that lies
                    // wholly after its destination: no staging, and a
                    // log within its cap. Given up, the log lost all
                    // that came after, and ended over its cap.
                    let dest = g.head + g.marker;
                    if !crate::error::no_room(&e) || self.size < dest {
                        return Err(e);
                    }
                    g = self.plan(f, (self.size - dest) / 2)?;
                    write_rec(&self.gaps, self.slot, &g)?;
                }
            }
        }
        apply(f, &g, &mut self.buf)?;
        g.gen += 1;
        g.staged = false;
        write_rec(&self.gaps, self.slot, &g)?;
        self.gap = g;
        self.size = g.head + g.marker + g.keep;
        f.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// The odd record of a cut that keeps the head and (about) the last
    /// `share` bytes of the file as the tail.
    fn plan(&self, f: &File, share: u64) -> io::Result<Gap> {
        let (head, marker, head_mid_line) = if self.gap.active() {
            (self.gap.head, self.gap.marker, self.gap.head_mid_line)
        } else {
            let head = whole_chars_before(f, self.cap.head)?;
            // The head's last byte and the first one dropped (there is
            // one: the tail outgrew `keep`), never moved before this cut.
            let mut edge = [b'\n'; 2];
            if head > 0 {
                f.read_exact_at(&mut edge, head - 1)?;
            }
            let open = edge[0] != b'\n';
            (
                head,
                (MARKER_TEXT + usize::from(open)) as u64,
                open && edge[1] != b'\n',
            )
        };
        let logical = self.gap.logical_len(self.size);
        // The kept tail starts with a whole character: the rest of one
        // the cut splits goes with the dropped bytes (1 to 3 of them).
        let (src, keep) = {
            let mut lead = [0u8; 3];
            let n = share.min(3) as usize;
            f.read_exact_at(&mut lead[..n], self.size - share)?;
            let skip = crate::observe::continuation_prefix(&lead[..n]) as u64;
            (self.size - share + skip, share - skip)
        };
        // The last byte this cut drops, still in the file (the tail
        // outgrew `keep`, so `src` lies past the head and any marker
        // already written): whether the kept tail starts a line.
        let mut before = [b'\n'];
        f.read_exact_at(&mut before, src - 1)?;
        Ok(Gap {
            gen: self.gap.gen + 1,
            head,
            marker,
            dropped: logical - keep - head,
            src,
            keep,
            head_mid_line,
            tail_mid_line: before[0] != b'\n',
            staged: false,
        })
    }
}

/// Where a head of `share` bytes ends so that it ends with a whole
/// character: before a UTF-8 character that the cut at `share` would
/// split (its lead in the head, its continuation bytes after), which is
/// dropped whole. Readers would otherwise show U+FFFD for both pieces,
/// which the job never printed. Bytes that are not UTF-8 are kept as
/// they are.
fn whole_chars_before(f: &File, share: u64) -> io::Result<u64> {
    let from = share.saturating_sub(3);
    let mut b = [0u8; 4];
    let n = (share - from) as usize;
    f.read_exact_at(&mut b[..=n], from)?;
    let (head, next) = (&b[..n], b[n]);
    let complete = crate::observe::complete_len(head);
    Ok(if complete < n && next & 0xC0 == 0x80 {
        from + complete as u64
    } else {
        share
    })
}

/// A reader's handle on a job's gap records.
pub struct Gaps {
    f: File,
}

/// How long a reader waits for a compaction to finish before it looks
/// for a dead supervisor.
const STABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a reader waits for a cut that its live supervisor is making
/// (it moves one tail share, at most half the cap, within the file).
const CUT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Gaps {
    /// None: the job's logs are not capped.
    pub fn open(dir: &Path) -> io::Result<Option<Gaps>> {
        match crate::sys::open_read(&dir.join(GAPS)) {
            Ok(f) => Ok(Some(Gaps { f })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The record of `slot` as it is now (odd: a compaction is under
    /// way), or None for a torn read.
    fn peek(&self, slot: usize) -> io::Result<Option<Gap>> {
        let mut rec = [0u8; REC];
        let mut got = 0;
        while got < REC {
            match self.f.read_at(&mut rec[got..], (slot * REC + got) as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got < REC {
            // Short: `create` is between its two set_len calls (for
            // microseconds), or the file was cut by someone else. Torn
            // until it is whole: `stable` waits, then calls it damaged
            // (it read as "nothing dropped", and reads gave the marker
            // line as output and the totals of the file).
            return Ok(None);
        }
        Ok(Gap::decode(&rec))
    }

    /// The record of `slot`, once no compaction is under way. A
    /// compaction that stays unfinished (its supervisor died in it) is
    /// finished here (`repair`) when the job lock shows nobody else can.
    ///
    /// Bounded: a torn read lasts as long as one small write, so a record
    /// that stays torn for `STABLE_WAIT` is damaged (written by somebody
    /// else); and a cut that stays under way for `CUT_WAIT` while its
    /// supervisor holds the lock never ends. Both are an error (the
    /// reader's `io_error`), not a wait that nothing could end.
    pub fn stable(&self, slot: usize, dir: &Path) -> io::Result<Gap> {
        let t0 = std::time::Instant::now();
        let mut pause = std::time::Duration::from_micros(50);
        let damaged = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{GAPS}: the record of {} {what}", log_name(slot)),
            )
        };
        loop {
            match self.peek(slot)? {
                Some(g) if g.gen % 2 == 0 => return Ok(g),
                Some(g) if t0.elapsed() >= STABLE_WAIT => {
                    if let Some(g) = repair(dir, slot, g)? {
                        return Ok(g);
                    }
                    if t0.elapsed() >= CUT_WAIT {
                        return Err(damaged("names a cut that never ends"));
                    }
                }
                None if t0.elapsed() >= STABLE_WAIT => return Err(damaged("is damaged")),
                _ => {}
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
        }
    }

    /// The record of `slot` now, if stable and equal to `g` (the bytes
    /// read under `g` are good).
    pub fn still(&self, slot: usize, g: &Gap) -> io::Result<bool> {
        Ok(self.peek(slot)? == Some(*g))
    }
}

/// Finish a compaction whose supervisor died in it: only when the job
/// lock is free (no supervisor), holding it meanwhile. Returns the
/// record then in effect, or None if the lock is held (someone works on
/// it: wait on).
fn repair(dir: &Path, slot: usize, odd: Gap) -> io::Result<Option<Gap>> {
    let Ok(lock) = crate::sys::open_read(&dir.join(crate::job::LOCK)) else {
        return Ok(None);
    };
    if !crate::sys::try_lock_exclusive(&lock)? {
        return Ok(None);
    }
    let res = (|| {
        let dirf = crate::sys::Dir::open(dir)?;
        let gaps = dirf.open_file(GAPS, crate::sys::How::Open)?;
        repair_locked(&dirf, &gaps, slot, odd)
    })();
    let _ = crate::sys::unlock(&lock);
    res.map(Some)
}

/// A log's file name in the job directory.
fn log_name(slot: usize) -> &'static str {
    match slot {
        STDOUT => crate::job::STDOUT,
        STDERR => crate::job::STDERR,
        _ => crate::job::FULL,
    }
}

/// The cut a crash left undone in `slot`'s log, finished by a caller
/// that holds the job lock (`repair`, `settle_orphaned`). Returns the
/// record then in effect.
fn repair_locked(dirf: &crate::sys::Dir, gaps: &File, slot: usize, odd: Gap) -> io::Result<Gap> {
    let name = log_name(slot);
    // Re-read under the lock: another reader may have finished it.
    let cur = Gaps {
        f: gaps.try_clone()?,
    }
    .peek(slot)?
    .unwrap_or(odd);
    if cur.gen % 2 == 0 {
        return Ok(cur);
    }
    let f = dirf.open_file(name, crate::sys::How::Open)?;
    let mut g = cur;
    let mut buf = Vec::new();
    let len = f.metadata()?.len();
    if g.staged {
        // Staged whole (the record says so only then): the cut is made
        // (again), unless the file is already cut to its end and only the
        // record is missing (the copy past the end is gone with it).
        if len == scratch_at(&g) + at_risk(&g) {
            apply(&f, &g, &mut buf)?;
        }
    } else if overlaps(&g) {
        // Nothing was written over yet (a cut writes nothing before its
        // copy is staged): staged (again), then made.
        g = stage(&f, gaps, slot, g, &mut buf)?;
        apply(&f, &g, &mut buf)?;
    } else {
        // Cut to its final size already (its source was past the new
        // end): only the record is missing. Before the cut the file is
        // longer (a source after the destination), unless the tail is
        // already in place.
        let done = len == g.head + g.marker + g.keep;
        if !done || g.src == g.head + g.marker {
            apply(&f, &g, &mut buf)?;
        }
    }
    g.gen += 1;
    g.staged = false;
    write_rec(gaps, slot, &g)?;
    Ok(g)
}

/// Cut the capped logs of a job whose supervisor died to their final
/// size (`max`: the job's cap), as that supervisor's end would have
/// (`Capper::finish`): a finished job's logs are final (N plus the
/// marker). Called by the reader that records the job's end, holding the
/// job lock, after the job's processes were killed: nobody else writes
/// the logs. A full.log kept outside the job directory (`--log PATH`) is
/// left as it is.
pub fn settle_orphaned(dir: &Path, max: u64, full_here: bool) -> io::Result<()> {
    let dirf = crate::sys::Dir::open(dir)?;
    let gaps = match dirf.open_file(GAPS, crate::sys::How::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let slots: &[usize] = if full_here {
        &[STDOUT, STDERR, FULL]
    } else {
        &[STDOUT, STDERR]
    };
    for &slot in slots {
        let Some(rec) = (Gaps {
            f: gaps.try_clone()?,
        })
        .peek(slot)?
        else {
            continue;
        };
        let gap = repair_locked(&dirf, &gaps, slot, rec)?;
        // Absent (no full.log), or not a regular file: nothing to cut.
        let Ok(mut f) = dirf.open_file(log_name(slot), crate::sys::How::Existing) else {
            continue;
        };
        let size = f.metadata()?.len();
        let mut c = Capper::new(Cap::new(max), gaps.try_clone()?, slot);
        c.size = size;
        c.gap = gap;
        c.finish(&mut f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_ones_are_refused() {
        let g = Gap {
            gen: 7,
            head: 500,
            marker: 49,
            dropped: 123_456,
            src: 9,
            keep: 10,
            head_mid_line: false,
            tail_mid_line: false,
            staged: false,
        };
        let rec = g.encode();
        assert_eq!(Gap::decode(&rec), Some(g));
        for (h, t) in [(false, true), (true, false), (true, true)] {
            let cut = Gap {
                head_mid_line: h,
                tail_mid_line: t,
                ..g
            };
            assert_eq!(Gap::decode(&cut.encode()), Some(cut));
        }
        // A record without `c=` (written before it was kept): the tail
        // is taken to start inside a line; the head to end inside one
        // when it does not end in a newline (its marker starts with one).
        for marker in [MARKER_TEXT, MARKER_TEXT + 1] {
            let g = Gap {
                marker: marker as u64,
                ..g
            };
            let rec = String::from_utf8(g.encode().to_vec()).unwrap();
            let old = rec.replace(" c=00", "");
            let want = Gap {
                head_mid_line: marker == MARKER_TEXT + 1,
                tail_mid_line: true,
                ..g
            };
            assert_eq!(Gap::decode(old.as_bytes()), Some(want));
        }
        let staged = Gap { staged: true, ..g };
        assert_eq!(Gap::decode(&staged.encode()), Some(staged));
        let h = Gap { gen: 8, ..g }.encode();
        let mut torn = rec;
        torn[..40].copy_from_slice(&h[..40]);
        assert_eq!(Gap::decode(&torn), None);
        assert_eq!(Gap::decode(&[0u8; REC]), Some(Gap::default()));
    }

    #[test]
    fn markers_have_one_length_per_kind() {
        assert_eq!(marker(0, false).len(), MARKER_TEXT);
        assert_eq!(marker(u64::MAX, false).len(), MARKER_TEXT);
        assert_eq!(marker(5, true).len(), MARKER_TEXT + 1);
        let m = String::from_utf8(marker(1234, true)).unwrap();
        assert!(m.starts_with("\n[agent-exec: 1234 bytes dropped]"), "{m:?}");
        assert!(m.ends_with(" \n"));
    }

    #[test]
    fn compaction_keeps_head_and_last_bytes() {
        let dir = std::env::temp_dir().join(format!("ae-logcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = crate::sys::Dir::open(&dir).unwrap();
        let gaps = create(&d).unwrap();
        let mut f = d.open_file("x.log", crate::sys::How::Open).unwrap();
        f.set_len(0).unwrap();
        let cap = Cap::new(1000);
        let mut c = Capper::new(cap, gaps, STDOUT);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(7919) {
            use std::io::Write;
            f.write_all(piece).unwrap();
            c.wrote(&mut f, piece.len() as u64).unwrap();
        }
        c.finish(&mut f).unwrap();
        let file = std::fs::read(dir.join("x.log")).unwrap();
        let g = Gaps::open(&dir).unwrap().unwrap();
        let rec = g.stable(STDOUT, &dir).unwrap();
        assert_eq!(rec.head, 500);
        assert_eq!(rec.logical_len(file.len() as u64), data.len() as u64);
        assert_eq!(&file[..500], &data[..500]);
        let m = rec.marker as usize;
        assert_eq!(
            &file[500..500 + m],
            &marker(rec.dropped, data[499] != b'\n')[..]
        );
        assert_eq!(&file[500 + m..], &data[data.len() - 500..]);
        assert_eq!(rec.dropped, data.len() as u64 - 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A scratch job directory for a crashed cut: its gap records, its
    /// (free) job lock and an empty stdout.log.
    fn crash_scene(name: &str) -> (std::path::PathBuf, File, File, File) {
        let dir = std::env::temp_dir().join(format!("ae-logcap-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = crate::sys::Dir::open(&dir).unwrap();
        let gaps = create(&d).unwrap();
        let lock = d
            .open_file(crate::job::LOCK, crate::sys::How::Open)
            .unwrap();
        let f = d
            .open_file(crate::job::STDOUT, crate::sys::How::Open)
            .unwrap();
        (dir, gaps, lock, f)
    }

    #[test]
    fn a_cut_cut_short_by_a_crash_is_finished_by_a_reader() {
        use std::io::Write;
        let (dir, gaps, _lock, mut f) = crash_scene("crash");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut c = Capper::new(Cap::new(1000), gaps.try_clone().unwrap(), STDOUT);
        // More than the slack: the first write is cut (the marker is in).
        let (first, rest) = data.split_at(MIN_SLACK as usize + 100_000);
        f.write_all(first).unwrap();
        c.wrote(&mut f, first.len() as u64).unwrap();
        // The rest is written, and a cut begins but stops half-way: the
        // intent is recorded, the marker and half the copy are done.
        f.write_all(rest).unwrap();
        let size = f.metadata().unwrap().len();
        let cur = c.gap;
        let g = Gap {
            gen: cur.gen + 1,
            head: 500,
            marker: cur.marker,
            dropped: data.len() as u64 - 1000,
            src: size - 500,
            keep: 500,
            head_mid_line: cur.head_mid_line,
            tail_mid_line: data[data.len() - 501] != b'\n',
            staged: false,
        };
        write_rec(&gaps, STDOUT, &g).unwrap();
        f.write_all_at(
            &marker(g.dropped, g.marker as usize == MARKER_TEXT + 1),
            500,
        )
        .unwrap();
        f.write_all_at(&data[data.len() - 500..data.len() - 250], 500 + g.marker)
            .unwrap();
        // A reader waits, finds the job lock free, and finishes the cut.
        let r = Gaps::open(&dir).unwrap().unwrap();
        let fixed = r.stable(STDOUT, &dir).unwrap();
        assert_eq!(
            fixed,
            Gap {
                gen: g.gen + 1,
                ..g
            }
        );
        let file = std::fs::read(dir.join(crate::job::STDOUT)).unwrap();
        let m = g.marker as usize;
        assert_eq!(file.len(), 1000 + m);
        assert_eq!(&file[..500], &data[..500]);
        assert_eq!(
            &file[500..500 + m],
            &marker(g.dropped, g.marker as usize == MARKER_TEXT + 1)[..]
        );
        assert_eq!(&file[500 + m..], &data[data.len() - 500..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The file a capped log must be once its job ended: the head, the
    /// marker, the last bytes.
    fn check_final(dir: &Path, name: &str, data: &[u8], cap: Cap) {
        // The record first: a reader finishes a cut a crash left undone.
        let g = Gaps::open(dir)
            .unwrap()
            .unwrap()
            .stable(STDOUT, dir)
            .unwrap();
        let file = std::fs::read(dir.join(name)).unwrap();
        let n = (cap.head + cap.tail) as usize;
        if data.len() <= n {
            assert_eq!(file, data);
            assert!(!g.active());
            return;
        }
        let (h, m) = (cap.head as usize, g.marker as usize);
        assert_eq!(g.dropped as usize, data.len() - n, "dropped");
        let tail_at = data.len() - cap.tail as usize;
        assert_eq!(g.tail_mid_line, data[tail_at - 1] != b'\n', "tail_mid_line");
        let open = h > 0 && data[h - 1] != b'\n';
        assert_eq!(g.head_mid_line, open && data[h] != b'\n', "head_mid_line");
        assert_eq!(&file[..h], &data[..h], "head");
        let nl = h > 0 && data[h - 1] != b'\n';
        assert_eq!(&file[h..h + m], &marker(g.dropped, nl)[..], "marker");
        assert_eq!(
            &file[h + m..],
            &data[data.len() - cap.tail as usize..],
            "tail"
        );
        assert_eq!(g.logical_len(file.len() as u64), data.len() as u64);
    }

    #[test]
    fn a_final_cut_keeps_the_last_bytes_however_little_was_dropped() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("ae-logcap-small-{}", std::process::id()));
        for max in [1u64, 10, 40, 100, 1000] {
            let cap = Cap::new(max);
            for excess in [0u64, 1, 10, 49, 50, 51, 52, 60, 100, max + 60, 5000] {
                std::fs::create_dir_all(&dir).unwrap();
                let d = crate::sys::Dir::open(&dir).unwrap();
                let gaps = create(&d).unwrap();
                let mut f = d.open_file("x.log", crate::sys::How::Open).unwrap();
                f.set_len(0).unwrap();
                let data: Vec<u8> = (0..max + excess)
                    .map(|i| {
                        if i % 7 == 6 {
                            b'\n'
                        } else {
                            b'a' + (i % 26) as u8
                        }
                    })
                    .collect();
                let mut c = Capper::new(cap, gaps, STDOUT);
                for piece in data.chunks(3) {
                    f.write_all(piece).unwrap();
                    c.wrote(&mut f, piece.len() as u64).unwrap();
                }
                c.finish(&mut f).unwrap();
                check_final(&dir, "x.log", &data, cap);
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
    }

    #[test]
    fn a_final_cut_stopped_by_a_crash_in_either_step_is_finished() {
        use std::io::Write;
        let cap = Cap::new(100);
        let data: Vec<u8> = (0..110u8).map(|i| b'0' + i % 10).collect();
        // 0: stopped while staging the tail; 1: cut, but the record not
        // yet made even.
        for when in 0..2 {
            let (dir, gaps, _lock, mut f) = crash_scene(&format!("stage-{when}"));
            f.write_all(&data).unwrap();
            let g = Gap {
                gen: 1,
                head: 50,
                marker: MARKER_TEXT as u64 + 1,
                dropped: 10,
                src: 60,
                keep: 50,
                head_mid_line: true,
                tail_mid_line: true,
                staged: false,
            };
            assert!(overlaps(&g));
            write_rec(&gaps, STDOUT, &g).unwrap();
            let at = g.head + g.marker + g.keep;
            if when == 0 {
                f.write_all_at(&data[60..80], at).unwrap();
            } else {
                let staged = stage(&f, &gaps, STDOUT, g, &mut Vec::new()).unwrap();
                apply(&f, &staged, &mut Vec::new()).unwrap();
            }
            check_final(&dir, crate::job::STDOUT, &data, cap);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    /// A final cut whose tail overlaps its destination copies away only
    /// the tail's first bytes that it writes over, so the file stays
    /// under its destination's end plus one tail share (it held a copy of
    /// the whole tail for a moment: up to 2N on disk; audit), and a crash
    /// at any step of it is finished by a reader.
    #[test]
    fn an_overlapping_final_cut_stages_only_what_it_writes_over() {
        use std::io::Write;
        let cap = Cap::new(1000);
        // 1300 bytes: the tail starts before its destination's end (part
        // of it is written over); 1020: before its destination (all).
        for len in [1300u64, 1020] {
            let data: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
            let g = Gap {
                gen: 1,
                head: 500,
                marker: MARKER_TEXT as u64 + 1,
                dropped: len - 1000,
                src: len - 500,
                keep: 500,
                head_mid_line: true,
                tail_mid_line: true,
                staged: false,
            };
            let dest = g.head + g.marker;
            assert!(overlaps(&g));
            assert_eq!(at_risk(&g), (dest + 500 - g.src).min(500));
            // 0: stopped while staging; 1: staged; 2: the first copy half
            // made; 3: the second half made; 4: cut, the record still odd.
            for when in 0..5 {
                let (dir, gaps, _lock, mut f) = crash_scene(&format!("part-{len}-{when}"));
                f.write_all(&data).unwrap();
                write_rec(&gaps, STDOUT, &g).unwrap();
                let mut buf = Vec::new();
                if when == 0 {
                    f.write_all_at(&data[..7], scratch_at(&g)).unwrap();
                } else {
                    let staged = stage(&f, &gaps, STDOUT, g, &mut buf).unwrap();
                    let peak = f.metadata().unwrap().len();
                    assert_eq!(peak, dest + 2 * g.keep, "{len}");
                    assert!(peak <= 1000 + 500 + g.marker, "{len}: {peak}");
                    let risk = at_risk(&g);
                    let nl = true;
                    if when >= 2 {
                        f.write_all_at(&marker(g.dropped, nl), g.head).unwrap();
                        copy(&f, scratch_at(&g), dest, risk / 2, &mut buf).unwrap();
                    }
                    if when >= 3 {
                        copy(&f, scratch_at(&g), dest, risk, &mut buf).unwrap();
                        let rest = (g.keep - risk) / 2;
                        copy(&f, g.src + risk, dest + risk, rest, &mut buf).unwrap();
                    }
                    if when == 4 {
                        apply(&f, &staged, &mut buf).unwrap();
                    }
                }
                // What a reader does once the wait for the cut runs out
                // (`Gaps::stable`), at once.
                let odd = Gaps::open(&dir)
                    .unwrap()
                    .unwrap()
                    .peek(STDOUT)
                    .unwrap()
                    .unwrap();
                assert_eq!(odd.gen % 2, 1);
                repair(&dir, STDOUT, odd).unwrap().unwrap();
                check_final(&dir, crate::job::STDOUT, &data, cap);
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
    }
}
