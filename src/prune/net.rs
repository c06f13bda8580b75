//! The view of a Darknet network that pruning needs: layer wiring, channel widths and per-conv
//! parameters as plain vectors (no tensors: pruning is bookkeeping plus slicing).

use super::cfg_text::CfgText;
use super::PruneError;

/// How a layer moves channels; everything pruning must know about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    Conv(ConvSpec),
    /// Element-wise sum of the previous layer and layer `from` (absolute index).
    Shortcut {
        from: usize,
    },
    /// Channel concatenation of the listed layers (absolute indices, in order).
    Route {
        layers: Vec<usize>,
    },
    Upsample {
        stride: usize,
    },
    Maxpool {
        size: usize,
        stride: usize,
    },
    /// Detection head: passes its input through, owns no weights.
    Yolo,
}

/// A `[convolutional]` section's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub filters: usize,
    pub size: usize,
    pub stride: usize,
    pub pad: usize,
    pub batch_norm: bool,
    pub leaky: bool,
}

/// One conv's parameters in Darknet order: `bias` is β for BN convs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    pub out: usize,
    pub inp: usize,
    pub k: usize,
    pub bias: Vec<f32>,
    pub bn: Option<BatchNorm>,
    /// OIHW, row-major.
    pub kernel: Vec<f32>,
}

/// BN statistics of one conv (β lives in [`ConvParams::bias`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

impl ConvParams {
    pub fn param_count(&self) -> usize {
        self.bias.len() + self.bn.as_ref().map_or(0, |_| 3 * self.out) + self.kernel.len()
    }
}

/// A network: layers, their output widths, and parameters for each conv (by layer index).
#[derive(Debug, Clone)]
pub struct Net {
    pub cfg: CfgText,
    pub layers: Vec<Layer>,
    pub widths: Vec<usize>,
    pub params: Vec<Option<ConvParams>>,
    pub input: (usize, usize, usize),
}

impl Net {
    /// Output channel count of every layer, checking shortcut widths on the way.
    pub fn compute_widths(layers: &[Layer], in_ch: usize) -> Result<Vec<usize>, PruneError> {
        let mut w: Vec<usize> = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().enumerate() {
            let prev = if i == 0 { in_ch } else { w[i - 1] };
            let out = match l {
                Layer::Conv(c) => c.filters,
                Layer::Shortcut { from } => {
                    if w[*from] != prev {
                        return Err(PruneError::Layer {
                            layer: i,
                            msg: format!(
                                "shortcut adds {prev} channels to layer {from}'s {}",
                                w[*from]
                            ),
                        });
                    }
                    prev
                }
                Layer::Route { layers } => layers.iter().map(|&j| w[j]).sum(),
                _ => prev,
            };
            w.push(out);
        }
        Ok(w)
    }

    /// Indices of convs with batch norm (the ones pruning may thin).
    pub fn bn_convs(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| matches!(&self.layers[i], Layer::Conv(c) if c.batch_norm))
            .collect()
    }

    /// Input channel count of layer `i` (the previous layer's width, or the image's).
    pub fn in_width(&self, i: usize) -> usize {
        if i == 0 {
            self.input.2
        } else {
            self.widths[i - 1]
        }
    }
}
