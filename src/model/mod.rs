//! The Darknet network on Candle: cfg parser, `.weights` reader/writer, layers, forward, summary.

// Errors carry file/line/section/key by value; they happen once at load, never per frame.
#![allow(clippy::result_large_err)]

mod cfg;
mod cfg_layers;
pub mod cli;
mod error;
mod forward;
pub(crate) mod layers;
mod plan;
pub mod random;
mod shapes;
mod summary;
mod weights;

pub use cfg::{Cfg, Entry, Layer, NetParams, RawSection};
pub use cfg_layers::{
    Activation, ConvCfg, LayerKind, MaxpoolCfg, RouteCfg, ShortcutCfg, ShortcutWeights,
    WeightsNorm, YoloCfg,
};
pub use error::*;
pub use forward::{Darknet, ForwardOptions, YoloOutput};
pub use layers::{cpu_f32_kernels_available, ConvBackend};
pub use shapes::{layer_shapes, Shape};
pub use summary::{summary, LayerSummary, Summary};
pub use weights::{
    expected_file_size, param_count, ConvWeights, DarknetWeights, ShortcutWeightsData,
    WeightsHeader,
};

#[cfg(test)]
pub(crate) mod tests_support {
    pub fn cfg_path(name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models/cfg")
            .join(name)
    }
}
