//! Progress on long work: a spinner with counts on a terminal, a log line
//! every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::client::Progress;

/// How often plain log lines report progress.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A spinner when stderr is a terminal, else throttled log lines.
pub(super) struct Spinner {
    bar: Option<ProgressBar>,
    last_log: Mutex<Instant>,
}

impl Spinner {
    /// A spinner when stderr is a terminal and progress is not turned off.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// A step began: shown on the spinner, or logged at debug level.
    pub fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_owned()),
            None => tracing::debug!("{message}"),
        }
    }

    /// Counts changed: shown on the spinner, or logged every few seconds
    /// (`message` is made only when it is shown).
    pub fn update(&self, message: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => bar.set_message(message()),
            None => {
                let Ok(mut last) = self.last_log.lock() else {
                    return;
                };
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    tracing::info!("{} so far", message());
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub(super) struct FetchProgress {
    spinner: Spinner,
    users: AtomicUsize,
    groups: AtomicUsize,
    pages: AtomicUsize,
}

impl FetchProgress {
    /// A spinner when stderr is a terminal and progress is not turned off.
    pub fn new(quiet: bool) -> Self {
        Self {
            spinner: Spinner::new(quiet),
            users: AtomicUsize::new(0),
            groups: AtomicUsize::new(0),
            pages: AtomicUsize::new(0),
        }
    }

    /// "1200 user and 80 group records (14 pages)"; a principal in several
    /// orgs is counted in each.
    pub fn summary(&self) -> String {
        format!(
            "{} user and {} group records ({} pages)",
            self.users.load(Ordering::Relaxed),
            self.groups.load(Ordering::Relaxed),
            self.pages.load(Ordering::Relaxed)
        )
    }

    pub fn finish(&self) {
        self.spinner.finish();
    }
}

impl Progress for FetchProgress {
    fn step(&self, message: &str) {
        self.spinner.step(message);
    }

    fn page(&self, kind: &'static str, rows: usize) {
        let counter = if kind == "groups" {
            &self.groups
        } else {
            &self.users
        };
        counter.fetch_add(rows, Ordering::Relaxed);
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.spinner
            .update(|| format!("fetching: {}", self.summary()));
    }
}
