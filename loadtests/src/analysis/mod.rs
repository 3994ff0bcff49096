//! What the figures mean: run reports and their text and Markdown tables,
//! confidence intervals and verdicts over trials, and SVG charts.
//!
//! - [`report`]: the JSON report of a run (`rps` on top), of a sweep and of
//!   an external tool's run, the generator's saturation judgement, and the
//!   terminal summaries;
//! - [`tables`]: plain-text and Markdown tables;
//! - [`inference`]: Student-t and bootstrap intervals, verdicts;
//! - [`verdicts`]: a document's claims (a difference, or no difference
//!   within a margin) tested against those intervals;
//! - [`charts`]: dependency-free SVG charts.
//!
//! It reads the generator's outcome and the `stats` summaries; it must not
//! send requests, start processes or write files (its callers do).

pub mod charts;
pub mod inference;
pub mod report;
pub mod tables;
pub mod verdicts;
