//! Deterministic random weights for any cfg, for parity tests and benchmarks without trained files.
//!
//! Plain random kernels make activations explode or vanish over 100+ layers (residual sums double
//! the variance at every shortcut). So the generator tracks the expected second moment of every
//! layer's output and sets each BN's running variance to the variance its conv really produces:
//! the folded network then keeps activations near unit scale everywhere, like a trained one.

use super::cfg::Cfg;
use super::layers::{Activation, LayerSpec};
use super::weights::{BatchNorm, ConvWeights, DarknetWeights};

/// xorshift64* — small, fast, reproducible across platforms.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

/// E[y²] after an activation, for y of roughly zero mean and second moment `m2`.
fn activated(m2: f64, a: Activation) -> f64 {
    match a {
        Activation::Linear => m2,
        Activation::Leaky => m2 * 0.505,
        Activation::Relu => m2 * 0.5,
        Activation::Mish | Activation::Swish => m2 * 0.35,
        Activation::Logistic => 0.3,
    }
}

/// Random weights for `cfg` from the analytic estimate alone (no forward pass).
pub fn analytic_weights(cfg: &Cfg, seed: u64) -> DarknetWeights {
    let mut rng = Rng::new(seed);
    let shapes = match cfg.shapes(cfg.net.width, cfg.net.height) {
        Ok(s) => s,
        Err(_) => {
            return DarknetWeights {
                major: 0,
                minor: 2,
                revision: 0,
                seen: 0,
                seen_is_u64: true,
                convs: vec![],
                shortcuts: vec![],
            }
        }
    };
    // Second moment of each layer's output; the input image is in [0, 1] (E[x²] ≈ 1/3).
    let mut m2: Vec<f64> = Vec::with_capacity(cfg.layers.len());
    let mut convs = Vec::new();
    let mut shortcuts = Vec::new();
    for (i, layer) in cfg.layers.iter().enumerate() {
        let m_in = if i == 0 { 1.0 / 3.0 } else { m2[i - 1] };
        let cin = cfg.input_shape(&shapes, i, cfg.net.width, cfg.net.height).c;
        let out = match layer {
            LayerSpec::Conv(c) => {
                let fan_in = (cin / c.groups * c.size * c.size) as f64;
                let n = c.filters;
                let limit = (3.0 / fan_in).sqrt() as f32; // Var(w) = 1 / fan_in
                let kernel: Vec<f32> = (0..n * fan_in as usize)
                    .map(|_| rng.uniform(-limit, limit))
                    .collect();
                let conv_var = m_in; // fan_in · Var(w) · E[x²]
                if c.batch_normalize {
                    let scales: Vec<f32> = (0..n).map(|_| rng.uniform(0.5, 1.5)).collect();
                    let biases: Vec<f32> = (0..n).map(|_| rng.uniform(-0.2, 0.2)).collect();
                    let variance: Vec<f32> = (0..n)
                        .map(|_| (conv_var * rng.uniform(0.8, 1.25) as f64) as f32)
                        .collect();
                    let mean: Vec<f32> = (0..n)
                        .map(|_| rng.uniform(-0.1, 0.1) * conv_var.sqrt() as f32)
                        .collect();
                    convs.push(ConvWeights {
                        layer: i,
                        biases,
                        bn: Some(BatchNorm {
                            scales,
                            mean,
                            variance,
                        }),
                        kernel,
                    });
                    activated(1.0, c.activation)
                } else {
                    let head = match cfg.layers.get(i + 1) {
                        Some(LayerSpec::Yolo(y)) => Some(5 + y.classes),
                        _ => None,
                    };
                    let per_out = kernel.len() / n;
                    let mut kernel = kernel;
                    let mut biases = Vec::with_capacity(n);
                    for o in 0..n {
                        // (output std, bias): a detection conv gets YOLO-like outputs — moderate box
                        // sizes, rare objectness — so boxes are plausible and NMS is not a tie-fest.
                        let (std, bias) = match head.map(|no| o % no) {
                            Some(2) | Some(3) => (0.5, rng.uniform(-0.3, 0.3)),
                            Some(4) => (1.0, -2.0),
                            _ => (1.0, rng.uniform(-0.5, 0.5)),
                        };
                        let k = std / conv_var.max(1e-12).sqrt() as f32;
                        kernel[o * per_out..(o + 1) * per_out]
                            .iter_mut()
                            .for_each(|w| *w *= k);
                        biases.push(bias);
                    }
                    convs.push(ConvWeights {
                        layer: i,
                        biases,
                        bn: None,
                        kernel,
                    });
                    activated(1.0, c.activation)
                }
            }
            LayerSpec::Shortcut(s) => {
                let sum: f64 = m_in + s.from.iter().map(|&f| m2[f]).sum::<f64>();
                let n =
                    layer.weight_count(cfg.input_shape(&shapes, i, cfg.net.width, cfg.net.height));
                if n > 0 {
                    shortcuts.push((i, (0..n).map(|_| rng.uniform(0.5, 1.5)).collect()));
                }
                activated(sum, s.activation)
            }
            LayerSpec::Route(r) => {
                let total: usize = r.layers.iter().map(|&l| shapes[l].c).sum();
                r.layers
                    .iter()
                    .map(|&l| m2[l] * shapes[l].c as f64)
                    .sum::<f64>()
                    / total.max(1) as f64
            }
            LayerSpec::MaxPool(p) => m_in * (1.0 + (p.size * p.size) as f64).ln().max(1.0),
            LayerSpec::Upsample { .. } | LayerSpec::Yolo(_) => m_in,
        };
        m2.push(out);
    }
    DarknetWeights {
        major: 0,
        minor: 2,
        revision: 5,
        seen: 0,
        seen_is_u64: true,
        convs,
        shortcuts,
    }
}

/// Random weights for `cfg`, deterministic in `seed`: the analytic estimate, then one forward
/// pass on a smooth deterministic 128×128 input that rescales each detection conv so its outputs
/// have the intended scale (the analytic estimate drifts over 100+ layers; the heads are where
/// it shows: saturated objectness, degenerate boxes).
pub fn random_weights(cfg: &Cfg, seed: u64) -> DarknetWeights {
    let mut w = analytic_weights(cfg, seed);
    if let Err(e) = calibrate_heads(cfg, &mut w) {
        tracing::warn!(
            "random weights for {}: head calibration skipped: {e}",
            cfg.name
        );
    }
    w
}

fn calibrate_heads(cfg: &Cfg, w: &mut DarknetWeights) -> Result<(), super::ModelError> {
    use candle_core::{Device, Tensor};
    let size = 128;
    let n = cfg.net.channels * size * size;
    let pattern: Vec<f32> = (0..n)
        .map(|i| 0.5 + 0.4 * ((i % 97) as f32 * 0.37).sin() * ((i / 311) as f32 * 0.11).cos())
        .collect();
    let x = Tensor::from_vec(pattern, (1, cfg.net.channels, size, size), &Device::Cpu)?;
    let model = super::Darknet::from_parts(cfg.clone(), w, &Device::Cpu)?;
    for (layer, out) in model.forward_capturing(&x)? {
        let Some(conv) = w
            .convs
            .iter_mut()
            .find(|c| c.layer == layer && c.bn.is_none())
        else {
            continue;
        };
        let (_, ch, _, _) = out.dims4()?;
        let flat = out.squeeze(0)?.reshape((ch, ()))?;
        let mean: Vec<f32> = flat.mean(1)?.to_vec1()?;
        let sq: Vec<f32> = flat.sqr()?.mean(1)?.to_vec1()?;
        let intended: Vec<f32> = heads_std(cfg, layer, ch);
        let per_out = conv.kernel.len() / ch;
        for o in 0..ch {
            let std = (sq[o] - mean[o] * mean[o]).max(1e-12).sqrt();
            let k = (intended[o] / std).min(1e3);
            conv.kernel[o * per_out..(o + 1) * per_out]
                .iter_mut()
                .for_each(|v| *v *= k);
            // Re-centre: the kernel's mean response moves with the scale; keep the intended bias.
            let shift = (mean[o] - conv.biases[o]) * k;
            conv.biases[o] -= shift;
        }
    }
    Ok(())
}

/// Intended output std per channel of a detection conv (see `analytic_weights`).
fn heads_std(cfg: &Cfg, layer: usize, ch: usize) -> Vec<f32> {
    let no = match cfg.layers.get(layer + 1) {
        Some(LayerSpec::Yolo(y)) => 5 + y.classes,
        _ => return vec![1.0; ch],
    };
    (0..ch)
        .map(|o| if matches!(o % no, 2 | 3) { 0.5 } else { 1.0 })
        .collect()
}
