//! Time windows and their splitting. One `searchdata` query returns at
//! most a capped number of rows, and says nothing when it cut some off; so
//! a window whose result reaches the cap is split in halves, again and
//! again, until every part is below it. A one-second window still at the
//! cap cannot be split: that is an error, never a silent truncation.

use std::fmt;
use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

/// The seconds `[start, end)`, as Unix time (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// First second in the window.
    pub start: i64,
    /// First second after it.
    pub end: i64,
}

impl Window {
    /// `[start, end)`; none when it holds no second.
    pub fn new(start: i64, end: i64) -> Option<Window> {
        (start < end).then_some(Window { start, end })
    }

    /// Its length in seconds.
    pub fn seconds(self) -> i64 {
        self.end - self.start
    }

    /// Its two halves; none for a one-second window.
    pub fn halves(self) -> Option<(Window, Window)> {
        if self.seconds() < 2 {
            return None;
        }
        let middle = self.start + self.seconds() / 2;
        Some((
            Window {
                start: self.start,
                end: middle,
            },
            Window {
                start: middle,
                end: self.end,
            },
        ))
    }

    /// The window cut into consecutive pieces of at most `max` seconds,
    /// in order.
    pub fn pieces(self, max: i64) -> Vec<Window> {
        let max = max.max(1);
        let mut out = Vec::new();
        let mut start = self.start;
        while start < self.end {
            let end = start.saturating_add(max).min(self.end);
            out.push(Window { start, end });
            start = end;
        }
        out
    }

    /// Whether `second` lies in the window.
    pub fn contains(self, second: i64) -> bool {
        self.start <= second && second < self.end
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for Unix time `second`.
pub fn utc_text(second: i64) -> String {
    jiff::Timestamp::from_second(second)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| format!("@{second}"))
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {} UTC", utc_text(self.start), utc_text(self.end))
    }
}

/// What reading one window gave.
#[derive(Debug)]
pub enum Outcome<R> {
    /// Everything in it.
    Rows(R),
    /// As many rows as the cap allows: some may be missing.
    AtCap,
}

/// What happened to a window, for progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// It was read whole, with this many rows.
    Read(Window, usize),
    /// It reached the cap and is read again in halves.
    Split(Window),
}

/// Reads every window with `read`, at most `concurrency` at once,
/// splitting each that comes back [`Outcome::AtCap`]; `at_cap` makes the
/// error for a one-second window at the cap. Returns every part's rows,
/// in time order; `count` says how many rows a result holds, for `events`.
pub async fn read_all<R, E, F, Fut>(
    windows: Vec<Window>,
    concurrency: usize,
    read: F,
    count: impl Fn(&R) -> usize,
    at_cap: impl Fn(Window) -> E,
    events: impl Fn(Event),
) -> Result<Vec<(Window, R)>, E>
where
    F: Fn(Window) -> Fut,
    Fut: Future<Output = (Window, Result<Outcome<R>, E>)>,
{
    let mut waiting: Vec<Window> = windows;
    // Earliest first: the queue is popped from the end.
    waiting.sort_by(|a, b| b.cmp(a));
    let mut running = FuturesUnordered::new();
    let mut done = Vec::new();
    loop {
        while running.len() < concurrency.max(1) {
            let Some(window) = waiting.pop() else { break };
            running.push(read(window));
        }
        let Some((window, outcome)) = running.next().await else {
            break;
        };
        match outcome? {
            Outcome::Rows(rows) => {
                events(Event::Read(window, count(&rows)));
                done.push((window, rows));
            }
            Outcome::AtCap => match window.halves() {
                Some((first, second)) => {
                    events(Event::Split(window));
                    waiting.push(second);
                    waiting.push(first);
                }
                None => return Err(at_cap(window)),
            },
        }
    }
    done.sort_by_key(|(window, _)| *window);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn halves_and_pieces_cover_the_window_exactly() {
        let w = Window::new(10, 21).unwrap();
        let (a, b) = w.halves().unwrap();
        assert_eq!((a.start, a.end, b.start, b.end), (10, 15, 15, 21));
        assert!(Window::new(5, 6).unwrap().halves().is_none());
        assert!(Window::new(5, 5).is_none());
        let pieces = Window::new(0, 250).unwrap().pieces(100);
        assert_eq!(
            pieces.iter().map(|p| (p.start, p.end)).collect::<Vec<_>>(),
            [(0, 100), (100, 200), (200, 250)]
        );
        assert_eq!(
            w.to_string(),
            "1970-01-01 00:00:10 to 1970-01-01 00:00:21 UTC"
        );
    }

    /// What reading one window of the test data gives.
    type Read = std::future::Ready<(Window, Result<Outcome<Vec<i64>>, String>)>;

    /// Reads `times` (one row per entry, Unix seconds) like a capped API.
    fn reader(times: &[i64], cap: usize) -> impl Fn(Window) -> Read + '_ {
        move |w| {
            let rows: Vec<i64> = times.iter().copied().filter(|&t| w.contains(t)).collect();
            let outcome = if rows.len() >= cap {
                Outcome::AtCap
            } else {
                Outcome::Rows(rows)
            };
            std::future::ready((w, Ok(outcome)))
        }
    }

    fn read(
        times: &[i64],
        cap: usize,
        windows: Vec<Window>,
    ) -> Result<(Vec<i64>, Vec<Event>), String> {
        let events = Mutex::new(Vec::new());
        let parts = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_all(
                windows,
                3,
                reader(times, cap),
                Vec::len,
                |w| format!("at cap: {w}"),
                |e| events.lock().unwrap().push(e),
            ))?;
        let rows = parts.into_iter().flat_map(|(_, rows)| rows).collect();
        Ok((rows, events.into_inner().unwrap()))
    }

    #[test]
    fn windows_at_the_cap_are_split_until_every_row_is_read() {
        // 1000 rows a few seconds apart, ten in one second, and a sparse tail.
        let mut times: Vec<i64> = (0..1000).map(|i| 1_000 + i * 3 + i % 2).collect();
        times.extend([2_001; 10]);
        times.extend((0..50).map(|i| 10_000 + i * 1_000));
        times.sort_unstable();
        for cap in [11, 12, 30, 64, 999, 5000] {
            let whole = Window::new(0, 100_000).unwrap();
            let (rows, events) = read(&times, cap, whole.pieces(30_000)).unwrap();
            assert_eq!(rows, times, "cap {cap}: every row once, in order");
            let splits = events
                .iter()
                .filter(|e| matches!(e, Event::Split(_)))
                .count();
            let reads = events
                .iter()
                .filter(|e| matches!(e, Event::Read(..)))
                .count();
            assert_eq!(reads, 4 + splits, "cap {cap}: each split adds one part");
            for e in &events {
                if let Event::Read(_, n) = e {
                    assert!(*n < cap, "cap {cap}: a part read whole is below the cap");
                }
            }
        }
    }

    #[test]
    fn a_second_at_the_cap_is_an_error_naming_it() {
        let times = vec![5, 7, 7, 7, 9];
        let error = read(&times, 3, vec![Window::new(0, 16).unwrap()]).unwrap_err();
        assert_eq!(
            error,
            "at cap: 1970-01-01 00:00:07 to 1970-01-01 00:00:08 UTC"
        );
        // Below the cap it is fine.
        let (rows, _) = read(&times, 4, vec![Window::new(0, 16).unwrap()]).unwrap();
        assert_eq!(rows, times);
    }

    #[test]
    fn an_empty_range_reads_nothing() {
        let (rows, events) = read(&[1, 2], 2, Vec::new()).unwrap();
        assert!(rows.is_empty() && events.is_empty());
    }
}
