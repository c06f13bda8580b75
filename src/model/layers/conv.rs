//! Convolution with BN folded at load (Darknet: scale = γ/(sqrt(var)+1e-6)).

use super::activation::{apply_slice, apply_tensor};
use super::ConvBackend;
use crate::model::{ConvCfg, ConvWeights};
use candle_core::{Device, Result, Tensor};

/// A conv layer ready to run: folded weights packed once for the chosen backend.
pub(crate) struct ConvLayer {
    cfg: ConvCfg,
    backend: ConvBackend,
    /// CPU: one `[cout/g, cin/g·k·k]` matrix per group. Candle: one OIHW tensor.
    weights: Vec<Tensor>,
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
        let weights = match backend {
            ConvBackend::CpuIm2col => {
                let og = o / cfg.groups;
                let per_group = og * i * kh * kw;
                (0..cfg.groups)
                    .map(|g| {
                        Tensor::from_slice(
                            &kernel[g * per_group..(g + 1) * per_group],
                            (og, i * kh * kw),
                            &Device::Cpu,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            ConvBackend::Candle => vec![Tensor::from_vec(kernel, (o, i, kh, kw), device)?],
        };
        let bias_t = Tensor::from_slice(&bias, (1, o, 1, 1), device)?;
        Ok(ConvLayer {
            cfg,
            backend,
            weights,
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
        let cg = cin / g;
        let data: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut out = Vec::with_capacity(b * c.filters * n);
        let direct = k == 1 && s == 1 && p == 0;
        let mut col = Vec::new();
        for bi in 0..b {
            for gi in 0..g {
                let start = (bi * cin + gi * cg) * h * w;
                let src = &data[start..start + cg * h * w];
                let cols = if direct {
                    Tensor::from_slice(src, (cg, n), &Device::Cpu)?
                } else {
                    im2col(src, cg, h, w, k, s, p, ho, wo, &mut col);
                    Tensor::from_slice(&col, (cg * k * k, n), &Device::Cpu)?
                };
                let y = self.weights[gi].matmul(&cols)?;
                out.extend(y.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        self.bias_activate(&mut out, n);
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
    col.clear();
    col.resize(c * k * k * ho * wo, 0.0);
    for ci in 0..c {
        let plane = &src[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = ((ci * k + ky) * k + kx) * ho * wo;
                for oy in 0..ho {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let src_row = &plane[iy as usize * w..(iy as usize + 1) * w];
                    let dst = &mut col[row + oy * wo..row + (oy + 1) * wo];
                    if s == 1 {
                        // ix = ox + kx - p: valid ox range is contiguous.
                        let lo = p.saturating_sub(kx);
                        let hi = (w + p - kx).min(wo);
                        if lo < hi {
                            dst[lo..hi].copy_from_slice(&src_row[lo + kx - p..hi + kx - p]);
                        }
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * s + kx) as isize - p as isize;
                            if ix >= 0 && (ix as usize) < w {
                                *d = src_row[ix as usize];
                            }
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
