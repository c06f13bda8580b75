//! Reduced precision: quantized (q8_0 / q4_0) and f16 models.
//!
//! Candle quantizes matmuls only, so convs run as im2row + `QMatMul` ([`qconv`]); a model file
//! ([`file`]) is GGUF with the cfg embedded; [`loader::load_any`] loads either kind of weights
//! at any precision and keeps a reduced conv only where it is faster here (the plan).

// Errors carry the model error (file, line, key) by value; they happen at load, never per frame.
#![allow(clippy::result_large_err)]

pub mod accuracy;
mod amx;
mod avx512;
pub mod bf16;
pub(crate) mod chain;
pub mod check;
pub mod cli;
mod direct;
pub(crate) mod direct_f32;
mod error;
pub mod file;
pub mod int8;
pub mod loader;
mod precision;
pub mod qconv;

pub use error::*;

/// Whether `--precision bf16` runs on this CPU (AMX-BF16 granted by the OS, or AVX512-BF16).
pub fn cpu_bf16_available() -> bool {
    direct::Engine::for_op(direct::TileOp::Bf16).is_some()
}
/// Whether int8 convs run on the direct kernel here (AMX, or AVX-512 VNNI), which is also what
/// chains them (see `chain`).
pub fn cpu_int8_direct_available() -> bool {
    direct::Engine::for_op(direct::TileOp::Int8).is_some()
}
pub use loader::{load_any, load_any_with, Loaded, PlanMode};
pub use precision::Precision;
pub use qconv::{ConvGeom, QuantConv};
