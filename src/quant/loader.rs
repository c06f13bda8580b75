//! Loading any model (Darknet `.weights` + cfg, or a Kestrel GGUF file) at any precision, with a
//! per-layer plan: each reduced conv is kept only where it beats f32 on this machine.

use super::file::{is_model_file, ModelFile, StoredConv};
use super::{ConvGeom, Precision, QuantConv, QuantError};
use crate::model::layers::conv::fold_bn;
use crate::model::{
    layer_shapes, Cfg, ConvWeights, Darknet, DarknetWeights, LayerKind, ShortcutWeightsData,
    WeightsHeader,
};
use candle_core::Device;
use std::path::Path;
use std::time::Instant;

/// How the per-layer plan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanMode {
    /// Time f32 and reduced per layer (or use the plan stored in the model file).
    Measure,
    /// Every conv that can be reduced is (accuracy checks: the worst case).
    AllReduced,
}

/// One conv layer's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    pub layer: usize,
    pub geom: ConvGeom,
    /// Milliseconds per call at the cfg's input size (None when taken from the file).
    pub f32_ms: Option<f64>,
    pub reduced_ms: Option<f64>,
    /// The reduced conv reading its input as int8 planes from the conv before (q8 where the
    /// two can be chained, see `chain`; None elsewhere).
    pub chained_ms: Option<f64>,
    pub reduced: bool,
}

/// A network ready to run, with the precision it runs in and its plan.
pub struct Loaded {
    pub model: Darknet,
    pub precision: Precision,
    pub plan: Vec<PlanEntry>,
}

/// Geometry of every conv layer (layer index, geom, groups) at the cfg's input size.
fn conv_geoms(cfg: &Cfg) -> Result<Vec<(usize, ConvGeom, usize)>, QuantError> {
    let shapes = layer_shapes(cfg, cfg.net.width, cfg.net.height)?;
    let mut out = Vec::new();
    for l in &cfg.layers {
        if let LayerKind::Conv(c) = &l.kind {
            let cin = if l.index == 0 {
                cfg.net.channels
            } else {
                shapes[l.index - 1].c
            };
            let geom = ConvGeom {
                cin: cin / c.groups.max(1),
                cout: c.filters,
                size: c.size,
                stride: c.stride,
                pad: c.pad,
            };
            out.push((l.index, geom, c.groups));
        }
    }
    Ok(out)
}

/// BN folded into every conv and quantized for a model file.
pub fn to_model_file(
    cfg: &Cfg,
    cfg_text: String,
    weights: &DarknetWeights,
    precision: Precision,
) -> Result<ModelFile, QuantError> {
    let convs = weights
        .convs
        .iter()
        .map(|w| {
            let (kernel, bias) = fold_bn(w);
            StoredConv::quantize(w.layer, w.kernel_shape, &kernel, bias, precision)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelFile {
        cfg_text,
        cfg_name: cfg.name.clone(),
        precision,
        convs,
        shortcuts: weights
            .shortcuts
            .iter()
            .map(|s| (s.layer, s.weights.clone()))
            .collect(),
        plan: Vec::new(),
    })
}

/// f32 weights equivalent to a model file's folded ones. Layers with BN get an identity BN
/// (γ = sqrt(1)+1e-6, mean 0, var 1) so Darknet's fold multiplies by exactly 1.
fn weights_from_file(cfg: &Cfg, file: &ModelFile) -> Result<DarknetWeights, QuantError> {
    let mut convs = Vec::with_capacity(file.convs.len());
    for c in &file.convs {
        let bn = match cfg.layers.get(c.layer).map(|l| &l.kind) {
            Some(LayerKind::Conv(cc)) if cc.batch_normalize => {
                let n = c.bias.len();
                let gamma = 1.0f32.sqrt() + 1e-6;
                Some((vec![gamma; n], vec![0.0; n], vec![1.0; n]))
            }
            _ => None,
        };
        convs.push(ConvWeights {
            layer: c.layer,
            biases: c.bias.clone(),
            bn,
            kernel: c.kernel_f32()?,
            kernel_shape: c.kernel_shape,
        });
    }
    Ok(DarknetWeights {
        header: WeightsHeader::DEFAULT,
        convs,
        shortcuts: file
            .shortcuts
            .iter()
            .map(|(layer, w)| ShortcutWeightsData {
                layer: *layer,
                weights: w.clone(),
            })
            .collect(),
    })
}

/// Loads `.weights` (needs `cfg`) or a Kestrel model file (sniffed by its GGUF magic; its
/// embedded cfg is used). `precision` None = the file's own (f32 for `.weights`).
pub fn load_any(
    cfg: Option<&Path>,
    weights: &Path,
    device: &Device,
    precision: Option<Precision>,
    mode: PlanMode,
) -> Result<Loaded, QuantError> {
    load_any_with(cfg, weights, device, precision, mode, None)
}

/// [`load_any`] with int8 chaining (`--int8-chain`, see `quant::chain`) set before the plan is
/// measured, so that the plan times each conv as it will run: `Some(on)`, or None for the
/// default (`KESTREL_CHAIN=1` turns it on).
pub fn load_any_with(
    cfg: Option<&Path>,
    weights: &Path,
    device: &Device,
    precision: Option<Precision>,
    mode: PlanMode,
    chain: Option<bool>,
) -> Result<Loaded, QuantError> {
    let chained = |mut model: Darknet| {
        if let Some(on) = chain {
            model.set_int8_chaining(on);
        }
        model
    };
    if is_model_file(weights)? {
        let file = ModelFile::read(weights)?;
        let name = weights.display().to_string();
        let cfg = Cfg::parse_str(&file.cfg_text, &name)?;
        let dw = weights_from_file(&cfg, &file)?;
        let precision = precision.unwrap_or(file.precision);
        let stored_plan = (precision == file.precision && mode == PlanMode::Measure)
            .then_some(&file.plan)
            .filter(|p| !p.is_empty());
        let stored_plan = stored_plan.cloned();
        let model = chained(Darknet::from_parts(cfg, &dw, device)?);
        let kernels: Option<Vec<StoredConv>> =
            (precision == file.precision && precision != Precision::F32).then_some(file.convs);
        finish(model, &dw, precision, mode, kernels, stored_plan)
    } else {
        let cfg_path = cfg.ok_or_else(|| {
            QuantError::Usage(format!(
                "{}: Darknet .weights need --cfg (only Kestrel model files embed their cfg)",
                weights.display()
            ))
        })?;
        let cfg = Cfg::parse_file(cfg_path)?;
        let dw = DarknetWeights::read(weights, &cfg)?;
        let model = chained(Darknet::from_parts(cfg, &dw, device)?);
        finish(
            model,
            &dw,
            precision.unwrap_or(Precision::F32),
            mode,
            None,
            None,
        )
    }
}

/// Plugs reduced convs into an f32 model: from stored GGML kernels when given, else quantized
/// from `weights`; then keeps each only where the plan says so.
pub fn finish(
    mut model: Darknet,
    weights: &DarknetWeights,
    precision: Precision,
    mode: PlanMode,
    stored: Option<Vec<StoredConv>>,
    stored_plan: Option<Vec<(usize, String)>>,
) -> Result<Loaded, QuantError> {
    if !model.device().is_cpu() {
        return on_gpu(model, precision);
    }
    if precision == Precision::Bf16 && !super::cpu_bf16_available() {
        return Err(QuantError::Usage(
            "bf16 runs on CUDA, or on a CPU with AMX-BF16 (Sapphire Rapids or later) or \
             AVX512-BF16 (Zen 4 or later, Cooper Lake), not on this one; use --precision f32, \
             f16 or q8"
                .into(),
        ));
    }
    if precision == Precision::F32 {
        return Ok(Loaded {
            model,
            precision,
            plan: Vec::new(),
        });
    }
    let geoms = conv_geoms(model.cfg())?;
    let mut stored = stored.map(|v| v.into_iter());
    let mut plan = Vec::new();
    // Each reduced conv, out of the model while the others are timed; put back as chosen.
    let mut convs = Vec::new();
    for ((layer, geom, groups), w) in geoms.into_iter().zip(&weights.convs) {
        let from_file = stored.as_mut().and_then(|it| it.next());
        // bf16 on the CPU: stride 1 and 2 only (straight from the padded map).
        if groups != 1 || (precision == Precision::Bf16 && geom.stride > 2) {
            continue;
        }
        let conv = match from_file {
            Some(s) => QuantConv::from_qtensor(geom, s.kernel),
            None => QuantConv::new(geom, &fold_bn(w).0, precision),
        }
        .map_err(|source| QuantError::Layer { layer, source })?;
        model.set_reduced_conv(layer, Some(conv))?;
        let mut entry = PlanEntry {
            layer,
            geom,
            f32_ms: None,
            reduced_ms: None,
            chained_ms: None,
            reduced: true,
        };
        let keep_f32 = mode == PlanMode::Measure;
        if let Some(choice) = stored_plan
            .as_ref()
            .and_then(|p| p.iter().find(|(l, _)| *l == layer))
        {
            entry.reduced = choice.1 != "f32";
        } else if keep_f32 {
            let chained = model.int8_chaining() && model.chain_source(layer).is_some();
            let t = time_layer(&mut model, layer, geom, chained)?;
            entry.f32_ms = Some(t.f32_ms);
            entry.reduced_ms = Some(t.reduced_ms);
            entry.chained_ms = t.chained_ms;
            entry.reduced = t.reduced_ms < t.f32_ms;
        }
        convs.push(model_take(&mut model, layer)?);
        plan.push(entry);
    }
    let feeds = |from, to| model.chain_source(to) == Some(from);
    // A residual add feeds an int8 conv its planes whenever that conv is reduced.
    let fed_by_add = |to| {
        let from = model.chain_source(to);
        from.is_some_and(|f| matches!(model.cfg().layers[f].kind, LayerKind::Shortcut(_)))
    };
    choose_chains(&mut plan, feeds, fed_by_add);
    for (entry, conv) in plan.iter().zip(convs) {
        if entry.reduced {
            model.set_reduced_conv(entry.layer, conv)?;
        }
    }
    Ok(Loaded {
        model,
        precision,
        plan,
    })
}

/// CUDA: the whole network in f32, f16 or bf16 (Candle's kernels); block-quantized convs are a
/// CPU seam only, so q8/q4 are refused rather than silently run in f32.
fn on_gpu(model: Darknet, precision: Precision) -> Result<Loaded, QuantError> {
    let dtype = precision.cuda_dtype().ok_or_else(|| {
        QuantError::Usage(format!(
            "{} convs run on the CPU only; on CUDA use --precision f32, f16 or bf16",
            precision.name()
        ))
    })?;
    Ok(Loaded {
        model: model.with_compute_dtype(dtype)?,
        precision,
        plan: Vec::new(),
    })
}

/// Where a chain of int8 convs pays, keeps them reduced: over each run of convs that could be
/// chained (`feeds(a, b)`: conv a may feed conv b), the choice of f32 or reduced per conv with the least
/// total time, a reduced conv after a reduced one costing its chained time (no f32 input to
/// scan and pack) — as does a reduced conv that a residual add feeds (`fed_by_add`: the add
/// writes its planes in the same pass as its sums). Entries without timings (stored or
/// all-reduced plans) are left as they are.
fn choose_chains(
    plan: &mut [PlanEntry],
    feeds: impl Fn(usize, usize) -> bool,
    fed_by_add: impl Fn(usize) -> bool,
) {
    let timed = |e: &PlanEntry| e.f32_ms.zip(e.reduced_ms);
    let mut start = 0;
    while start < plan.len() {
        // A run: consecutive timed convs, each after the first fed by the one before.
        let mut end = start + 1;
        while end < plan.len()
            && timed(&plan[end]).is_some()
            && plan[end].chained_ms.is_some()
            && feeds(plan[end - 1].layer, plan[end].layer)
        {
            end += 1;
        }
        let first = &plan[start];
        let add_fed = first.chained_ms.is_some() && fed_by_add(first.layer);
        if (end - start > 1 || add_fed) && timed(first).is_some() {
            choose_run(&mut plan[start..end], add_fed);
        }
        start = end;
    }
}

/// The least-time choice over one run (see [`choose_chains`]): a two-state dynamic program on
/// whether the conv before is reduced; `add_fed`: the first conv reads planes when reduced.
fn choose_run(run: &mut [PlanEntry], add_fed: bool) {
    let inf = f64::INFINITY;
    // best[k][s]: least time of convs 0..=k with conv k in f32 (s = 0) or reduced (s = 1);
    // from[k][s]: conv k − 1's state on that path.
    let mut best = vec![[inf; 2]; run.len()];
    let mut from = vec![[0usize; 2]; run.len()];
    for (k, e) in run.iter().enumerate() {
        let (f, r) = (e.f32_ms.unwrap_or(inf), e.reduced_ms.unwrap_or(inf));
        let c = e.chained_ms.unwrap_or(r);
        if k == 0 {
            best[0] = [f, if add_fed { c } else { r }];
            continue;
        }
        let (p0, p1) = (best[k - 1][0], best[k - 1][1]);
        (best[k][0], from[k][0]) = if p0 <= p1 { (p0 + f, 0) } else { (p1 + f, 1) };
        (best[k][1], from[k][1]) = if p0 + r <= p1 + c {
            (p0 + r, 0)
        } else {
            (p1 + c, 1)
        };
    }
    let last = run.len() - 1;
    let mut s = usize::from(best[last][1] < best[last][0]);
    for k in (0..run.len()).rev() {
        run[k].reduced = s == 1;
        s = from[k][s];
    }
}

/// One layer's timings (ms, best of 5 each) at the cfg's input size.
struct LayerTimes {
    f32_ms: f64,
    reduced_ms: f64,
    /// Reading its input as int8 planes (only when asked for and the conv can).
    chained_ms: Option<f64>,
}

/// Times the layer in f32 and reduced (and, if `chained`, reduced from int8 planes), at the
/// cfg's input size.
fn time_layer(
    model: &mut Darknet,
    layer: usize,
    geom: ConvGeom,
    chained: bool,
) -> Result<LayerTimes, QuantError> {
    let shapes = layer_shapes(model.cfg(), model.cfg().net.width, model.cfg().net.height)?;
    let (h, w) = if layer == 0 {
        (model.cfg().net.height, model.cfg().net.width)
    } else {
        (shapes[layer - 1].h, shapes[layer - 1].w)
    };
    let x = vec![0.5f32; geom.cin * h * w];
    let mut out = Vec::new();
    let once = |model: &Darknet, out: &mut Vec<f32>| -> Result<f64, QuantError> {
        // Into one reused buffer on a pool worker, as the planned forward runs each layer (a
        // fresh output tensor per call added page faults that blurred the comparison).
        let t = Instant::now();
        rayon::scope(|_| model.conv_forward_into(layer, &x, (1, geom.cin, h, w), out))?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    // Alternating, best of 5 each: a burst of noise on a shared machine then hits both sides
    // instead of all of one (back-to-back blocks of 4 let it decide the plan), and each call
    // finds the other kernel's weights in cache, not its own, as in a real forward.
    let (mut reduced, mut f32_ms) = (f64::INFINITY, f64::INFINITY);
    let (mut planes, mut chained_ms) = (Vec::new(), None::<f64>);
    for _ in 0..5 {
        reduced = reduced.min(once(model, &mut out)?);
        if chained {
            let dims = (geom.cin, h, w);
            if let Some(t) = model.time_chained_conv(layer, dims, &mut planes, &mut out)? {
                chained_ms = Some(chained_ms.map_or(t, |c| c.min(t)));
            }
        }
        let reduced_conv = model_take(model, layer)?;
        f32_ms = f32_ms.min(once(model, &mut out)?);
        model.set_reduced_conv(layer, reduced_conv)?;
    }
    Ok(LayerTimes {
        f32_ms,
        reduced_ms: reduced,
        chained_ms,
    })
}

/// Temporarily removes a layer's reduced conv (returns it for putting back).
fn model_take(model: &mut Darknet, layer: usize) -> Result<Option<QuantConv>, QuantError> {
    Ok(model.take_reduced_conv(layer)?)
}

/// Human-readable plan, one line per conv.
pub fn format_plan(precision: Precision, plan: &[PlanEntry]) -> String {
    let mut s = format!(
        "{:>5}  {:>4} {:>5} {:>2} {:>2}  {:>9} {:>9} {:>9}  uses\n",
        "layer", "cin", "cout", "k", "s", "f32 ms", "red. ms", "chain ms"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for e in plan {
        s += &format!(
            "{:>5}  {:>4} {:>5} {:>2} {:>2}  {:>9} {:>9} {:>9}  {}\n",
            e.layer,
            e.geom.cin,
            e.geom.cout,
            e.geom.size,
            e.geom.stride,
            ms(e.f32_ms),
            ms(e.reduced_ms),
            ms(e.chained_ms),
            if e.reduced { precision.name() } else { "f32" }
        );
    }
    let n = plan.iter().filter(|e| e.reduced).count();
    s += &format!("{n} of {} convs in {}\n", plan.len(), precision.name());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(layer: usize, (f, r, c): (f64, f64, Option<f64>)) -> PlanEntry {
        PlanEntry {
            layer,
            geom: ConvGeom {
                cin: 8,
                cout: 8,
                size: 1,
                stride: 1,
                pad: 0,
            },
            f32_ms: Some(f),
            reduced_ms: Some(r),
            chained_ms: c,
            reduced: r < f,
        }
    }

    /// A conv slower reduced than in f32 on its own is kept reduced where it reads planes: after
    /// a reduced conv that feeds it, or from a residual add; never on its own.
    #[test]
    fn chained_and_add_fed_convs_count_their_planes_time() {
        // Conv 1 feeds conv 2 (a run); conv 4 is fed by the add at layer 3; conv 6 by nothing.
        let feeds = |a: usize, b: usize| a == 1 && b == 2;
        let by_add = |t: usize| t == 4;
        let mut plan = vec![
            entry(1, (1.0, 0.5, None)),
            entry(2, (0.3, 0.4, Some(0.1))),
            entry(4, (0.3, 0.4, Some(0.1))),
            entry(6, (0.3, 0.4, Some(0.1))),
        ];
        choose_chains(&mut plan, feeds, by_add);
        let reduced: Vec<bool> = plan.iter().map(|e| e.reduced).collect();
        assert_eq!(reduced, [true, true, true, false]);
        // Where the planes are no faster, f32 stays.
        let mut plan = vec![entry(4, (0.3, 0.4, Some(0.35)))];
        choose_chains(&mut plan, feeds, by_add);
        assert!(!plan[0].reduced);
        // A run whose f32 input is cheaper overall stays f32 throughout.
        let mut plan = vec![entry(1, (0.2, 0.9, None)), entry(2, (0.3, 0.4, Some(0.25)))];
        choose_chains(&mut plan, feeds, by_add);
        assert!(!plan[0].reduced && !plan[1].reduced);
    }
}
