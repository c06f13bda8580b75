//! 1×1 stride-1 convs on CPUs with AVX-512: `out[o][p] = Σ_c w[o][c] · x[c][p]`, bias and
//! activation applied in the registers before the only store. The input planes are read where
//! they lie (no packing of the right operand) and the weights are packed once, at load, into
//! the order the register tile reads them; the gemm crate packs both operands on every call and
//! applies the epilogue in a second pass, which on the small maps of the YOLO heads (13², 26²)
//! cost as much as the multiply-adds (yolov3-tiny's 1024 → 256 @13²: 75 GMAC/s against ONNX
//! Runtime's 127).
//!
//! The register tile is 8 output channels × 3 vectors of 16 pixels (24 accumulators): per input
//! channel, 3 vector loads of the input row, 8 broadcast weights, 24 FMAs.

// Off x86_64 there is no kernel: `PointwiseConv::new` answers None there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use crate::model::Activation;

/// Output channels per register tile.
const ROWS: usize = 8;
/// Pixels per vector.
const LANES: usize = 16;
/// Vectors of pixels per register tile.
const VECS: usize = 3;
/// Pixels per register tile.
const COLS: usize = LANES * VECS;

/// A 1×1 conv's weights packed for the kernel: input-channel chunk by chunk, each chunk's row
/// tiles back to back (`[chunk][tile][kc][8]`: a task's tiles of one chunk are one sequential
/// stream, where `[tile][cin][8]` made each tile's 4 KB of a chunk a page of its own that the
/// prefetchers met cold, costing the first frame-cold pass over the weights ~50 %), the last
/// tile's missing output channels zero.
pub(crate) struct PointwiseConv {
    cout: usize,
    cin: usize,
    packed: Vec<f32>,
}

/// Whether 1×1 convs run here: AVX-512 present and `KESTREL_POINTWISE` not `0`.
pub(crate) fn available() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| super::nchwc::avx512f_unless("KESTREL_POINTWISE"))
}

impl PointwiseConv {
    /// From a BN-folded `[cout][cin]` kernel; None where the CPU lacks AVX-512 (or
    /// `KESTREL_POINTWISE=0`) or the kernel is not `cout·cin` long.
    pub fn new(kernel: &[f32], (cout, cin): (usize, usize)) -> Option<PointwiseConv> {
        if !available() || kernel.len() != cout * cin || cout == 0 || cin == 0 {
            return None;
        }
        let tiles = cout.div_ceil(ROWS);
        let mut packed = vec![0f32; tiles * cin * ROWS];
        for o in 0..cout {
            let (t, r) = (o / ROWS, o % ROWS);
            for c in 0..cin {
                let (k0, kc) = chunk_of(c, cin);
                packed[weights_at(k0, kc, tiles, t) + (c - k0) * ROWS + r] = kernel[o * cin + c];
            }
        }
        Some(PointwiseConv { cout, cin, packed })
    }

    /// The conv of one image's `[cin][n]` planes into `dst` = `[cout][n]` with `bias` added and
    /// `act` applied, over the rayon pool. False (nothing written) for an activation other than
    /// linear and leaky, or slices too short for the shapes.
    pub fn forward(
        &self,
        src: &[f32],
        n: usize,
        dst: &mut [f32],
        (bias, act): (&[f32], Activation),
    ) -> bool {
        let threads = rayon::current_num_threads().max(1);
        self.forward_on(src, n, dst, (bias, act), threads)
    }

    /// [`forward`](Self::forward) on this thread alone: the product of an im2col tile, which
    /// the caller's tasks already split (the GEMM path's tiles of output rows).
    pub fn forward_serial(
        &self,
        src: &[f32],
        n: usize,
        dst: &mut [f32],
        (bias, act): (&[f32], Activation),
    ) -> bool {
        self.forward_on(src, n, dst, (bias, act), 1)
    }

    fn forward_on(
        &self,
        src: &[f32],
        n: usize,
        dst: &mut [f32],
        (bias, act): (&[f32], Activation),
        threads: usize,
    ) -> bool {
        let leaky = match act {
            Activation::Linear => false,
            Activation::Leaky => true,
            _ => return false,
        };
        if src.len() < self.cin * n || dst.len() < self.cout * n || bias.len() < self.cout {
            return false;
        }
        if n == 0 {
            return true;
        }
        #[cfg(target_arch = "x86_64")]
        {
            self.run(src, n, &mut dst[..self.cout * n], (bias, leaky), threads);
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (leaky, threads);
            false
        }
    }

    /// Splits the (row tile, column block) grid over the pool, each task a contiguous range so
    /// that it writes its own part of `dst`: by row tiles where every thread can keep the
    /// whole input in its L2 (each reads all of it and half of the weights), by column blocks
    /// on larger inputs (each reads its share of the input and all of the weights), see
    /// [`BY_COLUMNS_FROM`].
    #[cfg(target_arch = "x86_64")]
    fn run(
        &self,
        src: &[f32],
        n: usize,
        dst: &mut [f32],
        (bias, leaky): (&[f32], bool),
        threads: usize,
    ) {
        use rayon::prelude::*;
        let (tiles, blocks) = (self.cout.div_ceil(ROWS), n.div_ceil(COLS));
        let by_cols = self.cin * n >= BY_COLUMNS_FROM || tiles < 2 * threads;
        let (units, parts) = match by_cols {
            true => (blocks, threads.min(blocks)),
            false => (tiles, threads.min(tiles)),
        };
        let out = SharedOut::new(dst);
        let task = |t: usize| {
            let (u0, u1) = (t * units / parts, (t + 1) * units / parts);
            let (tiles, blocks) = match by_cols {
                true => ((0, tiles), (u0, u1)),
                false => ((u0, u1), (0, blocks)),
            };
            let mut panel = Panel([0f32; KC * COLS]);
            for b in blocks.0..blocks.1 {
                // SAFETY: tasks own disjoint tile or block ranges, so no two write the same
                // (row, column) of `out`, and nothing else reads or writes it meanwhile.
                unsafe { self.block(src, n, b * COLS, tiles, (bias, leaky), &mut panel, out) };
            }
        };
        if parts <= 1 {
            return task(0);
        }
        (0..parts).into_par_iter().for_each(task);
    }

    /// Output columns `p0..p0 + 48` (or to `n`) of row tiles `tiles.0..tiles.1`, input channel
    /// chunk after chunk: each chunk's input rows copied into `panel` (48 contiguous columns,
    /// zero past `n`), which then stays in L1 for every row tile; the sums wait in `out`
    /// between chunks. Reading the planes in place instead (rows `n` floats apart, each vector
    /// across two cache lines, a 196 KB panel for 1024 channels) ran at 40 GMAC/s per core.
    ///
    /// # Safety
    /// No other task writes, or holds a reference into, these rows and columns of `out`.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        &self,
        src: &[f32],
        n: usize,
        p0: usize,
        tiles: (usize, usize),
        (bias, leaky): (&[f32], bool),
        panel: &mut Panel,
        out: SharedOut,
    ) {
        let cols = COLS.min(n - p0);
        let (ptr, len) = out.raw();
        let ntiles = self.cout.div_ceil(ROWS);
        for k0 in (0..self.cin).step_by(KC) {
            let kc = KC.min(self.cin - k0);
            for (c, row) in panel.0.chunks_exact_mut(COLS).take(kc).enumerate() {
                let x = &src[(k0 + c) * n + p0..][..cols];
                match (
                    <&mut [f32; COLS]>::try_from(&mut *row),
                    <&[f32; COLS]>::try_from(x),
                ) {
                    // Whole blocks as three vector moves rather than a memcpy call per row.
                    (Ok(d), Ok(x)) => *d = *x,
                    _ => {
                        row[..cols].copy_from_slice(x);
                        row[cols..].fill(0.0);
                    }
                }
            }
            let last = k0 + kc == self.cin;
            for tile in tiles.0..tiles.1 {
                let o0 = tile * ROWS;
                let rows = ROWS.min(self.cout - o0);
                let at = o0 * n + p0;
                assert!(
                    len >= at + (rows - 1) * n + cols,
                    "pointwise tile out of bounds"
                );
                let step = Step {
                    w: &self.packed[weights_at(k0, kc, ntiles, tile)..][..kc * ROWS],
                    panel: &panel.0[..kc * COLS],
                    n,
                    cols,
                    bias: &bias[o0..o0 + rows],
                    first: k0 == 0,
                    finish: last.then_some(leaky),
                };
                // SAFETY: AVX-512F is present (`available`); the tile's rows and columns lie
                // inside `out` (asserted) and are this task's (the caller's promise).
                unsafe { step.run(ptr.add(at)) };
            }
        }
    }
}

/// Input values (`cin·n`) from which the tasks split the columns rather than the rows: 2 MB,
/// this Xeon's L2 per core. 2 threads, GMAC/s rows → columns: 1024 → 256 @13² 119 → 107,
/// 512 → 256 @26² 139 → 125; 256 → 128 @52² 119 → 128, 128 → 64 @104² 90 → 107.
const BY_COLUMNS_FROM: usize = 1 << 19;

/// The chunk (first channel, channels) that input channel `c` of `cin` falls in.
fn chunk_of(c: usize, cin: usize) -> (usize, usize) {
    let k0 = c / KC * KC;
    (k0, KC.min(cin - k0))
}

/// Where row tile `tile`'s packed weights for the chunk from `k0` (`kc` channels) start, of
/// `tiles` row tiles: every earlier chunk holds `KC` channels of every tile.
fn weights_at(k0: usize, kc: usize, tiles: usize, tile: usize) -> usize {
    (k0 * tiles + tile * kc) * ROWS
}

/// Floats ahead of the weights being read that the kernel prefetches: 1 KB, ~30 input
/// channels of FMAs (~350 cycles) ahead, about a DRAM latency.
const PREFETCH_AHEAD: usize = 1024;

/// Input channels per chunk: a chunk's panel (128 × 48 floats, 24 KB) stays in L1 beside the
/// weights it meets.
const KC: usize = 128;

/// A chunk of input rows, 48 columns each, on cache-line boundaries.
#[repr(align(64))]
struct Panel([f32; KC * COLS]);

#[cfg(target_arch = "x86_64")]
use super::sgemm::SharedOut;

/// One register tile over one input chunk: its packed weights (`[kc][8]`), the chunk's panel
/// (`[kc][48]`), the output shape, and what to do at the ends: start from zero (`first`) or
/// from the sums in `out`; store the sums, or (`finish`: leaky or not) add the bias and apply
/// the activation.
#[cfg(target_arch = "x86_64")]
struct Step<'a> {
    w: &'a [f32],
    panel: &'a [f32],
    n: usize,
    cols: usize,
    bias: &'a [f32],
    first: bool,
    finish: Option<bool>,
}

#[cfg(target_arch = "x86_64")]
impl Step<'_> {
    /// # Safety
    /// AVX-512F is present; `out` points at `(rows − 1)·n + cols` values (rows =
    /// `bias.len()` ≤ 8, `cols` ≤ 48) that only this task reads or writes; `w` holds
    /// `8·kc` values and `panel` `48·kc`.
    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self, out: *mut f32) {
        use std::arch::x86_64::*;
        let kc = self.w.len() / ROWS;
        assert!(self.panel.len() >= kc * COLS && self.bias.len() <= ROWS);
        let masks: [__mmask16; VECS] = std::array::from_fn(|j| {
            let left = self.cols.saturating_sub(j * LANES);
            if left >= LANES {
                0xFFFF
            } else {
                (1u16 << left) - 1
            }
        });
        let rows = self.bias.len();
        let mut acc = [[_mm512_setzero_ps(); VECS]; ROWS];
        if !self.first {
            for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                for j in 0..VECS {
                    // SAFETY: row r, columns 16·j.. masked to `cols`: inside `out`.
                    acc[j] =
                        unsafe { _mm512_maskz_loadu_ps(masks[j], out.add(r * self.n + j * LANES)) };
                }
            }
        }
        let (x, w) = (self.panel.as_ptr(), self.w.as_ptr());
        for c in 0..kc {
            // The weights come from DRAM on the first pass of a frame: fetch a line 1 KB ahead
            // (past this tile's slice it is the next tile's; a prefetch never faults).
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(c * ROWS + PREFETCH_AHEAD) as *const i8);
            // SAFETY: panel row c holds 48 values (kc·48 ≤ panel.len(), asserted).
            let xv: [__m512; VECS] =
                std::array::from_fn(|j| unsafe { _mm512_loadu_ps(x.add(c * COLS + j * LANES)) });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: w holds kc·8 values.
                let wv = _mm512_set1_ps(unsafe { *w.add(c * ROWS + r) });
                for j in 0..VECS {
                    acc[j] = _mm512_fmadd_ps(wv, xv[j], acc[j]);
                }
            }
        }
        let tenth = _mm512_set1_ps(0.1);
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let b = _mm512_set1_ps(self.bias[r]);
            for j in 0..VECS {
                let mut v = acc[j];
                if let Some(leaky) = self.finish {
                    v = _mm512_add_ps(v, b);
                    if leaky {
                        // v > 0 ? v : 0.1·v, as `activation::bias_act` (NaN stays NaN).
                        let neg = _mm512_cmp_ps_mask::<_CMP_NGT_UQ>(v, _mm512_setzero_ps());
                        v = _mm512_mask_mul_ps(v, neg, v, tenth);
                    }
                }
                if masks[j] != 0 {
                    // SAFETY: row r < rows, columns 16·j.. masked to `cols`: inside `out`.
                    unsafe { _mm512_mask_storeu_ps(out.add(r * self.n + j * LANES), masks[j], v) };
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::model::random::SplitMix64;

    /// Against a plain f64 sum, on shapes that leave partial row tiles and every kind of
    /// column tail (1, 2 and 3 vectors, masked), split by rows and by columns.
    #[test]
    fn pointwise_conv_matches_the_plain_sum() {
        if !available() {
            eprintln!("no AVX-512 here: the pointwise kernel is not built, nothing to check");
            return;
        }
        let mut rng = SplitMix64::new(7);
        for (cout, cin, n) in [
            (1, 1, 1),
            (13, 5, 7),
            (255, 37, 169),
            (16, 64, 676),
            (9, 3, 97),
            (40, 20, 60),
            (64, 16, 48 * 9 + 33),
        ] {
            let w: Vec<f32> = (0..cout * cin).map(|_| rng.uniform(-0.5, 0.5)).collect();
            let x: Vec<f32> = (0..cin * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bias: Vec<f32> = (0..cout).map(|_| rng.uniform(-0.5, 0.5)).collect();
            let pc = PointwiseConv::new(&w, (cout, cin)).unwrap();
            for act in [Activation::Linear, Activation::Leaky] {
                let mut got = vec![f32::NAN; cout * n + 3];
                assert!(pc.forward(&x, n, &mut got, (&bias, act)));
                for o in 0..cout {
                    for p in 0..n {
                        let s: f64 = (0..cin)
                            .map(|c| w[o * cin + c] as f64 * x[c * n + p] as f64)
                            .sum::<f64>()
                            + bias[o] as f64;
                        let want = if act == Activation::Leaky && s <= 0.0 {
                            0.1 * s
                        } else {
                            s
                        };
                        let g = got[o * n + p] as f64;
                        assert!(
                            (g - want).abs() < 1e-5 * (1.0 + want.abs()),
                            "{cout}x{cin}x{n} {act:?} o {o} p {p}: {g} vs {want}"
                        );
                    }
                }
                assert!(
                    got[cout * n..].iter().all(|v| v.is_nan()),
                    "wrote past the outputs"
                );
            }
        }
        let pc = PointwiseConv::new(&[1.0; 6], (2, 3)).unwrap();
        let mut out = vec![0.0; 8];
        assert!(
            !pc.forward(&[0.0; 5], 2, &mut out, (&[0.0; 2], Activation::Linear)),
            "short input"
        );
        assert!(
            !pc.forward(&[0.0; 6], 2, &mut out, (&[0.0; 2], Activation::Mish)),
            "unsupported activation"
        );
        assert!(PointwiseConv::new(&[1.0; 5], (2, 3)).is_none());
    }
}
