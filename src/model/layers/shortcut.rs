//! `[shortcut]`: sum of the previous layer and the `from` layers, optionally weighted.

use super::activation::{apply_slice, apply_tensor};
use super::sgemm::with_f32;
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
        if let Some(y) = self.forward_cpu_plain(inputs)? {
            return Ok(y);
        }
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

    /// Unweighted sum of same-shape CPU f32 maps in one serial pass into one new buffer (Candle's
    /// add allocates per input and wakes its thread pool for a memory-bound loop); `None` when
    /// the inputs do not fit this case.
    fn forward_cpu_plain(&self, inputs: &[&Tensor]) -> Result<Option<Tensor>> {
        let Some((first, rest)) = inputs.split_first() else {
            return Ok(None);
        };
        let plain = self.factors.is_none()
            && inputs.iter().all(|x| {
                x.device().is_cpu()
                    && x.dtype() == candle_core::DType::F32
                    && x.dims() == first.dims()
            });
        if !plain {
            return Ok(None);
        }
        // The first two inputs summed while copying: one pass instead of a copy then an add.
        let mut acc = match rest.split_first() {
            Some((second, _)) => with_f32(first, |a| with_f32(second, |b| Ok(sum2(a, b))))?,
            None => with_f32(first, |v| Ok(v.to_vec()))?,
        };
        for x in rest.iter().skip(1) {
            with_f32(x, |v| {
                acc.iter_mut().zip(v).for_each(|(a, &b)| *a += b);
                Ok(())
            })?;
        }
        apply_slice(self.cfg.activation, &mut acc);
        Tensor::from_vec(acc, first.shape(), first.device()).map(Some)
    }
}

/// `a + b` into a new buffer; large maps on both cores (memory-bound: two cores draw more
/// bandwidth than one).
fn sum2(a: &[f32], b: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    const MIN_SPLIT: usize = 1 << 16;
    if a.len() >= MIN_SPLIT && candle_core::utils::get_num_threads() > 1 {
        return a
            .par_iter()
            .zip(b)
            .with_min_len(MIN_SPLIT / 4)
            .map(|(x, y)| x + y)
            .collect();
    }
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Activation;

    #[test]
    fn plain_cpu_sum_matches_tensor_ops() {
        let cfg = ShortcutCfg {
            from: vec![0, 1],
            activation: Activation::Leaky,
            weights_type: ShortcutWeights::None,
            weights_norm: WeightsNorm::None,
        };
        let layer = ShortcutLayer::new(cfg.clone(), None, 3, &Device::Cpu).unwrap();
        let t = |s: f32| {
            Tensor::arange(0f32, 30.0, &Device::Cpu)
                .unwrap()
                .affine(s as f64, -10.0)
                .unwrap()
                .reshape((1, 3, 2, 5))
                .unwrap()
        };
        let (a, b, c) = (t(1.0), t(-0.5), t(0.25));
        let got = layer.forward_cpu_plain(&[&a, &b, &c]).unwrap().unwrap();
        let want = apply_tensor(cfg.activation, &((a + b).unwrap() + c).unwrap()).unwrap();
        let d: f32 = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-6, "max diff {d}");
    }
}
