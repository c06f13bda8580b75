//! Convolution with BN folded at load (Darknet: scale = γ/(sqrt(var)+1e-6)).

use super::activation::{apply_tensor, bias_act};
use super::sgemm::{grown, row_block, sgemm, with_f32, worth_splitting, SharedOut};
use super::winograd::Output;
use super::ConvBackend;
use crate::model::{ConvCfg, ConvWeights};
use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// im2col and direct-conv scratch shared by every layer run on this thread: grows to the
    /// largest layer once, then is reused frame after frame (no per-layer allocation).
    static COL: RefCell<ConvScratch> = RefCell::new(ConvScratch::default());
    /// The tiled path's im2col block and GEMM result, per thread, reused the same way.
    static TILE: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The longest any thread's tile buffers (im2col, products) have grown.
static TILE_MARKS: [super::sgemm::Mark; 2] = [super::sgemm::Mark::new(), super::sgemm::Mark::new()];

/// Grows this thread's tile buffers to the longest any thread's have grown.
pub(crate) fn warm_thread() {
    let (mut col, mut out) = TILE.take();
    TILE_MARKS[0].warm(&mut col, 0.0);
    TILE_MARKS[1].warm(&mut out, 0.0);
    TILE.set((col, out));
}

/// Values in one tile's im2col block (256 Ki f32 = 1 MiB: inside this CPU's 2 MiB L2 per core
/// next to the tile's output; 128 Ki made the deep layers' tiles one output row of 52 pixels and
/// measured slower, 512 Ki no better).
const TILE_COL_FLOATS: usize = 1 << 18;

/// The CPU f32 conv's reusable buffers: the im2col matrix and the direct kernel's planes.
#[derive(Default)]
pub(crate) struct ConvScratch {
    col: Vec<f32>,
    direct: crate::quant::direct_f32::F32Scratch,
    nchwc: super::nchwc::NchwcScratch,
    winograd: super::winograd::WinogradScratch,
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
    /// The f32 conv straight from padded planes (CPUs with AVX-512; thin inputs, see
    /// `direct_f32::wanted`): replaces im2col + GEMM where present.
    direct: Option<Box<crate::quant::direct_f32::F32Direct>>,
    /// The f32 conv with output channels in the vector lanes (CPUs with AVX-512): replaces
    /// im2col + GEMM where present.
    nchwc: Option<Box<super::nchwc::NchwcConv>>,
    /// 3×3 stride-1 convs by Winograd's F(2×2, 3×3) on the same register tile (CPUs with
    /// AVX-512): replaces im2col + GEMM where present (`nchwc` is then none).
    winograd: Option<Box<super::winograd::WinogradConv>>,
    /// 1×1 stride-1 convs on the register tile that reads the input planes as they lie (no
    /// im2col; CPUs with AVX-512): replaces the GEMM where present.
    pointwise: Option<Box<super::pointwise::PointwiseConv>>,
    /// The same register tile for the products of the convs left to im2col (the stride-2
    /// ones, the thin-input 3×3s), in place of the gemm crate (which packs both operands into
    /// fresh heap buffers on every call): present where the conv may take it (groups 1),
    /// packed on its first run.
    col_tile: Option<std::sync::OnceLock<Option<Box<super::pointwise::PointwiseConv>>>>,
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
    /// `pool_after`: the conv's map is read only by a default 2×2 stride-2 max-pool, which the
    /// planned forward fuses into it where it runs by Winograd; such a conv takes Winograd from
    /// fewer input channels (see `WINOGRAD_MIN_CIN_POOLED`).
    pub fn new(
        cfg: ConvCfg,
        w: &ConvWeights,
        backend: ConvBackend,
        device: &Device,
        pool_after: bool,
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
        // Stride 1 only (it lost on every stride-2 conv); which input widths: `wanted`.
        let direct_shape = cfg.groups == 1 && cfg.stride == 1 && kh == kw;
        let direct = match backend {
            ConvBackend::CpuIm2col if direct_shape && crate::quant::direct_f32::wanted(i) => {
                crate::quant::direct_f32::F32Direct::new(&packed, o, i, kh).map(Box::new)
            }
            _ => None,
        };
        let winograd = match backend {
            ConvBackend::CpuIm2col if kh == kw && winograd_wanted(&cfg, i, o, pool_after) => {
                super::winograd::WinogradConv::new(&packed, (o, i)).map(Box::new)
            }
            _ => None,
        };
        // Packed only where Winograd does not take the conv (it never falls back to it).
        let nchwc = match backend {
            ConvBackend::CpuIm2col
                if winograd.is_none()
                    && cfg.groups == 1
                    && kh == kw
                    && nchwc_wanted(&cfg, i, o) =>
            {
                super::nchwc::NchwcConv::new(&packed, (o, i), (kh, cfg.stride, cfg.pad))
                    .map(Box::new)
            }
            _ => None,
        };
        let pointwise = match backend {
            ConvBackend::CpuIm2col if pointwise_wanted(&cfg, kh, kw) => {
                super::pointwise::PointwiseConv::new(&packed, (o, i)).map(Box::new)
            }
            _ => None,
        };
        let col_tile = match backend {
            ConvBackend::CpuIm2col
                if pointwise.is_none()
                    && winograd.is_none()
                    && nchwc.is_none()
                    && cfg.groups == 1
                    && super::pointwise::available()
                    && std::env::var("KESTREL_COL_TILE").as_deref() != Ok("0") =>
            {
                Some(std::sync::OnceLock::new())
            }
            _ => None,
        };
        Ok(ConvLayer {
            nchwc,
            pointwise,
            col_tile,
            winograd,
            cfg,
            backend,
            weights,
            packed,
            bias,
            bias_t,
            reduced: None,
            direct,
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

    /// The int8 kernel and its bias + activation, where this conv runs int8 (groups 1).
    fn int8(
        &self,
    ) -> Option<(
        &crate::quant::int8::Int8Conv,
        crate::quant::int8::Epilogue<'_>,
    )> {
        let int8 = self.reduced.as_ref()?.int8()?;
        let epi = crate::quant::int8::Epilogue {
            bias: &self.bias,
            activation: self.cfg.activation,
        };
        (self.cfg.groups == 1).then_some((int8, epi))
    }

    fn int8_geom(&self, (cin, h, w): (usize, usize, usize)) -> crate::quant::int8::Int8Geom {
        crate::quant::int8::Int8Geom {
            cin,
            h,
            w,
            size: self.cfg.size,
            stride: self.cfg.stride,
            pad: self.cfg.pad,
        }
    }

    /// Whether this conv runs int8 on the direct kernel (stride 1 or 2).
    pub(crate) fn runs_int8_direct(&self) -> bool {
        self.int8().is_some_and(|(c, _)| c.has_direct()) && self.cfg.stride <= 2
    }

    /// Whether this conv may write its outputs as int8 planes for the next conv: int8 on the
    /// direct kernel, linear or leaky (see `quant::chain`).
    pub(crate) fn can_feed_chain(&self) -> bool {
        use crate::model::Activation;
        self.runs_int8_direct()
            && matches!(self.cfg.activation, Activation::Linear | Activation::Leaky)
    }

    /// The int8 planes this conv reads from the conv before, for an input of `dims` (cin, h,
    /// w); None where it cannot take them.
    pub(crate) fn chain_input(
        &self,
        dims: (usize, usize, usize),
    ) -> Option<crate::quant::chain::PlanesSpec> {
        let (int8, _) = self.int8()?;
        int8.planes_spec(self.int8_geom(dims))
    }

    /// The chained int8 conv (see `quant::chain`) of an input of `dims` (cin, h, w), quantized
    /// with scale `xs`; returns the largest |value| written into planes.
    pub(crate) fn forward_chained(
        &self,
        input: crate::quant::chain::ChainIn,
        xs: f32,
        dims: (usize, usize, usize),
        output: crate::quant::chain::ChainOut,
        scratch: &mut crate::quant::int8::Scratch,
    ) -> Result<f32> {
        let (int8, epi) = self
            .int8()
            .ok_or_else(|| candle_core::Error::Msg("chained conv is not int8".into()))?;
        int8.forward_chained(input, xs, self.int8_geom(dims), output, Some(epi), scratch)
            .map_err(candle_core::Error::Msg)
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
        let dims = x.dims4()?;
        let (ho, wo) = self.out_hw(dims.2, dims.3);
        let mut out = vec![0.0f32; dims.0 * self.cfg.filters * ho * wo];
        with_f32(x, |data| self.forward_into(data, dims, &mut out))?;
        Tensor::from_vec(out, (dims.0, self.cfg.filters, ho, wo), x.device())
    }

    /// Output channels.
    pub fn filters(&self) -> usize {
        self.cfg.filters
    }

    /// Output (height, width) for an `h×w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let c = &self.cfg;
        let (k, s, p) = (c.size, c.stride, c.pad);
        ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1)
    }

    /// The CPU conv of NCHW `src` (`dims` = b, c, h, w) into `dst` (`[b, filters, ho, wo]`, every
    /// value overwritten): the slice form the planned forward runs on its reused buffers.
    pub fn forward_into(
        &self,
        src: &[f32],
        dims: (usize, usize, usize, usize),
        dst: &mut [f32],
    ) -> Result<()> {
        // Taken, not borrowed, across the rayon joins inside (see TILE).
        let mut col = COL.take();
        let done = self.forward_into_col(src, dims, dst, &mut col);
        COL.set(col);
        done
    }

    /// [`forward_into`](Self::forward_into) with the caller's buffers (the planned forward's,
    /// so that no frame grows a pool thread's buffer).
    pub fn forward_into_col(
        &self,
        src: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        dst: &mut [f32],
        scratch: &mut ConvScratch,
    ) -> Result<()> {
        let c = &self.cfg;
        let (ho, wo) = self.out_hw(h, w);
        let n = ho * wo;
        if src.len() < b * cin * h * w || dst.len() < b * c.filters * n {
            return Err(candle_core::Error::Msg(format!(
                "conv {cin}x{h}x{w} -> {}x{ho}x{wo}: buffers of {} and {} values are too short",
                c.filters,
                src.len(),
                dst.len()
            )));
        }
        let out = &mut dst[..b * c.filters * n];
        if let Some(q) = &self.reduced {
            let epilogue = crate::quant::int8::Epilogue {
                bias: &self.bias,
                activation: c.activation,
            };
            if !q.forward_fused(
                src,
                (b, cin, h, w),
                out,
                Some(epilogue),
                &mut scratch.direct,
            )? {
                self.bias_activate(out, n);
            }
            return Ok(());
        }
        if self.forward_kernels(src, (b, cin, h, w), out, scratch, false)? {
            return Ok(());
        }
        let (k, s, p, g) = (c.size, c.stride, c.pad, c.groups);
        let (cg, og) = (cin / g, c.filters / g);
        let kk = cg * k * k;
        let threads = rayon::current_num_threads();
        let geom = Im2col {
            c: cg,
            h,
            w,
            k,
            s,
            p,
            ho,
            wo,
        };
        // Every value of `out` is written by the product (pointwise tile or GEMM, whole or in
        // tiles); bias and activation in its registers, or per row block while it is in cache.
        for bi in 0..b {
            for gi in 0..g {
                let start = (bi * cin + gi * cg) * h * w;
                let src = &src[start..start + cg * h * w];
                let wts = &self.packed[gi * og * kk..(gi + 1) * og * kk];
                let o0 = (bi * c.filters + gi * og) * n;
                let dst = &mut out[o0..o0 + og * n];
                if k == 1 && s == 1 && p == 0 {
                    // 1×1 stride 1: the input planes already are the GEMM's right operand.
                    self.gemm_epilogue(gi * og, (og, n, kk), wts, src, dst, threads)?;
                } else if kk * n > 2 * TILE_COL_FLOATS && n >= 2 * og {
                    // Tiles only where the map outweighs the kernel: each tile's GEMM streams
                    // the whole kernel, so a deep layer on a small map (512→1024 on 32², K =
                    // 4608: kernel as large as the unfolded map) ran 276 GFLOP/s tiled against
                    // 337–342 on the full im2col.
                    self.conv_tiled(gi * og, src, &geom, wts, dst, threads)?;
                } else {
                    let col = im2col(src, &geom, &mut scratch.col, threads);
                    let epi = (&self.bias[..], c.activation);
                    if self
                        .im2col_kernel(wts, (og, kk))
                        .is_some_and(|pw| pw.forward(col, n, dst, epi, false))
                    {
                        continue;
                    }
                    self.gemm_epilogue(gi * og, (og, n, kk), wts, col, dst, threads)?;
                }
            }
        }
        Ok(())
    }

    /// Whether [`forward_pooled_into`](Self::forward_pooled_into) runs: an f32 conv by
    /// Winograd (each output tile is one pooled pixel) whose activation commutes with the
    /// maximum.
    pub(crate) fn pools_2x2(&self) -> bool {
        self.reduced.is_none()
            && self.winograd.is_some()
            && super::winograd::pools_through(self.cfg.activation)
    }

    /// The conv followed by Darknet's 2×2 stride-2 max-pool (default padding) into `dst` =
    /// `[b, cout, ⌈h/2⌉, ⌈w/2⌉]`, the full map never stored; false (nothing written) where
    /// [`pools_2x2`](Self::pools_2x2) does not hold or the buffers do not fit.
    pub(crate) fn forward_pooled_into(
        &self,
        src: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        dst: &mut [f32],
        scratch: &mut ConvScratch,
    ) -> bool {
        let (Some(wg), true) = (&self.winograd, self.pools_2x2()) else {
            return false;
        };
        let (plane, per) = (
            cin * h * w,
            self.cfg.filters * h.div_ceil(2) * w.div_ceil(2),
        );
        if b == 0 || src.len() < b * plane || dst.len() < b * per {
            return false;
        }
        let epi = (&self.bias[..], self.cfg.activation);
        each_image(dst, src, (per, plane, b), |d, img| {
            wg.forward(img, (h, w), d, epi, Output::Pooled, &mut scratch.winograd)
        })
    }

    /// `dst += act(conv(src) + bias)`: the conv with the residual add after it (a `[shortcut]`
    /// whose other input `dst` already holds) fused into its store, on the kernels whose store
    /// can add (Winograd, channels-in-lanes, pointwise over one input chunk, direct f32; linear
    /// or leaky activation). False, with nothing written, where none takes it: the caller then
    /// runs the conv into a buffer of its own and adds. The same bits either way (the add is
    /// the shortcut's one f32 addition of the finished value).
    pub(crate) fn forward_added_into(
        &self,
        src: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        dst: &mut [f32],
        scratch: &mut ConvScratch,
    ) -> Result<bool> {
        let (ho, wo) = self.out_hw(h, w);
        let len = b * self.cfg.filters * ho * wo;
        let fits = src.len() >= b * cin * h * w && dst.len() >= len;
        if !fits || self.reduced.is_some() || !super::nchwc::adds_after(self.cfg.activation) {
            return Ok(false);
        }
        self.forward_kernels(src, (b, cin, h, w), &mut dst[..len], scratch, true)
    }

    /// The conv on this layer's own f32 kernels, image by image (Winograd or channels-in-lanes,
    /// pointwise, direct), bias and activation applied, the results added to `out`'s with
    /// `add`; false where none of them took it. A kernel takes every image of a batch or none
    /// (the same shapes), so an add is never left half done.
    fn forward_kernels(
        &self,
        src: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        out: &mut [f32],
        scratch: &mut ConvScratch,
        add: bool,
    ) -> Result<bool> {
        if self.forward_nchwc(src, (b, cin, h, w), out, scratch, add) {
            return Ok(true);
        }
        if let Some(pw) = &self.pointwise {
            let n = h * w;
            let epi = (&self.bias[..], self.cfg.activation);
            let sizes = (self.cfg.filters * n, cin * n, b);
            if each_image(out, src, sizes, |dst, img| {
                pw.forward(img, n, dst, epi, add)
            }) {
                return Ok(true);
            }
        }
        self.forward_direct(src, (b, cin, h, w), out, &mut scratch.direct, add)
    }

    /// The conv by Winograd or on the channels-in-lanes kernel, image by image, bias and
    /// activation applied; false where this conv has neither or it refused the shapes (then the
    /// GEMM path rewrites every output).
    fn forward_nchwc(
        &self,
        src: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        out: &mut [f32],
        scratch: &mut ConvScratch,
        add: bool,
    ) -> bool {
        let (ho, wo) = self.out_hw(h, w);
        let (plane, per) = (cin * h * w, out.len() / b.max(1));
        let epi = (&self.bias[..], self.cfg.activation);
        if let Some(wg) = &self.winograd {
            let to = if add { Output::Added } else { Output::Map };
            let sc = &mut scratch.winograd;
            return each_image(out, src, (per, plane, b), |dst, img| {
                wg.forward(img, (h, w), dst, epi, to, sc)
            });
        }
        let Some(nc) = &self.nchwc else {
            return false;
        };
        if ho * wo < NCHWC_MIN_PIXELS && !super::nchwc::everywhere() {
            return false;
        }
        each_image(out, src, (per, plane, b), |dst, img| {
            nc.forward(img, (h, w), dst, epi, add, &mut scratch.nchwc)
        })
    }

    /// The conv on the direct f32 kernel, image by image, bias and activation applied; false
    /// (nothing written) where this conv has none or it refused the shapes.
    fn forward_direct(
        &self,
        src: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        out: &mut [f32],
        scratch: &mut crate::quant::direct_f32::F32Scratch,
        add: bool,
    ) -> Result<bool> {
        let Some(d) = &self.direct else {
            return Ok(false);
        };
        let c = &self.cfg;
        let g = crate::quant::int8::Int8Geom {
            cin,
            h,
            w,
            size: c.size,
            stride: c.stride,
            pad: c.pad,
        };
        let epi = crate::quant::int8::Epilogue {
            bias: &self.bias,
            activation: c.activation,
        };
        let (plane, per) = (cin * h * w, out.len() / b.max(1));
        for (bi, dst) in out.chunks_exact_mut(per.max(1)).enumerate().take(b) {
            if !d.forward_fused(
                &src[bi * plane..(bi + 1) * plane],
                g,
                dst,
                (Some(epi), add),
                scratch,
            ) {
                if bi == 0 {
                    return Ok(false);
                }
                return Err(candle_core::Error::Msg(format!(
                    "conv {cin}x{h}x{w}: the direct f32 kernel refused image {bi} of {b}"
                )));
            }
        }
        Ok(true)
    }

    /// A large-map conv in tiles of whole output rows: each tile's im2col block (≤ ~1 MiB)
    /// and GEMM result stay in L2, and bias + activation are applied while copying the tile into
    /// `dst`. The full im2col matrix of an early layer (416² maps) is tens of MB, written once and
    /// read once from DRAM: that traffic, not arithmetic, made these layers the slowest.
    /// The output rows are split in contiguous ranges over up to `threads` rayon tasks.
    fn conv_tiled(
        &self,
        o_first: usize,
        src: &[f32],
        g: &Im2col,
        wts: &[f32],
        dst: &mut [f32],
        threads: usize,
    ) -> Result<()> {
        let m = dst.len() / (g.ho * g.wo).max(1);
        let parts = threads.clamp(1, g.ho.max(1));
        let out = SharedOut::new(&mut dst[..m * g.ho * g.wo]);
        let run = |t: usize| {
            let rows = (t * g.ho / parts, (t + 1) * g.ho / parts);
            // SAFETY: task t writes output rows `rows` of every channel, no other task's.
            unsafe { self.conv_rows(o_first, src, g, wts, rows, (m, out)) }
        };
        if parts == 1 {
            return run(0);
        }
        (0..parts).into_par_iter().try_for_each(run)
    }

    /// Output rows `oy0..oy1` of each of the `m` output channels of `out`.
    ///
    /// # Safety
    /// No other task writes, or holds a slice of, these rows of `out` meanwhile.
    unsafe fn conv_rows(
        &self,
        o_first: usize,
        src: &[f32],
        g: &Im2col,
        wts: &[f32],
        (oy0, oy1): (usize, usize),
        (m, out_all): (usize, SharedOut),
    ) -> Result<()> {
        let kk = g.c * g.k * g.k;
        let n = g.ho * g.wo;
        let rows = (TILE_COL_FLOATS / (kk * g.wo).max(1)).max(1);
        // Taken out of the thread-local rather than borrowed: a rayon worker waiting in a join
        // may run another forward's task on this thread, which must not find it borrowed.
        let (mut col_buf, mut out_buf) = TILE.take();
        let done = (|| {
            let (col, out) = (&mut col_buf, &mut out_buf);
            let mut y = oy0;
            while y < oy1 {
                let y1 = (y + rows).min(oy1);
                let nt = (y1 - y) * g.wo;
                let col = TILE_MARKS[0].grown(col, kk * nt, 0, 0.0);
                for (dst, plane) in col.chunks_mut(g.k * g.k * nt).zip(src.chunks(g.h * g.w)) {
                    im2col_channel(plane, g, (y, y1), dst);
                }
                let epi = (&self.bias[..], self.cfg.activation);
                let dst_rows = (out_all, y * g.wo, n);
                // SAFETY: rows y..y1 of every channel are this task's (the caller's promise).
                let direct = |t: &super::pointwise::PointwiseConv| unsafe {
                    t.forward_serial_into(col, nt, dst_rows, epi)
                };
                if self.im2col_kernel(wts, (m, kk)).is_some_and(direct) {
                    // Bias and activation applied in the tile's registers, stored in place.
                    y = y1;
                    continue;
                }
                let out = TILE_MARKS[1].grown(out, m * nt, 0, 0.0);
                // SAFETY: rows y..y1 of channel o lie inside `out_all` (m·n values) and are
                // this task's (the caller's promise).
                let seg = |o: usize| unsafe { out_all.segment(o * n + y * g.wo, nt) };
                sgemm((m, nt, kk), wts, col, out, false, 1)?;
                for (o, tile) in out.chunks(nt).enumerate() {
                    let bias = self.bias[o_first + o];
                    bias_act(self.cfg.activation, seg(o), Some(tile), bias);
                }
                y = y1;
            }
            Ok(())
        })();
        TILE.set((col_buf, out_buf));
        done
    }

    /// `dst = act(a·b + bias)` for filters `o_first..o_first + m`: split in blocks over up to
    /// `threads` rayon tasks, each running a single-threaded GEMM and then bias and activation
    /// on its own block — blocks of columns (pixels) where the map has more pixels than the conv
    /// has filters, else blocks of rows (filters): each task packs its own part of one operand
    /// and the whole of the other, so the split goes along the larger one. (gemm's own rayon
    /// split was slower on 2 threads than on 1 for prune_0.95, and left the epilogue serial.)
    fn gemm_epilogue(
        &self,
        o_first: usize,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        dst: &mut [f32],
        threads: usize,
    ) -> Result<()> {
        if threads > 1 && n > m && worth_splitting(m, n, k) {
            self.gemm_cols_epilogue(o_first, (m, n, k), a, b, dst, threads);
            return Ok(());
        }
        let rows = row_block(m, n, k, threads);
        let run = |(i, (d, a)): (usize, (&mut [f32], &[f32]))| -> Result<()> {
            sgemm((d.len() / n, n, k), a, b, d, false, 1)?;
            let r0 = o_first + i * rows;
            for (r, plane) in d.chunks_mut(n).enumerate() {
                bias_act(self.cfg.activation, plane, None, self.bias[r0 + r]);
            }
            Ok(())
        };
        let (a, dst) = (&a[..m * k], &mut dst[..m * n]);
        if rows >= m {
            return run((0, (dst, a)));
        }
        dst.par_chunks_mut(rows * n)
            .zip(a.par_chunks(rows * k))
            .enumerate()
            .try_for_each(run)
    }

    /// [`gemm_epilogue`](Self::gemm_epilogue) in blocks of columns (multiples of 16, about two
    /// per thread). The 1×1 convs of yolov3-spp3 (2 threads, alternated runs): 36.6–38.5 →
    /// 32.8–34.9 ms per frame, prune_0.5_0.5's 18.2–20.6 → 15.6–15.9.
    fn gemm_cols_epilogue(
        &self,
        o_first: usize,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        dst: &mut [f32],
        threads: usize,
    ) {
        let out = SharedOut::new(&mut dst[..m * n]);
        let parts = (2 * threads).min(n.div_ceil(64)).max(1);
        let cols = n.div_ceil(parts).div_ceil(16) * 16;
        (0..n.div_ceil(cols)).into_par_iter().for_each(|t| {
            let (c0, c1) = (t * cols, ((t + 1) * cols).min(n));
            // SAFETY: each task has its own column block c0..c1.
            unsafe { super::sgemm::sgemm_cols((m, n, k), (c0, c1), a, b, out) };
            for r in 0..m {
                // SAFETY: row r's columns c0..c1 are this task's (the GEMM above is done).
                let seg = unsafe { out.segment(r * n + c0, c1 - c0) };
                bias_act(self.cfg.activation, seg, None, self.bias[o_first + r]);
            }
        });
    }

    /// The pointwise register tile over this conv's im2col rows (`m` outputs of `kk` values),
    /// packed on first use; None where the conv has none (off AVX-512, groups > 1).
    fn im2col_kernel(
        &self,
        wts: &[f32],
        (m, kk): (usize, usize),
    ) -> Option<&super::pointwise::PointwiseConv> {
        let cell = self.col_tile.as_ref().filter(|_| m == self.cfg.filters)?;
        let pack = || super::pointwise::PointwiseConv::new(wts, (m, kk)).map(Box::new);
        cell.get_or_init(pack).as_deref()
    }

    /// Adds the folded bias and applies the activation to NCHW values with `n` pixels per map.
    fn bias_activate(&self, out: &mut [f32], n: usize) {
        out.par_chunks_mut(n.max(1))
            .enumerate()
            .with_min_len((1 << 14) / n.max(1) + 1)
            .for_each(|(o_abs, chunk)| {
                bias_act(
                    self.cfg.activation,
                    chunk,
                    None,
                    self.bias[o_abs % self.cfg.filters],
                );
            });
    }
}

/// `run(output, input)` on each of the first `b` images (`per` output and `plane` input values
/// each) while it takes them: whether every one was taken.
fn each_image(
    out: &mut [f32],
    src: &[f32],
    (per, plane, b): (usize, usize, usize),
    mut run: impl FnMut(&mut [f32], &[f32]) -> bool,
) -> bool {
    out.chunks_exact_mut(per.max(1))
        .zip(src.chunks_exact(plane.max(1)))
        .take(b)
        .all(|(dst, img)| run(dst, img))
}

/// Output pixels below which a conv chosen for the channels-in-lanes kernel is left to im2col +
/// GEMM: on a 13² map (yolov3-tiny's 512 → 1024) it ran 6.3 ms against the GEMM's 5.9 in the
/// whole net; from 26² up it won.
const NCHWC_MIN_PIXELS: usize = 26 * 26;

/// Input channels from which a 3×3 stride-1 conv runs by Winograd (see [`winograd_wanted`]): the
/// transforms cost per channel what the products save per channel pair, so thin inputs lose.
/// Measured in whole nets on the Xeon of docs/performance.md: yolov3-tiny's 16 → 32 @208² 1.9–2.0
/// ms on the direct f32 kernel, 3.6–3.8 by Winograd; its 32 → 64 @104² 1.9–2.0 ms on the direct
/// channels-in-lanes kernel, 1.7–1.9 by Winograd; yolov3-spp3's 32 → 64 @208² tied (7.6–8.9 ms).
const WINOGRAD_MIN_CIN: usize = 32;

/// Input channels from which a 3×3 stride-1 conv followed by a fused 2×2 max-pool runs by
/// Winograd: with the pool fused (no pool pass, a quarter of the stores) and its transform in
/// L2 band by band, yolov3-tiny's 16 → 32 @208² + pool ran 1.86–1.99 ms against 1.90–1.97 +
/// 0.19 on the direct kernel (whole net 19.0–19.7 → 18.4–19.1 ms); unpooled 16-channel convs
/// (prune_0.95's) lost by Winograd.
const WINOGRAD_MIN_CIN_POOLED: usize = 16;

/// Lanes left empty when `cout` output channels are padded to whole 16-lane registers.
fn register_waste(cout: usize) -> usize {
    cout.div_ceil(16) * 16 - cout
}

/// Whether a conv runs by Winograd's F(2×2, 3×3) (`super::winograd`, on the channels-in-lanes
/// tile kernel, so only where that kernel runs): 3×3 stride-1 pad-1 convs with at least
/// `WINOGRAD_MIN_CIN` input channels, on maps of every size, whose output count wastes at most
/// half of its 16-lane registers: with 2.25× fewer products a padded register still wins over
/// the GEMM, which runs poorly on the pruned nets' narrow outputs (prune_0.95 @416 52.4–57.1 →
/// 49.4–53.3 ms against waste ≤ 1/16; prune_0.5_0.5's 48 → 25 @52² 2.6–2.8 → 1.1–1.5 ms).
/// `KESTREL_WINOGRAD=0` turns it off; `KESTREL_NCHWC=all` too (it puts every conv on the direct
/// channels-in-lanes kernel).
fn winograd_wanted(c: &ConvCfg, cin: usize, cout: usize, pool_after: bool) -> bool {
    let waste = register_waste(cout);
    let min_cin = match pool_after {
        true => WINOGRAD_MIN_CIN_POOLED,
        false => WINOGRAD_MIN_CIN,
    };
    !super::nchwc::everywhere()
        && c.groups == 1
        && c.size == 3
        && c.stride == 1
        && c.pad == 1
        && cin >= min_cin
        && waste * 2 <= cout
        && (cout > ONE_GROUP || pool_after)
}

/// Output channels of one register group of the channels-in-lanes tile (2 × 16 lanes). A conv
/// with no more than that runs its 3×3 on that tile directly rather than by Winograd (unless
/// a pool is fused after it): with one group, every transformed input value feeds 32 outputs
/// only and the products wait on L2 — prune_0.95's 48 → 25 @52² 0.65 ms by Winograd, 0.38
/// direct (48 → 32: 0.55 against 0.42; from 64 outputs on Winograd ties or wins: 48 → 64 0.72
/// against 0.68, 64 → 128 1.19 against 1.49).
const ONE_GROUP: usize = 32;

/// Whether a conv runs on the channels-in-lanes kernel (`super::nchwc`): 3×3 stride-1 convs
/// whose channel counts fill whole 16-lane blocks, from 32 input channels up. Measured on the
/// Xeon of docs/performance.md against im2col + GEMM in whole nets: yolov3-tiny 29.0–29.6 →
/// 27.5–28.1 ms, yolov3-spp3 308–311 → 286–291 ms; the pruned nets tie (few of their convs
/// qualify); stride-2 convs, 1×1 convs, the thin high-resolution first layers and channel
/// counts that leave a block part-empty ran slower on it. `KESTREL_NCHWC=0` turns it off,
/// `KESTREL_NCHWC=all` puts every conv of one group on it (tests, measurements).
fn nchwc_wanted(c: &ConvCfg, cin: usize, cout: usize) -> bool {
    if super::nchwc::everywhere() {
        return true;
    }
    // Output channels padded to whole registers: at most 1/16 of the work wasted, or half of
    // a lone group's (the convs Winograd leaves here, see `ONE_GROUP`).
    let waste = register_waste(cout);
    let fits = waste * 16 <= cout || (cout <= ONE_GROUP && waste * 2 <= cout);
    c.size == 3 && c.stride == 1 && cin >= 32 && fits
}

/// Whether a conv runs on the 1×1 kernel (`super::pointwise`): 1×1 stride-1 unpadded convs of
/// one group (the GEMM's right operand is then the input planes as they are).
fn pointwise_wanted(c: &ConvCfg, kh: usize, kw: usize) -> bool {
    kh == 1 && kw == 1 && c.size == 1 && c.stride == 1 && c.pad == 0 && c.groups == 1
}

/// Geometry of one im2col: input `c×h×w`, kernel `k`, stride `s`, padding `p`, output `ho×wo`.
struct Im2col {
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

/// Unfolds `[c, h, w]` into `[c·k·k, ho·wo]` with zero padding, one input channel per task over up
/// to `threads` rayon workers when the map is large enough to pay for the split.
fn im2col<'a>(src: &[f32], g: &Im2col, col: &'a mut Vec<f32>, threads: usize) -> &'a [f32] {
    /// Output values below which one thread does it all.
    const MIN_SPLIT: usize = 1 << 16;
    let per_channel = g.k * g.k * g.ho * g.wo;
    // Every element is written below (padding taps as zeros): no clearing pass over the buffer.
    let col = grown(col, g.c * per_channel, 0.0);
    let src = &src[..g.c * g.h * g.w];
    if threads > 1 && g.c > 1 && g.c * per_channel >= MIN_SPLIT {
        col.par_chunks_mut(per_channel)
            .zip(src.par_chunks(g.h * g.w))
            .for_each(|(dst, plane)| im2col_channel(plane, g, (0, g.ho), dst));
    } else {
        col.chunks_mut(per_channel)
            .zip(src.chunks(g.h * g.w))
            .for_each(|(dst, plane)| im2col_channel(plane, g, (0, g.ho), dst));
    }
    col
}

/// The `k·k` rows of one input channel for output rows `oy0..oy1` (each row of `col` holds
/// `(oy1 - oy0)·wo` values).
fn im2col_channel(plane: &[f32], g: &Im2col, (oy0, oy1): (usize, usize), col: &mut [f32]) {
    let (h, w, k, s, p, wo) = (g.h, g.w, g.k, g.s, g.p, g.wo);
    let len = (oy1 - oy0) * wo;
    for ky in 0..k {
        for kx in 0..k {
            let row = (ky * k + kx) * len;
            for oy in oy0..oy1 {
                let iy = (oy * s + ky) as isize - p as isize;
                let at = row + (oy - oy0) * wo;
                let dst = &mut col[at..at + wo];
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
                    // ix = ox·s + kx - p: valid for lo ≤ ox < hi, then every s-th input.
                    let lo = p.saturating_sub(kx).div_ceil(s).min(wo);
                    let hi = (w + p - kx).div_ceil(s).min(wo).max(lo);
                    dst[..lo].fill(0.0);
                    if hi > lo {
                        let first = lo * s + kx - p;
                        gather_strided(&mut dst[lo..hi], &src_row[first..], s);
                    }
                    dst[hi..].fill(0.0);
                }
            }
        }
    }
}

/// `dst[i] = src[s·i]`: one im2col row of a stride-`s` conv. Stride 2 in AVX-512 registers
/// (two loads and one two-source permute per 16 values) where the CPU has them: the scalar
/// gather was 31 % of a 32 → 64 stride-2 conv at 416² (as long as its GEMM).
fn gather_strided(dst: &mut [f32], src: &[f32], s: usize) {
    #[cfg(target_arch = "x86_64")]
    let done = if s == 2 && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was found.
        unsafe { gather_even_avx512(dst, src) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (d, &v) in dst[done..]
        .iter_mut()
        .zip(src[done * s..].iter().step_by(s))
    {
        *d = v;
    }
}

/// The even values `src[2i]` into `dst[i]`, 16 at a time while 32 source values remain; returns
/// how many were written.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_even_avx512(dst: &mut [f32], src: &[f32]) -> usize {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut i = 0;
    while i + 16 <= dst.len() && 2 * i + 32 <= src.len() {
        // SAFETY: src[2i..2i + 32] and dst[i..i + 16] are in bounds (loop condition).
        unsafe {
            let a = _mm512_loadu_ps(src.as_ptr().add(2 * i));
            let b = _mm512_loadu_ps(src.as_ptr().add(2 * i + 16));
            _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_permutex2var_ps(a, even, b));
        }
        i += 16;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::SplitMix64;
    use crate::model::Activation;

    #[test]
    fn strided_gather_takes_every_sth_value() {
        let src: Vec<f32> = (0..200).map(|i| i as f32).collect();
        for s in [1usize, 2, 3] {
            for n in [0usize, 1, 15, 16, 17, 31, 33, 64, 66] {
                let len = (n * s).saturating_sub(s - 1).min(src.len());
                let mut dst = vec![f32::NAN; n];
                gather_strided(&mut dst, &src[..len.max(1)], s);
                for (i, &d) in dst.iter().enumerate() {
                    assert_eq!(d, (s * i) as f32, "stride {s}, {n} values, at {i}");
                }
            }
        }
    }

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
        let a = ConvLayer::new(
            cfg.clone(),
            &wts,
            ConvBackend::CpuIm2col,
            &Device::Cpu,
            false,
        )
        .unwrap()
        .forward(&x)
        .unwrap();
        let b = ConvLayer::new(cfg, &wts, ConvBackend::Candle, &Device::Cpu, false)
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
                                        // Large enough for the row-block split and the parallel im2col on ≥ 2 threads.
        check(32, 64, 3, 1, 1, 1, 40, 40);
        check(64, 50, 1, 1, 0, 1, 40, 40);
        check(16, 40, 3, 2, 1, 1, 64, 64);
        // Large maps: the tiled path (several tiles per thread, a short last tile, odd rows).
        check(8, 24, 3, 1, 1, 1, 80, 100);
        check(16, 20, 3, 2, 1, 1, 190, 90);
    }
}
