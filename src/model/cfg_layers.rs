//! Typed Darknet layers and their parsing from a raw section (defaults as in Darknet's parser.c).

use super::cfg::{NetParams, RawSection};
use super::ModelError;

/// Activation functions of `[convolutional]` and `[shortcut]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Leaky,
    Linear,
    Relu,
    Mish,
    Swish,
    Logistic,
}

/// `[convolutional]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvCfg {
    pub batch_normalize: bool,
    pub filters: usize,
    pub size: usize,
    pub stride: usize,
    /// Effective zero padding on each side.
    pub pad: usize,
    pub groups: usize,
    pub activation: Activation,
}

/// How the inputs of a weighted `[shortcut]` are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortcutWeights {
    None,
    PerFeature,
    PerChannel,
}

/// Normalisation of weighted-shortcut weights (AlexeyAB's BiFPN-style fusion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsNorm {
    None,
    Relu,
    Softmax,
}

/// `[shortcut]`: previous layer + the `from` layers (absolute indices).
#[derive(Debug, Clone, PartialEq)]
pub struct ShortcutCfg {
    pub from: Vec<usize>,
    pub activation: Activation,
    pub weights_type: ShortcutWeights,
    pub weights_norm: WeightsNorm,
}

/// `[route]`: concat of `layers` (absolute indices), then channel group `group_id` of `groups`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCfg {
    pub layers: Vec<usize>,
    pub groups: usize,
    pub group_id: usize,
}

/// `[maxpool]` with Darknet's padding (total `padding`, window starts at `i·stride − padding/2`).
#[derive(Debug, Clone, PartialEq)]
pub struct MaxpoolCfg {
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
}

/// `[yolo]` detection head.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloCfg {
    pub mask: Vec<usize>,
    /// (w, h) in network-input pixels, all of them (mask picks).
    pub anchors: Vec<(f32, f32)>,
    pub classes: usize,
    pub scale_x_y: f32,
}

/// What a layer does.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    Conv(ConvCfg),
    Shortcut(ShortcutCfg),
    Route(RouteCfg),
    Upsample { stride: usize },
    Maxpool(MaxpoolCfg),
    Yolo(YoloCfg),
}

impl LayerKind {
    /// Darknet's short name of the layer type.
    pub fn name(&self) -> &'static str {
        match self {
            LayerKind::Conv(_) => "conv",
            LayerKind::Shortcut(_) => "shortcut",
            LayerKind::Route(_) => "route",
            LayerKind::Upsample { .. } => "upsample",
            LayerKind::Maxpool(_) => "maxpool",
            LayerKind::Yolo(_) => "yolo",
        }
    }
}

/// Reads keys of one section with file/line/section context for errors.
struct Keys<'a> {
    raw: &'a RawSection,
    file: &'a str,
    layer: isize,
}

impl Keys<'_> {
    fn bad(&self, key: &str, value: &str, line: usize, why: &str) -> ModelError {
        ModelError::BadValue {
            file: self.file.into(),
            line,
            section: self.raw.kind.clone(),
            key: key.into(),
            value: value.into(),
            why: why.into(),
        }
    }

    fn missing(&self, key: &str) -> ModelError {
        ModelError::MissingKey {
            file: self.file.into(),
            line: self.raw.line,
            section: self.raw.kind.clone(),
            layer: self.layer,
            key: key.into(),
        }
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: Option<T>) -> Result<T, ModelError> {
        match self.raw.get(key) {
            Some(e) => e
                .value
                .parse::<T>()
                .map_err(|_| self.bad(key, &e.value, e.line, "not a number of the expected kind")),
            None => default.ok_or_else(|| self.missing(key)),
        }
    }

    fn positive(&self, key: &str, default: Option<usize>) -> Result<usize, ModelError> {
        let v = self.num::<usize>(key, default)?;
        if v == 0 {
            let e = self.raw.get(key);
            return Err(self.bad(key, "0", e.map_or(self.raw.line, |e| e.line), "must be ≥ 1"));
        }
        Ok(v)
    }

    fn list<T: std::str::FromStr>(&self, key: &str) -> Result<Option<Vec<T>>, ModelError> {
        let Some(e) = self.raw.get(key) else {
            return Ok(None);
        };
        e.value
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<T>()
                    .map_err(|_| self.bad(key, &e.value, e.line, "not a list of numbers"))
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }

    fn word(&self, key: &str, default: &str) -> (String, usize) {
        match self.raw.get(key) {
            Some(e) => (e.value.to_ascii_lowercase(), e.line),
            None => (default.into(), self.raw.line),
        }
    }

    fn warn_unknown(&self, known: &[&str]) {
        for e in &self.raw.entries {
            if !known.contains(&e.key.as_str()) {
                tracing::warn!(file = self.file, line = e.line, section = %self.raw.kind,
                    key = %e.key, "unknown key ignored");
            }
        }
    }

    /// Turns a relative (negative) or absolute layer reference into an absolute past index.
    fn layer_ref(&self, key: &str, r: isize, index: usize) -> Result<usize, ModelError> {
        let abs = if r < 0 { index as isize + r } else { r };
        if abs < 0 || abs as usize >= index {
            let line = self.raw.get(key).map_or(self.raw.line, |e| e.line);
            return Err(ModelError::Layer {
                file: self.file.into(),
                line,
                section: self.raw.kind.clone(),
                layer: index,
                key: key.into(),
                why: format!("refers to layer {abs}, which is not an earlier layer (0..{index})"),
            });
        }
        Ok(abs as usize)
    }
}

/// Parses `[net]`.
pub(crate) fn parse_net(raw: &RawSection, file: &str) -> Result<NetParams, ModelError> {
    let k = Keys {
        raw,
        file,
        layer: -1,
    };
    Ok(NetParams {
        width: k.positive("width", None)?,
        height: k.positive("height", None)?,
        channels: k.positive("channels", Some(3))?,
    })
}

fn activation(k: &Keys, key: &str, default: &str) -> Result<Activation, ModelError> {
    let (v, line) = k.word(key, default);
    Ok(match v.as_str() {
        "leaky" => Activation::Leaky,
        "linear" => Activation::Linear,
        "relu" => Activation::Relu,
        "mish" => Activation::Mish,
        "swish" => Activation::Swish,
        "logistic" => Activation::Logistic,
        _ => {
            return Err(k.bad(
                key,
                &v,
                line,
                "expected leaky|linear|relu|mish|swish|logistic",
            ))
        }
    })
}

/// Parses one layer section (index = position after `[net]`).
pub(crate) fn parse_layer(
    raw: &RawSection,
    index: usize,
    file: &str,
) -> Result<LayerKind, ModelError> {
    let k = Keys {
        raw,
        file,
        layer: index as isize,
    };
    Ok(match raw.kind.as_str() {
        "convolutional" | "conv" => {
            k.warn_unknown(&[
                "batch_normalize",
                "filters",
                "size",
                "stride",
                "pad",
                "padding",
                "groups",
                "activation",
                "dilation",
            ]);
            let size = k.positive("size", Some(1))?;
            let pad = if k.num::<usize>("pad", Some(0))? != 0 {
                size / 2
            } else {
                k.num("padding", Some(0))?
            };
            if k.num::<usize>("dilation", Some(1))? != 1 {
                let e = raw.get("dilation").map_or(raw.line, |e| e.line);
                return Err(k.bad(
                    "dilation",
                    "≠1",
                    e,
                    "dilated convolutions are not supported",
                ));
            }
            LayerKind::Conv(ConvCfg {
                batch_normalize: k.num::<usize>("batch_normalize", Some(0))? != 0,
                filters: k.positive("filters", None)?,
                size,
                stride: k.positive("stride", Some(1))?,
                pad,
                groups: k.positive("groups", Some(1))?,
                activation: activation(&k, "activation", "logistic")?,
            })
        }
        "shortcut" => {
            k.warn_unknown(&[
                "from",
                "activation",
                "weights_type",
                "weights_normalization",
            ]);
            let from = k.list::<isize>("from")?.ok_or_else(|| k.missing("from"))?;
            let from = from
                .iter()
                .map(|&r| k.layer_ref("from", r, index))
                .collect::<Result<_, _>>()?;
            let (wt, wl) = k.word("weights_type", "none");
            let weights_type = match wt.as_str() {
                "none" => ShortcutWeights::None,
                "per_feature" | "per_layer" => ShortcutWeights::PerFeature,
                "per_channel" => ShortcutWeights::PerChannel,
                _ => {
                    return Err(k.bad(
                        "weights_type",
                        &wt,
                        wl,
                        "expected none|per_feature|per_channel",
                    ))
                }
            };
            let (wn, nl) = k.word("weights_normalization", "none");
            let weights_norm = match wn.as_str() {
                "none" => WeightsNorm::None,
                "relu" => WeightsNorm::Relu,
                "softmax" => WeightsNorm::Softmax,
                _ => {
                    return Err(k.bad(
                        "weights_normalization",
                        &wn,
                        nl,
                        "expected none|relu|softmax",
                    ))
                }
            };
            LayerKind::Shortcut(ShortcutCfg {
                from,
                activation: activation(&k, "activation", "linear")?,
                weights_type,
                weights_norm,
            })
        }
        "route" => {
            k.warn_unknown(&["layers", "groups", "group_id"]);
            let refs = k
                .list::<isize>("layers")?
                .ok_or_else(|| k.missing("layers"))?;
            if refs.is_empty() {
                return Err(k.missing("layers"));
            }
            let layers = refs
                .iter()
                .map(|&r| k.layer_ref("layers", r, index))
                .collect::<Result<_, _>>()?;
            let groups = k.positive("groups", Some(1))?;
            let group_id = k.num::<usize>("group_id", Some(0))?;
            if group_id >= groups {
                let line = raw.get("group_id").map_or(raw.line, |e| e.line);
                return Err(k.bad("group_id", &group_id.to_string(), line, "must be < groups"));
            }
            LayerKind::Route(RouteCfg {
                layers,
                groups,
                group_id,
            })
        }
        "upsample" => {
            k.warn_unknown(&["stride"]);
            LayerKind::Upsample {
                stride: k.positive("stride", Some(2))?,
            }
        }
        "maxpool" => {
            k.warn_unknown(&["size", "stride", "padding"]);
            let size = k.positive("size", Some(1))?;
            let stride = k.positive("stride", Some(1))?;
            LayerKind::Maxpool(MaxpoolCfg {
                size,
                stride,
                padding: k.num("padding", Some(size - 1))?,
            })
        }
        "yolo" => parse_yolo(&k)?,
        other => {
            return Err(ModelError::UnknownBlock {
                file: file.into(),
                line: raw.line,
                block: other.into(),
            })
        }
    })
}

fn parse_yolo(k: &Keys) -> Result<LayerKind, ModelError> {
    k.warn_unknown(&[
        "mask",
        "anchors",
        "classes",
        "num",
        "scale_x_y",
        "jitter",
        "ignore_thresh",
        "truth_thresh",
        "random",
        "iou_normalizer",
        "cls_normalizer",
        "iou_loss",
        "nms_kind",
        "beta_nms",
        "max_delta",
        "resize",
        "counters_per_class",
        "label_smooth_eps",
    ]);
    let classes = k.positive("classes", None)?;
    let num = k.positive("num", None)?;
    let flat = k
        .list::<f32>("anchors")?
        .ok_or_else(|| k.missing("anchors"))?;
    let aline = k.raw.get("anchors").map_or(k.raw.line, |e| e.line);
    if flat.len() != 2 * num {
        return Err(k.bad(
            "anchors",
            &format!("{} numbers", flat.len()),
            aline,
            &format!("num={num} needs {} numbers", 2 * num),
        ));
    }
    let anchors: Vec<(f32, f32)> = flat.chunks(2).map(|c| (c[0], c[1])).collect();
    let mask = k
        .list::<usize>("mask")?
        .unwrap_or_else(|| (0..num).collect());
    if let Some(&m) = mask.iter().find(|&&m| m >= num) {
        let line = k.raw.get("mask").map_or(k.raw.line, |e| e.line);
        return Err(k.bad("mask", &m.to_string(), line, "mask index ≥ num"));
    }
    Ok(LayerKind::Yolo(YoloCfg {
        mask,
        anchors,
        classes,
        scale_x_y: k.num("scale_x_y", Some(1.0))?,
    }))
}

#[cfg(test)]
mod tests {
    use crate::model::{Cfg, ModelError};

    fn parse(body: &str) -> Result<Cfg, ModelError> {
        Cfg::parse_str(&format!("[net]\nwidth=32\nheight=32\n{body}"), "b.cfg")
    }

    #[test]
    fn unknown_block_names_line() {
        let e = parse("[convolutional]\nfilters=2\n[bogus]\nx=1\n").unwrap_err();
        assert!(matches!(e, ModelError::UnknownBlock { line: 6, .. }), "{e}");
    }

    #[test]
    fn missing_filters_and_bad_number() {
        let e = parse("[convolutional]\nsize=3\n").unwrap_err();
        assert!(e.to_string().contains("`filters`"), "{e}");
        let e = parse("[convolutional]\nfilters=x2\n").unwrap_err();
        assert!(
            e.to_string().contains("b.cfg:5") && e.to_string().contains("filters"),
            "{e}"
        );
    }

    #[test]
    fn future_route_is_error() {
        let e = parse("[convolutional]\nfilters=2\n[route]\nlayers=2\n").unwrap_err();
        assert!(e.to_string().contains("`layers`"), "{e}");
    }

    #[test]
    fn maxpool_default_padding_and_yolo() {
        let c = parse("[maxpool]\nsize=2\nstride=1\n[convolutional]\nfilters=7\nactivation=linear\n[yolo]\nmask=0\nanchors=1,2, 3,4\nclasses=2\nnum=2\n").unwrap();
        assert!(matches!(&c.layers[0].kind, super::LayerKind::Maxpool(m) if m.padding == 1));
    }
}
