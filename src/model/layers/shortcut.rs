//! `[shortcut]`: sum of the previous layer and the `from` layers, optionally weighted.

use super::activation::{apply_slice, apply_tensor};
use crate::model::{ShortcutCfg, ShortcutWeights, WeightsNorm};
use candle_core::{Device, Result, Tensor};

/// Shortcut ready to run, with its fusion weights normalised once at load.
pub(crate) struct ShortcutLayer {
    cfg: ShortcutCfg,
    /// One factor tensor per input (`[1]` or `[1, C, 1, 1]`), index 0 = previous layer.
    factors: Option<Vec<Tensor>>,
    /// The same factors as plain values per input (one, or one per channel) for the CPU path.
    scales: Option<Vec<Vec<f32>>>,
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
        let scales = match (cfg.weights_type, weights) {
            (ShortcutWeights::None, _) | (_, None) => None,
            (ShortcutWeights::PerFeature, Some(w)) => Some(
                normalise(w, cfg.weights_norm)
                    .into_iter()
                    .map(|f| vec![f])
                    .collect::<Vec<_>>(),
            ),
            (ShortcutWeights::PerChannel, Some(w)) => {
                // Normalised across inputs for each channel separately.
                let mut per_input = vec![vec![0.0; channels]; inputs];
                for c in 0..channels {
                    let col: Vec<f32> = (0..inputs).map(|i| w[i * channels + c]).collect();
                    for (i, v) in normalise(&col, cfg.weights_norm).into_iter().enumerate() {
                        per_input[i][c] = v;
                    }
                }
                Some(per_input)
            }
        };
        let factors = match &scales {
            None => None,
            Some(per_input) => Some(
                per_input
                    .iter()
                    .map(|v| match v.len() {
                        1 => Tensor::new(v.as_slice(), device),
                        c => Tensor::from_slice(v, (1, c, 1, 1), device),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        Ok(ShortcutLayer {
            cfg,
            factors,
            scales,
        })
    }

    /// Whether this is the plain residual add `previous + from` (one `from`, no weights, linear
    /// activation): the sum a conv before it can make in its own store (`planned`).
    pub(crate) fn is_plain_add(&self) -> bool {
        self.scales.is_none()
            && self.cfg.from.len() == 1
            && self.cfg.activation == crate::model::Activation::Linear
    }

    /// `Σ factor·input` then the activation, over NCHW slices of `dims` = (b, c, h·w), into
    /// `dst` (every value written; `inputs[0]` = previous layer): the CPU path's slice form.
    pub fn forward_into(
        &self,
        inputs: &[&[f32]],
        (b, c, hw): (usize, usize, usize),
        dst: &mut [f32],
    ) -> Result<()> {
        use rayon::prelude::*;
        const MIN_SPLIT: usize = 1 << 16;
        let len = b * c * hw;
        if inputs.len() != self.cfg.from.len() + 1
            || dst.len() < len
            || inputs.iter().any(|x| x.len() < len)
        {
            return Err(candle_core::Error::Msg(format!(
                "shortcut of {} inputs over {b}x{c}x{hw}: got {} inputs or too short buffers",
                self.cfg.from.len() + 1,
                inputs.len()
            )));
        }
        // Factor of input i on plane p (1 when unweighted: exact, as v · 1 = v).
        let factor = |i: usize, p: usize| match &self.scales {
            None => 1.0,
            Some(s) => match s[i].as_slice() {
                [one] => *one,
                per_channel => per_channel[p % c],
            },
        };
        let plane = |(p, out): (usize, &mut [f32])| {
            let (at, n) = (p * hw, out.len());
            let x = |i: usize| &inputs[i][at..at + n];
            // The first two inputs in one pass (the common residual add), then the rest.
            let f0 = factor(0, p);
            match inputs.get(1) {
                Some(_) => {
                    let f1 = factor(1, p);
                    for ((o, &a), &b) in out.iter_mut().zip(x(0)).zip(x(1)) {
                        *o = f0 * a + f1 * b;
                    }
                }
                None => out.iter_mut().zip(x(0)).for_each(|(o, &a)| *o = f0 * a),
            }
            for i in 2..inputs.len() {
                let f = factor(i, p);
                out.iter_mut().zip(x(i)).for_each(|(o, &v)| *o += f * v);
            }
            apply_slice(self.cfg.activation, out);
        };
        let dst = &mut dst[..len];
        if len >= MIN_SPLIT && rayon::current_num_threads() > 1 {
            dst.par_chunks_mut(hw.max(1))
                .enumerate()
                .with_min_len((1 << 14) / hw.max(1) + 1)
                .for_each(plane);
        } else {
            dst.chunks_mut(hw.max(1)).enumerate().for_each(plane);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Activation;

    fn t(s: f32) -> Tensor {
        Tensor::arange(0f32, 30.0, &Device::Cpu)
            .unwrap()
            .affine(s as f64, -10.0)
            .unwrap()
            .reshape((1, 3, 2, 5))
            .unwrap()
    }

    fn max_diff(a: &[f32], b: &Tensor) -> f32 {
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn slice_sum_matches_tensor_ops_plain_and_weighted() {
        let (a, b, c) = (t(1.0), t(-0.5), t(0.25));
        let v = |x: &Tensor| -> Vec<f32> { x.flatten_all().unwrap().to_vec1().unwrap() };
        let (va, vb, vc) = (v(&a), v(&b), v(&c));
        let cases = [
            (ShortcutWeights::None, None),
            (ShortcutWeights::PerFeature, Some(vec![0.5, -1.0, 2.0])),
            (
                ShortcutWeights::PerChannel,
                Some((0..9).map(|i| i as f32 * 0.3 - 1.0).collect::<Vec<_>>()),
            ),
        ];
        for (weights_type, w) in cases {
            let cfg = ShortcutCfg {
                from: vec![0, 1],
                activation: Activation::Leaky,
                weights_type,
                weights_norm: WeightsNorm::Softmax,
            };
            let layer = ShortcutLayer::new(cfg, w.as_deref(), 3, &Device::Cpu).unwrap();
            let want = layer.forward(&[&a, &b, &c]).unwrap();
            let mut got = vec![f32::NAN; 30];
            layer
                .forward_into(&[&va, &vb, &vc], (1, 3, 10), &mut got)
                .unwrap();
            let d = max_diff(&got, &want);
            assert!(d < 1e-5, "{weights_type:?}: max diff {d}");
            // Too few inputs is an error, not a panic.
            assert!(layer.forward_into(&[&va], (1, 3, 10), &mut got).is_err());
        }
    }
}
