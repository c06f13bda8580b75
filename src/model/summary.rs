//! Darknet-style per-layer table: shapes, parameters and BFLOPs (2·k²·cin/groups·cout·H·W per conv).

use super::cfg::{Cfg, Shape};
use super::layers::LayerSpec;
use super::ModelError;
use std::fmt::Write;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerRow {
    pub index: usize,
    pub kind: &'static str,
    pub detail: String,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub params: usize,
    pub bflops: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub cfg: String,
    pub width: usize,
    pub height: usize,
    pub layers: Vec<LayerRow>,
    pub total_params: usize,
    pub total_bflops: f64,
    /// Size of a `.weights` file for this cfg (20-byte header).
    pub weights_bytes: u64,
}

fn chw(s: Shape) -> [usize; 3] {
    [s.c, s.h, s.w]
}

/// Computes the table for `cfg` at `width`×`height`.
///
/// # Errors
/// Shapes that do not work at that size.
pub fn summary(cfg: &Cfg, width: usize, height: usize) -> Result<Summary, ModelError> {
    let shapes = cfg.shapes(width, height)?;
    let mut rows = Vec::with_capacity(cfg.layers.len());
    for (i, l) in cfg.layers.iter().enumerate() {
        let input = cfg.input_shape(&shapes, i, width, height);
        let detail = match l {
            LayerSpec::Conv(c) => format!(
                "{:>5} {}x{}/{}{}{}",
                c.filters,
                c.size,
                c.size,
                c.stride,
                if c.groups > 1 {
                    format!(" g{}", c.groups)
                } else {
                    String::new()
                },
                if c.batch_normalize { " bn" } else { "" }
            ),
            LayerSpec::MaxPool(m) => format!("      {}x{}/{}", m.size, m.size, m.stride),
            LayerSpec::Route(r) => format!("{:?}", r.layers),
            LayerSpec::Shortcut(s) => format!("{:?}", s.from),
            LayerSpec::Upsample { stride } => format!("      x{stride}"),
            LayerSpec::Yolo(y) => format!("mask {:?}", y.mask),
        };
        rows.push(LayerRow {
            index: i,
            kind: l.type_name(),
            detail,
            input: chw(input),
            output: chw(shapes[i]),
            params: l.weight_count(input),
            bflops: l.flops(input, shapes[i]) / 1e9,
        });
    }
    Ok(Summary {
        cfg: cfg.name.clone(),
        width,
        height,
        total_params: rows.iter().map(|r| r.params).sum(),
        total_bflops: rows.iter().map(|r| r.bflops).sum(),
        weights_bytes: 20 + 4 * rows.iter().map(|r| r.params as u64).sum::<u64>(),
        layers: rows,
    })
}

impl Summary {
    /// The table as Darknet prints it, plus totals.
    pub fn to_table(&self) -> String {
        let mut s = format!("{} @ {}x{}\n", self.cfg, self.width, self.height);
        let _ = writeln!(
            s,
            "{:>4} {:<9} {:<18} {:>16} -> {:<16} {:>11} {:>8}",
            "idx", "layer", "", "input", "output", "params", "BFLOPs"
        );
        for r in &self.layers {
            let shape = |v: [usize; 3]| format!("{}x{}x{}", v[2], v[1], v[0]);
            let _ = writeln!(
                s,
                "{:>4} {:<9} {:<18} {:>16} -> {:<16} {:>11} {:>8.3}",
                r.index,
                r.kind,
                r.detail,
                shape(r.input),
                shape(r.output),
                r.params,
                r.bflops
            );
        }
        let _ = writeln!(
            s,
            "total: {} layers, {} parameters ({:.2} M), {:.3} BFLOPs, .weights file {} bytes",
            self.layers.len(),
            self.total_params,
            self.total_params as f64 / 1e6,
            self.total_bflops,
            self.weights_bytes
        );
        s
    }
}
