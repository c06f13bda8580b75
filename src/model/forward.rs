//! The network on Candle: convs with BN folded at load, the cheap layers, and YOLO decode on
//! the model's device. Only activations that later layers read are kept alive.

use super::cfg::{Cfg, Shape};
use super::conv::FoldedConv;
use super::layers::{
    Activation, LayerSpec, MaxPoolSpec, RouteSpec, ShortcutSpec, ShortcutWeights,
    WeightsNormalization, YoloSpec,
};
use super::weights::DarknetWeights;
use super::ModelError;
use candle_core::{DType, Device, Tensor, D};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// One `[yolo]` head's output.
#[derive(Debug, Clone)]
pub struct YoloOutput {
    /// The conv output feeding the head, `[B, A·(5+C), gh, gw]` (what OpenCV DNN calls the conv blob).
    pub raw: Tensor,
    /// `[B, A·gh·gw, 5+C]`: cx, cy, w, h in network-input pixels, σ(objectness), σ(class)….
    pub decoded: Tensor,
    /// Network input pixels per grid cell (8, 16, 32 for YOLOv3).
    pub stride: usize,
}

/// Options that change the forward pass for studies (not for flight).
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// (head stride, factor): bilinearly down- then up-sample by `factor` the feature map that
    /// feeds the head of that stride — which pyramid level matters for which object size.
    pub degrade: Vec<(usize, f32)>,
}

enum Layer {
    Conv(FoldedConv),
    Shortcut(ShortcutSpec, Option<Vec<f32>>),
    Route(RouteSpec),
    Upsample(usize),
    MaxPool(MaxPoolSpec),
    Yolo(YoloSpec),
}

/// (layer, gh, gw) → (grid offsets, anchor sizes).
type GridCache = HashMap<(usize, usize, usize), (Tensor, Tensor)>;

/// A loaded Darknet network, ready to run on its device.
pub struct Darknet {
    cfg: Cfg,
    device: Device,
    layers: Vec<Layer>,
    /// For each layer, the last layer index that reads its output.
    last_use: Vec<usize>,
    /// (layer, gh, gw) → (grid offsets, anchor sizes), built once per input size.
    grids: Mutex<GridCache>,
}

impl Darknet {
    /// Loads a cfg and its `.weights`, folding BN into the convs on `device`.
    ///
    /// # Errors
    /// Malformed cfg, weights not matching it, device errors.
    pub fn load(
        cfg_path: &Path,
        weights_path: &Path,
        device: &Device,
    ) -> Result<Darknet, ModelError> {
        let cfg = Cfg::parse_file(cfg_path)?;
        let weights = DarknetWeights::read(weights_path, &cfg)?;
        Darknet::from_parts(cfg, &weights, device)
    }

    /// Builds the network from a parsed cfg and weights already in memory.
    ///
    /// # Errors
    /// Weights that do not belong to the cfg; device errors.
    pub fn from_parts(
        cfg: Cfg,
        weights: &DarknetWeights,
        device: &Device,
    ) -> Result<Darknet, ModelError> {
        let shapes = cfg.shapes(cfg.net.width, cfg.net.height)?;
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for (i, spec) in cfg.layers.iter().enumerate() {
            let input = cfg.input_shape(&shapes, i, cfg.net.width, cfg.net.height);
            layers.push(match spec {
                LayerSpec::Conv(c) => {
                    let w = weights.conv(i).ok_or_else(|| {
                        ModelError::weights(&cfg.name, format!("no weights for conv layer {i}"))
                    })?;
                    Layer::Conv(
                        FoldedConv::new(c, w, input.c, device).map_err(|e| {
                            ModelError::weights(&cfg.name, format!("layer {i}: {e}"))
                        })?,
                    )
                }
                LayerSpec::Shortcut(s) => {
                    let w = weights
                        .shortcuts
                        .iter()
                        .find(|(l, _)| *l == i)
                        .map(|(_, v)| v.clone());
                    if (s.weights_type != ShortcutWeights::None) != w.is_some() {
                        return Err(ModelError::weights(
                            &cfg.name,
                            format!("shortcut layer {i}: fusion weights missing or unexpected"),
                        ));
                    }
                    Layer::Shortcut(s.clone(), w)
                }
                LayerSpec::Route(r) => Layer::Route(r.clone()),
                LayerSpec::Upsample { stride } => Layer::Upsample(*stride),
                LayerSpec::MaxPool(m) => Layer::MaxPool(m.clone()),
                LayerSpec::Yolo(y) => Layer::Yolo(y.clone()),
            });
        }
        let last_use = last_uses(&cfg);
        Ok(Darknet {
            cfg,
            device: device.clone(),
            layers,
            last_use,
            grids: Mutex::new(HashMap::new()),
        })
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

    /// Runs the network on `x`: `[B, 3, H, W]` f32 RGB in 0..1, H and W multiples of 32.
    ///
    /// # Errors
    /// Bad input shape; Candle errors.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<YoloOutput>, ModelError> {
        self.forward_with(x, &ForwardOptions::default())
    }

    /// [`Darknet::forward`] with study options.
    ///
    /// # Errors
    /// Bad input shape or options; Candle errors.
    pub fn forward_with(
        &self,
        x: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<Vec<YoloOutput>, ModelError> {
        self.run(x, opts, None)
    }

    /// Forward that also hands back every conv's pre-activation output (for calibrating
    /// generated weights); (layer index, tensor).
    ///
    /// # Errors
    /// As [`Darknet::forward`].
    pub fn forward_capturing(&self, x: &Tensor) -> Result<Vec<(usize, Tensor)>, ModelError> {
        let mut captured = Vec::new();
        self.run(x, &ForwardOptions::default(), Some(&mut captured))?;
        Ok(captured)
    }

    fn run(
        &self,
        x: &Tensor,
        opts: &ForwardOptions,
        mut capture: Option<&mut Vec<(usize, Tensor)>>,
    ) -> Result<Vec<YoloOutput>, ModelError> {
        let (_, c, h, w) = x
            .dims4()
            .map_err(|_| ModelError::Input(format!("expected [B, C, H, W], got {:?}", x.dims())))?;
        if c != self.cfg.net.channels || h % 32 != 0 || w % 32 != 0 || h == 0 || w == 0 {
            return Err(ModelError::Input(format!(
                "input {c}x{h}x{w}: needs {} channels and H, W multiples of 32",
                self.cfg.net.channels
            )));
        }
        let x = x.to_dtype(DType::F32)?.to_device(&self.device)?;
        let mut outs: Vec<Option<Tensor>> = Vec::with_capacity(self.layers.len());
        let mut heads = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let _span =
                tracing::trace_span!("layer", i, kind = self.cfg.layers[i].type_name()).entered();
            let prev = if i == 0 {
                &x
            } else {
                outs[i - 1].as_ref().ok_or_else(|| dropped(i - 1))?
            };
            let get = |j: usize| outs[j].as_ref().ok_or_else(|| dropped(j));
            let y = match layer {
                Layer::Conv(conv) => {
                    let degraded = self.degrade_input(i, prev, h, opts)?;
                    let input = degraded.as_ref().unwrap_or(prev);
                    match capture.as_deref_mut() {
                        Some(c) => {
                            let linear = conv.forward_linear(input)?;
                            c.push((i, linear.clone()));
                            activate(&linear, conv.spec.activation)?
                        }
                        None => conv.forward(input)?,
                    }
                }
                Layer::Shortcut(s, weights) => shortcut(s, weights.as_deref(), prev, &get)?,
                Layer::Route(r) => route(r, &get)?,
                Layer::Upsample(s) => {
                    let (_, _, ph, pw) = prev.dims4()?;
                    prev.upsample_nearest2d(ph * s, pw * s)?
                }
                Layer::MaxPool(m) => maxpool(prev, m)?,
                Layer::Yolo(spec) => {
                    let (_, _, gh, gw) = prev.dims4()?;
                    let decoded = self.decode(i, spec, prev, h, w)?;
                    heads.push(YoloOutput {
                        raw: prev.clone(),
                        decoded,
                        stride: h / gh.max(1),
                    });
                    let _ = gw;
                    prev.clone()
                }
            };
            outs.push(Some(y));
            for (out, &last) in outs.iter_mut().zip(&self.last_use) {
                if last <= i {
                    *out = None;
                }
            }
        }
        Ok(heads)
    }

    /// The degraded input of conv `i` when it feeds a head named in `opts.degrade`.
    fn degrade_input(
        &self,
        i: usize,
        x: &Tensor,
        net_h: usize,
        opts: &ForwardOptions,
    ) -> Result<Option<Tensor>, ModelError> {
        if opts.degrade.is_empty()
            || !matches!(self.cfg.layers.get(i + 1), Some(LayerSpec::Yolo(_)))
        {
            return Ok(None);
        }
        let (_, _, h, w) = x.dims4()?;
        let stride = net_h / h.max(1);
        let Some(&(_, factor)) = opts.degrade.iter().find(|(s, _)| *s == stride) else {
            return Ok(None);
        };
        if !(factor >= 1.0 && factor.is_finite()) {
            return Err(ModelError::Input(format!(
                "degrade factor {factor} for stride {stride} must be ≥ 1"
            )));
        }
        let (dh, dw) = (
            ((h as f32 / factor).round() as usize).max(1),
            ((w as f32 / factor).round() as usize).max(1),
        );
        Ok(Some(
            x.upsample_bilinear2d(dh, dw, false)?
                .upsample_bilinear2d(h, w, false)?,
        ))
    }

    fn decode(
        &self,
        i: usize,
        spec: &YoloSpec,
        raw: &Tensor,
        net_h: usize,
        net_w: usize,
    ) -> Result<Tensor, ModelError> {
        let (b, _, gh, gw) = raw.dims4()?;
        let na = spec.anchors.len();
        let no = 5 + spec.classes;
        let t = raw
            .reshape((b, na, no, gh, gw))?
            .permute((0, 1, 3, 4, 2))?
            .contiguous()?
            .reshape((b, na * gh * gw, no))?;
        let (grid, anchors) = self.grid(i, spec, gh, gw)?;
        let (sy, sx) = ((net_h / gh) as f64, (net_w / gw) as f64);
        let s = spec.scale_x_y as f64;
        let xy = candle_nn::ops::sigmoid(&t.narrow(D::Minus1, 0, 2)?)?;
        let xy = ((xy * s)? - (s - 1.0) / 2.0)?.broadcast_add(&grid)?;
        let scale = Tensor::new(&[sx as f32, sy as f32], &self.device)?;
        let xy = xy.broadcast_mul(&scale)?;
        let wh = t.narrow(D::Minus1, 2, 2)?.exp()?.broadcast_mul(&anchors)?;
        let rest = candle_nn::ops::sigmoid(&t.narrow(D::Minus1, 4, no - 4)?)?;
        Ok(Tensor::cat(&[&xy, &wh, &rest], D::Minus1)?)
    }

    /// Grid offsets `[1, A·gh·gw, 2]` (col, row) and anchors `[1, A·gh·gw, 2]`, cached.
    fn grid(
        &self,
        i: usize,
        spec: &YoloSpec,
        gh: usize,
        gw: usize,
    ) -> Result<(Tensor, Tensor), ModelError> {
        let mut cache = self
            .grids
            .lock()
            .map_err(|_| ModelError::Input("grid cache poisoned".into()))?;
        if let Some(g) = cache.get(&(i, gh, gw)) {
            return Ok(g.clone());
        }
        let na = spec.anchors.len();
        let mut offs = Vec::with_capacity(na * gh * gw * 2);
        let mut anch = Vec::with_capacity(na * gh * gw * 2);
        for &(aw, ah) in &spec.anchors {
            for row in 0..gh {
                for col in 0..gw {
                    offs.extend_from_slice(&[col as f32, row as f32]);
                    anch.extend_from_slice(&[aw, ah]);
                }
            }
        }
        let g = (
            Tensor::from_vec(offs, (1, na * gh * gw, 2), &self.device)?,
            Tensor::from_vec(anch, (1, na * gh * gw, 2), &self.device)?,
        );
        cache.insert((i, gh, gw), g.clone());
        Ok(g)
    }
}

fn dropped(j: usize) -> ModelError {
    ModelError::Input(format!(
        "internal: output of layer {j} was released before use"
    ))
}

fn last_uses(cfg: &Cfg) -> Vec<usize> {
    let n = cfg.layers.len();
    let mut last: Vec<usize> = (0..n).map(|i| (i + 1).min(n)).collect();
    for (i, l) in cfg.layers.iter().enumerate() {
        let refs: &[usize] = match l {
            LayerSpec::Route(r) => &r.layers,
            LayerSpec::Shortcut(s) => &s.from,
            _ => &[],
        };
        for &j in refs {
            last[j] = last[j].max(i);
        }
    }
    last
}

/// Applies a Darknet activation.
pub fn activate(x: &Tensor, a: Activation) -> candle_core::Result<Tensor> {
    match a {
        Activation::Linear => Ok(x.clone()),
        Activation::Leaky => x.maximum(&(x * 0.1)?),
        Activation::Relu => x.relu(),
        Activation::Logistic => candle_nn::ops::sigmoid(x),
        Activation::Swish => x.mul(&candle_nn::ops::sigmoid(x)?),
        Activation::Mish => {
            // softplus without overflow: max(x,0) + ln(1 + exp(-|x|))
            let sp = (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            x.mul(&sp.tanh()?)
        }
    }
}

fn shortcut<'a>(
    s: &ShortcutSpec,
    weights: Option<&[f32]>,
    prev: &Tensor,
    get: &dyn Fn(usize) -> Result<&'a Tensor, ModelError>,
) -> Result<Tensor, ModelError> {
    let inputs: Vec<&Tensor> = std::iter::once(Ok(prev))
        .chain(s.from.iter().map(|&f| get(f)))
        .collect::<Result<_, _>>()?;
    let out = match weights {
        None => {
            let mut acc = inputs[0].clone();
            for t in &inputs[1..] {
                acc = (acc + *t)?;
            }
            acc
        }
        Some(w) => {
            let n = inputs.len();
            let per = w.len() / n; // 1 (per feature) or C (per channel)
            let norm = normalize_fusion(w, n, per, s.normalization);
            let mut acc: Option<Tensor> = None;
            for (k, t) in inputs.iter().enumerate() {
                let wk = Tensor::from_vec(
                    norm[k * per..(k + 1) * per].to_vec(),
                    (1, per, 1, 1),
                    t.device(),
                )?;
                let term = t.broadcast_mul(&wk)?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => (a + term)?,
                });
            }
            acc.ok_or_else(|| ModelError::Input("shortcut without inputs".into()))?
        }
    };
    Ok(activate(&out, s.activation)?)
}

/// Darknet's fusion-weight normalisation, across the inputs, per channel when per-channel.
pub fn normalize_fusion(w: &[f32], n: usize, per: usize, norm: WeightsNormalization) -> Vec<f32> {
    let mut out = w.to_vec();
    for c in 0..per {
        let idx = |k: usize| k * per + c;
        match norm {
            WeightsNormalization::None => {}
            WeightsNormalization::Relu => {
                let sum: f32 = (0..n).map(|k| w[idx(k)].max(0.0)).sum::<f32>() + 0.0001;
                (0..n).for_each(|k| out[idx(k)] = w[idx(k)].max(0.0) / sum);
            }
            WeightsNormalization::Softmax => {
                let max = (0..n).map(|k| w[idx(k)]).fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = (0..n).map(|k| (w[idx(k)] - max).exp()).sum::<f32>() + 0.0001;
                (0..n).for_each(|k| out[idx(k)] = (w[idx(k)] - max).exp() / sum);
            }
        }
    }
    out
}

fn route<'a>(
    r: &RouteSpec,
    get: &dyn Fn(usize) -> Result<&'a Tensor, ModelError>,
) -> Result<Tensor, ModelError> {
    let mut parts = Vec::with_capacity(r.layers.len());
    for &l in &r.layers {
        let t = get(l)?;
        if r.groups > 1 {
            let c = t.dim(1)? / r.groups;
            parts.push(t.narrow(1, c * r.group_id, c)?);
        } else {
            parts.push(t.clone());
        }
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(&parts, 1)?
    })
}

/// Darknet max-pool: `padding/2` before, the rest after, out-of-image taps ignored. Edge
/// replication is exactly that for max (the replicated edge is already in every window that
/// reaches the pad). Stride-1 windows run separably (rows then columns): same result, k× cheaper.
pub fn maxpool(x: &Tensor, m: &MaxPoolSpec) -> candle_core::Result<Tensor> {
    let before = m.padding / 2;
    let after = m.padding - before;
    let mut t = x.clone();
    if m.padding > 0 {
        t = t
            .pad_with_same(2, before, after)?
            .pad_with_same(3, before, after)?;
    }
    if m.stride == 1 && m.size > 1 {
        t.max_pool2d_with_stride((m.size, 1), (1, 1))?
            .max_pool2d_with_stride((1, m.size), (1, 1))
    } else {
        t.max_pool2d_with_stride(m.size, m.stride)
    }
}

/// Shape helper for summaries and tests.
pub fn output_shapes(cfg: &Cfg, width: usize, height: usize) -> Result<Vec<Shape>, ModelError> {
    cfg.shapes(width, height)
}
