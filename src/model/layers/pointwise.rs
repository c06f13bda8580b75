//! Products `out[o][p] = Σ_c w[o][c] · x[c][p]` on CPUs with AVX-512, bias and activation applied
//! in the registers before the only store: every 1×1 stride-1 conv (`x` = the input planes as
//! they lie) and the products of the convs left to im2col (`x` = the unfolded rows). The weights
//! are packed once into the order the register tile reads them and the input is copied a panel
//! at a time into per-thread buffers that are kept, so a call allocates nothing. The gemm crate,
//! which this replaces, packs both operands into fresh heap buffers on every call and applies
//! the epilogue in a second pass: on the small maps of the YOLO heads (13², 26²) that cost as
//! much as the multiply-adds (yolov3-tiny's 1024 → 256 @13²: 75 GMAC/s against ONNX Runtime's
//! 127).
//!
//! The register tile is up to 8 output channels × 3 vectors of 16 pixels (24 accumulators): per
//! input channel, 3 vector loads of a panel row, one broadcast weight per output, 24 FMAs.

// Off x86_64 there is no kernel: `PointwiseConv::new` answers None there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::sgemm::{grown_at_least, SharedOut};
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
    /// Output channels per register tile (≤ 8): see [`tile_rows`].
    rows: usize,
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
        let rows = tile_rows(cout);
        let tiles = cout.div_ceil(rows);
        let mut packed = vec![0f32; tiles * cin * rows];
        for o in 0..cout {
            let (t, r) = (o / rows, o % rows);
            for c in 0..cin {
                let (k0, kc) = chunk_of(c, cin);
                let at = weights_at(k0, kc, (tiles, rows), t) + (c - k0) * rows + r;
                packed[at] = kernel[o * cin + c];
            }
        }
        Some(PointwiseConv {
            cout,
            cin,
            rows,
            packed,
        })
    }

    /// The conv of one image's `[cin][n]` planes into `dst` = `[cout][n]` with `bias` added and
    /// `act` applied, over the rayon pool; with `add`, added to what `dst` holds (a residual
    /// add fused into the conv). False (nothing written) for an activation other than linear
    /// and leaky, slices too short for the shapes, or `add` over more than one input chunk
    /// (whose partial sums wait in `dst`).
    pub fn forward(
        &self,
        src: &[f32],
        n: usize,
        dst: &mut [f32],
        (bias, act): (&[f32], Activation),
        add: bool,
    ) -> bool {
        let fits = dst.len() >= self.cout * n;
        let Some(leaky) = self.checked(src, n, fits, (bias, act, add)) else {
            return false;
        };
        #[cfg(target_arch = "x86_64")]
        {
            let threads = rayon::current_num_threads().max(1);
            let out = SharedOut::new(&mut dst[..self.cout * n]);
            // SAFETY: `out` borrows `dst` whole for the call.
            unsafe { self.run(src, n, (out, 0, n), (bias, leaky, add), threads) };
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = leaky;
            false
        }
    }

    /// [`forward`](Self::forward) on this thread alone, output row `o` stored from `at + o ·
    /// stride` of `out`: the product of an im2col tile (whose caller's tasks already split the
    /// output rows) written straight into its rows of the whole output planes, not into a tile
    /// to be copied there.
    ///
    /// # Safety
    /// No other task writes, or holds a slice of, values `at + o·stride .. at + o·stride + n`
    /// (`o < cout`) of `out` meanwhile.
    pub unsafe fn forward_serial_into(
        &self,
        src: &[f32],
        n: usize,
        (out, at, stride): (SharedOut, usize, usize),
        (bias, act): (&[f32], Activation),
    ) -> bool {
        let fits = stride >= n && out.raw().1 >= at + (self.cout - 1) * stride + n;
        let Some(leaky) = self.checked(src, n, fits, (bias, act, false)) else {
            return false;
        };
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the rows are this task's (the caller's promise).
            unsafe { self.run(src, n, (out, at, stride), (bias, leaky, false), 1) };
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = leaky;
            false
        }
    }

    /// Whether the activation is leaky (Some(true)) or linear (Some(false)); None (refused)
    /// for another activation, an input, output (`fits`) or bias too short, or `add` over
    /// more than one chunk of input channels.
    fn checked(
        &self,
        src: &[f32],
        n: usize,
        fits: bool,
        (bias, act, add): (&[f32], Activation, bool),
    ) -> Option<bool> {
        let leaky = match act {
            Activation::Linear => false,
            Activation::Leaky => true,
            _ => return None,
        };
        let sizes = src.len() >= self.cin * n && fits && bias.len() >= self.cout;
        (sizes && (!add || self.cin <= KC)).then_some(leaky)
    }

    /// Splits the (row tile, column block) grid over the pool, each task a contiguous range so
    /// that it writes its own part of `dst`: by column blocks (each task reads its share of the
    /// input and all of the weights) where the input outgrows a thread's L2 and outweighs the
    /// weights, or there are too few row tiles to share; else by row tiles (each reads all of
    /// the input and its share of the weights), see [`BY_COLUMNS_FROM`].
    ///
    /// # Safety
    /// No other task writes, or holds a slice of, output rows `at + o·stride ..` (`n` values,
    /// `o < cout`) of `out` meanwhile.
    #[cfg(target_arch = "x86_64")]
    unsafe fn run(
        &self,
        src: &[f32],
        n: usize,
        (out, at, stride): (SharedOut, usize, usize),
        epi: (&[f32], bool, bool),
        threads: usize,
    ) {
        use rayon::prelude::*;
        if n == 0 {
            return;
        }
        let (tiles, blocks) = (self.cout.div_ceil(self.rows), n.div_ceil(COLS));
        let by_cols = (self.cin * n >= BY_COLUMNS_FROM && n > self.cout) || tiles < 2 * threads;
        let (units, parts) = match by_cols {
            true => (blocks, threads.min(blocks)),
            // (tile, block) pairs tile by tile: a task may start or end inside a tile, so
            // that 7 tiles on 2 threads split 3.5 / 3.5, not 3 / 4.
            false => (tiles * blocks, threads.min(tiles)),
        };
        let group = column_group(self.cout);
        let task = |t: usize| {
            let (u0, u1) = (t * units / parts, (t + 1) * units / parts);
            // Taken out of the thread-local, not borrowed: nothing here waits on rayon, but a
            // nested use would then allocate rather than panic.
            let mut buf = PANELS.take();
            // Many panels only where no other task fills the same ones (split by rows, every
            // task would copy every block: prune_0.95's 25 → 51 @26² 0.13 → 0.21 ms).
            let want = match by_cols || parts == 1 {
                true => panels_wanted(self.cout, self.cin),
                false => 1,
            };
            // One size for every conv on the first growth, whichever this thread meets first:
            // a steady frame grows nothing, whatever task lands where.
            let per_panel = KC.min(self.cin) * VECS;
            let panels =
                grown_at_least(&mut buf, want * per_panel, PANEL_LINES, Line([0.0; LANES]));
            let rects = match by_cols {
                true => [Some(((0, tiles), (u0, u1))), None, None],
                false => rectangles((u0, u1), blocks),
            };
            for (tiles, blocks) in rects.into_iter().flatten() {
                for g0 in (blocks.0..blocks.1).step_by(group) {
                    let g1 = (g0 + group).min(blocks.1);
                    let cut = Cut {
                        n,
                        dst: (at, stride),
                        blocks: (g0, g1),
                        tiles,
                    };
                    // SAFETY: tasks own disjoint (tile, block) ranges, so no two write the
                    // same (row, column) of `out`, and nothing else reads or writes it
                    // meanwhile.
                    unsafe { self.blocks(src, cut, epi, (&mut *panels, per_panel), out) };
                }
            }
            PANELS.set(buf);
        };
        if parts <= 1 {
            return task(0);
        }
        (0..parts).into_par_iter().for_each(task);
    }

    /// The cut's column blocks of its row tiles, input channel chunk after chunk, each chunk
    /// over every block: as many blocks' chunks of input rows at a time as `panels` holds
    /// (`per_panel` lines each) are copied into them (48 contiguous columns each, zero past
    /// `n`), then every row tile sweeps them;
    /// the chunk's weights for all the tiles stay in L2 for every block and the sums wait in
    /// `out` between chunks. Reading the planes in place instead (rows `n` floats apart, each
    /// vector across two cache lines, a 196 KB panel for 1024 channels) ran at 40 GMAC/s per
    /// core; taking the chunks inside the blocks streamed all the weights once per block, from
    /// DRAM where they outgrow L2 (the deep stride-2 convs' full im2col: prune_0.95's 405 → 507
    /// @26² 2.5 ms on the gemm crate, 3.1–3.2 that way, 2.5–2.6 this way).
    ///
    /// # Safety
    /// No other task writes, or holds a reference into, the cut's rows and columns of `out`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn blocks(
        &self,
        src: &[f32],
        cut: Cut,
        (bias, leaky, add): (&[f32], bool, bool),
        (panels, per_panel): (&mut [Line], usize),
        out: SharedOut,
    ) {
        let (ptr, len) = out.raw();
        let (n, ntiles) = (cut.n, (self.cout.div_ceil(self.rows), self.rows));
        let (at0, stride) = cut.dst;
        let count = panels.len() / per_panel;
        for k0 in (0..self.cin).step_by(KC) {
            let kc = KC.min(self.cin - k0);
            let finish = (k0 + kc == self.cin).then_some(leaky);
            for b0 in (cut.blocks.0..cut.blocks.1).step_by(count) {
                let b1 = (b0 + count).min(cut.blocks.1);
                for (p0, panel) in (b0..b1)
                    .map(|b| b * COLS)
                    .zip(panels.chunks_exact_mut(per_panel))
                {
                    let cols = COLS.min(n - p0);
                    // SAFETY: AVX-512F is present (`available`).
                    unsafe { fill_panel(&src[k0 * n + p0..], (n, kc, cols), panel) };
                }
                for tile in cut.tiles.0..cut.tiles.1 {
                    let o0 = tile * self.rows;
                    let rows = self.rows.min(self.cout - o0);
                    let w = &self.packed[weights_at(k0, kc, ntiles, tile)..][..kc * self.rows];
                    for (p0, panel) in (b0..b1)
                        .map(|b| b * COLS)
                        .zip(panels.chunks_exact(per_panel))
                    {
                        let cols = COLS.min(n - p0);
                        let at = at0 + o0 * stride + p0;
                        assert!(
                            len >= at + (rows - 1) * stride + cols,
                            "pointwise tile out of bounds"
                        );
                        let step = Step {
                            w,
                            panel,
                            n: stride,
                            cols,
                            bias: &bias[o0..o0 + rows],
                            first: k0 == 0,
                            finish,
                            add: add && finish.is_some(),
                        };
                        // SAFETY: AVX-512F is present (`available`); the tile's rows and
                        // columns lie inside `out` (asserted) and are this task's (the
                        // caller's promise).
                        unsafe { step.run_rows(self.rows, ptr.add(at)) };
                    }
                }
            }
        }
    }
}

/// The (tile, block) pairs `u0..u1`, numbered tile by tile over `blocks` blocks a tile, as up
/// to three rectangles of (tiles, blocks): the first tile's tail, the whole tiles, the last
/// tile's head.
type Rect = ((usize, usize), (usize, usize));
fn rectangles((u0, u1): (usize, usize), blocks: usize) -> [Option<Rect>; 3] {
    let rect = |t0: usize, t1: usize, b0: usize, b1: usize| {
        (t0 < t1 && b0 < b1).then_some(((t0, t1), (b0, b1)))
    };
    let (t0, b0) = (u0 / blocks, u0 % blocks);
    let (t1, b1) = (u1 / blocks, u1 % blocks);
    if t0 == t1 {
        return [rect(t0, t0 + 1, b0, b1), None, None];
    }
    let head = match b0 {
        0 => None,
        _ => rect(t0, t0 + 1, b0, blocks),
    };
    let whole = rect(t0 + (b0 > 0) as usize, t1, 0, blocks);
    [head, whole, rect(t1, t1 + 1, 0, b1)]
}

/// A task's share of one product: the columns `n` wide planes are cut in, and its ranges of
/// column blocks and row tiles.
#[derive(Clone, Copy)]
struct Cut {
    n: usize,
    /// Where output row 0 starts in `out`, and the values from one row to the next.
    dst: (usize, usize),
    blocks: (usize, usize),
    tiles: (usize, usize),
}

/// Panels a task fills before its row tiles sweep them: one, in L1 while every tile's weights
/// come from L2, except for 32–64 output channels (4–8 tiles), where up to 512 KB of them
/// (in L2) are filled together: each input row is then read in runs of many blocks rather than
/// 192 bytes at a time among `cin` rows, which the prefetchers could not follow (yolov3-spp3's
/// 64 → 32 @208², 2 threads: gemm crate 1.38–1.40 ms, one panel 1.80–1.84, 0.98–1.05 so).
/// Narrower convs read each panel once or twice and lost by it (80 → 6 @104² 0.18 → 0.24
/// ms), wider ones ran the same.
fn panels_wanted(cout: usize, cin: usize) -> usize {
    const PANELS_BYTES: usize = 512 << 10;
    if !(32..=64).contains(&cout) {
        return 1;
    }
    (PANELS_BYTES / (KC.min(cin).max(1) * COLS * 4)).clamp(1, MAX_PANELS)
}

/// Panels a task fills at most at once.
const MAX_PANELS: usize = 64;

/// Lines of 16 floats in a thread's panels: 512 KB of many panels' rows, or one whole panel
/// of `KC` rows, whichever a conv asks (536 KB).
const PANEL_LINES: usize = ((512 << 10) + KC * COLS * 4) / (LANES * 4);

thread_local! {
    /// Each pool thread's panels, grown on its first pointwise task and kept.
    static PANELS: std::cell::Cell<Vec<Line>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Grows this thread's panels to the one size every conv's fit in.
pub(crate) fn warm_thread() {
    if !available() {
        return;
    }
    let mut buf = PANELS.take();
    grown_at_least(&mut buf, PANEL_LINES, PANEL_LINES, Line([0.0; LANES]));
    PANELS.set(buf);
}

/// Copies `kc` rows of `cols` (≤ 48) values, `n` apart from `src` on, into `panel`'s rows,
/// zero past `cols`: three vector moves a row (the plain array copy compiled to a libc
/// `memmove` call per row: a quarter of a narrow conv's time).
///
/// # Safety
/// AVX-512F is present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fill_panel(src: &[f32], (n, kc, cols): (usize, usize, usize), panel: &mut [Line]) {
    use std::arch::x86_64::*;
    assert!(cols <= COLS && panel.len() >= kc * VECS);
    assert!(kc == 0 || src.len() >= (kc - 1) * n + cols);
    let masks: [__mmask16; VECS] = std::array::from_fn(|j| {
        let left = cols.saturating_sub(j * LANES).min(LANES);
        ((1u32 << left) - 1) as u16
    });
    let (x, d) = (src.as_ptr(), panel.as_mut_ptr() as *mut f32);
    for c in 0..kc {
        for (j, &m) in masks.iter().enumerate() {
            // SAFETY: row c's columns 16·j.. masked to `cols` lie inside `src` (asserted); the
            // panel's row c < kc is its lines 3c..3c + 3 (asserted), each on a 64-byte
            // boundary (`Line`'s alignment).
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, x.add(c * n + j * LANES));
                _mm512_store_ps(d.add(c * COLS + j * LANES), v);
            }
        }
    }
}

/// Column blocks taken chunk by chunk together for `cout` output channels: as many as keep
/// their sums (`cout` × 48 columns each) within 512 KB of L2 between chunks.
fn column_group(cout: usize) -> usize {
    const SUMS_BYTES: usize = 512 << 10;
    (SUMS_BYTES / (cout.max(1) * COLS * 4)).max(1)
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
fn weights_at(k0: usize, kc: usize, (tiles, rows): (usize, usize), tile: usize) -> usize {
    (k0 * tiles + tile * kc) * rows
}

/// Output channels per register tile for `cout` outputs: 8 (24 accumulators, 3 vectors of
/// pixels each) where that wastes little, else as few fewer as fill every tile of the same
/// count: the pruned nets' narrow convs (12 → 2 × 6, 25 → 4 × 7, 5, 6) ran a quarter to a
/// half of their 8-row tiles on zero weights.
fn tile_rows(cout: usize) -> usize {
    cout.div_ceil(cout.div_ceil(ROWS)).clamp(1, ROWS)
}

/// Floats ahead of the weights being read that the kernel prefetches: 1 KB, ~30 input
/// channels of FMAs (~350 cycles) ahead, about a DRAM latency.
const PREFETCH_AHEAD: usize = 1024;

/// Input channels per chunk: a chunk's panel (128 × 48 floats, 24 KB) stays in L1 beside the
/// weights it meets.
const KC: usize = 128;

/// 16 floats on a cache line: a panel is a chunk's rows, 3 lines (48 columns) each.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; LANES]);

/// One register tile over one input chunk: its packed weights (`[kc][R]`), the chunk's panel
/// (`[kc][48]`), the output shape, and what to do at the ends: start from zero (`first`) or
/// from the sums in `out`; store the sums, or (`finish`: leaky or not) add the bias and apply
/// the activation.
#[cfg(target_arch = "x86_64")]
struct Step<'a> {
    w: &'a [f32],
    panel: &'a [Line],
    n: usize,
    cols: usize,
    bias: &'a [f32],
    first: bool,
    finish: Option<bool>,
    /// Add the finished values to those in `out` (a residual add; with `finish` only).
    add: bool,
}

#[cfg(target_arch = "x86_64")]
impl Step<'_> {
    /// [`run`](Self::run) for tiles of `rows` (1..=8) output channels.
    ///
    /// # Safety
    /// As `run`.
    unsafe fn run_rows(&self, rows: usize, out: *mut f32) {
        // SAFETY: the caller's promise.
        unsafe {
            match self.cols.div_ceil(LANES) {
                1 => self.run_vecs::<1>(rows, out),
                2 => self.run_vecs::<2>(rows, out),
                _ => self.run_vecs::<3>(rows, out),
            }
        }
    }

    /// [`run`](Self::run) over `V` vectors of pixels (a block's last 1–32 columns take one or
    /// two: 169 = 3 × 48 + 25 pixels then cost 176 columns of products, not 192).
    ///
    /// # Safety
    /// As `run`.
    unsafe fn run_vecs<const V: usize>(&self, rows: usize, out: *mut f32) {
        // SAFETY: the caller's promise.
        unsafe {
            match rows {
                1 => self.run::<1, V>(out),
                2 => self.run::<2, V>(out),
                3 => self.run::<3, V>(out),
                4 => self.run::<4, V>(out),
                5 => self.run::<5, V>(out),
                6 => self.run::<6, V>(out),
                7 => self.run::<7, V>(out),
                _ => self.run::<8, V>(out),
            }
        }
    }

    /// # Safety
    /// AVX-512F is present; `out` points at `(rows − 1)·n + cols` values (rows =
    /// `bias.len()` ≤ R, `cols` ≤ 48) that only this task reads or writes; `w` holds
    /// `R·kc` values and `panel` `48·kc`.
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const R: usize, const V: usize>(&self, out: *mut f32) {
        use std::arch::x86_64::*;
        let kc = self.w.len() / R;
        assert!(self.panel.len() * LANES >= kc * COLS && self.bias.len() <= R);
        let masks: [__mmask16; V] = std::array::from_fn(|j| {
            let left = self.cols.saturating_sub(j * LANES);
            if left >= LANES {
                0xFFFF
            } else {
                (1u16 << left) - 1
            }
        });
        let rows = self.bias.len();
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        if !self.first {
            for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                for j in 0..V {
                    // SAFETY: row r, columns 16·j.. masked to `cols`: inside `out`.
                    acc[j] =
                        unsafe { _mm512_maskz_loadu_ps(masks[j], out.add(r * self.n + j * LANES)) };
                }
            }
        }
        let (x, w) = (self.panel.as_ptr() as *const f32, self.w.as_ptr());
        for c in 0..kc {
            // The weights come from DRAM on the first pass of a frame: fetch a line 1 KB ahead
            // (past this tile's slice it is the next tile's; a prefetch never faults).
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(c * R + PREFETCH_AHEAD) as *const i8);
            // SAFETY: panel row c holds 48 values (kc·48 ≤ panel.len(), asserted).
            let xv: [__m512; V] =
                std::array::from_fn(|j| unsafe { _mm512_loadu_ps(x.add(c * COLS + j * LANES)) });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: w holds kc·8 values.
                let wv = _mm512_set1_ps(unsafe { *w.add(c * R + r) });
                for j in 0..V {
                    acc[j] = _mm512_fmadd_ps(wv, xv[j], acc[j]);
                }
            }
        }
        let tenth = _mm512_set1_ps(0.1);
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let b = _mm512_set1_ps(self.bias[r]);
            for j in 0..V {
                let mut v = acc[j];
                if let Some(leaky) = self.finish {
                    v = _mm512_add_ps(v, b);
                    if leaky {
                        // v > 0 ? v : 0.1·v, as `activation::bias_act` (NaN stays NaN).
                        let neg = _mm512_cmp_ps_mask::<_CMP_NGT_UQ>(v, _mm512_setzero_ps());
                        v = _mm512_mask_mul_ps(v, neg, v, tenth);
                    }
                    if self.add {
                        // SAFETY: row r, columns 16·j.. masked to `cols`: inside `out`.
                        let held = unsafe {
                            _mm512_maskz_loadu_ps(masks[j], out.add(r * self.n + j * LANES))
                        };
                        v = _mm512_add_ps(held, v);
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
    /// column tail (1, 2 and 3 vectors, masked), split by rows and by columns; narrow tiles
    /// (5, 6 and 7 rows), several input chunks, many panels swept at once (32–64 outputs) and
    /// several column groups (wide outputs).
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
            (5, 31, 300),
            (12, 200, 700),
            (25, 300, 500),
            (48, 130, 48 * 70 + 5),
            (40, 300, 2000),
            (600, 260, 200),
        ] {
            let w: Vec<f32> = (0..cout * cin).map(|_| rng.uniform(-0.5, 0.5)).collect();
            let x: Vec<f32> = (0..cin * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bias: Vec<f32> = (0..cout).map(|_| rng.uniform(-0.5, 0.5)).collect();
            let pc = PointwiseConv::new(&w, (cout, cin)).unwrap();
            for act in [Activation::Linear, Activation::Leaky] {
                let mut got = vec![f32::NAN; cout * n + 3];
                assert!(pc.forward(&x, n, &mut got, (&bias, act), false));
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
                // Added: the same outputs plus what the destination held, bit for bit (one
                // chunk of input channels only: more are refused, their sums wait in `dst`).
                let got = &got[..cout * n];
                match cin <= KC {
                    true => super::super::assert_adds(got, |sum| {
                        pc.forward(&x, n, sum, (&bias, act), true)
                    }),
                    false => {
                        let mut sum = vec![1.0; cout * n];
                        assert!(!pc.forward(&x, n, &mut sum, (&bias, act), true));
                        assert!(sum.iter().all(|&v| v == 1.0), "a refused add wrote");
                    }
                }
            }
        }
        let pc = PointwiseConv::new(&[1.0; 6], (2, 3)).unwrap();
        let mut out = vec![0.0; 8];
        assert!(
            !pc.forward(
                &[0.0; 5],
                2,
                &mut out,
                (&[0.0; 2], Activation::Linear),
                false
            ),
            "short input"
        );
        assert!(
            !pc.forward(&[0.0; 6], 2, &mut out, (&[0.0; 2], Activation::Mish), false),
            "unsupported activation"
        );
        assert!(PointwiseConv::new(&[1.0; 5], (2, 3)).is_none());
    }

    /// The serial form writes each output row where it is told (an offset and a row stride
    /// into wider planes) and nothing else.
    #[test]
    fn serial_products_land_in_their_rows_of_the_planes() {
        if !available() {
            eprintln!("no AVX-512 here: the pointwise kernel is not built, nothing to check");
            return;
        }
        let mut rng = SplitMix64::new(11);
        let (cout, cin, n, stride, at) = (11, 40, 100, 173, 29);
        let w: Vec<f32> = (0..cout * cin).map(|_| rng.uniform(-0.5, 0.5)).collect();
        let x: Vec<f32> = (0..cin * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let bias: Vec<f32> = (0..cout).map(|_| rng.uniform(-0.5, 0.5)).collect();
        let pc = PointwiseConv::new(&w, (cout, cin)).unwrap();
        let mut want = vec![0.0; cout * n];
        assert!(pc.forward(&x, n, &mut want, (&bias, Activation::Leaky), false));
        let mut planes = vec![f32::NAN; at + cout * stride];
        let out = SharedOut::new(&mut planes);
        // SAFETY: the only task on `planes`.
        let ok =
            unsafe { pc.forward_serial_into(&x, n, (out, at, stride), (&bias, Activation::Leaky)) };
        assert!(ok);
        for (i, v) in planes.iter().enumerate() {
            let (o, p) = ((i.wrapping_sub(at)) / stride, (i.wrapping_sub(at)) % stride);
            if i >= at && o < cout && p < n {
                assert_eq!(*v, want[o * n + p], "o {o} p {p}");
            } else {
                assert!(v.is_nan(), "value {i} outside the rows was written");
            }
        }
        let out = SharedOut::new(&mut planes);
        // SAFETY: as above; refused (one row too many for the buffer), nothing written.
        let short = unsafe {
            pc.forward_serial_into(
                &x,
                n,
                (out, at + stride, stride),
                (&bias, Activation::Leaky),
            )
        };
        assert!(!short);
    }

    /// A task's run of (tile, block) pairs cut into rectangles covers exactly that run.
    #[test]
    fn pair_runs_cut_into_rectangles_cover_them() {
        for blocks in [1, 4, 15] {
            for u0 in 0..3 * blocks {
                for u1 in u0..=3 * blocks {
                    let mut got: Vec<usize> = rectangles((u0, u1), blocks)
                        .into_iter()
                        .flatten()
                        .flat_map(|((t0, t1), (b0, b1))| {
                            (t0..t1).flat_map(move |t| (b0..b1).map(move |b| t * blocks + b))
                        })
                        .collect();
                    got.sort_unstable();
                    assert_eq!(got, (u0..u1).collect::<Vec<_>>(), "{u0}..{u1} of {blocks}");
                }
            }
        }
    }

    #[test]
    fn narrow_convs_take_full_tiles_of_fewer_rows() {
        let rows: Vec<usize> = [1, 5, 6, 8, 9, 12, 25, 45, 51, 255]
            .iter()
            .map(|&c| tile_rows(c))
            .collect();
        assert_eq!(rows, [1, 5, 6, 8, 5, 6, 7, 8, 8, 8]);
        assert_eq!(panels_wanted(31, 64), 1);
        assert_eq!(panels_wanted(32, 64), 42);
        assert_eq!(panels_wanted(64, 1024), 21);
        assert_eq!(panels_wanted(65, 64), 1);
    }
}
