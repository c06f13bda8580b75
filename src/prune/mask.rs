//! Which channels survive: global |γ| threshold, per-layer floor, shortcut-group union
//! (SlimYOLOv3 `prune.py` steps 3–5), and the resulting mask of every layer's output.

use super::net::{Layer, Net};
use super::PruneError;

/// |γ| value at percentile `ratio` over all BN convs (`sorted[int(total·ratio)]`).
pub fn global_threshold(net: &Net, ratio: f64) -> Result<f32, PruneError> {
    let mut all: Vec<f32> = net
        .params
        .iter()
        .flatten()
        .filter_map(|p| p.bn.as_ref())
        .flat_map(|bn| bn.gamma.iter().map(|g| g.abs()))
        .collect();
    if all.is_empty() {
        return Err(PruneError::NoBatchNorm(net.cfg.source.clone()));
    }
    all.sort_by(f32::total_cmp);
    let idx = ((all.len() as f64 * ratio) as usize).min(all.len() - 1);
    Ok(all[idx])
}

/// `|γ| > thresh`, or the `max(1, ⌊n·min_keep⌋)` largest |γ| if fewer survive.
pub fn layer_mask(gamma: &[f32], thresh: f32, min_keep: f64) -> Vec<bool> {
    let mut mask: Vec<bool> = gamma.iter().map(|g| g.abs() > thresh).collect();
    let floor = ((gamma.len() as f64 * min_keep) as usize).max(1);
    if mask.iter().filter(|&&m| m).count() < floor {
        let mut order: Vec<usize> = (0..gamma.len()).collect();
        order.sort_by(|&a, &b| gamma[b].abs().total_cmp(&gamma[a].abs()).then(a.cmp(&b)));
        mask = vec![false; gamma.len()];
        order.iter().take(floor).for_each(|&i| mask[i] = true);
    }
    mask
}

/// The conv whose channel set a layer's output carries (through shortcut, pool, upsample and
/// single-layer routes); `None` for concatenations and the image.
fn source_conv(layers: &[Layer], mut i: usize) -> Option<usize> {
    loop {
        match &layers[i] {
            Layer::Conv(_) => return Some(i),
            Layer::Route { layers: l } if l.len() == 1 => i = l[0],
            Layer::Route { .. } => return None,
            _ if i == 0 => return None,
            _ => i -= 1,
        }
    }
}

/// Groups of convs tied by shortcuts (each group must keep one channel set).
pub fn shortcut_groups(net: &Net) -> Result<Vec<Vec<usize>>, PruneError> {
    let n = net.layers.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (i, l) in net.layers.iter().enumerate() {
        let Layer::Shortcut { from } = l else {
            continue;
        };
        let a = source_conv(&net.layers, i - 1);
        let b = source_conv(&net.layers, *from);
        let (Some(a), Some(b)) = (a, b) else {
            return Err(PruneError::Layer {
                layer: i,
                msg: "shortcut input is not traceable to a single conv; cannot prune".into(),
            });
        };
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra] = rb;
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..n {
        if matches!(net.layers[i], Layer::Conv(_)) {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
    }
    Ok(groups.into_values().filter(|g| g.len() > 1).collect())
}

/// Kept output channels of every conv (all `true` for convs without BN), after floor and union.
pub fn conv_masks(
    net: &Net,
    thresh: f32,
    min_keep: f64,
) -> Result<Vec<Option<Vec<bool>>>, PruneError> {
    let mut masks: Vec<Option<Vec<bool>>> = net
        .params
        .iter()
        .map(|p| {
            p.as_ref().map(|p| match &p.bn {
                Some(bn) => layer_mask(&bn.gamma, thresh, min_keep),
                None => vec![true; p.out],
            })
        })
        .collect();
    for group in shortcut_groups(net)? {
        let width = net.widths[group[0]];
        let mut union = vec![false; width];
        for &c in &group {
            for (u, m) in union.iter_mut().zip(masks[c].iter().flatten()) {
                *u |= *m;
            }
        }
        for &c in &group {
            masks[c] = Some(union.clone());
        }
    }
    Ok(masks)
}

/// Mask of every layer's output channels, derived from the conv masks (route = concat).
pub fn layer_masks(net: &Net, conv: &[Option<Vec<bool>>]) -> Vec<Vec<bool>> {
    let mut out: Vec<Vec<bool>> = Vec::with_capacity(net.layers.len());
    for (i, l) in net.layers.iter().enumerate() {
        let m = match l {
            Layer::Conv(_) => conv[i].clone().unwrap_or_else(|| vec![true; net.widths[i]]),
            Layer::Route { layers } => layers.iter().flat_map(|&j| out[j].clone()).collect(),
            _ => out[i - 1].clone(),
        };
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_keeps_largest() {
        let g: [f32; 12] = [
            0.01, -0.5, 0.02, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let m = layer_mask(&g, 1.0, 0.1);
        assert_eq!(m.iter().filter(|&&x| x).count(), 1);
        assert!(m[1]);
        let m = layer_mask(&g, 0.015, 0.1);
        assert_eq!(
            m,
            g.iter().map(|x: &f32| x.abs() > 0.015).collect::<Vec<_>>()
        );
    }
}

#[cfg(test)]
mod spp3_tests {
    use super::*;
    use crate::prune::cfg_text::CfgText;

    fn spp3_without_weights() -> Net {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/cfg/yolov3-spp3.cfg");
        let text = std::fs::read_to_string(path).unwrap();
        let cfg = CfgText::parse(&text, path).unwrap();
        let layers = cfg.layers().unwrap();
        let widths = Net::compute_widths(&layers, 3).unwrap();
        let params = vec![None; layers.len()];
        Net {
            input: cfg.input().unwrap(),
            cfg,
            layers,
            widths,
            params,
        }
    }

    #[test]
    fn darknet53_stages_form_five_shortcut_groups() {
        let net = spp3_without_weights();
        let groups = shortcut_groups(&net).unwrap();
        // One group per Darknet-53 stage: the stride-2 conv plus the 3×3 conv of each residual.
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 3, 9, 9, 5]);
        assert_eq!(groups[0], vec![1, 3]);
        let channels: usize = groups.iter().flatten().map(|&c| net.widths[c]).sum();
        assert_eq!(channels, 12_544);
    }

    #[test]
    fn spp_route_mask_is_the_spp_input_mask_four_times() {
        let net = spp3_without_weights();
        let mut conv: Vec<Option<Vec<bool>>> = vec![None; net.layers.len()];
        let m77: Vec<bool> = (0..512).map(|c| c % 3 == 0).collect();
        conv[77] = Some(m77.clone());
        let out = layer_masks(&net, &conv);
        assert_eq!(out[83], m77.repeat(4));
        // route -1, 61 after the upsample: [conv 91's mask, conv 61 region]
        assert_eq!(out[93].len(), net.widths[92] + net.widths[61]);
    }
}
