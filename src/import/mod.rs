//! `credvault import`: bringing users of other systems over. [`pgcrypto`] moves the seed's
//! database (its pgcrypto-encrypted credentials, customers and audit history); [`env`] stores
//! the keys the seed kept in environment variables before that.

pub mod env;
pub mod pgcrypto;

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

/// What one run did.
#[derive(Debug, Default)]
pub struct Report {
    pub dry_run: bool,
    pub customers: Counts,
    pub credentials: Counts,
    pub audit_rows: Counts,
    /// Rows that did not come over: (what, id, why). Never a secret.
    pub problems: Vec<(&'static str, String, String)>,
}

/// Per table: written now, found already imported, skipped for a problem.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub imported: usize,
    pub existing: usize,
    pub skipped: usize,
}

impl Report {
    /// The summary table (and every problem row) for the operator.
    pub fn table(&self) -> String {
        let verb = if self.dry_run { "would import" } else { "imported" };
        let mut out = format!("{:<12} {:>12} {:>18} {:>8}\n", "", verb, "already imported", "skipped");
        for (name, c) in [
            ("customers", self.customers),
            ("credentials", self.credentials),
            ("audit rows", self.audit_rows),
        ] {
            out.push_str(&format!("{name:<12} {:>12} {:>18} {:>8}\n", c.imported, c.existing, c.skipped));
        }
        for (what, id, why) in &self.problems {
            out.push_str(&format!("skipped {what} {id}: {why}\n"));
        }
        out
    }
}

/// Progress: a bar on a terminal, a line every tenth otherwise.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    label: &'static str,
    total: usize,
    done: AtomicUsize,
}

impl Progress {
    pub(crate) fn new(label: &'static str, total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(label);
            bar
        });
        Self { bar, label, total, done: AtomicUsize::new(0) }
    }

    pub(crate) fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None if done == self.total || done.is_multiple_of((self.total / 10).max(1)) => {
                eprintln!("{}: {done}/{}", self.label, self.total);
            }
            None => {}
        }
    }

    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
    }
}
