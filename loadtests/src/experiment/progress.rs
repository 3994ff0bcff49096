//! The experiment runner's progress bar: an `indicatif` bar on stderr with
//! the share of the experiment done, the elapsed time, an ETA for the whole
//! experiment, and the cell being run (k/N, configuration, scenario, level,
//! trial) with the engine's per-second figures, or what the runner does
//! between cells. Lines the runner prints meanwhile (per-run results,
//! warnings) go through [`ExperimentProgress::message`] so they land above
//! the bar instead of through it.
//!
//! The ETA extrapolates the fraction of the experiment done: finished cells
//! plus the running cell's own fraction (elapsed over its duration, or
//! requests over its request count), so server starts, resets and warm-ups
//! are spread over the cells as they were so far. There is no bar unless
//! stderr is a terminal (and not `--quiet`); messages are then plain lines.
//! It shows progress only: it never decides what runs next.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::generator::engine::{Progress, ProgressTick, Stop};

/// Steps of the bar per cell: the running cell's fraction moves the bar
/// within its cell.
const STEPS_PER_CELL: u64 = 1000;

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

/// The ETA as the bar shows it: a clock, or `--:--` before anything is done.
pub fn eta_text(elapsed: Duration, fraction: f64) -> String {
    eta(elapsed, fraction).map_or_else(|| "--:--".into(), format_clock)
}

/// The bar's text for a running cell: `cell 4/8 multi login @ 50, trial
/// 2/2`, then the engine's latest figures once it has ticked.
pub fn cell_message(
    index: usize,
    total: usize,
    label: &str,
    tick: Option<&ProgressTick>,
) -> String {
    let mut text = format!("cell {index}/{total} {label}");
    if let Some(t) = tick {
        let _ = write!(
            text,
            " | {:.0}s {} req {:.0} req/s",
            t.elapsed.as_secs_f64(),
            t.requests,
            t.rate
        );
    }
    text
}

/// `[####------]  44% 01:10 elapsed, ETA 01:30 | cell 4/8 …`.
fn style() -> ProgressStyle {
    ProgressStyle::with_template("[{bar:10}] {percent:>3}% {clock} elapsed, ETA {left} | {msg}")
        .expect("a valid template")
        .progress_chars("#-")
        .with_key("clock", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&format_clock(s.elapsed()));
        })
        .with_key("left", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&eta_text(s.elapsed(), f64::from(s.fraction())));
        })
}

/// The cell being run.
#[derive(Clone, Debug, PartialEq)]
struct Cell {
    index: usize,
    label: String,
    stop: Stop,
}

/// What the bar counts besides what indicatif shows.
#[derive(Debug, Default)]
struct Cells {
    done: usize,
    running: Option<Cell>,
}

/// The progress bar of an experiment; cheap to clone (shared state).
#[derive(Clone)]
pub struct ExperimentProgress {
    /// `None`: no bar; messages still print (plain lines).
    bar: Option<ProgressBar>,
    cells: Arc<Mutex<Cells>>,
    total: usize,
    quiet: bool,
}

impl ExperimentProgress {
    /// A bar over `total` cells on stderr when `draw` (stderr is a terminal
    /// and not `--quiet`); messages print unless `quiet`.
    pub fn stderr(total: usize, draw: bool, quiet: bool) -> Self {
        let bar = draw.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64 * STEPS_PER_CELL),
                ProgressDrawTarget::stderr(),
            );
            // the clock moves while the runner seeds or starts a server
            bar.enable_steady_tick(Duration::from_secs(1));
            bar
        });
        Self::new(total, bar, quiet)
    }

    /// A progress over `total` cells drawn by `bar` (`None`: no bar).
    pub fn new(total: usize, bar: Option<ProgressBar>, quiet: bool) -> Self {
        if let Some(b) = &bar {
            b.set_length(total as u64 * STEPS_PER_CELL);
            b.set_style(style());
        }
        Self {
            bar,
            cells: Arc::default(),
            total,
            quiet,
        }
    }

    /// Whether a bar is drawn.
    pub fn drawing(&self) -> bool {
        self.bar.is_some()
    }

    /// A line above the bar (or on stderr when there is no bar), unless quiet.
    pub fn message(&self, text: &str) {
        if !self.quiet {
            self.warn(text);
        }
    }

    /// Like [`Self::message`], also when quiet (warnings).
    pub fn warn(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Between cells: what the runner is doing (reset, start, warm-up).
    pub fn phase(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    /// Moves the bar to `done` cells plus `cell` of the running one.
    fn show(&self, bar: &ProgressBar, done: usize, cell: f64, message: String) {
        let f = overall_fraction(done, self.total, cell);
        bar.set_position((f * (self.total as u64 * STEPS_PER_CELL) as f64).round() as u64);
        bar.set_message(message);
    }

    /// A cell starts: `index` is 1-based.
    pub fn begin_cell(&self, index: usize, label: &str, stop: Stop) {
        let Some(bar) = &self.bar else { return };
        let mut cells = self.cells.lock().expect("progress mutex");
        cells.running = Some(Cell {
            index,
            label: label.to_string(),
            stop,
        });
        self.show(
            bar,
            cells.done,
            0.0,
            cell_message(index, self.total, label, None),
        );
    }

    /// The engine's per-second tick within the current cell.
    pub fn tick(&self, tick: &ProgressTick) {
        let Some(bar) = &self.bar else { return };
        let cells = self.cells.lock().expect("progress mutex");
        if let Some(c) = &cells.running {
            let text = cell_message(c.index, self.total, &c.label, Some(tick));
            self.show(bar, cells.done, cell_fraction(c.stop, tick), text);
        }
    }

    /// The current cell is finished.
    pub fn end_cell(&self) {
        let Some(bar) = &self.bar else { return };
        let mut cells = self.cells.lock().expect("progress mutex");
        cells.done = (cells.done + 1).min(self.total);
        cells.running = None;
        self.show(bar, cells.done, 0.0, String::new());
    }

    /// The engine progress setting that feeds this bar.
    pub fn engine_hook(&self) -> Progress {
        if self.bar.is_none() {
            return Progress::Off;
        }
        let me = self.clone();
        Progress::Hook(Arc::new(move |t: &ProgressTick| me.tick(t)))
    }

    /// Removes the bar from the screen (the experiment is over).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
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
    fn eta_texts() {
        // 3.5/8 done in 70 s: 90 s left
        assert_eq!(eta_text(Duration::from_secs(70), 0.4375), "01:30");
        assert_eq!(eta_text(Duration::from_secs(70), 0.0), "--:--");
        assert_eq!(eta_text(Duration::from_secs(3000), 0.5), "50:00");
    }

    #[test]
    fn renders_the_cell() {
        assert_eq!(
            cell_message(4, 8, "multi login @ 50, trial 2/2", Some(&tick(5.0, 1234))),
            "cell 4/8 multi login @ 50, trial 2/2 | 5s 1234 req 100 req/s"
        );
        assert_eq!(
            cell_message(4, 8, "multi login @ 50, trial 2/2", None),
            "cell 4/8 multi login @ 50, trial 2/2"
        );
    }

    #[test]
    fn follows_cells_and_engine_ticks() {
        let p = ExperimentProgress::new(2, Some(ProgressBar::hidden()), false);
        let bar = p.bar.clone().unwrap();
        assert!(p.drawing());
        assert_eq!(bar.length(), Some(2 * STEPS_PER_CELL));
        p.phase("starting single");
        assert_eq!(bar.message(), "starting single");
        p.begin_cell(1, "single login @ 2, trial 1/1", Stop::Requests(10));
        let Progress::Hook(hook) = p.engine_hook() else {
            panic!("a bar feeds on engine ticks");
        };
        hook(&tick(1.0, 5));
        // half of the first of two cells
        assert_eq!(
            bar.position(),
            STEPS_PER_CELL / 2,
            "the engine's tick reached the bar"
        );
        assert!(bar.message().ends_with("| 1s 5 req 100 req/s"));
        p.message("  [1/2] single login @ 2: 10 req/s");
        p.end_cell();
        assert_eq!(bar.position(), STEPS_PER_CELL);
        p.end_cell();
        p.end_cell();
        assert_eq!(bar.position(), 2 * STEPS_PER_CELL, "never past the end");
        p.finish();
        assert!(bar.is_finished());

        // no bar: no engine hook, nothing drawn
        let off = ExperimentProgress::new(2, None, true);
        assert!(!off.drawing());
        assert!(matches!(off.engine_hook(), Progress::Off));
        off.begin_cell(1, "x", Stop::Requests(1));
        off.end_cell();
        assert_eq!(off.cells.lock().unwrap().done, 0);
    }
}
