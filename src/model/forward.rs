//! The network: layers prepared at load, forward pass keeping only activations still needed.

use super::layers::conv::ConvLayer;
use super::layers::pool::maxpool;
use super::layers::shortcut::ShortcutLayer;
use super::layers::yolo::YoloLayer;
use super::layers::ConvBackend;
use super::plan::last_uses;
use super::shapes::layer_shapes;
use super::{Cfg, DarknetWeights, LayerKind, MaxpoolCfg, ModelError};
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use std::sync::Mutex;

mod planned;

/// Output of one `[yolo]` head.
#[derive(Debug, Clone)]
pub struct YoloOutput {
    /// `[B, A·(5+C), gh, gw]`: the conv output before decode.
    pub raw: Tensor,
    /// `[B, A·gh·gw, 5+C]`: cx, cy, w, h in network-input pixels, σ(obj), σ(cls_0..C).
    pub decoded: Tensor,
    pub stride: usize,
}

/// Options of a forward pass.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// (head stride 8|16|32, divisor): bilinearly down-sample the feature map feeding the last
    /// conv before that head to 1/divisor of its size, then back up (simulates lower-resolution
    /// features for `eval --degrade`, whose scale 0.5 arrives here as divisor 2). A divisor ≤ 1
    /// leaves the map untouched.
    pub degrade: Vec<(usize, f32)>,
}

enum Prepared {
    /// Boxed: a conv carries its packed kernels for every CPU path (the other layers little).
    Conv(Box<ConvLayer>),
    Shortcut(ShortcutLayer),
    Other,
    Yolo(YoloLayer),
}

/// A Darknet network ready to run on a Candle device.
pub struct Darknet {
    cfg: Cfg,
    device: Device,
    backend: ConvBackend,
    /// Activations' dtype between layers (f32 unless `with_compute_dtype`).
    dtype: DType,
    layers: Vec<Prepared>,
    /// Index of the last layer that reads layer i's output.
    last_use: Vec<usize>,
    /// Max-pools computed from an earlier pool's output with a smaller window (SPP, see
    /// [`pool_cascade`]).
    pool_from: Vec<Option<(usize, MaxpoolCfg)>>,
    /// The CPU path's activation buffers for the last input size (see [`planned`]); taken out
    /// while a forward runs (a concurrent one plans its own).
    workspace: Mutex<Option<planned::Workspace>>,
    /// Whether consecutive int8 convs pass int8 planes (see `quant::chain`); off unless
    /// `KESTREL_CHAIN=1` or [`Darknet::set_int8_chaining`].
    chaining: bool,
    /// Whether the planned forward fuses residual adds into the convs before them (see
    /// `planned`); on unless `KESTREL_FUSE_RESIDUAL=0` or [`Darknet::set_residual_fusion`].
    fuse_residual: bool,
}

/// Whether layer `i`'s map is read by Darknet's default 2×2 stride-2 max-pool (`padding` 1:
/// windows clipped at the bottom and right) right after it and by nothing else: the pool a
/// Winograd conv can fuse (`planned`).
fn pool_follows(cfg: &Cfg, last_use: &[usize], i: usize) -> bool {
    let pool = cfg.layers.get(i + 1).map(|l| &l.kind);
    matches!(pool, Some(LayerKind::Maxpool(m)) if (m.size, m.stride, m.padding) == (2, 2, 1))
        && last_use.get(i) == Some(&(i + 1))
}

/// For a stride-1 max-pool with a centred odd window (`padding = size − 1`) whose input is the
/// map an earlier such pool, still alive, also read (SPP's 5 / 9 / 13 on one source): that pool
/// and the window that completes it. Max windows compose, clipping at the borders included:
/// pool_a ∘ pool_b = pool_(a+b−1), so 9 = 5 ∘ 5 and 13 = 5 ∘ 9 — the SPP block costs three
/// 5-windows instead of 5 + 9 + 13.
fn pool_cascade(cfg: &Cfg, last_use: &[usize]) -> Vec<Option<(usize, MaxpoolCfg)>> {
    let layers = &cfg.layers;
    // The layer whose output layer i reads, through single-input routes (which copy it).
    let source = |i: usize| -> Option<usize> {
        let mut j = i.checked_sub(1)?;
        while let LayerKind::Route(r) = &layers[j].kind {
            match r.layers.as_slice() {
                [only] if r.groups <= 1 => j = *only,
                _ => break,
            }
        }
        Some(j)
    };
    let centred = |l: &crate::model::Layer| match &l.kind {
        LayerKind::Maxpool(m) if m.stride == 1 && m.size % 2 == 1 && m.padding + 1 == m.size => {
            Some(m.size)
        }
        _ => None,
    };
    let mut out = vec![None; layers.len()];
    for (i, l) in layers.iter().enumerate() {
        let (Some(size), Some(src)) = (centred(l), source(i)) else {
            continue;
        };
        let best = (0..i)
            .filter(|&j| last_use[j] >= i && source(j) == Some(src))
            .filter_map(|j| centred(&layers[j]).filter(|&s| s < size).map(|s| (s, j)))
            .max();
        if let Some((s, j)) = best {
            let rest = size - s + 1;
            out[i] = Some((
                j,
                MaxpoolCfg {
                    size: rest,
                    stride: 1,
                    padding: rest - 1,
                },
            ));
        }
    }
    out
}

fn tensor_err(layer: usize, kind: &str) -> impl FnOnce(candle_core::Error) -> ModelError + '_ {
    move |source| ModelError::Tensor {
        layer,
        kind: kind.into(),
        source,
    }
}

impl Darknet {
    /// Parses `cfg_path`, reads `weights_path` (exact size check) and prepares every layer.
    pub fn load(
        cfg_path: &Path,
        weights_path: &Path,
        device: &Device,
    ) -> Result<Darknet, ModelError> {
        let cfg = Cfg::parse_file(cfg_path)?;
        let weights = DarknetWeights::read(weights_path, &cfg)?;
        Darknet::from_parts(cfg, &weights, device)
    }

    /// Builds the network from a parsed cfg and in-memory weights (e.g. random or pruned).
    pub fn from_parts(
        cfg: Cfg,
        weights: &DarknetWeights,
        device: &Device,
    ) -> Result<Darknet, ModelError> {
        Self::with_backend(cfg, weights, device, ConvBackend::for_device(device))
    }

    /// As `from_parts`, with an explicit conv backend (cross-checks and benchmarks).
    pub fn with_backend(
        cfg: Cfg,
        weights: &DarknetWeights,
        device: &Device,
        backend: ConvBackend,
    ) -> Result<Darknet, ModelError> {
        let shapes = layer_shapes(&cfg, cfg.net.width, cfg.net.height)?;
        let mut convs = weights.convs.iter();
        let mut shortcuts = weights.shortcuts.iter().peekable();
        let mut layers = Vec::with_capacity(cfg.layers.len());
        let n = cfg.layers.len();
        let last_use = last_uses(&cfg);
        for l in &cfg.layers {
            let i = l.index;
            let kind = l.kind.name();
            let prepared = match &l.kind {
                LayerKind::Conv(c) => {
                    let w = convs.next().ok_or_else(|| ModelError::WeightsMismatch {
                        layer: i,
                        why: "no weights left for this conv".into(),
                    })?;
                    let in_c = if i == 0 {
                        cfg.net.channels
                    } else {
                        shapes[i - 1].c
                    };
                    let want = [c.filters, in_c / c.groups, c.size, c.size];
                    if w.layer != i
                        || w.kernel_shape != want
                        || w.kernel.len() != want.iter().product::<usize>()
                        || w.biases.len() != c.filters
                        || w.bn.is_some() != c.batch_normalize
                    {
                        return Err(ModelError::WeightsMismatch { layer: i, why: format!("cfg wants kernel {want:?} (BN {}), weights have layer {} kernel {:?}", c.batch_normalize, w.layer, w.kernel_shape) });
                    }
                    let pool_after = pool_follows(&cfg, &last_use, i);
                    Prepared::Conv(Box::new(
                        ConvLayer::new(c.clone(), w, backend, device, pool_after)
                            .map_err(tensor_err(i, kind))?,
                    ))
                }
                LayerKind::Shortcut(s) => {
                    let w = match shortcuts.peek() {
                        Some(sw) if sw.layer == i => shortcuts.next().map(|s| s.weights.as_slice()),
                        _ => None,
                    };
                    Prepared::Shortcut(
                        ShortcutLayer::new(s.clone(), w, shapes[i].c, device)
                            .map_err(tensor_err(i, kind))?,
                    )
                }
                LayerKind::Yolo(y) => Prepared::Yolo(YoloLayer::new(y.clone())),
                _ => Prepared::Other,
            };
            layers.push(prepared);
        }
        if convs.next().is_some() {
            return Err(ModelError::WeightsMismatch {
                layer: n,
                why: "more conv weights than convs in the cfg".into(),
            });
        }
        let pool_from = pool_cascade(&cfg, &last_use);
        Ok(Darknet {
            cfg,
            device: device.clone(),
            backend,
            dtype: DType::F32,
            layers,
            last_use,
            pool_from,
            workspace: Mutex::new(None),
            chaining: std::env::var("KESTREL_CHAIN").as_deref() == Ok("1"),
            fuse_residual: std::env::var("KESTREL_FUSE_RESIDUAL").as_deref() != Ok("0"),
        })
    }

    /// Runs every layer in `dtype` (f16 / bf16: the CUDA reduced precisions; tensor cores take
    /// them natively). Needs the Candle backend; heads are handed back in f32.
    pub fn with_compute_dtype(mut self, dtype: DType) -> Result<Darknet, ModelError> {
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(ModelError::Input(format!(
                "compute dtype {dtype:?}: only f32, f16 and bf16 are supported"
            )));
        }
        if dtype != DType::F32 && self.backend != ConvBackend::Candle {
            return Err(ModelError::Input(format!(
                "compute dtype {dtype:?} needs the Candle backend (a CUDA device); on CPU use the \
                 reduced-precision convs of `--precision f16|q8`"
            )));
        }
        for (i, p) in self.layers.iter_mut().enumerate() {
            match p {
                Prepared::Conv(c) => c.cast(dtype).map_err(tensor_err(i, "convolutional"))?,
                Prepared::Shortcut(s) => s.cast(dtype).map_err(tensor_err(i, "shortcut"))?,
                _ => {}
            }
        }
        self.dtype = dtype;
        Ok(self)
    }

    /// The dtype activations run in.
    pub fn compute_dtype(&self) -> DType {
        self.dtype
    }

    /// The conv backend chosen at load.
    pub fn backend(&self) -> ConvBackend {
        self.backend
    }

    /// Replaces the f32 conv of layer `layer` by a reduced-precision one (`None` = back to f32).
    /// Only the CPU im2col backend has the seam.
    pub fn set_reduced_conv(
        &mut self,
        layer: usize,
        reduced: Option<crate::quant::QuantConv>,
    ) -> Result<(), ModelError> {
        if self.backend != ConvBackend::CpuIm2col {
            return Err(ModelError::Input(
                "reduced-precision convs need the CPU backend".into(),
            ));
        }
        self.forget_workspace();
        match self.layers.get_mut(layer) {
            Some(Prepared::Conv(c)) => {
                c.set_reduced(reduced);
                Ok(())
            }
            _ => Err(ModelError::Input(format!("layer {layer} is not a conv"))),
        }
    }

    /// Removes and returns layer `layer`'s reduced conv (it then runs in f32).
    pub fn take_reduced_conv(
        &mut self,
        layer: usize,
    ) -> Result<Option<crate::quant::QuantConv>, ModelError> {
        self.forget_workspace();
        match self.layers.get_mut(layer) {
            Some(Prepared::Conv(c)) => Ok(c.take_reduced()),
            _ => Err(ModelError::Input(format!("layer {layer} is not a conv"))),
        }
    }

    /// Turns the passing of int8 planes between consecutive int8 convs on or off (see
    /// `quant::chain`; off by default, `KESTREL_CHAIN=1` turns it on at load). Off, every int8
    /// conv reads and writes f32 maps and picks its input scale per frame; on, scales are
    /// calibrated on the first frame and widened by later ones, so a frame's detections depend
    /// on the frames before it. It measured no faster on the Zen 5 of docs/performance.md,
    /// hence off.
    pub fn set_int8_chaining(&mut self, on: bool) {
        self.chaining = on;
        self.forget_workspace();
    }

    /// Turns off (or back on) the fusing of each residual add (`[shortcut]`) into the f32 conv
    /// before it on the CPU (on by default; `KESTREL_FUSE_RESIDUAL=0` turns it off at load):
    /// the conv's store adds its finished values to the shortcut's other input, in place, so
    /// the conv's own map is never stored and read back. The outputs are the same bits either
    /// way; the switch is for measurements and tests.
    pub fn set_residual_fusion(&mut self, on: bool) {
        self.fuse_residual = on;
        self.forget_workspace();
    }

    /// Whether int8 chaining is on (see [`Darknet::set_int8_chaining`]).
    pub fn int8_chaining(&self) -> bool {
        self.chaining
    }

    /// Mean wall time per frame of each layer over the CPU forwards of the last input size, and
    /// how many frames that is (empty and 0 before the first, or on the Candle path): where a
    /// frame's time goes, layer by layer (`forward_bench` with `LAYERS=1` prints it).
    pub fn layer_times(&self) -> (Vec<std::time::Duration>, usize) {
        let ws = self.workspace.lock();
        ws.ok()
            .and_then(|w| w.as_ref().map(planned::Workspace::mean_times))
            .unwrap_or_default()
    }

    /// Forgets the per-layer times gathered so far (say, after warm-up frames).
    pub fn reset_layer_times(&self) {
        if let Ok(mut ws) = self.workspace.lock() {
            if let Some(w) = ws.as_mut() {
                w.reset_times();
            }
        }
    }

    /// How many int8 chains the last CPU forward ran with calibrated scales (0 before the
    /// second frame of an input size, or where nothing can be chained).
    pub fn int8_chains(&self) -> usize {
        let ws = self.workspace.lock();
        ws.ok()
            .and_then(|w| w.as_ref().map(planned::Workspace::calibrated_chains))
            .unwrap_or(0)
    }

    /// Drops the planned buffers: which convs are int8, and so which are chained (and their
    /// calibrated scales), changed.
    fn forget_workspace(&mut self) {
        if let Ok(ws) = self.workspace.get_mut() {
            *ws = None;
        }
    }

    /// Whether layer `layer` runs a reduced-precision conv.
    pub fn is_reduced_conv(&self, layer: usize) -> bool {
        matches!(self.layers.get(layer), Some(Prepared::Conv(c)) if c.is_reduced())
    }

    /// Runs conv layer `layer` alone on NCHW values `x` of `dims` into `dst` (the CPU path's
    /// slice form, as the planned forward runs it: no allocation, so per-layer timings of the
    /// precision plan compare steady-state costs). Returns the output (height, width).
    pub fn conv_forward_into(
        &self,
        layer: usize,
        x: &[f32],
        dims: (usize, usize, usize, usize),
        dst: &mut Vec<f32>,
    ) -> Result<(usize, usize), ModelError> {
        match self.layers.get(layer) {
            Some(Prepared::Conv(c)) if self.backend == ConvBackend::CpuIm2col => {
                let (ho, wo) = c.out_hw(dims.2, dims.3);
                let n = dims.0 * c.filters() * ho * wo;
                if dst.len() < n {
                    dst.resize(n, 0.0);
                }
                c.forward_into(x, dims, dst)
                    .map_err(tensor_err(layer, "convolutional"))?;
                Ok((ho, wo))
            }
            Some(Prepared::Conv(_)) => Err(ModelError::Input(
                "slice-form convs need the CPU backend".into(),
            )),
            _ => Err(ModelError::Input(format!("layer {layer} is not a conv"))),
        }
    }

    /// The layer whose output conv `layer` may read as int8 planes when it runs int8 (see
    /// `quant::chain`): the layer just before it, if that is a linear or leaky conv of stride 1
    /// or 2 without groups (when it runs int8 too), or a plain residual add (one unweighted,
    /// linear `[shortcut]`). The reader is a stride-1 or -2 conv without groups.
    pub(crate) fn chain_source(&self, layer: usize) -> Option<usize> {
        use crate::model::{Activation, ShortcutWeights};
        let to = self.conv_cfg(layer)?;
        let from = layer.checked_sub(1)?;
        let source = match &self.cfg.layers[from].kind {
            LayerKind::Conv(c) => {
                c.groups <= 1
                    && c.stride <= 2
                    && matches!(c.activation, Activation::Linear | Activation::Leaky)
            }
            LayerKind::Shortcut(s) => {
                s.from.len() == 1
                    && s.activation == Activation::Linear
                    && s.weights_type == ShortcutWeights::None
            }
            _ => false,
        };
        (source && to.stride <= 2 && to.groups <= 1).then_some(from)
    }

    fn conv_cfg(&self, layer: usize) -> Option<&crate::model::ConvCfg> {
        match self.cfg.layers.get(layer).map(|l| &l.kind) {
            Some(LayerKind::Conv(c)) => Some(c),
            _ => None,
        }
    }

    /// Milliseconds of one call of conv `layer` reading an input of `dims` (cin, h, w) as the
    /// int8 planes the conv before writes when chained (see `quant::chain`), into `dst`; None
    /// where the conv cannot read planes. `planes` is kept between calls (first call allocates).
    pub(crate) fn time_chained_conv(
        &self,
        layer: usize,
        dims: (usize, usize, usize),
        planes: &mut Vec<u32>,
        dst: &mut Vec<f32>,
    ) -> Result<Option<f64>, ModelError> {
        use crate::quant::chain::{ChainIn, ChainOut};
        let Some(Prepared::Conv(c)) = self.layers.get(layer) else {
            return Ok(None);
        };
        let Some(spec) = c.chain_input(dims) else {
            return Ok(None);
        };
        if planes.len() != spec.len {
            *planes = spec.new_planes();
        }
        let (ho, wo) = c.out_hw(dims.1, dims.2);
        dst.resize(dst.len().max(c.filters() * ho * wo), 0.0);
        let t = std::time::Instant::now();
        rayon::scope(|_| {
            let mut scratch = crate::quant::int8::Scratch::default();
            let out = ChainOut::map(dst);
            c.forward_chained(ChainIn::Planes(planes), 0.01, dims, out, &mut scratch)
        })
        .map_err(tensor_err(layer, "convolutional"))?;
        Ok(Some(t.elapsed().as_secs_f64() * 1e3))
    }

    pub fn cfg(&self) -> &Cfg {
        &self.cfg
    }

    /// (width, height) from `[net]`.
    pub fn input_size(&self) -> (usize, usize) {
        (self.cfg.net.width, self.cfg.net.height)
    }

    pub fn num_classes(&self) -> usize {
        self.cfg.num_classes()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// x: `[B, 3, H, W]` f32 RGB in 0..1, H and W multiples of 32.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<YoloOutput>, ModelError> {
        self.forward_with(x, &ForwardOptions::default())
    }

    /// Layers whose input gets degraded, with the factor.
    fn degrade_points(&self, opts: &ForwardOptions, h: usize) -> Vec<(usize, f32)> {
        let mut out = Vec::new();
        if opts.degrade.is_empty() {
            return out;
        }
        for l in &self.cfg.layers {
            if matches!(l.kind, LayerKind::Yolo(_)) && l.index > 0 {
                let Ok(shapes) = layer_shapes(&self.cfg, self.cfg.net.width, h.max(32)) else {
                    continue;
                };
                let stride = h / shapes[l.index].h.max(1);
                if let Some(&(_, f)) = opts.degrade.iter().find(|(s, _)| *s == stride) {
                    out.push((l.index - 1, f));
                }
            }
        }
        out
    }

    pub fn forward_with(
        &self,
        x: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<Vec<YoloOutput>, ModelError> {
        let (_, c, h, w) = x
            .dims4()
            .map_err(|e| ModelError::Input(format!("expected [B, C, H, W]: {e}")))?;
        if c != self.cfg.net.channels || h % 32 != 0 || w % 32 != 0 || h == 0 || w == 0 {
            return Err(ModelError::Input(format!(
                "input {c}×{h}×{w}: need {} channels and H, W multiples of 32",
                self.cfg.net.channels
            )));
        }
        let _span = tracing::debug_span!("forward", h, w).entered();
        let x = x
            .to_device(&self.device)?
            .to_dtype(self.dtype)?
            .contiguous()?;
        let degrade = self.degrade_points(opts, h);
        if self.backend == ConvBackend::CpuIm2col
            && self.dtype == DType::F32
            && self.device.is_cpu()
            && degrade.is_empty()
        {
            let key = (x.dim(0)?, h, w);
            // Run on a pool worker: every parallel loop inside is then a work-stealing join
            // between the pool's threads, instead of each one parking this (outside) thread and
            // waking the workers through the pool's injector (≈ 150 such hand-offs per frame).
            // (The planned forward checks the shapes when it plans a new size.)
            return rayon::scope(|_| self.forward_planned(&x, key));
        }
        layer_shapes(&self.cfg, w, h)?;
        let mut outs: Vec<Option<Tensor>> = vec![None; self.layers.len()];
        let mut heads = Vec::new();
        let get = |outs: &[Option<Tensor>], j: usize| -> Result<Tensor, ModelError> {
            outs[j].clone().ok_or_else(|| {
                ModelError::Input(format!("internal: output of layer {j} was dropped"))
            })
        };
        for (i, (layer, prepared)) in self.cfg.layers.iter().zip(&self.layers).enumerate() {
            let kind = layer.kind.name();
            let mut input = if i == 0 {
                x.clone()
            } else {
                get(&outs, i - 1)?
            };
            if let Some(&(_, f)) = degrade.iter().find(|(j, _)| *j == i) {
                input = degrade_map(&input, f).map_err(tensor_err(i, kind))?;
            }
            let y = match (&layer.kind, prepared) {
                (_, Prepared::Conv(c)) => c.forward(&input).map_err(tensor_err(i, kind))?,
                (LayerKind::Shortcut(s), Prepared::Shortcut(sc)) => {
                    let others = s
                        .from
                        .iter()
                        .map(|&f| get(&outs, f))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut all = vec![&input];
                    all.extend(others.iter());
                    sc.forward(&all).map_err(tensor_err(i, kind))?
                }
                (LayerKind::Route(r), _) => {
                    let parts = r
                        .layers
                        .iter()
                        .map(|&f| get(&outs, f))
                        .collect::<Result<Vec<_>, _>>()?;
                    route(&parts, r.groups, r.group_id).map_err(tensor_err(i, kind))?
                }
                (LayerKind::Upsample { stride }, _) => {
                    let (_, _, ih, iw) = input.dims4()?;
                    input
                        .upsample_nearest2d(ih * stride, iw * stride)
                        .map_err(tensor_err(i, kind))?
                }
                (LayerKind::Maxpool(m), _) => match &self.pool_from[i] {
                    Some((j, rest)) if degrade.is_empty() => {
                        maxpool(&get(&outs, *j)?, rest, self.backend)
                            .map_err(tensor_err(i, kind))?
                    }
                    _ => maxpool(&input, m, self.backend).map_err(tensor_err(i, kind))?,
                },
                (_, Prepared::Yolo(yl)) => {
                    let decoded = yl.decode(&input, h, w).map_err(tensor_err(i, kind))?;
                    let gh = input.dim(2)?;
                    heads.push(YoloOutput {
                        raw: input.to_dtype(DType::F32).map_err(tensor_err(i, kind))?,
                        decoded,
                        stride: h / gh.max(1),
                    });
                    input
                }
                _ => {
                    return Err(ModelError::Input(format!(
                        "internal: layer {i} not prepared"
                    )))
                }
            };
            outs[i] = Some(y);
            for (j, slot) in outs.iter_mut().enumerate().take(i) {
                if self.last_use[j] <= i {
                    *slot = None;
                }
            }
        }
        Ok(heads)
    }
}

/// Concat on channels, then keep channel group `group_id` of `groups` of each part.
fn route(parts: &[Tensor], groups: usize, group_id: usize) -> candle_core::Result<Tensor> {
    let sliced = parts
        .iter()
        .map(|p| {
            let c = p.dim(1)? / groups;
            if groups == 1 {
                Ok(p.clone())
            } else {
                p.narrow(1, group_id * c, c)
            }
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    if sliced.len() == 1 {
        return Ok(sliced[0].clone());
    }
    Tensor::cat(&sliced, 1)
}

/// Bilinear down-sample by `factor`, then back up to the original size.
fn degrade_map(x: &Tensor, factor: f32) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if factor <= 1.0 {
        return Ok(x.clone());
    }
    let dh = ((h as f32 / factor).round() as usize).max(1);
    let dw = ((w as f32 / factor).round() as usize).max(1);
    x.upsample_bilinear2d(dh, dw, false)?
        .upsample_bilinear2d(h, w, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spp_pools_cascade_from_the_smaller_ones_and_nothing_else_does() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cfg = Cfg::parse_file(&root.join("models/cfg/yolov3-spp3.cfg")).unwrap();
        let n = cfg.layers.len();
        // Every layer's output kept to the end: the liveness check does not decide here.
        let cascade = pool_cascade(&cfg, &vec![n; n]);
        let mut found = Vec::new();
        for (i, c) in cascade.iter().enumerate() {
            let Some((j, rest)) = c else { continue };
            let (LayerKind::Maxpool(mi), LayerKind::Maxpool(mj)) =
                (&cfg.layers[i].kind, &cfg.layers[*j].kind)
            else {
                panic!("cascade {j} -> {i} is not pool -> pool");
            };
            assert_eq!(rest.size, mi.size - mj.size + 1);
            assert_eq!((rest.stride, rest.padding), (1, rest.size - 1));
            found.push((mj.size, mi.size));
        }
        assert_eq!(found, [(5, 9), (9, 13)].repeat(3), "three SPP blocks");
        // A dead source output is never used.
        assert!(pool_cascade(&cfg, &(1..=n).collect::<Vec<_>>())
            .iter()
            .all(Option::is_none));
        // Tiny's 2×2 pools (stride 2, and one 2×2/1) never cascade.
        let tiny = Cfg::parse_file(&root.join("models/cfg/yolov3-tiny.cfg")).unwrap();
        let m = tiny.layers.len();
        assert!(pool_cascade(&tiny, &vec![m; m]).iter().all(Option::is_none));
    }
}
