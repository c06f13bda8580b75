//! Reduced precision: quantized (q8_0 / q4_0) and f16 models.

pub mod cli;
mod error;
mod precision;
pub mod accuracy;
pub mod file;
pub mod loader;
pub mod qconv;

pub use error::*;
pub use precision::Precision;
pub use qconv::{ConvGeom, QuantConv};
