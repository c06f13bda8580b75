//! Convolution with BN folded at load (Darknet: scale = γ/(sqrt(var)+1e-6)).

use super::activation::{apply_slice, apply_tensor};
use super::sgemm::{sgemm, with_f32};
use super::ConvBackend;
use crate::model::{ConvCfg, ConvWeights};
use candle_core::{Device, Result, Tensor};
use std::cell::RefCell;

thread_local! {
    /// im2col scratch shared by every layer run on this thread: grows to the largest layer once,
    /// then is reused frame after frame (no per-layer allocation).
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A conv layer ready to run: folded weights packed once for the chosen backend.
pub(crate) struct ConvLayer {
    cfg: ConvCfg,
    backend: ConvBackend,
    /// Candle: one OIHW tensor (empty on the CPU path).
    weights: Vec<Tensor>,
    /// CPU: the folded kernel, `g` row-major `[cout/g, cin/g·k·k]` matrices back to back.
    packed: Vec<f32>,
    bias: Vec<f32>,
    bias_t: Tensor,
    /// Reduced-precision replacement of the f32 matmul (set by `quant`; CPU only).
    reduced: Option<crate::quant::QuantConv>,
}

/// BN folded into kernel and bias, the way Darknet's CPU path and OpenCV compute it.
pub(crate) fn fold_bn(w: &ConvWeights) -> (Vec<f32>, Vec<f32>) {
    let Some((gamma, mean, var)) = &w.bn else {
        return (w.kernel.clone(), w.biases.clone());
    };
    let per_out = w.kernel.len() / w.biases.len().max(1);
    let mut kernel = w.kernel.clone();
    let mut bias = Vec::with_capacity(w.biases.len());
    for o in 0..w.biases.len() {
        let scale = gamma[o] / (var[o].sqrt() + 1e-6);
        kernel[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .for_each(|k| *k *= scale);
        bias.push(w.biases[o] - mean[o] * scale);
    }
    (kernel, bias)
}

impl ConvLayer {
    pub fn new(
        cfg: ConvCfg,
        w: &ConvWeights,
        backend: ConvBackend,
        device: &Device,
    ) -> Result<Self> {
        let (kernel, bias) = fold_bn(w);
        let [o, i, kh, kw] = w.kernel_shape;
        let (weights, packed) = match backend {
            ConvBackend::CpuIm2col => (Vec::new(), kernel),
            ConvBackend::Candle => (
                vec![Tensor::from_vec(kernel, (o, i, kh, kw), device)?],
                Vec::new(),
            ),
        };
        let bias_t = Tensor::from_slice(&bias, (1, o, 1, 1), device)?;
        Ok(ConvLayer {
            cfg,
            backend,
            weights,
            packed,
            bias,
            bias_t,
            reduced: None,
        })
    }

    /// Swaps in (or removes) a reduced-precision conv: the seam `quant` plugs into.
    pub fn set_reduced(&mut self, reduced: Option<crate::quant::QuantConv>) {
        self.reduced = reduced;
    }

    pub fn take_reduced(&mut self) -> Option<crate::quant::QuantConv> {
        self.reduced.take()
    }

    pub fn is_reduced(&self) -> bool {
        self.reduced.is_some()
    }

    /// Casts the Candle backend's kernel and bias to `dtype` (reduced precision on CUDA); the
    /// CPU im2col backend stays f32 and has its own reduced seam.
    pub fn cast(&mut self, dtype: candle_core::DType) -> Result<()> {
        if self.backend != ConvBackend::Candle {
            return Err(candle_core::Error::Msg(format!(
                "compute dtype {dtype:?} needs the Candle conv backend"
            )));
        }
        for w in self.weights.iter_mut() {
            *w = w.to_dtype(dtype)?;
        }
        self.bias_t = self.bias_t.to_dtype(dtype)?;
        Ok(())
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.backend {
            ConvBackend::CpuIm2col => self.forward_cpu(x),
            ConvBackend::Candle => {
                let c = &self.cfg;
                let y = x.conv2d(&self.weights[0], c.pad, c.stride, 1, c.groups)?;
                apply_tensor(c.activation, &y.broadcast_add(&self.bias_t)?)
            }
        }
    }

    fn forward_cpu(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(q) = &self.reduced {
            let (mut out, [b, o, ho, wo]) = q.forward_nchw(x)?;
            self.bias_activate(&mut out, ho * wo);
            return Tensor::from_vec(out, (b, o, ho, wo), x.device());
        }
        let (b, cin, h, w) = x.dims4()?;
        let c = &self.cfg;
        let (k, s, p, g) = (c.size, c.stride, c.pad, c.groups);
        let ho = (h + 2 * p - k) / s + 1;
        let wo = (w + 2 * p - k) / s + 1;
        let n = ho * wo;
        let (cg, og) = (cin / g, c.filters / g);
        let kk = cg * k * k;
        let threads = candle_core::utils::get_num_threads();
        // Start from the bias and let the GEMM accumulate onto it: the epilogue is then only the
        // activation, and the buffer's first write is useful work (no zero fill).
        let mut out = Vec::with_capacity(b * c.filters * n);
        for o in 0..b * c.filters {
            out.resize(out.len() + n, self.bias[o % c.filters]);
        }
        with_f32(x, |data| {
            for bi in 0..b {
                for gi in 0..g {
                    let start = (bi * cin + gi * cg) * h * w;
                    let src = data.get(start..start + cg * h * w).ok_or_else(|| {
                        candle_core::Error::Msg(format!("conv input too short for {cin}x{h}x{w}"))
                    })?;
                    let wts = &self.packed[gi * og * kk..(gi + 1) * og * kk];
                    let o0 = (bi * c.filters + gi * og) * n;
                    let dst = &mut out[o0..o0 + og * n];
                    if k == 1 && s == 1 && p == 0 {
                        // 1×1 stride 1: the input planes already are the GEMM's right operand.
                        sgemm((og, n, kk), wts, src, dst, true, threads)?;
                    } else {
                        COL.with_borrow_mut(|col| {
                            im2col(src, cg, h, w, k, s, p, ho, wo, col);
                            sgemm((og, n, kk), wts, col, dst, true, threads)
                        })?;
                    }
                }
            }
            Ok(())
        })?;
        apply_slice(c.activation, &mut out);
        Tensor::from_vec(out, (b, c.filters, ho, wo), x.device())
    }

    /// Adds the folded bias and applies the activation to NCHW values with `n` pixels per map.
    fn bias_activate(&self, out: &mut [f32], n: usize) {
        for (o_abs, chunk) in out.chunks_mut(n).enumerate() {
            let bias = self.bias[o_abs % self.cfg.filters];
            chunk.iter_mut().for_each(|v| *v += bias);
            apply_slice(self.cfg.activation, chunk);
        }
    }
}

/// Unfolds `[c, h, w]` into `[c·k·k, ho·wo]` with zero padding `p`.
#[allow(clippy::too_many_arguments)]
fn im2col(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
    col: &mut Vec<f32>,
) {
    // Every element is written below (padding taps as zeros): no clearing pass over the buffer.
    col.resize(c * k * k * ho * wo, 0.0);
    for ci in 0..c {
        let plane = &src[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = ((ci * k + ky) * k + kx) * ho * wo;
                for oy in 0..ho {
                    let iy = (oy * s + ky) as isize - p as isize;
                    let dst = &mut col[row + oy * wo..row + (oy + 1) * wo];
                    if iy < 0 || iy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src_row = &plane[iy as usize * w..(iy as usize + 1) * w];
                    if s == 1 {
                        // ix = ox + kx - p: valid ox range is contiguous.
                        let lo = p.saturating_sub(kx).min(wo);
                        let hi = (w + p - kx).min(wo).max(lo);
                        dst[..lo].fill(0.0);
                        dst[lo..hi].copy_from_slice(&src_row[lo + kx - p..hi + kx - p]);
                        dst[hi..].fill(0.0);
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * s + kx) as isize - p as isize;
                            *d = if ix >= 0 && (ix as usize) < w {
                                src_row[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::SplitMix64;
    use crate::model::Activation;

    #[allow(clippy::too_many_arguments)]
    fn check(
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        pad: usize,
        groups: usize,
        h: usize,
        w: usize,
    ) {
        let mut rng = SplitMix64::new(11);
        let cfg = ConvCfg {
            batch_normalize: true,
            filters: cout,
            size: k,
            stride: s,
            pad,
            groups,
            activation: Activation::Leaky,
        };
        let n = cout;
        let wts = ConvWeights {
            layer: 0,
            biases: (0..n).map(|_| rng.uniform(-0.1, 0.1)).collect(),
            bn: Some((
                (0..n).map(|_| rng.uniform(0.5, 1.5)).collect(),
                (0..n).map(|_| rng.uniform(-0.1, 0.1)).collect(),
                (0..n).map(|_| rng.uniform(0.5, 1.5)).collect(),
            )),
            kernel: (0..cout * cin / groups * k * k)
                .map(|_| rng.uniform(-0.5, 0.5))
                .collect(),
            kernel_shape: [cout, cin / groups, k, k],
        };
        let x: Vec<f32> = (0..2 * cin * h * w)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let x = Tensor::from_vec(x, (2, cin, h, w), &Device::Cpu).unwrap();
        let a = ConvLayer::new(cfg.clone(), &wts, ConvBackend::CpuIm2col, &Device::Cpu)
            .unwrap()
            .forward(&x)
            .unwrap();
        let b = ConvLayer::new(cfg, &wts, ConvBackend::Candle, &Device::Cpu)
            .unwrap()
            .forward(&x)
            .unwrap();
        assert_eq!(a.dims(), b.dims());
        let d: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-4, "max diff {d}");
    }

    #[test]
    fn im2col_matches_candle_conv2d() {
        check(3, 8, 3, 1, 1, 1, 10, 12);
        check(4, 6, 3, 2, 1, 1, 9, 8);
        check(5, 7, 1, 1, 0, 1, 6, 6);
        check(4, 4, 3, 1, 1, 4, 7, 5); // depthwise
        check(6, 4, 3, 2, 0, 2, 11, 9); // grouped, no padding
    }
}
