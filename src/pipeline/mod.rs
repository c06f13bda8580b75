//! The onboard pipeline: capture thread → newest-frame-wins channel → inference thread →
//! publisher thread fanning out to sinks; stats and shutdown.

pub mod cli;
mod error;

pub use error::*;
