//! `[shortcut]`: sum of the previous layer and the `from` layers, optionally weighted.

use super::activation::apply_tensor;
use crate::model::{ShortcutCfg, ShortcutWeights, WeightsNorm};
use candle_core::{Device, Result, Tensor};

/// Shortcut ready to run, with its fusion weights normalised once at load.
pub(crate) struct ShortcutLayer {
    cfg: ShortcutCfg,
    /// One factor tensor per input (`[1]` or `[1, C, 1, 1]`), index 0 = previous layer.
    factors: Option<Vec<Tensor>>,
}

/// AlexeyAB's normalisation: relu → w/(eps+Σ relu), softmax → e^(w−max)/(eps+Σ e^(w−max)).
fn normalise(w: &[f32], norm: WeightsNorm) -> Vec<f32> {
    const EPS: f32 = 0.0001;
    match norm {
        WeightsNorm::None => w.to_vec(),
        WeightsNorm::Relu => {
            let sum = EPS + w.iter().map(|v| v.max(0.0)).sum::<f32>();
            w.iter().map(|v| v.max(0.0) / sum).collect()
        }
        WeightsNorm::Softmax => {
            let max = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum = EPS + w.iter().map(|v| (v - max).exp()).sum::<f32>();
            w.iter().map(|v| (v - max).exp() / sum).collect()
        }
    }
}

impl ShortcutLayer {
    pub fn new(
        cfg: ShortcutCfg,
        weights: Option<&[f32]>,
        channels: usize,
        device: &Device,
    ) -> Result<Self> {
        let inputs = cfg.from.len() + 1;
        let factors = match (cfg.weights_type, weights) {
            (ShortcutWeights::None, _) | (_, None) => None,
            (ShortcutWeights::PerFeature, Some(w)) => {
                let n = normalise(w, cfg.weights_norm);
                Some(
                    n.iter()
                        .map(|&f| Tensor::new(&[f], device))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
            (ShortcutWeights::PerChannel, Some(w)) => {
                // Normalised across inputs for each channel separately.
                let mut per_input = vec![vec![0.0; channels]; inputs];
                for c in 0..channels {
                    let col: Vec<f32> = (0..inputs).map(|i| w[i * channels + c]).collect();
                    for (i, v) in normalise(&col, cfg.weights_norm).into_iter().enumerate() {
                        per_input[i][c] = v;
                    }
                }
                Some(
                    per_input
                        .into_iter()
                        .map(|v| Tensor::from_vec(v, (1, channels, 1, 1), device))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
        };
        Ok(ShortcutLayer { cfg, factors })
    }

    /// `inputs[0]` = previous layer, then the `from` layers in order.
    pub fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut acc: Option<Tensor> = None;
        for (i, x) in inputs.iter().enumerate() {
            let term = match &self.factors {
                Some(f) => x.broadcast_mul(&f[i])?,
                None => (*x).clone(),
            };
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
        let sum = acc.ok_or_else(|| candle_core::Error::Msg("shortcut without inputs".into()))?;
        apply_tensor(self.cfg.activation, &sum)
    }

    /// Casts the fusion factors so they multiply activations of `dtype` (f16/bf16 on CUDA).
    pub fn cast(&mut self, dtype: candle_core::DType) -> Result<()> {
        if let Some(f) = &mut self.factors {
            for t in f.iter_mut() {
                *t = t.to_dtype(dtype)?;
            }
        }
        Ok(())
    }
}
