//! Darknet max-pool: window starts at `i·stride − padding/2`, taps outside the image ignored.

use super::ConvBackend;
use crate::model::MaxpoolCfg;
use candle_core::{Result, Tensor};

/// Output length of one axis.
fn out_len(n: usize, m: &MaxpoolCfg) -> usize {
    (n + m.padding - m.size) / m.stride + 1
}

/// Max over the valid part of each window along one axis of a `[rows, n]` buffer (separable form).
fn pool_axis(src: &[f32], rows: usize, n: usize, m: &MaxpoolCfg, dst: &mut Vec<f32>) {
    let on = out_len(n, m);
    let off = (m.padding / 2) as isize;
    dst.clear();
    dst.reserve(rows * on);
    for r in 0..rows {
        let line = &src[r * n..(r + 1) * n];
        for o in 0..on {
            let start = o as isize * m.stride as isize - off;
            let lo = start.max(0) as usize;
            let hi = ((start + m.size as isize).max(0) as usize).min(n);
            let v = line[lo.min(n)..hi]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            dst.push(v);
        }
    }
}

/// Transposes each `[h, w]` plane of `planes` planes.
fn transpose(src: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for p in 0..planes {
        let s = &src[p * h * w..(p + 1) * h * w];
        let d = &mut out[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                d[x * h + y] = s[y * w + x];
            }
        }
    }
    out
}

pub(crate) fn maxpool(x: &Tensor, m: &MaxpoolCfg, backend: ConvBackend) -> Result<Tensor> {
    match backend {
        ConvBackend::CpuIm2col => maxpool_cpu(x, m),
        ConvBackend::Candle => maxpool_tensor(x, m),
    }
}

/// Separable: rows (along W), then columns (along H, via transpose).
fn maxpool_cpu(x: &Tensor, m: &MaxpoolCfg) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (out_len(h, m), out_len(w, m));
    let data: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let mut rows = Vec::new();
    pool_axis(&data, b * c * h, w, m, &mut rows);
    let t = transpose(&rows, b * c, h, wo);
    let mut cols = Vec::new();
    pool_axis(&t, b * c * wo, h, m, &mut cols);
    let out = transpose(&cols, b * c, wo, ho);
    Tensor::from_vec(out, (b, c, ho, wo), x.device())
}

/// Edge replication equals −∞ padding for max; then Candle's unpadded pool.
fn maxpool_tensor(x: &Tensor, m: &MaxpoolCfg) -> Result<Tensor> {
    let (l, r) = (m.padding / 2, m.padding - m.padding / 2);
    let p = x.pad_with_same(2, l, r)?.pad_with_same(3, l, r)?;
    p.max_pool2d_with_stride(m.size, m.stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reference straight from the Darknet loop.
    fn darknet_ref(x: &[f32], h: usize, w: usize, m: &MaxpoolCfg) -> Vec<f32> {
        let (ho, wo) = (out_len(h, m), out_len(w, m));
        let off = (m.padding / 2) as isize;
        let mut out = Vec::new();
        for i in 0..ho {
            for j in 0..wo {
                let mut best = f32::MIN;
                for n in 0..m.size as isize {
                    for k in 0..m.size as isize {
                        let y = i as isize * m.stride as isize - off + n;
                        let xx = j as isize * m.stride as isize - off + k;
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            best = best.max(x[y as usize * w + xx as usize]);
                        }
                    }
                }
                out.push(best);
            }
        }
        out
    }

    #[test]
    fn matches_darknet_with_negative_borders() {
        // All-negative values with the largest at the borders: zero padding would be wrong.
        let (h, w) = (7, 6);
        let x: Vec<f32> = (0..h * w)
            .map(|i| {
                -10.0 - ((i * 7919) % 13) as f32
                    + if i % w == 0 || i / w == h - 1 {
                        5.0
                    } else {
                        0.0
                    }
            })
            .collect();
        let t = Tensor::from_slice(&x, (1, 1, h, w), &Device::Cpu).unwrap();
        for (size, stride, padding) in [
            (2, 2, 1),
            (2, 1, 1),
            (5, 1, 4),
            (9, 1, 8),
            (13, 1, 12),
            (3, 2, 2),
        ] {
            let m = MaxpoolCfg {
                size,
                stride,
                padding,
            };
            let want = darknet_ref(&x, h, w, &m);
            for backend in [ConvBackend::CpuIm2col, ConvBackend::Candle] {
                let got: Vec<f32> = maxpool(&t, &m, backend)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert_eq!(got, want, "{size}/{stride}/{padding} {backend:?}");
            }
        }
    }
}
