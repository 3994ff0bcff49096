//! The experiment runner's progress bar: one line on stderr, redrawn in
//! place, with the cell being run (k/N, configuration, scenario, level,
//! trial), the elapsed time and an ETA for the whole experiment, and the
//! engine's per-second figures within the cell. Lines the runner prints
//! meanwhile (per-run results, warnings) go through [`ExperimentProgress::message`]
//! so they land above the bar instead of through it.
//!
//! The ETA extrapolates the fraction of the experiment done: finished cells
//! plus the running cell's own fraction (elapsed over its duration, or
//! requests over its request count), so server starts, resets and warm-ups
//! are spread over the cells as they were so far. Drawing is off unless
//! stderr is a terminal (and not `--quiet`); the formatting is pure and
//! unit-tested. It shows progress only: it never decides what runs next.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::generator::engine::{Progress, ProgressTick, Stop};

/// `MM:SS` under an hour, `H:MM:SS` from an hour.
pub fn format_clock(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// How far a cell is, from 0 to 1: elapsed time over its duration, or
/// requests completed over its request count.
pub fn cell_fraction(stop: Stop, tick: &ProgressTick) -> f64 {
    let f = match stop {
        Stop::Duration(d) if !d.is_zero() => tick.elapsed.as_secs_f64() / d.as_secs_f64(),
        Stop::Requests(n) if n > 0 => tick.requests as f64 / n as f64,
        _ => 0.0,
    };
    f.clamp(0.0, 1.0)
}

/// Fraction of the experiment done: `done` cells of `total`, plus the
/// running cell's fraction.
pub fn overall_fraction(done: usize, total: usize, cell: f64) -> f64 {
    if total == 0 {
        return 1.0;
    }
    ((done as f64 + cell.clamp(0.0, 1.0)) / total as f64).clamp(0.0, 1.0)
}

/// Time left when `fraction` of the work took `elapsed`; `None` before
/// anything is done (nothing to extrapolate from).
pub fn eta(elapsed: Duration, fraction: f64) -> Option<Duration> {
    if fraction.is_nan() || fraction <= 1e-6 {
        return None;
    }
    let left = elapsed.as_secs_f64() * (1.0 - fraction.min(1.0)) / fraction;
    // whole seconds: the clock shows no more, and 89.999 s reads as 01:30
    Some(Duration::from_secs(left.max(0.0).round() as u64))
}

/// `[#####-----]` with `width` cells between the brackets.
pub fn bar(fraction: f64, width: usize) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = ((fraction * width as f64).floor() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// What the bar knows about the cell being run.
#[derive(Clone, Debug, PartialEq)]
pub struct CellProgress {
    /// 1-based position in the experiment.
    pub index: usize,
    /// `multi login @ 50, trial 2/5`.
    pub label: String,
    pub stop: Stop,
    /// The engine's latest tick in this cell.
    pub tick: Option<ProgressTick>,
}

/// Everything one line of the bar shows.
#[derive(Clone, Debug, PartialEq)]
pub struct BarState {
    pub total: usize,
    /// Cells finished.
    pub done: usize,
    pub elapsed: Duration,
    /// The cell being run, if one is.
    pub cell: Option<CellProgress>,
    /// What happens between cells: `seeding`, `starting multi`, `warm-up`.
    pub phase: Option<String>,
}

/// Renders the bar's line (no `\r`, no escape codes), cut to `columns`.
pub fn render(s: &BarState, columns: usize) -> String {
    let cell_f = s
        .cell
        .as_ref()
        .and_then(|c| c.tick.as_ref().map(|t| cell_fraction(c.stop, t)))
        .unwrap_or(0.0);
    let f = overall_fraction(s.done, s.total, cell_f);
    let eta = match eta(s.elapsed, f) {
        Some(d) => format_clock(d),
        None => "--:--".into(),
    };
    let mut line = format!(
        "{} {:>3.0}% {} elapsed, ETA {}",
        bar(f, 10),
        f * 100.0,
        format_clock(s.elapsed),
        eta
    );
    match (&s.cell, &s.phase) {
        (_, Some(phase)) => {
            line.push_str(&format!(" | {phase}"));
        }
        (Some(c), None) => {
            line.push_str(&format!(" | cell {}/{} {}", c.index, s.total, c.label));
            if let Some(t) = &c.tick {
                line.push_str(&format!(
                    " | {:.0}s {} req {:.0} req/s",
                    t.elapsed.as_secs_f64(),
                    t.requests,
                    t.rate
                ));
            }
        }
        (None, None) => {}
    }
    if line.chars().count() > columns {
        line = line.chars().take(columns.saturating_sub(1)).collect();
    }
    line
}

/// Terminal width: `COLUMNS`, else what `stty size` says of the
/// controlling terminal, else 80.
fn columns() -> usize {
    let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|c| *c >= 20);
    if let Some(c) = std::env::var("COLUMNS").ok().as_deref().and_then(parse) {
        return c;
    }
    std::fs::File::open("/dev/tty")
        .ok()
        .and_then(|tty| {
            std::process::Command::new("stty")
                .arg("size")
                .stdin(tty)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
        })
        .filter(|o| o.status.success())
        .and_then(|o| {
            // "ROWS COLS"
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace().nth(1).and_then(parse)
        })
        .unwrap_or(80)
}

struct Inner {
    out: Box<dyn Write + Send>,
    state: BarState,
    /// A bar line is on screen (to be cleared before a message).
    drawn: bool,
    columns: usize,
}

impl Inner {
    fn draw(&mut self, started: Instant) {
        self.state.elapsed = started.elapsed();
        let line = render(&self.state, self.columns);
        // `\r`, the line, then clear what a longer previous line left.
        let _ = write!(self.out, "\r{line}\x1b[K");
        let _ = self.out.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(self.out, "\r\x1b[K");
            self.drawn = false;
        }
    }
}

/// The progress bar of an experiment; cheap to clone (shared state).
#[derive(Clone)]
pub struct ExperimentProgress {
    /// `None`: drawing is off; messages still print (plain lines).
    inner: Option<Arc<Mutex<Inner>>>,
    started: Instant,
    quiet: bool,
}

impl ExperimentProgress {
    /// A bar over `total` cells on stderr when `draw` (stderr is a terminal
    /// and not `--quiet`), as wide as the terminal; messages print unless
    /// `quiet`.
    pub fn stderr(total: usize, draw: bool, quiet: bool) -> Self {
        let out = draw.then(|| (Box::new(std::io::stderr()) as _, columns()));
        Self::new(total, out, quiet)
    }

    /// A bar drawn on `out`, cut to its width in columns (`None`: no bar).
    pub fn new(total: usize, out: Option<(Box<dyn Write + Send>, usize)>, quiet: bool) -> Self {
        Self {
            inner: out.map(|(out, columns)| {
                Arc::new(Mutex::new(Inner {
                    out,
                    state: BarState {
                        total,
                        done: 0,
                        elapsed: Duration::ZERO,
                        cell: None,
                        phase: None,
                    },
                    drawn: false,
                    columns,
                }))
            }),
            started: Instant::now(),
            quiet,
        }
    }

    /// Whether a bar is drawn.
    pub fn drawing(&self) -> bool {
        self.inner.is_some()
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Some(i) = &self.inner {
            if let Ok(mut g) = i.lock() {
                f(&mut g);
            }
        }
    }

    /// A line above the bar (or on stderr when there is no bar), unless quiet.
    pub fn message(&self, text: &str) {
        if !self.quiet {
            self.warn(text);
        }
    }

    /// Like [`Self::message`], also when quiet (warnings).
    pub fn warn(&self, text: &str) {
        match &self.inner {
            Some(_) => self.with(|i| {
                i.clear();
                let _ = writeln!(i.out, "{text}");
                i.draw(self.started);
            }),
            None => eprintln!("{text}"),
        }
    }

    /// Between cells: what the runner is doing (reset, start, warm-up).
    pub fn phase(&self, what: &str) {
        self.with(|i| {
            i.state.phase = Some(what.to_string());
            i.draw(self.started);
        });
    }

    /// A cell starts: `index` is 1-based.
    pub fn begin_cell(&self, index: usize, label: &str, stop: Stop) {
        self.with(|i| {
            i.state.phase = None;
            i.state.cell = Some(CellProgress {
                index,
                label: label.to_string(),
                stop,
                tick: None,
            });
            i.draw(self.started);
        });
    }

    /// The engine's per-second tick within the current cell.
    pub fn tick(&self, tick: &ProgressTick) {
        self.with(|i| {
            if let Some(c) = &mut i.state.cell {
                c.tick = Some(*tick);
            }
            i.draw(self.started);
        });
    }

    /// The current cell is finished.
    pub fn end_cell(&self) {
        self.with(|i| {
            i.state.done = (i.state.done + 1).min(i.state.total);
            i.state.cell = None;
            i.draw(self.started);
        });
    }

    /// The engine progress setting that feeds this bar.
    pub fn engine_hook(&self) -> Progress {
        if self.inner.is_none() {
            return Progress::Off;
        }
        let me = self.clone();
        Progress::Hook(Arc::new(move |t: &ProgressTick| me.tick(t)))
    }

    /// Removes the bar from the screen (the experiment is over).
    pub fn finish(&self) {
        self.with(|i| {
            i.clear();
            let _ = i.out.flush();
        });
    }

    /// The bar's state (for tests).
    pub fn state(&self) -> Option<BarState> {
        self.inner
            .as_ref()
            .and_then(|i| i.lock().ok().map(|g| g.state.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(secs: f64, requests: u64) -> ProgressTick {
        ProgressTick {
            elapsed: Duration::from_secs_f64(secs),
            requests,
            rate: 100.0,
        }
    }

    #[test]
    fn clocks() {
        assert_eq!(format_clock(Duration::ZERO), "00:00");
        assert_eq!(format_clock(Duration::from_millis(59_999)), "00:59");
        assert_eq!(format_clock(Duration::from_secs(187)), "03:07");
        assert_eq!(
            format_clock(Duration::from_secs(3600 + 2 * 60 + 3)),
            "1:02:03"
        );
        assert_eq!(format_clock(Duration::from_secs(26 * 3600)), "26:00:00");
    }

    #[test]
    fn fractions_and_eta() {
        let d = Stop::Duration(Duration::from_secs(10));
        assert_eq!(cell_fraction(d, &tick(2.5, 0)), 0.25);
        assert_eq!(
            cell_fraction(d, &tick(12.0, 0)),
            1.0,
            "requests in flight finish late"
        );
        let n = Stop::Requests(200);
        assert_eq!(cell_fraction(n, &tick(1.0, 50)), 0.25);
        assert_eq!(cell_fraction(Stop::Requests(0), &tick(1.0, 5)), 0.0);
        // 3 of 8 cells done and half of the fourth: 3.5/8
        assert_eq!(overall_fraction(3, 8, 0.5), 0.4375);
        assert_eq!(overall_fraction(8, 8, 0.9), 1.0);
        assert_eq!(overall_fraction(0, 0, 0.0), 1.0);
        // a quarter done in 60 s: 180 s left
        assert_eq!(
            eta(Duration::from_secs(60), 0.25),
            Some(Duration::from_secs(180))
        );
        assert_eq!(eta(Duration::from_secs(60), 1.0), Some(Duration::ZERO));
        assert_eq!(eta(Duration::from_secs(60), 0.0), None);
        assert_eq!(eta(Duration::from_secs(60), f64::NAN), None);
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0.0, 10), "[----------]");
        assert_eq!(bar(0.25, 4), "[#---]");
        assert_eq!(bar(0.99, 10), "[#########-]");
        assert_eq!(bar(1.0, 10), "[##########]");
        assert_eq!(bar(7.0, 3), "[###]");
        assert_eq!(bar(f64::NAN, 3), "[---]");
    }

    #[test]
    fn renders_the_line() {
        let mut s = BarState {
            total: 8,
            done: 3,
            elapsed: Duration::from_secs(70),
            cell: Some(CellProgress {
                index: 4,
                label: "multi login @ 50, trial 2/2".into(),
                stop: Stop::Duration(Duration::from_secs(10)),
                tick: Some(tick(5.0, 1234)),
            }),
            phase: None,
        };
        // 3.5/8 done in 70 s: 90 s left
        assert_eq!(
            render(&s, 200),
            "[####------]  44% 01:10 elapsed, ETA 01:30 | cell 4/8 multi login @ 50, trial 2/2 | 5s 1234 req 100 req/s"
        );
        s.cell.as_mut().unwrap().tick = None;
        assert!(render(&s, 200).ends_with("| cell 4/8 multi login @ 50, trial 2/2"));
        s.cell = None;
        s.phase = Some("seeding (single)".into());
        assert_eq!(
            render(&s, 200),
            "[###-------]  38% 01:10 elapsed, ETA 01:57 | seeding (single)"
        );
        s.done = 0;
        assert!(render(&s, 200).contains("ETA --:--"));
        assert_eq!(render(&s, 30).chars().count(), 29, "cut to the terminal");
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn draws_in_place_and_keeps_messages_above() {
        let sink = Sink::default();
        let p = ExperimentProgress::new(2, Some((Box::new(sink.clone()), 200)), false);
        assert!(p.drawing());
        p.phase("starting single");
        p.begin_cell(1, "single login @ 2, trial 1/1", Stop::Requests(10));
        let Progress::Hook(hook) = p.engine_hook() else {
            panic!("a bar feeds on engine ticks");
        };
        hook(&tick(1.0, 5));
        assert_eq!(
            p.state().unwrap().cell.unwrap().tick.unwrap().requests,
            5,
            "the engine's tick reached the bar"
        );
        p.message("  [1/2] single login @ 2: 10 req/s");
        p.end_cell();
        assert_eq!(p.state().unwrap().done, 1);
        p.finish();
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        // every draw starts at column 0 and clears the rest of the line
        assert!(out.starts_with("\r["), "{out:?}");
        assert!(out.contains("| starting single\x1b[K"), "{out:?}");
        assert!(out.contains("| cell 1/2 single login @ 2, trial 1/1 | 1s 5 req 100 req/s\x1b[K"));
        // the message replaces the bar's line and ends with a newline; the
        // bar is redrawn below it
        assert!(
            out.contains("\r\x1b[K  [1/2] single login @ 2: 10 req/s\n\r["),
            "{out:?}"
        );
        assert!(out.ends_with("\r\x1b[K"), "finish clears the bar: {out:?}");
        assert!(out.matches("\n").count() == 1, "only the message is a line");

        // no bar: no engine hook, nothing drawn
        let off = ExperimentProgress::new(2, None, true);
        assert!(!off.drawing());
        assert!(matches!(off.engine_hook(), Progress::Off));
        off.begin_cell(1, "x", Stop::Requests(1));
        assert!(off.state().is_none());
    }
}
