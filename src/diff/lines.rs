//! A line diff that streams: both inputs are read line by line and compared
//! a window at a time, so a diff of two 200 MB tables needs a few windows
//! of memory, not both files.
//!
//! Equal lines are passed over one by one. At the first difference a
//! window of lines is read from each side and diffed (Myers, from
//! `similar`); what it finds up to its last run of equal lines is final,
//! the rest is read again with the next window. The result is always a
//! correct diff; it is minimal within a window, and across one only when
//! the changes are shorter than a window (a block of inserted rows longer
//! than a window shows as old rows removed and added back). After the time
//! budget the diff stops searching for the smallest edit and pairs what is
//! left as removed and added.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Seek, Write};
use std::time::{Duration, Instant};

use anstyle::Style;
use similar::{Algorithm, DiffTag};

use super::Palette;

/// What happened to one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// On both sides.
    Equal,
    /// Only in the old input.
    Delete,
    /// Only in the new input.
    Insert,
}

/// How much of each side is compared at once.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Most lines in a window.
    pub lines: usize,
    /// Most bytes in a window (a window holds at least one line).
    pub bytes: usize,
    /// Longest line read: a longer one stops the diff with [`LineTooLong`].
    pub longest_line: usize,
}

impl Window {
    /// Windows of 64k lines or 16 MiB, whichever comes first.
    pub const DEFAULT: Window = Window {
        lines: 1 << 16,
        bytes: 16 << 20,
        longest_line: 16 << 20,
    };
}

/// A line longer than [`Window::longest_line`]: such a file is not diffed.
#[derive(Debug, thiserror::Error)]
#[error("a line is longer than {} MiB", .0 >> 20)]
pub struct LineTooLong(u64);

/// Whether `error` is a [`LineTooLong`].
pub fn is_line_too_long(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<LineTooLong>())
}

/// One input, read a line at a time, with lines read ahead and given back.
struct Side<R> {
    reader: R,
    pending: VecDeque<Vec<u8>>,
    longest_line: u64,
}

impl<R: BufRead> Side<R> {
    fn new(reader: R, window: Window) -> Self {
        Side {
            reader,
            pending: VecDeque::new(),
            longest_line: window.longest_line.max(1) as u64,
        }
    }

    fn next(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(line) = self.pending.pop_front() {
            return Ok(Some(line));
        }
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(self.longest_line)
            .read_until(b'\n', &mut line)?;
        if read as u64 == self.longest_line
            && !line.ends_with(b"\n")
            && !self.reader.fill_buf()?.is_empty()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LineTooLong(self.longest_line),
            ));
        }
        Ok((read > 0).then_some(line))
    }

    fn peek(&mut self) -> io::Result<Option<&Vec<u8>>> {
        if self.pending.is_empty()
            && let Some(line) = self.next()?
        {
            self.pending.push_back(line);
        }
        Ok(self.pending.front())
    }

    fn window(&mut self, window: Window) -> io::Result<Vec<Vec<u8>>> {
        let (mut lines, mut bytes) = (Vec::new(), 0);
        while lines.len() < window.lines.max(1) && bytes < window.bytes.max(1) {
            match self.next()? {
                Some(line) => {
                    bytes += line.len();
                    lines.push(line);
                }
                None => break,
            }
        }
        Ok(lines)
    }

    fn give_back(&mut self, lines: Vec<Vec<u8>>) {
        for line in lines.into_iter().rev() {
            self.pending.push_front(line);
        }
    }
}

/// Compares `old` with `new`, giving every line in order to `each` (a
/// changed stretch as its deleted lines, then its inserted ones). `each`
/// returns false to stop early. `budget` bounds the time spent searching
/// for the smallest diff.
pub fn diff(
    old: impl BufRead,
    new: impl BufRead,
    window: Window,
    budget: Duration,
    mut each: impl FnMut(Tag, &[u8]) -> io::Result<bool>,
) -> io::Result<()> {
    let (mut old, mut new) = (Side::new(old, window), Side::new(new, window));
    let deadline = Instant::now() + budget;
    loop {
        loop {
            let same = match (old.peek()?, new.peek()?) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            if !same {
                break;
            }
            let line = old.next()?.unwrap_or_default();
            new.next()?;
            if !each(Tag::Equal, &line)? {
                return Ok(());
            }
        }
        let (a, b) = (old.window(window)?, new.window(window)?);
        if a.is_empty() && b.is_empty() {
            return Ok(());
        }
        let rest_is_here = old.peek()?.is_none() && new.peek()?.is_none();
        let ops = similar::capture_diff_slices_deadline(Algorithm::Myers, &a, &b, Some(deadline));
        // What follows the last equal run may continue past the window.
        let cut = match ops.iter().rposition(|op| op.tag() == DiffTag::Equal) {
            Some(last_equal) if !rest_is_here => last_equal + 1,
            _ => ops.len(),
        };
        let (mut used_a, mut used_b) = (0, 0);
        for op in &ops[..cut] {
            let (tag, in_a, in_b) = op.as_tag_tuple();
            let lines = match tag {
                DiffTag::Equal => in_a
                    .clone()
                    .map(|i| (Tag::Equal, &a[i]))
                    .collect::<Vec<_>>(),
                _ => (in_a.clone().map(|i| (Tag::Delete, &a[i])))
                    .chain(in_b.clone().map(|i| (Tag::Insert, &b[i])))
                    .collect(),
            };
            for (tag, line) in lines {
                if !each(tag, line)? {
                    return Ok(());
                }
            }
            (used_a, used_b) = (in_a.end, in_b.end);
        }
        old.give_back(a.into_iter().skip(used_a).collect());
        new.give_back(b.into_iter().skip(used_b).collect());
    }
}

/// Lines added and removed between `old` and `new`.
pub fn counts(
    old: impl BufRead,
    new: impl BufRead,
    window: Window,
    budget: Duration,
) -> io::Result<(usize, usize)> {
    let (mut added, mut removed) = (0, 0);
    diff(old, new, window, budget, |tag, _| {
        match tag {
            Tag::Insert => added += 1,
            Tag::Delete => removed += 1,
            Tag::Equal => {}
        }
        Ok(true)
    })?;
    Ok((added, removed))
}

/// Whether a file looks binary, as git judges it: a NUL byte in what is
/// buffered of its start. Reads nothing away.
pub fn looks_binary(input: &mut (impl BufRead + ?Sized)) -> io::Result<bool> {
    Ok(input.fill_buf()?.contains(&0))
}

/// Bytes that collect in memory up to a limit and in a temporary file
/// past it.
struct Spool {
    memory: Vec<u8>,
    file: Option<io::BufWriter<std::fs::File>>,
    limit: usize,
}

impl Spool {
    fn new(limit: usize) -> Self {
        Spool {
            memory: Vec::new(),
            file: None,
            limit,
        }
    }

    fn copy_to(self, out: &mut dyn Write) -> io::Result<()> {
        match self.file {
            None => out.write_all(&self.memory),
            Some(file) => {
                let mut file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.seek(io::SeekFrom::Start(0))?;
                io::copy(&mut file, out).map(|_| ())
            }
        }
    }
}

impl Write for Spool {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(file) = &mut self.file {
            return file.write(bytes);
        }
        self.memory.extend_from_slice(bytes);
        if self.memory.len() > self.limit {
            let mut file = io::BufWriter::new(tempfile::tempfile()?);
            file.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// A hunk being collected.
struct Hunk {
    old_start: usize,
    new_start: usize,
    old_len: usize,
    new_len: usize,
    /// Its lines so far, written out, up to the last change.
    body: Spool,
    /// Equal lines after the last change (context, or the gap to the next).
    trailing: Vec<Vec<u8>>,
}

/// Writes a unified diff from the lines [`diff`] gives it, a hunk at a
/// time: three lines of context, hunks closer than six lines merged. A
/// hunk's header needs its length, so its lines are held until it closes:
/// in memory up to `spill_at` bytes, in a temporary file past that, so a
/// file that changed throughout costs disk, not memory.
pub struct Unified<'w> {
    out: &'w mut dyn Write,
    palette: Palette,
    spill_at: usize,
    /// Lines of each side passed so far.
    old_line: usize,
    new_line: usize,
    /// The last equal lines outside a hunk, for the next one's context.
    before: VecDeque<Vec<u8>>,
    hunk: Option<Hunk>,
}

const CONTEXT: usize = 3;

impl<'w> Unified<'w> {
    /// A writer of hunks into `out`.
    pub fn new(out: &'w mut dyn Write, palette: Palette, spill_at: usize) -> Self {
        Unified {
            out,
            palette,
            spill_at,
            old_line: 0,
            new_line: 0,
            before: VecDeque::new(),
            hunk: None,
        }
    }

    /// Takes the next line of the diff.
    pub fn line(&mut self, tag: Tag, line: &[u8]) -> io::Result<()> {
        if tag == Tag::Equal {
            self.old_line += 1;
            self.new_line += 1;
            match &mut self.hunk {
                Some(hunk) => {
                    hunk.trailing.push(line.to_vec());
                    if hunk.trailing.len() > 2 * CONTEXT {
                        self.close()?;
                    }
                }
                None => {
                    self.before.push_back(line.to_vec());
                    if self.before.len() > CONTEXT {
                        self.before.pop_front();
                    }
                }
            }
            return Ok(());
        }
        let before: Vec<Vec<u8>> = self.before.drain(..).collect();
        let hunk = self.hunk.get_or_insert_with(|| Hunk {
            old_start: self.old_line - before.len(),
            new_start: self.new_line - before.len(),
            old_len: 0,
            new_len: 0,
            body: Spool::new(self.spill_at),
            trailing: before,
        });
        for context in std::mem::take(&mut hunk.trailing) {
            render(&mut hunk.body, self.palette, Tag::Equal, &context)?;
            hunk.old_len += 1;
            hunk.new_len += 1;
        }
        render(&mut hunk.body, self.palette, tag, line)?;
        if tag == Tag::Delete {
            hunk.old_len += 1;
            self.old_line += 1;
        } else {
            hunk.new_len += 1;
            self.new_line += 1;
        }
        Ok(())
    }

    /// Writes the hunk being collected, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        self.close()
    }

    /// Writes the current hunk with at most three lines of trailing
    /// context; the equal lines past those are the next hunk's context.
    fn close(&mut self) -> io::Result<()> {
        let Some(mut hunk) = self.hunk.take() else {
            return Ok(());
        };
        let kept = hunk.trailing.len().min(CONTEXT);
        let rest = hunk.trailing.split_off(kept);
        for context in &hunk.trailing {
            render(&mut hunk.body, self.palette, Tag::Equal, context)?;
            hunk.old_len += 1;
            hunk.new_len += 1;
        }
        let skip = rest.len().saturating_sub(CONTEXT);
        self.before = rest.into_iter().skip(skip).collect();
        let range = |start: usize, len: usize| match len {
            0 => format!("{start},0"),
            1 => format!("{}", start + 1),
            _ => format!("{},{len}", start + 1),
        };
        let header = format!(
            "@@ -{} +{} @@\n",
            range(hunk.old_start, hunk.old_len),
            range(hunk.new_start, hunk.new_len)
        );
        paint(self.out, self.palette.hunk, header.as_bytes())?;
        hunk.body.copy_to(self.out)
    }
}

/// One line of a hunk: its sign, the line, and a note when it has no line
/// end (the end of a file).
fn render(body: &mut Spool, palette: Palette, tag: Tag, line: &[u8]) -> io::Result<()> {
    let (sign, style) = match tag {
        Tag::Delete => (b'-', palette.removed),
        Tag::Insert => (b'+', palette.added),
        Tag::Equal => (b' ', Style::new()),
    };
    let mut text = Vec::with_capacity(line.len() + 32);
    text.push(sign);
    text.extend_from_slice(line);
    if !line.ends_with(b"\n") {
        text.extend_from_slice(b"\n\\ No newline at end of file\n");
    }
    paint(body, style, &text)
}

/// Writes `bytes` in `style` (nothing added when the style is plain).
pub fn paint(out: &mut dyn Write, style: Style, bytes: &[u8]) -> io::Result<()> {
    write!(out, "{}", style.render())?;
    out.write_all(bytes)?;
    write!(out, "{}", style.render_reset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TINY: Window = Window {
        lines: 4,
        bytes: 1 << 20,
        longest_line: 1 << 20,
    };

    fn unified(old: &str, new: &str, window: Window, spill_at: usize) -> String {
        let mut out = Vec::new();
        let mut hunks = Unified::new(&mut out, Palette::new(false), spill_at);
        diff(
            old.as_bytes(),
            new.as_bytes(),
            window,
            Duration::from_secs(5),
            |tag, line| hunks.line(tag, line).map(|()| true),
        )
        .unwrap();
        hunks.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Applies a unified diff (hunks only) to `old`, checking every
    /// context and removed line against it.
    fn apply(old: &str, patch: &str) -> String {
        let old: Vec<&str> = old.split_inclusive('\n').collect();
        let mut result = String::new();
        let mut at = 0;
        let mut lines = patch.split_inclusive('\n').peekable();
        while let Some(header) = lines.next() {
            let old_range = header
                .strip_prefix("@@ -")
                .and_then(|h| h.split(' ').next())
                .unwrap_or_else(|| panic!("not a hunk header: {header:?}"));
            let (start, len) = match old_range.split_once(',') {
                Some((s, l)) => (s.parse::<usize>().unwrap(), l.parse::<usize>().unwrap()),
                None => (old_range.parse().unwrap(), 1),
            };
            let first = if len == 0 { start } else { start - 1 };
            assert!(first >= at, "hunks overlap or go backwards: {patch}");
            for line in &old[at..first] {
                result.push_str(line);
            }
            at = first;
            while let Some(line) = lines.next_if(|l| !l.starts_with("@@")) {
                let mut body = line[1..].to_owned();
                if lines.next_if(|l| l.starts_with("\\ No newline")).is_some() {
                    body.pop();
                }
                match &line[..1] {
                    " " | "-" => {
                        assert_eq!(old[at], body, "{patch}");
                        at += 1;
                        if &line[..1] == " " {
                            result.push_str(&body);
                        }
                    }
                    "+" => result.push_str(&body),
                    other => panic!("unexpected line kind {other:?} in {patch}"),
                }
            }
        }
        for line in &old[at..] {
            result.push_str(line);
        }
        result
    }

    #[test]
    fn a_small_change_is_one_hunk_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified(old, new, Window::DEFAULT, 1000),
            "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn added_and_removed_files_and_missing_newlines() {
        assert_eq!(
            unified("", "a\nb", Window::DEFAULT, 1000),
            "@@ -0,0 +1,2 @@\n+a\n+b\n\\ No newline at end of file\n"
        );
        assert_eq!(
            unified("a\n", "", Window::DEFAULT, 1000),
            "@@ -1 +0,0 @@\n-a\n"
        );
        assert_eq!(unified("a\n", "a\n", Window::DEFAULT, 1000), "");
    }

    #[test]
    fn far_apart_changes_are_separate_hunks() {
        let old: String = (0..40).map(|i| format!("{i}\n")).collect();
        let new: String = (0..40)
            .map(|i| match i {
                5 => "five\n".to_owned(),
                30 => "thirty\n".to_owned(),
                _ => format!("{i}\n"),
            })
            .collect();
        let patch = unified(&old, &new, TINY, 1000);
        assert_eq!(patch.matches("@@ -").count(), 2, "{patch}");
        assert_eq!(apply(&old, &patch), new);
    }

    #[test]
    fn a_file_changed_throughout_is_one_hunk_even_past_the_memory_limit() {
        let old: String = (0..100).map(|i| format!("{i}\n")).collect();
        let new: String = (0..100).map(|i| format!("new {i}\n")).collect();
        for spill_at in [0, 64, 1 << 20] {
            let patch = unified(&old, &new, TINY, spill_at);
            assert!(patch.starts_with("@@ -1,100 +1,100 @@\n"), "{patch}");
            assert_eq!(patch.matches("@@ -").count(), 1, "{patch}");
            assert_eq!(apply(&old, &patch), new);
        }
        assert_eq!(
            counts(old.as_bytes(), new.as_bytes(), TINY, Duration::from_secs(5)).unwrap(),
            (100, 100)
        );
    }

    #[test]
    fn stopping_early_is_honoured() {
        let mut seen = 0;
        diff(
            &b"a\nb\nc\n"[..],
            &b"x\ny\nz\n"[..],
            TINY,
            Duration::ZERO,
            |_, _| {
                seen += 1;
                Ok(seen < 2)
            },
        )
        .unwrap();
        assert_eq!(seen, 2);
    }

    #[test]
    fn an_overlong_line_stops_the_diff_with_its_own_error() {
        let window = Window {
            longest_line: 8,
            ..TINY
        };
        let error = counts(
            &b"short\n"[..],
            &b"much too long\n"[..],
            window,
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(is_line_too_long(&error), "{error}");
        // The last line may be as long as allowed, and have no line end.
        assert_eq!(
            counts(&b"a\n"[..], &b"a\n12345678"[..], window, Duration::ZERO).unwrap(),
            (1, 0)
        );
    }

    #[test]
    fn binary_content_is_recognised() {
        assert!(looks_binary(&mut &b"PK\x03\x04\0\0"[..]).unwrap());
        assert!(!looks_binary(&mut &b"cluster_id,name\n"[..]).unwrap());
    }

    fn lines() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a\n", "b\n", "c\n", "d", "\n", "é\n"]),
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        /// Whatever the window, the memory limit or the time budget, the
        /// patch turns the old text into the new one.
        #[test]
        fn the_diff_always_turns_old_into_new(
            old in lines(),
            new in lines(),
            window_lines in 1usize..12,
            spill_at in 0usize..64,
        ) {
            let window = Window { lines: window_lines, bytes: 1 << 20, longest_line: 1 << 20 };
            let patch = unified(&old, &new, window, spill_at);
            prop_assert_eq!(apply(&old, &patch), new.clone());
            let (added, removed) =
                counts(old.as_bytes(), new.as_bytes(), window, Duration::ZERO).unwrap();
            let old_lines = old.split_inclusive('\n').count();
            let new_lines = new.split_inclusive('\n').count();
            prop_assert_eq!(old_lines - removed, new_lines - added);
        }
    }
}
