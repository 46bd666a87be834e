//! A progress bar on stderr for long runs (probing many endpoints, renewing
//! or issuing many lineages), drawn only for a person at a terminal: never
//! when stderr is piped or a file, never beside log lines (`-v`, `RUST_LOG`,
//! `--log-format json|plain`), never with `--json` output, never in the
//! daemon. [`should_show`] is the decision, pure; [`Progress`] the bar.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::LogFormat;

/// Fewer items than this finish before a bar would tell anything.
pub(crate) const MIN_ITEMS: u64 = 2;

/// What decides whether a run shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setting {
    /// stderr is a terminal.
    pub stderr_terminal: bool,
    /// `TERM=dumb` (a terminal that cannot redraw a line).
    pub dumb_terminal: bool,
    /// The command writes JSON (`--json`).
    pub json: bool,
    pub log_format: LogFormat,
    /// `-v` count.
    pub verbose: u8,
    /// `RUST_LOG` is set (log lines may appear at any level).
    pub rust_log: bool,
    /// How many items (endpoints, lineages) the run has.
    pub items: u64,
}

impl Setting {
    /// The process's own terminal and environment, for `items` items.
    pub(crate) fn current(cli: &crate::cli::Cli, json: bool, items: usize) -> Self {
        use std::io::IsTerminal;
        Setting {
            stderr_terminal: std::io::stderr().is_terminal(),
            dumb_terminal: std::env::var_os("TERM").is_some_and(|t| t == "dumb"),
            json,
            log_format: cli.log_format,
            verbose: cli.verbose,
            rust_log: std::env::var_os("RUST_LOG").is_some(),
            items: u64::try_from(items).unwrap_or(u64::MAX),
        }
    }
}

/// Whether to draw a progress bar: only for a person at a terminal, on a
/// run long enough to need one, and never mixed with logs or JSON.
pub(crate) fn should_show(s: &Setting) -> bool {
    s.stderr_terminal
        && !s.dumb_terminal
        && !s.json
        && matches!(s.log_format, LogFormat::Auto | LogFormat::Human)
        && s.verbose == 0
        && !s.rust_log
        && s.items >= MIN_ITEMS
}

/// A progress bar, or nothing (every method is then a no-op).
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// No bar.
    pub(crate) fn hidden() -> Self {
        Progress(None)
    }

    /// A bar on stderr for `setting.items` items labelled `what` (e.g.
    /// "probing"), when [`should_show`] says so; otherwise none.
    pub(crate) fn start(setting: &Setting, what: &'static str) -> Self {
        if !should_show(setting) {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(setting.items), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} ({per_sec}, {elapsed} elapsed, about {eta} left) {wide_msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    /// Changes the total (when work is found to be smaller or larger).
    pub(crate) fn set_length(&self, n: usize) {
        if let Some(b) = &self.0 {
            b.set_length(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    /// Names the item being worked on.
    pub(crate) fn set_message(&self, m: &str) {
        if let Some(b) = &self.0 {
            b.set_message(m.to_string());
        }
    }

    /// One item done.
    pub(crate) fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    /// Counts one item done when the guard is dropped (whichever way a loop
    /// iteration ends).
    pub(crate) fn item(&self) -> ItemDone<'_> {
        ItemDone(self)
    }

    /// Runs `f` (printing to stdout or stderr) with the bar hidden, so lines
    /// and bar do not mix.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// See [`Progress::item`].
pub(crate) struct ItemDone<'a>(&'a Progress);

impl Drop for ItemDone<'_> {
    fn drop(&mut self) {
        self.0.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminal() -> Setting {
        Setting {
            stderr_terminal: true,
            dumb_terminal: false,
            json: false,
            log_format: LogFormat::Auto,
            verbose: 0,
            rust_log: false,
            items: 100,
        }
    }

    #[test]
    fn a_person_at_a_terminal_sees_progress_of_a_long_run() {
        assert!(should_show(&terminal()));
        assert!(should_show(&Setting {
            log_format: LogFormat::Human,
            ..terminal()
        }));
        assert!(should_show(&Setting {
            items: MIN_ITEMS,
            ..terminal()
        }));
    }

    #[test]
    fn no_progress_when_piped_in_json_beside_logs_or_for_one_item() {
        let cases = [
            (
                "stderr piped",
                Setting {
                    stderr_terminal: false,
                    ..terminal()
                },
            ),
            (
                "TERM=dumb",
                Setting {
                    dumb_terminal: true,
                    ..terminal()
                },
            ),
            (
                "--json",
                Setting {
                    json: true,
                    ..terminal()
                },
            ),
            (
                "-v",
                Setting {
                    verbose: 1,
                    ..terminal()
                },
            ),
            (
                "RUST_LOG",
                Setting {
                    rust_log: true,
                    ..terminal()
                },
            ),
            (
                "json logs",
                Setting {
                    log_format: LogFormat::Json,
                    ..terminal()
                },
            ),
            (
                "plain logs",
                Setting {
                    log_format: LogFormat::Plain,
                    ..terminal()
                },
            ),
            (
                "one item",
                Setting {
                    items: 1,
                    ..terminal()
                },
            ),
            (
                "nothing",
                Setting {
                    items: 0,
                    ..terminal()
                },
            ),
        ];
        for (why, s) in cases {
            assert!(!should_show(&s), "{why}: {s:?}");
        }
    }

    #[test]
    fn a_hidden_bar_does_nothing_and_runs_what_it_suspends() {
        let p = Progress::start(
            &Setting {
                stderr_terminal: false,
                ..terminal()
            },
            "probing",
        );
        assert!(p.0.is_none());
        {
            let _done = p.item();
            p.set_message("x");
        }
        assert_eq!(p.suspend(|| 7), 7);
        p.finish();
    }
}
