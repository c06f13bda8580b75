//! Deterministic random weights for parity tests and benchmarks: He-like kernels, BN with γ≈1,
//! var≈1, mean≈0, small β; residual branches damped so activations stay finite through 100+ layers.

use super::weights::{
    param_specs, ConvWeights, DarknetWeights, ParamSpec, ShortcutWeightsData, WeightsHeader,
};
use super::{Cfg, LayerKind, ModelError};

/// splitmix64: tiny, fixed, platform-independent.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Layers whose output feeds a `[shortcut]` as its residual branch (the layer just before it).
fn residual_convs(cfg: &Cfg) -> Vec<bool> {
    let mut out = vec![false; cfg.layers.len()];
    for l in &cfg.layers {
        if matches!(l.kind, LayerKind::Shortcut(_)) && l.index > 0 {
            out[l.index - 1] = true;
        }
    }
    out
}

pub(crate) fn random_weights(cfg: &Cfg, seed: u64) -> Result<DarknetWeights, ModelError> {
    let mut rng = SplitMix64::new(seed);
    let residual = residual_convs(cfg);
    let mut out = DarknetWeights {
        header: WeightsHeader::DEFAULT,
        convs: Vec::new(),
        shortcuts: Vec::new(),
    };
    for spec in param_specs(cfg)? {
        match spec {
            ParamSpec::Conv {
                layer,
                n,
                bn,
                kernel,
            } => {
                let fan_in = (kernel[1] * kernel[2] * kernel[3]) as f32;
                // He uniform for BN convs (var 2/fan_in); detection convs (no BN) smaller so tw/th stay sane.
                let a = if bn {
                    (6.0 / fan_in).sqrt()
                } else {
                    (1.5 / fan_in).sqrt()
                };
                let k = rng.vec(kernel.iter().product(), -a, a);
                let (biases, bn) = if bn {
                    let (glo, ghi) = if residual[layer] {
                        (0.2, 0.4)
                    } else {
                        (0.8, 1.2)
                    };
                    let beta = rng.vec(n, -0.1, 0.1);
                    let gamma = rng.vec(n, glo, ghi);
                    let mean = rng.vec(n, -0.05, 0.05);
                    let var = rng.vec(n, 0.8, 1.2);
                    (beta, Some((gamma, mean, var)))
                } else {
                    (rng.vec(n, -0.2, 0.2), None)
                };
                out.convs.push(ConvWeights {
                    layer,
                    biases,
                    bn,
                    kernel: k,
                    kernel_shape: kernel,
                });
            }
            ParamSpec::Shortcut { layer, n } => {
                out.shortcuts.push(ShortcutWeightsData {
                    layer,
                    weights: rng.vec(n, 0.5, 1.0),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let mut a = SplitMix64::new(3);
        let mut b = SplitMix64::new(3);
        for _ in 0..10 {
            let x = a.uniform(-1.0, 1.0);
            assert_eq!(x, b.uniform(-1.0, 1.0));
            assert!((-1.0..1.0).contains(&x));
        }
    }
}
