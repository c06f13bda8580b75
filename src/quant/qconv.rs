//! Reduced-precision convolution on CPU: im2row + candle's `QMatMul` (quantized) or an f16 matmul.
//!
//! Candle quantizes matmuls only (no quantized conv), so a conv becomes
//! `rows[N·Ho·Wo, K] · Wᵀ` with `W = [Cout, K]`, `K = Cin·k·k` zero-padded to the block size
//! (Q8_0/Q4_0 need K % 32 == 0; pruned widths such as 19·9 = 171 are not).

use super::Precision;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};

/// Conv geometry needed to unfold the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub size: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    /// Reduction length before padding.
    pub fn k(&self) -> usize {
        self.cin * self.size * self.size
    }

    /// Output height and width for an `h × w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let ho = (h + 2 * self.pad).saturating_sub(self.size) / self.stride + 1;
        let wo = (w + 2 * self.pad).saturating_sub(self.size) / self.stride + 1;
        (ho, wo)
    }
}

enum Weights {
    /// `[Cout, Kpad]` GGML blocks.
    Quantized(QMatMul),
    /// `[Cout, K]` f16.
    Half(Tensor),
    /// Q8 on x86 CPUs with AVX-512 VNNI: Kestrel's own int8 kernel (see [`super::int8`]).
    Int8(super::int8::Int8Conv),
    /// bf16 on x86 CPUs with AMX-BF16 or AVX512-BF16, stride-1 and -2 convs (see [`super::bf16`]).
    Bf16(super::bf16::Bf16Conv),
}

/// One conv layer's weights packed for reduced-precision compute (bias and activation are the
/// caller's, so the f32 and reduced paths share them).
pub struct QuantConv {
    geom: ConvGeom,
    k_padded: usize,
    precision: Precision,
    weights: Weights,
}

/// Zero-pads each row of a `[rows, k]` matrix to `[rows, k_padded]`.
pub fn pad_rows(kernel: &[f32], rows: usize, k: usize, k_padded: usize) -> Vec<f32> {
    if k == k_padded {
        return kernel.to_vec();
    }
    let mut out = vec![0.0; rows * k_padded];
    for (dst, src) in out.chunks_mut(k_padded).zip(kernel.chunks(k)) {
        dst[..k].copy_from_slice(src);
    }
    out
}

/// Rounds `k` up to a multiple of `block`.
pub fn padded_k(k: usize, block: usize) -> usize {
    k.div_ceil(block) * block
}

impl QuantConv {
    /// Packs a BN-folded OIHW kernel (`[cout, cin·k·k]` row-major) for `precision`
    /// (`F16`, `Q8` or `Q4`; `F32` is the model's own path).
    pub fn new(geom: ConvGeom, kernel: &[f32], precision: Precision) -> Result<QuantConv> {
        let k = geom.k();
        if kernel.len() != geom.cout * k {
            candle_core::bail!(
                "kernel has {} values, expected {}×{k}",
                kernel.len(),
                geom.cout
            );
        }
        match precision {
            Precision::Bf16 => Self::bf16(geom, kernel),
            Precision::Q8 | Precision::Q4 => {
                let k_padded = padded_k(k, precision.block());
                let padded = pad_rows(kernel, geom.cout, k, k_padded);
                let w = Tensor::from_vec(padded, (geom.cout, k_padded), &Device::Cpu)?;
                let q = QTensor::quantize(&w, precision.ggml())?;
                Self::from_qtensor(geom, q)
            }
            Precision::F16 | Precision::F32 => {
                let w = Tensor::from_slice(kernel, (geom.cout, k), &Device::Cpu)?
                    .to_dtype(DType::F16)?;
                Ok(QuantConv {
                    geom,
                    k_padded: k,
                    precision: Precision::F16,
                    weights: Weights::Half(w),
                })
            }
        }
    }

    /// The CPU bf16 conv: strides 1 and 2 on a CPU with AMX-BF16 or AVX512-BF16 only (elsewhere
    /// bf16 runs on CUDA).
    fn bf16(geom: ConvGeom, kernel: &[f32]) -> Result<QuantConv> {
        if !(1..=2).contains(&geom.stride) {
            candle_core::bail!("bf16 convs run on the CPU for stride 1 and 2 only");
        }
        let conv = super::bf16::Bf16Conv::new(kernel, geom.cout, geom.cin, geom.size).ok_or_else(
            || {
                candle_core::Error::Msg(
                    "bf16 convs need AMX-BF16 or AVX512-BF16 on the CPU, or CUDA".into(),
                )
            },
        )?;
        Ok(QuantConv {
            geom,
            k_padded: geom.k(),
            precision: Precision::Bf16,
            weights: Weights::Bf16(conv),
        })
    }

    /// Wraps weights already in GGML form (`[cout, Kpad]`), e.g. read from a model file.
    pub fn from_qtensor(geom: ConvGeom, q: QTensor) -> Result<QuantConv> {
        let (rows, k_padded) = q.shape().dims2()?;
        let block = q.dtype().block_size();
        if rows != geom.cout || k_padded != padded_k(geom.k(), block) {
            candle_core::bail!(
                "quantized kernel is {rows}×{k_padded}, expected {}×{}",
                geom.cout,
                padded_k(geom.k(), block)
            );
        }
        let precision = match q.dtype() {
            candle_core::quantized::GgmlDType::BF16 => {
                return Self::bf16(geom, &unpadded_kernel(&q, geom.k(), k_padded)?);
            }
            candle_core::quantized::GgmlDType::Q4_0 => Precision::Q4,
            candle_core::quantized::GgmlDType::F16 => Precision::F16,
            candle_core::quantized::GgmlDType::F32 => Precision::F32,
            _ => Precision::Q8,
        };
        let weights = match precision {
            Precision::F16 | Precision::F32 => {
                Weights::Half(q.dequantize(&Device::Cpu)?.to_dtype(DType::F16)?)
            }
            Precision::Q8 if super::int8::vnni_available() => {
                let k = geom.k();
                let kernel = unpadded_kernel(&q, k, k_padded)?;
                Weights::Int8(super::int8::Int8Conv::new(
                    &kernel, geom.cout, geom.cin, geom.size,
                ))
            }
            _ => Weights::Quantized(QMatMul::from_qtensor(q)?),
        };
        Ok(QuantConv {
            geom,
            k_padded,
            precision,
            weights,
        })
    }

    /// The format the weights are held in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The int8 kernel, where this conv runs Kestrel's own (the chained forward's seam).
    pub(crate) fn int8(&self) -> Option<&super::int8::Int8Conv> {
        match &self.weights {
            Weights::Int8(c) => Some(c),
            _ => None,
        }
    }

    /// Conv without bias of NCHW `data` (`b, cin, h, w`) into `out` (`[b, cout, ho, wo]`), on the
    /// planned forward's reused buffers (`scratch`: the bf16 conv's); the int8 and bf16 kernels
    /// also apply `epilogue` (bias + activation) as they write. Returns whether the epilogue was applied (otherwise the caller
    /// applies it).
    pub(crate) fn forward_fused(
        &self,
        data: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        out: &mut [f32],
        epilogue: Option<super::int8::Epilogue>,
        scratch: &mut super::direct_f32::F32Scratch,
    ) -> Result<bool> {
        let (ho, wo) = self.geom.out_hw(h, w);
        let n = ho * wo;
        let cout = self.geom.cout;
        if cin != self.geom.cin {
            candle_core::bail!("input has {cin} channels, conv expects {}", self.geom.cin);
        }
        if data.len() < b * cin * h * w || out.len() < b * cout * n {
            candle_core::bail!(
                "buffers of {} and {} values are too short for {b}x{cin}x{h}x{w} -> {cout}x{ho}x{wo}",
                data.len(),
                out.len()
            );
        }
        let g = super::int8::Int8Geom {
            cin,
            h,
            w,
            size: self.geom.size,
            stride: self.geom.stride,
            pad: self.geom.pad,
        };
        for bi in 0..b {
            let plane = &data[bi * cin * h * w..(bi + 1) * cin * h * w];
            let dst = &mut out[bi * cout * n..(bi + 1) * cout * n];
            match &self.weights {
                Weights::Quantized(q) => {
                    let rows = im2row(plane, &self.geom, h, w, self.k_padded);
                    let rows = Tensor::from_vec(rows, (n, self.k_padded), &Device::Cpu)?;
                    let y: Vec<f32> = q.forward(&rows)?.flatten_all()?.to_vec1()?;
                    transpose_into(&y, n, cout, dst);
                }
                Weights::Int8(c) => c.forward_fused(plane, g, dst, epilogue),
                Weights::Bf16(c) => {
                    if !c.forward_fused(plane, g, dst, epilogue, scratch) {
                        candle_core::bail!(
                            "the bf16 conv cannot run {cin}x{h}x{w} (stride {})",
                            g.stride
                        );
                    }
                }
                Weights::Half(wt) => {
                    let cols = im2col(plane, &self.geom, h, w);
                    let cols = Tensor::from_vec(cols, (self.geom.k(), n), &Device::Cpu)?
                        .to_dtype(DType::F16)?;
                    let y = wt.matmul(&cols)?.to_dtype(DType::F32)?;
                    dst.copy_from_slice(&y.flatten_all()?.to_vec1::<f32>()?);
                }
            }
        }
        Ok(epilogue.is_some() && matches!(self.weights, Weights::Int8(_) | Weights::Bf16(_)))
    }
}

/// A GGML kernel `[cout, k_padded]` back to f32 rows of its `k` real values.
fn unpadded_kernel(q: &QTensor, k: usize, k_padded: usize) -> Result<Vec<f32>> {
    let rows: Vec<f32> = q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    Ok(rows
        .chunks(k_padded)
        .flat_map(|r| r[..k].iter().copied())
        .collect())
}

/// `[n, cout]` → `[cout, n]`.
fn transpose_into(y: &[f32], n: usize, cout: usize, dst: &mut [f32]) {
    for (p, row) in y.chunks(cout).enumerate().take(n) {
        for (o, v) in row.iter().enumerate() {
            dst[o * n + p] = *v;
        }
    }
}

/// Input value at padded coordinates, zero outside.
#[inline]
fn at(plane: &[f32], h: usize, w: usize, iy: isize, ix: isize) -> f32 {
    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
        0.0
    } else {
        plane[iy as usize * w + ix as usize]
    }
}

/// Unfolds `[cin, h, w]` into rows `[ho·wo, k_padded]` (K order c, ky, kx as in OIHW kernels).
fn im2row(plane: &[f32], g: &ConvGeom, h: usize, w: usize, k_padded: usize) -> Vec<f32> {
    let (ho, wo) = g.out_hw(h, w);
    let (k, s, p) = (g.size, g.stride as isize, g.pad as isize);
    let mut rows = vec![0.0f32; ho * wo * k_padded];
    for (pix, row) in rows.chunks_mut(k_padded).enumerate() {
        let (oy, ox) = ((pix / wo) as isize, (pix % wo) as isize);
        let mut i = 0;
        for c in 0..g.cin {
            let ch = &plane[c * h * w..(c + 1) * h * w];
            for ky in 0..k as isize {
                for kx in 0..k as isize {
                    row[i] = at(ch, h, w, oy * s + ky - p, ox * s + kx - p);
                    i += 1;
                }
            }
        }
    }
    rows
}

/// Unfolds `[cin, h, w]` into columns `[cin·k·k, ho·wo]`.
fn im2col(plane: &[f32], g: &ConvGeom, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = g.out_hw(h, w);
    let (k, s, p) = (g.size, g.stride as isize, g.pad as isize);
    let n = ho * wo;
    let mut cols = vec![0.0f32; g.k() * n];
    for c in 0..g.cin {
        let ch = &plane[c * h * w..(c + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let r = (c * k + ky) * k + kx;
                let dst = &mut cols[r * n..(r + 1) * n];
                for (pix, d) in dst.iter_mut().enumerate() {
                    let (oy, ox) = ((pix / wo) as isize, (pix % wo) as isize);
                    *d = at(ch, h, w, oy * s + ky as isize - p, ox * s + kx as isize - p);
                }
            }
        }
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn rel_err(geom: ConvGeom, p: Precision, h: usize, w: usize) -> f32 {
        let mut s = 7;
        let kernel: Vec<f32> = (0..geom.cout * geom.k()).map(|_| lcg(&mut s)).collect();
        let xv: Vec<f32> = (0..2 * geom.cin * h * w).map(|_| lcg(&mut s)).collect();
        let x = Tensor::from_slice(&xv, (2, geom.cin, h, w), &Device::Cpu).unwrap();
        let kt = Tensor::from_slice(
            &kernel,
            (geom.cout, geom.cin, geom.size, geom.size),
            &Device::Cpu,
        )
        .unwrap();
        let want = x.conv2d(&kt, geom.pad, geom.stride, 1, 1).unwrap();
        let (ho, wo) = geom.out_hw(h, w);
        assert_eq!(want.dims(), [2, geom.cout, ho, wo]);
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let mut got = vec![f32::NAN; want.len()];
        QuantConv::new(geom, &kernel, p)
            .unwrap()
            .forward_fused(
                &xv,
                (2, geom.cin, h, w),
                &mut got,
                None,
                &mut Default::default(),
            )
            .unwrap();
        let num: f32 = got.iter().zip(&want).map(|(a, b)| (a - b).powi(2)).sum();
        let den: f32 = want.iter().map(|b| b * b).sum();
        (num / den).sqrt()
    }

    #[test]
    fn reduced_precision_conv_matches_conv2d() {
        // K = 19·9 = 171 is not a multiple of 32: exercises the padding.
        let odd = ConvGeom {
            cin: 19,
            cout: 12,
            size: 3,
            stride: 2,
            pad: 1,
        };
        let one = ConvGeom {
            cin: 64,
            cout: 8,
            size: 1,
            stride: 1,
            pad: 0,
        };
        for g in [odd, one] {
            assert!(rel_err(g, Precision::Q8, 9, 11) < 0.02);
            assert!(rel_err(g, Precision::F16, 9, 11) < 0.005);
            assert!(rel_err(g, Precision::Q4, 9, 11) < 0.15);
        }
    }

    #[test]
    fn wrong_kernel_size_is_an_error() {
        let g = ConvGeom {
            cin: 3,
            cout: 4,
            size: 3,
            stride: 1,
            pad: 1,
        };
        assert!(QuantConv::new(g, &[0.0; 10], Precision::Q8).is_err());
    }
}
