//! The list cache, `<root>/.cache/list`: what `list` learned about a
//! root, so that listing a root of a thousand jobs neither scans the
//! directory nor opens two files for every job it shows. On ext4 the
//! kernel hashes and sorts every entry of the root on each scan; that and
//! the per-job reads were nearly all of `list`'s time.
//!
//! Format: a header `agent-exec list-cache 3 INO NLINK MTIME_NS LEGACY`,
//! then one line per job directory, newest first (ULIDs descending, then
//! the LEGACY non-ULID names descending): the name and, for a job `list`
//! has read in a final state, a tab and a note. A note is opaque here;
//! `cmd::list` writes it and checks it against its job's files. A valid
//! id holds neither tab nor newline, so the lines parse exactly.
//!
//! Newest first, because listings walk that way: the file is read in
//! pieces as the walk goes, so a default listing reads a few KiB whatever
//! the size of the root, and the neighbours that make a short id unique
//! are the lines around a name.
//!
//! Invariants
//! - The names are trusted only while the root's inode, link count and
//!   mtime are the header's: creating or removing a job directory changes
//!   the mtime and the link count. A stamp is only written when it was
//!   taken well after the root's last change (`store::settled`), so that
//!   no later change can hide inside the file system's timestamp
//!   granularity; otherwise the header says `0 0 0` (names untrusted, the
//!   notes still good).
//! - A note proves itself against its job's files (`cmd::list` keeps
//!   their stamps in it), so notes outlive any change of the root.
//! - Advisory: any doubt (unreadable, another version, out of order, an
//!   invalid name, larger than `MAX_BYTES`) means scanning and reading
//!   afresh, and a file read only in part is never written back. The file sits in a
//!   subdirectory, so writing it leaves the root's stamp alone; it is
//!   written by temp file + rename, and only when something was learned.
//!
//! Rejected: reading and parsing the whole file first (its cost grew with
//! the root, and after one `list --all` with every job's note); a cache
//! per job directory (one more file to open per job, which is what is
//! saved); trusting final states without stamps (a hand-edited state file
//! would be listed stale).

use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::error::Result;
use crate::store::{self, Names, RootStamp, Store, CACHE_DIR};

const FILE: &str = "list";
const HEADER: &str = "agent-exec list-cache 3";
/// Smaller roots list fast enough: no cache file.
const MIN_JOBS: usize = 64;
/// The file is read in pieces this large, as the walk needs them.
const CHUNK: usize = 16 << 10;
/// No more of the file is read (about 150 bytes a job: a million jobs);
/// a larger file is damaged, and the walk falls back to a scan.
const MAX_BYTES: usize = if cfg!(test) { 1 << 20 } else { 256 << 20 };
/// Written in a header for names that are not to be trusted.
const UNTRUSTED: RootStamp = RootStamp {
    ino: 0,
    nlink: 0,
    mtime_ns: 0,
};

/// One job directory of the walk, newest first.
pub struct Walked {
    pub name: String,
    /// Its shortest unique prefix among all the root's names (≥ 10).
    pub short_id: String,
    /// The note kept for it, to be checked by the caller.
    pub note: Option<String>,
    /// The walk starts over here (the file turned out damaged): forget
    /// what was walked before.
    pub restart: bool,
}

/// Where the walk takes its names from.
enum Walk {
    /// The cache file's lines, read as the walk goes; `prev` is the name
    /// before (newer), `done` set at the end.
    File { prev: Option<String>, done: bool },
    /// Names in memory (from a scan, or from a file that holds legacy
    /// names); notes, if any, come from the file by name.
    Names { names: Names, next: usize },
}

/// A root's names in creation order, newest first, with their notes.
pub struct ListCache {
    store: Store,
    dir: PathBuf,
    file: Lines,
    /// The old file's header: trusted stamp or not, and its legacy count.
    header: Option<(RootStamp, usize)>,
    walk: Walk,
    /// The stamp to write with the names (None: `0 0 0`).
    stamp: Option<RootStamp>,
    learned: Vec<(String, Option<String>)>,
    enabled: bool,
    /// Wall clock (ns) before anything was read: what note makers compare
    /// file times with.
    pub t0: i128,
}

impl ListCache {
    pub fn load(store: &Store) -> Result<ListCache> {
        let t0 = crate::time::now_unix_ns();
        let dir = store.root.join(CACHE_DIR);
        let now = store::root_stamp(&store.root);
        let mut file = Lines::open(&dir.join(FILE));
        let header = file.next_line().and_then(parse_header);
        if header.is_none() {
            file = Lines::empty();
        }
        let mut c = ListCache {
            store: store.clone(),
            dir,
            file,
            header,
            walk: Walk::File {
                prev: None,
                done: false,
            },
            stamp: None,
            learned: Vec::new(),
            enabled: true,
            t0,
        };
        match (header, now) {
            (Some((stamp, 0)), Some(now)) if stamp == now => c.stamp = Some(now),
            (Some((stamp, _)), Some(now)) if stamp == now => {
                // Legacy names sort apart: the whole list is needed for
                // their short ids.
                match c.file.names() {
                    Some(names) => {
                        c.walk = Walk::Names { names, next: 0 };
                        c.stamp = Some(now);
                    }
                    None => c.rescan(None)?,
                }
            }
            _ => c.rescan(now)?,
        }
        Ok(c)
    }

    /// Take the names from a scan (keeping the file for its notes, if it
    /// reads as one), remembered under `now` if the root has settled.
    fn rescan(&mut self, now: Option<RootStamp>) -> Result<()> {
        let names = self.store.names()?;
        self.enabled = names.len() >= MIN_JOBS;
        // The file has no line for a directory whose name is not UTF-8,
        // yet `list` counts those: while there is one, every listing
        // scans (names untrusted).
        self.stamp = now
            .filter(|s| store::settled(s.mtime_ns, self.t0))
            .filter(|_| names.foreign() == 0);
        self.walk = Walk::Names { names, next: 0 };
        Ok(())
    }

    /// Directories of the root whose names are not UTF-8 (never walked).
    /// Names are taken from the file only when there were none.
    pub fn foreign(&self) -> u64 {
        match &self.walk {
            Walk::Names { names, .. } => names.foreign(),
            Walk::File { .. } => 0,
        }
    }

    /// May notes be learned (will they be written)?
    pub fn learning(&self) -> bool {
        self.enabled
    }

    /// The next job directory, newest first.
    pub fn next(&mut self) -> Option<Walked> {
        match &mut self.walk {
            Walk::File { prev, done } => {
                if *done {
                    return None;
                }
                let Some((name, note)) = self.file.next_entry() else {
                    if self.file.capped {
                        return self.fall_back(); // not the whole file
                    }
                    *done = true;
                    return None;
                };
                let in_order = prev.as_deref().map_or(true, |p| name.as_str() < p);
                if !store::is_ulid(&name) || !in_order {
                    return self.fall_back();
                }
                let older = self.file.peek_name();
                let shared = [prev.as_deref(), older.as_deref()]
                    .into_iter()
                    .flatten()
                    .map(|o| store::common_prefix(o, &name))
                    .max()
                    .unwrap_or(0);
                *prev = Some(name.clone());
                Some(Walked {
                    short_id: store::short_prefix(&name, shared),
                    name,
                    note,
                    restart: false,
                })
            }
            Walk::Names { names, next } => {
                let name = names.newest(*next)?.to_string();
                *next += 1;
                let short_id = names.short_id(&name);
                let note = self.file.note_for(&name);
                Some(Walked {
                    name,
                    short_id,
                    note,
                    restart: false,
                })
            }
        }
    }

    /// The file turned out damaged mid-walk (so what was walked may be
    /// wrong): start over from a scan.
    fn fall_back(&mut self) -> Option<Walked> {
        self.file = Lines::empty();
        self.header = None;
        self.rescan(store::root_stamp(&self.store.root)).ok()?;
        let mut w = self.next()?;
        w.restart = true;
        Some(w)
    }

    /// Keep `note` for `name` (None: forget the old one).
    pub fn learn(&mut self, name: &str, note: Option<String>) {
        if self.enabled {
            self.learned.push((name.to_string(), note));
        }
    }

    /// Write what was learned. Best effort: a read-only root stays
    /// uncached.
    pub fn save(mut self) {
        let old_stamp = self.header.map(|(s, _)| s);
        let new_names = matches!(self.walk, Walk::Names { .. }) && self.stamp != old_stamp;
        if !self.enabled || (self.learned.is_empty() && !(new_names && self.stamp.is_some())) {
            return;
        }
        // Creating the directory changes the root: a stamp taken before
        // would be wrong.
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) if self.learned.is_empty() => return,
            Ok(()) => self.stamp = None,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => return,
        }
        self.file.rewind();
        self.learned.sort_by(|a, b| Names::cmp_order(&b.0, &a.0));
        let learned = std::mem::take(&mut self.learned);
        let mut learned = learned.into_iter().peekable();
        let mut body = String::with_capacity(self.file.buf.len() + 64 * learned.len() + 4096);
        let mut legacy = 0;
        let mut put = |body: &mut String, name: &str, old: Option<String>| {
            let mut note = old;
            while let Some((n, l)) = learned.next_if(|(n, _)| Names::cmp_order(n, name).is_ge()) {
                if n == name {
                    note = l; // the last learned wins
                }
            }
            legacy += usize::from(!store::is_ulid(name));
            body.push_str(name);
            if let Some(n) = note.filter(|n| !n.contains('\n')) {
                body.push('\t');
                body.push_str(&n);
            }
            body.push('\n');
        };
        match &self.walk {
            Walk::File { .. } => {
                while let Some((name, note)) = self.file.next_entry() {
                    put(&mut body, &name, note);
                }
                if self.file.capped {
                    return; // never write back a part as the whole
                }
            }
            Walk::Names { names, .. } => {
                for name in names.oldest_first().rev() {
                    let note = self.file.note_for(name);
                    put(&mut body, name, note);
                }
            }
        }
        let s = self.stamp.unwrap_or(UNTRUSTED);
        let text = format!(
            "{HEADER} {} {} {} {legacy}\n{body}",
            s.ino, s.nlink, s.mtime_ns
        );
        let _ = store::write_atomic(&self.dir, FILE, text.as_bytes(), false);
    }
}

/// The header's stamp and legacy count.
fn parse_header(line: String) -> Option<(RootStamp, usize)> {
    let mut w = line.rsplitn(5, ' ');
    let legacy = w.next()?.parse().ok()?;
    let mtime_ns = w.next()?.parse().ok()?;
    let nlink = w.next()?.parse().ok()?;
    let ino = w.next()?.parse().ok()?;
    let stamp = RootStamp {
        ino,
        nlink,
        mtime_ns,
    };
    (w.next()? == HEADER).then_some((stamp, legacy))
}

/// A file read forward in pieces, line by line. A last line without its
/// newline is unfinished (a torn file) and not returned.
struct Lines {
    file: Option<File>,
    buf: Vec<u8>,
    /// Start of the first line not yet taken; `body` of the first after
    /// the header.
    pos: usize,
    body: usize,
    eof: bool,
    /// Stopped at MAX_BYTES: what was read is not the whole file.
    capped: bool,
}

impl Lines {
    fn empty() -> Lines {
        Lines {
            file: None,
            buf: Vec::new(),
            pos: 0,
            body: 0,
            eof: true,
            capped: false,
        }
    }

    fn open(path: &std::path::Path) -> Lines {
        let mut l = Lines::empty();
        if let Ok(f) = crate::sys::open_read(path) {
            l.file = Some(f);
            l.eof = false;
            // Room for a default walk without growing (growing copies).
            l.buf.reserve(4 * CHUNK);
        }
        l
    }

    /// Read the next piece; false at the end (or on an error).
    fn fill(&mut self) -> bool {
        let Some(f) = self.file.as_mut().filter(|_| !self.eof) else {
            return false;
        };
        let old = self.buf.len();
        if old + CHUNK > MAX_BYTES {
            self.eof = true;
            self.capped = true;
            return false;
        }
        self.buf.resize(old + CHUNK, 0);
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

    /// The end of the line at `pos`, reading more as needed.
    fn line_end(&mut self) -> Option<usize> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                return Some(self.pos + i);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn line_at(&self, end: usize) -> Option<&str> {
        std::str::from_utf8(&self.buf[self.pos..end]).ok()
    }

    /// The header line; what follows is the body.
    fn next_line(&mut self) -> Option<String> {
        let end = self.line_end()?;
        let line = self.line_at(end)?.to_string();
        self.pos = end + 1;
        self.body = self.pos;
        Some(line)
    }

    /// The next whole line as (its end, name, note), not taken.
    fn peek(&mut self) -> Option<(usize, &str, Option<&str>)> {
        let end = self.line_end()?;
        let line = self.line_at(end)?;
        Some(match line.split_once('\t') {
            Some((name, note)) => (end, name, Some(note).filter(|n| !n.is_empty())),
            None => (end, line, None),
        })
    }

    /// The next (name, note) line, taken.
    fn next_entry(&mut self) -> Option<(String, Option<String>)> {
        let (end, name, note) = self.peek()?;
        let entry = (name.to_string(), note.map(str::to_string));
        self.pos = end + 1;
        Some(entry)
    }

    /// The name on the next line, not taken.
    fn peek_name(&mut self) -> Option<String> {
        self.peek().map(|(_, name, _)| name.to_string())
    }

    /// The note on the line of `name`, for names asked newest first: lines
    /// of newer names are passed over.
    fn note_for(&mut self, name: &str) -> Option<String> {
        loop {
            let (_, line_name, _) = self.peek()?;
            match Names::cmp_order(line_name, name) {
                Ordering::Greater => {
                    self.next_entry();
                }
                Ordering::Less => return None,
                Ordering::Equal => return self.next_entry()?.1,
            }
        }
    }

    /// Every name of the body, as `Names` (None: invalid or out of order).
    fn names(&mut self) -> Option<Names> {
        let mut names = Names::default();
        let mut prev: Option<String> = None;
        while let Some((name, _)) = self.next_entry() {
            let in_order = prev
                .as_deref()
                .map_or(true, |p| Names::cmp_order(&name, p).is_lt());
            if !store::valid_id(&name) || !in_order {
                return None;
            }
            names.push(&name);
            prev = Some(name);
        }
        if self.capped {
            return None;
        }
        names.sort();
        self.rewind();
        Some(names)
    }

    /// Back to the first line after the header.
    fn rewind(&mut self) {
        self.pos = self.body.min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(tag: &str) -> Store {
        let r = std::env::temp_dir().join(format!("ae-cache-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&r);
        fs::create_dir_all(&r).unwrap();
        Store::at(r)
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

    fn cache_file(s: &Store) -> PathBuf {
        s.root.join(CACHE_DIR).join(FILE)
    }

    /// Every walked (name, short id, note), newest first, as a lister
    /// sees it.
    fn walk(c: &mut ListCache) -> Vec<(String, String, Option<String>)> {
        let mut v = Vec::new();
        while let Some(w) = c.next() {
            if w.restart {
                v.clear();
            }
            v.push((w.name, w.short_id, w.note));
        }
        v
    }

    fn from_file(c: &ListCache) -> bool {
        matches!(c.walk, Walk::File { .. })
    }

    #[test]
    fn names_come_from_the_file_until_the_root_changes() {
        let s = root("names");
        for i in 0..70 {
            fs::create_dir(s.root.join(ulid(i))).unwrap();
        }
        let scanned = walk(&mut ListCache::load(&s).unwrap());
        assert_eq!(scanned.len(), 70);
        assert_eq!(scanned[0].0, ulid(69));
        settle(&s);
        // The first save creates the cache directory: names untrusted.
        ListCache::load(&s).unwrap().save();
        assert!(!cache_file(&s).exists());
        settle(&s);
        ListCache::load(&s).unwrap().save();
        let mut c = ListCache::load(&s).unwrap();
        assert!(from_file(&c));
        assert_eq!(walk(&mut c), scanned, "same names and short ids");
        // A new job: seen at once, from a scan.
        fs::create_dir(s.root.join(ulid(70))).unwrap();
        let mut c = ListCache::load(&s).unwrap();
        assert!(!from_file(&c));
        assert_eq!(walk(&mut c).len(), 71);
        // Not remembered until the root settles.
        ListCache::load(&s).unwrap().save();
        assert!(!from_file(&ListCache::load(&s).unwrap()));
        settle(&s);
        ListCache::load(&s).unwrap().save();
        assert!(from_file(&ListCache::load(&s).unwrap()));
        // A removed job is gone at once.
        fs::remove_dir(s.root.join(ulid(5))).unwrap();
        let got = walk(&mut ListCache::load(&s).unwrap());
        assert_eq!(got.len(), 70);
        assert!(got.iter().all(|(n, _, _)| *n != ulid(5)));
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn a_damaged_file_means_a_scan() {
        let s = root("damaged");
        for i in 0..64 {
            fs::create_dir(s.root.join(ulid(i))).unwrap();
        }
        fs::create_dir(s.root.join(CACHE_DIR)).unwrap();
        settle(&s);
        let now = store::root_stamp(&s.root).unwrap();
        let header = format!("{HEADER} {} {} {} 0\n", now.ino, now.nlink, now.mtime_ns);
        let want = walk(&mut ListCache::load(&s).unwrap());
        // Out of order, an invalid name, an undeclared legacy name, a torn
        // last line, another version: the walk still sees every job once.
        for text in [
            format!("{header}{}\n{}\n{}\n", ulid(63), ulid(61), ulid(62)),
            format!("{header}{}\n../etc\n", ulid(63)),
            format!("{header}{}\nlegacy\n", ulid(63)),
            header.replace("list-cache 3", "list-cache 1") + &ulid(1) + "\n",
        ] {
            fs::write(cache_file(&s), &text).unwrap();
            assert_eq!(walk(&mut ListCache::load(&s).unwrap()), want, "{text}");
        }
        // The stamp is the proof: a well-formed file for this very root
        // state is believed (here: doctored to one name).
        fs::write(cache_file(&s), format!("{header}{}\n", ulid(1))).unwrap();
        assert_eq!(walk(&mut ListCache::load(&s).unwrap()).len(), 1);
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn an_oversized_file_is_not_believed_or_cut_short() {
        let s = root("oversized");
        for i in 0..70 {
            fs::create_dir(s.root.join(ulid(i))).unwrap();
        }
        fs::create_dir(s.root.join(CACHE_DIR)).unwrap();
        settle(&s);
        let want = walk(&mut ListCache::load(&s).unwrap());
        let now = store::root_stamp(&s.root).unwrap();
        // Well-formed, stamped for this root, but past MAX_BYTES: notes
        // of 16 KiB each on 70 names.
        let mut text = format!("{HEADER} {} {} {} 0\n", now.ino, now.nlink, now.mtime_ns);
        for i in (0..70).rev() {
            text.push_str(&format!("{}\t{}\n", ulid(i), "n".repeat(16 << 10)));
        }
        assert!(text.len() > MAX_BYTES);
        fs::write(cache_file(&s), &text).unwrap();
        let mut c = ListCache::load(&s).unwrap();
        let got: Vec<_> = walk(&mut c).into_iter().map(|(n, id, _)| (n, id)).collect();
        let want_ids: Vec<_> = want
            .iter()
            .map(|(n, id, _)| (n.clone(), id.clone()))
            .collect();
        assert_eq!(got, want_ids);
        // A listing that learned something and read only the start does
        // not write back part of the file as the whole.
        let mut c = ListCache::load(&s).unwrap();
        let first = c.next().unwrap();
        c.learn(&first.name, Some("x".into()));
        c.save();
        assert_eq!(walk(&mut ListCache::load(&s).unwrap()).len(), 70);
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn notes_are_kept_and_merged() {
        let s = root("notes");
        for i in 0..2000 {
            fs::create_dir(s.root.join(ulid(i))).unwrap();
        }
        fs::create_dir(s.root.join(CACHE_DIR)).unwrap();
        fs::create_dir(s.root.join("legacy-b")).unwrap();
        // Long notes: the file spans many pieces.
        let note = |i: usize, v: &str| format!("{v}-{i}-{}", "x".repeat(60));
        let mut c = ListCache::load(&s).unwrap();
        for i in (0..2000).rev().filter(|i| i % 3 == 0) {
            c.learn(&ulid(i), Some(note(i, "a")));
        }
        c.learn("legacy-b", Some("n".into()));
        c.save();
        let got = walk(&mut ListCache::load(&s).unwrap());
        assert_eq!(got.len(), 2001);
        for (k, (name, _, n)) in got.iter().enumerate().take(2000) {
            let i = 1999 - k;
            assert_eq!(*name, ulid(i));
            assert_eq!(*n, (i % 3 == 0).then(|| note(i, "a")), "{i}");
        }
        assert_eq!(got[2000].2.as_deref(), Some("n"));
        // Learn one, forget one, keep the rest; a deleted job's note goes.
        let mut c = ListCache::load(&s).unwrap();
        c.learn(&ulid(1), Some(note(1, "b")));
        c.learn(&ulid(3), None);
        c.save();
        fs::remove_dir(s.root.join(ulid(6))).unwrap();
        let mut c = ListCache::load(&s).unwrap();
        c.learn(&ulid(9), Some(note(9, "c")));
        c.save();
        let got: std::collections::HashMap<String, Option<String>> =
            walk(&mut ListCache::load(&s).unwrap())
                .into_iter()
                .map(|(n, _, note)| (n, note))
                .collect();
        assert_eq!(got[&ulid(1998)], Some(note(1998, "a")));
        assert_eq!(got[&ulid(9)], Some(note(9, "c")));
        assert_eq!(got[&ulid(3)], None);
        assert_eq!(got[&ulid(1)], Some(note(1, "b")));
        assert!(!got.contains_key(&ulid(6)));
        let text = fs::read_to_string(cache_file(&s)).unwrap();
        assert!(!text.contains(&ulid(6)));
        fs::remove_dir_all(&s.root).unwrap();
    }
}
