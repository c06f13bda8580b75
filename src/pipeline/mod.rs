//! The onboard pipeline: capture thread → newest-frame-wins channel → inference thread →
//! publisher thread fanning out to sinks; stats and shutdown.

// Errors carry the model error (file, line, key) by value; they happen at start-up, never per frame.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod detector;
mod error;
pub mod latest;
pub mod mavlink_flags;
pub mod model;
pub mod run;
pub mod stats;

pub use detector::FrameDetector;
pub use error::*;
pub use run::{report_failure, run_pipeline, run_source, OpenSource, RunPlan, FAILED_AFTER};
pub use stats::Stats;
