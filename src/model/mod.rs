//! The Darknet network on Candle: cfg parser, `.weights` reader/writer, layers, forward, summary.
//!
//! Load order: cfg text → typed layers with every shape computed → weights checked to the byte
//! against the cfg → BN folded into each conv on the device → forward → YOLO decode on device.

pub mod cfg;
pub mod cli;
pub mod conv;
mod error;
pub mod forward;
pub mod layers;
pub mod random;
pub mod summary;
pub mod weights;

pub use cfg::{Cfg, Shape};
pub use error::*;
pub use forward::{Darknet, ForwardOptions, YoloOutput};
pub use summary::{summary, Summary};
pub use weights::DarknetWeights;

impl DarknetWeights {
    /// Deterministic random weights for `cfg` that keep activations finite through the network.
    pub fn random(cfg: &Cfg, seed: u64) -> DarknetWeights {
        random::random_weights(cfg, seed)
    }
}
