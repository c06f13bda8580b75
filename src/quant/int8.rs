//! An int8 convolution that beats f32 on CPUs with AVX-512 VNNI: weights int8 with one scale per
//! output channel, the input map quantized once per call with one scale (dynamic, symmetric,
//! stored as u8 = q + 128), an im2col that packs four consecutive K values per 32-bit lane, and
//! `vpdpbusd` (64 u8×i8 products per instruction) accumulating in i32.
//!
//! Candle's `QMatMul` (Q8_0) computes one dot product per (pixel, output channel) with AVX2 and a
//! float rescale every 32 values, which loses to the f32 GEMM on large convs; this kernel keeps
//! the integers in registers over the whole K. Without VNNI the portable loop gives the same
//! numbers (tests compare them), just slowly, and the per-layer plan then keeps f32.

use super::chain::{ChainIn, ChainOut, PlanesSpec};
use super::direct::{DirectWeights, Run, TileOp};
use crate::model::layers::sgemm::grown;
use rayon::prelude::*;

/// Output pixels per packed block (two 16-lane vectors).
const BLOCK: usize = 32;
/// Output channels per register tile of the kernel.
const ROWS: usize = 8;

/// A conv's weights ready for the int8 kernel.
pub struct Int8Conv {
    cout: usize,
    /// Input channels rounded up to a multiple of 4 (one 32-bit lane).
    cin4: usize,
    /// Reduction length `size² · cin4`, K order (ky, kx, c): channels-last, so that packing copies
    /// whole 4-channel words from a channels-last input.
    k4: usize,
    /// `[cout][k4 / 4]`: four int8 weights per i32 (little-endian).
    w: Vec<i32>,
    /// Per output channel: max|w| / 127.
    scale: Vec<f32>,
    /// Per output channel: Σ w (int8), to remove the +128 offset of the u8 inputs.
    row_sum: Vec<i32>,
    /// Stride-1 and -2 convs without im2col, on AMX or AVX-512 (see `direct::DirectWeights`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    direct: Option<Box<DirectWeights>>,
}

/// What follows the conv on each output channel: `act(v + bias[channel])`.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    pub bias: &'a [f32],
    pub activation: crate::model::Activation,
}

impl Epilogue<'_> {
    pub(crate) fn apply(&self, channel: usize, v: &mut [f32]) {
        crate::model::layers::activation::bias_act(self.activation, v, None, self.bias[channel]);
    }
}

/// What a kernel's 32-bit sums are.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy)]
pub(crate) enum Sums {
    /// i32 sums of u8 (offset by 128) × s8 products: the value is `(sum − offset) · scale`.
    Int8 { offset: i32, scale: f32 },
    /// f32 sums, as bits.
    F32,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl Sums {
    #[inline(always)]
    fn value(self, s: i32) -> f32 {
        match self {
            Sums::Int8 { offset, scale } => (s - offset) as f32 * scale,
            Sums::F32 => f32::from_bits(s as u32),
        }
    }
}

/// How one conv call turns its kernels' sums into finished outputs: for each run,
/// `out[at + i] = act(value(sums[lane + i]) + bias)` of a channel (just the value without an
/// epilogue), in one pass while the sums are in cache. Which loop runs is decided once per call,
/// not per channel row of every block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy)]
pub(crate) struct Finish<'a> {
    epi: Option<Epilogue<'a>>,
    /// AVX-512 present and the activation linear or leaky: the 16-lane loop.
    vector: bool,
    leaky: bool,
    /// The finished values are added to those in the output (a residual add fused into the
    /// conv) rather than stored over them.
    add: bool,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl<'a> Finish<'a> {
    pub(crate) fn new(epi: Option<Epilogue<'a>>) -> Finish<'a> {
        use crate::model::Activation;
        let act = epi.map(|e| e.activation);
        let vector =
            matches!(act, None | Some(Activation::Linear | Activation::Leaky)) && vnni_available();
        Finish {
            epi,
            vector,
            leaky: act == Some(Activation::Leaky),
            add: false,
        }
    }

    /// The same, adding the finished values to the output's when `add`.
    pub(crate) fn adding(self, add: bool) -> Finish<'a> {
        Finish { add, ..self }
    }

    /// Channel `channel`'s row of a block.
    #[inline(always)]
    pub(crate) fn row(
        &self,
        channel: usize,
        sums: &[i32; 32],
        runs: &[Run],
        out: &mut [f32],
        kind: Sums,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.vector {
            let bias = self.epi.map(|e| e.bias[channel]);
            // SAFETY: avx512f was found at run time (`vnni_available` includes it).
            return unsafe { vnni::finish(sums, runs, out, kind, bias, (self.leaky, self.add)) };
        }
        finish_scalar(self.epi, channel, sums, runs, out, (kind, self.add))
    }
}

impl Finish<'_> {
    /// Every channel row of a direct conv's block into its segment (`segs[channel]`), in one
    /// call per block rather than one per row (the per-row call cost as much as the row's
    /// arithmetic on 1×1 convs).
    #[inline(always)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn rows(
        &self,
        b: &super::direct::Block,
        segs: &mut [&mut [f32]],
        kind: impl Fn(usize) -> Sums,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.vector {
            let bias = self.epi.map(|e| e.bias);
            // SAFETY: avx512f was found at run time (`vnni_available` includes it).
            return unsafe { vnni::finish_rows(b, segs, kind, bias, (self.leaky, self.add)) };
        }
        for (r, sums) in b.acc.iter().enumerate().take(b.rows) {
            let c = b.o + r;
            finish_scalar(self.epi, c, sums, b.runs, segs[c], (kind(c), self.add));
        }
    }
}

/// [`Finish::row`] one value at a time, any activation; with `add`, each finished value is
/// added to the output's (a run's at most 32 old values kept aside meanwhile).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn finish_scalar(
    epi: Option<Epilogue>,
    channel: usize,
    sums: &[i32; 32],
    runs: &[Run],
    out: &mut [f32],
    (kind, add): (Sums, bool),
) {
    for r in runs {
        let out = &mut out[r.at..r.at + r.len];
        let sums = &sums[r.lane..r.lane + r.len];
        // The values to add to, kept aside only when adding.
        let mut held = [0f32; 32];
        if add {
            held[..r.len].copy_from_slice(out);
        }
        out.iter_mut()
            .zip(sums)
            .for_each(|(d, &s)| *d = kind.value(s));
        if let Some(e) = epi {
            e.apply(channel, out);
        }
        if add {
            out.iter_mut().zip(&held).for_each(|(o, &h)| *o += h);
        }
    }
}

/// Conv geometry of one call (input plane and kernel).
#[derive(Debug, Clone, Copy)]
pub struct Int8Geom {
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub size: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Int8Geom {
    fn out_hw(&self) -> (usize, usize) {
        let ho = (self.h + 2 * self.pad).saturating_sub(self.size) / self.stride + 1;
        let wo = (self.w + 2 * self.pad).saturating_sub(self.size) / self.stride + 1;
        (ho, wo)
    }
}

/// The first `min(left, 16)` of 16 lanes: a run's next vector, masked at its end.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn lane_mask(left: usize) -> u16 {
    if left >= 16 {
        0xFFFF
    } else {
        (1u16 << left) - 1
    }
}

/// Whether this CPU runs the VNNI kernel (otherwise the portable loop, for correctness only).
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Int8Conv {
    /// Quantizes a BN-folded OIHW f32 kernel (`[cout, cin·size²]`), one symmetric scale per
    /// output channel.
    pub fn new(kernel: &[f32], cout: usize, cin: usize, size: usize) -> Int8Conv {
        let k = cin * size * size;
        let cin4 = cin.div_ceil(4) * 4;
        let k4 = size * size * cin4;
        let mut w = Vec::with_capacity(cout * k4 / 4);
        let mut scale = Vec::with_capacity(cout);
        let mut row_sum = Vec::with_capacity(cout);
        for row in kernel.chunks(k).take(cout) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            let mut q = vec![0i8; k4];
            for c in 0..cin {
                for t in 0..size * size {
                    let v = row[c * size * size + t];
                    q[t * cin4 + c] = (v / s).round().clamp(-127.0, 127.0) as i8;
                }
            }
            row_sum.push(q.iter().map(|&v| v as i32).sum());
            w.extend(
                q.chunks(4)
                    .map(|c| i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])),
            );
            scale.push(s);
        }
        let direct = DirectWeights::new(TileOp::Int8, &w, cout, cin4 / 4, size).map(Box::new);
        Int8Conv {
            cout,
            cin4,
            k4,
            w,
            scale,
            row_sum,
            direct,
        }
    }

    /// Conv without bias of one `[cin, h, w]` plane into `dst` = `[cout, ho·wo]`.
    pub fn forward(&self, plane: &[f32], g: Int8Geom, dst: &mut [f32]) {
        self.forward_fused(plane, g, dst, None)
    }

    /// As [`forward`](Self::forward), then `epilogue` (bias + activation) on each output
    /// while it is still in cache.
    pub fn forward_fused(
        &self,
        plane: &[f32],
        g: Int8Geom,
        dst: &mut [f32],
        epilogue: Option<Epilogue>,
    ) {
        // Taken out of the thread-local, not borrowed: the rayon join below may run another
        // conv's task on this thread, which then finds an empty scratch instead of a RefCell
        // already borrowed.
        let mut scratch = SCRATCH.take();
        self.forward_with(plane, g, dst, &mut scratch, epilogue);
        SCRATCH.set(scratch);
    }

    fn forward_with(
        &self,
        plane: &[f32],
        g: Int8Geom,
        dst: &mut [f32],
        s: &mut Scratch,
        epi: Option<Epilogue>,
    ) {
        let (ho, wo) = g.out_hw();
        let n = ho * wo;
        let max = max_abs(plane);
        let xs = if max > 0.0 { max / 127.0 } else { 1.0 };
        #[cfg(target_arch = "x86_64")]
        if g.stride <= 2
            && self
                .forward_direct(ChainIn::F32(plane), xs, g, ChainOut::map(dst), s, epi)
                .is_some()
        {
            return;
        }
        let use_vnni = vnni_available();
        quantize_hwc(plane, g, self.cin4, xs, use_vnni, s);
        let blocks = n.div_ceil(BLOCK);
        let kq = self.k4 / 4;
        // Grown, never refilled here: `pack` clears each block itself (in parallel), and every
        // tile value is written by `block`.
        let packed = grown(&mut s.packed, blocks * kq * BLOCK, ZERO_WORD);
        pack(&s.hwc, g, self.cin4, packed);
        // One task per block of pixels: [cout][BLOCK] results, then gathered into dst rows.
        let tile_len = self.cout * BLOCK;
        let fin = Finish::new(epi);
        let tiles = grown(&mut s.tiles, blocks * tile_len, 0.0);
        tiles
            .par_chunks_mut(tile_len)
            .zip(packed.par_chunks(kq * BLOCK))
            .for_each(|(tile, xb)| self.block(xb, xs, use_vnni, tile, &fin));
        let tiles = &*tiles;
        dst[..self.cout * n]
            .par_chunks_mut(n)
            .enumerate()
            .with_min_len(8)
            .for_each(|(o, row)| {
                for (b, seg) in row.chunks_mut(BLOCK).enumerate() {
                    let at = b * tile_len + o * BLOCK;
                    seg.copy_from_slice(&tiles[at..at + seg.len()]);
                }
            });
    }

    /// All output channels of one pixel block.
    fn block(&self, xb: &[u32], xs: f32, use_vnni: bool, tile: &mut [f32], fin: &Finish) {
        let kq = self.k4 / 4;
        let mut o = 0;
        while o < self.cout {
            let rows = ROWS.min(self.cout - o);
            let w = &self.w[o * kq..(o + rows) * kq];
            let mut acc = [[0i32; BLOCK]; ROWS];
            if use_vnni {
                #[cfg(target_arch = "x86_64")]
                vnni::tile(xb, w, kq, rows, &mut acc);
            } else {
                portable_tile(xb, w, kq, rows, &mut acc);
            }
            // Each channel's row of the block is one run of all BLOCK pixels in the tile.
            let all = [Run {
                lane: 0,
                len: BLOCK,
                at: 0,
                at2: 0,
            }];
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                let oc = o + r;
                let row = &mut tile[oc * BLOCK..(oc + 1) * BLOCK];
                fin.row(oc, acc_r, &all, row, self.sums(oc, xs));
            }
            o += rows;
        }
    }

    /// The stride-1 or -2 conv straight from padded planes of channel quads (no im2col), on AMX
    /// tiles or AVX-512 registers: from an f32 map (quantized here with scale `xs`) or from
    /// planes the conv before wrote with that scale, into an f32 map or into the next conv's
    /// planes (see `super::chain`). Returns the largest |value| quantized into planes (0 for an
    /// f32 output), or None when the engine refused the buffers (then nothing was written).
    #[cfg(target_arch = "x86_64")]
    fn forward_direct(
        &self,
        input: ChainIn,
        xs: f32,
        g: Int8Geom,
        output: ChainOut,
        s: &mut Scratch,
        epi: Option<Epilogue>,
    ) -> Option<f32> {
        use super::direct::{DirectGeom, Layout, Regions};
        let d = self.direct.as_deref()?;
        let (ho, wo) = g.out_hw();
        let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
        let dg = DirectGeom {
            hp,
            wp,
            ho,
            stride: g.stride,
        };
        let x: &[u32] = match input {
            ChainIn::F32(plane) => {
                let x = grown(&mut s.planes, d.input_words(&dg), ZERO_WORD);
                quantize_planes(plane, g, 1.0 / xs, &dg, x);
                x
            }
            ChainIn::Planes(x) if g.stride == 1 => x,
            // Stride 2 reads phase planes: regrouped from the stride-1 planes the producer wrote.
            ChainIn::Planes(src) => {
                let x = grown(&mut s.planes, d.input_words(&dg), ZERO_WORD);
                let done = super::direct::phase_planes_from(&dg, src, d.words(), ZERO_WORD, x);
                if !done {
                    return None;
                }
                x
            }
        };
        let n = ho * wo;
        let cout = self.cout;
        if let ChainOut {
            map: Some(dst),
            planes: None,
        } = output
        {
            // The plain f32 output: channel by channel.
            let fin = Finish::new(epi);
            return d
                .conv_into(x, &dg, wo, dst, &mut s.segs, |b, segs| {
                    fin.rows(b, segs, |oc| self.sums(oc, xs))
                })
                .then_some(0.0);
        }
        // Planes, and maybe the map too (a plain map returned above).
        let ChainOut { map, planes } = output;
        let p = planes?;
        if map.as_ref().is_some_and(|m| m.len() < cout * n)
            || !p.spec.fits(ho, wo, cout)
            || p.x.len() < p.spec.len
        {
            return None;
        }
        let maps = Regions::new(
            map.map_or(&mut [][..], |m| &mut m[..cout * n]),
            Layout::map(n, wo),
        );
        let layout = Layout {
            len: p.spec.dg.word_stride(),
            row: p.spec.dg.wp,
            oy: p.spec.pad,
            ox: p.spec.pad,
        };
        let quads = Regions::quads(&mut p.x[..cout.div_ceil(4) * layout.len], layout);
        let inv = p.inv;
        let emit = super::chain::Emit::new(epi, inv)?;
        d.conv_regions(x, &dg, wo, (maps, quads), &mut s.segs, |b, maps, quads| {
            emit.block(b, maps, quads, |oc| self.sums(oc, xs))
        })
    }

    /// The conv from `input` (an f32 map, or planes the conv before wrote with scale `xs`)
    /// into `output` (an f32 map, or this conv's outputs quantized with `1 / inv` into the next
    /// conv's planes), bias and activation applied: the chained int8 forward of
    /// `super::chain`. Returns the largest |output| quantized into planes (0 for an f32
    /// output); an error where the direct kernel cannot run this conv or the buffers do not fit.
    pub(crate) fn forward_chained(
        &self,
        input: ChainIn,
        xs: f32,
        g: Int8Geom,
        output: ChainOut,
        epi: Option<Epilogue>,
        scratch: &mut Scratch,
    ) -> Result<f32, String> {
        #[cfg(target_arch = "x86_64")]
        if g.stride <= 2 {
            let done = self.forward_direct(input, xs, g, output, scratch, epi);
            return done.ok_or_else(|| {
                format!(
                    "int8 conv {}x{}x{} k{} s{}: the direct kernel refused its buffers",
                    g.cin, g.h, g.w, g.size, g.stride
                )
            });
        }
        let _ = (input, xs, output, epi, scratch);
        Err(format!(
            "int8 conv {}x{}x{} k{} s{}: chained int8 needs the direct kernel (AMX or AVX-512, \
             stride 1 or 2)",
            g.cin, g.h, g.w, g.size, g.stride
        ))
    }

    /// Whether the direct kernel (AMX or AVX-512) runs this conv's stride-1 and -2 calls.
    pub(crate) fn has_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The planes this conv reads for an input of geometry `g`, when the conv before it may
    /// write them: on the direct kernel, stride 1 or 2 — always stride-1 planes of the padded
    /// map (a stride-2 conv regroups them into its phase planes, `direct::phase_planes_from`).
    pub(crate) fn planes_spec(&self, g: Int8Geom) -> Option<PlanesSpec> {
        let d = self.direct.as_deref()?;
        if !(1..=2).contains(&g.stride) || g.cin.div_ceil(4) * 4 != self.cin4 {
            return None;
        }
        let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
        let dg = super::direct::DirectGeom {
            hp,
            wp,
            ho: (hp + 1).checked_sub(g.size)?,
            stride: 1,
        };
        Some(PlanesSpec {
            dg,
            pad: g.pad,
            len: d.input_words(&dg),
        })
    }

    /// What output channel `oc`'s integer sums are, for an input quantized with scale `xs`: the
    /// u8 inputs' +128 offset to remove, and the product of the two scales.
    pub(super) fn sums(&self, oc: usize, xs: f32) -> Sums {
        Sums::Int8 {
            offset: 128 * self.row_sum[oc],
            scale: xs * self.scale[oc],
        }
    }
}

/// Four u8 zeros (128 = 0 after the offset): padding and unused channels.
pub(crate) const ZERO_WORD: u32 = 0x8080_8080;

/// Buffers reused from call to call (no page faults, no allocation per frame in steady state).
#[derive(Default)]
pub(crate) struct Scratch {
    /// The direct path's padded planes of channel quads.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    planes: Vec<u32>,
    /// The direct path's segment vectors.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    segs: super::direct::SegBanks,
    chw: Vec<u8>,
    hwc: Vec<u32>,
    packed: Vec<u32>,
    tiles: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn refill<T: Copy>(v: &mut Vec<T>, len: usize, value: T) {
    v.clear();
    v.resize(len, value);
}

/// max |x|, written as a compare-select so that it vectorizes (16 lanes where the CPU has
/// AVX-512).
pub(crate) fn max_abs(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was found at run time.
        return unsafe { max_abs_avx512(x) };
    }
    max_abs_portable(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn max_abs_avx512(x: &[f32]) -> f32 {
    max_abs_portable(x)
}

#[inline(always)]
fn max_abs_portable(x: &[f32]) -> f32 {
    let mut m = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for j in 0..16 {
            let a = c[j].abs();
            m[j] = if a > m[j] { a } else { m[j] };
        }
    }
    tail.iter()
        .map(|v| v.abs())
        .chain(m)
        .fold(0f32, |a, b| if b > a { b } else { a })
}

/// u8 = round(x / scale) + 128 over the symmetric int8 range (128 = 0).
fn quantize_into(src: &[f32], inv: f32, dst: &mut [u8]) {
    for (d, v) in dst.iter_mut().zip(src) {
        *d = ((v * inv).clamp(-127.0, 127.0) + 128.5) as u8;
    }
}

/// The input quantized into zero-padded planes of 4-channel words (see `direct::DirectGeom`):
/// every word of `x` is written, padding and channels past `cin` as [`ZERO_WORD`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn quantize_planes(
    plane: &[f32],
    g: Int8Geom,
    inv: f32,
    dg: &super::direct::DirectGeom,
    x: &mut [u32],
) {
    let hw = g.h * g.w;
    let channel = |c: usize| (c < g.cin).then(|| &plane[c * hw..(c + 1) * hw]);
    let dims = (g.h, g.w, g.pad);
    super::direct::fill_planes(dg, dims, g.cin.div_ceil(4), ZERO_WORD, x, |q, y, out| {
        let rows = [4 * q, 4 * q + 1, 4 * q + 2, 4 * q + 3]
            .map(|c| channel(c).map(|c| &c[y * g.w..(y + 1) * g.w]));
        quad_row(rows, inv, out);
    });
}

/// One row of 4-channel words from up to four channel rows (a missing channel is zero).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn quad_row(rows: [Option<&[f32]>; 4], inv: f32, dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if vnni_available() {
        // SAFETY: avx512f + avx512bw were found at run time.
        return unsafe { quad_row_avx512(rows, inv, dst) };
    }
    quad_row_portable(rows, inv, dst)
}

/// 16 pixels per step: each channel scaled, clamped and offset as in [`quantize_into`] (the
/// truncating conversion of `x + 128.5`, exactly what `as u8` does in range), then the four
/// channels shifted into their bytes of the word. (Left to the compiler, the saturating
/// `as u8` of the portable loop became one scalar conversion and byte insert per value.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn quad_row_avx512(rows: [Option<&[f32]>; 4], inv: f32, dst: &mut [u32]) {
    use std::arch::x86_64::*;
    let n = dst.len();
    let full = n / 16 * 16;
    let (scale, lo, hi, half) = (
        _mm512_set1_ps(inv),
        _mm512_set1_ps(-127.0),
        _mm512_set1_ps(127.0),
        _mm512_set1_ps(128.5),
    );
    let zero = _mm512_set1_epi32(128);
    if rows.iter().flatten().any(|r| r.len() < full) {
        return quad_row_portable(rows, inv, dst);
    }
    // Up to `end`, 16 words at a time, the last vector under a mask: where every present row
    // reaches the end of `dst`, the tail too (on 13- and 26-wide maps it is all or 10/26 of every
    // row, and value by value it cost as much as the rest).
    let masked_tail = rows.iter().flatten().all(|r| r.len() >= n);
    let end = if masked_tail { n } else { full };
    for i in (0..end).step_by(16) {
        let m = lane_mask(end - i);
        let mut word = _mm512_setzero_si512();
        for (j, r) in rows.iter().enumerate() {
            let q = match r {
                // SAFETY: the lanes under the mask, i..min(i + 16, end), lie in r (end ≤ full
                // ≤ r.len(), or end = n ≤ r.len(): checked above); masked-off lanes are not read.
                Some(r) => unsafe {
                    let x = _mm512_maskz_loadu_ps(m, r.as_ptr().add(i));
                    let v = _mm512_mul_ps(x, scale);
                    _mm512_cvttps_epi32(_mm512_add_ps(
                        _mm512_min_ps(_mm512_max_ps(v, lo), hi),
                        half,
                    ))
                },
                None => zero,
            };
            word = _mm512_or_si512(word, _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * j as i32)));
        }
        // SAFETY: the lanes under the mask lie in dst (end ≤ dst.len()).
        unsafe { _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(i) as *mut _, m, word) };
    }
    if masked_tail {
        return;
    }
    let tail = rows.map(|r| r.map(|r| &r[full.min(r.len())..]));
    quad_row_portable(tail, inv, &mut dst[full..]);
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn quad_row_portable(rows: [Option<&[f32]>; 4], inv: f32, dst: &mut [u32]) {
    let q = |v: f32| ((v * inv).clamp(-127.0, 127.0) + 128.5) as u8 as u32;
    // Missing channels' bytes start at 128; each present channel is OR-ed in, one plain loop
    // per channel.
    let missing = (0..4)
        .filter(|&j| rows[j].is_none())
        .fold(0u32, |w, j| w | 128 << (8 * j));
    dst.fill(missing);
    for (j, r) in rows.iter().enumerate() {
        if let Some(r) = r {
            for (d, &v) in dst.iter_mut().zip(r.iter()) {
                *d |= q(v) << (8 * j);
            }
        }
    }
}

/// Channels-last `[h][w][cin4 / 4]` words of the quantized input (channels past `cin` = 0).
fn quantize_hwc(plane: &[f32], g: Int8Geom, cin4: usize, scale: f32, vnni: bool, s: &mut Scratch) {
    let inv = 1.0 / scale;
    let hw = g.h * g.w;
    refill(&mut s.chw, cin4 * hw, 128);
    let src = &plane[..g.cin * hw];
    let dst = &mut s.chw[..g.cin * hw];
    if vnni {
        #[cfg(target_arch = "x86_64")]
        vnni::quantize(src, inv, dst);
    } else {
        quantize_into(src, inv, dst);
    }
    let words = cin4 / 4;
    let chw = &s.chw;
    // Channels-last words, pixel ranges over the rayon pool (a byte gather: serial it was as slow
    // as the int8 dot products of the small layers).
    grown(&mut s.hwc, hw * words, 0)
        .par_chunks_mut(words * 1024)
        .enumerate()
        .for_each(|(chunk, out)| {
            for (i, px) in out.chunks_exact_mut(words).enumerate() {
                let p = chunk * 1024 + i;
                for (w4, word) in px.iter_mut().enumerate() {
                    let c = w4 * 4;
                    *word = u32::from_le_bytes([
                        chw[c * hw + p],
                        chw[(c + 1) * hw + p],
                        chw[(c + 2) * hw + p],
                        chw[(c + 3) * hw + p],
                    ]);
                }
            }
        });
}

/// im2col into `[block][K/4][BLOCK pixels]` words, K order (ky, kx, c/4): each tap of a pixel is
/// a run of `cin4 / 4` words copied from the channels-last input; padding stays [`ZERO_WORD`].
fn pack(q: &[u32], g: Int8Geom, cin4: usize, packed: &mut [u32]) {
    let (ho, wo) = g.out_hw();
    let n = ho * wo;
    let words = cin4 / 4;
    let (k, s, p) = (g.size, g.stride as isize, g.pad as isize);
    let block_len = k * k * words * BLOCK;
    packed
        .par_chunks_mut(block_len)
        .enumerate()
        .for_each(|(b, dst)| {
            dst.fill(ZERO_WORD); // padding taps and lanes past the last pixel
            for lane in 0..BLOCK.min(n.saturating_sub(b * BLOCK)) {
                let pix = b * BLOCK + lane;
                let (oy, ox) = ((pix / wo) as isize, (pix % wo) as isize);
                for ky in 0..k {
                    let iy = oy * s + ky as isize - p;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = ox * s + kx as isize - p;
                        if ix < 0 || ix as usize >= g.w {
                            continue;
                        }
                        let src = (iy as usize * g.w + ix as usize) * words;
                        let q0 = (ky * k + kx) * words;
                        for (j, &v) in q[src..src + words].iter().enumerate() {
                            dst[(q0 + j) * BLOCK + lane] = v;
                        }
                    }
                }
            }
        });
}

/// Reference kernel: the same integer sums as the VNNI one, any CPU.
fn portable_tile(xb: &[u32], w: &[i32], kq: usize, rows: usize, acc: &mut [[i32; BLOCK]; ROWS]) {
    for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
        let wr = &w[r * kq..(r + 1) * kq];
        for (q, &wq) in wr.iter().enumerate() {
            let wb = wq.to_le_bytes().map(|b| b as i8 as i32);
            let xq = &xb[q * BLOCK..(q + 1) * BLOCK];
            for (a, x) in acc_r.iter_mut().zip(xq) {
                let xb = x.to_le_bytes();
                *a += (0..4).map(|j| xb[j] as i32 * wb[j]).sum::<i32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{BLOCK, ROWS};
    use std::arch::x86_64::*;

    /// [`super::quantize_into`] compiled for AVX-512, where the clamp and the saturating
    /// conversion vectorize.
    pub(super) fn quantize(src: &[f32], inv: f32, dst: &mut [u8]) {
        // SAFETY: only called when `vnni_available()` found avx512f and avx512bw at run time.
        unsafe { quantize_avx512(src, inv, dst) }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    fn quantize_avx512(src: &[f32], inv: f32, dst: &mut [u8]) {
        let n = src.len().min(dst.len()) / 16 * 16;
        let (scale, lo, hi, half) = (
            _mm512_set1_ps(inv),
            _mm512_set1_ps(-127.0),
            _mm512_set1_ps(127.0),
            _mm512_set1_ps(128.5),
        );
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 ≤ n ≤ both lengths.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(i));
                let q = _mm512_add_ps(
                    _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, scale), lo), hi),
                    half,
                );
                let b = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(q));
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, b);
            }
        }
        super::quantize_into(&src[n..], inv, &mut dst[n..]);
    }

    /// [`super::Finish::row`] for linear and leaky outputs (no bias added without an epilogue, so
    /// that −0 stays −0), 16 lanes at a time (masked at a run's
    /// end): the same operations in the same order as the scalar loop (int subtract, convert,
    /// multiply, add; leaky as max(v, 0.1·v), which equals `v > 0 ? v : 0.1·v` for every
    /// float including −0 and NaN), so the same bits.
    #[target_feature(enable = "avx512f")]
    pub(super) fn finish(
        sums: &[i32; 32],
        runs: &[super::Run],
        out: &mut [f32],
        kind: super::Sums,
        bias: Option<f32>,
        (leaky, add): (bool, bool),
    ) {
        let (b, tenth) = (_mm512_set1_ps(bias.unwrap_or(0.0)), _mm512_set1_ps(0.1));
        for r in runs {
            assert!(r.lane + r.len <= 32 && r.at + r.len <= out.len());
            let mut i = 0;
            while i < r.len {
                let m = super::lane_mask(r.len - i);
                // SAFETY: lanes lane + i.. under the mask end by lane + len ≤ 32 (asserted);
                // outputs at + i.. under the mask end by at + len ≤ out.len() (asserted).
                unsafe {
                    let s = _mm512_maskz_loadu_epi32(m, sums.as_ptr().add(r.lane + i));
                    let v = match kind {
                        super::Sums::Int8 { offset, scale } => _mm512_mul_ps(
                            _mm512_cvtepi32_ps(_mm512_sub_epi32(s, _mm512_set1_epi32(offset))),
                            _mm512_set1_ps(scale),
                        ),
                        super::Sums::F32 => _mm512_castsi512_ps(s),
                    };
                    let mut v = if bias.is_some() {
                        _mm512_add_ps(v, b)
                    } else {
                        v
                    };
                    if leaky {
                        v = _mm512_max_ps(v, _mm512_mul_ps(v, tenth));
                    }
                    let at = out.as_mut_ptr().add(r.at + i);
                    if add {
                        v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), v);
                    }
                    _mm512_mask_storeu_ps(at, m, v);
                }
                i += 16;
            }
        }
    }

    /// [`finish`] for every channel row of a block (see [`super::Finish::rows`]): the same
    /// operations per value, with each run's masks made once for all the rows.
    #[target_feature(enable = "avx512f")]
    pub(super) fn finish_rows(
        b: &super::super::direct::Block,
        segs: &mut [&mut [f32]],
        kind: impl Fn(usize) -> super::Sums,
        bias: Option<&[f32]>,
        (leaky, add): (bool, bool),
    ) {
        let tenth = _mm512_set1_ps(0.1);
        let rows = &b.acc[..b.rows];
        let segs = &mut segs[b.o..b.o + b.rows];
        for run in b.runs {
            assert!(run.lane + run.len <= 32 && segs.iter().all(|s| run.at + run.len <= s.len()));
            let (m0, m1) = (
                super::lane_mask(run.len),
                super::lane_mask(run.len.saturating_sub(16)),
            );
            for (r, (sums, out)) in rows.iter().zip(segs.iter_mut()).enumerate() {
                let c = b.o + r;
                let (offset, scale, f32_sums) = match kind(c) {
                    super::Sums::Int8 { offset, scale } => (offset, scale, false),
                    super::Sums::F32 => (0, 1.0, true),
                };
                let (off, sc) = (_mm512_set1_epi32(offset), _mm512_set1_ps(scale));
                let bv = _mm512_set1_ps(bias.map_or(0.0, |b| b[c]));
                for (i, m) in [(0, m0), (16, m1)] {
                    if m == 0 {
                        break;
                    }
                    // SAFETY: lanes lane + i.. under the mask end by lane + len ≤ 32, outputs
                    // at + i.. by at + len ≤ out.len() (asserted for every row above).
                    unsafe {
                        let s = _mm512_maskz_loadu_epi32(m, sums.as_ptr().add(run.lane + i));
                        let mut v = match f32_sums {
                            false => {
                                _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s, off)), sc)
                            }
                            true => _mm512_castsi512_ps(s),
                        };
                        if bias.is_some() {
                            v = _mm512_add_ps(v, bv);
                        }
                        if leaky {
                            v = _mm512_max_ps(v, _mm512_mul_ps(v, tenth));
                        }
                        let at = out.as_mut_ptr().add(run.at + i);
                        if add {
                            v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), v);
                        }
                        _mm512_mask_storeu_ps(at, m, v);
                    }
                }
            }
        }
    }

    /// `acc[r][lane] = Σ_k x[k][lane]·w[r][k]` with `vpdpbusd`, two 16-lane vectors per row.
    pub(super) fn tile(
        xb: &[u32],
        w: &[i32],
        kq: usize,
        rows: usize,
        acc: &mut [[i32; BLOCK]; ROWS],
    ) {
        assert!(xb.len() >= kq * BLOCK && w.len() >= rows * kq && rows <= ROWS);
        // SAFETY: the caller checked avx512f + avx512vnni at run time (`vnni_available`), and
        // the lengths asserted above bound every load in `tile_vnni`.
        unsafe { tile_vnni(xb, w, kq, rows, acc) }
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn tile_vnni(
        xb: &[u32],
        w: &[i32],
        kq: usize,
        rows: usize,
        acc: &mut [[i32; BLOCK]; ROWS],
    ) {
        let mut a = [[_mm512_setzero_si512(); 2]; ROWS];
        let x = xb.as_ptr();
        for q in 0..kq {
            // SAFETY: q·BLOCK + BLOCK ≤ kq·BLOCK ≤ xb.len() words (asserted by `tile`).
            let (x0, x1) = unsafe {
                (
                    _mm512_loadu_si512(x.add(q * BLOCK) as *const _),
                    _mm512_loadu_si512(x.add(q * BLOCK + 16) as *const _),
                )
            };
            for (r, ar) in a.iter_mut().enumerate().take(rows) {
                let wv = _mm512_set1_epi32(w[r * kq + q]);
                ar[0] = _mm512_dpbusd_epi32(ar[0], x0, wv);
                ar[1] = _mm512_dpbusd_epi32(ar[1], x1, wv);
            }
        }
        for (r, ar) in a.iter().enumerate().take(rows) {
            let dst = acc[r].as_mut_ptr();
            // SAFETY: acc[r] holds 32 i32 = two 64-byte vectors.
            unsafe {
                _mm512_storeu_si512(dst as *mut _, ar[0]);
                _mm512_storeu_si512(dst.add(16) as *mut _, ar[1]);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Direct f32 conv, the reference (also of the bf16 conv's tests).
    pub(crate) fn conv_f32(x: &[f32], k: &[f32], cout: usize, g: Int8Geom) -> Vec<f32> {
        let (ho, wo) = g.out_hw();
        let mut out = vec![0f32; cout * ho * wo];
        for o in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = 0f32;
                    for c in 0..g.cin {
                        for ky in 0..g.size {
                            for kx in 0..g.size {
                                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                                    continue;
                                }
                                let xi = (c * g.h + iy as usize) * g.w + ix as usize;
                                let ki = ((o * g.cin + c) * g.size + ky) * g.size + kx;
                                s += x[xi] * k[ki];
                            }
                        }
                    }
                    out[(o * ho + oy) * wo + ox] = s;
                }
            }
        }
        out
    }

    fn case(cin: usize, cout: usize, h: usize, w: usize, size: usize, stride: usize) {
        let mut seed = (cin * 31 + cout * 7 + h) as u64;
        let g = Int8Geom {
            cin,
            h,
            w,
            size,
            stride,
            pad: size / 2,
        };
        let x: Vec<f32> = (0..cin * h * w).map(|_| lcg(&mut seed)).collect();
        let k: Vec<f32> = (0..cout * cin * size * size)
            .map(|_| lcg(&mut seed))
            .collect();
        let want = conv_f32(&x, &k, cout, g);
        let conv = Int8Conv::new(&k, cout, cin, size);
        let mut got = vec![0f32; want.len()];
        conv.forward(&x, g, &mut got);
        // Without AMX (VNNI or portable) the very same numbers: same quantization, same sums.
        let mut plain = Int8Conv::new(&k, cout, cin, size);
        let had_amx = plain.direct.take().is_some();
        let mut again = vec![0f32; want.len()];
        plain.forward(&x, g, &mut again);
        assert_eq!(got, again, "AMX ({had_amx}) and VNNI/portable differ");
        // Bias and activation fused into the output writes: the same numbers as applied after.
        let bias: Vec<f32> = (0..cout).map(|o| o as f32 * 0.01 - 0.2).collect();
        let epi = Epilogue {
            bias: &bias,
            activation: crate::model::Activation::Leaky,
        };
        let mut fused = vec![f32::NAN; want.len()];
        conv.forward_fused(&x, g, &mut fused, Some(epi));
        let mut after = again.clone();
        for (o, plane) in after.chunks_mut(g.out_hw().0 * g.out_hw().1).enumerate() {
            epi.apply(o, plane);
        }
        assert_eq!(fused, after, "fused epilogue differs");
        // And the direct AMX path did run for stride 1 (it may refuse only malformed buffers).
        #[cfg(target_arch = "x86_64")]
        if conv.direct.is_some() {
            let max = max_abs(&x);
            let mut direct = vec![f32::NAN; want.len()];
            let ran = conv.forward_direct(
                ChainIn::F32(&x),
                max / 127.0,
                g,
                ChainOut::map(&mut direct),
                &mut Scratch::default(),
                None,
            );
            assert!(
                ran.is_some(),
                "direct AMX conv refused cin {cin} cout {cout} {h}x{w} k{size}"
            );
            assert_eq!(direct, again, "direct AMX conv differs");
        }
        let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = want
            .iter()
            .zip(&got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 0.02 * max,
            "cin {cin} cout {cout} {h}x{w} k{size}/{stride}: max err {err} of {max}"
        );
        // The portable loop and the VNNI kernel give the very same integers.
        let kq = conv.k4 / 4;
        let (ho, wo) = g.out_hw();
        let blocks = (ho * wo).div_ceil(BLOCK);
        let mut packed = vec![ZERO_WORD; blocks * kq * BLOCK];
        let mut s = Scratch::default();
        quantize_hwc(&x, g, conv.cin4, 0.01, false, &mut s);
        pack(&s.hwc, g, conv.cin4, &mut packed);
        let rows = ROWS.min(cout);
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let (mut a, mut b) = ([[0i32; BLOCK]; ROWS], [[0i32; BLOCK]; ROWS]);
        portable_tile(&packed[..kq * BLOCK], &conv.w, kq, rows, &mut a);
        if vnni_available() {
            #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
            let (mut qa, mut qb) = (vec![0u8; x.len()], vec![0u8; x.len()]);
            quantize_into(&x, 77.0, &mut qa);
            #[cfg(target_arch = "x86_64")]
            vnni::quantize(&x, 77.0, &mut qb);
            assert_eq!(qa, qb);
            #[cfg(target_arch = "x86_64")]
            vnni::tile(&packed[..kq * BLOCK], &conv.w, kq, rows, &mut b);
            assert_eq!(a, b);
        }
    }

    /// The vector epilogue writes the scalar one's bits: linear, leaky and none, int8 and f32
    /// sums, −0 and NaN among them, runs ending mid-vector.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_epilogue_matches_the_scalar_one() {
        use crate::model::Activation;
        if !vnni_available() {
            println!("no AVX-512 here: only the scalar epilogue runs (nothing to compare)");
            return;
        }
        let mut seed = 3;
        let mut sums = [0i32; 32];
        for s in sums.iter_mut() {
            *s = (lcg(&mut seed) * 1e6) as i32;
        }
        let runs = [
            Run {
                lane: 0,
                len: 13,
                at: 0,
                ..Run::default()
            },
            Run {
                lane: 15,
                len: 17,
                at: 13,
                ..Run::default()
            },
        ];
        let bias = [0.25f32, -0.5];
        for kind in [
            Sums::Int8 {
                offset: 1000,
                scale: 0.003,
            },
            Sums::F32,
        ] {
            let mut sums = sums;
            if matches!(kind, Sums::F32) {
                sums[1] = (-0.0f32).to_bits() as i32;
                sums[2] = f32::NAN.to_bits() as i32;
                sums[20] = (-3.5f32).to_bits() as i32;
            }
            for act in [None, Some(Activation::Linear), Some(Activation::Leaky)] {
                let epi = act.map(|activation| Epilogue {
                    bias: &bias,
                    activation,
                });
                let (mut want, mut got) = (vec![9f32; 30], vec![7f32; 30]);
                finish_scalar(epi, 1, &sums, &runs, &mut want, (kind, false));
                Finish::new(epi).row(1, &sums, &runs, &mut got, kind);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{act:?}");
                // The whole-block form: channels 0 and 1, the second row's sums reversed.
                let mut acc = [[0i32; 32]; 32];
                acc[0] = sums;
                acc[1] = sums;
                acc[1].reverse();
                let block = super::super::direct::Block {
                    o: 0,
                    rows: 2,
                    acc: &acc,
                    runs: &runs,
                };
                let (mut want, mut got) = (
                    [vec![9f32; 30], vec![9f32; 30]],
                    [vec![7f32; 30], vec![7f32; 30]],
                );
                for (c, w) in want.iter_mut().enumerate() {
                    finish_scalar(epi, c, &acc[c], &runs, w, (kind, false));
                }
                let [g0, g1] = &mut got;
                Finish::new(epi).rows(&block, &mut [&mut g0[..], &mut g1[..]], |_| kind);
                for c in 0..2 {
                    assert_eq!(bits(&got[c]), bits(&want[c]), "{act:?}, rows, channel {c}");
                }
            }
        }
    }

    /// Planes packed into a buffer full of stale words equal planes packed into a fresh one:
    /// every word is written (the stride-1 fill zeroes only the padding).
    #[test]
    fn planes_overwrite_every_word_of_a_reused_buffer() {
        use super::super::direct::DirectGeom;
        let mut seed = 11;
        for (cin, h, w, size, stride, pad) in [
            (5, 7, 9, 3, 1, 1),
            (8, 6, 5, 1, 1, 0),
            (3, 9, 8, 3, 2, 1),
            (6, 5, 7, 5, 1, 2),
        ] {
            let g = Int8Geom {
                cin,
                h,
                w,
                size,
                stride,
                pad,
            };
            let x: Vec<f32> = (0..cin * h * w).map(|_| lcg(&mut seed)).collect();
            let (hp, wp) = (h + 2 * pad, w + 2 * pad);
            let dg = DirectGeom {
                hp,
                wp,
                ho: (hp - size) / stride + 1,
                stride,
            };
            let len = cin.div_ceil(4) * dg.word_stride() + 40;
            let (mut fresh, mut stale) = (vec![ZERO_WORD; len], vec![0xDEAD_BEEF; len]);
            quantize_planes(&x, g, 3.0, &dg, &mut fresh);
            quantize_planes(&x, g, 3.0, &dg, &mut stale);
            let words = cin.div_ceil(4) * dg.word_stride();
            assert_eq!(fresh[..words], stale[..words], "{g:?}");
            assert!(
                fresh[..words].iter().any(|&v| v != ZERO_WORD),
                "{g:?}: nothing packed"
            );
        }
    }

    /// The vector quad packing gives the portable words: tails, missing channels, values
    /// past the clamp, halves.
    #[test]
    fn quad_rows_match_the_portable_packing() {
        let mut seed = 9;
        for n in [0, 1, 15, 16, 17, 40, 67] {
            let rows: Vec<Vec<f32>> = (0..4)
                .map(|j| (0..n).map(|_| lcg(&mut seed) * (j + 1) as f32).collect())
                .collect();
            for missing in [None, Some(0), Some(3)] {
                let r: [Option<&[f32]>; 4] =
                    std::array::from_fn(|j| (missing != Some(j)).then(|| &rows[j][..]));
                let (mut want, mut got) = (vec![1u32; n], vec![2u32; n]);
                quad_row_portable(r, 100.5, &mut want);
                quad_row(r, 100.5, &mut got);
                assert_eq!(got, want, "n = {n}, missing {missing:?}");
            }
        }
    }

    #[test]
    fn int8_conv_is_within_2_percent_of_f32_on_odd_shapes() {
        case(3, 16, 13, 11, 3, 1);
        case(19, 10, 9, 9, 3, 2);
        case(64, 33, 7, 5, 1, 1);
        case(5, 9, 40, 3, 3, 1);
        // Over 1024 pixels: several channels-last chunks and many pixel blocks.
        case(6, 12, 50, 41, 3, 1);
        // Several K steps per tap (150 channels = 38 quads = 3 steps of 13), channel groups
        // past 32 with a short last one, 1×1 over many channels, stride 2 (AMX phase planes;
        // the packed blocks of the VNNI path).
        case(150, 70, 9, 11, 3, 1);
        case(200, 40, 6, 7, 1, 1);
        case(72, 36, 12, 10, 3, 2);
        case(16, 31, 14, 13, 3, 2);
        // Stride 2 without padding (1×1): the other parity of the phase planes' first column.
        case(8, 12, 9, 10, 1, 2);
        case(8, 12, 9, 1, 3, 2);
    }

    /// Small maps with many channel groups: the registers engine splits the channel groups, not
    /// the few pixel blocks, over the threads (evenly and not).
    #[test]
    fn small_maps_split_by_channel_groups_give_the_same_numbers() {
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                case(16, 130, 9, 9, 3, 1);
                case(40, 200, 6, 7, 1, 1);
                case(24, 260, 13, 13, 3, 1);
            });
        }
    }
}
