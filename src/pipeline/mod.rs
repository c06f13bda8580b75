//! The onboard pipeline: capture thread → newest-frame-wins channel → inference thread →
//! publisher thread fanning out to sinks; stats and shutdown.

pub mod cli;
pub mod detector;
mod error;
pub mod latest;
pub mod run;
pub mod stats;

pub use detector::FrameDetector;
pub use error::*;
pub use run::{run_pipeline, RunPlan};
pub use stats::Stats;
