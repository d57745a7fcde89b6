//! `--table`: a view for people. `list`, `ps` and `status` documents
//! rendered as an aligned plain-text table with the header row
//! `ID STATE AGE DURATION EXIT COMMAND TAGS`.
//!
//! Invariants
//! - Only ever chosen by the flag (D39): nothing here looks at whether
//!   stdout is a terminal, so scripts and agents always get JSON.
//! - Rendered from the very document the command would print (its JSON
//!   text), so the table never shows anything the document does not.
//! - No line is wider than the terminal: `COLUMNS`, else 100. The
//!   COMMAND column gives way first (cut, ending in `…`, down to
//!   `COMMAND_FLOOR` columns), then TAGS (cut the same way), then a line
//!   that is still too wide is cut at the width, ending in `…`.
//! - One job is one line: control characters in a command or tag are
//!   shown as spaces, and so are the bidirectional formatting characters
//!   and the line and paragraph separators (`one_line`).
//! - A list that `--limit` cut (`truncated`) says so on stderr
//!   (`cut_note`), not in the table: stdout stays the table alone.
//! - Commands other than list, ps and status refuse `--table` with a
//!   usage error before doing anything (main); an error document stays
//!   the JSON (or YAML) error document.
//!
//! Rejected: choosing the table when stdout is a terminal (D39); a
//! per-command renderer (each would drift from its document).

use serde_json::Value;

/// The commands that can print a table.
pub const COMMANDS: [&str; 3] = ["list", "ps", "status"];

pub const HEADER: [&str; 7] = ["ID", "STATE", "AGE", "DURATION", "EXIT", "COMMAND", "TAGS"];

/// Refuse `--table` where there is no table to print, and beside
/// `--yaml`, before the command does anything.
pub fn check(m: &crate::cli::Matches) -> crate::error::Result<()> {
    if !m.table {
        return Ok(());
    }
    if m.yaml {
        return Err(crate::error::Error::usage(
            "--table and --yaml cannot be used together",
        ));
    }
    if !COMMANDS.contains(&m.cmd.name) {
        return Err(crate::error::Error::usage(format!(
            "--table is for {} only; 'agent-exec {}' prints {}",
            COMMANDS.join(", "),
            m.cmd.name,
            // What it prints instead: a script, MCP's messages, else its
            // document.
            match m.cmd.name {
                "completions" => "a shell script",
                "mcp" => "MCP messages only, no document of its own",
                _ => "its JSON document",
            }
        )));
    }
    Ok(())
}

/// The width to fit: `COLUMNS` when it is a positive number, else 100.
pub fn width_from_env() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
        .unwrap_or(100)
}

/// The table for a `list`/`status` document's JSON text (None: not such
/// a document). `now`: Unix seconds. `short`: the short id of a job
/// whose entry has none (a `status` document), so that ID is the same
/// short form in every table; None keeps the full id.
pub fn render(
    json: &str,
    now: i64,
    width: usize,
    short: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    let jobs: Vec<&Value> = match v.get("jobs").and_then(Value::as_array) {
        Some(a) => a.iter().collect(),
        None if v.get("job_id").is_some() => vec![&v],
        None => return None,
    };
    let rows: Vec<[String; 7]> = jobs.iter().map(|j| row(j, now, short)).collect();
    Some(layout(&rows, width))
}

/// For a list cut by `--limit` (`truncated` in its document), the note
/// a person is given on stderr, as the document says it to a program:
/// the table alone cannot show that more jobs matched.
pub fn cut_note(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    if v.get("truncated") != Some(&Value::Bool(true)) {
        return None;
    }
    let shown = v.get("jobs").and_then(Value::as_array).map_or(0, Vec::len);
    let jobs = if shown == 1 { "job" } else { "jobs" };
    Some(format!(
        "agent-exec: {shown} {jobs} shown; more match (--limit; --limit 0 lists them all)"
    ))
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Control characters (a newline in a shell string) become spaces, and
/// so do the characters that move or break text without being controls
/// to Rust: the bidirectional marks, embeddings, overrides and isolates
/// (one could show a row's cells in another order) and the line and
/// paragraph separators (a terminal may start a new line at them).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || moves_text(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069 (bidi), U+2028,
/// U+2029 (separators).
fn moves_text(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

fn row(j: &Value, now: i64, short: &dyn Fn(&str) -> Option<String>) -> [String; 7] {
    let id = text(j, "short_job_id")
        .or_else(|| text(j, "job_id").map(|id| short(&id).unwrap_or(id)))
        .unwrap_or_default();
    let state = text(j, "state").unwrap_or_default();
    let since = |k: &str| {
        text(j, k)
            .and_then(|t| crate::time::parse_ts(&t))
            .map(|t| (now - t).max(0) as u64 * 1000)
    };
    // Timestamps are to the second: under one is "<1s", not "0ms".
    let secs = |ms: u64| if ms == 0 { "<1s".into() } else { human_ms(ms) };
    let age = since("created_at").map_or("-".into(), secs);
    let ts = |k: &str| text(j, k).and_then(|t| crate::time::parse_ts(&t));
    // Entries without duration_ms (not terminal, or from an older
    // binary's state): their timestamps, to the second, say it.
    let duration = match j.get("duration_ms").and_then(Value::as_u64) {
        Some(ms) => human_ms(ms),
        None if state == "running" => since("started_at").map_or("-".into(), secs),
        None => match (ts("started_at"), ts("finished_at")) {
            (Some(s), Some(f)) if f > s => human_ms((f - s) as u64 * 1000),
            (Some(_), Some(_)) => "<1s".into(),
            _ => "-".into(),
        },
    };
    let exit = match (
        j.get("exit_code").and_then(Value::as_i64),
        text(j, "signal"),
    ) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => s,
        (None, None) => "-".into(),
    };
    let command = j
        .get("command")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(one_line)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let tags = j
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(one_line)
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "-".into());
    [id, state, age, duration, exit, command, tags]
}

/// `950ms`, `12s`, `3m05s`, `2h04m`, `3d04h`.
pub fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The terminal columns `c` takes: 2 for East Asian wide and fullwidth
/// characters and the emoji blocks, 0 for combining marks and zero-width
/// characters, else 1. The main ranges of Unicode's East Asian Width
/// property, not all of it: a table must not run past the terminal for
/// the scripts people name commands in, and a full table is not worth
/// its size here.
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x0300..=0x036F
        | 0x200B..=0x200F
        | 0x2060..=0x2064
        | 0x20D0..=0x20FF
        | 0xFE00..=0xFE0F
        | 0xFEFF => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        // Symbols that are emoji by default, wide in the same property
        // (✅ U+2705, ⌚ U+231A ...): a 🚀 row ran 9 columns past 100.
        | 0x231A..=0x231B
        | 0x2329..=0x232A
        | 0x23E9..=0x23EC
        | 0x23F0
        | 0x23F3
        | 0x25FD..=0x25FE
        | 0x2614..=0x2615
        | 0x2648..=0x2653
        | 0x267F
        | 0x2693
        | 0x26A1
        | 0x26AA..=0x26AB
        | 0x26BD..=0x26BE
        | 0x26C4..=0x26C5
        | 0x26CE
        | 0x26D4
        | 0x26EA
        | 0x26F2..=0x26F3
        | 0x26F5
        | 0x26FA
        | 0x26FD
        | 0x2705
        | 0x270A..=0x270B
        | 0x2728
        | 0x274C
        | 0x274E
        | 0x2753..=0x2755
        | 0x2757
        | 0x2795..=0x2797
        | 0x27B0
        | 0x27BF
        | 0x2B1B..=0x2B1C
        | 0x2B50
        | 0x2B55
        | 0x16FE0..=0x18CFF
        | 0x1B000..=0x1B2FF
        | 0x1F004
        | 0x1F0CF
        | 0x1F18E
        | 0x1F191..=0x1F19A
        | 0x1F200..=0x1F265
        | 0x1F300..=0x1F64F
        | 0x1F680..=0x1F6FF
        | 0x1F7E0..=0x1F7F0
        | 0x1F900..=0x1F9FF
        | 0x1FA70..=0x1FAFF
        | 0x20000..=0x2FFFD
        | 0x30000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// The terminal columns `s` takes (`char_width`).
fn chars(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// The longest start of `s` that fits in `w` columns.
fn fit(s: &str, w: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += char_width(c);
        if used > w {
            return &s[..i];
        }
    }
    s
}

/// `s` cut to at most `w` columns, ending in `…` when cut.
fn cut(s: &str, w: usize) -> String {
    if chars(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = fit(s, w - 1).to_string();
    out.push('…');
    out
}

/// Left-aligned columns two spaces apart, COMMAND narrowed to fit.
/// The fewest columns COMMAND is cut to while TAGS still has room to
/// give (a command shorter than this keeps its own width).
const COMMAND_FLOOR: usize = 24;

fn layout(rows: &[[String; 7]], width: usize) -> String {
    const GAP: usize = 2;
    const COMMAND: usize = 5;
    let mut w: [usize; 7] = HEADER.map(str::len);
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            w[i] = w[i].max(chars(cell));
        }
    }
    const TAGS: usize = 6;
    // The columns before COMMAND, and every gap: never cut.
    let fixed: usize = w[..COMMAND].iter().sum::<usize>() + GAP * (w.len() - 1);
    // COMMAND and TAGS share the rest. COMMAND gives way first, but not
    // below a readable floor (one wide tag list used to leave every
    // command a few columns); the tags of each row get what is left,
    // and then the line is cut at the width (the README's order: a
    // four-column stub of tags had been kept by cutting COMMAND under
    // its floor).
    let room = width.saturating_sub(fixed);
    if w[COMMAND] + w[TAGS] > room {
        w[COMMAND] = room
            .saturating_sub(w[TAGS])
            .max(COMMAND_FLOOR)
            .min(w[COMMAND])
            .max(HEADER[COMMAND].len());
    }
    let mut out = String::new();
    let header = HEADER.map(str::to_string);
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            let cell = if i == COMMAND {
                cut(cell, w[i])
            } else if i + 1 == r.len() {
                // TAGS, last: what room the line has left, ending in `…`
                // when cut, as COMMAND does (a tag cut silently would
                // read as a whole one, and hide those after it).
                // No room at all: whole, and the line's cut below ends
                // it in `…` (cut to nothing, the column vanished without
                // a sign).
                match width.saturating_sub(chars(&line)) {
                    0 => cell.clone(),
                    left => cut(cell, left),
                }
            } else {
                cell.clone()
            };
            line.push_str(&cell);
            if i + 1 < r.len() {
                let pad = w[i] - chars(&cell) + GAP;
                line.extend(std::iter::repeat(' ').take(pad));
            }
        }
        // Columns before COMMAND wider than the width: the line is cut,
        // and says so.
        out.push_str(cut(line.trim_end(), width).trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_cut_list_says_how_many_it_shows() {
        let note = |j: &str| cut_note(j);
        assert_eq!(
            note(r#"{"jobs":[{"job_id":"A"}],"truncated":true}"#).as_deref(),
            Some("agent-exec: 1 job shown; more match (--limit; --limit 0 lists them all)")
        );
        assert!(note(r#"{"jobs":[{},{}],"truncated":true}"#)
            .unwrap()
            .contains("2 jobs shown"));
        assert_eq!(note(r#"{"jobs":[],"truncated":false}"#), None);
        assert_eq!(note(r#"{"job_id":"A"}"#), None);
    }
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ms(950), "950ms");
        assert_eq!(human_ms(12_400), "12s");
        assert_eq!(human_ms(185_000), "3m05s");
        assert_eq!(human_ms(7_440_000), "2h04m");
        assert_eq!(human_ms(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    }

    #[test]
    fn list_and_status_documents_become_aligned_rows() {
        let now = crate::time::parse_ts("2026-01-01T00:01:00Z").unwrap();
        let list = r#"{"type":"list","jobs":[
            {"job_id":"01AAAAAAAAAAAAAAAAAAAAAAAA","short_job_id":"01AAAAAAAA","state":"exited","exit_code":0,
             "created_at":"2026-01-01T00:00:00Z","duration_ms":1500,"tags":["ci","x.y"],"command":["echo","hi"]},
            {"job_id":"01BBBBBBBBBBBBBBBBBBBBBBBB","short_job_id":"01BBBBBBBB","state":"running",
             "created_at":"2026-01-01T00:00:30Z","started_at":"2026-01-01T00:00:30Z","tags":[],"command":["sleep 100\nx"]}]}"#;
        let t = render(list, now, 100, &|_| None).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("ID "), "{t}");
        for (h, l) in [("STATE", 1), ("EXIT", 1), ("COMMAND", 2), ("TAGS", 1)] {
            let at = lines[0].find(h).unwrap();
            // Every row's cell starts where its header does.
            let cell = &lines[l][at..];
            assert!(!cell.starts_with(' '), "{h}: {t}");
        }
        assert!(
            lines[1].contains("1s") && lines[1].contains("ci,x.y"),
            "{t}"
        );
        assert!(
            lines[2].contains("30s") && lines[2].contains("sleep 100 x"),
            "{t}"
        );
        let status = r#"{"type":"status","job_id":"01CCCCCCCCCCCCCCCCCCCCCCCC","state":"killed","signal":"SIGTERM",
            "created_at":"2026-01-01T00:00:00Z","tags":[],"command":["x"]}"#;
        let t = render(status, now, 100, &|_| None).unwrap();
        assert!(t.lines().nth(1).unwrap().contains("SIGTERM"), "{t}");
        // A status document has no short_job_id: the caller's short form.
        let t = render(status, now, 60, &|id| Some(id[..10].to_string())).unwrap();
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("01CCCCCCCC ") && row.ends_with('-'), "{t}");
        assert!(render(r#"{"type":"gc"}"#, now, 100, &|_| None).is_none());
        // Bidi controls and line separators cannot reorder or split a row.
        let tricky = status.replace(
            r#"["x"]"#,
            r#"["a\u202eb\u200ec\u200fd\u2066e\u2069f\u2028g\u2029h\u061ci"]"#,
        );
        let t = render(&tricky, now, 100, &|_| None).unwrap();
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(t.contains("a b c d e f g h i"), "{t}");
    }

    #[test]
    fn wide_commands_are_cut_to_the_width() {
        let long = "x".repeat(300);
        let doc = format!(
            r#"{{"jobs":[{{"job_id":"J","state":"exited","created_at":"2026-01-01T00:00:00Z","tags":["t"],"command":["{long}"]}}]}}"#
        );
        for width in [60, 80, 100] {
            let t = render(&doc, 0, width, &|_| None).unwrap();
            for l in t.lines() {
                assert!(chars(l) <= width, "{width}: {l}");
            }
            let row = t.lines().nth(1).unwrap();
            assert!(row.contains('…') && row.ends_with('t'), "{row}");
        }
        // Wide characters take two columns each: cut by columns.
        let wide = "日本語".repeat(24);
        let doc = doc.replace(&long, &wide);
        for width in [60, 61, 80] {
            let t = render(&doc, 0, width, &|_| None).unwrap();
            assert!(t.lines().all(|l| chars(l) <= width), "{width}: {t}");
            let row = t.lines().nth(1).unwrap();
            assert!(row.contains('…') && row.ends_with('t'), "{row}");
        }
        assert_eq!((chars("日本"), chars("e\u{301}"), chars("ab")), (4, 1, 2));
        // A long tag list is cut like COMMAND, marked by `…`.
        let tags = format!(r#"["{}","release"]"#, "y".repeat(60));
        let doc = doc.replace(r#"["t"]"#, &tags);
        let t = render(&doc, 0, 80, &|_| None).unwrap();
        let row = t.lines().nth(1).unwrap();
        assert!(chars(row) <= 80 && row.ends_with("y…"), "{row}");
        // Too narrow for the other columns: still never wider, and a
        // line cut says so.
        for width in [10, 40] {
            let t = render(&doc, 0, width, &|_| None).unwrap();
            assert!(t.lines().all(|l| chars(l) <= width), "{t}");
            if width == 10 {
                assert!(t.lines().all(|l| l.ends_with('…')), "{t}");
            }
        }
    }

    #[test]
    fn one_long_tag_list_does_not_squeeze_every_command() {
        let doc = r#"{"jobs":[
            {"job_id":"A","state":"exited","created_at":"2026-01-01T00:00:00Z","tags":["project.frontend.build","release-candidate.v2","team-alpha"],"command":["true"]},
            {"job_id":"B","state":"exited","created_at":"2026-01-01T00:00:00Z","tags":[],"command":["sh","-c","echo build the project with make"]}]}"#;
        let t = render(doc, 0, 100, &|_| None).unwrap();
        let b = t.lines().nth(2).unwrap();
        // COMMAND gave way down to its floor, not to a few columns; the
        // tags were cut after it.
        assert!(b.contains("sh -c echo build the pr…"), "{t}");
        let a = t.lines().nth(1).unwrap();
        assert!(a.ends_with('…') && chars(a) == 100, "{t}");
    }

    #[test]
    fn emoji_symbols_take_two_columns() {
        // Measured one column each, their rows ran past the width.
        for c in ['✅', '🚀', '⌚', '⭐', '🟠', '🫠', '😀', '日'] {
            assert_eq!(chars(&format!("a{c}b")), 4, "{c:?}");
        }
        for c in ['a', 'é', '→', '★'] {
            assert_eq!(chars(&format!("a{c}b")), 3, "{c:?}");
        }
    }

    #[test]
    fn invisible_format_characters_take_no_column() {
        // The word joiner and the zero-width no-break space were counted
        // one column wide, and their rows' later columns sat one left.
        for c in ['\u{200B}', '\u{2060}', '\u{FEFF}'] {
            assert_eq!(chars(&format!("a{c}b")), 2, "{:?}", c);
        }
    }

    /// Narrower still: COMMAND keeps its floor while the tags go, and a
    /// line still too wide is cut at the width, ending in `…` (COMMAND
    /// was cut under its floor to keep a four-column stub of tags, and at
    /// 50 columns TAGS vanished from every line without a sign).
    #[test]
    fn the_command_keeps_its_floor_until_the_tags_are_gone() {
        let doc = format!(
            r#"{{"jobs":[{{"job_id":"01M91RA3XD","state":"created","created_at":"2026-01-01T00:00:00Z","tags":["alpha.beta.gamma","delta-epsilon"],"command":["echo {}"]}}]}}"#,
            "x".repeat(60)
        );
        let t = render(&doc, 0, 70, &|_| None).unwrap();
        let row = t.lines().nth(1).unwrap();
        let floor = format!("echo {}…", "x".repeat(COMMAND_FLOOR - 6));
        assert!(row.contains(&floor), "{t}");
        assert!(t.lines().all(|l| chars(l) <= 70), "{t}");
        for width in [50, 60] {
            let t = render(&doc, 0, width, &|_| None).unwrap();
            assert!(
                t.lines().all(|l| chars(l) == width && l.ends_with('…')),
                "{width}: {t}"
            );
        }
    }
}
