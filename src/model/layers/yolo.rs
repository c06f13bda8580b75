//! `[yolo]` decode on the model's device; grid and anchor tensors cached per grid size.

use crate::model::YoloCfg;
use candle_core::{DType, Device, Result, Tensor, D};
use std::collections::HashMap;
use std::sync::Mutex;

/// (gh, gw, stride_y, stride_x).
type GridKey = (usize, usize, usize, usize);

/// A YOLO head with its per-size constant tensors.
pub(crate) struct YoloLayer {
    cfg: YoloCfg,
    /// (gh, gw, stride_y, stride_x) → (grid offsets `[1, A·gh·gw, 2]` in pixels, anchors `[1, A·gh·gw, 2]`).
    cache: Mutex<HashMap<GridKey, (Tensor, Tensor)>>,
}

impl YoloLayer {
    pub fn new(cfg: YoloCfg) -> Self {
        YoloLayer {
            cfg,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn constants(
        &self,
        gh: usize,
        gw: usize,
        sy: usize,
        sx: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let key = (gh, gw, sy, sx);
        if let Ok(cache) = self.cache.lock() {
            if let Some(v) = cache.get(&key) {
                return Ok(v.clone());
            }
        }
        let a = self.cfg.mask.len();
        let mut grid = Vec::with_capacity(a * gh * gw * 2);
        let mut anchors = Vec::with_capacity(a * gh * gw * 2);
        for &m in &self.cfg.mask {
            let (aw, ah) = self.cfg.anchors[m];
            for row in 0..gh {
                for col in 0..gw {
                    grid.extend_from_slice(&[col as f32 * sx as f32, row as f32 * sy as f32]);
                    anchors.extend_from_slice(&[aw, ah]);
                }
            }
        }
        let g = Tensor::from_vec(grid, (1, a * gh * gw, 2), device)?;
        let an = Tensor::from_vec(anchors, (1, a * gh * gw, 2), device)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (g.clone(), an.clone()));
        }
        Ok((g, an))
    }

    /// raw `[B, A·(5+C), gh, gw]` → `[B, A·gh·gw, 5+C]`: cx, cy, w, h (input pixels), σ(obj), σ(cls).
    pub fn decode(&self, raw: &Tensor, in_h: usize, in_w: usize) -> Result<Tensor> {
        let (b, _, gh, gw) = raw.dims4()?;
        let a = self.cfg.mask.len();
        let e = 5 + self.cfg.classes;
        let (sy, sx) = (in_h / gh, in_w / gw);
        let (grid, anchors) = self.constants(gh, gw, sy, sx, raw.device())?;
        let t = raw
            .to_dtype(DType::F32)?
            .reshape((b, a, e, gh * gw))?
            .transpose(2, 3)?
            .reshape((b, a * gh * gw, e))?
            .contiguous()?;
        let s = self.cfg.scale_x_y as f64;
        let xy =
            candle_nn::ops::sigmoid(&t.narrow(D::Minus1, 0, 2)?)?.affine(s, -(s - 1.0) / 2.0)?;
        let stride = Tensor::from_slice(&[sx as f32, sy as f32], (1, 1, 2), raw.device())?;
        let xy = xy.broadcast_mul(&stride)?.broadcast_add(&grid)?;
        let wh = t.narrow(D::Minus1, 2, 2)?.exp()?.broadcast_mul(&anchors)?;
        let rest = candle_nn::ops::sigmoid(&t.narrow(D::Minus1, 4, e - 4)?)?;
        Tensor::cat(&[xy, wh, rest], D::Minus1)
    }

    /// Classes the head scores.
    pub fn classes(&self) -> usize {
        self.cfg.classes
    }

    /// [`decode`](Self::decode) on plain NCHW values of `(b, gh, gw)` for an `in_h×in_w` input,
    /// in one pass and one output buffer (the CPU path: a dozen temporary tensors per head per
    /// frame otherwise).
    pub fn decode_values(
        &self,
        raw: &[f32],
        (b, gh, gw): (usize, usize, usize),
        in_h: usize,
        in_w: usize,
    ) -> Result<Vec<f32>> {
        let a = self.cfg.mask.len();
        let e = 5 + self.cfg.classes;
        let n = gh * gw;
        if raw.len() < b * a * e * n {
            candle_core::bail!("yolo head {b}x{}x{gh}x{gw}: {} values", a * e, raw.len());
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let (sy, sx) = ((in_h / gh.max(1)) as f32, (in_w / gw.max(1)) as f32);
        let mut out = vec![0.0f32; b * a * n * e];
        let cells = |head: usize| Cells {
            maps: &raw[head * e * n..][..e * n],
            n,
            gw,
            scale: self.cfg.scale_x_y,
            stride: (sx, sy),
            anchor: self.cfg.anchors[self.cfg.mask[head % a]],
        };
        let decode =
            |(head, c, rows): (usize, usize, &mut [f32])| cells(head).decode(c * CELLS, rows);
        // Every anchor's chunks of cells at once over the pool where the head is large (26² ×
        // 3 × 85 values: one anchor after the other left 3 chunks to 2 threads, 0.69 ms).
        if b * a * n * e >= 1 << 15 {
            use rayon::prelude::*;
            out.par_chunks_mut(n * e)
                .enumerate()
                .flat_map(|(head, d)| {
                    let chunks = d.par_chunks_mut(CELLS * e).enumerate();
                    chunks.map(move |(c, rows)| (head, c, rows))
                })
                .for_each(decode);
        } else {
            out.chunks_mut(n * e)
                .enumerate()
                .flat_map(|(head, d)| {
                    let chunks = d.chunks_mut(CELLS * e).enumerate();
                    chunks.map(move |(c, rows)| (head, c, rows))
                })
                .for_each(decode);
        }
        Ok(out)
    }
}

/// Grid cells per decode chunk (one stack buffer of them per value).
const CELLS: usize = 128;

/// One anchor's maps of a head, `[5 + classes][n]`, and what turns them into boxes.
struct Cells<'a> {
    maps: &'a [f32],
    n: usize,
    gw: usize,
    scale: f32,
    stride: (f32, f32),
    anchor: (f32, f32),
}

impl Cells<'_> {
    /// Rows `[cell][5 + classes]` of the cells from `first` on: each value's map decoded over
    /// the chunk in vector code into a buffer, then written down its column.
    fn decode(&self, first: usize, rows: &mut [f32]) {
        use super::vexp::{map_into, Func};
        let e = self.maps.len() / self.n;
        let len = rows.len() / e;
        let mut buf = [0f32; CELLS];
        let (s, (sx, sy), (aw, ah)) = (self.scale, self.stride, self.anchor);
        for k in 0..e {
            let src = &self.maps[k * self.n + first..][..len];
            let f = if k == 2 || k == 3 {
                Func::Exp
            } else {
                Func::Sigmoid
            };
            map_into(f, src, &mut buf[..len]);
            let column = rows.iter_mut().skip(k).step_by(e).zip(&buf[..len]);
            match k {
                0 | 1 => column.enumerate().for_each(|(i, (d, &v))| {
                    let cell = first + i;
                    let (g, st) = match k {
                        0 => ((cell % self.gw) as f32, sx),
                        _ => ((cell / self.gw) as f32, sy),
                    };
                    *d = ((v * s - (s - 1.0) / 2.0) + g) * st;
                }),
                2 => column.for_each(|(d, &v)| *d = v * aw),
                3 => column.for_each(|(d, &v)| *d = v * ah),
                _ => column.for_each(|(d, &v)| *d = v),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_one_cell_like_darknet() {
        let cfg = YoloCfg {
            mask: vec![1],
            anchors: vec![(1.0, 1.0), (10.0, 20.0)],
            classes: 1,
            scale_x_y: 1.0,
        };
        let y = YoloLayer::new(cfg);
        // gh=1, gw=2, input 64x32 → stride 32; all logits 0 except tw=ln 2 at col 1.
        let mut raw = vec![0f32; 6 * 2];
        raw[2 * 2 + 1] = 2f32.ln();
        let t = Tensor::from_vec(raw, (1, 6, 1, 2), &Device::Cpu).unwrap();
        let d: Vec<Vec<f32>> = y
            .decode(&t, 32, 64)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(d[1][0], 48.0) && close(d[1][1], 16.0), "{d:?}");
        assert!(close(d[1][2], 20.0) && close(d[1][3], 20.0), "{d:?}");
        assert!(
            close(d[0][0], 16.0) && close(d[0][4], 0.5) && close(d[0][5], 0.5),
            "{d:?}"
        );
    }

    #[test]
    fn value_decode_matches_the_tensor_decode() {
        let cfg = YoloCfg {
            mask: vec![2, 0],
            anchors: vec![(3.0, 5.0), (10.0, 20.0), (30.0, 12.0)],
            classes: 3,
            scale_x_y: 1.05,
        };
        let y = YoloLayer::new(cfg);
        let (b, c, gh, gw) = (2, 2 * 8, 3, 4);
        let raw: Vec<f32> = (0..b * c * gh * gw)
            .map(|i| ((i * 37) % 23) as f32 / 5.0 - 2.3)
            .collect();
        let t = Tensor::from_slice(&raw, (b, c, gh, gw), &Device::Cpu).unwrap();
        let want: Vec<f32> = y
            .decode(&t, 96, 64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got = y.decode_values(&raw, (b, gh, gw), 96, 64).unwrap();
        assert_eq!(got.len(), want.len());
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f32::max);
        assert!(d < 1e-5, "max rel diff {d}");
        assert!(y.decode_values(&raw[..10], (b, gh, gw), 96, 64).is_err());
    }
}
