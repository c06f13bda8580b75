//! SlimYOLOv3 channel pruning by BN-γ sparsity.

pub mod cli;
mod error;

pub use error::*;
