//! The Darknet network on Candle: cfg parser, `.weights` reader/writer, layers, forward, summary.

pub mod cli;
mod error;

pub use error::*;
