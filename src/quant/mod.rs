//! Reduced precision: quantized (q8_0 / q4_0) and f16 models.

pub mod cli;
mod error;

pub use error::*;
