//! The CPU f32 forward pass on planned, reused buffers: after the first frame of a given size no
//! activation is allocated; only the heads handed back become tensors.

use super::{pool_follows, tensor_err, Darknet, Prepared, YoloOutput};
use crate::model::layers::conv::ConvLayer;
use crate::model::layers::pool::{maxpool_into, pooled_hw};
use crate::model::plan::{aliases, plan, Plan};
use crate::model::{layer_shapes, LayerKind, ModelError, Shape};
use crate::quant::chain::{ChainIn, ChainOut, PlanesOut, PlanesSpec};
use crate::quant::int8::{max_abs, Scratch};
use candle_core::Tensor;

/// (batch, channels, height, width) of a map.
type Dims = (usize, usize, usize, usize);

/// The buffers of one input size, kept between frames.
pub(super) struct Workspace {
    /// (batch, height, width) the plan is for.
    key: (usize, usize, usize),
    plan: Plan,
    shapes: Vec<Shape>,
    slots: Vec<Vec<f32>>,
    /// By layer: the int8 planes it reads, written by the conv before it (see `quant::chain`).
    chains: Vec<Option<Chain>>,
    /// By layer: an int8 conv on the direct kernel, run with `scratch` (batch 1).
    direct: Vec<bool>,
    /// By layer: a conv that writes the next layer's 2×2 stride-2 max-pool of its output,
    /// straight into the pool's slot (the pool then does not run, the full map is never
    /// stored; see [`Darknet::pooled_convs`]).
    pooled: Vec<bool>,
    /// By layer: a conv whose map only the plain residual add after it reads, which adds its
    /// finished values straight into that shortcut's output, in place over the shortcut's
    /// other input (see [`Darknet::residual_convs`]).
    added: Vec<bool>,
    /// The conv's map where its kernels cannot add in their store (it is added after).
    added_tmp: Vec<f32>,
    /// The direct int8 convs' buffers: the workspace's, not a pool thread's, so that a steady
    /// frame allocates nothing whichever thread runs it.
    scratch: Scratch,
    /// The f32 convs' im2col buffer and direct planes, for the same reason.
    col: std::cell::RefCell<crate::model::layers::conv::ConvScratch>,
    /// Wall time spent in each layer over `frames` frames of this size (see
    /// [`Darknet::layer_times`]): a clock read per layer, nothing allocated.
    times: Vec<std::time::Duration>,
    frames: usize,
}

impl Workspace {
    /// Chains whose scale is calibrated (they pass planes from the next frame on).
    pub(super) fn calibrated_chains(&self) -> usize {
        self.chains
            .iter()
            .flatten()
            .filter(|c| c.max.is_some())
            .count()
    }

    /// Mean wall time per frame of each layer, and the frames it is the mean of.
    pub(super) fn mean_times(&self) -> (Vec<std::time::Duration>, usize) {
        let n = self.frames.max(1) as u32;
        (self.times.iter().map(|&t| t / n).collect(), self.frames)
    }

    pub(super) fn reset_times(&mut self) {
        self.times.fill(Default::default());
        self.frames = 0;
    }
}

/// The int8 planes between two chained convs and the scale they are quantized with.
struct Chain {
    planes: Vec<u32>,
    spec: PlanesSpec,
    /// Largest |value| of the producer's output over the frames before (None until the first
    /// frame has run unchained); the scale is this / 127.
    max: Option<f32>,
    /// The same over the current frame, folded into `max` once the frame has completed.
    seen: f32,
}

/// The symmetric int8 scale of values up to `max`, as the unchained conv chooses it.
fn int8_scale(max: f32) -> f32 {
    if max > 0.0 {
        max / 127.0
    } else {
        1.0
    }
}

/// Layer i's values: the network input for "layer −1", else its slot's first `len` values.
fn view<'a>(ws: &'a Workspace, input: &'a [f32], layer: Option<usize>) -> &'a [f32] {
    slot_view(&ws.plan, &ws.slots, input, layer)
}

fn slot_view<'a>(
    plan: &Plan,
    slots: &'a [Vec<f32>],
    input: &'a [f32],
    layer: Option<usize>,
) -> &'a [f32] {
    match layer {
        None => input,
        Some(j) => {
            let loc = plan.locs[j];
            &slots[loc.slot][..loc.len]
        }
    }
}

impl Darknet {
    fn new_workspace(&self, key: (usize, usize, usize)) -> Result<Workspace, ModelError> {
        let (b, h, w) = key;
        let shapes = layer_shapes(&self.cfg, w, h)?;
        let pooled = self.pooled_convs(&shapes);
        let chains = self.chains(b, &shapes);
        let mut alias = aliases(&self.cfg);
        let added = self.residual_convs(&shapes, &alias, &pooled, &chains);
        let mut sizes: Vec<usize> = shapes.iter().map(|s| b * s.c * s.h * s.w).collect();
        let mut last_use = self.last_use.clone();
        for i in (0..sizes.len()).filter(|&i| added[i]) {
            // Its map is never stored: it adds into the shortcut's output, which is the other
            // input's slot, taken over in place.
            sizes[i] = 0;
            if let Some(LayerKind::Shortcut(s)) = self.cfg.layers.get(i + 1).map(|l| &l.kind) {
                alias[i + 1] = s.from.first().copied();
            }
        }
        for i in (0..sizes.len()).filter(|&i| pooled[i]) {
            // Its own map is never stored; its input must outlive the pool's output, which it
            // writes (else the pool's slot could be the input's).
            sizes[i] = 0;
            if let Some(j) = i.checked_sub(1) {
                last_use[j] = last_use[j].max(i + 1);
            }
        }
        let plan = plan(&sizes, &alias, &last_use);
        let slots = plan.slot_lens.iter().map(|&n| vec![0.0f32; n]).collect();
        let direct = self
            .layers
            .iter()
            .map(|l| matches!(l, Prepared::Conv(c) if b == 1 && c.runs_int8_direct()))
            .collect();
        Ok(Workspace {
            key,
            plan,
            shapes,
            slots,
            chains,
            direct,
            pooled,
            added,
            added_tmp: Vec::new(),
            scratch: Scratch::default(),
            col: Default::default(),
            times: vec![Default::default(); self.layers.len()],
            frames: 0,
        })
    }

    /// The convs that run with the next layer's max-pool fused (`ConvLayer::pools_2x2`):
    /// followed by Darknet's default 2×2 stride-2 pool (`padding` 1: windows clipped at the
    /// bottom and right), which is the only reader of the conv's map and pools it directly
    /// (not an SPP cascade). yolov3-tiny's 208², 104² and 52² convs: the pool pass (reading the
    /// map back) and three quarters of the conv's stores go. `KESTREL_FUSE_POOL=0` turns it off.
    fn pooled_convs(&self, shapes: &[Shape]) -> Vec<bool> {
        let layers = &self.cfg.layers;
        let on = std::env::var("KESTREL_FUSE_POOL").as_deref() != Ok("0");
        (0..layers.len())
            .map(|i| {
                let Prepared::Conv(c) = &self.layers[i] else {
                    return false;
                };
                if !pool_follows(&self.cfg, &self.last_use, i) {
                    return false;
                }
                let (s, p) = (&shapes[i], &shapes[i + 1]);
                on && c.pools_2x2()
                    && (p.h, p.w) == (s.h.div_ceil(2), s.w.div_ceil(2))
                    && self.pool_from[i + 1].is_none()
            })
            .collect()
    }

    /// The f32 convs that add their map into the plain residual add (`[shortcut]`) after them,
    /// in place over its other input `f`: the conv's map has no reader but that shortcut, `f`
    /// none after it (its values may be overwritten) and no alias (a one-input route's readers
    /// would see the sum), all three maps have one shape, and no int8 chain passes planes from
    /// the shortcut. Every YOLOv3 residual block: the shortcut pass (reading two maps, writing
    /// one) and the conv's own stores and reads of its map go. `KESTREL_FUSE_RESIDUAL=0` or
    /// [`Darknet::set_residual_fusion`] turn it off.
    fn residual_convs(
        &self,
        shapes: &[Shape],
        alias: &[Option<usize>],
        pooled: &[bool],
        chains: &[Option<Chain>],
    ) -> Vec<bool> {
        let n = self.layers.len();
        let mut added = vec![false; n];
        if !self.fuse_residual {
            return added;
        }
        for i in 0..n.saturating_sub(1) {
            let (Prepared::Conv(c), Prepared::Shortcut(sc)) =
                (&self.layers[i], &self.layers[i + 1])
            else {
                continue;
            };
            let Some(LayerKind::Shortcut(s)) = self.cfg.layers.get(i + 1).map(|l| &l.kind) else {
                continue;
            };
            let Some(&f) = s.from.first() else {
                continue;
            };
            // `f` writes its own map (an earlier fused shortcut's map is its own too: the sum
            // made in place), not a one-input route's view of another.
            let f_owns = alias[f].is_none();
            let aliased = alias.contains(&Some(f));
            let same = shapes[i] == shapes[f] && shapes[i] == shapes[i + 1];
            added[i] = sc.is_plain_add()
                && !c.is_reduced()
                && !pooled[i]
                && f + 1 < i
                && f_owns
                && !aliased
                && same
                && self.last_use[i] == i + 1
                && self.last_use[f] == i + 1
                && chains.get(i + 2).is_none_or(|c| c.is_none());
        }
        added
    }

    /// The int8 chains of a forward of batch `b` (see `quant::chain`): conv t reads its input
    /// as planes written by layer [`Darknet::chain_source`]`(t)` — an int8 conv on the direct
    /// kernel, or a plain residual add — where t itself is one. Batch 1 only (the pipeline's),
    /// and only while chaining is on (`Darknet::set_int8_chaining`).
    fn chains(&self, b: usize, shapes: &[Shape]) -> Vec<Option<Chain>> {
        let n = self.layers.len();
        let mut chains: Vec<Option<Chain>> = (0..n).map(|_| None).collect();
        if b != 1 || !self.chaining {
            return chains;
        }
        for t in 1..n {
            let (Some(p), Prepared::Conv(to)) = (self.chain_source(t), &self.layers[t]) else {
                continue;
            };
            if let Prepared::Conv(from) = &self.layers[p] {
                if !from.can_feed_chain() {
                    continue;
                }
            }
            let s = &shapes[t - 1];
            chains[t] = to.chain_input((s.c, s.h, s.w)).map(|spec| Chain {
                planes: spec.new_planes(),
                spec,
                max: None,
                seen: 0.0,
            });
        }
        chains
    }

    /// `x`: contiguous CPU f32 `[b, C, h, w]`, already checked.
    pub(super) fn forward_planned(
        &self,
        x: &Tensor,
        key: (usize, usize, usize),
    ) -> Result<Vec<YoloOutput>, ModelError> {
        let cached = self.workspace.lock().ok().and_then(|mut w| w.take());
        let (mut ws, fresh) = match cached {
            Some(ws) if ws.key == key => (ws, false),
            _ => (self.new_workspace(key)?, true),
        };
        let heads =
            crate::model::layers::sgemm::with_f32(x, |input| Ok(self.run_planned(input, &mut ws)))
                .map_err(tensor_err(0, "input"))?;
        if fresh {
            // Every size of per-thread scratch this input size needs was met in that frame:
            // each pool thread grows its own to the largest (steady frames then allocate
            // nothing, whichever thread runs which task).
            rayon::broadcast(|_| crate::model::layers::warm_thread_scratch());
        }
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
        let mut clock = std::time::Instant::now();
        for i in 0..self.layers.len() {
            let now = std::time::Instant::now();
            if let Some(t) = i.checked_sub(1).and_then(|j| ws.times.get_mut(j)) {
                *t += now - clock;
            }
            clock = now;
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
            let pooled_before = i.checked_sub(1).is_some_and(|j| ws.pooled[j]);
            if !ws.plan.writes[i] || pooled_before {
                continue;
            }
            if ws.pooled[i] {
                self.run_pooled(i, input, ws)?;
                continue;
            }
            if ws.added[i] {
                self.run_added(i, input, ws)?;
                continue;
            }
            if !self.run_int8(i, input, ws)? && !self.run_shortcut_to_planes(i, input, ws)? {
                let loc = ws.plan.locs[i];
                // Out of the slot list while written: the inputs live in other slots (the plan
                // never gives a layer the slot of a map it reads).
                let mut dst = std::mem::take(&mut ws.slots[loc.slot]);
                let done = self.run_layer(i, input, ws, &mut dst[..loc.len]);
                ws.slots[loc.slot] = dst;
                done?;
            }
            // First frame: the unchained output's maximum is the next conv's int8 scale.
            if let Some(Some(c)) = ws.chains.get_mut(i + 1) {
                if c.max.is_none() {
                    let loc = ws.plan.locs[i];
                    c.seen = max_abs(&ws.slots[loc.slot][..loc.len]);
                }
            }
        }
        if let Some(t) = ws.times.last_mut() {
            *t += clock.elapsed();
        }
        ws.frames += 1;
        // The frame completed: its maxima widen the chains' scales for the frames after.
        for c in ws.chains.iter_mut().flatten() {
            c.max = Some(c.max.unwrap_or(0.0).max(c.seen));
            c.seen = 0.0;
        }
        Ok(heads)
    }

    /// Runs conv `i` where it is an int8 conv on the direct kernel (returns false, having done
    /// nothing, otherwise), reading or writing the planes of calibrated chains. Its output goes
    /// to the next conv's planes when that chain is calibrated, and to its f32 slot unless the
    /// next conv is its only reader.
    fn run_int8(&self, i: usize, input: &[f32], ws: &mut Workspace) -> Result<bool, ModelError> {
        let (Prepared::Conv(conv), true) = (&self.layers[i], ws.direct[i]) else {
            return Ok(false);
        };
        let calibrated = |c: Option<&Option<Chain>>| c.and_then(|c| c.as_ref()?.max);
        let in_max = calibrated(ws.chains.get(i));
        let prev = i.checked_sub(1);
        let (_, c, h, w) = self.dims_of(ws, prev);
        let dims = (c, h, w);
        let loc = ws.plan.locs[i];
        let (before, after) = ws.chains.split_at_mut(i + 1);
        let next = after
            .first_mut()
            .and_then(|c| c.as_mut())
            .filter(|c| c.max.is_some());
        let keep_map = next.is_none() || self.last_use[i] != i + 1;
        // Out of the slot list while written (the inputs never live in it), as in run_planned.
        let mut dst = match keep_map {
            true => std::mem::take(&mut ws.slots[loc.slot]),
            false => Vec::new(),
        };
        let f32_in = slot_view(&ws.plan, &ws.slots, input, prev);
        let (chained_in, xs) = match (in_max, &before[i]) {
            (Some(m), Some(c)) => (ChainIn::Planes(&c.planes), int8_scale(m)),
            _ => (ChainIn::F32(f32_in), int8_scale(max_abs(f32_in))),
        };
        let (planes, seen_in) = match next {
            Some(c) => {
                let inv = 1.0 / int8_scale(c.max.unwrap_or(0.0));
                let out = PlanesOut {
                    x: &mut c.planes,
                    spec: c.spec,
                    inv,
                };
                (Some(out), Some(&mut c.seen))
            }
            None => (None, None),
        };
        let output = ChainOut {
            map: if keep_map {
                Some(&mut dst[..loc.len])
            } else {
                None
            },
            planes,
        };
        let seen = conv.forward_chained(chained_in, xs, dims, output, &mut ws.scratch);
        if let (Some(s), Ok(v)) = (seen_in, &seen) {
            *s = s.max(*v);
        }
        if keep_map {
            ws.slots[loc.slot] = dst;
        }
        seen.map(|_| true).map_err(tensor_err(i, "convolutional"))
    }

    /// Runs shortcut `i` where it is a plain residual add whose sums a calibrated chain takes
    /// as the next conv's planes (returns false, having done nothing, otherwise): the sums are
    /// written to its slot (later shortcuts read them) and quantized in the same pass.
    fn run_shortcut_to_planes(
        &self,
        i: usize,
        input: &[f32],
        ws: &mut Workspace,
    ) -> Result<bool, ModelError> {
        let (Some(LayerKind::Shortcut(s)), Some(Some(c))) = (
            self.cfg.layers.get(i).map(|l| &l.kind),
            ws.chains.get_mut(i + 1),
        ) else {
            return Ok(false);
        };
        let (Some(max), &[from], Some(prev)) = (c.max, &s.from[..], i.checked_sub(1)) else {
            return Ok(false);
        };
        let shape = ws.shapes[i];
        let loc = ws.plan.locs[i];
        let mut dst = std::mem::take(&mut ws.slots[loc.slot]);
        let a = slot_view(&ws.plan, &ws.slots, input, Some(prev));
        let b = slot_view(&ws.plan, &ws.slots, input, Some(from));
        let out = PlanesOut {
            x: &mut c.planes,
            spec: c.spec,
            inv: 1.0 / int8_scale(max),
        };
        let dims = (shape.c, shape.h, shape.w);
        let seen = crate::quant::chain::add_into_planes(a, b, dims, &mut dst[..loc.len], out);
        ws.slots[loc.slot] = dst;
        let seen = seen.ok_or_else(|| {
            ModelError::Input(format!(
                "internal: shortcut {i}'s maps do not fit its planes"
            ))
        })?;
        c.seen = c.seen.max(seen);
        Ok(true)
    }

    /// (batch, channels, height, width) of layer `j`'s output, or of the network input for
    /// "layer −1".
    fn dims_of(&self, ws: &Workspace, j: Option<usize>) -> Dims {
        let b = ws.key.0;
        match j {
            None => (b, self.cfg.net.channels, ws.key.1, ws.key.2),
            Some(j) => (b, ws.shapes[j].c, ws.shapes[j].h, ws.shapes[j].w),
        }
    }

    /// Runs conv `i` into the slot of layer `i + 1`, the layer fused into it (a max-pool, a
    /// residual add): `run(conv, its input, the input's dims, that slot, ws)`.
    fn run_into_next(
        &self,
        i: usize,
        input: &[f32],
        ws: &mut Workspace,
        run: impl FnOnce(&ConvLayer, &[f32], Dims, &mut [f32], &Workspace) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let Prepared::Conv(c) = &self.layers[i] else {
            return Err(ModelError::Input(format!(
                "internal: layer {i} is not a conv"
            )));
        };
        let prev = i.checked_sub(1);
        let dims = self.dims_of(ws, prev);
        let loc = ws.plan.locs[i + 1];
        // Out of the slot list while written (the plan keeps the input in another slot).
        let mut dst = std::mem::take(&mut ws.slots[loc.slot]);
        let done = run(c, view(ws, input, prev), dims, &mut dst[..loc.len], ws);
        ws.slots[loc.slot] = dst;
        done
    }

    /// Runs conv `i` with the max-pool after it fused, into the pool's slot.
    fn run_pooled(&self, i: usize, input: &[f32], ws: &mut Workspace) -> Result<(), ModelError> {
        self.run_into_next(i, input, ws, |c, src, dims, dst, ws| {
            match c.forward_pooled_into(src, dims, dst, &mut ws.col.borrow_mut()) {
                true => Ok(()),
                false => Err(ModelError::Input(format!(
                    "internal: conv {i} refused its fused max-pool"
                ))),
            }
        })
    }

    /// Runs conv `i` with the residual add after it fused: its values added into the
    /// shortcut's output, which holds the shortcut's other input (the same slot).
    fn run_added(&self, i: usize, input: &[f32], ws: &mut Workspace) -> Result<(), ModelError> {
        let mut tmp = std::mem::take(&mut ws.added_tmp);
        let done = self.run_into_next(i, input, ws, |c, src, dims, sum, ws| {
            let mut col = ws.col.borrow_mut();
            let added = (|| {
                if c.forward_added_into(src, dims, sum, &mut col)? {
                    return Ok(());
                }
                // No kernel of this conv adds in its store: its map, then the add.
                let map = crate::model::layers::sgemm::grown(&mut tmp, sum.len(), 0.0);
                c.forward_into_col(src, dims, map, &mut col)?;
                add_into(sum, map);
                Ok(())
            })();
            added.map_err(tensor_err(i, "convolutional"))
        });
        ws.added_tmp = tmp;
        done
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
        let out = &ws.shapes[i];
        match (&layer.kind, &self.layers[i]) {
            (_, Prepared::Conv(c)) => {
                let mut col = ws.col.borrow_mut();
                c.forward_into_col(view(ws, input, prev), self.dims_of(ws, prev), dst, &mut col)
                    .map_err(tensor_err(i, kind))
            }
            (LayerKind::Shortcut(s), Prepared::Shortcut(sc)) => {
                let dims = (b, out.c, out.h * out.w);
                let done = match s.from[..] {
                    // The residual add of every YOLOv3 block: no vector of inputs per frame.
                    [f] => sc.forward_into(
                        &[view(ws, input, prev), view(ws, input, Some(f))],
                        dims,
                        dst,
                    ),
                    _ => {
                        let mut parts = Vec::with_capacity(s.from.len() + 1);
                        parts.push(view(ws, input, prev));
                        parts.extend(s.from.iter().map(|&f| view(ws, input, Some(f))));
                        sc.forward_into(&parts, dims, dst)
                    }
                };
                done.map_err(tensor_err(i, kind))
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
                let (_, _, ih, iw) = self.dims_of(ws, prev);
                upsample_nearest(view(ws, input, prev), (ih, iw), *stride, dst);
                Ok(())
            }
            (LayerKind::Maxpool(m), _) => {
                let (src, m) = match &self.pool_from[i] {
                    Some((j, rest)) => (Some(*j), rest),
                    None => (prev, m),
                };
                let dims = self.dims_of(ws, src);
                debug_assert_eq!(pooled_hw(dims.2, dims.3, m), (out.h, out.w));
                maxpool_into(view(ws, input, src), dims, m, dst).map_err(tensor_err(i, kind))
            }
            _ => Err(ModelError::Input(format!(
                "internal: layer {i} ({kind}) has no planned CPU form"
            ))),
        }
    }
}

/// `sum += map`, over the pool in blocks (the shortcut's own pass was split so: a serial add
/// left the sum in one core's cache and slowed the conv after it, prune_0.95's 25-output 1×1s
/// 0.13 → 0.21 ms).
fn add_into(sum: &mut [f32], map: &[f32]) {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 14;
    sum.par_chunks_mut(BLOCK)
        .zip(map.par_chunks(BLOCK))
        .for_each(|(s, m)| s.iter_mut().zip(m).for_each(|(s, &v)| *s += v));
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

    /// yolov3-tiny @416: the convs by Winograd whose map only a default 2×2/2 pool reads
    /// (2: 16 → 32 @208², by Winograd because of the pool; 4: 32 → 64 @104²; 6: 64 → 128 @52²)
    /// pool in the conv; not 8 (a route reads it), 10 (its pool has stride 1), 0 (3 input
    /// channels: not by Winograd); none without AVX-512.
    #[test]
    fn tiny_pools_in_the_winograd_convs_only_pools_read() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let net = Darknet::load(
            &root.join("yolov3-tiny.cfg"),
            &root.join("yolov3-tiny.weights"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let shapes = layer_shapes(net.cfg(), 416, 416).unwrap();
        let fused: Vec<usize> = (net.pooled_convs(&shapes).iter().enumerate())
            .filter_map(|(i, &p)| p.then_some(i))
            .collect();
        let winograd = crate::model::layers::nchwc::available()
            && crate::model::layers::winograd::enabled()
            && std::env::var("KESTREL_FUSE_POOL").as_deref() != Ok("0");
        match winograd {
            true => assert_eq!(fused, [2, 4, 6]),
            false => {
                println!("no Winograd here: no conv pools");
                assert!(fused.is_empty(), "{fused:?}");
            }
        }
    }

    fn random_net(name: &str) -> Darknet {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cfg");
        let cfg = crate::model::Cfg::parse_file(&root.join(name)).unwrap();
        let weights = crate::model::DarknetWeights::random(&cfg, 5).unwrap();
        Darknet::from_parts(cfg, &weights, &candle_core::Device::Cpu).unwrap()
    }

    /// yolov3-spp3: the 3×3 conv of each of the 23 residual blocks adds into its shortcut
    /// (those convs and no other); none once fusion is off.
    #[test]
    fn residual_adds_fuse_into_the_convs_of_every_block() {
        let mut net = random_net("yolov3-spp3.cfg");
        let shapes = layer_shapes(net.cfg(), 320, 320).unwrap();
        let (alias, pooled) = (aliases(net.cfg()), net.pooled_convs(&shapes));
        let chains = net.chains(1, &shapes);
        let fused: Vec<usize> = (net.residual_convs(&shapes, &alias, &pooled, &chains).iter())
            .enumerate()
            .filter_map(|(i, &a)| a.then_some(i))
            .collect();
        let blocks: Vec<usize> = (net.cfg().layers.iter())
            .filter(|l| matches!(l.kind, LayerKind::Shortcut(_)))
            .map(|l| l.index - 1)
            .collect();
        assert_eq!(blocks.len(), 23);
        assert_eq!(fused, blocks);
        net.set_residual_fusion(false);
        let off = net.residual_convs(&shapes, &alias, &pooled, &chains);
        assert!(off.iter().all(|&a| !a));
    }

    /// The fused residual adds give the unfused forward's bits, on the kernels the pruned
    /// nets' residual convs run on (direct f32, Winograd, pointwise, and im2col with the add
    /// after it); a second frame (in-place sums over reused slots) too.
    #[test]
    fn fused_residual_adds_give_the_same_bits() {
        for name in ["prune_0.95.cfg", "prune_0.5_0.5.cfg"] {
            let mut net = random_net(name);
            let x = Tensor::randn(0f32, 1.0, (1, 3, 320, 320), &candle_core::Device::Cpu).unwrap();
            let heads = |net: &Darknet| -> Vec<Vec<f32>> {
                let out = net.forward(&x).unwrap();
                out.iter()
                    .map(|h| h.raw.flatten_all().unwrap().to_vec1().unwrap())
                    .collect()
            };
            let fused = heads(&net);
            assert_eq!(heads(&net), fused, "{name}: second fused frame");
            net.set_residual_fusion(false);
            let plain = heads(&net);
            for (a, b) in fused.iter().zip(&plain) {
                let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same && a.len() == b.len(), "{name}: fused heads differ");
            }
        }
    }

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
