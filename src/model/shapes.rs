//! Output shape of every layer, computed from the cfg alone (before any weight is read).

use super::{Cfg, Layer, LayerKind, ModelError};

/// Channels × height × width of one layer's output (batch excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

fn layer_err(cfg: &Cfg, layer: &Layer, key: &str, why: String) -> ModelError {
    ModelError::Layer {
        file: cfg.name.clone(),
        line: layer.raw.get(key).map_or(layer.raw.line, |e| e.line),
        section: layer.raw.kind.clone(),
        layer: layer.index,
        key: key.into(),
        why,
    }
}

/// Input shape of layer `i` (the previous layer's output, or the network input).
pub fn input_of(shapes: &[Shape], input: Shape, i: usize) -> Shape {
    if i == 0 {
        input
    } else {
        shapes[i - 1]
    }
}

/// Every layer's output shape at input `width`×`height`; errors name the offending layer.
pub fn layer_shapes(cfg: &Cfg, width: usize, height: usize) -> Result<Vec<Shape>, ModelError> {
    let input = Shape {
        c: cfg.net.channels,
        h: height,
        w: width,
    };
    let mut shapes: Vec<Shape> = Vec::with_capacity(cfg.layers.len());
    for layer in &cfg.layers {
        let inp = input_of(&shapes, input, layer.index);
        let out = match &layer.kind {
            LayerKind::Conv(c) => {
                if !inp.c.is_multiple_of(c.groups) || !c.filters.is_multiple_of(c.groups) {
                    return Err(layer_err(
                        cfg,
                        layer,
                        "groups",
                        format!(
                            "groups={} must divide input channels {} and filters {}",
                            c.groups, inp.c, c.filters
                        ),
                    ));
                }
                let (h, w) = (inp.h + 2 * c.pad, inp.w + 2 * c.pad);
                if h < c.size || w < c.size {
                    return Err(layer_err(
                        cfg,
                        layer,
                        "size",
                        format!("kernel {} larger than padded input {}×{}", c.size, h, w),
                    ));
                }
                Shape {
                    c: c.filters,
                    h: (h - c.size) / c.stride + 1,
                    w: (w - c.size) / c.stride + 1,
                }
            }
            LayerKind::Shortcut(s) => {
                for &f in &s.from {
                    let o = shapes[f];
                    if o != inp {
                        return Err(layer_err(cfg, layer, "from", format!(
                            "layer {f} has shape {}×{}×{} but the previous layer has {}×{}×{} (channel/size mismatch)",
                            o.c, o.h, o.w, inp.c, inp.h, inp.w)));
                    }
                }
                inp
            }
            LayerKind::Route(r) => {
                let first = shapes[r.layers[0]];
                let mut c = 0;
                for &l in &r.layers {
                    let s = shapes[l];
                    if (s.h, s.w) != (first.h, first.w) {
                        return Err(layer_err(
                            cfg,
                            layer,
                            "layers",
                            format!(
                                "layer {l} is {}×{} but layer {} is {}×{}",
                                s.h, s.w, r.layers[0], first.h, first.w
                            ),
                        ));
                    }
                    if !s.c.is_multiple_of(r.groups) {
                        return Err(layer_err(
                            cfg,
                            layer,
                            "groups",
                            format!(
                                "layer {l} has {} channels, not divisible by groups={}",
                                s.c, r.groups
                            ),
                        ));
                    }
                    c += s.c / r.groups;
                }
                Shape { c, ..first }
            }
            LayerKind::Upsample { stride } => Shape {
                c: inp.c,
                h: inp.h * stride,
                w: inp.w * stride,
            },
            LayerKind::Maxpool(m) => {
                if inp.h + m.padding < m.size || inp.w + m.padding < m.size {
                    return Err(layer_err(
                        cfg,
                        layer,
                        "size",
                        format!("window {} larger than input", m.size),
                    ));
                }
                Shape {
                    c: inp.c,
                    h: (inp.h + m.padding - m.size) / m.stride + 1,
                    w: (inp.w + m.padding - m.size) / m.stride + 1,
                }
            }
            LayerKind::Yolo(y) => {
                let need = y.mask.len() * (5 + y.classes);
                if inp.c != need {
                    return Err(layer_err(
                        cfg,
                        layer,
                        "classes",
                        format!(
                            "input has {} channels but {} anchors × (5 + {} classes) = {need}",
                            inp.c,
                            y.mask.len(),
                            y.classes
                        ),
                    ));
                }
                inp
            }
        };
        shapes.push(out);
    }
    Ok(shapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_shapes_at_416_and_non_square() {
        let cfg = Cfg::parse_file(&crate::model::tests_support::cfg_path(
            "darknet/yolov3-tiny.cfg",
        ))
        .unwrap();
        let s = layer_shapes(&cfg, 416, 416).unwrap();
        assert_eq!(
            s[11],
            Shape {
                c: 512,
                h: 13,
                w: 13
            }
        );
        assert_eq!(
            s[16],
            Shape {
                c: 255,
                h: 13,
                w: 13
            }
        );
        assert_eq!(
            s[20],
            Shape {
                c: 384,
                h: 26,
                w: 26
            }
        );
        let s = layer_shapes(&cfg, 640, 384).unwrap();
        assert_eq!(
            s[16],
            Shape {
                c: 255,
                h: 12,
                w: 20
            }
        );
    }

    #[test]
    fn shortcut_mismatch_is_error() {
        let text = "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\n[convolutional]\nfilters=8\n[shortcut]\nfrom=-2\n";
        let e = Cfg::parse_str(text, "s.cfg").unwrap_err();
        assert!(
            e.to_string().contains("s.cfg:9") && e.to_string().contains("`from`"),
            "{e}"
        );
    }
}
