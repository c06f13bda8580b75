//! Evaluation on VisDrone: the official toolkit's protocol and COCO rules.

pub mod cli;
mod error;

pub use error::*;
