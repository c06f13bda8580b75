//! The layer types of a Darknet cfg, their parameters and their output shapes.

use super::cfg::{KeyReader, Shape};
use super::ModelError;

/// Activation functions Darknet names in cfgs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Linear,
    Leaky,
    Relu,
    Mish,
    Swish,
    Logistic,
}

impl Activation {
    pub fn parse(s: &str) -> Option<Activation> {
        Some(match s {
            "linear" => Activation::Linear,
            "leaky" => Activation::Leaky,
            "relu" => Activation::Relu,
            "mish" => Activation::Mish,
            "swish" => Activation::Swish,
            "logistic" => Activation::Logistic,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub batch_normalize: bool,
    pub filters: usize,
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub activation: Activation,
}

/// How a weighted shortcut (BiFPN-style fusion) scales its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortcutWeights {
    None,
    PerFeature,
    PerChannel,
}

/// Normalisation of the fusion weights before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsNormalization {
    None,
    Relu,
    Softmax,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShortcutSpec {
    /// Absolute indices of the layers added to the previous layer's output.
    pub from: Vec<usize>,
    pub activation: Activation,
    pub weights_type: ShortcutWeights,
    pub normalization: WeightsNormalization,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// Absolute indices, in concat order.
    pub layers: Vec<usize>,
    pub groups: usize,
    pub group_id: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MaxPoolSpec {
    pub size: usize,
    pub stride: usize,
    /// Total padding; Darknet puts `padding / 2` before and the rest after.
    pub padding: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct YoloSpec {
    pub mask: Vec<usize>,
    /// Anchors (w, h) in network-input pixels, already selected by `mask`.
    pub anchors: Vec<(f32, f32)>,
    pub classes: usize,
    pub scale_x_y: f32,
}

/// One layer of the network, as the cfg describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerSpec {
    Conv(ConvSpec),
    Shortcut(ShortcutSpec),
    Route(RouteSpec),
    Upsample { stride: usize },
    MaxPool(MaxPoolSpec),
    Yolo(YoloSpec),
}

/// Resolves a Darknet layer reference (negative = relative) to an absolute earlier index.
fn resolve(r: &KeyReader, key: &str, index: usize, v: i64) -> Result<usize, ModelError> {
    let abs = if v < 0 { index as i64 + v } else { v };
    if abs < 0 || abs >= index as i64 {
        return Err(r.error(
            key,
            format!("layer {index} refers to layer {abs} ({v}), which is not an earlier layer"),
        ));
    }
    Ok(abs as usize)
}

impl LayerSpec {
    /// Builds the layer at `index` from its section.
    ///
    /// # Errors
    /// Unknown block, missing keys, bad values, references to future layers.
    pub fn from_section(r: &KeyReader, index: usize) -> Result<LayerSpec, ModelError> {
        match r.section.name.as_str() {
            "convolutional" | "conv" => conv(r),
            "shortcut" => {
                r.warn_unknown(&[
                    "from",
                    "activation",
                    "weights_type",
                    "weights_normalization",
                ]);
                let from = r
                    .list::<i64>("from")?
                    .ok_or_else(|| r.error("from", "missing required key 'from'"))?;
                let from = from
                    .into_iter()
                    .map(|v| resolve(r, "from", index, v))
                    .collect::<Result<_, _>>()?;
                let weights_type = match r.str_or("weights_type", "none") {
                    "none" => ShortcutWeights::None,
                    "per_feature" | "per_layer" => ShortcutWeights::PerFeature,
                    "per_channel" => ShortcutWeights::PerChannel,
                    o => return Err(r.error("weights_type", format!("unknown weights_type '{o}'"))),
                };
                let normalization = match r.str_or("weights_normalization", "none") {
                    "none" => WeightsNormalization::None,
                    "relu" => WeightsNormalization::Relu,
                    "softmax" => WeightsNormalization::Softmax,
                    o => {
                        return Err(r.error(
                            "weights_normalization",
                            format!("unknown weights_normalization '{o}'"),
                        ))
                    }
                };
                let activation = r.activation("activation", Activation::Linear)?;
                Ok(LayerSpec::Shortcut(ShortcutSpec {
                    from,
                    activation,
                    weights_type,
                    normalization,
                }))
            }
            "route" => {
                r.warn_unknown(&["layers", "groups", "group_id"]);
                let layers = r
                    .list::<i64>("layers")?
                    .ok_or_else(|| r.error("layers", "missing required key 'layers'"))?;
                if layers.is_empty() {
                    return Err(r.error("layers", "empty 'layers'"));
                }
                let layers = layers
                    .into_iter()
                    .map(|v| resolve(r, "layers", index, v))
                    .collect::<Result<_, _>>()?;
                let groups = r.usize_or("groups", 1)?;
                let group_id = r.usize_or("group_id", 0)?;
                if groups == 0 || group_id >= groups {
                    return Err(r.error(
                        "group_id",
                        format!("group_id {group_id} must be < groups {groups}"),
                    ));
                }
                Ok(LayerSpec::Route(RouteSpec {
                    layers,
                    groups,
                    group_id,
                }))
            }
            "upsample" => {
                r.warn_unknown(&["stride"]);
                let stride = r.usize_or("stride", 2)?;
                if stride == 0 {
                    return Err(r.error("stride", "stride must be ≥ 1"));
                }
                Ok(LayerSpec::Upsample { stride })
            }
            "maxpool" => {
                r.warn_unknown(&["size", "stride", "padding"]);
                let stride = r.usize_or("stride", 1)?;
                let size = r.usize_or("size", stride)?;
                let padding = r.usize_or("padding", size.saturating_sub(1))?;
                if size == 0 || stride == 0 {
                    return Err(r.error("size", "size and stride must be ≥ 1"));
                }
                Ok(LayerSpec::MaxPool(MaxPoolSpec {
                    size,
                    stride,
                    padding,
                }))
            }
            "yolo" => yolo(r),
            other => Err(r.error("", format!("unknown block type [{other}] (layer {index})"))),
        }
    }

    /// Output shape given the previous layer's output and all earlier outputs.
    pub fn output_shape(&self, prev: Shape, earlier: &[Shape]) -> Result<Shape, String> {
        match self {
            LayerSpec::Conv(c) => {
                if !prev.c.is_multiple_of(c.groups) || !c.filters.is_multiple_of(c.groups) {
                    return Err(format!(
                        "groups={} must divide input channels {} and filters {}",
                        c.groups, prev.c, c.filters
                    ));
                }
                let (h, w) = (prev.h + 2 * c.padding, prev.w + 2 * c.padding);
                if h < c.size || w < c.size {
                    return Err(format!(
                        "input {}x{} is smaller than the kernel {}",
                        prev.w, prev.h, c.size
                    ));
                }
                Ok(Shape {
                    c: c.filters,
                    h: (h - c.size) / c.stride + 1,
                    w: (w - c.size) / c.stride + 1,
                })
            }
            LayerSpec::Shortcut(s) => {
                for &f in &s.from {
                    let o = earlier[f];
                    if o != prev {
                        return Err(format!(
                            "shortcut adds layer {f} ({}x{}x{}) to the previous layer ({}x{}x{}): shapes must match",
                            o.c, o.h, o.w, prev.c, prev.h, prev.w
                        ));
                    }
                }
                Ok(prev)
            }
            LayerSpec::Route(r) => {
                let first = earlier[r.layers[0]];
                let mut c = 0;
                for &l in &r.layers {
                    let s = earlier[l];
                    if (s.h, s.w) != (first.h, first.w) {
                        return Err(format!(
                            "route concatenates layer {l} ({}x{}) with layer {} ({}x{})",
                            s.w, s.h, r.layers[0], first.w, first.h
                        ));
                    }
                    if !s.c.is_multiple_of(r.groups) {
                        return Err(format!(
                            "groups={} does not divide layer {l}'s {} channels",
                            r.groups, s.c
                        ));
                    }
                    c += s.c / r.groups;
                }
                Ok(Shape {
                    c,
                    h: first.h,
                    w: first.w,
                })
            }
            LayerSpec::Upsample { stride } => Ok(Shape {
                c: prev.c,
                h: prev.h * stride,
                w: prev.w * stride,
            }),
            LayerSpec::MaxPool(m) => {
                let (h, w) = (prev.h + m.padding, prev.w + m.padding);
                if h < m.size || w < m.size {
                    return Err(format!(
                        "input {}x{} is smaller than the pool window {}",
                        prev.w, prev.h, m.size
                    ));
                }
                Ok(Shape {
                    c: prev.c,
                    h: (h - m.size) / m.stride + 1,
                    w: (w - m.size) / m.stride + 1,
                })
            }
            LayerSpec::Yolo(y) => {
                let want = y.anchors.len() * (5 + y.classes);
                if prev.c != want {
                    return Err(format!("[yolo] expects {want} input channels ({} anchors × (5 + {} classes)), the previous layer has {}", y.anchors.len(), y.classes, prev.c));
                }
                Ok(prev)
            }
        }
    }

    /// Number of f32 parameters this layer stores in a `.weights` file.
    pub fn weight_count(&self, input: Shape) -> usize {
        match self {
            LayerSpec::Conv(c) => {
                let kernel = c.filters * (input.c / c.groups) * c.size * c.size;
                kernel
                    + if c.batch_normalize {
                        4 * c.filters
                    } else {
                        c.filters
                    }
            }
            LayerSpec::Shortcut(s) => match s.weights_type {
                ShortcutWeights::None => 0,
                ShortcutWeights::PerFeature => s.from.len() + 1,
                ShortcutWeights::PerChannel => (s.from.len() + 1) * input.c,
            },
            _ => 0,
        }
    }

    /// Darknet's BFLOPs convention: 2·k²·cin/groups·cout·H·W per conv, nothing else counted.
    pub fn flops(&self, input: Shape, output: Shape) -> f64 {
        match self {
            LayerSpec::Conv(c) => {
                2.0 * (c.size * c.size * (input.c / c.groups) * c.filters) as f64
                    * (output.h * output.w) as f64
            }
            _ => 0.0,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            LayerSpec::Conv(_) => "conv",
            LayerSpec::Shortcut(_) => "shortcut",
            LayerSpec::Route(_) => "route",
            LayerSpec::Upsample { .. } => "upsample",
            LayerSpec::MaxPool(_) => "max",
            LayerSpec::Yolo(_) => "yolo",
        }
    }
}

fn conv(r: &KeyReader) -> Result<LayerSpec, ModelError> {
    r.warn_unknown(&[
        "batch_normalize",
        "filters",
        "size",
        "stride",
        "pad",
        "padding",
        "groups",
        "activation",
    ]);
    let filters = r.usize_req("filters")?;
    let size = r.usize_or("size", 1)?;
    let stride = r.usize_or("stride", 1)?;
    let pad = r.usize_or("pad", 0)?;
    let padding = if pad != 0 {
        size / 2
    } else {
        r.usize_or("padding", 0)?
    };
    let groups = r.usize_or("groups", 1)?;
    if filters == 0 || size == 0 || stride == 0 || groups == 0 {
        return Err(r.error("filters", "filters, size, stride and groups must be ≥ 1"));
    }
    Ok(LayerSpec::Conv(ConvSpec {
        batch_normalize: r.usize_or("batch_normalize", 0)? != 0,
        filters,
        size,
        stride,
        padding,
        groups,
        activation: r.activation("activation", Activation::Logistic)?,
    }))
}

fn yolo(r: &KeyReader) -> Result<LayerSpec, ModelError> {
    r.warn_unknown(&["mask", "anchors", "classes", "num", "scale_x_y"]);
    let classes = r.usize_or("classes", 20)?;
    let num = r.usize_or("num", 1)?;
    let flat = r.list::<f32>("anchors")?.unwrap_or_default();
    if flat.len() % 2 != 0 || flat.len() / 2 < num {
        return Err(r.error(
            "anchors",
            format!(
                "needs {num} (w,h) pairs (num={num}), found {} numbers",
                flat.len()
            ),
        ));
    }
    let all: Vec<(f32, f32)> = flat.chunks(2).map(|p| (p[0], p[1])).collect();
    let mask = r
        .list::<usize>("mask")?
        .unwrap_or_else(|| (0..num).collect());
    let mut anchors = Vec::with_capacity(mask.len());
    for &m in &mask {
        let a = all.get(m).ok_or_else(|| {
            r.error(
                "mask",
                format!("mask index {m} ≥ number of anchors {}", all.len()),
            )
        })?;
        anchors.push(*a);
    }
    Ok(LayerSpec::Yolo(YoloSpec {
        mask,
        anchors,
        classes,
        scale_x_y: r.f32_or("scale_x_y", 1.0)?,
    }))
}
