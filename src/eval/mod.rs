//! Evaluation on VisDrone: the official toolkit's protocol (`visdrone`) and COCO rules (`coco`).
//!
//! Users compare Kestrel's numbers with published ones, so the `visdrone` protocol reproduces
//! the official VisDrone2018-DET and -VID toolkits' algorithms, quirks included (see
//! docs/evaluation.md).

pub mod bench;
pub mod cli;
pub mod coco;
pub mod dataset;
mod error;
pub mod ignore;
pub mod matching;
pub mod plots;
pub mod report;
pub mod results;
pub mod run_model;
pub mod types;
pub mod vid;
pub mod visdrone;

pub use error::*;
pub use types::*;

#[cfg(test)]
mod visdrone_tests;
