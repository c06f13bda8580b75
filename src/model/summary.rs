//! Per-layer table: shapes, parameters and BFLOPs (Darknet: 2·k²·cin/groups·cout·H·W per conv).

use super::shapes::{input_of, layer_shapes, Shape};
use super::weights::{param_specs, ParamSpec};
use super::{Cfg, LayerKind, ModelError};

/// One row of `kestrel info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerSummary {
    pub index: usize,
    pub kind: &'static str,
    /// e.g. "32 3x3/1" for conv, "2x2/2" for maxpool, "-1,61" for route.
    pub detail: String,
    pub input: Shape,
    pub output: Shape,
    /// f32 values this layer stores in `.weights`.
    pub params: usize,
    pub bflops: f64,
}

/// Whole-network totals plus rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub width: usize,
    pub height: usize,
    pub layers: Vec<LayerSummary>,
    pub total_params: usize,
    pub total_bflops: f64,
    /// `.weights` size with a 20-byte header.
    pub weights_bytes: u64,
}

fn detail(kind: &LayerKind) -> String {
    match kind {
        LayerKind::Conv(c) => {
            let g = if c.groups > 1 {
                format!(" g{}", c.groups)
            } else {
                String::new()
            };
            format!("{} {}x{}/{}{g}", c.filters, c.size, c.size, c.stride)
        }
        LayerKind::Maxpool(m) => format!("{}x{}/{}", m.size, m.size, m.stride),
        LayerKind::Upsample { stride } => format!("x{stride}"),
        LayerKind::Route(r) => r
            .layers
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(","),
        LayerKind::Shortcut(s) => s
            .from
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(","),
        LayerKind::Yolo(y) => format!("mask {:?} cls {}", y.mask, y.classes),
    }
}

/// Summary at input `width`×`height`.
pub fn summary(cfg: &Cfg, width: usize, height: usize) -> Result<Summary, ModelError> {
    let shapes = layer_shapes(cfg, width, height)?;
    let specs = param_specs(cfg)?;
    let input = Shape {
        c: cfg.net.channels,
        h: height,
        w: width,
    };
    let mut layers = Vec::new();
    for l in &cfg.layers {
        let inp = input_of(&shapes, input, l.index);
        let out = shapes[l.index];
        let params = specs
            .iter()
            .filter(|s| match s {
                ParamSpec::Conv { layer, .. } | ParamSpec::Shortcut { layer, .. } => {
                    *layer == l.index
                }
            })
            .map(ParamSpec::floats)
            .sum();
        let bflops = match &l.kind {
            LayerKind::Conv(c) => {
                2.0 * (c.size * c.size * (inp.c / c.groups) * c.filters * out.h * out.w) as f64
                    / 1e9
            }
            _ => 0.0,
        };
        layers.push(LayerSummary {
            index: l.index,
            kind: l.kind.name(),
            detail: detail(&l.kind),
            input: inp,
            output: out,
            params,
            bflops,
        });
    }
    let total_params = layers.iter().map(|l| l.params).sum::<usize>();
    Ok(Summary {
        width,
        height,
        total_bflops: layers.iter().map(|l| l.bflops).sum(),
        weights_bytes: 20 + 4 * total_params as u64,
        total_params,
        layers,
    })
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:>4} {:<9} {:<22} {:>16} -> {:>16} {:>11} {:>8}",
            "idx", "type", "detail", "input", "output", "params", "BFLOPs"
        )?;
        let sh = |s: &Shape| format!("{}x{}x{}", s.c, s.h, s.w);
        for l in &self.layers {
            writeln!(
                f,
                "{:>4} {:<9} {:<22} {:>16} -> {:>16} {:>11} {:>8.3}",
                l.index,
                l.kind,
                l.detail,
                sh(&l.input),
                sh(&l.output),
                l.params,
                l.bflops
            )?;
        }
        writeln!(
            f,
            "input {}x{}: {} layers, {} params, {:.2} BFLOPs, .weights {} bytes",
            self.width,
            self.height,
            self.layers.len(),
            self.total_params,
            self.total_bflops,
            self.weights_bytes
        )
    }
}
