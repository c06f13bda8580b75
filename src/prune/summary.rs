//! Params and Darknet BFLOPs (Σ over convs of 2·n·k²·c·oh·ow, as pjreddie prints) at the cfg's
//! input size, so before/after numbers compare with `kestrel info` and the SlimYOLOv3 paper.

use super::net::{Layer, Net};

/// Parameter count and BFLOPs of `net` at its `[net]` size.
pub fn params_and_bflops(net: &Net) -> (usize, f64) {
    let (w0, h0, _) = net.input;
    let mut hw: Vec<(usize, usize)> = Vec::with_capacity(net.layers.len());
    let mut flops = 0.0f64;
    for (i, l) in net.layers.iter().enumerate() {
        let (w, h) = if i == 0 { (w0, h0) } else { hw[i - 1] };
        let out = match l {
            Layer::Conv(c) => {
                let o = |x: usize| (x + 2 * c.pad).saturating_sub(c.size) / c.stride.max(1) + 1;
                let (ow, oh) = (o(w), o(h));
                flops += 2.0 * (c.filters * c.size * c.size * net.in_width(i) * ow * oh) as f64;
                (ow, oh)
            }
            Layer::Route { layers } => hw[layers[0]],
            Layer::Upsample { stride } => (w * stride, h * stride),
            Layer::Maxpool { size, stride } => {
                let o = |x: usize| (x + size - 1).saturating_sub(*size) / stride.max(&1) + 1;
                (o(w), o(h))
            }
            Layer::Shortcut { .. } | Layer::Yolo => (w, h),
        };
        hw.push(out);
    }
    let params = net.params.iter().flatten().map(|p| p.param_count()).sum();
    (params, flops / 1e9)
}
