//! SlimYOLOv3 channel pruning by BN-γ sparsity, with the removed channels' constant output
//! folded into the consumers so the pruned model starts where the masked model was.

mod cfg_text;
pub mod cli;
mod error;
mod hist;
mod mask;
mod net;
mod pass;
mod summary;
mod synthetic;
mod weights;

pub use cfg_text::CfgText;
pub use error::*;
pub use net::{BatchNorm, ConvParams, ConvSpec, Layer, Net};
pub use pass::{prune_pass, KeptLayer, PassReport};
pub use summary::params_and_bflops;
pub use synthetic::masked_random_net;
pub use weights::{load_net, write as write_weights, Header};
