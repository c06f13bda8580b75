//! Synthetic "masked" models: random weights where a chosen share of each BN conv's channels has
//! γ = 0 but a non-zero β, exactly what a perfectly sparsity-trained network looks like. Used by
//! the equivalence tests and the pruning benchmark (no sparsity-trained SPP3 weights are public).

use super::cfg_text::CfgText;
use super::net::{BatchNorm, ConvParams, Layer, Net};
use super::PruneError;

/// Deterministic uniform numbers (no RNG dependency needed for test data).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next()
    }
}

/// A net for `cfg_text` with random weights; BN conv at layer `i` gets γ = 0 on about
/// `zero_frac(i)` of its channels (others |γ| in [0.5, 1.5], random sign), β in [−1, 1].
pub fn masked_random_net(
    cfg_text: &str,
    source: &str,
    seed: u64,
    zero_frac: impl Fn(usize) -> f32,
) -> Result<Net, PruneError> {
    let cfg = CfgText::parse(cfg_text, source)?;
    let input = cfg.input()?;
    let layers = cfg.layers()?;
    let widths = Net::compute_widths(&layers, input.2)?;
    let mut rng = Lcg(seed);
    let mut params = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let Layer::Conv(c) = l else {
            params.push(None);
            continue;
        };
        let inp = if i == 0 { input.2 } else { widths[i - 1] };
        let n = c.filters;
        let fan_in = inp * c.size * c.size;
        let bound = (3.0 / fan_in as f32).sqrt();
        let kernel = (0..n * fan_in).map(|_| rng.range(-bound, bound)).collect();
        let bias = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let bn = c.batch_norm.then(|| BatchNorm {
            gamma: (0..n)
                .map(|_| random_gamma(&mut rng, zero_frac(i)))
                .collect(),
            mean: (0..n).map(|_| rng.range(-0.5, 0.5)).collect(),
            var: (0..n).map(|_| rng.range(0.5, 1.5)).collect(),
        });
        params.push(Some(ConvParams {
            out: n,
            inp,
            k: c.size,
            bias,
            bn,
            kernel,
        }));
    }
    Ok(Net {
        cfg,
        layers,
        widths,
        params,
        input,
    })
}

fn random_gamma(rng: &mut Lcg, zero_frac: f32) -> f32 {
    let g = rng.range(0.5, 1.5);
    if rng.next() < zero_frac {
        0.0
    } else if rng.next() < 0.5 {
        -g
    } else {
        g
    }
}
