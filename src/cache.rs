//! The list cache, `<root>/.cache/{names,notes}`: what `list` learned
//! about a root, so that listing a root of a thousand jobs neither scans
//! the directory nor opens two files for every job it shows. On ext4 the
//! kernel hashes and sorts every entry of the root on each scan; that and
//! the per-job reads were nearly all of `list`'s time.
//!
//! - `names`: a header `agent-exec list-names 1 INO NLINK MTIME_NS` (the
//!   root's stamp when it was scanned), then the job directory names,
//!   oldest first, one per line.
//! - `notes`: a header `agent-exec list-notes 1`, then `NAME<TAB>NOTE`
//!   lines, newest job first, for jobs `list` has read in a final state.
//!   A note is opaque here; `cmd::list` writes it and checks it against
//!   its job's files. Newest first, because listings walk that way: a
//!   default listing reads the first few KiB of the file, not all of it.
//!
//! A valid id holds neither tab nor newline, so the lines parse exactly.
//!
//! Invariants
//! - The names are trusted only while the root's inode, link count and
//!   mtime are the header's: creating or removing a job directory changes
//!   the mtime and the link count. A header is only written with a stamp
//!   taken well after the root's last change (`store::settled`), so that
//!   no later change can hide inside the file system's timestamp
//!   granularity.
//! - A note proves itself against its job's files (`cmd::list` keeps
//!   their stamps in it), so notes need no root stamp and are learned
//!   even while jobs come and go.
//! - Advisory: any doubt (unreadable, another version, out of order)
//!   means scanning or reading afresh. Both files sit in a subdirectory,
//!   so writing them leaves the root's stamp alone; each is written by
//!   temp file + rename, and only when something was learned.
//!
//! Rejected: one file holding names and notes (after one `list --all`
//! every default listing read every note); per-job caches inside job
//! directories (one more file to open per job, which is what is saved);
//! trusting final states without stamps (a hand-edited state file would
//! be listed stale).

use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::store::{self, Names, RootStamp, Store, CACHE_DIR};

const NAMES: &str = "names";
const NAMES_HEADER: &str = "agent-exec list-names 1";
const NOTES: &str = "notes";
const NOTES_HEADER: &str = "agent-exec list-notes 1\n";
/// Smaller roots list fast enough: no cache files.
const MIN_JOBS: usize = 64;
/// A names file larger than this is ignored.
const MAX_BYTES: u64 = 256 << 20;
/// Notes are read in pieces this large, as the walk needs them.
const NOTES_CHUNK: usize = 16 << 10;

/// A root's job names in creation order, and the notes kept for them.
pub struct ListCache {
    dir: PathBuf,
    pub names: Names,
    pub notes: Notes,
    /// Set when the names came from a scan that may be remembered.
    scanned: Option<RootStamp>,
    /// Wall clock (ns) before anything was read: what note makers compare
    /// file times with.
    pub t0: i128,
}

impl ListCache {
    /// The root's names, from the cache while the root is unchanged, else
    /// from a scan.
    pub fn load(store: &Store) -> Result<ListCache> {
        let t0 = crate::time::now_unix_ns();
        let dir = store.root.join(CACHE_DIR);
        let now = store::root_stamp(&store.root);
        let cached = now.and_then(|now| read_names(&dir.join(NAMES), now));
        let (names, scanned) = match cached {
            Some(names) => (names, None),
            None => {
                let names = store.names()?;
                let settled = now.filter(|s| store::settled(s.mtime_ns, t0));
                (names, settled)
            }
        };
        let enabled = names.len() >= MIN_JOBS;
        Ok(ListCache {
            notes: Notes::open(&dir, enabled),
            names,
            scanned: scanned.filter(|_| enabled),
            dir,
            t0,
        })
    }

    /// Write what was learned. Best effort: a read-only root stays
    /// uncached.
    pub fn save(mut self) {
        let notes = self.notes.changed();
        if self.scanned.is_none() && !notes {
            return;
        }
        // Creating the directory changes the root: a names stamp taken
        // before would be wrong, so the next lister writes the names.
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => self.scanned = None,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => return,
        }
        if let Some(stamp) = self.scanned {
            let mut out = String::with_capacity(64 + 27 * self.names.len());
            out.push_str(&format!(
                "{NAMES_HEADER} {} {} {}\n",
                stamp.ino, stamp.nlink, stamp.mtime_ns
            ));
            for name in self.names.oldest_first() {
                out.push_str(name);
                out.push('\n');
            }
            let _ = store::write_atomic(&self.dir, NAMES, out.as_bytes(), false);
        }
        if notes {
            let text = self.notes.merged(&self.names);
            let _ = store::write_atomic(&self.dir, NOTES, text.as_bytes(), false);
        }
    }
}

fn read_bounded(path: &Path) -> Option<String> {
    let mut f = crate::sys::open_read(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len > MAX_BYTES {
        return None;
    }
    // Sized once, read in one call when the file is as long as it said.
    let mut v = vec![0u8; len as usize + 1];
    let mut got = 0;
    loop {
        match f.read(&mut v[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if got == v.len() {
            return None; // it grew: it is not the file that was stamped
        }
    }
    v.truncate(got);
    String::from_utf8(v).ok()
}

/// The cached names, if the file is intact and was written for `now`.
fn read_names(path: &Path, now: RootStamp) -> Option<Names> {
    let text = read_bounded(path)?;
    let (header, body) = text.split_once('\n')?;
    let mut w = header.rsplitn(4, ' ');
    let mtime_ns = w.next()?.parse().ok()?;
    let nlink = w.next()?.parse().ok()?;
    let ino = w.next()?.parse().ok()?;
    if w.next()? != NAMES_HEADER
        || now
            != (RootStamp {
                ino,
                nlink,
                mtime_ns,
            })
    {
        return None;
    }
    // Most lines are a bare ULID (27 bytes).
    let mut names = Names::with_capacity(body.len() / 27 + 1);
    let mut seen_ulid = false;
    for name in lines(body) {
        // A ULID is a valid id; legacy names (checked fully) come first.
        let ulid = store::is_ulid(name);
        if !ulid && !store::valid_id(name) {
            return None;
        }
        names.push(name);
        if seen_ulid && !ulid {
            return None;
        }
        seen_ulid = ulid;
    }
    names.is_sorted().then_some(names)
}

/// The lines of `text` without their newlines. Byte searches: `str::split`
/// with a char pattern is several times slower over a whole cache.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.bytes().position(|b| b == b'\n').unwrap_or(rest.len());
        let line = &rest[..end];
        rest = &rest[(end + 1).min(rest.len())..];
        Some(line)
    })
}

/// The notes file, read lazily in the order listings walk (newest first),
/// plus what this listing learned.
pub struct Notes {
    file: Option<File>,
    /// Text read so far; `pos` is the start of the first unconsumed line.
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    learned: Vec<(String, Option<String>)>,
    enabled: bool,
}

impl Notes {
    fn open(dir: &Path, enabled: bool) -> Notes {
        let mut n = Notes {
            file: None,
            buf: Vec::new(),
            pos: 0,
            eof: true,
            learned: Vec::new(),
            enabled,
        };
        if enabled {
            if let Ok(f) = crate::sys::open_read(&dir.join(NOTES)) {
                n.file = Some(f);
                n.buf.reserve(4 * NOTES_CHUNK); // no copies for a default walk
                n.eof = false;
                if !n.fill() || !n.buf.starts_with(NOTES_HEADER.as_bytes()) {
                    n.file = None; // another version: no notes
                    n.buf.clear();
                    n.eof = true;
                }
                n.pos = NOTES_HEADER.len().min(n.buf.len());
            }
        }
        n
    }

    /// Read the next piece; false at the end (or on an error).
    fn fill(&mut self) -> bool {
        let Some(f) = self.file.as_mut() else {
            return false;
        };
        if self.eof {
            return false;
        }
        let old = self.buf.len();
        self.buf.resize(old + NOTES_CHUNK, 0);
        let n = loop {
            match f.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r.unwrap_or(0),
            }
        };
        self.buf.truncate(old + n);
        self.eof = n == 0;
        n > 0
    }

    /// The next whole line at `pos`, as (end of line, name, note).
    fn peek(&mut self) -> Option<(usize, &str, &str)> {
        let end = loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                break self.pos + i;
            }
            if !self.fill() {
                return None; // a last line without newline is unfinished
            }
        };
        let line = std::str::from_utf8(&self.buf[self.pos..end]).ok()?;
        let (name, note) = line.split_once('\t')?;
        Some((end, name, note))
    }

    /// The note kept for `name`. Calls must come in newest-first order
    /// (as a listing walks): the file is read forward only.
    pub fn get(&mut self, name: &str) -> Option<&str> {
        loop {
            let (end, order) = {
                let (end, line_name, _) = self.peek()?;
                (end, Names::cmp_order(line_name, name))
            };
            match order {
                Ordering::Greater => self.pos = end + 1, // newer: passed
                Ordering::Less => return None,           // not noted
                Ordering::Equal => break,
            }
        }
        self.peek().map(|(_, _, note)| note)
    }

    /// Keep `note` for `name` (None: forget the old one).
    pub fn learn(&mut self, name: &str, note: Option<String>) {
        if self.enabled {
            self.learned.push((name.to_string(), note));
        }
    }

    /// Are notes read and learned here (is the root large enough)?
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn changed(&self) -> bool {
        !self.learned.is_empty()
    }

    /// The whole new notes file: the old notes of names still present,
    /// updated by what was learned, newest first.
    fn merged(&mut self, names: &Names) -> String {
        while self.fill() {}
        let old_text = std::str::from_utf8(&self.buf[NOTES_HEADER.len().min(self.buf.len())..])
            .unwrap_or("")
            .to_string();
        let mut old = lines(&old_text)
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, note)| (n.to_string(), note.to_string()))
            .peekable();
        self.learned.sort_by(|a, b| Names::cmp_order(&b.0, &a.0));
        let mut learned = self.learned.iter().peekable();
        let mut out = String::from(NOTES_HEADER);
        for name in names.oldest_first().rev() {
            let mut note = None;
            while let Some((n, text)) = old.next_if(|(n, _)| Names::cmp_order(n, name).is_ge()) {
                if n == name {
                    note = Some(text);
                }
            }
            while let Some((n, l)) = learned.next_if(|(n, _)| Names::cmp_order(n, name).is_ge()) {
                if n == name {
                    note = l.clone(); // the last learned wins
                }
            }
            if let Some(note) = note.filter(|n| !n.contains('\n')) {
                out.push_str(name);
                out.push('\t');
                out.push_str(&note);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(tag: &str) -> Store {
        let r = std::env::temp_dir().join(format!("ae-cache-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&r);
        fs::create_dir_all(&r).unwrap();
        Store { root: r }
    }

    fn ulid(i: usize) -> String {
        format!("01JB{i:022}")
    }

    /// Wait until the root's last change is old enough to be cached.
    fn settle(s: &Store) {
        let m = store::root_stamp(&s.root).unwrap().mtime_ns;
        while !store::settled(m, crate::time::now_unix_ns()) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn names_file(s: &Store) -> PathBuf {
        s.root.join(CACHE_DIR).join(NAMES)
    }

    #[test]
    fn names_are_cached_until_the_root_changes() {
        let s = root("names");
        for i in 0..70 {
            fs::create_dir(s.root.join(ulid(i))).unwrap();
        }
        settle(&s);
        // The first save creates the cache directory: no names yet.
        ListCache::load(&s).unwrap().save();
        assert!(!names_file(&s).exists());
        settle(&s);
        ListCache::load(&s).unwrap().save();
        assert!(names_file(&s).exists());
        // Believed while the stamp holds (here: proven by a doctored file).
        let text = fs::read_to_string(names_file(&s)).unwrap();
        let short: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        fs::write(names_file(&s), &short).unwrap();
        assert_eq!(ListCache::load(&s).unwrap().names.len(), 1);
        fs::write(names_file(&s), &text).unwrap();
        assert_eq!(ListCache::load(&s).unwrap().names.len(), 70);
        // A new job: seen at once; not remembered until the root settles.
        fs::create_dir(s.root.join(ulid(70))).unwrap();
        let c = ListCache::load(&s).unwrap();
        assert_eq!(c.names.len(), 71);
        assert!(c.scanned.is_none());
        // A removed job is gone at once.
        fs::remove_dir(s.root.join(ulid(5))).unwrap();
        let c = ListCache::load(&s).unwrap();
        assert_eq!(c.names.len(), 70);
        assert!(c.names.oldest_first().all(|n| n != ulid(5)));
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn a_damaged_names_file_is_ignored() {
        let s = root("damaged");
        for i in 0..64 {
            fs::create_dir(s.root.join(ulid(i))).unwrap();
        }
        fs::create_dir(s.root.join(CACHE_DIR)).unwrap();
        settle(&s);
        let now = store::root_stamp(&s.root).unwrap();
        let header = format!(
            "{NAMES_HEADER} {} {} {}\n",
            now.ino, now.nlink, now.mtime_ns
        );
        // Out of order, an invalid name, legacy after ULIDs, another version.
        for text in [
            format!("{header}{}\n{}\n", ulid(2), ulid(1)),
            format!("{header}{}\n../etc\n", ulid(1)),
            format!("{header}{}\nlegacy\n", ulid(1)),
            header.replace("list-names 1", "list-names 0") + &ulid(1),
        ] {
            fs::write(names_file(&s), &text).unwrap();
            assert_eq!(ListCache::load(&s).unwrap().names.len(), 64, "{text}");
        }
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn notes_are_kept_merged_and_read_newest_first() {
        let s = root("notes");
        for i in 0..2000 {
            fs::create_dir(s.root.join(ulid(i))).unwrap();
        }
        fs::create_dir(s.root.join(CACHE_DIR)).unwrap();
        // Long notes: the file spans many read pieces.
        let note = |i: usize, v: &str| format!("{v}-{i}-{}", "x".repeat(60));
        let mut c = ListCache::load(&s).unwrap();
        for i in (0..2000).rev().filter(|i| i % 3 == 0) {
            c.notes.learn(&ulid(i), Some(note(i, "a")));
        }
        c.save();
        let mut c = ListCache::load(&s).unwrap();
        let text = fs::read_to_string(s.root.join(CACHE_DIR).join(NOTES)).unwrap();
        assert_eq!(
            text.lines().count(),
            1 + 667,
            "{}",
            &text[..200.min(text.len())]
        );
        for i in (0..2000).rev() {
            let want = (i % 3 == 0).then(|| note(i, "a"));
            assert_eq!(c.notes.get(&ulid(i)).map(str::to_string), want, "{i}");
        }
        // Learn one, forget one, keep the rest; a deleted job's note goes.
        c.notes.learn(&ulid(1), Some(note(1, "b")));
        c.notes.learn(&ulid(3), None);
        c.save();
        fs::remove_dir(s.root.join(ulid(6))).unwrap();
        let mut c = ListCache::load(&s).unwrap();
        c.notes.learn(&ulid(9), Some(note(9, "c")));
        c.save();
        let mut c = ListCache::load(&s).unwrap();
        assert_eq!(c.notes.get(&ulid(1999)), None);
        assert_eq!(
            c.notes.get(&ulid(1998)).map(str::to_string),
            Some(note(1998, "a"))
        );
        assert_eq!(
            c.notes.get(&ulid(9)).map(str::to_string),
            Some(note(9, "c"))
        );
        assert_eq!(c.notes.get(&ulid(3)), None);
        assert_eq!(
            c.notes.get(&ulid(1)).map(str::to_string),
            Some(note(1, "b"))
        );
        assert_eq!(
            c.notes.get(&ulid(0)).map(str::to_string),
            Some(note(0, "a"))
        );
        let text = fs::read_to_string(s.root.join(CACHE_DIR).join(NOTES)).unwrap();
        assert!(!text.contains(&ulid(6)));
        fs::remove_dir_all(&s.root).unwrap();
    }
}
