//! The f32 conv with output channels in the vector lanes: 16 output channels per AVX-512
//! register, input channels blocked by 16 and interleaved per pixel ("NCHWc", the layout ONNX
//! Runtime's MLAS runs its fp32 convs in). Each kernel tap of a block of pixels is read straight
//! from the interleaved input (no im2col matrix, no per-call packing), the weights are packed
//! once at load, and one register tile of 32 channels × 12 pixels (24 accumulators) takes one
//! broadcast per pixel and one vector load per 16 channels for each input channel. (64 channels
//! × 6 pixels, MLAS's shape, ran as fast on one conv in L1 — 86 GMAC/s on one core of the Xeon
//! in docs/performance.md — but slower inside whole nets: twice the weights per chunk in L1.)
//!
//! Work order, per (group of ≤ 32 output channels, band of output pixels): input-channel blocks
//! outermost, so one block's weights (18 KB for a 3×3 kernel) stay in L1 while every pixel of
//! the band uses them; the band's partial sums (≤ 128 KB) stay in L2 between blocks. The last
//! block's sums are transposed into the NCHW output with bias and activation, 16 × 16 at a time.
//! Splitting a block's taps into smaller chunks, and smaller bands, measured slower.

// Off x86_64 there is no kernel: `NchwcConv::new` answers None there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::activation::bias_act;
use super::sgemm::{grown, SharedOut};
use crate::model::Activation;
use rayon::prelude::*;
use std::cell::RefCell;

/// Output channels per register (f32 lanes of a 512-bit vector).
pub(super) const LANES: usize = 16;
/// Registers of output channels per tile (32 channels).
pub(super) const MAX_FB: usize = 2;
/// Input channels per block.
const ICB: usize = 16;
/// Partial sums per band (floats): 128 KB, inside L2 next to the input rows the band reads.
const BAND_FLOATS: usize = 1 << 15;
/// Weights per input-channel chunk (floats): 32 KB, inside L1.
pub(super) const CHUNK_FLOATS: usize = 1 << 13;

thread_local! {
    /// A band's partial sums and its pixels' input offsets, per pool thread, grown once (taken,
    /// not borrowed, across rayon joins, as conv.rs's scratch).
    static PART: RefCell<(Vec<f32>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The longest any thread's band sums and offsets (capacity) have grown.
static MARKS: [super::sgemm::Mark; 2] = [super::sgemm::Mark::new(), super::sgemm::Mark::new()];

/// Grows this thread's band buffers to the longest any thread's have grown.
pub(crate) fn warm_thread() {
    let (mut part, mut offs) = PART.take();
    MARKS[0].warm(&mut part, 0.0);
    MARKS[1].warm_capacity(&mut offs);
    PART.set((part, offs));
}

/// Floats ahead of its weights that a chunk's first register tile prefetches (1 KB). On the
/// 13² maps of yolov3-tiny a chunk's weights serve one to four tiles, and the first met them
/// cold from DRAM (Winograd's 512 → 1024: 32 MB of transformed weights per frame): with the
/// prefetch the net ran 20.1–20.7 → 19.3 ms (512 → 1024 @13² 5.7–6.0 → 4.7–5.1 ms, 256 → 512
/// 1.5–1.6 → 1.3–1.4); 2–4 KB ahead helped less, the other nets did not move; the later tiles
/// find the weights in cache and skip it.
const WEIGHTS_AHEAD: usize = 256;

/// Blocks ahead the one-tap tile prefetches its input lines.
const PREFETCH_BLOCKS: usize = 1;

/// Pixels per register tile: 24 accumulators at two registers of channels (fewer would leave
/// the FMA units waiting on each sum's latency; a group of one register keeps 12).
pub(super) const TILE_PIXELS: usize = 12;

/// The interleaved input's buffer, kept by the caller between calls (the planned forward keeps
/// one per input size): a steady frame allocates nothing.
#[derive(Default)]
pub(crate) struct NchwcScratch {
    input: Vec<f32>,
}

/// A conv's f32 weights packed for the channels-in-lanes kernel.
pub(crate) struct NchwcConv {
    cout: usize,
    cin: usize,
    size: usize,
    stride: usize,
    pad: usize,
    /// Input channels per block: 16, or `cin` when it is smaller (the RGB layer: no 16-wide
    /// padding of a 3-channel map).
    icb: usize,
    cblocks: usize,
    /// Per group of ≤ 32 output channels, `[cb][tap][ic][fb][16]`, groups back to back.
    w: Vec<f32>,
}

/// Geometry of one call, derived once.
struct Geom {
    wp: usize,
    ho: usize,
    wo: usize,
    /// Floats per input-channel block (`hp · wp · icb`).
    cb_stride: usize,
    taps: [usize; 49],
}

impl NchwcConv {
    /// From a BN-folded OIHW kernel (`[cout][cin·size²]`); None where this CPU has no
    /// AVX-512, for kernels above 7×7, strides above 2, or a kernel of the wrong length.
    pub fn new(
        kernel: &[f32],
        (cout, cin): (usize, usize),
        (size, stride, pad): (usize, usize, usize),
    ) -> Option<NchwcConv> {
        let taps = size * size;
        if !available()
            || !(1..=7).contains(&size)
            || !(1..=2).contains(&stride)
            || cout == 0
            || cin == 0
            || kernel.len() != cout * cin * taps
        {
            return None;
        }
        let icb = cin.min(ICB);
        let cblocks = cin.div_ceil(icb);
        let oblocks = cout.div_ceil(LANES);
        let mut w = Vec::with_capacity(oblocks * LANES * cblocks * icb * taps);
        for g0 in (0..oblocks).step_by(MAX_FB) {
            let fb = (oblocks - g0).min(MAX_FB);
            for cb in 0..cblocks {
                // A last, part-filled block keeps only its real channels.
                for t in 0..taps {
                    for ic in 0..icb.min(cin - cb * icb) {
                        let c = cb * icb + ic;
                        for lane in 0..fb * LANES {
                            let o = g0 * LANES + lane;
                            let v = if o < cout {
                                kernel[(o * cin + c) * taps + t]
                            } else {
                                0.0
                            };
                            w.push(v);
                        }
                    }
                }
            }
        }
        Some(NchwcConv {
            cout,
            cin,
            size,
            stride,
            pad,
            icb,
            cblocks,
            w,
        })
    }

    /// Weight floats of one group per full input-channel block.
    fn block_floats(&self, fb: usize) -> usize {
        self.size * self.size * self.icb * fb * LANES
    }

    /// Weight floats of one group (a part-filled last block holds only its channels).
    fn group_floats(&self, fb: usize) -> usize {
        self.size * self.size * self.cin * fb * LANES
    }

    /// The conv of one `[cin, h, w]` map into `dst` = `[cout, ho·wo]` with bias and
    /// activation, on the rayon pool; with `add`, added to what `dst` holds (a residual add
    /// fused into the conv; linear or leaky only). False (nothing written) when the buffers do
    /// not fit the shapes, the map is smaller than the kernel, or `add` comes with another
    /// activation.
    pub fn forward(
        &self,
        src: &[f32],
        (h, w): (usize, usize),
        dst: &mut [f32],
        (bias, act): (&[f32], Activation),
        add: bool,
        scratch: &mut NchwcScratch,
    ) -> bool {
        if add && !adds_after(act) {
            return false;
        }
        let (hp, wp) = (h + 2 * self.pad, w + 2 * self.pad);
        if hp < self.size || wp < self.size || src.len() < self.cin * h * w {
            return false;
        }
        let (ho, wo) = (
            (hp - self.size) / self.stride + 1,
            (wp - self.size) / self.stride + 1,
        );
        let n = ho * wo;
        if dst.len() < self.cout * n || bias.len() < self.cout {
            return false;
        }
        let mut taps = [0usize; 49];
        for ky in 0..self.size {
            for kx in 0..self.size {
                taps[ky * self.size + kx] = (ky * wp + kx) * self.icb;
            }
        }
        let g = Geom {
            wp,
            ho,
            wo,
            cb_stride: hp * wp * self.icb,
            taps,
        };
        let x = grown(&mut scratch.input, self.cblocks * g.cb_stride, 0.0);
        interleave(
            src,
            (h, w),
            (self.cin, self.icb, self.pad),
            (g.wp, g.cb_stride),
            x,
        );
        let x: &[f32] = x;
        let out = SharedOut::new(&mut dst[..self.cout * n]);
        let groups = output_groups(self.cout);
        let threads = rayon::current_num_threads().max(1);
        // Bands: partial sums inside L2, and at least two tasks per thread where the map allows.
        let unit = 2 * TILE_PIXELS;
        let cap = (BAND_FLOATS / (MAX_FB.min(self.cout.div_ceil(LANES)) * LANES)).max(unit);
        let want = n.div_ceil(cap).max((2 * threads).div_ceil(groups));
        let band = n.div_ceil(want.max(1)).div_ceil(unit) * unit;
        let bands = n.div_ceil(band);
        for_each_item(groups * bands, |i| {
            let (gi, bi) = (i / bands, i % bands);
            let p = (bi * band, ((bi + 1) * band).min(n));
            let mut part = PART.take();
            self.band(x, &g, gi, p, &mut part, out, (bias, act, add));
            PART.set(part);
        });
        true
    }

    /// Output pixels `p.0..p.1` of group `gi`: every input-channel chunk over the band, then the
    /// transposed store with bias and activation.
    #[allow(clippy::too_many_arguments)]
    fn band(
        &self,
        x: &[f32],
        g: &Geom,
        gi: usize,
        (p0, p1): (usize, usize),
        (part, offs): &mut (Vec<f32>, Vec<usize>),
        out: SharedOut<'_>,
        epi: (&[f32], Activation, bool),
    ) {
        let fb = group_registers(self.cout, gi);
        let width = fb * LANES;
        // Whole 16-pixel rows for the transposed store (the tiles write `p1 - p0` of them).
        let rows = (p1 - p0).div_ceil(LANES) * LANES;
        let part = MARKS[0].grown(
            part,
            rows * width,
            BAND_FLOATS + 2 * TILE_PIXELS * MAX_FB * LANES,
            0.0,
        );
        let per_block = self.block_floats(fb);
        let group_base: usize = (0..gi)
            .map(|q| self.group_floats(group_registers(self.cout, q)))
            .sum();
        let chunk = (CHUNK_FLOATS / per_block).clamp(1, self.cblocks);
        let taps = &g.taps[..self.size * self.size];
        let s = self.stride;
        // Each pixel's input offset (top-left tap, block 0), once per band.
        offs.clear();
        offs.reserve(BAND_FLOATS / LANES);
        let (mut oy, mut ox) = (p0 / g.wo, p0 % g.wo);
        for _ in p0..p1 {
            offs.push((oy * s * g.wp + ox * s) * self.icb);
            ox += 1;
            if ox == g.wo {
                (oy, ox) = (oy + 1, 0);
            }
        }
        MARKS[1].note(offs.capacity());
        for (cb0, cb1, count) in block_chunks(self.cin, self.icb, chunk) {
            let wlen = (cb1 - cb0) * taps.len() * count * width;
            let src = TileSrc {
                x,
                taps,
                cb_stride: g.cb_stride,
                cbs: (cb0, cb1),
                icb: count,
                w: &self.w[group_base + cb0 * per_block..][..wlen],
                first: cb0 == 0,
            };
            run_tiles(fb, offs, src, part);
        }
        let o0 = gi * MAX_FB * LANES;
        store(part, (o0, fb, self.cout), (p0, p1), g.ho * g.wo, out, epi);
    }
}

/// A band's sums `part` = `[pixel][fb·16]` of output channels `o0..` (of `cout`) into the
/// NCHW output (`n` pixels per channel) at pixels `p0..p1`, channel by channel, with bias and
/// activation, and with `add` added to the values there (only with a linear or leaky
/// activation, see [`adds_after`]). `part` holds whole 16-pixel rows (the rows past `p1` are
/// not read).
pub(super) fn store(
    part: &[f32],
    (o0, fb, cout): (usize, usize, usize),
    (p0, p1): (usize, usize),
    n: usize,
    out: SharedOut<'_>,
    (bias, act, add): (&[f32], Activation, bool),
) {
    assert!(
        !add || adds_after(act),
        "a fused residual add needs a plain activation"
    );
    let width = fb * LANES;
    let len = p1 - p0;
    assert!(
        part.len() >= len.div_ceil(LANES) * LANES * width,
        "nchwc band sums too short"
    );
    let plain = matches!(act, Activation::Leaky | Activation::Linear);
    for k in 0..len.div_ceil(LANES) {
        let cnt = (len - k * LANES).min(LANES);
        for f in 0..fb {
            let lanes = LANES.min(cout.saturating_sub(o0 + f * LANES));
            for (j, v) in transposed(part, width, (k * LANES, f), cnt)
                .iter()
                .enumerate()
                .take(lanes)
            {
                let o = o0 + f * LANES + j;
                // SAFETY: each (output channel, band) belongs to exactly one task, and
                // this borrow ends with the statement.
                let d = unsafe { out.segment(o * n + p0 + k * LANES, cnt) };
                store_row(d, v, bias[o], act, add);
            }
        }
    }
    if !plain {
        let end = (o0 + width).min(cout);
        for (o, &b) in bias.iter().enumerate().take(end).skip(o0) {
            // SAFETY: as above.
            let d = unsafe { out.segment(o * n + p0, len) };
            bias_act(act, d, None, b);
        }
    }
}

/// 16 values of a channel: plus `bias` and leaky (or plain) where `act` is one of those,
/// else as they are (the caller applies the rest); with `add`, added to `d`'s values.
fn store_row(d: &mut [f32], v: &[f32; LANES], bias: f32, act: Activation, add: bool) {
    let leaky = |v: f32| {
        let v = v + bias;
        v.max(0.1 * v)
    };
    // One loop per case: a test of `add` per value kept the loop from vectorizing.
    match (act, add) {
        (Activation::Leaky, false) => d.iter_mut().zip(v).for_each(|(d, &v)| *d = leaky(v)),
        (Activation::Leaky, true) => d.iter_mut().zip(v).for_each(|(d, &v)| *d += leaky(v)),
        (Activation::Linear, false) => d.iter_mut().zip(v).for_each(|(d, &v)| *d = v + bias),
        (Activation::Linear, true) => d.iter_mut().zip(v).for_each(|(d, &v)| *d += v + bias),
        _ => d.copy_from_slice(&v[..d.len()]),
    }
}

/// Whether a conv's residual add can be fused into its store: the activation is applied in
/// the same pass (linear or leaky), so the sum is the finished value plus the residual.
pub(crate) fn adds_after(act: Activation) -> bool {
    matches!(act, Activation::Leaky | Activation::Linear)
}

/// The 16 × 16 block of `part` (`[pixel][width]`) at pixels `p..p + 16`, channels
/// `16f..16f + 16`, transposed: row j = channel 16f + j over the 16 pixels. Pixels from `cnt`
/// on read as zero.
fn transposed(
    part: &[f32],
    width: usize,
    (p, f): (usize, usize),
    cnt: usize,
) -> [[f32; LANES]; LANES] {
    let mut rows = [[0f32; LANES]; LANES];
    for (i, r) in rows.iter_mut().enumerate().take(cnt) {
        r.copy_from_slice(&part[(p + i) * width + f * LANES..][..LANES]);
    }
    transpose16(&mut rows);
    rows
}

/// In-place transpose of a 16 × 16 block (AVX-512 shuffles where the CPU has them).
fn transpose16(m: &mut [[f32; LANES]; LANES]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512F was found.
        unsafe { transpose16_avx512(m) };
        return;
    }
    let copy = *m;
    for (i, row) in m.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = copy[j][i];
        }
    }
}

/// Four rounds of shuffles: 4 × 4 blocks inside each 128-bit lane (unpack, shuffle_ps),
/// then the 4 × 4 grid of 128-bit lanes (two shuffle_f32x4 rounds).
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16_avx512(m: &mut [[f32; LANES]; LANES]) {
    use std::arch::x86_64::*;
    // SAFETY: each row is 16 f32 (64 bytes).
    let r: [__m512; LANES] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(m[i].as_ptr()) });
    // s[g][k], lane L: rows 4g..4g+4 of column 4L + k.
    let mut s = [[_mm512_setzero_ps(); 4]; 4];
    for (g, sg) in s.iter_mut().enumerate() {
        let (a, b, c, d) = (r[4 * g], r[4 * g + 1], r[4 * g + 2], r[4 * g + 3]);
        let (t0, t1) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        let (t2, t3) = (_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
        sg[0] = _mm512_shuffle_ps::<0x44>(t0, t2);
        sg[1] = _mm512_shuffle_ps::<0xEE>(t0, t2);
        sg[2] = _mm512_shuffle_ps::<0x44>(t1, t3);
        sg[3] = _mm512_shuffle_ps::<0xEE>(t1, t3);
    }
    for k in 0..4 {
        let x0 = _mm512_shuffle_f32x4::<0x44>(s[0][k], s[1][k]);
        let x1 = _mm512_shuffle_f32x4::<0xEE>(s[0][k], s[1][k]);
        let x2 = _mm512_shuffle_f32x4::<0x44>(s[2][k], s[3][k]);
        let x3 = _mm512_shuffle_f32x4::<0xEE>(s[2][k], s[3][k]);
        let out = [
            _mm512_shuffle_f32x4::<0x88>(x0, x2),
            _mm512_shuffle_f32x4::<0xDD>(x0, x2),
            _mm512_shuffle_f32x4::<0x88>(x1, x3),
            _mm512_shuffle_f32x4::<0xDD>(x1, x3),
        ];
        for (l, v) in out.iter().enumerate() {
            // SAFETY: row 4l + k is 16 f32.
            unsafe { _mm512_storeu_ps(m[4 * l + k].as_mut_ptr(), *v) };
        }
    }
}

/// `src` `[cin][h][w]` into `x` = `[cb][hp][wp][icb]` (blocks of `cb_stride` floats) with
/// zero padding: `pad` rows and columns before the map, the rest of each block after it, and
/// the lanes past `cin`; one channel block per task.
pub(super) fn interleave(
    src: &[f32],
    (h, w): (usize, usize),
    (cin, icb, pad): (usize, usize, usize),
    (wp, cb_stride): (usize, usize),
    x: &mut [f32],
) {
    let fill = |(cb, xb): (usize, &mut [f32])| {
        let row_floats = wp * icb;
        xb[..pad * row_floats].fill(0.0);
        xb[(pad + h) * row_floats..].fill(0.0);
        for y in 0..h {
            let row = &mut xb[(pad + y) * row_floats..][..row_floats];
            row[..pad * icb].fill(0.0);
            row[(pad + w) * icb..].fill(0.0);
            let inner = &mut row[pad * icb..(pad + w) * icb];
            if icb == LANES {
                interleave_row16(src, (cb * LANES, cin), (h, w, y), inner);
                continue;
            }
            for c in 0..icb {
                let ch = cb * icb + c;
                if ch < cin {
                    let s = &src[(ch * h + y) * w..][..w];
                    for (d, &v) in inner.iter_mut().skip(c).step_by(icb).zip(s) {
                        *d = v;
                    }
                } else {
                    inner.iter_mut().skip(c).step_by(icb).for_each(|d| *d = 0.0);
                }
            }
        }
    };
    if x.len() > cb_stride && x.len() >= 1 << 15 {
        x.par_chunks_mut(cb_stride).enumerate().for_each(fill);
    } else {
        x.chunks_mut(cb_stride).enumerate().for_each(fill);
    }
}

/// Row `y` of channels `c0..c0 + 16` (zeros from `cin` on) into `inner` = `[x][16]`, 16 pixels
/// at a time through a transpose.
fn interleave_row16(
    src: &[f32],
    (c0, cin): (usize, usize),
    (h, w, y): (usize, usize, usize),
    inner: &mut [f32],
) {
    let mut m = [[0f32; LANES]; LANES];
    for x0 in (0..w).step_by(LANES) {
        let cnt = (w - x0).min(LANES);
        for (c, r) in m.iter_mut().enumerate() {
            let ch = c0 + c;
            if ch < cin {
                r[..cnt].copy_from_slice(&src[(ch * h + y) * w + x0..][..cnt]);
            } else {
                r.fill(0.0);
            }
        }
        transpose16(&mut m);
        for (j, r) in m.iter().enumerate().take(cnt) {
            inner[(x0 + j) * LANES..][..LANES].copy_from_slice(r);
        }
    }
}

/// `KESTREL_NCHWC=all`: every conv of one group runs here, whatever its shape (tests,
/// measurements).
pub(crate) fn everywhere() -> bool {
    static ALL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALL.get_or_init(|| std::env::var("KESTREL_NCHWC").as_deref() == Ok("all"))
}

/// Whether this CPU runs the kernel (`KESTREL_NCHWC=0` turns it off).
pub(crate) fn available() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| avx512f_unless("KESTREL_NCHWC"))
}

/// AVX-512F present and the environment variable `var` not `0` (the AVX-512 f32 kernels' switch).
pub(crate) fn avx512f_unless(var: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::env::var(var).as_deref() != Ok("0") && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = var;
        false
    }
}

/// Groups of at most `MAX_FB` registers (32 channels) of `cout` output channels: the unit a
/// task computes.
pub(super) fn output_groups(cout: usize) -> usize {
    cout.div_ceil(LANES).div_ceil(MAX_FB)
}

/// Registers of output channels in group `g` of `cout` channels.
pub(super) fn group_registers(cout: usize, g: usize) -> usize {
    (cout.div_ceil(LANES) - g * MAX_FB).min(MAX_FB)
}

/// Runs `item(0..n)` on the rayon pool, or on this thread where there is one item or one
/// thread (no hand-off to pay for).
pub(super) fn for_each_item(n: usize, item: impl Fn(usize) + Send + Sync) {
    if n <= 1 || rayon::current_num_threads() <= 1 {
        (0..n).for_each(item);
    } else {
        (0..n).into_par_iter().for_each(item);
    }
}

/// The chunks `(cb0, cb1, channels per step)` of `cin` input channels in blocks of `icb`:
/// `chunk` whole blocks at a time, then a part-filled last block as a chunk of its own (its
/// own count of channels per step).
pub(super) fn block_chunks(
    cin: usize,
    icb: usize,
    chunk: usize,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let full = cin / icb;
    let whole = (0..full)
        .step_by(chunk.max(1))
        .map(move |cb0| (cb0, (cb0 + chunk.max(1)).min(full), icb));
    let last = (cin > full * icb).then_some((full, full + 1, cin - full * icb));
    whole.chain(last)
}

/// What every register tile of one chunk reads (see [`Tile`]).
#[derive(Clone, Copy)]
pub(super) struct TileSrc<'a> {
    pub(super) x: &'a [f32],
    pub(super) taps: &'a [usize],
    pub(super) cb_stride: usize,
    pub(super) cbs: (usize, usize),
    pub(super) icb: usize,
    pub(super) w: &'a [f32],
    pub(super) first: bool,
}

/// One chunk over the pixels of `offs` (input offsets) into `part` = `[pixel][fb·16]`, in
/// near-equal register tiles of at most `TILE_PIXELS` (no short remainder left to run on few
/// accumulators).
pub(super) fn run_tiles(fb: usize, offs: &[usize], src: TileSrc<'_>, part: &mut [f32]) {
    let (n, width) = (offs.len(), fb * LANES);
    let mut q = 0;
    while q < n {
        let cnt = (n - q).div_ceil((n - q).div_ceil(TILE_PIXELS));
        let t = Tile {
            x: src.x,
            px: &offs[q..q + cnt],
            taps: src.taps,
            cb_stride: src.cb_stride,
            cbs: src.cbs,
            icb: src.icb,
            w: src.w,
            part: &mut part[q * width..][..cnt * width],
            first: src.first,
            fetch_weights: q == 0,
        };
        run_tile(fb, cnt, t);
        q += cnt;
    }
}

/// One register tile's work: `cnt` pixels (input offsets `px`) × `fb` registers of output
/// channels over input-channel blocks `cbs`.
pub(super) struct Tile<'a> {
    pub(super) x: &'a [f32],
    pub(super) px: &'a [usize],
    pub(super) taps: &'a [usize],
    pub(super) cb_stride: usize,
    pub(super) cbs: (usize, usize),
    /// Input channels per step (16, or a part-filled last block's count).
    pub(super) icb: usize,
    /// The chunk's weights, `[cb][tap][ic][fb·16]`.
    pub(super) w: &'a [f32],
    /// `[pixel][fb·16]` sums: read unless `first`, then written.
    pub(super) part: &'a mut [f32],
    pub(super) first: bool,
    /// The chunk's first tile: its weights come from memory (the later tiles find them in
    /// cache), so fetch them ahead.
    pub(super) fetch_weights: bool,
}

/// Runs the register tile for `fb` registers and `cnt` pixels.
pub(super) fn run_tile(fb: usize, cnt: usize, t: Tile) {
    // Every offset the kernel reads: the last block's last tap of the last pixel, and the
    // chunk's weights; checked once here so the kernel can read without checks.
    let last = t.px.iter().max().copied().unwrap_or(0)
        + (t.cbs.1 - 1) * t.cb_stride
        + t.taps.iter().max().copied().unwrap_or(0)
        + t.icb;
    let wlen = (t.cbs.1 - t.cbs.0) * t.taps.len() * t.icb * fb * LANES;
    assert!(
        last <= t.x.len()
            && wlen <= t.w.len()
            && t.part.len() >= cnt * fb * LANES
            && t.px.len() == cnt,
        "nchwc tile out of range"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let mut t = t;
        macro_rules! by_px {
            ($fb:literal, [$($p:literal)*]) => {
                match cnt {
                    // SAFETY: AVX-512F was found (`available`); the reads are in range
                    // (asserted above).
                    $($p => unsafe { tile::<$fb, $p>(&mut t) },)*
                    _ => unreachable!("tile of {cnt} pixels"),
                }
            };
        }
        match fb {
            1 => by_px!(1, [1 2 3 4 5 6 7 8 9 10 11 12]),
            _ => by_px!(2, [1 2 3 4 5 6 7 8 9 10 11 12]),
        }
    }
}

/// The register tile: `PX` pixels × `FB` · 16 output channels.
///
/// # Safety
/// The CPU has AVX-512F; every read lies in `t.x` and `t.w` and every write in `t.part`
/// (`run_tile` checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // acc[f][j] pairs with the (j, f) offsets.
unsafe fn tile<const FB: usize, const PX: usize>(t: &mut Tile) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); PX]; FB];
    let part = t.part.as_ptr();
    if !t.first {
        for j in 0..PX {
            for (f, af) in acc.iter_mut().enumerate() {
                // SAFETY: (j·FB + f + 1)·16 ≤ PX·FB·16 ≤ part.len() (checked).
                af[j] = unsafe { _mm512_loadu_ps(part.add((j * FB + f) * LANES)) };
            }
        }
    }
    let px: [usize; PX] = std::array::from_fn(|j| t.px[j]);
    let x = t.x.as_ptr();
    let mut wp = t.w.as_ptr();
    for cb in t.cbs.0..t.cbs.1 {
        for &tap in t.taps {
            // SAFETY: offsets below `last` of run_tile.
            let base = unsafe { x.add(cb * t.cb_stride + tap) };
            let mut pix = [base; PX];
            for (p, &o) in pix.iter_mut().zip(&px) {
                // SAFETY: as above.
                *p = unsafe { base.add(o) };
            }
            if t.taps.len() == 1 && cb + PREFETCH_BLOCKS < t.cbs.1 {
                // One tap (Winograd's products): each block's lines are read once, a block's
                // length apart, where no hardware prefetcher follows; fetch ahead.
                for &p in &pix {
                    let ahead = p.wrapping_add(PREFETCH_BLOCKS * t.cb_stride);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                }
            }
            for _ in 0..t.icb {
                if t.fetch_weights {
                    // A prefetch never faults (past the chunk it fetches the next one's).
                    _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(WEIGHTS_AHEAD) as *const i8);
                }
                let mut wv = [_mm512_setzero_ps(); FB];
                for (f, v) in wv.iter_mut().enumerate() {
                    // SAFETY: the chunk holds FB·16 weights per (cb, tap, ic) (checked).
                    *v = unsafe { _mm512_loadu_ps(wp.add(f * LANES)) };
                }
                for (j, p) in pix.iter_mut().enumerate() {
                    // SAFETY: pixel j's channel ic of this block and tap (checked).
                    let b = _mm512_set1_ps(unsafe { **p });
                    for f in 0..FB {
                        acc[f][j] = _mm512_fmadd_ps(wv[f], b, acc[f][j]);
                    }
                    *p = unsafe { p.add(1) };
                }
                wp = unsafe { wp.add(FB * LANES) };
            }
        }
    }
    let part = t.part.as_mut_ptr();
    for j in 0..PX {
        for f in 0..FB {
            // SAFETY: inside part (checked); `t.part` is this tile's exclusive borrow.
            unsafe { _mm512_storeu_ps(part.add((j * FB + f) * LANES), acc[f][j]) };
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
pub(super) mod tests {
    use super::*;
    use crate::model::random::SplitMix64;

    /// Plain direct conv, f64 sums (also the Winograd tests' reference).
    pub(in crate::model::layers) fn reference(
        x: &[f32],
        k: &[f32],
        (cin, h, w): (usize, usize, usize),
        (cout, size, stride, pad): (usize, usize, usize, usize),
    ) -> Vec<f64> {
        let ho = (h + 2 * pad - size) / stride + 1;
        let wo = (w + 2 * pad - size) / stride + 1;
        let mut out = vec![0f64; cout * ho * wo];
        for o in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = 0f64;
                    for c in 0..cin {
                        for ky in 0..size {
                            for kx in 0..size {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let v = x[(c * h + iy as usize) * w + ix as usize] as f64;
                                s += v * k[((o * cin + c) * size + ky) * size + kx] as f64;
                            }
                        }
                    }
                    out[(o * ho + oy) * wo + ox] = s;
                }
            }
        }
        out
    }

    #[test]
    fn nchwc_conv_matches_the_reference_conv() {
        if !available() {
            println!("no AVX-512 here: the NCHWc conv does not run (nothing to compare)");
            return;
        }
        let mut rng = SplitMix64::new(11);
        let mut sc = NchwcScratch::default();
        // Partial channel blocks, 1–4 output registers and partial ones, strides 1 and 2,
        // 1×1 to 5×5, maps narrower than a tile, several chunks (cin 200 with 1×1).
        for (cin, cout, h, w, size, stride, pad) in [
            (3, 16, 34, 30, 3, 1, 1),
            (20, 40, 17, 23, 3, 2, 1),
            (33, 7, 13, 13, 3, 1, 1),
            (8, 70, 11, 9, 5, 1, 2),
            (17, 130, 20, 19, 3, 2, 1),
            (200, 64, 6, 5, 1, 1, 0),
            (16, 255, 4, 3, 1, 1, 0),
            (48, 96, 3, 2, 3, 1, 1),
        ] {
            let kernel: Vec<f32> = (0..cout * cin * size * size)
                .map(|_| rng.uniform(-0.5, 0.5))
                .collect();
            let x: Vec<f32> = (0..cin * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let want: Vec<f32> = reference(&x, &kernel, (cin, h, w), (cout, size, stride, pad))
                .into_iter()
                .map(|v| v as f32)
                .collect();
            let conv = NchwcConv::new(&kernel, (cout, cin), (size, stride, pad)).unwrap();
            let bias: Vec<f32> = (0..cout).map(|o| o as f32 * 0.01 - 0.2).collect();
            for act in [Activation::Linear, Activation::Leaky] {
                let mut got = vec![f32::NAN; want.len() + 3];
                assert!(conv.forward(&x, (h, w), &mut got, (&bias, act), false, &mut sc));
                let n = want.len() / cout;
                for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                    let v = b + bias[i / n];
                    let v = if act == Activation::Leaky && v < 0.0 {
                        0.1 * v
                    } else {
                        v
                    };
                    assert!(
                        (a - v).abs() <= 1e-4 * v.abs().max(1.0),
                        "{cin}->{cout} {h}x{w} k{size}/{stride} at {i}: {a} vs {v}"
                    );
                }
                assert!(
                    got[want.len()..].iter().all(|v| v.is_nan()),
                    "wrote past the end"
                );
                // Added: the same outputs plus what the destination held, bit for bit.
                super::super::assert_adds(&got[..want.len()], |sum| {
                    conv.forward(&x, (h, w), sum, (&bias, act), true, &mut sc)
                });
            }
        }
        // Refusals: a short destination, a map smaller than the kernel, adding after an
        // activation the store does not apply.
        let conv = NchwcConv::new(&[1.0; 9], (1, 1), (3, 1, 0)).unwrap();
        assert!(!conv.forward(
            &[0.0; 16],
            (4, 4),
            &mut [0.0; 3],
            (&[0.0], Activation::Linear),
            false,
            &mut sc
        ));
        assert!(!conv.forward(
            &[0.0; 4],
            (2, 2),
            &mut [0.0; 4],
            (&[0.0], Activation::Linear),
            false,
            &mut sc
        ));
        assert!(!conv.forward(
            &[0.0; 16],
            (4, 4),
            &mut [0.0; 4],
            (&[0.0], Activation::Mish),
            true,
            &mut sc
        ));
    }
}
