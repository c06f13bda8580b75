//! 3×3 stride-1 convs by Winograd's minimal filtering F(2×2, 3×3): each 2×2 block of outputs
//! from a 4×4 block of inputs in 16 products per input/output channel pair instead of 36, so
//! the multiply-adds of the layer fall 2.25×. Three steps, channels in the vector lanes as in
//! `super::nchwc` (whose register tile runs the products):
//!
//! 1. input transform, once per layer: the map is interleaved into 16-channel blocks, then each
//!    4×4 input tile (step 2) becomes 16 values `V = Bᵀ d B` (adds only), stored
//!    `[cb][ξ][tile][16]` (blocks an odd number of cache lines apart);
//! 2. per (band of tile rows, run of groups of 32 output channels), for each of the 16
//!    positions ξ, the sums `M_ξ[tile][oc] = Σ_ic V_ξ[tile][ic] · U_ξ[ic][oc]` — a 1×1 conv
//!    over tiles on the NCHWc tile kernel, with `U = G g Gᵀ` packed at load;
//! 3. output transform `Y = Aᵀ M A` (adds only) into the band's pixels, then the NCHW store
//!    with bias and activation.
//!
//! The transform matrices hold only 0, ±1 and ±½, so rounding stays at the level of the direct
//! sum (measured against an f64 reference conv in the tests, and through whole nets against
//! OpenCV DNN in tests/parity_*.rs). `KESTREL_WINOGRAD=0` turns it off.

// Off x86_64 there is no kernel: `WinogradConv::new` answers None there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::nchwc::{
    self, group_registers, output_groups, run_tiles, store, TileSrc, CHUNK_FLOATS, LANES, MAX_FB,
    TILE_PIXELS,
};
use super::sgemm::{grown, SharedOut};
use crate::model::Activation;
use rayon::prelude::*;
use std::cell::RefCell;

/// Transformed values per tile (4 × 4).
const XI: usize = 16;
/// A band's transformed input (floats), at most: 4 MB. Every band streams all the transformed
/// weights (16/9 of the kernel) once, so fewer, larger bands won in whole nets even past L2:
/// on the Xeon of docs/performance.md, tiny's 384→256 @26² 4.6–4.7 ms at 1 MB, 3.5–3.6 at 4 MB
/// (one band), 512→1024 @13² 8.0–9.2 at 1 MB, 6.6–7.8 at 4 MB.
const V_BAND_FLOATS: usize = 1 << 20;
/// Sums per item (floats): 1 MB in L2, for `[group][ξ][tile][32]`.
const SUM_FLOATS: usize = 1 << 18;
/// Input channel blocks up to which a conv whose transformed input outgrows L2
/// (`LOCAL_FROM`) transforms it band by band, each band's into its thread's L2 right before
/// its products, rather than the whole map's first (written to and read back from memory: 5.5
/// MB for yolov3-tiny's 32 → 64 @104², 22 MB for yolov3-spp3's 32 → 64 @208²). A band's
/// transform is redone by every item that runs groups of it, cheap next to the products only
/// where there are few groups per input channel (thin inputs). Whole nets, alternated: spp3's
/// 32 → 64 @208² 6.8–7.2 → 5.3–5.5 ms, its 64 → 128 @104² 4.1–4.2 → 3.8–4.0, tiny's 32 → 64
/// @104² (pool fused) 1.38–1.50 → 1.27–1.35; at 2 blocks the 64-channel inputs lost that.
const LOCAL_MAX_BLOCKS: usize = 4;
/// Transformed-input floats (2 MB, this Xeon's L2 per core) from which `LOCAL_MAX_BLOCKS`
/// applies.
const LOCAL_FROM: usize = 1 << 19;
/// A band's transformed input at most in that case (floats): 512 KB, beside the sums in L2.
const LOCAL_BAND_FLOATS: usize = 1 << 17;

/// Tiles per band at most: 16 sums per tile and output channel, 32 channels → 512 KB of sums.
const MAX_BAND_TILES: usize = 256;

thread_local! {
    /// A band's sums per ξ, its output pixels, and its tiles' offsets, per pool thread, grown
    /// once (taken, not borrowed, across rayon joins).
    static PART: RefCell<BandBuffers> = const {
        RefCell::new(BandBuffers {
            sums: Vec::new(),
            pixels: Vec::new(),
            offs: Vec::new(),
            v: Vec::new(),
        })
    };
}

/// The longest any thread's band buffers (`v`, `sums`, `pixels`) have grown.
static MARKS: [super::sgemm::Mark; 3] = [
    super::sgemm::Mark::new(),
    super::sgemm::Mark::new(),
    super::sgemm::Mark::new(),
];

/// Grows this thread's band buffers to the longest any thread's have grown.
pub(crate) fn warm_thread() {
    let mut bufs = PART.take();
    MARKS[0].warm(&mut bufs.v, 0.0);
    MARKS[1].warm(&mut bufs.sums, 0.0);
    MARKS[2].warm(&mut bufs.pixels, 0.0);
    bufs.offs.reserve(MAX_BAND_TILES);
    PART.set(bufs);
}

#[derive(Default)]
struct BandBuffers {
    sums: Vec<f32>,
    pixels: Vec<f32>,
    offs: Vec<usize>,
    /// The band's transformed input (thin layers on large maps, see `LOCAL_MAX_BLOCKS`).
    v: Vec<f32>,
}

/// Where a call's transformed input comes from: transformed for the whole map before the
/// bands, or by each band from the interleaved input `x` (`[cb][hp][wp][16]`).
enum VSrc<'a> {
    Whole(&'a [f32]),
    Bands {
        x: &'a [f32],
        wp: usize,
        cb_stride: usize,
    },
}

/// The interleaved input and its transform, kept by the caller between calls.
#[derive(Default)]
pub(crate) struct WinogradScratch {
    x: Vec<f32>,
    v: Vec<f32>,
}

/// A 3×3 stride-1 pad-1 conv's weights, transformed and packed.
pub(crate) struct WinogradConv {
    cout: usize,
    cin: usize,
    cblocks: usize,
    /// Per group of ≤ 32 output channels, `[ξ][cb][ic][fb][16]` (a part-filled last block holds
    /// only its channels), groups back to back.
    w: Vec<f32>,
}

/// Geometry of one call.
#[derive(Clone, Copy)]
struct Geom {
    h: usize,
    w: usize,
    /// Tiles down and across.
    th: usize,
    tw: usize,
    /// Each tile's outputs max-pooled into one pixel (Darknet's 2×2 stride-2 max-pool).
    pool: bool,
}

/// Whether `max(act(v + b))` = `act(max(v) + b)` (a non-decreasing activation), so that a
/// pooled tile can take the maximum before bias and activation.
pub(crate) fn pools_through(act: Activation) -> bool {
    matches!(
        act,
        Activation::Linear | Activation::Leaky | Activation::Relu | Activation::Logistic
    )
}

impl Geom {
    fn tiles(&self) -> usize {
        self.th * self.tw
    }

    /// Floats per channel block of the transformed input: `[ξ][tile][16]` and one spare line,
    /// so that consecutive blocks start an odd number of cache lines apart. (At 16 · tiles
    /// lines, a multiple of 4 KB whenever the tiles are, a tile's blocks all fell into the
    /// same L1 sets: more blocks per chunk than the cache has ways.)
    fn block_floats(&self) -> usize {
        (XI * self.tiles() + 1) * LANES
    }
}

/// `G g Gᵀ` of a 3×3 kernel `g` (row-major), as 16 values row-major.
fn transform_kernel(g: &[f32]) -> [f32; XI] {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut gg = [[0f64; 3]; 4];
    for (i, row) in gg.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| G[i][k] * g[k * 3 + j] as f64).sum();
        }
    }
    let mut u = [0f32; XI];
    for i in 0..4 {
        for j in 0..4 {
            u[i * 4 + j] = (0..3).map(|k| gg[i][k] * G[j][k]).sum::<f64>() as f32;
        }
    }
    u
}

impl WinogradConv {
    /// From a BN-folded OIHW 3×3 kernel (`[cout][cin·9]`); None where this CPU has no AVX-512
    /// (see `nchwc::available`), `KESTREL_WINOGRAD=0`, or the kernel has the wrong length.
    #[allow(clippy::needless_range_loop)] // ξ indexes each pair's 16 values.
    pub fn new(kernel: &[f32], (cout, cin): (usize, usize)) -> Option<WinogradConv> {
        if !nchwc::available()
            || !enabled()
            || cout == 0
            || cin == 0
            || kernel.len() != cout * cin * 9
        {
            return None;
        }
        let u: Vec<[f32; XI]> = kernel.chunks_exact(9).map(transform_kernel).collect();
        let cblocks = cin.div_ceil(LANES);
        let oblocks = cout.div_ceil(LANES);
        let mut w = Vec::with_capacity(oblocks * LANES * cin * XI);
        for g0 in (0..oblocks).step_by(MAX_FB) {
            let fb = (oblocks - g0).min(MAX_FB);
            for xi in 0..XI {
                for c in 0..cin {
                    for lane in 0..fb * LANES {
                        let o = g0 * LANES + lane;
                        w.push(if o < cout { u[o * cin + c][xi] } else { 0.0 });
                    }
                }
            }
        }
        Some(WinogradConv {
            cout,
            cin,
            cblocks,
            w,
        })
    }

    /// The conv (3×3, stride 1, pad 1) of one `[cin, h, w]` map into `dst` = `[cout, h·w]`
    /// with bias and activation, on the rayon pool; to [`Output::Pooled`], followed by
    /// Darknet's 2×2 stride-2 max-pool (`dst` = `[cout, ⌈h/2⌉·⌈w/2⌉]`), which is each output
    /// tile's maximum: the full map is never stored; to [`Output::Added`], added to what `dst`
    /// holds. False (nothing written) when the buffers do not fit the shapes, or pooling or
    /// adding is asked with an activation that does not commute with the maximum or is not
    /// applied in the store.
    pub fn forward(
        &self,
        src: &[f32],
        (h, w): (usize, usize),
        dst: &mut [f32],
        (bias, act): (&[f32], Activation),
        to: Output,
        scratch: &mut WinogradScratch,
    ) -> bool {
        let pool = to == Output::Pooled;
        let add = to == Output::Added;
        let n = h * w;
        let g = Geom {
            h,
            w,
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
            pool,
        };
        let out_n = if pool { g.tiles() } else { n };
        if n == 0
            || src.len() < self.cin * n
            || dst.len() < self.cout * out_n
            || bias.len() < self.cout
            || (pool && !pools_through(act))
            || (add && !super::nchwc::adds_after(act))
        {
            return false;
        }
        // Padded so that every 4×4 tile lies inside: one zero row / column before, the rest
        // after.
        let (hp, wp) = (2 * g.th + 2, 2 * g.tw + 2);
        let cb_stride = hp * wp * LANES;
        let x = grown(&mut scratch.x, self.cblocks * cb_stride, 0.0);
        nchwc::interleave(src, (h, w), (self.cin, LANES, 1), (wp, cb_stride), x);
        let x: &[f32] = x;
        let per_block = g.block_floats();
        let local = self.cblocks <= LOCAL_MAX_BLOCKS && self.cblocks * per_block > LOCAL_FROM;
        let v = match local {
            true => VSrc::Bands { x, wp, cb_stride },
            false => {
                let v = grown(&mut scratch.v, self.cblocks * per_block, 0.0);
                let transform = |(cb, vb): (usize, &mut [f32])| {
                    let x = &x[cb * cb_stride..][..cb_stride];
                    transform_block(x, wp, &g, (0, g.th), vb);
                };
                if self.cblocks > 1 {
                    v.par_chunks_mut(per_block).enumerate().for_each(transform);
                } else {
                    v.chunks_mut(per_block).enumerate().for_each(transform);
                }
                VSrc::Whole(v)
            }
        };
        let out = SharedOut::new(&mut dst[..self.cout * out_n]);
        let groups = output_groups(self.cout);
        let threads = rayon::current_num_threads().max(1);
        // Bands of whole tile rows; each item runs `per` groups over one band, so every value
        // of the transformed input brought into cache feeds `per` · 32 output channels (one
        // group alone left the products waiting on memory: 16 values per input pixel).
        let most_floats = if local {
            LOCAL_BAND_FLOATS
        } else {
            V_BAND_FLOATS
        };
        let band_tiles =
            (most_floats / (XI * self.cblocks * LANES)).clamp(TILE_PIXELS, MAX_BAND_TILES);
        let rows = (band_tiles / g.tw).clamp(1, g.th);
        let rows = rows.min(g.th.div_ceil((2 * threads).div_ceil(groups).max(1)));
        let bands = g.th.div_ceil(rows);
        let nt = rows * g.tw;
        // Runs of near-equal group counts, at least two items per thread.
        let most = (SUM_FLOATS / (XI * nt * MAX_FB * LANES)).clamp(1, groups);
        let runs = groups
            .div_ceil(most)
            .max((2 * threads).div_ceil(bands))
            .min(groups);
        let per = groups.div_ceil(runs);
        let runs = groups.div_ceil(per);
        nchwc::for_each_item(runs * bands, |i| {
            let (bi, ri) = (i / runs, i % runs);
            let tr = (bi * rows, ((bi + 1) * rows).min(g.th));
            let gs = (ri * per, ((ri + 1) * per).min(groups));
            let mut bufs = PART.take();
            self.band(&v, &g, gs, tr, &mut bufs, out, (bias, act, add));
            PART.set(bufs);
        });
        true
    }

    /// Tile rows `tr.0..tr.1` of groups `gs.0..gs.1`: the 16 products over every input
    /// channel (each chunk of the input once for all the groups), the output transform, the
    /// store.
    #[allow(clippy::too_many_arguments)]
    fn band(
        &self,
        v: &VSrc,
        g: &Geom,
        (g0, g1): (usize, usize),
        (tr0, tr1): (usize, usize),
        bufs: &mut BandBuffers,
        out: SharedOut<'_>,
        epi: (&[f32], Activation, bool),
    ) {
        let (t0, t1) = (tr0 * g.tw, tr1 * g.tw);
        let nt = t1 - t0;
        // The transformed input the products read: the whole map's (tiles at their index), or
        // this band's, transformed here into this thread's buffer (tiles from 0).
        let (v, tiles, first, block_floats): (&[f32], usize, usize, usize) = match *v {
            VSrc::Whole(v) => (v, g.tiles(), t0, g.block_floats()),
            VSrc::Bands { x, wp, cb_stride } => {
                let per_block = (XI * nt + 1) * LANES;
                let floor = LOCAL_BAND_FLOATS + LOCAL_MAX_BLOCKS * LANES;
                let local = MARKS[0].grown(&mut bufs.v, self.cblocks * per_block, floor, 0.0);
                for (cb, vb) in local.chunks_exact_mut(per_block).enumerate() {
                    let x = &x[cb * cb_stride..][..cb_stride];
                    transform_block(x, wp, g, (tr0, tr1), vb);
                }
                (local, nt, 0, per_block)
            }
        };
        // Sums `[group][ξ][tile][fb·16]`, a group's block of `XI · nt · 32` floats.
        let per_group = XI * nt * MAX_FB * LANES;
        let sums = MARKS[1].grown(&mut bufs.sums, (g1 - g0) * per_group, SUM_FLOATS, 0.0);
        bufs.offs.clear();
        bufs.offs.reserve(MAX_BAND_TILES);
        bufs.offs.extend((first..first + nt).map(|t| t * LANES));
        let offs = &bufs.offs;
        let chunk = (CHUNK_FLOATS / (LANES * MAX_FB * LANES)).clamp(1, self.cblocks);
        for xi in 0..XI {
            let taps = [xi * tiles * LANES];
            for (cb0, cb1, count) in nchwc::block_chunks(self.cin, LANES, chunk) {
                for (gi, gsums) in (g0..g1).zip(sums.chunks_exact_mut(per_group)) {
                    let fb = group_registers(self.cout, gi);
                    let width = fb * LANES;
                    let wxi = gi * MAX_FB * LANES * XI * self.cin + xi * self.cin * width;
                    let src = TileSrc {
                        x: v,
                        taps: &taps,
                        cb_stride: block_floats,
                        cbs: (cb0, cb1),
                        icb: count,
                        w: &self.w[wxi + cb0 * LANES * width..][..(cb1 - cb0) * count * width],
                        first: cb0 == 0,
                    };
                    run_tiles(fb, offs, src, &mut gsums[xi * nt * width..][..nt * width]);
                }
            }
        }
        // The band's output pixels: its rows of the map, or its tiles (one pooled pixel each).
        let ((p0, p1), n) = match g.pool {
            false => ((2 * tr0 * g.w, (2 * tr1).min(g.h) * g.w), g.h * g.w),
            true => ((t0, t1), g.tiles()),
        };
        for (gi, gsums) in (g0..g1).zip(sums.chunks_exact(per_group)) {
            let fb = group_registers(self.cout, gi);
            let width = fb * LANES;
            let pixels = MARKS[2].grown(
                &mut bufs.pixels,
                (p1 - p0).div_ceil(LANES) * LANES * width,
                4 * MAX_BAND_TILES * MAX_FB * LANES,
                0.0,
            );
            untransform_band(gsums, g, (tr0, tr1), width, pixels);
            let group = (gi * MAX_FB * LANES, fb, self.cout);
            store(pixels, group, (p0, p1), n, out, epi);
        }
    }
}

/// What a Winograd conv writes: its map; Darknet's 2×2 stride-2 max-pool of it (each output
/// tile's maximum; the full map never stored); or its map added to what the output holds (a
/// residual add fused into the conv).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Map,
    Pooled,
    Added,
}

/// One interleaved channel block `x` = `[hp][wp][16]` into `vb` = `[ξ][tile][16]` for the tiles
/// of tile rows `rows.0..rows.1` (tile 0 = the first row's first): `V = Bᵀ d B` of every 4×4
/// tile `d` at (2·ty, 2·tx), with
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`.
fn transform_block(x: &[f32], wp: usize, g: &Geom, rows: (usize, usize), vb: &mut [f32]) {
    let tiles = (rows.1 - rows.0) * g.tw;
    assert!(
        rows.0 <= rows.1
            && rows.1 <= g.th
            && x.len() >= (2 * g.th + 2) * wp * LANES
            && vb.len() >= XI * tiles * LANES,
        "winograd input block too short"
    );
    #[cfg(target_arch = "x86_64")]
    if nchwc::available() {
        // SAFETY: AVX-512F was found; the reads and writes are in range (asserted above).
        unsafe { transform_block_avx512(x, wp, g, rows, vb) };
        return;
    }
    transform_block_portable(x, wp, g, rows, vb)
}

/// `transform_block` lane by lane (CPUs without AVX-512; the tests' cross-check).
fn transform_block_portable(x: &[f32], wp: usize, g: &Geom, rows: (usize, usize), vb: &mut [f32]) {
    let tiles = (rows.1 - rows.0) * g.tw;
    let tile_at = |ty: usize, tx: usize| -> [[[f32; LANES]; 4]; 4] {
        std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let o = ((2 * ty + i) * wp + 2 * tx + j) * LANES;
                x[o..o + LANES].try_into().expect("16 lanes")
            })
        })
    };
    for ty in rows.0..rows.1 {
        for tx in 0..g.tw {
            let t = (ty - rows.0) * g.tw + tx;
            let d = tile_at(ty, tx);
            for l in 0..LANES {
                let col = |j: usize| bt([d[0][j][l], d[1][j][l], d[2][j][l], d[3][j][l]]);
                let r: [[f32; 4]; 4] = std::array::from_fn(col); // r[j][i] = (Bᵀ d)[i][j]
                for i in 0..4 {
                    let v = bt([r[0][i], r[1][i], r[2][i], r[3][i]]);
                    for (k, &vk) in v.iter().enumerate() {
                        vb[((i * 4 + k) * tiles + t) * LANES + l] = vk;
                    }
                }
            }
        }
    }
}

/// `Bᵀ v` of four values.
fn bt([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// `transform_block` in AVX-512 registers: 16 loads, 32 adds, 16 stores per tile.
///
/// # Safety
/// The CPU has AVX-512F; `x` and `vb` hold the whole geometry (`transform_block` checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_block_avx512(
    x: &[f32],
    wp: usize,
    g: &Geom,
    rows: (usize, usize),
    vb: &mut [f32],
) {
    use std::arch::x86_64::*;
    let tiles = (rows.1 - rows.0) * g.tw;
    let (xp, vp) = (x.as_ptr(), vb.as_mut_ptr());
    let bt = |[a, b, c, d]: [__m512; 4]| {
        [
            _mm512_sub_ps(a, c),
            _mm512_add_ps(b, c),
            _mm512_sub_ps(c, b),
            _mm512_sub_ps(b, d),
        ]
    };
    for ty in rows.0..rows.1 {
        for tx in 0..g.tw {
            let t = (ty - rows.0) * g.tw + tx;
            let row = |i: usize| -> [__m512; 4] {
                let o = ((2 * ty + i) * wp + 2 * tx) * LANES;
                // SAFETY: rows 2ty..2ty+4, columns 2tx..2tx+4 lie in the padded block.
                std::array::from_fn(|j| unsafe { _mm512_loadu_ps(xp.add(o + j * LANES)) })
            };
            let d = [row(0), row(1), row(2), row(3)];
            // Bᵀ d, column by column: r[i][j].
            let mut r = [[_mm512_setzero_ps(); 4]; 4];
            for j in 0..4 {
                let c = bt([d[0][j], d[1][j], d[2][j], d[3][j]]);
                for i in 0..4 {
                    r[i][j] = c[i];
                }
            }
            for (i, ri) in r.iter().enumerate() {
                for (k, v) in bt(*ri).iter().enumerate() {
                    // SAFETY: ξ < 16, t < tiles.
                    unsafe { _mm512_storeu_ps(vp.add(((i * 4 + k) * tiles + t) * LANES), *v) };
                }
            }
        }
    }
}

/// The band's sums `[ξ][tile][width]` (tiles of rows `tr0..tr1`) into its output pixels
/// `[pixel][width]`, pixel 0 = the band's first: `Y = Aᵀ M A` with
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`; the last row / column of an odd map is dropped.
/// Pooled (`g.pool`): one pixel per tile, the maximum of its outputs inside the map.
fn untransform_band(
    sums: &[f32],
    g: &Geom,
    (tr0, tr1): (usize, usize),
    width: usize,
    pixels: &mut [f32],
) {
    let nt = (tr1 - tr0) * g.tw;
    let rows = (2 * tr1).min(g.h) - 2 * tr0;
    let out_pixels = if g.pool { nt } else { rows * g.w };
    assert!(
        sums.len() >= XI * nt * width
            && pixels.len() >= out_pixels * width
            && width.is_multiple_of(LANES),
        "winograd band buffers too short"
    );
    #[cfg(target_arch = "x86_64")]
    if nchwc::available() {
        // SAFETY: AVX-512F was found; the reads and writes are in range (asserted above).
        unsafe { untransform_band_avx512(sums, g, (tr0, tr1), width, pixels) };
        return;
    }
    untransform_band_portable(sums, g, (tr0, tr1), width, pixels)
}

/// `untransform_band` value by value (CPUs without AVX-512; the tests' cross-check).
fn untransform_band_portable(
    sums: &[f32],
    g: &Geom,
    (tr0, tr1): (usize, usize),
    width: usize,
    pixels: &mut [f32],
) {
    let nt = (tr1 - tr0) * g.tw;
    for ty in tr0..tr1 {
        for tx in 0..g.tw {
            let t = (ty - tr0) * g.tw + tx;
            for c in 0..width {
                let m = |xi: usize| sums[(xi * nt + t) * width + c];
                let s: [[f32; 4]; 2] = [
                    std::array::from_fn(|j| m(j) + m(4 + j) + m(8 + j)),
                    std::array::from_fn(|j| m(4 + j) - m(8 + j) - m(12 + j)),
                ];
                let mut most = f32::NEG_INFINITY;
                for (dy, sy) in s.iter().enumerate() {
                    let y = [sy[0] + sy[1] + sy[2], sy[1] - sy[2] - sy[3]];
                    for (dx, &v) in y.iter().enumerate() {
                        let (oy, ox) = (2 * ty + dy, 2 * tx + dx);
                        if oy < g.h && ox < g.w {
                            match g.pool {
                                false => pixels[((oy - 2 * tr0) * g.w + ox) * width + c] = v,
                                true => most = most.max(v),
                            }
                        }
                    }
                }
                if g.pool {
                    pixels[t * width + c] = most;
                }
            }
        }
    }
}

/// `untransform_band` in AVX-512 registers.
///
/// # Safety
/// The CPU has AVX-512F; the buffers hold the band (`untransform_band` checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // s[row][j] pairs with the column j of M.
unsafe fn untransform_band_avx512(
    sums: &[f32],
    g: &Geom,
    (tr0, tr1): (usize, usize),
    width: usize,
    pixels: &mut [f32],
) {
    use std::arch::x86_64::*;
    let nt = (tr1 - tr0) * g.tw;
    let (sp, pp) = (sums.as_ptr(), pixels.as_mut_ptr());
    for ty in tr0..tr1 {
        for tx in 0..g.tw {
            let t = (ty - tr0) * g.tw + tx;
            for c0 in (0..width).step_by(LANES) {
                // SAFETY: ξ < 16, t < nt, c0 + 16 ≤ width.
                let m = |xi: usize| unsafe { _mm512_loadu_ps(sp.add((xi * nt + t) * width + c0)) };
                let mut s = [[_mm512_setzero_ps(); 4]; 2];
                for j in 0..4 {
                    let (m0, m1, m2, m3) = (m(j), m(4 + j), m(8 + j), m(12 + j));
                    s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                let mut most = _mm512_set1_ps(f32::NEG_INFINITY);
                for (dy, sy) in s.iter().enumerate() {
                    let oy = 2 * ty + dy;
                    if oy >= g.h {
                        continue;
                    }
                    let y = [
                        _mm512_add_ps(_mm512_add_ps(sy[0], sy[1]), sy[2]),
                        _mm512_sub_ps(_mm512_sub_ps(sy[1], sy[2]), sy[3]),
                    ];
                    for (dx, v) in y.iter().enumerate() {
                        let ox = 2 * tx + dx;
                        if ox < g.w && g.pool {
                            most = _mm512_max_ps(most, *v);
                        } else if ox < g.w {
                            let o = ((oy - 2 * tr0) * g.w + ox) * width + c0;
                            // SAFETY: a pixel of the band's rows, c0 + 16 ≤ width.
                            unsafe { _mm512_storeu_ps(pp.add(o), *v) };
                        }
                    }
                }
                if g.pool {
                    // SAFETY: tile t < nt of the band, c0 + 16 ≤ width.
                    unsafe { _mm512_storeu_ps(pp.add(t * width + c0), most) };
                }
            }
        }
    }
}

/// Whether 3×3 stride-1 convs may run here (`KESTREL_WINOGRAD=0` turns it off).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("KESTREL_WINOGRAD").as_deref() != Ok("0"))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::model::random::SplitMix64;

    #[test]
    fn winograd_conv_matches_the_reference_conv() {
        if !nchwc::available() || !enabled() {
            println!("no AVX-512 here (or KESTREL_WINOGRAD=0): nothing to compare");
            return;
        }
        let mut rng = SplitMix64::new(5);
        let mut sc = WinogradScratch::default();
        // Odd and even sides, maps narrower than a tile, part-filled channel blocks in and out,
        // several chunks and bands (cin 300, 40×40).
        for (cin, cout, h, w) in [
            (32, 32, 8, 8),
            (16, 16, 1, 1),
            (20, 40, 13, 13),
            (33, 7, 5, 9),
            (48, 70, 40, 40),
            (300, 64, 6, 7),
            (64, 255, 3, 2),
            // Past LOCAL_FROM with 2 input blocks: transformed band by band.
            (32, 24, 66, 63),
        ] {
            let kernel: Vec<f32> = (0..cout * cin * 9)
                .map(|_| rng.uniform(-0.5, 0.5))
                .collect();
            let x: Vec<f32> = (0..cin * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let want = nchwc::tests::reference(&x, &kernel, (cin, h, w), (cout, 3, 1, 1));
            let conv = WinogradConv::new(&kernel, (cout, cin)).unwrap();
            let bias: Vec<f32> = (0..cout).map(|o| o as f32 * 0.01 - 0.2).collect();
            // The error scale of a direct f32 sum of cin·9 products of this size.
            let tol = 1e-6 * (cin * 9) as f64;
            for act in [Activation::Linear, Activation::Leaky] {
                let mut got = vec![f32::NAN; want.len() + 3];
                assert!(conv.forward(&x, (h, w), &mut got, (&bias, act), Output::Map, &mut sc));
                let n = h * w;
                let finish = |o: usize, v: f64| {
                    let v = v + bias[o] as f64;
                    if act == Activation::Leaky && v < 0.0 {
                        0.1 * v
                    } else {
                        v
                    }
                };
                let want: Vec<f64> = (0..want.len()).map(|i| finish(i / n, want[i])).collect();
                for (i, (&a, &v)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a as f64 - v).abs() <= tol * v.abs().max(1.0),
                        "{cin}->{cout} {h}x{w} at {i}: {a} vs {v}"
                    );
                }
                assert!(
                    got[want.len()..].iter().all(|v| v.is_nan()),
                    "wrote past the end"
                );
                // Added: the same outputs plus what the destination held, bit for bit.
                super::super::assert_adds(&got[..want.len()], |sum| {
                    conv.forward(&x, (h, w), sum, (&bias, act), Output::Added, &mut sc)
                });
                // Pooled: Darknet's 2×2 stride-2 max-pool of the same outputs (windows
                // clipped at the bottom and right of odd maps).
                let (ph, pw) = (h.div_ceil(2), w.div_ceil(2));
                let mut got = vec![f32::NAN; cout * ph * pw + 3];
                assert!(conv.forward(&x, (h, w), &mut got, (&bias, act), Output::Pooled, &mut sc));
                for o in 0..cout {
                    for (py, px) in (0..ph).flat_map(|py| (0..pw).map(move |px| (py, px))) {
                        let v = (2 * py..(2 * py + 2).min(h))
                            .flat_map(|y| (2 * px..(2 * px + 2).min(w)).map(move |x| (y, x)))
                            .map(|(y, x)| want[(o * h + y) * w + x])
                            .fold(f64::NEG_INFINITY, f64::max);
                        let a = got[(o * ph + py) * pw + px] as f64;
                        assert!(
                            (a - v).abs() <= tol * v.abs().max(1.0),
                            "pooled {cin}->{cout} {h}x{w} at {o},{py},{px}: {a} vs {v}"
                        );
                    }
                }
                assert!(
                    got[cout * ph * pw..].iter().all(|v| v.is_nan()),
                    "pooled: wrote past the end"
                );
            }
        }
        // The lane-by-lane transforms (CPUs without AVX-512) agree with the vector ones.
        let mut g = Geom {
            h: 7,
            w: 5,
            th: 4,
            tw: 3,
            pool: false,
        };
        let (wp, hp) = (2 * g.tw + 2, 2 * g.th + 2);
        let x: Vec<f32> = (0..hp * wp * LANES)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let (mut fast, mut slow) = (vec![0f32; XI * 12 * LANES], vec![1f32; XI * 12 * LANES]);
        transform_block(&x, wp, &g, (0, g.th), &mut fast);
        transform_block_portable(&x, wp, &g, (0, g.th), &mut slow);
        assert_eq!(fast, slow, "input transforms differ");
        // A band of tile rows: the same values as the whole map's, from tile 0.
        let mut band = vec![0f32; XI * 6 * LANES];
        transform_block(&x, wp, &g, (1, 3), &mut band);
        for xi in 0..XI {
            let whole = &fast[(xi * 12 + 3) * LANES..][..6 * LANES];
            assert_eq!(
                &band[xi * 6 * LANES..][..6 * LANES],
                whole,
                "band transform, ξ {xi}"
            );
        }
        assert_eq!(fast, slow, "input transforms differ");
        let sums: Vec<f32> = (0..XI * 12 * 32).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let (mut fast, mut slow) = (vec![0f32; 7 * 5 * 32], vec![1f32; 7 * 5 * 32]);
        untransform_band(&sums, &g, (0, 4), 32, &mut fast);
        untransform_band_portable(&sums, &g, (0, 4), 32, &mut slow);
        assert_eq!(fast, slow, "output transforms differ");
        g.pool = true;
        let (mut fast, mut slow) = (vec![0f32; 12 * 32], vec![1f32; 12 * 32]);
        untransform_band(&sums, &g, (0, 4), 32, &mut fast);
        untransform_band_portable(&sums, &g, (0, 4), 32, &mut slow);
        assert_eq!(fast, slow, "pooled output transforms differ");
        // Refusal: a short destination.
        let conv = WinogradConv::new(&[1.0; 9], (1, 1)).unwrap();
        assert!(!conv.forward(
            &[0.0; 16],
            (4, 4),
            &mut [0.0; 3],
            (&[0.0], Activation::Linear),
            Output::Map,
            &mut sc
        ));
        // Refusal: pooling through an activation that does not commute with the maximum.
        assert!(!conv.forward(
            &[0.0; 16],
            (4, 4),
            &mut [0.0; 4],
            (&[0.0], Activation::Mish),
            Output::Pooled,
            &mut sc
        ));
        // Refusal: adding after an activation the store does not apply.
        assert!(!conv.forward(
            &[0.0; 16],
            (4, 4),
            &mut [0.0; 16],
            (&[0.0], Activation::Mish),
            Output::Added,
            &mut sc
        ));
    }
}
