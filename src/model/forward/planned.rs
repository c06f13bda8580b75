//! The CPU f32 forward pass on planned, reused buffers: after the first frame of a given size no
//! activation is allocated; only the heads handed back become tensors.

use super::{tensor_err, Darknet, Prepared, YoloOutput};
use crate::model::layers::pool::{maxpool_into, pooled_hw};
use crate::model::plan::{aliases, plan, Plan};
use crate::model::{layer_shapes, LayerKind, ModelError, Shape};
use candle_core::Tensor;

/// The buffers of one input size, kept between frames.
pub(super) struct Workspace {
    /// (batch, height, width) the plan is for.
    key: (usize, usize, usize),
    plan: Plan,
    shapes: Vec<Shape>,
    slots: Vec<Vec<f32>>,
}

/// Layer i's values: the network input for "layer −1", else its slot's first `len` values.
fn view<'a>(ws: &'a Workspace, input: &'a [f32], layer: Option<usize>) -> &'a [f32] {
    match layer {
        None => input,
        Some(j) => {
            let loc = ws.plan.locs[j];
            &ws.slots[loc.slot][..loc.len]
        }
    }
}

impl Darknet {
    fn new_workspace(&self, key: (usize, usize, usize)) -> Result<Workspace, ModelError> {
        let (b, h, w) = key;
        let shapes = layer_shapes(&self.cfg, w, h)?;
        let sizes: Vec<usize> = shapes.iter().map(|s| b * s.c * s.h * s.w).collect();
        let plan = plan(&sizes, &aliases(&self.cfg), &self.last_use);
        let slots = plan.slot_lens.iter().map(|&n| vec![0.0f32; n]).collect();
        Ok(Workspace {
            key,
            plan,
            shapes,
            slots,
        })
    }

    /// `x`: contiguous CPU f32 `[b, C, h, w]`, already checked.
    pub(super) fn forward_planned(
        &self,
        x: &Tensor,
        key: (usize, usize, usize),
    ) -> Result<Vec<YoloOutput>, ModelError> {
        let cached = self.workspace.lock().ok().and_then(|mut w| w.take());
        let mut ws = match cached {
            Some(ws) if ws.key == key => ws,
            _ => self.new_workspace(key)?,
        };
        let heads =
            crate::model::layers::sgemm::with_f32(x, |input| Ok(self.run_planned(input, &mut ws)))
                .map_err(tensor_err(0, "input"))?;
        if let Ok(mut slot) = self.workspace.lock() {
            *slot = Some(ws);
        }
        heads
    }

    fn run_planned(
        &self,
        input: &[f32],
        ws: &mut Workspace,
    ) -> Result<Vec<YoloOutput>, ModelError> {
        let (b, h, w) = ws.key;
        let mut heads = Vec::new();
        for i in 0..self.layers.len() {
            if let Prepared::Yolo(yl) = &self.layers[i] {
                let kind = "yolo";
                let s = &ws.shapes[i];
                let values = view(ws, input, i.checked_sub(1));
                let raw = Tensor::from_slice(values, (b, s.c, s.h, s.w), &self.device)
                    .map_err(tensor_err(i, kind))?;
                let decoded = yl
                    .decode_values(values, (b, s.h, s.w), h, w)
                    .and_then(|d| {
                        let rows = d.len() / (b * (5 + yl.classes())).max(1);
                        Tensor::from_vec(d, (b, rows, 5 + yl.classes()), &self.device)
                    })
                    .map_err(tensor_err(i, kind))?;
                heads.push(YoloOutput {
                    raw,
                    decoded,
                    stride: h / s.h.max(1),
                });
                continue;
            }
            if !ws.plan.writes[i] {
                continue;
            }
            let loc = ws.plan.locs[i];
            // Out of the slot list while written: the inputs live in other slots (the plan
            // never gives a layer the slot of a map it reads).
            let mut dst = std::mem::take(&mut ws.slots[loc.slot]);
            let done = self.run_layer(i, input, ws, &mut dst[..loc.len]);
            ws.slots[loc.slot] = dst;
            done?;
        }
        Ok(heads)
    }

    /// Runs layer `i` (one that writes its own output) into `dst`.
    fn run_layer(
        &self,
        i: usize,
        input: &[f32],
        ws: &Workspace,
        dst: &mut [f32],
    ) -> Result<(), ModelError> {
        let layer = &self.cfg.layers[i];
        let kind = layer.kind.name();
        let b = ws.key.0;
        let prev = i.checked_sub(1);
        let dims_of = |j: Option<usize>| match j {
            None => (b, self.cfg.net.channels, ws.key.1, ws.key.2),
            Some(j) => (b, ws.shapes[j].c, ws.shapes[j].h, ws.shapes[j].w),
        };
        let out = &ws.shapes[i];
        match (&layer.kind, &self.layers[i]) {
            (_, Prepared::Conv(c)) => c
                .forward_into(view(ws, input, prev), dims_of(prev), dst)
                .map_err(tensor_err(i, kind)),
            (LayerKind::Shortcut(s), Prepared::Shortcut(sc)) => {
                let mut parts = Vec::with_capacity(s.from.len() + 1);
                parts.push(view(ws, input, prev));
                parts.extend(s.from.iter().map(|&f| view(ws, input, Some(f))));
                sc.forward_into(&parts, (b, out.c, out.h * out.w), dst)
                    .map_err(tensor_err(i, kind))
            }
            (LayerKind::Route(r), _) => {
                let hw = out.h * out.w;
                let mut at = 0;
                for bi in 0..b {
                    for &f in &r.layers {
                        let c = ws.shapes[f].c;
                        let cg = c / r.groups.max(1);
                        let from = (bi * c + r.group_id * cg) * hw;
                        let part = &view(ws, input, Some(f))[from..from + cg * hw];
                        dst[at..at + part.len()].copy_from_slice(part);
                        at += part.len();
                    }
                }
                Ok(())
            }
            (LayerKind::Upsample { stride }, _) => {
                let (_, _, ih, iw) = dims_of(prev);
                upsample_nearest(view(ws, input, prev), (ih, iw), *stride, dst);
                Ok(())
            }
            (LayerKind::Maxpool(m), _) => {
                let (src, m) = match &self.pool_from[i] {
                    Some((j, rest)) => (Some(*j), rest),
                    None => (prev, m),
                };
                let dims = dims_of(src);
                debug_assert_eq!(pooled_hw(dims.2, dims.3, m), (out.h, out.w));
                maxpool_into(view(ws, input, src), dims, m, dst).map_err(tensor_err(i, kind))
            }
            _ => Err(ModelError::Input(format!(
                "internal: layer {i} ({kind}) has no planned CPU form"
            ))),
        }
    }
}

/// Nearest-neighbour up-sampling of `[planes, ih, iw]` by `s` into `[planes, ih·s, iw·s]`.
fn upsample_nearest(src: &[f32], (ih, iw): (usize, usize), s: usize, dst: &mut [f32]) {
    let ow = iw * s;
    for (plane, out) in src
        .chunks_exact(ih * iw)
        .zip(dst.chunks_exact_mut(ih * s * ow))
    {
        for (row, out_rows) in plane.chunks_exact(iw).zip(out.chunks_exact_mut(s * ow)) {
            let (first, rest) = out_rows.split_at_mut(ow);
            for (o, &v) in first.chunks_exact_mut(s).zip(row) {
                o.fill(v);
            }
            for r in rest.chunks_exact_mut(ow) {
                r.copy_from_slice(first);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsample_repeats_each_value_in_an_s_by_s_block() {
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect(); // 2 planes of 2×3
        let mut dst = vec![f32::NAN; 48];
        upsample_nearest(&src, (2, 3), 2, &mut dst);
        for p in 0..2 {
            for y in 0..4 {
                for x in 0..6 {
                    assert_eq!(dst[p * 24 + y * 6 + x], src[p * 6 + (y / 2) * 3 + x / 2]);
                }
            }
        }
    }
}
