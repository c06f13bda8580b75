//! One pruning pass: masks → (optionally) fold removed channels' constant output into the
//! consumers → slice kernels and BN vectors → a new [`Net`] whose cfg differs only in `filters`.

use super::cfg_text::CfgText;
use super::mask;
use super::net::{ConvParams, Layer, Net};
use super::PruneError;

/// What one pass kept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    pub ratio: f64,
    pub threshold: f32,
    /// Filters before and after, for every BN conv.
    pub kept: Vec<KeptLayer>,
}

/// One BN conv's width before and after a pass.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeptLayer {
    pub layer: usize,
    pub before: usize,
    pub after: usize,
}

fn leaky(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.1 * x
    }
}

/// Constant each removed channel emits in the masked model (act(β), since γ·x̂ ≈ 0), 0 elsewhere,
/// carried through shortcuts (sum), routes (concat), pools and upsampling (unchanged).
fn removed_constants(net: &Net, out_masks: &[Vec<bool>]) -> Vec<Vec<f32>> {
    let mut k: Vec<Vec<f32>> = Vec::with_capacity(net.layers.len());
    for (i, l) in net.layers.iter().enumerate() {
        let v = match (l, &net.params[i]) {
            (Layer::Conv(c), Some(p)) if p.bn.is_some() => p
                .bias
                .iter()
                .zip(&out_masks[i])
                .map(|(&b, &kept)| match (kept, c.leaky) {
                    (true, _) => 0.0,
                    (false, true) => leaky(b),
                    (false, false) => b,
                })
                .collect(),
            (Layer::Conv(_), _) => vec![0.0; net.widths[i]],
            (Layer::Shortcut { from }, _) => {
                k[i - 1].iter().zip(&k[*from]).map(|(a, b)| a + b).collect()
            }
            (Layer::Route { layers }, _) => layers.iter().flat_map(|&j| k[j].clone()).collect(),
            _ => k[i - 1].clone(),
        };
        k.push(v);
    }
    k
}

/// What removed input channels (constants `a`) added to output `o` of `p`: Σ_c a_c·ΣW[o,c].
fn fold_offset(p: &ConvParams, o: usize, in_mask: &[bool], a: &[f32]) -> f32 {
    let kk = p.k * p.k;
    let mut offset = 0.0f64;
    for c in (0..p.inp).filter(|&c| !in_mask[c] && a[c] != 0.0) {
        let w = &p.kernel[(o * p.inp + c) * kk..(o * p.inp + c + 1) * kk];
        offset += w.iter().map(|&x| x as f64).sum::<f64>() * a[c] as f64;
    }
    offset as f32
}

/// Slices one conv to `out_mask` × `in_mask`, first folding the constants `a` of removed inputs.
fn slice_conv(
    p: &ConvParams,
    out_mask: &[bool],
    in_mask: &[bool],
    a: Option<&[f32]>,
) -> ConvParams {
    let kk = p.k * p.k;
    let mut bias = p.bias.clone();
    let mut bn = p.bn.clone();
    if let Some(a) = a {
        let offsets = (0..p.out).map(|o| fold_offset(p, o, in_mask, a));
        match bn.as_mut() {
            Some(bn) => bn.mean.iter_mut().zip(offsets).for_each(|(m, d)| *m -= d),
            None => bias.iter_mut().zip(offsets).for_each(|(b, d)| *b += d),
        }
    }
    let outs: Vec<usize> = (0..p.out).filter(|&o| out_mask[o]).collect();
    let ins: Vec<usize> = (0..p.inp).filter(|&c| in_mask[c]).collect();
    let pick = |v: &[f32]| outs.iter().map(|&o| v[o]).collect::<Vec<f32>>();
    let mut kernel = Vec::with_capacity(outs.len() * ins.len() * kk);
    for &o in &outs {
        for &c in &ins {
            let s = (o * p.inp + c) * kk;
            kernel.extend_from_slice(&p.kernel[s..s + kk]);
        }
    }
    ConvParams {
        out: outs.len(),
        inp: ins.len(),
        k: p.k,
        bias: pick(&bias),
        bn: bn.map(|b| super::net::BatchNorm {
            gamma: pick(&b.gamma),
            mean: pick(&b.mean),
            var: pick(&b.var),
        }),
        kernel,
    }
}

/// Prunes `net` at the |γ| percentile `ratio`, keeping at least `min_keep` of each layer.
pub fn prune_pass(
    net: &Net,
    ratio: f64,
    min_keep: f64,
    fold: bool,
) -> Result<(Net, PassReport), PruneError> {
    let _span = tracing::info_span!("prune_pass", ratio).entered();
    let threshold = mask::global_threshold(net, ratio)?;
    let conv_masks = mask::conv_masks(net, threshold, min_keep)?;
    let out_masks = mask::layer_masks(net, &conv_masks);
    let consts = fold.then(|| removed_constants(net, &out_masks));
    let all_in = vec![true; net.input.2];
    let mut params = Vec::with_capacity(net.layers.len());
    let mut filters = Vec::with_capacity(net.layers.len());
    let mut kept = Vec::new();
    for (i, p) in net.params.iter().enumerate() {
        let Some(p) = p else {
            params.push(None);
            filters.push(None);
            continue;
        };
        let in_mask = if i == 0 { &all_in } else { &out_masks[i - 1] };
        let a = consts
            .as_ref()
            .filter(|_| i > 0)
            .map(|k| k[i - 1].as_slice());
        let s = slice_conv(p, &out_masks[i], in_mask, a);
        if p.bn.is_some() {
            kept.push(KeptLayer {
                layer: i,
                before: p.out,
                after: s.out,
            });
        }
        filters.push(Some(s.out));
        params.push(Some(s));
    }
    let text = net.cfg.with_filters(&filters);
    let cfg = CfgText::parse(&text, &net.cfg.source)?;
    let layers = cfg.layers()?;
    let widths = Net::compute_widths(&layers, net.input.2)?;
    let pruned = Net {
        cfg,
        layers,
        widths,
        params,
        input: net.input,
    };
    Ok((
        pruned,
        PassReport {
            ratio,
            threshold,
            kept,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::net::BatchNorm;

    #[test]
    fn folds_into_bn_mean_and_plain_bias() {
        // in: 2 channels; removed channel 1 emits a = leaky(-2) = -0.2.
        let a = [0.0, -0.2];
        let p = ConvParams {
            out: 1,
            inp: 2,
            k: 1,
            bias: vec![0.5],
            bn: None,
            kernel: vec![1.0, 3.0],
        };
        let s = slice_conv(&p, &[true], &[true, false], Some(&a));
        assert_eq!(s.kernel, vec![1.0]);
        assert!((s.bias[0] - (0.5 - 0.6)).abs() < 1e-6);
        let bn = ConvParams {
            bn: Some(BatchNorm {
                gamma: vec![1.0],
                mean: vec![0.1],
                var: vec![1.0],
            }),
            ..p
        };
        let s = slice_conv(&bn, &[true], &[true, false], Some(&a));
        assert!((s.bn.unwrap().mean[0] - (0.1 + 0.6)).abs() < 1e-6);
        assert_eq!(s.bias, vec![0.5]);
    }
}
